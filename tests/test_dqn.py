"""The reference Double DQN: configuration, targets, every arm end to end, determinism and a learning smoke test."""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from torch.overrides import TorchFunctionMode  # noqa: E402

from laber.agents import dqn  # noqa: E402
from laber.agents.dqn import ARMS, DQNConfig, double_dqn_target, train  # noqa: E402

PER_ARMS = ("per", "per-laber", "per-laber-paper", "ger")  # the arms that sample a prioritized buffer


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
        per=config.arm in PER_ARMS,
    )


def has_library_buffer(arm: str) -> bool:
    name = "PrioritizedReplayBuffer" if arm in PER_ARMS else "ReplayBuffer"
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
    sampler = dqn._make_sampler(config, None, np.random.default_rng(dqn._seeds(0).laber))
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
    sampler = dqn._make_sampler(config, None, np.random.default_rng(dqn._seeds(0).laber))
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


def test_per_laber_paper_weights_are_laber_weights_alone() -> None:
    """The authors' PER-LaBER: the same draw as per-laber, LaBER's weights without PER's."""
    import laber

    config = DQNConfig(arm="per-laber-paper", batch_size=8, m=4)
    sampler = dqn._make_sampler(config, None, np.random.default_rng(dqn._seeds(0).laber))
    rng = np.random.default_rng(1)
    td = rng.normal(scale=2.0, size=32).astype(np.float32)
    positions, weights = sampler.select(td, {"weights": rng.uniform(0.1, 1.0, size=(32, 1)).astype(np.float32)})
    reference = laber.LaBERmean(8, 4, eps=config.laber_eps, rng=np.random.default_rng(dqn._seeds(0).laber))
    expected = reference(priorities=np.minimum(np.abs(td), 1.0))
    assert positions is not None and weights is not None
    np.testing.assert_array_equal(positions, expected["indexes"])
    np.testing.assert_array_equal(weights, expected["weights"])


@pytest.mark.parametrize("arm", ["per", "per-laber", "per-laber-paper"])
def test_per_feedback_writes_abs_td_of_every_drawn_row(arm: str) -> None:
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    class Recorder:
        def update_priorities(self, indexes: np.ndarray, priorities: np.ndarray) -> None:
            calls.append((indexes, priorities))

    sampler = dqn._make_sampler(
        DQNConfig(arm=arm, batch_size=8, m=4), Recorder(), np.random.default_rng(dqn._seeds(0).laber)
    )
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


# ------------------------------------------------------------------------------------- devices
def test_device_settings_default_to_the_host_path() -> None:
    config = DQNConfig()
    assert (config.device, config.device_buffer, config.on_device) == ("cpu", False, False)
    assert DQNConfig(device_buffer=True).on_device
    assert DQNConfig(device="cuda:1").on_device  # availability is checked where the device is used
    assert not DQNConfig(device="cpu:0").on_device
    # Left out at their defaults: host runs' records read as before these settings existed.
    assert "device" not in config.to_dict() and "device_buffer" not in config.to_dict()
    for changed in (DQNConfig(device="cuda"), DQNConfig(device_buffer=True), DQNConfig(device="cuda:0", seed=2)):
        assert DQNConfig.from_dict(changed.to_dict()) == changed
    assert DQNConfig(device="cuda").to_dict()["device"] == "cuda"
    with pytest.raises(TypeError, match="device must be a torch device name"):
        DQNConfig(device=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="device_buffer must be True or False, got device_buffer=1"):
        DQNConfig(device_buffer=1)  # type: ignore[arg-type]


def test_check_device_names_unusable_devices() -> None:
    assert dqn.check_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device must name a torch device .*got device='gpu'"):
        dqn.check_device("gpu")
    with pytest.raises(ValueError, match="device='meta': the meta device holds no data"):
        dqn.check_device("meta")
    with pytest.raises(ValueError, match="device='cuda:99'"):
        dqn.check_device("cuda:99")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda': CUDA is not available"):
            dqn.check_device("cuda")
    with pytest.raises(ValueError, match="device='nowhere'"):
        train(short("uniform", device="nowhere"))


def test_cli_device_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--device: a usage error naming it for an unknown or missing device; --device-buffer sets the device path."""
    from laber import cli

    for value in ("nowhere", "cuda:99", ""):
        with pytest.raises(SystemExit) as info:
            cli.main(["run", "--device", value, "--steps", "2000", "--no-progress", "--no-tensorboard"])
        err = capsys.readouterr().err
        assert info.value.code == 2 and err.startswith("usage: laber") and "argument --device: " in err
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as info:
            cli.main(["compare", "--arms", "uniform", "--device", "cuda", "--out", "unused", "--no-progress"])
        err = capsys.readouterr().err
        assert info.value.code == 2 and "argument --device: device='cuda': CUDA is not available" in err
    parser = cli.build_parser()
    args = parser.parse_args(["run", "--device-buffer", "--device", "cpu", "--no-progress"])
    config = cli._config(parser, args, arm="uniform", seed=0)
    assert (config.device, config.device_buffer, config.on_device) == ("cpu", True, True)
    default = cli._config(parser, parser.parse_args(["run", "--no-progress"]), arm="uniform", seed=0)
    assert (default.device, default.device_buffer) == ("cpu", False)


class FixedBatch:
    """A buffer whose every sample is the same batch; records the priorities written back."""

    def __init__(self, batch: dict[str, Any]) -> None:
        self.batch = batch
        self.priorities: list[Any] = []

    def sample(self, batch_size: int, beta: float | None = None) -> dict[str, Any]:
        return self.batch

    def update_priorities(self, indexes: Any, priorities: Any) -> None:
        self.priorities.append((np.asarray(indexes), np.asarray(priorities)))


def _batch_from_a_filled_buffer(arm: str, n: int) -> dict[str, np.ndarray]:
    """n rows of a host buffer of the arm's kind, with PER weights for the PER arms (fields as sample returns)."""
    config = DQNConfig(arm=arm)
    buffer = dqn._make_buffer(config, (4,), dqn._seeds(5))
    rng = np.random.default_rng(3)
    for _ in range(4):
        obs = rng.normal(size=(101, 4)).astype(np.float32)
        done = (rng.random((100, 1)) < 0.05).astype(np.float32)
        buffer.add(
            obs=obs[:-1], act=rng.integers(0, 2, (100, 1)), rew=rng.normal(size=(100, 1)), next_obs=obs[1:], done=done
        )
        buffer.on_episode_end()
    return buffer.sample(n, beta=0.5) if arm in PER_ARMS else buffer.sample(n)  # type: ignore[no-any-return]


@pytest.mark.parametrize("loss", ["huber", "mse"])
@pytest.mark.parametrize("arm", ARMS)
def test_device_update_on_cpu_equals_the_host_update(arm: str, loss: str) -> None:
    """From the same batch and seeds, the device path's update (torch ops throughout) gives the host path's loss,
    parameters and written-back priorities bit for bit: the same targets, priorities, LaBER draws and weights.
    With the device buffer's own (uniform, seeded) draws, this makes the two paths equal in distribution."""
    config = DQNConfig(arm=arm, batch_size=16, m=4, hidden=(32, 32), loss=loss, lr=1e-2)
    seeds = dqn._seeds(11)
    batch = _batch_from_a_filled_buffer(arm, config.sample_size)
    host_buffer, device_buffer = FixedBatch(batch), FixedBatch({k: torch.from_numpy(v) for k, v in batch.items()})
    torch.manual_seed(0)
    host = dqn._Learner(config, 4, 2, dqn._make_sampler(config, host_buffer, np.random.default_rng(seeds.laber)))
    torch.manual_seed(0)
    on_device = dqn._DeviceLearner(
        config, 4, 2, dqn._make_device_sampler(config, device_buffer, np.random.default_rng(seeds.laber))
    )
    for step in range(3):
        host_loss = host.update(0.3)
        device_loss = on_device.update(0.3)
        assert isinstance(device_loss, torch.Tensor) and device_loss.dim() == 0
        assert float(device_loss) == host_loss, step
    for a, b in zip(host.online.parameters(), on_device.online.parameters(), strict=True):
        assert torch.equal(a, b)
    assert len(host_buffer.priorities) == len(device_buffer.priorities) == (3 if arm in PER_ARMS else 0)
    for (i_host, p_host), (i_dev, p_dev) in zip(host_buffer.priorities, device_buffer.priorities, strict=True):
        np.testing.assert_array_equal(i_host, i_dev)
        assert p_dev.dtype == np.float64
        np.testing.assert_array_equal(p_host, p_dev)


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_trains_on_a_device_buffer_on_cpu(arm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """device_buffer=True on the CPU: the buffer keeps tensors, the device learner trains every arm end to end."""
    made: list[Any] = []
    make_buffer = dqn._make_buffer

    def recording(config: DQNConfig, obs_shape: tuple[int, ...], seeds: Any) -> Any:
        made.append(make_buffer(config, obs_shape, seeds))
        return made[-1]

    monkeypatch.setattr(dqn, "_make_buffer", recording)
    config = short(arm, device_buffer=True, steps=120, eval_every=60)
    result = train(config)
    assert result.eval_steps == [0, 60, 120]
    assert all(math.isfinite(r) and r >= 8 for r in result.eval_returns)
    assert result.updates == config.steps - config.learning_starts
    (buffer,) = made
    batch = buffer.sample(4)
    assert all(isinstance(v, torch.Tensor) and v.device.type == "cpu" for v in batch.values())
    assert ("weights" in batch) == (arm in PER_ARMS)


def test_device_buffer_run_is_seeded() -> None:
    arm = "laber-mean"
    a = train(short(arm, seed=7, device_buffer=True))
    b = train(short(arm, seed=7, device_buffer=True))
    c = train(short(arm, seed=8, device_buffer=True))
    assert a.eval_returns == b.eval_returns and a.episode_returns == b.episode_returns
    assert (a.eval_returns, a.episode_returns) != (c.eval_returns, c.episode_returns)


def test_learning_smoke_cartpole_device_buffer() -> None:
    """The device path on the CPU learns CartPole as the host path does (same settings as the host smoke test)."""
    config = DQNConfig(
        arm="laber-mean",
        seed=0,
        steps=2500,
        learning_starts=500,
        eps_decay_steps=1000,
        target_update=250,
        eval_every=2500,
        eval_episodes=5,
        device_buffer=True,
    )
    result = train(config)
    assert result.eval_returns[0] < 40
    assert result.eval_returns[-1] > 100


# Tensor calls that read a value on the host: each one synchronises on an accelerator.
HOST_READS = frozenset(
    {
        "item",
        "tolist",
        "cpu",
        "numpy",
        "__bool__",
        "__float__",
        "__int__",
        "__index__",
        "__array__",
        "nonzero",
        "masked_select",
        "unique",
        "as_tensor",
        "from_numpy",
    }
)


class _HostReads(TorchFunctionMode):
    """Records every torch call that reads a tensor's value on the host (and boolean-mask indexing)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        name = getattr(func, "__name__", str(func))
        masked = name in ("__getitem__", "__setitem__") and any(
            isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in args[1:2]
        )
        if name in HOST_READS or masked:
            self.reads.append(name)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("arm", ARMS)
def test_device_update_reads_nothing_on_the_host(arm: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The device update on CPU tensors, with LaBER forced onto its accelerator path (torch draw, no value check),
    makes no torch call that reads a value on the host (on CUDA each would be a synchronisation). The PER arms
    read exactly where the docstring says: the sample's indexes and weights and update_priorities' values."""
    import laber.laber

    config = DQNConfig(arm=arm, batch_size=16, m=4, device_buffer=True)
    seeds = dqn._seeds(0)
    buffer = dqn._make_buffer(config, (4,), seeds)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(501, 4)).astype(np.float32)
    buffer.add(
        obs=obs[:-1],
        act=rng.integers(0, 2, (500, 1)),
        rew=np.ones((500, 1)),
        next_obs=obs[1:],
        done=(rng.random((500, 1)) < 0.05).astype(np.float32),
    )
    learner = dqn._DeviceLearner(
        config, 4, 2, dqn._make_device_sampler(config, buffer, np.random.default_rng(seeds.laber))
    )
    sub = getattr(learner.sampler, "subsample", None)
    if sub is not None:  # LaBER's defaults on an accelerator: no value check
        sub.laber = type(sub.laber)(config.batch_size, config.m, eps=config.laber_eps, rng=0, check_values=False)
    # CPU tensors otherwise take LaBER's numpy kernels; this sends them down the torch path CUDA tensors take.
    monkeypatch.setattr(laber.laber, "_numpy_shared_dtypes", frozenset)
    learner.update(0.5)  # warm up (optimiser state)
    with _HostReads() as mode:
        learner.update(0.5)
    if arm in PER_ARMS:
        assert sorted(set(mode.reads)) == ["as_tensor", "cpu", "numpy"]
    else:
        assert mode.reads == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("arm", ["uniform", "laber-mean"])
def test_cuda_update_never_synchronises(arm: str) -> None:
    """A few updates on CUDA under torch.cuda.set_sync_debug_mode("error"): any host synchronisation raises."""
    config = DQNConfig(arm=arm, batch_size=64, m=4, device="cuda")
    seeds = dqn._seeds(0)
    buffer = dqn._make_buffer(config, (4,), seeds)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(2001, 4)).astype(np.float32)
    buffer.add(
        obs=obs[:-1],
        act=rng.integers(0, 2, (2000, 1)),
        rew=np.ones((2000, 1)),
        next_obs=obs[1:],
        done=(rng.random((2000, 1)) < 0.05).astype(np.float32),
    )
    learner = dqn._DeviceLearner(
        config, 4, 2, dqn._make_device_sampler(config, buffer, np.random.default_rng(seeds.laber))
    )
    for _ in range(3):  # warm up: kernels, generators, the optimiser's state
        learner.update(0.5)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        losses = [learner.update(0.5) for _ in range(5)]
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(loss.device.type == "cuda" for loss in losses)
    assert all(math.isfinite(float(loss)) for loss in losses)
    assert all(p.device.type == "cuda" for p in learner.online.parameters())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_trains_on_cuda(arm: str) -> None:
    result = train(short(arm, device="cuda", steps=120, eval_every=60))
    assert all(math.isfinite(r) and r >= 8 for r in result.eval_returns)
    assert result.updates == 40
