"""``visearch mlflow serve|uri`` for real: the installed MLflow's server over a store a job
wrote, reached over HTTP with MlflowClient, stopped with SIGTERM; one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from visearch.config import Settings
from visearch.registry import ModelStore


def _env(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISEARCH_", "MLFLOW_"))}
    return {**env, "VISEARCH_DATA_DIR": str(data), **extra}


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visearch", *args], capture_output=True, text=True, timeout=60, env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("visearch: error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


def _model_dir(tmp_path: Path, payload: str) -> Path:
    d = tmp_path / f"model-{payload}"
    d.mkdir()
    (d / "weights.bin").write_text(payload)
    return d


def test_serve_the_project_store_over_http(tmp_path):
    # a job registers two versions in the project's store (SQLite + file artifacts), champion on the first
    data = tmp_path / "data"
    settings = Settings(data_dir=data)
    store = ModelStore(settings)
    with store.run("detector", "r1", {"epochs": 1}) as run:
        store.client.log_metric(run.info.run_id, "map50", 0.5)
        store.register(run.info.run_id, _model_dir(tmp_path, "one"), "visearch-test", {"summary": "first"}, alias="champion")
    with store.run("detector", "r2", {"epochs": 2}) as run:
        store.client.log_metric(run.info.run_id, "map50", 0.7)
        store.register(run.info.run_id, _model_dir(tmp_path, "two"), "visearch-test", {"summary": "second"})

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    out, err = (tmp_path / "out.txt").open("w+"), (tmp_path / "err.txt").open("w+")
    proc = subprocess.Popen([sys.executable, "-m", "visearch", "mlflow", "serve", "--port", str(port)],
                            stdout=out, stderr=err, cwd=tmp_path,
                            # a sourced shared-server env file must not move this server's registry elsewhere
                            env=_env(data, MLFLOW_REGISTRY_STORE_URI=f"sqlite:///{tmp_path / 'elsewhere.db'}"))
    try:
        deadline = time.monotonic() + 45
        while True:
            assert proc.poll() is None, f"server exited ({proc.returncode}): {(tmp_path / 'err.txt').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no /health in 45 s: {(tmp_path / 'err.txt').read_text()[-3000:]}"
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=url, registry_uri=url)
        models = {m.name: m for m in client.search_registered_models()}
        assert models["visearch-test"].aliases == {"champion": "1"}
        assert sorted(int(v.version) for v in client.search_model_versions("name='visearch-test'")) == [1, 2]
        # runs and their metrics are browsable; artifacts the job wrote (file:// under data/mlartifacts) are readable
        runs = client.search_runs([client.get_experiment_by_name("detector").experiment_id], order_by=["metrics.map50 DESC"])
        assert [r.data.metrics["map50"] for r in runs] == [0.7, 0.5]
        r = httpx.get(f"{url}/model-versions/get-artifact", params={"path": "weights.bin", "name": "visearch-test", "version": "2"})
        assert r.status_code == 200 and r.text == "two"

        # promotion through the server: move champion to version 2; the job's store sees it
        client.set_registered_model_alias("visearch-test", "champion", "2")
        listed = {m["name"]: m for m in ModelStore(settings).models()}
        assert listed["visearch-test"]["aliases"] == {"champion": "2"}

        # an experiment created through the server (a notebook) keeps its files in the same folder, via the proxy
        exp = client.create_experiment("notebook")
        assert client.get_experiment(exp).artifact_location.startswith("mlflow-artifacts:")
        run_id = client.create_run(exp).info.run_id
        client.log_text(run_id, "hello", "note.txt")
        assert [p.read_text() for p in (data / "mlartifacts").rglob("note.txt")] == ["hello"]
        # a visearch job pointed at the server: its new experiment's artifacts go where the server keeps them
        remote = ModelStore(settings.model_copy(update={"models": settings.models.model_copy(update={"mlflow_tracking_uri": url})}))
        assert client.get_experiment(remote.experiment("ranker")).artifact_location.startswith("mlflow-artifacts:")

        out.seek(0)
        assert f"MLflow UI and tracking API: {url}" in out.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert rc == 0, (tmp_path / "err.txt").read_text()[-3000:]
    assert "mlflow server stopped" in (tmp_path / "err.txt").read_text()
    with pytest.raises(ConnectionRefusedError):  # the server's own process (uvicorn) is gone too
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_port_taken_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _cli("mlflow", "serve", "--port", str(port), env=_env(tmp_path / "data"))
    assert r.returncode == 1
    line = _one_error_line(r)
    assert f"port {port}" in line and "taken" in line


@pytest.mark.parametrize(
    ("uri", "needle"),
    [("http://mlflow.internal:5000", "already a server"), ("postgresql://u@db/mlflow", "not a local store")],
)
def test_a_store_it_cannot_serve_is_one_line(tmp_path, uri, needle):
    r = _cli("mlflow", "serve", "--port", str(_free_port()),
             env=_env(tmp_path / "data", VISEARCH_MODELS__MLFLOW_TRACKING_URI=uri))
    assert r.returncode == 1
    assert needle in _one_error_line(r)


def test_uri_names_the_server(tmp_path):
    r = _cli("mlflow", "uri", "--port", "5123", env=_env(tmp_path / "data"))
    assert r.returncode == 0 and r.stdout.strip() == "http://127.0.0.1:5123", r.stderr
    r = _cli("mlflow", "uri", "--export", env=_env(tmp_path / "data", VISEARCH_MODELS__MLFLOW_TRACKING_URI="http://mlflow.internal:5000"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["export VISEARCH_MODELS__MLFLOW_TRACKING_URI=http://mlflow.internal:5000",
                                     "export MLFLOW_TRACKING_URI=http://mlflow.internal:5000"]
