r"""Across tasks: several compare directories (one task each) in one table and one figure (``laber aggregate``).

Each compare directory holds the runs of one task (an environment with one set of agent settings). For every
task ``j`` and every run, the scores of ``laber.experiments.report.robust_scores`` are taken (``final``: the mean
evaluation return over the last 10% of the steps; ``auc``: the mean over the whole run; ``auc_time``: the mean
over the first ``T_j`` seconds of training, ``T_j`` the time every run of that task reached) and **normalised
against uniform**:

.. math::

    \tilde x = \frac{x - \ell_j}{h_j - \ell_j}, \qquad
    \ell_j = \text{mean step-0 evaluation return of the task's runs}, \quad
    h_j = \text{mean final return of its uniform runs},

so that 0 is the untrained network's greedy return and 1 uniform's average end point, on every task. The
untrained network stands in for a random policy (the step-0 evaluation of every run, same seeds, no extra
episodes).

Per arm, the normalised scores form a ``(runs, tasks)`` matrix (``N`` runs per task: the arm's smallest seed
count over the tasks, its lowest-numbered seeds on each) and go to :mod:`laber.experiments.aggregate`: the
interquartile mean with a stratified-bootstrap interval, the probability of improvement over uniform (averaged
over tasks), and performance profiles ``F(tau)`` (the fraction of runs above ``tau``, averaged over tasks) with
pointwise bands; Agarwal et al., *Deep Reinforcement Learning at the Edge of the Statistical Precipice*,
NeurIPS 2021. Only arms that every task has are compared. A single directory works too (``M = 1``): its
performance profile is the distribution of its seeds' scores.
"""

from __future__ import annotations

import json
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber.experiments.aggregate import Estimate, iqm_estimate, performance_profile, probability_of_improvement
from laber.experiments.report import (
    COST_DRAWS,
    auc_time_variants,
    costs_for,
    costs_version_gap,
    load_compare,
    robust_scores,
    summarize,
)
from laber.experiments.runs import OutDirError, check_creatable, is_empty_dir, is_laber_dir, write_marker
from laber.experiments.stats import MIN_SEEDS_FOR_CI

__all__ = ["BASELINE", "SCORES", "Task", "aggregate_tasks", "load_task", "write_aggregate"]

BASELINE = "uniform"
SCORES: tuple[str, ...] = ("final", "auc", "auc_time")
SCORE_LABELS = {"final": "final return", "auc": "AUC", "auc_time": "AUC at equal time"}
AGGREGATE_MD = "aggregate.md"
AGGREGATE_JSON = "aggregate.json"
PROFILE_PNG = "profiles.png"


@dataclass(frozen=True)
class Task:
    """One compare directory's per-seed scores, raw, with its normalisation ``low`` (0) and ``high`` (1)."""

    name: str  # the directory's name
    env_id: str
    path: Path
    seeds: dict[str, list[int]]  # arm -> its seeds, ascending (``finished_runs``' order)
    scores: dict[str, dict[str, np.ndarray]]  # arm -> score -> (seeds,) raw values, in the order of ``seeds``
    low: float
    high: float
    # the equal-time clock: "runs" (each run's own, and why a costs.json was not used) or "costs.json" (and which
    # versions differ from the runs')
    clock: str = "runs"
    # arm -> (draws, seeds) raw ``auc_time`` under resamples of the costs' timing rounds (``auc_time_variants``);
    # empty on the runs' own clocks
    variants: dict[str, np.ndarray] = field(default_factory=dict)

    def normalized(self, arm: str, score: str, runs: int) -> np.ndarray:
        """The first ``runs`` seeds' ``score`` of ``arm``, normalised: ``(x - low) / (high - low)``."""
        x = self.scores[arm][score][:runs]
        out: np.ndarray = (x - self.low) / (self.high - self.low)
        return out

    def normalized_variants(self, arm: str, runs: int, draws: int) -> np.ndarray:
        """``(draws, runs)``: the first ``runs`` seeds' ``auc_time`` of ``arm`` under each of ``draws`` resamples
        of the costs' timing rounds (the fixed scores repeated where the task has none), normalised. Draw ``v``
        is the task's draw ``v mod`` its number of draws."""
        if arm not in self.variants:
            x = np.broadcast_to(self.scores[arm]["auc_time"][:runs], (draws, runs))
        else:
            mine = self.variants[arm]
            x = mine[np.arange(draws) % mine.shape[0], :runs]
        out: np.ndarray = (x - self.low) / (self.high - self.low)
        return out


def load_task(path: str | os.PathLike[str]) -> Task:
    """Read one compare directory and its normalisation (see the module docstring).

    ``FileNotFoundError`` without finished runs; ``ValueError`` when it has no ``uniform`` runs or when uniform's
    mean final return equals the mean step-0 return (nothing to normalise by)."""
    root = Path(path)
    runs, config = load_compare(root)
    if BASELINE not in runs:
        raise ValueError(
            f"{str(root)!r} has no finished {BASELINE} runs: scores are normalised by uniform's; "
            f"arms: {', '.join(runs)}"
        )
    summaries, costs, note = costs_for(root, summarize(runs, n_boot=1), config)
    gap = costs_version_gap(costs, summaries)
    if costs is not None:
        clock = "costs.json" + (f" (measured with other versions than the runs': {gap})" if gap else "")
    else:
        clock = "runs" if note is None else f"runs (costs.json not used: {note})"
    by_arm = robust_scores(summaries)
    low = float(np.mean([c[0] for s in summaries for c in s.curves]))
    high = float(np.mean(by_arm[BASELINE]["final"]))
    if not np.isfinite(high - low) or high == low:
        raise ValueError(
            f"{str(root)!r}: uniform's mean final return ({high!r}) equals the mean step-0 return ({low!r}); "
            "normalised scores are undefined"
        )
    name = root.name if root.name != "run-dirs" else root.parent.name
    return Task(
        name=name,
        env_id=str(config["env_id"]),
        path=root,
        seeds={s.arm: list(s.seeds) for s in summaries},
        scores=by_arm,
        low=low,
        high=high,
        clock=clock,
        # each task's rounds drawn from its own stream (seeded by its name): tasks' tables are separate measurements
        variants=(auc_time_variants(summaries, costs, rng=(2, zlib.crc32(name.encode()))) or {})
        if "auc_time" in by_arm[BASELINE]
        else {},
    )


@dataclass(frozen=True)
class ArmAggregate:
    """One arm across the tasks: runs per task, and per score its IQM, P(> uniform) and performance profile."""

    arm: str
    runs_per_task: int
    iqm: dict[str, Estimate]
    improvement: dict[str, Estimate | None]  # None for uniform itself
    profile: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # score -> (F, low, high) at ``taus``


def aggregate_tasks(
    tasks: Sequence[Task], *, reps: int = 2000, rng: int = 0, taus: np.ndarray | None = None
) -> tuple[list[ArmAggregate], list[str], np.ndarray]:
    """Per arm common to every task: IQM, probability of improvement over uniform and performance profiles of
    each score every task has, on normalised scores; returns ``(rows, scores, taus)``."""
    if not tasks:
        raise ValueError("tasks must not be empty")
    arms = [a for a in tasks[0].scores if all(a in t.scores for t in tasks)]
    scores = [k for k in SCORES if all(k in t.scores[BASELINE] for t in tasks)]
    gen = np.random.default_rng(rng)

    def matrix(arm: str, score: str, runs: int) -> np.ndarray:
        return np.stack([t.normalized(arm, score, runs) for t in tasks], axis=1)

    def varied(arm: str, score: str, runs: int) -> np.ndarray | None:
        """``(draws, runs, tasks)`` versions of ``matrix`` where a task's equal-time scores rest on costs."""
        if score != "auc_time" or not any(t.variants for t in tasks):
            return None
        return np.stack([t.normalized_variants(arm, runs, COST_DRAWS) for t in tasks], axis=2)

    base_runs = min(len(t.seeds[BASELINE]) for t in tasks)
    mats: dict[str, dict[str, np.ndarray]] = {}
    for arm in arms:
        n = min(len(t.seeds[arm]) for t in tasks)
        mats[arm] = {k: matrix(arm, k, n) for k in scores}
    if taus is None:
        pooled = np.concatenate([m.ravel() for by in mats.values() for m in by.values()])
        lo, hi = float(pooled.min()), float(pooled.max())
        margin = 0.05 * max(hi - lo, 1e-9)
        taus = np.linspace(lo - margin, hi + margin, 161)  # from where every run is above to where none is
    rows: list[ArmAggregate] = []
    for arm in arms:
        by = mats[arm]
        n_runs = int(next(iter(by.values())).shape[0])
        rows.append(
            ArmAggregate(
                arm=arm,
                runs_per_task=n_runs,
                iqm={k: iqm_estimate(by[k], reps=reps, rng=gen, variants=varied(arm, k, n_runs)) for k in scores},
                improvement={
                    k: None
                    if arm == BASELINE
                    else probability_of_improvement(
                        by[k],
                        matrix(BASELINE, k, base_runs),
                        reps=reps,
                        rng=gen,
                        variants_x=varied(arm, k, n_runs),
                        variants_y=varied(BASELINE, k, base_runs),
                    )
                    for k in scores
                },
                profile={
                    k: performance_profile(by[k], taus, reps=reps, rng=gen, variants=varied(arm, k, n_runs))
                    for k in scores
                },
            )
        )
    return rows, scores, taus


def _check_out(out: Path) -> None:
    """``out`` may be written: absent (and creatable), empty, or an earlier ``laber aggregate``'s directory."""
    label = f"out={str(out)!r}"
    if out.is_symlink():
        raise OutDirError(f"{label} is a symbolic link; laber writes aggregates only into directories it created")
    if not os.path.lexists(out):
        check_creatable(out, label)
        return
    if not out.is_dir():
        raise OutDirError(f"{label} exists and is not a directory")
    if not (is_laber_dir(out, "aggregate") or is_empty_dir(out, label)):
        raise OutDirError(
            f"{label} exists, is not empty and was not written by laber aggregate; laber never overwrites files it "
            "did not create: choose another out"
        )


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _estimate_json(est: Estimate, enough: bool) -> dict[str, Any]:
    """``est`` for aggregate.json: its bounds None where the markdown shows no interval (not ``enough`` runs,
    :func:`_enough`)."""
    out = dict(vars(est))
    if not enough:
        out["low"] = out["high"] = None
    return out


def _enough(runs: int, base_runs: int, improvement: bool) -> bool:
    """Whether an estimate over ``runs`` runs (an IQM) or over ``runs`` against uniform's ``base_runs`` (a
    probability of improvement) gets an interval: at least ``MIN_SEEDS_FOR_CI`` runs on each side, as in a
    compare's summary."""
    return runs >= MIN_SEEDS_FOR_CI and (not improvement or base_runs >= MIN_SEEDS_FOR_CI)


def _cell(est: Estimate | None, few: bool) -> str:
    if est is None:
        return "-"
    return f"{est.value:.2f} (too few runs for a CI)" if few else est.format()


def _base_runs(tasks: Sequence[Task], rows: list[ArmAggregate]) -> int:
    """Uniform's runs over all tasks (0 without a uniform row)."""
    return next((r.runs_per_task * len(tasks) for r in rows if r.arm == BASELINE), 0)


def _markdown(tasks: Sequence[Task], rows: list[ArmAggregate], scores: list[str]) -> str:
    names = ", ".join(f"{t.name} ({t.env_id})" for t in tasks)
    lines = [
        f"# laber aggregate: {len(tasks)} task{'s' if len(tasks) != 1 else ''}",
        "",
        f"Tasks: {names}. Scores normalised per task: 0 is the untrained network's greedy return (the mean "
        "step-0 evaluation of the task's runs), 1 is uniform's mean final return. Final: the mean evaluation "
        "return over the last 10% of the steps; AUC: over the whole run; AUC at equal time: over the first "
        "seconds of training that every run of the task reached, by the task's clock (runs: each run's own "
        "clock; costs.json: the matched-load costs of `laber cost`, whose timing rounds the intervals at equal "
        "time resample too, task by task). IQM: interquartile mean of all runs of all "
        "tasks; P(> uniform): the probability that a run of the arm beats a run of uniform on a random task "
        "(0.5: neither is better). Brackets: 95% stratified-bootstrap intervals (tasks are strata; Agarwal et "
        "al., NeurIPS 2021); none below 5 runs of the arm (for P(> uniform), of uniform too), and with fewer "
        "than 10 they are wide and under-cover.",
        "",
        "| task | environment | low (0) | high (1) | seeds per arm | clock |",
        "|---|---|---|---|---|---|",
    ]
    for t in tasks:
        seeds = ", ".join(f"{a} {len(s)}" for a, s in t.seeds.items())
        lines.append(f"| {t.name} | {t.env_id} | {t.low:.4g} | {t.high:.4g} | {seeds} | {t.clock} |")
    if len({t.clock.startswith("costs.json") for t in tasks}) > 1:
        lines += [
            "",
            "Warning: the tasks' equal-time scores use different clocks (matched-load costs for some, the runs' "
            "own for others); measure every task with `laber cost` before reading the equal-time columns.",
        ]
    head = ["arm", "runs"] + [f"IQM {SCORE_LABELS[k]}" for k in scores]
    head += [f"P(> uniform), {SCORE_LABELS[k]}" for k in scores]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base_runs = _base_runs(tasks, rows)
    for r in rows:
        runs = r.runs_per_task * len(tasks)
        cells = [r.arm, str(runs)] + [_cell(r.iqm[k], not _enough(runs, base_runs, False)) for k in scores]
        cells += [_cell(r.improvement[k], not _enough(runs, base_runs, True)) for k in scores]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"![performance profiles]({PROFILE_PNG})", ""]
    return "\n".join(lines)


def _plot(path: Path, rows: list[ArmAggregate], scores: list[str], taus: np.ndarray, title: str) -> None:
    mpl = require("matplotlib", "the performance-profile plot")
    mpl.use("Agg", force=False)
    plt = require("matplotlib.pyplot", "the performance-profile plot")
    cmap = plt.get_cmap("tab10")
    palette = [cmap(i) for i in range(10) if i != 7]  # tab10's grey is uniform's
    width = 0.6 + 3.6 * len(scores)
    fig, axes = plt.subplots(
        1, len(scores), figsize=(width, 3.9), dpi=120, sharey=True, squeeze=False, layout="constrained"
    )
    try:
        for ax, k in zip(axes[0], scores, strict=True):
            for i, r in enumerate(rows):
                value, low, high = r.profile[k]
                color = "0.35" if r.arm == BASELINE else palette[i % len(palette)]
                ax.plot(taus, value, color=color, lw=1.6, label=f"{r.arm} ({r.runs_per_task} / task)")
                ax.fill_between(taus, low, high, color=color, alpha=0.15, lw=0)
            ax.axvline(1.0, color="0.6", ls="--", lw=0.8)
            ax.set_title(SCORE_LABELS[k], fontsize=10)
            ax.set_xlabel("normalised score tau (1 = uniform's mean final)", fontsize=8)
            ax.grid(alpha=0.3)
        axes[0][0].set_ylabel("fraction of runs with score > tau", fontsize=8)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=min(len(rows), 5), fontsize=7, frameon=False)
        fig.suptitle(title, fontsize=10)
        fig.savefig(path.with_name(path.name + ".tmp.png"))
        os.replace(path.with_name(path.name + ".tmp.png"), path)
    finally:
        plt.close(fig)


def write_aggregate(
    dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, reps: int = 2000, rng: int = 0
) -> tuple[Path, Path, Path]:
    """Aggregate the compare directories ``dirs`` into ``out``: ``aggregate.md``, ``aggregate.json`` and
    ``profiles.png`` (performance profiles, one panel per score); returns their paths.

    ``out`` must be absent (it is created), empty, or an earlier ``laber aggregate``'s output (``OutDirError``
    otherwise); nothing else in it is touched. Every directory is read before anything is written.
    """
    if not dirs:
        raise ValueError("dirs must name at least one compare directory")
    target = Path(out)
    _check_out(target)
    tasks = [load_task(d) for d in dirs]
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        names = [str(t.path) for t in tasks]
    tasks = [replace(t, name=n) for n, t in zip(names, tasks, strict=True)]
    rows, scores, taus = aggregate_tasks(tasks, reps=reps, rng=rng)
    if not rows:
        raise ValueError(f"no arm has runs in every task: {', '.join(f'{t.name}: {sorted(t.scores)}' for t in tasks)}")
    created = not os.path.lexists(target)
    target.mkdir(parents=True, exist_ok=True)
    if created or not is_laber_dir(target, "aggregate"):
        write_marker(target, "aggregate")
    md, js, png = target / AGGREGATE_MD, target / AGGREGATE_JSON, target / PROFILE_PNG
    _plot(png, rows, scores, taus, f"Performance profiles over {len(tasks)} task(s): {', '.join(names)}")
    base_runs = _base_runs(tasks, rows)
    data: dict[str, Any] = {
        "tasks": [
            {
                "name": t.name,
                "env_id": t.env_id,
                "path": os.path.relpath(t.path, target),  # from the aggregate's directory: the pair moves together
                "low": t.low,
                "high": t.high,
                "seeds": t.seeds,
                "clock": t.clock,
            }
            for t in tasks
        ],
        "scores": scores,
        "taus": taus.tolist(),
        "arms": [
            {
                "arm": r.arm,
                "runs_per_task": r.runs_per_task,
                "iqm": {
                    k: _estimate_json(e, _enough(r.runs_per_task * len(tasks), base_runs, False))
                    for k, e in r.iqm.items()
                },
                "improvement": {
                    k: None if e is None else _estimate_json(e, _enough(r.runs_per_task * len(tasks), base_runs, True))
                    for k, e in r.improvement.items()
                },
                "profile": {k: [v.tolist() for v in p] for k, p in r.profile.items()},
            }
            for r in rows
        ],
    }
    _write_text(js, json.dumps(data, indent=1) + "\n")
    _write_text(md, _markdown(tasks, rows, scores))
    return md, js, png
