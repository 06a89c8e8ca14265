"""Reordering search candidates: features from each hit's payload, the learned ranker's scores, and the
online re-ranker's adjustment for the variant; used by the search stage wherever it runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from visearch.index import Hit
from visearch.ranking.features import Candidate, candidate_features, online_similarity
from visearch.ranking.online import OnlineReranker
from visearch.ranking.ranker import Ranker

__all__ = ["RankContext", "candidate_of", "rerank"]


@dataclass(frozen=True)
class RankContext:
    """What ranking knows about one query besides its vector."""

    category: str | None = None       # the category detected for the object (None: none)
    articles: frozenset[str] = frozenset()  # products whose articles were read off the photo
    variant: str = "control"


def candidate_of(hit: Hit) -> Candidate:
    p = hit.payload
    return Candidate(hit.product_id, p.get("category"), _float(p.get("price")), _float(p.get("rating")),
                     int(p["reviews_count"]) if p.get("reviews_count") is not None else None,
                     brand=p.get("brand"), material=p.get("material"))


def _float(v: object) -> float | None:
    return None if v is None else float(v)  # type: ignore[arg-type]


def rerank(hits: Sequence[Hit], query: np.ndarray, vectors: dict[str, np.ndarray], online_dim: int, ranker: Ranker,
           context: RankContext, online: OnlineReranker | None = None) -> list[Hit]:
    """``hits`` (similarity order) in the ranker's order, each with its features and order score.

    ``vectors`` are the candidates' stored full vectors (for the online slice's similarity); a candidate
    without one keeps its full similarity there.
    """
    if not hits:
        return []
    sim = np.array([h.score for h in hits], np.float32)
    online_sim = sim.copy()
    stored = [i for i, h in enumerate(hits) if h.product_id in vectors]
    if stored:
        online_sim[stored] = online_similarity(query, np.stack([vectors[hits[i].product_id] for i in stored]), online_dim)
    X = candidate_features(sim, online_sim, [candidate_of(h) for h in hits], ranker.stats, context.category,
                           context.articles)
    scores = ranker.score(X)
    if online is not None:
        scores = online.scores(context.variant, X, scores)[0].astype(np.float32)
    order = np.argsort(-scores, kind="stable")
    return [replace(hits[i], rank_score=float(scores[i]), features=tuple(float(x) for x in X[i])) for i in order]
