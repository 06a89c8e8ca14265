"""The embedded engine's real HNSW path (forced on small data): int8 (the default) and fp16, a 256-d slice."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from visearch.index import SearchFilter, VectorIndex
from visearch.index.metrics import exact_topk, recall_at_k
from visearch.index.synthetic import SyntheticEmbeddings


def _recall(
    index: VectorIndex, emb: SyntheticEmbeddings, mode: str, dim: int, flt: SearchFilter | None = None
) -> float:
    ids = emb.product_ids()
    base = (
        emb.vectors
        if mode == "two_stage"
        else emb.vectors[:, :dim] / np.linalg.norm(emb.vectors[:, :dim], axis=1, keepdims=True)
    )
    qs = (
        emb.queries
        if mode == "two_stage"
        else emb.queries[:, :dim] / np.linalg.norm(emb.queries[:, :dim], axis=1, keepdims=True)
    )
    rows = np.arange(emb.n)
    if flt is not None:
        rows = np.flatnonzero([f"cat{int(c):02d}" in flt.categories for c in emb.categories])
    truth, _ = exact_topk(base[rows], qs, 10)
    found = index.search_batch(emb.queries, 10, mode=mode, filter=flt)
    return recall_at_k([[h.product_id for h in f] for f in found], [[ids[rows[j]] for j in t] for t in truth])


@pytest.mark.parametrize(
    ("settings", "floor"),
    [({"quantization": "none"}, 0.95), ({}, 0.95), ({"online_dim": 256}, 0.95)],
    ids=["fp16", "int8 (the default: oversampled, rescored)", "256d"],
)
def test_hnsw_recall(
    make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings, settings: dict, floor: float
) -> None:
    index = make_index("edge", full_scan_threshold_kb=1, **settings)  # 1 KB: always walk the graph
    index.build(emb.batches(1000), total=emb.n)
    dim = settings.get("online_dim", 128)
    assert _recall(index, emb, "hnsw", dim) >= floor
    assert _recall(index, emb, "two_stage", dim) >= 0.97
    cats = SearchFilter.of(category=f"cat{int(emb.categories[0]):02d}")
    assert _recall(index, emb, "two_stage", dim, cats) >= 0.9
    parts = {c.name: c for c in index.stats().components}
    assert parts["hnsw graph"].bytes > 0 and parts["hnsw graph"].resident == "ram"
    assert parts["full vectors (fp16)"].resident == "disk"
    quantization = settings.get("quantization", "int8")
    assert any("quantized" in name for name in parts) == (quantization == "int8")
    info = index.current_version()
    assert info is not None and info.online_dim == dim and info.quantization == quantization


def test_int8_needs_its_oversampling(make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings) -> None:
    """The int8 walk alone orders by quantized scores: the oversampled candidates, rescored, find what it misses."""
    recalls = {}
    for over in (1.0, 3.0):
        index = make_index("edge", full_scan_threshold_kb=1, quantization="int8", oversampling=over)
        index.build(emb.batches(1000), total=emb.n)
        recalls[over] = _recall(index, emb, "hnsw", 128)
    assert recalls[3.0] >= 0.99 and recalls[3.0] > recalls[1.0], recalls
