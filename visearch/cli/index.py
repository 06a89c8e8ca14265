"""``visearch index build|update|rollback|stats``: the vector index's lifecycle.

Which index: ``VISEARCH_INDEX__BACKEND`` (``edge``, the default, under
``VISEARCH_INDEX__PATH`` or ``<data_dir>/index``; or ``cluster`` at
``VISEARCH_INDEX__URL``). Formats: :mod:`visearch.index.sources` (build input),
:mod:`visearch.index.changes` (change sets); docs/index.md has both.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from visearch.cli import app
from visearch.config import get_settings
from visearch.errors import InvalidArgumentError
from visearch.index import build_index, index_stats, rollback_index, update_index
from visearch.index.types import ProgressFn, VersionInfo

__all__ = ["index_app"]

index_app = typer.Typer(
    help="Build, update, roll back and inspect the vector index (Qdrant: embedded or cluster).",
    no_args_is_help=True,
)
app.add_typer(index_app, name="index")

_PHASES = {
    "upsert": "writing products",
    "copy": "copying the serving version",
    "apply": "applying changes",
    "index": "building the HNSW graph",
}


@contextmanager
def _progress(enabled: bool) -> Iterator[ProgressFn | None]:
    """A rich bar per phase on stderr (stdout stays clean for --json)."""
    if not enabled:
        yield None
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int | None) -> None:
        if phase not in tasks:
            tasks[phase] = bar.add_task(_PHASES.get(phase, phase), total=total)
        bar.update(tasks[phase], completed=done, total=total)

    with bar:
        yield update


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _version_line(v: VersionInfo) -> str:
    return f"{v.version} ({v.kind}, {v.points:,} products, online {v.online_dim}-d, m={v.hnsw_m})"


@index_app.command("build")
def build(
    vectors: Annotated[
        Path, typer.Option("--vectors", help="Parquet or .npz: product_id, vector (the full MRL vector); or a folder of Parquet shards")
    ],
    catalog: Annotated[
        Path | None,
        typer.Option("--catalog", help="products.parquet: its rows become the payload, joined on product_id"),
    ] = None,
    online_dim: Annotated[int | None, typer.Option("--online-dim", help=(
        "build the index variants with this online size search (128 or 256; <index path>-d<dim> beside the serving "
        "one) instead of the serving index"))] = None,
    name: Annotated[str | None, typer.Option("--name", help=(
        "build the named index a variant searches (<index path>-<name>), e.g. one of another embedder's vectors"))] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Build a new index version and switch to it atomically; the previous one is kept for rollback."""
    from visearch.searcher import index_settings_for

    settings = get_settings()
    if online_dim is not None or name is not None:
        if online_dim is not None and online_dim not in (64, 128, 256, 512):
            raise InvalidArgumentError(f"--online-dim must be 64, 128, 256 or 512, got {online_dim}")
        target = index_settings_for(settings.index, online_dim or settings.index.online_dim, name)
        settings = settings.model_copy(update={"index": target})
    with _progress(not quiet) as progress:
        report = build_index(settings, vectors, catalog, progress=progress)
    if as_json:
        print(
            json.dumps(
                {
                    **report.version.to_manifest(),
                    "upsert_seconds": report.upsert_seconds,
                    "index_seconds": report.index_seconds,
                    "cleaned": report.cleaned,
                    "pruned": report.pruned,
                }
            )
        )
        return
    console = Console()
    console.print(f"[green]serving[/green] {_version_line(report.version)}")
    console.print(f"  written in {report.upsert_seconds:.1f} s, graph built in {report.index_seconds:.1f} s")
    if report.cleaned:
        console.print(f"  removed leftovers of interrupted runs: {', '.join(report.cleaned)}")
    if report.pruned:
        console.print(f"  removed old versions: {', '.join(report.pruned)}")


@index_app.command("update")
def update(
    changes: Annotated[Path, typer.Option("--changes", help="change set: .json or .parquet (docs/index.md)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as one JSON object")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")] = False,
) -> None:
    """Apply a change set (new, changed, removed products; payload-only changes) as a new version."""
    settings = get_settings()
    with _progress(not quiet) as progress:
        report = update_index(settings, changes, progress=progress)
    counts = {k: getattr(report, k) for k in ("new", "changed", "payload_only", "deleted", "already_absent")}
    if as_json:
        print(
            json.dumps(
                {
                    "version": report.version.version,
                    "applied": report.applied,
                    **counts,
                    "seconds": report.seconds,
                    "cleaned": report.cleaned,
                    "pruned": report.pruned,
                }
            )
        )
        return
    console = Console()
    if not report.applied:
        console.print(f"nothing to do: {report.version.version} already holds this change set")
        return
    console.print(f"[green]serving[/green] {_version_line(report.version)} in {report.seconds:.1f} s")
    console.print("  " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items()))
    if report.pruned:
        console.print(f"  removed old versions: {', '.join(report.pruned)}")


@index_app.command("rollback")
def rollback(
    to: Annotated[
        str | None, typer.Option("--to", help="version to serve (default: the one before the serving one)")
    ] = None,
) -> None:
    """Serve an older version again (atomic switch; nothing is deleted)."""
    report = rollback_index(get_settings(), to)
    Console().print(f"[green]serving[/green] {_version_line(report.current)} (was {report.previous})")


@index_app.command("stats")
def stats(as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False) -> None:
    """Versions, product counts, and memory and disk per product of the serving version."""
    st = index_stats(get_settings())
    if as_json:
        print(json.dumps(st.to_dict()))
        return
    console = Console()
    console.print(f"[bold]{st.backend}[/bold] index at {st.location}")
    if not st.versions:
        console.print("no versions built yet: visearch index build --vectors FILE [--catalog products.parquet]")
        return
    versions = Table(title="versions")
    for col in ("", "version", "kind", "created", "products", "online", "m / ef_construct", "quantization", "disk"):
        versions.add_column(col)
    for v in st.versions:
        disk = st.version_disk.get(v.version)
        versions.add_row(
            "▶" if v.current else "",
            v.version,
            v.kind,
            v.created_at[:16].replace("T", " "),
            f"{v.points:,}",
            f"{v.online_dim}-d",
            f"{v.hnsw_m} / {v.hnsw_ef_construct}",
            v.quantization,
            _mb(disk) if disk is not None else "-",
        )
    console.print(versions)
    parts = Table(
        title=f"serving {st.current}: {st.points:,} products" + (" (estimated from config)" if st.estimated else "")
    )
    for col in ("part", "lives in", "size", "bytes / product"):
        parts.add_column(col, justify="right" if col in ("size", "bytes / product") else "left")
    for c in st.components:
        parts.add_row(c.name, c.resident, _mb(c.bytes), f"{c.bytes / max(1, st.points):,.1f}")
    parts.add_row("[bold]memory[/bold]", "ram", _mb(st.memory_bytes), f"{st.memory_per_product:,.1f}")
    parts.add_row("[bold]disk[/bold]", "all", _mb(st.disk_bytes), f"{st.disk_per_product:,.1f}")
    console.print(parts)
