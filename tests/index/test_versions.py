"""Versions on disk: a build killed half-way, the writer lock, a damaged pointer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from visearch.errors import DatasetError, VisearchError
from visearch.index import ChangeSet, VectorIndex
from visearch.index.edge import EdgeIndex
from visearch.index.synthetic import SyntheticEmbeddings

REPO = Path(__file__).resolve().parents[2]

# builds 3,000 products, but stops for good after the third batch of 500 was written
HALF_WAY = """
import pathlib, sys, time
from visearch.config import Settings
from visearch.index import open_index
from visearch.index.synthetic import clustered_embeddings

root, marker = sys.argv[1], pathlib.Path(sys.argv[2])
emb = clustered_embeddings(3000, seed=5, queries=0)

def batches():
    for i, batch in enumerate(emb.batches(500)):
        if i == 3:
            marker.write_text("half way")
            time.sleep(600)
        yield batch

open_index(Settings(data_dir=root)).build(batches(), total=emb.n)
"""


def test_a_build_killed_half_way_leaves_the_serving_version(
    tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex]
) -> None:
    root = tmp_path / "data"
    index = open_edge(root)
    index.build(emb.batches(500), total=emb.n)
    before = [h.product_id for h in index.search(emb.queries[0], 10)]
    index.close()

    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", HALF_WAY, str(root), str(marker)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
        assert time.monotonic() < deadline, "the child build never got half way"
        time.sleep(0.1)
    staged = root / "index" / ".staging" / "v000002"
    assert (staged / "shard").is_dir()  # it really was writing
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    # the serving version is untouched and still answers the same
    index = open_edge(root)
    assert [v.version for v in index.versions()] == ["v000001"]
    assert index.current_version().version == "v000001"
    assert [h.product_id for h in index.search(emb.queries[0], 10)] == before
    assert staged.is_dir()  # the leftovers stay until the next writer
    # the next build cleans them up (and the dead child's lock is gone)
    report = index.build(emb.batches(1000), total=emb.n)
    assert report.cleaned == ["v000002"] and report.version.version == "v000002"
    assert not any((root / "index" / ".staging").iterdir())
    assert [h.product_id for h in index.search(emb.queries[0], 10)] == before
    index.close()


def test_one_writer_at_a_time(tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex]) -> None:
    index = open_edge(tmp_path)
    assert isinstance(index, EdgeIndex)
    with index.store.lock():
        with pytest.raises(VisearchError, match="another index build, update or rollback is running"):
            index.build(emb.batches(500))
        with pytest.raises(VisearchError, match="another"):
            index.rollback()
    assert index.versions() == []
    index.build(emb.batches(1000))
    assert index.count() == emb.n
    index.close()


def test_update_cleans_leftovers_and_other_processes_follow_the_switch(
    tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex]
) -> None:
    writer = open_edge(tmp_path)
    writer.build(emb.batches(1000))
    reader = open_edge(tmp_path)
    assert reader.count() == emb.n
    (tmp_path / "index" / ".staging" / "v000009").mkdir(parents=True)
    report = writer.update(ChangeSet.create(deletes=emb.product_ids()[:10]))
    assert report.cleaned == ["v000009"]
    # the reader serves what it opened until it refreshes
    assert reader.count() == emb.n
    assert reader.refresh() is True and reader.count() == emb.n - 10
    assert reader.refresh() is False
    writer.rollback()
    assert reader.refresh() is True and reader.count() == emb.n
    writer.close()
    reader.close()


def test_a_damaged_pointer_is_named(
    tmp_path: Path, emb: SyntheticEmbeddings, open_edge: Callable[..., VectorIndex]
) -> None:
    index = open_edge(tmp_path)
    index.build(emb.batches(1000))
    index.close()
    pointer = tmp_path / "index" / "CURRENT"
    pointer.write_text("{garbage")
    with pytest.raises(DatasetError, match="CURRENT is damaged"):
        open_edge(tmp_path).search(np.ones(512))
    pointer.write_text('{"version": "v000007"}')
    with pytest.raises(DatasetError, match="not a complete version"):
        open_edge(tmp_path).count()
