"""The search stage: index + enrichment, vectors in, product lists out.

It owns one open index per online vector size (a variant searching with the 256-d
slice needs an index whose stage 1 is built on 256 dims), looks articles up, and turns
payloads into what a result shows. Ranking beyond similarity plugs in here.

>>> searcher = Searcher.from_settings(settings)                       # doctest: +SKIP
>>> searcher.search(vectors, k=10, online_dim=128)[0][0].product_id   # doctest: +SKIP
'p000123'
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visearch.config import IndexSettings, Settings
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.index import Hit, SearchFilter, VectorIndex, open_index
from visearch.ranking.apply import RankContext, rerank
from visearch.ranking.online import OnlineReranker
from visearch.ranking.ranker import Ranker, ranker_ref

__all__ = ["Searcher", "index_settings_for"]


def index_settings_for(settings: IndexSettings, online_dim: int, name: str | None = None) -> IndexSettings:
    """Where the index for ``online_dim`` lives: the configured one, or ``<path>-d<dim>`` beside it; a named
    one (a variant searching another embedder's vectors) at ``<path>-<name>`` (``-<name>-d<dim>``).

    Build them with ``visearch index build --online-dim 256 [--name NAME] --vectors ...``.
    """
    if online_dim == settings.online_dim and not name:
        return settings
    suffix = (f"-{name}" if name else "") + (f"-d{online_dim}" if online_dim != settings.online_dim else "")
    update: dict[str, object] = {"online_dim": online_dim}
    if settings.backend == "edge":
        assert settings.path is not None
        update["path"] = Path(f"{settings.path}{suffix}")
    else:
        update["collection"] = f"{settings.collection}{suffix}"
    return settings.model_copy(update=update)


@dataclass
class Searcher:
    """Indexes by online size; list-in, list-out search; article lookup; product cards."""

    settings: IndexSettings
    ranker: Ranker | None = None  # reorders candidates when set (the search stage follows its registry alias)
    online: OnlineReranker | None = None
    candidates: int = 50  # similarity candidates the ranker reorders

    def __post_init__(self) -> None:
        self._indexes: dict[tuple[int, str | None], VectorIndex] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, *, with_ranker: bool = True) -> Searcher:
        """The configured index, the ranker when one is registered (unless the caller follows it itself), and
        the online re-ranker's checkpoint."""
        ref = ranker_ref(settings) if with_ranker else None
        online = OnlineReranker(settings.ranking) if settings.ranking.online_weight > 0 else None
        searcher = cls(settings.index, Ranker.from_ref(ref, settings) if ref else None, online, settings.ranking.candidates)
        searcher.index(settings.index.online_dim).count()  # fail now, not on the first query
        return searcher

    def index(self, online_dim: int | None = None, name: str | None = None) -> VectorIndex:
        dim = online_dim or self.settings.online_dim
        with self._lock:
            if (dim, name) not in self._indexes:
                self._indexes[(dim, name)] = open_index(index_settings_for(self.settings, dim, name))
            return self._indexes[(dim, name)]

    @property
    def version(self) -> str:
        info = self.index().current_version()
        return info.version if info else "none"

    def versions(self) -> dict[str, str]:
        """The serving version of each opened index, by online size (and name: ``"256"``, ``"128-quick"``)."""
        with self._lock:
            opened = dict(self._indexes)
        return {f"{dim}-{name}" if name else str(dim): (v.version if (v := idx.current_version()) else "none")
                for (dim, name), idx in opened.items()}

    def refresh(self) -> bool:
        """Pick up index versions built or rolled back since; True when any switched."""
        with self._lock:
            opened = list(self._indexes.values())
        return any([idx.refresh() for idx in opened])

    def search(self, vectors: np.ndarray, k: int, *, online_dim: int | None = None,
               filter: SearchFilter | None = None, exclude: Sequence[str] = (), index: str | None = None,
               contexts: Sequence[RankContext] | None = None) -> list[list[Hit]]:
        """Top ``k`` distinct products for each full MRL vector, best first, ``exclude`` left out; with a ranker,
        the best ``candidates`` by similarity in the ranker's order (``contexts``: what each query knows)."""
        if vectors.ndim != 2 or not len(vectors):
            raise InvalidArgumentError(f"search takes a (n, dim) matrix of vectors, got shape {vectors.shape}")
        drop = set(exclude)
        want = max(k, self.candidates) if self.ranker is not None else k
        found = self.index(online_dim, index).search_batch(vectors, want + len(drop), mode="two_stage", filter=filter)
        out = []
        for hits in found:
            seen: set[str] = set()
            unique = []
            for h in hits:  # one point per product today; kept unique whatever the index holds
                if h.product_id in seen or h.product_id in drop:
                    continue
                seen.add(h.product_id)
                unique.append(h)
            out.append(unique)
        if self.ranker is not None:
            out = self._rank(vectors, out, online_dim or self.settings.online_dim, index, contexts)
        return [hits[:k] for hits in out]

    def _rank(self, vectors: np.ndarray, found: list[list[Hit]], online_dim: int, index: str | None,
              contexts: Sequence[RankContext] | None) -> list[list[Hit]]:
        assert self.ranker is not None
        stored = self.index(online_dim, index).vectors(list({h.product_id for hits in found for h in hits}))
        ctx = list(contexts) if contexts is not None else [RankContext()] * len(found)
        return [rerank(hits, q, stored, online_dim, self.ranker, c, self.online)
                for hits, q, c in zip(found, vectors, ctx, strict=True)]

    def lookup(self, articles: Sequence[str]) -> dict[str, Hit]:
        """The product each known article names (unknown articles are left out)."""
        out = {}
        index = self.index()
        for article in dict.fromkeys(articles):
            hits = index.lookup_article(article, limit=1)
            if hits:
                out[article] = hits[0]
        return out

    def products(self, product_ids: Sequence[str]) -> dict[str, dict]:
        return self.index().get(product_ids)

    def similar(self, product_id: str, k: int, *, online_dim: int | None = None,
                filter: SearchFilter | None = None) -> list[Hit]:
        """More like this: the product's own stored vector searched, the product left out."""
        vectors = self.index(online_dim).vectors([product_id])
        if product_id not in vectors:
            raise NotFoundError(f"no product {product_id!r} in the index")
        return self.search(vectors[product_id][None, :], k, online_dim=online_dim, filter=filter, exclude=[product_id])[0]

    def close(self) -> None:
        with self._lock:
            for idx in self._indexes.values():
                idx.close()
            self._indexes.clear()
