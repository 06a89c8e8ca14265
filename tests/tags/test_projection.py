"""Tag projection: the closed-form layer, the orthogonal pair, the model file, the Qdrant tag index, fusion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from visearch.errors import ConflictError, DatasetError, InvalidArgumentError
from visearch.tags.crop_tags import CropTagger, Fusion, fused_scores, neighbour_votes, top_tags
from visearch.tags.index import TagIndex
from visearch.tags.projection import RidgeAccumulator, TagModel, TagProjector


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.normal(size=(n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_ridge_accumulated_batch_by_batch_equals_the_pair_matrix_solution() -> None:
    rng = np.random.default_rng(0)
    tags, images = _unit(rng, 6, 5), _unit(rng, 40, 3)
    labels = (rng.random((40, 6)) < 0.4).astype(np.float32)
    acc = RidgeAccumulator(tags, 3)
    for s in range(0, 40, 7):  # uneven batches
        acc.add(images[s : s + 7], labels[s : s + 7])
    w, b = acc.solve(ridge=0.5)
    # the same regression with every (photo, tag) pair as a row, built explicitly
    rows = [(np.append(tags[t], 1.0), images[i]) for i in range(40) for t in range(6) if labels[i, t]]
    x = np.stack([r[0] for r in rows]).astype(np.float64)
    y = np.stack([r[1] for r in rows]).astype(np.float64)
    expected = np.linalg.solve(x.T @ x + 0.5 * np.eye(6), x.T @ y)
    assert acc.pairs == int(labels.sum())
    np.testing.assert_allclose(w.numpy(), expected[:-1].T, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b.numpy(), expected[-1], rtol=1e-4, atol=1e-5)
    with pytest.raises(DatasetError):
        RidgeAccumulator(tags, 3).solve(1.0)


def test_orthogonal_init_is_q_and_its_transpose() -> None:
    torch.manual_seed(0)
    p = TagProjector(8, 16, 32, init="orthogonal")
    q = p.fc1.weight.detach()
    torch.testing.assert_close(p.fc2.weight.detach(), q.T)
    torch.testing.assert_close(q.T @ q, torch.eye(16), atol=1e-5, rtol=0)  # orthonormal columns
    assert float(p.fc1.bias.abs().sum()) == 0.0
    default = TagProjector(8, 16, 32, init="default")
    assert not torch.allclose(default.fc2.weight, default.fc1.weight.T)
    out = p(torch.randn(5, 8))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))
    with pytest.raises(InvalidArgumentError):
        TagProjector(8, 16, 32, init="xavier")  # type: ignore[arg-type]


def _model(rng: np.random.Generator, n: int = 12, d: int = 16) -> TagModel:
    tags = [{"text": f"tag{i}", "facet": "colour" if i % 2 else "category"} for i in range(n)]
    tags[3]["text"] = "красный"  # Cyrillic survives the file and the index payload
    return TagModel(tags, _unit(rng, n, d), {"logit_scale": 10.0, "logit_bias": -5.0, "embedder": "models:/e/1",
                                           "fusion": {"weight": 0.25, "temperature": 0.05, "neighbours": 3}})


def test_tag_model_round_trip_and_index_match_exact_search(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    model = _model(rng)
    projector = TagProjector(4, 16, 16)
    folder = model.save(tmp_path / "m", projector)
    back = TagModel.load(folder)
    assert back.tags == model.tags and back.meta["fusion"]["weight"] == 0.25
    np.testing.assert_array_equal(back.vectors, model.vectors)
    torch.testing.assert_close(back.projector(folder).fc1.weight, projector.fc1.weight)
    with pytest.raises(DatasetError, match="not a tag model"):
        TagModel.load(tmp_path)

    index = TagIndex(back, tmp_path / "tag-index", "models:/visearch-tagger/1")
    queries = _unit(rng, 4, 16)
    np.testing.assert_allclose(index.similarity(queries), queries @ model.vectors.T, atol=1e-5)
    found = index.search(queries, 3)
    assert [t.text for t in found[0]] == [t.text for t in back.top(queries, 3)[0]]
    assert any(t.text == "красный" for t in index.search(model.vectors[3:4], 1)[0])
    with pytest.raises(InvalidArgumentError):
        index.search(np.zeros((1, 5), np.float32), 3)
    index.close()
    again = TagIndex(back, tmp_path / "tag-index", "models:/visearch-tagger/1")  # opened, not rebuilt
    assert len(again) == 12 and not list((tmp_path / "tag-index").glob("*.partial*"))


def test_neighbour_votes_and_fusion() -> None:
    rng = np.random.default_rng(2)
    model = _model(rng)
    fusion = Fusion.from_meta(model.meta)
    neighbours = [[(0.9, ["tag0", "красный"]), (0.9, ["tag0"]), (0.1, ["tag1"]), (0.95, ["tag5"])], []]
    votes = neighbour_votes(neighbours, model.columns, len(model.tags), fusion)
    # only the 3 first neighbours count; equal similarities share equally, a far one gets almost nothing
    assert votes[0, 0] == pytest.approx(1.0, abs=1e-6)
    assert votes[0, 3] == pytest.approx(0.5, abs=1e-6)
    assert votes[0, 1] < 1e-6 and votes[0, 5] == 0.0
    assert not votes[1].any()
    sim = np.zeros((2, len(model.tags)), np.float32)
    scores = fused_scores(model, sim, votes, fusion)
    assert scores[0, 0] == pytest.approx(0.25 * model.probabilities(np.array(0.0)) + 0.75)
    assert top_tags(model, scores, 2)[0][0].text == "tag0"


def test_crop_tagger_refuses_another_embedders_space(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    model = _model(rng)
    tagger = CropTagger(model, TagIndex(model, tmp_path, "x"), "x")
    tagger.check_embedder("models:/e/1")
    with pytest.raises(ConflictError, match="space of models:/e/1"):
        tagger.check_embedder("models:/e/2")
    tags = tagger.tags(model.vectors[:2], None, 4)  # no neighbours: the projection alone
    assert [len(t) for t in tags] == [4, 4] and tags[0][0].text == "tag0"
