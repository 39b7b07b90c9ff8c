"""SAC with the replay arms (laber.agents.sac): every arm trains, runs are reproducible, the policy's density is
the tanh-squashed Gaussian's, and LaBER's recipe gives each critic its own sub-batch and the actor a uniform one."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from laber.agents import sac  # noqa: E402
from laber.agents.sac import SAC_ARMS, SACConfig, train_sac  # noqa: E402

pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def short(arm: str = "uniform", **kw: Any) -> SACConfig:
    settings: dict[str, Any] = dict(
        env_id="Pendulum-v1",
        arm=arm,
        steps=260,
        batch_size=16,
        m=4,
        hidden=(16, 16),
        learning_starts=200,
        eval_every=130,
        eval_episodes=1,
    )
    settings.update(kw)
    return SACConfig(**settings)


@pytest.mark.parametrize("arm", SAC_ARMS)
def test_every_arm_trains(arm: str) -> None:
    result = train_sac(short(arm))
    assert result.eval_steps == [0, 130, 260] and all(math.isfinite(v) for v in result.eval_returns)
    assert result.updates == 60 and result.seconds_per_update > 0
    assert result.eval_train_seconds == sorted(result.eval_train_seconds)
    assert len(result.episode_returns) == 1  # Pendulum's episodes are 200 steps


def test_same_seed_same_run() -> None:
    a, b = train_sac(short("laber-mean", seed=3)), train_sac(short("laber-mean", seed=3))
    assert a.eval_returns == b.eval_returns and a.episode_returns == b.episode_returns
    c = train_sac(short("laber-mean", seed=4))
    assert c.eval_returns != a.eval_returns


def test_log_density_is_the_squashed_gaussian() -> None:
    """``log pi`` equals torch.distributions' density of ``scale * tanh(N(mu, sigma)) + bias``."""
    low, high = np.array([-2.0, 0.0], np.float32), np.array([2.0, 1.0], np.float32)
    actor = sac._Actor(torch, 3, 2, (8,), low, high)
    obs = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(1)
    act, logp = actor.sample(obs, gen)
    mu, log_std = actor.net(obs).chunk(2, dim=-1)
    base = torch.distributions.Normal(mu, log_std.clamp(*actor.LOG_STD).exp())
    dist = torch.distributions.TransformedDistribution(
        base,
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(actor.bias, actor.scale)],
    )
    inside = act.clamp(torch.as_tensor(low) + 1e-4, torch.as_tensor(high) - 1e-4)  # tanh saturates in float32
    keep = (inside == act).all(-1)
    want = dist.log_prob(act).sum(-1)
    torch.testing.assert_close(logp[keep], want[keep], rtol=1e-4, atol=1e-4)
    assert ((act >= torch.as_tensor(low)) & (act <= torch.as_tensor(high))).all()


class _FixedBuffer:
    """Always returns the same large batch (records what was asked)."""

    def __init__(self, rows: dict[str, np.ndarray]) -> None:
        self.rows = rows
        self.asked: list[int] = []

    def sample(self, n: int) -> dict[str, np.ndarray]:
        self.asked.append(n)
        return {k: v[:n].copy() for k, v in self.rows.items()}


def test_laber_gives_each_critic_its_own_sub_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    config = short("laber-mean")
    b, m = config.batch_size, config.m
    seeds = np.random.SeedSequence(0).spawn(7)
    agent = sac._SAC(config, 3, 1, np.array([-2.0], np.float32), np.array([2.0], np.float32), seeds)
    rng = np.random.default_rng(0)
    rows = {
        "obs": rng.normal(size=(b * m, 3)).astype(np.float32),
        "act": rng.uniform(-2, 2, size=(b * m, 1)).astype(np.float32),
        "rew": rng.normal(size=(b * m, 1)).astype(np.float32),
        "next_obs": rng.normal(size=(b * m, 3)).astype(np.float32),
        "done": (rng.random((b * m, 1)) < 0.1).astype(np.float32),
    }
    buffer = _FixedBuffer(rows)
    draws: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
    critic_calls: list[tuple[int, Any, Any, Any]] = []
    actor_calls: list[Any] = []
    laber = agent.laber
    q_before: list[Any] = []

    def record_laber(priorities: np.ndarray) -> dict[str, np.ndarray]:
        out = laber(priorities=priorities)
        draws.append((priorities.copy(), out))
        return out

    real_step, real_target = agent.critic_step, agent.target
    targets: list[Any] = []

    def record_target(batch: dict[str, Any]) -> Any:
        with torch.no_grad():
            x = torch.cat([batch["obs"], batch["act"]], dim=-1)
            q_before.extend(net(x).squeeze(-1).clone() for net in agent.critics.q)
        y = real_target(batch)
        targets.append(y)
        return y

    def record_step(k: int, obs: Any, act: Any, y: Any, weights: Any) -> Any:
        critic_calls.append((k, obs.clone(), y.clone(), weights.clone()))
        return real_step(k, obs, act, y, weights)

    monkeypatch.setattr(agent, "laber", record_laber)
    monkeypatch.setattr(agent, "target", record_target)
    monkeypatch.setattr(agent, "critic_step", record_step)
    monkeypatch.setattr(agent, "actor_step", lambda obs: actor_calls.append(obs.clone()))
    agent.update(buffer, 0.5)

    assert buffer.asked == [b * m]
    y = targets[0]
    assert len(draws) == 2 and [c[0] for c in critic_calls] == [0, 1]
    for k in range(2):
        priorities, out = draws[k]
        np.testing.assert_allclose(priorities, (y - q_before[k]).abs().numpy(), rtol=1e-6)  # |delta_k|, pre-update
        idx = out["indexes"]
        _, obs, y_k, w_k = critic_calls[k]
        np.testing.assert_array_equal(obs.numpy(), rows["obs"][idx])
        np.testing.assert_array_equal(y_k.numpy(), y.numpy()[idx])
        q = priorities + config.laber_eps
        np.testing.assert_allclose(w_k.numpy(), (q.mean() / q[idx]).astype(np.float32), rtol=1e-5)  # mean(q)/q_j
    assert not np.array_equal(draws[0][1]["indexes"], draws[1][1]["indexes"])  # two critics, two sub-batches
    np.testing.assert_array_equal(actor_calls[0].numpy(), rows["obs"][:b])  # the actor: a uniform B-subset


def test_actor_step_trains_the_actor_only_and_targets_follow_polyak() -> None:
    """The actor's loss reaches the critics' parameters not at all (they are frozen while it backpropagates to the
    actions), the actor's gradient is the plain autograd gradient of ``L_pi``, and the targets move by
    ``theta' <- theta' + tau (theta - theta')``."""
    config = short("uniform")
    seeds = np.random.SeedSequence(3).spawn(7)
    agent = sac._SAC(config, 3, 2, np.array([-1.0, -2.0], np.float32), np.array([1.0, 2.0], np.float32), seeds)
    obs = torch.as_tensor(np.random.default_rng(1).normal(size=(17, 3)).astype(np.float32))
    # the reference gradient, from a copy of the policy generator's state (the step draws the same noise)
    state = agent.generator.get_state()
    act, logp = agent.actor.sample(obs, agent.generator)
    q1, q2 = agent.critics.values(agent.critics.q, obs, act)
    loss = (agent.log_alpha.exp().detach() * logp - torch.minimum(q1, q2)).mean()
    expected = torch.autograd.grad(loss, list(agent.actor.net.parameters()))
    agent.generator.set_state(state)
    for q in agent.critics.q:
        q.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in agent.actor.net.parameters()]
    grads: list[Any] = []
    real_step = agent.opt_actor.step

    def record_step() -> None:
        grads.extend(p.grad.clone() for p in agent.actor.net.parameters())
        real_step()

    agent.opt_actor.step = record_step
    agent.actor_step(obs)
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert all(p.grad is None for q in agent.critics.q for p in q.parameters())
    assert all(p.requires_grad for q in agent.critics.q for p in q.parameters())  # unfrozen afterwards
    assert any(not torch.equal(b, p) for b, p in zip(before, agent.actor.net.parameters(), strict=True))

    with torch.no_grad():
        for q in agent.critics.q:
            for p in q.parameters():
                p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    online = [p.detach().clone() for q in agent.critics.q for p in q.parameters()]
    old = [p.detach().clone() for t in agent.critics.target for p in t.parameters()]
    agent.critics.update_targets(0.3)
    new = [p.detach() for t in agent.critics.target for p in t.parameters()]
    for n, o, w in zip(new, old, online, strict=True):
        torch.testing.assert_close(n, o + 0.3 * (w - o), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"arm": "laber-max"}, "arm must be one of"),
        ({"batch_size": 0}, "batch_size"),
        ({"tau": 2.0}, "tau"),
        ({"learning_starts": 10}, "learning_starts"),
        ({"hidden": ()}, "hidden"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        short(**settings)


def test_discrete_environments_are_refused() -> None:
    with pytest.raises(ValueError, match=r"continuous actions; env_id='CartPole-v1'"):
        train_sac(short("uniform", env_id="CartPole-v1"))


def test_config_round_trips() -> None:
    config = short("per", seed=2)
    assert SACConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown SACConfig settings"):
        SACConfig.from_dict({**config.to_dict(), "lr_typo": 1})


# ------------------------------------------------------------------------------------- the experiment commands
def test_records_name_their_agent() -> None:
    from laber.agents.dqn import DQNConfig
    from laber.agents.registry import ALL_ARMS, config_from_record, kind_of

    config = short("per", seed=2)
    assert config.to_dict()["agent"] == "sac" and config_from_record(config.to_dict()) == config
    dqn_record = DQNConfig().to_dict()
    assert "agent" not in dqn_record and config_from_record(dqn_record) == DQNConfig()  # as before SAC existed
    assert kind_of(config).name == "sac" and kind_of(DQNConfig()).name == "dqn"
    assert set(SAC_ARMS) <= set(ALL_ARMS)
    with pytest.raises(TypeError, match="DQNConfig or SACConfig"):
        kind_of({"arm": "uniform"})
    with pytest.raises(ValueError, match="unknown agent 'ppo'"):
        config_from_record({"agent": "ppo"})


def test_laber_run_and_compare_train_sac(tmp_path: Any) -> None:
    import json

    from laber.cli import main

    common = ["--agent", "sac", "--env", "Pendulum-v1", "--steps", "240", "--learning-starts", "200",
              "--batch-size", "16", "--hidden", "16,16", "--eval-every", "120", "--eval-episodes", "1",
              "--no-progress", "--no-tensorboard"]  # fmt: skip
    assert main(["run", *common, "--arm", "laber-mean", "--tau", "0.01", "--out", str(tmp_path / "run")]) == 0
    record = json.loads((tmp_path / "run" / "result.json").read_text())["config"]
    assert record["agent"] == "sac" and record["tau"] == 0.01 and record["batch_size"] == 16
    out = tmp_path / "cmp"
    assert main(["compare", *common, "--arms", "uniform,laber-mean", "--seeds", "1", "--out", str(out)]) == 0
    summary = (out / "summary.md").read_text()
    assert "SAC (twin critics" in summary and "| laber-mean | 1 |" in summary
    # resuming with the DQN over SAC runs is refused by name
    with pytest.raises(SystemExit):
        main(["compare", "--env", "CartPole-v1", "--steps", "1200", "--arms", "uniform", "--seeds", "1",
              "--no-progress", "--no-tensorboard", "--out", str(out)])  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--nstep", "3"], "argument --nstep: not a setting of --agent sac"),
        (["--device", "cpu"], "argument --device: not a setting of --agent sac"),
        (["--config", "minatar-paper"], "argument --config: not a setting of --agent sac"),
        (["--env", "CartPole-v1"], "SAC needs bounded continuous actions"),
        (["--steps", "100"], "the run would never train"),
    ],
)
def test_sac_usage_errors(argv: list[str], match: str, capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    from laber.cli import main

    base = {"--env": "Pendulum-v1", "--steps": "300", "--learning-starts": "200", "--batch-size": "16"}
    for i in range(0, len(argv), 2):
        base[argv[i]] = argv[i + 1]
    flat = [x for kv in base.items() for x in kv]
    with pytest.raises(SystemExit) as exc:
        main(["run", "--agent", "sac", *flat, "--no-progress", "--out", str(tmp_path / "r")])
    assert exc.value.code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_tau_needs_the_sac_agent(capsys: pytest.CaptureFixture[str]) -> None:
    from laber.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--env", "CartPole-v1", "--tau", "0.01"])
    assert "--tau: a setting of --agent sac only" in capsys.readouterr().err
