"""Raw tags for product cards, from one of three sources behind one interface.

- :class:`ExtractorTagger` (the default, offline): the card's attribute values and the
  words and word pairs of its title and description. Most n-grams are noise; the
  cleaning (:func:`~visearch.tags.clean.clean_tags`) keeps what resolves to the
  vocabulary and what enough products share.
- :class:`LLMTagger`: titles and descriptions to a language model behind an
  OpenAI-compatible endpoint, which answers tags per product.
- :class:`VLMTagger`: each product's first photo to a vision-language model, same endpoint.

Every generator answers raw strings; cleaning is the same whichever made them.

>>> gen = make_generator(settings)  # doctest: +SKIP
>>> raw = gen.generate(cards_from_catalog("data/train2k"))  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from visearch.catalog import image_path, read_catalog
from visearch.config import Settings, TagSettings
from visearch.errors import InvalidArgumentError
from visearch.tags.openai_compat import BACKOFF_S, EndpointClient, EndpointItem, EndpointStats, TagCache
from visearch.tags.vocabulary import ATTRIBUTE_FACETS

__all__ = [
    "ProductCard",
    "TagGenerator",
    "ExtractorTagger",
    "LLMTagger",
    "VLMTagger",
    "make_generator",
    "cards_from_catalog",
    "LLM_PROMPT",
    "VLM_PROMPT",
]

LLM_PROMPT = (
    "You tag products of an online marketplace for search. For each product you get its id, title and "
    "description (Russian, English or both, often with typos and advertising). Answer the product's tags: "
    "short lowercase phrases in English naming what it is (category), its colour, pattern, material and "
    "brand, and any other visible property a shopper would search by. Never answer advertising or praise "
    "(sale, free shipping, best, хит, скидка). Answer only a JSON object mapping every product id to a list "
    "of tags, like {\"p1\": [\"mug\", \"red\", \"ceramic\"]}."
)
VLM_PROMPT = (
    "You tag products of an online marketplace for search from their photos. For each product you get its "
    "id followed by its photo. Answer the product's tags: short lowercase phrases in English naming what it "
    "is (category), its colour, pattern, material, a brand if one is readable, and any other visible "
    "property a shopper would search by. Answer only a JSON object mapping every product id to a list of "
    "tags, like {\"p1\": [\"mug\", \"red\", \"ceramic\"]}."
)
#: a photo larger than this (px, either side) is scaled down before it is sent: the model sees no more
MAX_IMAGE_SIDE = 1024
_SENTENCE = re.compile(r"[.!?;:,()\[\]{}|/\\\n\r\t]+|\s[-–—]\s")
_EDGE = re.compile(r"^[^\w]+|[^\w]+$")


@dataclass(frozen=True)
class ProductCard:
    """What a generator may read of one product: its text, its attribute values, its photos."""

    product_id: str
    title: str = ""
    description: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    image_paths: tuple[Path, ...] = ()

    @classmethod
    def from_row(cls, row: Mapping[str, Any], data_dir: str | Path | None = None, *,
                 attributes: bool = True) -> ProductCard:
        """The card of one catalog row; ``attributes=False`` leaves the attribute values out
        (to measure what text alone gives). Image uris resolve inside ``data_dir`` when given."""
        attrs = {f: str(row[f]) for f in ATTRIBUTE_FACETS if attributes and row.get(f) not in (None, "")}
        paths: tuple[Path, ...] = ()
        if data_dir is not None:
            paths = tuple(image_path(data_dir, u) for u in (row.get("image_uris") or ()))
        return cls(str(row["product_id"]), str(row.get("title") or ""), str(row.get("description") or ""),
                   attrs, paths)


def cards_from_catalog(data: str | Path, *, attributes: bool = True) -> list[ProductCard]:
    """Every product card of a catalog (a data set folder or its ``products.parquet``)."""
    path = Path(data)
    root = path if path.is_dir() else path.parent
    table = read_catalog(data)
    return [ProductCard.from_row(r, root, attributes=attributes) for r in table.to_pylist()]


@runtime_checkable
class TagGenerator(Protocol):
    """Anything that gives raw tags per product: ``generate(cards)[i]`` are card i's tags."""

    name: str

    def generate(self, products: Sequence[ProductCard]) -> list[list[str]]: ...


def text_ngrams(text: str, n_max: int = 2) -> list[str]:
    """Words and word runs up to ``n_max`` of ``text``, never across a sentence or clause break."""
    out: list[str] = []
    for clause in _SENTENCE.split(text or ""):
        words = [w for w in (_EDGE.sub("", w) for w in clause.split()) if w]
        for n in range(1, n_max + 1):
            out.extend(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return out


class ExtractorTagger:
    """Offline tags: attribute values, then title and description n-grams (unigrams and bigrams).

    It decides nothing: n-grams are candidates, and the cleaning keeps those that resolve to
    the vocabulary or that enough products share. ``stats`` is None (no endpoint).
    """

    name = "extractor"

    def __init__(self, n_max: int = 2, description: bool = True) -> None:
        self.n_max = n_max
        self.description = description
        self.stats: EndpointStats | None = None

    def generate(self, products: Sequence[ProductCard]) -> list[list[str]]:
        out = []
        for card in products:
            raw = [v.replace("_", " ") for v in card.attributes.values() if v]
            raw += text_ngrams(card.title, self.n_max)
            if self.description:
                raw += text_ngrams(card.description, self.n_max)
            out.append(raw)
        return out


class _EndpointTagger:
    """Shared by the LLM and VLM taggers: the client, the cache, the stats of the last run."""

    name = "endpoint"
    default_prompt = ""
    instruction = ""

    def __init__(self, settings: TagSettings, *, progress: bool = False, backoff_s: float = BACKOFF_S) -> None:
        self.settings = settings
        self.prompt = settings.prompt or self.default_prompt
        self.progress = progress
        self.backoff_s = backoff_s
        self.stats: EndpointStats | None = None

    def _item(self, card: ProductCard) -> EndpointItem | None:
        raise NotImplementedError

    def generate(self, products: Sequence[ProductCard]) -> list[list[str]]:
        """Raw tags per product from the endpoint (or the cache); a product the endpoint could not
        tag gets ``[]`` and its reason in ``stats.failed``.

        Raises:
            EndpointError: the endpoint is unreachable or refuses.
        """
        client = EndpointClient(self.settings, self.prompt, self.instruction, backoff_s=self.backoff_s,
                                progress=self.progress, description=f"{self.name} tags")
        cache = TagCache(self.settings.cache_path)
        try:
            items: list[EndpointItem | None] = [self._item(c) for c in products]
            ready = [it for it in items if it is not None]
            got = iter(client.tag(ready, cache))
            out = [next(got) if it is not None else [] for it in items]
            client.stats.products = len(products)
            for card, it in zip(products, items, strict=True):
                if it is None:
                    client.stats.failed[card.product_id] = "no photo to send"
            return out
        finally:
            self.stats = client.stats
            client.close()
            cache.close()


class LLMTagger(_EndpointTagger):
    """Tags from a language model reading each product's title and description."""

    name = "llm"
    default_prompt = LLM_PROMPT
    instruction = "Tag these products. Each product is one JSON line with its id, title and description."

    def _item(self, card: ProductCard) -> EndpointItem:
        text = json.dumps({"id": card.product_id, "title": card.title, "description": card.description},
                          ensure_ascii=False)
        return EndpointItem(card.product_id, ({"type": "text", "text": text},))


def jpeg_data_uri(path: Path, max_side: int = MAX_IMAGE_SIDE) -> str:
    """A photo as a ``data:image/jpeg;base64,...`` URI: JPEG bytes as they are when small enough,
    anything else (or a larger photo) decoded, scaled to ``max_side`` and encoded as JPEG."""
    data = Path(path).read_bytes()
    if data[:3] != b"\xff\xd8\xff" or _too_big(data, max_side):
        from PIL import Image

        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB")
            img.thumbnail((max_side, max_side))
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            data = buf.getvalue()
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _too_big(data: bytes, max_side: int) -> bool:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return max(img.size) > max_side
    except Exception:  # noqa: BLE001 - undecodable: re-encoding will say why
        return True


class VLMTagger(_EndpointTagger):
    """Tags from a vision-language model looking at each product's first photo."""

    name = "vlm"
    default_prompt = VLM_PROMPT
    instruction = "Tag these products. Each product is its id followed by its photo."

    def _item(self, card: ProductCard) -> EndpointItem | None:
        if not card.image_paths:
            return None
        try:
            uri = jpeg_data_uri(card.image_paths[0])
        except OSError as e:
            raise InvalidArgumentError(f"product {card.product_id}: cannot read its photo "
                                       f"{card.image_paths[0]} ({e.strerror or e})") from None
        return EndpointItem(card.product_id, (
            {"type": "text", "text": f"product id: {card.product_id}"},
            {"type": "image_url", "image_url": {"url": uri}},
        ))


def make_generator(settings: Settings | TagSettings, *, generator: str | None = None,
                   progress: bool = False) -> TagGenerator:
    """The generator ``settings.tags.generator`` (or ``generator``) names.

    Raises:
        InvalidArgumentError: an unknown name, or llm/vlm without ``endpoint_url``.
    """
    tags = settings.tags if isinstance(settings, Settings) else settings
    name = generator or tags.generator
    if name == "extractor":
        return ExtractorTagger()
    if name in ("llm", "vlm") and not tags.endpoint_url:
        raise InvalidArgumentError(
            f"the {name} tag generator needs an endpoint: set VISEARCH_TAGS__ENDPOINT_URL "
            "(an OpenAI-compatible base URL, e.g. http://vllm:8000/v1)")
    if name == "llm":
        return LLMTagger(tags, progress=progress)
    if name == "vlm":
        return VLMTagger(tags, progress=progress)
    raise InvalidArgumentError(f"unknown tag generator {name!r}; use extractor, llm or vlm")
