"""An experiment owner's actions on a real registry (MLflow, SQLite) and event log, over the tiny models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from visearch.ab.admin import ExperimentAdmin
from visearch.config import Settings
from visearch.errors import ConflictError, InvalidArgumentError
from visearch.events import Event, EventLog
from visearch.experiments import Experiment, Variant, assign
from visearch.registry import ModelStore, parse_ref


@pytest.fixture
def admin(tiny_models: Path, tmp_path: Path) -> ExperimentAdmin:
    """A copy of the tiny models' data dir: promotions here leave the shared one alone."""
    data = shutil.copytree(tiny_models / "data", tmp_path / "data",
                           ignore=shutil.ignore_patterns("events.db*", "experiments", "api_keys.json", "online"))
    return ExperimentAdmin(Settings(data_dir=data))


@pytest.fixture
def candidate(admin: ExperimentAdmin, tmp_path: Path) -> str:
    """Another version of the champion embedder: the candidate an experiment may promote."""
    store = ModelStore(admin.settings)
    copy = shutil.copytree(store.download(parse_ref("models:/visearch-embedder@champion")), tmp_path / "candidate")
    with store.run("tests", "candidate", {}) as run:
        version = store.register(run.info.run_id, copy, "visearch-embedder", json.loads((copy / "card.json").read_text()))
    return f"models:/visearch-embedder/{version}"


def arms(b: str, a: str = "models:/visearch-embedder@champion", dim_b: int = 128):
    return Experiment(name="heads", variants=[Variant(name="control", weight=50, embedder=a),
                                              Variant(name="treatment", weight=50, embedder=b, online_dim=dim_b)])


def test_set_checks_references_and_indexes(admin, candidate):
    with pytest.raises(InvalidArgumentError, match="does not resolve") as e:
        admin.set(arms(b="models:/visearch-embedder@nobody"))
    assert "treatment" in str(e.value)
    with pytest.raises(InvalidArgumentError, match="no 256-d index"):
        admin.set(arms(candidate, dim_b=256))
    assert admin.store.names() == [], "a refused experiment is not stored"
    stored = admin.set(arms(candidate))
    assert stored.version == 1 and admin.store.stamp() == ("heads", 1)
    assert admin.list() == [{"name": "heads", "version": 1, "serving": True, "active": True, "concluded": False,
                             "variants": {"control": 50, "treatment": 50}}]


def test_report_conclude_and_promote(admin, candidate):
    exp = admin.set(arms(candidate))
    rng = np.random.default_rng(0)
    events = []
    for i in range(1500):
        user = f"user-{i}"
        arm = assign(exp, user).name
        p_order = 0.3 if arm == "treatment" else 0.15
        events.append(Event("impression", f"r{i}", "p1", 0, arm, "heads", user, ts=float(i)))
        if rng.random() < p_order:
            events.append(Event("order", f"r{i}", "p1", 0, arm, "heads", user, value=10.0, ts=float(i) + 1))
    admin.events.append(events)
    report = admin.report("heads")
    assert Path(report["files"]["png"]).is_file() and report["mlflow_run"]
    assert report["variants"]["treatment"]["revenue_per_user"]["vs_control"]["significant"]
    store = ModelStore(admin.settings)
    before = store.version_of(parse_ref("models:/visearch-embedder@champion"))
    result = admin.conclude("heads", promote=True, by="owner@example.com")
    assert result["winner"] == "treatment" and "revenue_per_user" in result["reason"]
    version = candidate.rsplit("/", 1)[1]
    assert before != version and store.version_of(parse_ref("models:/visearch-embedder@champion")) == version
    assert store.tags("visearch-embedder", version)["promoted.champion.by"] == "owner@example.com"
    assert "experiment heads" in store.tags("visearch-embedder", version)["promoted.champion.reason"]
    ended = admin.get("heads")
    assert not ended.active and ended.concluded.winner == "treatment" and admin.store.stamp()[0] is None
    assert assign(ended, "user-1").name == "control", "a concluded experiment routes everyone to control"
    with pytest.raises(ConflictError):
        admin.conclude("heads")
    with pytest.raises(ConflictError):
        admin.set(arms(candidate))


def test_stop_routes_everyone_to_control(admin, candidate):
    admin.set(arms(candidate))
    stopped = admin.stop("heads", "latency")
    assert not stopped.active and stopped.stopped_reason == "latency" and stopped.version == 2
    assert {assign(stopped, f"u{i}").name for i in range(200)} == {"control"}
    assert admin.stop("heads", "again").version == 2, "stopping a stopped experiment changes nothing"


def test_events_of_one_experiment_only(tmp_path):
    log = EventLog(tmp_path / "e.db")
    log.append([Event("click", "r1", experiment="a", user_id="u", variant="x"),
                Event("click", "r2", experiment="b", user_id="u", variant="x")])
    assert [e["type"] for e in log.of_experiment("a", page=1)] == ["click"]
    assert list(log.of_experiment("none")) == []


def test_a_variant_searches_its_own_named_index(admin, tmp_path, cli, tiny_synth):
    """An embedder other than the champion has its own vectors, so its variant names the index built from them."""
    from visearch.searcher import Searcher

    root = admin.settings.data_dir.parent
    spec = Experiment(name="other-space", variants=[Variant(name="control", weight=50),
                                                    Variant(name="other", weight=50, index="other")])
    with pytest.raises(InvalidArgumentError, match="index-other"):
        admin.set(spec)
    vectors = next((admin.settings.data_dir / "vectors").glob("*.parquet"))
    serving = (admin.settings.data_dir / "index" / "CURRENT").read_text()
    r = cli(root, "index", "build", "--name", "other", "--vectors", str(vectors), "--catalog",
            str(tiny_synth / "products.parquet"), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (admin.settings.data_dir / "index" / "CURRENT").read_text() == serving, "the serving index is untouched"
    r = cli(root, "index", "build", "--online-dim", "256", "--name", "other", "--vectors", str(vectors), "--quiet")
    assert r.returncode == 0 and (admin.settings.data_dir / "index-other-d256" / "CURRENT").is_file(), r.stderr[-2000:]
    assert cli(root, "index", "build", "--online-dim", "100", "--vectors", str(vectors)).returncode != 0
    assert admin.set(spec).version == 1
    searcher = Searcher(admin.settings.index)
    query = np.stack(pq.read_table(vectors).column("vector").to_numpy(zero_copy_only=False)[:2]).astype(np.float32)
    own, other = searcher.search(query, 3), searcher.search(query, 3, index="other")
    assert [h.product_id for h in own[0]] == [h.product_id for h in other[0]], "the same vectors, the same answers"
    assert set(searcher.versions()) == {"128", "128-other"}
    searcher.close()
