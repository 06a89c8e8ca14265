"""The MLflow side of models: runs, registered versions, aliases, and resolving any
model reference to files on this machine.

Every trained model is a folder of files (weights plus ``card.json``) logged to an
MLflow run and registered as a version of a named model; serving and evaluation load
it back by reference (``models:/visearch-detector@champion``), so a data scientist
promotes a model by moving an alias.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from visearch.config import Settings
from visearch.errors import NotFoundError, VisearchError
from visearch.registry.refs import ModelRef, parse_ref

__all__ = ["ModelStore", "resolve_model", "pin_model", "optional_ref", "PinnedModel", "CARD_FILE"]

CARD_FILE = "card.json"


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class ModelStore:
    """MLflow tracking and registry under the configured URI (SQLite in the data dir by default)."""

    def __init__(self, settings: Settings) -> None:
        _quiet_mlflow()
        import mlflow
        from mlflow import MlflowClient

        self.settings = settings
        self.uri = settings.models.mlflow_tracking_uri or ""
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(self.uri)
        mlflow.set_registry_uri(self.uri)
        self._mlflow = mlflow
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        self.artifact_root = (settings.data_dir / "mlartifacts").resolve()
        self.cache = (settings.data_dir / "models-cache").resolve()

    def experiment(self, name: str) -> str:
        """Id of experiment ``name``, created with its artifacts under the data dir (or, against a tracking
        server, where the server keeps artifacts)."""
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        if self.uri.startswith(("http://", "https://")):  # a tracking server keeps artifacts where it was told to
            return self.client.create_experiment(name)
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        return self.client.create_experiment(name, artifact_location=(self.artifact_root / name).as_uri())

    @contextmanager
    def run(self, experiment: str, run_name: str, params: dict[str, Any], tags: dict[str, str] | None = None) -> Iterator[Any]:
        """A run of this store with ``params`` logged; it ends FAILED if the body raises.

        Through this store's client, never MLflow's process-wide "active run": two stores in one process
        (an import from one registry into another) must not write into each other.
        """
        run = self.client.create_run(self.experiment(experiment), run_name=run_name, tags=tags)
        for key, value in params.items():
            self.client.log_param(run.info.run_id, key, json.dumps(value) if isinstance(value, (dict, list, tuple)) else value)
        try:
            yield run
        except BaseException:
            self.client.set_terminated(run.info.run_id, status="FAILED")
            raise
        self.client.set_terminated(run.info.run_id)

    def register(self, run_id: str, model_dir: Path, name: str, card: dict[str, Any], alias: str | None = None) -> str:
        """Log ``model_dir`` (plus its card) to the run and register it as a new version of ``name``."""
        (model_dir / CARD_FILE).write_text(json.dumps(card, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        # one artifact folder per registration: a run may register several versions (a recipe's stages)
        taken = {a.path for a in self.client.list_artifacts(run_id, "models")}
        artifact_path = f"models/{name}-{len(taken) + 1}"
        self.client.log_artifacts(run_id, str(model_dir), artifact_path=artifact_path)
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{artifact_path}"
        try:
            self.client.get_registered_model(name)
        except Exception:  # noqa: BLE001 - MLflow signals "missing" with its own exception family
            self.client.create_registered_model(name, description=card.get("summary", ""))
        tags = {k: str(v) for k, v in card.items() if isinstance(v, (str, int, float, bool))}
        mv = self.client.create_model_version(name, source=source, run_id=run_id, tags=tags, description=card.get("summary", ""))
        if alias:
            self.client.set_registered_model_alias(name, alias, mv.version)
        return str(mv.version)

    def version_of(self, ref: ModelRef) -> str:
        """The version number a ``models:/`` reference stands for now."""
        try:
            if ref.alias:
                return str(self.client.get_model_version_by_alias(ref.name, ref.alias).version)
            return str(self.client.get_model_version(ref.name, ref.version).version)
        except Exception as e:  # noqa: BLE001
            raise NotFoundError(f"{ref}: no such registered model version in {self.uri} ({type(e).__name__}); "
                                f"train one (visearch train ...) or check the name and alias") from None

    def has(self, ref: ModelRef) -> bool:
        """Whether the registry has the version a ``models:/`` reference stands for (an alias may not exist yet)."""
        try:
            self.version_of(ref)
        except NotFoundError:
            return False
        return True

    def tags(self, name: str, version: str) -> dict[str, str]:
        """The tags of one registered version (calibration results live here)."""
        try:
            return dict(self.client.get_model_version(name, version).tags or {})
        except Exception as e:  # noqa: BLE001
            raise NotFoundError(f"models:/{name}/{version}: no such registered model version ({type(e).__name__})") from None

    def set_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)

    def promote(self, name: str, version: str, alias: str, by: str, reason: str) -> str | None:
        """Point ``alias`` at ``version``, recording who and why in the version's tags; returns the version it left."""
        self.version_of(ModelRef("models", name, version=str(version)))  # fails clearly for an unknown version
        try:
            previous: str | None = str(self.client.get_model_version_by_alias(name, alias).version)
        except Exception:  # noqa: BLE001 - no such alias yet
            previous = None
        self.client.set_registered_model_alias(name, alias, str(version))
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.set_tags(name, str(version), {f"promoted.{alias}.by": by, f"promoted.{alias}.at": stamp,
                                           f"promoted.{alias}.reason": reason or "-",
                                           f"promoted.{alias}.replaced": previous or "-"})
        return previous

    def download(self, ref: ModelRef) -> Path:
        """Local folder with the files of ``ref``, fetched once per version into the cache."""
        version = self.version_of(ref)
        target = self.cache / ref.name / version
        if (target / CARD_FILE).is_file():
            return target
        tmp = target.with_name(f".{version}.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self._mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{ref.name}/{version}", dst_path=str(tmp))
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
        return target

    def models(self) -> list[dict[str, Any]]:
        """Registered models with their versions and aliases (for ``visearch info``)."""
        out = []
        for rm in self.client.search_registered_models():
            aliases = {a: str(v) for a, v in (rm.aliases or {}).items()}
            versions = sorted(int(v.version) for v in self.client.search_model_versions(f"name='{rm.name}'"))
            out.append({"name": rm.name, "versions": versions, "aliases": aliases})
        return out


@dataclass(frozen=True)
class PinnedModel:
    """What a reference stands for right now: ``models:/name@champion`` pinned to ``models:/name/7``.

    Serving pins every reference once per reload interval, so a moved alias is noticed and
    each response can name the exact versions that answered it.
    """

    ref: str  # a reference that will not move (a version, a path)
    name: str
    version: str

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


def pin_model(ref: str, settings: Settings) -> PinnedModel:
    """Pin ``ref``: a registry alias to its current version; other references name themselves.

    Raises:
        InvalidArgumentError: a malformed reference.
        NotFoundError: an alias or version the registry does not have.
    """
    parsed = parse_ref(ref)
    if parsed.scheme == "models":
        version = ModelStore(settings).version_of(parsed)
        return PinnedModel(f"models:/{parsed.name}/{version}", parsed.name, version)
    if parsed.scheme == "local":
        path = parsed.path.resolve()
        return PinnedModel(str(path), path.name, "local")
    return PinnedModel(str(parsed), parsed.name, parsed.version or parsed.alias or "latest")


def _from_s3(ref: ModelRef, cache: Path) -> Path:
    """Fetch one object, or every object under a prefix, into the cache."""
    import boto3

    bucket, _, key = ref.name.removeprefix("s3://").partition("/")
    key = key.rstrip("/")
    s3 = boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)
    try:
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])]
    except Exception as e:  # noqa: BLE001 - botocore's errors are many; the message is what matters
        raise NotFoundError(f"{ref}: cannot list the bucket ({e})") from None
    target = cache / "s3" / bucket / key
    if key in objects:  # a single file
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        return target
    under = [o for o in objects if o.startswith(key + "/")]
    if not under:
        raise NotFoundError(f"{ref}: no such object or prefix")
    for obj in under:
        dst = target / obj.removeprefix(key + "/")
        dst.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, obj, str(dst))
    return target


def _from_hub(ref: ModelRef, cache: Path | None) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(ref.name, revision=ref.version, cache_dir=cache))
    except LocalEntryNotFoundError:
        raise NotFoundError(f"{ref}: not in the local hub cache and the hub is unreachable; "
                            "download it once where the hub is reachable, or give a local path") from None
    except Exception as e:  # noqa: BLE001
        raise VisearchError(f"{ref}: hub download failed ({type(e).__name__}: {e})") from None


def resolve_model(ref: str | ModelRef, settings: Settings) -> Path:
    """A local path holding the files of ``ref``, fetching them if they live elsewhere.

    Raises:
        InvalidArgumentError: a malformed reference.
        NotFoundError: the reference names nothing that exists.
    """
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    if ref.scheme == "local":
        if not ref.path.exists():
            raise NotFoundError(f"{ref.path}: no such file or folder")
        return ref.path
    if ref.scheme == "models":
        return ModelStore(settings).download(ref)
    if ref.scheme == "s3":
        return _from_s3(ref, (settings.data_dir / "models-cache").resolve())
    hub_cache = os.environ.get("HF_HUB_CACHE")
    return _from_hub(ref, Path(hub_cache) if hub_cache else None)


def optional_ref(ref: str | None, settings: Settings) -> str | None:
    """An optional model's reference: None when switched off (empty) or when it names a registry alias nobody
    registered yet (the service runs without it); any other reference must load."""
    ref = (ref or "").strip()
    if not ref:
        return None
    if ref.startswith("models:") and not ModelStore(settings).has(parse_ref(ref)):
        return None
    return ref
