"""One call per lifecycle step, for the CLI and batch jobs: open, act, close.

>>> from visearch.config import Settings
>>> build_index(Settings(data_dir="/tmp/vs"), "vectors.parquet", "products.parquet")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from visearch.config import Settings
from visearch.index import open_index
from visearch.index.changes import load_changeset
from visearch.index.sources import read_products
from visearch.index.types import BuildReport, IndexStats, ProgressFn, SwitchReport, UpdateReport

__all__ = ["build_index", "update_index", "rollback_index", "index_stats"]


def build_index(
    settings: Settings, vectors: str | Path, catalog: str | Path | None = None, *, progress: ProgressFn | None = None
) -> BuildReport:
    """Build a new version from a vectors file (+ catalog) and switch to it (see :mod:`visearch.index.sources`)."""
    source = read_products(
        vectors, catalog, full_dim=settings.index.full_dim, batch_size=max(4096, settings.index.batch_size)
    )
    with open_index(settings) as index:
        return index.build(source, total=len(source), progress=progress)


def update_index(settings: Settings, changes: str | Path, *, progress: ProgressFn | None = None) -> UpdateReport:
    """Apply a change set file (see :mod:`visearch.index.changes`) as a new version."""
    changeset = load_changeset(changes, full_dim=settings.index.full_dim)
    with open_index(settings) as index:
        return index.update(changeset, progress=progress)


def rollback_index(settings: Settings, to: str | None = None) -> SwitchReport:
    """Serve the previous version again, or ``to``."""
    with open_index(settings) as index:
        return index.rollback(to)


def index_stats(settings: Settings) -> IndexStats:
    """Versions, counts, memory and disk of the index the settings point at."""
    with open_index(settings) as index:
        return index.stats()
