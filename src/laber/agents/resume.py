"""Mid-run checkpoints of a reference agent's run: an interrupted run continues where it stopped, bit for bit.

A run of the reference DQN or SAC can take hours; a crash, a reboot or the end of a batch job should cost minutes
of it, not all of it. ``RunCheckpoints`` writes the whole state of a run at an evaluation step, and a later
``train`` with the same configuration and the same checkpoint directory continues from there. On the CPU with one
torch thread the continued run is the uninterrupted run: the same evaluation curve, episodes, networks and buffer
(``tests/test_resume.py`` checks this for every arm). Only the clock differs: ``train_seconds`` and the
seconds per update add up the segments' own time (the environment replay and the checkpoint writes left out).

A checkpoint is a directory ``<directory>/state`` of five files, numpy and JSON only except one torch file:

* ``state.json``: format (``"laber-run-checkpoint"``), version (1), the run's config (``config.to_dict()``), the
  step it holds, the loop's variables (the current episode's return so far), the ``RunResult`` so far, the clock
  (seconds of training and of evaluation so far) and the ``bit_generator.state`` of each of the run's numpy
  generators (exploration, evaluation, LaBER; the buffer's travels in its own checkpoint);
* ``actions.npy``: every action taken so far, in order, and ``obs.npy``, the observation the next step acts on
  (both read with ``allow_pickle=False``);
* ``agent.pt``: the networks' and optimisers' state dicts and the torch generators' states, read back with
  ``torch.load(weights_only=True)`` (tensors and plain containers only: loading runs no code);
* ``buffer.npz``: the replay buffer's own checkpoint (:mod:`laber.checkpoint`: rows, links, priorities, rng).

The environment is not saved (a gymnasium environment has no portable state). It is rebuilt and replayed:
reset with the run's seed and stepped through the saved actions, episode ends and resets as in the run. The
replay must land where the run was (the same observation, the same episode ends, the same reset seeds);
otherwise the environment is not deterministic under replay and resuming raises ``ResumeError`` (``execute``
then starts the run afresh). Replaying costs one environment step per step done (seconds for MinAtar or MuJoCo).

Writes are atomic: the new checkpoint is written to ``state.tmp-<pid>`` and renamed into place (the previous
one moved aside to ``state.old`` first and removed after), so a run killed at any moment leaves a complete
checkpoint under ``state`` or ``state.old``; ``load`` takes the first one present and removes leftover
temporaries of laber's (``state.tmp-*``, in the checkpoint directory that laber's run made). A checkpoint whose
config differs from the run's is refused with ``ResumeError`` naming the first setting that differs.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import require
from laber.agents.results import RunResult, TimedEvaluations

__all__ = ["FORMAT", "LoopState", "ResumeError", "RunCheckpoints", "check_checkpointable", "replay_env"]

FORMAT = "laber-run-checkpoint"
VERSION = 1
STATE_DIR = "state"
OLD_DIR = "state.old"
TMP_PREFIX = "state.tmp-"
_RESULT_LISTS = ("eval_steps", "eval_returns", "eval_train_seconds", "episode_steps", "episode_returns")


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run: another config, a damaged file, an environment whose replay
    does not land where the run was."""


@dataclass
class LoopState:
    """A training loop's own variables at the end of step ``step`` (besides networks, buffer and generators)."""

    step: int
    episode_return: float
    actions: np.ndarray  # every action taken in steps 1 .. step, in order
    obs: np.ndarray  # the observation the next step acts on


def replay_env(
    env: Any,
    loop: LoopState,
    reset: Callable[[bool], Any],
    episode_steps: list[int],
) -> Any:
    """Step a freshly built ``env`` through ``loop.actions`` as the run did; returns the observation it lands on.

    ``reset(first)`` resets the environment as the run does (``first``: the run's first reset, with its seed)
    and returns the observation. An episode ends where ``terminated or truncated``. The episode ends met must be
    the run's (``episode_steps`` up to ``loop.step``) and the observation reached must be ``loop.obs``, or
    ``ResumeError``.
    """
    actions = loop.actions
    obs = reset(True)
    ends: list[int] = []
    for step, action in enumerate(actions, start=1):
        obs, _, terminated, truncated, _ = env.step(action.item() if action.ndim == 0 else action)
        if terminated or truncated:
            ends.append(step)
            obs = reset(False)
    if ends != list(episode_steps):
        first = next((a for a, b in zip(ends, episode_steps, strict=False) if a != b), None)
        raise ResumeError(
            f"the environment's replay does not follow the run: {len(ends)} episode ends against the run's "
            f"{len(episode_steps)} (first difference at step {first}); this environment is not deterministic "
            "under replay"
        )
    if not np.array_equal(np.asarray(obs), loop.obs):
        raise ResumeError(
            f"the environment's replay does not follow the run: it reached another observation at step {loop.step}; "
            "this environment is not deterministic under replay"
        )
    return obs


def check_checkpointable(buffer: Any) -> None:
    """A ``TypeError`` unless ``buffer`` can be checkpointed (``save_checkpoint`` and ``load_checkpoint``)."""
    if not (callable(getattr(buffer, "save_checkpoint", None)) and callable(getattr(buffer, "load_checkpoint", None))):
        raise TypeError(
            f"run checkpoints need a buffer with save_checkpoint and load_checkpoint (laber's buffers have them), "
            f"got a {type(buffer).__name__}"
        )


class RunCheckpoints:
    """Checkpoints of one run in ``directory``: ``due`` says when, ``save`` writes, ``restore`` continues.

    ``every_seconds``: a checkpoint is due at an evaluation once that many seconds (of the run's clock) have passed
    since the last one (0: at every evaluation). The decision reads the clock only: it never changes the run.
    """

    def __init__(self, directory: str | os.PathLike[str], config: Any, *, every_seconds: float = 300.0) -> None:
        if isinstance(every_seconds, bool) or not isinstance(every_seconds, (int, float)) or not every_seconds >= 0:
            raise ValueError(f"every_seconds must be a number >= 0, got every_seconds={every_seconds!r}")
        self.directory = Path(directory)
        self.config = config
        self.every_seconds = float(every_seconds)
        self._last = time.perf_counter()

    # ------------------------------------------------------------------------------------------------ writing
    def due(self) -> bool:
        return time.perf_counter() - self._last >= self.every_seconds

    def save(
        self,
        loop: LoopState,
        result: RunResult,
        clock: TimedEvaluations,
        *,
        agent: Mapping[str, Any],
        generators: Mapping[str, np.random.Generator],
        buffer: Any,
    ) -> None:
        """Write the run's state at the end of step ``loop.step`` (atomically; see the module docstring).

        ``agent``: the torch state (state dicts, generator states; see ``torch.load(weights_only=True)`` for what
        may appear); ``generators``: the run's numpy generators by name; ``buffer``: its ``save_checkpoint``
        writes the buffer. The time the write takes is left out of the run's clock.
        """
        torch = require("torch", "run checkpoints")
        check_checkpointable(buffer)
        t0 = time.perf_counter()
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{TMP_PREFIX}{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        state = {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_dict(),
            "step": loop.step,
            "episode_return": loop.episode_return,
            "result": {
                **{name: list(getattr(result, name)) for name in _RESULT_LISTS},
                "updates": result.updates,
                "update_seconds": result.update_seconds,
            },
            "clock": {"elapsed": t0 - clock.start, "evaluations": clock.spent},
            "generators": {name: gen.bit_generator.state for name, gen in generators.items()},
        }
        np.save(tmp / "actions.npy", np.ascontiguousarray(loop.actions[: loop.step]), allow_pickle=False)
        np.save(tmp / "obs.npy", np.asarray(loop.obs), allow_pickle=False)
        torch.save(dict(agent), tmp / "agent.pt")
        buffer.save_checkpoint(tmp / "buffer.npz")
        (tmp / "state.json").write_text(json.dumps(state, default=_json_default) + "\n")
        _fsync_dir(tmp)
        final, old = self.directory / STATE_DIR, self.directory / OLD_DIR
        if old.exists():
            shutil.rmtree(old)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        _fsync_dir(self.directory)
        if old.exists():
            shutil.rmtree(old)
        now = time.perf_counter()
        clock.start += now - t0  # the write is not training time
        self._last = now

    # ------------------------------------------------------------------------------------------------ reading
    def exists(self) -> bool:
        return any((self.directory / name / "state.json").is_file() for name in (STATE_DIR, OLD_DIR))

    def step(self) -> int | None:
        """The step the checkpoint holds, after checking its format and config; None when there is none."""
        found = self._read_state()
        return None if found is None else int(found[1]["step"])

    def _read_state(self) -> tuple[Path, dict[str, Any]] | None:
        for name in (STATE_DIR, OLD_DIR):
            path = self.directory / name
            if (path / "state.json").is_file():
                break
        else:
            return None
        try:
            state = json.loads((path / "state.json").read_text())
        except (OSError, ValueError) as exc:
            raise ResumeError(f"{str(path)!r}: unreadable state.json ({exc})") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("version") != VERSION:
            raise ResumeError(f"{str(path)!r} is not a laber run checkpoint of format version {VERSION}")
        mine = self.config.to_dict()
        theirs = state.get("config")
        if theirs != json.loads(json.dumps(mine, default=_json_default)):
            keys = sorted(set(mine) | set(theirs if isinstance(theirs, dict) else {}))
            diff = next(
                (k for k in keys if not isinstance(theirs, dict) or _jsonable(mine.get(k)) != theirs.get(k)), None
            )
            raise ResumeError(
                f"{str(path)!r} is a checkpoint of another run: its config differs in {diff!r} "
                f"({theirs.get(diff) if isinstance(theirs, dict) else theirs!r} there, {mine.get(diff)!r} here)"
            )
        return path, state

    def restore(
        self,
        result: RunResult,
        clock: TimedEvaluations,
        *,
        agent: Callable[[dict[str, Any]], None],
        generators: Mapping[str, np.random.Generator],
        buffer: Any,
    ) -> LoopState | None:
        """Load the checkpoint into the run's parts; returns the loop's variables, or None when there is none.

        ``agent(state)`` loads the torch state that ``save`` got as ``agent``. Everything is read and checked
        before anything changes (``ResumeError`` otherwise); then the buffer, the generators, the agent and
        ``result`` are set, and ``clock`` is moved so that the run's clock continues from the checkpoint's.
        Leftover temporaries of killed saves are removed.
        """
        torch = require("torch", "run checkpoints")
        for leftover in self.directory.glob(f"{TMP_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
        found = self._read_state()
        if found is None:
            return None
        path, state = found
        try:
            actions = np.load(path / "actions.npy", allow_pickle=False)
            obs = np.load(path / "obs.npy", allow_pickle=False)
            agent_state = torch.load(path / "agent.pt", weights_only=True)
        except Exception as exc:  # a damaged file: any of numpy's or torch's errors
            raise ResumeError(f"{str(path)!r}: damaged checkpoint ({type(exc).__name__}: {exc})") from None
        step = state.get("step")
        if not isinstance(step, int) or len(actions) != step:
            raise ResumeError(f"{str(path)!r}: {len(actions)} actions for step {step!r}")
        saved_generators = state.get("generators", {})
        if set(saved_generators) != set(generators):
            raise ResumeError(
                f"{str(path)!r}: generators {sorted(saved_generators)} there, {sorted(generators)} in this run"
            )
        probes = {}
        for name, gen in generators.items():
            probe = np.random.Generator(type(gen.bit_generator)())
            try:
                probe.bit_generator.state = saved_generators[name]
            except (TypeError, ValueError, KeyError) as exc:
                raise ResumeError(f"{str(path)!r}: generator {name!r}: {exc}") from None
            probes[name] = probe
        try:
            buffer.load_checkpoint(path / "buffer.npz")
        except ValueError as exc:
            raise ResumeError(str(exc)) from None
        for name, gen in generators.items():
            gen.bit_generator.state = probes[name].bit_generator.state
        agent(agent_state)
        saved = state["result"]
        for name in _RESULT_LISTS:
            getattr(result, name)[:] = saved[name]
        result.updates = int(saved["updates"])
        result.update_seconds = float(saved["update_seconds"])
        clock.start = time.perf_counter() - float(state["clock"]["elapsed"])
        clock.spent = float(state["clock"]["evaluations"])
        self._last = time.perf_counter()
        return LoopState(step=step, episode_return=float(state["episode_return"]), actions=actions, obs=obs)

    def discard(self) -> None:
        """Remove the checkpoints (laber's own names in ``directory``; the directory itself when left empty)."""
        for name in (STATE_DIR, OLD_DIR):
            if (self.directory / name).is_dir():
                shutil.rmtree(self.directory / name)
        for leftover in self.directory.glob(f"{TMP_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)
        if self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (tuple, np.ndarray)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, default=_json_default))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
