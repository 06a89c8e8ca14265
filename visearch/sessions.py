"""Search sessions: what a shopper's upload left behind, for as long as they keep searching it.

A session holds the decoded photo (no metadata: :func:`visearch.vision.images.load_image`
drops EXIF), its detected objects and the articles read off it, so a follow-up search
(another object, a box the user drew) needs no second upload. Privacy: a session, and with
it the photo and its crops, is forgotten ``ttl_s`` after its last use (default 30 minutes)
and at most ``max_sessions`` are kept; nothing of it is written to disk or logs.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from visearch.errors import NotFoundError

__all__ = ["SessionStore", "new_id"]

T = TypeVar("T")


def new_id(prefix: str) -> str:
    """An unguessable id: a session id is all it takes to search someone's photo again."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


@dataclass
class _Entry(Generic[T]):
    value: T
    expires: float = field(default=0.0)


class SessionStore(Generic[T]):
    """An in-memory map with a sliding time-to-live and a size cap (oldest first out)."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s, self.max_sessions, self._clock = ttl_s, max_sessions, clock
        self._items: OrderedDict[str, _Entry[T]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, value: T) -> str:
        sid = new_id("s")
        with self._lock:
            self._sweep()
            self._items[sid] = _Entry(value, self._clock() + self.ttl_s)
            while len(self._items) > self.max_sessions:
                self._items.popitem(last=False)
        return sid

    def get(self, session_id: str) -> T:
        """The session's value; its time to live starts again.

        Raises:
            NotFoundError: unknown or expired (the message says which may have happened).
        """
        with self._lock:
            self._sweep()
            entry = self._items.get(session_id)
            if entry is None:
                raise NotFoundError(f"no search session {session_id!r}: it expired after {self.ttl_s / 60:g} minutes "
                                    "or never existed; upload the photo again (POST /v1/photo)")
            entry.expires = self._clock() + self.ttl_s
            self._items.move_to_end(session_id)
            return entry.value

    def __len__(self) -> int:
        with self._lock:
            self._sweep()
            return len(self._items)

    def _sweep(self) -> None:
        """Drop expired sessions; they are the oldest-used, at the front, so this stops at the first live one."""
        now = self._clock()
        while self._items and next(iter(self._items.values())).expires <= now:
            self._items.popitem(last=False)
