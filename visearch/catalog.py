"""The product catalog: one Parquet file of product cards, and the card a search shows.

Every part that reads or writes the catalog goes through this module: the generator
writes ``products.parquet`` with :data:`PRODUCT_SCHEMA`, the checker validates against
it, training, vectorisation, evaluation and the index read it with :func:`read_catalog`.

A catalog is a data set folder (its ``products.parquet``) or a direct ``.parquet``
path; :func:`catalog_path` turns either into the file. Its ``image_uris`` are paths
relative to the data set folder; :func:`image_path` resolves one and refuses any that
would leave the folder, since the HTTP API serves product images by it.

>>> table = read_catalog("data/wb", columns=["product_id", "title"])  # doctest: +SKIP
>>> cards = [Product.from_row(r) for r in read_catalog("data/wb").to_pylist()]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from visearch.errors import DatasetError, InvalidArgumentError

__all__ = [
    "PRODUCTS_FILE",
    "PRODUCT_SCHEMA",
    "CARD_FIELDS",
    "Product",
    "catalog_path",
    "image_key",
    "read_catalog",
    "article_index",
    "image_path",
]

PRODUCTS_FILE = "products.parquet"

#: the columns of a WB-Synth ``products.parquet`` (other catalogs need only ``product_id``)
PRODUCT_SCHEMA = pa.schema([
    ("product_id", pa.string()), ("model_id", pa.string()), ("article", pa.string()), ("split", pa.string()),
    ("title", pa.string()), ("description", pa.string()), ("lang", pa.string()), ("brand", pa.string()),
    ("category", pa.string()), ("category_id", pa.int32()), ("colour", pa.string()), ("pattern", pa.string()),
    ("material", pa.string()), ("has_label", pa.bool_()), ("price", pa.float64()), ("rating", pa.float64()),
    ("reviews_count", pa.int64()), ("image_uris", pa.list_(pa.string())), ("look", pa.string()),
])


@dataclass(frozen=True)
class Product:
    """The card a search result shows: what a shopper sees of one product.

    Only ``product_id`` is required; a catalog that lacks a field leaves it ``None``
    (``image_uris`` empty). ``image_uris`` are relative to the data set folder.
    """

    product_id: str
    article: str | None = None
    title: str | None = None
    description: str | None = None
    brand: str | None = None
    category: str | None = None
    price: float | None = None
    rating: float | None = None
    reviews_count: int | None = None
    image_uris: tuple[str, ...] = ()
    colour: str | None = None
    pattern: str | None = None
    material: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Product:
        """The card of one catalog row or index payload; other keys are ignored.

        An integer article becomes its digits, as the index stores it.

        Raises:
            DatasetError: no usable ``product_id``, or a field of the wrong kind.
        """
        pid = row.get("product_id")
        if not isinstance(pid, str) or not pid:
            raise DatasetError(f"catalog row has no product_id (got {pid!r}); every card needs one")
        try:
            article = row.get("article")
            if isinstance(article, int) and not isinstance(article, bool):
                article = str(article)
            uris = row.get("image_uris")
            return cls(
                product_id=pid,
                article=article,
                title=row.get("title"),
                description=row.get("description"),
                brand=row.get("brand"),
                category=row.get("category"),
                price=_opt(float, row.get("price")),
                rating=_opt(float, row.get("rating")),
                reviews_count=_opt(int, row.get("reviews_count")),
                image_uris=tuple(uris) if uris is not None else (),
                colour=row.get("colour"),
                pattern=row.get("pattern"),
                material=row.get("material"),
            )
        except (TypeError, ValueError) as e:
            raise DatasetError(f"catalog row of product {pid!r}: {e}") from None

    def to_payload(self) -> dict[str, Any]:
        """The card as a JSON-ready dict, every field of :data:`CARD_FIELDS` present."""
        out = {name: getattr(self, name) for name in CARD_FIELDS}
        out["image_uris"] = list(self.image_uris)
        return out


#: the fields of a product card, in display order
CARD_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Product))


def _opt(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)


def catalog_path(data: str | Path) -> Path:
    """The catalog file of ``data``: a data set folder's ``products.parquet``, or ``data`` itself if it is a file.

    A path that does not exist is taken as a folder unless it ends in ``.parquet``.
    """
    path = Path(data)
    if path.is_dir() or (not path.exists() and path.suffix != ".parquet"):
        return path / PRODUCTS_FILE
    return path


def read_catalog(
    data: str | Path, columns: Sequence[str] | None = None, *, required: Iterable[str] = ()
) -> pa.Table:
    """The catalog of ``data`` (folder or file) as a table, ``columns`` only when given.

    ``product_id``, every name in ``columns`` and every name in ``required`` must be
    columns of the file.

    Raises:
        DatasetError: the file is missing, not readable Parquet, or lacks a needed column.
    """
    path = catalog_path(data)
    if not path.is_file():
        folder = path.parent
        raise DatasetError(
            f"{path} does not exist; is {folder} a WB-Synth data set? Make one with: visearch synth --out {folder}"
        )
    try:
        with pq.ParquetFile(path) as pf:
            names = pf.schema_arrow.names
            need = list(dict.fromkeys(["product_id", *(columns or ()), *required]))
            missing = [c for c in need if c not in names]
            if missing:
                what = (f"{'an' if missing[0][0] in 'aeiou' else 'a'} {missing[0]} column" if len(missing) == 1
                        else f"columns {', '.join(missing)}")
                raise DatasetError(f"{path}: the catalog needs {what}; it has {names}")
            return pf.read(columns=list(columns) if columns is not None else None)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from e


def article_index(data: str | Path) -> dict[str, str]:
    """Article number -> product id over the catalog of ``data``; rows without an article are skipped.

    Raises:
        DatasetError: as :func:`read_catalog`, or one article naming two products.
    """
    table = read_catalog(data, columns=["product_id", "article"])
    out: dict[str, str] = {}
    for pid, article in zip(table.column("product_id").to_pylist(), table.column("article").to_pylist(), strict=True):
        if article is None:
            continue
        article = str(article)
        if out.setdefault(article, pid) != pid:
            raise DatasetError(
                f"{catalog_path(data)}: article {article} names two products ({out[article]!r} and {pid!r}); "
                "an article must name one product"
            )
    return out


def image_key(uri: str) -> PurePosixPath:
    """An ``image_uris`` entry checked as a relative path inside its data set (a folder or an object store prefix).

    Raises:
        InvalidArgumentError: ``uri`` is empty, absolute, holds ``..`` or a backslash.
    """
    if not isinstance(uri, str) or not uri.strip() or "\\" in uri or "\x00" in uri:
        raise InvalidArgumentError(f"image uri {uri!r} is not a relative path inside the data set folder")
    rel = PurePosixPath(uri)
    if rel.is_absolute() or PureWindowsPath(uri).anchor or ".." in rel.parts or not rel.parts:
        raise InvalidArgumentError(f"image uri {uri!r} leaves the data set folder; uris are relative paths inside it")
    return rel


def image_path(data_dir: str | Path, uri: str) -> Path:
    """The file of an ``image_uris`` entry: ``uri`` resolved inside the data set folder ``data_dir``.

    Raises:
        InvalidArgumentError: ``uri`` is empty, absolute, holds ``..`` or a backslash,
            or leads (through a link) outside ``data_dir``.
    """
    rel = image_key(uri)
    root = Path(data_dir).resolve()
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or path == root:
        raise InvalidArgumentError(f"image uri {uri!r} leads outside the data set folder {root}")
    return path
