"""HindsightReplayBuffer: each strategy's relabelled goals against a closed form (which step's state relabels
which transition, from the documented draws of a seeded generator), row counts, recomputed rewards, PER
pass-through, validation that leaves everything unchanged, and cpprb side by side where it is deterministic."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from laber import HindsightReplayBuffer

# obs and next_obs encode (episode, step): next_obs of step t of episode e is [e, t + 1], so a goal tells
# exactly which transition's next state it came from.
ENV = {"obs": {"shape": 2}, "act": {"dtype": np.int64}, "next_obs": {"shape": 2}}
DESIRED = np.array([-1.0, -1.0])  # a goal no episode reaches


def reward(next_state: np.ndarray, action: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """0 when the next state is the goal, else -1, minus 0.01 * action (so the action's alignment is checked)."""
    hit = np.all(next_state == goal, axis=1)
    return np.where(hit, 0.0, -1.0) - 0.01 * action.reshape(-1)


def episode(e: int, steps: int) -> dict[str, np.ndarray]:
    t = np.arange(steps)
    return {
        "obs": np.stack([np.full(steps, e), t], axis=1).astype(np.float32),
        "act": (t * 7 + e) % 5,
        "next_obs": np.stack([np.full(steps, e), t + 1], axis=1).astype(np.float32),
    }


def fill(her: HindsightReplayBuffer, lengths: list[int], *, batch: bool = False) -> None:
    for e, steps in enumerate(lengths):
        ep = episode(e, steps)
        if batch:
            her.add(**ep)
        else:
            for t in range(steps):
                her.add(**{k: v[t] for k, v in ep.items()})
        her.on_episode_end(DESIRED)


def source_steps(goals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(episode, step u) of the transition whose next state is each goal: next_obs[u] = [e, u + 1]."""
    return goals[:, 0].astype(int), goals[:, 1].astype(int) - 1


def check_copies(her: HindsightReplayBuffer, lengths: list[int], k: int) -> list[np.ndarray]:
    """Row layout (originals then k copies per episode), rewards, and the source step of every relabelled goal,
    returned per episode as a (k, T) array of (episode, step) pairs encoded as episode * 1000 + step."""
    rows = her.get_all_transitions()
    assert her.get_stored_size() == sum((1 + k) * t for t in lengths)
    np.testing.assert_allclose(rows["rew"].ravel(), reward(rows["next_obs"], rows["act"], rows["goal"]), rtol=1e-6)
    out, start = [], 0
    for e, steps in enumerate(lengths):
        block = {name: value[start : start + (1 + k) * steps] for name, value in rows.items()}
        start += (1 + k) * steps
        ep = episode(e, steps)
        for name in ENV:  # the original then k copies of the episode, each in step order
            np.testing.assert_array_equal(
                block[name].reshape(1 + k, steps, -1), np.stack([ep[name].reshape(steps, -1)] * (1 + k))
            )
        np.testing.assert_array_equal(block["goal"][:steps], np.broadcast_to(DESIRED, (steps, 2)))
        src_e, src_u = source_steps(block["goal"][steps:])
        out.append((src_e * 1000 + src_u).reshape(k, steps))
    return out


LENGTHS = [5, 3, 6, 1, 4]


@pytest.mark.parametrize("batch", [False, True])
def test_future_closed_form(batch: bool) -> None:
    k, seed = 4, 7
    her = HindsightReplayBuffer(1000, ENV, 10, reward, strategy="future", additional_goals=k, rng=seed)
    fill(her, LENGTHS, batch=batch)
    replay = np.random.default_rng(seed)
    for e, (steps, sources) in enumerate(zip(LENGTHS, check_copies(her, LENGTHS, k), strict=True)):
        expected = replay.integers(np.arange(steps), steps, size=(k, steps))  # the documented draw
        np.testing.assert_array_equal(sources, e * 1000 + expected)
        assert (expected >= np.arange(steps)).all()  # a state reached at or after the transition's step


def test_future_uses_every_later_step_and_only_those() -> None:
    k, steps = 8, 6
    her = HindsightReplayBuffer(10_000, ENV, steps, reward, strategy="future", additional_goals=k, rng=1)
    for _ in range(40):
        her.add(**episode(0, steps))
        her.on_episode_end(DESIRED)
    rows = her.get_all_transitions()
    relabelled = rows["goal"][np.any(rows["goal"] != DESIRED, axis=1)]
    steps_of_row = rows["obs"][np.any(rows["goal"] != DESIRED, axis=1), 1].astype(int)
    _, src = source_steps(relabelled)
    for t in range(steps):
        assert set(src[steps_of_row == t].tolist()) == set(range(t, steps))
    assert len(relabelled) == 40 * k * steps


def test_episode_closed_form() -> None:
    k, seed = 3, 11
    her = HindsightReplayBuffer(1000, ENV, 10, reward, strategy="episode", additional_goals=k, rng=seed)
    fill(her, LENGTHS)
    replay = np.random.default_rng(seed)
    for e, (steps, sources) in enumerate(zip(LENGTHS, check_copies(her, LENGTHS, k), strict=True)):
        np.testing.assert_array_equal(sources, e * 1000 + replay.integers(0, steps, size=(k, steps)))


def test_final_closed_form_one_copy() -> None:
    her = HindsightReplayBuffer(1000, ENV, 10, reward, strategy="final", additional_goals=4, rng=0)
    assert her.additional_goals == 1
    fill(her, LENGTHS)
    for e, (steps, sources) in enumerate(zip(LENGTHS, check_copies(her, LENGTHS, 1), strict=True)):
        np.testing.assert_array_equal(sources, np.full((1, steps), e * 1000 + steps - 1))


@pytest.mark.parametrize("size", [1000, 40, 7])
def test_random_closed_form(size: int) -> None:
    """Goals from the whole buffer as it is once the episode's originals are in (u-th oldest row); with small
    sizes the ring wraps, and only rows still stored can give goals."""
    k, seed = 2, 5
    lengths = [4, 6, 3, 5, 2, 6]
    her = HindsightReplayBuffer(size, ENV, 10, reward, strategy="random", additional_goals=k, rng=seed)
    replay = np.random.default_rng(seed)
    content: list[np.ndarray] = []  # next_obs of the stored rows, oldest first
    for e, steps in enumerate(lengths):
        her.add(**episode(e, steps))
        her.on_episode_end(DESIRED)
        ep = episode(e, steps)
        view = (content + list(ep["next_obs"]))[-size:]  # the buffer with the originals in
        u = replay.integers(0, len(view), size=k * steps)
        expected_goals = np.array([view[i] for i in u])
        copies = [ep["next_obs"]] * 1 + [ep["next_obs"]] * k
        content = (content + [row for block in copies for row in block])[-size:]
        rows = her.get_all_transitions()
        kept = min(k * steps, size)  # copies still stored: the newest rows
        newest = np.arange(her.get_next_index() - kept, her.get_next_index()) % size
        np.testing.assert_array_equal(rows["goal"][newest], expected_goals[k * steps - kept :])
        np.testing.assert_allclose(rows["rew"].ravel(), reward(rows["next_obs"], rows["act"], rows["goal"]), rtol=1e-6)
    if size == 1000:  # goals from other episodes do occur
        rows = her.get_all_transitions()
        goal_e, _ = source_steps(rows["goal"][np.any(rows["goal"] != DESIRED, axis=1)])
        row_e = rows["obs"][np.any(rows["goal"] != DESIRED, axis=1), 0].astype(int)
        assert (goal_e != row_e).any() and (goal_e < row_e).any()
        assert her.get_stored_size() == (1 + k) * sum(lengths)


def test_counts_each_transition_has_k_copies_plus_original() -> None:
    for strategy, k in [("future", 4), ("episode", 2), ("random", 3), ("final", 1)]:
        her = HindsightReplayBuffer(1000, ENV, 10, reward, strategy=strategy, additional_goals=k, rng=0)
        fill(her, LENGTHS)
        rows = her.get_all_transitions()
        keys, counts = np.unique(rows["obs"], axis=0, return_counts=True)
        assert len(keys) == sum(LENGTHS) and (counts == 1 + k).all(), strategy
        originals = np.all(rows["goal"] == DESIRED, axis=1)
        assert originals.sum() == sum(LENGTHS)


def test_zero_additional_goals_stores_the_originals_only() -> None:
    her = HindsightReplayBuffer(100, ENV, 10, reward, additional_goals=0, rng=0)
    fill(her, [3, 2])
    assert her.get_stored_size() == 5
    assert (her.get_all_transitions()["goal"] == DESIRED).all()


def test_goal_func_goal_shape_and_per_step_goals() -> None:
    env = {"obs": {"shape": 3}, "act": {}, "next_obs": {"shape": 3}}

    def goal_func(states: np.ndarray) -> np.ndarray:
        return states[:, :2] * 2

    def rew(next_state: np.ndarray, action: np.ndarray, goal: np.ndarray) -> np.ndarray:
        return -np.abs(goal_func(next_state) - goal).sum(axis=1)

    her = HindsightReplayBuffer(
        100, env, 5, rew, goal_func=goal_func, goal_shape=2, strategy="final", prioritized=False, rng=0
    )
    assert her.goal_shape == (2,)
    obs = np.arange(12, dtype=np.float32).reshape(4, 3)
    her.add(obs=obs, act=np.zeros(4), next_obs=obs + 1)
    per_step = np.arange(8).reshape(4, 2)
    her.on_episode_end(per_step)  # one goal per step
    rows = her.get_all_transitions()
    np.testing.assert_array_equal(rows["goal"][:4], per_step)
    np.testing.assert_array_equal(rows["goal"][4:], np.broadcast_to(goal_func(obs[-1:] + 1), (4, 2)))
    assert (rows["rew"][4:][-1] == 0).all()  # the last step reaches its relabelled goal


def test_final_matches_cpprb() -> None:
    cpprb = pytest.importorskip("cpprb")
    env = {"obs": {"shape": 2}, "act": {}, "next_obs": {"shape": 2}}

    def rew(s: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
        return -(np.abs(s - g).sum(axis=1) > 0).astype(np.float32) + a.reshape(-1)

    theirs = cpprb.HindsightReplayBuffer(64, copy.deepcopy(env), 8, rew, strategy="final", prioritized=False)
    ours = HindsightReplayBuffer(64, env, 8, rew, strategy="final", prioritized=False)
    for e, steps in enumerate([3, 8, 5, 7, 6, 2]):  # wraps the ring of 64 rows
        ep = {k: v.astype(np.float32) for k, v in episode(e, steps).items()}
        for t in range(steps):
            tr = {k: v[t] for k, v in ep.items()}
            theirs.add(**tr)
            ours.add(**tr)
        theirs.on_episode_end([9.0, 9.0])
        ours.on_episode_end([9.0, 9.0])
        a, b = theirs.get_all_transitions(), ours.get_all_transitions()
        assert set(a) == set(b)
        for name in a:
            np.testing.assert_array_equal(b[name], a[name])
        assert ours.get_stored_size() == theirs.get_stored_size()


@pytest.mark.parametrize("strategy", ["future", "episode", "random"])
def test_layout_matches_cpprb(strategy: str) -> None:
    """cpprb draws from an unseeded generator: compare everything but the relabelled goals and their rewards,
    and check cpprb's relabelled goals obey the same rule."""
    cpprb = pytest.importorskip("cpprb")

    def rew(s: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
        return -(np.abs(s - g).sum(axis=1) > 0).astype(np.float32)

    theirs = cpprb.HindsightReplayBuffer(500, copy.deepcopy(ENV), 10, rew, strategy=strategy, prioritized=False)
    ours = HindsightReplayBuffer(500, ENV, 10, rew, strategy=strategy, prioritized=False, rng=0)
    for e, steps in enumerate(LENGTHS):
        ep = episode(e, steps)
        theirs.add(**ep)
        ours.add(**ep)
        theirs.on_episode_end(DESIRED)
        ours.on_episode_end(DESIRED)
    a, b = theirs.get_all_transitions(), ours.get_all_transitions()
    assert ours.get_stored_size() == theirs.get_stored_size()
    for name in ENV:
        np.testing.assert_array_equal(b[name], a[name])
    originals = np.all(a["goal"] == DESIRED, axis=1)
    np.testing.assert_array_equal(np.all(b["goal"] == DESIRED, axis=1), originals)
    for rows in (a, b):
        np.testing.assert_allclose(rows["rew"].ravel(), rew(rows["next_obs"], rows["act"], rows["goal"]))
        src_e, src_u = source_steps(rows["goal"][~originals])
        row_e, row_t = rows["obs"][~originals, 0].astype(int), rows["obs"][~originals, 1].astype(int)
        if strategy == "future":
            assert (src_e == row_e).all() and (src_u >= row_t).all()
        elif strategy == "episode":
            assert (src_e == row_e).all()
        else:
            assert (src_e <= row_e).all()  # from the buffer: this or an older episode


# ============================================================================================ PER


def test_prioritized_pass_through() -> None:
    her = HindsightReplayBuffer(100, ENV, 10, reward, alpha=0.5, eps=0.0, rng=3)
    assert her.prioritized
    fill(her, [4])
    out = her.sample(8, beta=0.5)
    assert {"indexes", "weights", "goal", "rew"} <= set(out)
    her.update_priorities([0, 1], [5.0, 0.0])
    assert her.get_max_priority() == 5.0
    np.testing.assert_array_equal(her.get_priorities([0, 1, 2]), [5.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="priorities"):
        her.update_priorities([0], [-1.0])
    with pytest.raises(ValueError, match="indexes"):
        her.update_priorities([her.get_stored_size()], [1.0])
    np.testing.assert_array_equal(her.get_priorities([0, 1]), [5.0, 0.0])

    plain = HindsightReplayBuffer(100, ENV, 10, reward, prioritized=False, rng=3)
    fill(plain, [4])
    assert "weights" not in plain.sample(4)
    for call in (
        lambda: plain.update_priorities([0], [1.0]),
        plain.get_max_priority,
        plain.get_priorities,
    ):
        with pytest.raises(ValueError, match="prioritized"):
            call()


def test_sampling_is_reproducible_from_rng() -> None:
    outs = []
    for _ in range(2):
        her = HindsightReplayBuffer(200, ENV, 10, reward, strategy="episode", rng=np.random.default_rng(42))
        fill(her, LENGTHS)
        outs.append(her.sample(16)["indexes"])
    np.testing.assert_array_equal(outs[0], outs[1])


# ============================================================================================ the rest


def test_clear_shuffle_and_counters() -> None:
    her = HindsightReplayBuffer(200, ENV, 10, reward, rng=0)
    her.on_episode_end(DESIRED)  # no transition: nothing stored
    assert her.get_stored_size() == 0
    her.add(**episode(0, 3))
    assert her.get_current_episode_len() == 3 and her.get_stored_size() == 0 and len(her) == 0
    her.on_episode_end(DESIRED)
    assert her.get_current_episode_len() == 0 and len(her) == 15 and her.get_next_index() == 15
    assert her.get_buffer_size() == 200 and her.max_episode_len == 10 and her.strategy == "future"
    rows = her.get_all_transitions()
    mixed = her.get_all_transitions(shuffle=True)
    order = np.lexsort(np.column_stack([rows["goal"], rows["obs"]]).T)
    order_mixed = np.lexsort(np.column_stack([mixed["goal"], mixed["obs"]]).T)
    for name in rows:
        np.testing.assert_array_equal(mixed[name][order_mixed], rows[name][order])
    with pytest.raises(TypeError, match="shuffle"):
        her.get_all_transitions(shuffle="yes")  # type: ignore[arg-type]
    her.add(**episode(1, 2))
    her.clear()
    assert her.get_stored_size() == 0 and her.get_current_episode_len() == 0
    assert "strategy='future'" in repr(her)


def _state(her: HindsightReplayBuffer) -> tuple[Any, ...]:
    rows = her.get_all_transitions()
    rng_state = her._rng.bit_generator.state  # test-only peek: the generator must be untouched
    return her.get_stored_size(), her.get_current_episode_len(), {k: v.tolist() for k, v in rows.items()}, rng_state


def test_max_episode_len_is_enforced_whole() -> None:
    her = HindsightReplayBuffer(200, ENV, 4, reward, rng=0)
    her.add(**episode(0, 3))
    before = _state(her)
    with pytest.raises(ValueError, match="max_episode_len"):
        her.add(**episode(0, 2))  # 3 + 2 > 4: refused whole
    assert _state(her) == before
    her.add(**{k: v[0] for k, v in episode(0, 1).items()})
    with pytest.raises(ValueError, match="max_episode_len"):
        her.add(**{k: v[0] for k, v in episode(0, 1).items()})
    her.on_episode_end(DESIRED)
    assert her.get_stored_size() == 20


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda h: h.on_episode_end([1.0, 2.0, 3.0]), ValueError, "goal"),
        (lambda h: h.on_episode_end(np.zeros((2, 2))), ValueError, "goal"),
        (lambda h: h.on_episode_end("far"), TypeError, "goal"),
        (lambda h: h.on_episode_end([300.0, 0.0]), ValueError, "goal"),  # does not fit the goal's dtype (int8)
        (lambda h: h.add(obs=[0, 0], act=0), ValueError, "next_obs"),
        (lambda h: h.add(obs=[0, 0], act=0.5, next_obs=[0, 1]), ValueError, "act"),
        (lambda h: h.sample(0), ValueError, "batch_size"),
        (lambda h: h.sample(4, beta=-1.0), ValueError, "beta"),
    ],
)
def test_bad_calls_leave_everything_unchanged(call: Any, error: type[Exception], name: str) -> None:
    env = {
        "obs": {"shape": 2, "dtype": np.int8},
        "act": {"dtype": np.int64},
        "next_obs": {"shape": 2, "dtype": np.int8},
    }
    her = HindsightReplayBuffer(200, env, 10, reward, rng=0)
    her.add(obs=[[0, 0], [0, 1]], act=[1, 2], next_obs=[[0, 1], [0, 2]])
    her.on_episode_end([5, 5])
    her.add(obs=[0, 0], act=1, next_obs=[0, 1])
    before = _state(her)
    with pytest.raises(error, match=name):
        call(her)
    assert _state(her) == before


@pytest.mark.parametrize("strategy", ["future", "random"])
@pytest.mark.parametrize(
    ("reward_func", "goal_func", "name"),
    [
        (lambda s, a, g: np.zeros(3), None, "reward_func"),
        (lambda s, a, g: 1 / 0, None, "reward_func"),
        (reward, lambda s: s[:, :1], "goal_func"),
        (reward, lambda s: 1 / 0, "goal_func"),
    ],
)
def test_failing_callbacks_leave_everything_unchanged(
    strategy: str, reward_func: Any, goal_func: Any, name: str
) -> None:
    her = HindsightReplayBuffer(200, ENV, 10, reward, rng=0, strategy=strategy)
    fill(her, [3])
    her._reward_func = reward_func  # test-only: swap the callbacks of a buffer that holds rows
    her._goal_func = goal_func
    her.add(**episode(1, 4))
    before = _state(her)
    with pytest.raises(ValueError, match=name):
        her.on_episode_end(DESIRED)
    assert _state(her) == before
    her._reward_func, her._goal_func = reward, None
    her.on_episode_end(DESIRED)  # the kept episode is stored as if nothing had failed
    twin = HindsightReplayBuffer(200, ENV, 10, reward, rng=0, strategy=strategy)
    fill(twin, [3])
    twin.add(**episode(1, 4))
    twin.on_episode_end(DESIRED)
    assert _state(her) == _state(twin)


def _rf(s: np.ndarray, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    return np.zeros(len(s))


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"strategy": "bogus"}, ValueError, "strategy"),
        ({"strategy": 3}, TypeError, "strategy"),
        ({"additional_goals": -1}, ValueError, "additional_goals"),
        ({"additional_goals": 1.5}, TypeError, "additional_goals"),
        ({"additional_goals": True}, TypeError, "additional_goals"),
        ({"max_episode_len": 0}, ValueError, "max_episode_len"),
        ({"max_episode_len": 2.0}, TypeError, "max_episode_len"),
        ({"reward_func": 3}, TypeError, "reward_func"),
        ({"goal_func": "first"}, TypeError, "goal_func"),
        ({"state": "s"}, ValueError, "state"),
        ({"action": 1}, TypeError, "action"),
        ({"next_state": "obs2"}, ValueError, "next_state"),
        ({"goal_shape": 3}, ValueError, "goal_shape"),
        ({"goal_shape": (0,), "goal_func": _rf}, ValueError, "goal_shape"),
        ({"goal_shape": "2", "goal_func": _rf}, TypeError, "goal_shape"),
        ({"prioritized": 1}, TypeError, "prioritized"),
        ({"Nstep": {"size": 3, "rew": "rew"}}, ValueError, "Nstep"),
        ({"env_dict": {**ENV, "rew": {}}}, ValueError, "rew"),
        ({"env_dict": {**ENV, "goal": {"shape": 2}}}, ValueError, "goal"),
        ({"env_dict": {}}, TypeError, "env_dict"),
        ({"env_dict": {**ENV, "x": {"shape": 0}}}, ValueError, "shape"),
        ({"size": 0}, ValueError, "size"),
        ({"rng": -1}, ValueError, "rng"),
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"prioritized": False, "alpha": 0.5}, TypeError, "alpha"),
    ],
)
def test_bad_construction(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    args: dict[str, Any] = {"size": 100, "env_dict": ENV, "max_episode_len": 10, "reward_func": _rf}
    args.update(kwargs)
    positional = [args.pop(k) for k in ("size", "env_dict", "max_episode_len", "reward_func")]
    with pytest.raises(error, match=name):
        HindsightReplayBuffer(*positional, **args)


def test_next_of_storage() -> None:
    env = {"obs": {"shape": 2}, "act": {}}
    her = HindsightReplayBuffer(100, env, 10, reward, next_of="obs", strategy="future", rng=0)
    ep = episode(0, 4)
    her.add(obs=ep["obs"], act=ep["act"], next_obs=ep["next_obs"])
    her.on_episode_end(DESIRED)
    rows = her.get_all_transitions()
    np.testing.assert_array_equal(rows["next_obs"][:4], ep["next_obs"])
    _, src = source_steps(rows["goal"][4:])
    assert (src >= np.tile(np.arange(4), 4)).all()
