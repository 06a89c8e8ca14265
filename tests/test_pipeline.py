"""The main job end to end, as ``make demo`` runs it: tiny models trained and registered,
the catalog vectorised, the index built, photos searched, through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VISEARCH_", "HF_", "YOLO_"))}
    env.update(HOME=str(root / "home"), VISEARCH_DATA_DIR=str(root / "data"), VISEARCH_EMBEDDING__THREADS="1")
    return subprocess.run([sys.executable, "-m", "visearch", *args], cwd=root / "work", env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def demo(tiny_synth, tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    for d in ("home", "work"):
        (root / d).mkdir()
    data = str(tiny_synth)
    for args in (
        ("train", "detector", "--data", data, "--recipe", "tiny", "--alias", "champion"),
        ("train", "backbone", "--data", data, "--recipe", "tiny", "--alias", "champion", "--quiet"),
        ("train", "head", "--data", data, "--recipe", "tiny", "--alias", "champion"),
        ("vectorize", "--data", data, "--quiet"),
        ("index", "build", "--vectors", str(root / "data" / "vectors" / "tiny.parquet"),
         "--catalog", str(tiny_synth / "products.parquet"), "--quiet"),
    ):
        r = run(root, *args)
        assert r.returncode == 0, f"{args}: {r.stdout[-1500:]}{r.stderr[-3000:]}"
    return root


def test_search_returns_products_from_the_catalog(demo, tiny_synth):
    photos = sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[:2]
    r = run(demo, "search", *map(str, photos), "--top", "5", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        result = json.loads(line)
        assert result["objects"] and 0 <= result["picked"] < len(result["objects"])
        assert len(result["products"]) == 5
        assert all(p["product_id"].startswith("p") and "title" in p for p in result["products"])
        scores = [p["score"] for p in result["products"]]
        assert scores == sorted(scores, reverse=True)


def test_article_on_the_photo_is_a_direct_hit(demo, tiny_synth):
    import pyarrow.parquet as pq

    scenes = pq.read_table(tiny_synth / "scenes.parquet").to_pydict()
    i = scenes["article_visible"].index(True)
    r = run(demo, "search", str(tiny_synth / scenes["image"][i]), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    articles = {a["article"]: a["product_id"] for a in json.loads(r.stdout)["articles"]}
    assert articles.get(scenes["article"][i]) == scenes["product_id"][i]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("search", "missing.jpg"), "no such file"),
        (("search", "--object", "99", "PHOTO"), "does not exist"),
    ],
)
def test_bad_queries_are_one_line(demo, tiny_synth, args, needle):
    photo = str(next((tiny_synth / "scenes" / "images" / "test").glob("*.jpg")))
    (demo / "work" / "note.txt").write_text("не картинка")
    r = run(demo, *[photo if a == "PHOTO" else a for a in args])
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith("visearch: error:") and needle in r.stderr
    r = run(demo, "search", "note.txt")
    assert r.returncode == 1 and "not a supported image" in r.stderr
