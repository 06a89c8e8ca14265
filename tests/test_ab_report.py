"""Experiment reports from event rows: per-user totals, mixed users, SRM across weight changes, chart."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from visearch.ab.report import experiment_report, report_chart
from visearch.experiments import Experiment, ExperimentStore, Variant, assign


def split(a=50, b=50, name="exp"):
    return Experiment(name=name, variants=[Variant(name="control", weight=a), Variant(name="treatment", weight=b)])


def shoppers(exp, n, ctr, rng, ts=0.0, order_p=0.3, biased=None):
    """Event rows of ``n`` users of ``exp``: each shown 10 products, clicks with their arm's CTR."""
    rows = []
    for i in range(n):
        user = f"u{ts:.0f}-{i}"
        arm = assign(exp, user).name if biased is None else biased(user)
        for k in range(10):
            rows.append({"type": "impression", "user_id": user, "variant": arm, "ts": ts + i, "product_id": f"p{k}"})
            if rng.random() < ctr[arm]:
                rows.append({"type": "click", "user_id": user, "variant": arm, "ts": ts + i + 0.1})
                if rng.random() < order_p:
                    rows.append({"type": "add_to_cart", "user_id": user, "variant": arm, "ts": ts + i + 0.2})
                    rows.append({"type": "order", "user_id": user, "variant": arm, "ts": ts + i + 0.3, "value": 20.0})
    return rows


def test_a_better_arm_is_found(tmp_path):
    rng = np.random.default_rng(0)
    exp = ExperimentStore(tmp_path).put(split())
    r = experiment_report(shoppers(exp, 3000, {"control": 0.10, "treatment": 0.13}, rng), [exp])
    t = r["variants"]["treatment"]
    assert r["control"] == "control" and r["users"] == 3000 and not r["srm"]["mismatch"]
    assert t["ctr"]["vs_control"]["significant"] and t["ctr"]["vs_control"]["difference"] > 0.015
    assert t["ctr"]["low"] < t["ctr"]["value"] < t["ctr"]["high"]
    assert t["revenue_per_user"]["value"] > r["variants"]["control"]["revenue_per_user"]["value"]
    png = report_chart(r, tmp_path / "r.png")
    assert Image.open(png).width > 800


def test_an_aa_run_finds_nothing(tmp_path):
    rng = np.random.default_rng(1)
    exp = ExperimentStore(tmp_path).put(split())
    r = experiment_report(shoppers(exp, 3000, {"control": 0.1, "treatment": 0.1}, rng), [exp])
    assert not any(r["variants"]["treatment"][m]["vs_control"]["significant"] for m in
                   ("ctr", "add_to_cart_rate", "order_rate", "revenue_per_user"))


def test_a_biased_assignment_is_flagged(tmp_path):
    rng = np.random.default_rng(2)
    exp = ExperimentStore(tmp_path).put(split())
    biased = lambda u: "control" if int(u.split("-")[1]) % 100 < 56 else "treatment"  # noqa: E731 - 56/44, not 50/50
    r = experiment_report(shoppers(exp, 4000, {"control": 0.1, "treatment": 0.1}, rng, biased=biased), [exp])
    assert r["srm"]["mismatch"] and r["srm"]["p_value"] < 0.001


def test_weight_changes_keep_srm_honest_and_movers_are_left_out(tmp_path):
    store = ExperimentStore(tmp_path)
    rng = np.random.default_rng(3)
    v1 = store.put(split(80, 20))
    v2 = store.put(split(50, 50))
    v1 = v1.model_copy(update={"created": 0.0})
    v2 = v2.model_copy(update={"created": 10_000.0})
    rows = shoppers(v1, 2000, {"control": 0.1, "treatment": 0.1}, rng, ts=0.0)
    rows += shoppers(v2, 2000, {"control": 0.1, "treatment": 0.1}, rng, ts=10_000.0)
    # users of the first era who came back after the change and now sit in the other arm
    movers = [u for u in {r["user_id"] for r in rows if r["ts"] < 10_000} if assign(v1, u).name != assign(v2, u).name]
    assert movers, "raising treatment from 20 to 50 moves some control users"
    rows += [{"type": "impression", "user_id": u, "variant": assign(v2, u).name, "ts": 20_000.0} for u in movers]
    r = experiment_report(rows, [v1, v2])
    assert r["mixed_users"] == len(movers) and r["users"] == 4000 - len(movers)
    assert not r["srm"]["mismatch"], r["srm"]
    assert experiment_report(rows, [v2])["srm"]["mismatch"], "judged by the last weights alone, the split looks broken"


def test_control_must_exist(tmp_path):
    with pytest.raises(Exception, match="no variant"):
        experiment_report([], [split()], control="nope")


def test_guardrails_judge_each_variant_after_enough_requests():
    from visearch.ab.guardrails import GuardrailWatch
    from visearch.experiments import Guardrails

    watch = GuardrailWatch(Guardrails(p95_ms=100, max_error_rate=0.1, min_requests=20, window=50))
    assert all(watch.observe("a", 500.0, False) is None for _ in range(19)), "too few requests to judge"
    assert "p95 latency 500 ms > 100 ms" in watch.observe("a", 500.0, False)
    for _ in range(40):
        assert watch.observe("b", 20.0, False) is None
    reason = None
    for _ in range(10):
        reason = reason or watch.observe("b", 20.0, True)
    assert reason is not None and "error rate" in reason and "'b'" in reason
