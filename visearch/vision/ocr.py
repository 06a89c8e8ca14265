"""Article numbers read off photos with PP-OCR.

The default engine runs PaddleOCR's PP-OCR models through ``rapidocr-onnxruntime``
(the wheel ships the models, so nothing downloads); a ``paddleocr`` engine sits behind
the same interface for users who have that package and its models.

Reading is paid for where it matters, at the resolution it needs: the reader grows each
detected object's box by a margin and reads text only inside those regions (an article
only counts on an object; a photo without boxes, or whose boxes cover most of it, is read
whole), text detection sees the photo at a fixed scale (``ocr_det_side`` on its long side,
so a 384-px shopper photo is not blown up to 736 px), text lines whose shape cannot hold an
article are not recognised, and a photo with no text costs one detection pass. Each line
is then linked to the object under its centre, so several products in one photo each get
their own article.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from visearch.config import Settings, VisionSettings
from visearch.errors import InvalidArgumentError, VisearchError

__all__ = [
    "TextLine",
    "ArticleHit",
    "OcrResult",
    "OcrEngine",
    "RegionOcrEngine",
    "RapidOcrEngine",
    "PaddleOcrEngine",
    "make_ocr_engine",
    "extract_articles",
    "owner_of",
    "read_regions",
    "ArticleReader",
]

Box = tuple[float, float, float, float]
Region = tuple[int, int, int, int]  # x1, y1, x2, y2: whole pixels, x2/y2 exclusive

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


@runtime_checkable
class RegionOcrEngine(Protocol):
    """An engine that reads only given regions of each photo, at the photo's own detection scale."""

    def read(self, image: Image.Image) -> list[TextLine]: ...

    def read_regions(self, images: Sequence[Image.Image], regions: Sequence[Sequence[Region]]) -> list[list[TextLine]]: ...


def _box_of(points: Sequence[Sequence[float]]) -> Box:
    pts = np.asarray(points, float)
    return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())


def _line_crop(bgr: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """The text line under ``quad`` straightened to a horizontal strip (as PaddleOCR crops it)."""
    import cv2

    quad = quad.astype(np.float32)
    w = max(1, int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3]))))
    h = max(1, int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2]))))
    m = cv2.getPerspectiveTransform(quad, np.float32([[0, 0], [w, 0], [w, h], [0, h]]))
    strip = cv2.warpPerspective(bgr, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    return np.ascontiguousarray(np.rot90(strip)) if h / w >= 1.5 else strip  # vertical text


def _whole(image: Image.Image) -> list[Region]:
    return [(0, 0, image.width, image.height)]


def _window(lo: float, hi: float, limit: int, step: int = 32) -> tuple[int, int]:
    """The span [lo, hi) widened to whole multiples of ``step`` and moved inside [0, limit)
    (``limit`` is itself a multiple of ``step``)."""
    size = min(limit, max(step, int(np.ceil((hi - lo) / step)) * step))
    start = int(np.floor(lo - (size - (hi - lo)) / 2))
    start = min(max(0, start), limit - size)
    return start, start + size


class RapidOcrEngine:
    """PP-OCRv4 detection + recognition on onnxruntime; models ship inside the wheel.

    Detection sees the photo resized so that its long (``det_limit="max"``) or short side is
    ``det_side`` px, each region as a window of that image; recognition reads the lines found
    off the photo at its own resolution, skipping lines narrower than ``min_aspect``
    (width/height) and keeping the ``max_lines`` largest; a photo where nothing looks like
    text is never passed to recognition. One photo's lines are recognised together and apart
    from other photos', so a photo reads the same alone or in a batch.
    """

    def __init__(
        self,
        det_side: int = 576,
        det_limit: Literal["max", "min"] = "max",
        *,
        det_box_thresh: float = 0.4,
        use_cls: bool = False,
        min_score: float = 0.5,
        threads: int = 1,
        rec_batch: int = 6,
        rec_min_width: int = 320,
        min_aspect: float = 2.5,
        max_lines: int | None = 16,
    ) -> None:
        if det_limit not in ("max", "min"):
            raise InvalidArgumentError(f"det_limit must be max or min, got {det_limit!r}")
        from rapidocr_onnxruntime import RapidOCR

        self._ocr = RapidOCR(use_cls=use_cls, text_score=min_score, intra_op_num_threads=threads, rec_batch_num=rec_batch)
        self._det, self._rec = self._ocr.text_det, self._ocr.text_rec
        self._det.postprocess_op.box_thresh = det_box_thresh
        self._rec.rec_image_shape = [3, self._rec.rec_image_shape[1], rec_min_width]  # padding floor of a line
        self.det_side, self.det_limit, self.use_cls, self.min_score = det_side, det_limit, use_cls, min_score
        self.min_aspect, self.max_lines = min_aspect, max_lines

    @classmethod
    def from_settings(cls, vision: VisionSettings) -> RapidOcrEngine:
        return cls(vision.ocr_det_side, vision.ocr_det_limit, det_box_thresh=vision.ocr_det_box_thresh,
                   min_score=vision.ocr_min_score, threads=vision.ocr_threads,
                   rec_batch=vision.ocr_rec_batch, rec_min_width=vision.ocr_rec_min_width, min_aspect=vision.ocr_min_aspect,
                   max_lines=vision.ocr_max_lines)

    def scale(self, size: tuple[int, int]) -> float:
        """Detection scale of a photo of ``size`` (width, height)."""
        side = max(size) if self.det_limit == "max" else min(size)
        return self.det_side / max(1, side)

    def read(self, image: Image.Image) -> list[TextLine]:
        return self.read_regions([image], [_whole(image)])[0]

    def read_regions(self, images: Sequence[Image.Image], regions: Sequence[Sequence[Region]]) -> list[list[TextLine]]:
        """Text lines inside ``regions[i]`` of ``images[i]``, in photo pixels, top to bottom."""
        return [self._read_one(image, regs) for image, regs in zip(images, regions, strict=True)]

    def det_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the whole photo as text detection sees it: the photo at :meth:`scale`,
        each side rounded to the multiple of 32 the network wants."""
        s = self.scale(size)
        return max(32, round(size[0] * s / 32) * 32), max(32, round(size[1] * s / 32) * 32)

    def _detect(self, bgr: np.ndarray, regions: Sequence[Region]) -> list[np.ndarray]:
        """Text quads (photo pixels) whose centre lies in one of ``regions``. The photo is resized
        once to :meth:`det_size` and each region runs through the network as a window of that
        image widened to multiples of 32, so a line reads the same in a region as on the whole photo."""
        import cv2

        h, w = bgr.shape[:2]
        dw, dh = self.det_size((w, h))
        sx, sy = dw / w, dh / h
        small = cv2.resize(bgr, (dw, dh), interpolation=cv2.INTER_AREA if sx * sy < 1 else cv2.INTER_LINEAR)
        small = small.astype(np.float32) * (2 / 255) - 1  # mean 0.5, std 0.5
        quads: list[np.ndarray] = []
        for x1, y1, x2, y2 in regions:
            if x2 - x1 < 4 or y2 - y1 < 4:
                continue
            wx1, wx2 = _window(x1 * sx, x2 * sx, dw)
            wy1, wy2 = _window(y1 * sy, y2 * sy, dh)
            pred = self._det.infer(np.ascontiguousarray(small[wy1:wy2, wx1:wx2].transpose(2, 0, 1))[None])[0]
            found, _ = self._det.postprocess_op(pred, (wy2 - wy1, wx2 - wx1))
            for q in self._det.filter_tag_det_res(found, (wy2 - wy1, wx2 - wx1)) if len(found) else []:
                q = (q.astype(np.float32) + np.float32([wx1, wy1])) / np.float32([sx, sy])
                cx, cy = q.mean(axis=0)
                if x1 <= cx < x2 and y1 <= cy < y2:  # windows overlap: each line belongs to one region
                    quads.append(q)
        return quads

    def _read_one(self, image: Image.Image, regions: Sequence[Region]) -> list[TextLine]:
        bgr = np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
        quads = self._detect(bgr, regions)
        if not quads:  # nothing that looks like text: no recognition at all
            return []
        strips = [_line_crop(bgr, q) for q in quads]
        keep = [i for i, s in enumerate(strips) if s.shape[1] >= self.min_aspect * s.shape[0]]
        if self.max_lines is not None and len(keep) > self.max_lines:
            keep = sorted(sorted(keep, key=lambda i: -strips[i].size)[: self.max_lines])
        if not keep:
            return []
        crops = [strips[i] for i in keep]
        if self.use_cls:
            crops, _, _ = self._ocr.text_cls(crops)
        texts, _ = self._rec(crops)
        lines = [TextLine(str(text), float(score), _box_of(quads[i])) for i, (text, score, *_) in zip(keep, texts, strict=True)
                 if float(score) >= self.min_score]
        return sorted(lines, key=lambda ln: (ln.box[1], ln.box[0]))


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
        return RapidOcrEngine.from_settings(vision)
    if backend == "paddleocr":
        return PaddleOcrEngine(vision.ocr_min_score)
    raise InvalidArgumentError(f"unknown OCR backend {backend!r}; use rapidocr or paddleocr")


def read_regions(engine: OcrEngine, images: Sequence[Image.Image], regions: Sequence[Sequence[Region]]) -> list[list[TextLine]]:
    """Lines inside the regions of each image: the engine's own region reading when it has
    one, else ``engine.read`` on each region cut out (boxes moved back to photo pixels)."""
    if isinstance(engine, RegionOcrEngine):
        return engine.read_regions(images, regions)
    out = []
    for image, regs in zip(images, regions, strict=True):
        if list(regs) == _whole(image):
            out.append(engine.read(image))
            continue
        lines = []
        for x1, y1, x2, y2 in regs:
            for ln in engine.read(image.crop((x1, y1, x2, y2))):
                bx1, by1, bx2, by2 = ln.box
                lines.append(TextLine(ln.text, ln.score, (bx1 + x1, by1 + y1, bx2 + x1, by2 + y1)))
        out.append(lines)
    return out


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


def owner_of(box: Box, objects: Sequence[Box]) -> int | None:
    """Index of the smallest object box holding the centre of ``box`` (text on a product belongs to it)."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    best, best_area = None, float("inf")
    for i, (x1, y1, x2, y2) in enumerate(objects):
        if x1 <= cx <= x2 and y1 <= cy <= y2 and (x2 - x1) * (y2 - y1) < best_area:
            best, best_area = i, (x2 - x1) * (y2 - y1)
    return best


class ArticleReader:
    """OCR + article extraction + catalog lookup + linking lines to objects.

    With ``by_boxes`` (the default) only the objects' boxes, each grown by ``box_margin`` of
    its size, are read; overlapping grown boxes merge into one region, and when the regions
    cover at least ``whole_fraction`` of the photo (or there are no boxes) the photo is read
    whole in one pass.
    """

    def __init__(
        self,
        engine: OcrEngine,
        catalog: Mapping[str, str] | None = None,
        pattern: str = r"[1-9]\d{5,9}",
        *,
        by_boxes: bool = True,
        box_margin: float = 0.1,
        whole_fraction: float = 0.8,
    ) -> None:
        self.engine = engine
        self.catalog = catalog
        self.pattern = re.compile(pattern)
        self.by_boxes, self.box_margin, self.whole_fraction = by_boxes, box_margin, whole_fraction

    @classmethod
    def from_settings(cls, settings: Settings, catalog: Mapping[str, str] | None = None) -> ArticleReader:
        """The configured engine (``VISEARCH_MODELS__OCR_BACKEND``, ``VISEARCH_VISION__OCR_*``) and article pattern."""
        v = settings.vision
        return cls(make_ocr_engine(settings.models.ocr_backend, v), catalog, v.article_pattern,
                   by_boxes=v.ocr_by_boxes, box_margin=v.ocr_box_margin, whole_fraction=v.ocr_whole_fraction)

    def regions(self, size: tuple[int, int], objects: Sequence[Box]) -> list[Region]:
        """The parts of a photo of ``size`` (width, height) that are read, given its object boxes."""
        w, h = size
        if not self.by_boxes or not objects:
            return [(0, 0, w, h)]
        grown: list[list[float]] = []
        for x1, y1, x2, y2 in objects:
            mx, my = self.box_margin * (x2 - x1), self.box_margin * (y2 - y1)
            r = [max(0.0, x1 - mx), max(0.0, y1 - my), min(float(w), x2 + mx), min(float(h), y2 + my)]
            if r[2] > r[0] and r[3] > r[1]:
                grown.append(r)
        merged = True
        while merged:  # overlapping regions become their bounding rectangle, so no text is read twice
            merged = False
            for i in range(len(grown)):
                for j in range(i + 1, len(grown)):
                    a, b = grown[i], grown[j]
                    if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                        grown[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                        del grown[j]
                        merged = True
                        break
                if merged:
                    break
        if not grown or sum((r[2] - r[0]) * (r[3] - r[1]) for r in grown) >= self.whole_fraction * w * h:
            return [(0, 0, w, h)]
        return [(int(r[0]), int(r[1]), min(w, int(np.ceil(r[2]))), min(h, int(np.ceil(r[3])))) for r in grown]

    def read_batch(self, images: Sequence[Image.Image], boxes: Sequence[Sequence[Box]]) -> list[OcrResult]:
        """Lines and article hits of each image, given its object boxes (list in, list out);
        with a catalog, unknown numbers are dropped."""
        if len(images) != len(boxes):
            raise InvalidArgumentError(f"read_batch needs one list of boxes per image, got {len(images)} images and {len(boxes)} box lists")
        regions = [self.regions(img.size, objs) for img, objs in zip(images, boxes, strict=True)]
        return [self._hits(lines, objs) for lines, objs in zip(read_regions(self.engine, images, regions), boxes, strict=True)]

    def read(self, image: Image.Image, objects: Sequence[Box] = ()) -> OcrResult:
        """:meth:`read_batch` of one image."""
        return self.read_batch([image], [objects])[0]

    def _hits(self, lines: list[TextLine], objects: Sequence[Box]) -> OcrResult:
        hits: list[ArticleHit] = []
        for line in lines:
            for article in extract_articles(line.text, self.pattern):
                pid = self.catalog.get(article) if self.catalog is not None else None
                if self.catalog is not None and pid is None:
                    continue
                hits.append(ArticleHit(article, pid, line.score, line.box, owner_of(line.box, objects)))
        return OcrResult(lines, hits)
