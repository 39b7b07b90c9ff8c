"""ReverseReplayBuffer (order, stride, wrap-around, against cpprb), SelectiveReplayBuffer (episodes, full
buffer, against cpprb) and ReplayBuffer.get_transitions, which both read rows through."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from laber import PrioritizedReplayBuffer, ReplayBuffer, ReverseReplayBuffer, SelectiveReplayBuffer

# ============================================================================================ get_transitions


def test_get_transitions_reads_rows_fresh() -> None:
    rb = ReplayBuffer(4, {"a": {"shape": 2}, "b": {"dtype": np.int16}})
    rb.add(a=np.arange(12).reshape(6, 2), b=np.arange(6))  # wraps: rows 0, 1 hold transitions 4, 5
    out = rb.get_transitions([0, 3, 0, 1])
    assert set(out) == {"a", "b"}
    np.testing.assert_array_equal(out["b"].ravel(), [4, 3, 4, 5])
    np.testing.assert_array_equal(out["a"], [[8, 9], [6, 7], [8, 9], [10, 11]])
    out["a"][:] = -1  # fresh: storage is untouched
    np.testing.assert_array_equal(rb.get_transitions(np.array([0]))["a"], [[8, 9]])
    empty = rb.get_transitions(np.arange(0))
    assert empty["a"].shape == (0, 2) and empty["a"].dtype == np.float32
    assert empty["b"].shape == (0, 1) and empty["b"].dtype == np.int16


def test_get_transitions_with_nstep_and_per() -> None:
    nstep = ReplayBuffer(8, {"r": {}, "d": {}}, Nstep={"size": 2, "rew": "r", "gamma": 0.5})
    nstep.add(r=[1.0, 2.0, 3.0], d=[0, 0, 0])
    nstep.on_episode_end()
    out = nstep.get_transitions([0, 2])
    np.testing.assert_allclose(out["r"].ravel(), [2.0, 3.0])
    np.testing.assert_allclose(out["discount"].ravel(), [0.25, 0.5])
    per = PrioritizedReplayBuffer(8, {"x": {}})
    per.add(x=[5.0, 6.0])
    assert set(per.get_transitions([1])) == {"x"}  # no hidden priority column


@pytest.mark.parametrize(
    ("indexes", "error", "text"),
    [
        ([[0]], ValueError, "1-D"),
        ([0.0], TypeError, "integers"),
        ([True], TypeError, "integers"),
        ([3], ValueError, r"\[0, 3\)"),
        ([-1], ValueError, r"\[0, 3\)"),
        (np.array([2**63], dtype=np.uint64), ValueError, r"\[0, 3\)"),
    ],
)
def test_get_transitions_refuses_bad_indexes(indexes: Any, error: type[Exception], text: str) -> None:
    rb = ReplayBuffer(5, {"x": {}})
    rb.add(x=[1.0, 2.0, 3.0])
    with pytest.raises(error, match="indexes") as info:
        rb.get_transitions(indexes)
    assert info.match(text)
    assert rb.get_stored_size() == 3


# ============================================================================================ Reverse


def _reverse_pair(size: int, stride: int) -> tuple[Any, ReverseReplayBuffer]:
    cpprb = pytest.importorskip("cpprb")
    return cpprb.ReverseReplayBuffer(size, {"a": {}}, stride=stride), ReverseReplayBuffer(
        size, {"a": {}}, stride=stride
    )


def test_reverse_hard_coded_sequence() -> None:
    """Before and after the ring wraps; the values are what cpprb 11.0.0 returns for these calls."""
    rb = ReverseReplayBuffer(10, {"a": {}}, stride=3)
    rb.add(a=np.arange(7))
    got = [rb.sample(4)["a"].ravel().tolist() for _ in range(5)]
    assert got == [[6, 3, 0, 4], [5, 2, 6, 3], [4, 1, 5, 2], [3, 0, 4, 1], [2, 6, 3, 0]]
    rb.add(a=np.arange(7, 16))  # 16 values in 10 rows: rows 0..5 hold 10..15, rows 6..9 hold 6..9
    assert (rb.get_next_index(), rb.get_stored_size()) == (6, 10)
    batches = [rb.sample(4) for _ in range(5)]
    assert [b["a"].ravel().tolist() for b in batches] == [
        [11, 8, 15, 12],  # the cursor only moves back one row: it is 4 (< 2 * stride) behind the next index
        [10, 7, 14, 11],
        [15, 12, 9, 6],  # 6 = 2 * stride behind: restart at the newest row
        [14, 11, 8, 15],
        [13, 10, 7, 14],
    ]
    assert batches[0]["indexes"].tolist() == [1, 8, 5, 2]
    assert batches[0]["indexes"].dtype == np.int64


def test_reverse_closed_form() -> None:
    """Each batch is (c - j * stride) mod S; c is the newest row at first and moves back one row per call."""
    size, stride, batch = 50, 4, 6
    rb = ReverseReplayBuffer(size, {"a": {}}, stride=stride)
    rb.add(a=np.arange(30))
    cursor = 29
    for call in range(2 * stride):
        if call:
            cursor -= 1
        idx = rb.sample(batch)["indexes"]
        np.testing.assert_array_equal(idx, (cursor - stride * np.arange(batch)) % 30)
    assert rb.sample(batch)["indexes"][0] == 29  # 2 * stride rows behind: back to the newest


@pytest.mark.parametrize("stride", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("size", [5, 16, 33])
def test_reverse_matches_cpprb(size: int, stride: int) -> None:
    theirs, ours = _reverse_pair(size, stride)
    rng = np.random.default_rng(size * 100 + stride)
    value = 0
    for _ in range(120):
        k = int(rng.integers(0, size + 1))  # cpprb refuses a batch larger than the buffer
        if k:
            theirs.add(a=np.arange(value, value + k))
            ours.add(a=np.arange(value, value + k))
            value += k
        assert ours.get_next_index() == theirs.get_next_index()
        assert ours.get_stored_size() == theirs.get_stored_size()
        for _ in range(int(rng.integers(1, 4))):
            if ours.get_stored_size():
                batch = int(rng.integers(1, 3 * size))
                np.testing.assert_array_equal(ours.sample(batch)["a"], theirs.sample(batch)["a"])


def test_reverse_matches_cpprb_with_nstep() -> None:
    cpprb = pytest.importorskip("cpprb")
    env = {"obs": {"shape": 2}, "next_obs": {"shape": 2}, "rew": {}, "done": {}}
    kw: dict[str, Any] = {"Nstep": {"size": 3, "rew": "rew", "gamma": 0.9, "next": "next_obs"}}
    theirs = cpprb.ReverseReplayBuffer(20, copy.deepcopy(env), stride=3, **copy.deepcopy(kw))  # cpprb edits them
    ours = ReverseReplayBuffer(20, env, stride=3, **kw)
    rng = np.random.default_rng(5)
    t = 0
    for episode in range(8):
        for step in range(int(rng.integers(2, 7))):
            tr = {"obs": [t, episode], "next_obs": [t + 1, episode], "rew": float(step), "done": 0.0}
            theirs.add(**tr)
            ours.add(**tr)
            t += 1
        theirs.on_episode_end()
        ours.on_episode_end()
        for _ in range(3):
            a, b = theirs.sample(5), ours.sample(5)
            # next_obs left out: cpprb 11.0.0 stores garbage there for windows cut by on_episode_end
            for name in ("obs", "rew", "done"):
                np.testing.assert_allclose(b[name], a[name], rtol=1e-6)


def test_reverse_clear_and_load_restart_the_cursor(tmp_path: Path) -> None:
    rb = ReverseReplayBuffer(10, {"a": {}}, stride=3)
    rb.add(a=np.arange(8))
    for _ in range(3):
        rb.sample(2)
    rb.clear()
    rb.add(a=np.arange(100, 104))
    fresh = ReverseReplayBuffer(10, {"a": {}}, stride=3)
    fresh.add(a=np.arange(100, 104))
    np.testing.assert_array_equal(rb.sample(3)["a"], fresh.sample(3)["a"])  # cpprb would keep its old cursor
    path = tmp_path / "rev.npz"
    rb.save_transitions(path)
    rb.sample(3)
    rb.load_transitions(path)
    other = ReverseReplayBuffer(10, {"a": {}}, stride=3)
    other.load_transitions(path)
    np.testing.assert_array_equal(rb.sample(3)["a"], other.sample(3)["a"])


def test_reverse_pass_through_and_fresh_arrays() -> None:
    rb = ReverseReplayBuffer(6, {"obs": {"shape": 2}, "act": {"dtype": np.int32}}, stride=2)
    assert rb.stride == 2 and rb.get_buffer_size() == 6 and len(rb) == 0
    assert rb.add(obs=[1, 2], act=3) == 0
    rb.add(obs=[[3, 4], [5, 6]], act=[4, 5])
    assert len(rb) == 3 and rb.get_next_index() == 3
    out = rb.sample(2)
    np.testing.assert_array_equal(out["obs"], [[5, 6], [1, 2]])
    out["obs"][:] = 0
    np.testing.assert_array_equal(rb.get_all_transitions()["obs"], [[1, 2], [3, 4], [5, 6]])
    assert "stride=2" in repr(rb)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"stride": 0}, ValueError),
        ({"stride": -3}, ValueError),
        ({"stride": 2.0}, TypeError),
        ({"stride": True}, TypeError),
    ],
)
def test_reverse_bad_stride(kwargs: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match="stride"):
        ReverseReplayBuffer(10, {"a": {}}, **kwargs)


def test_reverse_bad_calls_leave_it_unchanged() -> None:
    rb = ReverseReplayBuffer(10, {"a": {}}, stride=2)
    with pytest.raises(ValueError, match="empty"):
        rb.sample(3)
    rb.add(a=np.arange(5))
    with pytest.raises(ValueError, match="batch_size"):
        rb.sample(0)
    with pytest.raises(TypeError, match="batch_size"):
        rb.sample(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing"):
        rb.add(b=1)
    assert rb.get_stored_size() == 5
    fresh = ReverseReplayBuffer(10, {"a": {}}, stride=2)
    fresh.add(a=np.arange(5))
    for _ in range(4):  # the failed calls did not move the cursor
        np.testing.assert_array_equal(rb.sample(3)["indexes"], fresh.sample(3)["indexes"])


# ============================================================================================ Selective

ENV = {"obs": {"shape": 2}, "act": {"dtype": np.int64}, "rew": {}, "done": {}}


def _step(t: int, done: bool = False) -> dict[str, Any]:
    return {"obs": [t, -t], "act": t, "rew": 0.5 * t, "done": float(done)}


def _steps(ts: list[int], dones: list[int]) -> dict[str, Any]:
    return {
        "obs": np.array([[t, -t] for t in ts], dtype=np.float32),
        "act": np.array(ts),
        "rew": 0.5 * np.array(ts),
        "done": np.array([float(t in dones) for t in ts]),
    }


def _act(batch: dict[str, np.ndarray]) -> list[int]:
    return batch["act"].ravel().tolist()


def test_selective_episodes_get_delete_size() -> None:
    rb = SelectiveReplayBuffer(20, ENV)
    assert rb.get_stored_episode_size() == 0
    for t in range(3):
        rb.add(**_step(t, done=t == 2))  # episode 0: 0 1 2
    assert (rb.get_stored_size(), rb.get_stored_episode_size()) == (3, 1)
    rb.add(**_steps([3, 4, 5, 6], dones=[4]))  # episode 1: 3 4; episode 2 (open): 5 6
    assert rb.get_stored_episode_size() == 3
    assert [_act(rb.get_episode(i)) for i in range(3)] == [[0, 1, 2], [3, 4], [5, 6]]
    np.testing.assert_array_equal(rb.get_episode(1)["obs"], [[3, -3], [4, -4]])
    empty = rb.get_episode(3)
    assert empty["obs"].shape == (0, 2) and empty["act"].dtype == np.int64 and empty["rew"].shape == (0, 1)

    assert rb.delete_episode(0) == 3  # later rows move down
    assert rb.get_stored_size() == 4 and rb.get_next_index() == 4
    assert [_act(rb.get_episode(i)) for i in range(2)] == [[3, 4], [5, 6]]
    assert _act(rb.get_all_transitions()) == [3, 4, 5, 6]
    rb.add(**_step(7, done=True))  # closes the open episode
    assert [_act(rb.get_episode(i)) for i in range(2)] == [[3, 4], [5, 6, 7]]
    assert rb.get_stored_episode_size() == 2
    assert rb.delete_episode(1) == 3  # the last closed episode, nothing open after it
    assert rb.get_stored_episode_size() == 1 and _act(rb.get_all_transitions()) == [3, 4]
    rb.add(**_step(8))
    assert rb.delete_episode(1) == 1  # the open episode
    assert rb.get_stored_episode_size() == 1 and rb.get_stored_size() == 2
    assert rb.delete_episode(1) == 0 and rb.delete_episode(5) == 0  # nothing there
    assert rb.delete_episode(0) == 2
    assert rb.get_stored_size() == 0 and rb.get_stored_episode_size() == 0
    rb.add(**_step(9))
    assert _act(rb.get_episode(0)) == [9]


def test_selective_on_episode_end_and_every_done_of_a_batch() -> None:
    rb = SelectiveReplayBuffer(20, {"x": {}})  # no done field: episodes end at on_episode_end
    rb.on_episode_end()  # nothing open: no-op
    rb.add(x=[1.0, 2.0])
    rb.on_episode_end()
    rb.on_episode_end()
    rb.add(x=3.0)
    assert rb.get_stored_episode_size() == 2
    assert rb.get_episode(1)["x"].ravel().tolist() == [3.0]
    rb2 = SelectiveReplayBuffer(20, ENV)
    rb2.add(**_steps([0, 1, 2, 3, 4], dones=[0, 2, 3]))  # cpprb would register only the first done
    assert [_act(rb2.get_episode(i)) for i in range(4)] == [[0], [1, 2], [3], [4]]


def test_selective_full_buffer_drops_the_rest() -> None:
    rb = SelectiveReplayBuffer(5, ENV)
    rb.add(**_steps([0, 1, 2], dones=[2]))
    with pytest.warns(UserWarning, match="dropped 2 of the 4"):
        assert rb.add(**_steps([3, 4, 5, 6], dones=[4, 6])) == 3
    assert _act(rb.get_all_transitions()) == [0, 1, 2, 3, 4]
    assert rb.get_stored_episode_size() == 2  # the done at 4 fitted; the one at 6 was dropped
    with pytest.warns(UserWarning, match="dropped 1 of the 1"):
        assert rb.add(**_step(7)) == 5  # cpprb also returns the next index, the buffer size
    assert rb.delete_episode(0) == 3  # makes room
    rb.add(**_steps([8, 9, 10], dones=[]))
    assert _act(rb.get_all_transitions()) == [3, 4, 8, 9, 10]
    assert [_act(rb.get_episode(i)) for i in range(2)] == [[3, 4], [8, 9, 10]]


def test_selective_cpprb_form_and_matches_cpprb() -> None:
    cpprb = pytest.importorskip("cpprb")
    theirs = cpprb.SelectiveReplayBuffer(6, 2, 1, Nepisodes=3)
    ours = SelectiveReplayBuffer(6, 2, 1, Nepisodes=3)
    assert ours.get_buffer_size() == theirs.get_buffer_size() == 18
    rng = np.random.default_rng(11)
    t = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the full-buffer warning (cpprb drops silently)
        for _ in range(300):
            op = rng.random()
            if op < 0.6:
                k = int(rng.integers(1, 5))
                done = np.zeros(k)
                if rng.random() < 0.5:
                    done[int(rng.integers(0, k))] = 1.0  # at most one done per batch: cpprb's limit
                tr = {
                    "obs": np.stack([np.arange(t, t + k), -np.arange(t, t + k)], axis=1).astype(float),
                    "act": np.arange(t, t + k, dtype=float),
                    "rew": np.arange(t, t + k) * 0.5,
                    "next_obs": np.stack([np.arange(t, t + k) + 1, np.zeros(k)], axis=1).astype(float),
                    "done": done,
                }
                t += k
                assert ours.add(**tr) == theirs.add(**tr)
            elif op < 0.85:
                i = int(rng.integers(0, 5))
                assert ours.delete_episode(i) == theirs.delete_episode(i)
            elif op < 0.87:
                ours.clear()
                theirs.clear()
            assert ours.get_stored_size() == theirs.get_stored_size()
            assert ours.get_next_index() == theirs.get_next_index()
            assert ours.get_stored_episode_size() == theirs.get_stored_episode_size()
            for i in range(ours.get_stored_episode_size() + 1):
                a, b = theirs.get_episode(i), ours.get_episode(i)
                for name in ("obs", "act", "rew", "next_obs"):
                    np.testing.assert_array_equal(b[name], a[name])
                np.testing.assert_array_equal(b["done"].ravel(), a["done"].ravel())
    assert t > 100


def test_selective_sample_clear_and_repr() -> None:
    rb = SelectiveReplayBuffer(10, ENV, rng=3)
    with pytest.raises(ValueError, match="empty"):
        rb.sample(2)
    rb.add(**_steps([0, 1, 2, 3], dones=[1]))
    out = rb.sample(500)
    assert set(out) == {"obs", "act", "rew", "done", "indexes"}
    assert set(out["indexes"].tolist()) == {0, 1, 2, 3}
    np.testing.assert_array_equal(out["act"].ravel(), out["indexes"])
    again = SelectiveReplayBuffer(10, ENV, rng=3)
    again.add(**_steps([0, 1, 2, 3], dones=[1]))
    np.testing.assert_array_equal(again.sample(500)["indexes"], out["indexes"])
    assert "episodes=2" in repr(rb) and len(rb) == 4
    rb.clear()
    assert (rb.get_stored_size(), rb.get_stored_episode_size(), rb.get_next_index()) == (0, 0, 0)
    rb.add(**_step(5))
    assert _act(rb.get_episode(0)) == [5]


def test_selective_next_of() -> None:
    rb = SelectiveReplayBuffer(10, {"obs": {"shape": 2}, "done": {}}, next_of="obs")
    rb.add(obs=[[0, 0], [1, 1]], next_obs=[[1, 1], [2, 2]], done=[0, 1])
    rb.add(obs=[[5, 5], [6, 6]], next_obs=[[6, 6], [7, 7]], done=[0, 1])
    assert rb.delete_episode(0) == 2
    np.testing.assert_array_equal(rb.get_episode(0)["next_obs"], [[6, 6], [7, 7]])


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda rb: rb.get_episode(-1), ValueError, "i"),
        (lambda rb: rb.get_episode(1.0), TypeError, "i"),
        (lambda rb: rb.delete_episode(True), TypeError, "i"),
        (lambda rb: rb.delete_episode(-2), ValueError, "i"),
        (lambda rb: rb.add(obs=[1, 2], act=1, rew=0.0), ValueError, "done"),
        (lambda rb: rb.add(obs=[1, 2, 3], act=1, rew=0.0, done=0.0), ValueError, "obs"),
        (lambda rb: rb.add(obs=[[1, 2]], act=[1, 2], rew=[0.0], done=[0.0]), ValueError, "transitions"),
        (lambda rb: rb.sample(0), ValueError, "batch_size"),
    ],
)
def test_selective_bad_calls_leave_it_unchanged(call: Any, error: type[Exception], name: str) -> None:
    rb = SelectiveReplayBuffer(10, ENV)
    rb.add(**_steps([0, 1, 2], dones=[0]))
    before = rb.get_all_transitions()
    with pytest.raises(error, match=name):
        call(rb)
    after = rb.get_all_transitions()
    for key in before:
        np.testing.assert_array_equal(after[key], before[key])
    assert rb.get_stored_episode_size() == 2


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "name"),
    [
        ((10, ENV), {"Nepisodes": 3}, TypeError, "Nepisodes"),
        ((10, ENV, 2), {}, TypeError, "act_dim"),
        ((10, ENV), {"obs_dim": 2}, TypeError, "obs_dim"),
        ((10, 2), {"obs_dim": 2}, TypeError, "obs_dim"),
        ((5,), {"Nepisodes": 0}, ValueError, "Nepisodes"),
        ((0,), {}, ValueError, "episode_len"),
        ((5, 0), {}, ValueError, "obs_dim"),
        ((5, 2, 1.5), {}, TypeError, "act_dim"),
        ((5, 2), {"rew_dim": -1}, ValueError, "rew_dim"),
        ((0, ENV), {}, ValueError, "size"),
        ((10, "obs"), {}, TypeError, "env_dict"),
    ],
)
def test_selective_bad_construction(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], name: str
) -> None:
    with pytest.raises(error, match=name):
        SelectiveReplayBuffer(*args, **kwargs)


def test_selective_cpprb_form_fields() -> None:
    rb = SelectiveReplayBuffer(4)  # cpprb defaults: obs_dim = act_dim = rew_dim = 1, Nepisodes = 10
    assert rb.get_buffer_size() == 40
    rb.add(obs=1.0, act=2.0, rew=3.0, next_obs=4.0, done=1.0)
    ep = rb.get_episode(0)
    assert {k: (v.shape, v.dtype) for k, v in ep.items()} == {
        k: ((1, 1), np.dtype(np.float64)) for k in ("obs", "act", "rew", "next_obs", "done")
    }
