"""One suite, both backends: search modes, filters, lookups, lifecycle, bad input."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index import ChangeSet, ProductBatch, SearchFilter, VectorIndex
from visearch.index.metrics import exact_topk
from visearch.index.synthetic import SyntheticEmbeddings


def test_search_modes_find_the_exact_neighbours(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    truth, scores = exact_topk(emb.vectors, emb.queries, 10)
    ids = emb.product_ids()
    for mode in ("two_stage", "exact"):
        found = built.search_batch(emb.queries, 10, mode=mode)
        hits = sum(len({h.product_id for h in f} & {ids[j] for j in t}) for f, t in zip(found, truth, strict=True))
        assert hits / truth.size >= 0.98, mode
        # scores are cosines of the full vectors (fp16 storage: small error)
        assert found[0][0].score == pytest.approx(float(scores[0][0]), abs=2e-3)
    q = emb.queries[0]
    online = q[:128] / np.linalg.norm(q[:128])
    one = built.search(q, 5, mode="hnsw")
    assert [h.product_id for h in built.search(online, 5, mode="hnsw")] == [h.product_id for h in one]
    assert one[0].score == pytest.approx(
        float(np.max((emb.vectors[:, :128] / np.linalg.norm(emb.vectors[:, :128], axis=1, keepdims=True)) @ online)),
        abs=2e-3,
    )


def test_payload_and_ids(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    hits = built.search(emb.vectors[7], 3)
    assert hits[0].product_id == emb.product_ids()[7]
    assert hits[0].payload == {
        "product_id": emb.product_ids()[7],
        "article": emb.articles()[7],
        "category": f"cat{int(emb.categories[7]):02d}",
        "price": float(emb.prices()[7]),
    }
    assert built.search(emb.vectors[7], 3, with_payload=False)[0].payload == {}
    assert built.count() == emb.n and isinstance(built, VectorIndex)
    got = built.get([emb.product_ids()[1], "no-such-product"])
    assert list(got) == [emb.product_ids()[1]]


def test_filters(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    cat = f"cat{int(emb.categories[0]):02d}"
    for mode in ("hnsw", "two_stage", "exact"):
        hits = built.search(emb.queries[0], 20, mode=mode, filter=SearchFilter.of(category=cat))
        assert hits and all(h.payload["category"] == cat for h in hits)
        hits = built.search(emb.queries[0], 20, mode=mode, filter=SearchFilter.of(price_min=1000, price_max=2000))
        assert hits and all(1000 <= h.payload["price"] <= 2000 for h in hits)
    two = [f"cat{int(c):02d}" for c in emb.categories[:2]]
    hits = built.search(emb.queries[1], 30, filter=SearchFilter.of(category=two, price_max=5000))
    assert all(h.payload["category"] in two and h.payload["price"] <= 5000 for h in hits)
    # the filtered result is the exact filtered top-k
    mask = np.array([f"cat{int(c):02d}" == cat for c in emb.categories])
    best = np.flatnonzero(mask)[np.argsort(-(emb.vectors[mask] @ emb.queries[2]))[:5]]
    hits = built.search(emb.queries[2], 5, mode="exact", filter=SearchFilter.of(category=cat))
    assert [h.product_id for h in hits] == [emb.product_ids()[i] for i in best]


def test_attribute_filters_read_tags_or_the_attribute_column(fresh: VectorIndex, emb: SyntheticEmbeddings) -> None:
    """A refinement's asked attributes: a product has "red" among its tags or in its colour column; values of one
    facet are alternatives, facets all apply; products with neither field never match."""
    q = emb.queries[0]
    near = (q + 0.05 * np.random.default_rng(1).standard_normal((4, q.size))).astype(np.float32)
    cards = [
        {"category": "hats", "price": 1, "tags": ["hats", "red", "stripes"]},  # tags only
        {"category": "hats", "price": 1, "colour": "red", "pattern": "dots"},  # columns only
        {"category": "hats", "price": 1, "tags": ["hats", "blue", "stripes"], "colour": "blue"},
        {"category": "caps", "price": 1, "tags": ["caps", "красный"]},  # a value no facet asked for
    ]
    fresh.update(ChangeSet.create(upserts=[{"product_id": f"t{i}", "vector": v, "payload": {"article": f"9{i}", **c}}
                                           for i, (v, c) in enumerate(zip(near, cards, strict=True))]))
    def found(mode: str, *attributes: tuple[str, str], category: str | None = None) -> set[str]:
        flt = SearchFilter(categories=(category,) if category else (), attributes=attributes)
        return {h.product_id for h in fresh.search(q, 20, mode=mode, filter=flt)}

    for mode in ("hnsw", "two_stage", "exact"):
        assert found(mode, ("colour", "red")) == {"t0", "t1"}, mode
        assert found(mode, ("colour", "red"), ("pattern", "stripes")) == {"t0"}, mode
        assert found(mode, ("colour", "red"), ("colour", "blue")) == {"t0", "t1", "t2"}, mode
        assert found(mode, ("colour", "blue"), category="caps") == set(), mode
        assert found(mode, ("colour", "nothing-has-this")) == set(), mode
    with pytest.raises(InvalidArgumentError, match="facet, value"):
        SearchFilter(attributes=(("colour",),))
    with pytest.raises(InvalidArgumentError, match="facet, value"):
        SearchFilter(attributes=(("colour", " "),))
    assert SearchFilter(attributes=(("colour", "red"), ("pattern", "dots"), ("colour", "blue"))).by_facet() == {
        "colour": ("red", "blue"), "pattern": ("dots",)}


def test_article_lookup(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    art = emb.articles()[42]
    hits = built.lookup_article(art)
    assert [h.product_id for h in hits] == [emb.product_ids()[42]] and hits[0].score == 1.0
    assert built.lookup_article(int(art))[0].product_id == emb.product_ids()[42]
    assert built.lookup_article("00000000") == []
    other = "cat99"
    assert built.lookup_article(art, filter=SearchFilter.of(category=other)) == []


def test_export_round_trips(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    batches = list(built.export(batch_size=700))
    ids = [p for b in batches for p in b.product_ids]
    assert sorted(ids) == sorted(emb.product_ids())
    vecs = np.concatenate([b.vectors for b in batches])
    order = np.argsort(ids)
    np.testing.assert_allclose(vecs[order], emb.vectors[np.argsort(emb.product_ids())], atol=2e-3)


def test_stored_vectors_by_product(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    ids = emb.product_ids()
    got = built.vectors([ids[3], ids[10], "no-such-product"])
    assert sorted(got) == sorted([ids[3], ids[10]])
    np.testing.assert_allclose(got[ids[10]], emb.vectors[10], atol=2e-3)
    assert built.vectors([]) == {}


def test_update_applies_each_kind_of_change(fresh: VectorIndex, emb: SyntheticEmbeddings) -> None:
    built = fresh
    ids = emb.product_ids()
    rng = np.random.default_rng(0)
    fresh = rng.standard_normal((3, 512)).astype(np.float32)
    changes = ChangeSet.create(
        upserts=[
            {"product_id": "new-1", "vector": fresh[0], "payload": {"article": "999", "category": "hats", "price": 10}},
            {"product_id": ids[0], "vector": fresh[1], "payload": {"article": "111", "category": "caps", "price": 5}},
            {"product_id": ids[1], "vector": fresh[2]},  # vector-only: the card stays
        ],
        payload_updates=[{"product_id": ids[2], "payload": {"price": 1.5, "rating": 4.9}}],
        deletes=[ids[3], "never-existed"],
    )
    report = built.update(changes)
    assert report.applied and report.version.version == "v000002" and report.version.parent == "v000001"
    assert (report.new, report.changed, report.payload_only, report.deleted, report.already_absent) == (1, 2, 1, 1, 1)
    assert built.count() == emb.n
    got = built.get([ids[0], ids[1], ids[2], ids[3], "new-1"])
    assert got[ids[0]] == {"product_id": ids[0], "article": "111", "category": "caps", "price": 5.0}
    assert got[ids[1]]["article"] == emb.articles()[1]
    assert got[ids[2]]["price"] == 1.5 and got[ids[2]]["rating"] == 4.9 and got[ids[2]]["article"] == emb.articles()[2]
    assert ids[3] not in got and "new-1" in got
    assert built.search(fresh[2], 1, mode="exact")[0].product_id == ids[1]
    assert built.lookup_article("999")[0].product_id == "new-1"
    # idempotent: the same change set again changes nothing and makes no version
    again = built.update(changes)
    assert not again.applied and again.version.version == "v000002"
    assert [v.version for v in built.versions()] == ["v000001", "v000002"]


def test_rollback_and_pruning(backend: str, make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings) -> None:
    index = make_index(backend, keep_versions=2)
    small = lambda lo, hi: [ProductBatch(emb.product_ids()[lo:hi], emb.vectors[lo:hi])]  # noqa: E731
    index.build(small(0, 300))
    index.build(small(0, 400))
    assert index.count() == 400
    report = index.rollback()
    assert (report.previous, report.current.version) == ("v000002", "v000001") and index.count() == 300
    assert index.current_version().version == "v000001"
    index.rollback(to="v000002")
    assert index.count() == 400
    report = index.build(small(0, 500))
    assert report.version.version == "v000003" and report.pruned == ["v000001"]
    assert [v.version for v in index.versions()] == ["v000002", "v000003"]
    with pytest.raises(NotFoundError, match="unknown index version 'v000001'"):
        index.rollback(to="v000001")
    with pytest.raises(InvalidArgumentError, match="already the serving version"):
        index.rollback(to="v000003")
    index.rollback()
    with pytest.raises(NotFoundError, match="nothing to roll back to"):
        index.rollback()
    assert index.count() == 400


def test_empty_index_says_build_first(
    backend: str, make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings
) -> None:
    index = make_index(backend)
    with pytest.raises(NotFoundError, match="build"):
        index.search(emb.queries[0])
    with pytest.raises(NotFoundError, match="build"):
        index.update(ChangeSet.create(deletes=["x"]))
    with pytest.raises(NotFoundError):
        index.rollback()
    assert index.versions() == [] and index.current_version() is None and index.stats().points == 0


@pytest.mark.parametrize(
    ("query", "kwargs", "needle"),
    [
        (np.zeros(300), {}, "expected vectors of 512 floats"),
        (np.full(512, np.nan), {}, "NaN"),
        (np.zeros(512), {}, "all-zero"),
        # float32, the serving path's own quick check
        (np.where(np.arange(512) == 400, np.nan, 1.0).astype(np.float32), {"mode": "hnsw"}, "NaN"),
        (np.where(np.arange(512) == 7, np.inf, 1.0).astype(np.float32), {}, "NaN or infinite"),
        (np.zeros(512, np.float32), {}, "all-zero"),
        (np.where(np.arange(512) < 128, 0.0, 1.0).astype(np.float32), {"mode": "hnsw"}, "first 128 dims.*all-zero"),
        (np.ones(128), {}, "expected vectors of 512 floats"),  # the online slice is for mode=hnsw only
        (np.ones(512), {"mode": "fuzzy"}, "unknown search mode"),
        (np.ones(512), {"k": 0}, "k must be"),
        (np.ones(512), {"ef": -1}, "ef must be"),
        (np.ones(512), {"rescore_limit": 0}, "rescore_limit must be"),
        (np.ones((2, 512)), {}, "one vector"),
        ([[1.0, 2.0], [3.0]], {}, "not a numeric array"),  # ragged lists
        ([np.ones(512, np.float32)], {"mode": "hnsw"}, "one vector"),
        ("not a vector", {}, "not|expected"),
    ],
)
def test_bad_queries_are_refused(built: VectorIndex, query: object, kwargs: dict, needle: str) -> None:
    with pytest.raises(InvalidArgumentError, match=needle):
        built.search(query, **kwargs)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # numpy says so on the way
def test_huge_but_finite_queries_are_searched_not_zeroed(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    # squares of 1e30 overflow float32: the vector is scaled down first, not divided by an infinite norm
    for query in (emb.vectors[5].astype(np.float32) * 1e30, np.stack([emb.vectors[5], emb.vectors[6]]) * 1e30):
        hits = built.search_batch(query, k=1, mode="exact")
        assert hits[0][0].product_id == emb.product_ids()[5] and hits[0][0].score == pytest.approx(1.0, abs=1e-2)


def test_bad_filters_and_articles_are_refused(built: VectorIndex) -> None:
    with pytest.raises(InvalidArgumentError, match="above price_max"):
        SearchFilter.of(price_min=10, price_max=5)
    with pytest.raises(InvalidArgumentError, match="price_min"):
        SearchFilter.of(price_min=float("nan"))
    with pytest.raises(InvalidArgumentError, match="category"):
        SearchFilter.of(category=[""])
    with pytest.raises(InvalidArgumentError, match="article"):
        built.lookup_article("  ")
    with pytest.raises(InvalidArgumentError, match="filter must be"):
        built.search(np.ones(512), filter={"category": "x"})  # type: ignore[arg-type]


def _state(index: VectorIndex, emb: SyntheticEmbeddings) -> tuple:
    return (
        [v.version for v in index.versions()],
        index.current_version().version,
        index.count(),
        [h.product_id for h in index.search(emb.queries[0], 5)],
    )


@pytest.mark.parametrize(
    ("make_batches", "needle"),
    [
        (lambda e: [ProductBatch(["a", "a"], e.vectors[:2])], "appears twice"),
        (lambda e: [ProductBatch(["a", "b"], e.vectors[:2, :300])], "expected vectors of 512"),
        (lambda e: [ProductBatch(["a", "b"], np.where(np.arange(512) == 3, np.nan, e.vectors[:2]))], "NaN"),
        (lambda e: [ProductBatch(["a", "b"], np.zeros((2, 512)))], "all-zero"),
        (lambda e: [ProductBatch(["a", ""], e.vectors[:2])], "product_id must be"),
        (lambda e: [ProductBatch(["a", "b"], e.vectors[:2], [{"price": -1}, {}])], "price must be"),
        (lambda e: [ProductBatch(["a", "b"], e.vectors[:2], [{"category": 3}, {}])], "category must be"),
        (lambda e: [ProductBatch(["a", "b"], e.vectors[:3])], "2 product ids but 3 vectors"),
        (lambda e: [], "nothing to index"),
    ],
)
def test_bad_build_input_leaves_the_index_as_it_was(
    built: VectorIndex, emb: SyntheticEmbeddings, make_batches: Callable, needle: str
) -> None:
    before = _state(built, emb)
    batches = make_batches(emb)
    if batches:  # the bad batch comes after a good one: the build is under way when it fails
        batches = [next(emb.batches(500)), *batches]
    with pytest.raises(DatasetError, match=needle):
        built.build(batches)
    assert _state(built, emb) == before


def test_bad_update_leaves_the_index_as_it_was(built: VectorIndex, emb: SyntheticEmbeddings) -> None:
    before = _state(built, emb)
    changes = ChangeSet.create(
        upserts=[{"product_id": "fine", "vector": emb.queries[0]}],
        payload_updates=[{"product_id": "missing-1", "payload": {"price": 1}}],
        deletes=[emb.product_ids()[0]],
    )
    with pytest.raises(NotFoundError, match="missing-1"):
        built.update(changes)
    assert _state(built, emb) == before
    wrong = ChangeSet.create(upserts=[{"product_id": "x", "vector": np.ones(256)}], full_dim=256)
    with pytest.raises(DatasetError, match="256 dims"):
        built.update(wrong)
    assert _state(built, emb) == before
    # the online slice of an upsert is all zeros: refused, nothing applied
    zero_head = np.concatenate([np.zeros(128), np.ones(384)]).astype(np.float32)
    with pytest.raises(DatasetError, match="all-zero"):
        built.update(
            ChangeSet.create(upserts=[{"product_id": "x", "vector": zero_head}], deletes=[emb.product_ids()[5]])
        )
    assert _state(built, emb) == before
