"""``compare``: every arm x seed on one environment, in separate processes, resumable, then plot and summary.

Layout under ``out``: ``compare.json`` (the shared settings), ``<arm>/seed<k>/`` (one run each, see
``laber.experiments.runs``), ``curves.png``, ``summary.md`` and ``summary.json``. A run counts as done when its
``result.json`` exists, so re-running the same command after an interruption (or with more arms or seeds) trains
only what is missing. A finished run whose settings differ from the requested ones is an error rather than a
silent mix of two experiments.

``out`` must be new, empty or a laber compare (it holds the ``.laber-run`` marker, or the ``compare.json`` of
a compare written before markers); finished runs in it are kept, never replaced, and an unfinished run or
``.partial`` attempt is retrained only when laber created it (see ``laber.experiments.runs``). Anything else is
an ``OutDirError`` raised by ``plan`` before anything is trained or written.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from laber._optional import require
from laber._validation import check_positive_int
from laber.agents.dqn import ARMS, DQNConfig, check_env, check_trainable
from laber.experiments.report import write_report
from laber.experiments.runs import (
    COMPARE_SETTINGS_FILE,
    RESULT_FILE,
    OutDirError,
    check_creatable,
    check_run_dir,
    execute,
    is_empty_dir,
    is_finished,
    is_laber_dir,
    run_dir,
    write_marker,
)

__all__ = ["CompareResult", "check_compare_dir", "compare", "plan"]

SETTINGS_FILE = COMPARE_SETTINGS_FILE

_SLOT: int | None = None  # this worker process's progress-bar line


class CompareResult(dict[str, Any]):
    """``{"plot": Path, "summary": Path, "trained": int, "skipped": int}``."""


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


def plan(base: DQNConfig, arms: Sequence[str], seeds: Sequence[int], out: str | os.PathLike[str]) -> list[DQNConfig]:
    """The runs of a compare that still have to be trained, validating finished ones against ``base``.

    Seed-major order (every arm's seed 0, then every arm's seed 1, ...): a compare stopped early leaves every arm
    with about the same number of seeds. ``out`` and the directories of the runs to train are checked first
    (``check_compare_dir``, ``check_run_dir``): ``OutDirError`` when laber may not write there.
    """
    check_compare_dir(out)
    todo = []
    expected = asdict(base)  # every setting, defaults included (a record may leave defaults out)
    for seed in seeds:
        for arm in arms:
            config = replace(base, arm=arm, seed=seed)
            path = run_dir(out, arm, seed)
            if is_finished(path):
                done = asdict(DQNConfig.from_dict(json.loads((path / RESULT_FILE).read_text())["config"]))
                mismatched = sorted(k for k, v in expected.items() if k not in ("arm", "seed") and done.get(k) != v)
                if mismatched:
                    details = ", ".join(f"{k}={done.get(k)!r} (requested {expected[k]!r})" for k in mismatched)
                    raise ValueError(
                        f"out={str(out)!r} already holds a finished run {arm}/seed{seed} with other settings: "
                        f"{details}; use another --out or the same settings"
                    )
                continue
            check_run_dir(path)
            todo.append(config)
    return todo


def _init_worker(slots: Any) -> None:
    global _SLOT
    _SLOT = int(slots.get())
    try:  # one thread per run; set before torch does any work in this process
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - the parent checked
        pass


def _work(config: DQNConfig, out: str, progress: bool, tensorboard: bool) -> tuple[str, int]:
    path = run_dir(out, config.arm, config.seed)
    execute(config, path, progress=progress, position=_SLOT, tensorboard=tensorboard)
    return config.arm, config.seed


def compare(
    base: DQNConfig,
    arms: Sequence[str],
    seeds: Sequence[int],
    out: str | os.PathLike[str],
    *,
    jobs: int = 1,
    progress: bool = True,
    tensorboard: bool = True,
) -> CompareResult:
    """Train every missing ``arm`` x ``seed`` run (``base`` gives the other settings), then plot and summarise.

    Everything is checked before anything is trained or written: the arguments, the environment and the update
    schedule (``ValueError``) and ``out`` with the runs to train in it (``OutDirError``, see ``plan``).

    ``jobs`` > 1 trains runs in that many separate processes (each with one torch thread); ``jobs == 1`` trains
    in this process. Returns the paths of the plot and the summary and how many runs were trained or kept.
    """
    if not isinstance(base, DQNConfig):
        raise TypeError(f"base must be a DQNConfig, got base={base!r}")
    arms = list(arms)
    seeds = list(seeds)
    if not arms:
        raise ValueError("arms must not be empty, got arms=[]")
    for arm in arms:
        if arm not in ARMS:
            raise ValueError(f"arms must be among {', '.join(ARMS)}, got {arm!r}")
    if len(set(arms)) != len(arms):
        raise ValueError(f"arms must not repeat, got arms={arms!r}")
    if not seeds:
        raise ValueError("seeds must not be empty, got seeds=[]")
    for seed in seeds:
        replace(base, seed=seed)  # validates each seed
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat, got seeds={seeds!r}")
    jobs = check_positive_int(jobs, "jobs")
    check_trainable(base)
    check_env(base.env_id)
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
    tmp = root / (SETTINGS_FILE + ".tmp")
    tmp.write_text(json.dumps({"settings": settings, "arms": arms, "seeds": seeds}, indent=2) + "\n")
    os.replace(tmp, root / SETTINGS_FILE)

    total = len(arms) * len(seeds)
    skipped = total - len(todo)
    overall = None
    if progress:
        tqdm = require("tqdm", "progress bars").tqdm
        overall = tqdm(total=total, initial=skipped, desc=f"compare {base.env_id}", unit="run", position=0)
    try:
        if jobs == 1 or len(todo) <= 1:
            for config in todo:
                execute(
                    config,
                    run_dir(root, config.arm, config.seed),
                    progress=progress,
                    position=1 if progress else None,
                    tensorboard=tensorboard,
                )
                if overall is not None:
                    overall.update(1)
        else:
            _run_pool(todo, root, min(jobs, len(todo)), progress, tensorboard, overall)
    finally:
        if overall is not None:
            overall.close()
    plot, summary = write_report(root, arms, seeds)
    return CompareResult(plot=plot, summary=summary, trained=len(todo), skipped=skipped)


def _run_pool(todo: list[DQNConfig], root: Path, jobs: int, progress: bool, tensorboard: bool, overall: Any) -> None:
    ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited torch threads
    slots = ctx.Queue()
    for k in range(jobs):
        slots.put(k + 1)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(slots,)) as pool:
        futures: set[Future[tuple[str, int]]] = {
            pool.submit(_work, config, str(root), progress, tensorboard) for config in todo
        }
        try:
            while futures:
                done, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in done:
                    fut.result()  # re-raise a worker's error here
                    if overall is not None:
                        overall.update(1)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
