"""The concurrency contract: every public buffer method may be called from several threads at once.

Writer threads add transitions in which every field of a row carries the same tag (``writer * 10**6 + step``),
a sampler thread checks that every sampled row is whole, and, for ``PrioritizedReplayBuffer``, an updater thread
rewrites priorities. At the end every row added is stored exactly once (the buffer is large enough to keep them
all) and the sum tree equals the tree rebuilt from the stored priorities. Before the buffers took a lock, one
writer and one sampler tore 21 of 305,984 sampled rows (1,526 of 2.66 M with ``next_of``), four writers lost
12,982 of 80,003 rows, and PER with numba raised spurious "total mass is 0.0".

The switch interval is lowered to 10 us so that threads interleave inside calls; nothing here is timed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from laber import PrioritizedReplayBuffer, ReplayBuffer

pytestmark = pytest.mark.usefixtures("storage_backend")  # every storage backend (tests/conftest.py)

WRITERS = 4
STEPS = 1500  # per writer; adds are single or batches of 3
OBS = 6


@pytest.fixture(autouse=True)
def _fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def _make(kind: str, size: int) -> ReplayBuffer:
    env: dict[str, Any] = {"obs": {"shape": OBS}, "act": {"dtype": np.int64}, "rew": {"dtype": np.float64}}
    if kind == "plain":
        return ReplayBuffer(size, {**env, "next_obs": {"shape": OBS}}, rng=0)
    if kind == "next_of":
        return ReplayBuffer(size, env, next_of="obs", rng=0)
    if kind == "nstep":
        return ReplayBuffer(
            size, {**env, "next_obs": {"shape": OBS}}, Nstep={"size": 3, "rew": "rew", "next": "next_obs"}, rng=0
        )
    return PrioritizedReplayBuffer(size, env, next_of="obs", rng=0)


def _row(writer: int, steps: np.ndarray) -> dict[str, np.ndarray]:
    """Rows whose every field carries the tag; next_obs carries the next step's tag (so next_of links)."""
    tag = writer * 10**6 + steps
    k = len(steps)
    return {
        "obs": np.repeat(tag[:, None], OBS, axis=1).astype(np.float32),
        "act": tag.astype(np.int64),
        "rew": tag.astype(np.float64),
        "next_obs": np.repeat(tag[:, None] + 1, OBS, axis=1).astype(np.float32).reshape(k, OBS),
    }


def _check_rows(batch: dict[str, np.ndarray], nstep: bool) -> None:
    """Every row whole: all fields carry one tag (N-step: rew is a discounted sum of 1..3 consecutive tags)."""
    tag = batch["act"].reshape(-1).astype(np.float64)
    np.testing.assert_array_equal(batch["obs"], np.repeat(tag[:, None], OBS, axis=1).astype(np.float32))
    steps = 1 if not nstep else np.rint(np.log(batch["discount"].reshape(-1).astype(np.float64)) / np.log(0.99))
    if not nstep:
        np.testing.assert_array_equal(batch["rew"].reshape(-1), tag)
        np.testing.assert_array_equal(batch["next_obs"][:, 0], (tag + 1).astype(np.float32))
        return
    want = sum(np.where(j < steps, 0.99**j * (tag + j), 0.0) for j in range(3))
    np.testing.assert_allclose(batch["rew"].reshape(-1), want, rtol=1e-12)
    np.testing.assert_array_equal(batch["next_obs"][:, 0], (tag + steps).astype(np.float32))


def _run(threads: list[Callable[[], None]]) -> None:
    errors: list[BaseException] = []

    def guard(fn: Callable[[], None]) -> Callable[[], None]:
        def target() -> None:
            try:
                fn()
            except BaseException as exc:  # re-raised in the main thread below
                errors.append(exc)

        return target

    workers = [threading.Thread(target=guard(fn)) for fn in threads]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    if errors:
        raise errors[0]
    if any(w.is_alive() for w in workers):
        raise RuntimeError("a worker thread did not finish (deadlock?)")


@pytest.mark.parametrize("kind", ["plain", "next_of", "nstep", "per"])
def test_writers_sampler_and_updater_at_once(kind: str, backend: str) -> None:
    nstep = kind == "nstep"
    rb = _make(kind, WRITERS * STEPS + 16)
    done = threading.Event()
    sampled = [0]

    def writer(w: int) -> Callable[[], None]:
        def run() -> None:
            rng = np.random.default_rng(w)
            t = 0
            while t < STEPS:
                k = 1 if rng.random() < 0.5 else min(3, STEPS - t)
                fields = _row(w, np.arange(t, t + k))
                if k == 1:
                    fields = {name: v[0] for name, v in fields.items()}
                rb.add(**fields)
                t += k

        return run

    def sampler() -> None:
        while not done.is_set():
            if len(rb) == 0:
                continue
            batch = rb.sample(64)
            _check_rows(batch, nstep)
            sampled[0] += 64

    def updater() -> None:
        rng = np.random.default_rng(99)
        while not done.is_set():
            if len(rb) == 0 or not isinstance(rb, PrioritizedReplayBuffer):
                continue
            batch = rb.sample(32, beta=0.4)
            rb.update_priorities(batch["indexes"], rng.random(32) * 5)

    writers = WRITERS if not nstep else 1  # N-step windows are per episode: one stream of transitions
    jobs = [writer(w) for w in range(writers)]

    def all_writers() -> None:
        _run(jobs)
        done.set()

    _run([all_writers, sampler, updater])
    rb.on_episode_end()
    stored = rb.get_all_transitions()
    _check_rows(stored, nstep)
    tags = np.sort(stored["act"].reshape(-1))
    want = np.sort(np.concatenate([w * 10**6 + np.arange(STEPS) for w in range(writers)]))
    np.testing.assert_array_equal(tags, want)  # every row added is stored, exactly once
    assert sampled[0] > 0
    if isinstance(rb, PrioritizedReplayBuffer):
        p = rb.get_priorities()
        q = (p + rb.eps) ** rb.alpha
        np.testing.assert_allclose(rb._tree.total(), q.sum(), rtol=1e-9)


@pytest.mark.parametrize("kind", ["plain", "next_of", "per"])
def test_writers_and_sampler_through_wrap_around(kind: str, backend: str) -> None:
    """A buffer much smaller than what is added: rows are overwritten all the time, never torn."""
    rb = _make(kind, 97)
    done = threading.Event()

    def writer(w: int) -> Callable[[], None]:
        def run() -> None:
            for t in range(0, STEPS, 3):
                rb.add(**_row(w, np.arange(t, t + 3)))

        return run

    def sampler() -> None:
        while not done.is_set():
            if len(rb):
                _check_rows(rb.sample(64), nstep=False)

    jobs = [writer(w) for w in range(WRITERS)]

    def all_writers() -> None:
        _run(jobs)
        done.set()

    _run([all_writers, sampler, sampler])
    assert rb.get_stored_size() == 97
    _check_rows(rb.get_all_transitions(), nstep=False)


def test_save_while_adding_writes_a_consistent_checkpoint(tmp_path: Any) -> None:
    """``save_checkpoint`` holds the lock: a checkpoint taken during adds is one state of the buffer."""
    rb = _make("per", 10_000)
    done = threading.Event()
    paths = [tmp_path / f"ckpt{i}.npz" for i in range(5)]

    def writer() -> None:
        for t in range(0, 3000, 3):
            rb.add(**_row(0, np.arange(t, t + 3)))
        done.set()

    def saver() -> None:
        for path in paths:
            rb.save_checkpoint(path)

    _run([writer, saver])
    for path in paths:
        copy = _make("per", 10_000)
        copy.load_checkpoint(path)
        got = copy.get_all_transitions()
        _check_rows(got, nstep=False)
        np.testing.assert_array_equal(got["act"].reshape(-1), np.arange(len(copy)))  # a prefix of the adds
