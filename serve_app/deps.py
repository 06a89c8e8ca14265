"""Dependencies the routes share: the frontend, the user id, search filters."""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import Depends, Header, Request, Response

from serve_app.schemas import Filters
from serve_app.service import Frontend
from visearch.errors import InvalidArgumentError
from visearch.index import SearchFilter

_USER = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


def get_frontend(request: Request) -> Frontend:
    return request.app.state.frontend


def get_user(request: Request, response: Response,
             x_user_id: Annotated[str | None, Header(description="the shopper's id; a cookie is set when absent")] = None) -> str:
    """The shopper: ``X-User-Id``, else the cookie the service set, else a new id (and its cookie)."""
    frontend: Frontend = request.app.state.frontend
    name = frontend.settings.serving.cookie_name
    user = x_user_id or request.cookies.get(name)
    if user is not None and not _USER.match(user):
        raise InvalidArgumentError("X-User-Id must be 1-128 letters, digits or _.:@- characters")
    if user is None:
        user = f"u_{uuid.uuid4().hex}"
    if x_user_id is None and request.cookies.get(name) != user:
        response.set_cookie(name, user, max_age=365 * 24 * 3600, httponly=True, samesite="lax")
    return user


def to_filter(filters: Filters | None) -> SearchFilter | None:
    if filters is None:
        return None
    return SearchFilter.of(category=filters.category, price_min=filters.price_min, price_max=filters.price_max)


FrontendDep = Annotated[Frontend, Depends(get_frontend)]
UserDep = Annotated[str, Depends(get_user)]
