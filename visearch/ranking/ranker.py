"""The learned ranker: XGBoost LambdaMART over :data:`~visearch.ranking.features.FEATURES`.

Saved as XGBoost's own JSON model (no pickle) beside a ``ranker.json`` card holding the feature
names and the catalog statistics the features were computed with; loaded by reference like every
model (``models:/visearch-ranker@champion``, a folder).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from visearch.config import Settings
from visearch.errors import DatasetError
from visearch.ranking.features import FEATURES, CatalogStats

__all__ = ["Ranker", "ndcg_at", "mrr", "ranker_ref", "MODEL_FILE", "META_FILE"]

MODEL_FILE = "booster.json"
META_FILE = "ranker.json"


def ndcg_at(labels: Sequence[float], scores: Sequence[float], k: int = 10) -> float:
    """NDCG@k of the order ``scores`` gives (gain 2^label - 1); 0 for a query where nothing is relevant."""
    y = np.asarray(labels, np.float64)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:k]
    discounts = 1.0 / np.log2(np.arange(2, 2 + len(order)))
    dcg = float(((2 ** y[order] - 1) * discounts).sum())
    ideal = np.sort(y)[::-1][:k]
    idcg = float(((2 ** ideal - 1) * discounts[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def mrr(labels: Sequence[float], scores: Sequence[float]) -> float:
    """Reciprocal rank of the first candidate with a positive label (0 when none has one)."""
    y = np.asarray(labels)[np.argsort(-np.asarray(scores, np.float64), kind="stable")]
    hits = np.flatnonzero(y > 0)
    return 1.0 / (hits[0] + 1) if len(hits) else 0.0


class Ranker:
    """A trained booster plus the statistics its features need."""

    def __init__(self, booster: Any, stats: CatalogStats, features: Sequence[str] = FEATURES,
                 meta: dict[str, Any] | None = None) -> None:
        unknown = [f for f in features if f not in FEATURES]
        if unknown:
            raise DatasetError(f"ranker was trained on features {unknown} this visearch does not compute "
                               f"({list(FEATURES)}); retrain it: visearch train ranker --data DIR")
        self.booster, self.stats, self.meta = booster, stats, dict(meta or {})
        self.features = tuple(features)  # a ranker trained before a feature existed reads the ones it knows
        self._columns = [FEATURES.index(f) for f in self.features]

    @classmethod
    def fit(cls, X: np.ndarray, y: np.ndarray, groups: Sequence[int], stats: CatalogStats, params: dict[str, Any],
            rounds: int, eval_set: tuple[np.ndarray, np.ndarray, Sequence[int]] | None = None,
            on_round: Any = None, features: Sequence[str] = FEATURES) -> Ranker:
        """LambdaMART on query groups (rows of one query contiguous, ``groups`` their sizes); ``X``'s columns are
        ``features``."""
        import xgboost as xgb

        train = xgb.DMatrix(X, label=y, feature_names=list(features))
        train.set_group(list(groups))
        evals = [(train, "train")]
        if eval_set is not None:
            val = xgb.DMatrix(eval_set[0], label=eval_set[1], feature_names=list(features))
            val.set_group(list(eval_set[2]))
            evals.append((val, "val"))
        callbacks = [] if on_round is None else [_Callback(on_round)]
        booster = xgb.train(params, train, num_boost_round=rounds, evals=evals, verbose_eval=False, callbacks=callbacks)
        return cls(booster, stats, features, meta={"params": params, "rounds": rounds})

    def score(self, X: np.ndarray) -> np.ndarray:
        import xgboost as xgb

        if len(X) == 0:
            return np.zeros(0, np.float32)
        X = np.asarray(X, np.float32)[:, self._columns]
        return self.booster.predict(xgb.DMatrix(X, feature_names=list(self.features))).astype(np.float32)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / MODEL_FILE))
        (folder / META_FILE).write_text(json.dumps({"features": list(self.features), "stats": self.stats.to_dict(), **self.meta},
                                                   indent=2), encoding="utf-8")
        return folder

    @classmethod
    def from_ref(cls, ref: str, settings: Settings) -> Ranker:
        """Load from a reference: a folder, ``models:/visearch-ranker@alias``, ``s3://...``."""
        from visearch.registry import resolve_model

        return cls.load(resolve_model(ref, settings))

    @classmethod
    def load(cls, folder: Path) -> Ranker:
        import xgboost as xgb

        if not (folder / MODEL_FILE).is_file() or not (folder / META_FILE).is_file():
            raise DatasetError(f"{folder}: not a visearch ranker (needs {MODEL_FILE} and {META_FILE})")
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        booster = xgb.Booster()
        booster.load_model(str(folder / MODEL_FILE))
        rest = {k: v for k, v in meta.items() if k not in ("features", "stats")}
        return cls(booster, CatalogStats.from_dict(meta["stats"]), meta["features"], rest)


def ranker_ref(settings: Settings) -> str | None:
    """The ranker to use, if any: search keeps similarity order without one."""
    from visearch.registry import optional_ref

    return optional_ref(settings.models.ranker, settings)


class _Callback:
    """Hands each boosting round's evaluation results to ``on_round(round, {name: value})``."""

    def __new__(cls, on_round: Any) -> Any:  # built lazily: xgboost is imported only when training
        import xgboost as xgb

        class Report(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: dict[str, dict[str, list[float]]]) -> bool:
                on_round(epoch + 1, {f"{d}/{m}": float(v[-1]) for d, ms in evals_log.items() for m, v in ms.items()})
                return False

        return Report()
