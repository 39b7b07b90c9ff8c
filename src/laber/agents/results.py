"""What a training run of a reference agent produces (``RunResult``), and the timed evaluations that fill it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RunResult", "TimedEvaluations"]


@dataclass
class RunResult:
    """What one run produced: evaluation curve, training episodes and timing.

    ``eval_train_seconds[k]``: wall-clock seconds from the start of the run to evaluation ``k``, the time spent
    in the evaluations before it left out (what the comparisons at equal training time use).
    """

    config: Any  # the agent's config (laber.agents.DQNConfig, laber.agents.sac.SACConfig)
    eval_steps: list[int] = field(default_factory=list)
    eval_returns: list[float] = field(default_factory=list)
    eval_train_seconds: list[float] = field(default_factory=list)
    episode_steps: list[int] = field(default_factory=list)
    episode_returns: list[float] = field(default_factory=list)
    updates: int = 0
    update_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def seconds_per_update(self) -> float:
        """Mean wall-clock time of one update (sampling, priorities, forward, backward, optimiser step)."""
        return self.update_seconds / self.updates if self.updates else math.nan


class TimedEvaluations:
    """``evaluations(step)`` runs ``evaluate()`` (the mean return of the evaluation episodes), records the step, the
    value and the training time so far in ``result``, and calls ``on_eval(step, value)``."""

    def __init__(
        self,
        result: RunResult,
        start: float,
        evaluate: Callable[[], float],
        on_eval: Callable[[int, float], None] | None = None,
    ) -> None:
        self.result = result
        self.start = start  # time.perf_counter() when the run started
        self.evaluate = evaluate
        self.on_eval = on_eval
        self.spent = 0.0  # seconds spent in evaluations so far

    def __call__(self, step: int) -> float:
        t0 = time.perf_counter()
        value = self.evaluate()
        self.result.eval_steps.append(step)
        self.result.eval_returns.append(value)
        self.result.eval_train_seconds.append(t0 - self.start - self.spent)
        self.spent += time.perf_counter() - t0
        if self.on_eval is not None:
            self.on_eval(step, value)
        return value
