"""Regression tests for the data-safety defects of issue 9: each of these corrupted or lost data before its fix.

Covered here: N-step rows keeping views of the caller's arrays, integer N-step rewards wrapping around, float
overflow stored as ``inf``, ``per_laber_subsample`` drawing before it validated, unbounded (and quadratic)
N-step windows, and unclear errors for 0-d shapes, ``requires_grad`` tensors, bool priorities and a field named
``discount``. Checkpoint and CLI defects have their own test files.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from laber import LaBERmean, PrioritizedReplayBuffer, ReplayBuffer, per_laber_subsample

pytestmark = pytest.mark.usefixtures("storage_backend")  # every storage backend (tests/conftest.py)

# ------------------------------------------------------------------------------------ 1. copies at the door


@pytest.mark.parametrize("next_of", [None, "obs"])
def test_nstep_pending_rows_do_not_alias_a_reused_observation_array(next_of: str | None) -> None:
    """Environments reuse their observation arrays: a pending N-step row must hold a copy, not a view."""
    env: dict[str, Any] = {"obs": {"shape": 2}, "rew": {}, "done": {}}
    if next_of is None:
        rb = ReplayBuffer(8, env, Nstep={"size": 3, "rew": "rew"})
    else:
        rb = ReplayBuffer(8, env, next_of="obs", Nstep={"size": 3, "rew": "rew", "next": "next_obs"})
    obs = np.zeros(2, np.float32)
    nxt = np.ones(2, np.float32)
    extra = {} if next_of is None else {"next_obs": nxt}
    rb.add(obs=obs, rew=1.0, done=0.0, **extra)
    obs[:] = 5  # the environment writes the next observation into the same array
    nxt[:] = 6
    rb.add(obs=obs, rew=1.0, done=0.0, **extra)
    obs[:] = 7
    nxt[:] = 8
    rb.on_episode_end()
    got = rb.get_all_transitions()
    np.testing.assert_array_equal(got["obs"], [[0, 0], [5, 5]])
    if next_of is not None:
        np.testing.assert_array_equal(got["next_obs"], [[6, 6], [6, 6]])


def test_nstep_batch_add_rows_do_not_alias_the_batch() -> None:
    rb = ReplayBuffer(16, {"obs": {"shape": 2}, "rew": {}, "done": {}}, Nstep={"size": 4, "rew": "rew"})
    batch = np.arange(6, dtype=np.float32).reshape(3, 2)
    rew = np.ones(3, np.float32)
    rb.add(obs=batch, rew=rew, done=np.zeros(3))
    batch[:] = -1
    rew[:] = 100
    rb.on_episode_end()
    got = rb.get_all_transitions()
    np.testing.assert_array_equal(got["obs"], np.arange(6).reshape(3, 2))
    np.testing.assert_allclose(got["rew"].ravel(), [1 + 0.99 + 0.99**2, 1 + 0.99, 1], rtol=1e-6)


def test_per_nstep_priorities_are_copied_at_the_door() -> None:
    rb = PrioritizedReplayBuffer(8, {"obs": {}, "rew": {}, "done": {}}, Nstep={"size": 3, "rew": "rew"})
    p = np.array([2.0, 3.0])
    rb.add(obs=np.zeros(2), rew=np.ones(2), done=np.zeros(2), priorities=p)
    p[:] = 1000.0  # the learner reuses its array
    rb.on_episode_end()
    np.testing.assert_array_equal(rb.get_priorities(), [2.0, 3.0])


# ------------------------------------------------------------------------------------ 2. integer N-step sums


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.bool_])
def test_integer_nstep_reward_fields_are_refused(dtype: Any) -> None:
    """``uint8`` rewards of 200 twice used to store 144 (wrapped); an integer return field is refused."""
    with pytest.raises(TypeError, match=r"Nstep\['rew'\] field 'rew' has dtype"):
        ReplayBuffer(8, {"rew": {"dtype": dtype}, "done": {}}, Nstep={"size": 3, "rew": "rew", "gamma": 1.0})


def test_integer_reward_fields_are_fine_without_nstep() -> None:
    rb = ReplayBuffer(8, {"rew": {"dtype": np.uint8}})
    rb.add(rew=200)
    rb.add(rew=200)
    np.testing.assert_array_equal(rb.get_all_transitions()["rew"].ravel(), [200, 200])


# ------------------------------------------------------------------------------------ 3. float overflow


@pytest.mark.parametrize(
    ("dtype", "value"),
    [
        (np.float32, 1e39),
        (np.float32, -1e39),
        (np.float16, 1e5),
        (np.float16, 70000),
        pytest.param(np.float64, 10**400, id="float64-int1e400"),
        (np.float32, np.array([1.0, 3.5e38])),
        (np.float16, np.array([[1.0], [7e4]])),
        (np.float16, np.array([1, -(2**63)], dtype=np.int64)),
    ],
)
def test_float_overflow_is_an_error_and_leaves_the_buffer_unchanged(dtype: Any, value: Any) -> None:
    rb = ReplayBuffer(4, {"x": {"dtype": dtype}, "y": {}})
    rb.add(x=1.0, y=2.0)
    before = rb.get_all_transitions()
    y = np.zeros(np.shape(value)[:1]) if np.ndim(value) else 0.0
    with pytest.raises(ValueError, match=r"field 'x' has dtype .*would store as inf"):
        rb.add(x=value, y=y)
    assert rb.get_stored_size() == 1 and rb.get_next_index() == 1
    for key, arr in rb.get_all_transitions().items():
        np.testing.assert_array_equal(arr, before[key])


def test_infinities_and_nan_given_as_such_are_stored() -> None:
    """Only overflow is refused: an ``inf`` or NaN the user passes is the value they meant."""
    rb = ReplayBuffer(4, {"x": {"shape": 3}})
    rb.add(x=np.array([np.inf, -np.inf, np.nan]))
    got = rb.get_all_transitions()["x"][0]
    assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2])


# ------------------------------------------------------------------------------------ 4. per_laber_subsample


def test_per_laber_subsample_validates_before_drawing() -> None:
    rb = PrioritizedReplayBuffer(64, {"obs": {"shape": 2}, "act": {}}, rng=0)
    rb.add(obs=np.zeros((40, 2)), act=np.zeros(40))
    laber = LaBERmean(4, 2, rng=1)
    large = rb.sample(8, beta=0.4)
    large["obs"] = large["obs"][:7]  # one row short
    state = laber.rng.bit_generator.state
    with pytest.raises(ValueError, match=r"large_batch\['obs'\] must have 8 rows"):
        per_laber_subsample(laber, large, np.ones(8))
    assert laber.rng.bit_generator.state == state
    large["obs"] = np.float32(1.0)  # not an array of rows at all
    with pytest.raises(ValueError, match=r"large_batch\['obs'\] must have 8 rows"):
        per_laber_subsample(laber, large, np.ones(8))


# ------------------------------------------------------------------------------------ 5. long windows


def test_nstep_window_longer_than_the_buffer_is_refused() -> None:
    with pytest.raises(ValueError, match=r"Nstep\['size'\] must be at most the buffer size 8.*size=9"):
        ReplayBuffer(8, {"rew": {}}, Nstep={"size": 9, "rew": "rew"})


@pytest.mark.parametrize(("n", "length", "gamma"), [(1, 50, 0.9), (7, 200, 0.97), (300, 1000, 0.999), (1000, 999, 0.5)])
def test_long_nstep_windows_match_the_closed_form(n: int, length: int, gamma: float) -> None:
    """``R_t = sum_{j<k} gamma**j r_{t+j}`` for windows of hundreds of steps, with ``done`` inside the stream;
    the doubling sum replaces the direct one, so this also pins its exactness."""
    rng = np.random.default_rng(n)
    rew = rng.normal(size=length)
    done = (rng.random(length) < 0.01).astype(np.float64)
    rb = ReplayBuffer(2000, {"rew": {"dtype": np.float64}, "done": {}}, Nstep={"size": n, "rew": "rew", "gamma": gamma})
    half = length // 2
    rb.add(rew=rew[:half], done=done[:half])
    for t in range(half, length):
        rb.add(rew=float(rew[t]), done=float(done[t]))
    rb.on_episode_end()
    got = rb.get_all_transitions()
    want_r, want_k = [], []
    for t in range(length):
        k = 0
        total = 0.0
        while k < n and t + k < length:
            total += gamma**k * rew[t + k]
            k += 1
            if done[t + k - 1]:
                break
        want_r.append(total)
        want_k.append(k)
    np.testing.assert_allclose(got["rew"].ravel(), want_r, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got["discount"].ravel(), np.power(gamma, want_k).astype(np.float32))


def test_a_million_step_window_flushes() -> None:
    """``Nstep={"size": 10**6}``: one add and ``on_episode_end`` took 22 s (a pass per window offset)."""
    rb = ReplayBuffer(10**6, {"rew": {}}, Nstep={"size": 10**6, "rew": "rew", "gamma": 0.5})
    rb.add(rew=np.ones(3))
    rb.on_episode_end()
    np.testing.assert_allclose(rb.get_all_transitions()["rew"].ravel(), [1.75, 1.5, 1.0])


# ------------------------------------------------------------------------------------ 7. clear errors


def test_zero_dimensional_integer_shape_is_an_int() -> None:
    rb = ReplayBuffer(4, {"obs": {"shape": np.array(4)}, "n": {"shape": np.int64(2)}})
    rb.add(obs=np.zeros(4), n=np.zeros(2))
    assert rb.sample(1)["obs"].shape == (1, 4)
    with pytest.raises(TypeError, match=r"env_dict\['obs'\]\['shape'\] must be an int"):
        ReplayBuffer(4, {"obs": {"shape": np.array(4.5)}})


@pytest.mark.parametrize("nstep", [None, {"size": 2, "rew": "rew"}])
def test_a_field_named_discount_is_refused(nstep: dict[str, Any] | None) -> None:
    with pytest.raises(ValueError, match="field name 'discount' is reserved"):
        ReplayBuffer(4, {"rew": {}, "discount": {}}, Nstep=nstep)


@pytest.mark.parametrize("bad", [True, np.array([True, False]), [True, False]])
def test_bool_priorities_are_a_type_error(bad: Any) -> None:
    rb = PrioritizedReplayBuffer(8, {"obs": {}})
    rb.add(obs=np.zeros(2))
    before = rb.get_priorities()
    idx = np.array([0]) if bad is True else np.array([0, 1])
    with pytest.raises(TypeError, match="priorities must be real numbers"):
        rb.update_priorities(idx, bad)
    with pytest.raises(TypeError, match="priorities must be real numbers"):
        rb.add(obs=np.zeros(len(idx)), priorities=bad)
    np.testing.assert_array_equal(rb.get_priorities(), before)
    assert rb.get_stored_size() == 2


def test_requires_grad_tensors_are_detached() -> None:
    torch = pytest.importorskip("torch")
    rb = PrioritizedReplayBuffer(8, {"obs": {}})
    rb.add(obs=torch.zeros(3, requires_grad=True), priorities=torch.tensor([1.0, 2.0, 3.0], requires_grad=True))
    td = torch.tensor([4.0, 5.0], requires_grad=True) * 2
    rb.update_priorities(torch.tensor([0, 2]), td)
    np.testing.assert_array_equal(rb.get_priorities(), [8.0, 2.0, 10.0])
    np.testing.assert_array_equal(rb.get_priorities(torch.tensor([1])), [2.0])


def test_python_ints_at_the_int64_edge_are_checked_exactly() -> None:
    """The scalar fast path compares exact Python ints: 2**63 must not pass as the float 9.2e18."""
    rb = ReplayBuffer(4, {"x": {"dtype": np.int64}})
    with pytest.raises(ValueError, match="field 'x' has dtype int64"):
        rb.add(x=2**63)
    rb.add(x=2**63 - 1)
    assert rb.get_all_transitions()["x"].ravel().tolist() == [2**63 - 1]
