"""Shared fixtures. Outbound network is blocked for every test (pytest-socket, see
pyproject.toml); loopback stays open for the servers the tests start themselves."""

from __future__ import annotations

import os
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
