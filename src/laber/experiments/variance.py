r"""``laber variance``: train the reference DQN, snapshot it, and measure the variance of its gradient estimators.

At each snapshot step the run pauses (``laber.agents.dqn.train``'s ``on_snapshot``), and a *population* of
``population`` rows is drawn without replacement from the replay buffer (by this module's own generator, so the
run itself is unchanged: the buffer's generator is not touched). With the snapshot's online and target networks
it computes the Double DQN targets ``y`` of those rows, the per-sample gradients ``G`` of the run's loss
(``laber.diagnostics.q_gradients``) and LaBER's surrogate priorities, then ``laber.diagnostics.gradient_variance``
with the run's ``B`` (``batch_size``) and LaBER ``eps``: every estimator's Monte Carlo bias and trace variance,
the closed form ``(1 - 1/(mB)) V_IS + V_B / m``, the break-even ``m`` and ``m* = 1 + mean(q)^2 / var(q)``, and the
correlations between the surrogate and the exact norms. The "full-buffer gradient" of the report is the
population's mean gradient.

Outputs in ``out``: ``variance.json`` (the run's settings, its evaluation curve and one report per snapshot)
and ``variance.png`` (one panel per snapshot: trace variance relative to uniform ``B`` against ``m``, Monte Carlo
points with two standard errors and the closed-form curves). Only these two names are written (replaced if they
exist); nothing else in ``out`` is touched.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber.agents.dqn import DQNConfig, check_trainable, double_dqn_target, train
from laber.checkpoint import write_atomically
from laber.diagnostics import gradient_variance, q_gradients
from laber.experiments.runs import OutDirError

__all__ = ["JSON_NAME", "PLOT_NAME", "check_variance_dir", "measure_snapshot", "plot_variance", "run_variance"]

JSON_NAME = "variance.json"
PLOT_NAME = "variance.png"


def check_variance_dir(out: str | os.PathLike[str]) -> Path:
    """Check, writing nothing, that ``run_variance`` may write to ``out``: absent (under a writable directory) or
    a writable directory. Anything else (an empty name, a file, a path under a file) is an ``OutDirError``."""
    text = os.fspath(out)
    if not text:
        raise OutDirError(f"out must name a directory, got out={out!r}")
    path = Path(text)
    if path.exists():
        if not path.is_dir():
            raise OutDirError(f"out={text!r} exists and is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            raise OutDirError(f"out={text!r} is not writable")
        return path
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutDirError(f"out={text!r} cannot be created: {str(parent)!r} is not a writable directory")
    return path


def measure_snapshot(
    online: Any,
    target: Any,
    buffer: Any,
    config: DQNConfig,
    *,
    population: int,
    ms: Sequence[int],
    draws: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The diagnostics of one snapshot (``VarianceReport.to_dict()`` plus the TD-error statistics).

    Added to the report: ``population`` (rows measured), ``huber_saturated`` (the fraction of ``|delta| > 1``,
    where the Huber surrogate is clipped to 1), ``td_abs_mean`` and the surrogate's ``mean`` and ``var``.
    """
    torch = require("torch", "laber variance")
    # A device buffer (``--device cuda``) returns tensors on its device: the rows are read on the host, and the
    # population goes to the online network's device.
    rows = {name: _host(value) for name, value in buffer.get_all_transitions().items()}
    device = next(online.parameters()).device
    stored = int(rows["obs"].shape[0])
    take = np.sort(rng.choice(stored, size=min(population, stored), replace=False))

    def field(name: str) -> Any:
        return torch.as_tensor(rows[name][take], dtype=torch.float32, device=device)

    obs, next_obs = field("obs"), field("next_obs")
    n = obs.shape[0]
    act = torch.as_tensor(rows["act"][take].reshape(n), dtype=torch.int64, device=device)
    rew, not_done = field("rew").reshape(n), 1.0 - field("done").reshape(n)
    # the learner's default when rows carry no per-row discount: gamma^n for n-step rows
    default_discount = config.gamma ** (config.nstep if config.nstep > 1 else 1)
    discount: Any = field("discount").reshape(n) if "discount" in rows else default_discount
    with torch.no_grad():
        y = double_dqn_target(online(next_obs), target(next_obs), rew, discount, not_done)
        td = (y - online(obs).gather(1, act.reshape(n, 1)).reshape(n)).abs().double().cpu().numpy()
    grads, surrogate = q_gradients(online, obs, act, y, loss=config.loss)
    report = gradient_variance(
        grads, surrogate, batch_size=config.batch_size, ms=ms, draws=draws, eps=config.laber_eps, rng=rng
    ).to_dict()
    report.update(
        population=int(n),
        huber_saturated=float(np.mean(td > 1.0)),
        td_abs_mean=float(td.mean()),
        surrogate_mean=float(surrogate.mean()),
        surrogate_var=float(surrogate.var()),
    )
    return report


def _host(value: Any) -> np.ndarray:
    """A buffer field as a host numpy array (a torch tensor on any device is copied to the host)."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return np.asarray(value.detach().cpu().numpy())
    return np.asarray(value)


def _checked_steps(values: Sequence[int], steps: int, name: str) -> list[int]:
    out = sorted({int(v) for v in values})
    if not out or len(out) != len(values) or any(isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be distinct positive integers, got {name}={list(values)!r}")
    if out[0] < 1 or out[-1] > steps:
        raise ValueError(f"{name} must lie in [1, steps={steps}], got {name}={list(values)!r}")
    return out


def run_variance(
    config: DQNConfig,
    out: str | os.PathLike[str],
    *,
    snapshots: Sequence[int],
    ms: Sequence[int] = (1, 2, 4, 8),
    draws: int = 4000,
    population: int = 4096,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``config``, measure at each of ``snapshots`` (environment steps), write JSON and figure to ``out``.

    ``seed`` seeds the measurement's own generator (population rows and Monte Carlo draws); the training run is
    the one ``config`` describes, unchanged by the measurement. ``log(line)`` receives one line per snapshot.
    Returns what ``variance.json`` holds. Bad arguments (and an ``out`` that cannot be written) are refused
    before training.
    """
    check_trainable(config)
    path = check_variance_dir(out)
    marks = _checked_steps(list(snapshots), config.steps, "snapshots")
    mults = [int(m) for m in ms]
    if not mults or any(isinstance(m, bool) or m < 1 for m in ms):
        raise ValueError(f"ms must be positive integers, got ms={list(ms)!r}")
    for name, value in (("draws", draws), ("population", population)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {name}={value!r}")
    torch = require("torch", "laber variance")
    rng = np.random.default_rng(seed)
    results: list[dict[str, Any]] = []
    evals: list[tuple[int, float]] = []
    start = time.perf_counter()

    def on_snapshot(step: int, online: Any, target: Any, buffer: Any) -> None:
        t0 = time.perf_counter()
        report = measure_snapshot(online, target, buffer, config, population=population, ms=mults, draws=draws, rng=rng)
        report["step"] = step
        report["eval_return"] = evals[-1][1] if evals else None
        report["measure_seconds"] = time.perf_counter() - t0
        results.append(report)
        if log is not None:
            log(_summary_line(report))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the run as `laber run` trains it (one thread: same numbers on every machine)
    try:
        run = train(
            config,
            on_eval=lambda s, r: evals.append((s, r)),
            on_snapshot=on_snapshot,
            snapshot_steps=marks,
        )
    finally:
        torch.set_num_threads(threads)
    data = {
        "config": config.to_dict(),
        "settings": {"snapshots": marks, "ms": mults, "draws": draws, "population": population, "seed": seed},
        "eval_steps": run.eval_steps,
        "eval_returns": run.eval_returns,
        "seconds": time.perf_counter() - start,
        "snapshots": results,
    }
    path.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, allow_nan=False).encode()
    write_atomically(path / JSON_NAME, lambda fh: fh.write(text))
    plot_variance(data, path / PLOT_NAME)
    return data


def _ratio_row(report: dict[str, Any], name: str, m: int) -> dict[str, Any] | None:
    for row in report["estimators"]:
        if row["name"] == name and row["m"] == m:
            return row  # type: ignore[no-any-return]
    return None


def _summary_line(report: dict[str, Any]) -> str:
    """One line per snapshot: LaBER-mean's ratio to uniform B at each m, break-even and m*."""
    parts = []
    for row in report["estimators"]:
        if row["name"] == "laber-mean":
            parts.append(f"m={row['m']} {row['ratio']:.2f} (cf {row['predicted_ratio']:.2f})")
    be = report["surrogate"]["break_even_m"]
    ms = report["m_star"]
    return (
        f"step {report['step']}: LaBER-mean / uniform B: {', '.join(parts)}; break-even m "
        f"{'inf' if be is None else f'{be:.2f}'}, m* {'inf' if ms is None else f'{ms:.2f}'}; "
        f"|delta|>1 {report['huber_saturated']:.0%}; spearman {report['spearman']:.2f}"
    )


def plot_variance(data: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Draw ``variance.png`` from ``run_variance``'s data: one panel per snapshot, ratio to uniform ``B`` vs ``m``.

    Points: Monte Carlo ratios (two standard errors as bars) of LaBER-mean on the surrogate, LaBER-mean on the
    exact norms and uniform ``m B``. Lines: their closed forms over a continuous ``m``. The grey line at 1 is
    uniform ``B``.
    """
    mpl = require("matplotlib", "the variance plot")
    mpl.use("Agg", force=False)
    plt = require("matplotlib.pyplot", "the variance plot")
    reports = data["snapshots"]
    ms = data["settings"]["ms"]
    cfg = data["config"]
    fig, axes = plt.subplots(1, len(reports), figsize=(4.2 * len(reports), 3.8), squeeze=False, sharey=True)
    grid = np.geomspace(min(ms), max(ms), 60) if max(ms) > min(ms) else np.array([float(ms[0])])
    series = (
        ("laber-mean", "LaBER-mean (surrogate)", "C0", "o", "surrogate"),
        ("laber-exact", "LaBER-mean (exact norms)", "C2", "s", "exact"),
        ("uniform-large", "uniform mB", "C1", "^", None),
    )
    for ax, report in zip(axes[0], reports, strict=True):
        v_b = report["surrogate"]["v_b"]
        b = report["batch_size"]
        ax.axhline(1.0, color="0.6", lw=1, label="uniform B")
        for name, label, color, marker, closed in series:
            xs, ys, errs = [], [], []
            for m in ms:
                row = _ratio_row(report, name if m > 1 or name != "uniform-large" else "uniform", m)
                if row is None or row["ratio"] is None:
                    continue
                xs.append(m)
                ys.append(row["ratio"])
                errs.append(2 * row["stderr"] / v_b)
            ax.errorbar(xs, ys, yerr=errs, fmt=marker, color=color, ms=5, capsize=2, label=f"{label}, Monte Carlo")
            if closed is None:
                ax.plot(grid, 1.0 / grid, color=color, lw=1, ls="--")
            else:
                v_is = report[closed]["v_is"]
                curve = ((1 - 1 / (grid * b)) * v_is + v_b / grid) / v_b
                ax.plot(grid, curve, color=color, lw=1, ls="--")
        be = report["surrogate"]["break_even_m"]
        m_star = report["m_star"]
        ret = report.get("eval_return")
        ax.set_title(
            f"step {report['step']}" + (f" (return {ret:.0f})" if ret is not None else "") + "\n"
            f"break-even m {'inf' if be is None else f'{be:.1f}'}, m* {'inf' if m_star is None else f'{m_star:.1f}'}, "
            f"|δ|>1: {report['huber_saturated']:.0%}",
            fontsize=9,
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(ms)
        ax.set_xticklabels([str(m) for m in ms])
        ax.set_xlabel("m (large batch m·B)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("trace variance / uniform B's")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.suptitle(
        f"{cfg.get('env_id', 'CartPole-v1')}, {cfg.get('loss', 'huber')} loss, arm {cfg.get('arm')}, "
        f"B={reports[0]['batch_size'] if reports else '?'}, {data['settings']['draws']} draws "
        "(dashed: closed form)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    target = Path(path)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
