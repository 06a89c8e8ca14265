"""Offline evaluation of detection and article reading on a WB-Synth split.

Works on the held-out split of any WB-Synth set, not only the one a model was trained
on; each run writes its JSON numbers and a PNG sheet of predictions side by side.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from visearch.catalog import article_index, read_catalog
from visearch.config import Settings
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.progress import track
from visearch.synth.preview import draw_boxes
from visearch.vision.detector import Detector
from visearch.vision.ocr import ArticleReader

__all__ = ["eval_detector", "map50", "category_map50", "eval_ocr", "write_report", "iou", "category_votes",
           "fusion_accuracy", "calibrate_fusion"]

Box = tuple[float, float, float, float]
SHEET_PHOTOS = 8


def _split_rows(data: Path, split: str) -> tuple[dict[str, list], dict[str, list[int]]]:
    if not (data / "scenes.parquet").is_file():
        raise DatasetError(f"{data}: no scenes.parquet; is it a WB-Synth data set?")
    scenes = pq.read_table(data / "scenes.parquet").to_pydict()
    by_scene: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(scenes["split"]):
        if s == split:
            by_scene[scenes["scene_id"][i]].append(i)
    if not by_scene:
        raise DatasetError(f"{data}: the {split} split has no shopper photos")
    return scenes, dict(by_scene)


def _held_out_objects(data: Path, split: str, limit: int | None, progress: bool,
                      what: str) -> Iterator[tuple[Image.Image, list[tuple[Box, str, str]]]]:
    """Each photo of ``split`` (the first ``limit``) with its true objects: box, category, kind of photo."""
    scenes, by_scene = _split_rows(data, split)
    catalog = read_catalog(data, columns=["product_id", "category"]).to_pydict()
    category_of = dict(zip(catalog["product_id"], catalog["category"], strict=True))
    kinds = scenes.get("kind") or ["shopper"] * len(scenes["split"])
    names = sorted(by_scene)[:limit] if limit else sorted(by_scene)
    for scene in track(names, len(names), what, enabled=progress):
        rows = by_scene[scene]
        image = Image.open(data / scenes["image"][rows[0]]).convert("RGB")
        yield image, [((float(scenes["x1"][r]), float(scenes["y1"][r]), float(scenes["x2"][r]), float(scenes["y2"][r])),
                       str(category_of.get(scenes["product_id"][r])), str(kinds[r] or "shopper")) for r in rows]


def iou(a: Box, b: Box) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def write_report(report: dict[str, Any], path: Path, sheet: Image.Image | None) -> Path:
    """``path`` (.json) and, beside it, the PNG sheet with the same stem."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if sheet is not None:
        sheet.save(path.with_suffix(".png"))
    return path


def _sheet(tiles: list[Image.Image], title: str, side: int = 320) -> Image.Image:
    from PIL import ImageDraw

    from visearch.synth.render import font

    cols = 4
    rows = max(1, (len(tiles) + cols - 1) // cols)
    sheet = Image.new("RGB", (cols * side, rows * side + 28), (255, 255, 255))
    ImageDraw.Draw(sheet).text((6, 6), title, fill=(0, 0, 0), font=font(14))
    for n, tile in enumerate(tiles):
        sheet.paste(tile.resize((side, side)), ((n % cols) * side, 28 + (n // cols) * side))
    return sheet


MAP_CONF = 0.001  # the lowest score kept when measuring mAP (as ultralytics' val does)


def map50(photos: Sequence[tuple[Sequence[tuple[Box, str, float]], Sequence[tuple[Box, str]]]]) -> float:
    """mAP50 by category over ``photos``, each (predictions as (box, category, score), truths as (box, category)).

    Predictions are matched to unmatched true boxes of their category, best score first, at IoU >= 0.5;
    ultralytics' ``ap_per_class`` turns the matches into average precision over the categories that have
    true boxes, so a detector's own categories score as in its ``val``.
    """
    from ultralytics.utils.metrics import ap_per_class

    number: dict[str, int] = {}  # categories numbered by name as they come, whatever the models' own numbering
    tp, conf, pred_cls, target_cls = [], [], [], []
    for predictions, truths in photos:
        labelled = [(box, number.setdefault(c, len(number))) for box, c in truths]
        target_cls.extend(c for _, c in labelled)
        taken = [False] * len(labelled)
        for box, category, score in sorted(predictions, key=lambda p: -p[2]):
            c_pred = number.setdefault(category, len(number))
            overlaps = [iou(box, b) if c == c_pred and not taken[j] else 0.0 for j, (b, c) in enumerate(labelled)]
            best = int(np.argmax(overlaps)) if overlaps else -1
            hit = best >= 0 and overlaps[best] >= 0.5
            if hit:
                taken[best] = True
            tp.append(hit)
            conf.append(score)
            pred_cls.append(c_pred)
    if not tp or not target_cls:
        return 0.0
    ap = ap_per_class(np.array(tp, bool)[:, None].repeat(10, 1), np.array(conf), np.array(pred_cls), np.array(target_cls))[5]
    return float(ap[:, 0].mean()) if len(ap) else 0.0


def category_map50(data: Path, split: str, detector: Detector, classifier: Any | None = None,
                   limit: int | None = None, progress: bool = True) -> float:
    """:func:`map50` of the detector's boxes on ``split``, categories named as search names them: by the
    detector, or fused with the crop classifier's opinion (``CategoryClassifier.decide``), scored by box
    score times category score."""
    photos = []
    for image, truths in _held_out_objects(data, split, limit, progress, "categories of held-out photos"):
        dets = [d for d in detector.detect([image], conf=MAP_CONF)[0] if not d.fallback]
        if classifier is not None and dets:
            dets = classifier.decide(image, dets, detector.names, max_objects=len(dets))
        predictions = [(d.box, d.category, d.score * (d.category_score or 1.0)) for d in dets]
        photos.append((predictions, [(box, category) for box, category, _ in truths]))
    return map50(photos)


def eval_detector(data: Path, settings: Settings, ref: str | None = None, split: str = "test",
                  classifier: str | None = None) -> tuple[dict[str, Any], Image.Image]:
    """mAP of the detector on ``split`` (boxes alone and by category) and a prediction sheet; with a crop
    ``classifier``, also mAP50 by category as search names categories (detector and classifier fused)."""
    yaml = (data / "data.yaml").resolve()
    if not yaml.is_file():
        raise DatasetError(f"{data}: no data.yaml; is it a WB-Synth data set?")
    scenes, by_scene = _split_rows(data, split)
    det = Detector.from_ref(ref or settings.models.detector, settings)
    project = (settings.data_dir / "runs" / "eval").resolve()

    def val(single_cls: bool) -> Any:
        return det.model.val(data=str(yaml), split=split, imgsz=det.imgsz, batch=settings.vision.detector_batch,
                             single_cls=single_cls, plots=False, device=settings.vision.device, verbose=False,
                             project=str(project), name="detector", exist_ok=True, save_json=False)

    start = time.perf_counter()
    agnostic = val(True).box
    by_category = None if det.class_agnostic else val(False).box
    report = {
        "model": ref or settings.models.detector,
        "model_card": det.card.get("summary", ""),
        "split": split,
        "mAP50": None if by_category is None else round(float(by_category.map50), 4),
        "mAP50_95": round(float((by_category or agnostic).map), 4),
        "mAP50_agnostic": round(float(agnostic.map50), 4),
        "mAP50_95_agnostic": round(float(agnostic.map), 4),
        "precision": round(float((by_category or agnostic).mp), 4),
        "recall": round(float((by_category or agnostic).mr), 4),
        "n_images": len(by_scene),
        "n_objects": sum(len(v) for v in by_scene.values()),
        "seconds": round(time.perf_counter() - start, 1),
    }
    if by_category is None:
        report["note"] = "class-agnostic model: categories were not learned, so mAP50 by category is not defined"
    if classifier is not None:
        from visearch.vision.classifier import CategoryClassifier

        cls = CategoryClassifier.from_ref(classifier, settings)
        report["classifier"] = classifier
        report["classifier_detector_weight"] = cls.detector_weight
        report["mAP50_with_classifier"] = round(category_map50(data, split, det, cls), 4)
        report["seconds"] = round(time.perf_counter() - start, 1)
    tiles = []
    picked = list(by_scene.items())[:SHEET_PHOTOS]
    images = [Image.open(data / scenes["image"][rows[0]]).convert("RGB") for _, rows in picked]
    for img, dets in zip(images, det.detect(images), strict=True):
        tiles.append(draw_boxes(img, [(tuple(round(c) for c in d.box), f"{d.category} {d.score:.2f}") for d in dets]))
    return report, _sheet(tiles, f"detector {report['model']} on WB-Synth {split}: mAP50 boxes {report['mAP50_agnostic']}")


def eval_ocr(
    data: Path, settings: Settings, split: str = "test", boxes: str = "detector", ref: str | None = None, limit: int | None = None
) -> tuple[dict[str, Any], Image.Image]:
    """Article recall / precision on ``split``, per photo and per object, and a sheet."""
    if boxes not in ("detector", "truth"):
        raise InvalidArgumentError(f"--boxes must be detector or truth, got {boxes!r}")
    scenes, by_scene = _split_rows(data, split)
    catalog = article_index(data)
    reader = ArticleReader.from_settings(settings, catalog)
    det = Detector.from_ref(ref or settings.models.detector, settings) if boxes == "detector" else None

    items = list(by_scene.items())[: limit or None]
    n_readable = found = linked = returned = right = 0
    seconds = 0.0
    tiles: list[Image.Image] = []
    for _, rows in track(items, len(items), f"OCR on {split}", enabled=True):
        img = Image.open(data / scenes["image"][rows[0]]).convert("RGB")
        truth = {scenes["product_id"][i]: tuple(float(scenes[k][i]) for k in ("x1", "y1", "x2", "y2")) for i in rows}
        t0 = time.perf_counter()
        objects = [d.box for d in det.detect([img])[0]] if det else list(truth.values())
        result = reader.read_batch([img], [objects])[0]
        seconds += time.perf_counter() - t0
        present = {scenes["product_id"][i] for i in rows}
        returned += len({h.article for h in result.hits})
        right += len({h.article for h in result.hits if h.product_id in present})
        for i in rows:
            if not scenes["article_visible"][i]:
                continue
            n_readable += 1
            article, pid = scenes["article"][i], scenes["product_id"][i]
            hits = [h for h in result.hits if h.article == article]
            found += bool(hits)
            linked += any(h.object_index is not None and iou(objects[h.object_index], truth[pid]) >= 0.5 for h in hits)
        if len(tiles) < SHEET_PHOTOS and any(scenes["article_visible"][i] for i in rows):
            tiles.append(draw_boxes(img, [(tuple(round(c) for c in h.box), h.article) for h in result.hits]))
    report = {
        "engine": settings.models.ocr_backend,
        "boxes": boxes,
        "split": split,
        "recall": round(found / n_readable, 4) if n_readable else None,
        "precision": round(right / returned, 4) if returned else None,
        "per_object_recall": round(linked / n_readable, 4) if n_readable else None,
        "n_readable": n_readable,
        "n_returned": returned,
        "n_images": len(items),
        "ms_per_photo": round(1000 * seconds / max(1, len(items)), 1),
    }
    return report, _sheet(tiles, f"PP-OCR ({report['engine']}) on WB-Synth {split}: recall {report['recall']}, precision {report['precision']}")


FUSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 1e6)  # 1e6: the detector decides wherever it named a category


@dataclass(frozen=True)
class CategoryVote:
    """One held-out object a detection found: both models' opinions and the truth."""

    detector: str
    detector_score: float
    probs: np.ndarray
    truth: str
    kind: str


def category_votes(data: Path, settings: Settings, split: str = "val", limit: int | None = None,
                   progress: bool = True) -> tuple[list[CategoryVote], list[str]]:
    """Both opinions on every true object of ``split``'s photos that a detection found (IoU >= 0.3), and
    the classifier's category names (the columns of ``probs``)."""
    from visearch.vision.classifier import CategoryClassifier, classifier_ref

    ref = classifier_ref(settings)
    if ref is None:
        raise InvalidArgumentError("no crop classifier to calibrate: VISEARCH_MODELS__CLASSIFIER names none registered")
    detector = Detector.from_ref(settings.models.detector, settings)
    classifier = CategoryClassifier.from_ref(ref, settings)
    out = []
    for image, truths in _held_out_objects(data, split, limit, progress, "categories of held-out objects"):
        dets = [d for d in detector.detect([image])[0] if not d.fallback][: settings.vision.classify_max_objects]
        if not dets:
            continue
        probs = classifier.probs(image, [d.box for d in dets])
        for box, category, kind in truths:
            overlaps = [iou(d.box, box) for d in dets]
            best = int(np.argmax(overlaps))
            if overlaps[best] >= 0.3:
                out.append(CategoryVote(dets[best].category, dets[best].score, probs[best], category, kind))
    return out, classifier.names


def fusion_accuracy(votes: list[CategoryVote], names: list[str], weight: float) -> float:
    """Share of objects whose fused category (:func:`~visearch.vision.classifier.refine`) is the true one."""
    from visearch.vision.classifier import refine
    from visearch.vision.detector import Detection

    if not votes:
        return 0.0
    right = 0
    for v in votes:
        (d,) = refine([Detection((0.0, 0.0, 1.0, 1.0), -1, v.detector, v.detector_score)], v.probs[None, :], names, weight)
        right += d.category == v.truth
    return right / len(votes)


def choose_weight(votes: list[CategoryVote], names: list[str]) -> dict[str, Any]:
    """The weight of :data:`FUSION_WEIGHTS` naming categories rightly most often (ties: nearest 0.5), with what
    each opinion manages alone."""
    accuracy = {str(w): round(fusion_accuracy(votes, names, w), 4) for w in FUSION_WEIGHTS}
    best = max(FUSION_WEIGHTS, key=lambda w: (accuracy[str(w)], -abs(w - 0.5)))
    by_kind = {k: round(fusion_accuracy([v for v in votes if v.kind == k], names, best), 4) for k in sorted({v.kind for v in votes})}
    return {"objects": len(votes), "detector_alone": round(sum(v.detector == v.truth for v in votes) / len(votes), 4),
            "classifier_alone": accuracy["0.0"], "accuracy_by_weight": accuracy, "weight": best,
            "accuracy": accuracy[str(best)], "accuracy_by_kind": by_kind}


def calibrate_fusion(data: Path, settings: Settings, split: str = "val", limit: int | None = None,
                     progress: bool = True, save: bool = True) -> dict[str, Any]:
    """The detector weight that names categories rightly most often on ``split``, kept with the classifier's version."""
    from visearch.registry import ModelStore, pin_model
    from visearch.vision.classifier import FUSION_TAG, classifier_ref

    votes, names = category_votes(data, settings, split, limit, progress)
    if not votes:  # a detector that finds nothing leaves nothing to weigh: the weight stays as it was
        return {"objects": 0, "weight": None, "note": f"no object of the {split} split was detected", "data": str(data),
                "split": split}
    result = {**choose_weight(votes, names), "data": str(data), "split": split}
    pinned = pin_model(classifier_ref(settings) or "", settings)
    result["classifier"] = pinned.label
    if save and pinned.ref.startswith("models:/"):
        ModelStore(settings).set_tags(pinned.name, pinned.version, {FUSION_TAG: str(result["weight"]),
                                                                     "fusion_calibration": json.dumps(result)})
        result["saved"] = f"models:/{pinned.label} tag {FUSION_TAG}"
    return result
