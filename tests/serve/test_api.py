"""HTTP API v1 against the real Serve application (tests/serve/conftest.py)."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image


def jpeg(path) -> bytes:
    return path.read_bytes()


def photos(service, n=3):
    return sorted((service.catalog_dir / "scenes" / "images" / "test").glob("*.jpg"))[:n]


def upload(client, data: bytes, name="photo.jpg", ctype="image/jpeg", **fields):
    return client.post("/v1/photo", files={"image": (name, data, ctype)}, data={k: str(v) for k, v in fields.items()})


def error_of(r) -> dict:
    body = r.json()
    assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
    return body["error"]


def test_photo_answers_with_objects_results_and_variant(service):
    with service.client() as c:
        r = upload(c, jpeg(photos(service)[0]), top_k=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"].startswith("r_") and body["session_id"].startswith("s_")
    assert body["variant"] == "control" and body["experiment"] == "default"
    assert body["index_version"].startswith("v")
    assert body["models"]["detector"].startswith("visearch-detector/")
    assert body["models"]["embedder"].startswith("visearch-embedder/")
    assert body["objects"] and 0 <= body["picked"] < len(body["objects"])
    assert all(len(o["box"]) == 4 for o in body["objects"])
    results = body["results"]
    assert len(results) == 5 and len({x["product_id"] for x in results}) == 5
    assert all(x["match"] in ("exact", "similar") and x["title"] and x["image_url"] for x in results)
    assert "Server-Timing" in r.headers and "total;dur=" in r.headers["Server-Timing"]
    assert "visearch_uid" in r.headers.get("set-cookie", ""), "a user without X-User-Id gets a cookie"


def test_searches_sent_together_share_engine_calls_and_get_their_own_answers(service):
    """The Search deployment batches concurrent requests (one ``search_batch`` per kind of request); each
    answer must be the one the request gets alone, whatever it was batched with."""
    from concurrent.futures import ThreadPoolExecutor

    with service.client(headers={"X-User-Id": "batcher"}) as c:
        sessions = [upload(c, jpeg(p)).json()["session_id"] for p in photos(service, 3)]
        asks = [{"session_id": sid, "object_id": 0, "top_k": k} for sid in sessions for k in (3, 7)]

        def ask(body):
            r = c.post("/v1/search", json=body)
            assert r.status_code == 200, r.text
            return [x["product_id"] for x in r.json()["results"]]

        alone = [ask(body) for body in asks]
        before = c.get("/readyz").json()["search_batching"]
        with ThreadPoolExecutor(len(asks)) as pool:
            together = list(pool.map(ask, asks))
        after = c.get("/readyz").json()["search_batching"]
    assert together == alone
    assert [len(x) for x in together] == [3, 7] * 3
    requests, calls = after["requests"] - before["requests"], after["engine_calls"] - before["engine_calls"]
    assert requests == len(asks) and calls < requests, (requests, calls)


def test_follow_up_by_object_box_and_all_objects(service):
    with service.client(headers={"X-User-Id": "alice"}) as c:
        first = upload(c, jpeg(photos(service)[1])).json()
        sid = first["session_id"]
        r = c.post("/v1/search", json={"session_id": sid, "object_id": 0, "top_k": 3})
        assert r.status_code == 200, r.text
        assert r.json()["picked"] == 0 and len(r.json()["results"]) == 3
        assert r.json()["request_id"] != first["request_id"]
        x1, y1, x2, y2 = first["objects"][0]["box"]
        r = c.post("/v1/search", json={"session_id": sid, "box": [x1, y1, x2, y2]})
        assert r.status_code == 200, r.text
        r = c.post("/v1/search", json={"session_id": sid, "all_objects": True, "top_k": 2})
        assert r.status_code == 200, r.text
        groups = r.json()["groups"]
        assert [g["object_id"] for g in groups] == [o["id"] for o in first["objects"]]
        assert all(len(g["results"]) == 2 for g in groups)


def test_typed_article_finds_its_product_first(service):
    products = pq.read_table(service.catalog_dir / "products.parquet", columns=["product_id", "article"]).to_pydict()
    with service.client() as c:
        r = c.post("/v1/search", json={"article": products["article"][3], "top_k": 4})
    assert r.status_code == 200, r.text
    first = r.json()["results"][0]
    assert first["product_id"] == products["product_id"][3] and first["match"] == "exact" and first["via"] == "article"
    assert products["product_id"][3] not in [x["product_id"] for x in r.json()["results"][1:]]


def test_article_printed_on_the_photo_is_a_direct_hit(service):
    scenes = pq.read_table(service.catalog_dir / "scenes.parquet").to_pydict()
    i = scenes["article_visible"].index(True)
    with service.client() as c:
        body = upload(c, (service.catalog_dir / scenes["image"][i]).read_bytes()).json()
    hits = {a["article"]: a["product_id"] for a in body["article_hits"]}
    assert hits.get(scenes["article"][i]) == scenes["product_id"][i]


def test_products_similar_and_images(service):
    products = pq.read_table(service.catalog_dir / "products.parquet", columns=["product_id", "title"]).to_pydict()
    pid = products["product_id"][0]
    with service.client() as c:
        card = c.get(f"/v1/products/{pid}")
        assert card.status_code == 200 and card.json()["title"] == products["title"][0]
        sim = c.get(f"/v1/products/{pid}/similar", params={"top_k": 5})
        assert sim.status_code == 200, sim.text
        ids = [x["product_id"] for x in sim.json()["results"]]
        assert len(ids) == 5 and pid not in ids and len(set(ids)) == 5
        img = c.get(f"/v1/products/{pid}/image")
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        Image.open(io.BytesIO(img.content)).verify()
        for path in (f"/v1/products/{pid}/image?n=49", "/v1/products/nope/similar", "/v1/products/nope"):
            r = c.get(path)
            assert r.status_code == 404, path
            error_of(r)


def test_events_are_appended_once(service):
    with service.client() as c:
        answer = upload(c, jpeg(photos(service)[0])).json()
        event = {"type": "click", "request_id": answer["request_id"], "product_id": answer["results"][0]["product_id"],
                 "position": 0, "event_id": "evt-1"}
        r = c.post("/v1/events", json={"events": [event, {**event, "type": "impression", "event_id": "evt-2"}]})
        assert r.status_code == 202 and r.json() == {"accepted": 2, "new": 2}
        again = c.post("/v1/events", json={"events": [event]})
        assert again.status_code == 202 and again.json()["new"] == 0, "a retried event is not counted twice"
        bad = c.post("/v1/events", json={"events": [{**event, "type": "like"}]})
        assert bad.status_code == 422 and "type" in error_of(bad)["message"]
        refused = {
            "unknown request": {**event, "request_id": "r_never", "event_id": "evt-3"},
            "not shown": {**event, "product_id": "p_not_shown", "event_id": "evt-4"},
            "other variant": {**event, "variant": "treatment", "event_id": "evt-5"},
        }
        for why, wrong in refused.items():
            r = c.post("/v1/events", json={"events": [{**event, "event_id": "evt-6"}, wrong]})
            assert r.status_code == 400 and "none stored" in error_of(r)["message"], (why, r.text)
    from visearch.events import EventLog

    log = EventLog(service.data_dir / "events.db")
    rows = [e for e in log.read() if e["event_id"] in ("evt-1", "evt-2")]
    assert len(rows) == 2 and all(e["variant"] == "control" for e in rows)
    assert not [e for e in log.read() if e["event_id"] in ("evt-3", "evt-4", "evt-5", "evt-6")], "a refused batch stores nothing"


def test_health_ready_metrics_and_docs(service):
    with service.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz").json()
        assert ready["status"] == "ready" and ready["detector"].startswith("visearch-detector/") and ready["products"] > 0
        upload(c, jpeg(photos(service)[0]))
        metrics = c.get("/metrics").text
        assert 'visearch_requests_total{route="/v1/photo",status="200",variant="control"}' in metrics
        assert 'visearch_stage_seconds_count{stage="detect",variant="control"}' in metrics
        spec = c.get("/openapi.json").json()
        assert {"/v1/photo", "/v1/search", "/v1/events", "/v1/products/{product_id}/similar"} <= set(spec["paths"])
        assert c.get("/docs").status_code == 200


# ---------------------------------------------------------------------- bad input
def _png_claiming(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def _image(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, format=fmt, **kw)
    return buf.getvalue()


def _tiff_pages(n: int) -> bytes:
    buf = io.BytesIO()
    pages = [Image.new("L", (16, 16), i % 255) for i in range(n)]
    pages[0].save(buf, format="TIFF", save_all=True, append_images=pages[1:])
    return buf.getvalue()


def _progressive_many_scans(copies: int) -> bytes:
    """A small progressive JPEG whose scans are repeated ``copies`` times (every scan is a full decode pass)."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)).save(
        buf, format="JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    first_sos = data.index(b"\xff\xda")
    return data[:first_sos] + data[first_sos:-2] * copies + b"\xff\xd9"


HOSTILE = {
    "empty": (b"", "image/jpeg"),
    "text": ("привет, это не картинка".encode(), "image/jpeg"),
    "truncated": (_image("JPEG")[:300], "image/jpeg"),
    "bomb": (_png_claiming(30000, 30000), "image/png"),
    "tiny": (_image("PNG")[:0] or Image.new("RGB", (4, 4)).tobytes(), "image/png"),
    "progressive_scans": (_progressive_many_scans(500), "image/jpeg"),
    "tiff_pages": (_tiff_pages(3000), "image/tiff"),
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_images_get_a_4xx_fast(service, kind):
    data, ctype = HOSTILE[kind]
    with service.client() as c:
        t = time.perf_counter()
        r = upload(c, data, ctype=ctype)
        took = time.perf_counter() - t
        assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        error_of(r)
        assert took < 2.0, f"{kind}: answered in {took:.1f}s"
        assert upload(c, jpeg(photos(service)[0])).status_code == 200, "the service keeps answering"


def test_malformed_requests_are_4xx(service):
    photo = jpeg(photos(service)[0])
    with service.client() as c:
        cases = {
            "no file part": c.post("/v1/photo", data={"top_k": "3"}, files={"other": ("a.txt", b"x", "text/plain")}),
            "two files": c.post("/v1/photo", files=[("image", ("a.jpg", photo, "image/jpeg")),
                                                    ("image", ("b.jpg", photo, "image/jpeg"))]),
            "json body": c.post("/v1/photo", json={"image": "abc"}),
            "text field": c.post("/v1/photo", data={"image": "not a file"}, files={"x": ("x", b"1", "text/plain")}),
            "bad top_k": upload(c, photo, top_k="many"),
            "top_k too large": upload(c, photo, top_k=100000),
            "unknown session": c.post("/v1/search", json={"session_id": "s_nope", "object_id": 0}),
            "no target": c.post("/v1/search", json={"session_id": "s_nope"}),
            "bad box": c.post("/v1/search", json={"session_id": "s_x", "box": [1, 2, 3]}),
            "unknown field": c.post("/v1/search", json={"article": "1234567", "surprise": 1}),
            "not an article": c.post("/v1/search", json={"article": "кроссовки"}),
            "events not json": c.post("/v1/events", content=b"{", headers={"content-type": "application/json"}),
            "bad user id": c.post("/v1/search", json={"article": "1234567"}, headers={"X-User-Id": "a b/c"}),
        }
        session = upload(c, photo).json()
        cases["box outside"] = c.post("/v1/search", json={"session_id": session["session_id"], "box": [5000, 5000, 6000, 6000]})
        cases["unknown object"] = c.post("/v1/search", json={"session_id": session["session_id"], "object_id": 99})
        cases["over the body limit"] = c.post("/v1/photo", files={"image": ("big.jpg", b"\xff\xd8\xff" + b"0" * (17 * 2**20), "image/jpeg")})
        for name, r in cases.items():
            assert 400 <= r.status_code < 500, (name, r.status_code, r.text[:300])
            error_of(r)
        assert cases["unknown session"].status_code == 404 and "expired" in error_of(cases["unknown session"])["message"]
        assert cases["over the body limit"].status_code == 413
        assert cases["json body"].status_code == 415
        assert upload(c, photo).status_code == 200


def test_experiment_assignment_is_sticky_and_reloads_without_restart(service):
    from visearch.experiments import Experiment, ExperimentStore, Variant, assign

    store = ExperimentStore(service.data_dir / "experiments")
    exp = store.put(Experiment(name="split-test", variants=[Variant(name="a", weight=50), Variant(name="b", weight=50)]))
    store.serve("split-test")
    try:
        time.sleep(1.5)  # the reload interval of the test service
        with service.client() as c:
            seen = {}
            for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
                for _ in range(2):
                    r = c.post("/v1/search", json={"article": "1234567"}, headers={"X-User-Id": user})
                    assert r.status_code == 200, r.text
                    assert r.json()["experiment"] == "split-test"
                    seen.setdefault(user, set()).add(r.json()["variant"])
        assert all(len(v) == 1 for v in seen.values()), "a user stays in one arm"
        assert {u: v.pop() for u, v in seen.items()} == {u: assign(exp, u).name for u in seen}
    finally:
        store.serve(None)
        time.sleep(1.5)
    with service.client() as c:
        assert c.post("/v1/search", json={"article": "1234567"}).json()["variant"] == "control"


def test_photo_metadata_is_never_stored_or_logged(service):
    """EXIF (a camera serial, a GPS position) of an upload ends in no log, no file and no answer."""
    import ray
    from PIL import ExifTags

    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SpyCam-4711"
    exif[ExifTags.Base.BodySerialNumber] = "SN-9918273"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", (55.0, 45.0, 21.0)
    src = Image.open(photos(service)[0])
    buf = io.BytesIO()
    src.save(buf, format="JPEG", exif=exif.tobytes())
    with service.client() as c:
        r = upload(c, buf.getvalue())
        assert r.status_code == 200 and b"SpyCam" not in r.content
        sid = r.json()["session_id"]
        assert c.post("/v1/search", json={"session_id": sid, "object_id": 0}).status_code == 200
    time.sleep(1)  # let replicas flush their logs
    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    for root in (logs, service.data_dir):
        for path in root.rglob("*"):
            if path.is_file() and path.stat().st_size < 50 * 2**20:
                data = path.read_bytes()
                assert b"SpyCam-4711" not in data and b"SN-9918273" not in data, f"photo metadata found in {path}"
