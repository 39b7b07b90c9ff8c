"""Every malformed call of the robustness table: exact exception type, a message naming the argument, and the
object unchanged (storage, counters, pending N-step rows, side stores, priorities, trees, generator state).

The table lives in ``tests/robustness_table.py``; ``docs/robustness.md`` is rendered from it, and
``test_document_is_up_to_date`` fails when the two disagree.
"""

from __future__ import annotations

import warnings
from collections import Counter

import pytest

import laber
from _snapshot import assert_unchanged, diff, snapshot
from laber import ReplayBuffer
from robustness_table import CASES, DOC_PATH, REGENERATE, Case, render


def _param(c: Case) -> object:
    marks = [pytest.mark.xfail(strict=True, reason=f"known defect: {c.defect}")] if c.defect else []
    return pytest.param(c, id=c.id, marks=marks)


def test_table_is_large_and_ids_are_unique() -> None:
    assert len(CASES) >= 100
    repeated = [i for i, n in Counter(c.id for c in CASES).items() if n > 1]
    assert not repeated, f"case ids used more than once: {repeated}"


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_malformed_call(case: Case, backend: str) -> None:
    obj = None if case.factory is None else case.factory()
    before = snapshot(obj)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. numpy's overflow warnings on the way to the error
        with pytest.raises(case.error) as info:  # another type propagates and fails the test
            case.call(obj)
    exc = info.value
    assert type(exc) is case.error, f"expected {case.error.__name__} itself, got {type(exc).__name__}: {exc}"
    message = str(exc)
    assert case.names in message, f"the message does not name {case.names!r}: {message!r}"
    if case.echo is not None:
        assert case.echo in message, f"the message does not echo {case.echo!r}: {message!r}"
    assert_unchanged(before, snapshot(obj))


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
    assert lines and all(line.startswith("state['rng']") for line in lines)
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


def test_document_is_up_to_date() -> None:
    want = render()
    have = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    assert have == want, f"{DOC_PATH.name} is out of date: regenerate it with `{REGENERATE}` (or make robustness-doc)"


def test_render_restores_the_backend() -> None:
    laber.set_numba(None)
    before = laber.numba_enabled()
    render()
    assert laber.numba_enabled() == before
