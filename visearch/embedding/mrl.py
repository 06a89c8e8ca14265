"""Matryoshka InfoNCE: the contrastive loss computed on each prefix and averaged.

For a batch of pairs (gallery photo, shopper crop) the i-th gallery vector must be
nearer to the i-th crop than to every other crop of the batch, and back. Each prefix
size has its own learnable temperature (short prefixes settle at a different sharpness),
and pairs of the same product inside a batch are not counted as negatives.

>>> loss_fn = MatryoshkaInfoNCE((512, 256, 128, 64))
>>> loss, parts = loss_fn(torch.randn(8, 512), torch.randn(8, 512))
>>> sorted(parts)
[64, 128, 256, 512]
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from visearch.errors import InvalidArgumentError

__all__ = ["MatryoshkaInfoNCE"]

_MAX_SCALE = math.log(100.0)  # CLIP's cap on the logit scale


class MatryoshkaInfoNCE(nn.Module):
    """Symmetric in-batch InfoNCE on every prefix in ``dims``, averaged.

    Args:
        dims: prefix sizes; ``(512,)`` is the single-size baseline.
        temperature: initial temperature of every prefix.
        learn_temperature: whether the temperatures are trained.
    """

    def __init__(self, dims: tuple[int, ...], temperature: float = 0.07, learn_temperature: bool = True) -> None:
        super().__init__()
        if not dims or temperature <= 0:
            raise InvalidArgumentError(f"MRL loss needs prefix sizes and a positive temperature, got {dims}, {temperature}")
        self.dims = tuple(int(d) for d in dims)
        scale = torch.full((len(self.dims),), math.log(1.0 / temperature))
        self.log_scale = nn.Parameter(scale, requires_grad=learn_temperature)

    def temperatures(self) -> dict[int, float]:
        """Current temperature of each prefix."""
        scales = self.log_scale.detach().clamp(max=_MAX_SCALE).exp()
        return {d: float(1.0 / s) for d, s in zip(self.dims, scales, strict=True)}

    def forward(self, a: torch.Tensor, b: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[int, float]]:
        """Mean loss over prefixes and each prefix's value.

        Args:
            a: (n, D) un-normalised vectors of one side (gallery), D >= max(dims).
            b: (n, D) the other side (shopper crops), row i pairs with row i of ``a``.
            labels: (n,) product ids as integers; equal labels off the diagonal are masked.
        """
        if a.shape != b.shape or a.shape[1] < max(self.dims):
            raise InvalidArgumentError(f"MRL loss needs two (n, >={max(self.dims)}) batches of equal shape, got "
                                       f"{tuple(a.shape)} and {tuple(b.shape)}")
        n = len(a)
        target = torch.arange(n, device=a.device)
        mask = None
        if labels is not None:
            same = labels[:, None] == labels[None, :]
            mask = same & ~torch.eye(n, dtype=torch.bool, device=a.device)
        losses = []
        parts: dict[int, float] = {}
        for i, d in enumerate(self.dims):
            qa, qb = F.normalize(a[:, :d], dim=-1), F.normalize(b[:, :d], dim=-1)
            logits = self.log_scale[i].clamp(max=_MAX_SCALE).exp() * qa @ qb.T
            if mask is not None:
                logits = logits.masked_fill(mask, float("-inf"))
            loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
            losses.append(loss)
            parts[d] = float(loss.detach())
        return torch.stack(losses).mean(), parts
