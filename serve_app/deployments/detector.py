"""Detector deployment: YOLO behind dynamic batching, then the crop classifier's say on each object's
category; both follow their registry aliases."""

from __future__ import annotations

from typing import Any

from PIL import Image
from ray import serve

from serve_app.deployments._common import every, settings_from
from visearch.query import Detected
from visearch.registry.watch import ModelWatcher
from visearch.vision.classifier import CategoryClassifier, classifier_ref
from visearch.vision.detector import Detector


def _warm(detector: Detector) -> Detector:
    """One pass on a blank photo: the first real request must not pay for lazy initialisation (~1 s)."""
    detector.detect([Image.new("RGB", (320, 320), (128, 128, 128))])
    return detector


@serve.deployment(name="Detector")
class DetectorDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings_from(settings)
        s = self.settings
        self.model = ModelWatcher(s.models.detector, s, lambda pinned: _warm(Detector.from_ref(pinned.ref, s)))
        self.classifier: ModelWatcher[CategoryClassifier] | None = None
        self._follow_classifier()
        cfg = s.serving.detector
        self.detect.set_max_batch_size(cfg.max_batch_size)
        self.detect.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        self._stop = every(s.serving.reload_interval_s, self._reload, "detector-reload")

    def _follow_classifier(self) -> None:
        """Load the classifier once its alias exists (a bundle imported after start counts too)."""
        if self.classifier is None and (ref := classifier_ref(self.settings)) is not None:
            self.classifier = ModelWatcher(ref, self.settings, lambda pinned: CategoryClassifier.from_ref(pinned.ref, self.settings))

    def _reload(self) -> None:
        self.model.check()
        if self.classifier is not None:
            self.classifier.check()
        else:
            self._follow_classifier()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.004)
    async def detect(self, images: list[Image.Image]) -> list[Detected]:
        pinned, detector = self.model.current
        found = detector.detect(images)
        if self.classifier is None:
            return [Detected(objects, pinned) for objects in found]
        cls_pinned, classifier = self.classifier.current
        return [Detected(classifier.decide(image, objects, detector.names), pinned, cls_pinned)
                for image, objects in zip(images, found, strict=True)]

    def info(self) -> dict[str, str]:
        return {"detector": self.model.current[0].label,
                **({"classifier": self.classifier.current[0].label} if self.classifier is not None else {})}

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
