"""SumMinTree: exact agreement with brute force after random updates, search semantics, stratified law, errors.

The chi-square test uses a fixed seed, so it is deterministic; its threshold is the 1e-4 upper quantile, so
over random seeds it would fail by chance with probability 1e-4.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

import laber
from laber import _accel
from laber.sumtree import SumMinTree

T = TypeVar("T")
needs_numba = pytest.mark.skipif(_accel._import_numba() is None, reason="numba is not installed (the 'fast' extra)")


def brute_min(leaves: np.ndarray) -> float:
    positive = leaves[leaves > 0]
    return float(positive.min()) if positive.size else math.inf


def check_tree(tree: SumMinTree, leaves: np.ndarray) -> None:
    """Every level equals a from-scratch reduction of the level below; totals agree with exact sums."""
    np.testing.assert_array_equal(tree.leaves(), leaves)
    for below, level in zip(tree._sums[:-1], tree._sums[1:], strict=True):
        m = below.shape[0] // 2
        np.testing.assert_array_equal(level[:m], below[0::2] + below[1::2])
        assert not level[m:].any()
    k = tree.min_fanout
    for below, level in zip(tree._mins[:-1], tree._mins[1:], strict=True):
        m = below.shape[0] // k
        np.testing.assert_array_equal(level[:m], below.reshape(-1, k).min(axis=1))
    assert tree.total() == pytest.approx(math.fsum(leaves), rel=1e-12, abs=1e-300)
    assert tree.min() == brute_min(leaves)
    assert not np.isnan(np.concatenate(tree._sums)).any()
    assert not tree._sums[0][tree.capacity :].any()  # padding leaves stay at mass 0


updates = st.lists(
    st.tuples(
        st.lists(st.integers(0, 199), min_size=0, max_size=40),
        st.lists(st.one_of(st.just(0.0), st.floats(1e-300, 1e6)), min_size=40, max_size=40),
    ),
    min_size=1,
    max_size=8,
)


# The backend fixture only switches a global setting, so sharing it between hypothesis examples is safe.
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.integers(1, 200), top_size=st.sampled_from([1, 2, 3, 16]), batches=updates)
def test_tree_matches_brute_force(
    backend: str, capacity: int, top_size: int, batches: list[tuple[list[int], list[float]]]
) -> None:
    tree = SumMinTree(capacity, top_size=top_size, min_fanout=3)
    leaves = np.zeros(capacity)
    for raw_idx, raw_vals in batches:
        idx = np.array([i % capacity for i in raw_idx], dtype=np.int64)
        vals = np.array(raw_vals[: len(idx)], dtype=np.float64)
        tree.update(idx, vals)
        for i, x in zip(idx, vals, strict=True):  # sequential reference: the last value wins
            leaves[i] = x
        check_tree(tree, leaves)


def test_duplicates_last_value_wins(backend: str) -> None:
    tree = SumMinTree(10)
    tree.update([3, 5, 3, 3, 5], [1.0, 2.0, 7.0, 4.0, 0.5])
    expected = np.zeros(10)
    expected[3], expected[5] = 4.0, 0.5
    check_tree(tree, expected)


def test_large_random_matches_brute_force(backend: str) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    tree = SumMinTree(n, top_size=8, min_fanout=4)
    leaves = np.zeros(n)
    for size in [300] * 20 + [n, 2 * n, 1, 0]:  # small updates, then large ones (rebuilt level by level)
        idx = rng.integers(0, n, size)
        vals = rng.random(size) * (rng.random(size) < 0.8)
        tree.update(idx, vals)
        for i, x in zip(idx, vals, strict=True):
            leaves[i] = x
        check_tree(tree, leaves)


def test_find_prefix_sum_semantics(backend: str) -> None:
    rng = np.random.default_rng(4)
    n = 777
    leaves = rng.random(n) * (rng.random(n) < 0.7)
    tree = SumMinTree(n, top_size=4)
    tree.update(np.arange(n), leaves)
    cum = np.cumsum(leaves)
    v = rng.random(5000) * cum[-1]
    found = tree.find_prefix_sum(v)
    assert found.dtype == np.int64
    expected = np.searchsorted(cum, v, side="right")
    # Agreement except where v is within rounding of a boundary.
    near = np.abs(cum[np.minimum(expected, n - 1)] - v) < 1e-9
    assert np.all((found == expected) | near)
    assert (leaves[found] > 0).all()


def test_search_never_returns_zero_mass_leaf_at_the_edges(backend: str) -> None:
    tree = SumMinTree(64, top_size=1)
    vals = np.zeros(64)
    vals[[5, 40]] = [1e-300, 3.0]
    tree.update(np.arange(64), vals)
    total = tree.total()
    v = np.array([0.0, 1e-300, math.nextafter(total, 0.0), total, 2 * total, -1.0])
    assert set(tree.find_prefix_sum(v).tolist()) <= {5, 40}


def test_stratified_sample_frequencies_chi_square(backend: str) -> None:
    # Pool many independent stratified batches: each batch's draws are dependent, but the count of leaf k in
    # one batch has mean B q_k / T, and the pooled counts over R independent batches are compared with their
    # expectation. The strata make the batch counts *less* variable than multinomial counts, so the chi-square
    # statistic is stochastically smaller than under i.i.d. draws and the stated false-failure rate (1e-4) is
    # an upper bound.
    rng = np.random.default_rng(5)
    n, batch, rounds = 50, 64, 400
    q = rng.random(n) ** 2 + 0.01
    tree = SumMinTree(n, top_size=4)
    tree.update(np.arange(n), q)
    gen = np.random.default_rng(6)
    draws = np.concatenate([tree.sample_stratified(batch, gen) for _ in range(rounds)])
    counts = np.bincount(draws, minlength=n)
    expected = q / q.sum() * draws.size
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.isf(1e-4, n - 1)


def test_stratified_one_draw_per_segment(backend: str) -> None:
    tree = SumMinTree(8, top_size=2)
    tree.update(np.arange(8), np.ones(8))
    # Equal masses and 8 strata: each stratum is exactly one leaf.
    np.testing.assert_array_equal(tree.sample_stratified(8, rng=0), np.arange(8))
    draws = tree.sample_stratified(4, rng=1)
    assert np.all(draws // 2 == np.arange(4))


def test_seeded_sampling_reproducible(backend: str) -> None:
    tree = SumMinTree(100)
    tree.update(np.arange(100), np.linspace(0, 1, 100))
    np.testing.assert_array_equal(tree.sample_stratified(32, rng=7), tree.sample_stratified(32, rng=7))


def test_errors_leave_tree_unchanged(backend: str) -> None:
    tree = SumMinTree(10)
    tree.update([1, 2], [1.0, 2.0])
    before = tree.leaves()
    with pytest.raises(ValueError, match=r"indexes must be in \[0, 10\), got 10"):
        tree.update([1, 10], [1.0, 1.0])
    with pytest.raises(ValueError, match=r"indexes must be in \[0, 10\), got -1"):
        tree.update([-1], [1.0])
    with pytest.raises(TypeError, match="indexes must be integers"):
        tree.update([1.5], [1.0])
    with pytest.raises(ValueError, match="values must be finite and >= 0"):
        tree.update([1, 2], [1.0, np.nan])
    with pytest.raises(ValueError, match="values must be finite and >= 0"):
        tree.update([1], [-1.0])
    with pytest.raises(ValueError, match="values must be finite and >= 0"):
        tree.update([1], [np.inf])
    with pytest.raises(ValueError, match="one entry per index, got 1 values for 2 indexes"):
        tree.update([1, 2], [1.0])
    with pytest.raises(ValueError, match="indexes must be 1-D"):
        tree.update([[1]], [1.0])
    np.testing.assert_array_equal(tree.leaves(), before)
    with pytest.raises(ValueError, match="capacity must be a positive integer, got capacity=0"):
        SumMinTree(0)
    with pytest.raises(ValueError, match="min_fanout must be >= 2, got min_fanout=1"):
        SumMinTree(4, min_fanout=1)
    with pytest.raises(ValueError, match=r"total mass is 0\.0"):
        SumMinTree(4).sample_stratified(2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got batch_size=0"):
        tree.sample_stratified(0)
    with pytest.raises(ValueError, match="values must not be NaN"):
        tree.find_prefix_sum([0.5, np.nan])
    with pytest.raises(ValueError, match=r"cannot search: the total mass is 0\.0"):
        SumMinTree(4).find_prefix_sum([0.5])
    gen = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"total mass is 0\.0"):
        SumMinTree(4).sample_stratified(2, gen)
    assert gen.random() == np.random.default_rng(0).random()  # the failed call drew nothing


def test_last_wins_matches_sequential_assignment() -> None:
    rng = np.random.default_rng(8)
    for _ in range(20):
        idx = rng.integers(0, 15, rng.integers(0, 40)).astype(np.int64)
        vals = rng.random(idx.shape[0])
        resolved = SumMinTree(15).last_wins(idx, vals)
        reference: dict[int, float] = {}
        for i, x in zip(idx.tolist(), vals.tolist(), strict=True):
            reference[i] = x
        assert resolved.tolist() == [reference[i] for i in idx.tolist()]


# ------------------------------------------------------------------------------------- numpy == numba, bit for bit
def wide_range_trees(rng: np.random.Generator, count: int) -> list[tuple[int, int, np.ndarray]]:
    """``(capacity, top_size, leaves)``: masses over 35 decades, half of them 0 (rounding corner cases)."""
    out = []
    for _ in range(count):
        n = int(rng.integers(2, 300))
        leaves = np.exp(rng.uniform(-40, 40, n)) * (rng.random(n) < 0.5)
        leaves[rng.integers(0, n)] = 1.0
        out.append((n, int(rng.choice([1, 2, 4])), leaves))
    return out


def run_on(backend: str, fn: Callable[[], T]) -> T:
    """``fn()`` with the numpy or the numba backend."""
    laber.set_numba(backend == "numba")
    try:
        return fn()
    finally:
        laber.set_numba(None)


def build(capacity: int, top_size: int, steps: list[tuple[np.ndarray, np.ndarray]]) -> SumMinTree:
    tree = SumMinTree(capacity, top_size=top_size, min_fanout=3)
    for idx, vals in steps:
        tree.update(idx, vals)
    return tree


def bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint64)  # compares -0.0 and 0.0 (and NaN payloads) as different


@needs_numba
def test_backends_build_identical_trees() -> None:
    rng = np.random.default_rng(11)
    for capacity, top_size, _ in wide_range_trees(rng, 40):
        steps = []
        for size in [*rng.integers(0, 2 * capacity, 6).tolist(), capacity]:  # small, duplicated, and full updates
            idx = rng.integers(0, capacity, size)
            vals = np.exp(rng.uniform(-40, 40, size)) * (rng.random(size) < 0.6)
            steps.append((idx, vals))

        a = run_on("numpy", partial(build, capacity, top_size, steps))
        b = run_on("numba", partial(build, capacity, top_size, steps))
        np.testing.assert_array_equal(bits(a._sum_flat), bits(b._sum_flat))
        np.testing.assert_array_equal(bits(a._min_flat), bits(b._min_flat))


@needs_numba
def test_backends_same_search_including_the_careful_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    careful = [0]
    original = SumMinTree._careful_search

    def counted(self: SumMinTree, v: np.ndarray, node: np.ndarray) -> np.ndarray:
        careful[0] += v.shape[0]
        return original(self, v, node)

    monkeypatch.setattr(SumMinTree, "_careful_search", counted)
    rng = np.random.default_rng(12)
    for count, (capacity, top_size, leaves) in enumerate(wide_range_trees(rng, 1000)):
        if count >= 100 and careful[0] >= 10:
            break
        tree = SumMinTree(capacity, top_size=top_size)
        tree.update(np.arange(capacity), leaves)
        cum = np.cumsum(leaves)
        v = np.concatenate([cum, np.nextafter(cum, 0), np.nextafter(cum, np.inf), rng.random(50) * cum[-1], [-1.0]])
        found = run_on("numpy", partial(tree.find_prefix_sum, v))
        np.testing.assert_array_equal(found, run_on("numba", partial(tree.find_prefix_sum, v)))
        assert (leaves[found] > 0).all()
        for seed in range(3):
            drawn = run_on("numpy", partial(tree.sample_stratified, 64, seed))
            np.testing.assert_array_equal(drawn, run_on("numba", partial(tree.sample_stratified, 64, seed)))
    assert careful[0] > 0  # the rounding fallback was exercised (and agreed)
