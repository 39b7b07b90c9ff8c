"""LaBER sub-samplers on the numpy path: formulas, distribution, unbiasedness, seeding, validation.

Tests taking the ``backend`` fixture run twice, with numpy only and with the numba kernels
(``laber._kernels_laber``); ``test_backends_give_identical_draws`` checks that both give the same indexes and
weights bit for bit. Statistical tests use fixed seeds, so they are deterministic; the thresholds are chosen so
that, over random seeds, each would fail by chance with the stated probability.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pytest
from scipy import stats

import laber as laber_pkg
from laber import LaBERlazy, LaBERmax, LaBERmean, _accel, laber_subsample

CLASSES = [LaBERmean, LaBERlazy, LaBERmax]


def reference_weights(variant: str, p: np.ndarray, eps: float, idx: np.ndarray) -> np.ndarray:
    """The weights of DESIGN.md, written out in float64 from scratch."""
    q = p.astype(np.float64) + eps
    if variant == "mean":
        return np.mean(q) / q[idx]
    if variant == "lazy":
        return 1.0 / q[idx]
    inv = 1.0 / q[idx]
    return inv / inv.max()


# ------------------------------------------------------------------------------------------------ formulas
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("eps", [0.0, 1e-6, 0.3])
def test_weights_match_formula(backend: str, cls: type, dtype: type, eps: float) -> None:
    rng = np.random.default_rng(11)
    for trial in range(5):
        p = (rng.random(4 * 16) ** 3).astype(dtype)
        out = cls(16, 4, eps=eps, rng=trial)(priorities=p)
        idx, w = out["indexes"], out["weights"]
        assert idx.dtype == np.int64 and idx.shape == (16,)
        assert w.dtype == (np.float64 if dtype == np.float64 else np.float32)
        expected = reference_weights(cls.variant, p, eps, idx)
        rtol = 1e-12 if dtype == np.float64 else 2e-7
        np.testing.assert_allclose(w, expected, rtol=rtol)


def test_max_weights_are_at_most_one_and_reach_it(backend: str) -> None:
    p = np.random.default_rng(0).random(128)
    w = LaBERmax(32, 4, rng=0)(priorities=p)["weights"]
    assert w.max() == 1.0 and (w > 0).all()


def test_mean_weight_is_one_over_n_p(backend: str) -> None:
    p = np.random.default_rng(1).random(40)
    out = LaBERmean(10, 4, eps=0.0, rng=0)(priorities=p)
    prob = p / p.sum()
    np.testing.assert_allclose(out["weights"], 1.0 / (40 * prob[out["indexes"]]), rtol=1e-12)


def test_lazy_is_the_paper_not_cpprb(backend: str) -> None:
    # cpprb's LaBERlazy returns sum(q)/q_j; the paper's (and ours) is 1/q_j.
    p = np.array([1.0, 3.0, 4.0, 2.0])
    out = LaBERlazy(2, 2, eps=0.0, rng=0)(priorities=p)
    np.testing.assert_allclose(out["weights"], 1.0 / p[out["indexes"]])


def test_integer_and_list_priorities_give_float64() -> None:
    out = LaBERmean(2, 2, rng=0)(priorities=[1, 2, 3, 4])
    assert out["weights"].dtype == np.float64
    out = LaBERmean(2, 2, rng=0)(priorities=np.array([1, 2, 3, 4], dtype=np.uint8))
    assert out["weights"].dtype == np.float64


class ArrayLike:
    """Stands in for TF eager tensors and JAX arrays: only ``__array__``."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)


def test_array_protocol_objects_give_numpy() -> None:
    p = np.random.default_rng(2).random(8).astype(np.float32)
    obs = np.arange(16.0).reshape(8, 2)
    a = LaBERmean(4, 2, rng=5)(priorities=ArrayLike(p), obs=ArrayLike(obs))
    b = LaBERmean(4, 2, rng=5)(priorities=p, obs=obs)
    assert isinstance(a["weights"], np.ndarray) and isinstance(a["obs"], np.ndarray)
    for key in ("indexes", "weights", "obs"):
        np.testing.assert_array_equal(a[key], b[key])


# ------------------------------------------------------------------------------------------------ distribution
def chi_square_pvalue(counts: np.ndarray, prob: np.ndarray) -> float:
    """Pearson chi-square p-value of ``counts`` against ``prob``, pooling cells expected below 5."""
    total = counts.sum()
    expected = prob * total
    keep = expected >= 5
    obs = np.append(counts[keep], counts[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp).pvalue)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("eps", [0.0, 0.05])
def test_draw_frequencies_chi_square(backend: str, shuffle: bool, eps: float) -> None:
    """Frequencies over 400 calls x 64 draws against P = q / sum(q). False-failure probability 1e-3 per case."""
    rng = np.random.default_rng(1234)
    p = rng.random(128) ** 2
    p[[3, 50, 77]] = 0.0  # zero entries: with eps=0 they must never be drawn
    q = p + eps
    prob = q / q.sum()
    laber = LaBERmean(64, 2, eps=eps, rng=99, shuffle=shuffle)
    counts = np.zeros(128, dtype=np.int64)
    for _ in range(400):
        counts += np.bincount(laber(priorities=p)["indexes"], minlength=128)
    if eps == 0.0:
        assert counts[[3, 50, 77]].sum() == 0
    assert chi_square_pvalue(counts, prob) > 1e-3


def test_draws_within_one_call_are_independent(backend: str) -> None:
    """Pairs (first, second draw) in draw order are independent: chi-square of the 4x4 table, p > 1e-3."""
    p = np.array([1.0, 2.0, 3.0, 4.0])
    laber = LaBERmean(2, 2, eps=0.0, rng=3, shuffle=True)
    table = np.zeros((4, 4))
    for _ in range(4000):
        i, j = laber(priorities=p)["indexes"]
        table[i, j] += 1
    prob = p / p.sum()
    assert chi_square_pvalue(table.ravel(), np.outer(prob, prob).ravel()) > 1e-3


def test_sorted_and_shuffled_give_the_same_multiset(backend: str) -> None:
    p = np.random.default_rng(4).random(256)
    a = LaBERmean(64, 4, rng=8)(priorities=p)
    b = LaBERmean(64, 4, rng=8, shuffle=True)(priorities=p)
    assert (np.diff(a["indexes"]) >= 0).all()
    order = np.argsort(b["indexes"], kind="stable")
    np.testing.assert_array_equal(a["indexes"], b["indexes"][order])
    np.testing.assert_allclose(a["weights"], b["weights"][order])


def test_single_positive_entry_is_always_drawn(backend: str) -> None:
    p = np.zeros(64)
    p[63] = 2.5  # the last entry: the search must not run past it
    idx = LaBERmean(16, 4, eps=0.0, rng=0)(priorities=p)["indexes"]
    assert (idx == 63).all()
    p = np.zeros(64)
    p[0] = 1e-300
    assert (LaBERmean(16, 4, eps=0.0, rng=0)(priorities=p)["indexes"] == 0).all()


# ------------------------------------------------------------------------------------------------ unbiasedness
def test_laber_mean_is_unbiased_for_the_large_batch_mean(backend: str) -> None:
    """E[mean(w * f[idx])] == mean(f). The estimate's mean over 4000 calls is within 4 standard errors
    (false-failure probability 6e-5), and far tighter than a uniform sub-batch."""
    rng = np.random.default_rng(2022)
    p = np.abs(rng.standard_t(df=3, size=128))
    f = p**2 + rng.random(128)  # a loss correlated with the priority, as |TD| and the Huber loss are
    laber = LaBERmean(32, 4, rng=7)
    est = np.empty(4000)
    for t in range(est.size):
        out = laber(priorities=p)
        est[t] = np.mean(out["weights"] * f[out["indexes"]])
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - f.mean()) < 4 * se


def test_lazy_weights_times_mean_q_are_unbiased(backend: str) -> None:
    """Lazy weights are mean(q) times smaller than LaBER-mean's: mean(q) * estimate is unbiased (4 s.e., 6e-5)."""
    rng = np.random.default_rng(5)
    p = rng.random(64) + 0.1
    f = rng.random(64)
    laber = LaBERlazy(16, 4, eps=0.0, rng=1)
    est = np.array([np.mean(o["weights"] * f[o["indexes"]]) for o in (laber(priorities=p) for _ in range(3000))])
    est *= p.mean()
    se = est.std(ddof=1) / np.sqrt(est.size)
    assert abs(est.mean() - f.mean()) < 4 * se


# ------------------------------------------------------------------------------------------------ seeding
@pytest.mark.parametrize("cls", CLASSES)
def test_same_seed_same_draws(backend: str, cls: type) -> None:
    p = np.random.default_rng(0).random(256).astype(np.float32)
    a, b, c = cls(64, 4, rng=42), cls(64, 4, rng=42), cls(64, 4, rng=43)
    for _ in range(3):
        oa, ob, oc = a(priorities=p), b(priorities=p), c(priorities=p)
        np.testing.assert_array_equal(oa["indexes"], ob["indexes"])
        np.testing.assert_array_equal(oa["weights"], ob["weights"])
    assert not np.array_equal(oa["indexes"], oc["indexes"])


def test_generator_is_used_as_given() -> None:
    gen = np.random.default_rng(5)
    laber = LaBERmean(4, 2, rng=gen)
    assert laber.rng is gen
    before = gen.bit_generator.state
    laber(priorities=np.ones(8))
    assert gen.bit_generator.state != before


def test_functional_form_shares_the_implementation(backend: str) -> None:
    p = np.random.default_rng(3).random(96)
    obs = np.arange(96 * 2).reshape(96, 2)
    for variant, cls in zip(("mean", "lazy", "max"), CLASSES, strict=True):
        a = laber_subsample(p, 24, variant=variant, rng=np.random.default_rng(9), obs=obs)
        b = cls(24, 4, rng=9)(priorities=p, obs=obs)
        for key in ("indexes", "weights", "obs"):
            np.testing.assert_array_equal(a[key], b[key])
    # N need not be a multiple of the batch size in the functional form
    out = laber_subsample(np.ones(10), 3, rng=0)
    assert out["indexes"].shape == (3,) and (out["indexes"] < 10).all()


# ------------------------------------------------------------------------------------------------ extras
def test_extra_arrays_follow_the_indexes_and_are_fresh(backend: str) -> None:
    rng = np.random.default_rng(6)
    n = 64
    extras = {
        "obs": rng.random((n, 3, 2)).astype(np.float32),
        "act": rng.integers(0, 5, (n, 1)).astype(np.uint8),
        "rew": rng.random(n),
        "tag": np.array([f"t{i}" for i in range(n)]),
    }
    out = LaBERmean(16, 4, rng=0)(priorities=rng.random(n), **extras)
    assert list(out) == ["obs", "act", "rew", "tag", "weights", "indexes"]
    for key, value in extras.items():
        np.testing.assert_array_equal(out[key], value[out["indexes"]])
        assert out[key].dtype == value.dtype
        assert not np.shares_memory(out[key], value)
    extras["obs"][:] = -1  # mutating the inputs does not reach the outputs
    assert (out["obs"] >= 0).all()


def test_reference_page_snippet() -> None:
    """The reference page's usage, as written (lists in, extras sub-sampled together)."""
    laber = LaBERmean(32, 4)
    priorities = list(np.random.default_rng(0).random(32 * 4))
    obs = np.zeros((128, 4))
    act = np.zeros((128, 1))
    sample = laber(priorities=priorities, obs=obs, act=act)
    indexes = sample["indexes"]
    weights = sample["weights"]
    assert indexes.shape == weights.shape == (32,)
    assert sample["obs"].shape == (32, 4) and sample["act"].shape == (32, 1)


def test_repr_and_properties() -> None:
    laber = LaBERmax(8, 3, eps=0.5)
    assert (laber.batch_size, laber.m, laber.eps) == (8, 3, 0.5)
    assert repr(laber).startswith("LaBERmax(batch_size=8, m=3, eps=0.5")


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"batch_size": 2.7}, TypeError, r"batch_size must be a positive integer, got batch_size=2\.7"),
        ({"batch_size": "3"}, TypeError, r"batch_size must be a positive integer, got batch_size='3'"),
        ({"batch_size": True}, TypeError, r"batch_size must be a positive integer, got batch_size=True"),
        ({"batch_size": 0}, ValueError, r"batch_size must be a positive integer, got batch_size=0"),
        ({"batch_size": -4}, ValueError, r"batch_size=-4"),
        ({"m": 0}, ValueError, r"m must be a positive integer, got m=0"),
        ({"m": 1.5}, TypeError, r"m must be a positive integer, got m=1\.5"),
        ({"m": None}, TypeError, r"got m=None"),
        ({"eps": -1e-3}, ValueError, r"eps must be a finite real number >= 0, got eps=-0\.001"),
        ({"eps": float("nan")}, ValueError, r"got eps=nan"),
        ({"eps": float("inf")}, ValueError, r"got eps=inf"),
        ({"eps": "0.1"}, TypeError, r"got eps='0\.1'"),
        ({"rng": "seed"}, TypeError, r"rng must be None, an int seed or a numpy.random.Generator, got rng='seed'"),
        ({"rng": -1}, ValueError, r"got rng=-1"),
        ({"shuffle": 1}, TypeError, r"shuffle must be True or False, got shuffle=1"),
        ({"check_values": "yes"}, TypeError, r"got check_values='yes'"),
    ],
)
@pytest.mark.parametrize("cls", CLASSES)
def test_bad_constructor_arguments(cls: type, kwargs: dict[str, object], error: type, match: str) -> None:
    args = {"batch_size": 4, "m": 2} | kwargs
    with pytest.raises(error, match=match):
        cls(args.pop("batch_size"), args.pop("m"), **args)


BAD_PRIORITIES = [
    (np.ones(7), ValueError, r"priorities must have length m\*batch_size=8, got length 7"),
    (np.ones(9), ValueError, r"length m\*batch_size=8, got length 9"),
    (np.ones((8, 1)), ValueError, r"priorities must be 1-D, got shape=\(8, 1\)"),
    (np.ones((2, 4)), ValueError, r"priorities must be 1-D, got shape=\(2, 4\)"),
    (np.array(3.0), ValueError, r"priorities must be 1-D, got shape=\(\)"),
    (np.array([]), ValueError, r"length m\*batch_size=8, got length 0"),
    (np.array([1, 2, 3, np.nan, 1, 1, 1, 1]), ValueError, r"finite and >= 0, got priorities\[3\]=.*nan"),
    (np.array([1, 2, 3, 1, 1, np.inf, 1, 1]), ValueError, r"finite and >= 0, got priorities\[5\]=.*inf"),
    (np.array([1, 2, -0.5, 1, 1, 1, 1, 1]), ValueError, r"finite and >= 0, got priorities\[2\]=.*-0\.5"),
    (np.array([1, 2, 1, 1, 1, 1, 1, -np.inf]), ValueError, r"got priorities\[7\]=.*-inf"),
    (np.array(["a"] * 8), TypeError, r"priorities must hold real numbers, got dtype=<U1"),
    (np.ones(8, dtype=bool), TypeError, r"priorities must hold real numbers, got dtype=bool"),
    (np.ones(8, dtype=complex), TypeError, r"priorities must hold real numbers, got dtype=complex128"),
    (np.full(8, 1e308), ValueError, r"overflows float64"),
    (np.array([1, np.nan, 1, 1, 1, 1, 1, 1], np.float32), ValueError, r"got priorities\[1\]=.*nan"),
    (np.array([1, 1, 1, 1, 1, 1, -1e-30, 1], np.float32), ValueError, r"got priorities\[6\]=.*-1e-30"),
    (np.array([1, 1, 1, np.inf, 1, -1, 1, 1], np.float32), ValueError, r"got priorities\[3\]=.*inf"),
    (np.array([-1, 1, 1, 1, 1, 1, 1, np.nan]), ValueError, r"got priorities\[7\]=.*nan"),  # non-finite first
    (np.array([3e38] * 8, np.float32), None, None),  # fine: the sum is taken in float64
]


@pytest.mark.parametrize(("priorities", "error", "match"), BAD_PRIORITIES)
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_bad_priorities_leave_the_sampler_unchanged(
    backend: str, priorities: np.ndarray, error: type | None, match: str | None
) -> None:
    laber = LaBERmean(4, 2, rng=0)
    state = laber.rng.bit_generator.state
    if error is None:  # a near miss, accepted
        assert np.isfinite(laber(priorities=priorities)["weights"]).all()
        return
    with pytest.raises(error, match=match):
        laber(priorities=priorities)
    assert laber.rng.bit_generator.state == state
    # and the next good call draws what a fresh sampler would
    np.testing.assert_array_equal(
        laber(priorities=np.arange(1.0, 9.0))["indexes"],
        LaBERmean(4, 2, rng=0)(priorities=np.arange(1.0, 9.0))["indexes"],
    )


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64])
def test_all_zero_priorities_need_eps(backend: str, dtype: type) -> None:
    with pytest.raises(ValueError, match=r"must not all be zero when eps=0.*eps=0\.0"):
        LaBERmean(4, 2, eps=0.0)(priorities=np.zeros(8, dtype))
    out = LaBERmean(4, 2, eps=1e-6, rng=0)(priorities=np.zeros(8, dtype))  # uniform
    np.testing.assert_allclose(out["weights"], 1.0)


@pytest.mark.parametrize(
    ("extras", "error", "match"),
    [
        (
            {"obs": np.ones((7, 2))},
            ValueError,
            r"extra array 'obs' must have leading length N=8 \(that of priorities\), got",
        ),
        (
            {"obs": np.ones(9)},
            ValueError,
            r"'obs' must have leading length N=8 \(that of priorities\), got shape=\(9,\)",
        ),
        ({"obs": np.float32(1.0)}, ValueError, r"'obs' must have leading length.*got shape=\(\)"),
        ({"weights": np.ones(8)}, ValueError, r"extra array name 'weights' collides with an output key"),
        ({"indexes": np.ones(8)}, ValueError, r"extra array name 'indexes' collides with an output key"),
    ],
)
def test_bad_extra_arrays(backend: str, extras: dict[str, np.ndarray], error: type, match: str) -> None:
    laber = LaBERmean(4, 2, rng=0)
    state = laber.rng.bit_generator.state
    with pytest.raises(error, match=match):
        laber(priorities=np.ones(8), **extras)
    assert laber.rng.bit_generator.state == state


def test_functional_form_validation() -> None:
    with pytest.raises(ValueError, match=r"variant must be one of \('mean', 'lazy', 'max'\), got variant='avg'"):
        laber_subsample(np.ones(4), 2, variant="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"priorities must not be empty"):
        laber_subsample(np.array([]), 2)
    with pytest.raises(TypeError, match=r"batch_size must be a positive integer, got batch_size=2\.0"):
        laber_subsample(np.ones(4), 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"'obs' must have leading length N=4"):
        laber_subsample(np.ones(4), 2, obs=np.ones(3))


def test_priorities_keyword_is_required() -> None:
    with pytest.raises(TypeError):
        LaBERmean(4, 2)(np.ones(8))  # type: ignore[misc]


# ------------------------------------------------------------------------------------ numpy == numba, bit for bit
needs_numba = pytest.mark.skipif(_accel._import_numba() is None, reason="numba is not installed (the 'fast' extra)")

PRIORITY_KINDS: dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "uniform": lambda rng, n: rng.random(n),
    "cubed, with zeros": lambda rng, n: rng.random(n) ** 3 * (rng.random(n) < 0.7),
    "heavy-tailed": lambda rng, n: np.abs(rng.standard_t(2, n)),
    "wide range": lambda rng, n: 10.0 ** rng.uniform(-30, 30, n),
    "tiny": lambda rng, n: rng.random(n) * 1e-300,  # all zero once rounded to float32
    "one positive": lambda rng, n: np.eye(1, n, int(rng.integers(n)))[0] * rng.random(),
    "ties": lambda rng, n: rng.integers(0, 3, n).astype(np.float64),
}
SIZES = [(1, 1), (3, 1), (1, 5), (16, 4), (256, 4), (5, 7), (100, 1), (2, 60)]  # (batch_size, m)


def on_both_backends(fn: Callable[[], list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``fn()`` with numpy only, then with the numba kernels."""
    results = []
    for numba in (False, True):
        laber_pkg.set_numba(numba)
        try:
            results.append(fn())
        finally:
            laber_pkg.set_numba(None)
    return results[0], results[1]


def assert_bitwise_equal(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert list(x) == list(y)
        for key in x:
            assert x[key].dtype == y[key].dtype and x[key].shape == y[key].shape, key
            np.testing.assert_array_equal(x[key].view(np.uint8), y[key].view(np.uint8), err_msg=key)


def three_calls(
    cls: type, args: tuple[int, int], kwargs: dict[str, Any], p: np.ndarray, obs: np.ndarray
) -> list[dict[str, Any]]:
    laber = cls(*args, **kwargs)
    return [laber(priorities=p, obs=obs) for _ in range(3)]


@needs_numba
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("eps", [0.0, 1e-6, 0.5])
def test_backends_give_identical_draws(cls: type, dtype: type, shuffle: bool, eps: float) -> None:
    """Same seed, same indexes and weights (and extras) on both backends: for every variant, dtype, order, eps."""
    rng = np.random.default_rng([cls.variant == "max", dtype == np.float32, shuffle, int(eps * 10)])
    for batch_size, m in SIZES:
        n = batch_size * m
        for name, make in PRIORITY_KINDS.items():
            p = make(rng, n).astype(dtype)
            if eps == 0.0 and not p.any():
                p[-1] = 1.0
            obs = rng.random((n, 2))
            seed = int(rng.integers(1 << 32))

            sampler_args = (batch_size, m)
            kwargs = {"eps": eps, "shuffle": shuffle, "rng": seed}
            a, b = on_both_backends(partial(three_calls, cls, sampler_args, kwargs, p, obs))
            try:
                assert_bitwise_equal(a, b)
            except AssertionError as exc:
                raise AssertionError(f"batch_size={batch_size}, m={m}, priorities {name}") from exc
            for out in a:
                w = out["weights"]
                assert w.dtype == (np.float32 if dtype == np.float32 else np.float64)
                if not shuffle:
                    assert (np.diff(out["indexes"]) >= 0).all()


@needs_numba
@pytest.mark.parametrize("variant", ["mean", "lazy", "max"])
def test_backends_agree_on_unusual_arrays(variant: str) -> None:
    """Strided, read-only, big-endian, integer and float16 priorities, and the functional form with N % B != 0."""
    rng = np.random.default_rng(17)
    base = rng.random(200)
    readonly = base[:100].astype(np.float32)
    readonly.flags.writeable = False
    cases = [
        base[::2],
        readonly,
        base[:100].astype(">f8"),
        rng.integers(0, 5, 100),
        base[:100].astype(np.float16),
    ]
    for p in cases:

        def run(p: np.ndarray = p) -> list[dict[str, Any]]:
            gen = np.random.default_rng(3)
            return [laber_subsample(p, 7, variant=variant, eps=0.1, rng=gen, shuffle=s) for s in (False, True)]

        assert_bitwise_equal(*on_both_backends(run))


@needs_numba
def test_numba_backend_runs_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """With numba enabled, native float32 and float64 priorities go through ``laber._kernels_laber``."""
    import laber._kernels_laber as kernels

    calls: list[object] = []
    draw = kernels.draw

    def counting_draw(*args: Any) -> None:
        calls.append(args[0].dtype)
        draw(*args)

    monkeypatch.setattr(kernels, "draw", counting_draw)
    sampler = LaBERmax(4, 2, rng=0)
    try:
        laber_pkg.set_numba(True)
        for dtype in (np.float32, np.float64, np.float16, np.int32):
            sampler(priorities=np.arange(1, 9).astype(dtype))
        laber_pkg.set_numba(False)
        sampler(priorities=np.ones(8))
    finally:
        laber_pkg.set_numba(None)
    assert calls == [np.dtype(np.float32), np.dtype(np.float64)]


@needs_numba
@pytest.mark.parametrize("shuffle", [False, True])
def test_kernel_search_is_searchsorted_right_at_exact_ties(shuffle: bool) -> None:
    """Uniforms landing exactly on prefix sums (and on zero-mass entries) give numpy's ``side="right"``."""
    import laber._kernels_laber as kernels

    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0])  # prefix sums 0 1 1 2 2 2 4 4
    u = np.array([0.5, 0.0, 0.25, 0.75, 0.5, 0.0, 0.125, 0.999])
    cdf = np.empty(p.size)
    assert kernels.cumulate(p, 0.0, cdf) == 4.0
    idx = np.empty(u.size, np.int64)
    w = np.empty(u.size)
    kernels.draw(p, 0.0, cdf, u.copy(), kernels.LAZY + (kernels.SHUFFLE if shuffle else 0), idx, w)
    expected = np.cumsum(p).searchsorted(u * 4.0, side="right")
    np.testing.assert_array_equal(idx, expected if shuffle else np.sort(expected))
    np.testing.assert_array_equal(w, 1.0 / p[idx])
