"""The tag index: a tag model's vectors in Qdrant's engine, searched with a crop's vector.

One Edge shard per tag model version under ``<data_dir>/tag-index/<model label>/``, written into
a ``.partial`` folder and renamed when complete (two replicas starting together never read a
half-built one). A vocabulary holds hundreds or thousands of tags, so search is exact.
"""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import numpy as np
import qdrant_edge as qe

from visearch.errors import InvalidArgumentError
from visearch.tags.projection import Tagged, TagModel

__all__ = ["TagIndex"]

_VECTOR = "tag"
_SHARD = "shard"


class TagIndex:
    """Nearest tags of photo vectors, through an Edge shard built once per tag model."""

    def __init__(self, model: TagModel, root: Path, label: str) -> None:
        self.model, self.label = model, label
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-") or "tags"
        self.path = Path(root) / safe
        if not (self.path / _SHARD).is_dir():
            self._build()
        self.shard = qe.EdgeShard.load(str(self.path / _SHARD))

    def _build(self) -> None:
        partial = self.path.with_name(f"{self.path.name}.partial-{uuid.uuid4().hex[:8]}")
        partial.mkdir(parents=True)
        try:
            config = qe.EdgeConfig(vectors={_VECTOR: qe.EdgeVectorParams(size=self.model.dim, distance=qe.Distance.Dot)},
                                   wal_enabled=False)
            shard = qe.EdgeShard.create(str(partial / _SHARD), config)
            points = [qe.Point(i, {_VECTOR: v.tolist()}, {"text": t["text"], "facet": t["facet"]})
                      for i, (t, v) in enumerate(zip(self.model.tags, self.model.vectors, strict=True))]
            shard.update(qe.UpdateOperation.upsert_points(points))
            shard.flush()
            shard.close()
            if self.path.exists():  # another process built it first
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.rename(self.path)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def __len__(self) -> int:
        return len(self.model.tags)

    def _query(self, vectors: np.ndarray, limit: int, with_payload: bool) -> list[list]:
        """One exact engine query per unit photo vector (one batch call), checked against the model's size."""
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.model.dim:
            raise InvalidArgumentError(f"tag index {self.label}: vectors must be (n, {self.model.dim}), got {vectors.shape}")
        if limit <= 0 or not len(vectors):
            return [[] for _ in range(len(vectors))]
        requests = [qe.QueryRequest(limit=limit, query=qe.Query.Nearest(v.tolist(), using=_VECTOR),
                                    params=qe.SearchParams(exact=True), with_payload=with_payload) for v in vectors]
        if len(requests) == 1:
            return [self.shard.query(requests[0])]
        return self.shard.query_batch(qe.QueryBatchRequest(requests))

    def search(self, vectors: np.ndarray, k: int) -> list[list[Tagged]]:
        """The ``k`` most likely tags of each unit photo vector of the tag model's space."""
        out = []
        for found in self._query(vectors, k, with_payload=True):
            probs = self.model.probabilities(np.array([p.score for p in found], np.float64))
            out.append([Tagged(str(p.payload["text"]), str(p.payload["facet"]), round(float(pr), 4))
                        for p, pr in zip(found, probs, strict=True)])
        return out

    def similarity(self, vectors: np.ndarray) -> np.ndarray:
        """(n, tags) cosine of each unit photo vector to every tag, columns in the tag model's order."""
        found = self._query(vectors, len(self), with_payload=False)
        out = np.full((len(found), len(self)), -1.0, np.float32)
        for row, points in enumerate(found):
            for p in points:
                out[row, int(p.id)] = p.score
        return out

    def close(self) -> None:
        self.shard.close()
