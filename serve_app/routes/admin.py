"""``/v1/admin/experiments``: what experiment owners do, behind API keys (``X-API-Key``).

Reading needs the ``viewer`` role, changing needs ``admin``; a missing key is a 401, an unknown
key or a missing role a 403, and a refused request changes nothing. The work itself is
:class:`visearch.ab.admin.ExperimentAdmin`, the same the ``visearch experiments`` commands use.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query

from serve_app.deps import FrontendDep
from serve_app.schemas import ConcludeIn, ErrorBody, ExperimentIn, StopIn
from visearch.ab.admin import ExperimentAdmin
from visearch.api_keys import ApiKeys
from visearch.experiments import Experiment

router = APIRouter(prefix="/v1/admin", tags=["admin"],
                   responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}, 404: {"model": ErrorBody}})

Name = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", description="experiment name")]
Key = Annotated[str | None, Header(alias="X-API-Key", description="an API key (visearch keys create)")]


def _keys(frontend: FrontendDep) -> ApiKeys:
    assert frontend.settings.experiments.api_keys_path is not None
    return ApiKeys(frontend.settings.experiments.api_keys_path)


def viewer(frontend: FrontendDep, key: Key = None) -> str:
    return _keys(frontend).require(key, "viewer")


def admin(frontend: FrontendDep, key: Key = None) -> str:
    return _keys(frontend).require(key, "admin")


Viewer = Annotated[str, Depends(viewer)]
Admin = Annotated[str, Depends(admin)]


def _admin(frontend: FrontendDep) -> ExperimentAdmin:
    return ExperimentAdmin(frontend.settings, frontend.events)


@router.get("/experiments", summary="Every experiment: latest version, weights, which one serves")
def list_experiments(frontend: FrontendDep, _: Viewer) -> list[dict[str, Any]]:
    return _admin(frontend).list()


@router.get("/experiments/{name}", summary="An experiment (its latest version, or ?version=N)")
def get_experiment(name: Name, frontend: FrontendDep, _: Viewer,
                   version: Annotated[int | None, Query(ge=1)] = None) -> Experiment:
    return _admin(frontend).get(name, version)


@router.put("/experiments/{name}", status_code=201, responses={400: {"model": ErrorBody}, 409: {"model": ErrorBody}},
            summary="Store a new version (weights changed minimally for users already assigned) and serve it")
def put_experiment(name: Name, body: ExperimentIn, frontend: FrontendDep, _: Admin) -> Experiment:
    experiment = Experiment(name=name, variants=body.variants, salt=body.salt, guardrails=body.guardrails)
    return _admin(frontend).set(experiment, serve=body.serve)


@router.post("/experiments/{name}/stop", summary="Route everyone to control from now on")
def stop_experiment(name: Name, body: StopIn, frontend: FrontendDep, by: Admin) -> Experiment:
    return _admin(frontend).stop(name, f"{body.reason} ({by})")


@router.get("/experiments/{name}/report", summary="Per variant metrics with intervals, differences to control, SRM")
def report(name: Name, frontend: FrontendDep, _: Viewer,
           log: Annotated[bool, Query(description="also log the report to MLflow as a run")] = False) -> dict[str, Any]:
    return _admin(frontend).report(name, log_mlflow=log)


@router.post("/experiments/{name}/conclude", responses={409: {"model": ErrorBody}},
             summary="End the experiment on its report; optionally promote the winner's model to @champion")
def conclude(name: Name, body: ConcludeIn, frontend: FrontendDep, by: Admin) -> dict[str, Any]:
    return _admin(frontend).conclude(name, winner=body.winner, promote=body.promote, by=by, reason=body.reason)
