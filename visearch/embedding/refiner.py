"""Text refinement: the crop's vector and a short text ("same but red", "без капюшона") in,
the vector of the product the shopper means out, in the embedder's space, ready to search.

The text is read by the backbone's own text tower (the one trained beside the image tower), so
the refiner needs no other language model. The head keeps what the text does not change: a
gate chooses, per dimension, how much of the crop's vector passes through, and an MLP over the
crop and the text adds the change.

The refiner also reads the text as words: a vocabulary learned at training from the catalog's
titles and from the train triplets (which words name which colour, pattern, material or brand,
"тёмно-синий" → navy, "однотонный" → solid) turns the text into the attributes it asks for;
search then puts the products that have them first (their payload tags or attribute columns).
A text naming no known attribute is searched by its vector alone.

>>> refiner = Refiner.from_ref("models:/visearch-refiner@champion", settings)   # doctest: +SKIP
>>> refiner.refine(crop_vectors, ["same but red"])                               # doctest: +SKIP
>>> refiner.wanted("такой же, но в полоску")                                      # doctest: +SKIP
[Tag(text='stripes', facet='pattern')]
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from visearch.config import Settings
from visearch.errors import ConflictError, DatasetError, InvalidArgumentError
from visearch.tags.vocabulary import Tag, TagVocabulary, normalise

if TYPE_CHECKING:
    from visearch.query import Refined

__all__ = ["RefinerHead", "Refiner", "check_refinement_text", "check_refiner_embedder", "WEIGHTS_FILE", "CONFIG_FILE",
           "VOCABULARY_FILE", "TEXT_FACETS"]

WEIGHTS_FILE = "refiner.safetensors"
CONFIG_FILE = "refiner.json"
VOCABULARY_FILE = "vocabulary.json"
# what a refinement may ask to change; the category stays the one the object was detected as
TEXT_FACETS = ("colour", "pattern", "material", "brand")
_LETTER = re.compile(r"[a-zA-Zа-яА-ЯёЁ]")


class RefinerHead(nn.Module):
    """(crop vector, text vector) → unit vector in the crop's space."""

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 512, dropout: float = 0.0) -> None:
        super().__init__()
        self.config = {"image_dim": image_dim, "text_dim": text_dim, "hidden": hidden, "dropout": dropout}
        self.text = nn.Sequential(nn.Linear(text_dim, hidden), nn.GELU())
        self.mix = nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim + hidden, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, hidden), nn.GELU())
        self.delta = nn.Linear(hidden, image_dim)
        self.gate = nn.Linear(hidden, image_dim)
        with torch.no_grad():  # start as the identity: keep the crop, add nothing
            self.delta.weight.mul_(0.1)
            self.delta.bias.zero_()
            self.gate.bias.fill_(2.0)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = self.mix(torch.cat([image, self.text(text)], dim=-1))
        return F.normalize(torch.sigmoid(self.gate(h)) * image + self.delta(h), dim=-1)


def check_refinement_text(text: Any, max_chars: int) -> str:
    """The text, trimmed, or a clear refusal: empty, too long, not text, or in no language the catalog speaks."""
    if not isinstance(text, str):
        raise InvalidArgumentError(f"text must be a string, got {type(text).__name__}")
    text = unicodedata.normalize("NFC", text).strip()
    if not text:
        raise InvalidArgumentError("text is empty: describe the change, e.g. 'same but red' or 'такой же, но в полоску'")
    if len(text) > max_chars:
        raise InvalidArgumentError(f"text is {len(text)} characters long; at most {max_chars} are read: keep it short, "
                                   "e.g. 'same but red'")
    if any(unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn") and c not in "\t\n" for c in text):
        raise InvalidArgumentError("text holds control or non-character code points; send plain text")
    if not _LETTER.search(text):
        raise InvalidArgumentError("text has no Russian or English words; refinements are read in Russian or English, "
                                   "e.g. 'same but red' or 'такой же, но красный'")
    return text


class Refiner:
    """A trained refiner head with the text tower it reads texts with."""

    def __init__(self, head: RefinerHead, backbone: Any, meta: dict[str, Any], ref: str,
                 vocabulary: TagVocabulary | None = None) -> None:
        self.head, self.backbone, self.meta, self.ref = head.eval(), backbone, meta, ref
        self.embedder: str = meta["embedder"]
        self.vocabulary = vocabulary  # None: a refiner from before the vocabulary, vectors only
        self.facets: tuple[str, ...] = tuple(meta.get("text_facets", TEXT_FACETS))

    @classmethod
    def from_ref(cls, ref: str, settings: Settings, backbone: Any = None) -> Refiner:
        """Load the refiner at ``ref`` and the backbone its card names (or ``backbone``, already loaded).

        Raises:
            NotFoundError: nothing at ``ref``.
            DatasetError: not a refiner folder.
            InvalidArgumentError: the backbone's text tower does not fit the head.
        """
        from safetensors.torch import load_file

        from visearch.embedding.backbone import Backbone
        from visearch.registry import resolve_model

        folder = resolve_model(ref, settings)
        if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
            raise DatasetError(f"{ref}: not a refiner (needs {CONFIG_FILE} and {WEIGHTS_FILE}); train one: "
                               "visearch train refiner --data DIR")
        from visearch.registry.card import card_references

        meta = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
        meta.update(card_references(folder, ("embedder", "backbone")))
        head = RefinerHead(**meta["head"])
        head.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        bb = backbone if backbone is not None else Backbone.from_ref(meta["backbone"], settings)
        if bb.dim != meta["head"]["text_dim"]:
            raise InvalidArgumentError(f"{ref}: the head reads {meta['head']['text_dim']}-d texts, backbone {bb.ref} "
                                       f"writes {bb.dim}-d")
        vocabulary = TagVocabulary.load(folder / VOCABULARY_FILE) if (folder / VOCABULARY_FILE).is_file() else None
        return cls(head, bb, meta, ref, vocabulary)

    def save(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps({**self.meta, "head": self.head.config, "text_facets": list(self.facets)},
                                                     ensure_ascii=False, indent=1), encoding="utf-8")
        if self.vocabulary is not None:
            self.vocabulary.save(folder / VOCABULARY_FILE)
        return folder

    def search_for(self, vectors: np.ndarray, texts: Sequence[str]) -> Refined:
        """What a refined search looks for: each crop's vector moved by its text, and the attributes the text names."""
        from visearch.query import Refined

        return Refined(self.refine(vectors, texts), [self.wanted(t) for t in texts])

    def wanted(self, text: str) -> list[Tag]:
        """The attributes ``text`` asks for, each once, in the order written ([] without a vocabulary).

        Two values of one facet ("red or blue") are both kept: search takes a product with either."""
        if self.vocabulary is None:
            return []
        found, _rest = self.vocabulary.segment(normalise(text))
        return [t for t in dict.fromkeys(found) if t.facet in self.facets]

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        return self.backbone.encode_text(list(texts))

    @torch.inference_mode()
    def refine(self, vectors: np.ndarray, texts: Sequence[str]) -> np.ndarray:
        """(n, image_dim) unit vectors of what each crop would be with its text's change."""
        v = torch.from_numpy(np.asarray(vectors, np.float32))
        if v.ndim != 2 or v.shape[1] != self.head.config["image_dim"] or len(v) != len(texts):
            raise InvalidArgumentError(f"refiner: {len(texts)} texts need ({len(texts)}, {self.head.config['image_dim']}) "
                                       f"vectors, got {tuple(v.shape)}")
        return self.head(v, self.encode_texts(texts).float()).numpy()


def check_refiner_embedder(refiner: Refiner, embedder: str) -> None:
    """A refiner moves vectors of one embedder's space: a variant searching another space cannot use it."""
    if refiner.embedder != embedder:
        raise ConflictError(f"refiner {refiner.ref} was trained in the space of {refiner.embedder}; this search embeds "
                            f"with {embedder}, so it cannot be refined")
