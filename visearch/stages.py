"""The stages in this process: the models themselves behind the :class:`~visearch.query.Stages` protocol.

The CLI, the tests and the evaluation run queries through these; the service runs the
same :class:`~visearch.query.QueryFlow` over Ray Serve handles instead.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from visearch.config import Settings
from visearch.embedding.embedder import Embedder
from visearch.embedding.refiner import Refiner, check_refiner_embedder
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.index import Hit, SearchFilter
from visearch.query import Detected, Embedded, Refined, Searched
from visearch.ranking.apply import RankContext
from visearch.registry import PinnedModel, optional_ref, pin_model
from visearch.searcher import Searcher
from visearch.tags.crop_tags import CropTagger, Neighbour
from visearch.tags.projection import Tagged
from visearch.vision.classifier import CategoryClassifier, classifier_ref
from visearch.vision.detector import Detector
from visearch.vision.ocr import ArticleReader, TextLine

__all__ = ["LocalStages", "LoadedEmbedder", "load_embedder", "match_threshold_of"]

MATCH_TAG = "match_threshold"


def match_threshold_of(pinned: PinnedModel, settings: Settings) -> float | None:
    """The exact-match threshold calibrated with this embedder version (``visearch calibrate``), if any."""
    if not pinned.ref.startswith("models:/"):
        return None
    from visearch.registry import ModelStore

    value = ModelStore(settings).tags(pinned.name, pinned.version).get(MATCH_TAG)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class LoadedEmbedder:
    embedder: Embedder
    model: PinnedModel
    match_threshold: float | None

    def embed(self, crops: Sequence[Image.Image]) -> Embedded:
        return Embedded(self.embedder.embed(list(crops)), self.model, self.match_threshold)


def load_embedder(ref: str, settings: Settings) -> LoadedEmbedder:
    """An embedder by reference, pinned (``@champion`` → its version) with its calibration."""
    pinned = pin_model(ref, settings)
    return LoadedEmbedder(Embedder.from_ref(pinned.ref, settings), pinned, match_threshold_of(pinned, settings))


@dataclass
class LocalStages:
    """Detector, article reader, embedders (by reference) and searcher in this process."""

    settings: Settings
    detector: Detector
    detector_model: PinnedModel
    reader: ArticleReader
    searcher: Searcher
    embedders: dict[str, LoadedEmbedder] = field(default_factory=dict)
    classifier: tuple[PinnedModel, CategoryClassifier] | None = None
    tagger: CropTagger | None = None
    refiner: Refiner | None = None

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalStages:
        pinned = pin_model(settings.models.detector, settings)
        ref = classifier_ref(settings)
        classifier = None
        if ref is not None:
            pinned_cls = pin_model(ref, settings)
            classifier = (pinned_cls, CategoryClassifier.from_ref(pinned_cls.ref, settings))
        tagger_ref = optional_ref(settings.models.tagger, settings)
        stages = cls(settings, Detector.from_ref(pinned.ref, settings), pinned, ArticleReader.from_settings(settings),
                     Searcher.from_settings(settings), classifier=classifier,
                     tagger=CropTagger.from_ref(tagger_ref, settings) if tagger_ref else None)
        stages.embedder(settings.models.embedder)
        return stages

    def embedder(self, ref: str) -> LoadedEmbedder:
        with self._lock:
            if ref not in self.embedders:
                self.embedders[ref] = load_embedder(ref, self.settings)
            return self.embedders[ref]

    async def detect(self, image: Image.Image) -> Detected:
        objects = self.detector.detect([image])[0]
        if self.classifier is None:
            return Detected(objects, self.detector_model)
        pinned, classifier = self.classifier
        return Detected(classifier.decide(image, objects, self.detector.names), self.detector_model, pinned)

    async def read(self, image: Image.Image, boxes: Sequence[tuple[float, float, float, float]] = ()) -> list[TextLine]:
        return self.reader.read_batch([image], [boxes])[0].lines

    async def embed(self, crops: Sequence[Image.Image], embedder: str) -> Embedded:
        if not crops:
            raise InvalidArgumentError("nothing to embed")
        return self.embedder(embedder).embed(crops)

    async def search(self, vectors: np.ndarray, k: int, *, online_dim: int, filter: SearchFilter | None = None,
                     exclude: Sequence[str] = (), index: str | None = None,
                     contexts: Sequence[RankContext] | None = None) -> Searched:
        hits = self.searcher.search(vectors, k, online_dim=online_dim, filter=filter, exclude=exclude, index=index,
                                    contexts=contexts)
        return Searched(hits, self.searcher.version)

    async def lookup(self, articles: Sequence[str]) -> dict[str, Hit]:
        return self.searcher.lookup(articles)

    async def vector(self, product_id: str) -> np.ndarray | None:
        return self.searcher.index().vectors([product_id]).get(product_id)

    async def tags(self, vectors: np.ndarray, neighbours: Sequence[Sequence[Neighbour]], embedder: str,
                   k: int) -> list[list[Tagged]]:
        if self.tagger is None:
            raise NotFoundError("no tag model: train one (visearch train tags --data DIR) or import the default bundle")
        self.tagger.check_embedder(embedder)
        # in a thread, as a Serve replica would answer it: the flow's time limit on tags holds in process too
        return await asyncio.to_thread(self.tagger.tags, vectors, neighbours, k)

    async def refine(self, vectors: np.ndarray, texts: Sequence[str], embedder: str) -> Refined:
        refiner = self.load_refiner()
        check_refiner_embedder(refiner, embedder)
        return refiner.search_for(vectors, texts)

    def load_refiner(self) -> Refiner:
        """The refiner, loaded on first use (its text tower is not needed until someone refines)."""
        with self._lock:
            if self.refiner is None:
                ref = optional_ref(self.settings.models.refiner, self.settings)
                if ref is None:
                    raise NotFoundError("refinement is off: no refiner (visearch train refiner --data DIR, "
                                        "or import the default bundle)")
                self.refiner = Refiner.from_ref(pin_model(ref, self.settings).ref, self.settings)
            return self.refiner
