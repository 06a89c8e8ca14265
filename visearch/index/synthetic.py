"""Synthetic catalog vectors for the index's tests, benchmarks and ``visearch eval index``.

:func:`clustered_embeddings` draws vectors shaped like a catalog's image
embeddings rather than uniform noise, which HNSW finds unrealistically hard, or a
few tight blobs, which it finds unrealistically easy:

* a hierarchy: 64 categories, product families inside them (40 products on
  average), products scattered around their family;
* a decaying spectrum (variance of dim ``d`` ~ ``1/d``) with the energy in the
  first dims, as Matryoshka training puts it, and random rotations inside the MRL
  blocks (0-64, 64-128, 128-256, 256-512) so no single axis carries it;
* a shared mean direction, so unrelated products still have cosine ~0.15, as
  image embeddings do.

With the defaults the 128-d slice has a local intrinsic dimensionality of about
20 (MLE over the 100 nearest neighbours), in the range public ANN benchmark sets
built from real features show. Queries are held-out draws from the same
distribution (never indexed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from visearch.errors import InvalidArgumentError
from visearch.index.types import ProductBatch

__all__ = ["SyntheticEmbeddings", "clustered_embeddings"]

_MRL_BLOCKS = (64, 128, 256, 512, 1024, 2048, 4096)


@dataclass(frozen=True)
class SyntheticEmbeddings:
    """Catalog vectors, held-out queries and the products' synthetic cards."""

    vectors: np.ndarray
    queries: np.ndarray
    categories: np.ndarray
    seed: int

    @property
    def n(self) -> int:
        return len(self.vectors)

    def product_ids(self) -> list[str]:
        return [f"s{i:07d}" for i in range(self.n)]

    def articles(self) -> list[str]:
        # 8-digit article numbers in a seeded order, as a marketplace assigns them
        order = np.random.default_rng(self.seed + 7).permutation(self.n)
        return [str(10_000_000 + int(o)) for o in order]

    def prices(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed + 11)
        return np.round(np.exp(rng.normal(7.5, 0.8, self.n)), 0)

    def batches(self, batch_size: int = 4096) -> Iterator[ProductBatch]:
        """The catalog as :class:`ProductBatch` items with payloads (article, category, price)."""
        ids, arts, prices = self.product_ids(), self.articles(), self.prices()
        for i in range(0, self.n, batch_size):
            j = min(self.n, i + batch_size)
            payloads = [
                {"article": arts[r], "category": f"cat{int(self.categories[r]):02d}", "price": float(prices[r])}
                for r in range(i, j)
            ]
            yield ProductBatch(ids[i:j], self.vectors[i:j], payloads)


def _spectrum(dim: int, alpha: float) -> np.ndarray:
    s = np.arange(1, dim + 1, dtype=np.float64) ** (-alpha / 2)
    return (s / np.sqrt(np.mean(s**2))).astype(np.float32)


def _block_rotation(rng: np.random.Generator, dim: int) -> np.ndarray:
    rot = np.zeros((dim, dim), np.float32)
    lo = 0
    for hi in _MRL_BLOCKS:
        hi = min(hi, dim)
        q, _ = np.linalg.qr(rng.standard_normal((hi - lo, hi - lo)))
        rot[lo:hi, lo:hi] = q
        lo = hi
        if hi == dim:
            break
    return rot


def clustered_embeddings(
    n: int,
    *,
    dim: int = 512,
    seed: int = 0,
    queries: int = 1000,
    categories: int = 64,
    family_size: int = 40,
    alpha: float = 1.0,
    spread: tuple[float, float, float] = (1.0, 0.6, 1.0),
    mean: float = 0.8,
) -> SyntheticEmbeddings:
    """Unit vectors that look like a catalog's MRL image embeddings (see the module doc).

    Args:
        n: products.
        dim: vector size (the full MRL size, 512).
        seed: everything is a function of it.
        queries: held-out query vectors drawn from the same distribution.
        categories: top-level clusters.
        family_size: mean products per family (second-level cluster).
        alpha: spectrum decay, variance of dim d ~ d^-alpha.
        spread: scales of category, family and product offsets.
        mean: strength of the direction all vectors share.
    """
    if n < 1 or dim < 2 or queries < 0:
        raise InvalidArgumentError(f"need n >= 1, dim >= 2, queries >= 0; got n={n}, dim={dim}, queries={queries}")
    rng = np.random.default_rng(seed)
    s = _spectrum(dim, alpha)
    mu = rng.standard_normal(dim).astype(np.float32) * s * mean
    cats = rng.standard_normal((categories, dim)).astype(np.float32) * s * spread[0]
    n_fam = max(1, n // family_size)
    fam_cat = rng.integers(0, categories, n_fam)
    fams = cats[fam_cat] + rng.standard_normal((n_fam, dim)).astype(np.float32) * s * spread[1]
    rot = _block_rotation(rng, dim)

    def draw(m: int, r: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        out = np.empty((m, dim), np.float32)
        fam = r.integers(0, n_fam, m)
        for i in range(0, m, 65536):
            j = min(m, i + 65536)
            z = mu + fams[fam[i:j]] + r.standard_normal((j - i, dim)).astype(np.float32) * s * spread[2]
            x = z @ rot
            out[i:j] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out, fam_cat[fam]

    vectors, cat = draw(n, np.random.default_rng(seed + 1))
    qs, _ = draw(queries, np.random.default_rng(seed + 2))
    return SyntheticEmbeddings(vectors, qs, cat, seed)
