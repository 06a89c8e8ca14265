"""Detector and OCR latency per 640-px shopper photo on this machine's CPU.

Figures: YOLO11n at the input sizes of the quick and full recipes (batch 1 and batched)
on every core, PP-OCR as configured. Baselines in the same run: ultralytics' defaults for
the detector (640-px input, one core fewer than the machine has), and RapidOCR's default
settings (angle classifier on) for OCR. Latency does not depend on
the weights, so an untrained YOLO11n built from yolo11n.yaml stands in when no detector
is registered.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

from training.detector import RECIPES
from visearch.config import Settings, SynthSettings
from visearch.synth import generate
from visearch.vision.detector import configure_ultralytics, use_threads


def per_photo_ms(fn, photos: list[Image.Image], repeat: int = 1) -> float:
    fn(photos[:1])  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(photos)
        times.append((time.perf_counter() - t0) * 1000 / len(photos))
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--photos", type=int, default=16)
    args = ap.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "wb", 12, seed=5, n_scenes=args.photos, settings=SynthSettings(scene_size=640, label_fraction=1.0, workers=1))
        photos = [Image.open(p).convert("RGB") for p in sorted(Path(tmp, "wb", "scenes", "images").rglob("*.jpg"))][: args.photos]
        configure_ultralytics(Path(tmp) / "data")
        from ultralytics import YOLO

        from visearch.vision.ocr import RapidOcrEngine

        ours_yolo, base_yolo = YOLO("yolo11n.yaml"), YOLO("yolo11n.yaml")
        threads = use_threads(ours_yolo, settings.vision.threads)
        v = settings.vision
        sizes = sorted({v.detector_imgsz} if v.detector_imgsz else {r.stages[-1].imgsz for k, r in RECIPES.items() if k != "tiny"})

        def detect(yolo, imgsz: int, batch: int):
            def run(imgs):
                for i in range(0, len(imgs), batch):
                    yolo.predict(imgs[i : i + batch], imgsz=imgsz, conf=v.detector_conf, device="cpu", verbose=False)
            return run

        det_ours = {s: (per_photo_ms(detect(ours_yolo, s, 1), photos), per_photo_ms(detect(ours_yolo, s, v.detector_batch), photos))
                    for s in sizes}
        det_base = per_photo_ms(detect(base_yolo, 640, 1), photos)
        ours = RapidOcrEngine(v.ocr_det_side, use_cls=False, min_score=v.ocr_min_score)
        base = RapidOcrEngine(v.ocr_det_side, use_cls=True, min_score=v.ocr_min_score)
        ocr_ours = per_photo_ms(lambda imgs: [ours.read(i) for i in imgs], photos)
        ocr_base = per_photo_ms(lambda imgs: [base.read(i) for i in imgs], photos)
    result = {
        "photo_px": 640, "threads": threads,
        **{f"detector_{s}px_ms_batch1": round(b1, 1) for s, (b1, _) in det_ours.items()},
        **{f"detector_{s}px_ms_batch{v.detector_batch}": round(bn, 1) for s, (_, bn) in det_ours.items()},
        "detector_baseline_640px_ms": round(det_base, 1),
        "ocr_ms": round(ocr_ours, 1), "ocr_baseline_with_cls_ms": round(ocr_base, 1),
    }
    for s, (b1, bn) in det_ours.items():
        print(f"detector YOLO11n @ {s}px, {threads} threads: {b1:.1f} ms/photo (batch 1), {bn:.1f} ms/photo (batch {v.detector_batch}); "
              f"baseline (ultralytics defaults: 640px, cpu_count-1 threads): {det_base:.1f} ms; ratio {b1 / det_base:.2f}")
    print(f"OCR PP-OCRv4 (rapidocr, det side {v.ocr_det_side}, no angle cls): {ocr_ours:.1f} ms/photo; "
          f"baseline with angle cls: {ocr_base:.1f} ms; ratio {ocr_ours / ocr_base:.2f}")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "vision.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
