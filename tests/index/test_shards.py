"""Scatter-gather over shards (the scale model of a sharded Qdrant collection), on the real engine."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from visearch.errors import InvalidArgumentError
from visearch.index import Hit, SearchFilter, VectorIndex
from visearch.index.metrics import exact_topk, recall_at_k
from visearch.index.shards import ScatterGather, merge_hits, shard_of, split_by_shard
from visearch.index.synthetic import SyntheticEmbeddings


def test_a_product_always_lands_in_the_same_shard():
    assert shard_of("p0000001", 8) == shard_of("p0000001", 8) == 0  # CRC-32, not the per-process hash()
    counts = np.bincount([shard_of(f"p{i:07d}", 8) for i in range(8000)], minlength=8)
    assert counts.min() > 850 and counts.max() < 1150, counts


def test_merge_keeps_the_best_of_every_shard_in_a_stable_order():
    a = [[Hit("a1", 0.9), Hit("a2", 0.5)], [Hit("a3", 0.2)]]
    b = [[Hit("b1", 0.7), Hit("b2", 0.5)], []]
    merged = merge_hits([a, b], 3)
    assert [[h.product_id for h in q] for q in merged] == [["a1", "b1", "a2"], ["a3"]]
    assert merge_hits([b, a], 3) == merged, "the same answer whichever shard answered first"
    assert merge_hits([], 3) == []


def test_scatter_gather_answers_like_one_index(make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings):
    shards = ScatterGather([make_index("edge") for _ in range(4)])
    sizes = shards.build(emb.batches(700))
    assert sum(sizes) == emb.n == shards.count() and min(sizes) > 0
    one = make_index("edge")
    one.build(emb.batches(700), total=emb.n)
    ids = emb.product_ids()
    # exact search: the global top-k is within the union of the shards' top-k, so the merge is the one index's
    merged = shards.search_batch(emb.queries[:50], 10, mode="exact")
    alone = one.search_batch(emb.queries[:50], 10, mode="exact")
    assert [{h.product_id for h in q} for q in merged] == [{h.product_id for h in q} for q in alone]
    assert np.allclose([[h.score for h in q] for q in merged], [[h.score for h in q] for q in alone], atol=1e-6)
    # approximate: recall as good as one index's, filters apply on every shard
    for mode in ("hnsw", "two_stage"):
        split = [[h.product_id for h in q] for q in shards.search_batch(emb.queries, 10, mode=mode)]
        single = [[h.product_id for h in q] for q in one.search_batch(emb.queries, 10, mode=mode)]
        want = [[ids[j] for j in row] for row in exact_topk(emb.vectors, emb.queries, 10)[0]]
        assert recall_at_k(split, want) >= recall_at_k(single, want) - 0.005, mode
    cat = f"cat{int(emb.categories[0]):02d}"
    hits = shards.search_batch(emb.queries[:3], 20, filter=SearchFilter.of(category=cat))
    assert all(h.payload["category"] == cat for q in hits for h in q)
    with pytest.raises(InvalidArgumentError, match="k must be"):
        shards.search_batch(emb.queries[:1], 0)
    with pytest.raises(InvalidArgumentError, match="shards"):
        split_by_shard(emb.batches(700), 0)
    with pytest.raises(InvalidArgumentError, match="at least one shard"):
        ScatterGather([])
