"""``visearch info``: versions, configuration, and what data, models and indexes exist."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import visearch
from visearch.cli import app
from visearch.config import Settings, get_settings

_PACKAGES = ("torch", "torchvision", "numpy", "pillow", "pyarrow", "pydantic", "qdrant-edge-py", "qdrant-client",
             "ultralytics", "open-clip-torch", "rapidocr-onnxruntime", "mlflow", "ray", "xgboost")
_SECRET_KEYS = {"api_key"}


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "visearch": visearch.__version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _config(settings: Settings) -> dict[str, Any]:
    def mask(d: dict[str, Any]) -> dict[str, Any]:
        return {k: ("***" if k in _SECRET_KEYS and v else mask(v) if isinstance(v, dict) else v) for k, v in d.items()}

    return mask(settings.model_dump(mode="json"))


def _datasets(data_dir: Path) -> list[dict[str, Any]]:
    """WB-Synth sets (folders with a manifest) up to two levels under the data dir."""
    found = []
    for manifest in sorted([*data_dir.glob("*/manifest.json"), *data_dir.glob("*/*/manifest.json")]):
        try:
            m = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        if m.get("dataset") == "WB-Synth":
            found.append({"path": str(manifest.parent), "seed": m.get("seed"), **m.get("counts", {})})
    return found


def _models(settings: Settings) -> dict[str, Any]:
    uri = settings.models.mlflow_tracking_uri or ""
    registry = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
    exists = bool(registry and registry.is_file()) if registry else None
    registered: list[dict[str, Any]] = []
    if exists or registry is None:
        from visearch.registry import ModelStore

        registered = ModelStore(settings).models()
    return {
        "references": {k: v for k, v in settings.models.model_dump().items() if k in ("detector", "embedder", "backbone")},
        "tracking_uri": uri,
        "registry_exists": exists,
        "registered": registered,
    }


def _indexes(settings: Settings) -> dict[str, Any]:
    root = settings.index.path
    out: dict[str, Any] = {"backend": settings.index.backend, "path": str(root), "versions": []}
    if settings.index.backend == "edge" and not (root and root.is_dir()):
        return out
    from visearch.index import open_index

    out["versions"] = [{"version": v.version, "points": v.points, "current": v.current,
                        "created_at": v.created_at} for v in open_index(settings).versions()]
    return out


@app.command()
def info(as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Show versions, the effective configuration, and the data sets, models and indexes that exist."""
    settings = get_settings()
    report = {
        "versions": _versions(),
        "config": _config(settings),
        "datasets": _datasets(settings.data_dir),
        "models": _models(settings),
        "indexes": _indexes(settings),
    }
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    console = Console()
    versions = Table(title="versions", show_header=False)
    for k, v in report["versions"].items():
        versions.add_row(k, v)
    console.print(versions)
    console.print("[bold]config[/bold] (env prefix VISEARCH_, nested with __)")
    console.print_json(json.dumps(report["config"], ensure_ascii=False))
    data = Table(title=f"data sets under {settings.data_dir}")
    for col in ("path", "seed", "products", "scenes"):
        data.add_column(col)
    for d in report["datasets"]:
        data.add_row(d["path"], str(d["seed"]), str(d.get("products")), str(d.get("scenes")))
    console.print(data if report["datasets"] else f"no data sets under {settings.data_dir} (make one: visearch synth --out {settings.data_dir}/wb)")
    m = report["models"]
    console.print(f"[bold]models[/bold]: registry {m['tracking_uri']} ({'present' if m['registry_exists'] else 'not created yet'})")
    for k, v in m["references"].items():
        console.print(f"  {k}: {v}")
    for rm in m["registered"]:
        aliases = ", ".join(f"@{a} → v{v}" for a, v in sorted(rm["aliases"].items()))
        console.print(f"  registered {rm['name']}: versions {rm['versions']}" + (f" ({aliases})" if aliases else ""))
    ix = report["indexes"]
    versions = ", ".join(f"{v['version']} ({v['points']:,} products{', serving' if v['current'] else ''})" for v in ix["versions"])
    console.print(f"[bold]index[/bold]: {ix['backend']} at {ix['path']}: " + (versions or "no versions built"))
