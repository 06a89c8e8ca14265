"""Detector-like crops, pair cleaning counts, retrieval metrics and the token cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from visearch.config import Settings
from visearch.embedding.backbone import Backbone
from visearch.embedding.data import clean_pairs, jitter_box, load_item, open_dataset
from visearch.embedding.evaluate import product_vectors, retrieval_metrics
from visearch.embedding.tokens import TokenCache
from visearch.errors import DatasetError


def test_jittered_boxes_stay_in_the_photo_and_near_the_truth():
    rng = np.random.default_rng(0)
    box = (40, 50, 140, 250)
    for _ in range(200):
        x1, y1, x2, y2 = jitter_box(box, 160, 260, 0.1, rng)
        assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 260
        assert abs(x1 - 40) <= 10 and abs(y2 - 250) <= 20
    assert jitter_box(box, 160, 260, 0.0, rng) == box


def test_shopper_crops_are_deterministic_and_cut_at_the_box(tiny_synth):
    ds = open_dataset(tiny_synth)
    a = ds.shopper_items("train", 2, 0.1, seed=3)
    assert a == ds.shopper_items("train", 2, 0.1, seed=3)
    assert a != ds.shopper_items("train", 2, 0.1, seed=4)
    assert len(a) == 2 * len(ds.scene_objects("train"))
    assert all(i.product in ds.split_products("train") for i in a)
    img = load_item(tiny_synth, a[0])
    x1, y1, x2, y2 = a[0].box
    assert img.size == (x2 - x1, y2 - y1)
    gallery = ds.gallery_items("test")
    assert {i.product for i in gallery} == set(ds.split_products("test"))


def test_not_a_data_set(tmp_path):
    with pytest.raises(DatasetError, match="no such data set folder"):
        open_dataset(tmp_path / "absent")
    with pytest.raises(DatasetError, match="WB-Synth"):
        open_dataset(tmp_path)


def _pairs(n: int, d: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.nn.functional.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)
    s = torch.nn.functional.normalize(g + 0.15 * torch.randn(n, d, generator=torch.Generator().manual_seed(seed + 1)), dim=-1)
    return g, s


def test_cleaning_counts_duplicates_and_outliers():
    g, s = _pairs(40)
    g = torch.cat([g, g[[3, 7, 11]]])  # three pairs repeated (same gallery, same crop)
    s = torch.cat([s, s[[3, 7, 11]] + 1e-4])
    unrelated = torch.nn.functional.normalize(torch.randn(2, 32, generator=torch.Generator().manual_seed(9)), dim=-1)
    s[[20, 30]] = -g[[20, 30]] * 0.5 + 0.5 * unrelated  # two crops that missed their product
    report = clean_pairs(g, s, dup_threshold=0.98, outlier_z=3.5)
    assert report.counts()["pairs"] == 43
    assert (report.near_duplicates, report.outliers) == (3, 2)
    assert report.counts()["kept"] == 38 and not report.capped
    assert not report.keep[[40, 41, 42, 20, 30]].any() and report.keep[[3, 7, 11]].all()


def test_cleaning_is_capped_when_the_embeddings_cannot_tell():
    g, s = _pairs(50)
    s[:20] = -s[:20]  # a backbone this confused would make 40 % of the pairs "outliers"
    report = clean_pairs(g, s, outlier_z=0.5, max_share=0.1)
    assert report.outliers == 5 and report.capped
    assert clean_pairs(g[:0], s[:0]).counts()["kept"] == 0


def test_retrieval_metrics_by_hand():
    scores = np.array([[0.9, 0.1, 0.2], [0.5, 0.4, 0.6], [0.3, 0.2, 0.1], [0.5, 0.5, 0.1]])
    truth = np.array([0, 2, 1, 1])  # ranks 1, 1, 2, 2 (the tie counts against the model)
    m = retrieval_metrics(scores, truth)
    assert m["recall@1"] == 0.5 and m["recall@5"] == 1.0
    assert m["map@10"] == pytest.approx((1 + 1 + 0.5 + 0.5) / 4, abs=1e-4)
    # best cut accepts the two confident correct answers only
    assert m["precision"] == 1.0 and m["f1"] == pytest.approx(2 * 0.5 / 1.5, abs=1e-4) and m["threshold"] == 0.6
    collapsed = retrieval_metrics(np.ones((3, 3)), np.array([0, 1, 2]))
    assert collapsed["recall@1"] == 0.0


def test_product_vectors_average_the_gallery():
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    p = product_vectors(v, ["a", "a", "b"], ["b", "a"])
    assert torch.allclose(p, torch.tensor([[1.0, 0.0], [2**-0.5, 2**-0.5]]), atol=1e-6)


def test_token_cache_is_reused_and_keyed_by_the_crops(pico_folder, tiny_synth, tmp_path, monkeypatch):
    settings = Settings(data_dir=tmp_path / "data")
    bb = Backbone.from_ref(str(pico_folder), settings)
    ds = open_dataset(tiny_synth)
    items = ds.shopper_items("test", 1, 0.1, seed=0)[:6]
    cache = TokenCache(tmp_path / "cache")
    first = cache.get(bb, ds, "crops", items, progress=False)
    assert not first.reused and first.tokens.shape == (6, 16, 64) and first.pooled.shape == (6, 64)
    direct, pooled = bb.encode_images([load_item(tiny_synth, i) for i in items])
    assert np.allclose(first.tokens, direct.numpy(), atol=2e-2) and np.allclose(first.pooled, pooled.numpy(), atol=1e-5)

    def no_backbone(*args, **kwargs):
        raise AssertionError("tokens were recomputed")

    monkeypatch.setattr(bb, "encode", no_backbone)
    again = cache.get(bb, ds, "crops", items, progress=False)
    assert again.reused and again.path == first.path and np.array_equal(again.tokens, first.tokens)
    monkeypatch.undo()
    other = cache.get(bb, ds, "crops", ds.shopper_items("test", 1, 0.2, seed=0)[:6], progress=False)
    assert not other.reused and other.path != first.path  # other jitter, other crops, other entry
    assert not list((tmp_path / "cache").rglob("*.partial"))
