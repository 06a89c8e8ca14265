"""The report's statistics against simulated experiments whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest

from visearch.ab.stats import always_valid, difference, mean_estimate, ratio_estimate, srm_check


def users(rng, n, ctr, impressions=10):
    shown = rng.poisson(impressions, n) + 1
    return rng.binomial(shown, ctr), shown


def test_ctr_interval_covers_the_truth_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        clicks, shown = users(rng, 300, 0.1)
        low, high = ratio_estimate(clicks, shown).interval()
        covered += low <= 0.1 <= high
    assert 0.92 <= covered / 400 <= 0.98


def test_ratio_variance_accounts_for_heavy_users():
    """Users with very different traffic: the delta method's variance is larger than a naive binomial one."""
    rng = np.random.default_rng(1)
    shown = rng.pareto(1.5, 2000).astype(int) * 5 + 1
    ctr = rng.beta(1, 9, 2000)  # each user their own taste
    clicks = rng.binomial(shown, ctr)
    est = ratio_estimate(clicks, shown)
    naive = est.value * (1 - est.value) / shown.sum()
    assert est.variance > 2 * naive


def test_a_real_difference_is_found_and_an_aa_is_not():
    rng = np.random.default_rng(2)
    control = ratio_estimate(*users(rng, 5000, 0.10))
    better = ratio_estimate(*users(rng, 5000, 0.12))
    d = difference(better, control, tau2=0.02 ** 2)
    assert d.low > 0 and d.p_value < 0.001 and d.significant
    assert d.always_low < d.low and d.always_high > d.high, "always-valid intervals are the wider ones"
    assert d.relative == pytest.approx(d.value / control.value)
    false = 0
    for seed in range(200):
        r = np.random.default_rng(100 + seed)
        a, b = ratio_estimate(*users(r, 500, 0.1)), ratio_estimate(*users(r, 500, 0.1))
        false += difference(a, b, tau2=0.02 ** 2).significant
    assert false / 200 <= 0.05


def test_always_valid_holds_under_peeking():
    """An owner who looks after every 100 users of an A/A test and stops at the first 'significant' one:
    the fixed-horizon test fools them far more often than 5%, the always-valid one does not."""
    fixed_wrong = always_wrong = 0
    runs = 150
    for seed in range(runs):
        rng = np.random.default_rng(1000 + seed)
        a = rng.normal(1.0, 1.0, 3000)
        b = rng.normal(1.0, 1.0, 3000)
        fixed_hit = always_hit = False
        for n in range(100, 3001, 100):
            d = difference(mean_estimate(a[:n]), mean_estimate(b[:n]), tau2=0.1 ** 2)
            fixed_hit |= d.p_value < 0.05
            always_hit |= d.significant
        fixed_wrong += fixed_hit
        always_wrong += always_hit
    assert fixed_wrong / runs > 0.15
    assert always_wrong / runs <= 0.05


def test_always_valid_edge_cases():
    assert always_valid(0.0, 0.0, 1.0) == (0.0, 0.0, 1.0)
    low, high, p = always_valid(0.0, 0.01, 0.01)
    assert low < 0 < high and p == 1.0
    assert always_valid(1.0, 0.01, 0.01)[2] < 0.05


def test_srm_flags_a_biased_split_only():
    assert not srm_check({"a": 5030, "b": 4970}, {"a": 50, "b": 50})["mismatch"]
    assert srm_check({"a": 5300, "b": 4700}, {"a": 50, "b": 50})["mismatch"]
    assert not srm_check({"a": 7010, "b": 2990}, {"a": 70, "b": 30})["mismatch"]
    assert srm_check({"a": 100}, {"a": 100})["p_value"] == 1.0


def test_empty_arms_do_not_crash():
    assert mean_estimate([]).users == 0 and ratio_estimate([], []).value == 0.0
    assert ratio_estimate([1], [4]).value == 0.25
