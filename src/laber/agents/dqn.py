r"""The reference Double DQN, with the replay sampling strategy as a pluggable part ("arm").

This is the agent of the reference page (cpprb's LaBER example), written for torch and gymnasium 1.x, and built
to compare sampling strategies fairly: the network, the optimiser, the targets and the exploration are the same for
every arm; only the way a training batch is drawn and weighted changes.

Targets (Double DQN, van Hasselt, Guez, Silver, "Deep Reinforcement Learning with Double Q-learning", AAAI 2016,
arXiv:1509.06461) with n-step returns (Sutton 1988; Hessel et al., "Rainbow", AAAI 2018)::

    R_t   = sum_{k=0}^{K-1} gamma^k r_{t+k}                     (K <= n: the window stops at the episode's end)
    a*    = argmax_a Q_online(s_{t+K}, a)
    y_t   = R_t + gamma^K (1 - done_t) Q_target(s_{t+K}, a*)
    delta = y_t - Q_online(s_t, a_t)

``gamma^K`` is the buffer's per-row ``discount`` field, so windows cut short by a time limit bootstrap exactly;
``done`` is gymnasium's ``terminated`` (a truncation is not a terminal state). Loss per sample:

    Huber (delta = 1):  l = delta^2 / 2 if |delta| <= 1 else |delta| - 1/2,   |dl/dq| = min(|delta|, 1)
    MSE:                l = delta^2 / 2,                                      |dl/dq| = |delta|

Arms (``ARMS``), with ``B`` the batch size and ``m`` LaBER's multiplier:

* ``uniform``: ``B`` rows uniformly, loss ``mean_b l_b``.
* ``uniform-large``: ``m*B`` rows uniformly (the paper's control for the extra computation of LaBER).
* ``per``: prioritized replay (Schaul, Quan, Antonoglou, Silver, "Prioritized Experience Replay", ICLR 2016,
  arXiv:1511.05952): ``B`` rows with ``P_i ∝ (p_i + eps)^alpha``, loss ``mean_b w_b l_b`` with
  ``w_i = (N P_i)^-beta / max_j (N P_j)^-beta``, ``beta`` annealed linearly from ``per_beta`` to 1, and the
  drawn rows' priorities set to ``|delta|``.
* ``laber-mean``, ``laber-lazy``, ``laber-max``: Large Batch Experience Replay (Lahire, Geist, Rachelson, ICML
  2022, arXiv:2110.01528): ``m*B`` rows uniformly, the surrogate priority ``|dl/dq|`` of each computed with the
  *current* network (``min(|delta|, 1)`` for Huber, ``|delta|`` for MSE), ``B`` of them sub-sampled with
  probability ``P_k ∝ p_k + eps`` and the loss ``mean_b w_b l_b`` with the variant's weights (``LaBERmean``:
  ``w = mean(q) / q_j``, unbiased for the large batch's mean gradient).
* ``per-laber``: laber's combination of PER and LaBER: the ``m*B`` rows are drawn from the prioritized buffer,
  sub-sampled by LaBER, weighted by the product of the PER and LaBER weights (so the loss stays an importance
  weighted estimate of the buffer's uniform mean), and all ``m*B`` priorities are written back as ``|delta|``.
* ``per-laber-paper``: the authors' PER-LaBER (Lahire et al. 2022 and their code): the same draw, sub-sampling
  and write-back of every ``|delta|`` (unclipped), but weighted by LaBER's weights only: PER's bias towards
  high-priority rows is kept, as in their experiments (PER's ``alpha`` 0.6 by default, as theirs).
* ``ger``: the paper's gradient experience replay: ``per`` with the drawn rows' priorities set to the exact
  per-sample gradient norms ``||∇_θ l_i|| = |dl/dq| ||∇_θ Q_θ(s_i, a_i)||`` instead of ``|delta|`` (same
  ``alpha``, ``beta`` and ``eps``; ``laber.agents.gradient_norms``).
* ``laber-exact``: ``laber-mean`` with the exact per-sample gradient norms of the ``m*B`` rows as priorities
  instead of the surrogate: the sampling distribution the paper shows minimises the sub-batch's gradient
  variance, at the cost of one more forward and backward pass over the large batch (without materialising any
  per-sample gradient).

For the large-batch LaBER arms, the ``m*B`` rows go through the networks once without gradients (the online network
on states and next states in one pass, the target network on next states), which gives the targets and surrogate
priorities of the whole large batch; the gradient pass then runs on the ``B`` sub-sampled rows only. (A single
pass with gradients over the large batch gives the same gradient but was measured slower: its backward pass runs
over all ``m*B`` rows.)

One ``seed`` controls everything: ``numpy.random.SeedSequence(seed).spawn`` gives independent streams for the
network's initialisation, the training environment, the evaluation environments, the buffer, the LaBER
sub-sampler and epsilon-greedy exploration. On CPU with one thread, the same seed gives the same run.

Devices (``DQNConfig.device``, ``DQNConfig.device_buffer``; ``laber run --device cuda``). The default host path
(networks on the CPU, a host buffer, row selection and loss weights in numpy, which costs a fraction of a torch
call on batches this small) is unchanged. On any other device, or with ``device_buffer=True`` (the same path on
the CPU), the buffer keeps its rows on the device (``ReplayBuffer(..., device=...)``), the networks live there
and the update runs in torch ops there: the sample (drawn on the device), the Double DQN targets, the surrogate
priorities, LaBER's draw and weights (its torch path), the row selection and the weighted loss. For the
``uniform``, ``uniform-large`` and ``laber-*`` arms the update never synchronises with the host (checked on CUDA
with ``torch.cuda.set_sync_debug_mode("error")``); the PER arms synchronise at ``sample`` (indexes and weights
from the host's sum tree) and ``update_priorities`` (priorities to it), as any PER with a host sum tree does.
Acting moves each observation to the device and the greedy action back. Initial weights are drawn on the CPU,
so they are the same on every device; the buffer's and LaBER's device draws come from torch generators seeded
from the run's numpy streams, so the same seed gives the same run on the CPU (other draws than the host path's:
the same distribution, not the same numbers).
"""

from __future__ import annotations

import importlib
import numbers
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from laber._optional import require
from laber._validation import check_nonnegative_float, check_positive_int
from laber.agents.gradient_norms import GradientNorms
from laber.agents.networks import NETWORKS, minatar_forward, minatar_network, parameter_pairs
from laber.agents.results import RunResult, TimedEvaluations
from laber.agents.resume import LoopState, RunCheckpoints, check_checkpointable, replay_env

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = [
    "ARMS",
    "DQNConfig",
    "RunResult",
    "check_device",
    "check_env",
    "check_trainable",
    "double_dqn_target",
    "first_update_step",
    "train",
]

ARMS: tuple[str, ...] = (
    "uniform",
    "uniform-large",
    "per",
    "laber-mean",
    "laber-lazy",
    "laber-max",
    "per-laber",
    "per-laber-paper",
    "ger",
    "laber-exact",
)
LOSSES: tuple[str, ...] = ("huber", "mse")
_LARGE_ARMS = frozenset(
    {"uniform-large", "laber-mean", "laber-lazy", "laber-max", "per-laber", "per-laber-paper", "laber-exact"}
)
_PER_ARMS = frozenset({"per", "per-laber", "per-laber-paper", "ger"})
OPTIMIZERS: tuple[str, ...] = ("adam", "rmsprop-centered")
# settings left out of to_dict at their defaults: records of runs before they existed read the same
_OMITTED_AT_DEFAULT: dict[str, object] = {
    "device": "cpu",
    "device_buffer": False,
    "network": "mlp",
    "optimizer": "adam",
    "rms_alpha": 0.95,
    "rms_eps": 0.01,
}
_MLP_ONLY_ARMS = frozenset({"ger", "laber-exact"})  # their closed-form gradient norms are the MLP's
MINATAR_PREFIX = "MinAtar/"
MINATAR_MAX_EPISODE_STEPS = 100_000  # MinAtar registers no time limit; a greedy policy may play forever

PRESETS: dict[str, dict[str, Any]] = {
    # Young and Tian's MinAtar DQN as Lahire et al. (2022) ran it: conv 16@3x3 then 128 units, B = 32, 100k
    # buffer, target every 1,000 steps, an update every step after 5,000, epsilon 1.0 to 0.1 over 100k steps,
    # 1-step targets, Huber loss, centred RMSprop (lr 2.5e-4, alpha 0.95, eps 0.01). laber's agent stays a Double
    # DQN (their targets: max_a Q_target).
    "minatar-paper": {
        "network": "minatar",
        "hidden": (128,),
        "batch_size": 32,
        "buffer_size": 100_000,
        "target_update": 1_000,
        "learning_starts": 5_000,
        "train_freq": 1,
        "eps_start": 1.0,
        "eps_end": 0.1,
        "eps_decay_steps": 100_000,
        "gamma": 0.99,
        "nstep": 1,
        "loss": "huber",
        "optimizer": "rmsprop-centered",
        "lr": 2.5e-4,
        "rms_alpha": 0.95,
        "rms_eps": 0.01,
        "eval_every": 10_000,
        "eval_episodes": 5,
    },
}


# ----------------------------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class DQNConfig:
    """Every setting of one training run; validated on construction (named ``ValueError``/``TypeError``).

    Steps count environment steps. The first ``learning_starts`` steps act uniformly at random and do not
    train; after them exploration is epsilon-greedy with ``epsilon`` decayed linearly from ``eps_start`` to
    ``eps_end`` over ``eps_decay_steps`` steps (``epsilon(s) = eps_start + min(max(s - learning_starts, 0) /
    eps_decay_steps, 1) (eps_end - eps_start)``, as in MinAtar's DQN), then held at ``eps_end``. The target
    network is a copy of the online network refreshed every ``target_update`` steps. Evaluation runs
    ``eval_episodes`` greedy episodes every ``eval_every`` steps (and once before training).

    ``device`` (a torch device name: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...) holds the networks. On any device
    but the CPU, or with ``device_buffer=True`` (which runs that path on the CPU too), the replay buffer lives
    there as well (``ReplayBuffer(..., device=device)``) and the update runs with torch ops on the device (see
    "Devices" in the module docstring). The defaults (``"cpu"``, ``False``) are the host path, unchanged.
    """

    env_id: str = "CartPole-v1"
    arm: str = "laber-mean"
    seed: int = 0
    steps: int = 50_000
    batch_size: int = 64
    m: int = 4
    hidden: tuple[int, ...] = (64, 64)
    lr: float = 1e-3
    gamma: float = 0.99
    nstep: int = 3
    loss: str = "huber"
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    train_freq: int = 1
    target_update: int = 500
    eps_start: float = 1.0
    eps_end: float = 0.05
    eps_decay_steps: int = 10_000
    eval_every: int = 1_000
    eval_episodes: int = 5
    laber_eps: float = 1e-6
    per_alpha: float = 0.6
    per_beta: float = 0.4
    per_eps: float = 1e-4
    device: str = "cpu"
    device_buffer: bool = False
    network: str = "mlp"
    optimizer: str = "adam"
    rms_alpha: float = 0.95
    rms_eps: float = 0.01

    def __post_init__(self) -> None:
        if not isinstance(self.env_id, str) or not self.env_id:
            raise TypeError(f"env_id must be a non-empty string, got env_id={self.env_id!r}")
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {', '.join(ARMS)}, got arm={self.arm!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got loss={self.loss!r}")
        seed: object = self.seed
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
            raise ValueError(f"seed must be an integer >= 0, got seed={seed!r}")
        for name in ("steps", "batch_size", "m", "nstep", "buffer_size", "train_freq", "target_update"):
            check_positive_int(getattr(self, name), name)
        for name in ("eval_every", "eval_episodes", "learning_starts"):
            check_positive_int(getattr(self, name), name)
        decay: object = self.eps_decay_steps
        if isinstance(decay, bool) or not isinstance(decay, numbers.Integral):
            raise TypeError(f"eps_decay_steps must be an integer >= 0, got eps_decay_steps={decay!r}")
        if int(decay) < 0:
            raise ValueError(f"eps_decay_steps must be an integer >= 0, got eps_decay_steps={self.eps_decay_steps!r}")
        hidden: object = self.hidden
        if not isinstance(hidden, tuple) or not hidden:
            raise TypeError(f"hidden must be a non-empty tuple of layer widths, got hidden={hidden!r}")
        for width in self.hidden:
            check_positive_int(width, "hidden")
        for name in ("lr", "laber_eps", "per_alpha", "per_beta", "per_eps"):
            check_nonnegative_float(getattr(self, name), name)
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got lr={self.lr!r}")
        for name in ("gamma", "eps_start", "eps_end", "per_beta"):
            value = check_nonnegative_float(getattr(self, name), name)
            if value > 1:
                raise ValueError(f"{name} must be in [0, 1], got {name}={value!r}")
        # The device's availability is checked where it is used (train, the CLI): a config recorded on a GPU
        # machine must still load on one without.
        if not isinstance(self.device, str) or not self.device:
            raise TypeError(f"device must be a torch device name such as 'cpu' or 'cuda', got device={self.device!r}")
        if not isinstance(self.device_buffer, bool):
            raise TypeError(f"device_buffer must be True or False, got device_buffer={self.device_buffer!r}")
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {', '.join(NETWORKS)}, got network={self.network!r}")
        if self.network != "mlp" and self.arm in _MLP_ONLY_ARMS:
            raise ValueError(
                f"arm={self.arm!r} computes the MLP's exact per-sample gradient norms; it does not support "
                f"network={self.network!r}"
            )
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got optimizer={self.optimizer!r}")
        alpha = check_nonnegative_float(self.rms_alpha, "rms_alpha")
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"rms_alpha must be in (0, 1), got rms_alpha={self.rms_alpha!r}")
        if check_nonnegative_float(self.rms_eps, "rms_eps") <= 0.0:
            raise ValueError(f"rms_eps must be > 0, got rms_eps={self.rms_eps!r}")

    @property
    def on_device(self) -> bool:
        """Whether the run takes the device path: a buffer on ``device`` and an update in torch ops there.

        True for any ``device`` but the CPU, and with ``device_buffer`` (the same path, run on the CPU).
        """
        return self.device_buffer or self.device.split(":", 1)[0] != "cpu"

    @property
    def sample_size(self) -> int:
        """Rows drawn from the buffer per update: ``m * batch_size`` for the large-batch arms, else ``batch_size``."""
        return self.m * self.batch_size if self.arm in _LARGE_ARMS else self.batch_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (``hidden`` as a list); ``DQNConfig.from_dict`` inverts it.

        ``device``, ``device_buffer``, ``network``, ``optimizer``, ``rms_alpha`` and ``rms_eps`` are left out at
        their defaults, so that the records of runs read the same as those written before these settings existed
        (a compare resumed over them finds the same settings).
        """
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        for name, default in _OMITTED_AT_DEFAULT.items():
            if out[name] == default:
                del out[name]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DQNConfig:
        """Build a config from ``to_dict``'s output; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown DQNConfig settings: {', '.join(unknown)}")
        values = dict(data)
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)


# ----------------------------------------------------------------------------------------------- seeding
@dataclass(frozen=True)
class _Seeds:
    torch: int
    env: int
    eval: np.random.SeedSequence
    buffer: np.random.SeedSequence
    laber: np.random.SeedSequence
    explore: np.random.SeedSequence


def _seeds(seed: int) -> _Seeds:
    """Independent streams for every source of randomness, all derived from the one run seed."""
    children = np.random.SeedSequence(seed).spawn(6)
    return _Seeds(
        torch=int(children[0].generate_state(1, np.uint64)[0] >> np.uint64(1)),
        env=int(children[1].generate_state(1)[0]),
        eval=children[2],
        buffer=children[3],
        laber=children[4],
        explore=children[5],
    )


# ----------------------------------------------------------------------------------------------- samplers
def _surrogate(loss: str) -> Callable[[np.ndarray], np.ndarray]:
    """LaBER's surrogate priority ``|dl/dq|``: ``min(|delta|, 1)`` for Huber, ``|delta|`` for MSE."""
    if loss == "huber":
        return lambda td: np.minimum(np.abs(td), 1.0)
    return np.abs


def _torch_surrogate(loss: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``_surrogate`` on torch tensors, on their device (the same float32 values)."""
    if loss == "huber":
        return lambda td: td.abs().clamp_(max=1.0)
    return lambda td: td.abs()


class _SubSampler:
    """LaBER (``variant``: mean, lazy or max) on the surrogate priorities of a large batch's TD errors.

    Called with the ``m*B`` TD errors, returns the positions of the ``B`` drawn rows and their weights (float32):
    numpy arrays for numpy TD errors; with ``tensors``, tensors on the TD errors' device (LaBER's torch path: no
    host synchronisation on an accelerator; on the CPU it draws with the numpy kernels, the same draws).
    """

    def __init__(self, config: DQNConfig, rng: np.random.Generator, variant: str, *, tensors: bool = False) -> None:
        import laber

        cls = {"mean": laber.LaBERmean, "lazy": laber.LaBERlazy, "max": laber.LaBERmax}[variant]
        self.laber = cls(config.batch_size, config.m, eps=config.laber_eps, rng=rng)
        self.surrogate: Callable[[Any], Any] = _torch_surrogate(config.loss) if tensors else _surrogate(config.loss)

    def __call__(self, td: Any) -> tuple[Any, Any]:
        out = self.laber(priorities=self.surrogate(td))
        return out["indexes"], out["weights"]


def _annealed_beta(beta0: float, progress: float) -> float:
    """PER's importance exponent, annealed linearly from ``beta0`` at the start to 1 at the end of the run."""
    return beta0 + (1.0 - beta0) * min(max(progress, 0.0), 1.0)


class _Uniform:
    """``uniform`` and ``uniform-large``: the drawn batch is the training batch, unweighted.

    The sampler protocol, on host (numpy) arrays: ``draw`` returns the buffer's batch; ``select(td, batch)``
    returns the positions (in the drawn batch) that enter the loss, or None for all, and the loss weights
    (float32), or None; ``feedback`` sees the TD errors of the drawn rows. With ``prescore`` True, ``select`` and
    ``feedback`` see the TD errors of the whole drawn batch before the gradient pass (LaBER); otherwise after it,
    for the rows that entered the loss.
    """

    prescore = False

    def __init__(self, buffer: Any, size: int) -> None:
        self.buffer = buffer
        self.size = size

    def draw(self, progress: float) -> dict[str, np.ndarray]:
        return self.buffer.sample(self.size)  # type: ignore[no-any-return]

    def select(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        return None, None

    def feedback(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        return None

    def bind(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """Called once by the learner with the online network's ``(weight, bias)`` pairs (used by ``ger`` and
        ``laber-exact``, whose priorities are the network's per-sample gradient norms)."""
        return None


class _LaBER(_Uniform):
    """``laber-*``: draw ``m*B`` uniformly, sub-sample ``B`` in proportion to the surrogate priority."""

    prescore = True

    def __init__(self, buffer: Any, config: DQNConfig, rng: np.random.Generator) -> None:
        super().__init__(buffer, config.m * config.batch_size)
        self.subsample = _SubSampler(config, rng, config.arm.rsplit("-", 1)[1])

    def select(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.subsample(td)


class _PER(_Uniform):
    """``per``: prioritized sampling with importance weights; the drawn rows' priorities set to their ``|delta|``.

    The TD errors are those of the network before the update's optimiser step (the ones its loss used).
    """

    def __init__(self, buffer: Any, config: DQNConfig) -> None:
        super().__init__(buffer, config.batch_size)
        self.beta0 = config.per_beta

    def beta(self, progress: float) -> float:
        return _annealed_beta(self.beta0, progress)

    def draw(self, progress: float) -> dict[str, np.ndarray]:
        return self.buffer.sample(self.size, beta=self.beta(progress))  # type: ignore[no-any-return]

    def select(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        return None, np.asarray(batch["weights"], dtype=np.float32).reshape(-1)

    def feedback(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        self.buffer.update_priorities(batch["indexes"], np.abs(td, dtype=np.float64))


class _PERLaBER(_PER):
    """``per-laber``: the large batch from the prioritized buffer, LaBER on top, all its priorities refreshed."""

    prescore = True

    def __init__(self, buffer: Any, config: DQNConfig, rng: np.random.Generator) -> None:
        super().__init__(buffer, config)
        self.size = config.m * config.batch_size
        self.subsample = _SubSampler(config, rng, "mean")

    def select(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        per_weights = super().select(td, batch)[1]
        assert per_weights is not None  # for mypy: _PER.select always returns weights
        positions, weights = self.subsample(td)
        return positions, weights * per_weights.take(positions)


class _PERLaBERPaper(_PERLaBER):
    """``per-laber-paper``: ``per-laber`` weighted by LaBER's weights alone (the authors' version)."""

    def select(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        return self.subsample(td)


class _GER(_PER):
    """``ger``: ``per`` whose priorities are the exact per-sample loss gradient norms of the drawn rows."""

    def __init__(self, buffer: Any, config: DQNConfig) -> None:
        super().__init__(buffer, config)
        self.norms = GradientNorms(config.loss)

    def bind(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.norms.bind(layers)

    def feedback(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> None:
        norms = self.norms.host(batch["obs"], batch["act"], td)
        self.buffer.update_priorities(batch["indexes"], norms.astype(np.float64))


class _LaBERExact(_Uniform):
    """``laber-exact``: ``m*B`` rows uniformly, ``B`` sub-sampled by LaBER-mean on their exact gradient norms."""

    prescore = True

    def __init__(self, buffer: Any, config: DQNConfig, rng: np.random.Generator) -> None:
        super().__init__(buffer, config.m * config.batch_size)
        self.subsample = _SubSampler(config, rng, "mean")
        self.norms = GradientNorms(config.loss)

    def bind(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.norms.bind(layers)

    def select(self, td: np.ndarray, batch: dict[str, np.ndarray]) -> tuple[np.ndarray | None, np.ndarray | None]:
        out = self.subsample.laber(priorities=self.norms.host(batch["obs"], batch["act"], td))
        return out["indexes"], out["weights"]


# The device path: the same arms on tensors of the buffer's device (``DQNConfig.on_device``).
class _DeviceUniform:
    """``uniform`` and ``uniform-large`` on a device buffer: ``_Uniform``'s protocol on device tensors.

    ``draw`` returns the buffer's batch (tensors on the device); ``select(td, batch)`` the positions (an int64
    tensor) that enter the loss, or None for all, and the loss weights (a float32 tensor), or None;
    ``feedback`` sees the TD errors; ``prescore`` as for ``_Uniform``. Nothing here reads a tensor's value on
    the host.
    """

    prescore = False

    def __init__(self, buffer: Any, size: int) -> None:
        self.buffer = buffer
        self.size = size

    def draw(self, progress: float) -> dict[str, torch.Tensor]:
        return self.buffer.sample(self.size)  # type: ignore[no-any-return]

    def select(
        self, td: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return None, None

    def feedback(self, td: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        return None

    def bind(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        """As ``_Uniform.bind``."""
        return None


class _DeviceLaBER(_DeviceUniform):
    """``laber-*`` on a device buffer: ``m*B`` rows drawn there, ``B`` sub-sampled there by LaBER's torch path."""

    prescore = True

    def __init__(self, buffer: Any, config: DQNConfig, rng: np.random.Generator) -> None:
        super().__init__(buffer, config.m * config.batch_size)
        self.subsample = _SubSampler(config, rng, config.arm.rsplit("-", 1)[1], tensors=True)

    def select(
        self, td: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        positions, weights = self.subsample(td)
        return positions, weights


class _DevicePER(_DeviceUniform):
    """``per`` on a device buffer. Synchronises: ``update_priorities`` copies the ``|delta|`` to the host's sum
    tree (and the buffer's ``sample`` copies the drawn indexes and weights to the device), as any PER must."""

    def __init__(self, buffer: Any, config: DQNConfig) -> None:
        super().__init__(buffer, config.batch_size)
        self.beta0 = config.per_beta

    def draw(self, progress: float) -> dict[str, torch.Tensor]:
        return self.buffer.sample(self.size, beta=_annealed_beta(self.beta0, progress))  # type: ignore[no-any-return]

    def select(
        self, td: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return None, batch["weights"].reshape(-1).float()

    def feedback(self, td: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        self.buffer.update_priorities(batch["indexes"], td.abs().double())  # the host synchronisation


class _DevicePERLaBER(_DevicePER):
    """``per-laber`` on a device buffer: LaBER on the device, all ``m*B`` priorities written back (a sync)."""

    prescore = True

    def __init__(self, buffer: Any, config: DQNConfig, rng: np.random.Generator) -> None:
        super().__init__(buffer, config)
        self.size = config.m * config.batch_size
        self.subsample = _SubSampler(config, rng, "mean", tensors=True)

    def select(
        self, td: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        per_weights = batch["weights"].reshape(-1).float()
        positions, weights = self.subsample(td)
        return positions, weights * per_weights.index_select(0, positions)


class _DevicePERLaBERPaper(_DevicePERLaBER):
    """``per-laber-paper`` on a device buffer: LaBER's weights alone."""

    def select(
        self, td: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return self.subsample(td)


class _DeviceGER(_DevicePER):
    """``ger`` on a device buffer: the gradient norms computed there, then written back (a sync, as ``per``)."""

    def __init__(self, buffer: Any, config: DQNConfig) -> None:
        super().__init__(buffer, config)
        self.norms = GradientNorms(config.loss)

    def bind(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.norms.bind(layers)

    def feedback(self, td: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        norms = self.norms.tensor(batch["obs"], batch["act"], td)
        self.buffer.update_priorities(batch["indexes"], norms.double())  # the host synchronisation


class _DeviceLaBERExact(_DeviceUniform):
    """``laber-exact`` on a device buffer: gradient norms and LaBER's draw on the device (no host read)."""

    prescore = True

    def __init__(self, buffer: Any, config: DQNConfig, rng: np.random.Generator) -> None:
        super().__init__(buffer, config.m * config.batch_size)
        self.subsample = _SubSampler(config, rng, "mean", tensors=True)
        self.norms = GradientNorms(config.loss)

    def bind(self, layers: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.norms.bind(layers)

    def select(
        self, td: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        out = self.subsample.laber(priorities=self.norms.tensor(batch["obs"], batch["act"], td))
        return out["indexes"], out["weights"]


def _buffer_class(name: str) -> Any:
    module = importlib.import_module("laber")
    cls = getattr(module, name, None)
    if cls is None:  # not (yet) exported at the top level
        for path in ("laber.buffers", "laber.prioritized"):
            try:
                cls = getattr(importlib.import_module(path), name, None)
            except ImportError:
                continue
            if cls is not None:
                break
    if cls is None:
        raise ImportError(f"laber.{name} is not available in this installation")
    return cls


def _make_buffer(config: DQNConfig, obs_shape: tuple[int, ...], seeds: _Seeds) -> Any:
    """The run's buffer. Image observations (``network='minatar'``) are stored as ``uint8`` (MinAtar's frames are
    0/1), with ``next_of="obs"`` on the host: a row stores its next frame only where the next row does not."""
    images = config.network == "minatar"
    frame: dict[str, Any] = {"shape": obs_shape, "dtype": np.uint8} if images else {"shape": obs_shape}
    env_dict = {"obs": frame, "act": {"shape": 1, "dtype": np.int64}, "rew": {}, "next_obs": frame, "done": {}}
    kwargs: dict[str, Any] = {"rng": np.random.default_rng(seeds.buffer)}
    if images and not config.on_device:  # a device buffer refuses next_of (its links are host code)
        del env_dict["next_obs"]
        kwargs["next_of"] = "obs"
    if config.on_device:
        kwargs["device"] = config.device
    if config.nstep > 1:
        kwargs["Nstep"] = {"size": config.nstep, "rew": "rew", "gamma": config.gamma, "next": "next_obs"}
    if config.arm in _PER_ARMS:
        cls = _buffer_class("PrioritizedReplayBuffer")
        kwargs.update(alpha=config.per_alpha, eps=config.per_eps)
    else:
        cls = _buffer_class("ReplayBuffer")
    return cls(config.buffer_size, env_dict, **kwargs)


def _make_sampler(config: DQNConfig, buffer: Any, rng: np.random.Generator) -> _Uniform:
    """The arm's sampler over ``buffer``; ``rng`` is LaBER's generator (the run's ``laber`` stream)."""
    if config.arm in ("uniform", "uniform-large"):
        return _Uniform(buffer, config.sample_size)
    if config.arm == "per":
        return _PER(buffer, config)
    if config.arm == "per-laber":
        return _PERLaBER(buffer, config, rng)
    if config.arm == "per-laber-paper":
        return _PERLaBERPaper(buffer, config, rng)
    if config.arm == "ger":
        return _GER(buffer, config)
    if config.arm == "laber-exact":
        return _LaBERExact(buffer, config, rng)
    return _LaBER(buffer, config, rng)


def _make_device_sampler(config: DQNConfig, buffer: Any, rng: np.random.Generator) -> _DeviceUniform:
    if config.arm in ("uniform", "uniform-large"):
        return _DeviceUniform(buffer, config.sample_size)
    if config.arm == "per":
        return _DevicePER(buffer, config)
    if config.arm == "per-laber":
        return _DevicePERLaBER(buffer, config, rng)
    if config.arm == "per-laber-paper":
        return _DevicePERLaBERPaper(buffer, config, rng)
    if config.arm == "ger":
        return _DeviceGER(buffer, config)
    if config.arm == "laber-exact":
        return _DeviceLaBERExact(buffer, config, rng)
    return _DeviceLaBER(buffer, config, rng)


# ----------------------------------------------------------------------------------------------- the agent
def _mlp(n_in: int, hidden: tuple[int, ...], n_out: int) -> Any:
    torch = require("torch", "the reference DQN")
    layers: list[Any] = []
    width = n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers)


def double_dqn_target(
    q_online_next: torch.Tensor,
    q_target_next: torch.Tensor,
    rew: torch.Tensor,
    discount: torch.Tensor | float,
    not_done: torch.Tensor,
) -> torch.Tensor:
    """Double DQN n-step target ``y = R + gamma^K (1 - done) Q_target(s', argmax_a Q_online(s', a))``.

    ``q_*_next`` are ``(n, actions)`` values at the bootstrap states, ``rew`` the (discounted n-step) rewards,
    ``discount`` the per-row ``gamma^K`` (or one float) and ``not_done`` ``1 - done``; all but the first two are
    ``(n,)``. van Hasselt, Guez, Silver, AAAI 2016, arXiv:1509.06461.
    """
    best = q_online_next.argmax(1, keepdim=True)
    return rew.addcmul(not_done * discount, q_target_next.gather(1, best).view(-1))


def _forward(torch: Any, layers: list[tuple[torch.Tensor, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """The MLP's forward pass, ReLU between linear layers."""
    linear = torch.nn.functional.linear
    *hidden, (weight, bias) = layers
    for w, b in hidden:
        x = torch.relu(linear(x, w, b))
    return linear(x, weight, bias)  # type: ignore[no-any-return]


class _Networks:
    """Online and target networks (initialised on the CPU, then moved to ``device``), optimiser and loss."""

    def __init__(self, config: DQNConfig, n_obs: int | tuple[int, ...], n_actions: int, device: str = "cpu") -> None:
        torch = require("torch", "the reference DQN")
        self.torch = torch
        self.config = config
        self.device = torch.device(device)
        obs_shape = (n_obs,) if isinstance(n_obs, int) else tuple(n_obs)
        # Built on the CPU from torch's CPU generator and then moved: the same initial weights on every device.
        if config.network == "minatar":
            self.online = minatar_network(obs_shape, config.hidden, n_actions).to(self.device)
            self.target = minatar_network(obs_shape, config.hidden, n_actions).to(self.device)
            self._forward: Callable[[Any, Any, Any], Any] = minatar_forward
        else:
            self.online = _mlp(obs_shape[0], config.hidden, n_actions).to(self.device)
            self.target = _mlp(obs_shape[0], config.hidden, n_actions).to(self.device)
            self._forward = _forward
        self.target.load_state_dict(self.online.state_dict())
        self.target.requires_grad_(False)
        if config.optimizer == "rmsprop-centered":
            self.optimizer = torch.optim.RMSprop(
                self.online.parameters(), lr=config.lr, alpha=config.rms_alpha, eps=config.rms_eps, centered=True
            )
        else:
            self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.lr, fused=True)
        # (weight, bias) pairs: a functional forward pass skips nn.Module dispatch, a large share of the time of
        # such small networks on a CPU.
        self.online_layers = parameter_pairs(self.online)
        self.target_layers = parameter_pairs(self.target)
        self.default_discount = config.gamma ** (config.nstep if config.nstep > 1 else 1)
        huber = config.loss == "huber"
        f = torch.nn.functional
        self.loss_fn: Callable[[Any, Any], Any] = (
            (lambda q, y: f.huber_loss(q, y, reduction="none", delta=1.0))
            if huber
            else (lambda q, y: 0.5 * f.mse_loss(q, y, reduction="none"))
        )

    def q_online(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.torch, self.online_layers, x)  # type: ignore[no-any-return]

    def q_target(self, x: torch.Tensor) -> torch.Tensor:
        return self._forward(self.torch, self.target_layers, x)  # type: ignore[no-any-return]

    def sync_target(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def state(self) -> dict[str, Any]:
        """The networks' and the optimiser's state dicts (for ``laber.agents.resume``)."""
        return {
            "online": self.online.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Load what ``state`` returned, in place (the functional forward pass's parameter pairs stay valid)."""
        self.online.load_state_dict(state["online"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])


class _Learner(_Networks):
    """The host path: networks on the CPU, a host buffer, the Double DQN update for one sampling strategy."""

    def __init__(self, config: DQNConfig, n_obs: int | tuple[int, ...], n_actions: int, sampler: _Uniform) -> None:
        super().__init__(config, n_obs, n_actions)
        self.sampler = sampler
        sampler.bind(self.online_layers)

    def act(self, obs: np.ndarray) -> int:
        with self.torch.inference_mode():
            q = self.q_online(self.torch.from_numpy(np.asarray(obs, dtype=np.float32)).unsqueeze(0))
        return int(q.argmax())

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            q = self.q_online(self.torch.from_numpy(np.asarray(obs, dtype=np.float32)))
        return np.asarray(q.argmax(1).numpy())

    def update(self, progress: float) -> float:
        """One gradient step on a batch from the sampler; returns the loss.

        Targets (and, for the LaBER arms, the surrogate priorities of the whole large batch, with one forward pass
        of the online network over its states and next states together) are computed without gradients; the
        gradient pass runs on the ``B`` rows that enter the loss only. Row selection and the loss weights work on
        host arrays: for batches of this size a numpy call costs a fraction of a torch call's dispatch.
        """
        torch = self.torch
        sampler = self.sampler
        batch = sampler.draw(progress)
        # float32 observations as they are; compact ones (MinAtar's uint8 frames) converted once
        obs = batch["obs"].astype(np.float32, copy=False)
        next_obs = batch["next_obs"].astype(np.float32, copy=False)
        n = obs.shape[0]
        act = np.asarray(batch["act"]).reshape(n, 1).astype(np.int64, copy=False)
        discount = batch.get("discount")
        gamma_k: Any = (
            torch.from_numpy(np.asarray(discount, dtype=np.float32).reshape(n))
            if discount is not None
            else self.default_discount
        )
        not_done = torch.from_numpy(1.0 - np.asarray(batch["done"], dtype=np.float32).reshape(n))
        rew = torch.from_numpy(np.asarray(batch["rew"], dtype=np.float32).reshape(n))
        next_states = torch.from_numpy(next_obs)
        q_sa_all: np.ndarray | None = None  # Q_online(s, a) of every drawn row, for the pre-scoring arms
        with torch.inference_mode():
            if sampler.prescore:
                q_both = self.q_online(torch.from_numpy(np.concatenate((obs, next_obs))))
                q_sa_all = q_both[:n].gather(1, torch.from_numpy(act)).view(n).numpy()
                q_online_next = q_both[n:]
            else:
                q_online_next = self.q_online(next_states)
            y = double_dqn_target(q_online_next, self.q_target(next_states), rew, gamma_k, not_done).numpy()
        weights: np.ndarray | None = None
        if q_sa_all is not None:
            td = y - q_sa_all
            positions, weights = sampler.select(td, batch)
            sampler.feedback(td, batch)
            if positions is not None:
                obs, act, y = obs.take(positions, 0), act.take(positions, 0), y.take(positions)
        q_sa = self.q_online(torch.from_numpy(obs)).gather(1, torch.from_numpy(act)).view(-1)
        losses = self.loss_fn(q_sa, torch.from_numpy(y))
        if not sampler.prescore:
            td = y - q_sa.detach().numpy()
            weights = sampler.select(td, batch)[1]
            sampler.feedback(td, batch)
        # mean_b w_b l_b as one dot product with w / B (one autograd node instead of a product and a mean)
        loss = losses.mean() if weights is None else torch.dot(losses, torch.from_numpy(weights / len(weights)))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())


class _DeviceLearner(_Networks):
    """The device path (``DQNConfig.on_device``): networks and buffer on ``config.device``, the update in torch ops.

    What synchronises with the host, and what does not:

    * ``update`` for ``uniform``, ``uniform-large`` and the ``laber-*`` arms: nothing. The buffer draws and
      gathers on the device, the targets, TD errors, surrogate priorities, LaBER's draw and weights, the row
      selection (``index_select``), the weighted Huber loss, the backward pass and the fused Adam step are device
      ops queued on the stream; no value is read on the host (no ``.item()``, ``.cpu()``, ``float(tensor)``,
      ``nonzero``, no branch on a tensor) and it returns the loss as a device tensor. On CUDA this is checked
      with ``torch.cuda.set_sync_debug_mode("error")`` (``tests/test_dqn.py``).
    * ``update`` for ``per`` and ``per-laber``: the buffer's ``sample`` copies the drawn indexes and weights from
      the host's sum tree to the device, and ``update_priorities`` copies the new priorities back to it; both
      wait for the device, as any PER with a host sum tree must.
    * Acting (``act``, ``act_batch``): the observation goes to the device and the greedy action comes back, a
      synchronisation per call, outside the update. ``ReplayBuffer.add`` copies each transition to the device.
    """

    def __init__(
        self, config: DQNConfig, n_obs: int | tuple[int, ...], n_actions: int, sampler: _DeviceUniform
    ) -> None:
        super().__init__(config, n_obs, n_actions, config.device)
        self.sampler = sampler
        sampler.bind(self.online_layers)

    def _states(self, obs: np.ndarray) -> torch.Tensor:
        states: torch.Tensor = self.torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return states

    def act(self, obs: np.ndarray) -> int:
        with self.torch.inference_mode():
            q = self.q_online(self._states(obs).unsqueeze(0))
        return int(q.argmax())

    def act_batch(self, obs: np.ndarray) -> np.ndarray:
        with self.torch.inference_mode():
            q = self.q_online(self._states(obs))
        return np.asarray(q.argmax(1).cpu().numpy())

    def update(self, progress: float) -> torch.Tensor:
        """One gradient step on a batch from the device buffer; returns the loss, a device tensor (not synced).

        The same computation as ``_Learner.update`` (same targets, priorities, draws and weights; on the CPU,
        from the same batch and seeds, the same parameters bit for bit), in torch ops on the batch's device.
        Targets and the large batch's scores are computed under ``no_grad`` (not ``inference_mode``: the targets
        enter the loss, whose backward pass saves them).
        """
        torch = self.torch
        sampler = self.sampler
        batch = sampler.draw(progress)
        obs, next_obs = batch["obs"].float(), batch["next_obs"].float()
        n = obs.shape[0]
        act = batch["act"].reshape(n, 1).long()
        discount = batch.get("discount")
        gamma_k: Any = discount.reshape(n).float() if discount is not None else self.default_discount
        not_done = 1.0 - batch["done"].reshape(n).float()
        rew = batch["rew"].reshape(n).float()
        q_sa_all: Tensor | None = None  # Q_online(s, a) of every drawn row, for the pre-scoring arms
        with torch.no_grad():
            if sampler.prescore:
                q_both = self.q_online(torch.cat((obs, next_obs)))
                q_sa_all = q_both[:n].gather(1, act).view(n)
                q_online_next = q_both[n:]
            else:
                q_online_next = self.q_online(next_obs)
            y = double_dqn_target(q_online_next, self.q_target(next_obs), rew, gamma_k, not_done)
        weights: Tensor | None = None
        if q_sa_all is not None:
            td = y - q_sa_all
            positions, weights = sampler.select(td, batch)
            sampler.feedback(td, batch)
            if positions is not None:
                obs, act, y = (
                    obs.index_select(0, positions),
                    act.index_select(0, positions),
                    y.index_select(0, positions),
                )
        q_sa = self.q_online(obs).gather(1, act).view(-1)
        losses = self.loss_fn(q_sa, y)
        if not sampler.prescore:
            td = y - q_sa.detach()
            weights = sampler.select(td, batch)[1]
            sampler.feedback(td, batch)
        loss = losses.mean() if weights is None else torch.dot(losses, weights / weights.shape[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()  # type: ignore[no-any-return]


def _epsilon(config: DQNConfig, step: int) -> float:
    """Linear decay from ``eps_start`` to ``eps_end`` over ``eps_decay_steps`` steps after learning starts."""
    if config.eps_decay_steps == 0:
        return config.eps_end
    frac = min(max(step - config.learning_starts, 0) / config.eps_decay_steps, 1.0)
    return config.eps_start + frac * (config.eps_end - config.eps_start)


def _evaluate(learner: _Learner | _DeviceLearner, envs: list[Any], rng: np.random.Generator) -> float:
    """Mean return of one greedy episode in each evaluation environment, stepped in lockstep (one forward pass)."""
    obs = np.stack([env.reset(seed=int(rng.integers(2**31)))[0] for env in envs]).astype(np.float32)
    returns = np.zeros(len(envs))
    active = np.ones(len(envs), dtype=bool)
    while active.any():
        live = np.flatnonzero(active)
        actions = learner.act_batch(obs[live])
        for k, a in zip(live, actions, strict=True):
            o, r, terminated, truncated, _ = envs[k].step(int(a))
            returns[k] += float(r)
            obs[k] = o
            if terminated or truncated:
                active[k] = False
    return float(returns.mean())


def _check_spaces(env: Any, env_id: str, network: str = "mlp") -> tuple[tuple[int, ...], int]:
    """The observation shape and the number of actions, checked against ``network``'s needs."""
    gym = require("gymnasium", "the reference DQN")
    obs_space, act_space = env.observation_space, env.action_space
    if not isinstance(act_space, gym.spaces.Discrete):
        raise ValueError(
            f"the reference DQN needs a Discrete action space, got env_id={env_id!r} with action space {act_space}"
            + (" (continuous actions: SAC, laber run --agent sac)" if isinstance(act_space, gym.spaces.Box) else "")
        )
    if network == "minatar":
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 3:
            raise ValueError(
                f"network='minatar' needs (height, width, channels) Box observations, got env_id={env_id!r} "
                f"with observation space {obs_space}"
            )
    elif not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        hint = (
            " (image observations: network='minatar', e.g. laber run --config minatar-paper)"
            if isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 3
            else ""
        )
        raise ValueError(
            f"the reference DQN needs a flat Box observation space, got env_id={env_id!r} "
            f"with observation space {obs_space} (network='mlp'){hint}"
        )
    return tuple(int(d) for d in obs_space.shape), int(act_space.n)


def make_env(env_id: str, *, evaluation: bool = False) -> Any:
    """``gymnasium.make(env_id)``; MinAtar's environments (``MinAtar/Breakout-v1``, ...; extra ``minatar``) are
    registered first, and evaluation copies get a time limit of ``MINATAR_MAX_EPISODE_STEPS`` steps (MinAtar
    registers none, and a greedy policy may play forever)."""
    gym = require("gymnasium", "the reference DQN")
    if env_id.startswith(MINATAR_PREFIX):
        minatar_gym = require("minatar.gym", "MinAtar environments")
        if env_id not in gym.registry:
            minatar_gym.register_envs()
        if evaluation:
            return gym.make(env_id, max_episode_steps=MINATAR_MAX_EPISODE_STEPS)
    return gym.make(env_id)


def check_env(env_id: str, network: str = "mlp") -> tuple[int, int]:
    """Build ``env_id`` once and check that the reference DQN with ``network`` can train on it, before any run
    starts.

    Returns the observation size (the number of values of one observation) and the number of actions. An
    unknown id, an environment that cannot be built (a missing dependency, say) and one whose spaces the DQN
    cannot handle (a continuous action space; for the MLP an observation that is not a flat ``Box``, for
    ``minatar`` one that is not ``(height, width, channels)``) are a ``ValueError`` naming ``env_id``.
    """
    gym = require("gymnasium", "the reference DQN")
    if not isinstance(env_id, str) or not env_id:
        raise TypeError(f"env_id must be a non-empty string, got env_id={env_id!r}")
    try:
        env = make_env(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"env_id={env_id!r} cannot be built: {exc}") from exc
    try:
        shape, n_actions = _check_spaces(env, env_id, network)
        return int(np.prod(shape)), n_actions
    finally:
        env.close()


def check_device(device: object) -> Any:
    """Check that ``device`` names a torch device this machine has; returns the ``torch.device``.

    A name torch does not know (``"gpu"``), CUDA or MPS when this machine or torch build has none, a CUDA index
    past the last device and the ``meta`` device (no data) are a ``ValueError`` naming ``device``; a non-string
    is a ``TypeError``.
    """
    torch = require("torch", "the reference DQN")
    if not isinstance(device, str) or not device:
        raise TypeError(f"device must be a torch device name such as 'cpu' or 'cuda', got device={device!r}")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device must name a torch device ('cpu', 'cuda', 'cuda:1', ...), got device={device!r}"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine (or in this torch build)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device={device!r}: MPS is not available on this machine (or in this torch build)")
    elif dev.type == "meta":
        raise ValueError(f"device={device!r}: the meta device holds no data and cannot train")
    elif dev.type != "cpu":
        try:
            torch.zeros(1, device=dev)
        except (RuntimeError, AssertionError) as exc:
            raise ValueError(f"device={device!r} is not usable on this machine: {exc}") from None
    return dev


def _synchronizer(device: Any) -> Callable[[], None] | None:
    """A call that waits for ``device``'s queued work (None for the CPU, whose ops finish when they return)."""
    torch = require("torch", "the reference DQN")
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return lambda: torch.mps.synchronize()
    return None


def first_update_step(config: DQNConfig) -> int:
    """The step of a run's first update: the first multiple of ``train_freq`` after ``learning_starts``."""
    return (config.learning_starts // config.train_freq + 1) * config.train_freq


def check_trainable(config: DQNConfig) -> None:
    """Raise ``ValueError`` when ``config`` describes a run that would end before its first update.

    Such a run has nothing to time or learn (its seconds per update would be NaN); the message names ``steps``,
    ``learning_starts`` and ``train_freq``.
    """
    if not isinstance(config, DQNConfig):
        raise TypeError(f"config must be a DQNConfig, got config={config!r}")
    first = first_update_step(config)
    if config.steps < first:
        raise ValueError(
            f"steps must reach the first update at step {first} (after learning_starts={config.learning_starts}, "
            f"one update every train_freq={config.train_freq} steps), got steps={config.steps}: the run would "
            "never train"
        )


def train(
    config: DQNConfig,
    *,
    on_eval: Callable[[int, float], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    progress_every: int = 250,
    buffer_factory: Callable[[DQNConfig, tuple[int, ...], np.random.Generator], Any] | None = None,
    on_snapshot: Callable[[int, Any, Any, Any], None] | None = None,
    snapshot_steps: Collection[int] = (),
    checkpoints: RunCheckpoints | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> RunResult:
    """Train the reference DQN for ``config.steps`` environment steps and return its evaluation curve.

    ``on_eval(step, mean_return)`` is called after each evaluation (step 0 included) and ``on_progress(steps)``
    every ``progress_every`` steps with the steps done since the last call. ``buffer_factory(config, obs_shape,
    rng)`` replaces the library's buffer (for tests); it must offer the ``ReplayBuffer`` API (and the prioritized
    one for ``per`` arms). The process's torch thread count is left to the caller (one thread per run is fastest
    for these small networks: ``torch.set_num_threads(1)``). A ``config`` whose run would end before its first
    update is a ``ValueError`` (see ``check_trainable``), and so is a ``device`` this machine lacks (see
    ``check_device``).

    With ``config.on_device`` the buffer (a ``buffer_factory``'s too: it must then return tensors on
    ``config.device``) and the networks live on ``config.device`` (see ``_DeviceLearner`` for what
    synchronises). The updates themselves never wait for the device; to time them, ``train`` waits for it
    after each update on an accelerator (``torch.cuda.synchronize``), so that ``seconds_per_update`` counts the
    device's work rather than its launch (the next step's ``act`` and ``add`` wait for the device anyway).

    ``on_snapshot(step, online, target, buffer)`` is called at the end of each step in ``snapshot_steps`` (after
    that step's update, target sync and evaluation) with the online and target networks (``torch.nn.Module``)
    and the replay buffer, for measurements such as ``laber variance``'s. It must change none of them and draw
    nothing from the buffer's generator (read rows with ``get_all_transitions()``), or the run changes.

    ``checkpoints`` (``laber.agents.resume.RunCheckpoints``): when it holds a checkpoint of this config the run
    continues from it (the environment replayed through the saved actions; ``on_resume(steps)`` is called once with
    the steps already done, or ``on_progress`` gets them when there is no ``on_resume``; the evaluations before
    the checkpoint are not reported again), and a new checkpoint is
    written at each evaluation where one is due. The run is the uninterrupted run (see ``laber.agents.resume``).
    """
    check_trainable(config)
    device = check_device(config.device)
    torch = require("torch", "the reference DQN")
    require("gymnasium", "the reference DQN")
    start = time.perf_counter()
    seeds = _seeds(config.seed)
    torch.manual_seed(seeds.torch)
    env = make_env(config.env_id)
    eval_envs = [make_env(config.env_id, evaluation=True) for _ in range(config.eval_episodes)]
    try:
        n_obs, n_actions = _check_spaces(env, config.env_id, config.network)
        if buffer_factory is None:
            buffer = _make_buffer(config, n_obs, seeds)
        else:
            buffer = buffer_factory(config, n_obs, np.random.default_rng(seeds.buffer))
        if checkpoints is not None:
            check_checkpointable(buffer)
        laber_rng = np.random.default_rng(seeds.laber)
        learner: _Learner | _DeviceLearner
        if config.on_device:
            learner = _DeviceLearner(config, n_obs, n_actions, _make_device_sampler(config, buffer, laber_rng))
        else:
            learner = _Learner(config, n_obs, n_actions, _make_sampler(config, buffer, laber_rng))
        wait = _synchronizer(device)
        explore = np.random.default_rng(seeds.explore)
        eval_rng = np.random.default_rng(seeds.eval)
        env.action_space.seed(int(explore.integers(2**31)))
        result = RunResult(config=config)
        snapshots = frozenset(int(s) for s in snapshot_steps)
        generators = {"explore": explore, "eval": eval_rng, "laber": laber_rng}
        actions = np.zeros(config.steps, dtype=np.int64)

        evaluate = TimedEvaluations(result, start, lambda: _evaluate(learner, eval_envs, eval_rng), on_eval)

        resumed = (
            checkpoints.restore(result, evaluate, agent=learner.load_state, generators=generators, buffer=buffer)
            if checkpoints is not None
            else None
        )
        if resumed is None:
            evaluate(0)
            obs, _ = env.reset(seed=seeds.env)
            episode_return = 0.0
            first = 1
        else:
            t0 = time.perf_counter()
            actions[: resumed.step] = resumed.actions
            obs = replay_env(
                env,
                resumed,
                lambda initial: env.reset(seed=seeds.env)[0] if initial else env.reset()[0],
                [s for s in result.episode_steps if s <= resumed.step],
            )
            evaluate.start += time.perf_counter() - t0  # the replay is not training time
            episode_return = resumed.episode_return
            first = resumed.step + 1
            if on_resume is not None:
                on_resume(resumed.step)
            elif on_progress is not None:
                on_progress(resumed.step)
        pending = 0
        update = learner.update
        for step in range(first, config.steps + 1):
            if step <= config.learning_starts or explore.random() < _epsilon(config, step):
                action = int(explore.integers(n_actions))
            else:
                action = learner.act(obs)
            actions[step - 1] = action
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(obs=obs, act=action, rew=reward, next_obs=next_obs, done=float(terminated))
            episode_return += float(reward)
            if terminated or truncated:
                buffer.on_episode_end()
                result.episode_steps.append(step)
                result.episode_returns.append(episode_return)
                episode_return = 0.0
                obs, _ = env.reset()
            else:
                obs = next_obs
            if step > config.learning_starts and step % config.train_freq == 0:
                t0 = time.perf_counter()
                update(step / config.steps)
                if wait is not None:
                    wait()
                result.update_seconds += time.perf_counter() - t0
                result.updates += 1
            if step % config.target_update == 0:
                learner.sync_target()
            if step % config.eval_every == 0 or step == config.steps:
                evaluate(step)
            if on_snapshot is not None and step in snapshots:
                on_snapshot(step, learner.online, learner.target, buffer)
            if (
                checkpoints is not None
                and (step % config.eval_every == 0)
                and step < config.steps
                and checkpoints.due()
            ):  # after the step's evaluation and snapshot: a resumed run repeats neither
                checkpoints.save(
                    LoopState(step=step, episode_return=episode_return, actions=actions, obs=np.asarray(obs)),
                    result,
                    evaluate,
                    agent=learner.state(),
                    generators=generators,
                    buffer=buffer,
                )
            pending += 1
            if on_progress is not None and pending >= progress_every:
                on_progress(pending)
                pending = 0
        if on_progress is not None and pending:
            on_progress(pending)
    finally:
        env.close()
        for e in eval_envs:
            e.close()
    result.wall_seconds = time.perf_counter() - evaluate.start
    return result
