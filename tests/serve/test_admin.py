"""The admin API on the running service: keys and roles, experiments set and routed by, report, conclude."""

from __future__ import annotations

import time

import pyarrow.parquet as pq
import pytest

from visearch.api_keys import ApiKeys
from visearch.experiments import ExperimentStore


def error_of(r) -> dict:
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


@pytest.fixture
def keys(service):
    store = ApiKeys(service.data_dir / "api_keys.json")
    return {"admin": store.create(["admin"], "test owner"), "viewer": store.create(["viewer"], "test analyst")}


SPEC = {"variants": [{"name": "control", "weight": 50}, {"name": "wide", "weight": 50, "online_dim": 128}]}


def test_keys_and_roles_guard_every_change(service, keys):
    store = ExperimentStore(service.data_dir / "experiments")
    with service.client() as c:
        r = c.put("/v1/admin/experiments/guarded", json=SPEC)
        assert r.status_code == 401 and error_of(r)["code"] == "unauthorized"
        r = c.put("/v1/admin/experiments/guarded", json=SPEC, headers={"X-API-Key": "vsk_nope_nope"})
        assert r.status_code == 403 and error_of(r)["code"] == "forbidden"
        r = c.put("/v1/admin/experiments/guarded", json=SPEC, headers={"X-API-Key": keys["viewer"]})
        assert r.status_code == 403 and "admin" in error_of(r)["message"]
        assert c.get("/v1/admin/experiments", headers={"X-API-Key": keys["viewer"]}).status_code == 200
        assert c.get("/v1/admin/experiments").status_code == 401
        bad = {"variants": [{"name": "control", "weight": 50, "embedder": "models:/visearch-embedder@nobody"},
                            {"name": "b", "weight": 50}]}
        r = c.put("/v1/admin/experiments/guarded", json=bad, headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 400 and "does not resolve" in error_of(r)["message"]
        r = c.put("/v1/admin/experiments/guarded", json={"variants": [{"name": "a", "weight": 60}]},
                  headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 422 and "sum to 100" in error_of(r)["message"]
    assert store.versions("guarded") == [], "no refused request stored anything"


def test_an_experiment_from_put_to_conclude(service, keys):
    admin = {"X-API-Key": keys["admin"]}
    try:
        with service.client() as c:
            r = c.put("/v1/admin/experiments/lifecycle", json=SPEC, headers=admin)
            assert r.status_code == 201, r.text
            assert r.json()["version"] == 1 and len(r.json()["allocation"]) == 100
            time.sleep(1.5)  # the service's reload interval
            events = []
            article = pq.read_table(service.catalog_dir / "products.parquet", columns=["article"]).column(0)[0].as_py()
            for i in range(40):
                r = c.post("/v1/search", json={"article": article}, headers={"X-User-Id": f"shopper-{i}"})
                assert r.status_code == 200 and r.json()["experiment"] == "lifecycle", r.text
                shown = r.json()["results"][0]["product_id"]
                events.append({"type": "impression", "request_id": r.json()["request_id"], "product_id": shown})
                if i % 3 == 0:
                    events.append({"type": "click", "request_id": r.json()["request_id"], "product_id": shown})
            assert c.post("/v1/events", json={"events": events}).status_code == 202
            r = c.get("/v1/admin/experiments/lifecycle/report", headers={"X-API-Key": keys["viewer"]})
            assert r.status_code == 200, r.text
            report = r.json()
            assert sum(v["users"] for v in report["variants"].values()) == 40 and report["mixed_users"] == 0
            assert report["variants"]["control"]["impressions"] + report["variants"]["wide"]["impressions"] == 40
            r = c.post("/v1/admin/experiments/lifecycle/conclude", json={"winner": "control", "reason": "test"},
                       headers={"X-API-Key": keys["viewer"]})
            assert r.status_code == 403
            r = c.post("/v1/admin/experiments/lifecycle/conclude", json={"winner": "control", "reason": "test"},
                       headers=admin)
            assert r.status_code == 200 and r.json()["winner"] == "control", r.text
            r = c.put("/v1/admin/experiments/lifecycle", json=SPEC, headers=admin)
            assert r.status_code == 409 and error_of(r)["code"] == "conflict"
            got = c.get("/v1/admin/experiments/lifecycle", headers=admin).json()
            assert got["concluded"]["winner"] == "control" and got["concluded"]["by"].startswith("key:")
            assert c.get("/v1/admin/experiments/nope", headers=admin).status_code == 404
    finally:
        ExperimentStore(service.data_dir / "experiments").serve(None)
        time.sleep(1.5)


def test_a_guardrail_breach_stops_the_experiment_and_a_shadow_searches_aside(service, keys):
    admin = {"X-API-Key": keys["admin"]}
    store = ExperimentStore(service.data_dir / "experiments")
    spec = {"variants": [{"name": "control", "weight": 50}, {"name": "slow", "weight": 50},
                         {"name": "aside", "weight": 0, "shadow": True}],
            "guardrails": {"p95_ms": 0.01, "min_requests": 4}}  # no search answers in 10 microseconds
    try:
        with service.client() as c:
            r = c.put("/v1/admin/experiments/guarded-run", json=spec, headers=admin)
            assert r.status_code == 201, r.text
            time.sleep(1.5)
            photo = next((service.catalog_dir / "scenes" / "images" / "test").glob("sc*.jpg")).read_bytes()
            r = c.post("/v1/photo", files={"image": ("p.jpg", photo, "image/jpeg")}, headers={"X-User-Id": "u-shadow"})
            assert r.status_code == 200 and r.json()["variant"] in ("control", "slow")
            for i in range(6):
                r = c.post("/v1/search", json={"article": "1234567"}, headers={"X-User-Id": f"g{i}"})
                assert r.status_code == 200
            stopped = store.get("guarded-run")
            assert not stopped.active and "guardrail" in stopped.stopped_reason and "p95" in stopped.stopped_reason
            variants = {c.post("/v1/search", json={"article": "1234567"}, headers={"X-User-Id": f"after-{i}"}).json()["variant"]
                        for i in range(6)}
            assert variants == {"control"}, "after the breach everyone is in control"
            time.sleep(2)  # the shadow search runs after the answer
            metrics = c.get("/metrics").text
            assert 'visearch_shadow_overlap_count{variant="aside"}' in metrics or \
                   'visearch_shadow_errors_total{variant="aside"}' in metrics
    finally:
        store.serve(None)
        time.sleep(1.5)


def test_simulated_shoppers_run_an_experiment_end_to_end(service, keys):
    from visearch.errors import InvalidArgumentError
    from visearch.simulate import simulate

    store = ExperimentStore(service.data_dir / "experiments")
    try:
        with service.client() as c:
            r = c.put("/v1/admin/experiments/simulated", json=SPEC, headers={"X-API-Key": keys["admin"]})
            assert r.status_code == 201, r.text
        time.sleep(1.5)
        with pytest.raises(InvalidArgumentError, match="routes by experiment 'simulated'"):
            simulate(service.url, service.catalog_dir, 1, experiment="other", progress=False)
        result = simulate(service.url, service.catalog_dir, 12, searches=1, workers=2, experiment="simulated", progress=False)
        assert result["searches"] == 12 and result["failed"] == 0 and result["experiments"] == {"simulated": 12}
        assert result["events"]["impression"] > 0 and sum(result["users_by_variant"].values()) == 12
        with service.client() as c:
            report = c.get("/v1/admin/experiments/simulated/report", headers={"X-API-Key": keys["viewer"]}).json()
        assert report["users"] + report["mixed_users"] >= 12 and report["mixed_users"] == 0
        assert sum(v["impressions"] for v in report["variants"].values()) == result["events"]["impression"]
    finally:
        store.serve(None)
        time.sleep(1.5)


def test_simulating_until_a_difference_is_found_stops_at_the_cap(service, keys):
    from visearch.config import Settings
    from visearch.simulate import simulate_until

    store = ExperimentStore(service.data_dir / "experiments")
    try:
        with service.client() as c:
            assert c.put("/v1/admin/experiments/a-a", json=SPEC, headers={"X-API-Key": keys["admin"]}).status_code == 201
        time.sleep(1.5)
        result = simulate_until(service.url, service.catalog_dir, "a-a", Settings(data_dir=service.data_dir),
                                metric="ctr", step=3, max_users=6, searches=1, workers=2, progress=False)
        assert [r["simulated"] for r in result["rounds"]] == [3, 6] and result["found"] is None
        assert result["users_needed"] is None and "wide" in result["rounds"][-1]
        assert result["rounds"][-1]["wide"]["always_valid"][0] <= 0 <= result["rounds"][-1]["wide"]["always_valid"][1]
    finally:
        store.serve(None)
        time.sleep(1.5)
