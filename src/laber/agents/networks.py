"""Q-network torsos of the reference DQN beyond its MLP: the MinAtar convolutional network.

``minatar``: the network of K. Young and T. Tian, "MinAtar: An Atari-Inspired Testbed for Thorough and
Reproducible Reinforcement Learning Experiments" (arXiv:1903.03176, 2019), used by Lahire et al. (ICML 2022) on
MinAtar: a ``10 x 10 x C`` observation (one boolean channel per object kind), one convolution of 16 filters
``3 x 3`` with stride 1 and no padding (``8 x 8 x 16`` out), ReLU, a fully connected layer of ``hidden[0]`` units
(128 in the paper), ReLU, and one output per action::

    Q(s) = W_3 relu(W_2 flatten(relu(conv_{16, 3x3}(s))) + b_2) + b_3

Parameters come as ``(weight, bias)`` pairs, as the MLP's do, for the functional forward pass that skips
``nn.Module`` dispatch.
"""

from __future__ import annotations

from typing import Any

from laber._optional import require

__all__ = ["NETWORKS", "minatar_forward", "minatar_network"]

NETWORKS: tuple[str, ...] = ("mlp", "minatar")
MINATAR_FILTERS = 16
MINATAR_KERNEL = 3


def minatar_network(obs_shape: tuple[int, ...], hidden: tuple[int, ...], n_actions: int) -> Any:
    """The MinAtar network for observations ``(H, W, C)`` (channels last, as MinAtar gives them):
    ``Conv2d(C, 16, 3)``, ReLU, ``Linear(16 (H - 2) (W - 2), hidden[0])``, ReLU, ``Linear(hidden[0], actions)``."""
    torch = require("torch", "the reference DQN")
    if len(obs_shape) != 3:
        raise ValueError(f"the minatar network needs (height, width, channels) observations, got {obs_shape}")
    height, width, channels = obs_shape
    if height < MINATAR_KERNEL or width < MINATAR_KERNEL:
        raise ValueError(f"the minatar network needs observations of at least 3 x 3, got {obs_shape}")
    flat = MINATAR_FILTERS * (height - MINATAR_KERNEL + 1) * (width - MINATAR_KERNEL + 1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(channels, MINATAR_FILTERS, MINATAR_KERNEL, stride=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(flat, hidden[0]),
        torch.nn.ReLU(),
        torch.nn.Linear(hidden[0], n_actions),
    )


def parameter_pairs(network: Any) -> list[tuple[Any, Any]]:
    """The ``(weight, bias)`` pairs of a network's convolution and linear layers, in order."""
    torch = require("torch", "the reference DQN")
    return [(m.weight, m.bias) for m in network if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]


def minatar_forward(torch: Any, layers: list[tuple[Any, Any]], x: Any) -> Any:
    """The MinAtar network's forward pass on ``(n, H, W, C)`` observations (any real dtype; cast to float32)."""
    f = torch.nn.functional
    (conv_w, conv_b), (fc_w, fc_b), (out_w, out_b) = layers
    h = torch.relu(f.conv2d(x.float().permute(0, 3, 1, 2), conv_w, conv_b))
    h = torch.relu(f.linear(h.flatten(1), fc_w, fc_b))
    return f.linear(h, out_w, out_b)
