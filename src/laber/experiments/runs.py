"""One training run on disk: ``execute`` trains and writes its outputs atomically; ``load_run`` reads them back.

A run directory holds

* ``eval.csv``: ``step,eval_return,train_seconds`` (mean greedy return of the evaluation episodes; wall-clock
  seconds since the run started, evaluations excluded), one row per evaluation (runs written before laber 0.3
  have no ``train_seconds``);
* ``episodes.csv``: ``step,return`` of every training episode;
* ``tb/``: TensorBoard event files, when the ``tensorboard`` package is installed (skipped otherwise);
* ``result.json``: the config, timing (seconds per update) and versions, written last.

* ``.laber-run``: a small JSON marker that says laber created the directory.

Everything is written into ``<dir>.partial`` first and the directory is renamed into place at the end, so a run
is finished exactly when ``<dir>/result.json`` exists; an interrupted run leaves only a ``.partial`` directory,
which the next attempt removes.

laber deletes only directories it can tell it created, the ones holding its ``.laber-run`` marker (written first
into every run directory): ``execute`` replaces a previous run at ``out`` and an interrupted ``<out>.partial``
only when they carry the marker (or are empty). Anything else there (a file, a foreign directory, a run written
without the marker) is an ``OutDirError`` raised before anything is trained or written; ``check_run_dir`` runs
the same checks on their own.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber._validation import check_nonnegative_float
from laber.agents.registry import ALL_ARMS, config_from_record, kind_of
from laber.agents.resume import ResumeError, RunCheckpoints
from laber.experiments.progress import Display, Reporter, open_display

__all__ = [
    "MARKER_FILE",
    "RESULT_FILE",
    "OutDirError",
    "RunRecord",
    "check_run_dir",
    "execute",
    "finished_runs",
    "is_finished",
    "is_laber_dir",
    "load_run",
    "run_dir",
]

RESULT_FILE = "result.json"
EVAL_FILE = "eval.csv"
EPISODES_FILE = "episodes.csv"
PARTIAL_SUFFIX = ".partial"
MARKER_FILE = ".laber-run"
RESUME_DIR = "resume"  # <out>.partial/resume: the mid-run checkpoints (laber.agents.resume)
DEFAULT_CHECKPOINT_SECONDS = 300.0
COMPARE_SETTINGS_FILE = "compare.json"  # a compare's settings (laber.experiments.compare); never replaced by a run
_SEED_DIR = re.compile(r"seed(0|[1-9][0-9]*)")


class OutDirError(ValueError):
    """An output directory laber cannot or may not write to; raised before anything is trained or written."""


@dataclass(frozen=True)
class RunRecord:
    """A finished run read back from disk."""

    path: Path
    config: Any  # the agent's config (laber.agents.DQNConfig or laber.agents.sac.SACConfig)
    steps: np.ndarray
    returns: np.ndarray
    seconds_per_update: float
    wall_seconds: float
    train_seconds: np.ndarray | None = None  # at each evaluation; None for runs written before the column
    versions: dict[str, str] = field(default_factory=dict)  # laber's, torch's and numpy's, as result.json records


def run_dir(root: str | os.PathLike[str], arm: str, seed: int) -> Path:
    """Where a compare keeps one run: ``<root>/<arm>/seed<seed>``."""
    return Path(root) / arm / f"seed{seed}"


def finished_runs(out: str | os.PathLike[str]) -> Iterator[tuple[str, int, Path]]:
    """Every finished run under a compare directory, as ``(arm, seed, path)``: arms in ``ALL_ARMS`` order, seeds
    ascending (directories that are not ``<arm>/seed<k>`` of a known arm are ignored)."""
    root = Path(out)
    for arm in ALL_ARMS:
        arm_dir = root / arm
        if not arm_dir.is_dir() or arm_dir.is_symlink():
            continue
        seeds = []
        for entry in arm_dir.iterdir():
            match = _SEED_DIR.fullmatch(entry.name)
            if match and is_finished(entry):
                seeds.append(int(match.group(1)))
        for seed in sorted(seeds):
            yield arm, seed, run_dir(root, arm, seed)


def is_finished(path: str | os.PathLike[str]) -> bool:
    """True when the run in ``path`` completed (its final file, ``result.json``, exists)."""
    return (Path(path) / RESULT_FILE).is_file()


def _marker(path: Path) -> dict[str, Any] | None:
    """The content of the ``.laber-run`` marker in ``path``, or None when there is no readable laber marker."""
    try:
        data = json.loads((path / MARKER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("created_by") == "laber" else None


def is_laber_dir(path: str | os.PathLike[str], kind: str | None = None) -> bool:
    """True when laber created the directory ``path`` (it holds the ``.laber-run`` marker), of ``kind`` if given.

    ``kind`` is ``"run"`` (one run, or its ``.partial`` attempt), ``"compare"`` (a compare's output directory) or
    ``"aggregate"`` (a ``laber aggregate`` output directory).
    """
    marker = _marker(Path(path))
    return marker is not None and (kind is None or marker.get("kind") == kind)


def write_marker(path: Path, kind: str) -> None:
    """Mark ``path``, a directory laber has just created, as laber's (``kind``: ``"run"``, ``"compare"`` or
    ``"aggregate"``)."""
    from laber import __version__

    info = {
        "created_by": "laber",
        "kind": kind,
        "laber": __version__,
        "pid": os.getpid(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (path / MARKER_FILE).write_text(json.dumps(info) + "\n")


def check_creatable(path: Path, label: str) -> None:
    """Raise ``OutDirError`` unless ``path`` (which does not exist) can be made: its nearest existing ancestor
    must be a directory this process may write to (``os.access`` semantics, so root passes permission bits)."""
    for parent in path.parents:
        if os.path.lexists(parent):
            if not parent.is_dir():
                raise OutDirError(f"{label} cannot be created: {str(parent)!r} is not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise OutDirError(f"{label} cannot be created: the directory {str(parent)!r} is not writable")
            return


def is_empty_dir(path: Path, label: str) -> bool:
    """True when the directory ``path`` has no entries; an unreadable one is an ``OutDirError``."""
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError as exc:
        raise OutDirError(f"{label} cannot be read: {exc}") from exc


def _check_replaceable(path: Path, label: str) -> None:
    """Raise ``OutDirError`` unless ``path`` is absent (and creatable), an empty directory or a laber run."""
    if path.is_symlink():
        raise OutDirError(f"{label} is a symbolic link; laber replaces only run directories it created")
    if not os.path.lexists(path):
        check_creatable(path, label)
        return
    if not path.is_dir():
        raise OutDirError(f"{label} exists and is not a directory")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutDirError(f"{label} cannot be replaced: the directory {str(path.parent)!r} is not writable")
    if is_laber_dir(path, "run") or is_empty_dir(path, label):
        return
    if is_laber_dir(path, "compare") or (path / COMPARE_SETTINGS_FILE).is_file():
        raise OutDirError(f"{label} holds a laber compare, not a run; a run never replaces it: choose another out")
    if is_finished(path):
        raise OutDirError(
            f"{label} holds a run without a {MARKER_FILE} marker (written by an older laber, or not by laber); "
            "laber replaces only runs it can tell it created: choose another out, or remove it yourself to re-run"
        )
    raise OutDirError(
        f"{label} exists and is not a laber run (it is not empty and has no {MARKER_FILE} marker); laber never "
        "deletes a directory it did not create: choose another out, or empty or remove it yourself"
    )


def _partial(final: Path) -> Path:
    return final.with_name(final.name + PARTIAL_SUFFIX)


def check_run_dir(out: str | os.PathLike[str]) -> Path:
    """Check, writing nothing, that ``execute`` may write a run to ``out``; returns ``out`` as a Path.

    ``out`` and its interrupted attempt ``<out>.partial`` must each be absent (with a writable directory to make
    them in), an empty directory, or a laber run (marked ``.laber-run``). Anything else is an ``OutDirError``
    naming ``out``: an empty string, a file or device, a path under a file, an unwritable parent, a symbolic
    link, a foreign or unmarked directory, a compare's directory.
    """
    text = os.fspath(out)
    if not isinstance(text, str) or not text:
        raise OutDirError(f"out must name a directory, got out={out!r}")
    final = Path(text)
    if final.name in ("", ".", ".."):
        raise OutDirError(f"out must name a directory of its own (not '.', '..' or a root), got out={text!r}")
    label = f"out={text!r}"
    _check_replaceable(final, label)
    partial = _partial(final)
    _check_replaceable(partial, f"{str(partial)!r} (the unfinished attempt of {label})")
    return final


def _remove_laber_dir(path: Path) -> None:
    """Remove ``path`` if it is a laber run or an empty directory (``check_run_dir`` has vetted it)."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        if is_laber_dir(path, "run"):
            shutil.rmtree(path)
            return
        if not any(path.iterdir()):
            path.rmdir()
            return
    raise FileExistsError(f"{str(path)!r} appeared while laber was running and is not a laber run; left as it is")


def _tensorboard_writer(path: Path, purge_step: int | None = None) -> Any:
    """A torch SummaryWriter, or None when tensorboard is not installed (it is optional). ``purge_step``: a
    resumed run's first step; events at it and after, written by the interrupted attempt, are dropped."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir=str(path), purge_step=purge_step)


def _resumable(partial: Path, config: Any, every_seconds: float | None) -> tuple[RunCheckpoints | None, int | None]:
    """The run's checkpoints in ``<partial>/resume`` and the step an interrupted attempt's checkpoint holds.

    None for the step when there is no usable checkpoint: none written, checkpoints off (``every_seconds`` None),
    or one that cannot continue this run (another config, a damaged file: said on stderr; the attempt is then
    replaced as before)."""
    if every_seconds is None:
        return None, None
    checkpoints = RunCheckpoints(partial / RESUME_DIR, config, every_seconds=every_seconds)
    if not (is_laber_dir(partial, "run") and checkpoints.exists()):
        return checkpoints, None
    try:
        return checkpoints, checkpoints.step()
    except ResumeError as exc:
        print(f"laber: not resuming {str(partial)!r}: {exc}; starting the run afresh", file=sys.stderr)
        return checkpoints, None


def _write_csv(path: Path, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows((step, *(repr(float(v)) for v in values)) for step, *values in rows)


def execute(
    config: Any,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    tensorboard: bool = True,
    reporter: Reporter | None = None,
    checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
) -> Path:
    """Train one run and write its outputs to ``out`` (replacing a previous laber run there); returns ``out``.

    Before anything is written: ``out`` must pass ``check_run_dir`` (``OutDirError`` otherwise, naming it), the
    environment must suit the reference DQN and the run must reach its first update (``ValueError``, see
    ``laber.agents.dqn.check_env`` and ``check_trainable``). torch uses one thread while the run trains (the
    fastest setting for these small networks, and the fair one when several runs share a machine); the previous
    setting is restored afterwards.

    Mid-run checkpoints (``laber.agents.resume``): while it trains, the run writes its whole state to
    ``<out>.partial/resume/`` at the first evaluation ``checkpoint_seconds`` after the previous checkpoint (0: at
    every evaluation; None: never). An interrupted run (killed, crashed, the machine stopped) leaves
    ``<out>.partial`` behind; the next ``execute`` of the same config and ``out`` continues it from its last
    checkpoint, to the same result as an uninterrupted run, and says so on stderr. A checkpoint of another
    config, or one that cannot continue, is reported on stderr and the run starts afresh. The finished run
    directory holds no checkpoint.

    Progress goes to ``reporter`` when given (a compare's display, or its queue to the parent process), keyed by
    ``(arm, seed)``; without one, ``progress=True`` shows this run on stderr: a live bar on a terminal (with
    ``laber[progress]``), plain lines otherwise (see ``laber.experiments.progress``).
    """
    if checkpoint_seconds is not None:
        checkpoint_seconds = check_nonnegative_float(checkpoint_seconds, "checkpoint_seconds")
    kind = kind_of(config)
    torch = require("torch", "laber runs")
    final = check_run_dir(out)
    kind.check(config)
    partial = _partial(final)
    checkpoints, resume_step = _resumable(partial, config, checkpoint_seconds)
    if resume_step is None:
        _fresh_partial(partial, out)
    else:
        print(f"laber: resuming {str(final)!r} from its checkpoint at step {resume_step}", file=sys.stderr)
    key = (config.arm, config.seed)
    display: Display | None = None
    if reporter is None and progress:
        display = open_display(
            f"{config.arm} seed {config.seed} on {config.env_id}", runs=1, steps_per_run=config.steps
        )
        reporter = display
    sink = reporter
    writer: Any = None

    def on_eval(step: int, value: float) -> None:
        if writer is not None:
            writer.add_scalar("eval/return", value, step)
            writer.flush()  # on disk before a checkpoint of this step can be (a resumed run does not repeat it)
        if sink is not None:
            sink.evaluated(key, step, value)

    def on_progress(steps: int) -> None:
        if sink is not None:
            sink.advance(key, steps)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if sink is not None:
            sink.start(key)
        while True:
            purge = None if resume_step is None else resume_step + 1
            writer = _tensorboard_writer(partial / "tb", purge) if tensorboard else None
            try:
                result = kind.train(
                    config,
                    on_eval=on_eval,
                    on_progress=on_progress if sink is not None else None,
                    on_resume=(lambda steps: sink.resumed(key, steps)) if sink is not None else None,
                    checkpoints=checkpoints,
                )
                break
            except ResumeError as exc:
                if resume_step is None:
                    raise
                print(f"laber: cannot resume {str(final)!r}: {exc}; starting the run afresh", file=sys.stderr)
                if writer is not None:
                    writer.close()
                resume_step = None  # (a failed resume has reported no progress yet)
                _fresh_partial(partial, out)
        if display is not None:
            display.finish(key)
    finally:
        torch.set_num_threads(threads)
        if display is not None:
            display.close()
    if writer is not None:
        for step, value in zip(result.episode_steps, result.episode_returns, strict=True):
            writer.add_scalar("train/episode_return", value, step)
        writer.add_scalar("time/seconds_per_update", result.seconds_per_update, config.steps)
        writer.close()
    if checkpoints is not None:
        checkpoints.discard()
    _write_outputs(partial, result, tensorboard=writer is not None)
    _remove_laber_dir(final)  # a previous laber run (or an empty directory)
    os.replace(partial, final)
    if reporter is not None and display is None:
        reporter.finish(key)
    return final


def _fresh_partial(partial: Path, out: str | os.PathLike[str]) -> None:
    """An empty ``<out>.partial`` with laber's marker (an interrupted attempt of laber's removed first)."""
    _remove_laber_dir(partial)
    try:
        partial.mkdir(parents=True)
    except OSError as exc:
        raise OutDirError(f"out={str(out)!r} cannot be created: {exc}") from exc
    write_marker(partial, "run")


def _write_outputs(path: Path, result: Any, *, tensorboard: bool) -> None:
    torch = require("torch", "laber runs")
    from laber import __version__

    _write_csv(
        path / EVAL_FILE,
        ("step", "eval_return", "train_seconds"),
        list(zip(result.eval_steps, result.eval_returns, result.eval_train_seconds, strict=True)),
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
        config=config_from_record(info["config"]),
        steps=data[:, 0].astype(np.int64),
        returns=data[:, 1].astype(np.float64),
        seconds_per_update=float(info["seconds_per_update"]),
        wall_seconds=float(info["wall_seconds"]),
        train_seconds=data[:, 2].astype(np.float64) if data.shape[1] > 2 else None,
        versions={str(k): str(v) for k, v in dict(info.get("versions") or {}).items()},
    )
