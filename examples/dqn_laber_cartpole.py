"""Double DQN with Large Batch Experience Replay (LaBER) on CartPole: the reference page's example, in torch.

LaBER: T. Lahire, M. Geist, E. Rachelson, "Large Batch Experience Replay", ICML 2022, arXiv:2110.01528.
Double DQN: H. van Hasselt, A. Guez, D. Silver, AAAI 2016, arXiv:1509.06461.

Every step: draw m*B transitions uniformly, compute their TD errors with the current network, sub-sample B of them
in proportion to the surrogate priority (|TD| for the L2 loss, min(|TD|, 1) for the Huber loss) with LaBERmean, and
take a gradient step on the weighted loss. Needs: pip install "laber[torch,gym]" (TensorBoard is optional).

    python examples/dqn_laber_cartpole.py --steps 20000
"""

from __future__ import annotations

import argparse
import datetime
import os

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from laber import LaBERmean, ReplayBuffer

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--steps", type=int, default=20_000, help="training steps (the reference page uses 1e6)")
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--loss", choices=("huber", "mse"), default="huber")
args = parser.parse_args()

gamma = 0.99
batch_size = 64
n_iteration = args.steps
target_update_freq = 500
eval_freq = 1000
egreedy = 1.0


def decay_egreedy(e: float) -> float:
    return max(e * 0.999, 0.05)


# Use 4 times larger batch for the initial uniform sampling; LaBER-mean is the recommended variant.
m = 4
seeds = np.random.SeedSequence(args.seed).spawn(4)  # one seed for everything: torch, env, buffer, LaBER
torch.manual_seed(int(seeds[0].generate_state(1)[0]))
torch.set_num_threads(1)
laber = LaBERmean(batch_size, m, rng=np.random.default_rng(seeds[1]))
rng = np.random.default_rng(seeds[2])

# Log to TensorBoard when it is installed.
try:
    from torch.utils.tensorboard import SummaryWriter

    logdir = os.path.join("logs", datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    writer: SummaryWriter | None = SummaryWriter(logdir)
except ImportError:
    writer = None

env = gym.make("CartPole-v1")
eval_env = gym.make("CartPole-v1")
n_obs = env.observation_space.shape[0]
n_act = int(env.action_space.n)

# For CartPole: input 4, output 2
model = nn.Sequential(nn.Linear(n_obs, 64), nn.ReLU(), nn.Linear(64, n_act))
target_model = nn.Sequential(nn.Linear(n_obs, 64), nn.ReLU(), nn.Linear(64, n_act))
target_model.load_state_dict(model.state_dict())
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def huber_loss(td: torch.Tensor) -> torch.Tensor:
    """Huber loss (delta = 1); its derivative in q has magnitude min(|td|, 1), LaBER's surrogate priority."""
    abs_td = td.abs()
    return torch.where(abs_td > 1.0, abs_td - 0.5, 0.5 * td.square())


def mse(td: torch.Tensor) -> torch.Tensor:
    """L2 loss td^2 / 2; its derivative in q has magnitude |td|."""
    return 0.5 * td.square()


loss_func, surrogate = (
    (huber_loss, lambda td: td.abs().clamp(max=1.0)) if args.loss == "huber" else (mse, lambda td: td.abs())
)

env_dict = {
    "obs": {"shape": env.observation_space.shape},
    "act": {"shape": 1, "dtype": np.int64},
    "rew": {},
    "next_obs": {"shape": env.observation_space.shape},
    "done": {},
}
nstep = 3
rb = ReplayBuffer(
    int(1e6),
    env_dict,
    Nstep={"size": nstep, "rew": "rew", "gamma": gamma, "next": "next_obs"},
    rng=np.random.default_rng(seeds[3]),
)


def double_dqn_target(next_obs: torch.Tensor, rew: torch.Tensor, done: torch.Tensor, discount: torch.Tensor):
    """y = R + gamma^K (1 - done) Q_target(s', argmax_a Q(s', a)), with gamma^K the buffer's per-row discount."""
    act = model(next_obs).argmax(dim=1, keepdim=True)
    return rew + discount * (1.0 - done) * target_model(next_obs).gather(1, act).squeeze(1)


def evaluate() -> float:
    obs, _ = eval_env.reset(seed=int(rng.integers(2**31)))
    total = 0.0
    while True:
        with torch.no_grad():
            act = int(model(torch.as_tensor(obs).unsqueeze(0)).argmax())
        obs, rew, terminated, truncated, _ = eval_env.step(act)
        total += float(rew)
        if terminated or truncated:
            return total


def add(obs, act, rew, next_obs, terminated: bool, truncated: bool):
    # Bootstrap through time limits: done is gymnasium's `terminated`; the episode ends on either.
    rb.add(obs=obs, act=act, rew=rew, next_obs=next_obs, done=float(terminated))
    if terminated or truncated:
        rb.on_episode_end()
        return env.reset()[0]
    return next_obs


# Warming up with random actions
observation, _ = env.reset(seed=int(rng.integers(2**31)))
env.action_space.seed(int(rng.integers(2**31)))
for _ in range(100):
    action = env.action_space.sample()
    next_observation, reward, terminated, truncated, _ = env.step(action)
    observation = add(observation, action, reward, next_observation, terminated, truncated)

for n_step in range(n_iteration):
    if rng.random() < egreedy:
        action = env.action_space.sample()
    else:
        with torch.no_grad():
            action = int(model(torch.as_tensor(observation).unsqueeze(0)).argmax())
    egreedy = decay_egreedy(egreedy)
    next_observation, reward, terminated, truncated, _ = env.step(action)
    observation = add(observation, action, reward, next_observation, terminated, truncated)

    # Uniform sampling of the large batch
    sample = rb.sample(batch_size * m)
    obs = torch.from_numpy(sample["obs"])
    act = torch.from_numpy(sample["act"]).view(-1, 1)
    with torch.no_grad():
        target_q = double_dqn_target(
            torch.from_numpy(sample["next_obs"]),
            torch.from_numpy(sample["rew"]).view(-1),
            torch.from_numpy(sample["done"]).view(-1),
            torch.from_numpy(sample["discount"]).view(-1).float(),
        )
    q = model(obs).gather(1, act).squeeze(1)
    td = target_q - q

    # Sub-sample according to the surrogate priorities of the current network
    sub = laber(priorities=surrogate(td.detach()))
    indexes, weights = sub["indexes"], sub["weights"]
    loss = (loss_func(td[indexes]) * weights).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

    if writer is not None:
        writer.add_scalar("Target Q", target_q.mean().item(), n_step)
        writer.add_scalar("Loss vs training step", loss.item(), n_step)
    if n_step % target_update_freq == 0:
        target_model.load_state_dict(model.state_dict())
    if n_step % eval_freq == eval_freq - 1:
        eval_rew = evaluate()
        print(f"step {n_step + 1:>7}: evaluation return {eval_rew:.0f}")
        if writer is not None:
            writer.add_scalar("episode reward vs training step", eval_rew, n_step)
