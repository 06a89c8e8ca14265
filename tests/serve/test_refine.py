"""Tags in search responses and POST /v1/refine, against the real Serve application (tests/serve/conftest.py)."""

from __future__ import annotations

import asyncio

import pyarrow.parquet as pq
import pytest


def test_search_responses_carry_the_crops_tags(service, api):
    with service.client() as c:
        body = api.upload(c, api.photos()[0], top_k=5).json()
        grouped = c.post("/v1/search", json={"session_id": body["session_id"], "all_objects": True}).json()
    assert body["tags_note"] is None, body["tags_note"]
    tags = body["tags"]
    assert len(tags) == 5 and all(t["text"] and t["facet"] for t in tags)
    assert all(0.0 <= t["score"] <= 1.0 for t in tags)
    assert [t["score"] for t in tags] == sorted((t["score"] for t in tags), reverse=True)
    assert "tags" in body["timings_ms"]
    assert all(g["tags"] and len(g["tags"]) == 5 for g in grouped["groups"])


def test_refine_answers_like_a_search_with_the_text_applied(service, api):
    with service.client(headers={"X-User-Id": "refiner"}) as c:
        first = api.upload(c, api.photos()[1]).json()
        r = c.post("/v1/refine", json={"session_id": first["session_id"], "text": "такой же, но красный", "top_k": 4})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["refinement"] == "такой же, но красный"
        assert body["picked"] == first["picked"] and body["session_id"] == first["session_id"]
        assert len(body["results"]) == 4 and all(x["match"] == "similar" for x in body["results"])
        assert body["variant"] == first["variant"] and "refine" in body["timings_ms"]
        other = c.post("/v1/refine", json={"session_id": first["session_id"], "object_id": 0, "text": "same but striped"})
        assert other.status_code == 200 and other.json()["picked"] == 0
        # the text read as attributes: the products that have them come first, the closest others fill the page
        r = c.post("/v1/refine", json={"session_id": first["session_id"], "text": "same but red", "top_k": 4})
        body = r.json()
        assert body["refinement_tags"] == [{"text": "red", "facet": "colour"}], body["refinement_tags"]
        catalog = {r["product_id"]: r for r in pq.read_table(service.catalog_dir / "products.parquet").to_pylist()}
        red = [catalog[x["product_id"]]["colour"] == "red" for x in body["results"]]
        in_category = [r for r in catalog.values() if r["colour"] == "red" and body["category"] in (None, r["category"])]
        assert red == sorted(red, reverse=True) and sum(red) == min(4, len(in_category)) > 0, red
        vague = c.post("/v1/refine", json={"session_id": first["session_id"], "text": "something nicer", "top_k": 4})
        assert vague.json()["refinement_tags"] == [] and len(vague.json()["results"]) == 4
        # the refined request is a request like any other: its events are accepted
        ev = c.post("/v1/events", json={"events": [{"type": "click", "request_id": body["request_id"],
                                                    "product_id": body["results"][0]["product_id"], "position": 0}]})
        assert ev.status_code == 202 and ev.json()["new"] == 1, ev.text


@pytest.mark.parametrize(("text", "status", "why"), [
    ("", 400, "empty"), ("   ", 400, "empty"), ("x" * 5000, 400, "characters long"), ("红色的", 400, "Russian or English"),
    ("🔴", 400, "Russian or English"), (12, 422, ""), (None, 422, ""), (["red"], 422, ""),
])
def test_bad_refinement_texts_are_4xx_and_the_service_keeps_serving(service, api, text, status, why):
    with service.client() as c:
        sid = api.upload(c, api.photos()[2]).json()["session_id"]
        r = c.post("/v1/refine", json={"session_id": sid, "text": text})
        assert r.status_code == status, r.text
        assert why in api.error_of(r)["message"]
        assert c.post("/v1/refine", json={"session_id": sid, "text": "same but red"}).status_code == 200


def test_refine_needs_a_live_session_and_an_existing_object(service, api):
    with service.client() as c:
        r = c.post("/v1/refine", json={"session_id": "s_nope", "text": "same but red"})
        assert r.status_code == 404 and "session" in api.error_of(r)["message"]
        sid = api.upload(c, api.photos()[0]).json()["session_id"]
        r = c.post("/v1/refine", json={"session_id": sid, "object_id": 99, "text": "same but red"})
        assert r.status_code == 404 and "object 99" in api.error_of(r)["message"]
        r = c.post("/v1/refine", json={"session_id": sid, "text": "red", "extra": 1})
        assert r.status_code == 422


def test_a_slow_or_missing_tag_model_never_fails_a_search(tiny_models, tiny_synth):
    """In process, the same flow the service runs: a tag step that cannot answer in time, or no tag model at all,
    leaves the products answered and says why the tags are missing."""
    from visearch.config import Settings
    from visearch.experiments import default_experiment
    from visearch.query import QueryFlow
    from visearch.stages import LocalStages
    from visearch.vision.images import load_image

    image = load_image(sorted((tiny_synth / "scenes" / "images" / "test").glob("*.jpg"))[0])
    base = {"data_dir": str(tiny_models / "data"), "embedding": {"threads": 1}}
    for extra, note in (({"tags": {"live_timeout_s": 1e-9}}, "did not answer within"),
                        ({"models": {"tagger": ""}}, "no tag model")):
        settings = Settings(**base, **extra)
        stages = LocalStages.from_settings(settings)
        variant = default_experiment(settings.models.embedder, settings.index.online_dim).variants[0]
        answer, _ = asyncio.run(QueryFlow(stages, settings).photo(image, variant=variant))
        assert answer.results and answer.tags is None and note in answer.tags_note
