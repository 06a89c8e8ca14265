"""One mapping from failures to HTTP answers: ``{"error": {"code", "message"}}`` with a 4xx.

A 5xx is a bug; it is logged with its traceback and answered without internals.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from visearch.errors import VisearchError

log = logging.getLogger("visearch.ingress")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type", 422: "invalid_request",
          429: "too_many_requests", 503: "unavailable"}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name.removesuffix("Error")).lower() or "error"


def unwrap(exc: BaseException) -> BaseException:
    """The error a deployment raised, out of Ray's wrapper (which carries the remote traceback)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def answer_for(exc: BaseException) -> JSONResponse:
    exc = unwrap(exc)
    if isinstance(exc, VisearchError) and exc.http_status < 500:
        return error_response(exc.http_status, _snake(type(exc).__name__), str(exc).splitlines()[0] if str(exc) else "")
    log.exception("internal error", exc_info=exc)
    return error_response(500, "internal", "internal error; it has been logged")


def install(app: FastAPI) -> None:
    @app.exception_handler(VisearchError)
    async def _visearch(_: Request, exc: VisearchError) -> JSONResponse:
        return answer_for(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}" if where else
                              str(first.get("msg", "invalid request")))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, _CODES.get(exc.status_code, "error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def _any(_: Request, exc: Exception) -> JSONResponse:
        return answer_for(exc)
