r"""Gradient-variance diagnostics: when does LaBER help? (extra ``torch`` for the per-sample gradients).

The paper's argument (Lahire, Geist, Rachelson, "Large Batch Experience Replay", ICML 2022, arXiv:2110.01528)
is variance: sampling in proportion to per-sample gradient norms minimises the variance of the mini-batch
gradient, and LaBER's surrogate ``|dl/dq|`` approximates those norms cheaply. These tools measure it on a
network and a batch of your own:

* ``per_sample_gradients`` / ``q_gradients`` (``per_sample``): the per-sample gradient matrix ``G`` (``n x d``)
  with ``torch.func``, in chunks, and LaBER's surrogate priorities;
* ``monte_carlo`` (``estimators``): bias (cosine and norm ratio to the population's mean gradient) and trace
  variance of uniform, LaBER (laber's own sub-samplers) and importance-sampling estimators, by thousands of
  draws, each a weighted sum of rows of ``G``;
* ``closed_form``, ``m_star`` (``closed_form``): ``V_B``, ``V_IS``, the exact
  ``tr Cov(LaBER-mean, m) = (1 - 1/(mB)) V_IS + V_B / m``, the break-even ``m``, and ``1 + mean(q)^2/var(q)``;
* ``gradient_variance`` (``measure``): all of it on one population, as a ``VarianceReport``.

``laber variance`` (``laber.experiments.variance``) trains the reference DQN, snapshots it and runs this.
``import laber.diagnostics`` needs numpy only; the per-sample gradients import torch when called.
"""

from laber.diagnostics.closed_form import ClosedForm, closed_form, m_star
from laber.diagnostics.estimators import KINDS, EstimatorResult, monte_carlo
from laber.diagnostics.measure import VarianceReport, gradient_variance, pearson, spearman
from laber.diagnostics.per_sample import parameter_count, per_sample_gradients, q_gradients

__all__ = [
    "KINDS",
    "ClosedForm",
    "EstimatorResult",
    "VarianceReport",
    "closed_form",
    "gradient_variance",
    "m_star",
    "monte_carlo",
    "parameter_count",
    "pearson",
    "per_sample_gradients",
    "q_gradients",
    "spearman",
]
