"""Object detection with ultralytics YOLO behind a small, list-in/list-out interface.

Ultralytics is told to stay offline and to keep its settings, runs and downloads in
the project's data dir (:func:`configure_ultralytics`), so it neither touches the
network nor writes to the user's home.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from visearch.config import Settings, VisionSettings
from visearch.errors import NotFoundError
from visearch.registry import CARD_FILE, resolve_model

__all__ = ["Detection", "Detector", "configure_ultralytics", "use_threads", "save_safe", "load_safe", "load_yolo", "yolo_files", "WEIGHTS_FILE", "SAFE_WEIGHTS_FILE",
           "SAFE_LAYOUT_FILE"]

WEIGHTS_FILE = "weights.pt"  # what training writes: ultralytics' own (pickled) checkpoint
SAFE_WEIGHTS_FILE = "weights.safetensors"  # what a model bundle carries: tensors only, loading runs no code
SAFE_LAYOUT_FILE = "layout.json"  # the network's layout (ultralytics' model yaml) and class names, beside them
_SHELL_ARCH = {"detect": "yolo11n.yaml", "classify": "yolo11n-cls.yaml"}  # packaged layouts: the YOLO wrapper, network replaced
_INTEGRATIONS_OFF = ("clearml", "comet", "dvc", "hub", "mlflow", "neptune", "raytune", "tensorboard", "wandb")


def configure_ultralytics(data_dir: Path) -> None:
    """Offline ultralytics whose settings, data sets, weights and runs live under ``data_dir``."""
    root = (data_dir / "ultralytics").resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["YOLO_OFFLINE"] = "1"
    os.environ.setdefault("YOLO_CONFIG_DIR", str(root))
    os.environ.setdefault("MPLCONFIGDIR", str(root / "matplotlib"))  # ultralytics imports matplotlib
    from ultralytics import settings

    wanted: dict[str, Any] = {
        "datasets_dir": str(root / "datasets"),
        "weights_dir": str(root / "weights"),
        "runs_dir": str(root / "runs"),
        "sync": False,
        **{k: False for k in _INTEGRATIONS_OFF if k in settings},
    }
    if any(settings.get(k) != v for k, v in wanted.items()):
        settings.update(wanted)


def use_threads(model: Any, threads: int | None) -> int:
    """Run ``model``'s training, validation and prediction on ``threads`` CPU threads (default: every core).

    Ultralytics sets torch to ``cpu_count - 1`` threads whenever it picks a device, which
    leaves one of two cores idle; its callbacks run right after that choice.
    """
    import torch

    n = threads or os.cpu_count() or 1

    def set_threads(_: Any) -> None:
        torch.set_num_threads(n)

    for event in ("on_pretrain_routine_start", "on_val_start", "on_predict_start"):
        model.add_callback(event, set_threads)
    return n


@dataclass(frozen=True)
class Detection:
    """One object: its box in image pixels (x1, y1, x2, y2), category and score.

    ``fallback`` marks the whole-image object returned when nothing passed the threshold,
    so search always has something to look for.
    """

    box: tuple[float, float, float, float]
    category_id: int
    category: str
    score: float
    fallback: bool = False
    category_score: float | None = None  # how sure the category is, once a classifier had its say (None: the detector alone)


class Detector:
    """YOLO weights plus their model card; ``detect`` takes and returns lists (batched)."""

    def __init__(self, weights: Path, vision: VisionSettings, card: dict[str, Any] | None = None, data_dir: Path = Path("data")) -> None:
        self.model = load_yolo(weights, "detect", data_dir)
        use_threads(self.model, vision.threads)
        self.vision = vision
        self.card = card or {}
        self.names: dict[int, str] = dict(self.model.names)
        self.class_agnostic = bool(self.card.get("single_cls", False))
        self.imgsz = int(vision.detector_imgsz or self.card.get("imgsz") or 640)

    @classmethod
    def from_ref(cls, ref: str, settings: Settings) -> Detector:
        """Load from a reference: a weights file, a model folder, ``models:/...``, ``s3://...``."""
        return cls(*yolo_files(ref, settings), settings.data_dir)

    def detect(self, images: Sequence[Image.Image], conf: float | None = None) -> list[list[Detection]]:
        """Objects in each image, best first; never an empty list for an image. ``conf`` overrides the
        lowest score kept (evaluation keeps nearly everything)."""
        if not images:
            return []
        out: list[list[Detection]] = []
        v = self.vision
        for start in range(0, len(images), v.detector_batch):
            batch = [img.convert("RGB") for img in images[start : start + v.detector_batch]]
            results = self.model.predict(batch, imgsz=self.imgsz, conf=v.detector_conf if conf is None else conf, iou=v.detector_iou,
                                         device=v.device, verbose=False, max_det=50)
            for img, res in zip(batch, results, strict=True):
                dets = []
                boxes = res.boxes
                for xyxy, cls_id, score in zip(boxes.xyxy.tolist(), boxes.cls.tolist(), boxes.conf.tolist(), strict=True):
                    c = int(cls_id)
                    name = "object" if self.class_agnostic else self.names.get(c, str(c))
                    dets.append(Detection(tuple(float(x) for x in xyxy), -1 if self.class_agnostic else c, name, float(score)))
                dets.sort(key=lambda d: -d.score)
                out.append(dets or [Detection((0.0, 0.0, float(img.width), float(img.height)), -1, "object", 0.0, fallback=True)])
        return out


def yolo_files(ref: str, settings: Settings) -> tuple[Path, VisionSettings, dict[str, Any]]:
    """Where a YOLO model's weights are (a checkpoint file, or a bundle-style folder), with the vision settings
    and the model card, from any reference."""
    path = resolve_model(ref, settings)
    card: dict[str, Any] = {}
    if path.is_dir():
        if (path / CARD_FILE).is_file():
            card = json.loads((path / CARD_FILE).read_text(encoding="utf-8"))
        if not (path / SAFE_WEIGHTS_FILE).is_file():
            path = path / WEIGHTS_FILE
    return path, settings.vision, card


def load_yolo(weights: Path, task: str, data_dir: Path) -> Any:
    """A YOLO model of ``task`` from tensors + layout (a bundle's folder) or an ultralytics checkpoint file."""
    configure_ultralytics(data_dir)
    from ultralytics import YOLO

    weights = Path(weights)
    if weights.is_dir() and (weights / SAFE_WEIGHTS_FILE).is_file():
        return load_safe(weights)
    if weights.is_file():
        return YOLO(str(weights), task=task)
    raise NotFoundError(f"{weights}: no such YOLO weights file")


def save_safe(weights: Path, folder: Path, half: bool = True) -> list[Path]:
    """Write the network of an ultralytics checkpoint as tensors plus its layout (what a bundle carries).

    The checkpoint is ultralytics' pickle, so this reads only files this machine trained or trusts.
    """
    from safetensors.torch import save_file
    from ultralytics import YOLO

    yolo = YOLO(str(weights))
    net = yolo.model
    state = {k: (v.half() if half and v.is_floating_point() else v).contiguous() for k, v in net.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / SAFE_WEIGHTS_FILE), metadata={"format": "ultralytics-state-dict", "dtype": "float16" if half else "as trained"})
    layout = {"task": yolo.task, "yaml": {k: v for k, v in net.yaml.items() if k != "yaml_file"},
              "names": {int(k): str(v) for k, v in net.names.items()}}
    (folder / SAFE_LAYOUT_FILE).write_text(json.dumps(layout, indent=1, ensure_ascii=False), encoding="utf-8")
    return [folder / SAFE_WEIGHTS_FILE, folder / SAFE_LAYOUT_FILE]


def load_safe(folder: Path) -> Any:
    """A YOLO model from tensors and layout: the network is built from the layout, then filled; no pickle is read."""
    from safetensors.torch import load_file
    from ultralytics import YOLO
    from ultralytics.nn.tasks import ClassificationModel, DetectionModel

    layout = json.loads((folder / SAFE_LAYOUT_FILE).read_text(encoding="utf-8"))
    names = {int(k): v for k, v in layout["names"].items()}
    task = layout.get("task", "detect")
    if task not in _SHELL_ARCH:
        raise NotFoundError(f"{folder}: a YOLO {task!r} model; visearch loads detect and classify models")
    build = DetectionModel if task == "detect" else ClassificationModel
    net = build(cfg=dict(layout["yaml"]), nc=len(names), verbose=False)
    missing, unexpected = net.load_state_dict(load_file(str(folder / SAFE_WEIGHTS_FILE)), strict=False)
    if missing or unexpected:
        raise NotFoundError(f"{folder}: weights do not fit the layout (missing {missing[:3]}, unexpected {unexpected[:3]})")
    net.names = names
    model = YOLO(_SHELL_ARCH[task], task=task)
    model.model = net.float().eval()
    return model
