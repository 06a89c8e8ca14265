"""Request and response bodies of HTTP API v1 (OpenAPI at ``/docs``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from visearch.events import EventType
from visearch.experiments import Experiment, Guardrails, Variant


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ObjectOut(_Out):
    id: int
    box: list[float] = Field(description="x1, y1, x2, y2 in pixels of the upright photo")
    category: str
    score: float
    articles: list[str] = []
    fallback: bool = Field(False, description="nothing was detected: the whole photo stands for the object")
    category_score: float | None = Field(None, description="how sure the category is (detector and crop classifier together)")


class ArticleHitOut(_Out):
    article: str
    product_id: str
    object_id: int | None = Field(description="the object the number is printed on, if any")


class ResultOut(_Out):
    product_id: str
    article: str | None
    title: str | None
    price: float | None
    rating: float | None
    score: float = Field(description="cosine similarity of the 512-d vectors; 1.0 for an article hit")
    match: Literal["exact", "similar"] = Field(description="exact: taken for the very product photographed")
    image_url: str | None
    category: str | None = None
    brand: str | None = None
    reviews_count: int | None = None
    via: Literal["vector", "article"] = "vector"


class TagOut(_Out):
    text: str
    facet: str = Field(description="category, colour, pattern, material, brand or other")
    score: float = Field(description="how likely the crop carries the tag, 0..1")


class AttributeOut(_Out):
    text: str
    facet: str = Field(description="colour, pattern, material or brand")


class GroupOut(_Out):
    object_id: int
    results: list[ResultOut]
    category: str | None = Field(None, description="the detected category these results were searched within")
    tags: list[TagOut] | None = None


class SearchResponse(_Out):
    request_id: str
    session_id: str | None
    variant: str
    experiment: str
    index_version: str
    models: dict[str, str]
    objects: list[ObjectOut]
    article_hits: list[ArticleHitOut]
    picked: int | None = Field(description="the object the results are for")
    results: list[ResultOut]
    groups: list[GroupOut] | None = None
    timings_ms: dict[str, float]
    category: str | None = Field(None, description=(
        "the category the detector named for the object, which the results were searched within; null: every "
        "category (a class-agnostic detector, a drawn box, or a category filter in the request)"))
    tags: list[TagOut] | None = Field(None, description="the searched crop's tags, most likely first; null: see tags_note")
    tags_note: str | None = Field(None, description="why tags were omitted (no tag model, too slow, another embedder)")
    refinement: str | None = Field(None, description="the text a refined search applied (POST /v1/refine)")
    refinement_tags: list[AttributeOut] | None = Field(None, description=(
        "the attributes the refinement text named; the products that have them come first, the closest others follow "
        "(empty: the text named none the refiner knows, and its vector alone moved the search)"))


class Filters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    category: list[str] | str | None = None
    price_min: float | None = Field(None, ge=0)
    price_max: float | None = Field(None, ge=0)


class SearchRequest(BaseModel):
    """A follow-up on an uploaded photo (``session_id`` + ``object_id`` or ``box``) or a typed ``article``."""

    model_config = ConfigDict(extra="forbid")
    session_id: str | None = None
    object_id: int | None = Field(None, ge=0)
    box: list[float] | None = Field(None, min_length=4, max_length=4)
    article: str | None = Field(None, min_length=1, max_length=64)
    filters: Filters | None = None
    top_k: int | None = Field(None, ge=1)
    all_objects: bool = False


class RefineRequest(BaseModel):
    """An object of an uploaded photo, changed by a short text: "same but red", "такой же, но в полоску"."""

    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(min_length=1, max_length=128)
    object_id: int | None = Field(None, ge=0, description="default: the object the upload was searched for")
    text: str = Field(description="the change, in Russian or English; at most VISEARCH_TAGS__MAX_TEXT_CHARS characters")
    filters: Filters | None = None
    top_k: int | None = Field(None, ge=1)


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: EventType
    request_id: str = Field(min_length=1, max_length=128)
    product_id: str | None = Field(None, max_length=128)
    position: int | None = Field(None, ge=0, le=10_000)
    variant: str | None = Field(None, max_length=64, description="the variant the client believes served it; checked")
    value: float | None = Field(None, ge=0, description="an order's revenue")
    ts: float | None = Field(None, ge=0, description="unix seconds; default: when received")
    event_id: str | None = Field(None, min_length=1, max_length=128, description="makes a retried POST harmless")


class EventsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    events: list[EventIn] = Field(min_length=1, max_length=1000)


class EventsOut(BaseModel):
    accepted: int
    new: int


class SimilarResponse(BaseModel):
    product_id: str
    index_version: str
    results: list[ResultOut]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ExperimentIn(BaseModel):
    """A new version of an experiment: its arms and weights (integer percentages summing to 100)."""

    model_config = ConfigDict(extra="forbid")
    variants: list[Variant] = Field(min_length=1)
    salt: str = Field("", description="assignment salt; default the experiment's name (keep it to keep users in their arms)")
    guardrails: Guardrails | None = Field(None, description="per-variant latency and error limits; a breach stops it")
    serve: bool = Field(True, description="make it the experiment the service routes by")

    @model_validator(mode="after")
    def _valid(self) -> ExperimentIn:
        Experiment(name="check", variants=self.variants, salt=self.salt)  # weights, unique names: a 422 here
        return self


class StopIn(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


class ConcludeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    winner: str | None = Field(None, description="the arm to keep; default the best arm whose always-valid difference "
                                                 "to control is positive on revenue per user, else control")
    promote: bool = Field(False, description="move @champion to the winner's embedder version")
    reason: str = Field("", max_length=500)
