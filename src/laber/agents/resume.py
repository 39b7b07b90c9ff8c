"""Mid-run checkpoints of a reference agent's run: an interrupted run continues where it stopped, bit for bit.

A run of the reference DQN or SAC can take hours; a crash, a reboot or the end of a batch job should cost minutes
of it, not all of it. ``RunCheckpoints`` writes the whole state of a run at an evaluation step, and a later
``train`` with the same configuration and the same checkpoint directory continues from there. On the CPU with one
torch thread the continued run is the uninterrupted run: the same evaluation curve, episodes, networks and buffer
(``tests/test_resume.py`` checks this for every arm). Only the clock differs: ``train_seconds`` and the
seconds per update add up the segments' own time (the environment replay and the checkpoint writes left out).

A checkpoint is a directory ``<directory>/state`` of five files, numpy and JSON only except one torch file:

* ``state.json``: format (``"laber-run-checkpoint"``), version (1), the versions of laber, torch and numpy, the
  run's config (``config.to_dict()``), the step it holds, the loop's variables (the current episode's return so
  far), the ``RunResult`` so far, the clock (seconds since the run started, evaluations included but replays and
  checkpoint writes not, and the evaluations' own seconds) and the ``bit_generator.state`` of each of the run's
  numpy generators (exploration, evaluation, LaBER, SAC's action space; the buffer's travels in its own
  checkpoint);
* ``actions.npy``: every action taken so far, in order, and ``obs.npy``, the observation the next step acts on
  (both read with ``allow_pickle=False``);
* ``agent.pt``: the networks' and optimisers' state dicts, the torch generators' states and torch's own CPU
  generator state, read back with
  ``torch.load(weights_only=True)`` (tensors and plain containers only: loading runs no code);
* ``buffer.npz``: the replay buffer's own checkpoint (:mod:`laber.checkpoint`: rows, links, priorities, rng).

The environment is not saved (a gymnasium environment has no portable state). It is rebuilt and replayed:
reset with the run's seed and stepped through the saved actions, episode ends and resets as in the run. The
replay must land where the run was (the same observation, the same episode ends, the same reset seeds);
otherwise the environment is not deterministic under replay and resuming raises ``ResumeError`` (``execute``
then starts the run afresh). Replaying costs one environment step per step done (seconds for MinAtar or MuJoCo).

Writes are atomic and durable: the new checkpoint is written to ``state.tmp-<pid>``, every file flushed to disk,
and renamed into place (the previous one moved aside to ``state.old`` first and removed after, by renaming it to
a temporary's name and deleting that), so a run killed at any moment, or a machine that stops, leaves a complete
checkpoint under ``state`` or ``state.old``. ``restore`` takes the first one present and removes leftover
temporaries (``state.tmp-*``). laber writes checkpoints only into a directory that is absent, empty or marked
as its own (``.laber-checkpoints``), and deletes nothing there but those names. A checkpoint whose config
differs from the run's is refused with ``ResumeError`` naming the first setting that differs, and so is one
written with another release of laber or torch (their numerics may differ; a local label such as torch's
``+cpu`` is not compared, so a CPU wheel continues a CUDA wheel's checkpoint of the same release; numpy's version
is recorded but not required to match: its generators' streams do not change between versions).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from laber._optional import require
from laber.agents.results import RunResult, TimedEvaluations
from laber.checkpoint import fsync_directory

__all__ = ["FORMAT", "LoopState", "ResumeError", "RunCheckpoints", "check_checkpointable", "replay_env"]

FORMAT = "laber-run-checkpoint"
VERSION = 1
MARKER = ".laber-checkpoints"
TORCH_RNG = "torch_rng"  # agent.pt's key for torch's CPU generator state, beside the agent's own keys
STATE_DIR = "state"
OLD_DIR = "state.old"
TMP_PREFIX = "state.tmp-"
_RESULT_LISTS = ("eval_steps", "eval_returns", "eval_train_seconds", "episode_steps", "episode_returns")
_CHECKED_VERSIONS = ("laber", "torch")  # numpy's is recorded: its generators' streams are stable across versions
_STATE_KEYS = ("versions", "config", "step", "episode_return", "result", "clock", "generators")


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

    ``every_seconds``: a checkpoint is due at an evaluation once that many wall-clock seconds have passed since
    the last one (or since this object was made; 0: at every evaluation). The decision reads the clock only: it
    never changes the run. ``directory`` must be absent, empty, or one that ``RunCheckpoints`` wrote (it holds
    the marker file ``.laber-checkpoints``); laber writes and deletes nothing else there but its own names.
    """

    def __init__(self, directory: str | os.PathLike[str], config: Any, *, every_seconds: float = 300.0) -> None:
        if isinstance(every_seconds, bool) or not isinstance(every_seconds, (int, float)) or not every_seconds >= 0:
            raise ValueError(f"every_seconds must be a number >= 0, got every_seconds={every_seconds!r}")
        self.directory = Path(directory)
        self.config = config
        self.every_seconds = float(every_seconds)
        self._last = time.perf_counter()
        self._gone = 0

    def _is_mine(self) -> bool:
        return (self.directory / MARKER).is_file()

    def _claim(self) -> None:
        """Make ``directory`` (absent or empty) ours with the marker; a foreign non-empty one is a ValueError."""
        if self._is_mine():
            return
        if self.directory.is_symlink() or (self.directory.exists() and not self.directory.is_dir()):
            raise ValueError(f"run checkpoints need a directory, got {str(self.directory)!r}")
        if self.directory.is_dir() and any(self.directory.iterdir()):
            raise ValueError(
                f"{str(self.directory)!r} is not empty and holds no {MARKER} marker: laber writes run checkpoints "
                "only into a directory of its own"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / MARKER).write_text(json.dumps({"format": FORMAT}) + "\n")

    def _remove(self, path: Path) -> None:
        """Delete one of our directories: renamed to a temporary's name first, so that a deletion cut short never
        looks like a checkpoint (``restore`` removes such leftovers)."""
        if path.is_symlink() or not path.is_dir():
            return
        self._gone += 1
        doomed = self.directory / f"{TMP_PREFIX}gone-{os.getpid()}-{self._gone}"
        os.replace(path, doomed)
        shutil.rmtree(doomed)

    def _remove_leftovers(self) -> None:
        for leftover in self.directory.glob(f"{TMP_PREFIX}*"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover)

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
        writes the buffer. Every file is flushed to disk before the checkpoint is renamed into place. The time
        the write takes is left out of the run's clock.
        """
        torch = require("torch", "run checkpoints")
        check_checkpointable(buffer)
        t0 = time.perf_counter()
        self._claim()
        tmp = self.directory / f"{TMP_PREFIX}{os.getpid()}"
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp)
        tmp.mkdir()
        state = {
            "format": FORMAT,
            "version": VERSION,
            "versions": _versions(torch),
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
        with _durable(tmp / "actions.npy") as fh:
            np.save(fh, np.ascontiguousarray(loop.actions[: loop.step]), allow_pickle=False)
        with _durable(tmp / "obs.npy") as fh:
            np.save(fh, np.asarray(loop.obs), allow_pickle=False)
        with _durable(tmp / "agent.pt") as fh:
            torch.save({**agent, TORCH_RNG: torch.get_rng_state()}, fh)
        buffer.save_checkpoint(tmp / "buffer.npz")  # flushed to disk by laber.checkpoint
        with _durable(tmp / "state.json") as fh:
            fh.write((json.dumps(state, default=_json_default) + "\n").encode())
        fsync_directory(tmp)
        final, old = self.directory / STATE_DIR, self.directory / OLD_DIR
        if final.is_dir():
            self._remove(old)  # stale: final is complete
            os.replace(final, old)
        # else a save was killed between its renames: old is the only complete checkpoint until tmp is in place
        os.replace(tmp, final)
        fsync_directory(self.directory)
        self._remove(old)
        now = time.perf_counter()
        clock.start += now - t0  # the write is not training time
        self._last = now

    # ------------------------------------------------------------------------------------------------ reading
    def exists(self) -> bool:
        """Whether ``directory`` holds a checkpoint of laber's (of any config)."""
        return self._is_mine() and any((self.directory / n / "state.json").is_file() for n in (STATE_DIR, OLD_DIR))

    def step(self) -> int | None:
        """The step the checkpoint holds, after checking its format, versions and config; None when there is
        none (``ResumeError`` when it cannot continue this run)."""
        found = self._read_state()
        return None if found is None else int(found[1]["step"])

    def _read_state(self) -> tuple[Path, dict[str, Any]] | None:
        if not self._is_mine():
            return None
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
        missing = [key for key in _STATE_KEYS if key not in state]
        if missing:
            raise ResumeError(f"{str(path)!r}: state.json lacks {', '.join(missing)}")
        theirs, mine = state["versions"], _versions(require("torch", "run checkpoints"))
        if not isinstance(theirs, dict) or any(_release(theirs.get(k)) != _release(mine[k]) for k in _CHECKED_VERSIONS):
            raise ResumeError(
                f"{str(path)!r} was written by other versions ({_show_versions(theirs)}; these are "
                f"{_show_versions(mine)}): its run might not continue the same way"
            )
        mine_config: dict[str, Any] = _jsonable(self.config.to_dict())
        their_config = state["config"]
        if not isinstance(their_config, dict):
            raise ResumeError(f"{str(path)!r}: its config is not a mapping")
        if their_config != mine_config:
            keys = sorted(set(mine_config) | set(their_config))
            diff = next((k for k in keys if mine_config.get(k) != their_config.get(k)), "")
            raise ResumeError(
                f"{str(path)!r} is a checkpoint of another run: its config differs in {diff!r} "
                f"({their_config.get(diff)!r} there, {mine_config.get(diff)!r} here)"
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

        ``agent(state)`` loads the torch state that ``save`` got as ``agent``. The files and their keys are read
        and checked first; then the buffer, the generators, the agent and ``result`` are set, and ``clock`` is
        moved so that the run's clock continues from the checkpoint's. Any failure is a ``ResumeError``; one
        raised while the parts are being set leaves them half set: the caller gives the run up (``train`` does,
        and ``execute`` starts it afresh). Leftover temporaries of killed saves are removed.
        """
        torch = require("torch", "run checkpoints")
        if self._is_mine():
            self._remove_leftovers()
        found = self._read_state()
        if found is None:
            return None
        path, state = found
        try:
            return self._apply(torch, path, state, result, clock, agent, generators, buffer)
        except ResumeError:
            raise
        except Exception as exc:  # any of numpy's, torch's or the buffer's errors on a damaged checkpoint
            raise ResumeError(f"{str(path)!r}: damaged checkpoint ({type(exc).__name__}: {exc})") from None

    def _apply(
        self,
        torch: Any,
        path: Path,
        state: dict[str, Any],
        result: RunResult,
        clock: TimedEvaluations,
        agent: Callable[[dict[str, Any]], None],
        generators: Mapping[str, np.random.Generator],
        buffer: Any,
    ) -> LoopState:
        actions = np.load(path / "actions.npy", allow_pickle=False)
        obs = np.load(path / "obs.npy", allow_pickle=False)
        agent_state = torch.load(path / "agent.pt", weights_only=True)
        if not isinstance(agent_state, dict) or TORCH_RNG not in agent_state:
            raise ResumeError(f"{str(path)!r}: agent.pt holds no agent state")
        torch_rng = agent_state.pop(TORCH_RNG)
        if not (path / "buffer.npz").is_file():
            raise ResumeError(f"{str(path)!r}: no buffer.npz")
        step = state["step"]
        if not isinstance(step, int) or len(actions) != step:
            raise ResumeError(f"{str(path)!r}: {len(actions)} actions for step {step!r}")
        saved_generators = state["generators"]
        if not isinstance(saved_generators, dict) or set(saved_generators) != set(generators):
            raise ResumeError(f"{str(path)!r}: other generators than this run's ({sorted(generators)})")
        probes = {}
        for name, gen in generators.items():
            probe = np.random.Generator(type(gen.bit_generator)())
            probe.bit_generator.state = saved_generators[name]
            probes[name] = probe
        saved = state["result"]
        lists = {name: list(saved[name]) for name in _RESULT_LISTS}
        updates, update_seconds = int(saved["updates"]), float(saved["update_seconds"])
        elapsed, spent = float(state["clock"]["elapsed"]), float(state["clock"]["evaluations"])
        episode_return = float(state["episode_return"])
        # every file read and every key checked: now the parts change
        buffer.load_checkpoint(path / "buffer.npz")
        for name, gen in generators.items():
            gen.bit_generator.state = probes[name].bit_generator.state
        agent(agent_state)
        torch.set_rng_state(torch_rng)
        for name in _RESULT_LISTS:
            getattr(result, name)[:] = lists[name]
        result.updates, result.update_seconds = updates, update_seconds
        clock.start = time.perf_counter() - elapsed
        clock.spent = spent
        self._last = time.perf_counter()
        return LoopState(step=step, episode_return=episode_return, actions=actions, obs=obs)

    def discard(self) -> None:
        """Remove the checkpoints and the marker (laber's own names only; ``directory`` itself when left empty)."""
        if not self._is_mine():
            return
        for name in (STATE_DIR, OLD_DIR):
            self._remove(self.directory / name)
        self._remove_leftovers()
        (self.directory / MARKER).unlink()
        if not any(self.directory.iterdir()):
            self.directory.rmdir()


def _versions(torch: Any) -> dict[str, str]:
    from laber import __version__

    return {"laber": __version__, "torch": str(torch.__version__), "numpy": np.__version__}


def _release(version: object) -> object:
    """A version without its local label (PEP 440: ``2.13.0+cpu`` -> ``2.13.0``): torch's CPU and CUDA wheels of
    one release carry different labels and run the same CPU code."""
    return version.split("+", 1)[0] if isinstance(version, str) else version


def _show_versions(versions: object) -> str:
    if not isinstance(versions, dict):
        return repr(versions)
    return ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))


@contextlib.contextmanager
def _durable(path: Path) -> Iterator[IO[bytes]]:
    """A new file at ``path`` for writing, flushed to disk (``fsync``) when the block ends."""
    with path.open("xb") as fh:
        yield fh
        fh.flush()
        os.fsync(fh.fileno())


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, (tuple, np.ndarray)):
        return list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _jsonable(value: object) -> Any:
    return json.loads(json.dumps(value, default=_json_default))
