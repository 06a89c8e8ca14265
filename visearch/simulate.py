"""Simulated shoppers driving the running service over HTTP, so an experiment runs end to end here.

Each shopper sends held-out photos of a WB-Synth set (shopper photos and screenshots) to
``POST /v1/photo`` under their own user id, looks at the results, and acts as WB-Synth's
shoppers do (:func:`visearch.synth.sessions.shopper_acts`): clicks, carts and orders depend on
how relevant each result truly is to the product they photographed (the same product, a
variant, the same category, other), its price against the category, its rating, reviews and
position. What they saw and did goes back as events (``POST /v1/events``), attributed by the
service to the variant that served them. A better variant therefore earns more clicks and
orders because it finds better products, which is what an experiment should detect.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from visearch.errors import InvalidArgumentError
from visearch.progress import track

__all__ = ["Shopper", "simulate", "SimulationReport"]


@dataclass
class SimulationReport:
    users: int = 0
    searches: int = 0
    failed: int = 0
    events: Counter[str] = field(default_factory=Counter)
    variants: Counter[str] = field(default_factory=Counter)
    experiments: Counter[str] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms or [0.0])
        return {"users": self.users, "searches": self.searches, "failed": self.failed, "events": dict(self.events),
                "users_by_variant": dict(self.variants), "experiments": dict(self.experiments),
                "photo_latency_ms": {"p50": round(float(np.percentile(lat, 50)), 1),
                                     "p95": round(float(np.percentile(lat, 95)), 1)}}


class Shopper:
    """One simulated user: their id, their own random stream, the photos they send."""

    def __init__(self, user_id: str, rng: np.random.Generator) -> None:
        self.user_id, self.rng = user_id, rng


def _photos(data: Path, split: str) -> list[tuple[str, str]]:
    """(image path, the product the shopper photographed) of every held-out photo: a screenshot's first
    object (the product its page is about), a shopper photo's most visible one."""
    from visearch.pipeline_eval import held_out_photos

    return [(image, (rows[0] if rows[0]["kind"] == "screenshot" else max(rows, key=lambda r: r["visible"]))["product_id"])
            for image, rows in held_out_photos(data, split).items()]


def _wait_ready(client: Any, url: str, wait_s: float) -> None:
    """Until ``/readyz`` answers 200 (or ``wait_s`` has passed: then a clear error)."""
    import httpx

    deadline = time.monotonic() + wait_s
    while True:
        try:
            r = client.get("/readyz")
            if r.status_code == 200:
                return
            why = f"{r.status_code}: {r.text[:200]}"
        except httpx.HTTPError as e:
            why = f"{type(e).__name__}: {e}"
        if time.monotonic() >= deadline:
            raise InvalidArgumentError(f"{url} is not ready ({why}); start it with visearch serve, or give --wait")
        time.sleep(2)


def simulate(url: str, data: Path, users: int, *, searches: int = 2, split: str = "test", seed: int = 0,
             workers: int = 4, experiment: str | None = None, top_k: int = 10, progress: bool = True,
             timeout_s: float = 60.0, wait_s: float = 0.0) -> dict[str, Any]:
    """``users`` shoppers, ``searches`` photos each, against the service at ``url``; returns what happened.

    With ``experiment``, refuses to go on (after the first answer) when the service routes by another one;
    ``wait_s`` gives a service that is still starting that long to become ready.
    """
    import httpx

    from visearch.catalog import read_catalog
    from visearch.synth.sessions import ShopItem, relevance, shopper_acts

    if users < 1 or searches < 1:
        raise InvalidArgumentError(f"--users and --searches must be at least 1, got {users} and {searches}")
    photos = _photos(data, split)
    cat = read_catalog(data, columns=["product_id", "model_id", "category_id", "price", "rating", "reviews_count"]).to_pydict()
    items = ShopItem.by_id(cat)
    report = SimulationReport()
    lock = threading.Lock()
    seen_variant: dict[str, str] = {}
    client = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)
    try:
        _wait_ready(client, url, wait_s)

        def one(n: int) -> None:
            shopper = Shopper(f"sim-{seed}-{n:06d}", np.random.default_rng([seed, n]))
            for _ in range(searches):
                image, truth = photos[int(shopper.rng.integers(len(photos)))]
                t = time.perf_counter()
                resp = client.post("/v1/photo", files={"image": (Path(image).name, (data / image).read_bytes(), "image/jpeg")},
                                   data={"top_k": str(top_k)}, headers={"X-User-Id": shopper.user_id})
                ms = (time.perf_counter() - t) * 1000
                if resp.status_code != 200:
                    with lock:
                        report.failed += 1
                    continue
                answer = resp.json()
                if experiment is not None and answer["experiment"] != experiment:
                    raise InvalidArgumentError(f"the service routes by experiment {answer['experiment']!r}, not "
                                               f"{experiment!r}: visearch experiments set {experiment} ... first")
                events = []
                query = items.get(truth)
                for pos, result in enumerate(answer["results"], start=1):
                    pid = result["product_id"]
                    events.append({"type": "impression", "request_id": answer["request_id"], "product_id": pid,
                                   "position": pos - 1})
                    item = items.get(pid)
                    if item is None or query is None:
                        continue
                    clicked, added, ordered = shopper_acts(relevance(item, query), item, pos, shopper.rng)
                    for kind, happened in (("click", clicked), ("add_to_cart", added), ("order", ordered)):
                        if happened:
                            events.append({"type": kind, "request_id": answer["request_id"], "product_id": pid,
                                           "position": pos - 1, **({"value": item.price} if kind == "order" else {})})
                if events:
                    ev = client.post("/v1/events", json={"events": events})
                    if ev.status_code != 202:
                        raise InvalidArgumentError(f"the service refused the simulated events: {ev.text[:300]}")
                with lock:
                    report.searches += 1
                    report.latencies_ms.append(ms)
                    report.events.update(e["type"] for e in events)
                    report.experiments[answer["experiment"]] += 1
                    seen_variant.setdefault(shopper.user_id, answer["variant"])
            with lock:
                report.users += 1

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(one, n) for n in range(users)]
            for f in track(futures, len(futures), "simulated shoppers", enabled=progress):
                f.result()
    finally:
        client.close()
    report.variants.update(seen_variant.values())
    return {"url": url, "data": str(data), "split": split, "seed": seed, **report.as_dict()}


def _arm(m: dict[str, Any]) -> dict[str, Any]:
    """One arm's metric in a round: its value and, against control, the difference and its always-valid interval."""
    out: dict[str, Any] = {"value": m["value"]}
    if "vs_control" in m:
        d = m["vs_control"]
        out.update(difference=d["difference"], always_valid=[d["always_valid_low"], d["always_valid_high"]],
                   significant=d["significant"])
    return out


def simulate_until(url: str, data: Path, experiment: str, settings: Any, *, metric: str, step: int, max_users: int,
                   seed: int = 0, progress: bool = True, **kwargs: Any) -> dict[str, Any]:
    """Shoppers in rounds of ``step`` (new ones each round) until the experiment's report finds an arm whose
    always-valid difference to control on ``metric`` excludes zero, or ``max_users`` have come: how many
    users the difference needed. Reads the report from the event log the service writes (same data dir)."""
    import tempfile

    from visearch.ab.admin import ExperimentAdmin
    from visearch.ab.report import METRICS

    if metric not in METRICS:
        raise InvalidArgumentError(f"--until-significant must be one of {', '.join(METRICS)}, got {metric!r}")
    admin = ExperimentAdmin(settings)
    rounds: list[dict[str, Any]] = []
    total, found = 0, None
    with tempfile.TemporaryDirectory() as tmp:
        while total < max_users and found is None:
            n = min(step, max_users - total)
            simulate(url, data, n, seed=seed + len(rounds), experiment=experiment, progress=progress, **kwargs)
            total += n
            report = admin.report(experiment, out_dir=Path(tmp), log_mlflow=False)
            arms = {name: row[metric] for name, row in report["variants"].items()}
            rounds.append({"simulated": total, "users": report["users"], **{name: _arm(m) for name, m in arms.items()}})
            found = next((name for name, m in arms.items() if m.get("vs_control", {}).get("significant")), None)
    return {"experiment": experiment, "metric": metric, "found": found, "users_needed": total if found else None,
            "max_users": max_users, "rounds": rounds}
