"""One query, in process: photo → objects + articles → vector → index → products.

The same object graph the Serve deployments wrap (one deployment per model); here it
runs in one process for the CLI, the demo and the tests.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from visearch.config import Settings
from visearch.errors import InvalidArgumentError
from visearch.vision.detector import Detection, Detector
from visearch.vision.images import ImageLimits, load_image
from visearch.vision.ocr import ArticleHit, ArticleReader, make_ocr_engine

__all__ = ["SearchPipeline", "SearchResult"]


@dataclass
class SearchResult:
    objects: list[Detection]
    picked: int  # which object was searched
    articles: list[ArticleHit]  # article numbers read off the photo, with the product each names
    products: list[Any]  # index hits for the picked object's crop, best first
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [{"box": [round(c, 1) for c in d.box], "category": d.category, "score": round(d.score, 4),
                         "fallback": d.fallback} for d in self.objects],
            "picked": self.picked,
            "articles": [{"article": a.article, "product_id": a.product_id, "object": a.object_index} for a in self.articles],
            "products": [{"product_id": h.product_id, "score": round(float(h.score), 4),
                          **{k: h.payload.get(k) for k in ("title", "category", "price", "article") if k in h.payload}}
                         for h in self.products],
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


class SearchPipeline:
    """Detector, article reader, embedder and index, loaded once from the settings."""

    def __init__(self, settings: Settings, detector: Detector, reader: ArticleReader, embedder: Any, index: Any) -> None:
        self.settings, self.detector, self.reader, self.embedder, self.index = settings, detector, reader, embedder, index
        self.limits = ImageLimits.from_settings(settings.vision)

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchPipeline:
        from visearch.embedding.embedder import Embedder
        from visearch.index import open_index

        detector = Detector.from_ref(settings.models.detector, settings)
        reader = ArticleReader(make_ocr_engine(settings.models.ocr_backend, settings.vision), None, settings.vision.article_pattern)
        embedder = Embedder.from_ref(settings.models.embedder, settings)
        return cls(settings, detector, reader, embedder, open_index(settings))

    def search(self, photo: bytes | Image.Image | str, k: int | None = None, pick: int | None = None) -> SearchResult:
        """Search the ``pick``-th object (default: the most confident one) of ``photo``."""
        k = k or self.settings.serving.top_k
        timings: dict[str, float] = {}
        t = time.perf_counter()
        image = photo if isinstance(photo, Image.Image) else load_image(photo, self.limits)
        objects = self.detector.detect([image])[0]
        timings["detect"] = (time.perf_counter() - t) * 1000
        if pick is not None and not 0 <= pick < len(objects):
            raise InvalidArgumentError(f"object {pick} does not exist: the photo has {len(objects)} object(s)")
        picked = pick or 0

        t = time.perf_counter()
        read = self.reader.read(image, [d.box for d in objects])
        articles = []
        for hit in read.hits:
            found = self.index.lookup_article(hit.article, limit=1)
            if found:
                articles.append(ArticleHit(hit.article, found[0].product_id, hit.score, hit.box, hit.object_index))
        timings["ocr"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        x1, y1, x2, y2 = objects[picked].box
        crop = image.crop((int(x1), int(y1), max(int(x1) + 1, int(round(x2))), max(int(y1) + 1, int(round(y2)))))
        vector = self.embedder.embed([crop])[0]
        timings["embed"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        products = self.index.search(vector, k)
        timings["index"] = (time.perf_counter() - t) * 1000
        return SearchResult(objects, picked, articles, products, timings)
