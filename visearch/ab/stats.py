"""The statistics of an A/B report: intervals per variant, differences to control, SRM, always-valid intervals.

Every metric is measured per *user* (the unit that was randomised): a user's clicks over
their impressions, their orders, their revenue. Rates that divide two per-user sums (CTR =
all clicks / all impressions) get their variance by the delta method, so heavy users do not
pass for independent samples.

Fixed-horizon intervals are valid only if the owner looks once, at a size chosen in advance.
The always-valid intervals (a normal-mixture sequential test, Johari et al., "Always Valid
Inference", 2017) hold at every look at once: an owner may watch the report daily and stop
when the interval leaves zero, at the price of a wider interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["Estimate", "Difference", "mean_estimate", "ratio_estimate", "difference", "always_valid", "srm_check"]

Z95 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class Estimate:
    """A metric of one variant: its value and the variance of that value (not of a user's value)."""

    value: float
    variance: float
    users: int

    def interval(self, z: float = Z95) -> tuple[float, float]:
        half = z * math.sqrt(max(self.variance, 0.0))
        return self.value - half, self.value + half


@dataclass(frozen=True)
class Difference:
    """Treatment minus control: the fixed-horizon interval and test, and the always-valid interval."""

    value: float
    relative: float | None  # value / control value
    low: float
    high: float
    p_value: float
    always_low: float
    always_high: float
    always_p_value: float

    @property
    def significant(self) -> bool:
        """Whether the always-valid interval excludes zero: safe to act on at any look."""
        return self.always_low > 0 or self.always_high < 0


def mean_estimate(per_user: Sequence[float]) -> Estimate:
    """The mean of a per-user metric (orders per user, revenue per user)."""
    x = np.asarray(per_user, np.float64)
    n = len(x)
    if n == 0:
        return Estimate(0.0, 0.0, 0)
    var = float(x.var(ddof=1)) / n if n > 1 else 0.0
    return Estimate(float(x.mean()), var, n)


def ratio_estimate(numerator: Sequence[float], denominator: Sequence[float]) -> Estimate:
    """sum(numerator) / sum(denominator) over users (CTR: clicks over impressions), delta-method variance."""
    a, b = np.asarray(numerator, np.float64), np.asarray(denominator, np.float64)
    n = len(a)
    if n == 0 or b.sum() <= 0:
        return Estimate(0.0, 0.0, n)
    ratio = float(a.sum() / b.sum())
    if n < 2:
        return Estimate(ratio, 0.0, n)
    mean_b = b.mean()
    cov = np.cov(a, b, ddof=1)
    var = (cov[0, 0] - 2 * ratio * cov[0, 1] + ratio * ratio * cov[1, 1]) / (n * mean_b * mean_b)
    return Estimate(ratio, float(max(var, 0.0)), n)


def always_valid(value: float, variance: float, tau2: float, alpha: float = 0.05) -> tuple[float, float, float]:
    """(low, high, p) of a normal-mixture sequential test of ``value`` = 0 with mixing variance ``tau2``.

    The mixture likelihood ratio is sqrt(V / (V + tau2)) * exp(tau2 * value^2 / (2 V (V + tau2))) for an
    estimate of variance V; the p-value is its inverse (capped at 1) and the interval is every effect the
    test would not reject at ``alpha``. ``tau2`` is the spread of effects one expects: near the true
    effect, the interval is tightest.
    """
    if variance <= 0 or tau2 <= 0:
        return value, value, 1.0 if value == 0 else 0.0
    v, t = variance, tau2
    half = math.sqrt(v * (v + t) / t * (2 * math.log(1 / alpha) + math.log((v + t) / v)))
    log_lr = 0.5 * math.log(v / (v + t)) + t * value * value / (2 * v * (v + t))
    p = 1.0 if log_lr <= 0 else min(1.0, math.exp(-log_lr))
    return value - half, value + half, p


def difference(treatment: Estimate, control: Estimate, tau2: float, alpha: float = 0.05) -> Difference:
    """Treatment minus control (independent arms): Welch's z-test and the always-valid interval."""
    diff = treatment.value - control.value
    var = treatment.variance + control.variance
    z = float(stats.norm.ppf(1 - alpha / 2))
    half = z * math.sqrt(var)
    p = float(2 * stats.norm.sf(abs(diff) / math.sqrt(var))) if var > 0 else (1.0 if diff == 0 else 0.0)
    low, high, always_p = always_valid(diff, var, tau2, alpha)
    relative = diff / control.value if control.value else None
    return Difference(diff, relative, diff - half, diff + half, p, low, high, always_p)


def srm_check(users: dict[str, int], weights: dict[str, int], threshold: float = 0.001) -> dict[str, object]:
    """Sample-ratio mismatch: a chi-square test of the users per arm against the arms' weights.

    A p-value under ``threshold`` means the split is broken (a biased assignment, lost events of one
    arm), and no other number of the report can be trusted.
    """
    arms = [a for a in weights if weights[a] > 0]
    observed = np.array([users.get(a, 0) for a in arms], np.float64)
    total = observed.sum()
    if len(arms) < 2 or total == 0:
        return {"p_value": 1.0, "mismatch": False, "observed": users, "expected_share": weights}
    expected = np.array([weights[a] for a in arms], np.float64)
    expected = expected / expected.sum() * total
    p = float(stats.chisquare(observed, expected).pvalue)
    return {"p_value": p, "mismatch": p < threshold, "observed": {a: int(o) for a, o in zip(arms, observed, strict=True)},
            "expected": {a: round(float(e), 1) for a, e in zip(arms, expected, strict=True)}}
