"""OCR deployment: PP-OCR text lines of a photo (articles are extracted by the flow)."""

from __future__ import annotations

from typing import Any

from PIL import Image
from ray import serve

from serve_app.deployments._common import settings_from
from visearch.vision.ocr import ArticleReader, TextLine


@serve.deployment(name="OCR")
class OcrDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings_from(settings)
        self.reader = ArticleReader.from_settings(self.settings)
        self.read(Image.new("RGB", (320, 320), (255, 255, 255)))  # warm up before the first request

    def read(self, image: Image.Image, boxes: list[tuple[float, float, float, float]] | None = None) -> list[TextLine]:
        return self.reader.read_batch([image], [boxes or ()])[0].lines

    def info(self) -> dict[str, str]:
        return {"ocr": self.settings.models.ocr_backend}
