"""Learning-rate schedule with a time budget, shared by the backbone and head jobs.

A recipe promises a wall-clock time on a stated machine ("quick: within 20 minutes on
2 cores"). Rather than stopping a cosine schedule half way when time runs out, the job
times its first steps and, if the planned steps would not fit the budget, shortens the
schedule once, before the progress bar starts: the run still warms up and decays
properly, only over fewer steps. The card records planned and done steps. The rate is
timed between the ends of the first and the last probe step, so set-up before the loop
(opening the MLflow run) and the first step's one-off costs do not shrink the schedule.

>>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
>>> s = Schedule(opt, lr=0.1, total=100, warmup=10)
>>> s.step(); round(opt.param_groups[0]["lr"], 3)
0.018
"""

from __future__ import annotations

import math
import time

import torch

__all__ = ["Schedule"]


class Schedule:
    """Linear warm-up to ``lr`` then cosine decay to ``floor * lr`` over ``total`` steps."""

    def __init__(self, optimizer: torch.optim.Optimizer, lr: float, total: int, warmup: int, floor: float = 0.05) -> None:
        self.optimizer, self.lr, self.warmup, self.floor = optimizer, lr, warmup, floor
        self.planned = self.total = max(1, total)
        self.done = 0
        self.started = time.perf_counter()
        self._first_end = self._last_end = self.started
        self._set(0)

    def _set(self, step: int) -> None:
        if step < self.warmup:
            f = (step + 1) / (self.warmup + 1)
        else:
            progress = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            f = self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * progress))
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr * f

    def step(self) -> None:
        """Count one optimizer step and set the next step's learning rate."""
        now = time.perf_counter()
        if self.done == 0:
            self._first_end = now
        self._last_end = now
        self.done += 1
        self._set(self.done)

    def fit(self, budget_s: float | None) -> int:
        """Shorten ``total`` so the loop fits ``budget_s``, at the rate of the steps after the first."""
        if budget_s is None or self.done < 2:
            return self.total
        per_step = (self._last_end - self._first_end) / (self.done - 1)
        spent = per_step * self.done  # the probe steps, each counted at the steady rate
        fits = self.done + int(max(0.0, budget_s - spent) / max(per_step, 1e-9))
        if fits < self.total:
            self.total = max(self.done + 1, fits)
            self.warmup = min(self.warmup, max(0, self.total // 10))
        return self.total

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    def summary(self) -> dict[str, float | int | bool]:
        return {"planned_steps": self.planned, "steps": self.done, "cut_by_budget": self.total < self.planned,
                "seconds": round(time.perf_counter() - self.started, 1)}
