"""API keys for the admin endpoints: issued once, stored only as their SHA-256, each with its roles.

A key reads ``vsk_<id>_<secret>``; the id names it in listings and revocations, the secret is
shown once, when it is made. The file (``<data_dir>/api_keys.json`` by default) holds
hashes, so reading it gives no key away; it is rewritten atomically.

>>> keys = ApiKeys(Path(tempfile.mkdtemp()) / "keys.json")
>>> key = keys.create(["admin"], note="experiment owner")
>>> keys.roles(key)
['admin']
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

from visearch.errors import ForbiddenError, InvalidArgumentError, NotFoundError, UnauthorizedError
from visearch.files import write_text_atomic

__all__ = ["ApiKeys", "ROLES"]

ROLES = ("admin", "viewer")  # admin changes experiments; viewer reads them and their reports


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeys:
    """The key file: ``{"keys": [{"id", "sha256", "roles", "note", "created"}]}``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return list(json.loads(self.path.read_text(encoding="utf-8")).get("keys", []))

    def _write(self, keys: list[dict[str, Any]]) -> None:
        write_text_atomic(self.path, json.dumps({"keys": keys}, indent=2), mode=0o600)  # hashes, but still secrets' kin

    def create(self, roles: list[str], note: str = "") -> str:
        """A new key with ``roles``; the only time its secret is seen."""
        bad = [r for r in roles if r not in ROLES]
        if not roles or bad:
            raise InvalidArgumentError(f"roles must be some of {list(ROLES)}, got {roles}")
        key_id = secrets.token_hex(4)
        key = f"vsk_{key_id}_{secrets.token_urlsafe(24)}"
        keys = self._read()
        keys.append({"id": key_id, "sha256": _digest(key), "roles": sorted(set(roles)), "note": note,
                     "created": time.time()})
        self._write(keys)
        return key

    def list(self) -> list[dict[str, Any]]:
        return [{k: v for k, v in entry.items() if k != "sha256"} for entry in self._read()]

    def revoke(self, key_id: str) -> None:
        keys = self._read()
        kept = [k for k in keys if k["id"] != key_id]
        if len(kept) == len(keys):
            raise NotFoundError(f"no API key with id {key_id!r}")
        self._write(kept)

    def _entry(self, key: str | None) -> dict[str, Any] | None:
        if not key:
            return None
        digest = _digest(key)
        for entry in self._read():
            if hmac.compare_digest(entry["sha256"], digest):  # constant time
                return entry
        return None

    def roles(self, key: str | None) -> list[str] | None:
        """The key's roles, or None for a key nobody issued."""
        entry = self._entry(key)
        return None if entry is None else list(entry["roles"])

    def require(self, key: str | None, role: str) -> str:
        """The key's id, for the audit trail; 401 without a key, 403 for a key nobody issued or one
        without ``role`` (admin may do everything)."""
        if not key:
            raise UnauthorizedError("this endpoint needs an API key (header X-API-Key); visearch keys create makes one")
        entry = self._entry(key)
        if entry is None:
            raise ForbiddenError("this API key was not issued here (or was revoked)")
        if role not in entry["roles"] and "admin" not in entry["roles"]:
            raise ForbiddenError(f"this API key has roles {entry['roles']}; the action needs {role!r}")
        return f"key:{entry['id']}"
