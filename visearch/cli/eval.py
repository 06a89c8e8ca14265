"""``visearch eval ...``: measurements of the system's parts (``eval index`` here; other parts add theirs)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from visearch.cli import app
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError
from visearch.index.evaluate import evaluate_index

__all__ = ["eval_app"]

eval_app = typer.Typer(
    help="Measure the system's parts: quality and speed on data with a known answer.", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")


@eval_app.command("index")
def eval_index(
    n: Annotated[int, typer.Option("--n", min=1, help="products of synthetic clustered vectors")] = 100_000,
    dim: Annotated[int | None, typer.Option("--dim", help="online (HNSW) slice: 64, 128, 256 or 512")] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, help="seed of the data and the query sample")] = 0,
    queries: Annotated[int, typer.Option("--queries", min=1, help="queries per mode")] = 1000,
    from_index: Annotated[
        bool, typer.Option("--from-index", help="evaluate the built index on its own vectors instead")
    ] = False,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="processes for qps_all (default: cores)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress messages")] = False,
) -> None:
    """Recall@10 of each search mode against brute force, queries/s on one thread and all cores, bytes per product."""
    settings = get_settings()
    if dim is not None and dim not in (64, 128, 256, 512):
        raise InvalidArgumentError(f"--dim must be 64, 128, 256 or 512 (an MRL prefix), got {dim}")
    if dim is not None and dim > settings.index.full_dim:
        raise InvalidArgumentError(f"--dim {dim} is larger than the full vector ({settings.index.full_dim})")
    err = Console(stderr=True)
    report = evaluate_index(
        settings,
        n=n,
        online_dim=dim,
        seed=seed,
        queries=queries,
        from_index=from_index,
        workers=workers,
        progress=None if quiet else (lambda msg: err.print(f"[dim]{msg}[/dim]")),
    )
    if as_json:
        print(json.dumps(report))
        return
    console = Console()
    table = Table(title=f"index eval: {report['source']}, {report['n']:,} products, {report['online_dim']}-d HNSW")
    for col in ("mode", "recall@10", "qps 1 thread", f"qps {report['workers']} procs"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, m in report["modes"].items():
        if m["qps_1"] is None:
            table.add_row(mode, "-", "-", "-")  # nothing to ask: an index without articles
            continue
        table.add_row(mode, f"{m['recall@10']:.4f}", f"{m['qps_1']:,.0f}", f"{m['qps_all']:,.0f}")
    console.print(table)
    console.print(
        f"bytes per product: {report['bytes_per_product']:,.0f} in RAM, {report['disk_bytes_per_product']:,.0f} on disk "
        f"(resident growth of a serving process: {report['rss_bytes_per_product']:,.0f})"
    )
    console.print(f"settings: {report['settings']}; data: {report['data']}")
