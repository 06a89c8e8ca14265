"""YOLO for real: a one-epoch model trained from yolo11n.yaml on the tiny WB-Synth set,
registered in a real MLflow store, loaded back by reference."""

from __future__ import annotations

import pytest
from PIL import Image

from visearch.config import Settings
from visearch.errors import NotFoundError
from visearch.vision.detector import Detector


def test_training_writes_only_under_the_data_dir(trained):
    root, settings = trained
    assert list((root / "work").iterdir()) == [], "nothing in the working directory"
    assert list((root / "home").iterdir()) == [], "nothing in the user's home"
    assert (settings.data_dir / "mlflow.db").is_file()


def test_load_by_registry_reference_and_detect(trained, tiny_synth):
    _, settings = trained
    det = Detector.from_ref("models:/visearch-detector@smoke", settings)
    assert det.card["pretrained"] is False and det.card["single_cls"] is True
    assert "synthetic" in det.card["summary"]
    photos = [Image.open(p).convert("RGB") for p in sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[:3]]
    blank = Image.new("RGB", (200, 120), (127, 127, 127))
    results = det.detect([*photos, blank])
    assert len(results) == 4
    for img, dets in zip([*photos, blank], results, strict=True):
        assert dets, "never an empty list"
        for d in dets:
            x1, y1, x2, y2 = d.box
            assert 0 <= x1 <= x2 <= img.width + 1 and 0 <= y1 <= y2 <= img.height + 1
    assert det.detect([]) == []


def test_fallback_is_the_whole_image(trained):
    _, settings = trained
    det = Detector.from_ref("models:/visearch-detector@smoke", settings)
    det.vision = det.vision.model_copy(update={"detector_conf": 0.99})
    (only,) = det.detect([Image.new("RGB", (90, 70), (255, 255, 255))])
    assert len(only) == 1 and only[0].fallback and only[0].box == (0.0, 0.0, 90.0, 70.0)


def test_missing_weights(tmp_path):
    with pytest.raises(NotFoundError):
        Detector.from_ref(f"local-dir:{tmp_path / 'none'}", Settings(data_dir=tmp_path))


def test_detection_uses_the_configured_threads(trained, tiny_synth):
    # ultralytics alone resets torch to cpu_count - 1 threads whenever it picks a device
    import torch

    _, settings = trained
    before = torch.get_num_threads()
    try:
        for threads in (2, 1):
            torch.set_num_threads(3)
            vision = settings.vision.model_copy(update={"threads": threads})
            det = Detector.from_ref("models:/visearch-detector@smoke", settings.model_copy(update={"vision": vision}))
            det.detect([Image.new("RGB", (96, 96), (200, 30, 30))])
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
