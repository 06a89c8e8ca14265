"""What goes in and out of an index: products, filters, hits, versions, reports, and the checked
options of a search (:class:`SearchPlan`).

Backends and callers share these; none of them knows a storage engine.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from visearch.config import IndexSettings
from visearch.errors import DatasetError, InvalidArgumentError

__all__ = [
    "ONLINE",
    "FULL",
    "MAX_K",
    "SEARCH_MODES",
    "SearchMode",
    "ProgressFn",
    "Hit",
    "SearchFilter",
    "SearchPlan",
    "ProductBatch",
    "VersionInfo",
    "BuildReport",
    "UpdateReport",
    "SwitchReport",
    "Component",
    "IndexStats",
    "point_id",
    "version_id",
    "version_number",
]

ONLINE = "online"
FULL = "full"
SearchMode = Literal["hnsw", "two_stage", "exact"]
SEARCH_MODES: tuple[str, ...] = ("hnsw", "two_stage", "exact")
#: ``progress(phase, done, total)``: phases are "copy", "upsert", "apply" and "index"
ProgressFn = Callable[[str, int, "int | None"], None]
MAX_K = 1000

_POINT_NAMESPACE = uuid.UUID("5b0c3f4e-8a41-4c0e-9d7e-6b1f0a2c9e11")
_VERSION_RE = re.compile(r"^v(\d{6})$")


def point_id(product_id: str) -> str:
    """The point id of a product: UUID5, stable across builds, machines and backends."""
    return str(uuid.uuid5(_POINT_NAMESPACE, product_id))


def version_id(number: int) -> str:
    """``v000001``-style ids sort by age as plain strings."""
    return f"v{number:06d}"


def version_number(version: str) -> int | None:
    m = _VERSION_RE.match(version)
    return int(m.group(1)) if m else None


@dataclass(slots=True)
class Hit:
    """One found product: its id, similarity (cosine; 1.0 for an article match) and payload.

    Not frozen: a search makes ten or more of these, and a frozen dataclass costs four times
    as much to make; nothing changes a hit after the search hands it out.
    """

    product_id: str
    score: float
    payload: dict[str, Any] = field(default_factory=dict)
    rank_score: float | None = None  # the learned order's score, when a ranker reordered the hits
    features: tuple[float, ...] | None = None  # what the ranker saw (visearch.ranking.features.FEATURES)


@dataclass(frozen=True)
class SearchFilter:
    """Restrict a search to categories, a price range (both ends inclusive) and attribute values.

    An attribute is a (facet, value) pair, as a refinement text asks for one ("same but red": colour red);
    a product has it when its payload ``tags`` hold the value or its ``facet`` column equals it. Several
    values of one facet are alternatives, facets all apply.

    >>> SearchFilter.of(category=["dress", "skirt"], price_max=3000)
    SearchFilter(categories=('dress', 'skirt'), price_min=None, price_max=3000.0, attributes=())
    """

    categories: tuple[str, ...] = ()
    price_min: float | None = None
    price_max: float | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        cats = (self.categories,) if isinstance(self.categories, str) else tuple(self.categories)
        for c in cats:
            if not isinstance(c, str) or not c.strip():
                raise InvalidArgumentError(f"filter category must be a non-empty string, got {c!r}")
        object.__setattr__(self, "categories", cats)
        for name in ("price_min", "price_max"):
            v = getattr(self, name)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise InvalidArgumentError(f"filter {name} must be a finite number >= 0, got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.price_min is not None and self.price_max is not None and self.price_min > self.price_max:
            raise InvalidArgumentError(
                f"filter price_min {self.price_min} is above price_max {self.price_max}; swap them"
            )
        pairs = tuple(tuple(a) for a in self.attributes)
        for pair in pairs:
            if len(pair) != 2 or not all(isinstance(x, str) and x.strip() for x in pair):
                raise InvalidArgumentError(f"filter attribute must be a (facet, value) pair of non-empty strings, got {pair!r}")
        object.__setattr__(self, "attributes", pairs)

    def by_facet(self) -> dict[str, tuple[str, ...]]:
        """The asked values of each facet, in order."""
        out: dict[str, tuple[str, ...]] = {}
        for facet, value in self.attributes:
            out[facet] = (*out.get(facet, ()), value)
        return out

    @classmethod
    def of(
        cls,
        category: str | Sequence[str] | None = None,
        price_min: float | None = None,
        price_max: float | None = None,
    ) -> SearchFilter | None:
        """A filter from optional parts, or ``None`` when no part is given."""
        cats: tuple[str, ...] = (
            () if category is None else (category,) if isinstance(category, str) else tuple(category)
        )
        if not cats and price_min is None and price_max is None:
            return None
        return cls(cats, price_min, price_max)


@dataclass(slots=True)
class SearchPlan:
    """A search's options, checked once for a whole batch of queries (made once a search, read by the
    backend and dropped: a slots class, since a frozen one costs a microsecond of a query's 110 to make).

    ``ef`` is the HNSW breadth the engine is given, clamped here and nowhere else: never
    below ``k`` (a graph walk of breadth ``ef`` returns at most ``ef`` points) and, for
    two-stage, never below the candidates stage 1 hands to the rescore.
    """

    k: int
    mode: SearchMode
    filter: SearchFilter | None
    ef: int
    candidates: int  # stage-1 candidates rescored with the full vector (two-stage)
    with_payload: bool

    @classmethod
    def of(
        cls,
        settings: IndexSettings,
        k: Any,
        mode: Any,
        filter: Any,
        ef: Any,
        rescore_limit: Any,
        with_payload: bool,
    ) -> SearchPlan:
        if mode not in SEARCH_MODES:
            raise InvalidArgumentError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        if type(k) is not int or not 1 <= k <= MAX_K:
            raise InvalidArgumentError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        ef = settings.ef if ef is None else ef
        limit = settings.rescore_limit if rescore_limit is None else rescore_limit
        for name, v in (("ef", ef), ("rescore_limit", limit)):
            if type(v) is not int or v < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {v!r}")
        if filter is not None and not isinstance(filter, SearchFilter):
            raise InvalidArgumentError(f"filter must be a SearchFilter, got {type(filter).__name__}")
        candidates = max(limit, k)
        breadth = max(ef, k) if mode == "hnsw" else max(ef, candidates)
        return cls(k, mode, filter, breadth, candidates, bool(with_payload))


@dataclass(frozen=True)
class ProductBatch:
    """Products to index: ids, full MRL vectors ``(n, full_dim)`` and optional payloads."""

    product_ids: list[str]
    vectors: np.ndarray
    payloads: list[dict[str, Any]] | None = None

    def __len__(self) -> int:
        return len(self.product_ids)


@dataclass(frozen=True)
class VersionInfo:
    """What a version is, as stored in its manifest (``current`` is filled in on listing)."""

    version: str
    kind: Literal["build", "update"]
    created_at: str
    parent: str | None
    points: int
    online_dim: int
    full_dim: int
    hnsw_m: int
    hnsw_ef_construct: int
    quantization: str
    full_on_disk: bool
    changesets: tuple[str, ...] = ()
    seconds: float = 0.0
    current: bool = False

    def to_manifest(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("current")
        d["changesets"] = list(self.changesets)
        d["format"] = "visearch-index/1"
        return d

    @classmethod
    def from_manifest(cls, data: Mapping[str, Any], *, current: bool = False) -> VersionInfo:
        try:
            return cls(
                version=str(data["version"]),
                kind=data["kind"],
                created_at=str(data["created_at"]),
                parent=data.get("parent"),
                points=int(data["points"]),
                online_dim=int(data["online_dim"]),
                full_dim=int(data["full_dim"]),
                hnsw_m=int(data["hnsw_m"]),
                hnsw_ef_construct=int(data["hnsw_ef_construct"]),
                quantization=str(data["quantization"]),
                full_on_disk=bool(data["full_on_disk"]),
                changesets=tuple(data.get("changesets", ())),
                seconds=float(data.get("seconds", 0.0)),
                current=current,
            )
        except (KeyError, TypeError, ValueError) as e:
            raise DatasetError(f"index version manifest is damaged ({e!r}): {dict(data)}") from e


@dataclass(frozen=True)
class BuildReport:
    """A finished build: the new serving version and what was tidied on the way."""

    version: VersionInfo
    upsert_seconds: float
    index_seconds: float
    cleaned: list[str]
    pruned: list[str]


@dataclass(frozen=True)
class UpdateReport:
    """A finished update. ``applied`` is false when the change set was already in the serving version."""

    version: VersionInfo
    applied: bool
    new: int = 0
    changed: int = 0
    payload_only: int = 0
    deleted: int = 0
    already_absent: int = 0
    seconds: float = 0.0
    cleaned: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SwitchReport:
    """A rollback: which version served before and which serves now."""

    previous: str
    current: VersionInfo
    seconds: float


@dataclass(frozen=True)
class Component:
    """One part of the serving version's storage and where it lives while serving."""

    name: str
    bytes: int
    resident: Literal["ram", "disk"]


@dataclass(frozen=True)
class IndexStats:
    """Versions, counts and the memory / disk cost of the serving version."""

    backend: str
    location: str
    current: str | None
    versions: list[VersionInfo]
    points: int
    components: list[Component]
    estimated: bool
    version_disk: dict[str, int] = field(default_factory=dict)

    @property
    def memory_bytes(self) -> int:
        return sum(c.bytes for c in self.components if c.resident == "ram")

    @property
    def disk_bytes(self) -> int:
        return sum(c.bytes for c in self.components)

    @property
    def memory_per_product(self) -> float:
        return self.memory_bytes / self.points if self.points else 0.0

    @property
    def disk_per_product(self) -> float:
        return self.disk_bytes / self.points if self.points else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "location": self.location,
            "current": self.current,
            "points": self.points,
            "memory_bytes": self.memory_bytes,
            "disk_bytes": self.disk_bytes,
            "memory_bytes_per_product": round(self.memory_per_product, 1),
            "disk_bytes_per_product": round(self.disk_per_product, 1),
            "estimated": self.estimated,
            "components": [asdict(c) for c in self.components],
            "versions": [
                {**v.to_manifest(), "current": v.current, "disk_bytes": self.version_disk.get(v.version)}
                for v in self.versions
            ],
        }

