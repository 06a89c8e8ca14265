"""Embedder vectors of a WB-Synth split's photos, through the token cache.

The heads trained on top of the embedder's space (tag projection, text refinement) learn from
the same gallery photos and jittered shopper crops the embedder head learned from, and are
measured on the same held-out crops its evaluation uses. Tokens are cached under the same names
(``train-gallery``, ``train-shopper``, ``test-queries``...), so a set computed once serves every job.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from visearch.config import Settings
from visearch.embedding.data import Dataset, ImageItem
from visearch.embedding.embedder import Embedder
from visearch.embedding.head import slice_normalize
from visearch.embedding.tokens import TokenCache

__all__ = ["PhotoVectors", "gallery_vectors", "crop_vectors", "TRAIN_CROPS"]

#: jittered crops per shopper object cached for training (the full head recipe's count: shared cache)
TRAIN_CROPS = 4


@dataclass(frozen=True)
class PhotoVectors:
    """Unit vectors of photos (full embedder size), row for row with what they show."""

    vectors: np.ndarray
    items: list[ImageItem]

    @property
    def products(self) -> list[str]:
        return [i.product for i in self.items]

    def __len__(self) -> int:
        return len(self.items)


def _vectors(embedder: Embedder, tokens: np.ndarray) -> np.ndarray:
    return slice_normalize(embedder.embed_tokens(tokens), embedder.out_dim).numpy()


def _cache(settings: Settings) -> TokenCache:
    return TokenCache(settings.embedding.token_cache or settings.data_dir / "token-cache")


def gallery_vectors(dataset: Dataset, split: str, embedder: Embedder, settings: Settings,
                    progress: bool = True) -> PhotoVectors:
    """Every seller photo of ``split``'s products."""
    items = dataset.gallery_items(split)
    if not items:
        return PhotoVectors(np.zeros((0, embedder.out_dim), np.float32), [])
    cached = _cache(settings).get(embedder.backbone, dataset, f"{split}-gallery", items, progress)
    return PhotoVectors(_vectors(embedder, cached.tokens), items)


def crop_vectors(dataset: Dataset, split: str, embedder: Embedder, settings: Settings, *, held_out: bool,
                 progress: bool = True) -> PhotoVectors:
    """Shopper-photo crops of ``split``: ``TRAIN_CROPS`` jittered crops per object to learn from, or
    (``held_out``) the one crop per object the embedder's own evaluation searches with."""
    from visearch.embedding.evaluate import EVAL_SEED

    jitter = settings.embedding.jitter
    if held_out:
        items, name = dataset.shopper_items(split, 1, jitter, EVAL_SEED), f"{split}-queries"
    else:
        items, name = dataset.shopper_items(split, TRAIN_CROPS, jitter, settings.seed), f"{split}-shopper"
    if not items:
        return PhotoVectors(np.zeros((0, embedder.out_dim), np.float32), [])
    cached = _cache(settings).get(embedder.backbone, dataset, name, items, progress)
    return PhotoVectors(_vectors(embedder, cached.tokens), items)
