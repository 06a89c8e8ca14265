"""The embedded and the cluster backend answer alike: same top-k ids, scores within fp16 tolerance."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from visearch.index import SearchFilter, VectorIndex
from visearch.index.synthetic import SyntheticEmbeddings

TOL = 3e-3  # fp16 storage on one side, float32/64 on the other


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, emb: SyntheticEmbeddings, open_backend: Callable[..., VectorIndex]):
    edge = open_backend("edge", tmp_path_factory.mktemp("edge"))
    cluster = open_backend("cluster", tmp_path_factory.mktemp("cluster"))
    for ix in (edge, cluster):
        ix.build(emb.batches(700), total=emb.n)
    yield edge, cluster
    edge.close()
    cluster.close()


def _same(a: list, b: list) -> None:
    """Same ids in the same order, except that near-ties may swap; same scores."""
    assert len(a) == len(b)
    sa = {h.product_id: h.score for h in a}
    sb = {h.product_id: h.score for h in b}
    common = set(sa) & set(sb)
    # ids only differ where the last places tie within tolerance
    for pid in set(sa) ^ set(sb):
        score = sa.get(pid, sb.get(pid))
        assert abs(score - a[-1].score) < TOL, (pid, score, a[-1].score)
    for pid in common:
        assert sa[pid] == pytest.approx(sb[pid], abs=TOL)
    assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=TOL)


@pytest.mark.parametrize("mode", ["hnsw", "two_stage", "exact"])
@pytest.mark.parametrize(
    "flt",
    [
        None,
        SearchFilter.of(category="cat05"),
        SearchFilter.of(price_min=500, price_max=2500),
        SearchFilter.of(category=["cat01", "cat02"], price_max=3000),
    ],
    ids=["none", "category", "price", "both"],
)
def test_same_answers(
    pair: tuple[VectorIndex, VectorIndex], emb: SyntheticEmbeddings, mode: str, flt: SearchFilter | None
) -> None:
    edge, cluster = pair
    a = edge.search_batch(emb.queries[:8], 10, mode=mode, filter=flt)
    b = cluster.search_batch(emb.queries[:8], 10, mode=mode, filter=flt)
    for ra, rb in zip(a, b, strict=True):
        _same(ra, rb)
        payloads = {h.product_id: h.payload for h in rb}
        assert all(h.payload == payloads[h.product_id] for h in ra if h.product_id in payloads)


def test_same_lookups_and_payloads(pair: tuple[VectorIndex, VectorIndex], emb: SyntheticEmbeddings) -> None:
    edge, cluster = pair
    for i in (0, 99, 1999):
        art = emb.articles()[i]
        assert edge.lookup_article(art) == cluster.lookup_article(art)
    ids = emb.product_ids()[:50]
    assert edge.get(ids) == cluster.get(ids)
    assert edge.count() == cluster.count() == emb.n


def test_same_after_the_same_update(make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings) -> None:
    from visearch.index import ChangeSet, ProductBatch

    ids = emb.product_ids()[:300]
    changes = ChangeSet.create(
        upserts=[{"product_id": "n1", "vector": emb.queries[0], "payload": {"category": "cat01", "price": 1}}],
        payload_updates=[{"product_id": ids[5], "payload": {"price": 7.0}}],
        deletes=ids[10:20],
    )
    answers = []
    for backend in ("edge", "cluster"):
        ix = make_index(backend)
        ix.build([ProductBatch(ids, emb.vectors[:300], [{"category": "cat01", "price": 1.0}] * 300)])
        ix.update(changes)
        answers.append((ix.search(emb.queries[0], 5), ix.get([ids[5], ids[10], "n1"]), ix.count()))
    (ha, ga, ca), (hb, gb, cb) = answers
    _same(ha, hb)
    assert ha[0].product_id == "n1" and ga == gb and ca == cb == 291
    assert np.isclose(ha[0].score, 1.0, atol=TOL)
