"""A crop's tags: its projected-tag neighbours fused with the tags of the products search found.

Two signals, each from the crop's vector:

- **projection**: the tag index (tags projected into the image space) scores every tag by its
  sigmoid probability; it works for any tag, even one no product has yet;
- **neighbours**: the products nearest to the crop (the search results) vote with their own
  tags, weighted by a softmax of their similarity; it is as good as retrieval is.

An embedder trained to tell products apart (like the project's own, on WB-Synth) places photos
by product rather than by colour or category, so the projection alone names few attributes of an
unseen product; the votes of the products it matches carry them. ``weight`` (the projection's
share) and ``temperature`` are calibrated on held-out crops when the tag model is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from visearch.config import Settings
from visearch.errors import ConflictError
from visearch.tags.index import TagIndex
from visearch.tags.projection import Tagged, TagModel

__all__ = ["Fusion", "neighbour_votes", "fused_scores", "top_tags", "Neighbour", "CropTagger"]

#: (similarity to the crop, the product's tag texts)
Neighbour = tuple[float, Sequence[str]]


@dataclass(frozen=True)
class Fusion:
    weight: float = 0.5  # the projection's share; 1 - weight goes to the neighbours' votes
    temperature: float = 0.05
    neighbours: int = 10

    @classmethod
    def from_meta(cls, meta: dict) -> Fusion:
        raw = meta.get("fusion") or {}
        return cls(**{k: raw[k] for k in ("weight", "temperature", "neighbours") if k in raw})


def neighbour_votes(neighbours: Sequence[Sequence[Neighbour]], columns: dict[str, list[int]], n_tags: int,
                    fusion: Fusion) -> np.ndarray:
    """(queries, tags) share of each query's top neighbours (softmax-weighted) that carry each tag."""
    out = np.zeros((len(neighbours), n_tags), np.float32)
    for q, found in enumerate(neighbours):
        found = list(found)[: fusion.neighbours]
        if not found:
            continue
        sims = np.array([s for s, _ in found], np.float64)
        w = np.exp((sims - sims.max()) / fusion.temperature)
        w /= w.sum()
        for weight, (_, texts) in zip(w, found, strict=True):
            for text in set(texts):
                for col in columns.get(text, ()):
                    out[q, col] += weight
    return out


def fused_scores(model: TagModel, projection_similarity: np.ndarray, votes: np.ndarray | None, fusion: Fusion) -> np.ndarray:
    """Per-tag scores in [0, 1]: the projection's probability, blended with the votes when there are any."""
    prob = model.probabilities(projection_similarity)
    if votes is None:
        return prob
    return fusion.weight * prob + (1.0 - fusion.weight) * votes


def top_tags(model: TagModel, scores: np.ndarray, k: int) -> list[list[Tagged]]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [[Tagged(model.tags[j]["text"], model.tags[j]["facet"], round(float(row[j]), 4)) for j in cols]
            for row, cols in zip(scores, order, strict=True)]


class CropTagger:
    """A tag model behind its Qdrant tag index: crop vectors (and what search found for them) in, tags out."""

    def __init__(self, model: TagModel, index: TagIndex, label: str) -> None:
        self.model, self.index, self.label = model, index, label
        self.fusion = Fusion.from_meta(model.meta)
        self.embedder: str = str(model.meta.get("embedder", ""))

    @classmethod
    def from_ref(cls, ref: str, settings: Settings) -> CropTagger:
        """Load the tag model at ``ref`` and open (or build once) its tag index under ``<data_dir>/tag-index``."""
        from visearch.registry import pin_model, resolve_model

        pinned = pin_model(ref, settings)
        model = TagModel.load(resolve_model(pinned.ref, settings))
        return cls(model, TagIndex(model, settings.data_dir / "tag-index", pinned.label), pinned.label)

    def check_embedder(self, embedder: str) -> None:
        """Tags live in one embedder's space: a crop embedded by another has no tags here."""
        if self.embedder and embedder != self.embedder:
            raise ConflictError(f"tag model {self.label} was trained in the space of {self.embedder}, "
                                f"the crop was embedded by {embedder}")

    def tags(self, vectors: np.ndarray, neighbours: Sequence[Sequence[Neighbour]] | None, k: int) -> list[list[Tagged]]:
        """The ``k`` best tags of each crop; ``neighbours`` are the products search found for it (similarity, tags)."""
        sim = self.index.similarity(vectors)
        votes = None
        if neighbours is not None and any(any(t for _, t in n) for n in neighbours):
            votes = neighbour_votes(neighbours, self.model.columns, len(self.model.tags), self.fusion)
        return top_tags(self.model, fused_scores(self.model, sim, votes, self.fusion), k)

    def close(self) -> None:
        self.index.close()
