"""Wall time of one reference-DQN update per sampling arm (CartPole shapes, batch 64, m = 4, MLP 64x64, CPU).

An update is everything between two environment steps of training: drawing from the buffer, the Double DQN targets,
LaBER's surrogate priorities and sub-sampling (large-batch arms), the forward and backward passes and the Adam
step; torch runs on one thread. The goal of the project: ``laber-mean`` at most 1.3x ``uniform``. The
``uniform-large`` row (plain uniform sampling of m*B rows) shows how much of LaBER's cost is the larger batch
through the network rather than the sub-sampling. The two "no-grad forwards" rows time the forward passes alone
that uniform and a LaBER arm need before the gradient pass (online and target network on B next states, against
the online network on 2*m*B states and next states and the target network on m*B next states); uniform's time
plus their difference is the floor of any large-batch arm on this machine, since that compute runs at the
matrix-multiply throughput of one core.

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
    learners: dict[str, dqn._Learner] = {}
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
        learners[arm] = learner
        fns[arm] = lambda learner=learner: learner.update(0.5)
    if "uniform" not in fns:
        return
    # The no-grad forward passes of an update: uniform runs the online and the target network on the B next
    # states; a LaBER arm runs the online network on the m*B states and next states together and the target
    # network on the m*B next states. Their difference is the compute LaBER cannot avoid.
    net = next(iter(learners.values()))
    small, large = torch.zeros(64, 4), torch.zeros(4 * 64, 4)
    both = torch.zeros(2 * 4 * 64, 4)

    def forwards(online: torch.Tensor, target: torch.Tensor) -> None:
        with torch.inference_mode():
            net.q_online(online)
            net.q_target(target)

    fns["no-grad forwards, uniform"] = lambda: forwards(small, small)
    fns["no-grad forwards, laber"] = lambda: forwards(both, large)
    times = interleaved(fns, number=100, repeat=7)
    report("DQN update, CartPole shapes, batch 64, m = 4, MLP 64x64, 1 torch thread", list(times.items()), "uniform")
    print("\n  time per update relative to uniform:")
    for arm in learners:
        print(f"  {arm:<16}{times[arm] / times['uniform']:>6.2f}x")
    extra = times["no-grad forwards, laber"] - times["no-grad forwards, uniform"]
    print(
        f"\n  LaBER's extra forward compute alone: {extra:.1f} us, a floor of "
        f"{(times['uniform'] + extra) / times['uniform']:.2f}x uniform for any large-batch arm"
    )


if __name__ == "__main__":
    main()
