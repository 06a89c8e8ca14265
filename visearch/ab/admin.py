"""What an experiment owner does: set an experiment, stop it, read its report, conclude it.

The HTTP admin API and ``visearch experiments`` both call :class:`ExperimentAdmin`, so the
checks are the same wherever a change comes from: every variant's model reference resolves
in the registry, its online size has an index, a concluded experiment stays as it ended.
The running service follows the store (it reloads the serving experiment by itself).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from visearch.ab.report import METRICS, experiment_report, report_chart
from visearch.config import Settings
from visearch.errors import ConflictError, InvalidArgumentError, NotFoundError
from visearch.events import EventLog
from visearch.experiments import Conclusion, Experiment, ExperimentStore

__all__ = ["ExperimentAdmin", "PRIMARY_METRIC"]

PRIMARY_METRIC = "revenue_per_user"  # what 'the winner' means when an owner does not name one


class ExperimentAdmin:
    """The experiment store, the event log and the registry, seen by an experiment owner."""

    def __init__(self, settings: Settings, events: EventLog | None = None) -> None:
        assert settings.serving.experiments_dir is not None and settings.serving.events_path is not None
        self.settings = settings
        self.store = ExperimentStore(settings.serving.experiments_dir)
        self._events = events

    @property
    def events(self) -> EventLog:
        if self._events is None:
            assert self.settings.serving.events_path is not None
            self._events = EventLog(self.settings.serving.events_path)
        return self._events

    # ------------------------------------------------------------------ reading
    def list(self) -> list[dict[str, Any]]:
        serving = self.store.stamp()[0]
        out = []
        for name in self.store.names():
            e = self.store.get(name)
            out.append({"name": name, "version": e.version, "serving": name == serving, "active": e.active,
                        "concluded": e.concluded is not None,
                        "variants": {v.name: v.weight for v in e.variants}})
        return out

    def get(self, name: str, version: int | None = None) -> Experiment:
        return self.store.get(name, version)

    # ------------------------------------------------------------------ changing
    def check(self, experiment: Experiment) -> None:
        """Every variant's embedder resolves in the registry and its online size has an index to search."""
        from visearch.registry import pin_model
        from visearch.searcher import index_settings_for

        problems = []
        for v in experiment.variants:
            try:
                pin_model(v.embedder, self.settings)
            except Exception as e:  # noqa: BLE001 - each problem is reported, not the first only
                problems.append(f"variant {v.name!r}: embedder {v.embedder!r} does not resolve ({str(e).splitlines()[0]})")
            index = index_settings_for(self.settings.index, v.online_dim, v.index)
            if index.backend == "edge" and index.path is not None and not (index.path / "CURRENT").is_file():
                how = f"--online-dim {v.online_dim}" + (f" --name {v.index}" if v.index else "")
                problems.append(f"variant {v.name!r}: no {v.online_dim}-d index at {index.path}; build it with "
                                f"visearch index build {how} --vectors ... (of the variant's embedder)")
        if problems:
            raise InvalidArgumentError("; ".join(problems))

    def set(self, experiment: Experiment, *, serve: bool = True) -> Experiment:
        """Store ``experiment`` as its next version (weights changed minimally) and, by default, serve it."""
        if self.store.versions(experiment.name):
            before = self.store.get(experiment.name)
            if before.concluded is not None:
                raise ConflictError(f"experiment {experiment.name!r} was concluded (winner {before.concluded.winner!r});"
                                    " start a new one under another name")
        self.check(experiment)
        stored = self.store.put(experiment)
        if serve:
            self.store.serve(stored.name)
        return stored

    def stop(self, name: str, reason: str) -> Experiment:
        """Route everyone to control from now on (a new version, inactive), keeping the events."""
        return self.store.stop(name, reason)

    # ------------------------------------------------------------------ judging
    def report(self, name: str, *, out_dir: Path | None = None, log_mlflow: bool = True) -> dict[str, Any]:
        """The report over every event so far (JSON and PNG under ``out_dir``), logged to MLflow as a run."""
        versions = [self.store.get(name, v) for v in self.store.versions(name)]
        if not versions:
            raise NotFoundError(f"no experiment {name!r}; visearch experiments list shows those there are")
        x = self.settings.experiments
        report = experiment_report(self.events.of_experiment(name), versions, alpha=x.alpha, effect=x.expected_effect,
                                   srm_threshold=x.srm_threshold)
        folder = out_dir or self.settings.data_dir / "reports" / "experiments" / name
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        json_path, png_path = folder / f"report-{stamp}.json", folder / f"report-{stamp}.png"
        json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        report_chart(report, png_path)
        report["files"] = {"json": str(json_path), "png": str(png_path)}
        if log_mlflow:
            report["mlflow_run"] = self._log(report, json_path, png_path)
        return report

    def _log(self, report: dict[str, Any], json_path: Path, png_path: Path) -> str:
        """An MLflow run of the report: its figures (the project's one key scheme) and both files."""
        from visearch.registry import ModelStore
        from visearch.registry.recorder import ModelRecorder

        store = ModelStore(self.settings)
        params = {"experiment": report["experiment"], "version": report["version"], "control": report["control"]}
        figures: dict[str, Any] = {"users": report["users"], "mixed_users": report["mixed_users"],
                                   "srm_p_value": report["srm"]["p_value"]}
        for variant, row in report["variants"].items():
            figures[variant] = {"users": row["users"], **{m: row[m]["value"] for m in METRICS}}
        with ModelRecorder(store, self.settings.experiments.mlflow_experiment, f"report-{report['experiment']}", params,
                           {"visearch.kind": "ab-report"}) as recorder:
            recorder.figures(figures, prefix="report")
            for path in (json_path, png_path):
                store.client.log_artifact(recorder.run_id, str(path))
            return recorder.run_id

    def winner(self, report: dict[str, Any], metric: str = PRIMARY_METRIC) -> str | None:
        """The arm whose always-valid difference to control on ``metric`` is positive and largest, if any."""
        best, value = None, 0.0
        for name, row in report["variants"].items():
            d = row[metric].get("vs_control")
            if d and d["always_valid_low"] > 0 and d["difference"] > value:
                best, value = name, d["difference"]
        return best

    def conclude(self, name: str, *, winner: str | None = None, promote: bool = False, by: str = "cli",
                 reason: str = "", metric: str = PRIMARY_METRIC) -> dict[str, Any]:
        """End the experiment on its report: the named winner, else the best significant arm, else control.

        With ``promote``, the winner's embedder version becomes ``@champion`` (the service's reload picks it
        up) and the registry records who and why.
        """
        from visearch.registry import ModelStore, parse_ref, pin_model

        current = self.store.get(name)
        if current.concluded is not None:
            raise ConflictError(f"experiment {name!r} was concluded already (winner {current.concluded.winner!r})")
        report = self.report(name)
        chosen = winner or self.winner(report, metric) or current.control.name
        arm = current.variant(chosen)
        figure = report["variants"][chosen][metric]
        relative = figure.get("vs_control", {}).get("relative")
        why = reason or f"{chosen}: {metric} {figure['value']:.4g}" + (
            f", {relative:+.1%} vs control" if relative is not None else " (control kept)")
        promoted = None
        if promote:
            pinned = pin_model(arm.embedder, self.settings)
            if parse_ref(arm.embedder).scheme != "models":
                raise InvalidArgumentError(f"cannot promote {arm.embedder!r}: only registry versions (models:/...) can be")
            previous = ModelStore(self.settings).promote(pinned.name, pinned.version, "champion", by,
                                                         f"experiment {name}: {why}")
            promoted = f"{pinned.ref} -> @champion (was {previous or 'none'})"
        ended = current.model_copy(update={"active": False, "concluded": Conclusion(
            winner=chosen, reason=why, by=by, at=time.time(), promoted=promoted)})
        stored = self.store.put(ended)
        if self.store.stamp()[0] == name:
            self.store.serve(None)
        return {"experiment": name, "version": stored.version, "winner": chosen, "reason": why, "promoted": promoted,
                "report": report["files"], "mlflow_run": report.get("mlflow_run")}

