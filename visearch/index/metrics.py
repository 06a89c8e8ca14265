"""Recall against brute-force ground truth, and the local intrinsic dimensionality of the data.

Plain numpy, apart from the eval harness, so the index tests and benchmarks score
recall without importing its subprocess machinery.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["exact_topk", "recall_at_k", "local_intrinsic_dim"]


def exact_topk(
    base: np.ndarray, queries: np.ndarray, k: int, *, exclude: np.ndarray | None = None, chunk: int = 131072
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` by inner product: ``(indices, scores)``, best first.

    ``exclude[i]`` is a base row that query ``i`` must not return (leave-one-out).
    """
    nq = len(queries)
    best_i = np.empty((nq, 0), np.int64)
    best_s = np.empty((nq, 0), np.float32)
    for lo in range(0, len(base), chunk):
        scores = queries @ base[lo : lo + chunk].T
        if exclude is not None:
            rows = np.flatnonzero((exclude >= lo) & (exclude < lo + chunk))
            scores[rows, exclude[rows] - lo] = -np.inf
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        best_i = np.concatenate([best_i, part + lo], axis=1)
        best_s = np.concatenate([best_s, np.take_along_axis(scores, part, 1)], axis=1)
        if best_i.shape[1] > k:
            keep = np.argpartition(-best_s, k - 1, axis=1)[:, :k]
            best_i = np.take_along_axis(best_i, keep, 1)
            best_s = np.take_along_axis(best_s, keep, 1)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1), np.take_along_axis(best_s, order, 1)


def recall_at_k(found: list[list[Any]], truth: list[list[Any]], k: int = 10) -> float:
    """Mean share of each query's true top-``k`` that was found in its top-``k``."""
    if not truth:
        return 0.0
    total = 0.0
    for f, t in zip(found, truth, strict=True):
        want = set(t[:k])
        total += len(set(f[:k]) & want) / max(1, len(want))
    return total / len(truth)


def local_intrinsic_dim(scores: np.ndarray) -> float:
    """MLE local intrinsic dimensionality from sorted top-k cosines of unit vectors (Levina-Bickel)."""
    d = np.sqrt(np.maximum(2.0 - 2.0 * scores.astype(np.float64), 1e-12))
    ratios = np.log(d[:, :-1] / d[:, -1:])
    lid = -1.0 / np.minimum(ratios.mean(axis=1), -1e-12)
    return float(np.median(lid))
