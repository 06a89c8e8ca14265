"""``visearch eval detector|ocr`` end to end: one clean JSON object on stdout, JSON + PNG on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from PIL import Image


def run_eval(trained, *args):
    root, settings = trained
    env = {**os.environ, "VISEARCH_DATA_DIR": str(settings.data_dir), "VISEARCH_MODELS__DETECTOR": "models:/visearch-detector@smoke",
           "HOME": str(root / "home")}
    r = subprocess.run([sys.executable, "-m", "visearch", "eval", *args, "--json"], capture_output=True, text=True, env=env,
                       cwd=root / "work", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def test_eval_detector(trained, tiny_synth, tmp_path):
    report = run_eval(trained, "detector", "--data", str(tiny_synth), "--report", str(tmp_path / "det.json"))
    for key in ("mAP50", "mAP50_95", "mAP50_agnostic", "precision", "recall", "n_images"):
        assert key in report
    assert report["mAP50"] is None and "class-agnostic" in report["note"]  # the tiny model learns boxes only
    assert 0 <= report["mAP50_agnostic"] <= 1 and report["n_images"] > 0
    assert json.loads((tmp_path / "det.json").read_text()) == report
    assert Image.open(tmp_path / "det.png").width > 0


def test_eval_ocr_with_truth_and_detector_boxes(trained, tiny_synth, tmp_path):
    truth = run_eval(trained, "ocr", "--data", str(tiny_synth), "--boxes", "truth", "--split", "train", "--limit", "12",
                     "--report", str(tmp_path / "ocr.json"))
    for key in ("recall", "precision", "per_object_recall", "n_readable"):
        assert key in truth
    assert truth["n_images"] == 12
    if truth["n_readable"]:
        assert truth["recall"] >= 0.5 and truth["per_object_recall"] <= truth["recall"]
    assert truth["precision"] is None or truth["precision"] >= 0.9
    assert (tmp_path / "ocr.png").is_file()
    det = run_eval(trained, "ocr", "--data", str(tiny_synth), "--split", "train", "--limit", "4")
    assert det["boxes"] == "detector" and det["n_images"] == 4


def test_eval_on_a_folder_that_is_not_a_data_set(trained, tmp_path):
    root, settings = trained
    env = {**os.environ, "VISEARCH_DATA_DIR": str(settings.data_dir)}
    r = subprocess.run([sys.executable, "-m", "visearch", "eval", "detector", "--data", str(tmp_path), "--json"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().startswith("visearch: error:") and "WB-Synth" in r.stderr


def test_eval_detector_names_categories_as_search_does(tiny_models, tiny_synth, cli, tmp_path):
    """With a crop classifier registered, ``eval detector`` also gives mAP50 by the categories search uses
    (here the tiny detector knows boxes only, so the classifier names every category); ``off`` leaves it out."""
    r = cli(tiny_models, "eval", "detector", "--data", str(tiny_synth), "--report", str(tmp_path / "det.json"), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert report["classifier"] == "models:/visearch-classifier@champion"
    assert 0 <= report["mAP50_with_classifier"] <= 1 and report["classifier_detector_weight"] >= 0
    r = cli(tiny_models, "eval", "detector", "--data", str(tiny_synth), "--classifier", "off", "--report",
            str(tmp_path / "off.json"), "--json")
    assert r.returncode == 0 and "mAP50_with_classifier" not in json.loads(r.stdout)


BOOT, MUG = (10.0, 10.0, 60.0, 90.0), (100.0, 20.0, 150.0, 60.0)


def test_map50_counts_a_box_right_only_with_its_category():
    from visearch.vision.evaluate import map50

    truths = [(BOOT, "boots"), (MUG, "mugs")]
    assert map50([([(BOOT, "boots", 0.9), (MUG, "mugs", 0.8)], truths)]) == pytest.approx(1.0, abs=0.01)
    assert map50([([(BOOT, "mugs", 0.9), (MUG, "boots", 0.8)], truths)]) == 0.0, "right boxes, wrong categories"
    half = map50([([(BOOT, "boots", 0.9), (MUG, "boots", 0.8)], truths)])
    assert half == pytest.approx(0.5, abs=0.01), "boots found, mugs missed"
    shifted = (BOOT[0] + 40, BOOT[1], BOOT[2] + 40, BOOT[3])  # IoU < 0.5 with the true box
    assert map50([([(shifted, "boots", 0.9), (MUG, "mugs", 0.8)], truths)]) == pytest.approx(0.5, abs=0.01)
    # a duplicate box of the same object is a false positive, below the true one it costs nothing
    assert map50([([(BOOT, "boots", 0.9), (BOOT, "boots", 0.1), (MUG, "mugs", 0.8)], truths)]) == pytest.approx(1.0, abs=0.01)
    # ranked above the true positive, a false positive lowers precision
    assert map50([([(MUG, "boots", 0.95), (BOOT, "boots", 0.9), (MUG, "mugs", 0.8)], truths)]) < 0.9
    assert map50([]) == 0.0 and map50([([], truths)]) == 0.0
