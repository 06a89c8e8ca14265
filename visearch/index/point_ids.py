"""Which engine point holds which product, in the embedded backend.

A hit names a point; reading each hit's payload to learn its product id costs the engine about
as much as the graph walk itself (``bench/bench_index.py`` shows both). So a version built by the
embedded backend numbers its points 0, 1, 2... and keeps the product ids in point order in
``ids.json`` beside the shard: a hit's product id is then one list read, and a search that wants
no payload reads none. Updates give new products the next numbers and reuse a known product's;
a deleted product's number stays taken, so re-adding it lands on the same point.

Versions written before the table existed name their points by UUID5 of the product id (as the
cluster backend still does); they have no ``ids.json`` and keep working that way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from visearch.errors import DatasetError
from visearch.index.types import point_id

__all__ = ["IDS_FILE", "PointIds"]

IDS_FILE = "ids.json"


class PointIds:
    """Product id <-> point id for one version: a table (``names``), or UUID5 when ``names`` is None."""

    def __init__(self, names: list[str] | None) -> None:
        self.names = names
        self._rows: dict[str, int] | None = None

    @classmethod
    def load(cls, folder: Path) -> PointIds:
        path = Path(folder) / IDS_FILE
        if not path.is_file():
            return cls(None)
        try:
            names = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise DatasetError(f"{path}: the version's product id table is unreadable ({e}); rebuild the index") from e
        if not isinstance(names, list):
            raise DatasetError(f"{path}: the version's product id table is not a list; rebuild the index")
        return cls(names)

    def save(self, folder: Path) -> None:
        """Write the table (durably: the version's commit renames the folder right after)."""
        if self.names is None:
            return
        path = Path(folder) / IDS_FILE
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.names, f, ensure_ascii=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())

    def _index(self) -> dict[str, int]:
        # built on first use only: a process that only searches never needs it
        if self._rows is None:
            assert self.names is not None
            self._rows = {name: i for i, name in enumerate(self.names)}
        return self._rows

    def known(self, product_ids: Sequence[str]) -> dict[str, int | str]:
        """The point of each given product that has one (a table version leaves unknown ones out)."""
        if self.names is None:
            return {p: point_id(p) for p in product_ids}
        rows = self._index()
        return {p: rows[p] for p in product_ids if p in rows}

    def assign(self, product_ids: Sequence[str]) -> list[int | str]:
        """The point for each product: its own if it has one, else the next free number."""
        if self.names is None:
            return [point_id(p) for p in product_ids]
        rows = self._index()
        out: list[int | str] = []
        for p in product_ids:
            row = rows.get(p)
            if row is None:
                row = rows[p] = len(self.names)
                self.names.append(p)
            out.append(row)
        return out
