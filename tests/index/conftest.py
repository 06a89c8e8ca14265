"""Fixtures for the index tests: small clustered vectors and both backends.

The cluster backend runs on qdrant-client's local mode (``:memory:``), which is
exact and ignores payload indexes; the embedded backend runs Qdrant's engine for
real. Both get the same data, so the same assertions hold for both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from qdrant_client import QdrantClient

from visearch.config import IndexSettings, Settings
from visearch.index import VectorIndex, open_index
from visearch.index.synthetic import SyntheticEmbeddings, clustered_embeddings

_LOCAL_MODE_NOTES = (
    "ignore:Payload indexes have no effect in the local Qdrant:UserWarning",
    "ignore:Local mode performs exact:UserWarning",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            for note in _LOCAL_MODE_NOTES:
                item.add_marker(pytest.mark.filterwarnings(note))


@pytest.fixture(scope="session")
def emb() -> SyntheticEmbeddings:
    """2,000 products, 40 held-out queries (read-only)."""
    return clustered_embeddings(2000, seed=3, queries=40)


def edge_settings(root: Path, **index: Any) -> Settings:
    settings = Settings(data_dir=root)
    settings.index = settings.index.model_copy(update=index)
    return settings


@pytest.fixture
def make_index(tmp_path: Path) -> Iterator[Callable[..., VectorIndex]]:
    """``make_index(backend, **index_settings)``: a fresh empty index, closed after the test."""
    made: list[VectorIndex] = []

    def make(backend: str, **index: Any) -> VectorIndex:
        ix = _open(backend, tmp_path / f"{backend}{len(made)}", **index)
        made.append(ix)
        return ix

    yield make
    for ix in made:
        ix.close()


@pytest.fixture(scope="module", params=["edge", "cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _open(backend: str, root: Path, **index: Any) -> VectorIndex:
    if backend == "edge":
        return open_index(edge_settings(root, **index))
    return open_index(IndexSettings(backend="cluster", **index), client=QdrantClient(":memory:"))


@pytest.fixture(scope="session")
def open_backend() -> Callable[..., VectorIndex]:
    """``open_backend(backend, root, **index_settings)``: an empty index the test must close."""
    return _open


@pytest.fixture(scope="session")
def open_edge() -> Callable[..., VectorIndex]:
    """``open_edge(data_dir, **index_settings)``: the embedded index under ``data_dir/index``."""
    return lambda root, **index: open_index(edge_settings(root, **index))


@pytest.fixture(scope="module")
def built(backend: str, tmp_path_factory: pytest.TempPathFactory, emb: SyntheticEmbeddings) -> Iterator[VectorIndex]:
    """An index of ``emb`` (version v000001) on each backend, shared by a module's tests: do not change it."""
    index = _open(backend, tmp_path_factory.mktemp("built"))
    index.build(emb.batches(500), total=emb.n)
    yield index
    index.close()


@pytest.fixture
def fresh(backend: str, make_index: Callable[..., VectorIndex], emb: SyntheticEmbeddings) -> VectorIndex:
    """Like ``built`` but the test's own, to change."""
    index = make_index(backend)
    index.build(emb.batches(500), total=emb.n)
    return index
