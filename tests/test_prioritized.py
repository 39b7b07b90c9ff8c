"""PrioritizedReplayBuffer and PER-LaBER: sampling law, weights, priorities, validation, aliasing, checkpoints.

Statistical tests use fixed seeds, so they are deterministic; each threshold is the 1e-4 upper quantile of its
reference distribution, so over random seeds each would fail by chance with probability at most about 1e-4.
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from scipy import stats

import laber
from laber import LaBERmean, PrioritizedReplayBuffer, _accel, per_laber_subsample

pytestmark = pytest.mark.usefixtures("storage_backend")  # every storage backend (tests/conftest.py)

ENV = {"obs": {"shape": 3}, "act": {"dtype": np.int64}, "rew": {}, "done": {}}


def rows(n: int, start: int = 0) -> dict[str, np.ndarray]:
    k = np.arange(start, start + n)
    return {
        "obs": np.stack([k, k + 0.5, -k], axis=1).astype(np.float32),
        "act": k % 3,
        "rew": k.astype(np.float32),
        "done": np.zeros(n, dtype=np.float32),
    }


def filled(n: int = 20, size: int = 32, priorities: np.ndarray | None = None, **kw: object) -> PrioritizedReplayBuffer:
    rb = PrioritizedReplayBuffer(size, ENV, rng=0, **kw)  # type: ignore[arg-type]
    rb.add(priorities=priorities, **rows(n))
    return rb


def expected_weights(rb: PrioritizedReplayBuffer, idx: np.ndarray, beta: float) -> np.ndarray:
    """The issue's formula, from scratch: w_i = (N P_i)^-beta / max_j (N P_j)^-beta over the stored rows."""
    p = rb.get_priorities()
    q = (p + rb.eps) ** rb.alpha
    big_p = q / q.sum()
    n = p.shape[0]
    raw = (n * big_p) ** -beta
    return raw[idx] / raw.max()


# ------------------------------------------------------------------------------------------- sampling law
def test_sampled_frequencies_chi_square(backend: str) -> None:
    # Stratified batches are not i.i.d. draws, but independent batches are independent: pool R batches and
    # compare the total counts with R * B * P_i. Within a batch the strata make counts less variable than
    # multinomial counts, so the chi-square statistic is, if anything, smaller than under i.i.d. sampling and
    # the 1e-4 false-failure probability of the threshold is an upper bound.
    n, batch, rounds = 40, 50, 300
    p = np.random.default_rng(1).random(n) ** 2
    p[3] = 0.0  # only eps keeps it drawable
    rb = filled(n, 64, priorities=p, alpha=0.7, eps=0.05)
    draws = np.concatenate([rb.sample(batch)["indexes"] for _ in range(rounds)])
    q = (p + 0.05) ** 0.7
    expected = q / q.sum() * draws.size
    counts = np.bincount(draws, minlength=n)
    assert counts.shape == (n,)  # nothing drawn beyond the stored rows
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.isf(1e-4, n - 1)


def test_alpha_zero_is_uniform_and_weights_one(backend: str) -> None:
    rb = filled(10, 16, priorities=np.linspace(0, 5, 10), alpha=0.0)
    out = rb.sample(10, beta=1.0)
    np.testing.assert_array_equal(out["indexes"], np.arange(10))  # equal masses: one row per stratum
    np.testing.assert_array_equal(out["weights"], np.ones(10, dtype=np.float32))


@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0, 2.5])
def test_weights_match_formula(backend: str, beta: float) -> None:
    rng = np.random.default_rng(2)
    rb = filled(25, 32, priorities=rng.random(25) * 3, alpha=0.6, eps=1e-3)
    rb.update_priorities(rng.integers(0, 25, 10), rng.random(10))
    out = rb.sample(64, beta=beta)
    assert out["indexes"].dtype == np.int64 and out["weights"].dtype == np.float32
    np.testing.assert_allclose(out["weights"], expected_weights(rb, out["indexes"], beta), rtol=1e-6)
    assert out["weights"].max() <= 1.0


def test_fields_match_indexes(backend: str) -> None:
    rb = filled(20, 32, priorities=np.arange(20.0))
    out = rb.sample(100)
    ref = rows(20)
    for key in ref:
        np.testing.assert_array_equal(out[key].reshape(ref[key][out["indexes"]].shape), ref[key][out["indexes"]])


def test_seeded_reproducible(backend: str) -> None:
    a, b = filled(priorities=np.arange(20.0)), filled(priorities=np.arange(20.0))
    for _ in range(3):
        np.testing.assert_array_equal(a.sample(16)["indexes"], b.sample(16)["indexes"])


# ---------------------------------------------------------------------------------------------- priorities
def test_running_max_priority(backend: str) -> None:
    rb = PrioritizedReplayBuffer(16, ENV, rng=0)
    assert rb.get_max_priority() == 1.0
    rb.add(**rows(2))
    np.testing.assert_array_equal(rb.get_priorities(), [1.0, 1.0])
    rb.add(priorities=[0.5, 3.0], **rows(2, 2))
    assert rb.get_max_priority() == 3.0
    rb.add(**rows(1, 4))
    assert rb.get_priorities()[4] == 3.0
    rb.update_priorities([0], [7.0])
    assert rb.get_max_priority() == 7.0
    rb.update_priorities([0], [0.1])  # a running maximum never goes down
    assert rb.get_max_priority() == 7.0
    np.testing.assert_array_equal(rb.get_priorities(), [0.1, 1.0, 0.5, 3.0, 3.0])


@pytest.mark.parametrize("as_array", [False, True])
def test_update_priorities_duplicates_last_wins(backend: str, as_array: bool) -> None:
    rb = filled(10, 16)
    idx, new = [2, 5, 2, 2], [9.0, 4.0, 0.25, 6.0]
    if as_array:
        rb.update_priorities(np.array(idx), np.array(new, dtype=np.float32))
    else:
        rb.update_priorities(idx, new)
    p = rb.get_priorities()
    assert p[2] == 6.0 and p[5] == 4.0
    q = (p + rb.eps) ** rb.alpha
    assert rb._tree.total() == pytest.approx(q.sum(), rel=1e-12)
    np.testing.assert_array_equal(rb._tree.leaves()[:10], q)


def test_wraparound_new_rows_get_max_priority(backend: str) -> None:
    rb = filled(8, 8, priorities=np.full(8, 0.5))
    rb.update_priorities([1], [4.0])
    rb.add(**rows(3, 100))  # overwrites rows 0..2 with the running max
    np.testing.assert_array_equal(rb.get_priorities()[:3], [4.0, 4.0, 4.0])
    q = (rb.get_priorities() + rb.eps) ** rb.alpha
    assert rb._tree.total() == pytest.approx(q.sum(), rel=1e-12)


@pytest.mark.parametrize("eps", [0.0, 0.02])
def test_masses_total_and_min_match_the_formula(backend: str, eps: float) -> None:
    """get_masses / get_total_mass / get_min_mass against q = (p + eps) ** alpha from get_priorities, through
    random adds (wrapping the ring), updates with duplicates and zero priorities (eps = 0: rows of mass 0, left
    out of the minimum)."""
    rng = np.random.default_rng(11)
    rb = PrioritizedReplayBuffer(32, ENV, alpha=0.7, eps=eps, rng=0)
    assert rb.get_total_mass() == 0.0 and rb.get_min_mass() == np.inf and rb.get_masses().shape == (0,)
    start = 0
    for n in (7, 13, 20, 9):  # 49 rows into 32: the ring wraps
        p = rng.uniform(0.0, 5.0, n) * (rng.random(n) < 0.8)  # about one in five is exactly 0
        rb.add(priorities=p, **rows(n, start))
        start += n
        idx = rng.integers(0, rb.get_stored_size(), 12)
        rb.update_priorities(idx, np.where(rng.random(12) < 0.3, 0.0, rng.uniform(0.0, 5.0, 12)))
        q = (rb.get_priorities() + eps) ** 0.7
        masses = rb.get_masses()
        assert masses.dtype == np.float64 and masses.shape == (rb.get_stored_size(),)
        np.testing.assert_array_equal(masses, q)  # the tree's leaves are the formula, bit for bit
        assert rb.get_total_mass() == pytest.approx(q.sum(), rel=1e-12)
        assert rb.get_min_mass() == q[q > 0].min()
        some = rng.integers(0, rb.get_stored_size(), 10)
        np.testing.assert_array_equal(rb.get_masses(some), q[some])
    masses = rb.get_masses()
    masses[:] = -1.0  # a fresh array: writing into it does not reach the buffer
    np.testing.assert_array_equal(rb.get_masses(), (rb.get_priorities() + eps) ** 0.7)


def test_masses_reject_bad_indexes_and_change_nothing(backend: str) -> None:
    rb = filled(20, 32, priorities=np.arange(20.0))
    before = snapshot(rb)
    with pytest.raises(ValueError, match=r"indexes must be in \[0, 20\), got 20"):
        rb.get_masses([3, 20])
    with pytest.raises(TypeError, match=r"indexes must be integers"):
        rb.get_masses([1.5])
    with pytest.raises(ValueError, match=r"indexes must be 1-D"):
        rb.get_masses([[1]])
    assert_unchanged(rb, before)
    rb.clear()
    assert rb.get_total_mass() == 0.0 and rb.get_min_mass() == np.inf


def test_nstep_priority_follows_first_transition() -> None:
    rb = PrioritizedReplayBuffer(16, ENV, Nstep={"size": 3, "rew": "rew", "gamma": 0.5}, rng=0)
    for t in range(5):
        rb.add(priorities=float(t + 1), **{k: v[0] for k, v in rows(1, t).items()})
    rb.on_episode_end()
    stored = rb.get_stored_size()
    assert stored == 5
    np.testing.assert_array_equal(rb.get_priorities(), [1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_array_equal(rb.get_all_transitions()["obs"][:, 0], np.arange(5))


# -------------------------------------------------------------------------------------------------- aliasing
def test_results_unchanged_by_next_sample(backend: str) -> None:
    rb = filled(20, 32, priorities=np.arange(1.0, 21.0))
    first = rb.sample(8)
    copies = {k: v.copy() for k, v in first.items()}
    rb.sample(64)
    rb.update_priorities(first["indexes"], np.full(8, 100.0))
    rb.add(**rows(5, 50))
    for key, value in copies.items():
        np.testing.assert_array_equal(first[key], value)
    first["indexes"][:] = 0  # writing into a result does not reach the buffer
    first["weights"][:] = 0
    assert rb.sample(4)["weights"].max() > 0


# ------------------------------------------------------------------------------------------------ validation
def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match=r"alpha must be a finite real number >= 0, got alpha=-1"):
        PrioritizedReplayBuffer(8, ENV, alpha=-1)
    with pytest.raises(ValueError, match=r"eps must be a finite real number >= 0, got eps=-0\.1"):
        PrioritizedReplayBuffer(8, ENV, eps=-0.1)
    with pytest.raises(TypeError, match=r"alpha must be a finite real number >= 0, got alpha='x'"):
        PrioritizedReplayBuffer(8, ENV, alpha="x")  # type: ignore[arg-type]


def snapshot(rb: PrioritizedReplayBuffer) -> tuple[int, np.ndarray, float, float, float]:
    return rb.get_stored_size(), rb.get_priorities(), rb.get_max_priority(), rb._tree.total(), rb._tree.min()


def assert_unchanged(rb: PrioritizedReplayBuffer, before: tuple[int, np.ndarray, float, float, float]) -> None:
    after = snapshot(rb)
    assert after[0] == before[0]
    np.testing.assert_array_equal(after[1], before[1])
    assert after[2:] == before[2:]
    assert np.isfinite(rb._tree.total())


@pytest.mark.parametrize(
    ("indexes", "priorities", "error", "match"),
    [
        ([20], [1.0], ValueError, r"indexes must be in \[0, 20\), got 20"),
        ([-1], [1.0], ValueError, r"indexes must be in \[0, 20\), got -1"),
        ([1_000_000], [1.0], ValueError, r"indexes must be in \[0, 20\), got 1000000"),
        ([0.5], [1.0], TypeError, r"indexes must be integers"),
        ([1, 2], [1.0, np.nan], ValueError, r"priorities must be finite and >= 0, got priorities\[1\]=nan"),
        ([1], [-2.0], ValueError, r"priorities must be finite and >= 0, got priorities\[0\]=-2\.0"),
        ([1], [np.inf], ValueError, r"priorities must be finite and >= 0, got priorities\[0\]=inf"),
        ([1, 2], [1.0], ValueError, r"one value per index, got 1 priorities for 2 indexes"),
        ([[1]], [1.0], ValueError, r"indexes must be 1-D"),
        ([1], ["a"], TypeError, r"priorities must be real numbers"),
        # numpy arrays (the checks of the compiled path), and the order of the checks
        (np.array([3, 20]), np.ones(2), ValueError, r"indexes must be in \[0, 20\), got 20 in indexes=array"),
        (np.array([-4, 3], np.int32), np.ones(2), ValueError, r"indexes must be in \[0, 20\), got -4"),
        (np.array([2**63], np.uint64), np.ones(1), ValueError, r"indexes must be in \[0, 20\)"),
        (np.array([1, 2]), np.array([1.0, np.nan]), ValueError, r"got priorities\[1\]=nan"),
        (np.array([1, 2, 3]), np.array([1, -2, 3], np.float32), ValueError, r"got priorities\[1\]=-2\.0"),
        (np.array([1, 2]), np.array([np.inf, 1.0]), ValueError, r"got priorities\[0\]=inf"),
        (np.array([1, 2]), np.ones(3), ValueError, r"one value per index, got 3 priorities for 2 indexes"),
        (np.array([1, 20]), np.array([np.nan]), ValueError, r"indexes must be in \[0, 20\), got 20"),
        (np.array([1]), np.array([np.nan, 1.0]), ValueError, r"got priorities\[0\]=nan"),
        (np.array([1.0]), np.ones(1), TypeError, r"indexes must be integers"),
        (np.array([[1]]), np.ones(1), ValueError, r"indexes must be 1-D"),
        (np.array([1]), np.ones((1, 1)), ValueError, r"priorities must be 1-D"),
        (np.array([1]), np.array([1 + 1j]), TypeError, r"priorities must be real numbers"),
    ],
)
def test_update_priorities_errors_leave_buffer_unchanged(
    backend: str, indexes: object, priorities: object, error: type[Exception], match: str
) -> None:
    rb = filled(20, 32, priorities=np.arange(20.0))
    before = snapshot(rb)
    with pytest.raises(error, match=match):
        rb.update_priorities(indexes, priorities)
    assert_unchanged(rb, before)


def test_priority_overflow_rejected(backend: str) -> None:
    rb = filled(4, 8, alpha=2.0)
    before = snapshot(rb)
    with pytest.raises(ValueError, match=r"priorities too large"):
        rb.update_priorities([0], [1e200])
    with pytest.raises(ValueError, match=r"priorities too large"):
        rb.add(priorities=[1e300], **rows(1))
    assert_unchanged(rb, before)


@pytest.mark.parametrize(
    ("priorities", "error", "match"),
    [
        ([1.0, np.nan, 1.0], ValueError, r"priorities must be finite and >= 0, got priorities\[1\]=nan"),
        ([1.0, 1.0, -1.0], ValueError, r"priorities must be finite and >= 0, got priorities\[2\]=-1\.0"),
        ([1.0, 1.0], ValueError, r"priorities must have one value per row added, got 2 priorities for 3 rows"),
    ],
)
def test_add_errors_leave_buffer_unchanged(
    backend: str, priorities: object, error: type[Exception], match: str
) -> None:
    rb = filled(20, 32, priorities=np.arange(20.0))
    before = snapshot(rb)
    with pytest.raises(error, match=match):
        rb.add(priorities=priorities, **rows(3))
    assert_unchanged(rb, before)


def test_sample_errors(backend: str) -> None:
    rb = PrioritizedReplayBuffer(8, ENV, rng=0)
    with pytest.raises(ValueError, match=r"empty buffer"):
        rb.sample(4)
    rb.add(**rows(3))
    with pytest.raises(ValueError, match=r"beta must be a finite real number >= 0, got beta=-0\.5"):
        rb.sample(4, beta=-0.5)
    with pytest.raises(ValueError, match=r"batch_size must be a positive integer, got batch_size=0"):
        rb.sample(0)
    rb = filled(4, 8, priorities=np.zeros(4), eps=0.0)
    with pytest.raises(ValueError, match=r"cannot sample: the total mass is 0\.0"):
        rb.sample(2)


def test_zero_mass_rows_never_drawn(backend: str) -> None:
    rb = filled(10, 16, priorities=np.r_[np.zeros(5), np.ones(5)], eps=0.0)
    draws = np.concatenate([rb.sample(32)["indexes"] for _ in range(20)])
    assert draws.min() >= 5
    assert np.all(rb.sample(8, beta=1.0)["weights"] == 1.0)


def test_clear_resets_priorities(backend: str) -> None:
    rb = filled(5, 8, priorities=np.full(5, 9.0))
    rb.clear()
    assert rb.get_stored_size() == 0 and rb.get_max_priority() == 1.0 and rb._tree.total() == 0.0
    rb.add(**rows(2))
    np.testing.assert_array_equal(rb.get_priorities(), [1.0, 1.0])


# ----------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_keeps_priorities_and_running_max(backend: str, tmp_path: pathlib.Path) -> None:
    rb = filled(20, 32, priorities=np.arange(20.0))
    rb.update_priorities([3, 4], [50.0, 0.0])
    path = tmp_path / "per.npz"
    rb.save_checkpoint(path)
    other = PrioritizedReplayBuffer(32, ENV, rng=5)
    other.load_checkpoint(path)
    np.testing.assert_array_equal(other.get_priorities(), rb.get_priorities())
    assert other.get_max_priority() == 50.0
    assert other._tree.total() == rb._tree.total() and other._tree.min() == rb._tree.min()
    np.testing.assert_array_equal(other.sample(16)["indexes"], rb.sample(16)["indexes"])  # rng state too


# ------------------------------------------------------------------------------------ numpy == numba, bit for bit
@pytest.mark.skipif(_accel._import_numba() is None, reason="numba is not installed (the 'fast' extra)")
@pytest.mark.parametrize("eps", [1e-4, 0.0])
def test_backends_give_identical_samples_weights_and_trees(eps: float) -> None:
    def run(numba: bool) -> list[object]:
        laber.set_numba(numba)
        try:
            rng = np.random.default_rng(9)
            rb = PrioritizedReplayBuffer(300, ENV, alpha=0.7, eps=eps, rng=1)
            rb.add(priorities=rng.random(250) * (rng.random(250) < 0.7), **rows(250))
            rb.add(**rows(100, 250))  # wraps around, running max priority
            seen: list[object] = []
            for step in range(30):
                out = rb.sample(64, beta=0.1 * step)
                seen += [out["indexes"], out["weights"], out["obs"]]
                new = rng.random(64) ** 4 * (rng.random(64) < 0.9)
                if step % 3 == 0:
                    rb.update_priorities(out["indexes"].tolist(), new.tolist())  # lists: the general checks
                elif step % 3 == 1:
                    rb.update_priorities(out["indexes"][::-1], new.astype(np.float32))
                else:
                    rb.update_priorities(rng.integers(0, 300, 64), new)  # unsorted, with duplicates
            seen += [rb.get_priorities(), rb.get_max_priority(), rb._tree._sum_flat, rb._tree._min_flat]
            return seen
        finally:
            laber.set_numba(None)

    a, b = run(False), run(True)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype
            np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8))  # bit for bit
        else:
            assert x == y


# ----------------------------------------------------------------------------------------------- PER-LaBER
def test_per_laber_maps_positions_to_buffer_rows() -> None:
    rb = filled(20, 32, priorities=np.arange(1.0, 21.0))
    laber = LaBERmean(8, 4, rng=3)
    large = rb.sample(32, beta=0.5)
    surrogate = np.random.default_rng(4).random(32)
    out = per_laber_subsample(laber, large, surrogate)
    pos = out["positions"]
    assert pos.dtype == np.int64 and pos.shape == (8,)
    np.testing.assert_array_equal(out["indexes"], large["indexes"][pos])
    ref = rows(20)
    for key in ref:
        np.testing.assert_array_equal(out[key], large[key][pos])
        np.testing.assert_array_equal(out[key].reshape(ref[key][out["indexes"]].shape), ref[key][out["indexes"]])
    np.testing.assert_array_equal(out["per_weights"], large["weights"][pos])
    q = surrogate + laber.eps
    np.testing.assert_allclose(out["laber_weights"], q.mean() / q[pos], rtol=1e-12)
    np.testing.assert_allclose(out["weights"], out["per_weights"] * out["laber_weights"], rtol=1e-6)
    # the caller writes back all m * B priorities
    rb.update_priorities(large["indexes"], surrogate)
    last = {int(i): float(s) for i, s in zip(large["indexes"], surrogate, strict=True)}
    for i, s in last.items():
        assert rb.get_priorities([i])[0] == s


def test_per_laber_rejects_bad_inputs() -> None:
    rb = filled(20, 32)
    large = rb.sample(32)
    with pytest.raises(ValueError, match=r"m \* batch_size = 16 rows for this LaBER sampler, got 32 rows"):
        per_laber_subsample(LaBERmean(4, 4), large, np.ones(32))
    with pytest.raises(ValueError, match=r"dict returned by PrioritizedReplayBuffer.sample \(with 'weights'\)"):
        per_laber_subsample(LaBERmean(8, 4), {k: v for k, v in large.items() if k != "weights"}, np.ones(32))
    with pytest.raises(ValueError, match=r"field named 'positions'"):
        per_laber_subsample(LaBERmean(8, 4), {**large, "positions": np.ones(32)}, np.ones(32))


def test_per_laber_combined_weights_unbiased() -> None:
    # beta = 1: E[mean_b per_b * laber_b * f_b] = c * mean over the buffer of f, with c = min_j (N P_j) the
    # constant PER normalisation. Mean of 4000 independent estimates vs the exact value, 5 standard errors
    # (false-failure probability about 6e-7 under the normal approximation).
    n = 30
    p = np.random.default_rng(6).random(n) + 0.05
    rb = filled(n, 32, priorities=p, alpha=1.0, eps=0.0)
    f = np.random.default_rng(7).random(n) * 10
    laber = LaBERmean(4, 4, rng=8)
    estimates = np.empty(4000)
    for t in range(estimates.size):
        large = rb.sample(16, beta=1.0)
        surrogate = np.abs(f[large["indexes"]] - 3.0)
        out = per_laber_subsample(laber, large, surrogate)
        estimates[t] = np.mean(out["weights"].astype(np.float64) * f[out["indexes"]])
    big_p = p / p.sum()
    target = (n * big_p).min() * f.mean()
    se = estimates.std(ddof=1) / np.sqrt(estimates.size)
    assert abs(estimates.mean() - target) < 5 * se
