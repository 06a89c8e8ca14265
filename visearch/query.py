"""The choreography of a query, written once: detect and read, pick, crop, embed, search, label.

:class:`QueryFlow` talks to four stages through the :class:`Stages` protocol. In process
(CLI, tests, evaluation) the stages are the models themselves
(:class:`visearch.stages.LocalStages`); in the service they are Ray Serve deployment
handles (``serve_app``). Either way the same code decides what is searched and how the
answer looks.

>>> flow = QueryFlow(LocalStages.from_settings(settings), settings)      # doctest: +SKIP
>>> answer, session = asyncio.run(flow.photo(image, variant=control))   # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np
from PIL import Image

from visearch.config import Settings
from visearch.errors import InvalidArgumentError, NotFoundError, VisearchError
from visearch.experiments import Variant
from visearch.index import Hit, SearchFilter
from visearch.ranking.apply import RankContext
from visearch.registry import PinnedModel
from visearch.vision.detector import Detection
from visearch.vision.ocr import TextLine, extract_articles, owner_of

if TYPE_CHECKING:  # annotations only: importing the query flow need not load the tag models' torch
    from visearch.tags.crop_tags import Neighbour
    from visearch.tags.projection import Tagged
    from visearch.tags.vocabulary import Tag

__all__ = [
    "Stages",
    "Detected",
    "Embedded",
    "Refined",
    "Searched",
    "FoundObject",
    "ArticleMatch",
    "ResultItem",
    "Group",
    "Answer",
    "PhotoSession",
    "QueryFlow",
    "prominence",
]

Box = tuple[float, float, float, float]
Match = Literal["exact", "similar"]


@dataclass(frozen=True)
class Detected:
    objects: list[Detection]
    model: PinnedModel
    classifier: PinnedModel | None = None  # the crop classifier that had its say on categories, if any


@dataclass(frozen=True)
class Embedded:
    vectors: np.ndarray  # (n, full_dim), L2-normalised
    model: PinnedModel
    match_threshold: float | None  # calibrated with this embedder version, if it was


@dataclass(frozen=True)
class Refined:
    vectors: np.ndarray  # (n, full_dim): each crop moved by its text
    wanted: list[list[Tag]]  # the attributes each text asks for (results that have them come first)


@dataclass(frozen=True)
class Searched:
    hits: list[list[Hit]]
    index_version: str


class Stages(Protocol):
    """The four model stages as the flow sees them: one request in, one answer out."""

    async def detect(self, image: Image.Image) -> Detected: ...

    async def read(self, image: Image.Image, boxes: Sequence[Box] = ()) -> list[TextLine]: ...

    async def embed(self, crops: Sequence[Image.Image], embedder: str) -> Embedded: ...

    async def search(self, vectors: np.ndarray, k: int, *, online_dim: int, filter: SearchFilter | None = None,
                     exclude: Sequence[str] = (), index: str | None = None,
                     contexts: Sequence[RankContext] | None = None) -> Searched: ...

    async def lookup(self, articles: Sequence[str]) -> dict[str, Hit]: ...

    async def vector(self, product_id: str) -> np.ndarray | None: ...

    async def tags(self, vectors: np.ndarray, neighbours: Sequence[Sequence[Neighbour]], embedder: str,
                   k: int) -> list[list[Tagged]]: ...

    async def refine(self, vectors: np.ndarray, texts: Sequence[str], embedder: str) -> Refined: ...


@dataclass(frozen=True)
class FoundObject:
    id: int
    box: Box
    category: str
    score: float
    articles: list[str] = field(default_factory=list)
    fallback: bool = False
    category_score: float | None = None  # the category's fused score once a classifier had its say


@dataclass(frozen=True)
class ArticleMatch:
    article: str
    product_id: str
    object_id: int | None


@dataclass(frozen=True)
class ResultItem:
    product_id: str
    article: str | None
    title: str | None
    price: float | None
    rating: float | None
    score: float
    match: Match
    image_url: str | None
    category: str | None = None
    brand: str | None = None
    reviews_count: int | None = None
    via: Literal["vector", "article"] = "vector"
    rank_score: float | None = None  # the learned order's score, when a ranker ordered the results


@dataclass(frozen=True)
class Group:
    object_id: int
    results: list[ResultItem]
    category: str | None = None  # the category searched within, when it was the detector's
    tags: list[Tagged] | None = None


@dataclass
class Answer:
    """What a search returns; the HTTP schema (``serve_app/schemas.py``) mirrors it field by field."""

    request_id: str
    session_id: str | None
    variant: str
    experiment: str
    index_version: str
    models: dict[str, str]
    objects: list[FoundObject]
    article_hits: list[ArticleMatch]
    picked: int | None
    results: list[ResultItem]
    groups: list[Group] | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    category: str | None = None  # the detected category the results were searched within (None: every category)
    ranking: dict[str, list[float]] = field(default_factory=dict)  # product -> ranker inputs (features, score): what
    # the online re-ranker learns from once the shopper's events come back; not part of the HTTP answer
    tags: list[Tagged] | None = None  # the searched crop's tags (None: omitted, ``tags_note`` says why)
    tags_note: str | None = None
    refinement: str | None = None  # the text a refined search applied to the crop
    refinement_tags: list[Tag] | None = None  # the attributes the text asked for (results that have them first)


@dataclass
class PhotoSession:
    """What a follow-up search of the same upload needs (kept in a :class:`~visearch.sessions.SessionStore`)."""

    image: Image.Image
    objects: list[FoundObject]
    article_hits: list[ArticleMatch]
    models: dict[str, str]
    article_products: dict[str, Hit] = field(default_factory=dict)  # product id -> its card, for direct hits
    picked: int = 0  # the object searched first (the most prominent)


def prominence(d: Detection, width: int, height: int) -> float:
    """How likely this is the object the shopper photographed: confident, large and central."""
    x1, y1, x2, y2 = d.box
    area = max(0.0, x2 - x1) * max(0.0, y2 - y1) / max(1.0, width * height)
    cx, cy = (x1 + x2) / 2 / max(1, width), (y1 + y2) / 2 / max(1, height)
    off_centre = math.hypot(cx - 0.5, cy - 0.5) / math.hypot(0.5, 0.5)
    return d.score * math.sqrt(area) * (1.0 - 0.5 * off_centre)


def _check_box(box: Sequence[float], width: int, height: int) -> Box:
    """A user-drawn box clipped to the photo, or a clear refusal."""
    if len(box) != 4 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in box):
        raise InvalidArgumentError(f"box must be four finite numbers [x1, y1, x2, y2], got {list(box)}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise InvalidArgumentError(f"box [x1, y1, x2, y2] needs x1 < x2 and y1 < y2, got {list(box)}")
    cx1, cy1, cx2, cy2 = max(0.0, x1), max(0.0, y1), min(float(width), x2), min(float(height), y2)
    if cx2 - cx1 < 4 or cy2 - cy1 < 4:
        raise InvalidArgumentError(f"box {list(box)} lies outside the {width}x{height} photo (or covers under 4 px of it)")
    return cx1, cy1, cx2, cy2


def ranking_inputs(hits: Sequence[Sequence[Hit]]) -> dict[str, list[float]]:
    """What the ranker saw of each hit (features, then its score), for the online re-ranker to learn from."""
    return {h.product_id: [*h.features, float(h.rank_score or 0.0)] for found in hits for h in found if h.features}


def crop(image: Image.Image, box: Box) -> Image.Image:
    x1, y1, x2, y2 = box
    left, top = int(x1), int(y1)
    return image.crop((left, top, max(left + 1, int(round(x2))), max(top + 1, int(round(y2)))))


def _ms(t: float) -> float:
    return round((time.perf_counter() - t) * 1000, 2)


class QueryFlow:
    """Everything between a decoded photo and an :class:`Answer`, whatever runs the stages."""

    def __init__(self, stages: Stages, settings: Settings, image_url: str = "/v1/products/{product_id}/image") -> None:
        self.stages, self.settings, self.image_url = stages, settings, image_url

    # ------------------------------------------------------------------ entry points
    async def photo(self, image: Image.Image, *, variant: Variant, experiment: str = "default", top_k: int | None = None,
                    all_objects: bool = False, filter: SearchFilter | None = None,
                    request_id: str | None = None) -> tuple[Answer, PhotoSession]:
        """A new upload: detect and read at once, search the most prominent object (or every one)."""
        k = self.top_k_of(top_k)
        timings: dict[str, float] = {}
        t = time.perf_counter()

        async def timed_detect() -> Detected:
            t0 = time.perf_counter()
            out = await self.stages.detect(image)
            timings["detect"] = _ms(t0)
            return out

        async def timed_read(boxes: Sequence[Box] = ()) -> list[TextLine]:
            t0 = time.perf_counter()
            out = await self.stages.read(image, boxes)
            timings["ocr"] = _ms(t0)
            return out

        if self.settings.vision.ocr_by_boxes:  # read where it matters: inside the objects, once they are known
            detected = await timed_detect()
            lines = await timed_read([d.box for d in detected.objects if not d.fallback])
        else:  # the whole photo, read while the detector runs
            detected, lines = await asyncio.gather(timed_detect(), timed_read())
        objects = [FoundObject(i, d.box, d.category, d.score, fallback=d.fallback, category_score=d.category_score)
                   for i, d in enumerate(detected.objects)]
        article_hits, objects, products = await self._articles(lines, objects, timings)
        w, h = image.size
        order = sorted(range(len(objects)), key=lambda i: -prominence(detected.objects[i], w, h))
        picked = order[0]
        models = {"detector": detected.model.label, **({"classifier": detected.classifier.label} if detected.classifier else {})}
        session = PhotoSession(image, objects, article_hits, models, products)
        session.picked = picked
        targets = list(range(len(objects))) if all_objects else [picked]
        answer = await self._search_objects(session, [objects[i].box for i in targets], targets, variant=variant,
                                            experiment=experiment, k=k, filter=filter, all_objects=all_objects,
                                            timings=timings, request_id=request_id)
        answer.picked = picked
        timings["total"] = _ms(t)
        return answer, session

    async def again(self, session: PhotoSession, *, variant: Variant, experiment: str = "default",
                    object_id: int | None = None, box: Sequence[float] | None = None, top_k: int | None = None,
                    all_objects: bool = False, filter: SearchFilter | None = None,
                    request_id: str | None = None) -> Answer:
        """A follow-up on a session: another detected object, a box the user drew, or every object."""
        k = self.top_k_of(top_k)
        t = time.perf_counter()
        timings: dict[str, float] = {}
        if sum(x is not None for x in (object_id, box)) + all_objects != 1:
            raise InvalidArgumentError("give exactly one of object_id, box or all_objects=true")
        w, h = session.image.size
        if all_objects:
            targets: list[int | None] = [o.id for o in session.objects]
            boxes = [o.box for o in session.objects]
        elif object_id is not None:
            if not 0 <= object_id < len(session.objects):
                raise NotFoundError(f"object {object_id} does not exist: the photo has {len(session.objects)} object(s) "
                                    f"(ids 0..{len(session.objects) - 1})")
            targets, boxes = [object_id], [session.objects[object_id].box]
        else:
            assert box is not None
            targets, boxes = [None], [_check_box(box, w, h)]
        answer = await self._search_objects(session, boxes, targets, variant=variant, experiment=experiment, k=k,
                                            filter=filter, all_objects=all_objects, timings=timings, request_id=request_id)
        answer.picked = targets[0] if not all_objects else None
        timings["total"] = _ms(t)
        return answer

    async def refine(self, session: PhotoSession, *, variant: Variant, text: str, experiment: str = "default",
                     object_id: int | None = None, top_k: int | None = None, filter: SearchFilter | None = None,
                     request_id: str | None = None) -> Answer:
        """The session's object (the picked one by default) as the text says it should be: "same but red"."""
        from visearch.embedding.refiner import check_refinement_text

        text = check_refinement_text(text, self.settings.tags.max_text_chars)
        k = self.top_k_of(top_k)
        t = time.perf_counter()
        timings: dict[str, float] = {}
        if not session.objects:
            raise NotFoundError("the photo has no objects to refine")
        object_id = session.picked if object_id is None else object_id
        if not 0 <= object_id < len(session.objects):
            raise NotFoundError(f"object {object_id} does not exist: the photo has {len(session.objects)} object(s) "
                                f"(ids 0..{len(session.objects) - 1})")
        embedded = await self.stages.embed([crop(session.image, session.objects[object_id].box)], variant.embedder)
        timings["embed"] = _ms(t)
        t1 = time.perf_counter()
        refined = await self.stages.refine(embedded.vectors, [text], embedded.model.ref)
        timings["refine"] = _ms(t1)
        wanted = refined.wanted[0]
        asked = tuple((t.facet, t.text) for t in wanted)
        preferred = replace(filter, attributes=filter.attributes + asked) if filter else SearchFilter(attributes=asked)
        answer = await self._answer(session, replace(embedded, vectors=refined.vectors), [object_id], variant=variant,
                                    experiment=experiment, k=k, filter=preferred if asked else filter, all_objects=False,
                                    timings=timings, request_id=request_id, refinement=text)
        answer.picked, answer.refinement_tags = object_id, wanted
        timings["total"] = _ms(t)
        return answer

    async def article(self, article: str, *, variant: Variant, experiment: str = "default", top_k: int | None = None,
                      filter: SearchFilter | None = None, request_id: str | None = None) -> Answer:
        """A typed article number: its product first (exact), then products like it."""
        k = self.top_k_of(top_k)
        t = time.perf_counter()
        found = extract_articles(str(article), self.settings.vision.article_pattern)
        if not found:
            raise InvalidArgumentError(f"{article!r} is not an article number (expected {self.settings.vision.article_pattern})")
        hits = await self.stages.lookup(found[:1])
        results: list[ResultItem] = []
        index_version = ""
        ranking: dict[str, list[float]] = {}
        if hits:
            hit = hits[found[0]]
            results.append(self.result_item(hit, 1.0, "exact", via="article"))
            vector = await self.stages.vector(hit.product_id)
            if vector is not None:
                vectors = vector[None, :]
                context = RankContext(category=hit.payload.get("category"), variant=variant.name)
                searched = await self.stages.search(vectors, k - 1, online_dim=variant.online_dim, filter=filter,
                                                    exclude=[hit.product_id], index=variant.index,
                                                    contexts=[context]) if k > 1 else Searched([[]], "")
                index_version = searched.index_version
                results += [self.result_item(h, h.score, "similar") for h in searched.hits[0]]
                ranking = ranking_inputs(searched.hits)
        return Answer(request_id or uuid.uuid4().hex, None, variant.name, experiment, index_version, {}, [],
                      [ArticleMatch(a, h.product_id, None) for a, h in hits.items()], None, results,
                      timings_ms={"total": _ms(t)}, ranking=ranking)

    # ------------------------------------------------------------------ the steps
    def top_k_of(self, top_k: int | None) -> int:
        k = self.settings.serving.top_k if top_k is None else top_k
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= self.settings.serving.max_top_k:
            raise InvalidArgumentError(f"top_k must be an integer in 1..{self.settings.serving.max_top_k}, got {top_k!r}")
        return k

    async def _articles(self, lines: list[TextLine], objects: list[FoundObject],
                        timings: dict[str, float]) -> tuple[list[ArticleMatch], list[FoundObject], dict[str, Hit]]:
        """Article numbers read off the photo, linked to the object they sit on and to their product."""
        boxes = [o.box for o in objects]  # an object's id is its index
        read: list[tuple[str, int | None]] = []
        for line in lines:
            for a in extract_articles(line.text, self.settings.vision.article_pattern):
                read.append((a, owner_of(line.box, boxes)))
        if not read:
            return [], objects, {}
        t = time.perf_counter()
        known = await self.stages.lookup([a for a, _ in read])
        timings["articles"] = _ms(t)
        matches, per_object = [], {o.id: list(o.articles) for o in objects}
        for a, owner in read:
            if a in known and not any(m.article == a and m.object_id == owner for m in matches):
                matches.append(ArticleMatch(a, known[a].product_id, owner))
                if owner is not None:
                    per_object[owner].append(a)
        objects = [replace(o, articles=per_object[o.id]) for o in objects]
        return matches, objects, {h.product_id: h for h in known.values()}

    async def _search_objects(self, session: PhotoSession, boxes: Sequence[Box], targets: Sequence[int | None], *,
                              variant: Variant, experiment: str, k: int, filter: SearchFilter | None,
                              all_objects: bool, timings: dict[str, float], request_id: str | None) -> Answer:
        t = time.perf_counter()
        embedded = await self.stages.embed([crop(session.image, b) for b in boxes], variant.embedder)
        timings["embed"] = _ms(t)
        return await self._answer(session, embedded, targets, variant=variant, experiment=experiment, k=k, filter=filter,
                                  all_objects=all_objects, timings=timings, request_id=request_id)

    async def _answer(self, session: PhotoSession, embedded: Embedded, targets: Sequence[int | None], *, variant: Variant,
                      experiment: str, k: int, filter: SearchFilter | None, all_objects: bool, timings: dict[str, float],
                      request_id: str | None, refinement: str | None = None) -> Answer:
        t = time.perf_counter()
        searched, categories = await self._search_in_categories(session, embedded.vectors, targets, k, variant, filter)
        timings["search"] = _ms(t)
        threshold = self.settings.serving.match_threshold
        threshold = embedded.match_threshold if threshold is None else threshold
        if refinement is not None:  # the refined vector is no photo of the product: nothing is "the very one"
            threshold = None
        lists = []
        for target, hits in zip(targets, searched.hits, strict=True):
            direct = [m.product_id for m in session.article_hits
                      if target is not None and m.object_id == target and refinement is None]
            lists.append(self._label(hits, direct, threshold, k, session.article_products))
        tags, note = await self._tags(embedded, searched.hits, timings)
        models = {**session.models, "embedder": embedded.model.label}
        groups = ([Group(int(tg), r, c, tags[i] if tags else None)
                   for i, (tg, r, c) in enumerate(zip(targets, lists, categories, strict=True)) if tg is not None]
                  if all_objects else None)
        answer = Answer(request_id or uuid.uuid4().hex, None, variant.name, experiment, searched.index_version, models,
                        session.objects, session.article_hits, None, lists[0] if lists else [], groups, timings,
                        categories[0] if categories and not all_objects else None, ranking_inputs(searched.hits))
        answer.tags, answer.tags_note, answer.refinement = (tags[0] if tags else None), note, refinement
        return answer

    async def _tags(self, embedded: Embedded, hits: Sequence[Sequence[Hit]],
                    timings: dict[str, float]) -> tuple[list[list[Tagged]] | None, str | None]:
        """Each crop's tags, or None and why: tags never fail or hold up a search."""
        k = self.settings.tags.top_k
        if k == 0:
            return None, "tags are switched off (VISEARCH_TAGS__TOP_K=0)"
        neighbours = [[(h.score, list(h.payload.get("tags") or ())) for h in found] for found in hits]
        limit = self.settings.tags.live_timeout_s
        t = time.perf_counter()
        try:
            tags = await asyncio.wait_for(self.stages.tags(embedded.vectors, neighbours, embedded.model.ref, k), limit)
        except TimeoutError:
            return None, f"tags omitted: the tag model did not answer within {limit:g} s"
        except VisearchError as e:
            return None, f"tags omitted: {e}"
        except Exception as e:  # noqa: BLE001 - whatever breaks in the tag step, the products still go out
            return None, f"tags omitted: the tag step failed ({type(e).__name__})"
        finally:
            timings["tags"] = _ms(t)
        return tags, None

    def detected_category(self, obj: FoundObject | None) -> str | None:
        """The category to search within for ``obj``: the detector's, when it names one (a category-aware
        detector) surely enough; None for a drawn box, the whole-photo fallback or a class-agnostic detector."""
        s = self.settings.serving
        if s.category_search != "detected" or obj is None or obj.fallback or obj.category in ("", "object"):
            return None
        sure = obj.category_score if obj.category_score is not None else obj.score
        return obj.category if sure >= s.category_min_score else None

    async def _search_in_categories(self, session: PhotoSession, vectors: np.ndarray, targets: Sequence[int | None], k: int,
                                    variant: Variant, filter: SearchFilter | None) -> tuple[Searched, list[str | None]]:
        """One search per category the objects were detected as (a request's own categories win), hits in target order."""
        chosen = [None if filter is not None and filter.categories else
                  self.detected_category(session.objects[t] if t is not None else None) for t in targets]
        hits: list[list[Hit]] = [[] for _ in targets]
        version = ""
        read = frozenset(session.article_products)
        contexts = [RankContext(category=self.detected_category(session.objects[t]) if t is not None else None,
                                articles=read, variant=variant.name) for t in targets]
        for category in dict.fromkeys(chosen):
            rows = [i for i, c in enumerate(chosen) if c == category]
            scoped = (filter if category is None else
                      replace(filter, categories=(category,)) if filter else SearchFilter(categories=(category,)))
            found = await self.stages.search(vectors[rows], k, online_dim=variant.online_dim, filter=scoped, index=variant.index,
                                             contexts=[contexts[i] for i in rows])
            version = found.index_version
            for i, h in zip(rows, found.hits, strict=True):
                hits[i] = h
            short = [i for i in rows if len(hits[i]) < k]
            if scoped is not None and scoped.attributes and short:
                # the asked attributes are a preference: fewer than k products have them, the closest others follow
                loose = replace(scoped, attributes=())
                more = await self.stages.search(vectors[short], k, online_dim=variant.online_dim, filter=loose,
                                                index=variant.index, contexts=[contexts[i] for i in short])
                for i, extra in zip(short, more.hits, strict=True):
                    taken = {h.product_id for h in hits[i]}
                    hits[i] = hits[i] + [h for h in extra if h.product_id not in taken][:k - len(hits[i])]
        return Searched(hits, version), chosen

    def _label(self, hits: list[Hit], direct: list[str], threshold: float | None, k: int,
               cards: dict[str, Hit] | None = None) -> list[ResultItem]:
        """Results in order, each product once; exact for an article read on the object, or a top
        result whose similarity clears the calibrated threshold (and leads the next by the margin)."""
        items: list[ResultItem] = []
        if direct:
            payloads = {**(cards or {}), **{h.product_id: h for h in hits}}
            for pid in dict.fromkeys(direct):
                hit = payloads.get(pid, Hit(pid, 1.0, {}))
                items.append(self.result_item(hit, 1.0, "exact", via="article"))
        taken = {i.product_id for i in items}
        rest = [h for h in hits if h.product_id not in taken]
        for n, h in enumerate(rest):
            exact = (not items and n == 0 and threshold is not None and h.score >= threshold
                     and (len(rest) < 2 or h.score - rest[1].score >= self.settings.serving.match_margin))
            items.append(self.result_item(h, h.score, "exact" if exact else "similar"))
        return items[:k]

    def result_item(self, hit: Hit, score: float, match: Match, via: Literal["vector", "article"] = "vector") -> ResultItem:
        p = hit.payload
        price, rating, reviews = p.get("price"), p.get("rating"), p.get("reviews_count")
        return ResultItem(
            product_id=hit.product_id, article=p.get("article"), title=p.get("title"),
            price=float(price) if price is not None else None, rating=float(rating) if rating is not None else None,
            score=round(float(score), 5), match=match,
            image_url=self.image_url.format(product_id=hit.product_id) if p.get("image_uris") else None,
            category=p.get("category"), brand=p.get("brand"),
            reviews_count=int(reviews) if reviews is not None else None, via=via, rank_score=hit.rank_score,
        )
