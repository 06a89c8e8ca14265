"""The main job end to end, as ``make demo`` runs it: tiny models trained and registered,
the catalog vectorised, the index built, photos searched, through the CLI."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest


def test_search_returns_products_from_the_catalog(tiny_models, tiny_synth, cli):
    photos = sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[:2]
    r = cli(tiny_models, "search", *map(str, photos), "--top", "5", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        result = json.loads(line)
        assert result["objects"] and 0 <= result["picked"] < len(result["objects"])
        assert len(result["results"]) == 5
        assert all(p["product_id"].startswith("p") and p["title"] for p in result["results"])
        assert len({p["product_id"] for p in result["results"]}) == 5, "a product appears once per list"
        scores = [p["score"] for p in result["results"] if p["via"] == "vector"]
        assert scores == sorted(scores, reverse=True)
        assert {"detect", "ocr", "embed", "search", "total"} <= set(result["timings_ms"])
        assert result["models"]["detector"].startswith("visearch-detector/")
        assert result["models"]["embedder"].startswith("visearch-embedder/")
        # the crop classifier had its say on every object's category
        assert result["models"]["classifier"].startswith("visearch-classifier/")
        assert all(o["category_score"] is not None for o in result["objects"] if not o["fallback"])


@pytest.mark.parametrize("by_boxes", ["true", "false"])  # read inside the objects after detection, or the whole photo meanwhile
def test_article_on_the_photo_is_a_direct_hit(tiny_models, tiny_synth, cli, by_boxes):
    scenes = pq.read_table(tiny_synth / "scenes.parquet").to_pydict()
    i = scenes["article_visible"].index(True)
    r = cli(tiny_models, "search", str(tiny_synth / scenes["image"][i]), "--json",
            env={"VISEARCH_VISION__OCR_BY_BOXES": by_boxes})
    assert r.returncode == 0, r.stderr[-3000:]
    articles = {a["article"]: a["product_id"] for a in json.loads(r.stdout)["article_hits"]}
    assert articles.get(scenes["article"][i]) == scenes["product_id"][i]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("search", "missing.jpg"), "no such file"),
        (("search", "--object", "99", "PHOTO"), "does not exist"),
    ],
)
def test_bad_queries_are_one_line(tiny_models, tiny_synth, cli, args, needle):
    photo = str(next((tiny_synth / "scenes" / "images" / "test").glob("*.jpg")))
    (tiny_models / "work" / "note.txt").write_text("не картинка")
    r = cli(tiny_models, *[photo if a == "PHOTO" else a for a in args])
    assert r.returncode != 0
    assert r.stderr.strip().splitlines()[-1].startswith("visearch: error:") and needle in r.stderr
    r = cli(tiny_models, "search", "note.txt")
    assert r.returncode == 1 and "not a supported image" in r.stderr


def test_objects_are_searched_within_their_detected_category(tiny_models, tiny_synth):
    from dataclasses import replace

    from visearch.config import Settings
    from visearch.index import SearchFilter
    from visearch.pipeline import SearchPipeline

    settings = Settings(data_dir=tiny_models / "data")
    pipe = SearchPipeline.from_settings(settings)
    photo = sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[0]
    answer, session = pipe.photo(photo, k=5)
    assert answer.category is None  # the tiny detector is class-agnostic: every category is searched
    counts: dict[str, int] = {}
    for c in pq.read_table(tiny_synth / "products.parquet", columns=["category"]).column("category").to_pylist():
        counts[c] = counts.get(c, 0) + 1
    common, other = sorted(counts, key=lambda c: -counts[c])[:2]
    # the session as a category-aware detector would have seen it: object 0 named `common`
    session.objects[0] = replace(session.objects[0], category=common, score=0.9, fallback=False)
    within = pipe.again(session, object_id=0, k=5)
    assert within.category == common and within.results
    # (an article read on the object stays its exact hit, whatever the category)
    assert {r.category for r in within.results if r.via == "vector"} == {common}
    # a request's own category filter wins over the detector's
    chosen = pipe.again(session, object_id=0, k=5, filter=SearchFilter(categories=(other,)))
    assert chosen.category is None and {r.category for r in chosen.results if r.via == "vector"} == {other}
    assert all(r.title for r in chosen.results)  # direct hits carry their card too
    # switched off: every category again
    off = SearchPipeline(settings.model_copy(update={"serving": settings.serving.model_copy(update={"category_search": "off"})}),
                         pipe.stages)
    assert off.again(session, object_id=0, k=5).category is None
