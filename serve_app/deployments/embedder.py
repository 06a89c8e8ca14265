"""Embedder deployment: multiplexed by pinned model version, dynamically batched.

Variants that point at different embedder versions share one replica pool: the ingress
sends the pinned reference (``models:/visearch-embedder/7``) as the multiplexed model id,
Serve routes to a replica that has it loaded, and each replica keeps a few versions (LRU).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image
from ray import serve

from serve_app.deployments._common import every, settings_from
from visearch.embedding.refiner import Refiner, check_refiner_embedder
from visearch.errors import NotFoundError
from visearch.query import Embedded, Refined
from visearch.registry import optional_ref
from visearch.registry.watch import ModelWatcher
from visearch.stages import LoadedEmbedder, load_embedder


@serve.deployment(name="Embedder")
class EmbedderDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings_from(settings)
        cfg = self.settings.serving.embedder
        self._embed.set_max_batch_size(cfg.max_batch_size)
        self._embed.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)
        self.refiner: ModelWatcher[Refiner] | None = None
        # the refiner's alias is re-checked in the background, not on each request (a registry query each)
        self._stop = every(self.settings.serving.reload_interval_s, self._follow_refiner, "refiner-reload")

    def _follow_refiner(self) -> None:
        if self.refiner is not None:
            self.refiner.check()

    @serve.multiplexed(max_num_models_per_replica=3)
    async def get_model(self, model_id: str) -> LoadedEmbedder:
        model = load_embedder(model_id, self.settings)
        model.embed([Image.new("RGB", (64, 64), (128, 128, 128))])  # warm up before it serves
        return model

    async def info(self) -> dict[str, str]:
        """Load (or touch) the requested version: the readiness probe warms the champion up."""
        model = await self.get_model(serve.get_multiplexed_model_id())
        return {"embedder": model.model.label}

    async def embed(self, crops: list[Image.Image]) -> Embedded:
        model_id = serve.get_multiplexed_model_id()
        await self.get_model(model_id)  # load (or touch) outside the batch
        return await self._embed((model_id, crops))

    async def refine(self, vectors: np.ndarray, texts: list[str]) -> Refined:
        """Crop vectors of this replica's embedder moved by texts; the refiner is loaded on first use and then
        follows its alias."""
        if self.refiner is None:
            ref = optional_ref(self.settings.models.refiner, self.settings)
            if ref is None:
                raise NotFoundError("refinement is off: no refiner (visearch train refiner --data DIR, "
                                    "or import the default bundle)")
            self.refiner = ModelWatcher(ref, self.settings, lambda pinned: Refiner.from_ref(pinned.ref, self.settings))
        refiner = self.refiner.current[1]
        check_refiner_embedder(refiner, serve.get_multiplexed_model_id())
        return refiner.search_for(vectors, texts)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.004)
    async def _embed(self, requests: list[tuple[str, list[Image.Image]]]) -> list[Embedded]:
        """One forward pass per model version in the batch, however many requests it holds."""
        out: list[Embedded | None] = [None] * len(requests)
        for model_id in dict.fromkeys(m for m, _ in requests):
            model = await self.get_model(model_id)
            idx = [i for i, (m, _) in enumerate(requests) if m == model_id]
            crops = [c for i in idx for c in requests[i][1]]
            vectors = model.embedder.embed(crops)
            start = 0
            for i in idx:
                n = len(requests[i][1])
                out[i] = Embedded(np.ascontiguousarray(vectors[start:start + n]), model.model, model.match_threshold)
                start += n
        return [e for e in out if e is not None]

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
