"""Scatter-gather over shards: products split by a stable hash of their id, each query sent to every shard,
the shards' top-k merged by score.

This is what a Qdrant cluster does with a sharded collection, done here over indexes this project
opens (any backend), so the cost of splitting one index into several is measured on one machine:
the recall of the merged top-k against one index over the same vectors, and the merge's own time
(``bench/bench_shards.py``; the figures size the cluster in docs/scale.md). Each shard returns its
own top-k; the global top-k is within their union, so an exact search merged is exactly the
one-index result, and an approximate one loses only what each shard's graph missed.
"""

from __future__ import annotations

import heapq
import zlib
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from visearch.errors import InvalidArgumentError
from visearch.index.base import VectorIndex
from visearch.index.types import Hit, ProductBatch

__all__ = ["shard_of", "split_by_shard", "merge_hits", "ScatterGather"]


def shard_of(product_id: str, shards: int) -> int:
    """The shard a product lives in: CRC-32 of its id (stable across processes and versions, unlike ``hash``)."""
    return zlib.crc32(product_id.encode("utf-8")) % shards


def split_by_shard(batches: Iterable[ProductBatch], shards: int) -> list[list[ProductBatch]]:
    """Each batch cut into one batch per shard (empty parts dropped), in order."""
    if shards < 1:
        raise InvalidArgumentError(f"shards must be >= 1, got {shards}")
    out: list[list[ProductBatch]] = [[] for _ in range(shards)]
    for batch in batches:
        owner = np.array([shard_of(p, shards) for p in batch.product_ids])
        for s in range(shards):
            rows = np.flatnonzero(owner == s)
            if len(rows):
                out[s].append(ProductBatch([batch.product_ids[i] for i in rows], batch.vectors[rows],
                                           None if batch.payloads is None else [batch.payloads[i] for i in rows]))
    return out


def merge_hits(per_shard: Sequence[Sequence[Sequence[Hit]]], k: int) -> list[list[Hit]]:
    """The ``k`` best hits of each query over every shard's answer (``per_shard[shard][query]``), best first;
    equal scores in product id order, so the merge does not depend on which shard answered first."""
    if not per_shard:
        return []
    return [heapq.nsmallest(k, (h for shard in per_shard for h in shard[q]), key=lambda h: (-h.score, h.product_id))
            for q in range(len(per_shard[0]))]


class ScatterGather:
    """Shards searched together: every query to every shard, one thread per shard, results merged."""

    def __init__(self, shards: Sequence[VectorIndex]) -> None:
        if not shards:
            raise InvalidArgumentError("scatter-gather needs at least one shard")
        self.shards = list(shards)
        self._pool = ThreadPoolExecutor(len(self.shards), thread_name_prefix="shard")

    def build(self, batches: Iterable[ProductBatch]) -> list[int]:
        """Build every shard from one stream of products; returns the products per shard."""
        parts = split_by_shard(batches, len(self.shards))
        for shard, part in zip(self.shards, parts, strict=True):
            shard.build(iter(part), total=sum(len(b) for b in part))
        return [sum(len(b) for b in part) for part in parts]

    def search_batch(self, queries: Any, k: int = 10, **options: Any) -> list[list[Hit]]:
        """:meth:`VectorIndex.search_batch` on every shard at once (the same options), merged."""
        return merge_hits(self.scatter(queries, k, **options), k)

    def scatter(self, queries: Any, k: int = 10, **options: Any) -> list[list[list[Hit]]]:
        """Each shard's own answer, unmerged (to time the merge apart)."""
        return list(self._pool.map(lambda shard: shard.search_batch(queries, k, **options), self.shards))

    def count(self) -> int:
        return sum(s.count() for s in self.shards)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for s in self.shards:
            s.close()
