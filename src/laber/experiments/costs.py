r"""Matched-load costs of a compare's arms (``laber cost``, ``costs.json``), for comparisons at equal training time.

The training time a run records at each evaluation is measured inside that run, so it carries whatever else the
machine was doing while the run trained. Runs of a campaign train hours apart, beside other jobs: one arm's runs
may have shared the cores with a benchmark and another's not, and their times are then not comparable. LaBER's
question is one of cost (its updates do more work than uniform's), so this module measures the arms' costs
under matched conditions instead: short timing runs of every arm, interleaved (each repetition runs every arm
once, in an order drawn from ``rng``), so that a load that comes and goes falls on every arm alike.

A timing run is the compare's run with ``steps = L + N`` (``L = learning_starts``, ``N = train_steps``),
evaluations every ``gcd(L, N)`` steps (one episode each; evaluations are left out of the training time, as in a
real run) and no checkpoints. From the training seconds ``t(s)`` it records at evaluations, per run::

    pre    = (t(L) - t(0)) / L          seconds per environment step before learning starts (no updates)
    train  = (t(L + N) - t(L)) / N      seconds per step after it (environment step, action, update)
    update = seconds per update          (``RunResult.seconds_per_update``)

and per arm the median over repetitions. The modelled training time of arm ``a`` at step ``s`` is then::

    T_a(s) = pre * min(s, L) + train_a * max(s - L, 0)

with ``pre`` the median over every timing run (the phase before learning starts does not depend on the arm).
``laber.experiments.report`` uses ``T_a`` in place of the runs' own times for the equal-time comparisons when a
compare directory holds a ``costs.json`` of its settings covering its arms. The model assumes that an arm's cost
per step stays what it was over the first ``N`` training steps; the environment's cost per step can drift as the
policy changes episodes, but it drifts for every arm alike.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber._validation import as_generator, check_positive_int
from laber.agents.registry import config_from_record, kind_of

__all__ = ["COSTS_FILE", "ArmCost", "CostTable", "load_costs", "measure_costs"]

COSTS_FILE = "costs.json"
_MAX_EVALUATIONS = 1000  # a timing run's evaluations: gcd(L, N) must not split the run finer than this


@dataclass(frozen=True)
class ArmCost:
    """One arm's timing runs: seconds per step before and after learning starts, and per update, one per run."""

    arm: str
    pre_step: tuple[float, ...]
    train_step: tuple[float, ...]
    update: tuple[float, ...]

    @property
    def train_seconds(self) -> float:
        """Median seconds per environment step after learning starts."""
        return float(np.median(self.train_step))

    @property
    def update_seconds(self) -> float:
        """Median seconds per update."""
        return float(np.median(self.update))


@dataclass(frozen=True)
class CostTable:
    """The matched-load costs of a compare's arms (see the module docstring); ``settings`` are the compare's
    (its runs' config without arm and seed), ``learning_starts`` and ``train_steps`` the timing runs' ``L``
    and ``N``."""

    settings: dict[str, Any]
    learning_starts: int
    train_steps: int
    reps: int
    arms: dict[str, ArmCost]

    @property
    def pre_seconds(self) -> float:
        """Median seconds per step before learning starts, over every timing run."""
        return float(np.median([t for cost in self.arms.values() for t in cost.pre_step]))

    def times(self, arm: str, steps: np.ndarray | Sequence[int]) -> np.ndarray:
        """Modelled training seconds of ``arm`` at ``steps``: ``pre * min(s, L) + train_arm * max(s - L, 0)``."""
        if arm not in self.arms:
            raise KeyError(f"no costs measured for arm {arm!r}; measured: {', '.join(self.arms)}")
        s = np.asarray(steps, dtype=np.float64)
        lead = float(self.learning_starts)
        return self.pre_seconds * np.minimum(s, lead) + self.arms[arm].train_seconds * np.maximum(s - lead, 0.0)

    def ratio(self, arm: str, base: str = "uniform") -> float:
        """``arm``'s median seconds per update over ``base``'s (NaN when either was not measured)."""
        if arm not in self.arms or base not in self.arms:
            return math.nan
        return self.arms[arm].update_seconds / self.arms[base].update_seconds

    def covers(self, settings: dict[str, Any], arms: Sequence[str]) -> str | None:
        """None when this table was measured for ``settings`` and every arm of ``arms``; otherwise why not."""
        if settings != self.settings:
            keys = sorted(k for k in set(settings) | set(self.settings) if settings.get(k) != self.settings.get(k))
            details = ", ".join(f"{k}={self.settings.get(k)!r} (the runs: {settings.get(k)!r})" for k in keys)
            return f"measured for other settings: {details}"
        missing = [a for a in arms if a not in self.arms]
        return f"no costs for arm(s) {', '.join(missing)}" if missing else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "learning_starts": self.learning_starts,
            "train_steps": self.train_steps,
            "reps": self.reps,
            "arms": {
                arm: {"pre_step": list(c.pre_step), "train_step": list(c.train_step), "update": list(c.update)}
                for arm, c in self.arms.items()
            },
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CostTable:
        try:
            arms = {
                str(arm): ArmCost(
                    str(arm),
                    tuple(float(x) for x in c["pre_step"]),
                    tuple(float(x) for x in c["train_step"]),
                    tuple(float(x) for x in c["update"]),
                )
                for arm, c in data["arms"].items()
            }
            table = cls(
                dict(data["settings"]),
                int(data["learning_starts"]),
                int(data["train_steps"]),
                int(data["reps"]),
                arms,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a laber costs table: {exc!r}") from exc
        if not arms or any(
            not (len(c.pre_step) == len(c.train_step) == len(c.update) > 0)
            or not all(math.isfinite(x) and x > 0 for x in (*c.pre_step, *c.train_step, *c.update))
            for c in arms.values()
        ):
            raise ValueError("not a laber costs table: every arm needs as many positive, finite timings of each kind")
        return table

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON to ``path`` (atomically: a temporary file renamed over it)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        os.replace(tmp, target)
        return target


def load_costs(root: str | os.PathLike[str]) -> CostTable | None:
    """The ``costs.json`` of the compare directory ``root``, or None when it has none; a damaged file is a
    ``ValueError`` naming it."""
    path = Path(root) / COSTS_FILE
    if not path.is_file():
        return None
    try:
        return CostTable.from_dict(json.loads(path.read_text()))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{str(path)!r}: {exc}") from exc


def timing_config(config: Any, arm: str, seed: int, train_steps: int) -> Any:
    """The timing run of ``config`` for ``arm``: ``learning_starts + train_steps`` steps, an evaluation (of one
    episode) every ``gcd(learning_starts, train_steps)`` steps, the seed ``seed``."""
    lead = int(config.learning_starts)
    every = math.gcd(lead, train_steps)
    if (lead + train_steps) // every > _MAX_EVALUATIONS:
        raise ValueError(
            f"train_steps={train_steps} and learning_starts={lead} share only the divisor {every}: the timing run "
            f"would evaluate {(lead + train_steps) // every} times; pick a train_steps that shares a larger divisor "
            f"(a multiple of {lead}, or of a large divisor of it)"
        )
    return replace(config, arm=arm, seed=seed, steps=lead + train_steps, eval_every=every, eval_episodes=1)


def warmup_config(config: Any, arm: str) -> Any:
    """A short untimed run of ``arm``: learning starts, then 100 updates, evaluated only at its start and end."""
    steps = int(config.learning_starts) + 100 * int(getattr(config, "train_freq", 1))
    return replace(config, arm=arm, seed=0, steps=steps, eval_every=steps, eval_episodes=1)


def measure_costs(
    config: Any,
    arms: Sequence[str],
    *,
    train_steps: int = 2000,
    reps: int = 5,
    rng: int | np.random.Generator | None = 0,
    warmup: bool = True,
    on_run: Callable[[int, str, ArmCost], None] | None = None,
) -> CostTable:
    """Time ``reps`` interleaved rounds of short runs of every arm of ``arms`` with ``config``'s other settings.

    ``config``: a ``laber.agents.DQNConfig`` or ``laber.agents.sac.SACConfig`` (its arm and seed are ignored).
    Each round runs every arm once, in an order drawn from ``rng``, timing run ``k`` of every arm with seed
    ``k``; ``on_run(k, arm, cost)`` is called after each with that run's timings. With ``warmup``, a short
    untimed run of every arm comes first (the first run of a process compiles laber's numba kernels, which
    would otherwise be counted against whichever arm came first). Runs in this process with one
    torch thread (as ``laber run`` trains); the thread count is restored afterwards. Everything is checked
    before the first run: an unknown arm, a ``train_steps`` or ``reps`` that is not a positive integer and an
    environment the agent cannot train on are errors naming the argument.
    """
    kind = kind_of(config)
    train_steps = check_positive_int(train_steps, "train_steps")
    reps = check_positive_int(reps, "reps")
    arms = list(arms)
    if not arms or len(set(arms)) != len(arms):
        raise ValueError(f"arms must be distinct arm names, at least one, got arms={arms!r}")
    unknown = [a for a in arms if a not in kind.arms]
    if unknown:
        raise ValueError(f"arms {unknown} are not arms of the {kind.name} agent; its arms: {', '.join(kind.arms)}")
    gen = as_generator(rng)
    plans = [timing_config(config, arm, 0, train_steps) for arm in arms]  # every arm's settings are valid
    kind.check(plans[0])
    settings = config.to_dict()
    settings.pop("arm")
    settings.pop("seed")
    lead = int(config.learning_starts)

    torch = require("torch", "laber cost")

    threads = torch.get_num_threads()
    timings: dict[str, list[tuple[float, float, float]]] = {arm: [] for arm in arms}
    try:
        torch.set_num_threads(1)
        if warmup:  # untimed: compiles the numba kernels and fills torch's caches before any run is timed
            for arm in arms:
                kind.train(warmup_config(config, arm))
        for k in range(reps):
            for i in gen.permutation(len(arms)):
                arm = arms[int(i)]
                result = kind.train(timing_config(config, arm, k, train_steps))
                steps = list(result.eval_steps)
                t = result.eval_train_seconds
                t0, t_lead, t_end = t[0], t[steps.index(lead)], t[steps.index(lead + train_steps)]
                run = ((t_lead - t0) / lead, (t_end - t_lead) / train_steps, result.seconds_per_update)
                timings[arm].append(run)
                if on_run is not None:
                    on_run(k, arm, ArmCost(arm, (run[0],), (run[1],), (run[2],)))
    finally:
        torch.set_num_threads(threads)
    costs = {
        arm: ArmCost(arm, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))
        for arm, rows in timings.items()
    }
    return CostTable(settings, lead, train_steps, reps, costs)


def config_of_compare(root: str | os.PathLike[str]) -> tuple[Any, list[str]]:
    """The run config (arm and seed of its first arm, seed 0) and the arms of the compare directory ``root``,
    from its ``compare.json``; a ``FileNotFoundError`` or ``ValueError`` naming the file otherwise."""
    from laber.experiments.runs import COMPARE_SETTINGS_FILE

    path = Path(root) / COMPARE_SETTINGS_FILE
    try:
        data = json.loads(path.read_text())
        arms = [str(a) for a in data["arms"]]
        config = config_from_record({**data["settings"], "arm": arms[0], "seed": 0})
    except FileNotFoundError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"{str(path)!r} is not a laber compare's settings: {exc!r}") from exc
    return config, arms
