"""Picking a training recipe by name, the same way for every job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from visearch.errors import InvalidArgumentError

__all__ = ["pick_recipe"]

R = TypeVar("R")


def pick_recipe(name: str, known: Mapping[str, R]) -> R:
    """The recipe called ``name``, or an error listing the ones that exist."""
    if name not in known:
        raise InvalidArgumentError(f"unknown recipe {name!r}; choose one of {', '.join(known)}")
    return known[name]
