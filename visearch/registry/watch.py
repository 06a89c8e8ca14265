"""Follow a registry alias: when a data scientist moves ``@champion``, load the new version.

Serving calls :meth:`ModelWatcher.check` every reload interval (from a background
thread); the new version is loaded beside the old one and swapped in with one
assignment, so no request sees a half-loaded model and none fails during the switch.
A version that fails to load is logged and skipped; the old one keeps serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from visearch.config import Settings
from visearch.registry.store import PinnedModel, pin_model

__all__ = ["ModelWatcher", "PinCache"]

T = TypeVar("T")
log = logging.getLogger("visearch.reload")


class ModelWatcher(Generic[T]):
    """A model loaded from ``ref`` that follows the alias it names."""

    def __init__(self, ref: str, settings: Settings, load: Callable[[PinnedModel], T]) -> None:
        self.ref, self.settings, self._load = ref, settings, load
        pinned = pin_model(ref, settings)
        self._current: tuple[PinnedModel, T] = (pinned, load(pinned))
        self._lock = threading.Lock()

    @property
    def current(self) -> tuple[PinnedModel, T]:
        return self._current  # one tuple, swapped atomically: model and its pin always agree

    def check(self) -> bool:
        """Re-pin the reference; load and swap in a new version. True when it switched."""
        with self._lock:
            try:
                pinned = pin_model(self.ref, self.settings)
                if pinned == self._current[0]:
                    return False
                model = self._load(pinned)
            except Exception as e:  # noqa: BLE001 - a bad new version must not stop the old one serving
                log.error("reload of %s failed, still serving %s: %s", self.ref, self._current[0].label, e)
                return False
            log.info("%s: %s -> %s", self.ref, self._current[0].label, pinned.label)
            self._current = (pinned, model)
            return True


class PinCache:
    """References pinned at most once per ``interval_s`` (a registry query costs milliseconds, not nothing)."""

    def __init__(self, settings: Settings, interval_s: float, clock: Callable[[], float]) -> None:
        self.settings, self.interval_s, self._clock = settings, interval_s, clock
        self._pins: dict[str, tuple[float, PinnedModel]] = {}
        self._lock = threading.Lock()

    def pin(self, ref: str) -> PinnedModel:
        now = self._clock()
        with self._lock:
            hit = self._pins.get(ref)
        if hit is not None and now - hit[0] < self.interval_s:
            return hit[1]
        try:
            pinned = pin_model(ref, self.settings)
        except Exception:
            if hit is not None:  # the registry is briefly unreachable: keep the last pin
                log.warning("cannot re-pin %s; keeping %s", ref, hit[1].label)
                return hit[1]
            raise
        with self._lock:
            self._pins[ref] = (now, pinned)
        return pinned
