"""``visearch eval curve``: the tiny set's held-out photos searched against catalogs grown with
products of a second tiny set, each size in a temporary index; the serving index untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from visearch.catalog_curve import DISTRACTOR_PREFIX, _distractor_table, figures, parse_sizes
from visearch.config import SynthSettings
from visearch.errors import InvalidArgumentError
from visearch.synth import generate

DISTRACTORS = dict(n_products=30, seed=5, n_scenes=3)  # scenes are not searched, only the catalog is used
SMALL = SynthSettings(gallery_size=128, scene_size=320, label_fraction=0.8, sessions_per_product=1.0, workers=1)
OWN_PRODUCTS = 30  # tiny_synth's catalog (tests/conftest.py TINY)
SIZES = (20, 40, 1000)  # 1000: more than both tiny sets hold


@pytest.fixture(scope="module")
def distractors(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wb") / "distractors"
    generate(root, settings=SMALL, **DISTRACTORS)
    return root


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def curve(tiny_models: Path, tiny_synth: Path, distractors: Path, cli, tmp_path_factory: pytest.TempPathFactory):
    """One run of the command (JSON), with the serving index's files before and after."""
    serving = tiny_models / "data" / "index"
    before = _snapshot(serving)
    out = tmp_path_factory.mktemp("curve") / "report"
    r = cli(tiny_models, "eval", "curve", "--data", str(tiny_synth), "--distractors", str(distractors),
            "--sizes", ",".join(map(str, SIZES)), "--out", str(out), "--json", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "warning: size 1000 skipped" in r.stderr
    return json.loads(r.stdout), out, before, _snapshot(serving)


def test_sizes_and_figures(curve):
    report, out, before, after = curve
    assert [e["size"] for e in report["sizes"]] == [20, 40]
    assert [s["size"] for s in report["skipped"]] == [1000] and "larger" in report["skipped"][0]["reason"]
    for e in report["sizes"]:
        assert e["n_products"] == e["size"]
        assert e["from_distractors"] == max(0, e["size"] - OWN_PRODUCTS)
        for kind in ("auto", "tapped"):
            block = e[kind]
            assert block["n"] > 0
            for key in ("top1", "top10", "category_share@10"):
                if block.get(key) is not None:
                    assert 0 <= block[key] <= 1, (e["size"], kind, key)
            assert block["top1"] <= block["top10"]
    assert report["available"] == {"data": OWN_PRODUCTS, "distractors": DISTRACTORS["n_products"]}
    assert json.loads((out / "curve.json").read_text()) == report
    png = out / "curve.png"
    assert png.is_file() and png.stat().st_size > 0
    assert len(list((out / "vectors").glob("*.parquet"))) == 2  # one per data set, kept for the next run
    assert not list(out.glob(".curve-*"))  # the temporary indexes and catalog are gone


def test_serving_index_untouched(curve):
    _, _, before, after = curve
    assert before and after == before


def test_missing_data_is_one_line(cli, distractors, tmp_path):
    r = cli(tmp_path, "eval", "curve", "--data", str(tmp_path / "absent"), "--distractors", str(distractors), "--json")
    assert r.returncode == 1 and r.stdout == ""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("visearch: error:")]
    assert len(errors) == 1 and "no such data set folder" in errors[0], r.stderr
    assert "Traceback" not in r.stderr


def test_parse_sizes():
    assert parse_sizes("40, 20,20,1000") == [20, 40, 1000]
    for bad in ("", "ten", "0,20"):
        with pytest.raises(InvalidArgumentError, match="--sizes"):
            parse_sizes(bad)


def test_distractor_ids_and_articles_cannot_collide():
    own = pa.table({"product_id": ["p1", "p2"], "model_id": ["m1", "m1"], "article": ["111111", None],
                    "image_uris": [["gallery/p1_0.jpg"], ["gallery/p2_0.jpg"]]})
    other = pa.table({"product_id": ["p1", "p9"], "model_id": ["m1", "m2"], "article": ["111111", "222222"],
                      "image_uris": [["gallery/p1_0.jpg"], []]})
    table, dropped = _distractor_table(own, other)
    assert table.column("product_id").to_pylist() == [f"{DISTRACTOR_PREFIX}p1", f"{DISTRACTOR_PREFIX}p9"]
    assert table.column("model_id").to_pylist() == [f"{DISTRACTOR_PREFIX}m1", f"{DISTRACTOR_PREFIX}m2"]
    assert table.column("article").to_pylist() == [None, "222222"] and dropped == 1
    assert table.column("image_uris").to_pylist() == [["_distractors/gallery/p1_0.jpg"], []]


def test_figures_reads_any_nesting():
    summary = {"n": 4, "top1": 0.25, "top10": 0.5, "article_hits": 0.1, "exact": {"labelled": 1},
               "by_photo_kind": {"photo": {"n": 2, "top1": 0.5, "top10": 1.0}}}
    assert figures(summary) == {"n": 4, "top1": 0.25, "top10": 0.5,
                                "by_photo_kind": {"photo": {"n": 2, "top1": 0.5, "top10": 1.0}}}
    assert figures({"screenshot": {"auto": summary}})["screenshot"]["auto"]["top10"] == 0.5
    assert figures({"exact": {"labelled": 1}}) is None
