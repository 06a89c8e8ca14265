"""What only the cluster backend does: collections + alias, leftovers, waiting for indexing, estimates;
and how ``open_index`` picks a backend."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from qdrant_client import QdrantClient, models

from visearch.config import IndexSettings, Settings
from visearch.errors import InvalidArgumentError, VisearchError
from visearch.index import VectorIndex, open_index
from visearch.index.cluster import ClusterIndex
from visearch.index.edge import EdgeIndex
from visearch.index.synthetic import SyntheticEmbeddings


def _cluster(**index: object) -> ClusterIndex:
    ix = open_index(IndexSettings(backend="cluster", **index), client=QdrantClient(":memory:"))
    assert isinstance(ix, ClusterIndex)
    return ix


def test_versions_are_collections_behind_an_alias(emb: SyntheticEmbeddings) -> None:
    ix = _cluster(collection="shop", replication_factor=2)
    ix.build(emb.batches(1000))
    ix.build(emb.batches(1000))
    names = sorted(c.name for c in ix.client.get_collections().collections)
    assert names == ["shop-v000001", "shop-v000002"]
    aliases = {a.alias_name: a.collection_name for a in ix.client.get_aliases().aliases}
    assert aliases == {"shop": "shop-v000002"}
    meta = ix.client.get_collection("shop-v000002").config.metadata["visearch"]
    assert meta["complete"] is True and meta["points"] == emb.n and meta["parent"] == "v000001"
    ix.rollback()
    assert {a.alias_name: a.collection_name for a in ix.client.get_aliases().aliases} == {"shop": "shop-v000001"}
    stats = ix.stats()
    assert stats.estimated and stats.current == "v000001" and stats.points == emb.n
    online = next(c for c in stats.components if c.name.startswith("online"))
    assert online.bytes == emb.n * 128 * 2 * 2  # fp16, two replicas
    assert isinstance(ix, VectorIndex)
    ix.close()


def test_a_killed_builds_collection_is_cleaned(emb: SyntheticEmbeddings) -> None:
    ix = _cluster()
    ix.build(emb.batches(1000))
    # what a build killed before it finished leaves: a collection not marked complete
    ix.client.create_collection(
        "products-v000002",
        vectors_config={"online": models.VectorParams(size=128, distance=models.Distance.DOT)},
        metadata={"visearch": {"complete": False}},
    )
    assert [v.version for v in ix.versions()] == ["v000001"]
    report = ix.build(emb.batches(1000))
    assert report.cleaned == ["products-v000002"] and report.version.version == "v000002"
    ix.close()


def _statuses(
    monkeypatch: pytest.MonkeyPatch, ix: ClusterIndex, target: str, statuses: list[models.CollectionStatus]
) -> None:
    """The server reports these statuses for ``target``, one per look, then keeps the last."""
    real = ix.client.get_collection
    seq = iter(statuses)

    def get_collection(name: str):
        info = real(name)
        if name != target:
            return info
        return SimpleNamespace(status=next(seq, statuses[-1]), config=info.config)

    monkeypatch.setattr(ix.client, "get_collection", get_collection)
    monkeypatch.setattr("visearch.index.cluster.time.sleep", lambda s: None)


def test_a_build_waits_for_the_server_to_index(monkeypatch: pytest.MonkeyPatch, emb: SyntheticEmbeddings) -> None:
    ix = _cluster()
    Y, G, R = models.CollectionStatus.YELLOW, models.CollectionStatus.GREEN, models.CollectionStatus.RED
    _statuses(monkeypatch, ix, "products-v000001", [Y, Y, G])
    assert ix.build(emb.batches(1000)).version.points == emb.n
    monkeypatch.undo()
    _statuses(monkeypatch, ix, "products-v000002", [Y, R])
    with pytest.raises(VisearchError, match="status red"):
        ix.build(emb.batches(1000))
    monkeypatch.undo()
    assert [v.version for v in ix.versions()] == ["v000001"] and ix.count() == emb.n
    assert [c.name for c in ix.client.get_collections().collections] == ["products-v000001"]
    slow = _cluster(index_wait_s=1)
    clock = iter(range(0, 10_000, 5))
    _statuses(monkeypatch, slow, "products-v000001", [Y])
    monkeypatch.setattr("visearch.index.cluster.time.monotonic", lambda: float(next(clock)))
    with pytest.raises(VisearchError, match="still indexing after 1 s"):
        slow.build(emb.batches(1000))
    monkeypatch.undo()
    assert slow.versions() == [] and slow.client.get_collections().collections == []
    ix.close()
    slow.close()


def test_open_index_picks_one_backend(tmp_path: Path) -> None:
    assert isinstance(open_index(Settings(data_dir=tmp_path)), EdgeIndex)
    s = Settings(data_dir=tmp_path)
    s.index.url = "http://qdrant:6333"
    with pytest.raises(InvalidArgumentError, match="backend is 'edge' but a cluster URL"):
        open_index(s)
    with pytest.raises(InvalidArgumentError, match="client"):
        open_index(Settings(data_dir=tmp_path), client=QdrantClient(":memory:"))
    with pytest.raises(InvalidArgumentError, match="http"):
        open_index(IndexSettings(backend="cluster", url="qdrant:6333"))
    with pytest.raises(InvalidArgumentError, match="http"):
        open_index(IndexSettings(backend="cluster"))
    with pytest.raises(InvalidArgumentError, match="not a valid collection name"):
        open_index(IndexSettings(backend="cluster", collection="bad name/x"), client=QdrantClient(":memory:"))
    with pytest.raises(ValueError, match="VISEARCH_INDEX__URL"):
        Settings(data_dir=tmp_path, index={"backend": "cluster"})
    with pytest.raises(InvalidArgumentError, match="is a file"):
        (tmp_path / "f").write_text("x")
        open_index(IndexSettings(path=tmp_path / "f"))
