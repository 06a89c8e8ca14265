"""The :class:`~visearch.query.Stages` protocol over Serve deployment handles.

The ingress runs the same :class:`~visearch.query.QueryFlow` as the CLI; only these
calls cross to other replicas.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from ray.serve.handle import DeploymentHandle

from visearch.index import Hit, SearchFilter
from visearch.query import Detected, Embedded, Refined, Searched
from visearch.ranking.apply import RankContext
from visearch.registry.watch import PinCache

if TYPE_CHECKING:
    from serve_app.service import Served
    from visearch.query import PhotoSession
    from visearch.tags.crop_tags import Neighbour
    from visearch.tags.projection import Tagged
from visearch.vision.ocr import TextLine


@dataclass
class SharedSessions:
    """The sessions deployment's handle as the ingress's session store: any replica continues any upload."""

    handle: DeploymentHandle

    async def put(self, value: tuple[PhotoSession, Served]) -> str:
        return await self.handle.put.remote(value)

    async def get(self, session_id: str) -> tuple[PhotoSession, Served]:
        return await self.handle.get.remote(session_id)


@dataclass
class ServeStages:
    detector: DeploymentHandle
    ocr: DeploymentHandle
    embedder: DeploymentHandle
    search_: DeploymentHandle
    pins: PinCache

    async def detect(self, image: Image.Image) -> Detected:
        return await self.detector.detect.remote(image)

    async def read(self, image: Image.Image, boxes: Sequence[tuple[float, float, float, float]] = ()) -> list[TextLine]:
        return await self.ocr.read.remote(image, list(boxes))

    async def embed(self, crops: Sequence[Image.Image], embedder: str) -> Embedded:
        pinned = await asyncio.to_thread(self.pins.pin, embedder)  # a moved alias: a new multiplexed model id
        return await self.embedder.options(multiplexed_model_id=pinned.ref).embed.remote(list(crops))

    async def search(self, vectors: np.ndarray, k: int, *, online_dim: int, filter: SearchFilter | None = None,
                     exclude: Sequence[str] = (), index: str | None = None,
                     contexts: Sequence[RankContext] | None = None) -> Searched:
        return await self.search_.search.remote(vectors, k, online_dim, filter, list(exclude), index,
                                                None if contexts is None else list(contexts))

    async def lookup(self, articles: Sequence[str]) -> dict[str, Hit]:
        return await self.search_.lookup.remote(list(articles))

    async def vector(self, product_id: str) -> np.ndarray | None:
        return await self.search_.vector.remote(product_id)

    async def tags(self, vectors: np.ndarray, neighbours: Sequence[Sequence[Neighbour]], embedder: str,
                   k: int) -> list[list[Tagged]]:
        return await self.search_.tags.remote(vectors, [list(n) for n in neighbours], embedder, k)

    async def refine(self, vectors: np.ndarray, texts: Sequence[str], embedder: str) -> Refined:
        return await self.embedder.options(multiplexed_model_id=embedder).refine.remote(vectors, list(texts))

    # ------------------------------------------------------------------ beyond the query flow
    async def products(self, product_ids: Sequence[str]) -> dict[str, dict]:
        return await self.search_.products.remote(list(product_ids))

    async def similar(self, product_id: str, k: int, online_dim: int | None, filter: SearchFilter | None) -> Searched:
        return await self.search_.similar.remote(product_id, k, online_dim, filter)

    async def ready(self, embedder: str) -> dict[str, object]:
        """What each deployment has loaded (the ``embedder`` reference included); raises if one is not up."""
        pinned = await asyncio.to_thread(self.pins.pin, embedder)
        parts = [self.detector.info.remote(), self.ocr.info.remote(), self.search_.info.remote(),
                 self.embedder.options(multiplexed_model_id=pinned.ref).info.remote()]
        out: dict[str, object] = {}
        for part in parts:
            out.update(await part)
        return out
