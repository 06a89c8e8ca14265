"""Train the object-crop category classifier (YOLO classify) and register it as ``visearch-classifier``.

The detector sees a whole photo at 224 px, where an object is 30-90 px wide: it finds the
boxes well but names the category rightly for only ~85% of shopper photos' objects, and the
search then looks in the wrong aisle. The classifier looks once more at each object, cut out
at the detector-like jittered box, padded to a square and seen at its own resolution; search
fuses both opinions (:mod:`visearch.vision.classifier`). It learns from scratch on WB-Synth
(``yolo11n-cls.yaml``, no download) from the train split's shopper crops and the sellers'
gallery photos; the val split's crops are its held-out figures.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from training.recipes import pick_recipe
from visearch.config import Settings
from visearch.embedding.data import SPLITS, Dataset, ImageItem, open_dataset
from visearch.errors import DatasetError
from visearch.progress import track
from visearch.registry import ModelStore
from visearch.registry.card import ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder
from visearch.vision.classifier import square_crop
from visearch.vision.detector import WEIGHTS_FILE, configure_ultralytics, use_threads
from visearch.vision.images import load_image

__all__ = ["ClassifierRecipe", "RECIPES", "MODEL_NAME", "ARCH", "train_classifier", "write_crops"]

MODEL_NAME = "visearch-classifier"
ARCH = "yolo11n-cls.yaml"
_EVAL_SEED = 1234  # the held-out crops' jitter: the same whatever the recipe


@dataclass(frozen=True)
class ClassifierRecipe:
    name: str
    epochs: int
    imgsz: int
    crops_per_object: int  # jittered crops of each training object
    batch: int = 64
    lr0: float = 0.002
    optimizer: str = "AdamW"
    gallery: bool = True  # also learn from the sellers' photos of the train split
    note: str = ""


RECIPES: dict[str, ClassifierRecipe] = {
    "quick": ClassifierRecipe("quick", epochs=6, imgsz=96, crops_per_object=1, note="minutes on 2 cores"),
    "full": ClassifierRecipe("full", epochs=15, imgsz=96, crops_per_object=2, note="for the default bundle"),
    "tiny": ClassifierRecipe("tiny", epochs=1, imgsz=32, crops_per_object=1, batch=8, gallery=False, note="smoke test only"),
}


def write_crops(dataset: Dataset, out: Path, rec: ClassifierRecipe, jitter: float, seed: int, progress: bool = True) -> Path:
    """An ImageFolder (``train/<category>/*.jpg``, ``val/...``) of padded object crops; reused when it exists."""
    key = hashlib.sha256(f"{dataset.fingerprint}|{rec.imgsz}|{rec.crops_per_object}|{rec.gallery}|{jitter}|{seed}".encode())
    root = out / key.hexdigest()[:16]
    if (root / "done").is_file():
        return root
    shutil.rmtree(root, ignore_errors=True)
    val_split = "val" if dataset.scene_objects("val") else "test"
    plan: list[tuple[str, ImageItem]] = [("train", i) for i in dataset.shopper_items("train", rec.crops_per_object, jitter, seed)]
    if rec.gallery:
        plan += [("train", i) for i in dataset.gallery_items("train")]
    plan += [("val", i) for i in dataset.shopper_items(val_split, 1, jitter, _EVAL_SEED)]
    if not any(s == "train" for s, _ in plan) or not any(s == "val" for s, _ in plan):
        raise DatasetError(f"{dataset.root}: needs shopper photos in train and {val_split} to train a classifier")
    category = dict(zip(dataset.products["product_id"], map(str, dataset.products["category"]), strict=True))
    last: tuple[str, object] | None = None
    for n, (split, item) in track(list(enumerate(plan)), len(plan), "classifier crops", enabled=progress):
        if last is None or last[0] != item.path:
            last = (item.path, load_image(dataset.root / item.path))
        image = last[1]
        crop = square_crop(image, item.box or (0, 0, image.width, image.height), rec.imgsz)
        target = root / split / category[item.product] / f"{n:07d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        crop.save(target, quality=92)
    (root / "done").write_text("ok", encoding="utf-8")
    return root


def train_classifier(data: Path, settings: Settings, recipe: str = "quick", alias: str | None = None,
                     progress: bool = True) -> ModelCard:
    """Train ``recipe`` on the WB-Synth set at ``data``; returns the registered version's card.

    Raises:
        InvalidArgumentError: an unknown recipe.
        DatasetError: not a WB-Synth set, or no shopper photos to learn from.
    """
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    dataset = open_dataset(data)
    configure_ultralytics(settings.data_dir)
    from ultralytics import YOLO

    runs = (settings.data_dir / "runs" / "classifier").resolve()
    folder = write_crops(dataset, runs / "crops", rec, settings.embedding.jitter, settings.seed, progress)
    classes = sorted(p.name for p in (folder / "train").iterdir() if p.is_dir())
    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k: v for k, v in asdict(rec).items() if k != "name"}, "arch": ARCH,
              "data": str(Path(data).resolve()), "classes": len(classes), "crops": str(folder)}
    with ModelRecorder(store, "classifier", f"classifier-{rec.name}", params, tags={"recipe": rec.name}) as recorder:
        model = YOLO(ARCH, task="classify")
        use_threads(model, settings.vision.threads)

        def on_fit_epoch_end(trainer: object) -> None:
            metrics = {k.replace("metrics/", "").replace("/", "_"): float(v) for k, v in trainer.metrics.items()}  # type: ignore[attr-defined]
            recorder.curve(metrics, trainer.epoch + 1)  # type: ignore[attr-defined]

        model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
        model.train(data=str(folder), epochs=rec.epochs, imgsz=rec.imgsz, batch=rec.batch, optimizer=rec.optimizer, lr0=rec.lr0,
                    device=settings.vision.device, workers=0, plots=False, amp=False, pretrained=False, project=str(runs),
                    name=f"{recorder.run_id}", exist_ok=True, seed=settings.seed, deterministic=True, verbose=False,
                    warmup_epochs=min(1, rec.epochs - 1))
        trainer = model.trainer
        weights = Path(trainer.best if Path(trainer.best).is_file() else trainer.last)
        results = {k.replace("metrics/", ""): round(float(v), 4) for k, v in (trainer.metrics or {}).items()}
        model_dir = runs / f"{recorder.run_id}-{rec.name}"
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy2(weights, model_dir / WEIGHTS_FILE)
        card = ModelCard(
            name=MODEL_NAME, task="classifier", recipe=rec.name, arch=ARCH,
            summary=(f"YOLO11n-cls trained from scratch on WB-Synth (synthetic data), recipe '{rec.name}': the category of "
                     f"an object crop (padded square, {rec.imgsz} px), fused with the detector's at search time. "
                     "Not pretrained."),
            data=data_provenance(data), command=train_command("classifier", data, rec.name),
            val_split="val" if dataset.scene_objects("val") else "test", val_metrics=results,
            train_seconds=round(time.time() - started, 1), imgsz=rec.imgsz, classes=classes, note=rec.note,
            splits_used=[s for s in SPLITS if s != "test"],
        )
        return recorder.register(model_dir, card, alias=alias)
