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

import laber.buffers
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


@pytest.fixture(params=["locked", "unlocked"])
def gathers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Samples gather under the lock (small batches, the default) or every gather runs outside it, as large
    ones do (``laber.buffers.UNLOCKED_GATHER_BYTES`` set to 0)."""
    mode: str = request.param
    if mode == "unlocked":
        monkeypatch.setattr(laber.buffers, "UNLOCKED_GATHER_BYTES", 0, raising=False)
    return mode


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
def test_writers_sampler_and_updater_at_once(kind: str, backend: str, gathers: str) -> None:
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
def test_writers_and_sampler_through_wrap_around(kind: str, backend: str, gathers: str) -> None:
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


# ------------------------------------------------------------------------------------- gathers outside the lock
class _Interrupted(ReplayBuffer):
    """Runs ``during(self)`` once, right after the first gather of a sample: what a writer thread could do while
    an unlocked gather runs (the RLock is re-entrant, so this thread may add meanwhile)."""

    during: Callable[[ReplayBuffer], None] | None = None

    def _gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        out = super()._gather(indices)
        during, self.during = self.during, None
        if during is not None:
            during(self)
        return out


def _skip_on_device(storage_backend: str) -> None:
    if storage_backend == "device":
        pytest.skip("a device buffer gathers under its lock (torch ops, asynchronous on an accelerator)")


def _interrupted(size: int) -> _Interrupted:
    return _Interrupted(
        size,
        {"obs": {"shape": OBS}, "act": {"dtype": np.int64}, "rew": {"dtype": np.float64}, "next_obs": {"shape": OBS}},
        rng=0,
    )


def test_rows_written_during_an_unlocked_gather_are_read_again(
    monkeypatch: pytest.MonkeyPatch, storage_backend: str
) -> None:
    _skip_on_device(storage_backend)
    """Rows overwritten while the gather ran (here: torn on purpose in the gathered copy) are read again under
    the lock; the others keep what the gather read."""
    monkeypatch.setattr(laber.buffers, "UNLOCKED_GATHER_BYTES", 0, raising=False)
    rb = _interrupted(50)
    rb.add(**_row(0, np.arange(50)))  # full: the next adds overwrite ring positions 0, 1, ...
    seen: dict[str, np.ndarray] = {}

    def overwrite(buffer: ReplayBuffer) -> None:
        buffer.add(**_row(1, np.arange(20)))  # positions 0 .. 19 now hold writer 1's rows

    rb.during = overwrite
    original = _Interrupted._gather

    def gather_then_tear(self: _Interrupted, indices: np.ndarray) -> dict[str, np.ndarray]:
        first = self.during is not None
        out = original(self, indices)
        if first:  # what an overlapping write could leave in the copy: new obs, old reward
            hit = indices < 20
            out["obs"][hit] = -1.0
            seen["hit"] = hit.copy()
        return out

    monkeypatch.setattr(_Interrupted, "_gather", gather_then_tear)
    batch = rb.sample(400)
    assert seen["hit"].any() and not seen["hit"].all()
    _check_rows(batch, nstep=False)  # every row whole
    tags = batch["act"].reshape(-1)
    np.testing.assert_array_equal(tags[seen["hit"]] // 10**6, 1)  # the overwritten rows: as they are now
    np.testing.assert_array_equal(tags[~seen["hit"]], batch["indexes"][~seen["hit"]])  # the others: as drawn


def test_a_clear_during_an_unlocked_gather_draws_again(monkeypatch: pytest.MonkeyPatch, storage_backend: str) -> None:
    _skip_on_device(storage_backend)
    monkeypatch.setattr(laber.buffers, "UNLOCKED_GATHER_BYTES", 0, raising=False)
    rb = _interrupted(50)
    rb.add(**_row(0, np.arange(50)))

    def clear_and_refill(buffer: ReplayBuffer) -> None:
        buffer.clear()
        buffer.add(**_row(2, np.arange(5)))

    rb.during = clear_and_refill
    batch = rb.sample(300)
    _check_rows(batch, nstep=False)
    assert (batch["indexes"] < 5).all()  # drawn again from the 5 rows stored now
    np.testing.assert_array_equal(batch["act"].reshape(-1), 2 * 10**6 + batch["indexes"])


@pytest.mark.parametrize("per", [False, True])
def test_writers_proceed_while_a_large_gather_runs(per: bool, storage_backend: str) -> None:
    """A learner's large gather no longer holds the lock: a writer's add completes while it runs (before,
    the add waited for the gather, which here waits for the add: the test would time out)."""
    _skip_on_device(storage_backend)
    width = 4096  # 16 KiB rows: a batch of 64 moves 1 MiB, above laber.buffers.UNLOCKED_GATHER_BYTES
    env = {"obs": {"shape": width}, "act": {"dtype": np.int64}}
    base = PrioritizedReplayBuffer if per else ReplayBuffer
    added = threading.Event()
    entered = threading.Event()

    class Slow(base):  # type: ignore[valid-type, misc]
        waits = 1

        def _gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
            out: dict[str, np.ndarray] = super()._gather(indices)
            if self.waits:
                self.waits = 0
                entered.set()
                if not added.wait(timeout=30):
                    raise RuntimeError("the writer's add did not complete while the gather ran")
            return out

    rb = Slow(100, env, rng=0)
    rb.add(obs=np.zeros((100, width), np.float32), act=np.arange(100))

    def writer() -> None:
        if not entered.wait(timeout=30):
            raise RuntimeError("the sample never started its gather")
        rb.add(obs=np.ones(width, np.float32), act=-1)
        added.set()

    results: list[dict[str, np.ndarray]] = []
    _run([writer, lambda: results.append(rb.sample(64))])
    batch = results[0]
    batch["act"] = batch["act"].reshape(-1)
    overwritten = batch["indexes"] == 0  # the add went to ring position 0: read again, as it is now
    np.testing.assert_array_equal(batch["act"][overwritten], -1)
    np.testing.assert_array_equal(batch["act"][~overwritten], batch["indexes"][~overwritten])
    np.testing.assert_array_equal(batch["obs"][:, 0], np.where(overwritten, 1.0, 0.0))
