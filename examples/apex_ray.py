"""Ape-X on Ray: acting actors add to a sharded laber replay server, one learner trains the DQN with LaBER-mean.

Ape-X: D. Horgan, J. Quan, D. Budden, G. Barth-Maron, M. Hessel, H. van Hasselt, D. Silver, "Distributed
Prioritized Experience Replay", ICLR 2018, arXiv:1803.00933. LaBER: T. Lahire, M. Geist, E. Rachelson, "Large
Batch Experience Replay", ICML 2022, arXiv:2110.01528. Needs: pip install "laber[ray,torch,gym]".

Architecture::

    actor 0 (eps_0, Ray actor) --add--> replay shard 0 (Ray actor, laber ReplayBuffer) --+
    actor 1 (eps_1, Ray actor) --add--> replay shard 1 (Ray actor, laber ReplayBuffer) --+--> learner (this
    ...                                  (actor i writes to shard i % shards)            |    process): m*B rows
          ^                                                                              |    in one call per
          +-------------------- network weights (ray.put) <------------------------------+    shard, LaBER-mean

* Actors (``--actors K`` Ray actors): each runs its own gymnasium environment epsilon-greedily on a local copy
  of the Q-network with Ape-X's rates ``eps_i = 0.4 ** (1 + 7 i / (K - 1))`` (0.1 when ``K = 1``), in chunks of
  ``--chunk`` steps; each chunk starts from the learner's latest weights. Transitions go through the actor's own
  ``ReplayClient`` (``replay.writer(i)``), which forms the N-step rows of its episodes itself and sends them in
  batches of ``--local-batch``.
* Learner (the driver): draws ``m * B`` rows uniformly across the shards (one round trip per shard), computes
  Double DQN n-step targets and TD errors for all of them without gradients, sub-samples ``B`` with LaBER-mean on
  the Huber surrogate ``min(|TD|, 1)`` and takes one Adam step on the weighted Huber loss: the reference DQN's
  laber-mean update (``laber.agents.dqn``, its ``DQNConfig`` defaults). Updates are paced to one per
  ``--steps-per-update`` environment steps after ``learning_starts``.
* Replay: ``laber.distributed.launch`` with ``--shards`` server actors, checkpointed every
  ``--checkpoint-every`` seconds into ``--checkpoint-dir`` when one is given (a crashed shard comes back from it).

Run (local Ray, started here)::

    python examples/apex_ray.py --quick        # 12000 steps, 2 actors, 2 shards
    python examples/apex_ray.py                # 60000 steps

On an existing cluster (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the others),
run it on any node with ``--address auto`` (or ``--address HEAD:6379``): ``ray.init(address=...)`` then places
the actors and shards across the machines. Seeds: ``--seed`` seeds the learner, LaBER, the replay and each
actor (``SeedSequence.spawn``); actors run concurrently, so runs are not bit-for-bit repeatable.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import gymnasium as gym
import numpy as np
import ray
import torch
from torch import nn

from laber import LaBERmean
from laber.agents.dqn import DQNConfig, check_env, double_dqn_target
from laber.distributed import BufferSpec, ReplayClient, launch


def q_network(n_obs: int, hidden: tuple[int, ...], n_actions: int) -> nn.Sequential:
    """The reference DQN's MLP (``laber.agents.dqn``): linear layers with ReLU between them."""
    layers: list[nn.Module] = []
    width = n_obs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_actions))
    return nn.Sequential(*layers)


def epsilons(k: int) -> list[float]:
    """Ape-X's per-actor exploration rates ``0.4 ** (1 + 7 i / (K - 1))``; 0.1 for a single actor."""
    return [0.1] if k == 1 else [0.4 ** (1 + 7 * i / (k - 1)) for i in range(k)]


class Actor:
    """One acting process: an environment, an epsilon-greedy policy and a writer client of the replay."""

    def __init__(
        self, writer: ReplayClient, env_id: str, hidden: tuple[int, ...], epsilon: float, seed: Any, batch: int
    ) -> None:
        torch.set_num_threads(1)
        self.writer = writer
        self.env = gym.make(env_id)
        self.rng = np.random.default_rng(seed)
        n_obs, n_actions = self.env.observation_space.shape[0], int(self.env.action_space.n)
        self.net = q_network(n_obs, hidden, n_actions).requires_grad_(False)
        self.n_actions, self.epsilon, self.batch = n_actions, epsilon, batch
        self.obs, _ = self.env.reset(seed=int(self.rng.integers(2**31)))
        self.episode_return = 0.0
        self.local: list[tuple[np.ndarray, int, float, np.ndarray, bool]] = []

    def _send(self) -> None:
        if self.local:
            obs, act, rew, nxt, done = zip(*self.local, strict=True)
            self.writer.add(
                obs=np.stack(obs), act=np.array(act), rew=np.array(rew), next_obs=np.stack(nxt), done=np.array(done)
            )
            self.local.clear()

    def run(self, steps: int, weights: dict[str, torch.Tensor] | None) -> list[float]:
        """Act ``steps`` steps with ``weights`` (None: keep the current ones, random at first); the returns of
        the episodes that ended. Every transition is stored before this returns."""
        if weights is not None:
            self.net.load_state_dict(weights)
        returns: list[float] = []
        for _ in range(steps):
            if self.rng.random() < self.epsilon:
                action = int(self.rng.integers(self.n_actions))
            else:
                with torch.inference_mode():
                    action = int(self.net(torch.as_tensor(self.obs, dtype=torch.float32)[None]).argmax())
            nxt, reward, terminated, truncated, _ = self.env.step(action)
            self.local.append((self.obs, action, float(reward), nxt, bool(terminated)))
            self.episode_return += float(reward)
            if terminated or truncated:
                self._send()
                self.writer.on_episode_end()  # cuts this actor's open N-step windows
                returns.append(self.episode_return)
                self.episode_return = 0.0
                self.obs, _ = self.env.reset()
            else:
                self.obs = nxt
                if len(self.local) >= self.batch:
                    self._send()
        self._send()
        self.writer.flush()
        return returns


class Learner:
    """Online and target networks, Adam and the LaBER-mean Double DQN update of ``laber.agents.dqn``."""

    def __init__(self, config: DQNConfig, n_obs: int, n_actions: int, rng: np.random.Generator) -> None:
        self.config = config
        self.online = q_network(n_obs, config.hidden, n_actions)
        self.target = q_network(n_obs, config.hidden, n_actions).requires_grad_(False)
        self.target.load_state_dict(self.online.state_dict())
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.lr)
        self.laber = LaBERmean(config.batch_size, config.m, eps=config.laber_eps, rng=rng)

    def update(self, replay: ReplayClient) -> float:
        """One step: ``m*B`` rows in one call per shard, LaBER-mean keeps ``B`` by the Huber surrogate."""
        large = replay.sample(self.config.batch_size * self.config.m)
        n = len(large["indexes"])
        obs = torch.from_numpy(large["obs"])  # sample's arrays are fresh and writable: no second copy
        next_obs = torch.from_numpy(large["next_obs"])
        act = torch.tensor(large["act"].reshape(n, 1), dtype=torch.int64)
        rew = torch.tensor(large["rew"].reshape(n), dtype=torch.float32)
        discount = torch.tensor(large["discount"].reshape(n), dtype=torch.float32)
        not_done = 1.0 - torch.tensor(large["done"].reshape(n), dtype=torch.float32)
        with torch.no_grad():
            q_both = self.online(torch.cat((obs, next_obs)))
            q_all = q_both[:n].gather(1, act).view(n)
            y = double_dqn_target(q_both[n:], self.target(next_obs), rew, discount, not_done)
        picked = self.laber(priorities=np.minimum(np.abs((y - q_all).numpy()), 1.0))
        pos = torch.from_numpy(picked["indexes"])
        q_sa = self.online(obs[pos]).gather(1, act[pos]).view(-1)
        losses = nn.functional.huber_loss(q_sa, y[pos], reduction="none", delta=1.0)
        loss = (losses * torch.from_numpy(picked["weights"])).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def act(self, obs: np.ndarray) -> int:
        with torch.inference_mode():
            return int(self.online(torch.as_tensor(obs, dtype=torch.float32)[None]).argmax())


def evaluate(learner: Learner, env_id: str, episodes: int, rng: np.random.Generator) -> list[float]:
    """Returns of ``episodes`` greedy episodes of the learner's online network."""
    env = gym.make(env_id)
    returns = []
    for _ in range(episodes):
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(learner.act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id (flat Box observations, Discrete actions)")
    parser.add_argument("--actors", type=int, default=2, help="acting Ray actors K")
    parser.add_argument("--shards", type=int, default=2, help="replay server actors")
    parser.add_argument("--steps", type=int, default=None, help="environment steps in all (default 60000)")
    parser.add_argument("--quick", action="store_true", help="a short run: 12000 steps unless --steps is given")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-per-update", type=float, default=2.0, help="environment steps per learner update")
    parser.add_argument("--chunk", type=int, default=200, help="steps an actor acts between weight refreshes")
    parser.add_argument("--local-batch", type=int, default=16, help="transitions an actor sends per add")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--address", default=None, help="an existing Ray cluster (ray.init(address=...)): 'auto'")
    parser.add_argument("--actor-cpus", type=float, default=0.5, help="CPUs Ray reserves per actor")
    parser.add_argument("--shard-cpus", type=float, default=0.0, help="CPUs Ray reserves per replay shard")
    parser.add_argument("--checkpoint-dir", default=None, help="periodic replay checkpoints (a new directory)")
    parser.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds between replay checkpoints")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 12_000 if args.quick else 60_000
    for name in ("actors", "shards", "steps", "chunk", "local_batch", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.steps_per_update <= 0:
        parser.error("--steps-per-update must be > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(1)
    config = DQNConfig(env_id=args.env, arm="laber-mean", seed=args.seed, steps=args.steps)
    learning_starts = min(config.learning_starts, max(args.steps // 4, 1))
    n_obs, n_actions = check_env(config.env_id)
    s_torch, s_replay, s_laber, s_eval, s_actors = np.random.SeedSequence(args.seed).spawn(5)
    torch.manual_seed(int(s_torch.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    if args.address is None:
        ray.init(include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=args.address, log_to_driver=False)
    env_dict: dict[str, dict[str, Any]] = {
        "obs": {"shape": n_obs},
        "act": {"shape": 1, "dtype": np.int64},
        "rew": {},
        "next_obs": {"shape": n_obs},
        "done": {},
    }
    spec = BufferSpec(
        config.buffer_size // args.shards,
        env_dict,
        Nstep={"size": config.nstep, "rew": "rew", "gamma": config.gamma, "next": "next_obs"},
        seed=int(s_replay.generate_state(1)[0]),
    )
    replay = launch(
        spec,
        args.shards,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_every_s=args.checkpoint_every,
        num_cpus=args.shard_cpus,
        rng=np.random.default_rng(s_replay),
    )
    learner = Learner(config, n_obs, n_actions, np.random.default_rng(s_laber))
    remote_actor = ray.remote(num_cpus=args.actor_cpus)(Actor)
    eps = epsilons(args.actors)
    actors = [
        remote_actor.remote(replay.writer(i), config.env_id, config.hidden, eps[i], seed, args.local_batch)
        for i, seed in enumerate(s_actors.spawn(args.actors))
    ]
    print(
        f"Ape-X on Ray: {args.actors} actors (epsilons {', '.join(f'{e:.3g}' for e in eps)}), {args.shards} replay "
        f"shards, learner LaBER-mean (B={config.batch_size}, m={config.m}), {args.steps} steps on {config.env_id}",
        flush=True,
    )

    def owed(steps: int) -> float:
        """Updates the learner owes after ``steps`` environment steps: one per ``--steps-per-update``."""
        return max(0.0, (steps - learning_starts) / args.steps_per_update)

    running: dict[Any, tuple[int, int]] = {}  # a chunk in progress -> (actor, steps)
    idle = list(range(args.actors))
    steps_sent = steps_done = updates = 0
    returns: list[float] = []
    losses: list[float] = []
    last_log = time.perf_counter()
    while running or steps_sent < args.steps or updates < owed(steps_done):
        ready, _ = ray.wait(list(running), num_returns=len(running), timeout=0) if running else ([], [])
        for ref in ready:
            i, done = running.pop(ref)
            returns.extend(ray.get(ref))
            steps_done += done
            idle.append(i)
        # an idle actor gets its next chunk, with the latest weights, once the learner has caught up to within a
        # chunk of its updates (the pace: --steps-per-update steps per update)
        if idle and steps_sent < args.steps and updates >= owed(steps_done) - args.chunk / args.steps_per_update:
            weights = ray.put({k: v.detach().clone() for k, v in learner.online.state_dict().items()})
            while idle and steps_sent < args.steps:
                i = idle.pop(0)
                chunk = min(args.chunk, args.steps - steps_sent)
                running[actors[i].run.remote(chunk, weights)] = (i, chunk)
                steps_sent += chunk
        if updates < owed(steps_done):
            losses.append(learner.update(replay))
            updates += 1
            if updates % config.target_update == 0:
                learner.target.load_state_dict(learner.online.state_dict())
        elif not ready:
            time.sleep(0.002)
        if time.perf_counter() - last_log >= 5.0:
            last_log = time.perf_counter()
            recent = np.mean(returns[-10:]) if returns else float("nan")
            loss = np.mean(losses[-100:]) if losses else float("nan")
            print(
                f"{last_log - start:6.1f}s  steps {steps_done:>6}  updates {updates:>6}  loss {loss:.3f}  "
                f"episodes {len(returns)}  last 10 returns {recent:.1f}",
                flush=True,
            )
    stored = len(replay)
    print(f"training: {steps_done} steps, {updates} updates, {len(returns)} episodes; {stored} rows in the replay")
    scores = evaluate(learner, config.env_id, args.eval_episodes, np.random.default_rng(s_eval))
    print(
        f"mean evaluation return of the greedy learner policy over {len(scores)} episodes: {np.mean(scores):.1f} "
        f"(wall time {time.perf_counter() - start:.1f} s)"
    )
    ray.shutdown()


if __name__ == "__main__":
    main()
