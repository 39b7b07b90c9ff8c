r"""Soft Actor-Critic with the replay sampling strategy as a pluggable part ("arm"), for continuous control.

SAC (Haarnoja, Zhou, Abbeel, Levine, "Soft Actor-Critic", ICML 2018, arXiv:1801.01290; Haarnoja et al., "Soft
Actor-Critic Algorithms and Applications", arXiv:1812.05905, for the learned temperature): a tanh-squashed
Gaussian policy ``pi``, twin critics ``Q_1, Q_2`` with Polyak-averaged targets ``Q'_1, Q'_2``, a temperature
``alpha`` tuned towards the target entropy ``-dim(A)``. For a transition ``(s, a, r, s', d)``, ``a' ~ pi(s')``::

    y        = r + gamma (1 - d) (min_k Q'_k(s', a') - alpha log pi(a' | s'))
    delta_k  = y - Q_k(s, a)                                      (critic k's TD error, k = 1, 2)
    L_Q_k    = mean_b w_{k,b} delta_{k,b}^2                       (w = 1 unless the arm weights)
    L_pi     = mean_b (alpha log pi(a~_b | s_b) - min_k Q_k(s_b, a~_b)),   a~_b ~ pi(s_b), reparameterised
    L_alpha  = -mean_b log(alpha) (log pi(a~_b | s_b) - dim(A))

``d`` is gymnasium's ``terminated`` (a truncation bootstraps). Arms (``SAC_ARMS``), ``B`` the batch, ``m`` LaBER's
multiplier:

* ``uniform``: ``B`` rows uniformly for the critics, the actor and the temperature.
* ``uniform-large``: ``m*B`` rows uniformly for all three (the control for LaBER's extra computation).
* ``laber-mean``: the authors' recipe for actor-critic (Lahire, Geist, Rachelson, "Large Batch Experience Replay",
  ICML 2022, arXiv:2110.01528, and their code): ``m*B`` rows uniformly; the target ``y`` and both critics'
  ``|delta_k|`` computed on all of them without gradients; *each critic* sub-samples its own ``B`` rows with
  ``LaBERmean`` from its own priorities ``|delta_k|`` (the surrogate ``|dl/dq|`` of the squared loss, up to the
  factor 2) and weights its loss with LaBER's ``w = mean(q) / q_j``; the actor and the temperature train on a
  uniform ``B``-subset of the large batch (its first ``B`` rows: the large batch is uniform already).
* ``per``: prioritized replay (Schaul et al., ICLR 2016) with priorities ``(|delta_1| + |delta_2|) / 2`` written
  back after each update, the critics' losses weighted by PER's importance weights (``beta`` annealed to 1),
  the actor on the same rows unweighted.

One ``seed`` controls everything (network initialisation, environments, buffer, LaBER, exploration); on the CPU
with one thread the same seed gives the same run. Per-update cost on the project's 2-core machine (B = 256, 256x256
networks, Hopper-v5), measured by ``laber cost`` (5 interleaved rounds, beside two other training runs): 24 ms
for ``uniform`` and 1.76x that for ``laber-mean`` (1.23x-1.80x over the rounds), which scores ``m * B`` rows
with the target networks and both critics before it sub-samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from laber._optional import require
from laber._validation import check_positive_int
from laber.agents.results import RunResult, TimedEvaluations
from laber.agents.resume import LoopState, ResumeError, RunCheckpoints, replay_env

__all__ = ["SAC_ARMS", "SACConfig", "check_continuous_env", "check_trainable", "train_sac"]

SAC_ARMS: tuple[str, ...] = ("uniform", "uniform-large", "laber-mean", "per")


@dataclass(frozen=True)
class SACConfig:
    """Settings of one SAC run (the defaults are the usual MuJoCo settings: Haarnoja et al. 2018, B = 256)."""

    env_id: str = "Hopper-v5"
    arm: str = "uniform"
    seed: int = 0
    steps: int = 200_000
    batch_size: int = 256
    m: int = 4
    hidden: tuple[int, ...] = (256, 256)
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    buffer_size: int = 1_000_000
    learning_starts: int = 5_000
    eval_every: int = 5_000
    eval_episodes: int = 5
    laber_eps: float = 1e-6
    per_alpha: float = 0.6
    per_beta: float = 0.4
    per_eps: float = 1e-6

    def __post_init__(self) -> None:
        if self.arm not in SAC_ARMS:
            raise ValueError(f"arm must be one of {', '.join(SAC_ARMS)}; got arm={self.arm!r}")
        for name in ("steps", "batch_size", "m", "buffer_size", "eval_every", "eval_episodes"):
            check_positive_int(getattr(self, name), name)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got seed={self.seed!r}")
        if not isinstance(self.learning_starts, int) or self.learning_starts < 1:
            raise ValueError(f"learning_starts must be a positive integer, got {self.learning_starts!r}")
        if not self.hidden or not all(isinstance(h, int) and h > 0 for h in self.hidden):
            raise ValueError(f"hidden must be positive layer widths, got hidden={self.hidden!r}")
        for name, low, high in (("gamma", 0.0, 1.0), ("tau", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {name}={value!r}")
        for name in ("lr", "laber_eps", "per_eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 < value < math.inf:
                raise ValueError(f"{name} must be a positive number, got {name}={value!r}")
        rows = self.batch_size * (self.m if self.arm in ("uniform-large", "laber-mean") else 1)
        if self.learning_starts < rows:
            raise ValueError(
                f"learning_starts={self.learning_starts} must be at least the {rows} rows arm={self.arm!r} draws per "
                f"update (batch_size={self.batch_size}, m={self.m}): the first batches would repeat a few rows"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (``hidden`` as a list) naming the agent (``"agent": "sac"``, which run records
        use to tell SAC runs from DQN runs); ``SACConfig.from_dict`` inverts it."""
        data: dict[str, Any] = {"agent": "sac", **asdict(self)}
        data["hidden"] = list(self.hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SACConfig:
        values = dict(data)
        if values.pop("agent", "sac") != "sac":
            raise ValueError(f"not a SAC record: agent={data.get('agent')!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown SACConfig settings: {unknown}")
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)


def check_trainable(config: SACConfig) -> None:
    """Raise ``ValueError`` when the run would end before its first update (at step ``learning_starts + 1``)."""
    if not isinstance(config, SACConfig):
        raise TypeError(f"config must be a SACConfig, got config={config!r}")
    if config.steps <= config.learning_starts:
        raise ValueError(
            f"steps must pass learning_starts={config.learning_starts} to reach an update, got steps={config.steps}: "
            "the run would never train"
        )


def check_continuous_env(env_id: str) -> tuple[int, int]:
    """``(obs_dim, action_dim)`` of a gymnasium environment with flat Box observations and bounded Box actions;
    a ``ValueError`` naming ``env_id`` otherwise."""
    gym = require("gymnasium", "SAC")
    try:
        env = gym.make(env_id)
    except Exception as exc:  # gymnasium raises several types for unknown ids and missing extras
        raise ValueError(f"env_id={env_id!r} cannot be made: {exc}") from exc
    try:
        obs, act = env.observation_space, env.action_space
        if not isinstance(act, gym.spaces.Box) or not np.isfinite(act.low).all() or not np.isfinite(act.high).all():
            raise ValueError(f"SAC needs bounded continuous actions; env_id={env_id!r} has {act}")
        if not isinstance(obs, gym.spaces.Box) or len(obs.shape) != 1:
            raise ValueError(f"SAC needs flat vector observations; env_id={env_id!r} has {obs}")
        return int(obs.shape[0]), int(act.shape[0])
    finally:
        env.close()


class _Actor:
    """A tanh-squashed Gaussian policy: ``u = mu + sigma * eps``, ``a = scale * tanh(u) + bias``."""

    LOG_STD = (-20.0, 2.0)

    def __init__(self, torch: Any, n_obs: int, n_act: int, hidden: tuple[int, ...], low: Any, high: Any) -> None:
        self.torch = torch
        self.net = _mlp(torch, n_obs, hidden, 2 * n_act)
        self.scale = torch.as_tensor((high - low) / 2.0, dtype=torch.float32)
        self.bias = torch.as_tensor((high + low) / 2.0, dtype=torch.float32)

    def sample(self, obs: Any, generator: Any | None = None) -> tuple[Any, Any]:
        """An action (reparameterised) and its log-density
        ``log pi(a | s) = log N(u; mu, sigma) - sum_i log(scale_i (1 - tanh(u_i)^2))``."""
        torch = self.torch
        mu, log_std = self.net(obs).chunk(2, dim=-1)
        log_std = log_std.clamp(*self.LOG_STD)
        std = log_std.exp()
        eps = torch.randn(mu.shape, generator=generator)
        u = mu + std * eps
        log_n = (-0.5 * eps.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        log_det = (2.0 * (math.log(2.0) - u - torch.nn.functional.softplus(-2.0 * u))).sum(-1)
        log_pi = log_n - log_det - torch.log(self.scale).sum()
        return self.scale * torch.tanh(u) + self.bias, log_pi

    def act(self, obs: Any) -> Any:
        mu, _ = self.net(obs).chunk(2, dim=-1)
        return self.scale * self.torch.tanh(mu) + self.bias


def _mlp(torch: Any, n_in: int, hidden: tuple[int, ...], n_out: int) -> Any:
    layers: list[Any] = []
    width = n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers)


class _Critics:
    """Twin critics and their Polyak-averaged targets."""

    def __init__(self, torch: Any, n_obs: int, n_act: int, hidden: tuple[int, ...]) -> None:
        import copy

        self.torch = torch
        self.q = [_mlp(torch, n_obs + n_act, hidden, 1) for _ in range(2)]
        self.target = [copy.deepcopy(q) for q in self.q]
        for t in self.target:
            t.requires_grad_(False)

    def values(self, nets: list[Any], obs: Any, act: Any) -> list[Any]:
        x = self.torch.cat([obs, act], dim=-1)
        return [net(x).squeeze(-1) for net in nets]

    def update_targets(self, tau: float) -> None:
        """Polyak averaging ``theta' <- theta' + tau (theta - theta')``, all parameters in one call."""
        with self.torch.no_grad():
            targets = [tp for t in self.target for tp in t.parameters()]
            online = [p for q in self.q for p in q.parameters()]
            self.torch._foreach_lerp_(targets, online, tau)

    def frozen(self) -> Any:
        """A context in which the critics' parameters take no gradient (the actor's loss backpropagates through
        the critics to the actions only; their weight gradients would be computed and thrown away)."""
        import contextlib

        params = [p for q in self.q for p in q.parameters()]

        @contextlib.contextmanager
        def freeze() -> Any:
            for p in params:
                p.requires_grad_(False)
            try:
                yield
            finally:
                for p in params:
                    p.requires_grad_(True)

        return freeze()


class _SAC:
    """Networks, optimisers and the update of one run; the arm decides which rows each loss sees."""

    def __init__(self, config: SACConfig, n_obs: int, n_act: int, low: Any, high: Any, seeds: Any) -> None:
        torch = require("torch", "SAC")
        from laber import LaBERmean

        self.torch = torch
        self.config = config
        torch.manual_seed(int(seeds[0].generate_state(1)[0]))
        self.actor = _Actor(torch, n_obs, n_act, config.hidden, low, high)
        self.critics = _Critics(torch, n_obs, n_act, config.hidden)
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.target_entropy = -float(n_act)
        # fused Adam: one kernel per optimiser step instead of a dozen per parameter (the same update rule)
        self.opt_actor = torch.optim.Adam(self.actor.net.parameters(), lr=config.lr, fused=True)
        self.opt_q = [torch.optim.Adam(q.parameters(), lr=config.lr, fused=True) for q in self.critics.q]
        self.opt_alpha = torch.optim.Adam([self.log_alpha], lr=config.lr, fused=True)
        self.generator = torch.Generator().manual_seed(int(seeds[1].generate_state(1)[0]))
        self.laber_rng = np.random.default_rng(seeds[2])
        self.laber = LaBERmean(config.batch_size, config.m, eps=config.laber_eps, rng=self.laber_rng)

    def state(self) -> dict[str, Any]:
        """Networks, temperature, optimisers and the policy's generator (for ``laber.agents.resume``)."""
        return {
            "actor": self.actor.net.state_dict(),
            "critics": [q.state_dict() for q in self.critics.q],
            "targets": [t.state_dict() for t in self.critics.target],
            "log_alpha": self.log_alpha.detach().clone(),
            "opt_actor": self.opt_actor.state_dict(),
            "opt_q": [opt.state_dict() for opt in self.opt_q],
            "opt_alpha": self.opt_alpha.state_dict(),
            "generator": self.generator.get_state(),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Load what ``state`` returned, in place (the optimisers keep their parameters)."""
        self.actor.net.load_state_dict(state["actor"])
        for net, sd in zip(self.critics.q, state["critics"], strict=True):
            net.load_state_dict(sd)
        for net, sd in zip(self.critics.target, state["targets"], strict=True):
            net.load_state_dict(sd)
        with self.torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.opt_actor.load_state_dict(state["opt_actor"])
        for opt, sd in zip(self.opt_q, state["opt_q"], strict=True):
            opt.load_state_dict(sd)
        self.opt_alpha.load_state_dict(state["opt_alpha"])
        self.generator.set_state(state["generator"])

    def target(self, batch: dict[str, Any]) -> Any:
        torch = self.torch
        with torch.no_grad():
            next_act, next_logp = self.actor.sample(batch["next_obs"], self.generator)
            q1, q2 = self.critics.values(self.critics.target, batch["next_obs"], next_act)
            alpha = self.log_alpha.exp()
            soft = torch.minimum(q1, q2) - alpha * next_logp
            return batch["rew"] + self.config.gamma * (1.0 - batch["done"]) * soft

    def critic_step(self, k: int, obs: Any, act: Any, y: Any, weights: Any | None) -> Any:
        q = self.critics.values([self.critics.q[k]], obs, act)[0]
        delta = y - q
        sq = delta.pow(2)
        loss = (sq * weights).mean() if weights is not None else sq.mean()
        self.opt_q[k].zero_grad()
        loss.backward()
        self.opt_q[k].step()
        return delta.detach()

    def actor_step(self, obs: Any) -> None:
        torch = self.torch
        act, logp = self.actor.sample(obs, self.generator)
        with self.critics.frozen():
            q1, q2 = self.critics.values(self.critics.q, obs, act)
            alpha = self.log_alpha.exp().detach()
            loss = (alpha * logp - torch.minimum(q1, q2)).mean()
            self.opt_actor.zero_grad()
            loss.backward()
        self.opt_actor.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.opt_alpha.zero_grad()
        alpha_loss.backward()
        self.opt_alpha.step()

    def tensors(self, rows: dict[str, np.ndarray]) -> dict[str, Any]:
        torch = self.torch
        return {
            name: torch.as_tensor(np.asarray(rows[name], dtype=np.float32).reshape(len(rows[name]), -1)).squeeze(-1)
            if name in ("rew", "done")
            else torch.as_tensor(np.asarray(rows[name], dtype=np.float32))
            for name in ("obs", "act", "rew", "next_obs", "done")
        }

    def update(self, buffer: Any, progress: float) -> None:
        """One update of the critics, the actor and the temperature, from rows the arm draws."""
        config, torch = self.config, self.torch
        arm, b = config.arm, config.batch_size
        if arm == "per":
            beta = config.per_beta + (1.0 - config.per_beta) * min(1.0, progress)
            rows = buffer.sample(b, beta=beta)
            batch = self.tensors(rows)
            y = self.target(batch)
            weights = torch.as_tensor(np.asarray(rows["weights"], dtype=np.float32))
            d1 = self.critic_step(0, batch["obs"], batch["act"], y, weights)
            d2 = self.critic_step(1, batch["obs"], batch["act"], y, weights)
            buffer.update_priorities(rows["indexes"], ((d1.abs() + d2.abs()) / 2.0).numpy().astype(np.float64))
            self.actor_step(batch["obs"])
        elif arm == "laber-mean":
            batch = self.tensors(buffer.sample(b * config.m))
            y = self.target(batch)
            with torch.no_grad():
                q1, q2 = self.critics.values(self.critics.q, batch["obs"], batch["act"])
            for k, q in enumerate((q1, q2)):
                sub = self.laber(priorities=(y - q).abs().numpy())
                idx = torch.as_tensor(sub["indexes"])
                weights = torch.as_tensor(np.asarray(sub["weights"], dtype=np.float32))
                self.critic_step(k, batch["obs"][idx], batch["act"][idx], y[idx], weights)
            self.actor_step(batch["obs"][:b])
        else:
            batch = self.tensors(buffer.sample(b * (config.m if arm == "uniform-large" else 1)))
            y = self.target(batch)
            for k in range(2):
                self.critic_step(k, batch["obs"], batch["act"], y, None)
            self.actor_step(batch["obs"])
        self.critics.update_targets(config.tau)


def _evaluate(agent: _SAC, envs: list[Any], rng: np.random.Generator) -> float:
    torch = agent.torch
    total = 0.0
    for env in envs:
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        done = False
        while not done:
            with torch.no_grad():
                action = agent.actor.act(torch.as_tensor(np.asarray(obs, dtype=np.float32))).numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = bool(terminated or truncated)
    return total / len(envs)


def train_sac(
    config: SACConfig,
    *,
    on_eval: Callable[[int, float], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    checkpoints: RunCheckpoints | None = None,
    on_resume: Callable[[int], None] | None = None,
) -> RunResult:
    """Train one SAC run; evaluate the deterministic policy (``tanh(mu)``) every ``eval_every`` steps.

    ``checkpoints`` (``laber.agents.resume.RunCheckpoints``): continue from its checkpoint of this config, when
    it holds one (``on_resume(steps)`` gets the steps already done, or ``on_progress`` the ones it was told of
    before the interruption when there is no ``on_resume``), and write one at each evaluation where
    one is due; the continued run is the uninterrupted run.
    """
    check_trainable(config)
    torch = require("torch", "SAC")
    gym = require("gymnasium", "SAC")
    from laber import PrioritizedReplayBuffer, ReplayBuffer

    n_obs, n_act = check_continuous_env(config.env_id)
    start = time.perf_counter()
    seeds = np.random.SeedSequence(config.seed).spawn(7)
    env = gym.make(config.env_id)
    eval_envs = [gym.make(config.env_id) for _ in range(config.eval_episodes)]
    try:
        low = np.asarray(env.action_space.low, dtype=np.float32)
        high = np.asarray(env.action_space.high, dtype=np.float32)
        agent = _SAC(config, n_obs, n_act, low, high, seeds)
        env_dict = {
            "obs": {"shape": n_obs},
            "act": {"shape": n_act},
            "rew": {},
            "next_obs": {"shape": n_obs},
            "done": {},
        }
        size = min(config.buffer_size, config.steps)
        buffer: Any = (
            PrioritizedReplayBuffer(
                size, env_dict, alpha=config.per_alpha, eps=config.per_eps, rng=np.random.default_rng(seeds[3])
            )
            if config.arm == "per"
            else ReplayBuffer(size, env_dict, rng=np.random.default_rng(seeds[3]))
        )
        explore = np.random.default_rng(seeds[4])
        eval_rng = np.random.default_rng(seeds[5])
        env.action_space.seed(int(explore.integers(2**31)))
        result = RunResult(config=config)
        evaluate = TimedEvaluations(result, start, lambda: _evaluate(agent, eval_envs, eval_rng), on_eval)
        # the action space draws the random actions before learning starts: its generator is the run's too
        generators = {
            "explore": explore,
            "eval": eval_rng,
            "laber": agent.laber_rng,
            "action_space": env.action_space.np_random,
        }
        actions = np.zeros((config.steps, n_act), dtype=env.action_space.dtype)  # replayed exactly as taken

        resumed = (
            checkpoints.restore(result, evaluate, agent=agent.load_state, generators=generators, buffer=buffer)
            if checkpoints is not None
            else None
        )
        if resumed is None:
            evaluate(0)
            obs, _ = env.reset(seed=int(explore.integers(2**31)))
            episode_return = 0.0
            first = 1
        else:
            t0 = time.perf_counter()
            actions[: resumed.step] = resumed.actions
            # the resets draw their seeds from the exploration stream: a fresh copy of it replays them
            resets = np.random.default_rng(seeds[4])
            resets.integers(2**31)  # the action space's seed
            obs = replay_env(
                env,
                resumed,
                lambda _initial: env.reset(seed=int(resets.integers(2**31)))[0],
                [s for s in result.episode_steps if s <= resumed.step],
            )
            if resets.bit_generator.state != explore.bit_generator.state:
                raise ResumeError("the environment's replay drew other reset seeds than the run did")
            evaluate.start += time.perf_counter() - t0  # the replay is not training time
            episode_return = resumed.episode_return
            first = resumed.step + 1
            if on_resume is not None:
                on_resume(resumed.step - resumed.step % 1000)  # in on_progress's units: every 1,000 steps
            elif on_progress is not None:
                on_progress(resumed.step - resumed.step % 1000)
        for step in range(first, config.steps + 1):
            if step <= config.learning_starts:
                action = env.action_space.sample()
            else:
                with torch.no_grad():
                    action, _ = agent.actor.sample(torch.as_tensor(np.asarray(obs, dtype=np.float32)), agent.generator)
                action = action.numpy()
            actions[step - 1] = action
            next_obs, reward, terminated, truncated, _ = env.step(action)
            buffer.add(obs=obs, act=action, rew=float(reward), next_obs=next_obs, done=float(terminated))
            episode_return += float(reward)
            obs = next_obs
            if terminated or truncated:
                result.episode_steps.append(step)
                result.episode_returns.append(episode_return)
                episode_return = 0.0
                obs, _ = env.reset(seed=int(explore.integers(2**31)))
            if step > config.learning_starts:
                t0 = time.perf_counter()
                agent.update(buffer, (step - config.learning_starts) / max(1, config.steps - config.learning_starts))
                result.update_seconds += time.perf_counter() - t0
                result.updates += 1
            if step % config.eval_every == 0:
                evaluate(step)
                if checkpoints is not None and step < config.steps and checkpoints.due():
                    checkpoints.save(
                        LoopState(step=step, episode_return=episode_return, actions=actions, obs=np.asarray(obs)),
                        result,
                        evaluate,
                        agent=agent.state(),
                        generators=generators,
                        buffer=buffer,
                    )
            if on_progress is not None and step % 1000 == 0:
                on_progress(1000)
        result.wall_seconds = time.perf_counter() - evaluate.start
        return result
    finally:
        env.close()
        for e in eval_envs:
            e.close()
