"""Train YOLO on WB-Synth shopper photos and register it as ``visearch-detector``.

The network is built from ``yolo11n.yaml`` (no download, no pretrained weights), so it
learns from scratch on a CPU; the recipe is what makes that feasible. Each stage is
one ultralytics training; a recipe's first stages learn class-agnostic boxes, later
ones (the full recipe) start from those weights and learn the categories.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from training.recipes import pick_recipe
from visearch.config import Settings
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.registry import ModelStore
from visearch.registry.card import ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder
from visearch.vision.detector import WEIGHTS_FILE, configure_ultralytics, use_threads

__all__ = ["DetectorStage", "DetectorRecipe", "RECIPES", "train_detector", "MODEL_NAME"]

MODEL_NAME = "visearch-detector"
ARCH = "yolo11n.yaml"


@dataclass(frozen=True)
class DetectorStage:
    epochs: int
    single_cls: bool
    imgsz: int = 256
    optimizer: str = "AdamW"
    lr0: float = 0.002
    batch: int = 32
    nbs: int = 64  # nominal batch: ultralytics accumulates gradients up to it; nbs == batch steps the optimizer every batch
    mosaic: float = 1.0
    close_mosaic: int = 1
    cls: float = 0.5  # classification loss gain (ultralytics' default 0.5)
    fraction: float = 1.0  # share of the training photos used
    register_as: str | None = None  # also register this stage's weights as a recipe of their own


@dataclass(frozen=True)
class DetectorRecipe:
    name: str
    stages: tuple[DetectorStage, ...]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


# Mosaic slows the boxes down on scenes that already hold several objects (val mAP50 stalled near 0.78 while
# it was on, +0.08 in the epochs after it closed), so it stays off; nbs=32 steps AdamW every batch instead of
# accumulating to 64, twice the updates in the same 20 epochs (docs/perception.md has the figures).
_QUICK = DetectorStage(epochs=20, single_cls=True, imgsz=160, lr0=0.003, mosaic=0.0, close_mosaic=0, nbs=32)
_QUICK_NOTE = "class-agnostic boxes only (categories are not learned); for make demo"

RECIPES: dict[str, DetectorRecipe] = {
    "quick": DetectorRecipe("quick", (_QUICK,), note=_QUICK_NOTE),
    "full": DetectorRecipe(
        "full",
        (replace(_QUICK, register_as="quick"),
         # boxes are learned by then: a heavier classification loss, at 224 px (~1.5 min an epoch on 2 cores)
         DetectorStage(epochs=45, single_cls=False, imgsz=224, lr0=0.002, close_mosaic=12, cls=1.5, nbs=32)),
        note="the quick recipe's class-agnostic boxes first, then categories from those weights",
    ),
    "tiny": DetectorRecipe(
        "tiny",
        (DetectorStage(epochs=1, single_cls=True, imgsz=64, batch=4, mosaic=0.0, close_mosaic=0),),
        note="smoke test only: one epoch at 64 px",
    ),
}


def _data_yaml(data: Path) -> Path:
    yaml = (data / "data.yaml").resolve()
    if not yaml.is_file():
        raise DatasetError(f"{data}: no data.yaml; is it a WB-Synth data set? (visearch synth --out {data})")
    if not any((data / "scenes" / "images" / "train").glob("*.jpg")):
        raise DatasetError(f"{data}: the train split has no shopper photos")
    return yaml


def _epoch_logger(recorder: ModelRecorder, stage_no: int, offset: int) -> Any:
    def on_fit_epoch_end(trainer: Any) -> None:
        metrics = {f"stage{stage_no}/{k.replace('(B)', '').replace('/', '_')}": float(v) for k, v in trainer.metrics.items()}
        losses = trainer.label_loss_items(trainer.tloss, prefix="loss")
        metrics.update({f"stage{stage_no}/{k.replace('/', '_')}": float(v) for k, v in losses.items()})
        recorder.curve(metrics, offset + trainer.epoch + 1)

    return on_fit_epoch_end


def _register(recorder: ModelRecorder, project: Path, weights: str, rec: DetectorRecipe, last: DetectorStage,
              results: dict[str, float], started: float, stage_times: list[float], data: Path, command: str, alias: str | None) -> ModelCard:
    """Copy ``weights`` into a model folder with its card and register a version."""
    card = ModelCard(
        name=MODEL_NAME,
        task="detector",
        summary=f"YOLO11n trained from scratch on WB-Synth (synthetic data), recipe '{rec.name}': {rec.note}",
        recipe=rec.name,
        arch=ARCH,
        data=data_provenance(data),
        command=command,
        val_split="val",
        val_metrics=results,
        train_seconds=round(time.time() - started, 1),
        single_cls=last.single_cls,
        categories="not learned (class-agnostic boxes)" if last.single_cls else "WB-Synth categories",
        imgsz=last.imgsz,
        stage_seconds=list(stage_times),
    )
    model_dir = project / f"{recorder.run_id}-{rec.name}"
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(weights, model_dir / WEIGHTS_FILE)
    return recorder.register(model_dir, card, alias=alias)


def train_detector(
    data: Path,
    settings: Settings,
    recipe: str = "quick",
    alias: str | None = None,
    epochs: int | None = None,
) -> ModelCard:
    """Train ``recipe`` on the WB-Synth set at ``data``; returns the registered version's card."""
    rec = pick_recipe(recipe, RECIPES)
    if epochs is not None:  # override the last stage's length (handy for smoke tests)
        if epochs < 1:
            raise InvalidArgumentError(f"--epochs must be at least 1, got {epochs}")
        rec = DetectorRecipe(rec.name, (*rec.stages[:-1], replace(rec.stages[-1], epochs=epochs)), rec.note)
    yaml = _data_yaml(data)
    configure_ultralytics(settings.data_dir)
    from ultralytics import YOLO

    store = ModelStore(settings)
    project = (settings.data_dir / "runs" / "detector").resolve()
    started = time.time()
    command = train_command("detector", data, recipe, epochs=epochs)
    params = {"recipe": rec.name, "arch": ARCH, "data": str(data.resolve()), "stages": [asdict(s) for s in rec.stages]}
    with ModelRecorder(store, "detector", f"detector-{rec.name}", params, tags={"recipe": rec.name}) as recorder:
        weights: str = ARCH
        offset = 0
        stage_times = []
        results: dict[str, float] = {}
        for n, stage in enumerate(rec.stages, start=1):
            t0 = time.time()
            model = YOLO(weights)
            use_threads(model, settings.vision.threads)
            model.add_callback("on_fit_epoch_end", _epoch_logger(recorder, n, offset))
            res = model.train(
                data=str(yaml), epochs=stage.epochs, imgsz=stage.imgsz, batch=stage.batch, optimizer=stage.optimizer,
                lr0=stage.lr0, cls=stage.cls, nbs=stage.nbs, single_cls=stage.single_cls, mosaic=stage.mosaic, close_mosaic=stage.close_mosaic,
                fraction=stage.fraction, device=settings.vision.device, workers=0, plots=False, amp=False,
                pretrained=weights != ARCH, project=str(project), name=f"{recorder.run_id}-s{n}", exist_ok=True,
                seed=settings.seed, deterministic=True, verbose=False, warmup_epochs=min(1, stage.epochs - 1),
            )
            weights = str(Path(model.trainer.best if Path(model.trainer.best).is_file() else model.trainer.last))
            results = {k.replace("(B)", ""): float(v) for k, v in (res.results_dict if res else {}).items()}
            offset += stage.epochs
            stage_times.append(round(time.time() - t0, 1))
            if stage.register_as and n < len(rec.stages):
                sub = RECIPES[stage.register_as]
                _register(recorder, project, weights, sub, stage, results, started, stage_times, data, command, stage.register_as)
        return _register(recorder, project, weights, rec, rec.stages[-1], results, started, stage_times, data, command, alias)
