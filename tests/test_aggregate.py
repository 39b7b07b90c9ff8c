"""Aggregate statistics (laber.experiments.aggregate): exact values against brute-force definitions on random
inputs, the stratified bootstrap's strata, and the coverage of its intervals. Fixed seeds throughout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from laber.experiments import aggregate
from laber.experiments.aggregate import (
    _resample,
    aggregate_table,
    iqm,
    iqm_estimate,
    normalize,
    performance_profile,
    probability_of_improvement,
    score_matrix,
)


def _iqm_by_definition(x: np.ndarray) -> float:
    pooled = sorted(x.ravel().tolist())
    k = len(pooled) // 4
    middle = pooled[k : len(pooled) - k]
    return sum(middle) / len(middle)


def test_iqm_small_cases() -> None:
    assert iqm(np.arange(1.0, 9.0)) == 4.5  # 8 runs: drop 2 each side, mean of 3, 4, 5, 6
    assert iqm([[1.0, 2.0], [3.0, 1000.0]]) == 2.5  # pooled over tasks; the outlier is trimmed
    assert iqm([7.0]) == 7.0 and iqm([1.0, 2.0, 3.0]) == 2.0  # k = 0: the mean


@pytest.mark.parametrize("shape", [(1, 1), (5, 1), (3, 4), (10, 2), (7, 5)])
def test_iqm_matches_the_definition(shape: tuple[int, int]) -> None:
    x = np.random.default_rng(shape[0] * 10 + shape[1]).standard_cauchy(shape)
    assert iqm(x) == pytest.approx(_iqm_by_definition(x), rel=1e-12, abs=1e-12)


def test_performance_profile_matches_the_definition() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(6, 3)).astype(float)  # ties at the thresholds
    taus = np.array([-1.0, 0.0, 1.5, 2.0, 4.0, 9.0])
    value, low, high = performance_profile(x, taus, reps=200, rng=0)
    want = [np.mean([np.mean(x[:, j] > t) for j in range(3)]) for t in taus]
    np.testing.assert_allclose(value, want, rtol=0, atol=1e-15)
    assert value[0] == 1.0 and value[-1] == 0.0
    assert (low <= value + 1e-12).all() and (value <= high + 1e-12).all()


def test_probability_of_improvement_matches_the_definition() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, size=(5, 3)).astype(float)
    y = rng.integers(0, 4, size=(7, 3)).astype(float)
    per_task = []
    for j in range(3):
        s = [1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(x[:, j], y[:, j])]
        per_task.append(sum(s) / len(s))
    got = probability_of_improvement(x, y, reps=100, rng=0)
    assert got.value == pytest.approx(np.mean(per_task), abs=1e-15)
    back = probability_of_improvement(y, x, reps=100, rng=0)
    assert got.value + back.value == pytest.approx(1.0, abs=1e-15)
    assert probability_of_improvement(x, x, reps=10).value == pytest.approx(0.5)
    assert probability_of_improvement(x + 100, y, reps=10).value == 1.0


def test_the_bootstrap_resamples_runs_within_each_task() -> None:
    x = np.arange(12.0).reshape(4, 3) * 10 + np.arange(3)  # column j holds values = j mod 10
    boots = _resample(x, 500, np.random.default_rng(0))
    assert boots.shape == (500, 4, 3)
    for j in range(3):
        assert set(np.unique(boots[:, :, j])) <= set(x[:, j])  # never a run of another task
    counts = np.unique(boots[:, :, 0], return_counts=True)[1]
    assert counts.min() > 0.2 * counts.sum() / 4  # every run is drawn (a loose check of uniformity)


def test_iqm_interval_coverage() -> None:
    """The IQM of N(mu, 1) is mu. Over 300 datasets of 10 runs x 4 tasks, the 95% percentile interval covers
    mu at a rate close to 95%; the check (>= 88%) fails with probability < 1e-4 if the true rate is 94%
    (binomial, 300 trials), and the seed is fixed, so it is deterministic."""
    rng = np.random.default_rng(11)
    covered = 0
    for _ in range(300):
        x = rng.normal(0.3, 1.0, size=(10, 4))
        est = iqm_estimate(x, reps=1000, rng=rng)
        covered += est.low <= 0.3 <= est.high
    assert covered / 300 >= 0.88, covered


def test_same_seed_same_interval_and_table() -> None:
    x = np.random.default_rng(0).normal(size=(5, 2))
    assert iqm_estimate(x, rng=3) == iqm_estimate(x, rng=3)
    rows = aggregate_table({"uniform": x, "laber": x + 100}, baseline="uniform", reps=200, rng=0)
    assert [r["name"] for r in rows] == ["uniform", "laber"]
    assert rows[0]["improvement"] is None
    assert rows[1]["improvement"].value == 1.0  # type: ignore[union-attr]
    assert rows[1]["runs"] == 10


def test_normalize() -> None:
    x = np.array([[0.0, 10.0], [50.0, 20.0]])
    np.testing.assert_allclose(normalize(x, [0.0, 10.0], [100.0, 20.0]), [[0.0, 0.0], [0.5, 1.0]])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: iqm([]), "non-empty"),
        (lambda: iqm([1.0, float("nan")]), "finite"),
        (lambda: iqm("abc"), "array of numbers"),
        (lambda: iqm(np.zeros((2, 2, 2))), r"\(runs, tasks\)"),
        (lambda: iqm_estimate([1.0], level=1.5), "level"),
        (lambda: iqm_estimate([1.0], reps=0), "reps"),
        (lambda: performance_profile([1.0], []), "taus"),
        (lambda: probability_of_improvement(np.zeros((2, 2)), np.zeros((2, 3))), "same tasks"),
        (lambda: normalize([[1.0]], [0.0], [0.0]), "differ"),
        (lambda: aggregate_table({"a": [1.0]}, baseline="b"), "baseline"),
        (lambda: iqm_estimate([1.0, 2.0], variants=np.zeros((3, 3))), r"variants must have shape \(V, 2, 1\)"),
        (lambda: iqm_estimate([1.0, 2.0], variants=np.zeros((0, 2))), r"got shape \(0, 2, 1\)"),
        (lambda: iqm_estimate([1.0, 2.0], variants=[[1.0, float("inf")]]), "variants must be finite"),
        (lambda: iqm_estimate([1.0, 2.0], variants="ab"), "variants must be an array"),
        (lambda: probability_of_improvement([1.0], [2.0], variants_y=np.zeros((2, 2))), "variants_y"),
        (lambda: performance_profile([1.0], [0.5], variants=np.zeros((2, 2, 2))), "variants"),
    ],
)
def test_errors_name_the_argument(call: object, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()  # type: ignore[operator]


def test_score_matrix_copies() -> None:
    data = np.ones((3, 2))
    x = score_matrix(data)
    x[0, 0] = 5.0
    assert data[0, 0] == 1.0


def test_against_rliable_when_installed() -> None:
    """Point estimates equal rliable's (1.2.0) on random scores; skipped without it (not a dependency)."""
    metrics = pytest.importorskip("rliable.metrics")
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(9, 3)), rng.normal(0.2, 1.0, size=(9, 3))
    assert iqm(x) == pytest.approx(float(metrics.aggregate_iqm(x)), rel=1e-12)
    assert probability_of_improvement(x, y, reps=10).value == pytest.approx(
        float(metrics.probability_of_improvement(x, y)), rel=1e-12
    )


def test_variants_replace_the_scores_replicate_by_replicate() -> None:
    """Replicate b resamples the runs of variants[b mod V], with the same rows drawn as without variants; the
    point estimate is the scores'. Variants that all equal the scores change nothing."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 2))
    variants = x[np.newaxis] + rng.normal(size=(3, 1, 2))  # three shifted versions
    plain = _resample(x, 7, np.random.default_rng(1))
    varied = _resample(x, 7, np.random.default_rng(1), variants, start=2)
    rows = np.random.default_rng(1).integers(0, 6, size=(7, 6, 2))
    for b in range(7):
        v = variants[(2 + b) % 3]
        np.testing.assert_array_equal(varied[b], v[rows[b], np.arange(2)])
        np.testing.assert_array_equal(plain[b], x[rows[b], np.arange(2)])
    same = np.repeat(x[np.newaxis], 4, axis=0)
    y = rng.normal(size=(5, 2))
    assert iqm_estimate(x, reps=300, rng=2, variants=same) == iqm_estimate(x, reps=300, rng=2)
    assert performance_profile(x, [0.0], reps=300, rng=2, variants=same)[1] == pytest.approx(
        performance_profile(x, [0.0], reps=300, rng=2)[1]
    )
    assert probability_of_improvement(
        x, y, reps=300, rng=2, variants_x=same, variants_y=np.repeat(y[np.newaxis], 2, axis=0)
    ) == probability_of_improvement(x, y, reps=300, rng=2)
    # versions shifted by +-1: the point estimate stays, the interval takes in the shifts
    shifted = x[np.newaxis] + np.array([-1.0, 1.0])[:, None, None]
    fixed, moved = iqm_estimate(x, reps=400, rng=2), iqm_estimate(x, reps=400, rng=2, variants=shifted)
    assert moved.value == fixed.value and moved.low < fixed.low - 0.5 and moved.high > fixed.high + 0.5
    # one task: (V, runs) is accepted
    assert iqm_estimate(x[:, 0], reps=50, variants=shifted[:, :, 0]).value == iqm(x[:, 0])


def test_variants_of_both_algorithms_stay_paired() -> None:
    """x and y shifted by the same amount per version: replicate b uses version b mod V of both, so P(X > Y) is
    the unshifted one exactly (unpaired versions would mix the shifts and change it). Chunks of the loop keep the
    replicate count (start) right."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(6, 2)), rng.normal(size=(5, 2))
    shifts = np.array([-50.0, 0.0, 50.0])[:, None, None]
    paired = probability_of_improvement(x, y, reps=301, rng=4, variants_x=x[None] + shifts, variants_y=y[None] + shifts)
    assert paired == probability_of_improvement(x, y, reps=301, rng=4)
    unpaired = probability_of_improvement(
        x, y, reps=301, rng=4, variants_x=x[None] + shifts, variants_y=y[None] + shifts[::-1]
    )
    assert (unpaired.low, unpaired.high) == (0.0, 1.0)


def test_chunked_bootstrap_loops_number_their_replicates_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The profile and improvement loops resample in chunks (``CHUNK_CELLS``); replicate b must use version
    b mod V whatever the chunk. Two versions of x, far below and far above y (and tau): replicate b scores
    b mod 2 exactly, so over an even number of replicates half are 0 and half 1, and the percentile at 50%
    +- a hair is 0.5 (one replicate more of either, as a chunk restarting its count at 0 gives with odd chunks,
    moves it to 0 or 1)."""
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(4, 1)), rng.normal(size=(3, 1))
    versions = x[np.newaxis] + np.array([-1000.0, 1000.0])[:, None, None]
    for cells in (2**24, 12 * 3, 12 * 5, 12 * 7):  # one chunk; chunks of 3, 5 and 7 replicates
        monkeypatch.setattr(aggregate, "CHUNK_CELLS", cells)
        p = probability_of_improvement(x, y, reps=2000, level=1e-9, rng=1, variants_x=versions)
        assert p.low == pytest.approx(0.5, abs=1e-3) and p.high == pytest.approx(0.5, abs=1e-3), cells
        monkeypatch.setattr(aggregate, "CHUNK_CELLS", cells // 3)  # profile cells: runs x tasks x taus = 4
        _, low, high = performance_profile(x, [0.0], reps=2000, level=1e-9, rng=1, variants=versions)
        assert low[0] == pytest.approx(0.5, abs=1e-3) and high[0] == pytest.approx(0.5, abs=1e-3), cells
