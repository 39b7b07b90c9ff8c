"""cpprb's smaller methods and arguments, so a cpprb user changes only the import (issue 11).

``is_Nstep()``, ``get_current_episode_len()``, ``rb.add(**rb.sample(k))``, PER's ``check_for_update=True``,
``sample(batch_size, beta)`` positional, and the names of the full-state checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from laber import MPPrioritizedReplayBuffer, PrioritizedReplayBuffer, ReplayBuffer

pytestmark = pytest.mark.usefixtures("storage_backend")  # every storage backend (tests/conftest.py)

ENV: dict[str, Any] = {"obs": {"shape": 2}, "act": {}, "rew": {}, "done": {}}


def _add(rb: ReplayBuffer, k: int, start: int = 0) -> None:
    x = np.arange(start, start + k, dtype=np.float32)
    rb.add(obs=np.stack([x, x], axis=1), act=x, rew=x, done=np.zeros(k))


def test_is_nstep() -> None:
    assert ReplayBuffer(8, ENV).is_Nstep() is False
    assert ReplayBuffer(8, ENV, Nstep={"size": 2, "rew": "rew"}).is_Nstep() is True


@pytest.mark.parametrize("nstep", [None, {"size": 3, "rew": "rew"}])
def test_current_episode_len_counts_adds_since_the_episode_began(nstep: dict[str, Any] | None) -> None:
    rb = ReplayBuffer(32, ENV, Nstep=nstep)
    assert rb.get_current_episode_len() == 0
    _add(rb, 1)
    _add(rb, 4, 1)
    assert rb.get_current_episode_len() == 5
    rb.on_episode_end()
    assert rb.get_current_episode_len() == 0
    _add(rb, 2)
    rb.clear()
    assert rb.get_current_episode_len() == 0


def test_a_failed_add_does_not_count() -> None:
    rb = ReplayBuffer(8, ENV)
    with pytest.raises(ValueError, match="missing field"):
        rb.add(obs=np.zeros(2), act=0.0, rew=0.0)
    assert rb.get_current_episode_len() == 0


@pytest.mark.parametrize("kind", ["plain", "nstep", "per"])
def test_add_takes_what_sample_returns(kind: str) -> None:
    """cpprb ignores unknown keys, so ``rb.add(**rb.sample(k))`` works there; laber accepts exactly the keys
    ``sample`` adds (``indexes``, ``weights``, ``discount``) and still refuses any other unknown field."""
    if kind == "per":
        rb: ReplayBuffer = PrioritizedReplayBuffer(64, ENV, rng=0)
    else:
        rb = ReplayBuffer(64, ENV, Nstep={"size": 2, "rew": "rew"} if kind == "nstep" else None, rng=0)
    _add(rb, 10)
    rb.on_episode_end()
    before = rb.get_stored_size()
    batch = rb.sample(5)
    rb.add(**batch)
    rb.on_episode_end()
    assert rb.get_stored_size() == before + 5
    np.testing.assert_array_equal(rb.get_all_transitions()["obs"][before:], batch["obs"])
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['typo'\]"):
        rb.add(**batch, typo=np.zeros(5))


def test_check_for_update_skips_rows_overwritten_since_the_last_sample() -> None:
    rb = PrioritizedReplayBuffer(4, ENV, check_for_update=True, rng=0)
    _add(rb, 4)
    batch = rb.sample(4)
    _add(rb, 2, 100)  # rows 0 and 1 now hold new transitions
    rb.update_priorities(np.array([0, 1, 2, 3]), np.array([5.0, 6.0, 7.0, 8.0]))
    np.testing.assert_array_equal(rb.get_priorities(), [1.0, 1.0, 7.0, 8.0])  # 0 and 1 kept the new rows' max
    rb.sample(4)  # a new sample: the learner has seen the new rows
    rb.update_priorities(np.array([0, 1]), np.array([2.0, 3.0]))
    np.testing.assert_array_equal(rb.get_priorities(), [2.0, 3.0, 7.0, 8.0])
    assert batch["indexes"].shape == (4,)


def test_check_for_update_matches_cpprb() -> None:
    cpprb = pytest.importorskip("cpprb")
    env = {"obs": {}}
    ours = PrioritizedReplayBuffer(6, env, check_for_update=True, eps=0.0, alpha=1.0)
    theirs = cpprb.PrioritizedReplayBuffer(6, env, check_for_update=True, eps=0.0, alpha=1.0)
    rng = np.random.default_rng(0)
    for step in range(40):
        k = int(rng.integers(1, 4))
        for rb in (ours, theirs):
            rb.add(obs=np.arange(k, dtype=np.float64))
        if step % 3 == 0:
            ours.sample(4)
            theirs.sample(4)
        idx = rng.integers(0, ours.get_stored_size(), 3)
        p = rng.random(3) + 0.5
        ours.update_priorities(idx, p)
        theirs.update_priorities(idx.astype(np.uint64), p)
    # cpprb shows its priorities only through PER weights: with eps=0, alpha=1, beta=1, w_i = min(p) / p_i
    drawn = theirs.sample(400, beta=1.0)
    mine = ours.get_priorities()
    idx = drawn["indexes"].astype(np.int64)
    np.testing.assert_allclose(1.0 / drawn["weights"], mine[idx] / mine.min(), rtol=1e-5)
    assert len(np.unique(idx)) == ours.get_stored_size()


def test_check_for_update_is_shared_between_processes() -> None:
    rb = MPPrioritizedReplayBuffer(4, ENV, check_for_update=True)
    _add(rb, 4)
    rb.sample(2)
    _add(rb, 1, 10)
    rb.update_priorities(np.array([0, 1]), np.array([4.0, 4.0]))
    np.testing.assert_array_equal(rb.get_priorities(), [1.0, 4.0, 1.0, 1.0])
    rb.close()


def test_check_for_update_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="check_for_update must be True or False"):
        PrioritizedReplayBuffer(4, ENV, check_for_update=1)


def test_sample_beta_positional() -> None:
    rb = PrioritizedReplayBuffer(16, ENV, rng=0)
    _add(rb, 8)
    rb.update_priorities(np.arange(8), np.arange(1.0, 9.0))
    a = rb.sample(32, 1.0)["weights"]
    b = PrioritizedReplayBuffer(16, ENV, rng=0)
    _add(b, 8)
    b.update_priorities(np.arange(8), np.arange(1.0, 9.0))
    np.testing.assert_array_equal(a, b.sample(32, beta=1.0)["weights"])


def test_checkpoint_names(tmp_path: Path) -> None:
    rb = PrioritizedReplayBuffer(16, ENV, rng=0)
    _add(rb, 8)
    rb.save_checkpoint(tmp_path / "state.npz")
    copy = PrioritizedReplayBuffer(16, ENV)
    copy.load_checkpoint(tmp_path / "state.npz")
    np.testing.assert_array_equal(copy.get_all_transitions()["obs"], rb.get_all_transitions()["obs"])


def test_get_all_transitions_shuffle_is_a_seeded_permutation() -> None:
    rb = ReplayBuffer(16, ENV, rng=0)
    _add(rb, 10)
    plain = rb.get_all_transitions()["act"].ravel()
    shuffled = rb.get_all_transitions(shuffle=True)["act"].ravel()
    assert sorted(shuffled.tolist()) == plain.tolist() and not np.array_equal(shuffled, plain)
    again = ReplayBuffer(16, ENV, rng=0)
    _add(again, 10)
    np.testing.assert_array_equal(again.get_all_transitions(shuffle=True)["act"].ravel(), shuffled)
    with pytest.raises(TypeError, match="shuffle must be True or False"):
        rb.get_all_transitions(shuffle="yes")  # type: ignore[arg-type]


def test_default_dtype_none_is_float32_as_in_cpprb() -> None:
    rb = ReplayBuffer(4, {"obs": {}}, default_dtype=None)
    rb.add(obs=1.0)
    assert rb.get_all_transitions()["obs"].dtype == np.float32


def test_multi_process_buffers_take_cpprbs_logger_and_skip_overwritten_rows() -> None:
    import logging

    rb = MPPrioritizedReplayBuffer(4, ENV, logger=logging.getLogger("x"))
    _add(rb, 4)
    rb.sample(2)
    _add(rb, 1, 10)  # overwrites row 0
    rb.update_priorities(np.array([0, 1]), np.array([5.0, 5.0]))
    np.testing.assert_array_equal(rb.get_priorities(), [1.0, 5.0, 1.0, 1.0])  # cpprb's MP buffer does the same
    rb.close()


def test_selective_legacy_form_takes_positional_fields_and_its_dims() -> None:
    from laber import SelectiveReplayBuffer

    rb = SelectiveReplayBuffer(5, 3, 2, Nepisodes=4)
    rb.add(np.ones(3), np.ones(2), 1.0, np.ones(3), 0.0)
    rb.add(np.ones(3), np.ones(2), 1.0, next_obs=np.ones(3), done=1.0)
    assert (rb.get_stored_size(), rb.get_stored_episode_size()) == (2, 1)
    assert (rb.get_obs_dim(), rb.get_act_dim(), rb.get_rew_dim(), rb.get_obs_shape()) == (3, 2, 1, (3,))
    with pytest.raises(TypeError, match="given both positionally and by name"):
        rb.add(np.ones(3), obs=np.ones(3), act=np.ones(2), rew=1.0, next_obs=np.ones(3), done=0.0)
    modern = SelectiveReplayBuffer(10, {"obs": {}})
    with pytest.raises(TypeError, match="positional fields are only taken with cpprb's form"):
        modern.add(1.0)
