"""``visearch synth``: generate or check a WB-Synth data set."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.config import get_settings
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.synth import check_dataset, generate


@app.command()
def synth(
    out: Annotated[Path | None, typer.Option("--out", help="folder to write the data set into")] = None,
    products: Annotated[int, typer.Option("--products", "-n", min=1, help="products in the catalog")] = 200,
    seed: Annotated[int, typer.Option("--seed", min=0, help="same seed, byte-identical output")] = 0,
    scenes: Annotated[int | None, typer.Option("--scenes", min=0, help="shopper photos (default: 3 per product)")] = None,
    preview: Annotated[bool, typer.Option("--preview", help="also write preview.png, a contact sheet")] = False,
    train_screenshots: Annotated[float, typer.Option("--train-screenshots", min=0, help=(
        "screenshot-style photos per train product too, for the detector and crop classifier to learn from "
        "(held-out screenshots are the same either way)"))] = 0.0,
    check: Annotated[Path | None, typer.Option("--check", help="validate the data set in this folder instead")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Generate the synthetic marketplace WB-Synth, or check one against its manifest."""
    console = Console()
    if check is not None:
        if out is not None:
            raise InvalidArgumentError("give either --out (generate) or --check (validate), not both")
        if not check.is_dir():
            raise DatasetError(f"{check}: not a directory")
        problems = check_dataset(check)
        for line in problems:
            print(line)
        if problems:
            raise DatasetError(f"{check}: {len(problems)} problem(s) found")
        console.print(f"[green]ok[/green] {check}: matches its manifest and schema")
        return
    if out is None:
        raise InvalidArgumentError("missing --out DIR (or --check DIR to validate a data set)")
    settings = get_settings()
    start = time.perf_counter()
    manifest = generate(out, products, seed=seed, n_scenes=scenes, settings=settings.synth, preview=preview, progress=not quiet,
                        train_screenshots=train_screenshots)
    took = time.perf_counter() - start
    table = Table(title=f"WB-Synth → {out} (seed {seed}, {took:.1f} s)")
    table.add_column("what")
    table.add_column("count", justify="right")
    for key, value in manifest["counts"].items():
        table.add_row(key.replace("_", " "), f"{value:,}")
    for split, c in manifest["splits"].items():
        table.add_row(f"{split} split", f"{c['products']:,} products, {c['scenes']:,} photos")
    console.print(table)
    if preview:
        console.print(f"preview: {out / 'preview.png'}")
