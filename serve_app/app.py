"""The Serve application: deployments bound into a graph, and the FastAPI ingress.

``serve run deployments/local.yaml`` calls :func:`build_app` with the YAML's ``args``;
``visearch serve`` does the same. The args are settings overrides (the same nested names
as ``VISEARCH_*`` variables, in lower case), applied over the environment, so a YAML holds
only what differs per environment (a GPU, replica bounds), and code holds the defaults.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from ray import serve
from ray.serve.handle import DeploymentHandle

from serve_app import errors
from serve_app.deployments import (
    DetectorDeployment,
    EmbedderDeployment,
    OcrDeployment,
    SearchDeployment,
    SessionsDeployment,
)
from serve_app.limits import BodyLimit
from serve_app.routes import admin, feedback, health, products, search
from serve_app.routes.search import VARIANT_HEADER
from serve_app.service import Frontend, ServiceStages
from serve_app.stages import ServeStages, SharedSessions
from visearch.config import DeploymentSettings, Settings, get_settings
from visearch.registry.watch import PinCache

__all__ = ["create_app", "build_app", "Ingress"]

STATIC = Path(__file__).parent / "static"
REPLICA_HEADER = "X-Visearch-Replica"


def create_app(frontend: Frontend) -> FastAPI:
    """The HTTP API v1 over a frontend (whatever runs its stages)."""
    app = FastAPI(title="visearch", version="1", summary="Search a marketplace by photo",
                  description="Upload a photo, pick an object, get the catalog's matching products. "
                              "Errors are `{\"error\": {\"code\", \"message\"}}` with a 4xx status.")
    app.state.frontend = frontend
    errors.install(app)
    for router in (search.router, feedback.router, products.router, health.router, admin.router):
        app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def count(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Requests, errors and latency per route and variant (the search routes name their variant)."""
        t = time.perf_counter()
        status, variant = 500, "none"
        try:
            response = await call_next(request)
            status, variant = response.status_code, response.headers.get(VARIANT_HEADER, "none")
            if frontend.replica:  # which ingress replica answered: for tracing a request across the cluster
                response.headers[REPLICA_HEADER] = frontend.replica
            return response
        finally:
            route = getattr(request.scope.get("route"), "path", "unmatched")  # the template, set by the router
            m = frontend.metrics
            m.requests.labels(route, variant, str(status)).inc()
            m.latency.labels(route, variant).observe(time.perf_counter() - t)
            if status >= 400:
                m.errors.labels(route, str(status)).inc()

    app.add_middleware(BodyLimit, max_bytes=int(frontend.settings.serving.max_body_mb * 2**20))
    return app


@serve.deployment(name="Ingress")
@serve.ingress()
class Ingress:
    """HTTP in; the query flow over the model deployments' handles."""

    def __init__(self, detector: DeploymentHandle, ocr: DeploymentHandle, embedder: DeploymentHandle,
                 search_: DeploymentHandle, sessions: DeploymentHandle, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        pins = PinCache(self.settings, self.settings.serving.reload_interval_s, time.monotonic)
        pins.pin(self.settings.models.embedder)  # fail now if the champion is missing; warms MLflow
        stages: ServiceStages = ServeStages(detector, ocr, embedder, search_, pins)
        self.frontend = Frontend(stages, SharedSessions(sessions), self.settings)
        self.frontend.replica = serve.get_replica_context().replica_id.unique_id

    def __serve_build_asgi_app__(self) -> FastAPI:
        return create_app(self.frontend)


def _options(cfg: DeploymentSettings) -> dict[str, Any]:
    return {
        "autoscaling_config": {"min_replicas": cfg.min_replicas, "max_replicas": cfg.max_replicas,
                               "target_ongoing_requests": cfg.target_ongoing_requests,
                               "upscale_delay_s": 5, "downscale_delay_s": 60},
        "max_ongoing_requests": cfg.max_ongoing_requests,
        "ray_actor_options": {"num_cpus": cfg.num_cpus, "num_gpus": cfg.num_gpus},
        "health_check_period_s": 5,
    }


def app_settings(args: dict[str, Any] | None = None) -> Settings:
    """The environment's settings with the YAML's ``args`` over them (pydantic-settings merges nested
    sections), paths made absolute: replicas need not share the driver's working directory."""
    args = dict(args or {})
    settings = get_settings(**args)
    args["data_dir"] = str(settings.data_dir.resolve())
    if settings.serving.catalog_dir is not None:
        args.setdefault("serving", {})
        args["serving"] = {**args["serving"], "catalog_dir": str(settings.serving.catalog_dir.resolve())}
    return get_settings(**args)


def build_app(args: dict[str, Any]) -> serve.Application:
    """The whole graph; each deployment's replicas and resources come from the typed settings."""
    settings = app_settings(args)
    data = settings.model_dump(mode="json")
    s = settings.serving
    detector = DetectorDeployment.options(**_options(s.detector)).bind(data)
    ocr = OcrDeployment.options(**_options(s.ocr)).bind(data)
    embedder = EmbedderDeployment.options(**_options(s.embedder)).bind(data)
    search_ = SearchDeployment.options(**_options(s.search)).bind(data)
    # a map in memory, not a model: no CPU reserved, so it never waits for a free core
    sessions = SessionsDeployment.options(ray_actor_options={"num_cpus": 0}).bind(data)
    return Ingress.options(**_options(s.ingress)).bind(detector, ocr, embedder, search_, sessions, data)
