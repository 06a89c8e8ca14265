"""``visearch vectorize``: one vector per catalog product, for ``visearch index build``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from visearch.cli import app
from visearch.cli._output import stdout_to_stderr
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError


@app.command()
def vectorize(
    data: Annotated[str, typer.Option("--data", help="WB-Synth data set (or any folder with products.parquet + photos); "
                                      "with --engine ray also s3://bucket/prefix")],
    out: Annotated[str | None, typer.Option("--out", help="Parquet to write; with --engine ray a folder of shards (or "
                                            "s3://...) [default: <data_dir>/vectors/<data name>.parquet, or that name "
                                            "without .parquet as the folder]")] = None,
    model: Annotated[str | None, typer.Option("--model", help="embedder reference [default: VISEARCH_MODELS__EMBEDDER]")] = None,
    engine: Annotated[str, typer.Option(help="local: this process; ray: a Ray Data job with a pool of embedder actors")] = "local",
    address: Annotated[str | None, typer.Option(help="Ray cluster to run on (--engine ray) [default: start a local one]")] = None,
    actors: Annotated[int, typer.Option(min=1, help="embedder actors (--engine ray): one per GPU on a GPU cluster")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Embed every product's gallery photos with the embedder (mean of its photos, 512-d)."""
    settings = get_settings()
    name = data.rstrip("/").removesuffix("/products.parquet").rsplit("/", 1)[-1]
    if engine == "ray":
        from training.vectorize_ray import vectorize_on_ray

        target = out or str(settings.data_dir / "vectors" / name)
        with stdout_to_stderr(as_json):
            summary = vectorize_on_ray(data, settings, target, ref=model, address=address, actors=actors)
    elif engine == "local":
        from training.vectorize import vectorize_catalog

        if data.startswith("s3://") or (out or "").startswith("s3://"):
            raise InvalidArgumentError("s3:// catalogs and outputs need --engine ray")
        target_file = Path(out) if out else settings.data_dir / "vectors" / f"{Path(data).resolve().name}.parquet"
        with stdout_to_stderr(as_json):
            summary = vectorize_catalog(Path(data), settings, target_file, ref=model, progress=not quiet)
    else:
        raise InvalidArgumentError(f"unknown engine {engine!r}; use local or ray")
    if as_json:
        print(json.dumps(summary))
    else:
        where = f" in {summary['shards']} shards, {summary['seconds']} s on {summary['nodes']} node(s)" if engine == "ray" else ""
        Console().print(f"{summary['products']:,} products → {summary['out']}{where} ({summary.get('dim', 512)}-d, "
                        f"{summary['embedder']})")
