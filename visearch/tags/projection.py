"""Tags projected into the image space: a MiniLM tag vector in, a vector beside the crops that carry it out.

Texts are aligned to images, never the reverse: the embedder's space is the one products are
indexed in, so the projection learns to put the tag "red" among red products' photos and the
crop's own vector finds its nearest tags.

The projector is a linear map (text → image size) followed by a residual two-layer MLP. Two
training tricks, each measured against the plain way by ``training/tags.py``:

- the linear map can be solved in closed form: ridge regression from the tag vector to the
  vectors of the photos carrying it, from XᵀX and XᵀY accumulated batch by batch (the pair
  matrix is never built: a batch adds ``Eᵀ diag(counts) E`` and ``Eᵀ (Mᵀ Y)``);
- the MLP's first layer starts as a random orthogonal Q and its second as Qᵀ, so the block starts
  close to a norm-preserving map of its input instead of a random one.

Scores are SigLIP-style: ``sigmoid(scale · cos + bias)`` per (photo, tag), a multi-label loss.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from visearch.errors import DatasetError, InvalidArgumentError
from visearch.registry.card import card_references

__all__ = ["TagProjector", "RidgeAccumulator", "TagModel", "Tagged", "PROJECTOR_FILE", "TAGS_FILE", "VECTORS_FILE"]

PROJECTOR_FILE = "projector.safetensors"
TAGS_FILE = "tags.json"
VECTORS_FILE = "tag_vectors.safetensors"
Init = Literal["orthogonal", "default"]


class TagProjector(nn.Module):
    """Tag text vector (``text_dim``) → unit vector in the image space (``image_dim``)."""

    def __init__(self, text_dim: int, image_dim: int, hidden: int, init: Init = "orthogonal") -> None:
        super().__init__()
        self.config = {"text_dim": text_dim, "image_dim": image_dim, "hidden": hidden, "init": init}
        self.inp = nn.Linear(text_dim, image_dim)
        self.fc1 = nn.Linear(image_dim, hidden)
        self.fc2 = nn.Linear(hidden, image_dim)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        self.logit_bias = nn.Parameter(torch.tensor(-5.0))
        if init == "orthogonal":
            self.orthogonal_init()
        elif init != "default":
            raise InvalidArgumentError(f"init must be orthogonal or default, got {init!r}")

    @torch.no_grad()
    def orthogonal_init(self) -> None:
        """fc1 ← Q (orthonormal rows or columns), fc2 ← Qᵀ, biases 0."""
        nn.init.orthogonal_(self.fc1.weight)
        self.fc2.weight.copy_(self.fc1.weight.T)
        self.fc1.bias.zero_()
        self.fc2.bias.zero_()

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        z = self.inp(text)
        return F.normalize(z + self.fc2(F.gelu(self.fc1(z))), dim=-1)

    def logits(self, images: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
        """(photos, tags) logits from unit photo vectors and projected tag vectors."""
        return images @ tags.T * self.logit_scale.exp() + self.logit_bias


class RidgeAccumulator:
    """XᵀX and XᵀY of (tag vector → photo vector) pairs, one batch of photos at a time."""

    def __init__(self, tag_vectors: np.ndarray, image_dim: int) -> None:
        e = torch.from_numpy(np.asarray(tag_vectors, np.float64))
        self.e = torch.cat([e, torch.ones(len(e), 1, dtype=torch.float64)], 1)  # a bias column
        d = self.e.shape[1]
        self.xtx = torch.zeros(d, d, dtype=torch.float64)
        self.xty = torch.zeros(d, image_dim, dtype=torch.float64)
        self.pairs = 0

    def add(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> None:
        """``images`` (B, image_dim) unit vectors, ``labels`` (B, tags) 0/1: every 1 is one pair."""
        y = torch.as_tensor(np.asarray(images), dtype=torch.float64)
        m = torch.as_tensor(np.asarray(labels), dtype=torch.float64)
        counts = m.sum(0)
        self.xtx += self.e.T @ (self.e * counts[:, None])
        self.xty += self.e.T @ (m.T @ y)
        self.pairs += int(counts.sum())

    def solve(self, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (image_dim, text_dim), bias (image_dim,)) of the least-squares map, ``ridge`` · I added."""
        if self.pairs == 0:
            raise DatasetError("no (photo, tag) pairs to solve the projection from")
        d = self.xtx.shape[0]
        w = torch.linalg.solve(self.xtx + ridge * torch.eye(d, dtype=torch.float64), self.xty)
        return w[:-1].T.float().contiguous(), w[-1].float().contiguous()


@dataclass(frozen=True)
class Tagged:
    """One tag of a crop, with its SigLIP-style probability."""

    text: str
    facet: str
    score: float


class TagModel:
    """A trained projector's output: the tag vocabulary and each tag's vector in the image space.

    Serving needs only these (no text encoder): a crop's vector against the tag vectors.
    """

    def __init__(self, tags: list[dict[str, str]], vectors: np.ndarray, meta: dict[str, Any]) -> None:
        if len(tags) != len(vectors):
            raise DatasetError(f"tag model: {len(tags)} tags but {len(vectors)} vectors")
        self.tags, self.vectors, self.meta = tags, np.asarray(vectors, np.float32), meta
        self.scale, self.bias = float(meta["logit_scale"]), float(meta["logit_bias"])
        self.columns: dict[str, list[int]] = {}  # tag text -> its columns (one per facet that has the text)
        for i, t in enumerate(tags):
            self.columns.setdefault(t["text"], []).append(i)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def probabilities(self, similarity: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(similarity * self.scale + self.bias)))

    def top(self, images: np.ndarray, k: int) -> list[list[Tagged]]:
        """The ``k`` most likely tags of each unit photo vector (exact: a vocabulary is small)."""
        images = np.asarray(images, np.float32)
        if images.ndim != 2 or images.shape[1] != self.dim:
            raise InvalidArgumentError(f"tag model: photo vectors must be (n, {self.dim}), got {images.shape}")
        sim = images @ self.vectors.T
        order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
        prob = self.probabilities(np.take_along_axis(sim, order, 1))
        return [[Tagged(self.tags[j]["text"], self.tags[j]["facet"], round(float(p), 4)) for j, p in zip(row, probs, strict=True)]
                for row, probs in zip(order, prob, strict=True)]

    def save(self, folder: Path, projector: TagProjector | None = None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        if projector is not None:
            self.meta["projector"] = projector.config
        (folder / TAGS_FILE).write_text(json.dumps({"tags": self.tags, **self.meta}, ensure_ascii=False, indent=1),
                                        encoding="utf-8")
        from safetensors.numpy import save_file as save_arrays
        from safetensors.torch import save_file

        save_arrays({"vectors": np.ascontiguousarray(self.vectors, np.float32)}, str(folder / VECTORS_FILE))
        if projector is not None:  # kept so new tags can be projected without retraining
            save_file({k: v.detach().contiguous() for k, v in projector.state_dict().items()}, str(folder / PROJECTOR_FILE))
        return folder

    @classmethod
    def load(cls, folder: Path) -> TagModel:
        folder = Path(folder)
        if not (folder / TAGS_FILE).is_file() or not (folder / VECTORS_FILE).is_file():
            raise DatasetError(f"{folder}: not a tag model (needs {TAGS_FILE} and {VECTORS_FILE}); train one: "
                               "visearch train tags --data DIR")
        from safetensors.numpy import load_file

        raw = json.loads((folder / TAGS_FILE).read_text(encoding="utf-8"))
        tags = raw.pop("tags")
        raw.update(card_references(folder, ("embedder",)))
        return cls(tags, load_file(str(folder / VECTORS_FILE))["vectors"].astype(np.float32), raw)

    def projector(self, folder: Path) -> TagProjector:
        """The projector itself, to project tags added after training."""
        from safetensors.torch import load_file

        cfg = self.meta["projector"]
        model = TagProjector(cfg["text_dim"], cfg["image_dim"], cfg["hidden"], init="default")
        model.load_state_dict(load_file(str(Path(folder) / PROJECTOR_FILE)))
        return model.eval()
