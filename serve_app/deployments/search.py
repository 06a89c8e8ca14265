"""Search deployment: the index (per online size and name) with enrichment and ranking; follows new index
versions, the ranker's registry alias and the online re-ranker's checkpoint."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray import serve

from serve_app.deployments._common import every, settings_from
from visearch.errors import NotFoundError
from visearch.index import Hit, SearchFilter
from visearch.query import Searched
from visearch.ranking.apply import RankContext
from visearch.ranking.ranker import Ranker, ranker_ref
from visearch.registry import optional_ref
from visearch.registry.watch import ModelWatcher
from visearch.searcher import Searcher
from visearch.tags.crop_tags import CropTagger, Neighbour
from visearch.tags.projection import Tagged

#: one search request: vectors (n, 512), k, online size, filter, products left out, index name, rank contexts
_Request = tuple[np.ndarray, int, int, SearchFilter | None, tuple[str, ...], str | None, list[RankContext] | None]


@serve.deployment(name="Search")
class SearchDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings_from(settings)
        self.searcher = Searcher.from_settings(self.settings, with_ranker=False)  # the watcher below loads it
        cfg = self.settings.serving.search
        self.batched = {"requests": 0, "engine_calls": 0}  # how well batching pays, on /readyz
        self._search.set_max_batch_size(cfg.max_batch_size)
        self._search.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        self.ranker: ModelWatcher[Ranker] | None = None
        self.tagger: ModelWatcher[CropTagger] | None = None
        self._follow_ranker()
        self._follow_tagger()
        self._stop = every(self.settings.serving.reload_interval_s, self._reload, "search-reload")

    def _follow_ranker(self) -> None:
        """Follow the ranker's alias once it exists (a ranker registered after start counts too)."""
        if self.ranker is None and (ref := ranker_ref(self.settings)) is not None:
            self.ranker = ModelWatcher(ref, self.settings, lambda pinned: Ranker.from_ref(pinned.ref, self.settings))
            self.searcher.ranker = self.ranker.current[1]

    def _follow_tagger(self) -> None:
        if self.tagger is None and (ref := optional_ref(self.settings.models.tagger, self.settings)) is not None:
            self.tagger = ModelWatcher(ref, self.settings, lambda pinned: CropTagger.from_ref(pinned.ref, self.settings))

    def _reload(self) -> None:
        self.searcher.refresh()
        if self.tagger is None:
            self._follow_tagger()
        else:
            self.tagger.check()
        if self.ranker is None:
            self._follow_ranker()
        elif self.ranker.check():
            self.searcher.ranker = self.ranker.current[1]
        if self.searcher.online is not None:
            self.searcher.online.refresh()

    async def search(self, vectors: np.ndarray, k: int, online_dim: int, filter: SearchFilter | None,
                     exclude: Sequence[str], index: str | None = None,
                     contexts: list[RankContext] | None = None) -> Searched:
        return await self._search((vectors, k, online_dim, filter, tuple(exclude), index, contexts))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.001)
    async def _search(self, requests: list[_Request]) -> list[Searched]:
        """Requests that ask alike (k, online size, filter, exclusions, index) share one ``search_batch``: one
        engine call for every object of every upload in the batch."""
        self.batched["requests"] += len(requests)
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, (_, k, online_dim, flt, exclude, index, _) in enumerate(requests):
            groups.setdefault((k, online_dim, flt, exclude, index), []).append(i)
        out: list[Searched | None] = [None] * len(requests)
        for (k, online_dim, flt, exclude, index), idx in groups.items():
            vectors = np.concatenate([requests[i][0] for i in idx])
            contexts = [c for i in idx for c in (requests[i][6] or [RankContext()] * len(requests[i][0]))]
            found = await asyncio.to_thread(self.searcher.search, vectors, k, online_dim=online_dim, filter=flt,
                                            exclude=exclude, index=index, contexts=contexts)
            self.batched["engine_calls"] += 1
            start = 0
            for i in idx:
                n = len(requests[i][0])
                out[i] = Searched(found[start:start + n], self.searcher.version)
                start += n
        return [s for s in out if s is not None]

    def lookup(self, articles: Sequence[str]) -> dict[str, Hit]:
        return self.searcher.lookup(articles)

    def vector(self, product_id: str) -> np.ndarray | None:
        return self.searcher.index().vectors([product_id]).get(product_id)

    def products(self, product_ids: Sequence[str]) -> dict[str, dict]:
        return self.searcher.products(product_ids)

    def similar(self, product_id: str, k: int, online_dim: int | None, filter: SearchFilter | None) -> Searched:
        return Searched([self.searcher.similar(product_id, k, online_dim=online_dim, filter=filter)], self.searcher.version)

    def tags(self, vectors: np.ndarray, neighbours: list[list[Neighbour]], embedder: str, k: int) -> list[list[Tagged]]:
        if self.tagger is None:
            raise NotFoundError("no tag model: train one (visearch train tags --data DIR) or import the default bundle")
        tagger = self.tagger.current[1]
        tagger.check_embedder(embedder)
        return tagger.tags(vectors, neighbours, k)

    def info(self) -> dict[str, Any]:
        return {"index": self.searcher.version, "products": self.searcher.index().count(),
                "online_dims": self.searcher.versions(), "search_batching": dict(self.batched),
                **({"ranker": self.ranker.current[0].label} if self.ranker is not None else {}),
                **({"tagger": self.tagger.current[0].label} if self.tagger is not None else {})}

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
