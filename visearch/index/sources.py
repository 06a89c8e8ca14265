"""Reading what ``visearch index build`` indexes: a vectors file and, optionally, the catalog.

Vectors file, one row per product:

* Parquet with columns ``product_id`` (string) and ``vector`` (a list of
  ``full_dim`` floats: the whole MRL vector; the index takes its first
  ``online_dim`` dims itself), read in batches so 1M x 512 never sits in memory
  as Python objects;
* or ``.npz`` with arrays ``product_id`` (strings, ``np.array(ids, dtype=str)``)
  and ``vector`` (``(n, full_dim)`` floats).

Catalog (optional): the Parquet file of product cards, or a data set folder holding
one, read by :func:`visearch.catalog.read_catalog` (``products.parquet`` of
WB-Synth: ``product_id, article, title, description, brand, category, price,
rating, reviews_count, ...``). Each indexed product's row becomes its payload,
joined on ``product_id``; every product in the vectors file must have a row. A ``tags.parquet``
beside the catalog (``visearch tags generate``) adds each product's tags as ``tags``.
``category`` must be a string column, ``article`` a string or integer column
(integers become their digits), ``price`` numeric.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index.types import ProductBatch

__all__ = ["ProductSource", "read_products", "Catalog"]


class Catalog:
    """Product cards keyed by product id, turned into payloads batch by batch."""

    def __init__(self, path: Path) -> None:
        from visearch.catalog import catalog_path, read_catalog  # pyarrow only when there is a catalog

        if not path.exists():
            raise NotFoundError(f"catalog {path} does not exist")
        path = catalog_path(path)  # a data set folder stands for its products.parquet
        table = read_catalog(path)  # readable Parquet with a product_id column, or DatasetError
        _check_column(path, table.schema, "category", ("string",))
        _check_column(path, table.schema, "article", ("string", "integer"))
        _check_column(path, table.schema, "price", ("integer", "floating"))
        ids = table.column("product_id").to_pylist()
        self.path = path
        self.table = table
        self.rows: dict[str, int] = {}
        for i, pid in enumerate(ids):
            if pid in self.rows:
                raise DatasetError(f"{path}: product_id {pid!r} appears twice (rows {self.rows[pid]} and {i})")
            self.rows[pid] = i
        self.tags: dict[str, list[str]] | None = None
        tags_file = path.parent / "tags.parquet"
        if tags_file.is_file() and "tags" not in table.schema.names:
            from visearch.tags.catalog import read_tags

            self.tags = {pid: [t.text for t in ts] for pid, ts in read_tags(tags_file).items()}

    def __len__(self) -> int:
        return len(self.rows)

    def payloads(self, product_ids: list[str]) -> list[dict[str, Any]]:
        missing = [p for p in product_ids if p not in self.rows]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise DatasetError(
                f"{self.path}: no catalog row for {', '.join(map(repr, missing[:5]))}{more}; "
                "add them to the catalog or drop them from the vectors file"
            )
        rows = self.table.take([self.rows[p] for p in product_ids]).to_pylist()
        if self.tags is not None:
            for pid, row in zip(product_ids, rows, strict=True):
                row["tags"] = self.tags.get(pid, [])
        return rows


def _check_column(path: Path, schema: Any, name: str, kinds: tuple[str, ...]) -> None:
    import pyarrow.types as pt

    if name not in schema.names:
        return
    t = schema.field(name).type
    ok = {
        "string": pt.is_string(t) or pt.is_large_string(t),
        "integer": pt.is_integer(t),
        "floating": pt.is_floating(t),
    }
    if not any(ok[k] for k in kinds):
        raise DatasetError(
            f"{path}: column {name!r} has type {t}; the index needs {' or '.join(kinds)} (it has a payload index)"
        )


class ProductSource:
    """Batches of products from a vectors file (+ catalog); ``len()`` is the row count."""

    def __init__(self, vectors: Path, catalog: Path | None, *, full_dim: int, batch_size: int) -> None:
        if batch_size < 1:
            raise InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
        if not vectors.exists():
            raise NotFoundError(f"vectors file {vectors} does not exist")
        if vectors.is_dir():  # Parquet shards, as the Ray Data job writes them
            self.files = sorted(vectors.glob("*.parquet"))
            if not self.files:
                raise DatasetError(f"{vectors}: a folder without .parquet shards (product_id, vector)")
        elif vectors.suffix not in (".parquet", ".npz"):
            raise InvalidArgumentError(f"{vectors}: vectors must be a .parquet or .npz file (product_id, vector), "
                                       "or a folder of .parquet shards")
        else:
            self.files = [vectors]
        self.path = vectors
        self.full_dim = full_dim
        self.batch_size = batch_size
        self.catalog = Catalog(catalog) if catalog is not None else None
        self._arrays: tuple[np.ndarray, np.ndarray] | None = None
        self.rows = self._count()

    def __len__(self) -> int:
        return self.rows

    def _count(self) -> int:
        if self.path.suffix == ".npz":
            return len(self._npz()[0])
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = 0
        for path in self.files:
            try:
                pf = pq.ParquetFile(path)
            except (pa.ArrowException, OSError) as e:
                raise DatasetError(f"{path}: not a readable Parquet file ({e})") from e
            names = pf.schema_arrow.names
            if "product_id" not in names or "vector" not in names:
                raise DatasetError(f"{path}: needs columns product_id and vector; has {names}")
            rows += int(pf.metadata.num_rows)
        return rows

    def _npz(self) -> tuple[np.ndarray, np.ndarray]:
        """Both arrays, read once: an .npz member cannot be streamed."""
        if self._arrays is not None:
            return self._arrays
        try:
            with np.load(self.path, allow_pickle=False) as z:
                if "product_id" not in z.files or "vector" not in z.files:
                    raise DatasetError(f"{self.path}: needs arrays product_id and vector; has {z.files}")
                ids, vecs = z["product_id"], z["vector"]
        except ValueError as e:
            raise DatasetError(
                f"{self.path}: cannot read without pickle ({e}); save ids as np.array(ids, dtype=str)"
            ) from e
        except OSError as e:
            raise DatasetError(f"{self.path}: not a readable .npz file ({e})") from e
        if ids.ndim != 1 or ids.dtype.kind != "U":
            raise DatasetError(f"{self.path}: product_id must be a 1-D string array, got {ids.dtype} {ids.shape}")
        if vecs.ndim != 2 or vecs.shape[1] != self.full_dim:
            raise DatasetError(f"{self.path}: vector must be (n, {self.full_dim}), got shape {vecs.shape}")
        if len(vecs) != len(ids):
            raise DatasetError(f"{self.path}: {len(ids)} product ids but {len(vecs)} vectors")
        self._arrays = (ids, vecs)
        return ids, vecs

    def __iter__(self) -> Iterator[ProductBatch]:
        raw = self._iter_npz() if self.path.suffix == ".npz" else self._iter_parquet()
        for ids, vecs in raw:
            payloads = self.catalog.payloads(ids) if self.catalog is not None else None
            yield ProductBatch(ids, vecs, payloads)

    def _iter_npz(self) -> Iterator[tuple[list[str], np.ndarray]]:
        ids, vecs = self._npz()
        for i in range(0, len(ids), self.batch_size):
            yield ids[i : i + self.batch_size].tolist(), vecs[i : i + self.batch_size]

    def _iter_parquet(self) -> Iterator[tuple[list[str], np.ndarray]]:
        for path in self.files:
            yield from self._iter_file(path)

    def _iter_file(self, path: Path) -> Iterator[tuple[list[str], np.ndarray]]:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq
        import pyarrow.types as pt

        pf = pq.ParquetFile(path)
        row = 0
        try:
            for batch in pf.iter_batches(batch_size=self.batch_size, columns=["product_id", "vector"]):
                ids = batch.column("product_id").to_pylist()
                col = batch.column("vector")
                t = col.type
                if not (pt.is_list(t) or pt.is_large_list(t) or pt.is_fixed_size_list(t)) or not (
                    pt.is_floating(t.value_type) or pt.is_integer(t.value_type)
                ):
                    raise DatasetError(f"{path}: column vector must be a list of floats, got {t}")
                if col.null_count:
                    bad = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
                    raise DatasetError(f"{path}: row {row + bad} (product {ids[bad]!r}) has no vector")
                lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
                wrong = np.flatnonzero(lengths != self.full_dim)
                if len(wrong):
                    b = int(wrong[0])
                    raise DatasetError(
                        f"{path}: row {row + b} (product {ids[b]!r}) has a vector of {lengths[b]} floats; "
                        f"the index takes the whole {self.full_dim}-d MRL vector"
                    )
                values = col.flatten().to_numpy(zero_copy_only=False)
                yield ids, np.asarray(values, dtype=np.float32).reshape(len(ids), self.full_dim)
                row += len(ids)
        except pa.ArrowException as e:
            raise DatasetError(f"{path}: unreadable at row {row} ({e})") from e


def read_products(
    vectors: str | Path, catalog: str | Path | None = None, *, full_dim: int = 512, batch_size: int = 4096
) -> ProductSource:
    """Open a vectors file (and catalog) for :meth:`~visearch.index.base.VectorIndex.build`.

    Structure problems (missing columns, wrong types, duplicate catalog ids) are
    reported here; row problems (wrong vector size, nulls) while reading.

    Raises:
        NotFoundError: a file does not exist.
        InvalidArgumentError: an unsupported file type.
        DatasetError: the files do not have the layout described in this module.
    """
    return ProductSource(
        Path(vectors), Path(catalog) if catalog is not None else None, full_dim=full_dim, batch_size=batch_size
    )
