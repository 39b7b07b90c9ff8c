"""The reference Double DQN: configuration, targets, every arm end to end, determinism and a learning smoke test."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from laber.agents import dqn  # noqa: E402
from laber.agents.dqn import ARMS, DQNConfig, double_dqn_target, train  # noqa: E402


# ------------------------------------------------------------------------------------- stand-in buffer
class StandInBuffer:
    """A minimal uniform/prioritized buffer with the library's API, used only while laber's buffers are missing."""

    def __init__(self, size: int, obs_shape: tuple[int, ...], *, nstep: int, gamma: float, rng: Any, per: bool):
        self.size = size
        self.rng = np.random.default_rng(rng)
        self.data = {
            "obs": np.zeros((size, *obs_shape), np.float32),
            "act": np.zeros((size, 1), np.int64),
            "rew": np.zeros((size, 1), np.float32),
            "next_obs": np.zeros((size, *obs_shape), np.float32),
            "done": np.zeros((size, 1), np.float32),
            "discount": np.zeros((size, 1), np.float32),
        }
        self.nstep, self.gamma = nstep, gamma
        self.window: deque[dict[str, Any]] = deque()
        self.next = self.stored = 0
        self.prio = np.zeros(size) if per else None
        self.max_prio = 1.0

    def _emit(self) -> None:
        first, last = self.window[0], self.window[-1]
        i = self.next
        self.data["obs"][i], self.data["act"][i] = first["obs"], first["act"]
        self.data["rew"][i] = sum(self.gamma**k * t["rew"] for k, t in enumerate(self.window))
        self.data["next_obs"][i], self.data["done"][i] = last["next_obs"], last["done"]
        self.data["discount"][i] = self.gamma ** len(self.window)
        if self.prio is not None:
            self.prio[i] = self.max_prio
        self.next, self.stored = (i + 1) % self.size, min(self.stored + 1, self.size)
        self.window.popleft()

    def add(self, **t: Any) -> None:
        self.window.append(t)
        if t["done"]:
            self.on_episode_end()
        elif len(self.window) == self.nstep:
            self._emit()

    def on_episode_end(self) -> None:
        while self.window:
            self._emit()

    def sample(self, batch_size: int, beta: float | None = None) -> dict[str, np.ndarray]:
        if self.prio is None:
            idx = self.rng.integers(self.stored, size=batch_size)
            out = {k: v[idx] for k, v in self.data.items()}
        else:
            p = (self.prio[: self.stored] + 1e-4) ** 0.6
            prob = p / p.sum()
            idx = self.rng.choice(self.stored, size=batch_size, p=prob)
            out = {k: v[idx] for k, v in self.data.items()}
            w = (self.stored * prob[idx]) ** -float(beta if beta is not None else 0.4)
            out["weights"] = (w / w.max()).astype(np.float32)
        out["indexes"] = idx
        return out

    def update_priorities(self, indexes: np.ndarray, priorities: np.ndarray) -> None:
        assert self.prio is not None
        self.prio[indexes] = priorities
        self.max_prio = max(self.max_prio, float(np.max(priorities)))


def stand_in_factory(config: DQNConfig, obs_shape: tuple[int, ...], rng: np.random.Generator) -> StandInBuffer:
    return StandInBuffer(
        config.buffer_size,
        obs_shape,
        nstep=config.nstep,
        gamma=config.gamma,
        rng=rng,
        per=config.arm in ("per", "per-laber"),
    )


def has_library_buffer(arm: str) -> bool:
    name = "PrioritizedReplayBuffer" if arm in ("per", "per-laber") else "ReplayBuffer"
    try:
        dqn._buffer_class(name)
    except ImportError:
        return False
    return True


def buffer_factory(arm: str) -> Any:
    """None (the library's buffer) when it exists, else the stand-in."""
    return None if has_library_buffer(arm) else stand_in_factory


def short(arm: str, **kw: Any) -> DQNConfig:
    values: dict[str, Any] = {
        "arm": arm,
        "steps": 240,
        "batch_size": 16,
        "m": 4,
        "learning_starts": 80,
        "eps_decay_steps": 80,
        "target_update": 50,
        "eval_every": 80,
        "eval_episodes": 2,
        "hidden": (16,),
    }
    values.update(kw)
    return DQNConfig(**values)


# ------------------------------------------------------------------------------------- configuration
@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"arm": "greedy"}, ValueError, "arm must be one of .*got arm='greedy'"),
        ({"loss": "l1"}, ValueError, "loss must be one of .*got loss='l1'"),
        ({"seed": -1}, ValueError, "seed must be an integer >= 0, got seed=-1"),
        ({"seed": 1.5}, ValueError, "seed must be an integer"),
        ({"steps": 0}, ValueError, "steps must be a positive integer, got steps=0"),
        ({"batch_size": 2.0}, TypeError, "batch_size must be a positive integer"),
        ({"gamma": 1.5}, ValueError, r"gamma must be in \[0, 1\], got gamma=1.5"),
        ({"lr": 0.0}, ValueError, "lr must be > 0, got lr=0.0"),
        ({"hidden": ()}, TypeError, "hidden must be a non-empty tuple"),
        ({"hidden": (64, 0)}, ValueError, "hidden must be a positive integer"),
        ({"eps_decay_steps": -1}, ValueError, "eps_decay_steps must be an integer >= 0"),
        ({"env_id": ""}, TypeError, "env_id must be a non-empty string"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        DQNConfig(**kwargs)


def test_config_dict_round_trip() -> None:
    config = DQNConfig(arm="per-laber", hidden=(32, 16), seed=3)
    assert DQNConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown DQNConfig settings: colour"):
        DQNConfig.from_dict({**config.to_dict(), "colour": "red"})


def test_sample_size_is_large_for_large_batch_arms() -> None:
    assert DQNConfig(arm="uniform", batch_size=32, m=4).sample_size == 32
    assert DQNConfig(arm="per", batch_size=32, m=4).sample_size == 32
    for arm in ("uniform-large", "laber-mean", "laber-lazy", "laber-max", "per-laber"):
        assert DQNConfig(arm=arm, batch_size=32, m=4).sample_size == 128


def test_epsilon_decays_linearly_after_learning_starts() -> None:
    config = DQNConfig(learning_starts=100, eps_start=1.0, eps_end=0.1, eps_decay_steps=1000)
    assert dqn._epsilon(config, 50) == 1.0
    assert dqn._epsilon(config, 600) == pytest.approx(0.55)
    assert dqn._epsilon(config, 5000) == pytest.approx(0.1)


# ------------------------------------------------------------------------------------- targets and priorities
def test_double_dqn_target_uses_online_argmax_and_target_values() -> None:
    q_online = torch.tensor([[1.0, 2.0], [3.0, 0.0], [0.0, 5.0]])
    q_target = torch.tensor([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0]])
    rew = torch.tensor([1.0, 2.0, 3.0])
    discount = torch.tensor([0.9, 0.81, 0.5])
    not_done = torch.tensor([1.0, 1.0, 0.0])
    y = double_dqn_target(q_online, q_target, rew, discount, not_done)
    # argmax online: 1, 0, 1 -> target values 20, 30, 60; the last row is terminal.
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 20.0, 2.0 + 0.81 * 30.0, 3.0]))


def test_surrogate_priority_is_the_loss_gradient_magnitude() -> None:
    td_np = np.array([-3.0, -0.5, 0.0, 0.25, 2.0], dtype=np.float32)
    td = torch.from_numpy(td_np)
    np.testing.assert_array_equal(dqn._surrogate("huber")(td_np), [1.0, 0.5, 0.0, 0.25, 1.0])
    np.testing.assert_array_equal(dqn._surrogate("mse")(td_np), np.abs(td_np))
    # The surrogate equals |dl/dq| of the per-sample loss used in training.
    for loss in ("huber", "mse"):
        learner = dqn._Learner(DQNConfig(loss=loss), 4, 2, dqn._Uniform(None, 1))
        q = torch.zeros(5, requires_grad=True)
        learner.loss_fn(q, td).sum().backward()
        assert q.grad is not None
        np.testing.assert_allclose(q.grad.abs().numpy(), dqn._surrogate(loss)(td_np))


def test_laber_sampler_returns_positions_in_the_large_batch() -> None:
    config = DQNConfig(arm="laber-mean", batch_size=8, m=4)
    sampler = dqn._make_sampler(config, None, dqn._seeds(0))
    td = np.linspace(-2.0, 2.0, 32, dtype=np.float32)
    positions, weights = sampler.select(td, {})
    assert positions is not None and weights is not None
    assert positions.shape == (8,) and positions.dtype == np.int64
    assert weights.dtype == np.float32
    assert int(positions.min()) >= 0 and int(positions.max()) < 32
    prio = dqn._surrogate("huber")(td).astype(np.float64) + config.laber_eps
    np.testing.assert_allclose(weights, prio.mean() / prio[positions], rtol=1e-6)


def test_per_laber_weights_are_laber_weights_times_per_weights() -> None:
    config = DQNConfig(arm="per-laber", batch_size=8, m=4)
    sampler = dqn._make_sampler(config, None, dqn._seeds(0))
    rng = np.random.default_rng(1)
    td = rng.normal(scale=2.0, size=32).astype(np.float32)
    per_weights = rng.uniform(0.1, 1.0, size=(32, 1)).astype(np.float32)
    positions, weights = sampler.select(td, {"weights": per_weights})
    import laber

    reference = laber.LaBERmean(8, 4, eps=config.laber_eps, rng=np.random.default_rng(dqn._seeds(0).laber))
    expected = reference(priorities=np.minimum(np.abs(td), 1.0))
    assert positions is not None and weights is not None
    np.testing.assert_array_equal(positions, expected["indexes"])
    assert weights.dtype == np.float32
    np.testing.assert_array_equal(weights, expected["weights"] * per_weights.reshape(-1)[positions])


@pytest.mark.parametrize("arm", ["per", "per-laber"])
def test_per_feedback_writes_abs_td_of_every_drawn_row(arm: str) -> None:
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    class Recorder:
        def update_priorities(self, indexes: np.ndarray, priorities: np.ndarray) -> None:
            calls.append((indexes, priorities))

    sampler = dqn._make_sampler(DQNConfig(arm=arm, batch_size=8, m=4), Recorder(), dqn._seeds(0))
    td = np.linspace(-3.0, 3.0, 32, dtype=np.float32)
    rows = np.arange(100, 132)
    sampler.feedback(td, {"indexes": rows})
    ((indexes, priorities),) = calls
    np.testing.assert_array_equal(indexes, rows)
    assert priorities.dtype == np.float64
    np.testing.assert_array_equal(priorities, np.abs(td.astype(np.float64)))


# ------------------------------------------------------------------------------------- runs
@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_trains_and_evaluates(arm: str) -> None:
    config = short(arm)
    evals: list[tuple[int, float]] = []
    progress: list[int] = []
    result = train(
        config,
        on_eval=lambda s, r: evals.append((s, r)),
        on_progress=progress.append,
        buffer_factory=buffer_factory(arm),
    )
    assert result.eval_steps == [0, 80, 160, 240]
    assert [s for s, _ in evals] == result.eval_steps
    assert all(math.isfinite(r) and r >= 8 for r in result.eval_returns)  # CartPole lasts >= 8 steps
    assert result.updates == config.steps - config.learning_starts
    assert sum(progress) == config.steps
    assert result.seconds_per_update > 0
    assert result.episode_returns and sum(result.episode_returns) <= config.steps


def test_same_seed_same_run_other_seed_other_run() -> None:
    arm = "laber-mean"
    a = train(short(arm, seed=7), buffer_factory=buffer_factory(arm))
    b = train(short(arm, seed=7), buffer_factory=buffer_factory(arm))
    c = train(short(arm, seed=8), buffer_factory=buffer_factory(arm))
    assert a.eval_returns == b.eval_returns and a.episode_returns == b.episode_returns
    assert (a.eval_returns, a.episode_returns) != (c.eval_returns, c.episode_returns)


def test_train_rejects_a_non_config_and_non_discrete_env() -> None:
    with pytest.raises(TypeError, match="config must be a DQNConfig"):
        train({"arm": "uniform"})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Discrete action space, got env_id='Pendulum-v1'"):
        train(short("uniform", env_id="Pendulum-v1"), buffer_factory=stand_in_factory)


def test_learning_smoke_cartpole() -> None:
    """LaBER-mean on CartPole with a fixed seed: the greedy return ends far above a random policy's (about 22)."""
    config = DQNConfig(
        arm="laber-mean",
        seed=0,
        steps=2500,
        learning_starts=500,
        eps_decay_steps=1000,
        target_update=250,
        eval_every=2500,
        eval_episodes=5,
    )
    result = train(config, buffer_factory=buffer_factory("laber-mean"))
    assert result.eval_returns[0] < 40
    assert result.eval_returns[-1] > 100
