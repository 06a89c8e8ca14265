"""Embedding: frozen SigLIP-family backbone, attention head, Matryoshka vectors.

| module | holds |
|---|---|
| ``archs.py`` | the project's own small SigLIP-style architectures (timm ViT + MAP pooling) |
| ``backbone.py`` | :class:`Backbone`: load any reference, freeze, patch tokens, pooled vector, text tower |
| ``head.py`` | :class:`AttentionHead`: token reducer, attention pooling with a fixed anchor, MRL output |
| ``mrl.py`` | :class:`MatryoshkaInfoNCE`: InfoNCE per prefix with learnable temperatures, averaged |
| ``tokens.py`` | :class:`TokenCache`: backbone tokens on disk, computed once |
| ``data.py`` | WB-Synth gallery photos, detector-like shopper crops, pair cleaning |
| ``embedder.py`` | :class:`Embedder`: backbone + head by one reference |
| ``evaluate.py`` | retrieval metrics per MRL size with the frozen and truncated baselines |
| ``schedule.py`` | warm-up + cosine schedule fitted to a recipe's time budget |
"""

from visearch.embedding.backbone import Backbone, freeze
from visearch.embedding.data import CleanReport, clean_pairs, jitter_box, open_dataset
from visearch.embedding.embedder import Embedder
from visearch.embedding.head import AttentionHead, slice_normalize
from visearch.embedding.mrl import MatryoshkaInfoNCE
from visearch.embedding.tokens import TokenCache

__all__ = [
    "AttentionHead",
    "Backbone",
    "CleanReport",
    "Embedder",
    "MatryoshkaInfoNCE",
    "TokenCache",
    "clean_pairs",
    "freeze",
    "jitter_box",
    "open_dataset",
    "slice_normalize",
]
