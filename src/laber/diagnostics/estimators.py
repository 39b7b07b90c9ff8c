r"""Monte Carlo bias and trace variance of mini-batch gradient estimators, from one per-sample gradient matrix.

Given the per-sample gradients ``G`` (``(n, d)``, a population: a large batch or a whole buffer) with mean
``ḡ``, every estimator here draws rows of ``G`` and returns ``ĝ = Σ_j c_j g_{i_j}``, a weighted sum of rows;
``R`` draws therefore cost gathers and matrix products on ``G``, and no backward pass. For each estimator this
module reports, over ``R`` independent draws ``ĝ_1 .. ĝ_R``::

    mean       ĝ̄ = (1/R) Σ_r ĝ_r
    cosine     <ĝ̄, ḡ> / (||ĝ̄|| ||ḡ||)           (1 for an unbiased estimator, up to Monte Carlo noise)
    norm ratio ||ĝ̄|| / ||ḡ||                      (LaBER-lazy's scale bias shows here: 1 / mean(q))
    trace variance  tr Cov ≈ (1/(R-1)) Σ_r ||ĝ_r - ĝ̄||^2 = E||ĝ - E ĝ||^2

with the standard error of the trace variance, ``std_r(||ĝ_r - ḡ||^2) / sqrt(R)``. The Monte Carlo noise of
the mean is ``tr Cov / R`` in squared norm: a cosine computed when ``||ḡ||^2`` is not large against it is noisy.

Estimators (``kind``), with ``B`` the mini-batch size and priorities ``q = p + eps``:

* ``"uniform"``: ``k`` rows i.i.d. uniform, coefficients ``1/k`` (``k = B`` or ``m B``).
* ``"laber-mean"``, ``"laber-lazy"``, ``"laber-max"``: ``m B`` rows i.i.d. uniform, then laber's own
  sub-sampler (``laber.LaBERmean``, ``LaBERlazy``, ``LaBERmax``, called once per draw) on their priorities;
  coefficients ``w_j / B`` (Lahire, Geist, Rachelson, "Large Batch Experience Replay", ICML 2022,
  arXiv:2110.01528).
* ``"is"``: ``B`` rows i.i.d. from the whole population with ``P_i = q_i / Σ q``, coefficients
  ``1 / (B n P_i)`` (unbiased importance sampling, the limit of LaBER-mean as ``m`` grows).

Draws come from one ``numpy.random.Generator`` (``rng=``); the same seed gives the same numbers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int
from laber.diagnostics.closed_form import check_population

__all__ = ["KINDS", "EstimatorResult", "monte_carlo"]

KINDS: tuple[str, ...] = ("uniform", "laber-mean", "laber-lazy", "laber-max", "is")
_GATHER_BYTES = 32 * 2**20  # memory for one chunk of gathered rows
_DENSE_ROWS = 256  # draws per dense chunk (a weight matrix of _DENSE_ROWS x n)


@dataclass(frozen=True)
class EstimatorResult:
    """One estimator's Monte Carlo measurements (see the module docstring for the formulas).

    Attributes:
        name: the estimator's label (its kind, and what its priorities are, e.g. ``"laber-mean"``).
        kind: one of ``KINDS``.
        m: the multiplier (``uniform`` draws ``m B`` rows; ``is`` has ``m = 0``: the whole population).
        rows: rows drawn per estimate that enter it (``B``, or ``m B`` for uniform).
        trace_variance: ``E||ĝ - E ĝ||^2``, estimated.
        stderr: the standard error of ``trace_variance``.
        cosine: cosine between the Monte Carlo mean and the population's mean gradient.
        norm_ratio: ``||mean ĝ|| / ||ḡ||``.
        draws: ``R``.
    """

    name: str
    kind: str
    m: int
    rows: int
    trace_variance: float
    stderr: float
    cosine: float
    norm_ratio: float
    draws: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values (NaN as ``None``)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def _draws_uniform(rng: np.random.Generator, n: int, k: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.integers(n, size=(count, k))
    return idx, np.full((count, k), 1.0 / k)


def _draws_is(rng: np.random.Generator, q: np.ndarray, b: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    cdf = np.cumsum(q)
    total = float(cdf[-1])
    u = rng.random((count, b)) * total
    idx = np.minimum(np.searchsorted(cdf, u, side="right"), q.size - 1)
    coef = (total / q.size) / q[idx] / b
    return idx, coef


def _draws_laber(
    rng: np.random.Generator, p: np.ndarray, kind: str, b: int, m: int, eps: float, count: int
) -> tuple[np.ndarray, np.ndarray]:
    import laber

    cls = {"laber-mean": laber.LaBERmean, "laber-lazy": laber.LaBERlazy, "laber-max": laber.LaBERmax}[kind]
    sampler = cls(b, m, eps=eps, rng=rng)  # it adds eps to the priorities itself
    n = p.size
    idx = np.empty((count, b), dtype=np.int64)
    coef = np.empty((count, b))
    for r in range(count):  # one laber call per draw: what is measured is the library's own sub-sampler
        big = rng.integers(n, size=m * b)
        out = sampler(priorities=p[big])
        idx[r] = big[out["indexes"]]
        coef[r] = out["weights"]
    coef /= b
    return idx, coef


def _estimates(grads: np.ndarray, idx: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """``ĝ_r = Σ_j coef[r, j] grads[idx[r, j]]`` for every draw ``r`` (float64, ``(R, d)``)."""
    count, k = idx.shape
    n, d = grads.shape
    out = np.empty((count, d))
    dtype = grads.dtype
    if k * 8 >= n:  # many rows per draw: one dense weight matrix per chunk, then a matrix product
        for start in range(0, count, _DENSE_ROWS):
            stop = min(start + _DENSE_ROWS, count)
            rows = stop - start
            flat = (np.arange(rows)[:, None] * n + idx[start:stop]).ravel()
            weights = np.bincount(flat, weights=coef[start:stop].ravel(), minlength=rows * n).reshape(rows, n)
            out[start:stop] = weights.astype(dtype) @ grads
    else:  # few rows per draw: gather them
        step = max(1, _GATHER_BYTES // max(1, k * d * grads.itemsize))
        for start in range(0, count, step):
            stop = min(start + step, count)
            block = grads[idx[start:stop]]  # (rows, k, d)
            out[start:stop] = np.matmul(coef[start:stop, None, :].astype(dtype), block)[:, 0, :]
    return out


def monte_carlo(
    grads: Any,
    kind: str,
    *,
    batch_size: int,
    m: int = 1,
    priorities: Any = None,
    eps: float = 0.0,
    draws: int = 4000,
    rng: RngLike = None,
    name: str | None = None,
) -> EstimatorResult:
    """Bias and trace variance of one estimator over ``draws`` independent draws (see the module docstring).

    ``grads`` is the per-sample gradient matrix ``(n, d)`` (float32 or float64); ``priorities`` (``(n,)``,
    ``>= 0``) are required for every kind but ``"uniform"`` and are used as ``q = priorities + eps`` (the LaBER
    kinds pass ``eps`` to laber's sub-sampler). ``uniform`` draws ``m * batch_size`` rows; the LaBER kinds a
    large batch of ``m * batch_size`` and a sub-batch of ``batch_size``; ``is`` ignores ``m``. Bad arguments
    raise ``ValueError``/``TypeError`` naming them before anything is drawn (the generator is left as it was).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got kind={kind!r}")
    b = check_positive_int(batch_size, "batch_size")
    mult = check_positive_int(m, "m")
    count = check_positive_int(draws, "draws")
    if count < 2:
        raise ValueError(f"draws must be >= 2 (a variance needs two draws), got draws={draws!r}")
    if priorities is None and kind != "uniform":
        raise ValueError(f"kind={kind!r} needs priorities (one per row of grads), got priorities=None")
    g, q = check_population(grads, priorities, eps)
    gen = as_generator(rng)
    n = g.shape[0]
    if kind == "uniform":
        idx, coef = _draws_uniform(gen, n, mult * b, count)
        rows, m_out = mult * b, mult
    elif kind == "is":
        idx, coef = _draws_is(gen, q, b, count)
        rows, m_out = b, 0
    else:
        base = np.asarray(priorities, dtype=np.float64)  # validated above; laber's sub-sampler adds eps
        idx, coef = _draws_laber(gen, base, kind, b, mult, float(eps), count)
        rows, m_out = b, mult
    mean_grad = g.mean(axis=0, dtype=np.float64)
    est = _estimates(g, idx, coef)
    est -= mean_grad  # deviations from the population's mean gradient
    dev_sq = np.einsum("ij,ij->i", est, est)
    mean_dev = est.mean(axis=0)
    trace_var = float((dev_sq.sum() - count * float(mean_dev @ mean_dev)) / (count - 1))
    mean_est = mean_dev + mean_grad
    norm_g = float(np.linalg.norm(mean_grad))
    norm_est = float(np.linalg.norm(mean_est))
    cosine = float(mean_est @ mean_grad) / (norm_est * norm_g) if norm_est > 0 and norm_g > 0 else math.nan
    return EstimatorResult(
        name=name if name is not None else kind,
        kind=kind,
        m=m_out,
        rows=rows,
        trace_variance=trace_var,
        stderr=float(dev_sq.std(ddof=1) / math.sqrt(count)),
        cosine=cosine,
        norm_ratio=norm_est / norm_g if norm_g > 0 else math.nan,
        draws=count,
    )
