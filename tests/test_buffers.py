"""ReplayBuffer: N-step closed forms, uniform sampling, ring order, validation, aliasing, checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from laber import LaBERmean, ReplayBuffer
from laber.links import LINK

pytestmark = pytest.mark.usefixtures("storage_backend")  # every storage backend (tests/conftest.py)

ENV = {
    "obs": {"shape": 3},
    "act": {"shape": 1, "dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 3},
    "done": {},
}


def scripted_episodes(rng: np.random.Generator, lengths: list[int], terminal: list[bool]) -> list[list[dict]]:
    """Episodes of transitions with distinct observations; the last step is terminal where asked."""
    episodes, t = [], 0
    for length, term in zip(lengths, terminal, strict=True):
        ep = []
        for i in range(length):
            ep.append(
                {
                    "obs": np.full(3, t, dtype=np.float32),
                    "act": int(rng.integers(0, 4)),
                    "rew": float(rng.normal()),
                    "next_obs": np.full(3, t + 1, dtype=np.float32),
                    "done": float(term and i == length - 1),
                }
            )
            t += 1
        episodes.append(ep)
    return episodes


def closed_form(episodes: list[list[dict]], n: int, gamma: float) -> dict[str, np.ndarray]:
    """Expected N-step rows: R_t = sum_{j<k} gamma^j r_{t+j}, k = min(n, steps left in the episode)."""
    rows: dict[str, list] = {k: [] for k in ("obs", "act", "rew", "next_obs", "done", "discount")}
    for ep in episodes:
        for t in range(len(ep)):
            k = min(n, len(ep) - t)
            rows["obs"].append(ep[t]["obs"])
            rows["act"].append([ep[t]["act"]])
            rows["rew"].append([sum(gamma**j * ep[t + j]["rew"] for j in range(k))])
            rows["next_obs"].append(ep[t + k - 1]["next_obs"])
            rows["done"].append([ep[t + k - 1]["done"]])
            rows["discount"].append([gamma**k])
    return {k: np.array(v) for k, v in rows.items()}


def fill(rb: ReplayBuffer, episodes: list[list[dict]], *, batch: bool) -> None:
    for ep in episodes:
        if batch:
            rb.add(**{k: np.array([tr[k] for tr in ep]) for k in ep[0]})
        else:
            for tr in ep:
                rb.add(**tr)
        rb.on_episode_end()


# ------------------------------------------------------------------------------------------------ N-step
@pytest.mark.parametrize("n", [1, 2, 3, 5])
@pytest.mark.parametrize("batch", [False, True])
def test_nstep_matches_closed_form(n: int, batch: bool) -> None:
    rng = np.random.default_rng(n)
    # terminal inside the window (short terminal episodes), time-limit ends (not terminal), length-1 episodes
    episodes = scripted_episodes(rng, [7, 2, 1, 9, 4], [True, True, False, False, True])
    gamma = 0.9
    rb = ReplayBuffer(100, ENV, Nstep={"size": n, "rew": "rew", "gamma": gamma, "next": "next_obs"})
    fill(rb, episodes, batch=batch)
    got = rb.get_all_transitions()
    want = closed_form(episodes, n, gamma)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)


def test_nstep_done_inside_window_without_episode_end() -> None:
    """A terminal transition closes every window that reaches it, even before on_episode_end()."""
    rb = ReplayBuffer(20, ENV, Nstep={"size": 3, "rew": "rew", "gamma": 0.5, "next": "next_obs"})
    ep = scripted_episodes(np.random.default_rng(0), [4], [True])[0]
    for i, tr in enumerate(ep):
        out = rb.add(**tr)
        assert (out is None) == (i < 2)
    assert rb.get_stored_size() == 4  # all four windows were completed by the terminal step
    want = closed_form([ep], 3, 0.5)
    np.testing.assert_allclose(rb.get_all_transitions()["rew"], want["rew"], rtol=1e-6)


def test_nstep_on_episode_end_mid_window() -> None:
    rb = ReplayBuffer(20, ENV, Nstep={"size": 4, "rew": "rew", "gamma": 0.8, "next": "next_obs"})
    ep = scripted_episodes(np.random.default_rng(1), [2], [False])[0]
    for tr in ep:
        assert rb.add(**tr) is None
    assert rb.get_stored_size() == 0
    rb.on_episode_end()
    got = rb.get_all_transitions()
    want = closed_form([ep], 4, 0.8)
    np.testing.assert_allclose(got["discount"], [[0.64], [0.8]], rtol=1e-6)
    np.testing.assert_allclose(got["rew"], want["rew"], rtol=1e-6)
    np.testing.assert_array_equal(got["done"], [[0.0], [0.0]])


def test_nstep_ring_wraparound() -> None:
    """With the ring smaller than the stream, the stored rows are the newest ones of the closed form."""
    rng = np.random.default_rng(3)
    episodes = scripted_episodes(rng, [6, 5, 8], [True, False, True])
    rb = ReplayBuffer(7, ENV, Nstep={"size": 3, "rew": "rew", "gamma": 0.95, "next": "next_obs"})
    fill(rb, episodes, batch=False)
    want = closed_form(episodes, 3, 0.95)
    total = len(want["obs"])
    order = np.argsort([(i - rb.get_next_index()) % 7 for i in range(7)])  # oldest stored row first
    got = rb.get_all_transitions()
    for key in want:
        np.testing.assert_allclose(got[key][order], want[key][total - 7 :], rtol=1e-6, err_msg=key)


def test_nstep_configuration_errors() -> None:
    with pytest.raises(ValueError, match=r"Nstep\['size'\] must be a positive integer, got size=0"):
        ReplayBuffer(10, ENV, Nstep={"size": 0, "rew": "rew"})
    with pytest.raises(ValueError, match=r"Nstep\['rew'\] names 'reward', which is not a field"):
        ReplayBuffer(10, ENV, Nstep={"size": 3, "rew": "reward"})
    with pytest.raises(ValueError, match=r"Nstep\['gamma'\] must be a real number in \[0, 1\], got gamma=1.5"):
        ReplayBuffer(10, ENV, Nstep={"size": 3, "rew": "rew", "gamma": 1.5})
    with pytest.raises(ValueError, match=r"Nstep has unknown keys \['steps'\]"):
        ReplayBuffer(10, ENV, Nstep={"size": 3, "rew": "rew", "steps": 2})
    with pytest.raises(ValueError, match=r"'discount' is reserved"):
        ReplayBuffer(10, {**ENV, "discount": {}}, Nstep={"size": 3, "rew": "rew"})


# ------------------------------------------------------------------------------------------------ sampling
def test_sample_is_uniform_over_stored_rows() -> None:
    """Chi-square of 20,000 draws over 50 stored rows against uniform; false-failure probability 1e-3."""
    rb = ReplayBuffer(64, {"x": {}}, rng=11)
    rb.add(x=np.arange(50.0))
    counts = np.zeros(50)
    for _ in range(80):
        idx = rb.sample(250)["indexes"]
        counts += np.bincount(idx, minlength=50)
    assert counts.sum() == 20_000
    assert stats.chisquare(counts).pvalue > 1e-3


def test_sample_fields_match_indexes_and_never_alias_storage() -> None:
    rb = ReplayBuffer(32, ENV, rng=0)
    rb.add(
        obs=np.arange(60.0).reshape(20, 3),
        act=np.arange(20) % 4,
        rew=np.arange(20.0),
        next_obs=np.arange(60.0).reshape(20, 3) + 1,
        done=np.zeros(20),
    )
    first = rb.sample(64)
    snapshot = {k: v.copy() for k, v in first.items()}
    assert first["indexes"].dtype == np.int64
    np.testing.assert_array_equal(first["rew"].ravel(), first["indexes"].astype(np.float32))
    np.testing.assert_array_equal(first["obs"][:, 0], 3.0 * first["indexes"])
    state = rb.checkpoint_state()  # on the host, its records are the storage itself (on a device, a copy)
    for key, value in first.items():
        assert state.on_device or not np.shares_memory(value, state.records), key
    rb.sample(256)  # a later, larger sample does not touch the first one's arrays
    rb.add(obs=np.full(3, -1.0), act=0, rew=-1.0, next_obs=np.zeros(3), done=1.0)
    for key, value in first.items():
        np.testing.assert_array_equal(value, snapshot[key])
    first["obs"][:] = 99.0  # and writing to them does not reach storage
    assert rb.get_all_transitions()["obs"].max() < 99.0


def test_same_seed_same_samples() -> None:
    a, b = ReplayBuffer(10, {"x": {}}, rng=5), ReplayBuffer(10, {"x": {}}, rng=5)
    for rb in (a, b):
        rb.add(x=np.arange(10.0))
    np.testing.assert_array_equal(a.sample(30)["indexes"], b.sample(30)["indexes"])


def test_sample_errors() -> None:
    rb = ReplayBuffer(10, {"x": {}})
    with pytest.raises(ValueError, match="cannot sample from an empty buffer"):
        rb.sample(4)
    rb.add(x=1.0)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got batch_size=0"):
        rb.sample(0)
    with pytest.raises(TypeError, match=r"batch_size must be a positive integer, got batch_size=2\.5"):
        rb.sample(2.5)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ ring
def test_overwrite_order_at_wraparound() -> None:
    rb = ReplayBuffer(5, {"x": {"dtype": np.int64}})
    assert rb.add(x=np.arange(3)) == 0
    assert rb.add(x=np.arange(3, 7)) == 3  # wraps: rows 3, 4, 0, 1
    np.testing.assert_array_equal(rb.get_all_transitions()["x"].ravel(), [5, 6, 2, 3, 4])
    assert (rb.get_stored_size(), rb.get_next_index(), len(rb), rb.get_buffer_size()) == (5, 2, 5, 5)
    rb.add(x=np.arange(100, 112))  # longer than the ring: only the newest 5 survive, in ring order
    stored = rb.get_all_transitions()["x"].ravel()
    assert sorted(stored) == list(range(107, 112))
    nxt = rb.get_next_index()
    np.testing.assert_array_equal(np.roll(stored, -nxt), np.arange(107, 112))
    rb.clear()
    assert len(rb) == 0 and rb.get_next_index() == 0


def test_size_accepts_integral_floats_only() -> None:
    assert ReplayBuffer(1e3, {"x": {}}).get_buffer_size() == 1000
    for bad in (0, -3, 2.5, float("nan")):
        with pytest.raises(ValueError, match=r"size must be a positive integer"):
            ReplayBuffer(bad, {"x": {}})
    for wrong_type in ("10", True, None):
        with pytest.raises(TypeError, match=r"size must be a positive integer"):
            ReplayBuffer(wrong_type, {"x": {}})  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ validation
BAD_ADDS = [
    ({"obs": np.ones(3), "act": 1, "rew": 1.0, "next_obs": np.ones(3)}, r"missing field\(s\) \['done'\]"),
    ({"obs": np.ones(3), "act": 1, "rew": 1.0, "next_obs": np.ones(3), "done": 0, "extra": 1}, r"unknown field"),
    ({"obs": np.ones(4), "act": 1, "rew": 1.0, "next_obs": np.ones(3), "done": 0}, r"field 'obs' must have shape"),
    (
        {"obs": np.ones((2, 3)), "act": [1, 2, 3], "rew": [1.0, 2.0], "next_obs": np.ones((2, 3)), "done": [0, 0]},
        r"fields disagree on the number of transitions: 'obs' has 2, 'act' has 3",
    ),
    (
        {"obs": np.ones(3), "act": 256, "rew": 1.0, "next_obs": np.ones(3), "done": 0},
        r"range 0\.\.255\), got value 256",
    ),
    ({"obs": np.ones(3), "act": -1, "rew": 1.0, "next_obs": np.ones(3), "done": 0}, r"got value -1"),
    ({"obs": np.ones(3), "act": 1.5, "rew": 1.0, "next_obs": np.ones(3), "done": 0}, r"needs integral values"),
    ({"obs": np.ones(3), "act": 1, "rew": "a", "next_obs": np.ones(3), "done": 0}, r"field 'rew' must hold numbers"),
    (
        {"obs": np.ones((2, 3)), "act": [1, 300], "rew": [1.0, 2.0], "next_obs": np.ones((2, 3)), "done": [0, 0]},
        r"got value 300",
    ),
]


@pytest.mark.parametrize("nstep", [None, {"size": 2, "rew": "rew", "next": "next_obs"}])
@pytest.mark.parametrize(("fields", "match"), BAD_ADDS)
def test_bad_add_leaves_buffer_unchanged(fields: dict, match: str, nstep: dict | None) -> None:
    rb = ReplayBuffer(8, ENV, Nstep=nstep)
    good = {"obs": np.zeros(3), "act": 2, "rew": 0.5, "next_obs": np.ones(3), "done": 0.0}
    for _ in range(3):
        rb.add(**good)
    before = (rb.get_all_transitions(), rb.get_next_index(), rb.get_stored_size())
    with pytest.raises((ValueError, TypeError), match=match):
        rb.add(**fields)
    after = (rb.get_all_transitions(), rb.get_next_index(), rb.get_stored_size())
    assert before[1:] == after[1:]
    for key in before[0]:
        np.testing.assert_array_equal(before[0][key], after[0][key])


def test_bad_env_dict() -> None:
    with pytest.raises(TypeError, match="env_dict must be a non-empty dict"):
        ReplayBuffer(10, {})
    with pytest.raises(ValueError, match=r"env_dict\['obs'\]\['shape'\] must hold positive ints, got shape=\(0,\)"):
        ReplayBuffer(10, {"obs": {"shape": (0,)}})
    with pytest.raises(ValueError, match=r"env_dict\['obs'\] has unknown keys \['dtyp'\]"):
        ReplayBuffer(10, {"obs": {"dtyp": np.float32}})
    with pytest.raises(ValueError, match=r"field name 'weights' is reserved"):
        ReplayBuffer(10, {"weights": {}})
    with pytest.raises(ValueError, match=r"with next_of='obs', next_obs is derived from obs: remove 'next_obs'"):
        ReplayBuffer(10, ENV, next_of="obs")
    with pytest.raises(ValueError, match=r"next_of names 'state', which is not a field"):
        ReplayBuffer(10, ENV, next_of="state")
    with pytest.raises(
        ValueError, match=r"stack_compress field 'obs' must stack at least 2 frames.*got shape \(4, 1\)"
    ):
        ReplayBuffer(10, {**ENV, "obs": {"shape": (4, 1)}}, stack_compress="obs")
    with pytest.raises(ValueError, match=r"stack_compress names 'state', which is not a field"):
        ReplayBuffer(10, ENV, stack_compress="state")
    with pytest.raises(TypeError, match=r"stack_compress must be a field name or a list of them, got stack_compress=3"):
        ReplayBuffer(10, ENV, stack_compress=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"stack_compress fields must stack the same number of frames, got 3"):
        ReplayBuffer(
            10, {**ENV, "obs": {"shape": (2, 4)}, "next_obs": {"shape": (2, 3)}}, stack_compress=["obs", "next_obs"]
        )
    with pytest.raises(ValueError, match=r"stack_compress names 'next_obs', which next_of derives; name 'obs'"):
        ReplayBuffer(10, {k: v for k, v in ENV.items() if k != "next_obs"}, next_of="obs", stack_compress="next_obs")


# ------------------------------------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip(tmp_path: Path) -> None:
    nstep = {"size": 3, "rew": "rew", "gamma": 0.9, "next": "next_obs"}
    rb = ReplayBuffer(6, ENV, Nstep=nstep, rng=7)
    episodes = scripted_episodes(np.random.default_rng(0), [5, 4], [True, False])
    fill(rb, episodes[:1], batch=False)
    for tr in episodes[1][:2]:  # two transitions still pending in the N-step window
        rb.add(**tr)
    path = tmp_path / "buffer.npz"
    rb.save_checkpoint(path)
    assert os.listdir(tmp_path) == ["buffer.npz"]  # no temporary file left behind
    copy = ReplayBuffer(6, ENV, Nstep=nstep, rng=123)
    copy.load_checkpoint(path)
    for key, value in rb.get_all_transitions().items():
        np.testing.assert_array_equal(copy.get_all_transitions()[key], value)
    assert copy.get_next_index() == rb.get_next_index()
    np.testing.assert_array_equal(copy.sample(20)["indexes"], rb.sample(20)["indexes"])  # rng state restored
    for b in (rb, copy):  # pending transitions travel too: finishing the episode gives the same rows
        for tr in episodes[1][2:]:
            b.add(**tr)
        b.on_episode_end()
    for key, value in rb.get_all_transitions().items():
        np.testing.assert_array_equal(copy.get_all_transitions()[key], value)


def test_checkpoint_errors(tmp_path: Path) -> None:
    rb = ReplayBuffer(6, ENV)
    rb.add(obs=np.zeros(3), act=1, rew=0.0, next_obs=np.zeros(3), done=0.0)
    path = tmp_path / "b.npz"
    rb.save_checkpoint(path)
    other = ReplayBuffer(6, {**ENV, "rew": {"dtype": np.float64}})
    with pytest.raises(ValueError, match="do not match this buffer"):
        other.load_checkpoint(path)
    small = ReplayBuffer(4, ENV)
    small.load_checkpoint(path)  # fits
    np.savez(tmp_path / "x.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a laber checkpoint"):
        rb.load_checkpoint(tmp_path / "x.npz")


# ------------------------------------------------------------------------------------------------ reference page
def test_reference_page_loop() -> None:
    """The reference page's loop, with a stand-in environment and |TD| (cpprb's API, laber's classes)."""
    buffer_size = 1e6
    env_dict = {
        "obs": {"shape": (4,)},
        "act": {"shape": 1, "dtype": np.ubyte},
        "rew": {},
        "next_obs": {"shape": (4,)},
        "done": {},
    }
    batch_size, m = 32, 4
    rb = ReplayBuffer(buffer_size, env_dict, Nstep={"size": 3, "rew": "rew", "next": "next_obs"})
    laber = LaBERmean(batch_size, m)
    rng = np.random.default_rng(0)
    observation = rng.random(4)
    for step in range(300):
        action = int(rng.integers(0, 2))
        next_observation, reward, done = rng.random(4), 1.0, step % 37 == 36
        rb.add(obs=observation, act=action, rew=reward, next_obs=next_observation, done=done)
        if rb.get_stored_size() == 0:
            continue
        sample = rb.sample(batch_size * m)
        abs_td = np.abs(sample["rew"].ravel() - rng.random(batch_size * m))
        idx_weights = laber(priorities=abs_td)
        assert (abs_td[idx_weights["indexes"]] * idx_weights["weights"]).shape == (batch_size,)
        assert sample["act"].ravel().shape == (batch_size * m,)
        if done:
            observation = rng.random(4)
            rb.on_episode_end()
        else:
            observation = next_observation


# ------------------------------------------------------------------------------------------------ next_of
NEXT_OF_ENV = {"obs": {"shape": 3}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}}


@pytest.mark.parametrize("seed", range(12))
def test_next_of_gives_exactly_what_naive_storage_gives(seed: int) -> None:
    """Random episodes (single and batch adds, terminal and time-limit ends, a missing on_episode_end, N-step
    or not, ring wrap-around): every field, next_obs included, equals a buffer that stores next_obs."""
    rng = np.random.default_rng(seed)
    nstep = None if seed % 2 == 0 else {"size": int(rng.integers(1, 5)), "rew": "rew", "gamma": 0.5, "next": "next_obs"}
    size = int(rng.integers(3, 20))
    shared = ReplayBuffer(size, NEXT_OF_ENV, next_of="obs", Nstep=nstep, rng=0)
    naive = ReplayBuffer(size, {**NEXT_OF_ENV, "next_obs": {"shape": 3}}, Nstep=nstep, rng=0)
    t = 0
    for ep in range(int(rng.integers(2, 8))):
        length = int(rng.integers(1, 9))
        steps = [
            {
                "obs": np.full(3, t + i),
                "act": (t + i) % 3,
                "rew": float(t + i),
                "next_obs": np.full(3, t + i + 1),
                "done": float(i == length - 1 and ep % 2 == 0),
            }
            for i in range(length)
        ]
        for rb in (shared, naive):
            if rng.random() < 0.3:
                rb.add(**{k: np.array([s[k] for s in steps]) for k in steps[0]})
            else:
                for s in steps:
                    rb.add(**s)
        t += length + 100  # the next episode starts elsewhere
        if rng.random() < 0.8:
            shared.on_episode_end()
            naive.on_episode_end()
    got, want = shared.get_all_transitions(), naive.get_all_transitions()
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    sample = shared.sample(64)
    np.testing.assert_array_equal(sample["next_obs"], want["next_obs"][sample["indexes"]])


def _through_batch_links(rb: ReplayBuffer) -> None:
    """Route ``rb``'s one-row link updates through the batch ``before_write``/``after_write`` on one row."""
    links = rb._next_of
    assert links is not None

    def before(row: int, column: np.ndarray) -> None:
        type(links).before_write(links, np.array([row], dtype=np.int64), column)

    def after(row: int, column: np.ndarray, read_one: object, values: dict, steps: int) -> None:
        rows, counts = np.array([row], dtype=np.int64), np.array([steps], dtype=np.int64)
        type(links).after_write(links, rows, column, rb._read, {n: values[n] for n in links.pairs}, counts)

    links.before_write_one = before  # type: ignore[method-assign]
    links.after_write_one = after  # type: ignore[method-assign]


@pytest.mark.parametrize("seed", range(40))
def test_next_of_single_add_state_equals_batch_link_update(seed: int) -> None:
    """The one-row link update (``NextOfLinks.after_write_one``, the hot path) leaves exactly the state the batch
    update leaves for one row: the same links, side store, free slots (in order) and pending entries (in order),
    through N-step windows, ring wrap-around, episodes cut without ``on_episode_end``, chains broken on purpose
    and values that repeat (small ranges link rows by chance)."""
    rng = np.random.default_rng(1000 + seed)
    size = int(rng.integers(1, 12))
    n = int(rng.integers(1, min(size, 4) + 1))
    nstep = None if seed % 3 == 0 else {"size": n, "rew": "rew", "gamma": 0.9, "next": "next_obs"}
    env = {"obs": {"shape": 2, "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}}
    fast = ReplayBuffer(size, env, next_of="obs", Nstep=nstep, rng=0)
    slow = ReplayBuffer(size, env, next_of="obs", Nstep=nstep, rng=0)
    _through_batch_links(slow)
    obs = rng.integers(0, 3, 2).astype(np.uint8)
    for _ in range(int(rng.integers(5, 60))):
        nxt = rng.integers(0, 3, 2).astype(np.uint8)
        done = float(rng.random() < 0.15)
        for rb in (fast, slow):
            rb.add(obs=obs, act=1, rew=0.5, next_obs=nxt, done=done)
        obs = nxt if rng.random() > 0.1 else rng.integers(0, 3, 2).astype(np.uint8)  # a broken chain now and then
        if done or rng.random() < 0.05:
            if rng.random() < 0.8:
                fast.on_episode_end()
                slow.on_episode_end()
            obs = rng.integers(0, 3, 2).astype(np.uint8)
        a, b = fast._next_of, slow._next_of
        assert a is not None and b is not None
        np.testing.assert_array_equal(fast._cols[LINK], slow._cols[LINK])
        np.testing.assert_array_equal(a._side["next_obs"], b._side["next_obs"])
        np.testing.assert_array_equal(a._pending, b._pending)
        assert a._free == b._free
    got, want = fast.get_all_transitions(), slow.get_all_transitions()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)


@pytest.mark.parametrize(
    ("one_by_one", "nstep"),
    [(False, None), (True, None), (True, 3)],
    ids=["batch-adds", "single-adds", "single-adds-nstep3"],
)
def test_next_of_memory_is_close_to_obs_alone(one_by_one: bool, nstep: int | None) -> None:
    """84x84 uint8 frames: storage (records + side store) within 1.05x of the obs array alone (naive: 2x),
    whether episodes come as one batch add or one transition at a time (each single add takes a side slot
    that the next add frees: the side store must not grow). With 3-step returns, three rows wait at once for
    their successor three rows on, and each add resolves one of them: the others must stay pending."""
    size, frame = 3000, (84, 84)
    rb = ReplayBuffer(
        size,
        {"obs": {"shape": frame, "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}},
        next_of="obs",
        Nstep=None if nstep is None else {"size": nstep, "rew": "rew", "gamma": 0.99, "next": "next_obs"},
    )
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 255, frame, dtype=np.uint8)
    for _ in range(30):  # 30 episodes of 100 steps fill the ring
        frames = rng.integers(0, 255, (101, *frame), dtype=np.uint8)
        frames[0] = obs
        done = np.eye(1, 100, 99)[0]
        if one_by_one:
            for i in range(100):
                rb.add(obs=frames[i], act=0, rew=1.0, next_obs=frames[i + 1], done=done[i])
        else:
            rb.add(obs=frames[:-1], act=np.zeros(100), rew=np.ones(100), next_obs=frames[1:], done=done)
        rb.on_episode_end()
        obs = frames[-1]
    obs_alone = size * int(np.prod(frame))
    total = rb._store.nbytes + rb._next_of.nbytes  # type: ignore[union-attr]
    assert total <= 1.05 * obs_alone, total / obs_alone
    stored = rb.get_all_transitions()
    assert stored["next_obs"].shape == (size, *frame)


def test_next_of_full_size_layout_is_within_bound() -> None:
    """The 1e6 x 84x84 case, by layout only (no pages touched): one record per row plus a small side store."""
    rb = ReplayBuffer(
        1e6,
        {"obs": {"shape": (84, 84), "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}},
        next_of="obs",
    )
    obs_alone = 10**6 * 84 * 84
    assert rb._store.nbytes / obs_alone < 1.004  # 7056 bytes of obs + act, rew, done and the link: 7080
    assert rb._next_of.nbytes < 0.01 * obs_alone  # type: ignore[union-attr]


def test_next_of_checkpoint_round_trip(tmp_path: Path) -> None:
    nstep = {"size": 2, "rew": "rew", "gamma": 0.9, "next": "next_obs"}
    a = ReplayBuffer(7, NEXT_OF_ENV, next_of="obs", Nstep=nstep, rng=1)
    rng = np.random.default_rng(5)
    for _ in range(11):
        a.add(obs=rng.random(3), act=1, rew=1.0, next_obs=rng.random(3), done=0.0)
    a.save_checkpoint(tmp_path / "n.npz")
    b = ReplayBuffer(7, NEXT_OF_ENV, next_of="obs", Nstep=nstep, rng=2)
    b.load_checkpoint(tmp_path / "n.npz")
    for rb in (a, b):
        rb.add(obs=np.ones(3), act=2, rew=0.5, next_obs=np.zeros(3), done=1.0)
        rb.on_episode_end()
    for key, value in a.get_all_transitions().items():
        np.testing.assert_array_equal(b.get_all_transitions()[key], value)
    with pytest.raises(ValueError, match="do not match"):
        ReplayBuffer(7, {**NEXT_OF_ENV, "next_obs": {"shape": 3}}, Nstep=nstep).load_checkpoint(tmp_path / "n.npz")


# ------------------------------------------------------------------------------------------------ stack_compress
FRAME, DEPTH = (2,), 3
STACK_ENV = {"obs": {"shape": (*FRAME, DEPTH)}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}}


def _stacked_episode(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """obs and next_obs of an episode of stacked frames: the reset frame repeated, then one new frame per step."""
    frames = rng.integers(0, 50, (length + 1, *FRAME)).astype(np.float32)
    padded = np.concatenate([np.repeat(frames[:1], DEPTH - 1, axis=0), frames])
    stacks = np.stack([np.moveaxis(padded[t : t + DEPTH], 0, -1) for t in range(length + 1)])  # (L + 1, *FRAME, S)
    return stacks[:-1], stacks[1:]


@pytest.mark.parametrize("seed", range(16))
def test_stack_compress_gives_exactly_what_naive_storage_gives(seed: int) -> None:
    """Random episodes of stacked frames (single and batch adds, N-step or not, next_of or not, ring
    wrap-around, an occasional observation that breaks the stacking rule): everything equals naive storage."""
    rng = np.random.default_rng(seed)
    nstep = None if seed % 2 == 0 else {"size": int(rng.integers(1, 5)), "rew": "rew", "gamma": 0.5, "next": "next_obs"}
    size = int(rng.integers(2, 25))
    if nstep is not None:
        nstep["size"] = min(nstep["size"], size)  # the window may not exceed the buffer
    use_next_of = seed % 4 >= 2
    naive_env = {**STACK_ENV, "next_obs": STACK_ENV["obs"]}
    compressed = ReplayBuffer(
        size,
        STACK_ENV if use_next_of else naive_env,
        next_of="obs" if use_next_of else None,
        stack_compress="obs" if use_next_of else ["obs", "next_obs"],
        Nstep=nstep,
        rng=0,
    )
    naive = ReplayBuffer(size, naive_env, Nstep=nstep, rng=0)
    for ep in range(int(rng.integers(2, 9))):
        length = int(rng.integers(1, 9))
        obs, next_obs = _stacked_episode(rng, length)
        if rng.random() < 0.2:  # an observation that does not continue the previous stack
            obs[length // 2] += 100.0
        steps = [
            {"obs": obs[i], "act": i % 3, "rew": float(i), "next_obs": next_obs[i], "done": float(i == length - 1)}
            for i in range(length)
        ]
        for rb in (compressed, naive):
            if rng.random() < 0.3:
                rb.add(**{k: np.array([s[k] for s in steps]) for k in steps[0]})
            else:
                for s in steps:
                    rb.add(**s)
            if ep % 3 != 2:
                rb.on_episode_end()
        got, want = compressed.get_all_transitions(), naive.get_all_transitions()
        assert set(got) == set(want)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"{key} after episode {ep}")
    sample = compressed.sample(64)
    np.testing.assert_array_equal(sample["obs"], want["obs"][sample["indexes"]])
    np.testing.assert_array_equal(sample["next_obs"], want["next_obs"][sample["indexes"]])


@pytest.mark.parametrize("seed", range(12))
def test_four_deep_byte_stacks_equal_naive_storage_on_both_backends(
    seed: int, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Atari's case, 4-deep uint8 (or int8) stacks, which numba reads with its own kernel: random episodes, ring
    wrap-around, stacks that break the rule (anchors), with and without next_of: naive storage's values."""
    rng = np.random.default_rng(100 + seed)
    dtype = np.uint8 if seed % 3 else np.int8
    frame = (3, 5) if seed % 2 else (7,)
    env = {"obs": {"shape": (*frame, 4), "dtype": dtype}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}}
    use_next_of = seed % 4 < 2
    naive_env = {**env, "next_obs": env["obs"]}
    size = int(rng.integers(5, 40))
    compressed = ReplayBuffer(
        size,
        env if use_next_of else naive_env,
        next_of="obs" if use_next_of else None,
        stack_compress="obs" if use_next_of else ["obs", "next_obs"],
        rng=0,
    )
    naive = ReplayBuffer(size, naive_env, rng=0)
    calls = []
    if backend == "numba":
        from laber import _kernels_stack

        real, real_next = _kernels_stack.gather4, _kernels_stack.gather4_next
        monkeypatch.setattr(_kernels_stack, "gather4", lambda *a: (calls.append(1), real(*a))[1])
        monkeypatch.setattr(_kernels_stack, "gather4_next", lambda *a: (paired.append(1), real_next(*a))[1])
    paired: list[int] = []
    info = np.iinfo(dtype)
    for _ in range(int(rng.integers(3, 10))):
        length = int(rng.integers(1, 12))
        frames = rng.integers(info.min, info.max, (length + 1, *frame), endpoint=True).astype(dtype)
        padded = np.concatenate([np.repeat(frames[:1], 3, axis=0), frames])
        stacks = np.stack([np.moveaxis(padded[t : t + 4], 0, -1) for t in range(length + 1)])
        obs, next_obs = stacks[:-1].copy(), stacks[1:].copy()
        if rng.random() < 0.3:
            obs[length // 2, ..., 0] ^= 1  # breaks the stacking rule: an anchor inside the episode
            if length > 1 and rng.random() < 0.5:  # and the row before it links to it (next_of) all the same
                next_obs[length // 2 - 1] = obs[length // 2]
        for rb in (compressed, naive):
            rb.add(obs=obs, act=np.zeros((length, 1)), rew=np.zeros((length, 1)), next_obs=next_obs,
                   done=np.eye(1, length, length - 1).reshape(length, 1))  # fmt: skip
            rb.on_episode_end()
        got, want = compressed.get_all_transitions(), naive.get_all_transitions()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
            assert got[key].dtype == want[key].dtype
    sample = compressed.sample(64)
    np.testing.assert_array_equal(sample["obs"], want["obs"][sample["indexes"]])
    np.testing.assert_array_equal(sample["next_obs"], want["next_obs"][sample["indexes"]])
    assert bool(calls) == (backend == "numba")
    # with next_of, sample rebuilds obs and next_obs in one pass (gather4_next: shared frames read once)
    assert bool(paired) == (backend == "numba" and use_next_of)


def test_stack_compress_memory_is_about_one_frame_per_row() -> None:
    """84x84x4 uint8 stacks with next_of, 20 episodes of 100 steps: records + side stores within 0.28x of the obs
    stacks alone (records 0.251x, side stores of 20 anchors and 20 final observations the rest; naive storage of
    obs and next_obs: 2x)."""
    size, frame, depth, length = 2000, (84, 84), 4, 100
    rb = ReplayBuffer(
        size,
        {"obs": {"shape": (*frame, depth), "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}},
        next_of="obs",
        stack_compress="obs",
    )
    rng = np.random.default_rng(0)
    for _ in range(size // length + 1):
        frames = rng.integers(0, 255, (length + depth, *frame), dtype=np.uint8)
        stacks = np.stack([np.moveaxis(frames[t : t + depth], 0, -1) for t in range(length + 1)])
        rb.add(
            obs=stacks[:-1],
            act=np.zeros(length),
            rew=np.ones(length),
            next_obs=stacks[1:],
            done=np.eye(1, length, length - 1)[0],
        )
        rb.on_episode_end()
    obs_alone = size * int(np.prod(frame)) * depth
    total = rb._store.nbytes + rb._next_of.nbytes + rb._stack.nbytes  # type: ignore[union-attr]
    assert total <= 0.28 * obs_alone, total / obs_alone
    got = rb.sample(32)
    np.testing.assert_array_equal(got["obs"][:, :, :, 1:], got["next_obs"][:, :, :, :-1])


def test_stack_compress_full_size_layout_is_within_bound() -> None:
    """1e6 rows of 84x84x4 uint8 stacks, by layout only (no pages touched): one frame per row."""
    rb = ReplayBuffer(
        1e6,
        {"obs": {"shape": (84, 84, 4), "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}},
        next_of="obs",
        stack_compress="obs",
    )
    stacks_alone = 10**6 * 84 * 84 * 4
    assert rb._store.nbytes / stacks_alone < 0.2512  # 7056 bytes of frame + act, rew, done and two links: 7088


def test_stack_compress_checkpoint_round_trip(tmp_path: Path) -> None:
    a = ReplayBuffer(7, STACK_ENV, next_of="obs", stack_compress="obs", rng=1)
    rng = np.random.default_rng(3)
    for _ in range(3):
        obs, next_obs = _stacked_episode(rng, 4)
        a.add(obs=obs, act=np.ones(4), rew=np.ones(4), next_obs=next_obs, done=np.eye(1, 4, 3)[0])
        a.on_episode_end()
    a.save_checkpoint(tmp_path / "s.npz")
    b = ReplayBuffer(7, STACK_ENV, next_of="obs", stack_compress="obs", rng=2)
    b.load_checkpoint(tmp_path / "s.npz")
    obs, next_obs = _stacked_episode(rng, 5)
    for rb in (a, b):
        rb.add(obs=obs, act=np.ones(5), rew=np.ones(5), next_obs=next_obs, done=np.eye(1, 5, 4)[0])
    for key, value in a.get_all_transitions().items():
        np.testing.assert_array_equal(b.get_all_transitions()[key], value, err_msg=key)
    with pytest.raises(ValueError, match="do not match"):
        ReplayBuffer(7, STACK_ENV, next_of="obs").load_checkpoint(tmp_path / "s.npz")
