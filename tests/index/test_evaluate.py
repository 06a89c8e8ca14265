"""The eval's own parts: the clustered-vector generator, brute force, recall, intrinsic dimension."""

from __future__ import annotations

import numpy as np
import pytest

from visearch.errors import InvalidArgumentError
from visearch.index.metrics import exact_topk, local_intrinsic_dim, recall_at_k
from visearch.index.synthetic import clustered_embeddings


def test_generator_is_deterministic_and_shaped_like_embeddings() -> None:
    a = clustered_embeddings(3000, seed=1, queries=20)
    b = clustered_embeddings(3000, seed=1, queries=20)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    np.testing.assert_array_equal(a.queries, b.queries)
    assert not np.array_equal(a.vectors, clustered_embeddings(3000, seed=2, queries=0).vectors)
    assert a.vectors.shape == (3000, 512) and a.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    # unrelated products are mildly similar, as image embeddings are; neighbours clearly closer
    cos = np.sum(a.vectors[:1000] * a.vectors[1000:2000], axis=1)
    assert 0.05 < cos.mean() < 0.4
    _, top = exact_topk(a.vectors, a.queries, 100)
    assert top[:, 0].mean() > cos.mean() + 0.3
    # MRL-like: the first 128 dims carry most of the energy
    energy = np.mean(np.sum(a.vectors[:, :128] ** 2, axis=1))
    assert 0.6 < energy < 0.95
    # the held-out queries are not catalog vectors
    assert top[:, 0].max() < 0.999
    assert len(set(a.articles())) == 3000 and all(len(x) == 8 for x in a.articles())
    assert {p for b in a.batches(1000) for p in b.product_ids} == set(a.product_ids())


def test_generator_rejects_nonsense() -> None:
    with pytest.raises(InvalidArgumentError):
        clustered_embeddings(0)


def test_exact_topk_matches_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((1000, 16)).astype(np.float32)
    qs = rng.standard_normal((7, 16)).astype(np.float32)
    idx, scores = exact_topk(base, qs, 5, chunk=128)
    full = qs @ base.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, ::-1][:, :5], rtol=1e-5)
    # leave-one-out: a query never returns the row it came from
    idx, _ = exact_topk(base, base[:3], 2, exclude=np.array([0, 1, 2]), chunk=300)
    assert all(i not in row for i, row in enumerate(idx))


def test_recall_at_k() -> None:
    assert recall_at_k([[1, 2, 3]], [[1, 2, 4]], k=3) == pytest.approx(2 / 3)
    assert recall_at_k([[1]], [[1]], k=10) == 1.0
    assert recall_at_k([], [], k=10) == 0.0


def test_local_intrinsic_dim_tracks_the_true_dimension() -> None:
    rng = np.random.default_rng(0)
    for true_dim in (4, 12):
        x = np.zeros((20000, 64), np.float32)
        x[:, :true_dim] = rng.standard_normal((20000, true_dim))
        x[:, true_dim] = 5.0  # keep everything on one side, then project to the sphere
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        _, s = exact_topk(x[200:], x[:200], 100)
        assert local_intrinsic_dim(s) == pytest.approx(true_dim, rel=0.3)
