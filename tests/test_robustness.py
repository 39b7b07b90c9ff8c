"""Every malformed call of the robustness table: exact exception type, a message naming the argument, and the
object unchanged (storage, counters, pending N-step rows, side stores, priorities, trees, generator state).

The table lives in ``tests/robustness_table.py``; ``docs/robustness.md`` is rendered from it, and
``test_document_is_up_to_date`` fails when the two disagree.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable

import pytest

import laber
from _snapshot import assert_unchanged, diff, snapshot
from laber import ReplayBuffer
from robustness_table import CASES, DOC_PATH, REGENERATE, Case, release, render


def _param(c: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=f"known defect: {c.defect}")] if c.defect else []
    return pytest.param(c, id=c.id, marks=marks)


def test_table_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 400
    repeated = [i for i, n in Counter(c.id for c in CASES).items() if n > 1]
    assert not repeated, f"case ids used more than once: {repeated}"


def _message(case: Case, obj: object) -> str:
    """Make the call; the message of the ``case.error`` it must raise (another type propagates and fails the
    test). The exception itself is not kept, so what only it still references (a failed constructor's shared
    memory) is released before the object is compared."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. numpy's overflow warnings on the way to the error
        try:
            case.call(obj)
        except case.error as exc:
            assert type(exc) is case.error, f"expected {case.error.__name__} itself, got {type(exc).__name__}: {exc}"
            return str(exc)
    pytest.fail(f"DID NOT RAISE {case.error.__name__}")


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_malformed_call(case: Case, backend: str) -> None:
    obj = None if case.factory is None else case.factory()
    try:
        before = snapshot(obj)
        message = _message(case, obj)
        assert case.names in message, f"the message does not name {case.names!r}: {message!r}"
        if case.echo is not None:
            assert case.echo in message, f"the message does not echo {case.echo!r}: {message!r}"
        assert_unchanged(before, snapshot(obj))
    finally:
        release(obj)  # multi-process buffers: their shared memory is unlinked


def test_snapshot_sees_changes() -> None:
    """The snapshot is not blind: a successful add, sample or priority update shows up in the diff."""
    from robustness_table import one, per_buffer, sampler

    rb = per_buffer()
    before = snapshot(rb)
    rb.add(priorities=7.0, **one(3))  # goes to the pending N-step window only
    lines = diff(before, snapshot(rb))
    assert any("nstep_pending" in line for line in lines)
    before = snapshot(rb)
    assert diff(before, snapshot(rb)) == []  # taking a snapshot changes nothing
    rb.sample(2)
    lines = diff(before, snapshot(rb))
    assert lines and all(line.startswith(("state['rng']", "state['sample_count']")) for line in lines)
    before = snapshot(rb)
    rb.update_priorities([1], [9.0])
    changed = {line.split("]")[0] + "]" for line in diff(before, snapshot(rb))}
    assert {"state['priorities']", "state['tree']", "state['max_priority']", "state['storage']"} <= changed
    s = sampler()
    before = snapshot(s)
    s(priorities=[1.0] * 8)
    assert diff(before, snapshot(s))
    with pytest.raises(AssertionError, match="changed the object's state"):
        assert_unchanged(before, snapshot(s))


def test_snapshot_sees_side_stores() -> None:
    from robustness_table import next_of_buffer, stack_buffer, transitions

    rb: ReplayBuffer = next_of_buffer()
    before = snapshot(rb)
    rb.on_episode_end()
    assert any("next_of" in line for line in diff(before, snapshot(rb)))
    rb = next_of_buffer()
    before = snapshot(rb)
    rb.add(**{k: v for k, v in transitions(1, 90).items()})
    rb.on_episode_end()
    assert any("next_of" in line for line in diff(before, snapshot(rb)))
    rb = stack_buffer()
    assert snapshot(rb)["stack_compress"]["side"]["obs"].shape[0] >= 2


def test_snapshot_sees_new_objects() -> None:
    """The snapshot sees the state of the other buffers and backends: Reverse's cursor, Selective's episodes,
    HER's current episode and generator, shared-memory counters, device rows, check_for_update's stamps."""
    from robustness_table import (
        CountingEnv,
        SharedMemorySegments,
        cfu_per,
        device_per,
        her_buffer,
        her_steps,
        mp_per,
        one,
        reverse_buffer,
        selective_buffer,
    )

    def changed(obj: object, action: Callable[[], object]) -> list[str]:
        before = snapshot(obj)
        action()
        return diff(before, snapshot(obj))

    rev = reverse_buffer()
    assert any("['cursor']" in line for line in changed(rev, lambda: rev.sample(2)))
    sel = selective_buffer()
    assert any("['begins']" in line for line in changed(sel, sel.on_episode_end))
    her = her_buffer()
    assert any(line.startswith("state['episode']") for line in changed(her, lambda: her.add(**her_steps(1, 50))))
    lines = changed(her, lambda: her.on_episode_end([0.0, 0.0]))
    assert {"state['rng']", "state['rows']", "state['episode']"} <= {line.split("]")[0] + "]" for line in lines}
    mp = mp_per()
    try:
        lines = changed(mp, lambda: mp.add(priorities=2.0, **one(60)))
        assert any("['counters']" in line for line in lines) and any("['public']" in line for line in lines)
        assert any("['shared_max']" in line for line in changed(mp, lambda: mp.sample(2)))
        assert snapshot(mp)["backend"]["lock_holder"] == 0
    finally:
        mp.close()
    dev = device_per()
    assert any("['storage_bytes']" in line for line in changed(dev, lambda: dev.add(**one(61))))
    assert any("['host_columns']" in line for line in changed(dev, lambda: dev.update_priorities([0], [7.0])))
    cfu = cfu_per()
    assert any("['row_stamps']" in line for line in changed(cfu, lambda: cfu.add(**one(62))))
    env = CountingEnv()
    assert changed(env, lambda: env.reset(seed=0))
    probe = SharedMemorySegments()
    kept: list[object] = []
    assert any("['segments']" in line for line in changed(probe, lambda: kept.append(mp_per())))
    assert changed(probe, lambda: release(kept)), "release() closes a multi-process buffer"


def test_multi_process_cases_leave_no_shared_memory() -> None:
    """Every case of the multi-process buffers, run as the document runs it, unlinks all its shared memory."""
    from robustness_table import SharedMemorySegments, outcome

    probe = SharedMemorySegments()
    before = snapshot(probe)
    ran = 0
    for c in CASES:
        if c.api.startswith(("MP", "create_buffer")):
            outcome(c)  # the exception is dropped at once
            ran += 1
    assert ran >= 30
    assert_unchanged(before, snapshot(probe))


def test_document_is_up_to_date() -> None:
    want = render()
    have = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    assert have == want, f"{DOC_PATH.name} is out of date: regenerate it with `{REGENERATE}` (or make robustness-doc)"


def test_render_restores_the_backend() -> None:
    laber.set_numba(None)
    before = laber.numba_enabled()
    render()
    assert laber.numba_enabled() == before
