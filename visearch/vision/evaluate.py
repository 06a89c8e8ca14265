"""Offline evaluation of detection and article reading on a WB-Synth split.

Works on the held-out split of any WB-Synth set, not only the one a model was trained
on; each run writes its JSON numbers and a PNG sheet of predictions side by side.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image

from visearch.catalog import article_index
from visearch.config import Settings
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.progress import track
from visearch.synth.preview import draw_boxes
from visearch.vision.detector import Detector
from visearch.vision.ocr import ArticleReader

__all__ = ["eval_detector", "eval_ocr", "write_report", "iou"]

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


def eval_detector(data: Path, settings: Settings, ref: str | None = None, split: str = "test") -> tuple[dict[str, Any], Image.Image]:
    """mAP of the detector on ``split`` (boxes alone and by category) and a prediction sheet."""
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
