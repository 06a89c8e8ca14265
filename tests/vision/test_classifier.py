"""The crop category classifier for real: trained (tiny recipe) by the CLI on a tiny WB-Synth, loaded
back by reference and through a bundle, and fused with the detector's opinion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from visearch.config import Settings
from visearch.vision.classifier import CategoryClassifier, refine, square_crop
from visearch.vision.detector import Detection

NAMES = ["boot", "mug", "sneaker"]


def _det(category: str, score: float, fallback: bool = False) -> Detection:
    return Detection((0.0, 0.0, 10.0, 10.0), 0, category, score, fallback=fallback)


def test_fusion_weighs_both_opinions():
    probs = np.array([[0.5, 0.1, 0.4]], np.float32)
    # the classifier alone (class-agnostic detector): its top category
    (a,) = refine([_det("object", 0.9)], probs, NAMES, detector_weight=0.5, ids={"sneaker": 5})
    assert a.category == "boot" and a.category_id == -1 and a.category_score == pytest.approx(0.5)
    # the detector is sure it is a sneaker: together they overrule the classifier's narrow lead
    (b,) = refine([_det("sneaker", 0.9)], probs, NAMES, detector_weight=0.5, ids={"sneaker": 5})
    assert b.category == "sneaker" and b.category_id == 5 and b.category_score == pytest.approx(0.85 / 1.45)
    # a weightless detector changes nothing; the whole-photo fallback is left alone
    (c,) = refine([_det("sneaker", 0.9)], probs, NAMES, detector_weight=0.0)
    assert c.category == "boot"
    (d,) = refine([_det("object", 0.0, fallback=True)], probs, NAMES, detector_weight=0.5)
    assert d.category == "object" and d.category_score is None


def test_square_crop_keeps_the_shape():
    image = Image.new("RGB", (200, 100), (255, 0, 0))
    crop = square_crop(image, (10, 10, 110, 60), 64)  # 100 x 50 box: padded above and below
    assert crop.size == (64, 64)
    px = np.asarray(crop)
    assert tuple(px[32, 32]) == (255, 0, 0) and tuple(px[2, 32]) == (114, 114, 114)
    assert square_crop(image, (-50, -50, 500, 500), 32).size == (32, 32)  # boxes past the edges are clipped


@pytest.fixture(scope="module")
def trained(tiny_synth: Path, tmp_path_factory: pytest.TempPathFactory, cli) -> Path:
    root = tmp_path_factory.mktemp("classifier")
    r = cli(root, "train", "classifier", "--data", str(tiny_synth), "--recipe", "tiny", "--alias", "champion", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    return root


def test_trained_classifier_loads_by_reference_and_through_a_bundle(trained, tiny_synth, tmp_path):
    from visearch.bundles import export_bundle, import_bundle
    from visearch.registry import ModelStore, parse_ref

    settings = Settings(data_dir=trained / "data")
    clf = CategoryClassifier.from_ref("models:/visearch-classifier@champion", settings)
    card = json.loads((ModelStore(settings).download(parse_ref("models:/visearch-classifier@champion")) / "card.json").read_text())
    assert card["task"] == "classifier" and card["pretrained"] is False and card["classes"] == clf.names
    photo = Image.open(sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[0]).convert("RGB")
    boxes = [(0, 0, 100, 100), (50, 60, 200, 220)]
    p = clf.probs(photo, boxes)
    assert p.shape == (2, len(clf.names)) and np.allclose(p.sum(axis=1), 1, atol=1e-3)

    bundle = export_bundle(["models:/visearch-classifier@champion"], tmp_path / "c.tar.gz", settings)
    assert bundle["models"][0]["name"] == "visearch-classifier"
    target = Settings(data_dir=tmp_path / "data")
    import_bundle(Path(bundle["path"]), target)
    again = CategoryClassifier.from_ref("models:/visearch-classifier@champion", target)
    assert again.names == clf.names and np.allclose(again.probs(photo, boxes), p, atol=5e-3)  # fp16 weights


def test_the_weight_that_names_categories_best_is_chosen():
    from visearch.vision.evaluate import CategoryVote, choose_weight

    sure, unsure = np.array([0.1, 0.8, 0.1]), np.array([0.4, 0.35, 0.25])
    votes = [CategoryVote("mug", 0.9, sure, "mug", "shopper")] * 4  # both right
    votes += [CategoryVote("sneaker", 0.9, unsure, "sneaker", "screenshot")] * 3  # only the sure detector is right
    votes += [CategoryVote("boot", 0.3, sure, "mug", "shopper")] * 2  # only the classifier is right
    r = choose_weight(votes, NAMES)
    assert r["classifier_alone"] == pytest.approx(6 / 9, abs=1e-3) and r["detector_alone"] == pytest.approx(7 / 9, abs=1e-3)
    assert r["accuracy"] == 1.0 and 0 < r["weight"] < 1e6 and r["accuracy_by_kind"] == {"screenshot": 1.0, "shopper": 1.0}


def test_fusion_calibration_without_detections_keeps_the_weight(tiny_models, tiny_synth):
    from visearch.registry import ModelStore, pin_model
    from visearch.vision.evaluate import calibrate_fusion

    settings = Settings(data_dir=tiny_models / "data")
    r = calibrate_fusion(tiny_synth, settings, split="val", progress=False)
    # the tiny detector finds no held-out object: nothing to weigh, no tag written
    assert r["objects"] == 0 and r["weight"] is None and "saved" not in r
    pinned = pin_model("models:/visearch-classifier@champion", settings)
    assert "detector_weight" not in ModelStore(settings).tags(pinned.name, pinned.version)
