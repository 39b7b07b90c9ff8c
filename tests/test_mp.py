"""Multi-process buffers on shared memory: explorers in other processes add while this process samples.

Every field of a row carries the same tag (``explorer * 10**6 + step``), so a torn row shows; the buffer is large
enough to keep every row, so a lost one shows. Run under ``fork`` and ``spawn``. Nothing here is timed.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import laber.buffers
from laber import MPPrioritizedReplayBuffer, MPReplayBuffer, ReplayBuffer

ENV: dict[str, Any] = {
    "obs": {"shape": 3, "dtype": np.float64},
    "act": {"dtype": np.int64},
    "rew": {"dtype": np.float64},
}
METHODS = ["fork", "spawn"]


def _rows(w: int, steps: np.ndarray) -> dict[str, np.ndarray]:
    tag = w * 10**6 + steps
    return {"obs": np.repeat(tag[:, None], 3, axis=1).astype(np.float64), "act": tag, "rew": tag.astype(np.float64)}


def _explore(rb: MPReplayBuffer, w: int, n: int) -> None:
    t = 0
    while t < n:  # single adds and batches of 3
        k = 1 if t % 4 == 0 else min(3, n - t)
        fields = _rows(w, np.arange(t, t + k))
        rb.add(**({name: v[0] for name, v in fields.items()} if k == 1 else fields))
        t += k


def _explore_prioritized(rb: MPPrioritizedReplayBuffer, w: int, n: int) -> None:
    for t in range(0, n, 2):
        rb.add(**_rows(w, np.arange(t, t + 2)), priorities=np.full(2, 1.0 + w))


def _explore_nstep(rb: MPReplayBuffer, w: int, n: int) -> None:
    for t in range(n):
        rb.add(**{name: v[0] for name, v in _rows(w, np.array([t])).items()}, done=float(t == n - 1))
    rb.on_episode_end()


def _explore_forever(rb: MPReplayBuffer, w: int) -> None:
    t = 0
    while True:
        rb.add(**_rows(w, np.arange(t, t + 8)))
        t += 8


def _hold_the_lock(rb: MPReplayBuffer, ready: Any) -> None:
    with rb._lock:  # a process that dies inside a call
        ready.set()
        time.sleep(600)


def _take_the_lock_unnamed(rb: MPReplayBuffer, ready: Any) -> None:
    rb._storage._lock.acquire()  # killed before it could write its pid: the lock is held by nobody known
    ready.set()
    time.sleep(600)


def _read_priorities(rb: MPPrioritizedReplayBuffer, out: Any) -> None:
    out.put(rb.get_priorities().tolist())


def _check_whole(batch: dict[str, np.ndarray]) -> None:
    tag = batch["act"].reshape(-1).astype(np.float64)
    np.testing.assert_array_equal(batch["obs"], np.repeat(tag[:, None], 3, axis=1))
    np.testing.assert_array_equal(batch["rew"].reshape(-1), tag)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("prioritized", [False, True])
def test_explorers_overwrite_rows_while_the_learner_gathers_outside_the_lock(
    method: str, prioritized: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ring of 97 rows that explorers overwrite all the time; every gather of the learner runs outside the
    lock (``UNLOCKED_GATHER_BYTES = 0``, set in this process, which samples): no sampled row is torn."""
    monkeypatch.setattr(laber.buffers, "UNLOCKED_GATHER_BYTES", 0)
    ctx = mp.get_context(method)
    cls = MPPrioritizedReplayBuffer if prioritized else MPReplayBuffer
    rb = cls(97, ENV, ctx=ctx, rng=0)
    procs = [ctx.Process(target=_explore, args=(rb, w, 3000)) for w in range(2)]
    for p in procs:
        p.start()
    samples = 0
    while any(p.is_alive() for p in procs) or samples == 0:
        if len(rb):
            _check_whole(rb.sample(64))
            samples += 1
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert rb.get_stored_size() == 97
    _check_whole(rb.get_all_transitions())
    rb.close()


def _segments_exist(names: list[str]) -> list[str]:
    return [n for n in names if os.path.exists(f"/dev/shm/{n}")]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("prioritized", [False, True])
def test_explorers_add_while_the_learner_samples(method: str, prioritized: bool) -> None:
    ctx = mp.get_context(method)
    explorers, steps = 3, 1500
    if prioritized:
        rb: MPReplayBuffer | MPPrioritizedReplayBuffer = MPPrioritizedReplayBuffer(
            explorers * steps, ENV, ctx=ctx, rng=0
        )
        target: Any = _explore_prioritized
    else:
        rb = MPReplayBuffer(explorers * steps, ENV, ctx=ctx, rng=0)
        target = _explore
    procs = [ctx.Process(target=target, args=(rb, w, steps)) for w in range(explorers)]
    for p in procs:
        p.start()
    samples = 0
    while any(p.is_alive() for p in procs) or samples == 0:
        if len(rb):
            batch = rb.sample(64)
            _check_whole(batch)
            samples += 1
            if isinstance(rb, MPPrioritizedReplayBuffer):
                rb.update_priorities(batch["indexes"], np.full(64, 0.5))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    stored = rb.get_all_transitions()
    _check_whole(stored)
    want = np.sort(np.concatenate([w * 10**6 + np.arange(steps) for w in range(explorers)]))
    np.testing.assert_array_equal(np.sort(stored["act"].reshape(-1)), want)  # every row, once
    if isinstance(rb, MPPrioritizedReplayBuffer):
        p_ = rb.get_priorities()
        np.testing.assert_allclose(rb._tree.total(), ((p_ + rb.eps) ** rb.alpha).sum(), rtol=1e-9)
        assert rb.get_max_priority() == explorers  # the explorers' largest given priority
    names = rb._storage.segment_names
    rb.close()
    assert _segments_exist(names) == []


@pytest.mark.parametrize("method", METHODS)
def test_priorities_written_by_the_learner_are_what_other_processes_see(method: str) -> None:
    ctx = mp.get_context(method)
    rb = MPPrioritizedReplayBuffer(16, ENV, ctx=ctx)
    rb.add(**_rows(0, np.arange(5)))
    rb.sample(2)  # check_for_update (on by default, as cpprb): rows added since the last sample keep theirs
    rb.update_priorities(np.array([1, 3]), np.array([7.0, 9.0]))
    queue = ctx.Queue()
    p = ctx.Process(target=_read_priorities, args=(rb, queue))
    p.start()
    seen = queue.get(timeout=60)
    p.join(timeout=60)
    assert seen == [1.0, 7.0, 1.0, 9.0, 1.0]
    # and the learner's next sample follows them: rows 1 and 3 hold 16/19.5 of the mass at alpha=1
    rb2 = MPPrioritizedReplayBuffer(16, ENV, alpha=1.0, eps=0.0, ctx=ctx, rng=0)
    rb2.add(**_rows(0, np.arange(4)), priorities=np.array([0.0, 1.0, 0.0, 3.0]))
    idx = rb2.sample(4000, beta=0.0)["indexes"]
    assert set(np.unique(idx).tolist()) == {1, 3}
    rb.close()
    rb2.close()


@pytest.mark.parametrize("method", METHODS)
def test_nstep_per_explorer(method: str) -> None:
    """Each explorer accumulates its own N-step windows; rows from different explorers never mix."""
    ctx = mp.get_context(method)
    env = {**ENV, "done": {}}
    rb = MPReplayBuffer(200, env, ctx=ctx, Nstep={"size": 3, "rew": "rew", "gamma": 0.5})
    procs = [ctx.Process(target=_explore_nstep, args=(rb, w, 20)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    got = rb.get_all_transitions()
    assert len(rb) == 40
    tag = got["act"].reshape(-1)
    step = tag % 10**6
    k = np.minimum(3, 20 - step)
    want = sum(np.where(j < k, 0.5**j * (tag + j), 0.0) for j in range(3))
    np.testing.assert_allclose(got["rew"].reshape(-1), want)
    np.testing.assert_allclose(got["discount"].reshape(-1), 0.5**k)
    rb.close()


def test_a_killed_explorer_leaves_the_buffer_usable() -> None:
    """SIGKILL an explorer in the middle of its adds (possibly holding the lock): the learner carries on."""
    ctx = mp.get_context("fork")
    rb = MPReplayBuffer(4096, ENV, ctx=ctx, rng=0)
    rb._lock._check = 0.05  # notice a dead holder quickly (the default waits 1 s)
    p = ctx.Process(target=_explore_forever, args=(rb, 1))
    p.start()
    deadline = time.monotonic() + 30
    while len(rb) < 512 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert p.pid is not None
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=30)
    rb.add(**_rows(2, np.arange(8)))  # waits for the dead holder's lock at most a moment
    batch = rb.sample(256)
    tags = batch["act"].reshape(-1)
    whole = np.all(batch["obs"] == tags[:, None].astype(np.float64), axis=1)
    assert whole.all()  # the ring was not full: rows the explorer was writing were never published
    assert len(rb) >= 520
    rb.close()


@pytest.mark.parametrize("method", METHODS)
def test_a_process_killed_while_holding_the_lock_does_not_block_the_others(method: str) -> None:
    ctx = mp.get_context(method)
    rb = MPReplayBuffer(64, ENV, ctx=ctx)
    rb._lock._check = 0.05  # notice a dead holder quickly (the default waits 1 s)
    rb.add(**_rows(0, np.arange(4)))
    ready = ctx.Event()
    p = ctx.Process(target=_hold_the_lock, args=(rb, ready))
    p.start()
    assert ready.wait(timeout=60)
    assert p.pid is not None
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=30)
    rb.add(**_rows(0, np.arange(4, 8)))  # takes the dead process's lock over
    assert len(rb) == 8
    _check_whole(rb.get_all_transitions())
    rb.close()


def test_segments_are_released_on_garbage_collection() -> None:
    rb = MPPrioritizedReplayBuffer(64, ENV)
    names = rb._storage.segment_names
    assert names and _segments_exist(names) == names
    del rb
    import gc

    gc.collect()
    assert _segments_exist(names) == []


def test_unsupported_options_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="next_of and stack_compress are not supported with shared memory"):
        MPReplayBuffer(8, ENV, next_of="obs")
    with pytest.raises(ValueError, match="backend must be one of"):
        MPReplayBuffer(8, ENV, backend="nope")
    with pytest.raises(ValueError, match="mmap_prefix cannot be given"):
        MPReplayBuffer(8, ENV, mmap_prefix="x")
    with pytest.raises(TypeError, match="ctx must be a multiprocessing context"):
        MPReplayBuffer(8, ENV, ctx=3)


def test_checkpoint_round_trip_between_shared_and_memory(tmp_path: Path) -> None:
    rb = MPPrioritizedReplayBuffer(32, ENV, rng=0)
    rb.add(**_rows(0, np.arange(10)), priorities=np.arange(10.0))
    rb.save_checkpoint(tmp_path / "ckpt.npz")
    from laber import PrioritizedReplayBuffer

    plain = PrioritizedReplayBuffer(32, ENV)
    plain.load_checkpoint(tmp_path / "ckpt.npz")
    np.testing.assert_array_equal(plain.get_priorities(), np.arange(10.0))
    back = MPPrioritizedReplayBuffer(32, ENV)
    back.load_checkpoint(tmp_path / "ckpt.npz")
    assert len(back) == 10
    np.testing.assert_array_equal(back.get_all_transitions()["act"].reshape(-1), np.arange(10))
    for b in (rb, back):
        b.close()
    assert isinstance(plain, ReplayBuffer)


def test_manager_lock(tmp_path: Path) -> None:
    """``ctx`` may be a started SyncManager, as in cpprb: its lock guards the buffer."""
    with mp.Manager() as manager:
        rb = MPReplayBuffer(100, ENV, ctx=manager)
        p = mp.get_context("spawn").Process(target=_explore, args=(rb, 0, 30))
        p.start()
        p.join(timeout=60)
        assert p.exitcode == 0
        assert len(rb) == 30
        _check_whole(rb.get_all_transitions())
        rb.close()


def test_arrays_outlive_their_buffer_safely() -> None:
    """A view kept after the buffer is gone (a test comparing sum trees did this) must stay valid memory:
    the segment is unlinked, but unmapped only with the last array (it used to segfault)."""
    import gc

    rb = MPPrioritizedReplayBuffer(64, ENV)
    rb.add(**_rows(0, np.arange(10)))
    tree = rb._tree._sum_flat
    total = float(tree.sum())
    names = rb._storage.segment_names
    del rb
    gc.collect()
    assert _segments_exist(names) == []
    assert float(tree.sum()) == total
    tree[:] = 0.0


def test_a_process_killed_before_naming_itself_does_not_block_the_others() -> None:
    """The window between taking the shared lock and writing the holder's pid: a lock held with no holder for
    many waits is taken over (this hung a test run under heavy load before)."""
    ctx = mp.get_context("fork")
    rb = MPReplayBuffer(64, ENV, ctx=ctx)
    rb._lock._check = 0.02  # notice a dead holder quickly (the default waits 1 s)
    ready = ctx.Event()
    p = ctx.Process(target=_take_the_lock_unnamed, args=(rb, ready))
    p.start()
    assert ready.wait(timeout=60)
    assert p.pid is not None
    os.kill(p.pid, signal.SIGKILL)
    p.join(timeout=30)
    rb.add(**_rows(0, np.arange(4)))  # about 40 waits of 0.02 s, then the lock is taken over
    assert len(rb) == 4
    rb.close()


def _add_one(rb: MPReplayBuffer, out: Any) -> None:
    rb.add(**_rows(7, np.arange(1)))
    out.put(len(rb))


def test_fork_while_another_thread_uses_the_buffer() -> None:
    """A child forked while a parent thread is inside a buffer call inherits that thread's hold on the
    in-process lock; the child rebuilds its in-process lock instead of waiting for a thread it does not have
    (every child hung before)."""
    import threading

    ctx = mp.get_context("fork")
    rb = MPReplayBuffer(1000, ENV, ctx=ctx)
    rb.add(**_rows(0, np.arange(100)))
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            rb.sample(64)

    thread = threading.Thread(target=sample)
    thread.start()
    try:
        queue = ctx.Queue()
        for _ in range(5):
            p = ctx.Process(target=_add_one, args=(rb, queue))
            p.start()
            p.join(timeout=30)
            alive = p.is_alive()
            if alive:
                p.kill()
                p.join()
            assert not alive and p.exitcode == 0
            assert queue.get(timeout=10) >= 101
    finally:
        stop.set()
        thread.join()
    assert len(rb) == 105
    rb.close()
