"""The vector index contract: what the pipeline, the CLI and the eval need from an index, whatever
its backend, stated once as :class:`VectorIndex`; backends fill in the storage hooks.

A product is one point with two named vectors:

* ``online``: the first ``online_dim`` (128 or 256) dims of the 512-d MRL vector,
  re-normalised, stored as fp16 and indexed by HNSW (optionally int8-quantized);
* ``full``: the whole 512-d vector, fp16, kept out of the HNSW graph (``m=0``) and
  read only to rescore the candidates stage 1 found;

and a payload with the product's card (``product_id``, ``article``, ``category``,
``price``, ``rating``...), with payload indexes on category, price and article.

The read side lives here (a search checks its options and vectors once per batch, then
hands the backend one :class:`~visearch.index.types.SearchPlan`); the write side (builds,
updates, rollbacks as atomic version switches) in :mod:`visearch.index.writing`; the types
both speak in :mod:`visearch.index.types`.

>>> from visearch.config import Settings
>>> from visearch.index import open_index
>>> index = open_index(Settings(data_dir="/tmp/vs"))  # doctest: +SKIP
>>> index.search(query_512d, k=10, filter=SearchFilter.of(category="dress"))  # doctest: +SKIP
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from visearch.config import IndexSettings
from visearch.errors import InvalidArgumentError
from visearch.index.types import (
    MAX_K,
    Hit,
    IndexStats,
    ProductBatch,
    SearchFilter,
    SearchMode,
    SearchPlan,
    VersionInfo,
)
from visearch.index.validation import check_product_id, query_vector, query_vectors
from visearch.index.writing import S, VersionWrites

__all__ = ["VectorIndex"]


class VectorIndex(VersionWrites[S]):
    """Search, look up and write versions of a product index (see the module doc)."""

    backend: str = ""

    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings

    # ------------------------------------------------------------------ reading
    def search(
        self,
        query: Any,
        k: int = 10,
        *,
        mode: SearchMode = "two_stage",
        filter: SearchFilter | None = None,
        ef: int | None = None,
        rescore_limit: int | None = None,
        with_payload: bool = True,
    ) -> list[Hit]:
        """Nearest products to one query vector, best first.

        Args:
            query: the full MRL vector (``full_dim`` floats); ``mode="hnsw"`` also takes
                the online slice alone (``online_dim`` floats). Normalised here.
            k: results wanted (1..1000).
            mode: ``"hnsw"`` (stage 1 only), ``"two_stage"`` (HNSW candidates rescored
                with the 512-d vector in the same request) or ``"exact"`` (brute force
                over the 512-d vectors, for checks).
            filter: categories, price range and attributes.
            ef: HNSW search breadth (default ``settings.ef``).
            rescore_limit: stage-1 candidates for the rescore (default ``settings.rescore_limit``).
            with_payload: return the whole payload; otherwise only ``product_id``.

        Raises:
            InvalidArgumentError: a wrong vector size, NaN, zero vector or bad option.
            NotFoundError: no version has been built yet.
        """
        info = self._serving()
        plan = SearchPlan.of(self.settings, k, mode, filter, ef, rescore_limit, with_payload)
        full, online = query_vector(query, info.full_dim, info.online_dim, online_alone=mode == "hnsw")
        return self._query_one(full, online, plan)

    def search_batch(
        self,
        queries: Any,
        k: int = 10,
        *,
        mode: SearchMode = "two_stage",
        filter: SearchFilter | None = None,
        ef: int | None = None,
        rescore_limit: int | None = None,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for a ``(n, dim)`` matrix of queries: checked once, one engine call."""
        info = self._serving()
        plan = SearchPlan.of(self.settings, k, mode, filter, ef, rescore_limit, with_payload)
        full, online = query_vectors(queries, info.full_dim, info.online_dim, online_alone=mode == "hnsw")
        return self._query(full, online, plan)

    def lookup_article(self, article: str, *, limit: int = 10, filter: SearchFilter | None = None) -> list[Hit]:
        """Products whose ``article`` equals ``article`` exactly (payload index, no vectors)."""
        if isinstance(article, int) and not isinstance(article, bool):
            article = str(article)
        if not isinstance(article, str) or not article.strip():
            raise InvalidArgumentError(f"article must be a non-empty string, got {article!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_K:
            raise InvalidArgumentError(f"limit must be an integer in 1..{MAX_K}, got {limit!r}")
        self._serving()
        return self._lookup(article.strip(), limit, filter)

    def get(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Payloads of the given products that exist (missing ones are left out)."""
        ids = [check_product_id(p, where="get", error=InvalidArgumentError) for p in product_ids]
        self._serving()
        return self._retrieve(ids) if ids else {}

    def vectors(self, product_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored 512-d vectors (fp16 precision, as float32) of the given products that exist."""
        ids = [check_product_id(p, where="vectors", error=InvalidArgumentError) for p in product_ids]
        self._serving()
        return self._retrieve_vectors(ids) if ids else {}

    def count(self) -> int:
        """Products in the serving version."""
        self._serving()
        return self._count()

    def export(self, batch_size: int = 4096) -> Iterator[ProductBatch]:
        """Every product of the serving version with its stored 512-d vector and payload.

        Vectors come back as stored (fp16 precision). ``build(other.export())`` copies
        an index between backends.
        """
        self._serving()
        return self._export(batch_size)

    def current_version(self) -> VersionInfo | None:
        """The serving version's manifest, or ``None`` before the first build."""
        for v in self.versions():
            if v.current:
                return v
        return None

    def versions(self) -> list[VersionInfo]:
        """Complete versions, oldest first, the serving one marked ``current``."""
        return self._list()

    def __enter__(self) -> VectorIndex[S]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def _serving(self) -> VersionInfo:
        """The version searches run against; ``NotFoundError`` when none is built."""

    @abc.abstractmethod
    def _query(self, full: np.ndarray, online: np.ndarray, plan: SearchPlan) -> list[list[Hit]]:
        """Hits for each row of the checked, normalised query vectors, in one engine call."""

    def _query_one(self, full: np.ndarray, online: np.ndarray, plan: SearchPlan) -> list[Hit]:
        """Hits for one checked, normalised query (1-D vectors); a backend with a cheaper entry for a
        lone query overrides it."""
        return self._query(full[None], online[None], plan)[0]

    @abc.abstractmethod
    def _lookup(self, article: str, limit: int, filter: SearchFilter | None) -> list[Hit]: ...

    @staticmethod
    def _hit(point: Any, score: float, with_payload: bool) -> Hit:
        """A hit from an engine point whose payload holds the product id."""
        payload = dict(point.payload or {})
        pid = payload.get("product_id")
        return Hit(str(pid if pid is not None else point.id), float(score), payload if with_payload else {})

    @abc.abstractmethod
    def _retrieve(self, product_ids: list[str]) -> dict[str, dict[str, Any]]: ...

    @abc.abstractmethod
    def _retrieve_vectors(self, product_ids: list[str]) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _count(self) -> int: ...

    @abc.abstractmethod
    def _export(self, batch_size: int) -> Iterator[ProductBatch]: ...

    @abc.abstractmethod
    def stats(self) -> IndexStats: ...

    @abc.abstractmethod
    def close(self) -> None: ...
