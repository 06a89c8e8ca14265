"""The traffic splitter is a pure function; the store keeps every version."""

from __future__ import annotations

from collections import Counter

import pytest

from visearch.errors import DatasetError, InvalidArgumentError, NotFoundError
from visearch.experiments import Experiment, ExperimentStore, Variant, assign, bucket


def exp(name="head-size", **weights):
    weights = weights or {"d128": 50, "d256": 50}
    return Experiment(name=name, variants=[Variant(name=n, weight=w, online_dim=256 if "256" in n else 128)
                                           for n, w in weights.items()])


def test_assignment_is_sticky_and_follows_the_weights():
    e = exp(control=70, treatment=30)
    users = [f"user-{i}" for i in range(20000)]
    first = [assign(e, u).name for u in users]
    assert first == [assign(e, u).name for u in users], "the same user always lands in the same arm"
    share = Counter(first)["treatment"] / len(users)
    assert abs(share - 0.30) < 0.015


def test_experiments_are_independent():
    a, b = exp("exp-a"), exp("exp-b")
    users = [f"u{i}" for i in range(20000)]
    both = Counter((assign(a, u).name, assign(b, u).name) for u in users)
    for cell in both.values():  # four cells of ~25% each when the salts are independent
        assert abs(cell / len(users) - 0.25) < 0.02


def test_bucket_is_stable_across_runs():
    assert bucket("salt", "user-1") == bucket("salt", "user-1")
    assert 0 <= bucket("salt", "пользователь") < 100


@pytest.mark.parametrize(
    ("variants", "needle"),
    [
        ([("a", 50), ("b", 40)], "sum to 100"),
        ([("a", 50), ("a", 50)], "unique"),
        ([("a b", 100)], "variant name"),
        ([("a", 101)], "less than or equal"),
    ],
)
def test_bad_experiments_are_refused(variants, needle):
    with pytest.raises(ValueError, match=needle):
        Experiment(name="x", variants=[Variant(name=n, weight=w) for n, w in variants])


def test_online_dim_is_128_or_256():
    with pytest.raises(ValueError, match="128"):
        Variant(name="a", weight=100, online_dim=64)


def test_empty_user_is_refused():
    with pytest.raises(InvalidArgumentError):
        assign(exp(), "")


def test_store_keeps_versions_and_what_serves(tmp_path):
    store = ExperimentStore(tmp_path)
    assert store.serving() is None and store.stamp() == (None, 0)
    v1 = store.put(exp())
    v2 = store.put(exp(d128=80, d256=20))
    assert (v1.version, v2.version) == (1, 2) and store.versions("head-size") == [1, 2]
    assert store.get("head-size", 1).variants[0].weight == 50 and store.get("head-size").variants[0].weight == 80
    store.serve("head-size")
    assert store.serving().version == 2 and store.stamp() == ("head-size", 2)
    store.put(exp(d128=10, d256=90))
    assert store.stamp() == ("head-size", 3), "a new version changes the stamp, so services reload"
    with pytest.raises(NotFoundError):
        store.serve("nope")
    (tmp_path / "head-size" / "v000004.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a valid experiment"):
        store.get("head-size")
