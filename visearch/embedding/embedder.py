"""The embedder: frozen backbone + trained head, loaded by one reference.

A registered ``visearch-embedder`` version is a folder with ``head.safetensors``,
``head_config.json`` and ``card.json``; the card names the backbone it was trained on
(a pinned reference such as ``models:/visearch-backbone/3``) and its output sizes, so
``Embedder.from_ref("models:/visearch-embedder@champion", settings)`` brings both back.

>>> emb = Embedder.from_ref("models:/visearch-embedder@champion", settings)  # doctest: +SKIP
>>> emb.embed([crop], dim=128).shape                                        # doctest: +SKIP
(1, 128)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from visearch.config import Settings
from visearch.embedding.backbone import Backbone
from visearch.embedding.head import AttentionHead, slice_normalize
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.registry import CARD_FILE, resolve_model

__all__ = ["Embedder", "load_head"]


def load_head(ref: str, settings: Settings) -> tuple[AttentionHead, dict[str, Any], Path]:
    """The head of an embedder reference, its card and its folder (no backbone loaded)."""
    folder = resolve_model(ref, settings)
    if not folder.is_dir() or not (folder / CARD_FILE).is_file():
        raise NotFoundError(f"{ref}: not an embedder folder (head.safetensors, head_config.json, {CARD_FILE})")
    card = json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))
    head = AttentionHead.load(folder, settings.embedding.device)
    head.requires_grad_(False)
    return head, card, folder


class Embedder:
    """Images (or crops) in, L2-normalised Matryoshka vectors out; list-in, list-out."""

    def __init__(self, backbone: Backbone, head: AttentionHead, card: dict[str, Any], ref: str) -> None:
        self.backbone, self.head, self.card, self.ref = backbone, head.eval(), card, ref
        self.dims: tuple[int, ...] = head.dims
        self.out_dim = head.out_dim

    @classmethod
    def from_ref(cls, ref: str, settings: Settings, backbone: str | Backbone | None = None) -> Embedder:
        """Load the head at ``ref`` and the backbone its card names (or ``backbone``).

        Raises:
            NotFoundError: no embedder at ``ref``, or its backbone is gone.
            InvalidArgumentError: the backbone's tokens do not fit the head.
        """
        head, card, _ = load_head(ref, settings)
        if isinstance(backbone, Backbone):
            bb = backbone
        else:
            bb_ref = backbone or card.get("backbone")
            if not bb_ref:
                raise NotFoundError(f"{ref}: its card names no backbone; pass one explicitly")
            bb = Backbone.from_ref(str(bb_ref), settings)
        if (bb.width, list(bb.grid)) != (head.config["in_width"], list(head.config["grid"])):
            raise InvalidArgumentError(f"{ref}: the head reads {head.config['grid']} tokens of width {head.config['in_width']}, "
                                       f"backbone {bb.ref} gives {list(bb.grid)} of width {bb.width}")
        return cls(bb, head, card, ref)

    @torch.inference_mode()
    def embed_tokens(self, tokens: torch.Tensor | np.ndarray, batch: int = 256) -> torch.Tensor:
        """Full un-normalised head outputs (n, out_dim) for backbone tokens, float32 on CPU."""
        out = []
        for start in range(0, len(tokens), batch):
            part = tokens[start : start + batch]
            t = part.float() if isinstance(part, torch.Tensor) else torch.from_numpy(np.array(part, dtype=np.float32))
            out.append(self.head.full(t.to(self.backbone.device)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, self.out_dim)

    def embed(self, images: Sequence[Image.Image], dim: int | None = None) -> np.ndarray:
        """(n, dim) L2-normalised vectors; ``dim`` is an MRL prefix size (default: the full vector)."""
        dim = dim or self.out_dim
        if dim not in self.dims:
            raise InvalidArgumentError(f"dim must be one of the trained prefix sizes {list(self.dims)}, got {dim}")
        tokens, _ = self.backbone.encode_images(images)
        return slice_normalize(self.embed_tokens(tokens), dim).numpy()
