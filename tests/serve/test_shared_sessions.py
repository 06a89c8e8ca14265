"""A search session made on one ingress replica continues on another: two ingress replicas, one shared store.

A second application in the session's Serve instance (its own route prefix), with two ingress replicas and
small CPU reservations so it fits beside the first; every response names the replica that answered it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from serve_app.app import REPLICA_HEADER


@pytest.fixture(scope="module")
def two_ingresses(service) -> Iterator[str]:
    from ray import serve

    from serve_app.app import build_app
    from visearch.cli.serve import wait_ready

    small = {"min_replicas": 1, "max_replicas": 1, "num_cpus": 0.05}
    serving = {**service.args["serving"], "ingress": {**small, "min_replicas": 2, "max_replicas": 2},
               **{d: small for d in ("detector", "ocr", "embedder", "search")}}
    serve.run(build_app({**service.args, "serving": serving}), name="two-ingresses", route_prefix="/two",
              blocking=False)
    url = f"{service.url}/two"
    try:
        wait_ready(url, 300)
        yield url
    finally:
        serve.delete("two-ingresses")


def test_a_session_continues_on_whichever_ingress_replica_answers(two_ingresses, service, api):
    with httpx.Client(base_url=two_ingresses, timeout=120) as c:
        first = api.upload(c, api.photos()[0], top_k=3)
        assert first.status_code == 200, first.text
        sid, made_on = first.json()["session_id"], first.headers[REPLICA_HEADER]
        answered_by = set()
        for n in range(30):
            kind = n % 3
            if kind == 0:
                r = c.post("/v1/search", json={"session_id": sid, "object_id": 0, "top_k": 3})
            elif kind == 1:
                r = c.post("/v1/search", json={"session_id": sid, "box": [0, 0, 40, 40], "top_k": 3})
            else:
                r = c.post("/v1/refine", json={"session_id": sid, "text": "same but red", "top_k": 3})
            assert r.status_code == 200, (n, r.text)
            assert r.json()["session_id"] == sid
            answered_by.add(r.headers[REPLICA_HEADER])
        assert len(answered_by) == 2 and made_on in answered_by, answered_by
        # an unknown session is the same clear 404 on every replica
        for _ in range(6):
            r = c.post("/v1/search", json={"session_id": "s_forged", "object_id": 0})
            assert r.status_code == 404 and "upload the photo again" in api.error_of(r)["message"]
