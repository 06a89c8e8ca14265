"""Simulated shopper sessions: what a shopper was shown for a photo query, and what
they clicked, put in the cart and ordered.

Probabilities follow relevance (the same product, a variant, the same category,
anything else), price against the category's usual price, rating, reviews and the
position bias of a list, so a ranker trained on the log has something real to learn.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from visearch.synth.catalog import Product
from visearch.synth.vocab import CATEGORIES

__all__ = ["simulate_sessions", "EVENT_COLUMNS", "RELEVANCE", "ShopItem", "relevance", "act_chances", "shopper_acts",
           "expected_gain"]

RELEVANCE = {"exact": 3, "variant": 2, "category": 1, "other": 0}
EVENT_COLUMNS = (
    "session_id", "user_id", "split", "query_product_id", "position", "product_id",
    "relevance", "clicked", "added_to_cart", "ordered", "ts",
)
_EPOCH = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed so the log is reproducible


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass(frozen=True)
class ShopItem:
    """What shopper behaviour depends on, from a :class:`Product` or a row of ``products.parquet``."""

    product_id: str
    model_id: str
    category_id: int
    price: float
    rating: float
    reviews_count: int

    @classmethod
    def of(cls, p: Product) -> ShopItem:
        return cls(p.product_id, p.model_id, p.look.category, p.price, p.rating, p.reviews_count)

    @classmethod
    def by_id(cls, catalog: dict[str, list]) -> dict[str, ShopItem]:
        """Every product of a catalog's columns (``products.parquet`` as a dict of lists), by id."""
        return {pid: cls(pid, str(catalog["model_id"][i]), int(catalog["category_id"][i]), float(catalog["price"][i]),
                         float(catalog["rating"][i]), int(catalog["reviews_count"][i]))
                for i, pid in enumerate(catalog["product_id"])}


def relevance(shown: ShopItem, query: ShopItem) -> int:
    """How well ``shown`` answers a query for ``query``: the same product, a variant, the same category, other."""
    if shown.product_id == query.product_id:
        return RELEVANCE["exact"]
    if shown.model_id == query.model_id:
        return RELEVANCE["variant"]
    if shown.category_id == query.category_id:
        return RELEVANCE["category"]
    return RELEVANCE["other"]


def act_chances(rel: int, item: ShopItem, position: int) -> tuple[float, float, float]:
    """The chances that a shopper shown ``item`` at ``position`` (1-based) clicks it, puts it in the cart once
    clicked, and orders it once in the cart: the one model of shopper behaviour. The logged sessions and the
    simulated shoppers that drive the running service (``visearch simulate``) both act by it, and
    :func:`expected_gain` reads the best possible order of a session off it."""
    price_ratio = np.log(item.price / CATEGORIES[item.category_id].base_price)
    z = -3.2 + 1.3 * rel - 0.9 * price_ratio + 0.7 * (item.rating - 4.2) + 0.12 * np.log1p(item.reviews_count) - 0.12 * position
    cart = _sigmoid(-1.0 + 0.6 * (rel == 3) + 0.6 * (item.rating - 4.2) - 0.8 * price_ratio)
    return float(_sigmoid(z)), float(cart), float(_sigmoid(0.3 - 0.5 * price_ratio))


def shopper_acts(rel: int, item: ShopItem, position: int, rng: np.random.Generator) -> tuple[bool, bool, bool]:
    """Whether a shopper shown ``item`` at ``position`` (1-based) clicks, adds it to the cart, orders it."""
    click, cart, order = act_chances(rel, item, position)
    clicked = bool(rng.random() < click)
    added = clicked and bool(rng.random() < cart)
    ordered = added and bool(rng.random() < order)
    return clicked, added, ordered


@functools.lru_cache(maxsize=65_536)
def expected_gain(rel: int, item: ShopItem, positions: int) -> float:
    """The expected DCG gain (2^label - 1, label = clicked + carted + ordered) of showing ``item``, the position
    averaged over 1..``positions``: ordering a session by it is the best any ranker can do on average.
    Cached: a session log shows each product to many queries, at a few relevances."""
    total = 0.0
    for position in range(1, positions + 1):
        click, cart, order = act_chances(rel, item, position)
        total += click * ((1 - cart) * 1 + cart * ((1 - order) * 3 + order * 7))
    return total / positions


def simulate_sessions(products: list[Product], n_sessions: int, per_session: int, rng: np.random.Generator) -> dict[str, list]:
    """Columns of the event log, one row per impression."""
    by_cat: dict[int, list[int]] = defaultdict(list)
    by_model: dict[str, list[int]] = defaultdict(list)
    by_split: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(products):
        by_cat[p.look.category].append(i)
        by_model[p.model_id].append(i)
        by_split[p.split].append(i)
    cols: dict[str, list] = {c: [] for c in EVENT_COLUMNS}
    n_users = max(1, n_sessions // 3)
    for s in range(n_sessions):
        q = int(rng.integers(len(products)))
        query = products[q]
        pool = by_split[query.split]
        shown: list[int] = [q] if rng.random() < 0.85 else []
        shown += [i for i in by_model[query.model_id] if i != q][:2]
        same_cat = [i for i in by_cat[query.look.category] if i not in shown and products[i].split == query.split]
        rng.shuffle(same_cat)
        shown += same_cat[: per_session // 2]
        while len(shown) < min(per_session, len(pool)):
            i = pool[int(rng.integers(len(pool)))]
            if i not in shown:
                shown.append(i)
        shown = shown[:per_session]
        order = rng.permutation(len(shown))
        user = f"u{int(rng.integers(n_users)):06d}"
        t = _EPOCH + s * 37
        for pos, j in enumerate(order, start=1):
            p = products[shown[j]]
            rel = relevance(ShopItem.of(p), ShopItem.of(query))
            clicked, added, ordered = shopper_acts(rel, ShopItem.of(p), pos, rng)
            row = (f"s{s:07d}", user, query.split, query.product_id, pos, p.product_id, rel, clicked, added, ordered, t + pos)
            for c, v in zip(EVENT_COLUMNS, row, strict=True):
                cols[c].append(v)
    return cols
