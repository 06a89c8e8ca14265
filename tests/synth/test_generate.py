"""WB-Synth: determinism, ground truth, splits, and the data's own structure."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from visearch.config import SynthSettings
from visearch.errors import InvalidArgumentError
from visearch.synth import check_dataset, generate
from visearch.synth.catalog import sample_products
from visearch.synth.render import render_product
from visearch.synth.scenes import warp_sprite
from visearch.synth.sessions import ShopItem, act_chances, expected_gain, shopper_acts, simulate_sessions
from visearch.synth.vocab import CATEGORIES, COLOURS, MATERIALS, PATTERNS

SMALL = SynthSettings(gallery_size=96, scene_size=192, sessions_per_product=0.5)


def _table(root, name):
    return pq.read_table(root / name).to_pydict()


def test_vocabulary_is_rich_enough():
    assert len(CATEGORIES) >= 20 and len(COLOURS) >= 12 and len(PATTERNS) >= 6 and len(MATERIALS) >= 3


def test_tiny_set_is_valid(tiny_synth):
    assert check_dataset(tiny_synth) == []
    manifest = json.loads((tiny_synth / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["schema_version"] == 1
    assert manifest["counts"]["products"] == 30 and manifest["counts"]["scenes"] == 45
    assert sum(s["products"] for s in manifest["splits"].values()) == 30
    assert len(list((tiny_synth / "gallery").glob("*.jpg"))) == 30 * 3


def test_same_seed_same_bytes_any_worker_count(tmp_path):
    a = generate(tmp_path / "a", 12, seed=3, n_scenes=10, settings=SMALL.model_copy(update={"workers": 1}))
    b = generate(tmp_path / "b", 12, seed=3, n_scenes=10, settings=SMALL.model_copy(update={"workers": 2}))
    c = generate(tmp_path / "c", 12, seed=4, n_scenes=10, settings=SMALL.model_copy(update={"workers": 1}))
    assert a["files"] == b["files"]
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    assert a["files"] != c["files"]
    assert a["files"]["products.parquet"] != c["files"]["products.parquet"]


def test_boxes_inside_images_and_labels_agree(tiny_synth):
    scenes = _table(tiny_synth, "scenes.parquet")
    assert len(scenes["scene_id"]) >= 45  # every photo has at least one product
    for i, sid in enumerate(scenes["scene_id"]):
        with Image.open(tiny_synth / scenes["image"][i]) as img:
            assert img.size == (scenes["width"][i], scenes["height"][i])
        assert 0 <= scenes["x1"][i] < scenes["x2"][i] <= scenes["width"][i]
        assert 0 <= scenes["y1"][i] < scenes["y2"][i] <= scenes["height"][i]
        assert sid.startswith("sc")


def test_warped_product_fills_its_box():
    """The scene box is the warped sprite's frame: the product touches all four sides."""
    rng = np.random.default_rng(0)
    for p in sample_products(6, rng, label_fraction=0.5, variant_fraction=0.3, split_fractions=(0.7, 0.15, 0.15), gallery_per_product=1):
        warped = warp_sprite(render_product(p.look, 128), 0.7, rng.uniform(-30, 30), 0.08, rng)
        alpha = np.asarray(warped.image.getchannel("A")) > 127
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()
        if warped.label_quad is not None:
            h, w = alpha.shape
            assert (warped.label_quad >= -1).all() and (warped.label_quad[:, 0] <= w + 1).all() and (warped.label_quad[:, 1] <= h + 1).all()


def test_printed_articles_belong_to_their_product(tiny_synth):
    products = _table(tiny_synth, "products.parquet")
    by_id = {pid: i for i, pid in enumerate(products["product_id"])}
    scenes = _table(tiny_synth, "scenes.parquet")
    readable = 0
    for i, visible in enumerate(scenes["article_visible"]):
        p = by_id[scenes["product_id"][i]]
        if visible:
            readable += 1
            assert products["has_label"][p]
            assert scenes["article"][i] == products["article"][p]
        else:
            assert scenes["article"][i] is None
    assert readable > 0
    assert len(set(products["article"])) == len(products["article"])
    assert all(a.isdigit() and 6 <= len(a) <= 10 and a[0] != "0" for a in products["article"])


def test_splits_share_no_product(tiny_synth):
    products = _table(tiny_synth, "products.parquet")
    split_of = dict(zip(products["product_id"], products["split"], strict=True))
    model_splits = defaultdict(set)
    for m, s in zip(products["model_id"], products["split"], strict=True):
        model_splits[m].add(s)
    assert all(len(s) == 1 for s in model_splits.values()), "variants of one model must share a split"
    scenes = _table(tiny_synth, "scenes.parquet")
    for pid, split in zip(scenes["product_id"], scenes["split"], strict=True):
        assert split_of[pid] == split
    trip = _table(tiny_synth, "triplets.parquet")
    for a, b in zip(trip["anchor_product_id"], trip["target_product_id"], strict=True):
        assert split_of[a] == split_of[b]
    labels = {s: {p.stem for p in (tiny_synth / "scenes" / "labels" / s).glob("*.txt")} for s in ("train", "val", "test")}
    assert not (labels["train"] & labels["val"]) and not (labels["train"] & labels["test"])


def test_instance_level_products_differ_beyond_category_and_colour():
    rng = np.random.default_rng(1)
    products = sample_products(400, rng, label_fraction=0.4, variant_fraction=0.3, split_fractions=(0.7, 0.15, 0.15), gallery_per_product=3)
    groups = defaultdict(list)
    for p in products:
        groups[(p.look.category, p.look.colour, p.look.pattern)].append(p)
    crowded = [g for g in groups.values() if len(g) > 1]
    assert crowded, "400 products must repeat some category/colour/pattern"
    for g in crowded:
        looks = {replace(p.look, texture_seed=0, label_text=None) for p in g}
        assert len(looks) == len(g)


def test_variants_and_triplets(tiny_synth):
    products = _table(tiny_synth, "products.parquet")
    trip = _table(tiny_synth, "triplets.parquet")
    assert len(trip["text"]) > 0
    model = dict(zip(products["product_id"], products["model_id"], strict=True))
    colour = dict(zip(products["product_id"], products["colour"], strict=True))
    pattern = dict(zip(products["product_id"], products["pattern"], strict=True))
    for a, b, change in zip(trip["anchor_product_id"], trip["target_product_id"], trip["change"], strict=True):
        assert model[a] == model[b] and a != b
        assert (colour[a] != colour[b]) == (change == "colour")
        pattern_a, pattern_b = pattern[a], pattern[b]
        assert (pattern_a != pattern_b) == (change == "pattern")
    assert any(any("а" <= ch <= "я" for ch in t) for t in trip["text"]), "some refinement texts are Russian"


def test_card_texts_are_noisy_and_bilingual():
    rng = np.random.default_rng(2)
    products = sample_products(300, rng, label_fraction=0.4, variant_fraction=0.3, split_fractions=(0.7, 0.15, 0.15), gallery_per_product=3)
    langs = {p.lang for p in products}
    assert langs == {"ru", "en", "mixed"}
    titles = " ".join(p.title for p in products)
    assert any(w in titles for w in ("СУПЕР", "ХИТ ПРОДАЖ", "НОВИНКА", "WOW", "top", "must have"))
    assert all(p.price > 0 and 1 <= p.rating <= 5 and p.reviews_count >= 0 for p in products)


def test_sessions_follow_relevance():
    rng = np.random.default_rng(3)
    products = sample_products(300, rng, label_fraction=0.4, variant_fraction=0.3, split_fractions=(0.7, 0.15, 0.15), gallery_per_product=3)
    ev = simulate_sessions(products, 1500, 10, np.random.default_rng(4))
    rel = np.array(ev["relevance"])
    clicked = np.array(ev["clicked"])
    assert clicked[rel == 3].mean() > clicked[rel == 1].mean() > clicked[rel == 0].mean()
    added, ordered = np.array(ev["added_to_cart"]), np.array(ev["ordered"])
    assert not (added & ~clicked).any() and not (ordered & ~added).any()
    assert ordered.sum() > 0


def test_shoppers_act_by_the_chances_the_best_order_reads():
    item = ShopItem("p1", "m1", 0, CATEGORIES[0].base_price, 4.5, 120)
    click, cart, order = act_chances(2, item, 3)
    rng = np.random.default_rng(5)
    acts = np.array([shopper_acts(2, item, 3, rng) for _ in range(20_000)])
    assert abs(acts[:, 0].mean() - click) < 4 * np.sqrt(click * (1 - click) / len(acts))
    assert abs(acts[acts[:, 0], 1].mean() - cart) < 0.05
    gains = [expected_gain(rel, item, 10) for rel in (0, 1, 2, 3)]
    assert gains == sorted(gains) and gains[0] > 0, "more relevant, more expected gain"
    dearer = ShopItem("p2", "m1", 0, 2 * CATEGORIES[0].base_price, 4.5, 120)
    assert expected_gain(2, dearer, 10) < gains[2], "the same product, dearer, is bought less"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_products=0), "at least 1"),
        (dict(n_products=5, n_scenes=-1), "0 or more"),
        (dict(n_products=5, seed=-2), "non-negative"),
        (dict(n_products=5, seed="abc"), "non-negative integer"),
        (dict(n_products=5, seed=1.5), "non-negative integer"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(InvalidArgumentError, match=match):
        generate(tmp_path / "out", settings=SMALL, **kwargs)
    assert not (tmp_path / "out").exists()


def test_refuses_foreign_folder_and_replaces_own(tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.docx").write_text("keep me")
    with pytest.raises(InvalidArgumentError, match="not empty"):
        generate(foreign, 3, settings=SMALL)
    assert (foreign / "thesis.docx").read_text() == "keep me"
    own = tmp_path / "own"
    generate(own, 3, n_scenes=2, seed=1, settings=SMALL)
    generate(own, 4, n_scenes=2, seed=1, settings=SMALL)
    assert json.loads((own / "manifest.json").read_text())["counts"]["products"] == 4
    assert check_dataset(own) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no partial leftovers


def test_failure_leaves_no_partial_set(tmp_path, monkeypatch):
    import visearch.synth.dataset as gen

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(gen, "simulate_sessions", boom)
    with pytest.raises(RuntimeError):
        generate(tmp_path / "x", 3, n_scenes=2, settings=SMALL)
    assert list(tmp_path.iterdir()) == []
