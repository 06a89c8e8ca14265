"""One real Ray Serve application per test session, on loopback, over the tiny models.

Ray runs in this process as the driver (so tests can kill replicas); the app is the one
``visearch serve`` deploys, built by ``serve_app.app.build_app`` with settings overrides.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    data_dir: Path
    catalog_dir: Path
    args: dict[str, Any]

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kw)


@pytest.fixture(scope="session")
def service(tiny_models: Path, tiny_synth: Path) -> Iterator[Service]:
    import ray
    from ray import serve

    from serve_app.app import build_app
    from visearch.cli.serve import wait_ready

    port = free_port()
    args = {
        "data_dir": str(tiny_models / "data"),
        "embedding": {"threads": 1},
        # searches wait 50 ms for company, so requests sent together are batched (tested) on any machine
        "serving": {"port": port, "catalog_dir": str(tiny_synth), "reload_interval_s": 1.0,
                    "search": {"batch_wait_timeout_s": 0.05}},
        # a loaded 2-core CI machine must not turn tags into a timing test (the time limit has a test of its own)
        "tags": {"live_timeout_s": 60.0},
    }
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False,
             _node_ip_address="127.0.0.1", runtime_env={"env_vars": {"VISEARCH_EMBEDDING__THREADS": "1"}})
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="visearch", route_prefix="/", blocking=False)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, 180)
        yield Service(url, tiny_models / "data", tiny_synth, args)
    finally:
        serve.shutdown()
        ray.shutdown()


class Api:
    """Small helpers over the HTTP API shared by the serve tests."""

    def __init__(self, service: Service) -> None:
        self.service = service

    def photos(self, n: int = 3) -> list[Path]:
        return sorted((self.service.catalog_dir / "scenes" / "images" / "test").glob("*.jpg"))[:n]

    @staticmethod
    def upload(client: httpx.Client, path: Path, **fields: Any) -> httpx.Response:
        return client.post("/v1/photo", files={"image": (path.name, path.read_bytes(), "image/jpeg")},
                           data={k: str(v) for k, v in fields.items()})

    @staticmethod
    def error_of(r: httpx.Response) -> dict:
        body = r.json()
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), body
        return body["error"]


@pytest.fixture(scope="session")
def api(service: Service) -> Api:
    return Api(service)
