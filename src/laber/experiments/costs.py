r"""Matched-load costs of a compare's arms (``laber cost``, ``costs.json``), for comparisons at equal training time.

The training time a run records at each evaluation is measured inside that run, so it carries whatever else the
machine was doing while the run trained. Runs of a campaign train hours apart, beside other jobs: one arm's runs
may have shared the cores with a benchmark and another's not, and their times are then not comparable. LaBER's
question is one of cost (its updates do more work than uniform's), so this module measures the arms' costs
under matched conditions instead: short timing runs of every arm, interleaved (each round runs every arm once,
in an order drawn from ``rng``), so that a load that comes and goes falls on every arm alike.

A timing run is the compare's run shortened to a steady-state window. Its random phase fills the buffer as far
as the real run's buffer gets, up to ``fill_cap`` rows (``F`` steps, a multiple of ``N``; at least
``learning_starts``), so that sampling reads a buffer of the real size. Then ``N = train_steps`` steps train with
exploration at its final rate (a DQN's ``eps_end`` from the first training step, as over most of a real run;
SAC acts with its policy). It evaluates every ``N`` steps, one episode each; evaluations are left out of the
training time, as in a real run. It writes no checkpoints. From the training seconds ``t(s)`` it records at
evaluations, per run::

    pre    = (t(F) - t(0)) / F          seconds per environment step before learning starts (random actions)
    train  = (t(F + N) - t(F)) / N      seconds per step after it (environment step, action, update)
    update = seconds per update          (``RunResult.seconds_per_update``)

Per arm, the cost relative to ``uniform`` is the median over rounds of the *paired* ratio (the arm's run and
uniform's in the same round, minutes apart), with its range over rounds; the arm's ``train`` is uniform's median
times that ratio (without a ``uniform`` arm: the arm's own median). The modelled training time of arm ``a`` at
step ``s`` of a real run with ``L = learning_starts`` is then::

    T_a(s) = pre_a * min(s, L) + train_a * max(s - L, 0)

``laber.experiments.report`` uses ``T_a`` in place of the runs' own times for the equal-time comparisons when a
compare directory holds a ``costs.json`` of its settings covering its arms. Assumptions, which the summaries
repeat: an arm's cost per step over the whole run is its cost in the timing window (the environment's cost per
step depends on the episodes, which differ between arms and over a run; the buffer grows from empty in a real
run and is as full as it gets in the window), and the costs were measured with the code that trained the runs
(``costs.json`` records laber's, torch's and numpy's versions, the host and the date).
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import os
import platform
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber._validation import as_generator, check_positive_int
from laber.agents.registry import config_from_record, kind_of

__all__ = ["COSTS_FILE", "ArmCost", "CostTable", "check_measurable", "load_costs", "measure_costs"]

COSTS_FILE = "costs.json"
BASELINE = "uniform"
DEFAULT_FILL_CAP = 100_000


@dataclass(frozen=True)
class ArmCost:
    """One arm's timing runs, one value per round (round ``k`` at index ``k``): seconds per step before and
    after learning starts, and per update."""

    arm: str
    pre_step: tuple[float, ...]
    train_step: tuple[float, ...]
    update: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.pre_step)
        if n == 0 or len(self.train_step) != n or len(self.update) != n:
            raise ValueError(f"arm {self.arm!r}: every kind of timing needs one value per round")
        if not all(math.isfinite(x) and x > 0 for x in (*self.pre_step, *self.train_step, *self.update)):
            raise ValueError(f"arm {self.arm!r}: timings must be positive, finite seconds")


_VERSIONED = ("laber", "torch", "numpy")  # the versions a table and the runs both record


@dataclass(frozen=True)
class CostTable:
    """The matched-load costs of a compare's arms (see the module docstring). ``settings``: the compare's (its
    runs' config without arm and seed); ``train_steps``: the timing runs' ``N``; ``fill``: their random phase
    ``F``; ``provenance``: versions, host and date of the measurement."""

    settings: dict[str, Any]
    train_steps: int
    fill: int
    arms: dict[str, ArmCost]
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # copies at the door: the table never shares its dicts with the caller
        object.__setattr__(self, "settings", copy.deepcopy(dict(self.settings)))
        object.__setattr__(self, "provenance", copy.deepcopy(dict(self.provenance)))
        object.__setattr__(self, "arms", dict(self.arms))
        if not isinstance(self.settings.get("learning_starts"), int) or self.settings["learning_starts"] < 1:
            raise ValueError(
                f"settings must hold a positive learning_starts, got {self.settings.get('learning_starts')!r}"
            )
        for name in ("train_steps", "fill"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
        if not self.arms:
            raise ValueError("a costs table needs at least one arm")
        rounds = {len(c.update) for c in self.arms.values()}
        if len(rounds) != 1:
            raise ValueError(f"every arm needs the same number of rounds, got {sorted(rounds)}")

    @property
    def learning_starts(self) -> int:
        """``L`` of the runs the table models."""
        return int(self.settings["learning_starts"])

    @property
    def reps(self) -> int:
        """Rounds of timing runs."""
        return len(next(iter(self.arms.values())).update)

    def rounds(self, which: Sequence[int] | np.ndarray) -> CostTable:
        """The table of the rounds ``which`` (indexes into the rounds, repeats allowed: a bootstrap resample of
        the rounds keeps every arm's run of a round together, so the paired ratios stay paired)."""
        idx = np.asarray(which)
        if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
            raise ValueError(f"which must be a non-empty 1-D sequence of round indexes, got which={which!r}")
        if idx.min() < 0 or idx.max() >= self.reps:
            raise ValueError(f"which must index the {self.reps} rounds (0 to {self.reps - 1}), got which={which!r}")
        picked = {
            arm: ArmCost(
                arm,
                tuple(c.pre_step[int(i)] for i in idx),
                tuple(c.train_step[int(i)] for i in idx),
                tuple(c.update[int(i)] for i in idx),
            )
            for arm, c in self.arms.items()
        }
        return replace(self, arms=picked)

    def paired_ratios(self, arm: str, kind: str = "train_step") -> np.ndarray | None:
        """Per round, ``arm``'s timing of ``kind`` (``pre_step``, ``train_step`` or ``update``) over uniform's in
        the same round; None without a uniform arm."""
        if BASELINE not in self.arms:
            return None
        mine = np.asarray(getattr(self._arm(arm), kind))
        base = np.asarray(getattr(self.arms[BASELINE], kind))
        out: np.ndarray = mine / base
        return out

    def _arm(self, arm: str) -> ArmCost:
        if arm not in self.arms:
            raise KeyError(f"no costs measured for arm {arm!r}; measured: {', '.join(self.arms)}")
        return self.arms[arm]

    def seconds(self, arm: str, kind: str = "train_step") -> float:
        """``arm``'s seconds per step (``train_step``, ``pre_step``) or per update (``update``): uniform's median
        times the median paired ratio, or the arm's own median without a uniform arm."""
        ratios = self.paired_ratios(arm, kind)
        if ratios is None:
            return float(np.median(getattr(self._arm(arm), kind)))
        return float(np.median(getattr(self.arms[BASELINE], kind)) * np.median(ratios))

    def ratio(self, arm: str, kind: str = "update") -> float:
        """The median over rounds of ``arm``'s paired ratio to uniform (NaN when either was not measured)."""
        ratios = self.paired_ratios(arm, kind) if arm in self.arms else None
        return math.nan if ratios is None else float(np.median(ratios))

    def ratio_range(self, arm: str, kind: str = "update") -> tuple[float, float]:
        """The lowest and highest paired ratio over rounds (NaNs when either arm was not measured)."""
        ratios = self.paired_ratios(arm, kind) if arm in self.arms else None
        return (math.nan, math.nan) if ratios is None else (float(ratios.min()), float(ratios.max()))

    def times(self, arm: str, steps: np.ndarray | Sequence[int]) -> np.ndarray:
        """Modelled training seconds of ``arm`` at ``steps``: ``pre * min(s, L) + train * max(s - L, 0)``."""
        self._arm(arm)
        s = np.asarray(steps, dtype=np.float64)
        lead = float(self.learning_starts)
        pre, train = self.seconds(arm, "pre_step"), self.seconds(arm, "train_step")
        out: np.ndarray = pre * np.minimum(s, lead) + train * np.maximum(s - lead, 0.0)
        return out

    def covers(self, settings: dict[str, Any], arms: Sequence[str]) -> str | None:
        """None when this table was measured for ``settings`` and every arm of ``arms``; otherwise why not."""
        if settings != self.settings:
            keys = sorted(k for k in set(settings) | set(self.settings) if settings.get(k) != self.settings.get(k))
            details = ", ".join(f"{k}={self.settings.get(k)!r} (the runs: {settings.get(k)!r})" for k in keys)
            return f"measured for other settings: {details}"
        missing = [a for a in arms if a not in self.arms]
        return f"no costs for arm(s) {', '.join(missing)}" if missing else None

    def version_gap(self, versions: Sequence[Mapping[str, str]]) -> str | None:
        """None when every run of ``versions`` (one mapping per run, as its ``result.json`` records them) trained
        with the laber, torch and numpy this table was measured with, as far as both sides record them; otherwise
        which differ, e.g. ``"torch 2.13.0+cpu (2 of 6 runs trained with 2.12.0)"``. Costs measured with other
        versions may not be the runs' costs: the table still applies, and summaries say so beside it."""
        gaps = []
        for key in _VERSIONED:
            measured = self.provenance.get(key)
            if measured is None:
                continue
            other = sorted({str(v[key]) for v in versions if key in v and str(v[key]) != str(measured)})
            if other:
                count = sum(1 for v in versions if key in v and str(v[key]) != str(measured))
                gaps.append(f"{key} {measured} ({count} of {len(versions)} runs trained with {', '.join(other)})")
        return "; ".join(gaps) if gaps else None

    def describe(self) -> str:
        """One sentence: how and where the table was measured."""
        p = self.provenance
        where = ", ".join(
            f"{k} {p[k]}" for k in ("date", "laber", "torch", "numpy", "host", "cpus") if p.get(k) is not None
        )
        return (
            f"{self.reps} interleaved rounds of timing runs of every arm ({self.fill:,} random steps filling the "
            f"buffer, then {self.train_steps:,} training steps at the final exploration rate)"
            + (f"; measured with {where}" if where else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": copy.deepcopy(self.settings),
            "train_steps": self.train_steps,
            "fill": self.fill,
            "provenance": copy.deepcopy(self.provenance),
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
            return cls(
                dict(data["settings"]), data["train_steps"], data["fill"], arms, dict(data.get("provenance", {}))
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a laber costs table: {exc}") from exc

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


def fill_steps(config: Any, train_steps: int, cap: int = DEFAULT_FILL_CAP) -> int:
    """``F``: the random steps of a timing run, ``min(buffer_size, steps, cap)`` rounded up to a multiple of
    ``train_steps``, and at least ``learning_starts``."""
    target = max(int(config.learning_starts), min(int(config.buffer_size), int(config.steps), cap))
    return -(-target // train_steps) * train_steps


def timing_config(config: Any, arm: str, seed: int, train_steps: int, fill: int) -> Any:
    """The timing run of ``config`` for ``arm``: ``fill`` random steps, then ``train_steps`` training steps at the
    final exploration rate (a DQN's ``eps_start = eps_end``), an evaluation of one episode every ``train_steps``
    steps, the seed ``seed``."""
    values: dict[str, Any] = {
        "arm": arm,
        "seed": seed,
        "steps": fill + train_steps,
        "learning_starts": fill,
        "eval_every": train_steps,
        "eval_episodes": 1,
    }
    if hasattr(config, "eps_end"):
        values["eps_start"] = config.eps_end
    return replace(config, **values)


def warmup_config(config: Any, arm: str) -> Any:
    """A short untimed run of ``arm``: learning starts, then 100 updates, evaluated only at its start and end."""
    steps = int(config.learning_starts) + 100 * int(getattr(config, "train_freq", 1))
    return replace(config, arm=arm, seed=0, steps=steps, eval_every=steps, eval_episodes=1)


def check_measurable(
    config: Any, arms: Sequence[str], *, train_steps: int, reps: int, fill_cap: int = DEFAULT_FILL_CAP
) -> list[Any]:
    """Check a cost measurement before anything runs; returns round 0's timing configs.

    ``TypeError`` / ``ValueError`` naming the argument: ``arms`` not a sequence of distinct arm names of the
    config's agent, ``train_steps``, ``reps`` or ``fill_cap`` not a positive integer, a ``train_steps`` that is
    not a multiple of a DQN's ``train_freq``, and an environment the agent cannot train on."""
    kind = kind_of(config)
    train_steps = check_positive_int(train_steps, "train_steps")
    check_positive_int(reps, "reps")
    fill_cap = check_positive_int(fill_cap, "fill_cap")
    if isinstance(arms, str) or not all(isinstance(a, str) for a in arms):
        raise TypeError(f"arms must be a sequence of arm names, got arms={arms!r}")
    arms = list(arms)
    if not arms or len(set(arms)) != len(arms):
        raise ValueError(f"arms must be distinct arm names, at least one, got arms={arms!r}")
    unknown = [a for a in arms if a not in kind.arms]
    if unknown:
        raise ValueError(f"arms {unknown} are not arms of the {kind.name} agent; its arms: {', '.join(kind.arms)}")
    freq = int(getattr(config, "train_freq", 1))
    if train_steps % freq:
        raise ValueError(
            f"train_steps must be a multiple of train_freq={freq} (whole updates per timed step), "
            f"got train_steps={train_steps}"
        )
    fill = fill_steps(config, train_steps, fill_cap)
    plans = [timing_config(config, arm, 0, train_steps, fill) for arm in arms]  # validates every arm's settings
    kind.check(plans[0])
    return plans


def _provenance(torch: Any) -> dict[str, Any]:
    from laber import __version__

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "laber": __version__,
        "torch": str(torch.__version__),
        "numpy": np.__version__,
        "host": platform.node() or None,
        "machine": platform.machine() or None,
        "cpus": os.cpu_count(),
        "torch_threads": 1,
    }


def measure_costs(
    config: Any,
    arms: Sequence[str],
    *,
    train_steps: int = 2000,
    reps: int = 5,
    rng: int | np.random.Generator | None = 0,
    fill_cap: int = DEFAULT_FILL_CAP,
    warmup: bool = True,
    on_run: Callable[[int, str, ArmCost], None] | None = None,
) -> CostTable:
    """Time ``reps`` interleaved rounds of timing runs of every arm of ``arms`` with ``config``'s other settings.

    ``config``: a ``laber.agents.DQNConfig`` or ``laber.agents.sac.SACConfig`` (its arm and seed are ignored).
    Each round runs every arm once, in an order drawn from ``rng``, timing run ``k`` of every arm with seed
    ``k``; ``on_run(k, arm, cost)`` is called after each with that run's timings. With ``warmup``, a short
    untimed run of every arm comes first (the first run of a process compiles laber's numba kernels, which
    would otherwise be counted against whichever arm came first). Runs in this process with one torch thread
    (as ``laber run`` trains); the thread count is restored afterwards. Everything is checked before the first
    run (:func:`check_measurable`; ``on_run`` must be callable or None, ``warmup`` a bool).
    """
    plans = check_measurable(config, arms, train_steps=train_steps, reps=reps, fill_cap=fill_cap)
    if on_run is not None and not callable(on_run):
        raise TypeError(f"on_run must be callable or None, got on_run={on_run!r}")
    if not isinstance(warmup, bool):
        raise TypeError(f"warmup must be a bool, got warmup={warmup!r}")
    kind = kind_of(config)
    arms = list(arms)
    gen = as_generator(rng)
    fill = int(plans[0].learning_starts)
    settings = config.to_dict()
    settings.pop("arm")
    settings.pop("seed")
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
                result = kind.train(timing_config(config, arm, k, train_steps, fill))
                steps = list(result.eval_steps)
                t = result.eval_train_seconds
                t0, t_fill, t_end = t[steps.index(0)], t[steps.index(fill)], t[steps.index(fill + train_steps)]
                run = ((t_fill - t0) / fill, (t_end - t_fill) / train_steps, result.seconds_per_update)
                timings[arm].append(run)
                if on_run is not None:
                    on_run(k, arm, ArmCost(arm, (run[0],), (run[1],), (run[2],)))
    finally:
        torch.set_num_threads(threads)
    costs = {
        arm: ArmCost(arm, tuple(r[0] for r in rows), tuple(r[1] for r in rows), tuple(r[2] for r in rows))
        for arm, rows in timings.items()
    }
    return CostTable(settings, train_steps, fill, costs, _provenance(torch))


def config_of_compare(root: str | os.PathLike[str]) -> tuple[Any, list[str]]:
    """The run config (arm of its first arm, seed 0) and the arms of the compare directory ``root``, from its
    ``compare.json``; a ``FileNotFoundError`` or ``ValueError`` naming the file otherwise."""
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
