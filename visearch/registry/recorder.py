"""One way to record a trained model: params, curves, held-out figures, files and a registered version.

Every training job (detector, backbone, head, and the ranker, tags and refiner jobs to come)
talks to MLflow only through :class:`ModelRecorder`, the way ultralytics' trainers report
through callbacks: ``params`` once, ``curve`` at the end of each epoch, ``register`` at the
end. One metric-key scheme follows: ``train/...`` for curves, ``val/...`` for figures on the
held-out split, ``time/...`` for durations.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from visearch.registry.card import ModelCard, flat_metrics
from visearch.registry.store import ModelStore

__all__ = ["ModelRecorder"]


class ModelRecorder:
    """An MLflow run of one job; use as a context manager (the run ends FAILED if the body raises)."""

    def __init__(self, store: ModelStore, experiment: str, run_name: str, params: dict[str, Any],
                 tags: dict[str, str] | None = None, parent: ModelRecorder | None = None) -> None:
        self.store = store
        self.experiment = experiment
        self.run_name = run_name
        self.params = params
        self.tags = dict(tags or {})
        self.parent = parent
        self.run_id = ""

    def __enter__(self) -> ModelRecorder:
        tags = dict(self.tags)
        if self.parent is not None:
            tags["mlflow.parentRunId"] = self.parent.run_id
        self._run = self.store.run(self.experiment, self.run_name, self.params, tags)
        self.run_id = self._run.__enter__().info.run_id
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        return self._run.__exit__(exc_type, exc, tb)

    @contextmanager
    def child(self, run_name: str, params: dict[str, Any], tags: dict[str, str] | None = None) -> Iterator[ModelRecorder]:
        """A nested run: each run registers the model it is about (a baseline trained beside the main one)."""
        with ModelRecorder(self.store, self.experiment, run_name, params, tags, parent=self) as child:
            yield child

    def curve(self, metrics: dict[str, float], step: int, prefix: str = "train") -> None:
        """Points of the training curves at ``step`` (an epoch), under ``prefix/``."""
        self._log(flat_metrics(metrics, prefix), step)

    def figures(self, tree: dict[str, Any], prefix: str = "val") -> None:
        """Final figures (nested dicts allowed), flattened to one key scheme."""
        self._log(flat_metrics(tree, prefix))

    def _log(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        if not metrics:
            return
        now = int(time.time() * 1000)
        self.store.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step or 0) for k, v in metrics.items()])

    def register(self, folder: Path, card: ModelCard, alias: str | None = None) -> ModelCard:
        """Log the folder (with ``card.json``) and register it as a new version of ``card.name``; returns the card
        with its version and run filled in."""
        card = card.model_copy(update={"run_id": self.run_id})
        self.figures(card.val_metrics, "val")
        if card.train_seconds is not None:
            self._log({"time/train_seconds": float(card.train_seconds)})
        version = self.store.register(self.run_id, folder, card.name, card.to_dict(), alias=alias)
        return card.model_copy(update={"version": version})
