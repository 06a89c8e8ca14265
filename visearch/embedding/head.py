"""The attention head: frozen backbone patch tokens in, one Matryoshka vector out.

    tokens (n, N, D) ─ standardised with fixed statistics of the training tokens (a frozen
        backbone's tokens share a large common part; removing it lets the head see what
        differs between photos from the first step) ─ LayerNorm + Linear → width
      ─ token reducer: average-pool the patch grid to at most ``max_tokens`` tokens, then
        ``layers`` pre-norm self-attention blocks (tokens trade context: object or background)
      ─ multi-head attention pooling: ``queries`` learned queries attend over
        [anchor; tokens]; the anchor is a fixed token (a buffer, never trained) initialised
        from the mean of the pooling queries, so every query always has a stable place to
        put attention that no patch deserves
      ─ LayerNorm + Linear → ``out_dim`` (512)
      → prefixes 512 / 256 / 128 / 64, each L2-normalised

Trained with :class:`~visearch.embedding.mrl.MatryoshkaInfoNCE`, so a prefix is a usable
vector on its own (the index searches the 128-d or 256-d slice, rescores with 512).

>>> head = AttentionHead(in_width=192, grid=(8, 8))
>>> out = head(torch.randn(2, 64, 192))
>>> sorted(out), out[64].shape
([64, 128, 256, 512], torch.Size([2, 64]))
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from visearch.errors import InvalidArgumentError, NotFoundError

__all__ = ["AttentionHead", "HEAD_FILE", "HEAD_CONFIG_FILE", "slice_normalize", "centred"]

HEAD_FILE = "head.safetensors"
HEAD_CONFIG_FILE = "head_config.json"


def slice_normalize(vectors: torch.Tensor, dim: int) -> torch.Tensor:
    """The first ``dim`` values of each row, L2-normalised: an MRL prefix."""
    return F.normalize(vectors[..., :dim].float(), dim=-1)


def centred(vectors: torch.Tensor) -> torch.Tensor:
    """Unit vectors of ``vectors`` minus their mean.

    A backbone trained from scratch puts a large common part in every vector; removing it
    keeps that part from making everything look alike (docs/embedding.md).
    """
    vectors = vectors.float()
    return F.normalize(vectors - vectors.mean(0, keepdim=True), dim=-1)


class _Block(nn.Module):
    """Pre-norm transformer block: self-attention then MLP, both residual."""

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class AttentionHead(nn.Module):
    """Token reducer + multi-head attention pooling with a fixed anchor + MRL projection.

    Args:
        in_width: width of a backbone patch token.
        grid: the backbone's patch grid (rows, cols).
        out_dim: output size, the largest MRL prefix.
        dims: MRL prefix sizes, largest first; ``dims[0] == out_dim``.
        width: width of the attention layers.
        heads: attention heads (reducer and pooling).
        queries: learned pooling queries.
        layers: self-attention blocks in the reducer.
        max_tokens: the reducer pools the grid down to at most this many tokens.
        dropout: attention and MLP dropout.
    """

    def __init__(self, in_width: int, grid: tuple[int, int], out_dim: int = 512, dims: tuple[int, ...] = (512, 256, 128, 64),
                 width: int = 256, heads: int = 8, queries: int = 4, layers: int = 1, max_tokens: int = 64,
                 dropout: float = 0.0) -> None:
        super().__init__()
        dims = tuple(int(d) for d in dims)
        if not dims or dims[0] != out_dim or list(dims) != sorted(set(dims), reverse=True) or dims[-1] < 1:
            raise InvalidArgumentError(f"dims must be distinct sizes, largest first, starting at out_dim={out_dim}; got {dims}")
        if width % heads:
            raise InvalidArgumentError(f"head width {width} is not a multiple of its {heads} heads")
        self.config: dict[str, Any] = dict(in_width=in_width, grid=list(grid), out_dim=out_dim, dims=list(dims), width=width,
                                           heads=heads, queries=queries, layers=layers, max_tokens=max_tokens, dropout=dropout)
        self.dims = dims
        self.grid = (int(grid[0]), int(grid[1]))
        self.reduce = max(1, math.ceil(math.sqrt(self.grid[0] * self.grid[1] / max_tokens)))
        n_tokens = self.grid[0] * self.grid[1]
        # fixed input statistics (buffers): per-position mean, per-channel scale; fitted once by fit_input
        self.register_buffer("in_mean", torch.zeros(n_tokens, in_width), persistent=True)
        self.register_buffer("in_scale", torch.ones(in_width), persistent=True)
        self.inp = nn.Sequential(nn.LayerNorm(in_width), nn.Linear(in_width, width))
        self.reducer = nn.ModuleList(_Block(width, heads, dropout) for _ in range(layers))
        self.kv_norm = nn.LayerNorm(width)
        self.queries = nn.Parameter(torch.randn(queries, width) * width**-0.5)
        # fixed, saved with the weights, never updated by an optimizer
        self.register_buffer("anchor", self.queries.detach().mean(0, keepdim=True).clone(), persistent=True)
        self.pool = nn.MultiheadAttention(width, heads, dropout=dropout, batch_first=True)
        self.proj = nn.Sequential(nn.LayerNorm(queries * width), nn.Linear(queries * width, out_dim))

    @property
    def out_dim(self) -> int:
        return int(self.config["out_dim"])

    @torch.no_grad()
    def fit_input(self, tokens: torch.Tensor) -> None:
        """Set the input statistics from a sample of training tokens (n, N, D); never trained after."""
        t = tokens.float()
        mean = t.mean(0)
        self.in_mean.copy_(mean)
        self.in_scale.copy_((t - mean).std(dim=(0, 1)).clamp_min(1e-4).reciprocal())

    def _reduce_tokens(self, x: torch.Tensor) -> torch.Tensor:
        if self.reduce == 1:
            return x
        n, _, c = x.shape
        grid = x.transpose(1, 2).reshape(n, c, *self.grid)
        grid = F.avg_pool2d(grid, self.reduce, self.reduce, ceil_mode=True)
        return grid.flatten(2).transpose(1, 2)

    def full(self, tokens: torch.Tensor) -> torch.Tensor:
        """The un-normalised ``out_dim`` vector (what the loss slices)."""
        if tokens.ndim != 3 or tokens.shape[1] != self.grid[0] * self.grid[1] or tokens.shape[2] != self.config["in_width"]:
            raise InvalidArgumentError(f"head expects tokens (n, {self.grid[0] * self.grid[1]}, {self.config['in_width']}), "
                                       f"got {tuple(tokens.shape)}: was it trained on another backbone?")
        x = self._reduce_tokens(self.inp((tokens.float() - self.in_mean) * self.in_scale))
        for block in self.reducer:
            x = block(x)
        kv = torch.cat([self.anchor.expand(len(x), 1, -1), self.kv_norm(x)], dim=1)
        pooled = self.pool(self.queries.expand(len(x), -1, -1), kv, kv, need_weights=False)[0]
        return self.proj(pooled.flatten(1))

    def forward(self, tokens: torch.Tensor) -> dict[int, torch.Tensor]:
        """Every MRL prefix of the output, each L2-normalised: ``{512: (n, 512), 256: ..., 64: ...}``."""
        z = self.full(tokens)
        return {d: slice_normalize(z, d) for d in self.dims}

    # --- files -----------------------------------------------------------------------

    def save(self, folder: Path) -> Path:
        """``head.safetensors`` + ``head_config.json`` in ``folder``."""
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        (folder / HEAD_CONFIG_FILE).write_text(json.dumps(self.config, indent=2), encoding="utf-8")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}, str(folder / HEAD_FILE))
        return folder

    @classmethod
    def load(cls, folder: Path, device: torch.device | str = "cpu") -> AttentionHead:
        """A head saved by :meth:`save`, in eval mode."""
        from safetensors.torch import load_file

        if not (folder / HEAD_FILE).is_file() or not (folder / HEAD_CONFIG_FILE).is_file():
            raise NotFoundError(f"{folder}: no {HEAD_FILE} + {HEAD_CONFIG_FILE}; not a visearch embedder folder")
        cfg = json.loads((folder / HEAD_CONFIG_FILE).read_text(encoding="utf-8"))
        head = cls(**{**cfg, "grid": tuple(cfg["grid"]), "dims": tuple(cfg["dims"])})
        head.load_state_dict(load_file(str(folder / HEAD_FILE)), strict=True)
        return head.to(device).eval()
