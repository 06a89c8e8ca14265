"""The vector index contract, its result types, and the lifecycle both backends share.

A product is one point with two named vectors:

* ``online``: the first ``online_dim`` (128 or 256) dims of the 512-d MRL vector,
  re-normalised, stored as fp16 and indexed by HNSW (optionally int8-quantized);
* ``full``: the whole 512-d vector, fp16, kept out of the HNSW graph (``m=0``) and
  read only to rescore the candidates stage 1 found;

and a payload with the product's card (``product_id``, ``article``, ``category``,
``price``, ``rating``...), with payload indexes on category, price and article.
Point ids are UUID5 of the product id, so the same product always lands on the same
point and re-applying a change is harmless.

Versions: every build and every update writes a *new* version next to the serving
one and switches to it atomically once it is complete; the previous versions
(``keep_versions`` in all) stay for :meth:`VectorIndex.rollback`. How a version is
stored and switched is the backend's business (:mod:`visearch.index.edge`: a
directory and a ``CURRENT`` file; :mod:`visearch.index.cluster`: a collection and
an alias); the flow, the checks and the reports live here, once.

>>> from visearch.config import Settings
>>> from visearch.index import open_index
>>> index = open_index(Settings(data_dir="/tmp/vs"))  # doctest: +SKIP
>>> index.search(query_512d, k=10, filter=SearchFilter.of(category="dress"))  # doctest: +SKIP
"""

from __future__ import annotations

import abc
import datetime as _dt
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar, runtime_checkable

import numpy as np

from visearch.config import IndexSettings
from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index.validation import as_matrix, check_product_id, clean_payload, normalise_rows, split_vectors

if TYPE_CHECKING:
    from visearch.index.changes import ChangeSet

__all__ = [
    "ONLINE",
    "FULL",
    "SearchMode",
    "ProgressFn",
    "Hit",
    "SearchFilter",
    "ProductBatch",
    "VersionInfo",
    "BuildReport",
    "UpdateReport",
    "SwitchReport",
    "Component",
    "IndexStats",
    "VectorIndex",
    "BaseIndex",
    "point_id",
    "version_id",
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


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Hit:
    """One found product: its id, similarity (cosine; 1.0 for an article match) and payload."""

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


@runtime_checkable
class VectorIndex(Protocol):
    """What the pipeline, the CLI and the eval need from an index, whatever its backend."""

    backend: str
    settings: IndexSettings

    @property
    def location(self) -> str: ...

    def search(
        self,
        query: Any,
        k: int = 10,
        *,
        mode: SearchMode = "two_stage",
        filter: SearchFilter | None = None,
        ef: int | None = None,
        rescore_limit: int | None = None,
        with_payload: bool = True,
    ) -> list[Hit]: ...

    def search_batch(
        self,
        queries: Any,
        k: int = 10,
        *,
        mode: SearchMode = "two_stage",
        filter: SearchFilter | None = None,
        ef: int | None = None,
        rescore_limit: int | None = None,
        with_payload: bool = True,
    ) -> list[list[Hit]]: ...

    def lookup_article(self, article: str, *, limit: int = 10, filter: SearchFilter | None = None) -> list[Hit]: ...

    def get(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def vectors(self, product_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    def count(self) -> int: ...

    def export(self, batch_size: int = 4096) -> Iterator[ProductBatch]: ...

    def build(
        self, batches: Iterable[ProductBatch], *, total: int | None = None, progress: ProgressFn | None = None
    ) -> BuildReport: ...

    def update(self, changes: ChangeSet, *, progress: ProgressFn | None = None) -> UpdateReport: ...

    def rollback(self, to: str | None = None) -> SwitchReport: ...

    def versions(self) -> list[VersionInfo]: ...

    def current_version(self) -> VersionInfo | None: ...

    def stats(self) -> IndexStats: ...

    def refresh(self) -> bool: ...

    def close(self) -> None: ...


S = TypeVar("S")  # a backend's handle on a version being written


def _noop(phase: str, done: int, total: int | None) -> None:
    return None


class BaseIndex(abc.ABC, Generic[S]):
    """The flow of search, build, update and rollback; backends fill in storage hooks.

    Hooks named ``_x`` with a staged handle ``S`` write a version that nobody serves
    yet; only :meth:`_switch` changes what searches see, and it is atomic.
    """

    backend: str = ""

    def __init__(self, settings: IndexSettings) -> None:
        self.settings = settings

    # ------------------------------------------------------------------ reading
    def search(
        self,
        query: Any,
        k: int = 10,
        *,
        mode: SearchMode = "two_stage",
        filter: SearchFilter | None = None,
        ef: int | None = None,
        rescore_limit: int | None = None,
        with_payload: bool = True,
    ) -> list[Hit]:
        """Nearest products to one query vector, best first.

        Args:
            query: the full MRL vector (``full_dim`` floats); ``mode="hnsw"`` also takes
                the online slice alone (``online_dim`` floats). Normalised here.
            k: results wanted (1..1000).
            mode: ``"hnsw"`` (stage 1 only), ``"two_stage"`` (HNSW candidates rescored
                with the 512-d vector in the same request) or ``"exact"`` (brute force
                over the 512-d vectors, for checks).
            filter: categories and price range.
            ef: HNSW search breadth (default ``settings.ef``).
            rescore_limit: stage-1 candidates for the rescore (default ``settings.rescore_limit``).
            with_payload: return the whole payload; otherwise only ``product_id``.

        Raises:
            InvalidArgumentError: a wrong vector size, NaN, zero vector or bad option.
            NotFoundError: no version has been built yet.
        """
        arr = np.asarray(query) if not isinstance(query, np.ndarray) else query
        if arr.ndim > 1:
            raise InvalidArgumentError(f"search takes one vector (1-D), got shape {arr.shape}; use search_batch")
        return self.search_batch(
            arr, k, mode=mode, filter=filter, ef=ef, rescore_limit=rescore_limit, with_payload=with_payload
        )[0]

    def search_batch(
        self,
        queries: Any,
        k: int = 10,
        *,
        mode: SearchMode = "two_stage",
        filter: SearchFilter | None = None,
        ef: int | None = None,
        rescore_limit: int | None = None,
        with_payload: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for a ``(n, dim)`` matrix of queries, planned as one batch."""
        info = self._serving()
        if mode not in SEARCH_MODES:
            raise InvalidArgumentError(f"unknown search mode {mode!r}; use one of {', '.join(SEARCH_MODES)}")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise InvalidArgumentError(f"k must be an integer in 1..{MAX_K}, got {k!r}")
        ef = self.settings.ef if ef is None else ef
        limit = self.settings.rescore_limit if rescore_limit is None else rescore_limit
        for name, v in (("ef", ef), ("rescore_limit", limit)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InvalidArgumentError(f"{name} must be a positive integer, got {v!r}")
        if filter is not None and not isinstance(filter, SearchFilter):
            raise InvalidArgumentError(f"filter must be a SearchFilter, got {type(filter).__name__}")
        dims = (info.full_dim, info.online_dim) if mode == "hnsw" else (info.full_dim,)
        arr = as_matrix(queries, dims, what="query")
        if arr.shape[1] == info.full_dim:
            full, online = split_vectors(arr, info.online_dim, what="query")
        else:
            full, online = arr, normalise_rows(arr, what="query")
        return self._query(
            full,
            online,
            k=k,
            mode=mode,
            filter=filter,
            ef=max(ef, k),
            candidates=max(limit, k),
            with_payload=with_payload,
        )

    def lookup_article(self, article: str, *, limit: int = 10, filter: SearchFilter | None = None) -> list[Hit]:
        """Products whose ``article`` equals ``article`` exactly (payload index, no vectors)."""
        if isinstance(article, int) and not isinstance(article, bool):
            article = str(article)
        if not isinstance(article, str) or not article.strip():
            raise InvalidArgumentError(f"article must be a non-empty string, got {article!r}")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_K:
            raise InvalidArgumentError(f"limit must be an integer in 1..{MAX_K}, got {limit!r}")
        self._serving()
        return self._lookup(article.strip(), limit, filter)

    def get(self, product_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Payloads of the given products that exist (missing ones are left out)."""
        ids = [check_product_id(p, where="get", error=InvalidArgumentError) for p in product_ids]
        self._serving()
        return self._retrieve(ids) if ids else {}

    def vectors(self, product_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored 512-d vectors (fp16 precision, as float32) of the given products that exist."""
        ids = [check_product_id(p, where="vectors", error=InvalidArgumentError) for p in product_ids]
        self._serving()
        return self._retrieve_vectors(ids) if ids else {}

    def count(self) -> int:
        """Products in the serving version."""
        self._serving()
        return self._count()

    def export(self, batch_size: int = 4096) -> Iterator[ProductBatch]:
        """Every product of the serving version with its stored 512-d vector and payload.

        Vectors come back as stored (fp16 precision). ``build(other.export())`` copies
        an index between backends.
        """
        self._serving()
        return self._export(batch_size)

    def current_version(self) -> VersionInfo | None:
        """The serving version's manifest, or ``None`` before the first build."""
        for v in self.versions():
            if v.current:
                return v
        return None

    def versions(self) -> list[VersionInfo]:
        """Complete versions, oldest first, the serving one marked ``current``."""
        return self._list()

    # ------------------------------------------------------------------ writing
    def build(
        self, batches: Iterable[ProductBatch], *, total: int | None = None, progress: ProgressFn | None = None
    ) -> BuildReport:
        """Write a new version from ``batches`` and switch to it atomically.

        The serving version is untouched until the switch; a failure (bad input, a
        crash, a kill) leaves it serving, and what the failed build wrote is removed
        on failure or, after a crash, by the next build/update.

        Raises:
            DatasetError: duplicate or empty product ids, wrong vector size, NaN or
                zero vectors, payload fields of the wrong type, no products at all.
        """
        progress = progress or _noop
        start = time.perf_counter()
        with self._lock():
            cleaned = self._cleanup()
            info = self._new_info(kind="build", parent=self._current_id())
            staged = self._create(info)
            try:
                seen: set[str] = set()
                done = 0
                progress("upsert", 0, total)
                for batch in batches:
                    ids, full, online, payloads = self._check_batch(batch, seen, done)
                    for i in range(0, len(ids), self.settings.batch_size):
                        j = i + self.settings.batch_size
                        self._upsert(staged, ids[i:j], full[i:j], online[i:j], payloads[i:j])
                    done += len(ids)
                    progress("upsert", done, total)
                if done == 0:
                    raise DatasetError("nothing to index: the input holds no products")
                upserted = time.perf_counter()
                progress("index", 0, None)
                points = self._finish(staged)
                progress("index", 1, 1)
                indexed = time.perf_counter()
                info = replace(info, points=points, seconds=round(indexed - start, 3))
                self._commit(staged, info)
            except BaseException:
                self._discard(staged)
                raise
            self._switch(info.version)
            pruned = self._prune()
        self.refresh()
        return BuildReport(
            version=replace(info, current=True),
            upsert_seconds=round(upserted - start, 3),
            index_seconds=round(indexed - upserted, 3),
            cleaned=cleaned,
            pruned=pruned,
        )

    def update(self, changes: ChangeSet, *, progress: ProgressFn | None = None) -> UpdateReport:
        """Apply a change set as a new version (copy of the serving one + changes), then switch.

        New and changed products are upserted with their vectors; payload-only
        changes (price, rating...) are set without touching vectors; deletes of
        products already gone are counted, not errors. Applying the same change set
        again is a no-op (its digest is recorded in the version's manifest).

        Raises:
            NotFoundError: no serving version, or a payload-only change names a
                product the index does not have (nothing is applied then).
            DatasetError: the change set's vectors do not fit the serving version.
        """
        progress = progress or _noop
        start = time.perf_counter()
        with self._lock():
            cleaned = self._cleanup()
            cur_id = self._current_id()
            current = next((v for v in self._list() if v.version == cur_id), None)
            if current is None:
                raise NotFoundError(
                    f"no index version to update at {self.location}; build one first: visearch index build --vectors FILE"
                )
            if changes.full_dim != current.full_dim:
                raise DatasetError(
                    f"{changes.source}: vectors have {changes.full_dim} dims but version {current.version} "
                    f"holds {current.full_dim}-d vectors; re-embed with the same model or rebuild"
                )
            if changes.digest in current.changesets or changes.is_empty:
                return UpdateReport(
                    version=current, applied=False, seconds=round(time.perf_counter() - start, 3), cleaned=cleaned
                )
            info = replace(
                self._new_info(kind="update", parent=current.version, like=current),
                changesets=(*current.changesets, changes.digest),
            )
            staged = self._copy(current, info, progress)
            try:
                counts = self._apply(staged, changes, current.online_dim, progress)
                progress("index", 0, None)
                points = self._finish(staged)
                progress("index", 1, 1)
                info = replace(info, points=points, seconds=round(time.perf_counter() - start, 3))
                self._commit(staged, info)
            except BaseException:
                self._discard(staged)
                raise
            self._switch(info.version)
            pruned = self._prune()
        self.refresh()
        return UpdateReport(
            version=replace(info, current=True),
            applied=True,
            seconds=round(time.perf_counter() - start, 3),
            cleaned=cleaned,
            pruned=pruned,
            **counts,
        )

    def rollback(self, to: str | None = None) -> SwitchReport:
        """Serve an older version again: ``to``, or the newest one older than the serving one.

        Raises:
            NotFoundError: ``to`` is not a kept version, or there is nothing older.
            InvalidArgumentError: ``to`` is already serving.
        """
        start = time.perf_counter()
        with self._lock():
            infos = self._list()
            cur = self._current_id()
            names = ", ".join(v.version for v in infos) or "none"
            if cur is None:
                raise NotFoundError(f"no index version serves at {self.location}; build one first")
            if to is None:
                older = [v for v in infos if v.version < cur]
                if not older:
                    raise NotFoundError(
                        f"nothing to roll back to: {cur} is the oldest version kept (versions: {names}); "
                        "keep more with VISEARCH_INDEX__KEEP_VERSIONS"
                    )
                target = older[-1]
            else:
                found = [v for v in infos if v.version == to]
                if not found:
                    raise NotFoundError(f"unknown index version {to!r}; versions kept: {names}")
                if to == cur:
                    raise InvalidArgumentError(f"{to} is already the serving version")
                target = found[0]
            self._switch(target.version)
        self.refresh()
        return SwitchReport(
            previous=cur, current=replace(target, current=True), seconds=round(time.perf_counter() - start, 3)
        )

    # ------------------------------------------------------------------ helpers
    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the index lives, for messages (a path or a URL + collection)."""

    def _new_info(
        self, *, kind: Literal["build", "update"], parent: str | None, like: VersionInfo | None = None
    ) -> VersionInfo:
        numbers = [version_number(v.version) or 0 for v in self._list()]
        s = self.settings
        return VersionInfo(
            version=version_id(max(numbers, default=0) + 1),
            kind=kind,
            created_at=_now(),
            parent=parent,
            points=0,
            online_dim=like.online_dim if like else s.online_dim,
            full_dim=like.full_dim if like else s.full_dim,
            hnsw_m=like.hnsw_m if like else s.hnsw_m,
            hnsw_ef_construct=like.hnsw_ef_construct if like else s.hnsw_ef_construct,
            quantization=like.quantization if like else s.quantization,
            full_on_disk=like.full_on_disk if like else s.full_on_disk,
        )

    def _check_batch(
        self, batch: ProductBatch, seen: set[str], offset: int
    ) -> tuple[list[str], np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Validate one input batch: ids unique over the whole build, vectors, payloads."""
        if not isinstance(batch, ProductBatch):
            raise InvalidArgumentError(f"build takes ProductBatch items, got {type(batch).__name__}")
        ids = list(batch.product_ids)
        for i, pid in enumerate(ids):
            check_product_id(pid, where=f"input row {offset + i}")
            if pid in seen:
                raise DatasetError(
                    f"input row {offset + i}: product_id {pid!r} appears twice; keep one row per product"
                )
            seen.add(pid)
        full = as_matrix(batch.vectors, self.settings.full_dim, what="input vectors", ids=ids, error=DatasetError)
        if len(full) != len(ids):
            raise DatasetError(f"input batch at row {offset}: {len(ids)} product ids but {len(full)} vectors")
        full, online = split_vectors(full, self.settings.online_dim, what="input vectors", ids=ids, error=DatasetError)
        raw = batch.payloads if batch.payloads is not None else [{} for _ in ids]
        if len(raw) != len(ids):
            raise DatasetError(f"input batch at row {offset}: {len(ids)} product ids but {len(raw)} payloads")
        payloads = [clean_payload(p, pid, where=f"product {pid!r}") for pid, p in zip(ids, raw, strict=True)]
        return ids, full, online, payloads

    def _apply(self, staged: S, changes: ChangeSet, online_dim: int, progress: ProgressFn) -> dict[str, int]:
        """Apply a validated change set to a staged copy; payload-only changes must hit known products."""
        touched = [*changes.upsert_ids, *changes.payload_ids, *changes.delete_ids]
        existing = self._existing(staged, touched)
        missing = [p for p in changes.payload_ids if p not in existing]
        if missing:
            more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            raise NotFoundError(
                f"{changes.source}: payload changes for products the index does not have: "
                f"{', '.join(map(repr, missing[:5]))}{more}; send them as upserts with a vector, or drop them"
            )
        total = len(touched)
        done = 0
        progress("apply", 0, total)
        gone = [p for p in changes.delete_ids if p in existing]
        if gone:
            self._delete(staged, gone)
        done += len(changes.delete_ids)
        progress("apply", done, total)
        if changes.upsert_ids:
            full, online = split_vectors(
                changes.upsert_vectors, online_dim, what=changes.source, ids=changes.upsert_ids, error=DatasetError
            )
            step = self.settings.batch_size
            with_payload = [
                i
                for i, p in enumerate(changes.upsert_payloads)
                if p is not None or changes.upsert_ids[i] not in existing
            ]
            vector_only = [
                i for i, p in enumerate(changes.upsert_payloads) if p is None and changes.upsert_ids[i] in existing
            ]
            for i in range(0, len(with_payload), step):
                rows = with_payload[i : i + step]
                ids = [changes.upsert_ids[r] for r in rows]
                payloads = [changes.upsert_payloads[r] or {"product_id": changes.upsert_ids[r]} for r in rows]
                self._upsert(staged, ids, full[rows], online[rows], payloads)
                done += len(rows)
                progress("apply", done, total)
            for i in range(0, len(vector_only), step):
                rows = vector_only[i : i + step]
                self._update_vectors(staged, [changes.upsert_ids[r] for r in rows], full[rows], online[rows])
                done += len(rows)
                progress("apply", done, total)
        for pid, payload in zip(changes.payload_ids, changes.payload_sets, strict=True):
            self._set_payload(staged, pid, payload)
        done += len(changes.payload_ids)
        progress("apply", done, total)
        new = sum(1 for p in changes.upsert_ids if p not in existing)
        return {
            "new": new,
            "changed": len(changes.upsert_ids) - new,
            "payload_only": len(changes.payload_ids),
            "deleted": len(gone),
            "already_absent": len(changes.delete_ids) - len(gone),
        }

    def _prune(self) -> list[str]:
        """Drop the oldest non-serving versions beyond ``keep_versions`` (serving one included)."""
        cur = self._current_id()
        others = [v.version for v in self._list() if v.version != cur]
        excess = len(others) - (self.settings.keep_versions - 1)
        dropped = others[: max(0, excess)]
        for v in dropped:
            self._drop(v)
        return dropped

    def __enter__(self) -> BaseIndex[S]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ hooks
    @abc.abstractmethod
    def _serving(self) -> VersionInfo:
        """The version searches run against; ``NotFoundError`` when none is built."""

    @abc.abstractmethod
    def _query(
        self,
        full: np.ndarray,
        online: np.ndarray,
        *,
        k: int,
        mode: SearchMode,
        filter: SearchFilter | None,
        ef: int,
        candidates: int,
        with_payload: bool,
    ) -> list[list[Hit]]: ...

    @abc.abstractmethod
    def _lookup(self, article: str, limit: int, filter: SearchFilter | None) -> list[Hit]: ...

    @staticmethod
    def _hit(point: Any, score: float, with_payload: bool) -> Hit:
        """A hit from an engine point (edge or cluster): the product id lives in the payload."""
        payload = dict(point.payload or {})
        pid = payload.get("product_id")
        return Hit(str(pid if pid is not None else point.id), float(score), payload if with_payload else {})

    @abc.abstractmethod
    def _retrieve(self, product_ids: list[str]) -> dict[str, dict[str, Any]]: ...

    @abc.abstractmethod
    def _retrieve_vectors(self, product_ids: list[str]) -> dict[str, np.ndarray]: ...

    @abc.abstractmethod
    def _count(self) -> int: ...

    @abc.abstractmethod
    def _export(self, batch_size: int) -> Iterator[ProductBatch]: ...

    @abc.abstractmethod
    def _lock(self) -> AbstractContextManager[None]:
        """Exclusive right to write versions."""

    @abc.abstractmethod
    def _cleanup(self) -> list[str]:
        """Remove what crashed builds/updates left; return what was removed."""

    @abc.abstractmethod
    def _list(self) -> list[VersionInfo]: ...

    @abc.abstractmethod
    def _current_id(self) -> str | None: ...

    @abc.abstractmethod
    def _create(self, info: VersionInfo) -> S: ...

    @abc.abstractmethod
    def _copy(self, source: VersionInfo, info: VersionInfo, progress: ProgressFn) -> S: ...

    @abc.abstractmethod
    def _upsert(
        self, staged: S, ids: list[str], full: np.ndarray, online: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None: ...

    @abc.abstractmethod
    def _update_vectors(self, staged: S, ids: list[str], full: np.ndarray, online: np.ndarray) -> None: ...

    @abc.abstractmethod
    def _set_payload(self, staged: S, product_id: str, payload: dict[str, Any]) -> None: ...

    @abc.abstractmethod
    def _delete(self, staged: S, ids: list[str]) -> None: ...

    @abc.abstractmethod
    def _existing(self, staged: S, ids: list[str]) -> set[str]: ...

    @abc.abstractmethod
    def _finish(self, staged: S) -> int:
        """Build the HNSW graph / wait for it; return the point count."""

    @abc.abstractmethod
    def _commit(self, staged: S, info: VersionInfo) -> None:
        """Make the staged version complete and listable (not yet serving)."""

    @abc.abstractmethod
    def _discard(self, staged: S) -> None: ...

    @abc.abstractmethod
    def _switch(self, version: str) -> None:
        """Atomically make ``version`` the serving one."""

    @abc.abstractmethod
    def _drop(self, version: str) -> None: ...

    @abc.abstractmethod
    def stats(self) -> IndexStats: ...

    @abc.abstractmethod
    def refresh(self) -> bool:
        """Re-open if another process switched versions; true when the serving version changed."""

    @abc.abstractmethod
    def close(self) -> None: ...
