"""The CLI as a user runs it: a subprocess, one-line errors, non-zero exits."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "visearch", *args],
        capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})},
    )


def test_synth_check_and_info(tmp_path):
    out = tmp_path / "wb"
    r = run("synth", "--out", str(out), "--products", "6", "--scenes", "4", "--seed", "5", "--preview", "--quiet",
            env={"VISEARCH_SYNTH__SCENE_SIZE": "192", "VISEARCH_SYNTH__GALLERY_SIZE": "96"})
    assert r.returncode == 0, r.stderr
    assert "products" in r.stdout and (out / "preview.png").is_file()
    r = run("synth", "--check", str(out))
    assert r.returncode == 0 and "ok" in r.stdout
    r = run("info", "--json", env={"VISEARCH_DATA_DIR": str(tmp_path), "VISEARCH_INDEX__API_KEY": "secret"})
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["versions"]["torch"] == "2.14.1"
    assert info["datasets"][0]["products"] == 6
    assert info["config"]["index"]["api_key"] == "***"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("synth", "--out", "X", "--products", "-3"), 2, "--products"),
        (("synth", "--out", "X", "--scenes", "-1"), 2, "--scenes"),
        (("synth", "--out", "X", "--seed", "abc"), 2, "--seed"),
        (("synth", "--out", "/proc/visearch/out"), 1, "cannot write"),
        (("synth",), 1, "--out"),
        (("synth", "--check", "nowhere"), 1, "not a directory"),
        (("synth", "--frobnicate"), 2, "No such option"),
    ],
)
def test_bad_arguments_give_one_line(args, code, needle):
    r = run(*args)
    assert r.returncode == code
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("visearch: error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_dir(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user that ignores permissions")
        r = run("synth", "--out", str(locked / "wb"), "--products", "2")
        assert r.returncode == 1 and "cannot write" in r.stderr
    finally:
        locked.chmod(0o700)


def test_bad_setting_is_one_line():
    r = run("info", env={"VISEARCH_INDEX__EF": "lots"})
    assert r.returncode == 1
    assert r.stderr.strip().startswith("visearch: error: VISEARCH_INDEX__EF")
