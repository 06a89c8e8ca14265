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

from serve_app.deployments._common import settings_from
from visearch.query import Embedded
from visearch.stages import LoadedEmbedder, load_embedder


@serve.deployment(name="Embedder")
class EmbedderDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings_from(settings)
        cfg = self.settings.serving.embedder
        self._embed.set_max_batch_size(cfg.max_batch_size)
        self._embed.set_batch_wait_timeout_s(cfg.batch_wait_timeout_s)

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
