"""``POST /v1/photo`` (an upload) and ``POST /v1/search`` (a follow-up or a typed article)."""

from __future__ import annotations

import asyncio
import json

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from serve_app.deps import FrontendDep, UserDep, to_filter
from serve_app.schemas import ErrorBody, Filters, RefineRequest, SearchRequest, SearchResponse
from visearch.errors import InvalidArgumentError
from visearch.query import Answer
from visearch.vision.images import ImageLimits, UnsupportedImageError, load_image

router = APIRouter(prefix="/v1", tags=["search"])

_ERRORS = {code: {"model": ErrorBody} for code in (400, 404, 409, 413, 415, 422)}
_PHOTO_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object", "required": ["image"],
            "properties": {
                "image": {"type": "string", "format": "binary", "description": "JPEG, PNG, WebP, GIF, BMP or TIFF"},
                "top_k": {"type": "integer", "minimum": 1},
                "all_objects": {"type": "boolean", "description": "search every detected object (groups)"},
                "filters": {"type": "string", "description": 'JSON: {"category": [...], "price_min", "price_max"}'},
            },
        }}},
    }
}


VARIANT_HEADER = "X-Visearch-Variant"


def _timing_header(response: Response, answer: Answer) -> None:
    response.headers["Server-Timing"] = ", ".join(f"{k};dur={v:.1f}" for k, v in answer.timings_ms.items())
    response.headers[VARIANT_HEADER] = answer.variant


def _bool(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    v = value.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise InvalidArgumentError(f"{name} must be true or false, got {value!r}")


def _int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidArgumentError(f"{name} must be an integer, got {value!r}") from None


@router.post("/photo", response_model=SearchResponse, responses=_ERRORS, openapi_extra=_PHOTO_BODY,
             summary="Upload a photo: objects, articles read off it, and products for the most prominent object")
async def photo(request: Request, response: Response, frontend: FrontendDep, user: UserDep) -> SearchResponse:
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise UnsupportedImageError(f"send the photo as multipart/form-data with a file field 'image', not {ctype or 'no content type'!r}")
    try:
        form = await request.form(max_files=4, max_fields=16)
    except Exception as e:  # noqa: BLE001 - starlette's multipart errors: malformed body, too many parts
        raise InvalidArgumentError(f"unreadable multipart body ({str(e) or type(e).__name__})") from None
    try:
        files = form.getlist("image")
        if not files:
            raise InvalidArgumentError("no 'image' part in the form: send the photo as a file field named 'image'")
        if len(files) > 1:
            raise InvalidArgumentError(f"{len(files)} 'image' parts: send one photo per request")
        part = files[0]
        if not isinstance(part, UploadFile):
            raise InvalidArgumentError("'image' must be a file part, not a text field")
        data = await part.read()
        top_k = _int(form.get("top_k") or request.query_params.get("top_k"), "top_k")  # type: ignore[arg-type]
        all_objects = _bool(form.get("all_objects") or request.query_params.get("all_objects"), "all_objects")  # type: ignore[arg-type]
        raw_filters = form.get("filters")
        filters = Filters.model_validate(json.loads(raw_filters)) if isinstance(raw_filters, str) and raw_filters else None
    except (json.JSONDecodeError, ValueError) as e:
        if isinstance(e, InvalidArgumentError):
            raise
        raise InvalidArgumentError(f"filters must be a JSON object with category, price_min, price_max ({e})") from None
    finally:
        await form.close()
    limits = ImageLimits.from_settings(frontend.settings.vision)
    image = await asyncio.to_thread(load_image, data, limits)
    del data
    answer = await frontend.photo(image, user, top_k=top_k, all_objects=all_objects, filter=to_filter(filters))
    _timing_header(response, answer)
    return SearchResponse.model_validate(answer)


@router.post("/search", response_model=SearchResponse, responses=_ERRORS,
             summary="Search again: another object, a box the user drew, every object, or a typed article")
async def search(body: SearchRequest, response: Response, frontend: FrontendDep, user: UserDep) -> SearchResponse:
    answer = await frontend.search(user, session_id=body.session_id, object_id=body.object_id, box=body.box,
                                   article=body.article, top_k=body.top_k, all_objects=body.all_objects,
                                   filter=to_filter(body.filters))
    _timing_header(response, answer)
    return SearchResponse.model_validate(answer)


@router.post("/refine", response_model=SearchResponse, responses=_ERRORS,
             summary="Refine with a short text: the session's object, but red / striped / без принта")
async def refine(body: RefineRequest, response: Response, frontend: FrontendDep, user: UserDep) -> SearchResponse:
    answer = await frontend.refine(user, session_id=body.session_id, object_id=body.object_id, text=body.text,
                                   top_k=body.top_k, filter=to_filter(body.filters))
    _timing_header(response, answer)
    return SearchResponse.model_validate(answer)
