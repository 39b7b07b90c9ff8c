"""The robustness table: malformed calls over laber's public API, and the document rendered from them.

Each ``Case`` builds an object holding state worth protecting (stored rows, pending N-step rows, ``next_of`` and
``stack_compress`` side stores, PER priorities and trees, advanced generators; a Reverse cursor, Selective
episodes, HER's current episode; buffers on memory-mapped files, a torch device or shared memory), makes one
malformed call on it, and states the exception type it must raise and the text its message must contain (the
argument's name, and where useful the bad value echoed back). ``tests/test_robustness.py`` runs every case and
also checks that the object is unchanged. Most constructors have no object (``factory=None``), so only their error
is checked; those that create files or shared memory have the directory (``directory(...)``) or this process's
shared-memory segments (``SharedMemorySegments``) as their object, which must be left as they were. Multi-process
buffers are closed after their case (``release``), so no case leaves anything under ``/dev/shm``.

``docs/robustness.md`` is rendered from this table by running every case (numpy backend, so the document does
not depend on whether numba is installed). Regenerate it with::

    .venv/bin/python tests/robustness_table.py --write      # or: make robustness-doc

(without ``--write`` the document goes to stdout).

A case with ``defect`` set shows a known library defect: the test is ``xfail(strict=True)`` until it is fixed,
and the document lists it under "Known defects" with what happens today.
"""

from __future__ import annotations

import atexit
import gc
import io
import os
import re
import shutil
import sys
import tempfile
import types
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import laber
from laber import (
    HindsightReplayBuffer,
    LaBERlazy,
    LaBERmax,
    LaBERmean,
    MPPrioritizedReplayBuffer,
    MPReplayBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    ReverseReplayBuffer,
    SelectiveReplayBuffer,
    SumMinTree,
    _accel,
    create_before_add_func,
    create_buffer,
    create_env_dict,
    laber_subsample,
    per_laber_subsample,
    train,
)
from laber.gym import UnsupportedSpaceError
from laber.transitions import write_transitions

__all__ = ["CASES", "DOC_PATH", "Case", "outcome", "release", "render"]

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "robustness.md"
REGENERATE = ".venv/bin/python tests/robustness_table.py --write"


@dataclass(frozen=True)
class Case:
    """One malformed call: ``call(factory())`` must raise exactly ``error`` with ``names`` (and ``echo``) in
    its message, and leave the factory's object unchanged."""

    id: str
    api: str  # the public callable, as the document shows it
    description: str  # the bad input, one line of markdown
    call: Callable[[Any], object]
    error: type[Exception]
    names: str  # the argument's name as the message must spell it
    factory: Callable[[], Any] | None = None  # None: a constructor or a stateless function
    echo: str | None = None  # the bad value, as the message must echo it
    defect: str | None = None  # a known library defect: the case fails until it is fixed


# ------------------------------------------------------------------------------------------------ fixtures
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 3},
    "act": {"dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 3},
    "done": {},
}
ENV_NEXT_OF: dict[str, dict[str, Any]] = {k: v for k, v in ENV.items() if k != "next_obs"}
NSTEP: dict[str, Any] = {"size": 3, "rew": "rew", "gamma": 0.9, "next": "next_obs"}
SMALL: dict[str, dict[str, Any]] = {"obs": {}, "rew": {}}


def transitions(k: int, start: int = 0) -> dict[str, np.ndarray]:
    """``k`` transitions whose ``next_obs`` is the next one's ``obs`` (so ``next_of`` links them)."""
    t = np.arange(start, start + k, dtype=np.float32)
    obs = np.stack([t, t + 0.5, -t], axis=1)
    return {
        "obs": obs,
        "act": (np.arange(start, start + k) % 4).astype(np.uint8),
        "rew": 0.1 * t,
        "next_obs": np.stack([t + 1, t + 1.5, -t - 1], axis=1),
        "done": np.zeros(k, dtype=np.float32),
    }


def one(i: int = 0) -> dict[str, Any]:
    """One valid transition (each field of its own shape)."""
    return {k: v[0] for k, v in transitions(1, i).items()}


def batch(k: int = 2, **override: Any) -> dict[str, Any]:
    """``k`` valid transitions with some fields replaced."""
    return {**transitions(k, 40), **override}


def nstep_buffer() -> ReplayBuffer:
    """16 rows, 3-step returns: 6 stored rows, 2 transitions pending, rng advanced."""
    rb = ReplayBuffer(16, ENV, Nstep=NSTEP, rng=0)
    rb.add(**transitions(6))
    rb.on_episode_end()
    rb.add(**transitions(2, 10))
    rb.sample(4)
    return rb


def ring_buffer() -> ReplayBuffer:
    """8 rows, no N-step, wrapped around once (11 adds)."""
    rb = ReplayBuffer(8, ENV, rng=1)
    rb.add(**transitions(5))
    for i in range(5, 11):
        rb.add(**one(i))
    rb.sample(3)
    return rb


def next_of_buffer() -> ReplayBuffer:
    """``next_of="obs"`` with 3-step returns: linked rows, side-store slots, pending links and N-step rows."""
    rb = ReplayBuffer(16, ENV_NEXT_OF, next_of="obs", Nstep=NSTEP, rng=2)
    rb.add(**transitions(5))
    rb.on_episode_end()
    rb.add(**transitions(4, 20))
    rb.sample(4)
    return rb


def stacks(k: int, start: int = 0) -> dict[str, np.ndarray]:
    """``k`` transitions of 3 stacked frames ``(2, 3)`` (stack on the last axis), each stack continuing the last."""
    frames = np.arange(start - 2, start + k + 1, dtype=np.float32)
    obs = np.stack([np.stack([frames[i : i + 3], -frames[i : i + 3]]) for i in range(k + 1)])
    return {"obs": obs[:k], "act": np.zeros(k, np.uint8), "rew": np.ones(k, np.float32), "next_obs": obs[1:]}


def stack_buffer() -> ReplayBuffer:
    """``stack_compress="obs"`` and ``next_of="obs"``: anchors in the side store, linked rows, a pending link."""
    env: dict[str, dict[str, Any]] = {"obs": {"shape": (2, 3)}, "act": {"dtype": np.uint8}, "rew": {}}
    rb = ReplayBuffer(16, env, next_of="obs", stack_compress="obs", rng=3)
    rb.add(**stacks(5))
    rb.add(**stacks(3, 30))
    rb.sample(4)
    return rb


def per_buffer(alpha: float = 0.6) -> PrioritizedReplayBuffer:
    """PER with 3-step returns: 6 stored rows of given priorities (two updated), 2 pending, rng advanced."""
    rb = PrioritizedReplayBuffer(16, ENV, Nstep=NSTEP, alpha=alpha, eps=1e-3, rng=4)
    rb.add(priorities=np.linspace(0.5, 3.0, 6), **transitions(6))
    rb.on_episode_end()
    rb.update_priorities(np.array([0, 2]), np.array([5.0, 0.25]))
    rb.add(priorities=np.array([0.7, 0.9]), **transitions(2, 10))
    rb.sample(4)
    return rb


def per_zero_mass() -> PrioritizedReplayBuffer:
    """PER with ``eps=0`` whose 3 stored rows all have priority 0: nothing can be drawn."""
    rb = PrioritizedReplayBuffer(8, ENV, eps=0.0, rng=5)
    rb.add(priorities=np.zeros(3), **transitions(3))
    return rb


def empty_buffer() -> ReplayBuffer:
    """No stored row yet, but 2 transitions pending in the N-step window."""
    rb = ReplayBuffer(8, ENV, Nstep=NSTEP, rng=6)
    rb.add(**transitions(2))
    return rb


def empty_per() -> PrioritizedReplayBuffer:
    return PrioritizedReplayBuffer(8, ENV, rng=7)


def sampler(cls: type[LaBERmean | LaBERlazy | LaBERmax] = LaBERmean, eps: float = 1e-6) -> Any:
    """A ``B = 4, m = 2`` sampler (takes 8 priorities) that has drawn once."""
    s = cls(4, 2, eps=eps, rng=8)
    s(priorities=np.arange(8.0))
    return s


def generator() -> np.random.Generator:
    """A generator that has drawn, for the functional ``laber_subsample(..., rng=gen)``."""
    gen = np.random.default_rng(9)
    gen.random(3)
    return gen


def tree() -> SumMinTree:
    t = SumMinTree(8, top_size=2, min_fanout=2)
    t.update([0, 3, 5, 6], [1.0, 2.0, 0.5, 0.0])
    return t


def empty_tree_and_generator() -> tuple[SumMinTree, np.random.Generator]:
    return SumMinTree(8), generator()


def per_large_batch() -> tuple[LaBERmean, dict[str, np.ndarray]]:
    """A used ``LaBERmean(4, 2)`` and a large batch of 8 rows from ``per_buffer`` (fields, indexes, weights)."""
    return sampler(), per_buffer().sample(8, beta=0.4)


# scratch files: one directory per process, one subdirectory per case, named by the case (the document shows
# paths relative to it, so it does not depend on where the temporary directory is)
_SCRATCH: list[Path] = []


def scratch(case_id: str) -> Path:
    """A fresh, empty directory for one case."""
    if not _SCRATCH:
        root = Path(tempfile.mkdtemp(prefix="laber-robustness-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SCRATCH.append(root)
    d = _SCRATCH[0] / case_id
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def files(
    case_id: str, make: Callable[[Path], object] | None = None, buffer: Callable[[], Any] | None = None
) -> Callable[[], tuple[Any, Path]]:
    """A factory for ``(buffer(), directory)`` (default ``nstep_buffer``), ``make(directory)`` having put files in
    the directory."""

    def build() -> tuple[Any, Path]:
        d = scratch(case_id)
        if make is not None:
            make(d)
        return (nstep_buffer if buffer is None else buffer)(), d

    return build


def directory(case_id: str, make: Callable[[Path], object] | None = None) -> Callable[[], Path]:
    """A factory for a fresh directory (``make(directory)`` having put files in it): for constructors that
    write files (``mmap_prefix``), whose directory must be left as it was."""

    def build() -> Path:
        d = scratch(case_id)
        if make is not None:
            make(d)
        return d

    return build


def _plain_npz(d: Path) -> None:
    np.savez(d / "plain.npz", rows=np.zeros(3))


def _text_file(d: Path) -> None:
    (d / "notes.txt").write_text("not a checkpoint\n")


def _other_fields(d: Path) -> None:
    rb = ReplayBuffer(16, {"obs": {"shape": 3}}, rng=0)
    rb.add(obs=np.zeros((2, 3)))
    rb.save_checkpoint(d / "ckpt.npz")


def _other_nstep(d: Path) -> None:
    rb = ReplayBuffer(16, ENV, Nstep={**NSTEP, "size": 2}, rng=0)
    rb.add(**transitions(4))
    rb.save_checkpoint(d / "ckpt.npz")


def _truncated(d: Path) -> None:
    rb = ReplayBuffer(32, ENV, Nstep=NSTEP, rng=0)
    rb.add(**transitions(20))
    rb.on_episode_end()
    rb.save_checkpoint(d / "ckpt.npz")
    with open(d / "ckpt.npz", "r+b") as fh:  # a copy cut short, e.g. by a full disk
        fh.truncate((d / "ckpt.npz").stat().st_size // 2)


def _a_directory(d: Path) -> None:
    (d / "adir").mkdir()


# --- files for load_transitions
CPPRB_FILES = Path(__file__).resolve().parent / "data" / "cpprb" / "cpprb-11.0.0"


def _cpprb_file(name: str) -> Callable[[Path], None]:
    """Copy one of cpprb 11's own transitions files (``tests/data/cpprb``) into the case's directory."""

    def make(d: Path) -> None:
        shutil.copy(CPPRB_FILES / name, d / name)

    return make


def _transitions_file(name: str, nstep: bool = False, **override: Any) -> Callable[[Path], None]:
    """A transitions file (cpprb's format, written by laber) of 4 transitions of ``ENV``, fields overridden
    (``None`` removes a field)."""

    def make(d: Path) -> None:
        fields = {**transitions(4), **override}
        write_transitions(d / name, {k: v for k, v in fields.items() if v is not None}, nstep=nstep)

    return make


def _npz_members(d: Path, name: str, members: dict[str, Any]) -> None:
    """An ``.npz`` written member by member (object members pickled, as cpprb's files are)."""
    with zipfile.ZipFile(d / name, "w") as zf:
        for key, value in members.items():
            buf = io.BytesIO()
            np.save(buf, value, allow_pickle=True)
            zf.writestr(f"{key}.npy", buf.getvalue())


def _held(value: object) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = value
    return out


def _cpprb_members(data: object, version: int = 1) -> dict[str, Any]:
    return {
        "safe": np.array(True),
        "version": np.array(version),
        "data": _held(data),
        "Nstep": np.array(False),
        "cache": _held(None),
        "next_of": _held(None),
    }


class _Evil:
    """Pickles to a call of ``os.system``: what an unpickler that resolves any global would run."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return os.system, ("echo this must never run",)


def _version_2(d: Path) -> None:
    _npz_members(d, "v2.npz", _cpprb_members(transitions(3), version=2))


def _pickled_global(d: Path) -> None:
    _npz_members(d, "evil.npz", _cpprb_members({"obs": _Evil()}))


def _ragged_rows(d: Path) -> None:
    fields = transitions(3)
    fields["obs"] = fields["obs"][:2]
    _npz_members(d, "ragged.npz", _cpprb_members(fields))


def _npy_file(d: Path) -> None:
    np.save(d / "arr.npy", np.zeros(3))


def _truncated_transitions(d: Path) -> None:
    write_transitions(d / "trunc.npz", transitions(200))
    with open(d / "trunc.npz", "r+b") as fh:  # a copy cut short, e.g. by a full disk
        fh.truncate((d / "trunc.npz").stat().st_size // 2)


def _corrupt_transitions(d: Path) -> None:
    write_transitions(d / "corrupt.npz", transitions(200))
    raw = bytearray((d / "corrupt.npz").read_bytes())
    at = raw.find(b"data.npy") + 200  # inside the deflated pickle of the 'data' member
    raw[at : at + 40] = bytes(40)
    (d / "corrupt.npz").write_bytes(bytes(raw))


def _no_suffix(d: Path) -> None:
    write_transitions(d / "saved", transitions(3))  # written as saved.npz, as numpy and cpprb name it


def _huge_priorities(d: Path) -> None:
    """A checkpoint of a PER with ``alpha=0`` (any priority has mass 1) holding priority ``1e308``."""
    rb = PrioritizedReplayBuffer(16, ENV, alpha=0.0, rng=0)
    rb.add(priorities=np.array([1.0, 1e308]), **transitions(2))
    rb.save_checkpoint(d / "huge.npz")


def _directory_npz(d: Path) -> None:
    (d / "adir.npz").mkdir()


def _existing_file(name: str) -> Callable[[Path], None]:
    def make(d: Path) -> None:
        (d / name).write_bytes(b"someone else's data\n")

    return make


def per_alpha_one() -> PrioritizedReplayBuffer:
    """PER with ``alpha=1``: 3 stored rows, rng advanced."""
    rb = PrioritizedReplayBuffer(16, ENV, alpha=1.0, rng=19)
    rb.add(**transitions(3))
    rb.sample(2)
    return rb


def _empty_text_file(d: Path) -> None:
    (d / "empty.txt").write_text("")


def _save_to_text_file(o: tuple[Any, Path]) -> object:
    with open(o[1] / "empty.txt", "w") as fh:  # opening it for writing leaves the empty file as it was
        return o[0].save_transitions(fh)


def _load_from_text_file(o: tuple[Any, Path]) -> object:
    with open(o[1] / "notes.txt") as fh:
        return o[0].load_transitions(fh)


# --- storage backends: memory-mapped files, a torch device, shared memory
def device_buffer() -> ReplayBuffer:
    """Rows on the ``"cpu"`` torch device, 3-step returns: 6 stored rows, 2 pending, rng advanced."""
    rb = ReplayBuffer(16, ENV, Nstep=NSTEP, device="cpu", rng=14)
    rb.add(**transitions(6))
    rb.on_episode_end()
    rb.add(**transitions(2, 10))
    rb.sample(4)
    return rb


def device_per() -> PrioritizedReplayBuffer:
    """PER with rows on the ``"cpu"`` torch device: 6 rows of given priorities (one updated), rng advanced."""
    rb = PrioritizedReplayBuffer(16, ENV, device="cpu", eps=1e-3, rng=15)
    rb.add(priorities=np.linspace(0.5, 3.0, 6), **transitions(6))
    rb.update_priorities(np.array([1]), np.array([4.0]))
    rb.sample(4)
    return rb


def cfu_per() -> PrioritizedReplayBuffer:
    """PER with ``check_for_update=True`` and ``alpha=1``: wrapped around after a sample (rows of two stamps)."""
    rb = PrioritizedReplayBuffer(8, ENV, alpha=1.0, check_for_update=True, rng=16)
    rb.add(priorities=np.linspace(0.5, 2.5, 5), **transitions(5))
    rb.sample(2)
    rb.add(**transitions(4, 30))
    return rb


def mp_buffer() -> MPReplayBuffer:
    """Shared memory, 3-step returns: 6 stored rows, 2 pending, rng advanced. Closed by ``release``."""
    rb = MPReplayBuffer(16, ENV, Nstep=NSTEP, rng=17)
    rb.add(**transitions(6))
    rb.on_episode_end()
    rb.add(**transitions(2, 10))
    rb.sample(4)
    return rb


def mp_per() -> MPPrioritizedReplayBuffer:
    """Shared-memory PER (``check_for_update``): 6 rows of given priorities, one updated, sampled twice."""
    rb = MPPrioritizedReplayBuffer(16, ENV, 0.6, 1e-3, check_for_update=True, rng=18)
    rb.add(priorities=np.linspace(0.5, 3.0, 6), **transitions(6))
    rb.sample(2)
    rb.update_priorities(np.array([2]), np.array([5.0]))
    rb.sample(4)
    return rb


class SharedMemorySegments:
    """The shared-memory segments this process has created and not unlinked (``/dev/shm/laber_<pid>_*``): the
    object of the multi-process constructors' cases, which must leave none behind once their error is gone."""

    def _robustness_state(self) -> dict[str, Any]:
        segments = self._segments()
        if segments:  # what a reference cycle still holds is freed by a collection
            gc.collect()
            segments = self._segments()
        return {"segments": segments}

    @staticmethod
    def _segments() -> list[str]:
        root = Path("/dev/shm")
        prefix = f"laber_{os.getpid()}_"
        return sorted(p.name for p in root.iterdir() if p.name.startswith(prefix)) if root.is_dir() else []


def release(obj: Any) -> None:
    """Close the multi-process buffers in a case's object (their shared memory is unlinked)."""
    if isinstance(obj, tuple | list):
        for item in obj:
            release(item)
    elif isinstance(obj, MPReplayBuffer | MPPrioritizedReplayBuffer):
        obj.close()


# --- ReverseReplayBuffer, SelectiveReplayBuffer, HindsightReplayBuffer
def reverse_buffer() -> ReverseReplayBuffer:
    """Stride 2, 7 rows, the cursor moved back by two samples."""
    rb = ReverseReplayBuffer(16, ENV, stride=2, rng=13)
    rb.add(**transitions(7))
    rb.sample(2)
    rb.sample(2)
    return rb


def reverse_empty() -> ReverseReplayBuffer:
    return ReverseReplayBuffer(16, ENV, stride=2, rng=13)


def selective_buffer() -> SelectiveReplayBuffer:
    """Three episodes: rows 0-2 (ended by ``done``), 3-4 (ended by ``on_episode_end``), 5-6 (open); rng advanced."""
    rb = SelectiveReplayBuffer(16, ENV, rng=12)
    rows = transitions(5)
    rows["done"][2] = 1.0
    rb.add(**rows)
    rb.on_episode_end()
    rb.add(**transitions(2, 20))
    rb.sample(3)
    return rb


HER_ENV: dict[str, dict[str, Any]] = {"obs": {"shape": 2}, "act": {"dtype": np.uint8}, "next_obs": {"shape": 2}}
HER_ENV_U8: dict[str, dict[str, Any]] = {
    "obs": {"shape": 2, "dtype": np.uint8},
    "act": {"dtype": np.uint8},
    "next_obs": {"shape": 2, "dtype": np.uint8},
}
HER = "HindsightReplayBuffer(...)"


def her_reward(next_state: np.ndarray, action: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """0 where the next state is within 0.1 of the goal (L1), else -1."""
    far: np.ndarray = np.abs(next_state.astype(np.float64) - goal).sum(axis=1) > 0.1
    return -far.astype(np.float32)


def her_steps(k: int, start: int = 0, dtype: Any = np.float32) -> dict[str, np.ndarray]:
    t = np.arange(start, start + k, dtype=np.float64)
    return {
        "obs": np.stack([t, 0.5 * t], axis=1).astype(dtype),
        "act": (np.arange(start, start + k) % 3).astype(np.uint8),
        "next_obs": np.stack([t + 1, 0.5 * t + 0.5], axis=1).astype(dtype),
    }


def _fails_after_first(good: Callable[..., Any], bad: Callable[..., Any]) -> Callable[..., Any]:
    """``good`` for the first call (the fixture's stored episode), ``bad`` from then on."""
    calls = [0]

    def func(*args: Any) -> Any:
        calls[0] += 1
        return (good if calls[0] == 1 else bad)(*args)

    return func


def _identity(states: np.ndarray) -> np.ndarray:
    return states


def _raise_error(*args: Any) -> Any:
    raise RuntimeError("the user's function failed")


def her_buffer(
    strategy: str = "future",
    prioritized: bool = True,
    reward: Callable[..., Any] = her_reward,
    env: dict[str, dict[str, Any]] | None = None,
    **kwargs: Any,
) -> HindsightReplayBuffer:
    """``max_episode_len=4``, ``k=4``: one episode stored (15 rows), 3 steps of the current one held, rng
    advanced (by the relabelling draws and a sample)."""
    u8 = env is HER_ENV_U8
    rb = HindsightReplayBuffer(
        64, HER_ENV if env is None else env, 4, reward, strategy=strategy, prioritized=prioritized, rng=11, **kwargs
    )
    rb.add(**her_steps(3, dtype=np.uint8 if u8 else np.float32))
    rb.on_episode_end(np.array([9, 9]))
    rb.add(**her_steps(3, 10, dtype=np.uint8 if u8 else np.float32))
    rb.sample(4)
    return rb


def her_full() -> HindsightReplayBuffer:
    """``her_buffer`` whose current episode holds ``max_episode_len=4`` steps."""
    rb = her_buffer()
    rb.add(**{k: v[0] for k, v in her_steps(1, 13).items()})
    return rb


def her_bad_reward_shape() -> HindsightReplayBuffer:
    return her_buffer(reward=_fails_after_first(her_reward, lambda s, a, g: np.zeros(3)))


def her_bad_reward() -> HindsightReplayBuffer:
    return her_buffer(reward=_fails_after_first(her_reward, _raise_error))


def her_bad_goal_shape() -> HindsightReplayBuffer:
    return her_buffer(goal_func=_fails_after_first(_identity, lambda s: s[:, :1]))


def her_random_bad_goal() -> HindsightReplayBuffer:
    """``strategy="random"``: the failing ``goal_func`` runs after the draws from the generator."""
    return her_buffer(strategy="random", goal_func=_fails_after_first(_identity, _raise_error))


# --- gymnasium helpers and train
def _spaces() -> Any:
    import gymnasium.spaces

    return gymnasium.spaces


def space_env(observation: Callable[[Any], Any], action: Callable[[Any], Any] | None = None) -> Any:
    """An object with the two spaces ``create_env_dict`` reads, built from ``gymnasium.spaces``."""
    sp = _spaces()
    return types.SimpleNamespace(
        observation_space=observation(sp), action_space=sp.Discrete(2) if action is None else action(sp)
    )


def _box(sp: Any) -> Any:
    return sp.Box(-1.0, 1.0, (3,))


def _nested_env() -> Any:
    return space_env(
        lambda sp: sp.Dict(pos=_box(sp), v=sp.Discrete(3)), lambda sp: sp.Tuple((sp.Discrete(2), _box(sp)))
    )


NESTED_OBS = {"pos": np.zeros(3, np.float32), "v": 1}


class CountingEnv:
    """A gymnasium-style environment (``reset`` -> ``(obs, info)``, ``step`` -> 5-tuple) of ``ENV``'s fields that
    records every call: ``train``'s argument checks must come before the environment is touched."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def reset(self, seed: int | None = None, options: object = None) -> tuple[np.ndarray, dict[str, Any]]:
        self.calls.append(f"reset(seed={seed})")
        return np.zeros(3, np.float32), {}

    def step(self, action: object) -> tuple[Any, ...]:
        self.calls.append(f"step({action!r})")
        return np.full(3, len(self.calls), np.float32), 1.0, False, False, {}

    def _robustness_state(self) -> dict[str, Any]:
        return {"calls": list(self.calls)}


class UsedEnv(CountingEnv):
    """For the cases whose error ``train`` can only find by running the environment (a wrong ``reset`` or
    ``step``, a bad ``after_step`` result): the environment's calls are not state the case protects, the
    buffer is."""

    def _robustness_state(self) -> dict[str, Any]:
        return {}


class OldResetEnv(UsedEnv):
    """gym < 0.26: ``reset`` returns the observation only."""

    def reset(self, seed: int | None = None, options: object = None) -> Any:
        return np.zeros(3, np.float32)


class OldStepEnv(UsedEnv):
    """gym < 0.26: ``step`` returns ``(obs, reward, done, info)``."""

    def step(self, action: object) -> tuple[Any, ...]:
        return np.zeros(3, np.float32), 1.0, False, {}


def train_setup(env: type[CountingEnv] = CountingEnv) -> Callable[[], tuple[ReplayBuffer, CountingEnv]]:
    """A factory for ``(ring_buffer(), env())``."""
    return lambda: (ring_buffer(), env())


def act_one(obs: object, step: int, episode: int, is_warmup: bool) -> int:
    return 1


def update_ones(sample: dict[str, np.ndarray], step: int, episode: int) -> np.ndarray:
    return np.ones(len(sample["indexes"]))


def run_train(o: tuple[ReplayBuffer, CountingEnv], **kwargs: Any) -> object:
    """``train(buffer, env, act_one, update_ones, max_steps=3, **kwargs)`` on a case's ``(buffer, env)``."""
    options: dict[str, Any] = {"max_steps": 3, **kwargs}
    args: dict[str, Any] = {"buffer": o[0], "env": o[1], "get_action": act_one, "update_policy": update_ones}
    for name in list(args):
        if name in options:
            args[name] = options.pop(name)
    return train(args["buffer"], args["env"], args["get_action"], args["update_policy"], **options)


# ------------------------------------------------------------------------------------------------ defects
# Known library defects (being fixed); each case naming one is xfail(strict=True) until then.


# ------------------------------------------------------------------------------------------------ the table
CASES: list[Case] = []


def case(
    id: str,
    api: str,
    description: str,
    call: Callable[[Any], object],
    error: type[Exception],
    names: str,
    factory: Callable[[], Any] | None = None,
    *,
    echo: str | None = None,
    defect: str | None = None,
) -> None:
    CASES.append(Case(id, api, description, call, error, names, factory, echo, defect))


NAN, INF = float("nan"), float("inf")
RB = "ReplayBuffer(...)"
PER = "PrioritizedReplayBuffer(...)"

# ReplayBuffer(size, ...)
case("rb-size-zero", RB, "`size=0`", lambda _: ReplayBuffer(0, ENV), ValueError, "size", echo="size=0")
case("rb-size-negative", RB, "`size=-5`", lambda _: ReplayBuffer(-5, ENV), ValueError, "size", echo="-5")
case("rb-size-fraction", RB, "`size=1.5`", lambda _: ReplayBuffer(1.5, ENV), ValueError, "size", echo="1.5")
case("rb-size-nan", RB, "`size=nan`", lambda _: ReplayBuffer(NAN, ENV), ValueError, "size", echo="nan")
case("rb-size-inf", RB, "`size=inf`", lambda _: ReplayBuffer(INF, ENV), ValueError, "size", echo="inf")
case(
    "rb-size-str",
    RB,
    "`size='100'` (a string)",
    lambda _: ReplayBuffer("100", ENV),  # type: ignore[arg-type]
    TypeError,
    "size",
    echo="'100'",
)
case(
    "rb-size-none",
    RB,
    "`size=None`",
    lambda _: ReplayBuffer(None, ENV),  # type: ignore[arg-type]
    TypeError,
    "size",
    echo="None",
)
# env_dict
case("rb-env-none", RB, "`env_dict` missing", lambda _: ReplayBuffer(8), TypeError, "env_dict")
case("rb-env-empty", RB, "`env_dict={}`", lambda _: ReplayBuffer(8, {}), TypeError, "env_dict")
case(
    "rb-env-list",
    RB,
    "`env_dict` a list of pairs",
    lambda _: ReplayBuffer(8, [("obs", {})]),  # type: ignore[arg-type]
    TypeError,
    "env_dict",
)
case(
    "rb-env-spec-int",
    RB,
    "`env_dict={'obs': 4}` (spec not a dict)",
    lambda _: ReplayBuffer(8, {"obs": 4}),  # type: ignore[dict-item]
    TypeError,
    "env_dict['obs']",
)
case(
    "rb-env-key-empty",
    RB,
    "a field named `''`",
    lambda _: ReplayBuffer(8, {"": {}}),
    TypeError,
    "env_dict keys",
    echo="''",
)
case(
    "rb-env-key-int",
    RB,
    "a field named `3` (not a str)",
    lambda _: ReplayBuffer(8, {3: {}}),  # type: ignore[dict-item]
    TypeError,
    "env_dict keys",
)
case(
    "rb-env-spec-unknown-key",
    RB,
    "`{'obs': {'shape': 3, 'dtpye': float}}` (misspelt key)",
    lambda _: ReplayBuffer(8, {"obs": {"shape": 3, "dtpye": float}}),
    ValueError,
    "env_dict['obs']",
    echo="dtpye",
)
case(
    "rb-shape-zero",
    RB,
    "`shape=0`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": 0}}),
    ValueError,
    "env_dict['obs']['shape']",
    echo="shape=0",
)
case(
    "rb-shape-negative",
    RB,
    "`shape=(2, -1)`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, -1)}}),
    ValueError,
    "env_dict['obs']['shape']",
    echo="(2, -1)",
)
case(
    "rb-shape-float",
    RB,
    "`shape=2.5`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": 2.5}}),
    TypeError,
    "env_dict['obs']['shape']",
    echo="2.5",
)
case(
    "rb-shape-str",
    RB,
    "`shape='4'`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": "4"}}),
    TypeError,
    "env_dict['obs']['shape']",
    echo="'4'",
)
case(
    "rb-shape-bool",
    RB,
    "`shape=True`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": True}}),
    TypeError,
    "env_dict['obs']['shape']",
    echo="True",
)
case(
    "rb-shape-float-dim",
    RB,
    "`shape=(2, 2.0)`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, 2.0)}}),
    ValueError,
    "env_dict['obs']['shape']",
)
case(
    "rb-shape-0d-array",
    RB,
    "`shape=np.array(4.0)` (a 0-d float array)",
    lambda _: ReplayBuffer(8, {"obs": {"shape": np.array(4.0)}}),
    TypeError,
    "env_dict['obs']['shape']",
)
case(
    "rb-dtype-unknown",
    RB,
    "`dtype='nope'`",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": "nope"}}),
    TypeError,
    "env_dict['obs']['dtype']",
    echo="'nope'",
)
case(
    "rb-dtype-object",
    RB,
    "`dtype=object`",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": object}}),
    TypeError,
    "env_dict['obs']['dtype']",
    echo="object",
)
case(
    "rb-dtype-str",
    RB,
    "`dtype='U3'` (strings)",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": "U3"}}),
    TypeError,
    "env_dict['obs']['dtype']",
)
case(
    "rb-dtype-datetime",
    RB,
    "`dtype=np.datetime64`",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": np.datetime64}}),
    TypeError,
    "env_dict['obs']['dtype']",
)
case(
    "rb-field-indexes",
    RB,
    "a field named `indexes`",
    lambda _: ReplayBuffer(8, {"obs": {}, "indexes": {}}),
    ValueError,
    "'indexes'",
)
case(
    "rb-field-weights",
    RB,
    "a field named `weights`",
    lambda _: ReplayBuffer(8, {"obs": {}, "weights": {}}),
    ValueError,
    "'weights'",
)
case(
    "rb-field-discount",
    RB,
    "a field named `discount`, no `Nstep`",
    lambda _: ReplayBuffer(8, {"obs": {}, "discount": {}}),
    ValueError,
    "'discount'",
)
case(
    "rb-field-discount-nstep",
    RB,
    "a field named `discount` with `Nstep`",
    lambda _: ReplayBuffer(8, {**SMALL, "discount": {}}, Nstep={"size": 2, "rew": "rew"}),
    ValueError,
    "'discount'",
)
case(
    "rb-field-next-link",
    RB,
    "a field named `_next_link` with `next_of`",
    lambda _: ReplayBuffer(8, {"obs": {}, "_next_link": {}}, next_of="obs"),
    ValueError,
    "'_next_link'",
)
case(
    "rb-field-steps",
    RB,
    "a field named `_steps` with `Nstep`",
    lambda _: ReplayBuffer(8, {**SMALL, "_steps": {}}, Nstep={"size": 2, "rew": "rew"}),
    ValueError,
    "'_steps'",
)
case(
    "rb-default-dtype-unknown",
    RB,
    "`default_dtype='nope'`",
    lambda _: ReplayBuffer(8, ENV, default_dtype="nope"),
    TypeError,
    "default_dtype",
    echo="'nope'",
)
case(
    "rb-default-dtype-object",
    RB,
    "`default_dtype=object`",
    lambda _: ReplayBuffer(8, {"obs": {}}, default_dtype=object),
    TypeError,
    "default_dtype",
)
case("rb-rng-negative", RB, "`rng=-1`", lambda _: ReplayBuffer(8, ENV, rng=-1), ValueError, "rng", echo="-1")
case(
    "rb-rng-str",
    RB,
    "`rng='seed'`",
    lambda _: ReplayBuffer(8, ENV, rng="seed"),  # type: ignore[arg-type]
    TypeError,
    "rng",
    echo="'seed'",
)
case(
    "rb-rng-float",
    RB,
    "`rng=1.5`",
    lambda _: ReplayBuffer(8, ENV, rng=1.5),  # type: ignore[arg-type]
    TypeError,
    "rng",
    echo="1.5",
)
case(
    "rb-unknown-keyword",
    RB,
    "`nstep=...` (lower case)",
    lambda _: ReplayBuffer(8, ENV, nstep=NSTEP),  # type: ignore[call-arg]
    TypeError,
    "nstep",
)
# next_of, stack_compress
case(
    "rb-next-of-unknown",
    RB,
    "`next_of='state'` (no such field)",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of="state"),
    ValueError,
    "next_of",
    echo="'state'",
)
case(
    "rb-next-of-int",
    RB,
    "`next_of=3`",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of=3),  # type: ignore[arg-type]
    TypeError,
    "next_of",
    echo="3",
)
case(
    "rb-next-of-empty",
    RB,
    "`next_of=[]`",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of=[]),
    TypeError,
    "next_of",
)
case(
    "rb-next-of-declared",
    RB,
    "`next_of='obs'` with `next_obs` in `env_dict`",
    lambda _: ReplayBuffer(8, ENV, next_of="obs"),
    ValueError,
    "next_of",
)
case(
    "rb-stack-unknown",
    RB,
    "`stack_compress='frames'` (no such field)",
    lambda _: ReplayBuffer(8, ENV, stack_compress="frames"),
    ValueError,
    "stack_compress",
    echo="'frames'",
)
case(
    "rb-stack-int",
    RB,
    "`stack_compress=5`",
    lambda _: ReplayBuffer(8, ENV, stack_compress=5),  # type: ignore[arg-type]
    TypeError,
    "stack_compress",
    echo="5",
)
case(
    "rb-stack-one-frame",
    RB,
    "`stack_compress='rew'` (shape `(1,)`)",
    lambda _: ReplayBuffer(8, ENV, stack_compress="rew"),
    ValueError,
    "stack_compress",
    echo="'rew'",
)
case(
    "rb-stack-depths",
    RB,
    "`stack_compress=['a', 'b']` of 3 and 4 frames",
    lambda _: ReplayBuffer(8, {"a": {"shape": (2, 3)}, "b": {"shape": (2, 4)}}, stack_compress=["a", "b"]),
    ValueError,
    "stack_compress",
)
case(
    "rb-stack-derived",
    RB,
    "`stack_compress='next_obs'` with `next_of='obs'`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, 3)}}, next_of="obs", stack_compress="next_obs"),
    ValueError,
    "stack_compress",
    echo="'next_obs'",
)
# Nstep
case("rb-nstep-str", RB, "`Nstep='3'`", lambda _: ReplayBuffer(8, SMALL, Nstep="3"), TypeError, "Nstep")  # type: ignore[arg-type]
case(
    "rb-nstep-unknown-key",
    RB,
    "`Nstep={..., 'gama': 0.9}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "gama": 0.9}),
    ValueError,
    "Nstep",
    echo="gama",
)
case(
    "rb-nstep-size-missing",
    RB,
    "`Nstep` without `size`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"rew": "rew"}),
    ValueError,
    "Nstep['size']",
)
case(
    "rb-nstep-size-zero",
    RB,
    "`Nstep={'size': 0, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 0, "rew": "rew"}),
    ValueError,
    "Nstep['size']",
    echo="size=0",
)
case(
    "rb-nstep-size-float",
    RB,
    "`Nstep={'size': 2.5, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 2.5, "rew": "rew"}),
    ValueError,
    "Nstep['size']",
    echo="2.5",
)
case(
    "rb-nstep-size-huge",
    RB,
    "`Nstep={'size': 10**6, ...}` on 8 rows",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 10**6, "rew": "rew"}),
    ValueError,
    "Nstep['size']",
)
case(
    "rb-nstep-gamma-above-one",
    RB,
    "`Nstep={'gamma': 1.5, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "gamma": 1.5}),
    ValueError,
    "Nstep['gamma']",
    echo="1.5",
)
case(
    "rb-nstep-gamma-nan",
    RB,
    "`Nstep={'gamma': nan, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "gamma": NAN}),
    ValueError,
    "Nstep['gamma']",
    echo="nan",
)
case(
    "rb-nstep-rew-missing",
    RB,
    "`Nstep` without `rew`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3}),
    ValueError,
    "Nstep",
    echo="'rew'",
)
case(
    "rb-nstep-rew-unknown",
    RB,
    "`Nstep={'rew': 'reward', ...}` (no such field)",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "reward"}),
    ValueError,
    "Nstep['rew']",
    echo="'reward'",
)
case(
    "rb-nstep-rew-int",
    RB,
    "`Nstep={'rew': 3, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": 3}),
    TypeError,
    "Nstep['rew']",
)
case(
    "rb-nstep-rew-uint8",
    RB,
    "`Nstep` reward field of dtype `uint8`",
    lambda _: ReplayBuffer(8, {"obs": {}, "rew": {"dtype": np.uint8}}, Nstep={"size": 3, "rew": "rew"}),
    TypeError,
    "Nstep['rew']",
)
case(
    "rb-nstep-next-unknown",
    RB,
    "`Nstep={'next': 'next_state', ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "next": "next_state"}),
    ValueError,
    "Nstep['next']",
    echo="'next_state'",
)
case(
    "rb-nstep-next-mixed",
    RB,
    "`Nstep={'next': ['obs', 3], ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "next": ["obs", 3]}),
    TypeError,
    "Nstep['next']",
)

# ReplayBuffer.add
ADD = "ReplayBuffer.add"
case(
    "add-missing-field",
    ADD,
    "`done` missing",
    lambda rb: rb.add(**{k: v for k, v in one().items() if k != "done"}),
    ValueError,
    "'done'",
    nstep_buffer,
)
case(
    "add-unknown-field",
    ADD,
    "an extra `foo=1.0`",
    lambda rb: rb.add(**one(), foo=1.0),
    ValueError,
    "'foo'",
    nstep_buffer,
)
case(
    "add-positions-field",
    ADD,
    "`positions=...` (a PER-LaBER output, not one of `sample`'s keys, which `add` ignores)",
    lambda rb: rb.add(**one(), positions=np.zeros(1)),
    ValueError,
    "'positions'",
    nstep_buffer,
)
case(
    "add-wrong-shape",
    ADD,
    "`obs` of shape `(4,)` for `(3,)`",
    lambda rb: rb.add(**{**one(), "obs": np.zeros(4)}),
    ValueError,
    "'obs'",
    nstep_buffer,
    echo="(4,)",
)
case(
    "add-wrong-batch-shape",
    ADD,
    "`obs` of shape `(2, 4)` in a batch of 2",
    lambda rb: rb.add(**batch(obs=np.zeros((2, 4)))),
    ValueError,
    "'obs'",
    nstep_buffer,
    echo="(2, 4)",
)
case(
    "add-extra-axis",
    ADD,
    "`obs` of shape `(2, 1, 3)`",
    lambda rb: rb.add(**batch(obs=np.zeros((2, 1, 3)))),
    ValueError,
    "'obs'",
    ring_buffer,
)
case(
    "add-mismatched-k",
    ADD,
    "`obs` of 3 rows, the rest of 2",
    lambda rb: rb.add(**batch(obs=np.zeros((3, 3)))),
    ValueError,
    "'obs'",
    nstep_buffer,
)
case(
    "add-scalar-in-batch",
    ADD,
    "`rew=1.0` (one) among batches of 2",
    lambda rb: rb.add(**batch(rew=1.0)),
    ValueError,
    "'rew'",
    ring_buffer,
)
case("add-string", ADD, "`obs='abc'`", lambda rb: rb.add(**{**one(), "obs": "abc"}), TypeError, "'obs'", nstep_buffer)
case(
    "add-none",
    ADD,
    "`rew=None`",
    lambda rb: rb.add(**{**one(), "rew": None}),
    TypeError,
    "'rew'",
    nstep_buffer,
    echo="None",
)
case(
    "add-complex",
    ADD,
    "`rew=1j`",
    lambda rb: rb.add(**{**one(), "rew": 1j}),
    TypeError,
    "'rew'",
    nstep_buffer,
    echo="complex",
)
case(
    "add-ragged",
    ADD,
    "`obs=[[1.0], [2.0, 3.0]]` (ragged)",
    lambda rb: rb.add(**batch(obs=[[1.0], [2.0, 3.0]])),
    TypeError,
    "'obs'",
    ring_buffer,
)
case(
    "add-int-too-large",
    ADD,
    "`act=256` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": 256}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="256",
)
case(
    "add-int-negative",
    ADD,
    "`act=-1` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": -1}),
    ValueError,
    "'act'",
    ring_buffer,
    echo="-1",
)
case(
    "add-int-huge",
    ADD,
    "`act=2**64` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": 2**64}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="18446744073709551616",
)
case(
    "add-int-batch-out-of-range",
    ADD,
    "`act=[1, 300]` into `uint8`",
    lambda rb: rb.add(**batch(act=np.array([1, 300]))),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="300",
)
case(
    "add-int-fraction",
    ADD,
    "`act=1.5` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": 1.5}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="1.5",
)
case(
    "add-int-batch-fraction",
    ADD,
    "`act=[1.0, 2.5]` into `uint8`",
    lambda rb: rb.add(**batch(act=np.array([1.0, 2.5]))),
    ValueError,
    "'act'",
    next_of_buffer,
)
case(
    "add-int-nan",
    ADD,
    "`act=nan` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": NAN}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="nan",
)
case(
    "add-int-batch-nan",
    ADD,
    "`act=[1.0, nan]` into `uint8`",
    lambda rb: rb.add(**batch(act=np.array([1.0, NAN]))),
    ValueError,
    "'act'",
    ring_buffer,
)
case(
    "add-int-inf",
    ADD,
    "`act=inf` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": INF}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="inf",
)
case(
    "add-float32-overflow",
    ADD,
    "`rew=1e39` into `float32`",
    lambda rb: rb.add(**{**one(), "rew": 1e39}),
    ValueError,
    "'rew'",
    ring_buffer,
)
case(
    "add-float32-overflow-array",
    ADD,
    "`obs=[1e39, 0, 0]` into `float32`",
    lambda rb: rb.add(**{**one(), "obs": np.array([1e39, 0.0, 0.0])}),
    ValueError,
    "'obs'",
    nstep_buffer,
)
case(
    "add-empty-batch",
    ADD,
    "every field a batch of 0 rows",
    lambda rb: rb.add(**transitions(0)),
    ValueError,
    "no transitions",
    nstep_buffer,
)
case(
    "add-next-of-missing",
    ADD,
    "`next_of='obs'`: `next_obs` missing",
    lambda rb: rb.add(**{k: v for k, v in one().items() if k not in ("next_obs", "done")}, done=0.0),
    ValueError,
    "'next_obs'",
    next_of_buffer,
)
case(
    "add-next-of-shape",
    ADD,
    "`next_of='obs'`: `next_obs` of shape `(2,)`",
    lambda rb: rb.add(**{**one(), "next_obs": np.zeros(2)}),
    ValueError,
    "'next_obs'",
    next_of_buffer,
)
case(
    "add-next-of-int-range",
    ADD,
    "`next_of='obs'`: `act=[0, 999]` in a batch",
    lambda rb: rb.add(**{**{k: v for k, v in transitions(2, 50).items()}, "act": np.array([0, 999])}),
    ValueError,
    "'act'",
    next_of_buffer,
    echo="999",
)
case(
    "add-stack-shape",
    ADD,
    "`stack_compress='obs'`: `obs` without its stack axis",
    lambda rb: rb.add(**{**stacks(2, 60), "obs": np.zeros((2, 2))}),
    ValueError,
    "'obs'",
    stack_buffer,
)
case(
    "add-stack-int-range",
    ADD,
    "`stack_compress='obs'`: `act=[0, -3]`",
    lambda rb: rb.add(**{**stacks(2, 60), "act": np.array([0, -3])}),
    ValueError,
    "'act'",
    stack_buffer,
    echo="-3",
)

# ReplayBuffer.sample
SAMPLE = "ReplayBuffer.sample"
case("sample-zero", SAMPLE, "`batch_size=0`", lambda rb: rb.sample(0), ValueError, "batch_size", nstep_buffer, echo="0")
case(
    "sample-negative",
    SAMPLE,
    "`batch_size=-1`",
    lambda rb: rb.sample(-1),
    ValueError,
    "batch_size",
    ring_buffer,
    echo="-1",
)
case(
    "sample-float",
    SAMPLE,
    "`batch_size=1.5`",
    lambda rb: rb.sample(1.5),
    TypeError,
    "batch_size",
    nstep_buffer,
    echo="1.5",
)
case(
    "sample-bool",
    SAMPLE,
    "`batch_size=True`",
    lambda rb: rb.sample(True),
    TypeError,
    "batch_size",
    next_of_buffer,
    echo="True",
)
case(
    "sample-str",
    SAMPLE,
    "`batch_size='3'`",
    lambda rb: rb.sample("3"),
    TypeError,
    "batch_size",
    stack_buffer,
    echo="'3'",
)
case(
    "sample-numpy-zero",
    SAMPLE,
    "`batch_size=np.int64(0)`",
    lambda rb: rb.sample(np.int64(0)),
    ValueError,
    "batch_size",
    nstep_buffer,
)
case(
    "sample-empty",
    SAMPLE,
    "an empty buffer (rows pending in N-step only)",
    lambda rb: rb.sample(4),
    ValueError,
    "empty buffer",
    empty_buffer,
)

# PrioritizedReplayBuffer(...)
case(
    "per-alpha-negative",
    PER,
    "`alpha=-0.1`",
    lambda _: PrioritizedReplayBuffer(8, ENV, alpha=-0.1),
    ValueError,
    "alpha",
    echo="-0.1",
)
case(
    "per-alpha-nan",
    PER,
    "`alpha=nan`",
    lambda _: PrioritizedReplayBuffer(8, ENV, alpha=NAN),
    ValueError,
    "alpha",
    echo="nan",
)
case(
    "per-alpha-str",
    PER,
    "`alpha='0.6'`",
    lambda _: PrioritizedReplayBuffer(8, ENV, alpha="0.6"),  # type: ignore[arg-type]
    TypeError,
    "alpha",
    echo="'0.6'",
)
case("per-alpha-bool", PER, "`alpha=True`", lambda _: PrioritizedReplayBuffer(8, ENV, alpha=True), TypeError, "alpha")
case("per-eps-negative", PER, "`eps=-1e-6`", lambda _: PrioritizedReplayBuffer(8, ENV, eps=-1e-6), ValueError, "eps")
case("per-eps-inf", PER, "`eps=inf`", lambda _: PrioritizedReplayBuffer(8, ENV, eps=INF), ValueError, "eps", echo="inf")
case(
    "per-eps-none",
    PER,
    "`eps=None`",
    lambda _: PrioritizedReplayBuffer(8, ENV, eps=None),  # type: ignore[arg-type]
    TypeError,
    "eps",
    echo="None",
)
case(
    "per-beta-keyword",
    PER,
    "`beta=0.4` (a `sample` argument)",
    lambda _: PrioritizedReplayBuffer(8, ENV, beta=0.4),
    TypeError,
    "beta",
)
case(
    "per-field-priority",
    PER,
    "a field named `_priority`",
    lambda _: PrioritizedReplayBuffer(8, {"obs": {}, "_priority": {"shape": 2}}),
    ValueError,
    "'_priority'",
)

# PrioritizedReplayBuffer.add
PADD = "PrioritizedReplayBuffer.add"
case(
    "per-add-nan",
    PADD,
    "`priorities=nan`",
    lambda rb: rb.add(priorities=NAN, **one()),
    ValueError,
    "priorities",
    per_buffer,
    echo="nan",
)
case(
    "per-add-inf",
    PADD,
    "`priorities=[1, inf]`",
    lambda rb: rb.add(priorities=[1.0, INF], **batch()),
    ValueError,
    "priorities",
    per_buffer,
    echo="inf",
)
case(
    "per-add-negative",
    PADD,
    "`priorities=-0.5`",
    lambda rb: rb.add(priorities=-0.5, **one()),
    ValueError,
    "priorities",
    per_buffer,
    echo="-0.5",
)
case(
    "per-add-length",
    PADD,
    "2 priorities for 3 rows",
    lambda rb: rb.add(priorities=[1.0, 2.0], **batch(3)),
    ValueError,
    "priorities",
    per_buffer,
)
case(
    "per-add-2d",
    PADD,
    "`priorities` of shape `(1, 2)`",
    lambda rb: rb.add(priorities=[[1.0, 2.0]], **batch()),
    ValueError,
    "priorities",
    per_buffer,
    echo="(1, 2)",
)
case(
    "per-add-complex",
    PADD,
    "`priorities=1+1j`",
    lambda rb: rb.add(priorities=1 + 1j, **one()),
    TypeError,
    "priorities",
    per_buffer,
    echo="1j",
)
case(
    "per-add-str",
    PADD,
    "`priorities='high'`",
    lambda rb: rb.add(priorities="high", **one()),
    TypeError,
    "priorities",
    per_buffer,
    echo="'high'",
)
case(
    "per-add-numeric-str",
    PADD,
    "`priorities=['1', '2']`",
    lambda rb: rb.add(priorities=["1", "2"], **batch()),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "per-add-none-inside",
    PADD,
    "`priorities=[None, 1.0]`",
    lambda rb: rb.add(priorities=[None, 1.0], **batch()),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "per-add-huge",
    PADD,
    "`priorities=1e308` with `alpha=1` (the sums could overflow)",
    lambda rb: rb.add(priorities=1e308, **one()),
    ValueError,
    "priorities",
    lambda: per_buffer(alpha=1.0),
    echo="1e+308",
)
case(
    "per-add-bool",
    PADD,
    "`priorities=True`",
    lambda rb: rb.add(priorities=True, **one()),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "per-add-hidden-field",
    PADD,
    "`_priority=1.0` as a field",
    lambda rb: rb.add(_priority=1.0, **one()),
    ValueError,
    "_priority",
    per_buffer,
)
case(
    "per-add-field-error",
    PADD,
    "valid priorities, `act=300`",
    lambda rb: rb.add(priorities=2.0, **{**one(), "act": 300}),
    ValueError,
    "'act'",
    per_buffer,
)

# PrioritizedReplayBuffer.sample
PSAMPLE = "PrioritizedReplayBuffer.sample"
case("per-sample-zero", PSAMPLE, "`batch_size=0`", lambda rb: rb.sample(0), ValueError, "batch_size", per_buffer)
case("per-sample-float", PSAMPLE, "`batch_size=2.0`", lambda rb: rb.sample(2.0), TypeError, "batch_size", per_buffer)
case(
    "per-beta-negative",
    PSAMPLE,
    "`beta=-0.4`",
    lambda rb: rb.sample(4, beta=-0.4),
    ValueError,
    "beta",
    per_buffer,
    echo="-0.4",
)
case(
    "per-beta-nan", PSAMPLE, "`beta=nan`", lambda rb: rb.sample(4, beta=NAN), ValueError, "beta", per_buffer, echo="nan"
)
case(
    "per-beta-inf", PSAMPLE, "`beta=inf`", lambda rb: rb.sample(4, beta=INF), ValueError, "beta", per_buffer, echo="inf"
)
case(
    "per-beta-str",
    PSAMPLE,
    "`beta='0.4'`",
    lambda rb: rb.sample(4, beta="0.4"),
    TypeError,
    "beta",
    per_buffer,
    echo="'0.4'",
)
case("per-beta-none", PSAMPLE, "`beta=None`", lambda rb: rb.sample(4, beta=None), TypeError, "beta", per_buffer)
case("per-sample-empty", PSAMPLE, "an empty buffer", lambda rb: rb.sample(4), ValueError, "empty buffer", empty_per)
case(
    "per-sample-zero-mass",
    PSAMPLE,
    "every priority 0 with `eps=0`",
    lambda rb: rb.sample(2),
    ValueError,
    "priority",
    per_zero_mass,
)

# PrioritizedReplayBuffer.update_priorities
UPD = "PrioritizedReplayBuffer.update_priorities"
case(
    "upd-index-stored",
    UPD,
    "index 6 with 6 rows stored",
    lambda rb: rb.update_priorities([0, 6], [1.0, 1.0]),
    ValueError,
    "indexes",
    per_buffer,
    echo="6",
)
case(
    "upd-index-capacity",
    UPD,
    "index `10**6`",
    lambda rb: rb.update_priorities(np.array([10**6]), np.array([1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="1000000",
)
case(
    "upd-index-negative",
    UPD,
    "index -1",
    lambda rb: rb.update_priorities(np.array([-1, 2]), np.array([1.0, 1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="-1",
)
case(
    "upd-index-uint64-huge",
    UPD,
    "index `2**63` as `uint64`",
    lambda rb: rb.update_priorities(np.array([2**63], np.uint64), np.array([1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="9223372036854775808",
)
case(
    "upd-index-float",
    UPD,
    "`indexes=[0.0, 1.0]` (floats)",
    lambda rb: rb.update_priorities(np.array([0.0, 1.0]), np.array([1.0, 1.0])),
    TypeError,
    "indexes",
    per_buffer,
    echo="float64",
)
case(
    "upd-index-bool",
    UPD,
    "`indexes=[True, False]`",
    lambda rb: rb.update_priorities(np.array([True, False]), np.array([1.0, 1.0])),
    TypeError,
    "indexes",
    per_buffer,
)
case(
    "upd-index-str",
    UPD,
    "`indexes=['0']`",
    lambda rb: rb.update_priorities(["0"], [1.0]),
    TypeError,
    "indexes",
    per_buffer,
)
case(
    "upd-index-2d",
    UPD,
    "`indexes` of shape `(2, 1)`",
    lambda rb: rb.update_priorities(np.array([[0], [1]]), np.array([1.0, 1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="(2, 1)",
)
case(
    "upd-nan",
    UPD,
    "`priorities=[1, nan]`",
    lambda rb: rb.update_priorities(np.array([0, 1]), np.array([1.0, NAN])),
    ValueError,
    "priorities",
    per_buffer,
    echo="nan",
)
case(
    "upd-inf",
    UPD,
    "`priorities=[inf]`",
    lambda rb: rb.update_priorities([3], [INF]),
    ValueError,
    "priorities",
    per_buffer,
    echo="inf",
)
case(
    "upd-negative",
    UPD,
    "`priorities=[-1]`",
    lambda rb: rb.update_priorities(np.array([1]), np.array([-1.0])),
    ValueError,
    "priorities",
    per_buffer,
    echo="-1.0",
)
case(
    "upd-length",
    UPD,
    "3 indexes, 2 priorities",
    lambda rb: rb.update_priorities(np.array([0, 1, 2]), np.array([1.0, 2.0])),
    ValueError,
    "priorities",
    per_buffer,
)
case(
    "upd-priorities-2d",
    UPD,
    "`priorities` of shape `(2, 1)`",
    lambda rb: rb.update_priorities(np.array([0, 1]), np.array([[1.0], [2.0]])),
    ValueError,
    "priorities",
    per_buffer,
    echo="(2, 1)",
)
case(
    "upd-complex",
    UPD,
    "`priorities=[1+1j]`",
    lambda rb: rb.update_priorities(np.array([0]), np.array([1 + 1j])),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "upd-huge",
    UPD,
    "`priorities=[1e308]` with `alpha=1`",
    lambda rb: rb.update_priorities(np.array([0]), np.array([1e308])),
    ValueError,
    "priorities",
    lambda: per_buffer(alpha=1.0),
)
case(
    "upd-bool",
    UPD,
    "`priorities=[True, False]`",
    lambda rb: rb.update_priorities(np.array([0, 1]), np.array([True, False])),
    TypeError,
    "priorities",
    per_buffer,
)

# PrioritizedReplayBuffer.get_priorities
GET = "PrioritizedReplayBuffer.get_priorities"
case(
    "get-index-range",
    GET,
    "index 6 with 6 rows stored",
    lambda rb: rb.get_priorities([6]),
    ValueError,
    "indexes",
    per_buffer,
    echo="6",
)
case(
    "get-index-negative",
    GET,
    "index -2",
    lambda rb: rb.get_priorities([-2]),
    ValueError,
    "indexes",
    per_buffer,
    echo="-2",
)
case("get-index-float", GET, "`indexes=[1.5]`", lambda rb: rb.get_priorities([1.5]), TypeError, "indexes", per_buffer)
case(
    "get-index-2d", GET, "`indexes=[[0, 1]]`", lambda rb: rb.get_priorities([[0, 1]]), ValueError, "indexes", per_buffer
)

# LaBERmean / LaBERlazy / LaBERmax (...)
case("laber-batch-zero", "LaBERmean(...)", "`batch_size=0`", lambda _: LaBERmean(0), ValueError, "batch_size", echo="0")
case(
    "laber-batch-negative",
    "LaBERlazy(...)",
    "`batch_size=-32`",
    lambda _: LaBERlazy(-32),
    ValueError,
    "batch_size",
    echo="-32",
)
case(
    "laber-batch-float",
    "LaBERmax(...)",
    "`batch_size=32.0`",
    lambda _: LaBERmax(32.0),  # type: ignore[arg-type]
    TypeError,
    "batch_size",
    echo="32.0",
)
case("laber-batch-str", "LaBERmean(...)", "`batch_size='32'`", lambda _: LaBERmean("32"), TypeError, "batch_size")  # type: ignore[arg-type]
case("laber-batch-bool", "LaBERlazy(...)", "`batch_size=True`", lambda _: LaBERlazy(True), TypeError, "batch_size")
case("laber-m-zero", "LaBERmean(...)", "`m=0`", lambda _: LaBERmean(32, 0), ValueError, "m=", echo="0")
case("laber-m-float", "LaBERmax(...)", "`m=2.5`", lambda _: LaBERmax(32, 2.5), TypeError, "m=", echo="2.5")  # type: ignore[arg-type]
case("laber-eps-negative", "LaBERmean(...)", "`eps=-1e-6`", lambda _: LaBERmean(32, eps=-1e-6), ValueError, "eps")
case("laber-eps-nan", "LaBERlazy(...)", "`eps=nan`", lambda _: LaBERlazy(32, eps=NAN), ValueError, "eps", echo="nan")
case("laber-eps-str", "LaBERmax(...)", "`eps='0'`", lambda _: LaBERmax(32, eps="0"), TypeError, "eps")  # type: ignore[arg-type]
case("laber-rng-str", "LaBERmean(...)", "`rng='0'`", lambda _: LaBERmean(32, rng="0"), TypeError, "rng")  # type: ignore[arg-type]
case("laber-rng-negative", "LaBERmax(...)", "`rng=-3`", lambda _: LaBERmax(32, rng=-3), ValueError, "rng", echo="-3")
case("laber-shuffle-int", "LaBERlazy(...)", "`shuffle=1`", lambda _: LaBERlazy(32, shuffle=1), TypeError, "shuffle")  # type: ignore[arg-type]
case(
    "laber-check-values-str",
    "LaBERmean(...)",
    "`check_values='yes'`",
    lambda _: LaBERmean(32, check_values="yes"),  # type: ignore[arg-type]
    TypeError,
    "check_values",
)

# LaBER __call__
CALL = "LaBERmean(...)(priorities=..., **arrays)"
case(
    "call-length",
    CALL,
    "7 priorities for `m*batch_size=8`",
    lambda s: s(priorities=np.ones(7)),
    ValueError,
    "priorities",
    sampler,
    echo="7",
)
case(
    "call-length-list",
    "LaBERlazy(...)(...)",
    "a list of 9 priorities for 8",
    lambda s: s(priorities=[1.0] * 9),
    ValueError,
    "priorities",
    lambda: sampler(LaBERlazy),
)
case(
    "call-nan",
    CALL,
    "a NaN priority",
    lambda s: s(priorities=np.array([1.0] * 7 + [NAN])),
    ValueError,
    "priorities",
    sampler,
    echo="nan",
)
case(
    "call-inf",
    "LaBERmax(...)(...)",
    "an infinite priority",
    lambda s: s(priorities=np.array([INF] + [1.0] * 7, dtype=np.float32)),
    ValueError,
    "priorities",
    lambda: sampler(LaBERmax),
    echo="inf",
)
case(
    "call-negative",
    CALL,
    "a priority of -1",
    lambda s: s(priorities=np.array([1.0, -1.0] * 4)),
    ValueError,
    "priorities",
    sampler,
    echo="-1",
)
case(
    "call-all-zero",
    CALL,
    "all-zero priorities, `eps=0`",
    lambda s: s(priorities=np.zeros(8)),
    ValueError,
    "priorities",
    lambda: sampler(eps=0.0),
    echo="eps=0.0",
)
case(
    "call-overflow",
    CALL,
    "priorities of `1e308` (the sum overflows)",
    lambda s: s(priorities=np.full(8, 1e308)),
    ValueError,
    "priorities",
    sampler,
)
case(
    "call-2d",
    CALL,
    "priorities of shape `(8, 1)`",
    lambda s: s(priorities=np.ones((8, 1))),
    ValueError,
    "priorities",
    sampler,
    echo="(8, 1)",
)
case(
    "call-str",
    CALL,
    "priorities of strings",
    lambda s: s(priorities=["1"] * 8),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-complex",
    CALL,
    "complex priorities",
    lambda s: s(priorities=np.ones(8, dtype=complex)),
    TypeError,
    "priorities",
    sampler,
    echo="complex128",
)
case(
    "call-bool",
    CALL,
    "bool priorities",
    lambda s: s(priorities=np.ones(8, dtype=bool)),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-ragged",
    CALL,
    "ragged priorities",
    lambda s: s(priorities=[[1.0], [1.0, 2.0]]),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-missing",
    CALL,
    "no `priorities`",
    lambda s: s(obs=np.ones(8)),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-extra-indexes",
    CALL,
    "an extra array named `indexes`",
    lambda s: s(priorities=np.ones(8), indexes=np.arange(8)),
    ValueError,
    "'indexes'",
    sampler,
)
case(
    "call-extra-weights",
    "LaBERmax(...)(...)",
    "an extra array named `weights`",
    lambda s: s(priorities=np.ones(8), weights=np.ones(8)),
    ValueError,
    "'weights'",
    lambda: sampler(LaBERmax),
)
case(
    "call-extra-length",
    CALL,
    "an extra array `obs` of 7 rows",
    lambda s: s(priorities=np.ones(8), obs=np.zeros((7, 3))),
    ValueError,
    "'obs'",
    sampler,
    echo="(7, 3)",
)
case(
    "call-extra-0d",
    CALL,
    "an extra array `obs=3.0` (0-d)",
    lambda s: s(priorities=np.ones(8), obs=3.0),
    ValueError,
    "'obs'",
    sampler,
)
case(
    "call-extra-list-length",
    "LaBERlazy(...)(...)",
    "an extra list `act` of 3 items",
    lambda s: s(priorities=[1.0] * 8, act=[0, 1, 2]),
    ValueError,
    "'act'",
    lambda: sampler(LaBERlazy),
)

# laber_subsample
LS = "laber_subsample"
case(
    "ls-variant",
    LS,
    "`variant='median'`",
    lambda g: laber_subsample(np.ones(4), 2, variant="median", rng=g),  # type: ignore[arg-type]
    ValueError,
    "variant",
    generator,
    echo="'median'",
)
case(
    "ls-batch-zero",
    LS,
    "`batch_size=0`",
    lambda g: laber_subsample(np.ones(4), 0, rng=g),
    ValueError,
    "batch_size",
    generator,
)
case(
    "ls-empty",
    LS,
    "`priorities=[]`",
    lambda g: laber_subsample([], 2, rng=g),
    ValueError,
    "priorities",
    generator,
)
case(
    "ls-eps-negative",
    LS,
    "`eps=-1.0`",
    lambda g: laber_subsample(np.ones(4), 2, eps=-1.0, rng=g),
    ValueError,
    "eps",
    generator,
    echo="-1.0",
)
case(
    "ls-nan",
    LS,
    "a NaN priority, `rng=` a Generator",
    lambda g: laber_subsample(np.array([1.0, NAN, 2.0]), 2, rng=g),
    ValueError,
    "priorities",
    generator,
    echo="nan",
)
case(
    "ls-2d",
    LS,
    "priorities of shape `(2, 2)`",
    lambda g: laber_subsample(np.ones((2, 2)), 2, rng=g),
    ValueError,
    "priorities",
    generator,
)
case(
    "ls-extra-weights",
    LS,
    "an extra array named `weights`",
    lambda g: laber_subsample(np.ones(4), 2, rng=g, weights=np.ones(4)),
    ValueError,
    "'weights'",
    generator,
)
case(
    "ls-extra-length",
    LS,
    "an extra array `obs` of 3 rows for 4 priorities",
    lambda g: laber_subsample(np.ones(4), 2, rng=g, obs=np.ones(3)),
    ValueError,
    "'obs'",
    generator,
)
case(
    "ls-shuffle-none",
    LS,
    "`shuffle=None`",
    lambda g: laber_subsample(np.ones(4), 2, rng=g, shuffle=None),  # type: ignore[arg-type]
    TypeError,
    "shuffle",
    generator,
)

# per_laber_subsample
PLS = "per_laber_subsample"
case(
    "pls-missing-indexes",
    PLS,
    "`large_batch` without `indexes`",
    lambda o: per_laber_subsample(o[0], {k: v for k, v in o[1].items() if k != "indexes"}, np.ones(8)),
    ValueError,
    "'indexes'",
    per_large_batch,
)
case(
    "pls-missing-weights",
    PLS,
    "`large_batch` without `weights`",
    lambda o: per_laber_subsample(o[0], {k: v for k, v in o[1].items() if k != "weights"}, np.ones(8)),
    ValueError,
    "'weights'",
    per_large_batch,
)
case(
    "pls-batch-length",
    PLS,
    "a large batch of 6 rows for `m*batch_size=8`",
    lambda o: per_laber_subsample(o[0], {k: v[:6] for k, v in o[1].items()}, np.ones(6)),
    ValueError,
    "m * batch_size",
    per_large_batch,
    echo="6",
)
case(
    "pls-collide-positions",
    PLS,
    "a field named `positions`",
    lambda o: per_laber_subsample(o[0], {**o[1], "positions": np.arange(8)}, np.ones(8)),
    ValueError,
    "'positions'",
    per_large_batch,
)
case(
    "pls-collide-per-weights",
    PLS,
    "a field named `per_weights`",
    lambda o: per_laber_subsample(o[0], {**o[1], "per_weights": np.ones(8)}, np.ones(8)),
    ValueError,
    "'per_weights'",
    per_large_batch,
)
case(
    "pls-collide-laber-weights",
    PLS,
    "a field named `laber_weights`",
    lambda o: per_laber_subsample(o[0], {**o[1], "laber_weights": np.ones(8)}, np.ones(8)),
    ValueError,
    "'laber_weights'",
    per_large_batch,
)
case(
    "pls-priorities-length",
    PLS,
    "7 priorities for 8 rows",
    lambda o: per_laber_subsample(o[0], o[1], np.ones(7)),
    ValueError,
    "priorities",
    per_large_batch,
)
case(
    "pls-priorities-nan",
    PLS,
    "a NaN priority",
    lambda o: per_laber_subsample(o[0], o[1], np.array([NAN] + [1.0] * 7)),
    ValueError,
    "priorities",
    per_large_batch,
    echo="nan",
)
case(
    "pls-field-length",
    PLS,
    "field `obs` of 7 rows in a batch of 8",
    lambda o: per_laber_subsample(o[0], {**o[1], "obs": o[1]["obs"][:7]}, np.ones(8)),
    ValueError,
    "'obs'",
    per_large_batch,
)
case(
    "pls-batch-none",
    PLS,
    "`large_batch=None`",
    lambda o: per_laber_subsample(o[0], None, np.ones(8)),  # type: ignore[arg-type]
    TypeError,
    "large_batch",
    per_large_batch,
)
case(
    "pls-laber-none",
    PLS,
    "`laber=None`",
    lambda o: per_laber_subsample(None, o[1], np.ones(8)),
    TypeError,
    "laber",
    per_large_batch,
)

# SumMinTree
TREE = "SumMinTree"
case("tree-capacity-zero", "SumMinTree(...)", "`capacity=0`", lambda _: SumMinTree(0), ValueError, "capacity", echo="0")
case("tree-capacity-float", "SumMinTree(...)", "`capacity=8.0`", lambda _: SumMinTree(8.0), TypeError, "capacity")  # type: ignore[arg-type]
case(
    "tree-top-size-zero", "SumMinTree(...)", "`top_size=0`", lambda _: SumMinTree(8, top_size=0), ValueError, "top_size"
)
case(
    "tree-fanout-one",
    "SumMinTree(...)",
    "`min_fanout=1`",
    lambda _: SumMinTree(8, min_fanout=1),
    ValueError,
    "min_fanout",
    echo="1",
)
case(
    "tree-update-range",
    "SumMinTree.update",
    "index 8 of 8 leaves",
    lambda t: t.update([1, 8], [1.0, 1.0]),
    ValueError,
    "indexes",
    tree,
    echo="8",
)
case(
    "tree-update-negative-index",
    "SumMinTree.update",
    "index -1",
    lambda t: t.update([-1], [1.0]),
    ValueError,
    "indexes",
    tree,
    echo="-1",
)
case(
    "tree-update-float-index",
    "SumMinTree.update",
    "`indexes=[1.5]`",
    lambda t: t.update([1.5], [1.0]),
    TypeError,
    "indexes",
    tree,
)
case(
    "tree-update-2d-index",
    "SumMinTree.update",
    "`indexes=[[1]]`",
    lambda t: t.update([[1]], [1.0]),
    ValueError,
    "indexes",
    tree,
)
case(
    "tree-update-negative",
    "SumMinTree.update",
    "`values=[-1.0]`",
    lambda t: t.update([2], [-1.0]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-update-nan",
    "SumMinTree.update",
    "`values=[1.0, nan]`",
    lambda t: t.update([1, 2], [1.0, NAN]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-update-inf", "SumMinTree.update", "`values=[inf]`", lambda t: t.update([2], [INF]), ValueError, "values", tree
)
case(
    "tree-update-length",
    "SumMinTree.update",
    "2 indexes, 1 value",
    lambda t: t.update([1, 2], [1.0]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-update-complex",
    "SumMinTree.update",
    "`values=[1+2j]`",
    lambda t: t.update([1], np.array([1 + 2j])),
    TypeError,
    "values",
    tree,
    echo="1.+2.j",
)
case(
    "tree-update-str",
    "SumMinTree.update",
    "`values=['a']`",
    lambda t: t.update([1], ["a"]),
    TypeError,
    "values",
    tree,
    echo="'a'",
)
case(
    "tree-update-none",
    "SumMinTree.update",
    "`values=None`",
    lambda t: t.update([1], None),
    TypeError,
    "values",
    tree,
    echo="None",
)
case(
    "tree-find-nan",
    "SumMinTree.find_prefix_sum",
    "`values=[0.5, nan]`",
    lambda t: t.find_prefix_sum([0.5, NAN]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-find-str",
    "SumMinTree.find_prefix_sum",
    "`values=['a']`",
    lambda t: t.find_prefix_sum(["a"]),
    TypeError,
    "values",
    tree,
    echo="'a'",
)
case(
    "tree-find-no-mass",
    "SumMinTree.find_prefix_sum",
    "a tree of zero mass",
    lambda o: o[0].find_prefix_sum([0.5]),
    ValueError,
    "total mass",
    empty_tree_and_generator,
)
case(
    "tree-sample-batch-zero",
    "SumMinTree.sample_stratified",
    "`batch_size=0`",
    lambda t: t.sample_stratified(0, rng=0),
    ValueError,
    "batch_size",
    tree,
)
case(
    "tree-sample-rng-str",
    "SumMinTree.sample_stratified",
    "`rng='0'`",
    lambda t: t.sample_stratified(2, rng="0"),
    TypeError,
    "rng",
    tree,
)
case(
    "tree-sample-no-mass",
    "SumMinTree.sample_stratified",
    "a tree of zero mass, `rng=` a Generator",
    lambda o: o[0].sample_stratified(2, o[1]),
    ValueError,
    "total mass",
    empty_tree_and_generator,
)
case(
    "tree-leaves-range",
    "SumMinTree.leaves",
    "`indexes=[8]` of 8 leaves",
    lambda t: t.leaves(np.array([8])),
    ValueError,
    "indexes",
    tree,
    echo="8",
)
case(
    "tree-leaves-float",
    "SumMinTree.leaves",
    "`indexes=[1.5]`",
    lambda t: t.leaves(np.array([1.5])),
    TypeError,
    "indexes",
    tree,
)
case(
    "tree-check-indexes-2d",
    "SumMinTree.check_indexes",
    "`indexes=[[0, 1]]`",
    lambda t: t.check_indexes([[0, 1]]),
    ValueError,
    "indexes",
    tree,
)

# checkpoints
LOAD, SAVE = "ReplayBuffer.load_checkpoint", "ReplayBuffer.save_checkpoint"
case(
    "load-missing",
    LOAD,
    "a file that does not exist",
    lambda o: o[0].load_checkpoint(o[1] / "missing.npz"),
    FileNotFoundError,
    "missing.npz",
    files("load-missing"),
)
case(
    "load-not-checkpoint",
    LOAD,
    "an `.npz` that is not a checkpoint",
    lambda o: o[0].load_checkpoint(o[1] / "plain.npz"),
    ValueError,
    "plain.npz",
    files("load-not-checkpoint", _plain_npz),
)
case(
    "load-not-npz",
    LOAD,
    "a text file",
    lambda o: o[0].load_checkpoint(o[1] / "notes.txt"),
    ValueError,
    "notes.txt",
    files("load-not-npz", _text_file),
)
case(
    "load-directory",
    LOAD,
    "a directory",
    lambda o: o[0].load_checkpoint(o[1] / "adir"),
    IsADirectoryError,
    "adir",
    files("load-directory", _a_directory),
)
case(
    "load-other-fields",
    LOAD,
    "a checkpoint of other fields",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "fields",
    files("load-other-fields", _other_fields),
)
case(
    "load-other-nstep",
    LOAD,
    "a checkpoint with `Nstep['size']=2`",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "N-step",
    files("load-other-nstep", _other_nstep),
)
case(
    "load-truncated",
    LOAD,
    "a checkpoint cut to half its length",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "ckpt.npz",
    files("load-truncated", _truncated),
)
case(
    "load-none",
    LOAD,
    "`path=None`",
    lambda o: o[0].load_checkpoint(None),
    TypeError,
    "path",
    files("load-none"),
)
case(
    "save-directory",
    SAVE,
    "an existing directory as the path",
    lambda o: o[0].save_checkpoint(o[1] / "adir"),
    IsADirectoryError,
    "adir",
    files("save-directory", _a_directory),
)
case(
    "save-no-parent",
    SAVE,
    "a path in a directory that does not exist",
    lambda o: o[0].save_checkpoint(o[1] / "nodir" / "ckpt.npz"),
    FileNotFoundError,
    "nodir",
    files("save-no-parent"),
)
case(
    "save-none",
    SAVE,
    "`path=None`",
    lambda o: o[0].save_checkpoint(None),
    TypeError,
    "path",
    files("save-none"),
)

# set_numba
case(
    "set-numba-str",
    "set_numba",
    "`enabled='yes'`",
    lambda m: laber.set_numba("yes"),  # type: ignore[arg-type]
    TypeError,
    "enabled",
    lambda: _accel,
    echo="'yes'",
)


# ReplayBuffer(mmap_prefix=...), storage=
case(
    "rb-mmap-int",
    RB,
    "`mmap_prefix=3`",
    lambda _: ReplayBuffer(8, ENV, mmap_prefix=3),  # type: ignore[arg-type]
    TypeError,
    "mmap_prefix",
    echo="3",
)
case("rb-mmap-empty", RB, "`mmap_prefix=''`", lambda _: ReplayBuffer(8, ENV, mmap_prefix=""), TypeError, "mmap_prefix")
case(
    "rb-mmap-bytes",
    RB,
    "`mmap_prefix=b'rb'` (bytes)",
    lambda _: ReplayBuffer(8, ENV, mmap_prefix=b"rb"),  # type: ignore[arg-type]
    TypeError,
    "mmap_prefix",
    echo="b'rb'",
)
case(
    "rb-mmap-no-directory",
    RB,
    "`mmap_prefix` in a directory that does not exist",
    lambda d: ReplayBuffer(8, ENV, mmap_prefix=d / "nodir" / "rb"),
    ValueError,
    "mmap_prefix",
    directory("rb-mmap-no-directory"),
    echo="nodir",
)
case(
    "rb-mmap-exists",
    RB,
    "`mmap_prefix` whose records file exists",
    lambda d: ReplayBuffer(8, ENV, mmap_prefix=d / "rb"),
    FileExistsError,
    "rb_records.laber.dat",
    directory("rb-mmap-exists", _existing_file("rb_records.laber.dat")),
)
case(
    "per-mmap-tree-exists",
    PER,
    "`mmap_prefix` whose sum-tree file exists",
    lambda d: PrioritizedReplayBuffer(8, ENV, mmap_prefix=d / "rb"),
    FileExistsError,
    "rb_tree_sum.laber.dat",
    directory("per-mmap-tree-exists", _existing_file("rb_tree_sum.laber.dat")),
)
case(
    "rb-mmap-and-device",
    RB,
    "`mmap_prefix` and `device` together",
    lambda d: ReplayBuffer(8, ENV, mmap_prefix=d / "rb", device="cpu"),
    ValueError,
    "mmap_prefix",
    directory("rb-mmap-and-device"),
    echo="'device': 'cpu'",
)
case(
    "rb-storage-object",
    RB,
    "`storage=object()`",
    lambda _: ReplayBuffer(8, ENV, storage=object()),  # type: ignore[arg-type]
    TypeError,
    "storage",
)

# ReplayBuffer(device=...)
case(
    "rb-device-unknown",
    RB,
    "`device='nope'`",
    lambda _: ReplayBuffer(8, ENV, device="nope"),
    ValueError,
    "device",
    echo="'nope'",
)
case("rb-device-empty", RB, "`device=''`", lambda _: ReplayBuffer(8, ENV, device=""), ValueError, "device", echo="''")
case(
    "rb-device-float",
    RB,
    "`device=1.5`",
    lambda _: ReplayBuffer(8, ENV, device=1.5),
    TypeError,
    "device",
    echo="1.5",
)
case(
    "rb-device-list",
    RB,
    "`device=['cpu']`",
    lambda _: ReplayBuffer(8, ENV, device=["cpu"]),
    TypeError,
    "device",
    echo="['cpu']",
)
case(
    "rb-device-next-of",
    RB,
    "`next_of='obs'` on a torch device",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of="obs", device="cpu"),
    ValueError,
    "next_of",
    echo="'obs'",
)
case(
    "rb-device-stack",
    RB,
    "`stack_compress='obs'` on a torch device",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, 3)}}, stack_compress="obs", device="cpu"),
    ValueError,
    "stack_compress",
)
case(
    "rb-device-uint16",
    RB,
    "a `uint16` field on a torch device",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": np.uint16}}, device="cpu"),
    TypeError,
    "'obs'",
    echo="uint16",
)
case(
    "per-device-uint32",
    PER,
    "a `uint32` field on a torch device",
    lambda _: PrioritizedReplayBuffer(8, {**ENV, "act": {"dtype": np.uint32}}, device="cpu"),
    TypeError,
    "'act'",
    echo="uint32",
)
DEV = "ReplayBuffer(device='cpu')"
case(
    "dev-add-out-of-range",
    f"{DEV}.add",
    "`act=300` for a `uint8` field",
    lambda rb: rb.add(**{**one(), "act": 300}),
    ValueError,
    "'act'",
    device_buffer,
    echo="300",
)
case(
    "dev-add-tensor-shape",
    f"{DEV}.add",
    "`obs` a torch tensor of shape `(4,)`",
    lambda rb: rb.add(**{**one(), "obs": __import__("torch").zeros(4)}),
    ValueError,
    "'obs'",
    device_buffer,
)
case(
    "dev-sample-zero",
    f"{DEV}.sample",
    "`batch_size=0`",
    lambda rb: rb.sample(0),
    ValueError,
    "batch_size",
    device_buffer,
)
case(
    "dev-get-transitions-range",
    f"{DEV}.get_transitions",
    "index 6 with 6 rows stored",
    lambda rb: rb.get_transitions([0, 6]),
    ValueError,
    "indexes",
    device_buffer,
    echo="6",
)
case(
    "dev-get-transitions-float-tensor",
    f"{DEV}.get_transitions",
    "`indexes` a float torch tensor",
    lambda rb: rb.get_transitions(__import__("torch").tensor([0.5])),
    TypeError,
    "indexes",
    device_buffer,
)
case(
    "dev-load-transitions-one-step",
    f"{DEV}.load_transitions",
    "a one-step file into an N-step buffer",
    lambda o: o[0].load_transitions(o[1] / "one.npz"),
    ValueError,
    "one-step",
    files("dev-load-transitions-one-step", _transitions_file("one.npz"), device_buffer),
)
case(
    "dev-load-checkpoint-other-nstep",
    f"{DEV}.load_checkpoint",
    "a checkpoint with `Nstep['size']=2`",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "N-step",
    files("dev-load-checkpoint-other-nstep", _other_nstep, device_buffer),
)
case(
    "dev-load-checkpoint-truncated",
    f"{DEV}.load_checkpoint",
    "a checkpoint cut to half its length",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "ckpt.npz",
    files("dev-load-checkpoint-truncated", _truncated, device_buffer),
)
case(
    "dev-save-checkpoint-no-parent",
    f"{DEV}.save_checkpoint",
    "a path in a directory that does not exist",
    lambda o: o[0].save_checkpoint(o[1] / "nodir" / "ckpt.npz"),
    FileNotFoundError,
    "nodir",
    files("dev-save-checkpoint-no-parent", None, device_buffer),
)
DPER = "PrioritizedReplayBuffer(device='cpu')"
case(
    "dev-per-update-nan",
    f"{DPER}.update_priorities",
    "a NaN priority, as a torch tensor",
    lambda rb: rb.update_priorities(__import__("torch").tensor([0]), __import__("torch").tensor([NAN])),
    ValueError,
    "priorities",
    device_per,
    echo="nan",
)
case(
    "dev-per-update-range",
    f"{DPER}.update_priorities",
    "index 6 with 6 rows stored",
    lambda rb: rb.update_priorities([6], [1.0]),
    ValueError,
    "indexes",
    device_per,
    echo="6",
)
case(
    "dev-per-beta-negative",
    f"{DPER}.sample",
    "`beta=-0.5`",
    lambda rb: rb.sample(4, beta=-0.5),
    ValueError,
    "beta",
    device_per,
    echo="-0.5",
)

# PrioritizedReplayBuffer(check_for_update=...)
case(
    "per-cfu-str",
    PER,
    "`check_for_update='yes'`",
    lambda _: PrioritizedReplayBuffer(8, ENV, check_for_update="yes"),  # type: ignore[arg-type]
    TypeError,
    "check_for_update",
    echo="'yes'",
)
case(
    "per-cfu-int",
    PER,
    "`check_for_update=1`",
    lambda _: PrioritizedReplayBuffer(8, ENV, check_for_update=1),  # type: ignore[arg-type]
    TypeError,
    "check_for_update",
    echo="1",
)
case(
    "per-cfu-none",
    PER,
    "`check_for_update=None`",
    lambda _: PrioritizedReplayBuffer(8, ENV, check_for_update=None),  # type: ignore[arg-type]
    TypeError,
    "check_for_update",
    echo="None",
)
CFU = "PrioritizedReplayBuffer(check_for_update=True).update_priorities"
case(
    "cfu-update-range",
    CFU,
    "index 8 of 8 stored rows",
    lambda rb: rb.update_priorities([1, 8], [1.0, 1.0]),
    ValueError,
    "indexes",
    cfu_per,
    echo="8",
)
case(
    "cfu-update-float-index",
    CFU,
    "`indexes=[1.5]`",
    lambda rb: rb.update_priorities([1.5], [1.0]),
    TypeError,
    "indexes",
    cfu_per,
)
case(
    "cfu-update-nan",
    CFU,
    "a NaN priority for a row not overwritten",
    lambda rb: rb.update_priorities([4, 0], [1.0, NAN]),
    ValueError,
    "priorities",
    cfu_per,
    echo="nan",
)
case(
    "cfu-update-nan-overwritten",
    CFU,
    "a NaN priority for a row overwritten since the sample (skipped, still checked)",
    lambda rb: rb.update_priorities([0], [NAN]),
    ValueError,
    "priorities",
    cfu_per,
    echo="nan",
)
case(
    "cfu-update-length",
    CFU,
    "2 indexes, 1 priority",
    lambda rb: rb.update_priorities([4, 5], [1.0]),
    ValueError,
    "priorities",
    cfu_per,
)
case(
    "cfu-update-huge",
    CFU,
    "priority `1e308` with `alpha=1` (the sums would overflow)",
    lambda rb: rb.update_priorities([4], [1e308]),
    ValueError,
    "priorities",
    cfu_per,
)

# get_transitions, is_Nstep, get_current_episode_len
GT = "ReplayBuffer.get_transitions"
case(
    "gt-range",
    GT,
    "index 6 with 6 rows stored",
    lambda rb: rb.get_transitions([2, 6]),
    ValueError,
    "indexes",
    nstep_buffer,
    echo="6",
)
case("gt-negative", GT, "index -1", lambda rb: rb.get_transitions([-1]), ValueError, "indexes", nstep_buffer, echo="-1")
case("gt-float", GT, "`indexes=[0.5]`", lambda rb: rb.get_transitions([0.5]), TypeError, "indexes", nstep_buffer)
case("gt-bool", GT, "`indexes=[True]`", lambda rb: rb.get_transitions([True]), TypeError, "indexes", nstep_buffer)
case("gt-2d", GT, "`indexes=[[0]]`", lambda rb: rb.get_transitions([[0]]), ValueError, "indexes", nstep_buffer)
case(
    "gt-scalar",
    GT,
    "`indexes=0` (not a sequence)",
    lambda rb: rb.get_transitions(0),
    ValueError,
    "indexes",
    nstep_buffer,
)
case(
    "gt-none",
    GT,
    "`indexes=None`",
    lambda rb: rb.get_transitions(None),
    TypeError,
    "indexes",
    nstep_buffer,
)
case(
    "gt-str",
    GT,
    "`indexes='0'`",
    lambda rb: rb.get_transitions("0"),
    TypeError,
    "indexes",
    nstep_buffer,
)
case(
    "gt-empty-buffer",
    GT,
    "`indexes=[0]`, no row stored (2 pending in N-step)",
    lambda rb: rb.get_transitions([0]),
    ValueError,
    "indexes",
    empty_buffer,
)
case(
    "is-nstep-argument",
    "ReplayBuffer.is_Nstep",
    "an argument (it takes none)",
    lambda rb: rb.is_Nstep(True),
    TypeError,
    "is_Nstep",
    nstep_buffer,
)
case(
    "episode-len-argument",
    "ReplayBuffer.get_current_episode_len",
    "an argument (it takes none)",
    lambda rb: rb.get_current_episode_len(0),
    TypeError,
    "get_current_episode_len",
    nstep_buffer,
)

# save_transitions
ST = "ReplayBuffer.save_transitions"
case(
    "st-safe-str",
    ST,
    "`safe='no'`",
    lambda o: o[0].save_transitions(o[1] / "t.npz", safe="no"),
    TypeError,
    "safe",
    files("st-safe-str"),
    echo="'no'",
)
case(
    "st-safe-int",
    ST,
    "`safe=1`",
    lambda o: o[0].save_transitions(o[1] / "t.npz", safe=1),
    TypeError,
    "safe",
    files("st-safe-int"),
    echo="safe=1",
)
case(
    "st-file-none",
    ST,
    "`file=None`",
    lambda o: o[0].save_transitions(None),
    TypeError,
    "file",
    files("st-file-none"),
    echo="None",
)
case(
    "st-file-int",
    ST,
    "`file=3`",
    lambda o: o[0].save_transitions(3),
    TypeError,
    "file",
    files("st-file-int"),
    echo="file=3",
)
case(
    "st-no-parent",
    ST,
    "a path in a directory that does not exist",
    lambda o: o[0].save_transitions(o[1] / "nodir" / "t.npz"),
    FileNotFoundError,
    "nodir",
    files("st-no-parent"),
)
case(
    "st-directory",
    ST,
    "a directory named `adir.npz` as the path",
    lambda o: o[0].save_transitions(o[1] / "adir"),
    IsADirectoryError,
    "adir.npz",
    files("st-directory", _directory_npz),
)
case(
    "st-text-mode",
    ST,
    "a file object opened in text mode",
    _save_to_text_file,
    TypeError,
    "file",
    files("st-text-mode", _empty_text_file),
)

# load_transitions: files that are wrong for the buffer
LT = "ReplayBuffer.load_transitions"
case(
    "lt-missing",
    LT,
    "a file that does not exist",
    lambda o: o[0].load_transitions(o[1] / "missing.npz"),
    FileNotFoundError,
    "missing.npz",
    files("lt-missing"),
)
case(
    "lt-missing-suffix",
    LT,
    "`'saved'` where save_transitions wrote `saved.npz`",
    lambda o: o[0].load_transitions(o[1] / "saved"),
    FileNotFoundError,
    "saved.npz",
    files("lt-missing-suffix", _no_suffix),
)
case(
    "lt-directory",
    LT,
    "a directory",
    lambda o: o[0].load_transitions(o[1] / "adir"),
    IsADirectoryError,
    "adir",
    files("lt-directory", _a_directory),
)
case(
    "lt-none",
    LT,
    "`file=None`",
    lambda o: o[0].load_transitions(None),
    TypeError,
    "file",
    files("lt-none"),
    echo="None",
)
case(
    "lt-text-mode",
    LT,
    "a file object opened in text mode",
    _load_from_text_file,
    TypeError,
    "binary mode",
    files("lt-text-mode", _text_file),
)
case(
    "lt-not-transitions",
    LT,
    "an `.npz` that is neither a transitions file nor a checkpoint",
    lambda o: o[0].load_transitions(o[1] / "plain.npz"),
    ValueError,
    "plain.npz",
    files("lt-not-transitions", _plain_npz),
)
case(
    "lt-text-file",
    LT,
    "a text file",
    lambda o: o[0].load_transitions(o[1] / "notes.txt"),
    ValueError,
    "notes.txt",
    files("lt-text-file", _text_file),
)
case(
    "lt-npy",
    LT,
    "an `.npy` file (one array)",
    lambda o: o[0].load_transitions(o[1] / "arr.npy"),
    ValueError,
    "arr.npy",
    files("lt-npy", _npy_file),
)
case(
    "lt-truncated",
    LT,
    "a transitions file cut to half its length",
    lambda o: o[0].load_transitions(o[1] / "trunc.npz"),
    ValueError,
    "trunc.npz",
    files("lt-truncated", _truncated_transitions),
)
case(
    "lt-corrupt",
    LT,
    "a transitions file with 40 bytes zeroed in its compressed data",
    lambda o: o[0].load_transitions(o[1] / "corrupt.npz"),
    ValueError,
    "corrupt.npz",
    files("lt-corrupt", _corrupt_transitions),
)
case(
    "lt-version-2",
    LT,
    "a cpprb file of format version 2",
    lambda o: o[0].load_transitions(o[1] / "v2.npz"),
    ValueError,
    "v2.npz",
    files("lt-version-2", _version_2),
    echo="version 2",
)
case(
    "lt-pickled-global",
    LT,
    "a cpprb file whose pickle calls `os.system`",
    lambda o: o[0].load_transitions(o[1] / "evil.npz"),
    ValueError,
    "evil.npz",
    files("lt-pickled-global", _pickled_global),
    echo="system",
)
case(
    "lt-ragged-rows",
    LT,
    "a cpprb file whose fields hold 2 and 3 rows",
    lambda o: o[0].load_transitions(o[1] / "ragged.npz"),
    ValueError,
    "ragged.npz",
    files("lt-ragged-rows", _ragged_rows),
)
case(
    "lt-missing-field",
    LT,
    "a transitions file without `done`",
    lambda o: o[0].load_transitions(o[1] / "nodone.npz"),
    ValueError,
    "nodone.npz",
    files("lt-missing-field", _transitions_file("nodone.npz", done=None), ring_buffer),
    echo="['done']",
)
case(
    "lt-checkpoint-other-fields",
    LT,
    "a laber checkpoint of other fields",
    lambda o: o[0].load_transitions(o[1] / "ckpt.npz"),
    ValueError,
    "ckpt.npz",
    files("lt-checkpoint-other-fields", _other_fields, ring_buffer),
    echo="lacks field(s)",
)
case(
    "lt-nstep-into-one-step",
    LT,
    "an N-step transitions file into a one-step buffer",
    lambda o: o[0].load_transitions(o[1] / "nstep.npz"),
    ValueError,
    "nstep.npz",
    files("lt-nstep-into-one-step", _transitions_file("nstep.npz", nstep=True), ring_buffer),
    echo="N-step",
)
case(
    "lt-one-step-into-nstep",
    LT,
    "a one-step transitions file into an N-step buffer",
    lambda o: o[0].load_transitions(o[1] / "one.npz"),
    ValueError,
    "one.npz",
    files("lt-one-step-into-nstep", _transitions_file("one.npz")),
    echo="one-step",
)
case(
    "lt-cpprb-nstep-into-one-step",
    LT,
    "cpprb 11's file of an N-step buffer into a one-step buffer",
    lambda o: o[0].load_transitions(o[1] / "nstep-partial-safe.npz"),
    ValueError,
    "nstep-partial-safe.npz",
    files("lt-cpprb-nstep-into-one-step", _cpprb_file("nstep-partial-safe.npz"), ring_buffer),
    echo="N-step",
)
case(
    "lt-cpprb-per-into-nstep",
    LT,
    "cpprb 11's file of a one-step PER into an N-step PER",
    lambda o: o[0].load_transitions(o[1] / "per-partial-safe.npz"),
    ValueError,
    "per-partial-safe.npz",
    files("lt-cpprb-per-into-nstep", _cpprb_file("per-partial-safe.npz"), per_buffer),
    echo="one-step",
)
case(
    "lt-cpprb-stack-into-flat",
    LT,
    "cpprb 11's file of `(2, 3)` stacks into a buffer of `obs` `(3,)`",
    lambda o: o[0].load_transitions(o[1] / "stack-partial-safe.npz"),
    ValueError,
    "stack-partial-safe.npz",
    files("lt-cpprb-stack-into-flat", _cpprb_file("stack-partial-safe.npz"), ring_buffer),
    echo="'obs'",
)
case(
    "lt-value-out-of-range",
    LT,
    "a file with `act=303` for a `uint8` field",
    lambda o: o[0].load_transitions(o[1] / "act.npz"),
    ValueError,
    "act.npz",
    files("lt-value-out-of-range", _transitions_file("act.npz", act=np.arange(300, 304)), ring_buffer),
    echo="'act'",
)
case(
    "lt-priorities-too-large",
    "PrioritizedReplayBuffer.load_transitions",
    "a checkpoint holding priority `1e308` into a PER with `alpha=1`",
    lambda o: o[0].load_transitions(o[1] / "huge.npz"),
    ValueError,
    "huge.npz",
    files("lt-priorities-too-large", _huge_priorities, per_alpha_one),
    echo="priorities",
)
case(
    "ck-priorities-too-large",
    LOAD,
    "a checkpoint holding priority `1e308` into a PER with `alpha=1`",
    lambda o: o[0].load_checkpoint(o[1] / "huge.npz"),
    ValueError,
    "huge.npz",
    files("ck-priorities-too-large", _huge_priorities, per_alpha_one),
    echo="priorities",
)

# HindsightReplayBuffer(...)
case(
    "her-size-zero",
    HER,
    "`size=0`",
    lambda _: HindsightReplayBuffer(0, HER_ENV, 4, her_reward),
    ValueError,
    "size",
    echo="0",
)
case(
    "her-env-none",
    HER,
    "`env_dict=None`",
    lambda _: HindsightReplayBuffer(8, None, 4, her_reward),  # type: ignore[arg-type]
    TypeError,
    "env_dict",
)
case(
    "her-env-rew",
    HER,
    "`env_dict` with a field `rew`",
    lambda _: HindsightReplayBuffer(8, {**HER_ENV, "rew": {}}, 4, her_reward),
    ValueError,
    "'rew'",
)
case(
    "her-env-goal",
    HER,
    "`env_dict` with a field `goal`",
    lambda _: HindsightReplayBuffer(8, {**HER_ENV, "goal": {}}, 4, her_reward),
    ValueError,
    "'goal'",
)
case(
    "her-max-episode-len-zero",
    HER,
    "`max_episode_len=0`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 0, her_reward),
    ValueError,
    "max_episode_len",
    echo="0",
)
case(
    "her-max-episode-len-float",
    HER,
    "`max_episode_len=4.0`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4.0, her_reward),  # type: ignore[arg-type]
    TypeError,
    "max_episode_len",
    echo="4.0",
)
case(
    "her-reward-func-none",
    HER,
    "`reward_func=None`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, None),  # type: ignore[arg-type]
    TypeError,
    "reward_func",
)
case(
    "her-goal-func-int",
    HER,
    "`goal_func=3`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, goal_func=3),  # type: ignore[arg-type]
    TypeError,
    "goal_func",
    echo="3",
)
case(
    "her-strategy-unknown",
    HER,
    "`strategy='futur'`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, strategy="futur"),
    ValueError,
    "strategy",
    echo="'futur'",
)
case(
    "her-strategy-int",
    HER,
    "`strategy=1`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, strategy=1),  # type: ignore[arg-type]
    TypeError,
    "strategy",
    echo="1",
)
case(
    "her-goals-negative",
    HER,
    "`additional_goals=-1`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, additional_goals=-1),
    ValueError,
    "additional_goals",
    echo="-1",
)
case(
    "her-goals-float",
    HER,
    "`additional_goals=1.5`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, additional_goals=1.5),  # type: ignore[arg-type]
    TypeError,
    "additional_goals",
    echo="1.5",
)
case(
    "her-prioritized-str",
    HER,
    "`prioritized='yes'`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, prioritized="yes"),  # type: ignore[arg-type]
    TypeError,
    "prioritized",
    echo="'yes'",
)
case(
    "her-nstep",
    HER,
    "`Nstep={'size': 2, ...}`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, Nstep={"size": 2, "rew": "rew"}),
    ValueError,
    "Nstep",
)
case(
    "her-state-unknown",
    HER,
    "`state='s'` (not a field)",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, state="s"),
    ValueError,
    "state",
    echo="'s'",
)
case(
    "her-state-int",
    HER,
    "`state=1`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, state=1),  # type: ignore[arg-type]
    TypeError,
    "state",
    echo="1",
)
case(
    "her-goal-shape-without-func",
    HER,
    "`goal_shape=3` (not the state's `(2,)`) without `goal_func`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, goal_shape=3),
    ValueError,
    "goal_shape",
    echo="3",
)
case(
    "her-goal-shape-negative",
    HER,
    "`goal_shape=-1`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, goal_shape=-1, goal_func=_identity),
    ValueError,
    "goal_shape",
    echo="-1",
)
case(
    "her-alpha-without-per",
    HER,
    "`alpha=0.5` with `prioritized=False`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, prioritized=False, alpha=0.5),
    TypeError,
    "alpha",
)
case(
    "her-rng-str",
    HER,
    "`rng='x'`",
    lambda _: HindsightReplayBuffer(8, HER_ENV, 4, her_reward, rng="x"),  # type: ignore[arg-type]
    TypeError,
    "rng",
    echo="'x'",
)

# HindsightReplayBuffer methods
HADD, HEND = "HindsightReplayBuffer.add", "HindsightReplayBuffer.on_episode_end"
case(
    "her-add-past-max",
    HADD,
    "2 steps when 3 of `max_episode_len=4` are held",
    lambda rb: rb.add(**her_steps(2, 20)),
    ValueError,
    "max_episode_len",
    her_buffer,
    echo="4",
)
case(
    "her-add-one-past-max",
    HADD,
    "a fifth step when 4 of `max_episode_len=4` are held",
    lambda rb: rb.add(**{k: v[0] for k, v in her_steps(1, 20).items()}),
    ValueError,
    "max_episode_len",
    her_full,
    echo="4",
)
case(
    "her-add-missing-field",
    HADD,
    "no `next_obs`",
    lambda rb: rb.add(obs=np.zeros(2), act=1),
    ValueError,
    "next_obs",
    her_buffer,
)
case(
    "her-add-unknown",
    HADD,
    "an unknown field `extra=` (`rew=` is ignored: HER computes the rewards)",
    lambda rb: rb.add(**{k: v[0] for k, v in her_steps(1, 20).items()}, extra=1.0),
    ValueError,
    "'extra'",
    her_buffer,
)
case(
    "her-add-shape",
    HADD,
    "`obs` of shape `(3,)` for `(2,)`",
    lambda rb: rb.add(**{**{k: v[0] for k, v in her_steps(1, 20).items()}, "obs": np.zeros(3)}),
    ValueError,
    "'obs'",
    her_buffer,
)
case(
    "her-goal-wrong-shape",
    HEND,
    "a goal of shape `(3,)` for goals `(2,)`",
    lambda rb: rb.on_episode_end(np.zeros(3)),
    ValueError,
    "goal",
    her_buffer,
    echo="(3,)",
)
case(
    "her-goal-per-step-wrong",
    HEND,
    "goals of shape `(2, 2)` for 3 steps",
    lambda rb: rb.on_episode_end(np.zeros((2, 2))),
    ValueError,
    "goal",
    her_buffer,
    echo="(2, 2)",
)
case(
    "her-goal-str", HEND, "`goal='ab'`", lambda rb: rb.on_episode_end("ab"), TypeError, "goal", her_buffer, echo="'ab'"
)
case(
    "her-goal-none", HEND, "`goal=None`", lambda rb: rb.on_episode_end(None), TypeError, "goal", her_buffer, echo="None"
)
case(
    "her-goal-complex",
    HEND,
    "a complex goal",
    lambda rb: rb.on_episode_end(np.array([1j, 1j])),
    TypeError,
    "goal",
    her_buffer,
    echo="complex",
)
case(
    "her-goal-ragged",
    HEND,
    "`goal=[[1.0], [1.0, 2.0]]` (ragged)",
    lambda rb: rb.on_episode_end([[1.0], [1.0, 2.0]]),
    TypeError,
    "goal",
    her_buffer,
)
case(
    "her-goal-out-of-range",
    HEND,
    "goal `[300, 1]` for `uint8` states",
    lambda rb: rb.on_episode_end(np.array([300, 1])),
    ValueError,
    "'goal'",
    lambda: her_buffer(env=HER_ENV_U8, reward=lambda s, a, g: np.zeros(len(s))),
    echo="300",
)
case(
    "her-reward-func-shape",
    HEND,
    "`reward_func` returns 3 rewards for 15 rows",
    lambda rb: rb.on_episode_end(np.zeros(2)),
    ValueError,
    "reward_func",
    her_bad_reward_shape,
    echo="(3,)",
)
case(
    "her-reward-func-raises",
    HEND,
    "`reward_func` raises",
    lambda rb: rb.on_episode_end(np.zeros(2)),
    ValueError,
    "reward_func",
    her_bad_reward,
)
case(
    "her-goal-func-shape",
    HEND,
    "`goal_func` returns goals of shape `(1,)` for `(2,)`",
    lambda rb: rb.on_episode_end(np.zeros(2)),
    ValueError,
    "goal_func",
    her_bad_goal_shape,
)
case(
    "her-random-goal-func-raises",
    HEND,
    "`strategy='random'`, `goal_func` raises after the draws",
    lambda rb: rb.on_episode_end(np.zeros(2)),
    ValueError,
    "goal_func",
    her_random_bad_goal,
)
case(
    "her-sample-zero",
    "HindsightReplayBuffer.sample",
    "`batch_size=0`",
    lambda rb: rb.sample(0),
    ValueError,
    "batch_size",
    her_buffer,
)
case(
    "her-sample-beta-negative",
    "HindsightReplayBuffer.sample",
    "`beta=-1`",
    lambda rb: rb.sample(2, beta=-1),
    ValueError,
    "beta",
    her_buffer,
    echo="-1",
)
case(
    "her-sample-beta-without-per",
    "HindsightReplayBuffer.sample",
    "`beta=0.4` with `prioritized=False`",
    lambda rb: rb.sample(2, beta=0.4),
    TypeError,
    "beta",
    lambda: her_buffer(prioritized=False),
)
case(
    "her-update-without-per",
    "HindsightReplayBuffer.update_priorities",
    "`prioritized=False`",
    lambda rb: rb.update_priorities([0], [1.0]),
    ValueError,
    "prioritized",
    lambda: her_buffer(prioritized=False),
)
case(
    "her-update-range",
    "HindsightReplayBuffer.update_priorities",
    "index 15 of 15 stored rows",
    lambda rb: rb.update_priorities([15], [1.0]),
    ValueError,
    "indexes",
    her_buffer,
    echo="15",
)
case(
    "her-shuffle-str",
    "HindsightReplayBuffer.get_all_transitions",
    "`shuffle='yes'`",
    lambda rb: rb.get_all_transitions(shuffle="yes"),
    TypeError,
    "shuffle",
    her_buffer,
    echo="'yes'",
)

# ReverseReplayBuffer
REV = "ReverseReplayBuffer(...)"
case(
    "rev-stride-zero",
    REV,
    "`stride=0`",
    lambda _: ReverseReplayBuffer(8, ENV, stride=0),
    ValueError,
    "stride",
    echo="stride=0",
)
case(
    "rev-stride-negative",
    REV,
    "`stride=-2`",
    lambda _: ReverseReplayBuffer(8, ENV, stride=-2),
    ValueError,
    "stride",
    echo="-2",
)
case(
    "rev-stride-float",
    REV,
    "`stride=1.5`",
    lambda _: ReverseReplayBuffer(8, ENV, stride=1.5),  # type: ignore[arg-type]
    TypeError,
    "stride",
    echo="1.5",
)
case(
    "rev-stride-str",
    REV,
    "`stride='2'`",
    lambda _: ReverseReplayBuffer(8, ENV, stride="2"),  # type: ignore[arg-type]
    TypeError,
    "stride",
    echo="'2'",
)
case(
    "rev-stride-bool",
    REV,
    "`stride=True`",
    lambda _: ReverseReplayBuffer(8, ENV, stride=True),
    TypeError,
    "stride",
    echo="True",
)
case(
    "rev-stride-none",
    REV,
    "`stride=None`",
    lambda _: ReverseReplayBuffer(8, ENV, stride=None),  # type: ignore[arg-type]
    TypeError,
    "stride",
    echo="None",
)
case(
    "rev-alpha", REV, "`alpha=0.5` (a PER option)", lambda _: ReverseReplayBuffer(8, ENV, alpha=0.5), TypeError, "alpha"
)
case(
    "rev-sample-empty",
    "ReverseReplayBuffer.sample",
    "an empty buffer",
    lambda rb: rb.sample(2),
    ValueError,
    "empty buffer",
    reverse_empty,
)
case(
    "rev-sample-zero",
    "ReverseReplayBuffer.sample",
    "`batch_size=0`",
    lambda rb: rb.sample(0),
    ValueError,
    "batch_size",
    reverse_buffer,
    echo="0",
)
case(
    "rev-sample-float",
    "ReverseReplayBuffer.sample",
    "`batch_size=2.0`",
    lambda rb: rb.sample(2.0),
    TypeError,
    "batch_size",
    reverse_buffer,
    echo="2.0",
)
case(
    "rev-add-out-of-range",
    "ReverseReplayBuffer.add",
    "`act=300` for a `uint8` field",
    lambda rb: rb.add(**{**one(), "act": 300}),
    ValueError,
    "'act'",
    reverse_buffer,
    echo="300",
)
case(
    "rev-save-safe-int",
    "ReverseReplayBuffer.save_transitions",
    "`safe=1`",
    lambda o: o[0].save_transitions(o[1] / "t.npz", safe=1),
    TypeError,
    "safe",
    files("rev-save-safe-int", None, reverse_buffer),
)
case(
    "rev-load-transitions-missing-field",
    "ReverseReplayBuffer.load_transitions",
    "a transitions file without `done`",
    lambda o: o[0].load_transitions(o[1] / "nodone.npz"),
    ValueError,
    "nodone.npz",
    files("rev-load-transitions-missing-field", _transitions_file("nodone.npz", done=None), reverse_buffer),
)
case(
    "rev-load-checkpoint-other-fields",
    "ReverseReplayBuffer.load_checkpoint",
    "a checkpoint of other fields",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "fields",
    files("rev-load-checkpoint-other-fields", _other_fields, reverse_buffer),
)

# SelectiveReplayBuffer
SEL = "SelectiveReplayBuffer(...)"
case("sel-size-zero", SEL, "`size=0`", lambda _: SelectiveReplayBuffer(0, ENV), ValueError, "size", echo="0")
case(
    "sel-nepisodes-zero",
    SEL,
    "cpprb's form, `Nepisodes=0`",
    lambda _: SelectiveReplayBuffer(8, 3, 1, 0),
    ValueError,
    "Nepisodes",
    echo="0",
)
case(
    "sel-obs-dim-zero",
    SEL,
    "cpprb's form, `obs_dim=0`",
    lambda _: SelectiveReplayBuffer(8, obs_dim=0),
    ValueError,
    "obs_dim",
    echo="0",
)
case(
    "sel-act-dim-float",
    SEL,
    "cpprb's form, `act_dim=1.5`",
    lambda _: SelectiveReplayBuffer(8, 3, 1.5),  # type: ignore[arg-type]
    TypeError,
    "act_dim",
    echo="1.5",
)
case(
    "sel-obs-dim-twice",
    SEL,
    "`obs_dim` as the second argument and as `obs_dim=`",
    lambda _: SelectiveReplayBuffer(8, 3, obs_dim=3),
    TypeError,
    "obs_dim",
)
case(
    "sel-env-with-act-dim",
    SEL,
    "an `env_dict` and `act_dim`",
    lambda _: SelectiveReplayBuffer(8, ENV, 2),
    TypeError,
    "act_dim",
)
case(
    "sel-env-str",
    SEL,
    "`env_dict='obs'`",
    lambda _: SelectiveReplayBuffer(8, "obs"),  # type: ignore[arg-type]
    TypeError,
    "env_dict",
    echo="'obs'",
)
case(
    "sel-episode-len-fraction",
    SEL,
    "cpprb's form, `episode_len=8.5`",
    lambda _: SelectiveReplayBuffer(8.5, 3),
    TypeError,
    "episode_len",
    echo="8.5",
)
case(
    "sel-nstep",
    SEL,
    "`Nstep=...` (not supported)",
    lambda _: SelectiveReplayBuffer(8, ENV, Nstep=NSTEP),  # type: ignore[call-arg]
    TypeError,
    "Nstep",
)
SGET, SDEL = "SelectiveReplayBuffer.get_episode", "SelectiveReplayBuffer.delete_episode"
case("sel-get-negative", SGET, "`i=-1`", lambda rb: rb.get_episode(-1), ValueError, "i=", selective_buffer, echo="-1")
case("sel-get-float", SGET, "`i=1.0`", lambda rb: rb.get_episode(1.0), TypeError, "i=", selective_buffer, echo="1.0")
case("sel-get-bool", SGET, "`i=True`", lambda rb: rb.get_episode(True), TypeError, "i=", selective_buffer, echo="True")
case("sel-get-str", SGET, "`i='0'`", lambda rb: rb.get_episode("0"), TypeError, "i=", selective_buffer, echo="'0'")
case("sel-get-none", SGET, "`i=None`", lambda rb: rb.get_episode(None), TypeError, "i=", selective_buffer, echo="None")
case(
    "sel-delete-negative",
    SDEL,
    "`i=-1`",
    lambda rb: rb.delete_episode(-1),
    ValueError,
    "i=",
    selective_buffer,
    echo="-1",
)
case(
    "sel-delete-float",
    SDEL,
    "`i=np.float64(1.0)`",
    lambda rb: rb.delete_episode(np.float64(1.0)),
    TypeError,
    "i=",
    selective_buffer,
    echo="1.0",
)
case(
    "sel-delete-list", SDEL, "`i=[0]`", lambda rb: rb.delete_episode([0]), TypeError, "i=", selective_buffer, echo="[0]"
)
case(
    "sel-delete-bool",
    SDEL,
    "`i=False`",
    lambda rb: rb.delete_episode(False),
    TypeError,
    "i=",
    selective_buffer,
    echo="False",
)
case(
    "sel-add-out-of-range",
    "SelectiveReplayBuffer.add",
    "`act=300` for a `uint8` field, `done=1`",
    lambda rb: rb.add(**{**one(), "act": 300, "done": 1.0}),
    ValueError,
    "'act'",
    selective_buffer,
    echo="300",
)
case(
    "sel-add-missing-field",
    "SelectiveReplayBuffer.add",
    "only `obs`",
    lambda rb: rb.add(obs=np.zeros(3)),
    ValueError,
    "'done'",
    selective_buffer,
)
case(
    "sel-sample-zero",
    "SelectiveReplayBuffer.sample",
    "`batch_size=0`",
    lambda rb: rb.sample(0),
    ValueError,
    "batch_size",
    selective_buffer,
)

# gymnasium helpers
CED, CBA = "create_env_dict", "create_before_add_func"
case(
    "gym-text",
    CED,
    "a `Text` observation space",
    lambda _: create_env_dict(space_env(lambda sp: sp.Text(5))),
    UnsupportedSpaceError,
    "env.observation_space",
    echo="Text",
)
case(
    "gym-sequence",
    CED,
    "a `Sequence` observation space",
    lambda _: create_env_dict(space_env(lambda sp: sp.Sequence(_box(sp)))),
    UnsupportedSpaceError,
    "env.observation_space",
    echo="Sequence",
)
case(
    "gym-graph",
    CED,
    "a `Graph` observation space",
    lambda _: create_env_dict(space_env(lambda sp: sp.Graph(_box(sp), None))),
    UnsupportedSpaceError,
    "env.observation_space",
    echo="Graph",
)
case(
    "gym-oneof-action",
    CED,
    "a `OneOf` action space",
    lambda _: create_env_dict(space_env(_box, lambda sp: sp.OneOf([sp.Discrete(2), _box(sp)]))),
    UnsupportedSpaceError,
    "env.action_space",
    echo="OneOf",
)
case(
    "gym-nested-text",
    CED,
    "a `Text` inside a `Dict` observation space",
    lambda _: create_env_dict(space_env(lambda sp: sp.Dict(pos=_box(sp), name=sp.Text(3)))),
    UnsupportedSpaceError,
    "env.observation_space['name']",
)
case(
    "gym-empty-tuple",
    CED,
    "an empty `Tuple` observation space",
    lambda _: create_env_dict(space_env(lambda sp: sp.Tuple(()))),
    ValueError,
    "env.observation_space",
    echo="empty",
)
case(
    "gym-empty-dict",
    CED,
    "an empty `Dict` observation space",
    lambda _: create_env_dict(space_env(lambda sp: sp.Dict({}))),
    ValueError,
    "env.observation_space",
    echo="empty",
)
case(
    "gym-colliding-names",
    CED,
    "`Dict` keys `a_0` and `a` (a `Tuple`): both `obs_a_0`",
    lambda _: create_env_dict(space_env(lambda sp: sp.Dict({"a_0": _box(sp), "a": sp.Tuple((_box(sp),))}))),
    ValueError,
    "'obs_a_0'",
)
case(
    "gym-int-type-float",
    CED,
    "`int_type=np.float32`",
    lambda _: create_env_dict(space_env(_box), int_type=np.float32),
    TypeError,
    "int_type",
    echo="float32",
)
case(
    "gym-float-type-int",
    CED,
    "`float_type=np.int32`",
    lambda _: create_env_dict(space_env(_box), float_type=np.int32),
    TypeError,
    "float_type",
    echo="int32",
)
case(
    "gym-int-type-range",
    CED,
    "`Discrete(1000)` with `int_type=np.int8`",
    lambda _: create_env_dict(space_env(_box, lambda sp: sp.Discrete(1000)), int_type=np.int8),
    ValueError,
    "int_type",
    echo="999",
)
case(
    "gym-not-env",
    CED,
    "`env=object()`",
    lambda _: create_env_dict(object()),  # type: ignore[arg-type]
    TypeError,
    "env",
    echo="observation_space",
)
case(
    "gym-before-add-text",
    CBA,
    "a `Text` observation space",
    lambda _: create_before_add_func(space_env(lambda sp: sp.Text(5))),
    UnsupportedSpaceError,
    "env.observation_space",
)
case(
    "gym-before-add-missing-key",
    "create_before_add_func(env)(...)",
    "an `obs` dict without the key `v`",
    lambda _: create_before_add_func(_nested_env())({"pos": np.zeros(3)}, (0, np.zeros(3)), NESTED_OBS, 0.0, 0.0),
    ValueError,
    "obs",
    echo="['v']",
)
case(
    "gym-before-add-not-dict",
    "create_before_add_func(env)(...)",
    "an `obs` list for a `Dict` space",
    lambda _: create_before_add_func(_nested_env())([1, 2], (0, np.zeros(3)), NESTED_OBS, 0.0, 0.0),
    TypeError,
    "obs",
    echo="list",
)
case(
    "gym-before-add-tuple-length",
    "create_before_add_func(env)(...)",
    "an `act` of 1 value for a `Tuple` of 2",
    lambda _: create_before_add_func(_nested_env())(NESTED_OBS, (0,), NESTED_OBS, 0.0, 0.0),
    ValueError,
    "act",
    echo="1 values",
)

# create_buffer
CB = "create_buffer"
case("cb-unknown-keyword", CB, "`foo=1`", lambda _: create_buffer(8, ENV, foo=1), TypeError, "'foo'")
case(
    "cb-misspelt-keyword",
    CB,
    "`prioritised=True`",
    lambda _: create_buffer(8, ENV, prioritised=True),
    TypeError,
    "'prioritised'",
)
case(
    "cb-stride",
    CB,
    "`stride=2` (a ReverseReplayBuffer option)",
    lambda _: create_buffer(8, ENV, stride=2),
    TypeError,
    "'stride'",
)
case(
    "cb-per-unknown-keyword",
    CB,
    "`prioritized=True, beta=0.4` (beta is sample's)",
    lambda _: create_buffer(8, ENV, prioritized=True, beta=0.4),
    TypeError,
    "'beta'",
)
case(
    "cb-alpha-without-per",
    CB,
    "`alpha=0.5` without `prioritized=True`",
    lambda _: create_buffer(8, ENV, alpha=0.5),
    TypeError,
    "alpha",
    echo="0.5",
)
case(
    "cb-prioritized-str",
    CB,
    "`prioritized='yes'`",
    lambda _: create_buffer(8, ENV, prioritized="yes"),  # type: ignore[arg-type]
    TypeError,
    "prioritized",
    echo="'yes'",
)
case(
    "cb-mp-unknown-keyword",
    CB,
    "`backend='SharedMemory', foo=1`",
    lambda _: create_buffer(8, ENV, backend="SharedMemory", foo=1),
    TypeError,
    "'foo'",
    SharedMemorySegments,
)
case(
    "cb-backend-unknown",
    CB,
    "`backend='shm'`",
    lambda _: create_buffer(8, ENV, backend="shm"),
    ValueError,
    "backend",
    SharedMemorySegments,
    echo="'shm'",
)
case(
    "cb-ctx-str",
    CB,
    "`ctx='fork'` (a name, not a context)",
    lambda _: create_buffer(8, ENV, ctx="fork"),
    TypeError,
    "ctx",
    SharedMemorySegments,
    echo="'fork'",
)
case(
    "cb-mmap-with-backend",
    CB,
    "`mmap_prefix` with `backend='SharedMemory'`",
    lambda _: create_buffer(8, ENV, backend="SharedMemory", mmap_prefix="rb"),
    ValueError,
    "mmap_prefix",
    SharedMemorySegments,
)

# train
TR = "train"
case(
    "train-buffer-none",
    TR,
    "`buffer=None`",
    lambda o: run_train(o, buffer=None),
    TypeError,
    "buffer",
    train_setup(),
    echo="None",
)
case("train-env-none", TR, "`env=None`", lambda o: run_train(o, env=None), TypeError, "env", train_setup(), echo="None")
case(
    "train-get-action-none",
    TR,
    "`get_action=None`",
    lambda o: run_train(o, get_action=None),
    TypeError,
    "get_action",
    train_setup(),
)
case(
    "train-update-policy-int",
    TR,
    "`update_policy=3`",
    lambda o: run_train(o, update_policy=3),
    TypeError,
    "update_policy",
    train_setup(),
    echo="3",
)
case(
    "train-max-steps-negative",
    TR,
    "`max_steps=-1`",
    lambda o: run_train(o, max_steps=-1),
    ValueError,
    "max_steps",
    train_setup(),
    echo="-1",
)
case(
    "train-max-steps-float",
    TR,
    "`max_steps=1.5`",
    lambda o: run_train(o, max_steps=1.5),
    TypeError,
    "max_steps",
    train_setup(),
    echo="1.5",
)
case(
    "train-max-episodes-zero",
    TR,
    "`max_episodes=0`",
    lambda o: run_train(o, max_episodes=0),
    ValueError,
    "max_episodes",
    train_setup(),
    echo="0",
)
case(
    "train-batch-size-zero",
    TR,
    "`batch_size=0`",
    lambda o: run_train(o, batch_size=0),
    ValueError,
    "batch_size",
    train_setup(),
    echo="0",
)
case(
    "train-warmups-negative",
    TR,
    "`n_warmups=-1`",
    lambda o: run_train(o, n_warmups=-1),
    ValueError,
    "n_warmups",
    train_setup(),
    echo="-1",
)
case(
    "train-after-step-int",
    TR,
    "`after_step=3`",
    lambda o: run_train(o, after_step=3),
    TypeError,
    "after_step",
    train_setup(),
    echo="3",
)
case(
    "train-logger-str",
    TR,
    "`logger='laber'` (a name, not a Logger)",
    lambda o: run_train(o, logger="laber"),
    TypeError,
    "logger",
    train_setup(),
    echo="'laber'",
)
case(
    "train-seed-negative",
    TR,
    "`seed=-1`",
    lambda o: run_train(o, seed=-1),
    ValueError,
    "seed",
    train_setup(),
    echo="-1",
)
case(
    "train-seed-bool",
    TR,
    "`seed=True`",
    lambda o: run_train(o, seed=True),
    TypeError,
    "seed",
    train_setup(),
    echo="True",
)
case(
    "train-old-reset",
    TR,
    "an env whose `reset` returns the observation only (gym < 0.26)",
    run_train,
    TypeError,
    "env.reset()",
    train_setup(OldResetEnv),
)
case(
    "train-old-step",
    TR,
    "an env whose `step` returns 4 values (gym < 0.26)",
    run_train,
    TypeError,
    "env.step()",
    train_setup(OldStepEnv),
    echo="length 4",
)
case(
    "train-after-step-list",
    TR,
    "an `after_step` that returns a list",
    lambda o: run_train(o, after_step=lambda *args: [1]),
    TypeError,
    "after_step",
    train_setup(UsedEnv),
    echo="list",
)

# MPReplayBuffer / MPPrioritizedReplayBuffer
MPRB, MPPER = "MPReplayBuffer(...)", "MPPrioritizedReplayBuffer(...)"
case(
    "mp-backend-unknown",
    MPRB,
    "`backend='shm'`",
    lambda _: MPReplayBuffer(8, ENV, backend="shm"),
    ValueError,
    "backend",
    SharedMemorySegments,
    echo="'shm'",
)
case(
    "mp-backend-none",
    MPRB,
    "`backend=None`",
    lambda _: MPReplayBuffer(8, ENV, backend=None),  # type: ignore[arg-type]
    TypeError,
    "backend",
    SharedMemorySegments,
    echo="None",
)
case(
    "mp-ctx-str",
    MPRB,
    "`ctx='spawn'` (a name, not a context)",
    lambda _: MPReplayBuffer(8, ENV, ctx="spawn"),
    TypeError,
    "ctx",
    SharedMemorySegments,
    echo="'spawn'",
)
case(
    "mp-ctx-int",
    MPRB,
    "`ctx=3`",
    lambda _: MPReplayBuffer(8, ENV, ctx=3),
    TypeError,
    "ctx",
    SharedMemorySegments,
    echo="3",
)
case(
    "mp-next-of",
    MPRB,
    "`next_of='obs'` (refused with shared memory)",
    lambda _: MPReplayBuffer(8, ENV_NEXT_OF, next_of="obs"),
    ValueError,
    "next_of",
    SharedMemorySegments,
    echo="'obs'",
)
case(
    "mp-stack",
    MPRB,
    "`stack_compress='obs'` (refused with shared memory)",
    lambda _: MPReplayBuffer(8, {"obs": {"shape": (2, 3)}}, stack_compress="obs"),
    ValueError,
    "stack_compress",
    SharedMemorySegments,
)
case(
    "mp-mmap",
    MPRB,
    "`mmap_prefix='rb'`",
    lambda _: MPReplayBuffer(8, ENV, mmap_prefix="rb"),
    ValueError,
    "mmap_prefix",
    SharedMemorySegments,
)
case(
    "mp-storage",
    MPRB,
    "`storage=` a backend",
    lambda _: MPReplayBuffer(8, ENV, storage=__import__("laber.storage").storage.MemoryStorage()),
    ValueError,
    "storage",
    SharedMemorySegments,
)
case(
    "mp-device",
    MPRB,
    "`device='cpu'`",
    lambda _: MPReplayBuffer(8, ENV, device="cpu"),
    ValueError,
    "device",
    SharedMemorySegments,
)
case(
    "mp-size-zero",
    MPRB,
    "`size=0`",
    lambda _: MPReplayBuffer(0, ENV),
    ValueError,
    "size",
    SharedMemorySegments,
    echo="size=0",
)
case(
    "mp-env-empty",
    MPRB,
    "`env_dict={}`",
    lambda _: MPReplayBuffer(8, {}),
    TypeError,
    "env_dict",
    SharedMemorySegments,
)
case(
    "mp-default-dtype",
    MPRB,
    "`default_dtype='nope'` (positional, as in cpprb)",
    lambda _: MPReplayBuffer(8, ENV, "nope"),
    TypeError,
    "default_dtype",
    SharedMemorySegments,
    echo="'nope'",
)
case(
    "mp-unknown-keyword",
    MPRB,
    "`foo=1`",
    lambda _: MPReplayBuffer(8, ENV, foo=1),
    TypeError,
    "'foo'",
    SharedMemorySegments,
)
case(
    "mpper-alpha-negative",
    MPPER,
    "`alpha=-1` (positional, as in cpprb)",
    lambda _: MPPrioritizedReplayBuffer(8, ENV, -1),
    ValueError,
    "alpha",
    SharedMemorySegments,
    echo="-1",
)
case(
    "mpper-eps-str",
    MPPER,
    "`eps='x'` (positional)",
    lambda _: MPPrioritizedReplayBuffer(8, ENV, 0.6, "x"),  # type: ignore[arg-type]
    TypeError,
    "eps",
    SharedMemorySegments,
    echo="'x'",
)
case(
    "mpper-cfu-str",
    MPPER,
    "`check_for_update='x'`",
    lambda _: MPPrioritizedReplayBuffer(8, ENV, check_for_update="x"),
    TypeError,
    "check_for_update",
    SharedMemorySegments,
)
case(
    "mpper-backend-unknown",
    MPPER,
    "`backend='x'`",
    lambda _: MPPrioritizedReplayBuffer(8, ENV, backend="x"),
    ValueError,
    "backend",
    SharedMemorySegments,
    echo="'x'",
)
case(
    "mpper-nstep-size-zero",
    MPPER,
    "`Nstep={'size': 0, ...}`",
    lambda _: MPPrioritizedReplayBuffer(8, ENV, Nstep={**NSTEP, "size": 0}),
    ValueError,
    "Nstep['size']",
    SharedMemorySegments,
)
MPA = "MPReplayBuffer"
case(
    "mp-add-missing-field",
    f"{MPA}.add",
    "no `done`",
    lambda rb: rb.add(**{k: v for k, v in one().items() if k != "done"}),
    ValueError,
    "'done'",
    mp_buffer,
)
case(
    "mp-add-out-of-range",
    f"{MPA}.add",
    "`act=300` in a batch",
    lambda rb: rb.add(**batch(3, act=np.array([1, 300, 2]))),
    ValueError,
    "'act'",
    mp_buffer,
    echo="300",
)
case("mp-sample-zero", f"{MPA}.sample", "`batch_size=0`", lambda rb: rb.sample(0), ValueError, "batch_size", mp_buffer)
case(
    "mp-get-transitions-range",
    f"{MPA}.get_transitions",
    "index 6 with 6 rows stored",
    lambda rb: rb.get_transitions([6]),
    ValueError,
    "indexes",
    mp_buffer,
    echo="6",
)
case(
    "mp-load-transitions-one-step",
    f"{MPA}.load_transitions",
    "a one-step file into an N-step buffer",
    lambda o: o[0].load_transitions(o[1] / "one.npz"),
    ValueError,
    "one.npz",
    files("mp-load-transitions-one-step", _transitions_file("one.npz"), mp_buffer),
)
case(
    "mp-load-checkpoint-other-nstep",
    f"{MPA}.load_checkpoint",
    "a checkpoint with `Nstep['size']=2`",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "N-step",
    files("mp-load-checkpoint-other-nstep", _other_nstep, mp_buffer),
)
case(
    "mp-save-checkpoint-no-parent",
    f"{MPA}.save_checkpoint",
    "a path in a directory that does not exist",
    lambda o: o[0].save_checkpoint(o[1] / "nodir" / "ckpt.npz"),
    FileNotFoundError,
    "nodir",
    files("mp-save-checkpoint-no-parent", None, mp_buffer),
)
MPP = "MPPrioritizedReplayBuffer"
case(
    "mpper-add-priorities-length",
    f"{MPP}.add",
    "2 priorities for 3 rows",
    lambda rb: rb.add(priorities=[1.0, 2.0], **batch(3)),
    ValueError,
    "priorities",
    mp_per,
)
case(
    "mpper-update-range",
    f"{MPP}.update_priorities",
    "index 6 with 6 rows stored",
    lambda rb: rb.update_priorities([0, 6], [1.0, 1.0]),
    ValueError,
    "indexes",
    mp_per,
    echo="6",
)
case(
    "mpper-update-nan",
    f"{MPP}.update_priorities",
    "a NaN priority",
    lambda rb: rb.update_priorities([0, 1], [1.0, NAN]),
    ValueError,
    "priorities",
    mp_per,
    echo="nan",
)
case(
    "mpper-sample-beta-nan",
    f"{MPP}.sample",
    "`beta=nan`",
    lambda rb: rb.sample(4, beta=NAN),
    ValueError,
    "beta",
    mp_per,
    echo="nan",
)
case(
    "mpper-get-priorities-range",
    f"{MPP}.get_priorities",
    "index 6 with 6 rows stored",
    lambda rb: rb.get_priorities([6]),
    ValueError,
    "indexes",
    mp_per,
    echo="6",
)


# ------------------------------------------------------------------------------------------------ the document
_TMP_NAME = re.compile(r"(/\.[^/']+?\.)[^/'.]+(\.tmp)")  # the random part of a temporary file's name
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")  # an object's address in its default repr


def clean(message: str) -> str:
    """``message`` without the parts that change between runs (the scratch directory, temporary file names,
    object addresses)."""
    if _SCRATCH:
        message = message.replace(str(_SCRATCH[0]), "<tmp>")
    return _ADDRESS.sub(" at 0x...>", _TMP_NAME.sub(r"\1XXXXXXXX\2", message))


def outcome(c: Case) -> BaseException | None:
    """Run the case once; the exception it raised (None if it raised nothing). Closes what it opened."""
    obj = None if c.factory is None else c.factory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.call(obj)
    except Exception as exc:
        return exc
    finally:
        release(obj)
    return None


def _cell(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _matches(c: Case, exc: BaseException | None) -> bool:
    if exc is None or type(exc) is not c.error:
        return False
    message = str(exc)
    return c.names in message and (c.echo is None or c.echo in message)


INTRO = """\
# Robustness: what a malformed call does

Every public entry point of laber validates its arguments before it changes anything. For each malformed call
below, laber guarantees:

1. **the exception type**: `TypeError` for a value of the wrong kind (a string, a complex number, `None`),
   `ValueError` for a value of the right kind that is out of range or inconsistent (a negative size, NaN, a
   shape or length that does not match), and the `OSError` subclass of the failure for files;
2. **a message that names the argument** (or the field, or the file), and usually echoes the bad value;
3. **an unchanged object**: a call that raises leaves the buffer, sampler or tree exactly as it was: stored
   rows, counters, the current episode's length, N-step transitions still pending, the `next_of` and
   `stack_compress` side stores, priorities, the sum and min trees, the running maximum priority, the sample
   count and `check_for_update` stamps, the random generator's state, and the files in the target directory;
   whatever the storage (memory-mapped files, a torch device, or shared memory, where the counters and the
   running maximum published to other processes are compared too and the lock must be free again); the cursor
   of a `ReverseReplayBuffer`, the episode boundaries of a `SelectiveReplayBuffer`, the current episode and
   the generator of a `HindsightReplayBuffer`; for `train`, an environment not yet touched when an argument
   is bad; and a failed multi-process constructor leaves no shared memory behind once its exception is gone.

This page is generated from the table of `tests/robustness_table.py` by running every case (numpy backend);
`tests/test_robustness.py` checks all three guarantees for each case, on the numpy and numba backends, and
fails when this page is out of date. Regenerate it with `make robustness-doc`, or
`{regenerate}`.
Messages are cut at 110 characters; `<tmp>` stands for a temporary directory.

Accepted on purpose, so not in the table: an integral float as `size` (`1e6`, as cpprb's examples pass), a 0-d
integer array as a shape, `inf` and NaN given as such to a float field (only values that the field's dtype would
turn into `inf` are refused), torch tensors as priorities, `requires_grad` or not (they are detached), an episode
index past the last episode for `SelectiveReplayBuffer.get_episode` / `delete_episode` (empty arrays / 0, as
cpprb) and numpy integers as episode indexes, a transitions file with fields the buffer lacks (ignored, as cpprb
does), and a `save_transitions` name without `.npz` (the suffix is appended, as cpprb does). An error that
`train` meets while it runs (an `update_policy` that returns None for a prioritized buffer) comes after the
steps it has already stored, so it is not a malformed call either.
"""


def render() -> str:
    """The markdown document, from running every case on the numpy backend."""
    previous = _accel._choice
    laber.set_numba(False)
    try:
        results = [(c, outcome(c)) for c in CASES]
    finally:
        laber.set_numba(previous)
    lines = [INTRO.format(regenerate=REGENERATE), f"{len(CASES)} malformed calls.", ""]
    lines += ["| API | bad input | exception | message |", "|---|---|---|---|"]
    for c, exc in results:
        if _matches(c, exc):
            raised = f"`{c.error.__name__}`" + (" (known defect: see below)" if c.defect else "")
        elif exc is None:
            raised = f"`{c.error.__name__}` (known defect: today no error)"
        elif type(exc) is not c.error:
            raised = f"`{c.error.__name__}` (known defect: today `{type(exc).__name__}`)"
        else:
            raised = f"`{c.error.__name__}` (known defect: the message does not name `{c.names}`)"
        message = "" if exc is None else _cell(clean(str(exc)))
        lines.append(f"| `{c.api}` | {c.description} | {raised} | {message} |")
    defects = [c for c in CASES if c.defect]
    if defects:
        lines += ["", "## Known defects", ""]
        lines += ["Cases that do not meet the guarantees yet (their tests are expected failures until fixed):", ""]
        lines += [f"- `{c.id}` ({c.api}, {c.description}): {c.defect}." for c in defects]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv not in ([], ["--write"]):
        sys.stderr.write(f"usage: python tests/robustness_table.py [--write]  (--write: update {DOC_PATH})\n")
        return 2
    text = render()  # the whole document first: a failure leaves the old file as it was
    if argv:
        DOC_PATH.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
