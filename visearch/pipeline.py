"""One query, in process: photo → objects + articles → vector → index → products.

The same :class:`~visearch.query.QueryFlow` the Serve graph runs, over the models loaded
in this process (:class:`~visearch.stages.LocalStages`): the CLI, the demo, the tests and
``visearch eval pipeline`` see exactly what the service answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from visearch.config import Settings
from visearch.experiments import Variant, default_experiment
from visearch.index import SearchFilter
from visearch.query import Answer, PhotoSession, QueryFlow
from visearch.stages import LocalStages
from visearch.vision.images import ImageLimits, load_image

__all__ = ["SearchPipeline", "answer_to_dict"]


def answer_to_dict(answer: Answer) -> dict[str, Any]:
    """An answer as plain JSON-able data, the shape the HTTP API returns (the ranker's inputs left out)."""
    out = asdict(answer)
    out.pop("ranking", None)
    return out


class SearchPipeline:
    """Detector, article reader, embedder and index, loaded once from the settings."""

    def __init__(self, settings: Settings, stages: LocalStages) -> None:
        self.settings, self.stages = settings, stages
        self.flow = QueryFlow(stages, settings)
        self.limits = ImageLimits.from_settings(settings.vision)
        self.variant: Variant = default_experiment(settings.models.embedder, settings.index.online_dim).variants[0]

    @classmethod
    def from_settings(cls, settings: Settings) -> SearchPipeline:
        return cls(settings, LocalStages.from_settings(settings))

    def load(self, photo: bytes | Image.Image | str | Path) -> Image.Image:
        return photo if isinstance(photo, Image.Image) else load_image(photo, self.limits)

    def search(self, photo: bytes | Image.Image | str | Path, k: int | None = None, pick: int | None = None,
               *, variant: Variant | None = None, filter: SearchFilter | None = None,
               all_objects: bool = False) -> Answer:
        """Search the most prominent object of ``photo`` (or the ``pick``-th detected one)."""
        answer, session = self.photo(photo, k, variant=variant, filter=filter, all_objects=all_objects)
        if pick is not None and pick != answer.picked:
            again = self.again(session, object_id=pick, k=k, variant=variant, filter=filter)
            again.timings_ms = {**answer.timings_ms, **{f"{n}_again": v for n, v in again.timings_ms.items()}}
            return again
        return answer

    def photo(self, photo: bytes | Image.Image | str | Path, k: int | None = None, *, variant: Variant | None = None,
              filter: SearchFilter | None = None, all_objects: bool = False) -> tuple[Answer, PhotoSession]:
        return asyncio.run(self.flow.photo(self.load(photo), variant=variant or self.variant, top_k=k, filter=filter,
                                           all_objects=all_objects))

    def refine(self, session: PhotoSession, text: str, *, object_id: int | None = None, k: int | None = None,
               variant: Variant | None = None, filter: SearchFilter | None = None) -> Answer:
        return asyncio.run(self.flow.refine(session, variant=variant or self.variant, text=text, object_id=object_id,
                                            top_k=k, filter=filter))

    def again(self, session: PhotoSession, *, object_id: int | None = None, box: list[float] | None = None,
              k: int | None = None, variant: Variant | None = None, filter: SearchFilter | None = None) -> Answer:
        return asyncio.run(self.flow.again(session, variant=variant or self.variant, object_id=object_id, box=box,
                                           top_k=k, filter=filter))
