"""What every deployment shares: settings from the builder, a background reload loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from visearch.config import Settings

log = logging.getLogger("visearch.serve")


def settings_from(data: dict[str, Any]) -> Settings:
    """The builder's settings, rebuilt in the replica (explicit values win over the replica's env)."""
    return Settings(**data)


def every(interval_s: float, job: Callable[[], Any], name: str) -> threading.Event:
    """Run ``job`` every ``interval_s`` in a daemon thread until the returned event is set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval_s):
            try:
                job()
            except Exception as e:  # noqa: BLE001 - a failed check is retried next interval
                log.warning("%s failed: %s", name, e)

    threading.Thread(target=loop, name=name, daemon=True).start()
    return stop
