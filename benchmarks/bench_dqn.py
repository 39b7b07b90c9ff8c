"""Wall time of one reference-DQN update per sampling arm (CartPole shapes, batch 64, m = 4, MLP 64x64, CPU).

An update is everything between two environment steps of training: drawing from the buffer, the Double DQN targets,
LaBER's surrogate priorities and sub-sampling (large-batch arms), the forward and backward passes and the Adam
step; torch runs on one thread. The goal of the project: ``laber-mean`` at most 1.3x ``uniform``. The
``uniform-large`` row (plain uniform sampling of m*B rows) shows how much of LaBER's cost is the larger batch
through the network rather than the sub-sampling.

Run: ``python benchmarks/bench_dqn.py`` (or ``make bench``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _timing import interleaved, report


def main() -> None:
    try:
        import torch

        from laber.agents import dqn
    except ImportError as exc:
        print(f"skipped: {exc}")
        return
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    fns: dict[str, Callable[[], object]] = {}
    for arm in dqn.ARMS:
        config = dqn.DQNConfig(arm=arm, batch_size=64, m=4, hidden=(64, 64))
        seeds = dqn._seeds(0)
        try:
            buffer = dqn._make_buffer(config, (4,), seeds)
        except ImportError as exc:
            print(f"{arm}: skipped ({exc})")
            continue
        for _ in range(20):  # 20 episodes of 1000 steps: 20k transitions, added in chunks
            n = 1000
            obs = rng.normal(size=(n + 1, 4)).astype(np.float32)
            done = np.zeros((n, 1), np.float32)
            done[-1] = 1.0
            act = rng.integers(0, 2, (n, 1))
            buffer.add(obs=obs[:-1], act=act, rew=np.ones((n, 1), np.float32), next_obs=obs[1:], done=done)
            buffer.on_episode_end()
        learner = dqn._Learner(config, 4, 2, dqn._make_sampler(config, buffer, seeds))
        fns[arm] = lambda learner=learner: learner.update(0.5)
    if "uniform" not in fns:
        return
    times = interleaved(fns, number=100, repeat=7)
    report("DQN update, CartPole shapes, batch 64, m = 4, MLP 64x64, 1 torch thread", list(times.items()), "uniform")
    print("\n  time per update relative to uniform:")
    for arm, us in times.items():
        print(f"  {arm:<16}{us / times['uniform']:>6.2f}x")


if __name__ == "__main__":
    main()
