"""One exception family for the whole library.

The CLI turns a :class:`VisearchError` into one line on stderr and a non-zero exit;
the HTTP ingress maps the subclasses to 4xx codes. Messages name the bad value and,
where there is one, the fix.
"""

from __future__ import annotations

__all__ = [
    "VisearchError",
    "InvalidArgumentError",
    "DatasetError",
    "NotFoundError",
    "UnauthorizedError",
    "ForbiddenError",
    "ConflictError",
    "EndpointError",
]


class VisearchError(Exception):
    """Base of every error visearch raises on purpose."""

    http_status = 500


class InvalidArgumentError(VisearchError, ValueError):
    """A caller passed a value that cannot work (negative count, unwritable dir...)."""

    http_status = 400


class DatasetError(VisearchError):
    """A data set on disk is missing, corrupt or does not match its manifest."""

    http_status = 422


class NotFoundError(VisearchError, LookupError):
    """A named thing (model, index version, product) does not exist."""

    http_status = 404


class UnauthorizedError(VisearchError):
    """No credentials, or credentials nobody issued."""

    http_status = 401


class ForbiddenError(VisearchError):
    """Valid credentials without the role the action needs."""

    http_status = 403


class ConflictError(VisearchError):
    """The action does not fit the current state (concluding a concluded experiment)."""

    http_status = 409


class EndpointError(VisearchError):
    """A model endpoint this process calls (an OpenAI-compatible server) is unreachable or refuses."""

    http_status = 502
