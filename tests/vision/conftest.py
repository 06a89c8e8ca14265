"""Fixtures for the perception tests: one tiny detector trained per test session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from visearch.config import Settings


@pytest.fixture(scope="session")
def trained(tiny_synth, tmp_path_factory):
    """Train through the CLI in a subprocess with a fresh HOME, as a user would."""
    root = tmp_path_factory.mktemp("det")
    home, data_dir, work = root / "home", root / "data", root / "work"
    for d in (home, work):
        d.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("VISEARCH_", "YOLO_"))},
           "HOME": str(home), "VISEARCH_DATA_DIR": str(data_dir)}
    r = subprocess.run([sys.executable, "-m", "visearch", "train", "detector", "--data", str(tiny_synth),
                        "--recipe", "tiny", "--alias", "smoke"], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return root, Settings(data_dir=data_dir)


