"""The embedded backend's point numbering: a hit's product id comes from the version's table, not
its payload; updates keep every product on its point; versions written before the table (points
named by UUID5) keep working."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from visearch.index import ChangeSet, VectorIndex
from visearch.index.edge import EdgeIndex
from visearch.index.point_ids import IDS_FILE, PointIds
from visearch.index.synthetic import SyntheticEmbeddings


def _table(index: VectorIndex) -> list[str] | None:
    assert isinstance(index, EdgeIndex)
    info = index.current_version()
    assert info is not None
    path = index.store.root / info.version / IDS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _own_query(emb: SyntheticEmbeddings, row: int) -> np.ndarray:
    return emb.vectors[row]


def test_hits_name_products_without_reading_payloads(
    tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex]
) -> None:
    with open_edge(tmp_path) as index:
        index.build(emb.batches(500), total=emb.n)
        assert _table(index) == emb.product_ids()
        for row in (0, 777, emb.n - 1):
            ids_only = index.search(_own_query(emb, row), k=3, mode="hnsw", with_payload=False)
            full = index.search(_own_query(emb, row), k=3, mode="hnsw")
            assert ids_only[0].product_id == emb.product_ids()[row] and ids_only[0].payload == {}
            assert [h.product_id for h in ids_only] == [h.product_id for h in full]
            assert full[0].payload["product_id"] == full[0].product_id
        batch = index.search_batch(emb.vectors[:64], k=1, with_payload=False)
        assert [hits[0].product_id for hits in batch] == emb.product_ids()[:64]
        assert any(c.name == "product id table" for c in index.stats().components)


def test_updates_keep_products_on_their_points(
    tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex]
) -> None:
    ids = emb.product_ids()
    rng = np.random.default_rng(0)
    fresh = rng.standard_normal((3, emb.vectors.shape[1])).astype(np.float32)
    with open_edge(tmp_path, keep_versions=4) as index:
        index.build(emb.batches(500), total=emb.n)
        index.update(ChangeSet.create(
            upserts=[{"product_id": "новый-1", "vector": fresh[0]}, {"product_id": ids[5], "vector": fresh[1]}],
            deletes=[ids[9]],
        ))
        table = _table(index)
        assert table is not None and table[: emb.n] == ids and table[emb.n:] == ["новый-1"]
        assert index.search(fresh[0], k=1)[0].product_id == "новый-1"
        assert index.search(fresh[1], k=1)[0].product_id == ids[5]
        assert ids[9] not in index.get([ids[9]]) and index.count() == emb.n
        # the deleted product comes back on its old point: the table does not grow
        index.update(ChangeSet.create(upserts=[{"product_id": ids[9], "vector": fresh[2]}],
                                      payload_updates=[{"product_id": "новый-1", "payload": {"price": 5.0}}]))
        assert _table(index) == table
        assert index.search(fresh[2], k=1)[0].product_id == ids[9]
        assert index.get(["новый-1"])["новый-1"]["price"] == 5.0
        assert index.count() == emb.n + 1


def test_a_version_from_before_the_table_still_serves_and_updates(
    tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex], monkeypatch: pytest.MonkeyPatch
) -> None:
    # builds wrote UUID5-named points and no table before the table existed: write one that way
    create = EdgeIndex._create

    def as_before(self: EdgeIndex, info):  # type: ignore[no-untyped-def]
        staged = create(self, info)
        staged.ids = PointIds(None)
        return staged

    monkeypatch.setattr(EdgeIndex, "_create", as_before)
    with open_edge(tmp_path) as index:
        index.build(emb.batches(500), total=emb.n)
    monkeypatch.undo()

    ids = emb.product_ids()
    with open_edge(tmp_path) as index:
        assert _table(index) is None
        for mode in ("hnsw", "two_stage", "exact"):
            assert index.search(emb.vectors[3], k=1, mode=mode, with_payload=False)[0].product_id == ids[3]
        assert set(index.vectors([ids[1], "nobody"])) == {ids[1]}
        fresh = np.random.default_rng(1).standard_normal(emb.vectors.shape[1]).astype(np.float32)
        index.update(ChangeSet.create(upserts=[{"product_id": "later", "vector": fresh}], deletes=[ids[2]]))
        assert _table(index) is None  # an update copies the version as it is
        assert index.search(fresh, k=1, with_payload=False)[0].product_id == "later"
        assert index.get([ids[2]]) == {} and index.count() == emb.n
