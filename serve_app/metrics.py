"""Prometheus metrics of the ingress: requests, errors and stage latencies per variant."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)


class Metrics:
    """One registry per app, so two apps in one process (tests) do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("visearch_requests", "HTTP requests by route, variant and status",
                                ["route", "variant", "status"], registry=self.registry)
        self.errors = Counter("visearch_errors", "error answers by route and status", ["route", "status"],
                              registry=self.registry)
        self.latency = Histogram("visearch_request_seconds", "request latency by route and variant",
                                 ["route", "variant"], buckets=_BUCKETS, registry=self.registry)
        self.stage = Histogram("visearch_stage_seconds", "stage latency by stage and variant",
                               ["stage", "variant"], buckets=_BUCKETS, registry=self.registry)
        self.events = Counter("visearch_events", "feedback events accepted by type", ["type"], registry=self.registry)
        self.shadow_latency = Histogram("visearch_shadow_seconds", "latency of shadow variants' searches", ["variant"],
                                        buckets=_BUCKETS, registry=self.registry)
        self.shadow_overlap = Histogram("visearch_shadow_overlap", "share of the live top-k a shadow variant also found",
                                        ["variant"], buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
                                        registry=self.registry)
        self.shadow_errors = Counter("visearch_shadow_errors", "shadow searches that failed", ["variant"],
                                     registry=self.registry)

    def observe_stages(self, timings_ms: dict[str, float], variant: str) -> None:
        for stage, ms in timings_ms.items():
            self.stage.labels(stage, variant).observe(ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
