"""Input files: vectors (Parquet, npz), catalogs, change sets (JSON, Parquet); each bad one named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.index import ChangeSet, load_changeset, read_products
from visearch.index.validation import clean_payload


def vectors_parquet(path: Path, ids: list[str], vecs: list | np.ndarray, list_type: pa.DataType | None = None) -> Path:
    vec = pa.array([None if v is None else list(v) for v in vecs], list_type or pa.list_(pa.float32()))
    pq.write_table(pa.table({"product_id": pa.array(ids, pa.string()), "vector": vec}), path)
    return path


def catalog_parquet(path: Path, rows: dict) -> Path:
    pq.write_table(pa.table(rows), path)
    return path


# ---------------------------------------------------------------- vectors + catalog
def test_parquet_and_npz_read_alike(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((10, 512)).astype(np.float32)
    ids = [f"p{i}" for i in range(10)]
    pq_path = vectors_parquet(tmp_path / "v.parquet", ids, vecs, pa.list_(pa.float64(), 512))
    np.savez(tmp_path / "v.npz", product_id=np.array(ids), vector=vecs)
    cat = catalog_parquet(
        tmp_path / "products.parquet",
        {
            "product_id": ids[::-1],
            "article": list(range(100, 110)),
            "category": ["c"] * 10,
            "price": [1.5] * 10,
            "title": ["t"] * 10,
        },
    )
    for path in (pq_path, tmp_path / "v.npz"):
        src = read_products(path, cat, batch_size=4)
        assert len(src) == 10
        batches = list(src)
        assert [len(b) for b in batches] == [4, 4, 2]
        np.testing.assert_allclose(np.concatenate([b.vectors for b in batches]), vecs, rtol=1e-6)
        first = batches[0].payloads[0]
        assert first["product_id"] == "p0" and first["article"] == 109 and first["title"] == "t"
    # the integer article becomes its digits when indexed
    assert clean_payload(first, "p0", where="x")["article"] == "109"


@pytest.mark.parametrize(
    ("make", "error", "needle"),
    [
        (lambda d: d / "missing.parquet", NotFoundError, "does not exist"),
        (lambda d: (d / "v.csv").write_text("x") and d / "v.csv", InvalidArgumentError, ".parquet or .npz"),
        (
            lambda d: (d / "v.parquet").write_text("not parquet") and d / "v.parquet",
            DatasetError,
            "not a readable Parquet",
        ),
        (
            lambda d: catalog_parquet(d / "v.parquet", {"id": ["a"], "vector": [[1.0] * 512]}),
            DatasetError,
            "product_id and vector",
        ),
        (
            lambda d: vectors_parquet(d / "v.parquet", ["a", "b"], [[1.0] * 512, [1.0] * 500]),
            DatasetError,
            r"'b'\) has a vector of 500",
        ),
        (
            lambda d: vectors_parquet(d / "v.parquet", ["a", "b"], [[1.0] * 512, None]),
            DatasetError,
            "'b'\\) has no vector",
        ),
        (
            lambda d: catalog_parquet(d / "v.parquet", {"product_id": ["a"], "vector": ["x"]}),
            DatasetError,
            "list of floats",
        ),
        (
            lambda d: np.savez(d / "v.npz", product_id=np.array(["a"]), vector=np.ones((1, 3))) or d / "v.npz",
            DatasetError,
            r"\(n, 512\)",
        ),
        (
            lambda d: (
                np.savez(d / "v.npz", product_id=np.array(["a", 1], dtype=object), vector=np.ones((2, 512)))
                or d / "v.npz"
            ),
            DatasetError,
            "dtype=str",
        ),
        (
            lambda d: np.savez(d / "v.npz", ids=np.array(["a"])) or d / "v.npz",
            DatasetError,
            "needs arrays product_id and vector",
        ),
    ],
)
def test_bad_vector_files(tmp_path: Path, make, error: type, needle: str) -> None:
    with pytest.raises(error, match=needle):
        list(read_products(make(tmp_path)))


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ({"id": ["a"]}, "needs a product_id column"),
        ({"product_id": ["a", "a"]}, "appears twice"),
        ({"product_id": ["a"], "category": [3]}, "'category' has type int64"),
        ({"product_id": ["a"], "price": ["cheap"]}, "'price' has type string"),
        ({"product_id": ["a"], "article": [1.5]}, "'article' has type double"),
        ({"product_id": ["zzz"]}, "no catalog row for 'a'"),
    ],
)
def test_bad_catalogs(tmp_path: Path, rows: dict, needle: str) -> None:
    vec = vectors_parquet(tmp_path / "v.parquet", ["a"], [[1.0] * 512])
    cat = catalog_parquet(tmp_path / "c.parquet", rows)
    with pytest.raises(DatasetError, match=needle):
        list(read_products(vec, cat))


# ---------------------------------------------------------------- change sets
def _changes() -> ChangeSet:
    v = np.linspace(-1, 1, 512, dtype=np.float32)
    return ChangeSet.create(
        upserts=[
            {"product_id": "a", "vector": v, "payload": {"category": "dress", "price": 10, "article": 123}},
            {"product_id": "b", "vector": v[::-1].copy()},
        ],
        payload_updates=[{"product_id": "c", "payload": {"price": 9.5, "rating": 4.5}}],
        deletes=["d"],
        source="t",
    )


@pytest.mark.parametrize("suffix", [".json", ".parquet"])
def test_changesets_round_trip(tmp_path: Path, suffix: str) -> None:
    cs = _changes()
    back = load_changeset(cs.save(tmp_path / f"c{suffix}"))
    assert back.digest == cs.digest and len(back) == 4 and not back.is_empty
    assert back.upsert_payloads == [{"category": "dress", "price": 10.0, "article": "123", "product_id": "a"}, None]
    assert back.payload_sets == [{"price": 9.5, "rating": 4.5}] and back.delete_ids == ["d"]
    np.testing.assert_array_equal(back.upsert_vectors, cs.upsert_vectors)


def test_digest_ignores_order() -> None:
    a = ChangeSet.create(deletes=["x", "y"])
    b = ChangeSet.create(deletes=["y", "x"])
    assert a.digest == b.digest != ChangeSet.create(deletes=["x"]).digest
    assert ChangeSet.create().is_empty


def _json(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "c.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


V = [0.1] * 512
F = "visearch-changeset/1"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "expected a JSON object"),
        ({"upsert": []}, '"format" must be'),
        ({"format": F, "upserts": []}, "unknown keys upserts"),
        ({"format": F, "upsert": {}}, '"upsert" must be a list'),
        ({"format": F, "upsert": [{"product_id": "a"}]}, r"upsert\[0\]: missing vector"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": V, "colour": "red"}]}, "unknown keys colour"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": [0.1] * 511}]}, "expected vectors of 512"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": [None] * 512}]}, "expected numbers|NaN"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": [0.0] * 512}]}, "all-zero"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": ["x"] * 512}]}, "expected numbers"),
        ({"format": F, "upsert": [{"product_id": 5, "vector": V}]}, "product_id must be a non-empty string"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": V, "payload": [1]}]}, "payload must be an object"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": V, "payload": {"price": "free"}}]}, "price must be"),
        ({"format": F, "upsert": [{"product_id": "a", "vector": V, "payload": {"product_id": "b"}}]}, "differs"),
        ({"format": F, "set_payload": [{"product_id": "a", "payload": {}}]}, "at least one field"),
        ({"format": F, "set_payload": [{"product_id": "a", "payload": {"category": ""}}]}, "category must be"),
        (
            {"format": F, "delete": ["a"], "set_payload": [{"product_id": "a", "payload": {"price": 1}}]},
            "already appears",
        ),
        ({"format": F, "delete": ["a", "a"]}, "already appears"),
        ({"format": F, "delete": "a"}, '"delete" must be a list'),
    ],
)
def test_bad_json_changesets(tmp_path: Path, doc: object, needle: str) -> None:
    with pytest.raises(DatasetError, match=needle):
        load_changeset(_json(tmp_path, doc))


def test_nan_in_a_json_changeset(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{{"format": "{}", "upsert": [{{"product_id": "a", "vector": [NaN{}]}}]}}'.format(F, ", 0.1" * 511))
    with pytest.raises(DatasetError, match="NaN"):
        load_changeset(path)


@pytest.mark.parametrize(
    ("rows", "needle"),
    [
        ({"op": ["upsert"], "product_id": ["a"], "vector": pa.array([None], pa.list_(pa.float32()))}, "needs a vector"),
        ({"op": ["remove"], "product_id": ["a"]}, "op must be one of"),
        ({"op": ["set_payload"], "product_id": ["a"], "payload": ["{bad"]}, "payload is not a JSON object"),
        ({"op": ["set_payload"], "product_id": ["a"]}, "needs a payload"),
        (
            {"op": ["set_payload"], "product_id": ["a"], "vector": [[0.1] * 512], "payload": ['{"price": 1}']},
            "must not carry a vector",
        ),
        ({"op": ["delete"], "product_id": ["a"], "payload": ['{"price": 1}']}, "carries only a product_id"),
        ({"product_id": ["a"]}, "needs columns op, product_id"),
        ({"op": ["delete"], "product_id": ["a"], "extra": [1]}, "unknown columns"),
    ],
)
def test_bad_parquet_changesets(tmp_path: Path, rows: dict, needle: str) -> None:
    path = catalog_parquet(tmp_path / "c.parquet", rows)
    with pytest.raises(DatasetError, match=needle):
        load_changeset(path)


def test_changeset_files_that_are_not_there_or_not_changesets(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        load_changeset(tmp_path / "nope.json")
    (tmp_path / "c.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match=".json or .parquet"):
        load_changeset(tmp_path / "c.txt")
    (tmp_path / "c.parquet").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a readable Parquet"):
        load_changeset(tmp_path / "c.parquet")
    (tmp_path / "c.json").write_bytes(b"\xff\xfe")
    with pytest.raises(DatasetError, match="not UTF-8"):
        load_changeset(tmp_path / "c.json")
