"""The category of each detected object, asked twice: the detector's guess, then the classifier's.

The detector names categories from the whole photo, where objects are small; the classifier
(YOLO classify, ``training/classifier.py``) looks at each object's own crop. :func:`refine`
fuses both: the classifier's probabilities, plus ``detector_weight`` times the detector's
score on the category the detector named. Search then looks within the winning category.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from visearch.config import Settings, VisionSettings
from visearch.vision.detector import Detection, load_yolo, use_threads, yolo_files

__all__ = ["CategoryClassifier", "square_crop", "refine", "classifier_ref", "PAD_RGB", "FUSION_TAG"]

PAD_RGB = (114, 114, 114)  # ultralytics' letterbox grey
FUSION_TAG = "detector_weight"  # calibrated with the classifier's registered version (visearch calibrate)
DEFAULT_DETECTOR_WEIGHT = 0.5


def square_crop(image: Image.Image, box: Sequence[float], size: int) -> Image.Image:
    """The box cut out and padded to a square (its shape kept), resized to ``size``: how the classifier sees objects."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, x1), max(0, y1)
    x2, y2 = min(image.width, max(x2, x1 + 1)), min(image.height, max(y2, y1 + 1))
    crop = image.convert("RGB").crop((x1, y1, x2, y2))
    side = max(crop.width, crop.height)
    canvas = Image.new("RGB", (side, side), PAD_RGB)
    canvas.paste(crop, ((side - crop.width) // 2, (side - crop.height) // 2))
    return canvas.resize((size, size), Image.Resampling.BILINEAR)


class CategoryClassifier:
    """YOLO classify weights plus their card; ``probs`` takes crops, returns (n, categories)."""

    def __init__(self, weights: Path, vision: VisionSettings, card: dict[str, Any] | None = None,
                 data_dir: Path = Path("data")) -> None:
        self.model = load_yolo(weights, "classify", data_dir)
        use_threads(self.model, vision.threads)
        self.vision, self.card = vision, card or {}
        self.names: list[str] = [self.model.names[i] for i in range(len(self.model.names))]
        self.imgsz = int(self.card.get("imgsz") or 96)
        self.detector_weight = vision.classifier_detector_weight if vision.classifier_detector_weight is not None \
            else DEFAULT_DETECTOR_WEIGHT

    @classmethod
    def from_ref(cls, ref: str, settings: Settings) -> CategoryClassifier:
        """Load from a reference: a weights file, a model folder, ``models:/...``, ``s3://...``; a registered
        version brings the detector weight calibrated with it (unless the settings fix one)."""
        classifier = cls(*yolo_files(ref, settings), settings.data_dir)
        if settings.vision.classifier_detector_weight is None and ref.startswith("models:"):
            from visearch.registry import ModelStore, pin_model

            pinned = pin_model(ref, settings)
            tag = ModelStore(settings).tags(pinned.name, pinned.version).get(FUSION_TAG)
            if tag is not None:
                classifier.detector_weight = float(tag)
        return classifier

    def probs(self, image: Image.Image, boxes: Sequence[Sequence[float]]) -> np.ndarray:
        """Category probabilities of each box of ``image``, columns in :attr:`names` order."""
        if not boxes:
            return np.zeros((0, len(self.names)), np.float32)
        crops = [square_crop(image, b, self.imgsz) for b in boxes]
        results = self.model.predict(crops, imgsz=self.imgsz, device=self.vision.device, verbose=False)
        return np.stack([r.probs.data.float().cpu().numpy() for r in results]).astype(np.float32)

    def decide(self, image: Image.Image, detections: list[Detection], detector_names: dict[int, str],
               max_objects: int | None = None) -> list[Detection]:
        """``detections`` with each category decided by both opinions (the best-scored objects only, up to
        ``max_objects``, by default ``vision.classify_max_objects``), class ids in the detector's numbering."""
        limit = self.vision.classify_max_objects if max_objects is None else max_objects
        probs = self.probs(image, [d.box for d in detections[:limit]])
        ids = {name: i for i, name in detector_names.items()}
        return refine(detections, probs, self.names, self.detector_weight, ids)


def classifier_ref(settings: Settings) -> str | None:
    """The classifier to use, if any: a detector alone still names categories."""
    from visearch.registry import optional_ref

    return optional_ref(settings.models.classifier, settings)


def refine(detections: list[Detection], probs: np.ndarray, names: list[str], detector_weight: float,
           ids: dict[str, int] | None = None) -> list[Detection]:
    """Fuse per object: classifier probability + ``detector_weight`` x detector score on the detector's category.

    The fused score (normalised to sum 1) becomes the detection's ``category_score``; a class-agnostic
    detector (category "object") adds nothing, so the classifier decides alone. ``ids`` maps category
    names to the detector's class ids (-1 for a name it does not know).
    """
    out = list(detections)
    column = {n: i for i, n in enumerate(names)}
    for i, (det, p) in enumerate(zip(detections, probs, strict=False)):
        if det.fallback:
            continue
        fused = p.astype(np.float64).copy()
        if det.category in column:
            fused[column[det.category]] += detector_weight * det.score
        fused /= fused.sum() or 1.0
        best = int(fused.argmax())
        out[i] = replace(det, category=names[best], category_id=(ids or {}).get(names[best], -1), category_score=float(fused[best]))
    return out
