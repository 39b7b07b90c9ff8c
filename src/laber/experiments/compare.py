"""``compare``: every arm x seed on one environment, in separate processes, resumable, then plot and summary.

Layout under ``out``: ``compare.json`` (the shared settings), ``<arm>/seed<k>/`` (one run each, see
``laber.experiments.runs``), ``curves.png``, ``summary.md`` and ``summary.json``. A run counts as done when its
``result.json`` exists, so re-running the same command after an interruption (or with more arms or seeds) trains
only what is missing. A compare directory holds one experiment: a finished run in it (requested or not) whose
settings differ from the requested ones is an error rather than a silent mix of two experiments. ``compare.json``
lists every arm and seed requested so far (a later compare with fewer arms or seeds adds to it, never drops
runs), and the plot and summary cover every finished run in the directory.

Progress: worker processes send their runs' step counts and evaluations through a multiprocessing queue to this
process, which owns the only display (``laber.experiments.progress``): live bars on a terminal, plain log lines
otherwise.

``out`` must be new, empty or a laber compare (it holds the ``.laber-run`` marker, or the ``compare.json`` of
a compare written before markers); finished runs in it are kept, never replaced, and an unfinished run or
``.partial`` attempt is retrained only when laber created it (see ``laber.experiments.runs``). Anything else is
an ``OutDirError`` raised by ``plan`` before anything is trained or written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from laber._validation import check_nonnegative_float, check_positive_int
from laber.agents.registry import ALL_ARMS, config_from_record, kind_of
from laber.experiments.progress import Display, QueueReporter, drain, open_display
from laber.experiments.report import write_report
from laber.experiments.runs import (
    COMPARE_SETTINGS_FILE,
    DEFAULT_CHECKPOINT_SECONDS,
    RESULT_FILE,
    OutDirError,
    check_creatable,
    check_run_dir,
    execute,
    finished_runs,
    is_empty_dir,
    is_laber_dir,
    run_dir,
    write_marker,
)

__all__ = ["CompareResult", "check_compare_dir", "compare", "plan"]

SETTINGS_FILE = COMPARE_SETTINGS_FILE

_REPORTER: QueueReporter | None = None  # this worker process's channel to the parent's display
_POLL = 0.2  # seconds between the parent's looks at the progress queue


class CompareResult(dict[str, Any]):
    """``{"plot": Path, "summary": Path, "trained": int, "skipped": int, "seconds": float}``."""


def check_compare_dir(out: str | os.PathLike[str]) -> Path:
    """Check, writing nothing, that a compare may write to ``out``; returns it as a Path.

    ``out`` must be absent (with a writable directory to make it in), an empty directory or a laber compare;
    anything else (an empty string, a file or device, a path under a file, an unwritable directory, a laber run,
    a foreign non-empty directory) is an ``OutDirError`` naming ``out``.
    """
    text = os.fspath(out)
    if not isinstance(text, str) or not text:
        raise OutDirError(f"out must name a directory, got out={out!r}")
    root = Path(text)
    label = f"out={text!r}"
    if not os.path.lexists(root):
        check_creatable(root, label)
        return root
    if not root.is_dir():
        raise OutDirError(f"{label} exists and is not a directory")
    if not os.access(root, os.W_OK | os.X_OK):
        raise OutDirError(f"{label} is not writable")
    if is_laber_dir(root, "compare") or (root / SETTINGS_FILE).is_file():
        return root
    if is_laber_dir(root, "run"):
        raise OutDirError(f"{label} holds a single laber run, not a compare: choose another out")
    if not is_empty_dir(root, label):
        raise OutDirError(
            f"{label} exists and is not a laber compare (it is not empty and has neither a .laber-run marker nor "
            f"a {SETTINGS_FILE}); a compare writes its runs, plot and summaries there: choose a new or empty out"
        )
    return root


def plan(base: Any, arms: Sequence[str], seeds: Sequence[int], out: str | os.PathLike[str]) -> list[Any]:
    """The runs of a compare that still have to be trained, validating finished ones against ``base``.

    Seed-major order (every arm's seed 0, then every arm's seed 1, ...): a compare stopped early leaves every arm
    with about the same number of seeds. ``out`` and the directories of the runs to train are checked first
    (``check_compare_dir``, ``check_run_dir``): ``OutDirError`` when laber may not write there.
    """
    check_compare_dir(out)
    expected = asdict(base)  # every setting, defaults included (a record may leave defaults out)
    done: set[tuple[str, int]] = set()
    for arm, seed, path in finished_runs(out):
        recorded = config_from_record(json.loads((path / RESULT_FILE).read_text())["config"])
        if type(recorded) is not type(base):
            raise ValueError(
                f"out={str(out)!r} already holds a finished run {arm}/seed{seed} of another agent "
                f"({kind_of(recorded).name}); use another --out"
            )
        record = asdict(recorded)
        mismatched = sorted(k for k, v in expected.items() if k not in ("arm", "seed") and record.get(k) != v)
        if mismatched:
            details = ", ".join(f"{k}={record.get(k)!r} (requested {expected[k]!r})" for k in mismatched)
            raise ValueError(
                f"out={str(out)!r} already holds a finished run {arm}/seed{seed} with other settings: "
                f"{details}; use another --out or the same settings"
            )
        done.add((arm, seed))
    todo = []
    for seed in seeds:
        for arm in arms:
            if (arm, seed) in done:
                continue
            check_run_dir(run_dir(out, arm, seed))
            todo.append(replace(base, arm=arm, seed=seed))
    return todo


def _recorded(root: Path, settings: dict[str, Any], arms: list[str], seeds: list[int]) -> tuple[list[str], list[int]]:
    """The arms and seeds of ``compare.json`` with the requested ones added (when its settings are the same)."""
    try:
        data = json.loads((root / SETTINGS_FILE).read_text())
        if data.get("settings") != settings:
            return arms, seeds
        old_arms = [a for a in data["arms"] if a in ALL_ARMS]
        old_seeds = [int(k) for k in data["seeds"]]
    except (OSError, ValueError, KeyError, TypeError):
        return arms, seeds
    return old_arms + [a for a in arms if a not in old_arms], sorted(set(old_seeds) | set(seeds))


def _init_worker(events: Any) -> None:
    global _REPORTER
    _REPORTER = QueueReporter(events) if events is not None else None
    try:  # one thread per run; set before torch does any work in this process
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - the parent checked
        pass


def _work(config: Any, out: str, tensorboard: bool, checkpoint_seconds: float | None) -> tuple[str, int]:
    path = run_dir(out, config.arm, config.seed)
    execute(
        config, path, progress=False, reporter=_REPORTER, tensorboard=tensorboard, checkpoint_seconds=checkpoint_seconds
    )
    return config.arm, config.seed


def compare(
    base: Any,
    arms: Sequence[str],
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    progress: bool = True,
    tensorboard: bool = True,
    checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
) -> CompareResult:
    """Train every missing ``arm`` x ``seed`` run (``base`` gives the other settings), then plot and summarise.

    Everything is checked before anything is trained or written: the arguments, the environment and the update
    schedule (``ValueError``) and ``out`` with the runs to train in it (``OutDirError``, see ``plan``).

    ``jobs`` > 1 trains runs in that many separate processes (each with one torch thread); ``jobs == 1`` trains
    in this process. Returns the paths of the plot and the summary and how many runs were trained or kept.

    A compare resumes run by run (finished runs are kept) and, within a run, from the run's last mid-run
    checkpoint (written every ``checkpoint_seconds``, None: never; see ``laber.experiments.runs.execute``).
    """
    try:
        kind = kind_of(base)
    except TypeError as exc:
        raise TypeError(f"base: {exc}") from None
    arms = list(arms)
    seeds = list(seeds)
    if not arms:
        raise ValueError("arms must not be empty, got arms=[]")
    for arm in arms:
        if arm not in kind.arms:
            raise ValueError(f"arms must be among {', '.join(kind.arms)}, got {arm!r}")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms must not repeat, got arms={arms!r}")
    if not seeds:
        raise ValueError("seeds must not be empty, got seeds=[]")
    for seed in seeds:
        replace(base, seed=seed)  # validates each seed
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got seeds={seeds!r}")
    jobs = check_positive_int(jobs, "jobs")
    if checkpoint_seconds is not None:
        checkpoint_seconds = check_nonnegative_float(checkpoint_seconds, "checkpoint_seconds")
    kind.check(base)
    todo = plan(base, arms, seeds, out)
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutDirError(f"out={str(out)!r} cannot be created: {exc}") from exc
    if not is_laber_dir(root, "compare"):
        write_marker(root, "compare")
    settings = base.to_dict()
    settings.pop("arm")
    settings.pop("seed")
    recorded_arms, recorded_seeds = _recorded(root, settings, arms, seeds)
    tmp = root / (SETTINGS_FILE + ".tmp")
    tmp.write_text(json.dumps({"settings": settings, "arms": recorded_arms, "seeds": recorded_seeds}, indent=2) + "\n")
    os.replace(tmp, root / SETTINGS_FILE)

    skipped = len(arms) * len(seeds) - len(todo)
    workers = min(jobs, len(todo))
    began = time.monotonic()
    display: Display | None = None
    if progress and todo:
        display = open_display(
            f"compare {base.env_id}", runs=len(todo), steps_per_run=base.steps, jobs=max(workers, 1), kept=skipped
        )
    try:
        if workers <= 1:
            for config in todo:
                path = run_dir(root, config.arm, config.seed)
                execute(
                    config,
                    path,
                    progress=False,
                    reporter=display,
                    tensorboard=tensorboard,
                    checkpoint_seconds=checkpoint_seconds,
                )
        else:
            _run_pool(todo, root, workers, tensorboard, display, checkpoint_seconds)
    finally:
        if display is not None:
            display.close()
    seconds = time.monotonic() - began
    plot, summary = write_report(root)
    return CompareResult(plot=plot, summary=summary, trained=len(todo), skipped=skipped, seconds=seconds)


def _run_pool(
    todo: list[Any],
    root: Path,
    jobs: int,
    tensorboard: bool,
    display: Display | None,
    checkpoint_seconds: float | None,
) -> None:
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited torch threads
    events = ctx.Queue() if display is not None else None
    try:
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(events,)
        ) as pool:
            keys: dict[Future[tuple[str, int]], tuple[str, int]] = {
                pool.submit(_work, config, str(root), tensorboard, checkpoint_seconds): (config.arm, config.seed)
                for config in todo
            }
            pending = set(keys)
            try:
                while pending:
                    done, pending = wait(
                        pending, timeout=_POLL if display is not None else None, return_when=FIRST_COMPLETED
                    )
                    if display is not None:
                        drain(events, display)
                    for fut in done:
                        fut.result()  # re-raise a worker's error here
                        if display is not None:
                            display.finish(keys[fut])  # its own finish event may still be on the way
                    if display is not None:
                        display.poll()
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    finally:
        if events is not None:
            events.close()
            events.join_thread()
