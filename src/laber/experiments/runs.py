"""One training run on disk: ``execute`` trains and writes its outputs atomically; ``load_run`` reads them back.

A run directory holds

* ``eval.csv``: ``step,eval_return`` (mean greedy return of the evaluation episodes), one row per evaluation;
* ``episodes.csv``: ``step,return`` of every training episode;
* ``tb/``: TensorBoard event files, when the ``tensorboard`` package is installed (skipped otherwise);
* ``result.json``: the config, timing (seconds per update) and versions, written last.

Everything is written into ``<dir>.partial`` first and the directory is renamed into place at the end, so a run
is finished exactly when ``<dir>/result.json`` exists; an interrupted run leaves only a ``.partial`` directory,
which the next attempt removes.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber.agents.dqn import DQNConfig, RunResult, train

__all__ = ["RESULT_FILE", "RunRecord", "execute", "is_finished", "load_run", "run_dir"]

RESULT_FILE = "result.json"
EVAL_FILE = "eval.csv"
EPISODES_FILE = "episodes.csv"
PARTIAL_SUFFIX = ".partial"


@dataclass(frozen=True)
class RunRecord:
    """A finished run read back from disk."""

    path: Path
    config: DQNConfig
    steps: np.ndarray
    returns: np.ndarray
    seconds_per_update: float
    wall_seconds: float


def run_dir(root: str | os.PathLike[str], arm: str, seed: int) -> Path:
    """Where a compare keeps one run: ``<root>/<arm>/seed<seed>``."""
    return Path(root) / arm / f"seed{seed}"


def is_finished(path: str | os.PathLike[str]) -> bool:
    """True when the run in ``path`` completed (its final file, ``result.json``, exists)."""
    return (Path(path) / RESULT_FILE).is_file()


def _tensorboard_writer(path: Path) -> Any:
    """A torch SummaryWriter, or None when tensorboard is not installed (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(path))


def _write_csv(path: Path, header: tuple[str, str], rows: list[tuple[int, float]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows((step, repr(float(value))) for step, value in rows)


def execute(
    config: DQNConfig,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    position: int | None = None,
    tensorboard: bool = True,
) -> Path:
    """Train one run and write its outputs to ``out`` (replacing a previous run there); returns ``out``.

    torch uses one thread while the run trains (the fastest setting for these small networks, and the fair one
    when several runs share a machine); the previous setting is restored afterwards.
    """
    if not isinstance(config, DQNConfig):
        raise TypeError(f"config must be a DQNConfig, got config={config!r}")
    torch = require("torch", "laber runs")
    final = Path(out)
    partial = final.with_name(final.name + PARTIAL_SUFFIX)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    writer = _tensorboard_writer(partial / "tb") if tensorboard else None
    bar = None
    if progress:
        tqdm = require("tqdm", "progress bars").tqdm
        bar = tqdm(
            total=config.steps,
            desc=f"{config.arm} seed {config.seed}",
            position=position,
            leave=position is None,
            unit="step",
            mininterval=0.5,
            dynamic_ncols=True,
        )

    def on_eval(step: int, value: float) -> None:
        if writer is not None:
            writer.add_scalar("eval/return", value, step)
        if bar is not None:
            bar.set_postfix_str(f"eval {value:.1f}", refresh=False)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train(config, on_eval=on_eval, on_progress=bar.update if bar is not None else None)
    finally:
        torch.set_num_threads(threads)
        if bar is not None:
            bar.close()
    if writer is not None:
        for step, value in zip(result.episode_steps, result.episode_returns, strict=True):
            writer.add_scalar("train/episode_return", value, step)
        writer.add_scalar("time/seconds_per_update", result.seconds_per_update, config.steps)
        writer.close()
    _write_outputs(partial, result, tensorboard=writer is not None)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    return final


def _write_outputs(path: Path, result: RunResult, *, tensorboard: bool) -> None:
    torch = require("torch", "laber runs")
    from laber import __version__

    _write_csv(
        path / EVAL_FILE, ("step", "eval_return"), list(zip(result.eval_steps, result.eval_returns, strict=True))
    )
    _write_csv(
        path / EPISODES_FILE, ("step", "return"), list(zip(result.episode_steps, result.episode_returns, strict=True))
    )
    info = {
        "config": result.config.to_dict(),
        "updates": result.updates,
        "update_seconds": result.update_seconds,
        "seconds_per_update": result.seconds_per_update,
        "wall_seconds": result.wall_seconds,
        "final_eval_return": result.eval_returns[-1],
        "tensorboard": tensorboard,
        "versions": {"laber": __version__, "torch": str(torch.__version__), "numpy": np.__version__},
    }
    tmp = path / (RESULT_FILE + ".tmp")
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, path / RESULT_FILE)


def load_run(path: str | os.PathLike[str]) -> RunRecord:
    """Read a finished run; a missing or unfinished run is a ``FileNotFoundError`` naming the path."""
    root = Path(path)
    if not is_finished(root):
        raise FileNotFoundError(f"no finished run in {str(root)!r} (its {RESULT_FILE} is missing)")
    info = json.loads((root / RESULT_FILE).read_text())
    data = np.loadtxt(root / EVAL_FILE, delimiter=",", skiprows=1, ndmin=2)
    return RunRecord(
        path=root,
        config=DQNConfig.from_dict(info["config"]),
        steps=data[:, 0].astype(np.int64),
        returns=data[:, 1].astype(np.float64),
        seconds_per_update=float(info["seconds_per_update"]),
        wall_seconds=float(info["wall_seconds"]),
    )
