"""Model references: one string names where a model's files are.

==========================  ===============================================
``hf-hub:org/name[@rev]``   the Hugging Face hub (read from the local hub
                            cache when offline)
``local-dir:/path`` or a    files on this machine
plain existing path
``models:/name@alias``      the MLflow registry (``models:/name/3`` for a
                            version number)
``s3://bucket/prefix``      an S3 (or S3-compatible) bucket
==========================  ===============================================

>>> parse_ref("models:/visearch-detector@champion")
ModelRef(scheme='models', name='visearch-detector', alias='champion', version=None)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from visearch.errors import InvalidArgumentError

__all__ = ["ModelRef", "parse_ref"]

Scheme = Literal["hf-hub", "local", "models", "s3"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_FORMS = "hf-hub:org/name, local-dir:/path, models:/name@alias, models:/name/<version> or s3://bucket/key"


@dataclass(frozen=True)
class ModelRef:
    """A parsed reference; ``name`` is the hub id, path, registered name or s3 URI."""

    scheme: Scheme
    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.scheme == "models":
            return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"
        if self.scheme == "hf-hub":
            return f"hf-hub:{self.name}" + (f"@{self.version}" if self.version else "")
        if self.scheme == "local":
            return f"local-dir:{self.name}"
        return self.name

    @property
    def path(self) -> Path:
        if self.scheme != "local":
            raise InvalidArgumentError(f"{self} is not a local path")
        return Path(self.name)


def parse_ref(ref: str) -> ModelRef:
    """Split a reference into its parts, or say which forms are understood.

    Raises:
        InvalidArgumentError: an empty, malformed or unknown reference.
    """
    ref = (ref or "").strip()
    if not ref:
        raise InvalidArgumentError(f"empty model reference; use one of {_FORMS}")
    if ref.startswith("hf-hub:"):
        hub = ref.removeprefix("hf-hub:")
        hub_id, _, rev = hub.partition("@")
        if not _HUB_ID.fullmatch(hub_id):
            raise InvalidArgumentError(f"bad hub reference {ref!r}: expected hf-hub:org/name[@revision]")
        return ModelRef("hf-hub", hub_id, version=rev or None)
    if ref.startswith("models:"):
        body = ref.removeprefix("models:").lstrip("/")
        if "@" in body:
            name, _, alias = body.partition("@")
            if _NAME.fullmatch(name) and _NAME.fullmatch(alias):
                return ModelRef("models", name, alias=alias)
        else:
            name, _, version = body.partition("/")
            if _NAME.fullmatch(name) and version.isdigit():
                return ModelRef("models", name, version=version)
        raise InvalidArgumentError(f"bad registry reference {ref!r}: expected models:/name@alias or models:/name/<version>")
    if ref.startswith("s3://"):
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        if not bucket or not key:
            raise InvalidArgumentError(f"bad S3 reference {ref!r}: expected s3://bucket/key")
        return ModelRef("s3", ref)
    if ref.startswith("local-dir:"):
        return ModelRef("local", ref.removeprefix("local-dir:"))
    if re.match(r"^[a-z][a-z0-9+.-]*:", ref) and not Path(ref).exists():
        raise InvalidArgumentError(f"unknown model reference scheme in {ref!r}; use one of {_FORMS}")
    if Path(ref).exists():
        return ModelRef("local", ref)
    raise InvalidArgumentError(f"{ref!r} is neither an existing path nor a reference; use one of {_FORMS}")
