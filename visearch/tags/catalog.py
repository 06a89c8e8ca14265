"""A catalog's tags, end to end: generate, clean, write beside the catalog, read back.

``tags.parquet`` (one row per product and tag) sits beside ``products.parquet``; the index
build joins it into each product's payload (``tags``), so search results carry their tags and
a crop's tags can be voted by its nearest products. ``visearch tags generate`` writes it;
training and evaluation make it in memory (the extractor tags 2,000 cards in about a second).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from visearch.catalog import catalog_path, read_catalog
from visearch.config import Settings
from visearch.errors import DatasetError
from visearch.files import write_atomic
from visearch.tags.clean import CleaningReport, clean_tags
from visearch.tags.generate import ProductCard, make_generator
from visearch.tags.vocabulary import Tag, TagVocabulary

__all__ = ["CatalogTags", "tag_catalog", "write_tags", "read_tags", "TAGS_FILE", "TAGS_SCHEMA"]

TAGS_FILE = "tags.parquet"
#: one row per (product, tag)
TAGS_SCHEMA = pa.schema([("product_id", pa.string()), ("tag", pa.string()), ("facet", pa.string())])


@dataclass
class CatalogTags:
    """Cleaned tags of every product of a catalog, with what made them."""

    rows: list[dict[str, Any]]
    product_ids: list[str]
    tags: list[list[Tag]]
    vocabulary: TagVocabulary
    report: CleaningReport
    generator: Any

    @property
    def by_product(self) -> dict[str, list[Tag]]:
        return dict(zip(self.product_ids, self.tags, strict=True))

    def kept(self) -> list[Tag]:
        """Every tag some product has, facet by facet then alphabetically: the tag model's vocabulary."""
        return sorted({t for ts in self.tags for t in ts}, key=lambda t: (t.facet, t.text))


def tag_catalog(data: str | Path, settings: Settings, *, generator: str | None = None,
                vocabulary: str | Path | None = None, attributes: bool = True, progress: bool = False) -> CatalogTags:
    """Generate raw tags for every product of ``data`` and clean them to one vocabulary.

    Args:
        generator: extractor, llm or vlm (default: ``settings.tags.generator``).
        vocabulary: a saved vocabulary to clean against (default: learn one from this catalog).
        attributes: give the generator the attribute columns too (off: titles, descriptions, photos only).
    """
    source = catalog_path(data)
    rows = read_catalog(data).to_pylist()
    if not rows:
        raise DatasetError(f"{source}: the catalog is empty; nothing to tag")
    cards = [ProductCard.from_row(r, source.parent, attributes=attributes) for r in rows]
    vocab = TagVocabulary.load(vocabulary) if vocabulary else TagVocabulary.from_catalog(rows)
    gen = make_generator(settings, generator=generator, progress=progress)
    tags, report = clean_tags(gen.generate(cards), vocab, settings.tags)
    return CatalogTags(rows, [c.product_id for c in cards], tags, vocab, report, gen)


def write_tags(path: Path, product_ids: list[str], tags: list[list[Tag]]) -> int:
    """Write the cleaned tags as Parquet (product_id, tag, facet), atomically; returns the rows written."""
    rows = [(pid, t.text, t.facet) for pid, product_tags in zip(product_ids, tags, strict=True) for t in product_tags]
    table = pa.table({"product_id": [r[0] for r in rows], "tag": [r[1] for r in rows], "facet": [r[2] for r in rows]},
                     schema=TAGS_SCHEMA)
    write_atomic(path, lambda tmp: pq.write_table(table, tmp))
    return len(rows)


def read_tags(path: Path) -> dict[str, list[Tag]]:
    """The tags :func:`write_tags` wrote, by product.

    Raises:
        DatasetError: not a readable tags file.
    """
    try:
        table = pq.read_table(path).to_pydict()
    except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds for a damaged file
        raise DatasetError(f"{path}: cannot read the tags ({type(e).__name__}: {e})") from None
    if not {"product_id", "tag", "facet"} <= set(table):
        raise DatasetError(f"{path}: a tags file needs columns product_id, tag, facet (make one: visearch tags generate)")
    out: dict[str, list[Tag]] = defaultdict(list)
    for pid, text, facet in zip(table["product_id"], table["tag"], table["facet"], strict=True):
        out[pid].append(Tag(text, facet))
    return dict(out)
