"""Guardrails: each variant's recent latency and error rate against the experiment's limits.

The ingress feeds every search it answers into :class:`GuardrailWatch`; the first breach it
reports stops the experiment (a new stored version, inactive, with the reason), which routes
everyone to control. Judged per replica over its own recent requests.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from visearch.experiments import Guardrails

__all__ = ["GuardrailWatch"]


class GuardrailWatch:
    """Recent (latency, failed) per variant; :meth:`observe` returns why a variant breaches, if it does."""

    def __init__(self, limits: Guardrails) -> None:
        self.limits = limits
        self._recent: dict[str, deque[tuple[float, bool]]] = {}

    def observe(self, variant: str, ms: float, failed: bool) -> str | None:
        recent = self._recent.setdefault(variant, deque(maxlen=self.limits.window))
        recent.append((ms, failed))
        if len(recent) < self.limits.min_requests:
            return None
        lim = self.limits
        if lim.p95_ms is not None:
            p95 = float(np.percentile([m for m, _ in recent], 95))
            if p95 > lim.p95_ms:
                return f"guardrail: variant {variant!r} p95 latency {p95:.0f} ms > {lim.p95_ms:.0f} ms over {len(recent)} requests"
        if lim.max_error_rate is not None:
            rate = sum(f for _, f in recent) / len(recent)
            if rate > lim.max_error_rate:
                return f"guardrail: variant {variant!r} error rate {rate:.1%} > {lim.max_error_rate:.1%} over {len(recent)} requests"
        return None
