r"""Exact per-sample gradient norms of the reference DQN's loss: the priorities of the ``ger`` and ``laber-exact`` arms.

The paper's optimal sampling distribution (Lahire, Geist, Rachelson, "Large Batch Experience Replay", ICML 2022,
arXiv:2110.01528, section 3) is ``P_i ∝ ||∇_θ l_i||``, the norm of each sample's loss gradient; its "gradient
experience replay" (GER) samples a prioritized buffer with those norms as priorities, and LaBER approximates
them with the surrogate ``|dl/dq|``. For a Q-network the chain rule splits the norm in two::

    ∇_θ l_i = (dl/dq)(q_i) · ∇_θ Q_θ(s_i, a_i)     so     ||∇_θ l_i|| = |dl/dq| · ||∇_θ Q_θ(s_i, a_i)||

with ``|dl/dq| = min(|delta|, 1)`` for the Huber loss and ``|delta|`` for the MSE (the surrogate). LaBER's
surrogate is exact when ``||∇_θ Q||`` is the same for every sample, which it is not.

For the reference DQN's ReLU MLP (``z_l = a_{l-1} W_l^T + b_l``, ``a_l = relu(z_l)``, ``a_0 = s``,
``Q = z_L``) the second factor has a closed form from one forward pass and one batched backward pass over the
pre-activations, without materialising any per-sample gradient (Goodfellow, "Efficient per-example gradient
computations", arXiv:1510.01799)::

    delta_L = e_{a_i}                                   (one-hot of the action: dQ(s, a)/dz_L)
    delta_l = (delta_{l+1} W_{l+1}) ⊙ 1[z_l > 0]
    ||∇_θ Q_θ(s_i, a_i)||^2 = sum_l ||delta_{l,i}||^2 · (||a_{l-1,i}||^2 + 1)

since the gradient of ``W_l`` for sample ``i`` is the outer product ``delta_{l,i} a_{l-1,i}^T`` (Frobenius norm
``||delta|| ||a||``) and that of ``b_l`` is ``delta_{l,i}``. ``tests/test_diagnostics.py`` checks it against
``torch.autograd.grad`` sample by sample.

Everything runs in torch ops on the inputs' device, reads nothing on the host and is vectorised over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from laber._optional import require

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["GradientNorms", "loss_gradient_norms", "q_gradient_norms"]

_LOSSES = ("huber", "mse")


def q_gradient_norms(layers: Sequence[tuple[Tensor, Tensor]], obs: Tensor, act: Tensor) -> Tensor:
    """``||∇_θ Q_θ(s_i, a_i)||_2`` for every row of ``obs`` (``(n, obs_dim)``) and ``act`` (``(n,)`` or ``(n, 1)``).

    ``layers`` are the ``(weight, bias)`` pairs of a ReLU MLP (``weight`` of shape ``(out, in)``, as
    ``torch.nn.Linear``'s), ReLU between layers and none after the last: the reference DQN's network. ``θ`` is
    every weight and bias. Returns a float tensor of shape ``(n,)`` on ``obs``'s device (formula in the module
    docstring). Computed without gradients.
    """
    torch = require("torch", "the exact gradient-norm priorities")
    if not layers:
        raise ValueError("layers must hold at least one (weight, bias) pair, got layers=[]")
    n = obs.shape[0]
    with torch.no_grad():
        inputs = [obs]  # a_0 .. a_{L-1}: the input of each layer
        masks = []  # 1[z_l > 0] of each hidden layer
        x = obs
        for weight, bias in layers[:-1]:
            z = torch.nn.functional.linear(x, weight, bias)
            mask = (z > 0).to(z.dtype)
            x = z * mask
            masks.append(mask)
            inputs.append(x)
        n_out = layers[-1][0].shape[0]
        delta = torch.zeros(n, n_out, dtype=obs.dtype, device=obs.device)
        delta.scatter_(1, act.reshape(n, 1).long(), 1.0)
        # The last layer: ||delta_L||^2 = 1 (one-hot).
        total = inputs[-1].square().sum(1) + 1.0
        for k in range(len(layers) - 1, 0, -1):
            delta = (delta @ layers[k][0]) * masks[k - 1]
            total = total + delta.square().sum(1) * (inputs[k - 1].square().sum(1) + 1.0)
        return total.sqrt()


def loss_gradient_norms(
    layers: Sequence[tuple[Tensor, Tensor]], obs: Tensor, act: Tensor, td: Tensor, loss: str
) -> Tensor:
    """``||∇_θ l_i|| = |dl/dq|(delta_i) · ||∇_θ Q_θ(s_i, a_i)||``, the per-sample loss gradient norms.

    ``td`` holds the TD errors ``delta_i = y_i - Q_θ(s_i, a_i)`` (targets held fixed, as in the update);
    ``loss`` is ``"huber"`` (``|dl/dq| = min(|delta|, 1)``) or ``"mse"`` (``|delta|``, for ``l = delta^2 / 2``).
    Returns a tensor of ``td``'s dtype and shape ``(n,)``.
    """
    if loss not in _LOSSES:
        raise ValueError(f"loss must be one of {', '.join(_LOSSES)}, got loss={loss!r}")
    scale = td.abs()
    if loss == "huber":
        scale = scale.clamp(max=1.0)
    return scale * q_gradient_norms(layers, obs, act).to(scale.dtype)


class GradientNorms:
    """The exact gradient-norm priorities of a bound network: ``ger``'s and ``laber-exact``'s part of the DQN.

    ``bind(layers)`` gives it the online network's ``(weight, bias)`` pairs (the live parameters: later calls
    see the network as it is then). ``tensor(obs, act, td)`` takes tensors and returns a float32 tensor on their
    device (no host read); ``host(obs, act, td)`` takes numpy arrays and returns float32 numpy, computed by the
    same torch ops on CPU tensors (so the two paths agree bit for bit on the CPU).
    """

    def __init__(self, loss: str) -> None:
        if loss not in _LOSSES:
            raise ValueError(f"loss must be one of {', '.join(_LOSSES)}, got loss={loss!r}")
        self.loss = loss
        self.layers: list[tuple[Any, Any]] = []

    def bind(self, layers: Sequence[tuple[Any, Any]]) -> None:
        """Use these ``(weight, bias)`` pairs (kept by reference) for every later call."""
        self.layers = list(layers)

    def tensor(self, obs: Tensor, act: Tensor, td: Tensor) -> Tensor:
        """Per-sample loss gradient norms (float32 tensor, ``(n,)``) of tensor inputs, on their device."""
        if not self.layers:
            raise RuntimeError("GradientNorms.bind(layers) must be called before computing priorities")
        return loss_gradient_norms(self.layers, obs.float(), act, td.float(), self.loss)

    def host(self, obs: np.ndarray, act: np.ndarray, td: np.ndarray) -> np.ndarray:
        """Per-sample loss gradient norms (float32 numpy, ``(n,)``) of numpy inputs."""
        torch = require("torch", "the exact gradient-norm priorities")
        out = self.tensor(
            torch.from_numpy(np.asarray(obs, dtype=np.float32)),
            torch.from_numpy(np.asarray(act, dtype=np.int64)),
            torch.from_numpy(np.asarray(td, dtype=np.float32)),
        )
        return np.asarray(out.numpy())
