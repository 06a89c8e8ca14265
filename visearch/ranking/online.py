"""The online re-ranker: a logistic model per variant, learning from the live event stream.

The ranker is trained offline on yesterday's sessions; shoppers' tastes move during the day.
On top of the ranker's order, each variant keeps a logistic model of "clicked, given shown" over
the candidate features and the ranker's score, updated one event at a time (an impression is a
0, a click a 1) by bounded SGD steps: the learning rate decays, each gradient is clipped, and
the weights live in a ball. A model whose weights are not finite or leave the ball is unhealthy:
search falls back to the ranker's order and says so.

The learner reads the durable event log from a cursor and checkpoints (weights, cursor) in one
atomic write, so a restart neither loses nor repeats learning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visearch.config import RankingSettings
from visearch.events import EventLog
from visearch.files import write_text_atomic
from visearch.ranking.features import FEATURES

__all__ = ["OnlineModel", "OnlineReranker", "INPUTS"]

INPUTS = (*FEATURES, "ranker_score")


@dataclass
class OnlineModel:
    """One variant's logistic model over :data:`INPUTS` (plus a bias), on inputs standardised by running
    means and variances (features come in very different units: ranks, log prices, ratings)."""

    w: np.ndarray = field(default_factory=lambda: np.zeros(len(INPUTS) + 1))
    steps: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(len(INPUTS)))
    m2: np.ndarray = field(default_factory=lambda: np.zeros(len(INPUTS)))

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        std = np.sqrt(self.m2 / max(self.steps - 1, 1)) if self.steps > 1 else np.ones(len(INPUTS))
        return (np.asarray(X, np.float64) - self.mean) / np.where(std > 1e-9, std, 1.0)

    def logit(self, X: np.ndarray) -> np.ndarray:
        return self._scaled(X) @ self.w[:-1] + self.w[-1]

    def healthy(self, settings: RankingSettings) -> bool:
        return bool(np.isfinite(self.w).all() and np.linalg.norm(self.w) <= settings.online_max_norm)

    def update(self, x: np.ndarray, y: float, settings: RankingSettings) -> None:
        """Fold ``x`` into the running statistics, then one bounded SGD step on the log loss of (x, y)."""
        x = np.asarray(x, np.float64)
        self.steps += 1
        delta = x - self.mean
        self.mean = self.mean + delta / self.steps
        self.m2 = self.m2 + delta * (x - self.mean)
        z = self._scaled(x[None, :])[0]
        p = 1.0 / (1.0 + math.exp(-float(np.clip(z @ self.w[:-1] + self.w[-1], -30, 30))))
        grad = np.append((p - y) * z, p - y) + settings.online_l2 * self.w
        norm = float(np.linalg.norm(grad))
        if norm > settings.online_max_gradient:
            grad *= settings.online_max_gradient / norm
        self.w = self.w - settings.online_learning_rate / (1.0 + settings.online_decay * self.steps) * grad


class OnlineReranker:
    """Every variant's :class:`OnlineModel`, the event-log cursor, and their checkpoint file."""

    def __init__(self, settings: RankingSettings) -> None:
        assert settings.online_checkpoint is not None  # Settings fills it
        self.path, self.settings = Path(settings.online_checkpoint), settings
        self.models: dict[str, OnlineModel] = {}
        self.cursor = 0
        if self.path.is_file():
            self._load()

    def refresh(self) -> bool:
        """Read the checkpoint again if another process (the learner) wrote a newer one; True when it did."""
        try:
            stamp = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return False
        if stamp == getattr(self, "_stamp", None):
            return False
        self._load()
        return True

    def _load(self) -> None:
        self._stamp = self.path.stat().st_mtime_ns
        state = json.loads(self.path.read_text(encoding="utf-8"))
        if list(state.get("inputs", [])) != list(INPUTS):
            return  # trained on other features: start afresh rather than misread the weights
        self.cursor = int(state["cursor"])
        self.models = {v: OnlineModel(np.asarray(m["w"], np.float64), int(m["steps"]), np.asarray(m["mean"], np.float64),
                                      np.asarray(m["m2"], np.float64)) for v, m in state["variants"].items()}

    def checkpoint(self) -> None:
        """Weights and cursor in one atomic write."""
        state = {"inputs": list(INPUTS), "cursor": self.cursor,
                 "variants": {v: {"w": m.w.tolist(), "steps": m.steps, "mean": m.mean.tolist(), "m2": m.m2.tolist()}
                              for v, m in self.models.items()}}
        write_text_atomic(self.path, json.dumps(state), fsync=True)

    def learn(self, variant: str, x: np.ndarray, clicked: bool) -> None:
        self.models.setdefault(variant, OnlineModel()).update(x, 1.0 if clicked else 0.0, self.settings)

    def consume(self, rows: Iterable[tuple[int, str, np.ndarray | None, bool]], checkpoint_every: int = 1000) -> int:
        """Learn from event-log rows (sequence number, variant, inputs or None, clicked) after the cursor, in
        order; a row without inputs (no ranker served it) only moves the cursor. Checkpoints every
        ``checkpoint_every`` rows learnt and at the end. Returns how many were learnt from."""
        n, moved = 0, False
        for seq, variant, x, clicked in rows:
            if seq <= self.cursor:
                continue  # learnt before the last checkpoint
            self.cursor, moved = seq, True
            if x is None or len(x) != len(INPUTS):
                continue  # no ranker served it, or one from before the features changed
            self.learn(variant, x, clicked)
            n += 1
            if n % checkpoint_every == 0:
                self.checkpoint()
        if moved:
            self.checkpoint()
        return n

    def learn_from_log(self, log: EventLog, limit: int = 10_000) -> int:
        """The events accepted since the cursor: each impression a 0, each click a 1, with the inputs the
        ranker saw when it ordered that product for that request. Returns how many were learnt from."""
        rows = [r for r in log.read(after=self.cursor, limit=limit)]
        served = log.served([r["request_id"] for r in rows if r["type"] in ("impression", "click")])

        def learnable() -> Iterable[tuple[int, str, np.ndarray | None, bool]]:
            for r in rows:
                req = served.get(r["request_id"])
                x = req.inputs.get(r["product_id"]) if req is not None and r["type"] in ("impression", "click") else None
                yield r["seq"], req.variant if req is not None else "", None if x is None else np.asarray(x), r["type"] == "click"

        return self.consume(learnable())

    def scores(self, variant: str, X: np.ndarray, ranker_scores: np.ndarray) -> tuple[np.ndarray, bool]:
        """The order's scores: the ranker's, moved by the variant's online logit; and whether it was applied
        (False: no model yet, or an unhealthy one, so the ranker's order stands)."""
        base = np.asarray(ranker_scores, np.float64)
        model = self.models.get(variant)
        if model is None or model.steps == 0 or not model.healthy(self.settings):
            return base, False
        inputs = np.column_stack([np.asarray(X, np.float64), base])
        return base + self.settings.online_weight * model.logit(inputs), True
