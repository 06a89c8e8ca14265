"""The scale-out backend: a Qdrant server or cluster through ``qdrant-client``.

Versions are collections named ``<collection>-v000003``; the alias ``<collection>``
points at the serving one and searches go through the alias, so switching (build,
update, rollback) is one ``update_collection_aliases`` call, which Qdrant applies
atomically on every node. Each collection carries its manifest in the collection
metadata (``{"visearch": {..., "complete": true}}``); a collection without
``complete`` is what a killed build left, and the next build or update deletes it.

Sharding and replication come from the settings (``shards``,
``replication_factor``, ``write_consistency_factor``); the 512-d rescoring vectors
live on disk when ``full_on_disk`` (only candidates are read), the HNSW graph and
the online vectors in RAM. Bulk loads run with indexing off and switch it on
at the end, so the graph is built once. One writer at a time: the cluster has no
lock to take, so run builds and updates from one job.

Tests drive this code path with qdrant-client's local mode (``QdrantClient(":memory:")``
or ``path=``), which searches exactly and ignores payload indexes, sharding and
``hnsw_ef``, so results match the embedded backend's within float tolerance.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from visearch.config import IndexSettings
from visearch.errors import InvalidArgumentError, NotFoundError, VisearchError
from visearch.index.base import VectorIndex
from visearch.index.types import (
    FULL,
    ONLINE,
    Component,
    Hit,
    IndexStats,
    ProductBatch,
    ProgressFn,
    SearchFilter,
    SearchPlan,
    VersionInfo,
    point_id,
    version_number,
)
from visearch.index.validation import GRAPH_FIELDS, INDEXED_FIELDS

__all__ = ["ClusterIndex"]

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,200}$")
_SCHEMA = {"keyword": models.KeywordIndexParams, "float": models.FloatIndexParams}


class ClusterIndex(VectorIndex[str]):
    """:class:`~visearch.index.base.VectorIndex` on a Qdrant server or cluster; staged handles are collection names."""

    backend = "cluster"

    def __init__(self, settings: IndexSettings, *, client: QdrantClient | None = None) -> None:
        super().__init__(settings)
        if not _NAME.match(settings.collection):
            raise InvalidArgumentError(
                f"index.collection {settings.collection!r} is not a valid collection name (letters, digits, _ . -)"
            )
        if client is None:
            url = settings.url or ""
            if not url.startswith(("http://", "https://")):
                raise InvalidArgumentError(
                    f"index.url must be an http(s) URL of a Qdrant server or cluster (e.g. http://qdrant:6333), got {url!r}"
                )
            client = QdrantClient(url=url, api_key=settings.api_key, timeout=settings.timeout_s)
        self.client = client
        self.alias = settings.collection
        self._info: VersionInfo | None = None

    @property
    def location(self) -> str:
        return f"{self.settings.url or 'local mode'} (alias {self.alias!r})"

    def _name(self, version: str) -> str:
        return f"{self.alias}-{version}"

    def _meta(self, name: str) -> dict[str, Any] | None:
        meta = self.client.get_collection(name).config.metadata or {}
        data = meta.get("visearch")
        return data if isinstance(data, dict) else None

    # ------------------------------------------------------------------ reading
    def _serving(self) -> VersionInfo:
        if self._info is None:
            cur = self._current_id()
            if cur is None:
                raise NotFoundError(
                    f"no index version serves at {self.location}; build one: visearch index build --vectors FILE"
                )
            meta = self._meta(self._name(cur))
            if meta is None:
                raise NotFoundError(f"collection {self._name(cur)} has no visearch manifest; rebuild the index")
            self._info = VersionInfo.from_manifest(meta, current=True)
        return self._info

    def refresh(self) -> bool:
        cur = self._current_id()
        before = self._info.version if self._info is not None else None
        self._info = None
        if cur is not None:
            self._serving()
        return cur != before

    def close(self) -> None:
        self._info = None
        self.client.close()

    @staticmethod
    def _filter(flt: SearchFilter | None, *extra: models.Condition) -> models.Filter | None:
        must: list[models.Condition] = list(extra)
        if flt is not None:
            if len(flt.categories) == 1:
                must.append(models.FieldCondition(key="category", match=models.MatchValue(value=flt.categories[0])))
            elif flt.categories:
                must.append(models.FieldCondition(key="category", match=models.MatchAny(any=list(flt.categories))))
            if flt.price_min is not None or flt.price_max is not None:
                must.append(
                    models.FieldCondition(key="price", range=models.Range(gte=flt.price_min, lte=flt.price_max))
                )
            for facet, values in flt.by_facet().items():  # the value among the product's tags, or in its column
                must.append(models.Filter(should=[models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
                                                  for key in dict.fromkeys(("tags", facet))]))
        return models.Filter(must=must) if must else None


    def _query(self, full: np.ndarray, online: np.ndarray, plan: SearchPlan) -> list[list[Hit]]:
        assert self._info is not None
        flt = self._filter(plan.filter)
        payload: Any = True if plan.with_payload else ["product_id"]
        quantized = self._info.quantization != "none"
        # as the embedded backend: HNSW mode oversamples and rescores; stage 1 of two-stage leaves that to stage 2
        hnsw_only = plan.mode == "hnsw"
        oversampling = self.settings.oversampling if hnsw_only else None
        quant = models.QuantizationSearchParams(rescore=hnsw_only, oversampling=oversampling) if quantized else None
        params = models.SearchParams(hnsw_ef=plan.ef, quantization=quant)
        requests = []
        for i in range(len(online)):
            if plan.mode == "hnsw":
                req = models.QueryRequest(
                    query=online[i].tolist(), using=ONLINE, limit=plan.k, params=params, filter=flt, with_payload=payload
                )
            elif plan.mode == "two_stage":
                stage1 = models.Prefetch(
                    query=online[i].tolist(), using=ONLINE, limit=plan.candidates, params=params, filter=flt
                )
                req = models.QueryRequest(
                    prefetch=[stage1], query=full[i].tolist(), using=FULL, limit=plan.k, with_payload=payload
                )
            else:
                req = models.QueryRequest(
                    query=full[i].tolist(),
                    using=FULL,
                    limit=plan.k,
                    params=models.SearchParams(exact=True),
                    filter=flt,
                    with_payload=payload,
                )
            requests.append(req)
        responses = self.client.query_batch_points(self.alias, requests=requests)
        return [[self._hit(p, p.score, plan.with_payload) for p in r.points] for r in responses]

    def _lookup(self, article: str, limit: int, filter: SearchFilter | None) -> list[Hit]:
        cond = models.FieldCondition(key="article", match=models.MatchValue(value=article))
        records, _ = self.client.scroll(
            self.alias, scroll_filter=self._filter(filter, cond), limit=limit, with_payload=True, with_vectors=False
        )
        return [self._hit(r, 1.0, True) for r in records]

    def _retrieve(self, product_ids: list[str]) -> dict[str, dict[str, Any]]:
        records = self.client.retrieve(self.alias, ids=[point_id(p) for p in product_ids], with_payload=True)
        return {str(r.payload["product_id"]): dict(r.payload) for r in records if r.payload}

    def _retrieve_vectors(self, product_ids: list[str]) -> dict[str, np.ndarray]:
        records = self.client.retrieve(self.alias, ids=[point_id(p) for p in product_ids], with_payload=True,
                                       with_vectors=[FULL])
        return {str(r.payload["product_id"]): np.asarray(r.vector[FULL], dtype=np.float32) for r in records if r.payload}

    def _count(self) -> int:
        return int(self.client.count(self.alias, exact=True).count)

    def _scroll(self, collection: str, batch_size: int, vectors: list[str]) -> Iterator[list[Any]]:
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                collection, limit=batch_size, offset=offset, with_payload=True, with_vectors=vectors
            )
            if records:
                yield records
            if offset is None:
                return

    def _export(self, batch_size: int) -> Iterator[ProductBatch]:
        for records in self._scroll(self.alias, batch_size, [FULL]):
            vectors = np.asarray([r.vector[FULL] for r in records], dtype=np.float32)
            payloads = [dict(r.payload) for r in records]
            yield ProductBatch([p["product_id"] for p in payloads], vectors, payloads)

    # ------------------------------------------------------------------ writing
    def _lock(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()

    def _versions_raw(self) -> list[tuple[str, dict[str, Any] | None]]:
        prefix = f"{self.alias}-"
        out = []
        for c in self.client.get_collections().collections:
            if c.name.startswith(prefix) and version_number(c.name[len(prefix) :]) is not None:
                out.append((c.name, self._meta(c.name)))
        return sorted(out, key=lambda t: t[0])

    def _cleanup(self) -> list[str]:
        removed = []
        for name, meta in self._versions_raw():
            if not (meta and meta.get("complete")):
                self.client.delete_collection(name)
                removed.append(name)
        return removed

    def _list(self) -> list[VersionInfo]:
        cur = self._current_id()
        return [
            VersionInfo.from_manifest(meta, current=meta.get("version") == cur)
            for _name, meta in self._versions_raw()
            if meta and meta.get("complete")
        ]

    def _current_id(self) -> str | None:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == self.alias:
                return a.collection_name[len(self.alias) + 1 :]
        return None

    def _create(self, info: VersionInfo) -> str:
        name = self._name(info.version)
        quant = (
            models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, quantile=0.99, always_ram=True)
            )
            if info.quantization == "int8"
            else None
        )
        s = self.settings
        self.client.create_collection(
            name,
            vectors_config={
                ONLINE: models.VectorParams(
                    size=info.online_dim,
                    distance=models.Distance.DOT,
                    datatype=models.Datatype.FLOAT16,
                    quantization_config=quant,
                ),
                FULL: models.VectorParams(
                    size=info.full_dim,
                    distance=models.Distance.DOT,
                    datatype=models.Datatype.FLOAT16,
                    on_disk=info.full_on_disk,
                    hnsw_config=models.HnswConfigDiff(m=0),
                ),
            },
            hnsw_config=models.HnswConfigDiff(
                m=info.hnsw_m, ef_construct=info.hnsw_ef_construct, full_scan_threshold=s.full_scan_threshold_kb
            ),
            # indexing off during the bulk load: the graph is built once, in _finish
            optimizers_config=models.OptimizersConfigDiff(indexing_threshold=0),
            shard_number=s.shards,
            replication_factor=s.replication_factor,
            write_consistency_factor=s.write_consistency_factor,
            on_disk_payload=True,
            metadata={"visearch": {**info.to_manifest(), "complete": False}},
            timeout=s.timeout_s,
        )
        for field, kind in INDEXED_FIELDS.items():
            schema = _SCHEMA[kind](type=kind, enable_hnsw=field in GRAPH_FIELDS)
            self.client.create_payload_index(name, field, schema, wait=True)
        return name

    def _copy(self, source: VersionInfo, info: VersionInfo, progress: ProgressFn) -> str:
        name = self._create(info)
        try:
            done = 0
            progress("copy", 0, source.points)
            for records in self._scroll(self._name(source.version), self.settings.batch_size, [ONLINE, FULL]):
                self.client.upsert(
                    name,
                    points=[models.PointStruct(id=r.id, vector=r.vector, payload=r.payload) for r in records],
                    wait=True,
                )
                done += len(records)
                progress("copy", done, source.points)
        except BaseException:
            self._discard(name)
            raise
        return name

    def _upsert(
        self, staged: str, ids: list[str], full: np.ndarray, online: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None:
        batch = models.Batch(
            ids=[point_id(p) for p in ids],
            vectors={ONLINE: online.tolist(), FULL: full.tolist()},
            payloads=payloads,
        )
        self.client.upsert(staged, points=batch, wait=True)

    def _update_vectors(self, staged: str, ids: list[str], full: np.ndarray, online: np.ndarray) -> None:
        points = [
            models.PointVectors(id=point_id(p), vector={ONLINE: online[i].tolist(), FULL: full[i].tolist()})
            for i, p in enumerate(ids)
        ]
        self.client.update_vectors(staged, points=points, wait=True)

    def _set_payload(self, staged: str, product_id: str, payload: dict[str, Any]) -> None:
        self.client.set_payload(staged, payload=payload, points=[point_id(product_id)], wait=True)

    def _delete(self, staged: str, ids: list[str]) -> None:
        self.client.delete(staged, points_selector=models.PointIdsList(points=[point_id(p) for p in ids]), wait=True)

    def _existing(self, staged: str, ids: list[str]) -> set[str]:
        by_point = {point_id(p): p for p in ids}
        keys = list(by_point)
        found: set[str] = set()
        for i in range(0, len(keys), 1024):
            for r in self.client.retrieve(staged, ids=keys[i : i + 1024], with_payload=False, with_vectors=False):
                found.add(by_point[str(r.id)])
        return found

    def _finish(self, staged: str) -> int:
        """Switch indexing on and wait until the server has built the graph (status green)."""
        self.client.update_collection(staged, optimizers_config=models.OptimizersConfigDiff(indexing_threshold=1))
        deadline = time.monotonic() + self.settings.index_wait_s
        while True:
            status = self.client.get_collection(staged).status
            if status == models.CollectionStatus.GREEN:
                break
            if status == models.CollectionStatus.RED:
                raise VisearchError(f"Qdrant reports collection {staged} as failed (status red) while indexing")
            if time.monotonic() > deadline:
                raise VisearchError(
                    f"collection {staged} still indexing after {self.settings.index_wait_s} s; "
                    "raise VISEARCH_INDEX__INDEX_WAIT_S or give the cluster more CPU"
                )
            time.sleep(1.0)
        return int(self.client.count(staged, exact=True).count)

    def _commit(self, staged: str, info: VersionInfo) -> None:
        self.client.update_collection(staged, metadata={"visearch": {**info.to_manifest(), "complete": True}})

    def _discard(self, staged: str) -> None:
        with contextlib.suppress(Exception):
            self.client.delete_collection(staged)

    def _switch(self, version: str) -> None:
        ops: list[Any] = []
        if self._current_id() is not None:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias)))
        ops.append(
            models.CreateAliasOperation(
                create_alias=models.CreateAlias(collection_name=self._name(version), alias_name=self.alias)
            )
        )
        self.client.update_collection_aliases(change_aliases_operations=ops)
        self._info = None

    def _drop(self, version: str) -> None:
        self.client.delete_collection(self._name(version))

    # ------------------------------------------------------------------ stats
    def stats(self) -> IndexStats:
        """Versions and a size estimate from the config (the client cannot see the servers' disks).

        Sizes are for the whole cluster: every replica holds its own copy.
        """
        versions = self._list()
        cur = self._current_id()
        info = next((v for v in versions if v.version == cur), None)
        components: list[Component] = []
        points = 0
        if info is not None:
            points = info.points
            copies = self.settings.replication_factor
            graph = int(points * info.hnsw_m * 2 * 4 * 1.1)  # level-0 links (2m x u32) + upper levels
            components = [
                Component("online vectors (fp16)", points * info.online_dim * 2 * copies, "ram"),
                Component("hnsw graph", graph * copies, "ram"),
                Component(
                    "full vectors (fp16)", points * info.full_dim * 2 * copies, "disk" if info.full_on_disk else "ram"
                ),
            ]
            if info.quantization == "int8":
                components.append(Component("int8 quantized vectors", points * info.online_dim * copies, "ram"))
        return IndexStats(
            backend=self.backend,
            location=self.location,
            current=cur,
            versions=versions,
            points=points,
            components=components,
            estimated=True,
        )
