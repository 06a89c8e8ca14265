"""``visearch index ...`` and ``visearch eval index`` as users run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from visearch.cli import app
from visearch.index import ChangeSet

runner = CliRunner()


def invoke(data_dir: Path, *args: str):
    return runner.invoke(app, list(args), env={"VISEARCH_DATA_DIR": str(data_dir)})


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "visearch", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "VISEARCH_DATA_DIR": str(data_dir)},
    )


def test_lifecycle_on_a_wb_synth_catalog(tmp_path: Path, tiny_synth: Path) -> None:
    catalog = pq.read_table(tiny_synth / "products.parquet")
    ids = catalog.column("product_id").to_pylist()
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((len(ids), 512)).astype(np.float32)
    pq.write_table(
        pa.table({"product_id": ids, "vector": pa.array(list(vecs), pa.list_(pa.float32()))}),
        tmp_path / "vectors.parquet",
    )
    data = tmp_path / "data"

    r = invoke(
        data,
        "index",
        "build",
        "--vectors",
        str(tmp_path / "vectors.parquet"),
        "--catalog",
        str(tiny_synth / "products.parquet"),
        "-q",
    )
    assert r.exit_code == 0, r.output
    assert "serving v000001" in r.output and f"{len(ids)} products" in r.output

    r = invoke(data, "index", "stats", "--json")
    stats = json.loads(r.stdout)
    assert stats["current"] == "v000001" and stats["points"] == len(ids)
    assert stats["memory_bytes_per_product"] > 0 and stats["disk_bytes_per_product"] > stats["memory_bytes_per_product"]
    r = invoke(data, "index", "stats")
    assert r.exit_code == 0 and "hnsw graph" in r.output and "v000001" in r.output

    # the payload is the catalog row: price/rating change without a vector
    price = catalog.column("price").to_pylist()[0]
    changes = ChangeSet.create(
        payload_updates=[{"product_id": ids[0], "payload": {"price": price + 1, "rating": 1.0}}], deletes=[ids[1]]
    )
    changes.save(tmp_path / "changes.json")
    r = invoke(data, "index", "update", "--changes", str(tmp_path / "changes.json"), "--json", "-q")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert (
        report["applied"] and report["version"] == "v000002" and report["payload_only"] == 1 and report["deleted"] == 1
    )
    r = invoke(data, "index", "update", "--changes", str(tmp_path / "changes.json"), "-q")
    assert "nothing to do" in r.output

    from visearch.config import Settings
    from visearch.index import open_index

    with open_index(Settings(data_dir=data)) as index:
        got = index.get([ids[0]])[ids[0]]
        assert got["price"] == price + 1 and got["title"] == catalog.column("title").to_pylist()[0]
        assert index.lookup_article(got["article"])[0].product_id == ids[0]

    r = invoke(data, "index", "rollback")
    assert r.exit_code == 0 and "serving v000001" in r.output and "was v000002" in r.output
    assert json.loads(invoke(data, "index", "stats", "--json").stdout)["points"] == len(ids)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("index", "rollback"), "no index version serves"),
        (("index", "build", "--vectors", "nope.parquet"), "vectors file nope.parquet does not exist"),
        (("index", "update", "--changes", "bad.json"), "not valid JSON"),
        (("index", "rollback", "--to", "v000042"), "no index version serves"),
        (("eval", "index", "--dim", "100"), "--dim must be 64, 128, 256 or 512"),
        (("eval", "index", "--from-index", "--workers", "1"), "no index built"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], needle: str
) -> None:
    from visearch.cli import main

    (tmp_path / "bad.json").write_text("{oops")
    monkeypatch.setenv("VISEARCH_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    assert exit_.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("visearch: error:") and needle in lines[0], lines


def test_an_error_as_the_user_sees_it(tmp_path: Path) -> None:
    r = run(tmp_path / "data", "index", "update", "--changes", str(tmp_path / "missing.json"))
    assert r.returncode == 1 and r.stderr.strip() == f"visearch: error: change set {tmp_path / 'missing.json'} does not exist"
    assert r.stdout == ""


def test_eval_index_json(tmp_path: Path) -> None:
    r = invoke(tmp_path, "eval", "index", "--n", "2000", "--queries", "40", "--workers", "2", "--json", "-q")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["n"] == 2000 and report["source"] == "synthetic" and report["online_dim"] == 128
    assert set(report["modes"]) == {"hnsw", "two_stage", "article"}
    for mode in report["modes"].values():
        assert mode["recall@10"] >= 0.95 and mode["qps_1"] > 0 and mode["qps_all"] > 0
    assert report["modes"]["article"]["recall@10"] == 1.0
    assert 0 < report["bytes_per_product"] < report["disk_bytes_per_product"]
    assert report["rss_bytes_per_product"] > 0
    r = invoke(tmp_path, "eval", "index", "--n", "1000", "--dim", "256", "--queries", "10", "--workers", "1")
    assert r.exit_code == 0 and "two_stage" in r.output and "256-d HNSW" in r.output


def test_eval_from_a_built_index(tmp_path: Path) -> None:
    from visearch.index.synthetic import clustered_embeddings

    emb = clustered_embeddings(1500, seed=9, queries=0)
    np.savez(tmp_path / "v.npz", product_id=np.array(emb.product_ids()), vector=emb.vectors)
    assert invoke(tmp_path, "index", "build", "--vectors", str(tmp_path / "v.npz"), "-q").exit_code == 0
    r = invoke(tmp_path, "eval", "index", "--from-index", "--queries", "40", "--workers", "1", "--json", "-q")
    assert r.exit_code == 0, r.output
    report = json.loads(r.stdout)
    assert report["source"] == "index v000001" and report["n"] == 1500
    assert report["modes"]["hnsw"]["recall@10"] >= 0.95 and report["modes"]["two_stage"]["recall@10"] >= 0.95
    # no catalog, no articles: the article mode has nothing to look up
    assert report["modes"]["article"] == {"recall@10": None, "qps_1": None, "qps_all": None}
    r = invoke(tmp_path, "eval", "index", "--from-index", "--queries", "20", "--workers", "1", "-q")
    assert r.exit_code == 0 and "article" in r.output
