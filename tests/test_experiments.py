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


def test_raising_a_weight_moves_only_users_of_the_arms_that_shrink(tmp_path):
    store = ExperimentStore(tmp_path)
    users = [f"user-{i}" for i in range(5000)]
    v1 = store.put(exp(a=50, b=30, c=20))
    v2 = store.put(exp(a=40, b=30, c=30))  # c takes 10 from a; b is untouched
    before, after = ({u: assign(v, u).name for u in users} for v in (v1, v2))
    moved = Counter((before[u], after[u]) for u in users if before[u] != after[u])
    assert set(moved) == {("a", "c")}, f"only users of the shrinking arm move, got {dict(moved)}"
    assert all(after[u] == "b" for u in users if before[u] == "b")
    assert all(after[u] == "c" for u in users if before[u] == "c")
    assert abs(Counter(after.values())["c"] / len(users) - 0.30) < 0.03
    assert Counter(v2.allocation) == {"a": 40, "b": 30, "c": 30}


def test_a_new_arm_and_a_removed_arm_reallocate_minimally(tmp_path):
    store = ExperimentStore(tmp_path)
    store.put(exp(a=50, b=50))
    v2 = store.put(exp(a=50, b=30, c=20))
    v3 = store.put(exp(a=50, c=50))  # b goes away: its buckets go to c, a keeps all of its own
    assert [i for i, o in enumerate(v2.allocation) if o == "a"] == [i for i, o in enumerate(v3.allocation) if o == "a"]
    assert all(o3 == "c" for o2, o3 in zip(v2.allocation, v3.allocation, strict=True) if o2 in ("b", "c"))
    stored = store.get("head-size")
    assert stored.allocation == v3.allocation, "the allocation is part of the stored version"


def test_an_allocation_must_match_the_weights():
    with pytest.raises(ValueError, match="allocation"):
        Experiment(name="x", variants=[Variant(name="a", weight=60), Variant(name="b", weight=40)], allocation=["a"] * 100)
    e = Experiment(name="x", variants=[Variant(name="a", weight=60), Variant(name="b", weight=40)],
                   allocation=["b"] * 40 + ["a"] * 60)
    assert Counter(assign(e, f"u{i}").name for i in range(5000))["b"] > 1600
