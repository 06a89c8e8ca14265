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


@app.command()
def vectorize(
    data: Annotated[Path, typer.Option("--data", help="WB-Synth data set (or any folder with products.parquet + photos)")],
    out: Annotated[Path | None, typer.Option("--out", help="Parquet to write [default: <data_dir>/vectors/<data name>.parquet]")] = None,
    model: Annotated[str | None, typer.Option("--model", help="embedder reference [default: VISEARCH_MODELS__EMBEDDER]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Embed every product's gallery photos with the embedder (mean of its photos, 512-d)."""
    from training.vectorize import vectorize_catalog

    settings = get_settings()
    target = out or settings.data_dir / "vectors" / f"{data.resolve().name}.parquet"
    with stdout_to_stderr(as_json):
        summary = vectorize_catalog(data, settings, target, ref=model, progress=not quiet)
    if as_json:
        print(json.dumps(summary))
    else:
        Console().print(f"{summary['products']:,} products → {summary['out']} ({summary['dim']}-d, {summary['embedder']})")
