"""Loading by reference, for real: an MLflow store on disk, a hub cache laid out as the
hub lays it out, and S3 through moto (the only fake: no cloud account exists here)."""

from __future__ import annotations

import json

import pytest

from visearch.config import Settings
from visearch.errors import NotFoundError
from visearch.registry import CARD_FILE, ModelStore, resolve_model


@pytest.fixture
def settings(tmp_path):
    return Settings(data_dir=tmp_path / "data")


def _model_dir(tmp_path, payload: str):
    d = tmp_path / f"model-{payload}"
    d.mkdir()
    (d / "weights.bin").write_text(payload)
    return d


def test_register_alias_and_load_back(settings, tmp_path):
    store = ModelStore(settings)
    with store.run("detector", "r1", {"epochs": 1, "imgsz": 64}) as run:
        v1 = store.register(run.info.run_id, _model_dir(tmp_path, "one"), "visearch-test", {"summary": "first"}, alias="champion")
    with store.run("detector", "r2", {"epochs": 2}) as run:
        v2 = store.register(run.info.run_id, _model_dir(tmp_path, "two"), "visearch-test", {"summary": "second"}, alias="challenger")
    assert (v1, v2) == ("1", "2")
    champion = resolve_model("models:/visearch-test@champion", settings)
    assert (champion / "weights.bin").read_text() == "one"
    assert json.loads((champion / CARD_FILE).read_text())["summary"] == "first"
    assert (resolve_model("models:/visearch-test/2", settings) / "weights.bin").read_text() == "two"
    # promotion is moving an alias
    store.client.set_registered_model_alias("visearch-test", "champion", "2")
    assert (resolve_model("models:/visearch-test@champion", settings) / "weights.bin").read_text() == "two"
    listed = {m["name"]: m for m in store.models()}
    assert listed["visearch-test"]["versions"] == [1, 2]
    assert listed["visearch-test"]["aliases"] == {"champion": "2", "challenger": "2"}


def test_one_run_registers_several_versions(settings, tmp_path):
    store = ModelStore(settings)
    with store.run("detector", "two-stages", {}) as run:
        store.register(run.info.run_id, _model_dir(tmp_path, "stage1"), "visearch-test", {"recipe": "quick"}, alias="quick")
        store.register(run.info.run_id, _model_dir(tmp_path, "stage2"), "visearch-test", {"recipe": "full"}, alias="full")
    assert (resolve_model("models:/visearch-test@quick", settings) / "weights.bin").read_text() == "stage1"
    assert (resolve_model("models:/visearch-test@full", settings) / "weights.bin").read_text() == "stage2"


def test_unknown_registry_model(settings):
    with pytest.raises(NotFoundError, match="no such registered model"):
        resolve_model("models:/nothing@champion", settings)


def test_local_path(settings, tmp_path):
    d = _model_dir(tmp_path, "local")
    assert resolve_model(str(d), settings) == d
    assert resolve_model(f"local-dir:{d}", settings) == d
    with pytest.raises(NotFoundError):
        resolve_model(f"local-dir:{tmp_path / 'gone'}", settings)


def test_hub_reference_reads_the_local_cache_offline(settings, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--visearch--tiny-test"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "weights.bin").write_text("from the hub cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import importlib

    import huggingface_hub.constants

    importlib.reload(huggingface_hub.constants)
    path = resolve_model("hf-hub:visearch/tiny-test", settings)
    assert (path / "weights.bin").read_text() == "from the hub cache"
    with pytest.raises(NotFoundError, match="local hub cache"):
        resolve_model("hf-hub:visearch/absent", settings)


def test_s3_object_and_prefix(settings, monkeypatch):
    moto = pytest.importorskip("moto")
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with moto.mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        s3.put_object(Bucket="models", Key="detector/v1/weights.bin", Body=b"s3 weights")
        s3.put_object(Bucket="models", Key="detector/v1/card.json", Body=b"{}")
        folder = resolve_model("s3://models/detector/v1", settings)
        assert sorted(p.name for p in folder.iterdir()) == ["card.json", "weights.bin"]
        single = resolve_model("s3://models/detector/v1/weights.bin", settings)
        assert single.read_bytes() == b"s3 weights"
        with pytest.raises(NotFoundError, match="no such object"):
            resolve_model("s3://models/absent", settings)
