"""The vector index: one interface, an embedded and a cluster backend.

>>> from visearch.config import Settings
>>> from visearch.index import open_index, read_products
>>> index = open_index(Settings(data_dir="/tmp/vs"))  # doctest: +SKIP
>>> index.build(read_products("vectors.parquet", "products.parquet"))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from visearch.config import IndexSettings, Settings
from visearch.errors import InvalidArgumentError
from visearch.index.base import VectorIndex
from visearch.index.changes import ChangeSet, load_changeset
from visearch.index.sources import ProductSource, read_products
from visearch.index.types import (
    BuildReport,
    Component,
    Hit,
    IndexStats,
    ProductBatch,
    SearchFilter,
    SearchMode,
    SwitchReport,
    UpdateReport,
    VersionInfo,
    point_id,
)

__all__ = [
    "open_index",
    "VectorIndex",
    "Hit",
    "SearchFilter",
    "SearchMode",
    "ProductBatch",
    "VersionInfo",
    "BuildReport",
    "UpdateReport",
    "SwitchReport",
    "IndexStats",
    "Component",
    "ChangeSet",
    "load_changeset",
    "ProductSource",
    "read_products",
    "point_id",
    "build_index",
    "update_index",
    "rollback_index",
    "index_stats",
]


def open_index(settings: Settings | IndexSettings, *, client: Any = None) -> VectorIndex:
    """The index the settings describe: embedded (``edge``) or a Qdrant cluster (``cluster``).

    Args:
        settings: the whole :class:`~visearch.config.Settings` or its ``index`` part.
        client: a ready ``qdrant_client.QdrantClient`` for the cluster backend (tests
            pass local mode, ``QdrantClient(":memory:")``); built from ``url`` and
            ``api_key`` when omitted.

    Raises:
        InvalidArgumentError: settings that name both backends or neither
            (a URL with ``backend=edge``, ``backend=cluster`` without a URL or client).
    """
    s = settings.index if isinstance(settings, Settings) else settings
    if s.backend == "edge":
        if s.url or s.api_key or client is not None:
            raise InvalidArgumentError(
                "index.backend is 'edge' but a cluster URL, API key or client is given; "
                "set VISEARCH_INDEX__BACKEND=cluster to use the cluster, or unset VISEARCH_INDEX__URL / __API_KEY"
            )
        from visearch.index.edge import EdgeIndex

        return EdgeIndex(s)
    if s.backend == "cluster":
        from visearch.index.cluster import ClusterIndex

        return ClusterIndex(s, client=client)
    raise InvalidArgumentError(f"unknown index backend {s.backend!r}; use edge or cluster")


from visearch.index.lifecycle import build_index, index_stats, rollback_index, update_index  # noqa: E402
