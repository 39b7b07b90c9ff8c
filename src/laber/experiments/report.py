"""The outputs of a compare: learning-curve plot (``curves.png``) and summary (``summary.md``, ``summary.json``).

Per arm, over its seeds: the mean evaluation curve with a 95% pointwise bootstrap band, the area under the curve
and the final return with 95% bootstrap intervals (see ``laber.experiments.stats``; arms with fewer than 5 seeds
get the mean and the seeds' range instead, and their seeds' curves instead of a band), and the mean wall-clock
time of one update (sampling, surrogate priorities, forward and backward passes, optimiser step) measured inside
each run, with its ratio to the ``uniform`` arm when that arm is present. Timings of runs that shared the machine
with other processes are noisy; ``benchmarks/bench_dqn.py`` measures the ratio side by side.

The plot has one small panel per arm, all on the same axes, each against a reference arm drawn in grey
(``uniform`` when present); the environment's solved threshold (gymnasium's ``reward_threshold``) and, for
CartPole, its reward cap (``max_episode_steps``) are dashed lines labelled at the panel's edge. ``smooth=K``
draws a trailing moving average over K evaluations (off by default); the summary's numbers are never smoothed.

``write_report`` covers every finished run under the compare directory (``laber.experiments.runs.finished_runs``),
so a later compare with fewer arms or seeds hides nothing.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber._validation import check_positive_int
from laber.agents.registry import ALL_ARMS as ARMS
from laber.experiments.aggregate import Estimate, iqm_estimate, probability_of_improvement
from laber.experiments.costs import COSTS_FILE, CostTable, load_costs
from laber.experiments.runs import COMPARE_SETTINGS_FILE, RunRecord, finished_runs, load_run
from laber.experiments.stats import (
    MIN_SEEDS_FOR_CI,
    Interval,
    auc,
    bootstrap_band,
    bootstrap_mean,
    final_return,
    smooth,
)

__all__ = [
    "ArmSummary",
    "apply_costs",
    "auc_time_variants",
    "costs_for",
    "costs_version_gap",
    "load_compare",
    "reference_lines",
    "summarize",
    "write_plot",
    "write_report",
    "write_summary",
]

PLOT_FILE = "curves.png"
SUMMARY_FILE = "summary.md"
SUMMARY_JSON = "summary.json"


@dataclass(frozen=True)
class ArmSummary:
    """Across-seed statistics of one arm."""

    arm: str
    seeds: list[int]
    steps: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    auc: Interval
    final: Interval
    seconds_per_update: float
    wall_seconds: float
    curves: np.ndarray  # (seeds, points): every seed's evaluation returns, unsmoothed
    times: np.ndarray | None = None  # (seeds, points): training seconds at each evaluation; None if not recorded
    recorded_seconds: float | None = None  # mean over seeds of the training seconds the runs' own clocks recorded
    versions: list[dict[str, str]] = field(default_factory=list)  # per seed: the versions the run trained with


def summarize(runs: dict[str, list[RunRecord]], *, n_boot: int = 2000, rng: int = 0) -> list[ArmSummary]:
    """Statistics per arm; every run of an arm must share its evaluation steps."""
    out: list[ArmSummary] = []
    for arm, records in runs.items():
        if not records:
            continue
        steps = records[0].steps
        for rec in records[1:]:
            if not np.array_equal(rec.steps, steps):
                raise ValueError(f"runs of arm {arm!r} have different evaluation steps ({rec.path} differs)")
        curves = np.stack([rec.returns for rec in records])
        times = (
            None
            if any(rec.train_seconds is None for rec in records)
            else np.stack([np.asarray(rec.train_seconds) for rec in records])
        )
        mean, low, high = bootstrap_band(curves, n_boot=n_boot, rng=rng)
        out.append(
            ArmSummary(
                arm=arm,
                seeds=[rec.config.seed for rec in records],
                steps=steps,
                mean=mean,
                low=low,
                high=high,
                auc=bootstrap_mean([auc(rec.steps, rec.returns) for rec in records], n_boot=n_boot, rng=rng),
                final=bootstrap_mean([final_return(rec.steps, rec.returns) for rec in records], n_boot=n_boot, rng=rng),
                seconds_per_update=float(np.mean([rec.seconds_per_update for rec in records])),
                wall_seconds=float(np.mean([rec.wall_seconds for rec in records])),
                curves=curves,
                times=times,
                recorded_seconds=None if times is None else float(times[:, -1].mean()),
                versions=[dict(rec.versions) for rec in records],
            )
        )
    return out


def apply_costs(
    summaries: list[ArmSummary], costs: CostTable | None, config: dict[str, Any]
) -> tuple[list[ArmSummary], str | None]:
    """The summaries with each run's training times replaced by the times ``costs`` models
    (``laber.experiments.costs``: matched-load costs, the same for every seed of an arm), and None; or the
    summaries unchanged and why ``costs`` do not apply (other settings than ``config``, an arm not measured).
    Without ``costs``: unchanged, and None."""
    if costs is None:
        return summaries, None
    reason = costs.covers(config, [s.arm for s in summaries])
    if reason is not None:
        return summaries, reason
    out = [replace(s, times=np.repeat(costs.times(s.arm, s.steps)[None, :], len(s.seeds), axis=0)) for s in summaries]
    return out, None


def costs_for(
    root: str | os.PathLike[str], summaries: list[ArmSummary], config: dict[str, Any]
) -> tuple[list[ArmSummary], CostTable | None, str | None]:
    """The compare directory's ``costs.json`` applied to ``summaries`` (:func:`apply_costs`): the summaries,
    the table when it was applied (else None), and why a table on disk was not applied (a damaged file
    included: the comparison then keeps the runs' clocks rather than failing)."""
    try:
        found = load_costs(root)
    except ValueError as exc:
        return summaries, None, f"it cannot be read ({exc})"
    out, note = apply_costs(summaries, found, config)
    return out, (found if note is None else None), note


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def reference_lines(env_id: str) -> list[tuple[float, str]]:
    """The horizontal reference lines of ``env_id``'s plots as ``(value, label)``: gymnasium's solved threshold
    (``reward_threshold``) when the environment defines one, and for CartPole (reward 1 per step) the reward cap
    ``max_episode_steps``. Empty when gymnasium is missing or does not know ``env_id``."""
    try:
        import gymnasium

        spec = gymnasium.spec(env_id)
    except Exception:  # ImportError, or gymnasium's NameNotFound/VersionNotFound/...: no lines, still a plot
        return []
    lines: list[tuple[float, str]] = []
    if spec.reward_threshold is not None:
        lines.append((float(spec.reward_threshold), f"solved {float(spec.reward_threshold):g}"))
    if str(spec.entry_point).endswith(":CartPoleEnv") and spec.max_episode_steps is not None:
        cap = float(spec.max_episode_steps)
        if all(cap != value for value, _ in lines):
            lines.append((cap, f"cap {cap:g}"))
    return lines


def _grid(n: int) -> tuple[int, int]:
    """(rows, columns) of the panels: one row up to 3 arms, 2x2 for 4, then two rows of up to 4."""
    if n <= 3:
        return 1, n
    if n == 4:
        return 2, 2
    cols = min(4, math.ceil(n / 2))
    return math.ceil(n / cols), cols


def _caption(parts: list[str], width: int) -> str:
    """``parts`` joined by "; ", broken into lines of about ``width`` characters between parts only."""
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += "; " + part
        else:
            if lines:
                lines[-1] += ";"
            lines.extend(textwrap.wrap(part, width) or [""])  # a part longer than a line: broken between words
    return "\n".join(lines)


def _arm_color(arm: str, cmap: Any) -> Any:
    """One fixed colour per arm (its place in ``ARMS``), so an arm looks the same in every figure."""
    return cmap(ARMS.index(arm) % 10) if arm in ARMS else cmap(9)


def write_plot(
    summaries: list[ArmSummary],
    path: str | os.PathLike[str],
    *,
    title: str = "",
    smooth_window: int = 1,
    reference: str | None = None,
    lines: Sequence[tuple[float, str]] = (),
) -> Path:
    """One panel per arm, as a PNG: the arm's mean evaluation return with its 95% bootstrap band (its seeds'
    curves instead when it has fewer than 5), against the ``reference`` arm in grey; ``lines`` are dashed
    horizontal reference lines labelled at the panel's left edge. ``smooth_window`` > 1 draws a trailing moving
    average over that many evaluations. No legend: each panel's title names its arm, the figure's caption the rest.
    """
    if not summaries:
        raise ValueError("summaries must not be empty")
    smooth_window = check_positive_int(smooth_window, "smooth_window")
    by_arm = {s.arm: s for s in summaries}
    if reference is not None and reference not in by_arm:
        raise ValueError(f"reference arm {reference!r} has no finished runs; arms: {', '.join(by_arm)}")
    mpl = require("matplotlib", "the learning-curve plot")
    mpl.use("Agg", force=False)
    plt = require("matplotlib.pyplot", "the learning-curve plot")
    ticker = require("matplotlib.ticker", "the learning-curve plot")
    cmap = plt.get_cmap("tab10")
    rows, cols = _grid(len(summaries))
    fig, axes = plt.subplots(
        rows,
        cols,
        figsize=(max(0.6 + 3.1 * cols, 4.4), 1.0 + 2.35 * rows),  # one panel: still room for the caption
        dpi=120,
        sharex=True,
        sharey=True,
        squeeze=False,
        layout="constrained",
    )

    def curves_of(s: ArmSummary) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        curves = smooth(s.curves, smooth_window)
        if smooth_window == 1:
            return curves, s.mean, s.low, s.high
        mean, low, high = bootstrap_band(curves)
        return curves, mean, low, high

    drawn = {s.arm: curves_of(s) for s in summaries}
    ref = by_arm.get(reference) if reference is not None else None
    try:
        for k, ax in enumerate(axes.flat):
            if k >= len(summaries):
                ax.set_visible(False)
                axes.flat[k - cols].xaxis.set_tick_params(labelbottom=True)  # the panel above ends its column
                continue
            s = summaries[k]
            if ref is not None and s.arm != ref.arm:
                _, r_mean, r_low, r_high = drawn[ref.arm]
                if len(ref.seeds) >= MIN_SEEDS_FOR_CI:
                    ax.fill_between(ref.steps, r_low, r_high, color="0.55", alpha=0.18, linewidth=0)
                ax.plot(ref.steps, r_mean, color="0.45", linewidth=1.2, zorder=2)
            color = _arm_color(s.arm, cmap)
            s_curves, s_mean, s_low, s_high = drawn[s.arm]
            if len(s.seeds) >= MIN_SEEDS_FOR_CI:
                ax.fill_between(s.steps, s_low, s_high, color=color, alpha=0.25, linewidth=0, zorder=3)
            else:
                for curve in s_curves:
                    ax.plot(s.steps, curve, color=color, linewidth=0.7, alpha=0.45, zorder=3)
            ax.plot(s.steps, s_mean, color=color, linewidth=1.8, zorder=4)
            for value, _ in lines:
                ax.axhline(value, color="0.15", linestyle="--", linewidth=0.8, zorder=1)
            ax.set_title(f"{s.arm} (n={len(s.seeds)})", fontsize=9, color=color, fontweight="bold")
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_formatter(ticker.EngFormatter(sep=""))
            ax.xaxis.set_major_locator(ticker.MaxNLocator(4))
        if lines:  # the same on every panel (shared y): keep them inside, then label them at the left edge
            low_y, high_y = axes.flat[0].get_ylim()
            values = [v for v, _ in lines]
            span = max(high_y, *values) - min(low_y, *values)
            axes.flat[0].set_ylim(min(low_y, *values) - 0.02 * span, max(high_y, *values) + 0.08 * span)
            ordered = sorted(lines)
            for ax in axes.flat[: len(summaries)]:
                transform = ax.get_yaxis_transform()
                for i, (value, label) in enumerate(ordered):
                    above = i == len(ordered) - 1  # the top line's label above it, the others below theirs
                    ax.text(
                        0.015,
                        value,
                        label,
                        transform=transform,
                        fontsize=6.5,
                        color="0.15",
                        ha="left",
                        va="bottom" if above else "top",
                        zorder=5,
                    )
        fig.supxlabel("environment steps", fontsize=9)
        fig.supylabel("evaluation return", fontsize=9)
        parts = []
        if ref is not None:
            parts.append(f"grey: {ref.arm} (reference)")
        parts.append(f"shaded: 95% bootstrap band over seeds (arms with ≥{MIN_SEEDS_FOR_CI} seeds)")
        if any(len(s.seeds) < MIN_SEEDS_FOR_CI for s in summaries):
            parts.append("thin lines: single seeds")
        if lines:
            parts.append("dashed: " + ", ".join(label for _, label in lines))
        if smooth_window > 1:
            parts.append(f"moving average over {smooth_window} evaluations")
        heading = title or "learning curves: mean evaluation return over seeds"
        chars = int(fig.get_figwidth() * 14)
        fig.suptitle("\n".join([*textwrap.wrap(heading, chars), _caption(parts, chars)]), fontsize=9)
        target = Path(path)
        tmp = target.with_name(target.stem + ".tmp" + target.suffix)
        fig.savefig(tmp)
        os.replace(tmp, target)
    finally:
        plt.close(fig)
    return target


ROBUST_BASELINE = "uniform"


def equal_time_horizon(summaries: list[ArmSummary]) -> float | None:
    """The training time every run reached (the shortest run's last evaluation), or None when some run did not
    record its training time or none reached a positive time."""
    if not summaries or any(s.times is None for s in summaries):
        return None
    horizon = min(float(s.times[:, -1].min()) for s in summaries if s.times is not None)
    return horizon if horizon > 0 else None


def auc_in_time(times: np.ndarray, returns: np.ndarray, horizon: float, points: int = 401) -> float:
    """Mean evaluation return over training time ``[0, horizon]``: the curve interpolated linearly in time
    (held at its first value before the first evaluation), integrated by the trapezoid rule, over ``horizon``.
    Compares arms at equal wall-clock time (LaBER's updates cost more than uniform's)."""
    grid = np.linspace(0.0, horizon, points)
    values = np.interp(grid, times, returns)
    return float(np.mean((values[1:] + values[:-1]) / 2.0))


def robust_scores(summaries: list[ArmSummary]) -> dict[str, dict[str, np.ndarray]]:
    """Per arm, the per-seed ``auc`` and ``final`` scores, and ``auc_time`` (:func:`auc_in_time` up to
    :func:`equal_time_horizon`) when every run recorded its training time (one task: ``(seeds,)`` vectors)."""
    horizon = equal_time_horizon(summaries)
    out: dict[str, dict[str, np.ndarray]] = {}
    for s in summaries:
        row = {
            "auc": np.array([auc(s.steps, c) for c in s.curves]),
            "final": np.array([final_return(s.steps, c) for c in s.curves]),
        }
        if horizon is not None and s.times is not None:
            row["auc_time"] = np.array([auc_in_time(t, c, horizon) for t, c in zip(s.times, s.curves, strict=True)])
        out[s.arm] = row
    return out


COST_DRAWS = 1000  # bootstrap resamples of a costs table's timing rounds (:func:`auc_time_variants`)


def auc_time_variants(
    summaries: list[ArmSummary],
    costs: CostTable | None,
    *,
    draws: int = COST_DRAWS,
    rng: int | Sequence[int] = 0,
) -> dict[str, np.ndarray] | None:
    """Per arm, ``(draws, seeds)``: every seed's ``auc_time`` (:func:`auc_in_time`) under ``draws`` bootstrap
    resamples of ``costs``' timing rounds, for intervals at equal time that carry the costs' own error
    (:mod:`laber.experiments.aggregate`, ``variants``). Draw ``v`` resamples the rounds with replacement, the
    same rounds for every arm (a round's runs stay paired), models every arm's times from them
    (:meth:`CostTable.rounds`, :meth:`CostTable.times`) and takes its own horizon: the time every run reaches
    under that draw. None without ``costs`` (the runs' own clocks: no rounds to resample). ``rng``: the seed (an
    int or a sequence of ints) of the draws.

    With ``K`` rounds a draw's median is one of the ``K`` measured ratios (for ``K = 5`` the lowest and highest
    each with probability 0.058), so the costs' part of a 95% interval spans about the rounds' range; with one
    round the draws do not vary. The draws need not be centred on the full table's scores (the horizon is a
    minimum over arms)."""
    draws = check_positive_int(draws, "draws")
    if costs is None or not summaries:
        return None
    gen = np.random.default_rng(rng)
    out = {s.arm: np.empty((draws, len(s.seeds))) for s in summaries}
    for v in range(draws):
        table = costs.rounds(gen.integers(0, costs.reps, costs.reps))
        times = {s.arm: table.times(s.arm, s.steps) for s in summaries}
        horizon = min(float(t[-1]) for t in times.values())
        grid = np.linspace(0.0, horizon, 401)
        for s in summaries:
            # linear interpolation in time at the grid, shared by every seed of the arm (its times are modelled)
            pos = np.interp(grid, times[s.arm], np.arange(s.steps.size, dtype=np.float64))
            lo = np.floor(pos).astype(np.int64)
            hi = np.minimum(lo + 1, s.steps.size - 1)
            w = pos - lo
            values = s.curves[:, lo] * (1.0 - w) + s.curves[:, hi] * w
            out[s.arm][v] = ((values[:, 1:] + values[:, :-1]) / 2.0).mean(axis=1)
    return out


def robust_aggregate(
    summaries: list[ArmSummary], *, reps: int = 2000, rng: int = 0, costs: CostTable | None = None
) -> dict[str, dict[str, Estimate | None]]:
    """Per arm and score (``auc``, ``final``, ``auc_time``): the interquartile mean over seeds (``iqm_auc``,
    ...) and the probability of improvement over uniform (``p_auc``, ...; None for uniform or without a uniform
    arm), with stratified-bootstrap intervals (:mod:`laber.experiments.aggregate`). With ``costs`` (the table
    the summaries' times were modelled from, :func:`apply_costs`), the intervals at equal time also resample
    its timing rounds (:func:`auc_time_variants`); the point estimates are the same either way. ``ValueError``
    when ``costs`` is given but some arm's times are not the ones it models (the summaries were not passed through
    :func:`apply_costs` with that table): the intervals would mix two clocks."""
    if costs is not None:
        for s in summaries:
            modelled = costs.times(s.arm, s.steps) if s.times is not None else None
            if modelled is None or s.times is None or not np.allclose(s.times, modelled[None, :], rtol=1e-9, atol=0):
                raise ValueError(
                    f"costs: arm {s.arm!r}'s training times are not the ones this costs table models; pass the "
                    "summaries through apply_costs(summaries, costs, config) first, or leave costs=None"
                )
    scores = robust_scores(summaries)
    base = scores.get(ROBUST_BASELINE)
    # the rounds' draws from a stream of their own (not the seeds' resampling stream)
    varied = (
        auc_time_variants(summaries, costs, rng=(rng, 1)) if "auc_time" in next(iter(scores.values()), {}) else None
    )
    gen = np.random.default_rng(rng)
    out: dict[str, dict[str, Estimate | None]] = {}
    for arm, by_score in scores.items():
        row: dict[str, Estimate | None] = {}
        for name, x in by_score.items():
            mine = varied[arm] if varied is not None and name == "auc_time" else None
            theirs = varied[ROBUST_BASELINE] if mine is not None and varied is not None and base is not None else None
            row[f"iqm_{name}"] = iqm_estimate(x, reps=reps, rng=gen, variants=mine)
            row[f"p_{name}"] = (
                None
                if base is None or arm == ROBUST_BASELINE
                else probability_of_improvement(x, base[name], reps=reps, rng=gen, variants_x=mine, variants_y=theirs)
            )
        out[arm] = row
    return out


def costs_version_gap(costs: CostTable | None, summaries: Sequence[ArmSummary]) -> str | None:
    """Which of laber's, torch's and numpy's versions differ between ``costs`` and the runs of ``summaries``
    (:meth:`CostTable.version_gap`); None without ``costs`` or when none differ."""
    if costs is None:
        return None
    return costs.version_gap([v for s in summaries for v in s.versions])


def _time_basis(costs: CostTable | None, gap: str | None = None) -> str:
    """How the equal-time comparisons measured training time (``gap``: :func:`costs_version_gap`)."""
    if costs is None:
        return (
            "training time as each run measured it (evaluations excluded; runs that shared the machine with "
            "other work carry that load)"
        )
    return (
        f"training time modelled from matched-load costs ({COSTS_FILE}, `laber cost`: {costs.describe()}; an "
        "arm's time at step s is pre x min(s, L) + train x max(s - L, 0), its costs per step before and after "
        "learning starts), not the runs' own clocks; the model takes an arm's cost per step over the whole "
        "run to be its cost in the timing window"
        + (f"; the costs were measured with other versions than the runs trained with: {gap}" if gap else "")
    )


def _robust_markdown(
    summaries: list[ArmSummary], robust: dict[str, dict[str, Estimate | None]], costs: CostTable | None = None
) -> list[str]:
    has_base = any(s.arm == ROBUST_BASELINE for s in summaries)
    horizon = equal_time_horizon(summaries)
    timed = horizon is not None
    lines = [
        "",
        "Robust aggregates (Agarwal et al., NeurIPS 2021): interquartile mean over seeds and, against uniform, the "
        "probability that a run of the arm beats a run of uniform (0.5: neither is better), each with a 95% "
        "stratified-bootstrap interval (none below 5 seeds; with fewer than 10 they are wide and under-cover)."
        + (
            f" Equal time: the mean evaluation return over the first {horizon:.0f} s of training, the time every "
            "run reached, so that arms whose updates cost more are compared at the same compute (it weights the "
            "curve by training time where AUC weights it by steps: the random steps before learning starts are a "
            "smaller share of the time than of the steps, so uniform's two AUCs differ); "
            f"{_time_basis(costs, costs_version_gap(costs, summaries))}."
            + (
                " The intervals at equal time also resample the timing rounds (two-stage bootstrap: rounds, then "
                "seeds), so they carry the costs' error as well as the seeds'."
                if costs is not None
                else ""
            )
            if horizon is not None
            else ""
        ),
        "",
        "| arm | IQM final | IQM AUC | P(> uniform), final | P(> uniform), AUC |"
        + (" IQM AUC, equal time | P(> uniform), equal time |" if timed else ""),
        "|---|---|---|---|---|" + ("---|---|" if timed else ""),
    ]
    seeds = {s.arm: len(s.seeds) for s in summaries}
    base_seeds = seeds.get(ROBUST_BASELINE, 0)

    def cell(est: Estimate | None, digits: int, enough: bool) -> str:
        if est is None:
            return "-" if has_base else "n/a"
        return est.format(digits) if enough else f"{est.value:.{digits}f} (too few seeds for a CI)"

    for s in summaries:
        r = robust[s.arm]
        alone = seeds[s.arm] >= MIN_SEEDS_FOR_CI
        both = alone and base_seeds >= MIN_SEEDS_FOR_CI
        cells = [
            cell(r["iqm_final"], 1, alone),
            cell(r["iqm_auc"], 1, alone),
            cell(r["p_final"], 2, both),
            cell(r["p_auc"], 2, both),
        ]
        if timed:
            cells += [cell(r.get("iqm_auc_time"), 1, alone), cell(r.get("p_auc_time"), 2, both)]
        lines.append(f"| {s.arm} | " + " | ".join(cells) + " |")
    return lines


def _agent_text(config: dict[str, Any]) -> str:
    """The agent and its main settings, from a compare's settings (a run's config without arm and seed)."""
    if config.get("agent") == "sac":
        return (
            f"batch {config.get('batch_size')}, m = {config.get('m')}, SAC (twin critics, learned temperature), "
            f"MLP {config.get('hidden')}, tau {config.get('tau')}, an update every step."
        )
    network = "MinAtar conv net" if config.get("network") == "minatar" else "MLP"
    return (
        f"batch {config.get('batch_size')}, m = {config.get('m')}, {config.get('nstep')}-step Double DQN, "
        f"{config.get('loss')} loss, {network} {config.get('hidden')}, train every {config.get('train_freq')} step(s)."
    )


def _markdown(
    summaries: list[ArmSummary],
    env_id: str,
    config: dict[str, Any],
    lines_of_env: Sequence[tuple[float, str]],
    robust: dict[str, dict[str, Estimate | None]],
    costs: CostTable | None = None,
    costs_note: str | None = None,
) -> str:
    base = next((s.seconds_per_update for s in summaries if s.arm == "uniform"), None)
    n_seeds = sorted({len(s.seeds) for s in summaries})
    few = [s.arm for s in summaries if len(s.seeds) < MIN_SEEDS_FOR_CI]
    brackets = "Brackets: 95% bootstrap confidence intervals over seeds."
    if few:
        brackets += (
            f" Arms with fewer than {MIN_SEEDS_FOR_CI} seeds ({', '.join(few)}) get no interval: a percentile "
            "bootstrap over so few seeds is not a 95% interval (one seed gives [x, x]); their cells give the "
            "mean and the seeds' range."
        )
    reference = "; ".join(label for _, label in lines_of_env)
    lines = [
        f"# laber compare: {env_id}",
        "",
        f"Seeds per arm: {', '.join(map(str, n_seeds))}; {config.get('steps')} environment steps per run; "
        + _agent_text(config),
        "",
        "Final return: mean evaluation return over the last 10% of the steps. AUC: mean evaluation return over "
        f"the whole run (normalised area under the curve). {brackets} "
        "Time per update: mean wall-clock time of one update measured inside the runs (sampling, priorities, "
        "forward, backward, optimiser step)."
        + (f" Reference values of {env_id} (gymnasium): {reference}." if reference else "")
        + (
            " Matched load: the time per update and per training step relative to uniform's, the median over "
            f"rounds of interleaved timing runs of every arm of the paired ratio, with its range ({COSTS_FILE}, "
            "`laber cost`). Runs' clock / model: the training time the runs recorded over the time the costs "
            "model for them (above 1: the runs trained on a busier machine than the timing runs)."
            if costs is not None
            else ""
        )
        + (f" The directory's {COSTS_FILE} is not used: {costs_note}." if costs_note else ""),
        "",
        "| arm | seeds | final return | AUC | ms / update | vs uniform |"
        + (" matched load, per update | matched load, per step | runs' clock / model |" if costs else ""),
        "|---|---|---|---|---|---|" + ("---|---|---|" if costs else ""),
    ]
    for s in summaries:
        ratio = f"{s.seconds_per_update / base:.2f}x" if base else "-"
        matched = ""
        if costs is not None:
            for kind in ("update", "train_step"):
                r, (lo, hi) = costs.ratio(s.arm, kind), costs.ratio_range(s.arm, kind)
                matched += f" {r:.2f}x ({lo:.2f}-{hi:.2f}) |" if math.isfinite(r) else " - |"
            model = float(costs.times(s.arm, s.steps[-1:])[0])
            matched += f" {s.recorded_seconds / model:.2f} |" if s.recorded_seconds and model > 0 else " - |"
        lines.append(
            f"| {s.arm} | {len(s.seeds)} | {s.final.format()} | {s.auc.format()} | "
            f"{s.seconds_per_update * 1e3:.3f} | {ratio} |" + matched
        )
    lines.extend(_robust_markdown(summaries, robust, costs))
    lines.append("")
    return "\n".join(lines)


def write_summary(
    summaries: list[ArmSummary],
    out: str | os.PathLike[str],
    *,
    env_id: str,
    config: dict[str, Any],
    lines: Sequence[tuple[float, str]] | None = None,
    costs: CostTable | None = None,
    costs_note: str | None = None,
) -> Path:
    """Write ``summary.md`` (a markdown table) and ``summary.json`` into ``out``; returns the markdown path.

    In ``summary.json`` an interval's ``low`` and ``high`` are null for arms with fewer than 5 seeds (see
    ``laber.experiments.stats.Interval``). ``lines`` are the environment's reference values (default:
    ``reference_lines(env_id)``). ``costs``: the matched-load costs the summaries' times were modelled from
    (:func:`apply_costs`), or None when they are the runs' own; ``costs_note``: why a directory's costs were
    not used.
    """
    root = Path(out)
    md = root / SUMMARY_FILE
    if lines is None:
        lines = reference_lines(env_id)
    robust = robust_aggregate(summaries, costs=costs)  # once: its equal-time draws take about a second
    _atomic_write_text(md, _markdown(summaries, env_id, config, lines, robust, costs, costs_note))
    base_seeds = next((len(s.seeds) for s in summaries if s.arm == ROBUST_BASELINE), 0)
    data = {
        "env_id": env_id,
        "config": config,
        "time_basis": "runs" if costs is None else COSTS_FILE,
        "costs_note": costs_note,
        "costs_provenance": None if costs is None else costs.provenance,
        "costs_version_gap": costs_version_gap(costs, summaries),
        "arms": [
            {
                "arm": s.arm,
                "seeds": s.seeds,
                "final": s.final.to_dict(),
                "auc": s.auc.to_dict(),
                "seconds_per_update": s.seconds_per_update,
                "matched_seconds_per_update": None if costs is None else costs.seconds(s.arm, "update"),
                "matched_seconds_per_step": None if costs is None else costs.seconds(s.arm, "train_step"),
                "wall_seconds": s.wall_seconds,
                "steps": s.steps.tolist(),
                "mean": s.mean.tolist(),
                "robust": {key: _robust_json(est, key, len(s.seeds), base_seeds) for key, est in robust[s.arm].items()},
            }
            for s in summaries
        ],
    }
    _atomic_write_text(root / SUMMARY_JSON, json.dumps(data, indent=1) + "\n")
    return md


def _robust_json(est: Estimate | None, key: str, seeds: int, base_seeds: int) -> dict[str, Any] | None:
    """One robust estimate for summary.json: ``low`` and ``high`` are None where the markdown shows no interval
    (an IQM of fewer than ``MIN_SEEDS_FOR_CI`` seeds; a probability of improvement where either arm has fewer),
    as for the final return and AUC; ``seeds`` is the arm's count."""
    if est is None:
        return None
    enough = seeds >= MIN_SEEDS_FOR_CI and (not key.startswith("p_") or base_seeds >= MIN_SEEDS_FOR_CI)
    return {
        "value": est.value,
        "low": est.low if enough else None,
        "high": est.high if enough else None,
        "seeds": seeds,
    }


def _recorded_arms(root: Path) -> list[str]:
    """The arms of ``compare.json`` in its order (empty when it is missing or unreadable)."""
    try:
        arms = json.loads((root / COMPARE_SETTINGS_FILE).read_text())["arms"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [a for a in arms if isinstance(a, str)] if isinstance(arms, list) else []


def load_compare(
    out: str | os.PathLike[str], arms: Sequence[str] | None = None, seeds: Sequence[int] | None = None
) -> tuple[dict[str, list[RunRecord]], dict[str, Any]]:
    """The finished runs under the compare directory ``out``, per arm, and their shared settings.

    Every finished run on disk is included (unfinished runs are skipped), or only those of ``arms`` and ``seeds``
    when given. Arms come in ``compare.json``'s order, then the others in ``ARMS`` order. All runs must share
    their settings but for arm and seed (``ValueError`` naming the first that differs); the settings are
    returned as the first run's ``config.to_dict()`` without ``arm`` and ``seed``. No finished run is a
    ``FileNotFoundError``.
    """
    root = Path(out)
    wanted_arms = None if arms is None else set(arms)
    wanted_seeds = None if seeds is None else {int(k) for k in seeds}
    found: dict[str, list[RunRecord]] = {}
    for arm, seed, path in finished_runs(root):
        if (wanted_arms is None or arm in wanted_arms) and (wanted_seeds is None or seed in wanted_seeds):
            found.setdefault(arm, []).append(load_run(path))
    if not found:
        which = "" if arms is None and seeds is None else f" for arms {list(arms or [])} and seeds {list(seeds or [])}"
        raise FileNotFoundError(f"no finished runs under {str(root)!r}{which}")
    order = [a for a in _recorded_arms(root) if a in found]
    order += [a for a in ARMS if a in found and a not in order]
    runs = {arm: found[arm] for arm in order}
    first = runs[order[0]][0].config
    config = first.to_dict()
    config.pop("arm")
    config.pop("seed")
    for records in runs.values():
        for rec in records:
            other = rec.config.to_dict()
            other.pop("arm")
            other.pop("seed")
            if other != config:
                diff = sorted(k for k in set(config) | set(other) if config.get(k) != other.get(k))
                details = ", ".join(f"{k}={other.get(k)!r} (others: {config.get(k)!r})" for k in diff)
                raise ValueError(
                    f"runs under {str(root)!r} have different settings: {rec.path} has {details}; a compare "
                    "directory must hold one experiment"
                )
    return runs, config


def write_report(
    out: str | os.PathLike[str],
    arms: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    smooth_window: int = 1,
    reference: str | None = None,
) -> tuple[Path, Path]:
    """Plot and summary of the finished runs under the compare directory ``out``; returns their paths.

    Every finished run on disk is included (unfinished runs are skipped), or only those of ``arms`` and
    ``seeds`` when given. Arms come in ``compare.json``'s order, then the others in ``ARMS`` order. All runs must
    share their settings but for arm and seed (``ValueError`` naming the first that differs). ``reference`` is
    the arm drawn in grey on every panel (default: ``uniform`` when it has runs, else none); ``smooth_window``
    is the plot's moving average (1: off). When ``out`` holds a ``costs.json`` (``laber cost``) of its
    settings and arms, the equal-time comparisons use the training times it models
    (:mod:`laber.experiments.costs`) instead of the runs' own clocks, and the summary says which it used.
    """
    root = Path(out)
    smooth_window = check_positive_int(smooth_window, "smooth_window")
    runs, config = load_compare(root, arms, seeds)
    env_id = str(config["env_id"])
    if reference is None and "uniform" in runs and len(runs) > 1:
        reference = "uniform"
    if reference is not None and reference not in runs:
        raise ValueError(
            f"reference arm {reference!r} has no finished runs under {str(root)!r}; arms: {', '.join(runs)}"
        )
    summaries, costs, costs_note = costs_for(root, summarize(runs), config)
    lines = reference_lines(env_id)
    plot = write_plot(
        summaries,
        root / PLOT_FILE,
        title=f"{env_id}: evaluation return, mean over seeds",
        smooth_window=smooth_window,
        reference=reference,
        lines=lines,
    )
    md = write_summary(summaries, root, env_id=env_id, config=config, lines=lines, costs=costs, costs_note=costs_note)
    return plot, md
