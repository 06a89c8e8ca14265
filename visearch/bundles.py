"""Model bundles: registered versions in one checked archive, to ship, copy and register again.

A bundle is a gzipped tar holding ``bundle.json`` (what is inside: each model's name, source
version, aliases, tags, card, and every file with its SHA-256 and size) and the files
under ``models/<name>/``. Weights travel as safetensors in fp16, so loading a bundle runs no
code: the detector's pickled ultralytics checkpoint is written as tensors plus its layout,
and 2-D tensors that are mostly zero rows (the token embeddings a text tower never read)
keep only their non-zero rows.

Import checks everything before it touches the registry (member names, types and sizes,
the listed checksums, each tensor file's header), then registers the models in dependency
order under their names, rewriting references between them (an embedder's card names its
backbone by version), and undoes what it registered if any step fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from visearch.config import Settings
from visearch.errors import InvalidArgumentError, NotFoundError, VisearchError
from visearch.registry import CARD_FILE, ModelStore, parse_ref
from visearch.registry.card import ModelCard
from visearch.registry.recorder import ModelRecorder

__all__ = ["BundleError", "BundleManifest", "ImportReport", "export_bundle", "import_bundle", "read_bundle", "describe", "ensure_default_models", "sha256_file",
           "FORMAT", "FORMAT_VERSION"]

FORMAT = "visearch-model-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
MAX_MEMBER_BYTES = 512 * 2**20  # a single file larger than this is not a model of ours
MAX_TOTAL_BYTES = 2 * 2**30
SPARSE_MIN_ZERO_SHARE = 0.5  # pack a 2-D tensor's rows when at least this share of them is all zero
_PACKED_ROWS, _PACKED_VALUES = "::rows", "::values"
_PACKED_META = "visearch.packed"  # safetensors metadata key: {name: [rows, cols]} of the packed tensors
_SAFE_SUFFIXES = (".safetensors", ".json", ".yaml", ".txt", ".md", ".png")  # data only, never code
_REF = re.compile(r"models:/([A-Za-z0-9][A-Za-z0-9._-]*)/(\d+)")
_SKIP_TAGS = ("mlflow.",)
IMPORT_EXPERIMENT = "imports"


class BundleError(VisearchError):
    """A bundle that is corrupt, truncated, tampered with, or not a bundle at all."""


class BundleFile(BaseModel):
    path: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class BundleModel(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    source_version: str
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    card: dict[str, Any]
    files: list[BundleFile]

    @property
    def folder(self) -> str:
        return f"models/{self.name}"


class BundleManifest(BaseModel):
    format: str
    format_version: int
    label: str = ""
    created: str
    note: str = ""
    models: list[BundleModel]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- tensors


def _pack_tensors(src: Path, dst: Path) -> None:
    """fp16 copy of a safetensors file; mostly-zero 2-D tensors keep only their non-zero rows."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(src))
    out: dict[str, torch.Tensor] = {}
    packed: dict[str, list[int]] = {}
    for key, t in tensors.items():
        if t.is_floating_point():
            t = t.to(torch.float16)
        if t.ndim == 2 and t.is_floating_point():
            nonzero = t.abs().sum(dim=1) > 0
            if 1.0 - float(nonzero.float().mean()) >= SPARSE_MIN_ZERO_SHARE:
                rows = torch.nonzero(nonzero).flatten().to(torch.int32)
                out[key + _PACKED_ROWS], out[key + _PACKED_VALUES] = rows, t[nonzero].contiguous()
                packed[key] = list(t.shape)
                continue
        out[key] = t.contiguous()
    save_file(out, str(dst), metadata={_PACKED_META: json.dumps(packed)})


def _unpack_tensors(src: Path, dst: Path) -> None:
    """A bundle's tensor file back to the plain layout loaders read (dense tensors, fp16)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    try:
        with safe_open(str(src), "pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no items()
    except Exception as e:  # noqa: BLE001 - safetensors raises its own errors for a bad header
        raise BundleError(f"{src.name}: not a readable safetensors file ({e})") from None
    try:
        packed = json.loads(meta.get(_PACKED_META, "{}"))
    except ValueError:
        raise BundleError(f"{src.name}: bad {_PACKED_META} metadata") from None
    out: dict[str, torch.Tensor] = {}
    for key, shape in packed.items():
        rows, values = tensors.pop(key + _PACKED_ROWS, None), tensors.pop(key + _PACKED_VALUES, None)
        if rows is None or values is None or len(shape) != 2 or values.shape != (len(rows), shape[1]) \
                or (len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= shape[0])):
            raise BundleError(f"{src.name}: packed tensor {key!r} does not fit its shape {shape}")
        dense = torch.zeros(shape, dtype=values.dtype)
        dense[rows.long()] = values
        out[key] = dense
    out.update(tensors)
    save_file(out, str(dst))


# ---------------------------------------------------------------------------------------------- export


def _bundle_files(version_dir: Path, stage: Path) -> None:
    """Copy a registered version's files into ``stage`` in bundle form, refusing what could run code."""
    from visearch.vision.detector import WEIGHTS_FILE as DETECTOR_PT
    from visearch.vision.detector import save_safe

    stage.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in version_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(version_dir)
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.name == DETECTOR_PT and path.parent == version_dir:
            save_safe(path, stage)  # ultralytics' pickle -> tensors + layout
        elif path.suffix == ".safetensors":
            _pack_tensors(path, target)
        elif path.suffix in _SAFE_SUFFIXES:
            shutil.copy2(path, target)
        else:
            raise InvalidArgumentError(f"{path}: cannot go into a bundle ({path.suffix or 'no suffix'} files may hold pickled "
                                       f"code; bundles carry safetensors and JSON only)")


def _references(card: dict[str, Any]) -> set[tuple[str, str]]:
    text = json.dumps(card)
    return {(m.group(1), m.group(2)) for m in _REF.finditer(text)}


def _pin(store: ModelStore, ref: str) -> tuple[str, str]:
    parsed = parse_ref(ref)
    if parsed.scheme != "models":
        raise InvalidArgumentError(f"{ref}: only registered models (models:/name@alias or models:/name/N) go into a bundle")
    return parsed.name, store.version_of(parsed)


def export_bundle(refs: Sequence[str], out: Path, settings: Settings, label: str = "", note: str = "",
                  with_dependencies: bool = True, cards: Path | None = None,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Write the versions ``refs`` name (and those their cards refer to) into one bundle at ``out``, and their
    model cards as Markdown at ``cards`` when given.

    Returns what was written: path, SHA-256 of the archive, bytes, models (and the cards' path).

    Raises:
        InvalidArgumentError: a reference that is not a registered model, two versions of one model, a file that
            is not a safe format.
        NotFoundError: a name or alias the registry does not have.
    """
    from visearch.vision.detector import configure_ultralytics

    configure_ultralytics(settings.data_dir)
    store = ModelStore(settings)
    wanted = [_pin(store, r) for r in refs]
    if not wanted:
        raise InvalidArgumentError("name at least one model, e.g. models:/visearch-detector@champion")
    queue, chosen, folders = list(wanted), {}, {}
    while queue:
        name, version = queue.pop(0)
        if name in chosen:
            if chosen[name] != version:
                raise InvalidArgumentError(f"{name}: versions {chosen[name]} and {version} both asked for; a bundle holds one "
                                           "version of each model")
            continue
        chosen[name] = version
        folders[name] = folder = store.download(parse_ref(f"models:/{name}/{version}"))
        if with_dependencies and (folder / CARD_FILE).is_file():
            card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
            queue += sorted(_references(card) - {(name, version)})
    with tempfile.TemporaryDirectory(prefix="bundle-") as tmp:
        root = Path(tmp)
        models = []
        for name, version in chosen.items():
            if log:
                log(f"packing {name}/{version}")
            stage = root / "models" / name
            _bundle_files(folders[name], stage)
            card = json.loads((stage / CARD_FILE).read_text(encoding="utf-8")) if (stage / CARD_FILE).is_file() else {}
            mv = store.client.get_model_version(name, version)
            rm = store.client.get_registered_model(name)
            aliases = sorted(a for a, v in (rm.aliases or {}).items() if str(v) == version)
            tags = {k: v for k, v in (mv.tags or {}).items() if not k.startswith(_SKIP_TAGS)}
            files = [BundleFile(path=str(PurePosixPath(*p.relative_to(root).parts)), sha256=sha256_file(p), bytes=p.stat().st_size)
                     for p in sorted(stage.rglob("*")) if p.is_file()]
            models.append(BundleModel(name=name, source_version=version, aliases=aliases, tags=tags, card=card, files=files))
        manifest = BundleManifest(format=FORMAT, format_version=FORMAT_VERSION, label=label, note=note,
                                  created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), models=models)
        (root / MANIFEST).write_text(manifest.model_dump_json(indent=1), encoding="utf-8")
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for path in [root / MANIFEST] + [root / f.path for m in models for f in m.files]:
                info = tar.gettarinfo(str(path), arcname=str(path.relative_to(root)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0  # the same models make the same archive
                with path.open("rb") as f:
                    tar.addfile(info, f)
        partial.replace(out)
    report: dict[str, Any] = {"path": str(out), "sha256": sha256_file(out), "bytes": out.stat().st_size,
                              "models": [{"name": m.name, "version": m.source_version, "aliases": m.aliases,
                                          "bytes": sum(f.bytes for f in m.files)} for m in models]}
    if cards is not None:
        cards.write_text(describe(manifest), encoding="utf-8")
        report["cards"] = str(cards)
    return report


# ---------------------------------------------------------------------------------------------- reading


def _member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name.startswith(("/", "\\")) or "\\" in name:
        raise BundleError(f"member {name!r} points outside the bundle's folder")
    return path


def read_bundle(path: Path, into: Path) -> BundleManifest:
    """Unpack and check a bundle into the empty folder ``into``; nothing outside it is written.

    Raises:
        BundleError: not a bundle, truncated, a member outside the folder or not a plain file, a file missing,
            unlisted or differing from its checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"{path}: no such bundle file")
    seen: dict[str, Path] = {}
    total = 0
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                rel = _member_path(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BundleError(f"member {member.name!r} is not a plain file (links and devices are refused)")
                if member.size > MAX_MEMBER_BYTES or total + member.size > MAX_TOTAL_BYTES:
                    raise BundleError(f"member {member.name!r} is too large ({member.size:,} bytes)")
                key = str(rel)
                if key in seen:
                    raise BundleError(f"member {member.name!r} appears twice")
                total += member.size
                target = into.joinpath(*rel.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(member)
                if src is None:
                    raise BundleError(f"member {member.name!r} cannot be read")
                with target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
                seen[key] = target
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        first = (str(e).splitlines() or [""])[0].rstrip(":")
        raise BundleError(f"{path}: not a readable bundle, truncated or corrupt ({type(e).__name__}: {first})") from None
    if MANIFEST not in seen:
        raise BundleError(f"{path}: no {MANIFEST} inside; is it a visearch model bundle?")
    try:
        manifest = BundleManifest.model_validate_json(seen.pop(MANIFEST).read_bytes())
    except ValidationError as e:
        raise BundleError(f"{path}: {MANIFEST} does not describe a bundle ({e.error_count()} problems, first: "
                          f"{e.errors()[0]['loc']}: {e.errors()[0]['msg']})") from None
    if manifest.format != FORMAT or manifest.format_version > FORMAT_VERSION:
        raise BundleError(f"{path}: format {manifest.format!r} v{manifest.format_version}; this visearch reads {FORMAT} "
                          f"up to v{FORMAT_VERSION}")
    listed: set[str] = set()
    names = [m.name for m in manifest.models]
    if len(set(names)) != len(names):
        raise BundleError(f"{path}: a model appears twice in {MANIFEST}")
    for model in manifest.models:
        for f in model.files:
            rel = str(_member_path(f.path))
            if not rel.startswith(model.folder + "/"):
                raise BundleError(f"{path}: {f.path} is listed for {model.name} but lies outside {model.folder}/")
            listed.add(rel)
            got = seen.get(rel)
            if got is None:
                raise BundleError(f"{path}: {f.path} is listed but missing from the archive")
            if got.stat().st_size != f.bytes or sha256_file(got) != f.sha256:
                raise BundleError(f"{path}: {f.path} does not match its checksum (changed or corrupt)")
    extra = sorted(set(seen) - listed)
    if extra:
        raise BundleError(f"{path}: {extra[0]} is in the archive but not listed in {MANIFEST}")
    return manifest


# ---------------------------------------------------------------------------------------------- import


@dataclass
class ImportReport:
    registered: dict[str, str] = field(default_factory=dict)  # name -> new version
    reused: dict[str, str] = field(default_factory=dict)  # name -> existing identical version
    aliases_set: list[str] = field(default_factory=list)
    aliases_kept: list[str] = field(default_factory=list)  # taken in the registry already; not moved
    sha256: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _order(models: list[BundleModel]) -> list[BundleModel]:
    """Dependencies first: a model whose card names another model of the bundle comes after it."""
    by_name = {m.name: m for m in models}
    done: list[BundleModel] = []
    visiting: set[str] = set()

    def visit(m: BundleModel) -> None:
        if m in done:
            return
        if m.name in visiting:
            raise BundleError(f"models refer to each other in a cycle ({m.name})")
        visiting.add(m.name)
        for name, _ in sorted(_references(m.card)):
            if name in by_name and name != m.name:
                visit(by_name[name])
        visiting.discard(m.name)
        done.append(m)

    for m in models:
        visit(m)
    return done


def _rewrite(value: Any, versions: dict[tuple[str, str], str]) -> Any:
    """Every ``models:/name/N`` naming a model of the bundle, renumbered to its version in this registry."""
    if isinstance(value, str):
        return _REF.sub(lambda m: f"models:/{m.group(1)}/{versions.get((m.group(1), m.group(2)), m.group(2))}", value)
    if isinstance(value, dict):
        return {k: _rewrite(v, versions) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, versions) for v in value]
    return value


def _content_id(model: BundleModel) -> str:
    """What a version holds, independent of where it was registered: its files' checksums."""
    return hashlib.sha256("\n".join(f"{f.path} {f.sha256}" for f in sorted(model.files, key=lambda f: f.path)).encode()).hexdigest()


def _existing(store: ModelStore, name: str, content: str) -> str | None:
    try:
        versions = store.client.search_model_versions(f"name='{name}'")
    except Exception:  # noqa: BLE001 - no such model yet
        return None
    for mv in versions:
        if (mv.tags or {}).get("bundle_content") == content:
            return str(mv.version)
    return None


def import_bundle(path: Path, settings: Settings, move_aliases: bool = False, expect_sha256: str | None = None,
                  log: Callable[[str], None] | None = None) -> ImportReport:
    """Register the models of the bundle at ``path``; the registry is left as it was if anything fails.

    Aliases the bundle names are set where the registry has none of that name yet (or moved, with
    ``move_aliases``). A model whose identical files were imported before is reused, not registered twice.

    Raises:
        BundleError: a corrupt, truncated or tampered bundle, or one whose checksum is not ``expect_sha256``.
        NotFoundError: no file at ``path``.
    """
    path = Path(path)
    report = ImportReport(sha256=sha256_file(path) if path.is_file() else "")
    if expect_sha256 and report.sha256 != expect_sha256.lower():
        raise BundleError(f"{path}: SHA-256 {report.sha256} is not the expected {expect_sha256}")
    store = ModelStore(settings)
    with tempfile.TemporaryDirectory(prefix="bundle-import-") as tmp:
        root = Path(tmp) / "bundle"
        root.mkdir()
        manifest = read_bundle(path, root)
        ready = Path(tmp) / "ready"
        for model in manifest.models:  # every tensor file is checked before the registry is touched
            for f in model.files:
                src = root / f.path
                dst = ready / f.path
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.suffix == ".safetensors":
                    _unpack_tensors(src, dst)
                else:
                    shutil.copy2(src, dst)
        versions: dict[tuple[str, str], str] = {}
        created: list[tuple[str, str]] = []
        new_models = [m.name for m in manifest.models if not _has_model(store, m.name)]
        before = {m.name: _aliases(store, m.name) for m in manifest.models}
        try:
            for model in _order(manifest.models):
                content = _content_id(model)
                found = _existing(store, model.name, content)
                if found is not None:
                    versions[(model.name, model.source_version)] = report.reused[model.name] = found
                    continue
                card = ModelCard.from_dict(_rewrite(model.card, versions), model.name)
                folder = ready / model.folder
                if log:
                    log(f"registering {model.name} (bundle's version {model.source_version})")
                params = {"bundle": path.name, "bundle_sha256": report.sha256, "source_version": model.source_version,
                          "label": manifest.label}
                with ModelRecorder(store, IMPORT_EXPERIMENT, f"import {model.name}", params, tags={"bundle": path.name}) as rec:
                    registered = rec.register(folder, card)
                version = str(registered.version)
                created.append((model.name, version))
                tags = {**_rewrite(model.tags, versions), "bundle_content": content, "bundle_sha256": report.sha256,
                        "imported_from": f"{path.name} ({manifest.label or 'unlabelled'})"}
                store.set_tags(model.name, version, {k: str(v) for k, v in tags.items()})
                versions[(model.name, model.source_version)] = report.registered[model.name] = version
            for model in manifest.models:
                version = versions[(model.name, model.source_version)]
                for alias in model.aliases:
                    if alias in before[model.name] and not move_aliases:
                        if before[model.name][alias] != version:
                            report.aliases_kept.append(f"{model.name}@{alias}")
                        continue
                    store.client.set_registered_model_alias(model.name, alias, version)
                    report.aliases_set.append(f"{model.name}@{alias}")
        except BaseException:
            _undo(store, created, new_models, before)
            raise
    return report


def _has_model(store: ModelStore, name: str) -> bool:
    try:
        store.client.get_registered_model(name)
        return True
    except Exception:  # noqa: BLE001
        return False


def _aliases(store: ModelStore, name: str) -> dict[str, str]:
    try:
        return {a: str(v) for a, v in (store.client.get_registered_model(name).aliases or {}).items()}
    except Exception:  # noqa: BLE001
        return {}


def _undo(store: ModelStore, created: list[tuple[str, str]], new_models: list[str], before: dict[str, dict[str, str]]) -> None:
    """Put the registry back: aliases as they were, new versions and new model names gone."""
    for name, aliases in before.items():
        if not _has_model(store, name):
            continue
        for alias in set(_aliases(store, name)) - set(aliases):
            store.client.delete_registered_model_alias(name, alias)
        for alias, version in aliases.items():
            store.client.set_registered_model_alias(name, alias, version)
    for name, version in reversed(created):
        store.client.delete_model_version(name, version)
    for name in new_models:
        if _has_model(store, name):
            store.client.delete_registered_model(name)


def ensure_default_models(settings: Settings, log: Callable[[str], None] | None = None) -> ImportReport | None:
    """Import the shipped default bundle when the detector or embedder the settings name by a registry alias
    is not registered yet (a fresh clone); None when nothing was needed or there is no bundle."""
    bundle = settings.models.default_bundle
    if bundle is None or not Path(bundle).is_file():
        return None
    store = ModelStore(settings)
    missing = [ref for ref in (settings.models.detector, settings.models.embedder)
               if ref.startswith("models:") and not store.has(parse_ref(ref))]
    if not missing:
        return None
    if log:
        log(f"{', '.join(missing)} not registered: importing the default models from {bundle}")
    return import_bundle(Path(bundle), settings, log=log)


def describe(manifest: BundleManifest) -> str:
    """The bundle's models as Markdown model cards (shipped beside the archive)."""
    out = io.StringIO()
    out.write(f"# Model bundle {manifest.label or ''}\n\nCreated {manifest.created}. {manifest.note}\n\n")
    for m in manifest.models:
        card = m.card
        out.write(f"## {m.name} (version {m.source_version}{', aliases ' + ', '.join(m.aliases) if m.aliases else ''})\n\n")
        out.write(f"{card.get('summary', '')}\n\n")
        for key in ("task", "recipe", "arch", "trained_on", "pretrained", "command", "val_split", "train_seconds"):
            if card.get(key) is not None:
                out.write(f"- **{key}**: `{card[key]}`\n")
        data = card.get("data") or {}
        if data:
            out.write(f"- **data**: seed {data.get('seed')}, {data.get('products')} products, manifest SHA-256 "
                      f"`{data.get('manifest_sha256')}`\n")
        if card.get("val_metrics"):
            out.write(f"- **held-out figures** ({card.get('val_split', 'val')} split):\n\n```json\n"
                      f"{json.dumps(card['val_metrics'], indent=1)}\n```\n")
        files = ", ".join(f"{f.path.split('/', 2)[-1]} ({f.bytes:,} B)" for f in m.files)
        out.write(f"- **files**: {files}\n\n")
    return out.getvalue()
