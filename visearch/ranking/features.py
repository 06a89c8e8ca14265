"""Enrichment: what each search candidate brings besides its similarity, as one row of numbers.

The same function serves training (logged sessions) and search (live candidates), so the ranker
never sees a feature computed two ways. Prices are compared within their category (a cheap sofa
is dearer than an expensive mug), with the medians measured on the catalog the ranker was
trained on and kept with it (:class:`CatalogStats`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from visearch.index.validation import normalise_rows

__all__ = ["FEATURES", "Candidate", "CatalogStats", "candidate_features", "online_similarity"]

FEATURES: tuple[str, ...] = (
    "similarity",          # cosine of the full (512-d) vectors: search's final score
    "similarity_online",   # cosine of the online slice (128 or 256 dims): stage 1's score
    "similarity_gap",      # how far below the best candidate of the same query
    "rank",                # position in similarity order (0 = most similar)
    "log_price_ratio",     # log(price / the category's median price)
    "rating",
    "log_reviews",         # log1p(reviews count)
    "category_agrees",     # the candidate's category is the one detected for the object (-1: none detected)
    "article_match",       # the candidate's article was read off the photo
    "tag_overlap",         # share of the object's tags the candidate carries (0 until tags exist)
    "brand_agrees_top",    # the candidate's brand is the most similar candidate's (-1: unknown): a variant of it
    "material_agrees_top",  # the same for the material
)


@dataclass(frozen=True)
class Candidate:
    """What enrichment needs of a product (from the index payload or the catalog)."""

    product_id: str
    category: str | None
    price: float | None
    rating: float | None
    reviews_count: int | None
    tags: frozenset[str] = frozenset()
    brand: str | None = None
    material: str | None = None


@dataclass
class CatalogStats:
    """Per-category median prices (and the catalog-wide one for unknown categories)."""

    median_price: dict[str, float] = field(default_factory=dict)
    overall_median: float = 1.0

    @classmethod
    def of(cls, categories: Sequence[str], prices: Sequence[float]) -> CatalogStats:
        by_cat: dict[str, list[float]] = defaultdict(list)
        for c, p in zip(categories, prices, strict=True):
            if p and p > 0:
                by_cat[str(c)].append(float(p))
        all_prices = [p for ps in by_cat.values() for p in ps]
        return cls({c: float(np.median(ps)) for c, ps in by_cat.items()}, float(np.median(all_prices)) if all_prices else 1.0)

    def to_dict(self) -> dict[str, object]:
        return {"median_price": self.median_price, "overall_median": self.overall_median}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> CatalogStats:
        return cls({str(k): float(v) for k, v in dict(d["median_price"]).items()}, float(d["overall_median"]))  # type: ignore[call-overload,arg-type]


def online_similarity(query: np.ndarray, candidates: np.ndarray, online_dim: int) -> np.ndarray:
    """Cosine of the query's and each candidate's first ``online_dim`` values, each slice re-normalised:
    the similarity the index's first (online) stage ranked them by."""
    q = normalise_rows(np.ascontiguousarray(np.asarray(query, np.float32)[None, :online_dim]), what="query")
    c = normalise_rows(np.ascontiguousarray(np.asarray(candidates, np.float32)[:, :online_dim]), what="candidates")
    return c @ q[0]


def candidate_features(similarity: np.ndarray, similarity_online: np.ndarray, candidates: Sequence[Candidate],
                       stats: CatalogStats, category: str | None = None, articles: frozenset[str] = frozenset(),
                       tags: frozenset[str] = frozenset()) -> np.ndarray:
    """(n, len(FEATURES)) float32 rows for one query's candidates, in the order given."""
    n = len(candidates)
    out = np.zeros((n, len(FEATURES)), np.float32)
    if n == 0:
        return out
    sim = np.asarray(similarity, np.float32)
    order = np.argsort(-sim, kind="stable")
    rank = np.empty(n, np.float32)
    rank[order] = np.arange(n, dtype=np.float32)
    out[:, 0] = sim
    out[:, 1] = np.asarray(similarity_online, np.float32)
    out[:, 2] = float(sim.max()) - sim
    out[:, 3] = rank
    for i, c in enumerate(candidates):
        median = stats.median_price.get(c.category or "", stats.overall_median)
        out[i, 4] = math.log(c.price / median) if c.price and c.price > 0 and median > 0 else 0.0
        out[i, 5] = c.rating if c.rating is not None else 0.0
        out[i, 6] = math.log1p(c.reviews_count or 0)
        out[i, 7] = -1.0 if category is None else float(c.category == category)
        out[i, 8] = float(c.product_id in articles)
        out[i, 9] = len(tags & c.tags) / len(tags) if tags else 0.0
    top = candidates[int(order[0])]  # most likely the product itself: who shares its brand is likely its variant
    for col, facet in ((10, "brand"), (11, "material")):
        mine = getattr(top, facet)
        for i, c in enumerate(candidates):
            theirs = getattr(c, facet)
            out[i, col] = -1.0 if mine is None or theirs is None else float(theirs == mine)
    return out
