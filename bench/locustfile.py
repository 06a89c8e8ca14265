"""Locust shoppers for bench_serve.py: each uploads held-out photos and follows up on another object.

Run by ``bench/bench_serve.py``; by hand: ``locust -f bench/locustfile.py --host http://127.0.0.1:8000``
with ``VISEARCH_BENCH_PHOTOS`` naming a folder of JPEGs.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from locust import HttpUser, between, task

PHOTOS = sorted(Path(os.environ.get("VISEARCH_BENCH_PHOTOS", "data/demo/scenes/images/test")).glob("*.jpg"))
BLOBS = [p.read_bytes() for p in PHOTOS[:200]]


class Shopper(HttpUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        if not BLOBS:
            raise RuntimeError("no photos: set VISEARCH_BENCH_PHOTOS to a folder of JPEGs")
        self.client.headers["X-User-Id"] = f"bench-{random.randrange(10**9)}"

    @task
    def photo(self) -> None:
        with self.client.post("/v1/photo", files={"image": ("p.jpg", random.choice(BLOBS), "image/jpeg")},
                              data={"top_k": "10"}, name="/v1/photo", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
