"""Article numbers read off photos with PP-OCR.

The default engine runs PaddleOCR's PP-OCR models through ``rapidocr-onnxruntime``
(the wheel ships the models, so nothing downloads); a ``paddleocr`` engine sits behind
the same interface for users who have that package and its models. Text lines are
read on the whole photo and each line is linked to the detected object it sits on, so
several products in one photo each get their own article.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image

from visearch.config import Settings, VisionSettings
from visearch.errors import InvalidArgumentError, VisearchError

__all__ = [
    "TextLine",
    "ArticleHit",
    "OcrResult",
    "OcrEngine",
    "RapidOcrEngine",
    "PaddleOcrEngine",
    "make_ocr_engine",
    "extract_articles",
    "ArticleReader",
]

Box = tuple[float, float, float, float]

# OCR confuses these with digits inside numbers: O/o (Latin, Cyrillic) → 0, l/I/| → 1
_TO_DIGIT = str.maketrans({"O": "0", "o": "0", "О": "0", "о": "0", "l": "1", "I": "1", "|": "1", "і": "1", "І": "1"})
_RUN = re.compile(r"[0-9OoОоlI|іІ]+(?:[ \u00a0][0-9OoОоlI|іІ]+)*")


@dataclass(frozen=True)
class TextLine:
    text: str
    score: float
    box: Box  # x1, y1, x2, y2 in photo pixels


@dataclass(frozen=True)
class ArticleHit:
    article: str
    product_id: str | None  # None when the catalog does not know the article
    score: float
    box: Box
    object_index: int | None  # which detected object the text sits on


@dataclass
class OcrResult:
    lines: list[TextLine] = field(default_factory=list)
    hits: list[ArticleHit] = field(default_factory=list)


class OcrEngine(Protocol):
    """Reads text lines off an RGB image."""

    def read(self, image: Image.Image) -> list[TextLine]: ...


def _box_of(points: Sequence[Sequence[float]]) -> Box:
    pts = np.asarray(points, float)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


class RapidOcrEngine:
    """PP-OCRv4 detection + recognition on onnxruntime; models ship inside the wheel."""

    def __init__(self, det_limit_side_len: int = 736, use_cls: bool = False, min_score: float = 0.5, threads: int = -1) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(
            det_limit_side_len=det_limit_side_len,
            use_cls=use_cls,
            text_score=min_score,
            intra_op_num_threads=threads,
        )

    def read(self, image: Image.Image) -> list[TextLine]:
        result, _ = self._ocr(np.asarray(image.convert("RGB"))[:, :, ::-1].copy())  # it expects BGR
        return [TextLine(str(text), float(score), _box_of(points)) for points, text, score in (result or [])]


class PaddleOcrEngine:
    """The ``paddleocr`` package, for users who have it and its models on disk."""

    def __init__(self, min_score: float = 0.5) -> None:
        try:
            from paddleocr import PaddleOCR
        except ImportError:
            raise VisearchError("the paddleocr backend needs the paddleocr package; install it or use VISEARCH_MODELS__OCR_BACKEND=rapidocr") from None
        self._ocr = PaddleOCR(use_angle_cls=False, lang="en", show_log=False)
        self.min_score = min_score

    def read(self, image: Image.Image) -> list[TextLine]:
        pages = self._ocr.ocr(np.asarray(image.convert("RGB")), cls=False) or []
        lines = []
        for page in pages:
            for points, (text, score) in page or []:
                if score >= self.min_score:
                    lines.append(TextLine(str(text), float(score), _box_of(points)))
        return lines


def make_ocr_engine(backend: str, vision: VisionSettings) -> OcrEngine:
    """The configured engine (``VISEARCH_MODELS__OCR_BACKEND``)."""
    if backend == "rapidocr":
        return RapidOcrEngine(vision.ocr_det_side, min_score=vision.ocr_min_score)
    if backend == "paddleocr":
        return PaddleOcrEngine(vision.ocr_min_score)
    raise InvalidArgumentError(f"unknown OCR backend {backend!r}; use rapidocr or paddleocr")


def extract_articles(text: str, pattern: str | re.Pattern[str] = r"[1-9]\d{5,9}") -> list[str]:
    """Article numbers in one OCR line, tolerating prefixes (Арт., Art., артикул, SKU),
    spaces between digit groups and O/0, l/1 confusions.

    >>> extract_articles("Арт. 12 345 67")
    ['1234567']
    >>> extract_articles("SKU:4O8l553")
    ['4081553']
    """
    rx = re.compile(pattern) if isinstance(pattern, str) else pattern
    found: list[str] = []
    for run in _RUN.finditer(text):
        raw = run.group(0)
        if sum(c.isdigit() for c in raw) < 4:  # words like "lOl" are not numbers
            continue
        candidates = [raw.replace(" ", "").replace("\u00a0", "")]
        if " " in raw or "\u00a0" in raw:
            candidates += re.split(r"[ \u00a0]", raw)
        for cand in candidates:
            digits = cand.translate(_TO_DIGIT)
            if rx.fullmatch(digits) and digits not in found:
                found.append(digits)
                break
    return found


def _owner(box: Box, objects: Sequence[Box]) -> int | None:
    """Smallest object box holding the centre of ``box``."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    best, best_area = None, float("inf")
    for i, (x1, y1, x2, y2) in enumerate(objects):
        if x1 <= cx <= x2 and y1 <= cy <= y2 and (x2 - x1) * (y2 - y1) < best_area:
            best, best_area = i, (x2 - x1) * (y2 - y1)
    return best


class ArticleReader:
    """OCR + article extraction + catalog lookup + linking lines to objects."""

    def __init__(self, engine: OcrEngine, catalog: Mapping[str, str] | None = None, pattern: str = r"[1-9]\d{5,9}") -> None:
        self.engine = engine
        self.catalog = catalog
        self.pattern = re.compile(pattern)

    @classmethod
    def from_settings(cls, settings: Settings, catalog: Mapping[str, str] | None = None) -> ArticleReader:
        """The configured engine (``VISEARCH_MODELS__OCR_BACKEND``) with the configured article pattern."""
        return cls(make_ocr_engine(settings.models.ocr_backend, settings.vision), catalog, settings.vision.article_pattern)

    def read_batch(self, images: Sequence[Image.Image], objects: Sequence[Sequence[Box]]) -> list[OcrResult]:
        """:meth:`read` for each image with its object boxes (list in, list out)."""
        return [self.read(img, boxes) for img, boxes in zip(images, objects, strict=True)]

    def read(self, image: Image.Image, objects: Sequence[Box] = ()) -> OcrResult:
        """Lines and article hits of ``image``; with a catalog, unknown numbers are dropped."""
        lines = self.engine.read(image)
        hits: list[ArticleHit] = []
        for line in lines:
            for article in extract_articles(line.text, self.pattern):
                pid = self.catalog.get(article) if self.catalog is not None else None
                if self.catalog is not None and pid is None:
                    continue
                hits.append(ArticleHit(article, pid, line.score, line.box, _owner(line.box, objects)))
        return OcrResult(lines, hits)
