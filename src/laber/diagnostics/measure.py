r"""The full gradient-variance measurement of one population: every estimator, the closed form, the correlations.

``gradient_variance(G, surrogate, ...)`` measures, on the per-sample gradients ``G`` (``(n, d)``) of a population
and LaBER's surrogate priorities ``p`` of the same rows (``|dl/dq|``; ``laber.diagnostics.q_gradients`` gives
both), with ``B = batch_size`` and each multiplier ``m`` of ``ms``:

* uniform ``B`` (the reference: every ratio below is ``tr Cov / V_B``) and uniform ``m B``;
* LaBER-mean, LaBER-lazy and LaBER-max on the surrogate, and LaBER-mean on the exact norms ``||g_i||``
  (``laber-exact``), each with a large batch of ``m B``;
* importance sampling over the whole population with the surrogate (``is``) and with the exact norms
  (``is-exact``: the optimal sampler, the limit of ``laber-exact`` as ``m`` grows);

and, from the closed form (``laber.diagnostics.closed_form``): ``V_B``, ``V_IS`` for both priorities, the
predicted ``tr Cov(LaBER-mean, m) = (1 - 1/(mB)) V_IS + V_B / m`` next to each Monte Carlo value, the break-even
``m`` and the priorities-only estimate ``m* = 1 + mean(q)^2 / var(q)``; and the Pearson and Spearman correlations
between the surrogate and the exact norms (Lahire, Geist, Rachelson, "Large Batch Experience Replay", ICML 2022,
arXiv:2110.01528: the surrogate is good when the factor ``||∇_θ Q||`` varies little).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int
from laber.diagnostics.closed_form import ClosedForm, check_population, closed_form, m_star, squared_norms
from laber.diagnostics.estimators import EstimatorResult, monte_carlo

__all__ = ["VarianceReport", "gradient_variance", "pearson", "spearman"]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks ``0 .. n-1`` with ties given their average rank."""
    _values, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    start = np.cumsum(counts) - counts
    return np.asarray((start + (counts - 1) / 2.0)[inverse.reshape(-1)], dtype=np.float64)


def pearson(x: Any, y: Any) -> float:
    """Pearson's correlation of two equal-length 1-D arrays (NaN when either is constant)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {a.shape} and {b.shape}")
    a = a - a.mean()
    b = b - b.mean()
    denom = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / denom if denom > 0 else math.nan


def spearman(x: Any, y: Any) -> float:
    """Spearman's rank correlation (Pearson's on average ranks; NaN when either is constant)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same length, got shapes {a.shape} and {b.shape}")
    return pearson(_ranks(a), _ranks(b))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class VarianceReport:
    """What ``gradient_variance`` measured (every variance is a trace variance, ``E||ĝ - E ĝ||^2``).

    Attributes:
        n, d, batch_size, draws, eps: the population's size, the parameter count, ``B``, the Monte Carlo draws
            per estimator and LaBER's ``eps``.
        grad_norm: ``||ḡ||``, the norm of the population's mean gradient.
        surrogate: the closed form with the surrogate priorities (``V_B``, ``V_IS``, break-even ``m``).
        exact: the closed form with the exact norms as priorities.
        m_star: ``1 + mean(q)^2 / var(q)`` of the surrogate priorities (``inf`` for constant ones).
        pearson, spearman: correlations between the surrogate and the exact per-sample gradient norms.
        estimators: every Monte Carlo result, uniform ``B`` first.
    """

    n: int
    d: int
    batch_size: int
    draws: int
    eps: float
    grad_norm: float
    surrogate: ClosedForm
    exact: ClosedForm
    m_star: float
    pearson: float
    spearman: float
    estimators: list[EstimatorResult] = field(default_factory=list)

    @property
    def v_b(self) -> float:
        """``V_B``: the trace variance of uniform ``B`` (closed form)."""
        return self.surrogate.v_b

    def predicted(self, result: EstimatorResult) -> float | None:
        """The closed form's value for a Monte Carlo result, where there is one (uniform, LaBER-mean, IS)."""
        priorities = self.exact if result.name.endswith("exact") else self.surrogate
        if result.kind == "uniform":
            return priorities.uniform(result.m)
        if result.kind == "laber-mean":
            return priorities.laber_mean(result.m)
        if result.kind == "is":
            return priorities.v_is
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: every measured and predicted value, ratios to ``V_B``, infinities as ``None``."""
        rows = []
        for r in self.estimators:
            row = r.to_dict()
            pred = self.predicted(r)
            row["ratio"] = r.trace_variance / self.v_b if self.v_b > 0 else None
            row["predicted"] = pred
            row["predicted_ratio"] = pred / self.v_b if pred is not None and self.v_b > 0 else None
            rows.append(row)
        return {
            "n": self.n,
            "d": self.d,
            "batch_size": self.batch_size,
            "draws": self.draws,
            "eps": self.eps,
            "grad_norm": self.grad_norm,
            "surrogate": self.surrogate.to_dict(),
            "exact": self.exact.to_dict(),
            "m_star": _finite(self.m_star),
            "pearson": _finite(self.pearson),
            "spearman": _finite(self.spearman),
            "estimators": rows,
        }


def gradient_variance(
    grads: Any,
    surrogate: Any,
    *,
    batch_size: int = 64,
    ms: Sequence[int] = (1, 2, 4, 8),
    draws: int = 4000,
    eps: float = 1e-6,
    rng: RngLike = None,
    lazy_and_max: bool = True,
) -> VarianceReport:
    """Measure every estimator of the module docstring on one population; see ``VarianceReport``.

    ``grads`` ``(n, d)`` and ``surrogate`` ``(n,)`` as for ``laber.diagnostics.monte_carlo``; ``eps`` is LaBER's
    (added to both the surrogate and the exact norms); ``lazy_and_max=False`` skips the two biased LaBER
    variants (a third less time). Cost: about ``draws * d * (B * (4 len(ms) + 3) + n * (number of m with
    m B >= n / 8))`` multiply-adds. Arguments are validated before anything is drawn.
    """
    b = check_positive_int(batch_size, "batch_size")
    mult = [check_positive_int(m, "ms") for m in ms]
    if not mult:
        raise ValueError(f"ms must hold at least one multiplier, got ms={ms!r}")
    count = check_positive_int(draws, "draws")
    g, q = check_population(grads, surrogate, eps)
    p = np.asarray(surrogate, dtype=np.float64)
    gen = as_generator(rng)
    norms = np.sqrt(squared_norms(g))
    cf_sur = closed_form(g, p, b, eps=eps)
    cf_exact = closed_form(g, norms, b, eps=eps)
    results = [monte_carlo(g, "uniform", batch_size=b, m=1, draws=count, rng=gen)]
    for m in mult:
        if m > 1:
            results.append(monte_carlo(g, "uniform", batch_size=b, m=m, draws=count, rng=gen, name="uniform-large"))
        kinds = ("laber-mean", "laber-lazy", "laber-max") if lazy_and_max else ("laber-mean",)
        for kind in kinds:
            results.append(monte_carlo(g, kind, batch_size=b, m=m, priorities=p, eps=eps, draws=count, rng=gen))
        results.append(
            monte_carlo(
                g, "laber-mean", batch_size=b, m=m, priorities=norms, eps=eps, draws=count, rng=gen, name="laber-exact"
            )
        )
    results.append(monte_carlo(g, "is", batch_size=b, priorities=p, eps=eps, draws=count, rng=gen))
    results.append(monte_carlo(g, "is", batch_size=b, priorities=norms, eps=eps, draws=count, rng=gen, name="is-exact"))
    mean_grad = g.mean(axis=0, dtype=np.float64)
    return VarianceReport(
        n=int(g.shape[0]),
        d=int(g.shape[1]),
        batch_size=b,
        draws=count,
        eps=float(eps),
        grad_norm=float(np.linalg.norm(mean_grad)),
        surrogate=cf_sur,
        exact=cf_exact,
        m_star=m_star(q),
        pearson=pearson(p, norms),
        spearman=spearman(p, norms),
        estimators=results,
    )
