"""Detector and OCR latency on this machine's CPU.

Detector: YOLO11n per 640-px shopper photo at the input sizes of the quick and full recipes
(batch 1 and batched) on every core, against ultralytics' defaults (640-px input, one core
fewer than the machine has) in the same run. Latency does not depend on the weights, so an
untrained YOLO11n built from yolo11n.yaml stands in when no detector is registered.

OCR: article reading per real WB-Synth shopper photo of the test split of ``--data`` (the
true object boxes stand in for the detector's), the reader as configured against the reader
before (RapidOCR's own pipeline on the whole photo, detection short side 736, onnxruntime's
default threads), blocks of photos going through every reader in turn so that load on
the machine hits them alike; with article recall, precision and per-object recall of each, as
``visearch eval ocr`` counts them. ``--ocr-sweep`` adds the settings the defaults were
picked from. Without ``--data`` a small WB-Synth set is generated for the run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from PIL import Image

from training.detector import RECIPES
from visearch.config import Settings, SynthSettings
from visearch.synth import generate
from visearch.vision.detector import configure_ultralytics, use_threads
from visearch.vision.ocr import ArticleReader, TextLine, _box_of

# name → VisionSettings overrides of the configured reader; all interleaved with the baseline
OCR_SWEEP: dict[str, dict[str, Any]] = {
    "old engine, 1 thread": dict(ocr_det_side=736, ocr_det_limit="min", ocr_by_boxes=False, ocr_min_aspect=0, ocr_max_lines=None),
    "whole photo, det 384": dict(ocr_det_side=384, ocr_by_boxes=False, ocr_min_aspect=0, ocr_max_lines=None),
    "whole photo, det 480": dict(ocr_det_side=480, ocr_by_boxes=False, ocr_min_aspect=0, ocr_max_lines=None),
    "whole photo, det 576": dict(ocr_by_boxes=False, ocr_min_aspect=0, ocr_max_lines=None),
    "whole photo, det 576 + line filters": dict(ocr_by_boxes=False),
    "boxes, no line filters": dict(ocr_min_aspect=0, ocr_max_lines=None),
    "boxes, det 384": dict(ocr_det_side=384),
    "boxes, det 416": dict(ocr_det_side=416),
    "boxes, det 480": dict(ocr_det_side=480),
    "boxes, det 512": dict(ocr_det_side=512),
    "boxes, det 640": dict(ocr_det_side=640),
    "boxes, det 736": dict(ocr_det_side=736),
    "boxes, det box thresh 0.5": dict(ocr_det_box_thresh=0.5),
    "boxes, margin 0": dict(ocr_box_margin=0.0),
    "boxes, margin 0.05": dict(ocr_box_margin=0.05),
    "boxes, margin 0.2": dict(ocr_box_margin=0.2),
    "boxes, whole photo at 50% cover": dict(ocr_whole_fraction=0.5),
    "boxes, never whole photo": dict(ocr_whole_fraction=100.0),
    "boxes, min aspect 0": dict(ocr_min_aspect=0.0),
    "boxes, min aspect 1.5": dict(ocr_min_aspect=1.5),
    "boxes, min aspect 3.5": dict(ocr_min_aspect=3.5),
    "boxes, max 2 lines": dict(ocr_max_lines=2),
    "boxes, rec min width 48": dict(ocr_rec_min_width=48),
    "boxes, rec batch 1": dict(ocr_rec_batch=1),
    "boxes, 2 threads": dict(ocr_threads=2),
}


def per_photo_ms(fn, photos: list[Image.Image], repeat: int = 1) -> float:
    fn(photos[:1])  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(photos)
        times.append((time.perf_counter() - t0) * 1000 / len(photos))
    return statistics.median(times)


class OldWholePhotoEngine:
    """The engine before: RapidOCR's own pipeline on the whole photo, detection short side 736."""

    def __init__(self, min_score: float) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(det_limit_side_len=736, use_cls=False, text_score=min_score, intra_op_num_threads=-1)

    def read(self, image: Image.Image) -> list[TextLine]:
        result, _ = self._ocr(np.asarray(image.convert("RGB"))[:, :, ::-1].copy())
        return [TextLine(str(text), float(score), _box_of(points)) for points, text, score in (result or [])]


def _iou(a, b) -> float:
    iw, ih = max(0.0, min(a[2], b[2]) - max(a[0], b[0])), max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - iw * ih
    return iw * ih / union if union > 0 else 0.0


def test_photos(data: Path, limit: int | None) -> tuple[list[tuple[Image.Image, dict, list]], dict[str, str]]:
    """(photo, {product: true box}, [(article, product) readable]) of the test split, and the catalog."""
    scenes = pq.read_table(data / "scenes.parquet").to_pydict()
    products = pq.read_table(data / "products.parquet", columns=["product_id", "article"]).to_pydict()
    by_scene: dict[str, list[int]] = defaultdict(list)
    for i, split in enumerate(scenes["split"]):
        if split == "test":
            by_scene[scenes["scene_id"][i]].append(i)
    items = []
    for rows in list(by_scene.values())[: limit or None]:
        img = Image.open(data / scenes["image"][rows[0]]).convert("RGB")
        truth = {scenes["product_id"][i]: tuple(float(scenes[k][i]) for k in ("x1", "y1", "x2", "y2")) for i in rows}
        readable = [(scenes["article"][i], scenes["product_id"][i]) for i in rows if scenes["article_visible"][i]]
        items.append((img, truth, readable))
    return items, dict(zip(products["article"], products["product_id"], strict=True))


def bench_ocr(items: list, readers: dict[str, ArticleReader], block: int = 15) -> dict[str, dict[str, float]]:
    """ms per photo and eval-ocr counts of each reader. The photos go in blocks of ``block``, each
    block through every reader in turn (the order rotating from block to block), so that load on
    the machine hits every reader alike while a reader rarely runs right after another one (the
    old engine's threads and freed buffers slow down whatever runs next)."""
    names = list(readers)
    stats = {n: {"t": [], "readable": 0, "found": 0, "linked": 0, "returned": 0, "right": 0} for n in names}
    for n in names:  # warm-up
        readers[n].read_batch([items[0][0]], [list(items[0][1].values())])
    for b, first in enumerate(range(0, len(items), block)):
        for n in names[b % len(names):] + names[: b % len(names)]:
            s = stats[n]
            for img, truth, readable in items[first : first + block]:
                objects = list(truth.values())
                t0 = time.perf_counter()
                hits = readers[n].read_batch([img], [objects])[0].hits
                s["t"].append(time.perf_counter() - t0)
                s["returned"] += len({h.article for h in hits})
                s["right"] += len({h.article for h in hits if h.product_id in truth})
                for article, pid in readable:
                    mine = [h for h in hits if h.article == article]
                    s["readable"] += 1
                    s["found"] += bool(mine)
                    s["linked"] += any(h.object_index is not None and _iou(objects[h.object_index], truth[pid]) >= 0.5 for h in mine)
    out = {}
    for n in names:
        s = stats[n]
        out[n] = {"ms": 1000 * statistics.fmean(s["t"]), "p50_ms": 1000 * statistics.median(s["t"]),
                  "recall": s["found"] / max(1, s["readable"]), "precision": s["right"] / max(1, s["returned"]),
                  "per_object_recall": s["linked"] / max(1, s["readable"]), "n_readable": s["readable"]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=16, help="640-px photos for the detector figures")
    ap.add_argument("--data", type=Path, default=Path("data/demo"), help="WB-Synth set whose test photos OCR is timed on")
    ap.add_argument("--ocr-photos", type=int, default=0, help="at most this many test photos for OCR (0: the whole split)")
    ap.add_argument("--ocr-sweep", action="store_true", help="also time the settings the OCR defaults were picked from")
    ap.add_argument("--skip-detector", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    v = settings.vision
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        configure_ultralytics(Path(tmp) / "data")
        if not args.skip_detector:
            generate(Path(tmp) / "wb", 12, seed=5, n_scenes=args.photos, settings=SynthSettings(scene_size=640, label_fraction=1.0, workers=1))
            photos = [Image.open(p).convert("RGB") for p in sorted(Path(tmp, "wb", "scenes", "images").rglob("*.jpg"))][: args.photos]
            from ultralytics import YOLO

            ours_yolo, base_yolo = YOLO("yolo11n.yaml"), YOLO("yolo11n.yaml")
            threads = use_threads(ours_yolo, v.threads)
            sizes = sorted({v.detector_imgsz} if v.detector_imgsz else {r.stages[-1].imgsz for k, r in RECIPES.items() if k != "tiny"})

            def detect(yolo, imgsz: int, batch: int):
                def run(imgs):
                    for i in range(0, len(imgs), batch):
                        yolo.predict(imgs[i : i + batch], imgsz=imgsz, conf=v.detector_conf, device="cpu", verbose=False)
                return run

            det_ours = {s: (per_photo_ms(detect(ours_yolo, s, 1), photos), per_photo_ms(detect(ours_yolo, s, v.detector_batch), photos))
                        for s in sizes}
            det_base = per_photo_ms(detect(base_yolo, 640, 1), photos)
            result.update({"photo_px": 640, "threads": threads,
                           **{f"detector_{s}px_ms_batch1": round(b1, 1) for s, (b1, _) in det_ours.items()},
                           **{f"detector_{s}px_ms_batch{v.detector_batch}": round(bn, 1) for s, (_, bn) in det_ours.items()},
                           "detector_baseline_640px_ms": round(det_base, 1)})
            for s, (b1, bn) in det_ours.items():
                print(f"detector YOLO11n @ {s}px, {threads} threads: {b1:.1f} ms/photo (batch 1), {bn:.1f} ms/photo (batch {v.detector_batch}); "
                      f"baseline (ultralytics defaults: 640px, cpu_count-1 threads): {det_base:.1f} ms; ratio {b1 / det_base:.2f}", flush=True)

        data = args.data
        if not (data / "scenes.parquet").is_file():
            print(f"no WB-Synth set at {data}: generating a small one for the OCR figures", flush=True)
            data = Path(tmp) / "ocr"
            generate(data, 60, seed=5, n_scenes=120, settings=SynthSettings(label_fraction=0.8, workers=1))
        items, catalog = test_photos(data, args.ocr_photos or None)
        readers = {"old: whole photo, det short side 736": ArticleReader(OldWholePhotoEngine(v.ocr_min_score), catalog, v.article_pattern,
                                                                          by_boxes=False),
                   "new (settings)": ArticleReader.from_settings(settings, catalog)}
        if args.ocr_sweep:
            for name, over in OCR_SWEEP.items():
                readers[name] = ArticleReader.from_settings(settings.model_copy(update={"vision": v.model_copy(update=over)}), catalog)
        ocr = bench_ocr(items, readers)
    base_name, new_name = list(readers)[:2]
    base = ocr[base_name]["ms"]
    side = f"det {v.ocr_det_limit} side {v.ocr_det_side}, {'object boxes' if v.ocr_by_boxes else 'whole photo'}"
    print(f"OCR on {len(items)} WB-Synth test photos of {data} ({ocr[base_name]['n_readable']} readable articles, true boxes), "
          f"PP-OCRv4 ({side}, {v.ocr_threads} thread(s)) vs the old whole-photo/736 reader, blocks of photos through each in turn:")
    print(f"  {'reader':40s} {'ms/photo':>9s} {'p50':>7s} {'ratio':>6s} {'recall':>7s} {'precision':>9s} {'per-object':>10s}")
    for name, r in ocr.items():
        print(f"  {name:40s} {r['ms']:9.1f} {r['p50_ms']:7.1f} {r['ms'] / base:6.3f} {r['recall']:7.3f} {r['precision']:9.3f} "
              f"{r['per_object_recall']:10.3f}")
    result.update({"ocr_data": str(data), "ocr_photos": len(items), "ocr_readable": ocr[base_name]["n_readable"],
                   "ocr_ms": round(ocr[new_name]["ms"], 1), "ocr_baseline_old_whole736_ms": round(base, 1),
                   "ocr_ratio": round(ocr[new_name]["ms"] / base, 3),
                   "ocr": {n: {k: round(x, 4) for k, x in r.items()} for n, r in ocr.items()}})
    out = Path(__file__).parent / "results" / "vision.json"
    out.parent.mkdir(exist_ok=True)
    old = json.loads(out.read_text()) if out.is_file() else {}
    old = {k: x for k, x in old.items() if not k.startswith("ocr")}  # figures of a part skipped this time stay
    out.write_text(json.dumps({**old, **result}, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
