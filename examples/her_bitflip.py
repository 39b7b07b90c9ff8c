"""Bit flipping with DQN and Hindsight Experience Replay (HER): the toy task of the HER paper, in torch.

HER: M. Andrychowicz et al., "Hindsight Experience Replay", NeurIPS 2017, arXiv:1707.01495 (Section 3.1).
DQN: V. Mnih et al., "Human-level control through deep reinforcement learning", Nature 2015.

The environment: a state of n bits and a goal of n bits, both drawn at random; action i flips bit i; the reward is
-1 until the state equals the goal (then 0, and the episode ends), for at most n steps. A random policy almost
never sees a reward of 0 for n = 8 and more, so plain DQN has nothing to learn from, while HER relabels every
episode with goals it did reach (strategy "future": states reached later in the same episode) and learns from
those. The script trains the same goal-conditioned DQN twice, with HER (4 relabelled goals per transition) and
without (0 relabelled goals, same buffer class), with the same seed and number of steps, and prints the greedy
policy's success rate on fresh (state, goal) pairs. Needs: pip install "laber[torch]".

    python examples/her_bitflip.py              # n = 8 bits, about a minute on 2 cores
    python examples/her_bitflip.py --quick      # a few seconds: a smoke test
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch import nn

from laber import HindsightReplayBuffer


class BitFlip:
    """n bits; action i flips bit i; reward -1 until the state equals the goal, then 0 and done; at most n steps."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        self.n = n
        self.rng = rng
        self.state = np.zeros(n, dtype=np.float32)
        self.goal = np.zeros(n, dtype=np.float32)
        self.t = 0

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        self.state = self.rng.integers(0, 2, self.n).astype(np.float32)
        self.goal = self.rng.integers(0, 2, self.n).astype(np.float32)
        while np.array_equal(self.state, self.goal):  # a task solved before it starts teaches nothing
            self.goal = self.rng.integers(0, 2, self.n).astype(np.float32)
        self.t = 0
        return self.state.copy(), self.goal.copy()

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        self.state = self.state.copy()
        self.state[action] = 1.0 - self.state[action]
        self.t += 1
        reached = bool(np.array_equal(self.state, self.goal))
        return self.state.copy(), 0.0 if reached else -1.0, reached or self.t >= self.n


def reward_func(next_state: np.ndarray, action: np.ndarray, goal: np.ndarray) -> np.ndarray:
    """The environment's reward, on batches: 0 where the state reached is the goal, else -1 (HER recomputes it)."""
    return np.where(np.all(next_state == goal, axis=1), 0.0, -1.0)


def q_network(n: int, hidden: int) -> nn.Module:
    return nn.Sequential(nn.Linear(2 * n, hidden), nn.ReLU(), nn.Linear(hidden, n))


def greedy(model: nn.Module, state: np.ndarray, goal: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        x = torch.as_tensor(np.concatenate([state, goal], axis=-1), dtype=torch.float32)
        return model(x).argmax(dim=-1).numpy()


def success_rate(model: nn.Module, n: int, episodes: int, rng: np.random.Generator) -> float:
    """Share of fresh (state, goal) pairs the greedy policy solves within n flips (all episodes at once)."""
    state = rng.integers(0, 2, (episodes, n)).astype(np.float32)
    goal = rng.integers(0, 2, (episodes, n)).astype(np.float32)
    same = np.all(state == goal, axis=1)
    goal[same, 0] = 1.0 - goal[same, 0]
    solved = np.zeros(episodes, dtype=bool)
    for _ in range(n):
        action = greedy(model, state, goal)
        rows = np.flatnonzero(~solved)
        state[rows, action[rows]] = 1.0 - state[rows, action[rows]]
        solved |= np.all(state == goal, axis=1)
    return float(solved.mean())


def train(args: argparse.Namespace, additional_goals: int) -> tuple[float, float]:
    """Train one DQN; return (greedy success rate, seconds). Everything is seeded from args.seed."""
    seeds = np.random.SeedSequence(args.seed).spawn(4)
    torch.manual_seed(int(seeds[0].generate_state(1)[0]))
    env = BitFlip(args.bits, np.random.default_rng(seeds[1]))
    explore = np.random.default_rng(seeds[2])
    n = args.bits
    env_dict = {"obs": {"shape": n}, "act": {"dtype": np.int64}, "next_obs": {"shape": n}}
    rb = HindsightReplayBuffer(
        args.buffer,
        env_dict,
        max_episode_len=n,
        reward_func=reward_func,
        strategy="future",
        additional_goals=additional_goals,
        prioritized=False,
        rng=np.random.default_rng(seeds[3]),
    )
    model, target = q_network(n, args.hidden), q_network(n, args.hidden)
    target.load_state_dict(model.state_dict())
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    start = time.perf_counter()
    for episode in range(args.episodes):
        epsilon = max(0.05, 0.5 * (1.0 - episode / (0.5 * args.episodes)))
        state, goal = env.reset()
        done = False
        while not done:
            action = int(explore.integers(n)) if explore.random() < epsilon else int(greedy(model, state, goal))
            next_state, _, done = env.step(action)
            rb.add(obs=state, act=action, next_obs=next_state)
            state = next_state
        rb.on_episode_end(goal)  # stores the episode with its goal, plus the relabelled copies
        if rb.get_stored_size() < args.batch:
            continue
        for _ in range(args.updates):
            b = rb.sample(args.batch)
            obs = torch.as_tensor(np.concatenate([b["obs"], b["goal"]], axis=1))
            next_obs = torch.as_tensor(np.concatenate([b["next_obs"], b["goal"]], axis=1))
            rew = torch.as_tensor(b["rew"][:, 0])
            reached = rew == 0.0  # the goal reached ends the episode: with relabelled goals, done follows the reward
            with torch.no_grad():
                y = rew + args.gamma * (~reached) * target(next_obs).max(dim=1).values
                y = y.clamp(-1.0 / (1.0 - args.gamma), 0.0)  # the return's range, as in the HER paper
            q = model(obs).gather(1, torch.as_tensor(b["act"])).squeeze(1)
            loss = nn.functional.smooth_l1_loss(q, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # Polyak-averaged target network
                for p, tp in zip(model.parameters(), target.parameters(), strict=True):
                    tp.mul_(1.0 - args.tau).add_(p, alpha=args.tau)
    seconds = time.perf_counter() - start
    rate = success_rate(model, n, args.eval_episodes, np.random.default_rng([args.seed, 12345]))
    return rate, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, default=8, help="n, the number of bits")
    parser.add_argument("--episodes", type=int, default=2000, help="training episodes per arm")
    parser.add_argument("--updates", type=int, default=4, help="gradient steps after each episode")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--buffer", type=int, default=100_000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--gamma", type=float, default=0.98)
    parser.add_argument("--tau", type=float, default=0.05, help="target network averaging rate")
    parser.add_argument("--eval-episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--quick", action="store_true", help="a short run (a smoke test; no learning expected)")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.eval_episodes, args.hidden = 60, 100, 64
    torch.set_num_threads(args.threads)
    print(f"bit flipping, n = {args.bits}: {args.episodes} episodes, {args.updates} updates each, seed {args.seed}")
    results = {}
    for name, k in (("with HER (future, k = 4)", 4), ("without HER (k = 0)", 0)):
        rate, seconds = train(args, k)
        results[name] = rate
        print(f"{name}: success rate {rate:.1%} ({seconds:.1f} s)")
    her, plain = results.values()
    print(f"HER minus no HER: {100 * (her - plain):+.1f} points")


if __name__ == "__main__":
    main()
