"""``GET /v1/products/{id}``, ``.../similar`` (more like this) and ``.../image`` (the gallery photo)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from serve_app.deps import FrontendDep, UserDep
from serve_app.schemas import ErrorBody, ResultOut, SimilarResponse
from visearch.catalog import image_path
from visearch.errors import NotFoundError
from visearch.index import SearchFilter

router = APIRouter(prefix="/v1/products", tags=["products"])
_ERRORS = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}}


async def _card(frontend: FrontendDep, product_id: str) -> dict[str, Any]:
    found = await frontend.stages.products([product_id])
    if product_id not in found:
        raise NotFoundError(f"no product {product_id!r} in the catalog")
    return found[product_id]


@router.get("/{product_id}", responses=_ERRORS, summary="A product's card")
async def product(product_id: str, frontend: FrontendDep) -> dict[str, Any]:
    card = await _card(frontend, product_id)
    card.pop("look", None)
    return {**card, "image_url": f"/v1/products/{product_id}/image" if card.get("image_uris") else None}


@router.get("/{product_id}/similar", response_model=SimilarResponse, responses=_ERRORS,
            summary="More like this: the product's own vector searched, itself left out")
async def similar(product_id: str, frontend: FrontendDep, user: UserDep,
                  top_k: Annotated[int | None, Query(ge=1)] = None,
                  category: Annotated[list[str] | None, Query()] = None,
                  price_min: Annotated[float | None, Query(ge=0)] = None,
                  price_max: Annotated[float | None, Query(ge=0)] = None) -> SimilarResponse:
    k = frontend.flow.top_k_of(top_k)
    _, variant = frontend.variant_for(user)
    searched = await frontend.stages.similar(product_id, k, variant.online_dim,
                                             SearchFilter.of(category=category, price_min=price_min, price_max=price_max))
    results = [ResultOut.model_validate(frontend.flow.result_item(h, h.score, "similar")) for h in searched.hits[0]]
    return SimilarResponse(product_id=product_id, index_version=searched.index_version, results=results)


@router.get("/{product_id}/image", responses=_ERRORS, response_class=FileResponse,
            summary="The product's gallery photo (n-th, default the first)")
async def image(product_id: str, frontend: FrontendDep, n: Annotated[int, Query(ge=0, le=50)] = 0) -> FileResponse:
    card = await _card(frontend, product_id)
    uris = list(card.get("image_uris") or [])
    if n >= len(uris):
        raise NotFoundError(f"product {product_id!r} has {len(uris)} photo(s); n={n} does not exist")
    root = frontend.settings.serving.catalog_dir
    if root is None:
        raise NotFoundError("product photos are not served: set VISEARCH_SERVING__CATALOG_DIR to the catalog's folder")
    path = image_path(root, uris[n])
    if not path.is_file():
        raise NotFoundError(f"photo {uris[n]!r} of product {product_id!r} is missing from {root}")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


