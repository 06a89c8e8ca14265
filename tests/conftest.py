"""Shared fixtures. Outbound network is blocked for every test (pytest-socket, see
pyproject.toml); loopback stays open for the servers the tests start themselves."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from visearch.config import SynthSettings
from visearch.synth import generate

# a tiny WB-Synth: enough products for every split, small photos to stay fast
TINY = dict(n_products=30, seed=7, n_scenes=45)
TINY_SETTINGS = SynthSettings(gallery_size=128, scene_size=320, label_fraction=0.8, sessions_per_product=1.0, workers=1)


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny WB-Synth data set per test session (read-only for tests)."""
    root = tmp_path_factory.mktemp("wb") / "tiny"
    generate(root, settings=TINY_SETTINGS, **TINY)
    return root


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's VISEARCH_* variables or .env file."""
    for key in list(os.environ):
        if key.startswith("VISEARCH_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def run_cli(root: Path, *args: str, timeout: float = 600, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``visearch ARGS`` in a clean environment whose data dir is ``root/data`` (plus ``env``)."""
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISEARCH_", "HF_", "YOLO_"))}
    env.update(HOME=str(root / "home"), VISEARCH_DATA_DIR=str(root / "data"), VISEARCH_EMBEDDING__THREADS="1", **extra)
    (root / "work").mkdir(parents=True, exist_ok=True)
    return subprocess.run([sys.executable, "-m", "visearch", *args], cwd=root / "work", env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cli():
    """:func:`run_cli`, for tests that drive the command line."""
    return run_cli


@pytest.fixture(scope="session")
def tiny_models(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny detector, backbone, head, crop classifier, tag model and refiner trained on ``tiny_synth`` and registered
    as @champion, the catalog tagged, vectorised and indexed: a data dir (``root/data``) the search stages load from."""
    root = tmp_path_factory.mktemp("models")
    (root / "home").mkdir()
    # train on a copy: ultralytics writes label caches beside the labels, and tiny_synth stays pristine
    data = str(shutil.copytree(tiny_synth, root / "tiny"))
    for args in (
        ("train", "detector", "--data", data, "--recipe", "tiny", "--alias", "champion"),
        ("train", "backbone", "--data", data, "--recipe", "tiny", "--alias", "champion", "--quiet"),
        ("train", "head", "--data", data, "--recipe", "tiny", "--alias", "champion"),
        ("train", "classifier", "--data", data, "--recipe", "tiny", "--alias", "champion", "--quiet"),
        ("train", "tags", "--data", data, "--recipe", "tiny", "--alias", "champion", "--quiet"),
        ("train", "refiner", "--data", data, "--recipe", "tiny", "--alias", "champion", "--quiet"),
        ("tags", "generate", "--data", data, "--quiet"),
        ("vectorize", "--data", data, "--quiet"),
        ("index", "build", "--vectors", str(root / "data" / "vectors" / "tiny.parquet"),
         "--catalog", str(Path(data) / "products.parquet"), "--quiet"),
    ):
        r = run_cli(root, *args)
        assert r.returncode == 0, f"{args}: {r.stdout[-1500:]}{r.stderr[-3000:]}"
    return root
