"""Fixtures for the embedding tests: a test-made backbone checkpoint, and one tiny
backbone + head trained through the CLI per session (as a user would: a subprocess with
a fresh HOME and data dir)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from visearch.config import Settings


@pytest.fixture(scope="session")
def pico_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised 64-px SigLIP-style open_clip model saved as a hub-style folder."""
    from training.backbone import build_model
    from visearch.embedding.archs import TEST_ARCH
    from visearch.embedding.backbone import save_backbone_folder

    model, config = build_model(TEST_ARCH, seed=3)
    return save_backbone_folder(model, config, tmp_path_factory.mktemp("pico") / "backbone")


def cli_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISEARCH_", "HF_"))}
    return {**env, "HOME": str(root / "home"), "VISEARCH_DATA_DIR": str(root / "data"), "VISEARCH_EMBEDDING__THREADS": "1"}


def run_cli(root: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "visearch", *args], cwd=root / "work", env=cli_env(root),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    """``cli(root, *args)`` runs ``visearch *args`` with ``root``'s HOME, data dir and working dir."""
    return run_cli


@pytest.fixture(scope="session")
def trained(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Settings]:
    """``visearch train backbone`` then ``visearch train head``, tiny recipes, alias ``smoke``."""
    root = tmp_path_factory.mktemp("emb")
    for d in ("home", "work"):
        (root / d).mkdir()
    r = run_cli(root, "train", "backbone", "--data", str(tiny_synth), "--recipe", "tiny", "--alias", "smoke", "--quiet")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "not pretrained SigLIP 2" in r.stdout
    r = run_cli(root, "train", "head", "--data", str(tiny_synth), "--recipe", "tiny", "--alias", "smoke",
                "--backbone", "models:/visearch-backbone@smoke")
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert "cleaning:" in r.stdout
    return root, Settings(data_dir=root / "data")
