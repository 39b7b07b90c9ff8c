r"""Closed forms for the variance of LaBER-mean, uniform and importance-sampled mini-batch gradients.

Setting (exactly what ``laber.diagnostics.estimators`` simulates). A population of ``n`` per-sample gradients
``g_1 .. g_n`` (the rows of ``G``: a large batch, or a whole buffer) with mean ``ḡ``, and positive priorities
``q_i = p_i + eps``, a fixed function of the row (the surrogate ``|dl/dq|`` of the current network, or the exact
norms ``||g_i||``). ``E_u`` is the mean over the population (uniform weights ``1/n``) and
``σ^2 = E_u ||g - ḡ||^2``. Estimators of ``ḡ`` from ``B`` weighted rows:

* uniform ``k``: ``k`` rows i.i.d. uniform (with replacement), their mean. ``tr Cov = σ^2 / k``; for ``k = B``
  this is ``V_B = σ^2 / B``.
* importance sampling (IS) over the population: ``B`` rows i.i.d. with ``P_i = q_i / Σ_j q_j``, estimate
  ``(1/B) Σ_b g_{J_b} / (n P_{J_b})``. Unbiased, and::

      V_IS = tr Cov = (1/B) (E_u[q] E_u[||g||^2 / q] - ||ḡ||^2)

  (``Σ_i P_i ||g_i / (n P_i)||^2 = E_u[q] E_u[||g||^2/q]``). By Cauchy-Schwarz it is smallest for
  ``q ∝ ||g||``, where ``V_IS = ((E_u||g||)^2 - ||ḡ||^2) / B``: the paper's optimal priorities (Lahire, Geist,
  Rachelson, "Large Batch Experience Replay", ICML 2022, arXiv:2110.01528, section 3).
* LaBER-mean with multiplier ``m`` (``laber.LaBERmean``): a large batch ``I_1 .. I_M``, ``M = m B``, i.i.d.
  uniform over the population (with replacement, as a replay buffer's ``sample`` draws), then ``B`` positions
  ``K_b`` i.i.d. in the large batch with probability ``q_{I_k} / S``, ``S = Σ_k q_{I_k}``, and weights
  ``(S / M) / q``: the estimate is ``ĝ = (1/B) Σ_b (S / M) g_{I_{K_b}} / q_{I_{K_b}}``.

Derivation for LaBER-mean. Given the large batch ``L``, ``E[ĝ | L] = (1/M) Σ_k g_{I_k} = ḡ_L``, so ``ĝ`` is
unbiased for ``ḡ`` and, by the law of total variance, ``tr Cov(ĝ) = E[tr Cov(ĝ | L)] + tr Cov(ḡ_L)`` with
``tr Cov(ḡ_L) = σ^2 / M = V_B / m``. Given ``L`` the ``B`` draws are i.i.d., so::

    tr Cov(ĝ | L) = (1/B) (Σ_k (q_k / S) ||(S/M) g_k / q_k||^2 - ||ḡ_L||^2)
                  = (1/B) ((S / M^2) Σ_k ||g_k||^2 / q_k - ||ḡ_L||^2)

and, the ``I_k`` being independent, ``E[S Σ_k ||g_k||^2/q_k] = M E_u||g||^2 + M (M - 1) E_u[q] E_u[||g||^2/q]``
(the ``M`` diagonal terms are ``q_k ||g_k||^2 / q_k``), while ``E||ḡ_L||^2 = ||ḡ||^2 + σ^2 / M``. With
``E_u||g||^2 = ||ḡ||^2 + σ^2`` the ``σ^2 / M`` terms cancel and::

    tr Cov(LaBER-mean, m) = (1 - 1/(m B)) V_IS + V_B / m                      (exact)

The commonly quoted ``V_IS + V_B / m`` overstates it by ``V_IS / (m B)`` (1.6 % of ``V_IS`` at ``m = 1``,
``B = 64``). Exact under these assumptions: rows drawn with replacement from a fixed population, priorities a
fixed function of the row (computed with the network the gradients are taken at), ``eps`` included in ``q``. It
is not exact for a buffer sampled without replacement (a finite-population correction of order ``M / n``) or
for priorities that change between the draw and the gradient (stale PER priorities).

Consequences: LaBER-mean never beats uniform ``m B`` (``V_IS >= 0``), and beats uniform ``B`` iff
``(1 - 1/(mB)) V_IS + V_B/m < V_B``, i.e. (for ``V_IS < V_B``)::

    m > m_break = (V_B - V_IS / B) / (V_B - V_IS)          (≈ V_B / (V_B - V_IS); infinite if V_IS >= V_B)

If the per-sample gradient norms were proportional to the priorities (``||g_i|| = c q_i``) and ``||ḡ||^2`` were
negligible against ``E_u||g||^2``, then ``V_B - V_IS = c^2 var_u(q) / B`` and ``V_B ≈ c^2 E_u[q^2] / B``, so
``V_B / (V_B - V_IS) ≈ m* = 1 + mean(q)^2 / var(q)``: a break-even computable from the priorities alone
(``m_star``; infinite for constant priorities). A non-negligible ``||ḡ||^2`` makes ``m*`` larger than the true
break-even (conservative); norms not proportional to ``q`` can move it either way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from laber._validation import check_positive_int

__all__ = ["ClosedForm", "check_population", "closed_form", "m_star", "squared_norms"]

_CHUNK_ROWS = 1024


def squared_norms(grads: np.ndarray) -> np.ndarray:
    """``||g_i||^2`` of every row (float64), computed in chunks of rows in float64."""
    out = np.empty(grads.shape[0])
    for start in range(0, grads.shape[0], _CHUNK_ROWS):
        block = np.asarray(grads[start : start + _CHUNK_ROWS], dtype=np.float64)
        out[start : start + block.shape[0]] = np.einsum("ij,ij->i", block, block)
    return out


def check_population(grads: Any, priorities: Any, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Validate a gradient matrix ``(n, d)`` and priorities ``(n,)``; returns ``G`` (as given, float) and ``q``.

    ``q = priorities + eps`` (float64; ``priorities=None`` means all ones). ``ValueError`` names the argument:
    ``G`` not 2-D, empty or not finite; priorities of another length, negative, not finite, or summing to zero
    with ``eps``.
    """
    g = np.asarray(grads)
    if g.ndim != 2 or g.shape[0] == 0 or g.shape[1] == 0:
        raise ValueError(f"grads must be a non-empty 2-D array (n, d), got shape={g.shape}")
    if g.dtype.kind != "f":
        g = g.astype(np.float64)
    if not np.isfinite(g).all():
        raise ValueError("grads must be finite, got a NaN or infinite entry")
    p = np.ones(g.shape[0]) if priorities is None else np.asarray(priorities, dtype=np.float64)
    if p.shape != (g.shape[0],):
        raise ValueError(f"priorities must have shape ({g.shape[0]},) (one per row of grads), got shape={p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("priorities must be finite and >= 0")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got eps={eps!r}")
    q = p + eps
    if not q.sum() > 0:
        raise ValueError(f"priorities + eps must not all be zero, got eps={eps!r} and all-zero priorities")
    return g, q


@dataclass(frozen=True)
class ClosedForm:
    """``V_B`` and ``V_IS`` of one population, priorities and batch size, and what follows from them.

    Attributes:
        batch_size: ``B``.
        v_b: trace variance of the uniform ``B`` mini-batch gradient, ``σ^2 / B``.
        v_is: trace variance of importance sampling over the population with the priorities.
        grad_sq_norm: ``||ḡ||^2``, the squared norm of the population's mean gradient.
    """

    batch_size: int
    v_b: float
    v_is: float
    grad_sq_norm: float

    def uniform(self, m: float) -> float:
        """Trace variance of uniform ``m B``: ``V_B / m``."""
        return self.v_b / m

    def laber_mean(self, m: float) -> float:
        """Trace variance of LaBER-mean with multiplier ``m``: ``(1 - 1/(m B)) V_IS + V_B / m`` (exact)."""
        return (1.0 - 1.0 / (m * self.batch_size)) * self.v_is + self.v_b / m

    @property
    def break_even_m(self) -> float:
        """The ``m`` above which LaBER-mean beats uniform ``B``: ``(V_B - V_IS/B) / (V_B - V_IS)``, or inf."""
        if self.v_is >= self.v_b:
            return math.inf
        return (self.v_b - self.v_is / self.batch_size) / (self.v_b - self.v_is)

    def to_dict(self) -> dict[str, float | None]:
        """JSON-friendly values (an infinite break-even as ``None``)."""
        be = self.break_even_m
        return {
            "batch_size": self.batch_size,
            "v_b": self.v_b,
            "v_is": self.v_is,
            "grad_sq_norm": self.grad_sq_norm,
            "break_even_m": be if math.isfinite(be) else None,
        }


def closed_form(grads: Any, priorities: Any, batch_size: int, *, eps: float = 0.0) -> ClosedForm:
    """``V_B``, ``V_IS`` (formulas in the module docstring) for gradients ``grads`` ``(n, d)`` and priorities.

    The priorities used are ``q = priorities + eps`` (pass LaBER's ``eps`` to match its draw).
    """
    b = check_positive_int(batch_size, "batch_size")
    g, q = check_population(grads, priorities, eps)
    mean_grad = np.asarray(g.mean(axis=0, dtype=np.float64))
    grad_sq = float(mean_grad @ mean_grad)
    sq = squared_norms(g)
    sigma2 = max(float(sq.mean()) - grad_sq, 0.0)
    v_is = math.inf  # a zero-priority row with a non-zero gradient is never drawn: IS is biased, V_IS infinite
    if not np.any((q == 0) & (sq > 0)):
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(sq > 0, sq / q, 0.0)
        v_is = max(float(q.mean() * ratio.mean()) - grad_sq, 0.0) / b
    return ClosedForm(batch_size=b, v_b=sigma2 / b, v_is=v_is, grad_sq_norm=grad_sq)


def m_star(priorities: Any) -> float:
    """The break-even multiplier predicted from the priorities alone: ``1 + mean(q)^2 / var(q)``.

    Exact when per-sample gradient norms are proportional to ``q`` and the mean gradient is negligible (see the
    module docstring); infinite for constant priorities (LaBER's draw is then uniform and cannot help).
    ``var`` is the population variance (``ddof=0``).
    """
    q = np.asarray(priorities, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or not np.isfinite(q).all() or (q < 0).any():
        raise ValueError(f"priorities must be a non-empty 1-D array of finite values >= 0, got shape={q.shape}")
    mean = float(q.mean())
    var = float(np.mean((q - mean) ** 2))
    if var <= 1e-12 * mean * mean or var == 0.0:
        return math.inf
    return 1.0 + mean * mean / var
