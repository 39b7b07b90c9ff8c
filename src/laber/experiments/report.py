"""The outputs of a compare: learning-curve plot (``curves.png``) and summary (``summary.md``, ``summary.json``).

Per arm, over its seeds: the mean evaluation curve with a 95% pointwise bootstrap band, the area under the curve
and the final return with 95% bootstrap intervals (see ``laber.experiments.stats``), and the mean wall-clock time
of one update (sampling, surrogate priorities, forward and backward passes, optimiser step) measured inside each
run, with its ratio to the ``uniform`` arm when that arm is present. Timings of runs that shared the machine with
other processes are noisy; ``benchmarks/bench_dqn.py`` measures the ratio side by side.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber.experiments.runs import RunRecord, load_run, run_dir
from laber.experiments.stats import Interval, auc, bootstrap_band, bootstrap_mean, final_return

__all__ = ["ArmSummary", "summarize", "write_plot", "write_report", "write_summary"]

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
            )
        )
    return out


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_plot(summaries: list[ArmSummary], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Mean evaluation return per arm with its 95% bootstrap band, as a PNG."""
    mpl = require("matplotlib", "the learning-curve plot")
    mpl.use("Agg", force=False)
    plt = require("matplotlib.pyplot", "the learning-curve plot")
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=120)
    try:
        for s in summaries:
            (line,) = ax.plot(s.steps, s.mean, label=f"{s.arm} (n={len(s.seeds)})", linewidth=1.6)
            ax.fill_between(s.steps, s.low, s.high, color=line.get_color(), alpha=0.18, linewidth=0)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("evaluation return")
        ax.set_title(title or "learning curves (mean and 95% bootstrap band over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        target = Path(path)
        tmp = target.with_name(target.stem + ".tmp" + target.suffix)
        fig.savefig(tmp)
        os.replace(tmp, target)
    finally:
        plt.close(fig)
    return target


def _markdown(summaries: list[ArmSummary], env_id: str, config: dict[str, Any]) -> str:
    base = next((s.seconds_per_update for s in summaries if s.arm == "uniform"), None)
    n_seeds = sorted({len(s.seeds) for s in summaries})
    lines = [
        f"# laber compare: {env_id}",
        "",
        f"Seeds per arm: {', '.join(map(str, n_seeds))}; {config.get('steps')} environment steps per run; "
        f"batch {config.get('batch_size')}, m = {config.get('m')}, {config.get('nstep')}-step Double DQN, "
        f"{config.get('loss')} loss, MLP {config.get('hidden')}, train every {config.get('train_freq')} step(s).",
        "",
        "Final return: mean evaluation return over the last 10% of the steps. AUC: mean evaluation return over "
        "the whole run (normalised area under the curve). Brackets: 95% bootstrap confidence intervals over seeds. "
        "Time per update: mean wall-clock time of one update measured inside the runs (sampling, priorities, "
        "forward, backward, optimiser step).",
        "",
        "| arm | seeds | final return | AUC | ms / update | vs uniform |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries:
        ratio = f"{s.seconds_per_update / base:.2f}x" if base else "-"
        lines.append(
            f"| {s.arm} | {len(s.seeds)} | {s.final.format()} | {s.auc.format()} | "
            f"{s.seconds_per_update * 1e3:.3f} | {ratio} |"
        )
    lines.append("")
    return "\n".join(lines)


def write_summary(
    summaries: list[ArmSummary], out: str | os.PathLike[str], *, env_id: str, config: dict[str, Any]
) -> Path:
    """Write ``summary.md`` (a markdown table) and ``summary.json`` into ``out``; returns the markdown path."""
    root = Path(out)
    md = root / SUMMARY_FILE
    _atomic_write_text(md, _markdown(summaries, env_id, config))
    data = {
        "env_id": env_id,
        "config": config,
        "arms": [
            {
                "arm": s.arm,
                "seeds": s.seeds,
                "final": vars(s.final),
                "auc": vars(s.auc),
                "seconds_per_update": s.seconds_per_update,
                "wall_seconds": s.wall_seconds,
                "steps": s.steps.tolist(),
                "mean": s.mean.tolist(),
            }
            for s in summaries
        ],
    }
    _atomic_write_text(root / SUMMARY_JSON, json.dumps(data, indent=1) + "\n")
    return md


def write_report(out: str | os.PathLike[str], arms: list[str], seeds: list[int]) -> tuple[Path, Path]:
    """Plot and summary of the finished runs of ``arms`` x ``seeds`` under ``out``; unfinished runs are skipped."""
    root = Path(out)
    runs: dict[str, list[RunRecord]] = {}
    for arm in arms:
        records = []
        for seed in seeds:
            path = run_dir(root, arm, seed)
            if (path / "result.json").is_file():
                records.append(load_run(path))
        if records:
            runs[arm] = records
    if not runs:
        raise FileNotFoundError(f"no finished runs under {str(root)!r} for arms {arms} and seeds {seeds}")
    summaries = summarize(runs)
    first = next(iter(runs.values()))[0].config
    config = first.to_dict()
    config.pop("arm")
    config.pop("seed")
    plot = write_plot(summaries, root / PLOT_FILE, title=f"{first.env_id}: mean and 95% bootstrap band over seeds")
    md = write_summary(summaries, root, env_id=first.env_id, config=config)
    return plot, md
