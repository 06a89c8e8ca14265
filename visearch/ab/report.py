"""An experiment's report from the event log: per variant, per user, against control.

Metrics (each per variant, with a 95% interval; differences to control with their test and an
always-valid interval, :mod:`visearch.ab.stats`):

- ``ctr``: clicks / impressions
- ``add_to_cart_rate``: add-to-carts / impressions
- ``order_rate``: share of users who ordered at least once
- ``revenue_per_user``: revenue of orders / users

Users are the randomised unit. A user whose events name two variants (moved when the weights
changed, or a broken client) is left out of every figure and counted under ``mixed_users``.
The sample-ratio check compares users per arm with what the weights promised, each user
counted under the experiment version that was live at their first event.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from visearch.ab.stats import Estimate, difference, mean_estimate, ratio_estimate, srm_check
from visearch.experiments import Experiment

__all__ = ["METRICS", "UserTotals", "user_totals", "experiment_report", "report_chart"]

METRICS = ("ctr", "add_to_cart_rate", "order_rate", "revenue_per_user")


@dataclass
class UserTotals:
    variants: set[str] = field(default_factory=set)
    impressions: int = 0
    clicks: int = 0
    carts: int = 0
    orders: int = 0
    revenue: float = 0.0
    first_ts: float = float("inf")


def user_totals(events: Iterable[dict[str, Any]]) -> dict[str, UserTotals]:
    """Per user, what they were shown and did (events without a user or a variant are skipped)."""
    users: dict[str, UserTotals] = {}
    for e in events:
        if not e.get("user_id") or not e.get("variant"):
            continue
        u = users.setdefault(e["user_id"], UserTotals())
        u.variants.add(e["variant"])
        u.first_ts = min(u.first_ts, float(e.get("ts") or 0.0))
        kind = e["type"]
        if kind == "impression":
            u.impressions += 1
        elif kind == "click":
            u.clicks += 1
        elif kind == "add_to_cart":
            u.carts += 1
        elif kind == "order":
            u.orders += 1
            u.revenue += float(e.get("value") or 0.0)
    return users


def _estimates(group: list[UserTotals]) -> dict[str, Estimate]:
    shown = [u.impressions for u in group]
    return {
        "ctr": ratio_estimate([u.clicks for u in group], shown),
        "add_to_cart_rate": ratio_estimate([u.carts for u in group], shown),
        "order_rate": mean_estimate([1.0 if u.orders else 0.0 for u in group]),
        "revenue_per_user": mean_estimate([u.revenue for u in group]),
    }


def _live_version(versions: Sequence[Experiment], ts: float) -> Experiment:
    """The version that was live at ``ts`` (versions sorted by creation; the first before any timestamp)."""
    created = [v.created or 0.0 for v in versions]
    return versions[max(0, bisect.bisect_right(created, ts) - 1)]


def experiment_report(events: Iterable[dict[str, Any]], versions: Sequence[Experiment], *, control: str | None = None,
                      alpha: float = 0.05, effect: float = 0.1, srm_threshold: float = 0.001) -> dict[str, Any]:
    """The report of one experiment from its events and every stored version of it (oldest first).

    ``control`` defaults to a variant named ``control``, else the first; ``effect`` is the relative effect one
    expects, which sets the always-valid intervals' mixing spread (tightest for effects near it).
    """
    if not versions:
        raise ValueError("an experiment report needs at least one version of the experiment")
    current = versions[-1]
    names = [v.name for v in current.variants]
    control = control or ("control" if "control" in names else names[0])
    current.variant(control)  # a clear error when the control arm does not exist
    users = user_totals(events)
    mixed = {u for u, t in users.items() if len(t.variants) > 1}
    arms: dict[str, list[UserTotals]] = {}
    for uid, t in users.items():
        if uid not in mixed:
            arms.setdefault(next(iter(t.variants)), []).append(t)
    known = {v.name for ver in versions for v in ver.variants}
    unknown = sorted(set(arms) - known)
    estimates = {name: _estimates(arms.get(name, [])) for name in names}
    variants: dict[str, Any] = {}
    for name in names:
        group = arms.get(name, [])
        row: dict[str, Any] = {"users": len(group), "impressions": sum(u.impressions for u in group),
                               "clicks": sum(u.clicks for u in group), "add_to_cart": sum(u.carts for u in group),
                               "orders": sum(u.orders for u in group), "revenue": round(sum(u.revenue for u in group), 2)}
        for metric, est in estimates[name].items():
            low, high = est.interval()
            row[metric] = {"value": est.value, "low": low, "high": high}
            if name != control:
                base = estimates[control][metric]
                tau2 = (effect * base.value) ** 2 if base.value else max(est.variance, 1e-12)
                d = difference(est, base, tau2=tau2, alpha=alpha)
                row[metric]["vs_control"] = {
                    "difference": d.value, "relative": d.relative, "low": d.low, "high": d.high, "p_value": d.p_value,
                    "always_valid_low": d.always_low, "always_valid_high": d.always_high,
                    "always_valid_p_value": d.always_p_value, "significant": d.significant}
        variants[name] = row
    expected: dict[str, float] = {n: 0.0 for n in names}
    for uid, t in users.items():
        if uid in mixed:
            continue
        live = _live_version(versions, t.first_ts)
        for v in live.variants:
            expected[v.name] = expected.get(v.name, 0.0) + v.weight
    observed = {n: len(arms.get(n, [])) for n in expected}
    srm = srm_check(observed, {n: round(w) for n, w in expected.items()}, srm_threshold)
    return {"experiment": current.name, "version": current.version, "control": control,
            "users": sum(observed.values()), "mixed_users": len(mixed), "unknown_variants": unknown,
            "alpha": alpha, "expected_effect": effect, "srm": srm, "variants": variants}


def report_chart(report: dict[str, Any], path: Path) -> Path:
    """Each metric per variant with its 95% interval: a PNG beside the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(report["variants"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6))
    for ax, metric in zip(axes, METRICS, strict=True):
        vals = [report["variants"][n][metric] for n in names]
        centre = [v["value"] for v in vals]
        err = [[v["value"] - v["low"] for v in vals], [v["high"] - v["value"] for v in vals]]
        colours = ["#888888" if n == report["control"] else
                   ("#2a9d8f" if report["variants"][n][metric]["vs_control"]["significant"] else "#e9c46a") for n in names]
        ax.bar(names, centre, yerr=err, color=colours, capsize=6)
        ax.set_title(metric.replace("_", " "))
        ax.tick_params(axis="x", rotation=20)
    srm = report["srm"]
    fig.suptitle(f"{report['experiment']} v{report['version']}: {report['users']:,} users"
                 f" ({report['mixed_users']} in two arms left out); SRM p={srm['p_value']:.3g}"
                 f"{'  MISMATCH' if srm['mismatch'] else ''}; green: always-valid difference to {report['control']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
