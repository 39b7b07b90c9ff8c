r"""Per-sample gradients of any torch model and per-sample loss, with ``torch.func`` (extra ``torch``).

For ``n`` samples and a model with ``d`` trainable parameters ``θ`` the result is the matrix ``G`` of shape
``(n, d)`` whose row ``i`` is ``∇_θ l(f_θ(x_i), t_i)``, flattened in the order of ``model.named_parameters()``
(weights and biases of each layer, parameters with ``requires_grad=False`` left out). It is computed as
``vmap(grad(loss_of_one_sample))`` over chunks of ``chunk_size`` samples, so memory stays bounded by one chunk's
intermediate values plus ``G`` itself; no backward pass runs per sample.

Every mini-batch gradient estimator that draws rows of the batch and weights them is then a weighted sum of the
rows of ``G`` (``laber.diagnostics.estimators``), so thousands of draws cost matrix operations and no further
backward pass.

``q_gradients`` is the Q-learning case: per-sample gradients of the reference DQN's loss
``l_i = huber(Q_θ(s_i, a_i) - y_i)`` (or ``(Q_θ(s_i, a_i) - y_i)^2 / 2``) with the targets ``y`` held fixed, and
LaBER's surrogate priorities ``|dl/dq|`` of the same samples (Lahire, Geist, Rachelson, "Large Batch Experience
Replay", ICML 2022, arXiv:2110.01528).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from laber._optional import require
from laber._validation import check_positive_int

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["parameter_count", "per_sample_gradients", "q_gradients"]

_LOSSES = ("huber", "mse")


def parameter_count(model: torch.nn.Module) -> int:
    """``d``: the number of trainable parameters (the columns of ``per_sample_gradients``' matrix)."""
    return sum(int(p.numel()) for p in model.parameters() if p.requires_grad)


def _as_tuple(value: Any, name: str) -> tuple[Any, ...]:
    torch = require("torch", "laber.diagnostics")
    items = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    for k, item in enumerate(items):
        if not isinstance(item, torch.Tensor):
            raise TypeError(f"{name}[{k}] must be a torch.Tensor, got {type(item).__name__}")
    return items


def per_sample_gradients(
    model: torch.nn.Module,
    loss: Callable[..., Tensor],
    inputs: Tensor | Sequence[Tensor],
    targets: Tensor | Sequence[Tensor] = (),
    *,
    chunk_size: int = 512,
) -> np.ndarray:
    """The per-sample gradient matrix ``G`` (float32 numpy, ``(n, d)``) of ``loss(model(*inputs), *targets)``.

    ``inputs`` (one tensor or a sequence) are the model's arguments and ``targets`` (one tensor, a sequence, or
    none) the loss's extra arguments, all with the samples along axis 0 (``n`` rows each). ``loss(output,
    *targets)`` is called on a batch of one sample (every argument keeps its leading axis, of length 1) and must
    return the per-sample loss (its sum is differentiated). The model's parameters and buffers are used as they
    are now and left unchanged (``torch.func.functional_call``); a model whose output mixes samples
    (batch normalisation in training mode) has no per-sample gradient and gives the one-sample value.

    Raises ``TypeError`` for a non-module model, a non-callable loss or non-tensor inputs, and ``ValueError``
    for inputs of different lengths, no samples, no trainable parameter or a bad ``chunk_size``.
    """
    torch = require("torch", "laber.diagnostics")
    from torch.func import functional_call, grad, vmap

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss):
        raise TypeError(f"loss must be callable, got loss={loss!r}")
    chunk = check_positive_int(chunk_size, "chunk_size")
    xs = _as_tuple(inputs, "inputs")
    ts = _as_tuple(targets, "targets")
    if not xs:
        raise ValueError("inputs must hold at least one tensor, got inputs=()")
    lengths = {int(t.shape[0]) if t.dim() else -1 for t in xs + ts}
    if len(lengths) != 1 or -1 in lengths:
        shapes = [tuple(t.shape) for t in xs + ts]
        raise ValueError(f"inputs and targets must share their leading length, got shapes {shapes}")
    (n,) = lengths
    if n == 0:
        raise ValueError("inputs must hold at least one sample, got length 0")
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    if not params:
        raise ValueError("model has no trainable parameter (every requires_grad is False)")
    buffers = {name: b.detach() for name, b in model.named_buffers()}
    n_in = len(xs)

    def one(p: dict[str, Tensor], *args: Tensor) -> Tensor:
        batch = tuple(a.unsqueeze(0) for a in args)
        out = functional_call(model, (p, buffers), batch[:n_in])
        value: Tensor = loss(out, *batch[n_in:]).sum()
        return value

    per_sample = vmap(grad(one), in_dims=(None, *([0] * (n_in + len(ts)))))
    names = list(params)
    rows = []
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        grads = per_sample(params, *(a[start:stop] for a in xs + ts))
        rows.append(torch.cat([grads[k].reshape(stop - start, -1) for k in names], 1).float().cpu())
    return np.asarray(torch.cat(rows).numpy())


def q_gradients(
    model: torch.nn.Module,
    obs: Tensor,
    act: Tensor,
    targets: Tensor,
    *,
    loss: str = "huber",
    chunk_size: int = 512,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample gradients ``G`` of the Q-learning loss and LaBER's surrogate priorities of the same samples.

    ``model`` maps states ``obs`` (``(n, ...)``) to action values ``(n, actions)``; ``act`` holds the actions
    (``(n,)`` or ``(n, 1)``) and ``targets`` the fixed targets ``y`` (``(n,)``, computed beforehand, e.g. by
    ``laber.agents.dqn.double_dqn_target``). With ``delta = y - Q_θ(s, a)``::

        huber:  l = delta^2 / 2 if |delta| <= 1 else |delta| - 1/2,   surrogate |dl/dq| = min(|delta|, 1)
        mse:    l = delta^2 / 2,                                       surrogate |dl/dq| = |delta|

    Returns ``(G, surrogate)``: ``G`` float32 ``(n, d)`` (see ``per_sample_gradients``) and the surrogate,
    float64 ``(n,)``. The exact per-sample gradient norms are ``np.linalg.norm(G, axis=1)``.
    """
    torch = require("torch", "laber.diagnostics")
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {', '.join(_LOSSES)}, got loss={loss!r}")
    for name, value in (("obs", obs), ("act", act), ("targets", targets)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    n = int(obs.shape[0])
    act = act.reshape(n).long()
    targets = targets.reshape(n).float()
    huber = loss == "huber"
    functional = torch.nn.functional

    def per_sample_loss(q: Tensor, a: Tensor, y: Tensor) -> Tensor:
        q_sa = q.gather(1, a.reshape(-1, 1)).reshape(-1)
        value: Tensor = (
            functional.huber_loss(q_sa, y, reduction="none", delta=1.0) if huber else 0.5 * (q_sa - y).square()
        )
        return value

    with torch.no_grad():
        q_sa = model(obs).gather(1, act.reshape(n, 1)).reshape(n)
        td = (targets - q_sa).abs().double()
    surrogate = td.clamp(max=1.0) if huber else td
    grads = per_sample_gradients(model, per_sample_loss, obs, (act, targets), chunk_size=chunk_size)
    return grads, np.asarray(surrogate.cpu().numpy())
