"""Screenshot-style queries in WB-Synth: held-out products only, true boxes, kinds, determinism,
sets made before them still read, and the pipeline evaluation reports them apart."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from visearch.config import SynthSettings
from visearch.errors import InvalidArgumentError
from visearch.synth import check_dataset, generate
from visearch.synth.dataset import file_hashes, scene_kinds
from visearch.synth.preview import screenshot_sheet
from visearch.synth.render import Sprite
from visearch.synth.screenshots import LAYOUTS, Listing, screenshot

SMALL = SynthSettings(gallery_size=96, scene_size=192, sessions_per_product=0.5, workers=1)
DIFF = 60  # summed RGB difference that marks a pixel as the product's


def _table(root: Path) -> dict[str, list]:
    return pq.read_table(root / "scenes.parquet").to_pydict()


def _photos(scenes: dict[str, list]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = defaultdict(list)
    for i, sid in enumerate(scenes["scene_id"]):
        rows[sid].append(i)
    return rows


# --- the data set --------------------------------------------------------------------


def test_screenshots_only_of_held_out_products(tiny_synth):
    products = pq.read_table(tiny_synth / "products.parquet").to_pydict()
    split_of = dict(zip(products["product_id"], products["split"], strict=True))
    scenes = _table(tiny_synth)
    kinds = scene_kinds(scenes)
    shown = set()
    for sid, rows in _photos(scenes).items():
        kind = kinds[rows[0]]
        assert {kinds[i] for i in rows} == {kind}
        assert kind == ("screenshot" if sid.startswith("scr") else "shopper")
        if kind == "screenshot":
            assert scenes["split"][rows[0]] in ("val", "test")
            assert all(split_of[scenes["product_id"][i]] == scenes["split"][i] for i in rows)
            shown.add(scenes["product_id"][rows[0]])  # the product the page is about comes first
    held_out = {p for p, s in split_of.items() if s in ("val", "test")}
    assert shown == held_out, "one screenshot per held-out product by default"
    assert not list((tiny_synth / "scenes" / "images" / "train").glob("scr*.jpg"))
    assert not list((tiny_synth / "scenes" / "labels" / "train").glob("scr*.txt"))
    for split in ("val", "test"):
        assert list((tiny_synth / "scenes" / "labels" / split).glob("scr*.txt")), "screenshots are detector eval images too"
    manifest = json.loads((tiny_synth / "manifest.json").read_text())
    assert manifest["params"]["screenshots_per_product"] == 1.0
    assert manifest["counts"]["screenshots"] == len(held_out) == sum(s["screenshots"] for s in manifest["splits"].values())
    assert manifest["splits"]["train"]["screenshots"] == 0
    assert "scenes/images/train" in (tiny_synth / "data.yaml").read_text()


def test_screenshot_boxes_and_labels(tiny_synth):
    scenes = _table(tiny_synth)
    kinds = scene_kinds(scenes)
    size = json.loads((tiny_synth / "manifest.json").read_text())["params"]["scene_size"]
    n = 0
    for sid, rows in _photos(scenes).items():
        if kinds[rows[0]] != "screenshot":
            continue
        n += 1
        i = rows[0]
        with Image.open(tiny_synth / scenes["image"][i]) as img:
            assert img.size == (scenes["width"][i], scenes["height"][i])
            assert img.height == size and img.width < img.height, "portrait, the long side of shopper photos"
            arr = np.asarray(img.convert("RGB"), np.float32)
        label = tiny_synth / "scenes" / "labels" / scenes["split"][i] / f"{sid}.txt"
        assert len(label.read_text().splitlines()) == len(rows)
        for r in rows:
            x1, y1, x2, y2 = (scenes[k][r] for k in ("x1", "y1", "x2", "y2"))
            assert 0 <= x1 < x2 <= img.width and 0 <= y1 < y2 <= img.height
            assert 0 < scenes["visible"][r] <= 1
            assert arr[y1:y2, x1:x2].std(axis=(0, 1)).max() > 10, "the box holds a product, not a flat background"
    assert n >= 4
    assert check_dataset(tiny_synth) == []


def _disc(colour: tuple[int, int, int], side: int = 96) -> Sprite:
    yy, xx = np.mgrid[0:side, 0:side]
    mask = (xx - side / 2) ** 2 + (yy - side / 2) ** 2 < (side * 0.45) ** 2
    rgba = np.zeros((side, side, 4), np.uint8)
    rgba[mask] = (*colour, 255)
    return Sprite(rgba, None)


def _listing(pid: str, colour: tuple[int, int, int]) -> Listing:
    return Listing(pid, 3, _disc(colour), None, "Платье летнее синее в горошек 🔥 хит продаж", 2499.0, 4.6, 1234,
                   "Лёгкое платье на каждый день. Размеры смотрите в таблице.")


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


@pytest.mark.parametrize("which", ["main", "peek"])
def test_box_is_where_the_product_is(which):
    """Render each screenshot twice with one product recoloured: the pixels that change are that
    product, so they must lie in its box, and (when it is fully in view) span it."""
    layouts, peeks = set(), 0
    for seed in range(36):
        images, objects = [], None
        for colour in ((230, 30, 200), (30, 200, 60)):
            main = _listing("p-main", colour if which == "main" else (40, 90, 220))
            peek = _listing("p-peek", colour if which == "peek" else (40, 90, 220))
            img, objects, quality, layout = screenshot(main, peek, 256, np.random.default_rng([5, seed]))
            images.append(np.asarray(img, np.int32))
        layouts.add(layout)
        assert 1 <= quality <= 100 and images[0].shape[0] == 256
        assert objects[0].product_id == "p-main" and 0 < objects[0].visible <= 1
        mine = [o for o in objects if o.product_id == f"p-{which}"]
        changed = np.abs(images[0] - images[1]).sum(axis=2) > DIFF
        if not mine:
            assert which == "peek" and changed.sum() == 0, f"seed {seed}: an unlabelled product is in view"
            continue
        peeks += which == "peek"
        (obj,) = mine
        tol = 6 if layout == "screen" else 1  # a photographed screen is blurred and JPEG-compressed
        got = _bbox(changed)
        x1, y1, x2, y2 = obj.box
        assert x1 - tol <= got[0] and y1 - tol <= got[1] and got[2] <= x2 + tol and got[3] <= y2 + tol, (seed, layout, got, obj.box)
        if obj.visible == 1.0:
            assert abs(got[0] - x1) <= tol and abs(got[1] - y1) <= tol and abs(got[2] - x2) <= tol and abs(got[3] - y2) <= tol
    assert layouts == set(LAYOUTS)
    if which == "peek":
        assert peeks >= 5, "a second product peeks into some pages"


def test_peeking_product_is_cut_and_counted():
    cut = 0
    for seed in range(40):
        img, objects, _, layout = screenshot(_listing("a", (200, 40, 40)), _listing("b", (40, 40, 200)), 256,
                                             np.random.default_rng([6, seed]))
        for o in objects[1:]:
            assert o.product_id == "b" and 0 < o.visible < 1
            touches = o.box[0] == 0 or o.box[1] == 0 or o.box[2] == img.width or o.box[3] == img.height
            cut += touches or layout == "screen"
    assert cut >= 5


def test_same_seed_same_bytes_and_shopper_photos_untouched(tmp_path):
    a = generate(tmp_path / "a", 16, seed=5, n_scenes=8, settings=SMALL)
    b = generate(tmp_path / "b", 16, seed=5, n_scenes=8, settings=SMALL.model_copy(update={"workers": 2}))
    none = generate(tmp_path / "none", 16, seed=5, n_scenes=8, settings=SMALL, screenshots_per_product=0)
    assert a["files"] == b["files"] and a["counts"]["screenshots"] > 0
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    # screenshots only add files: every other output of the seed is byte for byte what it was without them
    added = {k for k in a["files"] if k not in none["files"]}
    assert added and all(Path(k).stem.startswith("scr") for k in added)
    assert {k for k, v in none["files"].items() if a["files"][k] != v} == {"scenes.parquet"}
    with_shots, without = _table(tmp_path / "a"), _table(tmp_path / "none")
    n = len(without["scene_id"])
    assert {k: v[:n] for k, v in with_shots.items() if k != "kind"} == {k: v for k, v in without.items() if k != "kind"}
    assert set(with_shots["kind"][:n]) == {"shopper"} and set(with_shots["kind"][n:]) == {"screenshot"}
    assert none["counts"]["screenshots"] == 0
    twice = generate(tmp_path / "c", 16, seed=5, n_scenes=8, settings=SMALL, screenshots_per_product=4.0)
    pooled = generate(tmp_path / "d", 16, seed=5, n_scenes=8, settings=SMALL.model_copy(update={"workers": 2}),
                      screenshots_per_product=4.0)
    assert twice["counts"]["screenshots"] == 4 * a["counts"]["screenshots"] >= 8  # enough to go through the pool
    assert twice["files"] == pooled["files"]


def test_train_screenshots_add_to_a_set_and_change_no_held_out_one(tmp_path):
    plain = generate(tmp_path / "plain", 24, seed=5, n_scenes=6, settings=SMALL)
    more = generate(tmp_path / "more", 24, seed=5, n_scenes=6, settings=SMALL, train_screenshots=0.5)
    assert "train_screenshots" not in plain["params"] and more["params"]["train_screenshots"] == 0.5
    assert more["splits"]["train"]["screenshots"] == round(0.5 * more["splits"]["train"]["products"]) > 0
    assert {k: v for k, v in more["files"].items() if "/train/" not in k and not k.endswith(".parquet") and k != "preview.png"} == \
           {k: v for k, v in plain["files"].items() if "/train/" not in k and not k.endswith(".parquet") and k != "preview.png"}, \
           "held-out photos and the gallery are byte-identical"
    assert check_dataset(tmp_path / "more") == []
    t = _table(tmp_path / "more")
    train_shots = {sid for sid, sp, k in zip(t["scene_id"], t["split"], t["kind"], strict=True) if sp == "train" and k == "screenshot"}
    assert len(train_shots) == more["splits"]["train"]["screenshots"]
    assert list((tmp_path / "more" / "scenes" / "labels" / "train").glob("scr*.txt")), "the detector learns from them"


def test_bad_screenshot_count(tmp_path):
    with pytest.raises(InvalidArgumentError, match="screenshots per held-out product"):
        generate(tmp_path / "x", 5, settings=SMALL, screenshots_per_product=-1)
    assert not (tmp_path / "x").exists()


def test_preview_shows_screenshots(tmp_path):
    root = tmp_path / "p"
    generate(root, 16, seed=2, n_scenes=8, settings=SMALL, preview=True)
    assert check_dataset(root) == []
    with Image.open(root / "preview.png") as sheet:
        assert sheet.width > 0
    sheet = screenshot_sheet(root, _table(root), n=4, cols=2)
    assert sheet.size[0] == 2 * 192


# --- sets made before screenshots ---------------------------------------------------


def _old_format(src: Path, dst: Path) -> Path:
    """A copy of ``src`` as a set made before screenshots: no screenshots, no ``kind`` column."""
    shutil.copytree(src, dst)
    table = pq.read_table(dst / "scenes.parquet")
    keep = [k != "screenshot" for k in table.column("kind").to_pylist()]
    pq.write_table(table.filter(pa.array(keep)).drop(["kind"]), dst / "scenes.parquet", compression="zstd")
    for path in [*dst.glob("scenes/*/*/scr*")]:
        path.unlink()
    manifest = json.loads((dst / "manifest.json").read_text())
    del manifest["counts"]["screenshots"], manifest["counts"]["screenshot_objects"], manifest["params"]["screenshots_per_product"]
    for split in manifest["splits"].values():
        del split["screenshots"]
    manifest["files"] = file_hashes(dst)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_set_without_kind_reads_as_shopper_photos(tiny_synth, tmp_path):
    old = _old_format(tiny_synth, tmp_path / "old")
    scenes = _table(old)
    assert "kind" not in scenes
    assert set(scene_kinds(scenes)) == {"shopper"}
    assert check_dataset(old) == []
    from visearch.pipeline_eval import held_out_photos as eval_photos

    photos = eval_photos(old, "test", None)
    assert photos and all(r["kind"] == "shopper" for rows in photos.values() for r in rows)
    report = _evaluate(old)
    assert list(report["by_kind"]) == ["shopper"] and report["by_kind"]["shopper"]["photos"] == report["photos"]


def test_check_finds_misplaced_screenshots(tiny_synth, tmp_path):
    root = tmp_path / "bad"
    shutil.copytree(tiny_synth, root)
    t = _table(root)
    i = t["kind"].index("screenshot")
    t["split"][i] = "train"
    j = t["kind"].index("shopper")
    t["kind"][j] = "selfie"
    pq.write_table(pa.table(t, schema=pq.read_schema(root / "scenes.parquet")), root / "scenes.parquet")
    text = "\n".join(check_dataset(root))
    assert "a screenshot in the train split" in text
    assert "unknown kind 'selfie'" in text
    assert "shopper photos, manifest says" in text


# --- the pipeline evaluation, per kind of photo -------------------------------------


class _Oracle:
    """A stand-in search service: finds the true product of shopper photos, misses on screenshots."""

    def __init__(self, data: Path) -> None:
        t = _table(data)
        kinds = scene_kinds(t)
        self.truth: dict[bytes, tuple[str, list[tuple[list[float], str]]]] = {}
        for rows in _photos(t).values():
            raw = (data / t["image"][rows[0]]).read_bytes()
            objs = [([float(t[k][i]) for k in ("x1", "y1", "x2", "y2")], t["product_id"][i]) for i in rows]
            self.truth[raw] = (kinds[rows[0]], objs)
        self.latest: tuple[str, list] | None = None

    def _answer(self, kind: str, objs: list, obj: int) -> dict:
        right = objs[obj][1] if kind == "shopper" else "p-nowhere"
        return {"objects": [{"box": box} for box, _ in objs], "picked": obj, "session_id": "s", "article_hits": [],
                "results": [{"product_id": right, "score": 0.9, "via": "vector", "match": "similar"}]}

    def photo(self, data: bytes, k: int) -> dict:
        self.latest = self.truth[data]
        return self._answer(*self.latest, 0)

    def again(self, session_id: str, object_id: int, k: int) -> dict:
        return self._answer(*self.latest, object_id)


def _evaluate(data: Path, **kw) -> dict:
    from visearch.pipeline_eval import evaluate_pipeline

    return evaluate_pipeline(_Oracle(data), data, progress=False, source="oracle", **kw)


def test_pipeline_figures_per_kind(tiny_synth):
    report = _evaluate(tiny_synth)
    by_kind = report["by_kind"]
    assert list(by_kind) == ["shopper", "screenshot"]
    assert report["photos"] == by_kind["shopper"]["photos"] + by_kind["screenshot"]["photos"]
    for kind, want in (("shopper", 1.0), ("screenshot", 0.0)):
        for asking in ("auto", "tapped"):
            figures = by_kind[kind][asking]
            assert set(figures) == set(report[asking])
            assert figures["top1"] == figures["top10"] == want
    assert 0 < report["tapped"]["top1"] < 1
    assert report["tapped"]["n"] == by_kind["shopper"]["tapped"]["n"] + by_kind["screenshot"]["tapped"]["n"]
    # a screenshot's own product is tapped; products peeking in from the edge are counted apart
    scenes = _table(tiny_synth)
    shots = {sid: rows for sid, rows in _photos(scenes).items() if sid.startswith("scr") and scenes["split"][rows[0]] == "test"}
    assert by_kind["screenshot"]["tapped"]["n"] == len(shots)
    peeking = sum(len(rows) - 1 for rows in shots.values())
    assert by_kind["screenshot"].get("peeking", {"n": 0})["n"] == peeking and "peeking" not in by_kind["shopper"]
    only = _evaluate(tiny_synth, kind="screenshot")
    assert only["kind"] == "screenshot" and list(only["by_kind"]) == ["screenshot"]
    assert only["photos"] == by_kind["screenshot"]["photos"] and only["tapped"]["top1"] == 0.0
    mixed = _evaluate(tiny_synth, limit=4)
    assert mixed["photos"] == 4 and set(mixed["by_kind"]) == {"shopper", "screenshot"}, "a limited run keeps both kinds"
    with pytest.raises(InvalidArgumentError, match="--kind"):
        _evaluate(tiny_synth, kind="selfie")


def test_eval_pipeline_prints_a_table_per_kind(tiny_synth, capsys):
    from visearch.cli.eval_pipeline import _print_tables

    _print_tables(_evaluate(tiny_synth), Path("report.json"))
    out = capsys.readouterr().out
    assert "all kinds:" in out and "shopper:" in out and "screenshot:" in out and "top-10" in out
