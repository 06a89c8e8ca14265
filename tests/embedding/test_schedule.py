"""The time-budgeted learning-rate schedule of the backbone and head jobs."""

from __future__ import annotations

import time

import torch

from visearch.embedding.schedule import Schedule


def _schedule(total: int) -> Schedule:
    return Schedule(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1), lr=0.1, total=total, warmup=10)


def _steps(s: Schedule, n: int, seconds: float) -> None:
    for _ in range(n):
        time.sleep(seconds)
        s.step()


def test_the_budget_is_timed_on_the_steps_not_on_the_set_up_before_them():
    s = _schedule(total=1000)
    time.sleep(0.5)  # opening the MLflow run, loading photos: not part of the loop's rate
    _steps(s, 5, 0.02)
    total = s.fit(budget_s=1.0)
    # 0.02 s a step: about 50 steps fit a 1-s loop; the old rate (set-up included) gave about 10
    assert 35 <= total <= 52
    assert s.summary()["cut_by_budget"] and s.warmup <= total // 10


def test_a_schedule_that_fits_is_left_alone():
    s = _schedule(total=20)
    _steps(s, 5, 0.001)
    assert s.fit(budget_s=60) == 20 and s.fit(budget_s=None) == 20 and s.warmup == 10


def test_the_learning_rate_warms_up_then_decays_to_the_floor():
    s = _schedule(total=40)
    lrs = []
    for _ in range(40):
        lrs.append(s.optimizer.param_groups[0]["lr"])
        s.step()
    assert lrs[0] < lrs[9] <= 0.1 and max(lrs) <= 0.1
    assert abs(s.optimizer.param_groups[0]["lr"] - 0.1 * s.floor) < 1e-9 and s.finished
