"""``/healthz`` (the process answers), ``/readyz`` (models loaded, index open), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from serve_app.deps import FrontendDep
from serve_app.errors import unwrap
from serve_app.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: every deployment answers with its model loaded and the index open")
async def readyz(frontend: FrontendDep) -> Any:
    exp = frontend.experiment
    try:
        parts: dict[str, Any] = {}
        for ref in dict.fromkeys(v.embedder for v in exp.variants):  # every variant's embedder loaded
            found = await frontend.stages.ready(ref)
            parts.setdefault("embedders", []).append(found.pop("embedder"))
            parts.update(found)
    except Exception as e:  # noqa: BLE001 - not ready is an answer, not an error
        e = unwrap(e)
        return JSONResponse({"status": "not ready", "reason": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"},
                            status_code=503)
    return {"status": "ready", **parts, "experiment": exp.name, "experiment_version": exp.version,
            "variants": {v.name: v.weight for v in exp.variants}}


@router.get("/metrics", summary="Prometheus metrics")
async def metrics(frontend: FrontendDep) -> Response:
    return Response(frontend.metrics.render(), media_type=CONTENT_TYPE_LATEST)
