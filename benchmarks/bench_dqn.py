"""Wall time of one reference-DQN update per sampling arm (CartPole shapes, batch 64, m = 4, MLP 64x64, CPU).

An update is everything between two environment steps of training: drawing from the buffer, the Double DQN targets,
LaBER's surrogate priorities and sub-sampling (large-batch arms), the forward and backward passes and the Adam
step; torch runs on one thread. The goal of the project: ``laber-mean`` at most 1.3x ``uniform``. The
``uniform-large`` row (plain uniform sampling of m*B rows) shows how much of LaBER's cost is the larger batch
through the network rather than the sub-sampling. The last row,
"large draw and scoring, no LaBER", draws and scores the ``m*B`` rows exactly as a LaBER arm does (targets and TD
errors of all of them, from the online network on their states and next states together and the target network
on their next states) and then trains on the first ``B`` of them, unweighted: everything but LaBER's draw and
weights. It is the floor of any arm that scores the large batch with the current network; ``laber-mean`` minus
that row is the cost of LaBER itself.

Run: ``python benchmarks/bench_dqn.py`` (or ``make bench``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import REPORT, measure, scaled

FLOOR = "large draw and scoring, no LaBER"


def _filled_buffer(dqn: Any, config: Any, seeds: Any, rng: np.random.Generator) -> Any:
    """The arm's buffer holding 20 episodes of 1000 steps: 20k transitions, added in chunks."""
    buffer = dqn._make_buffer(config, (4,), seeds)
    for _ in range(20):
        n = 1000
        obs = rng.normal(size=(n + 1, 4)).astype(np.float32)
        done = np.zeros((n, 1), np.float32)
        done[-1] = 1.0
        act = rng.integers(0, 2, (n, 1))
        buffer.add(obs=obs[:-1], act=act, rew=np.ones((n, 1), np.float32), next_obs=obs[1:], done=done)
        buffer.on_episode_end()
    return buffer


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
            buffer = _filled_buffer(dqn, config, seeds, rng)
        except ImportError as exc:
            print(f"{arm}: skipped ({exc})")
            continue
        learner = dqn._Learner(config, 4, 2, dqn._make_sampler(config, buffer, np.random.default_rng(seeds.laber)))
        fns[arm] = lambda learner=learner: learner.update(0.5)
    if "uniform" not in fns:
        return
    # LaBER's work without LaBER: the large batch drawn and scored like a LaBER arm (the online network on the
    # m*B states and next states together, the target network on the m*B next states), then its first B rows, a
    # uniform sub-batch, trained on unweighted. No arm that scores m*B rows with the current network can be faster.
    config = dqn.DQNConfig(arm="uniform", batch_size=64, m=4, hidden=(64, 64))
    buffer = _filled_buffer(dqn, config, dqn._seeds(0), rng)
    first = np.arange(config.batch_size)

    class _ScoredFirstRows(dqn._Uniform):
        prescore = True

        def select(self, td: Any, batch: Any) -> tuple[np.ndarray, None]:
            return first, None

    floor = dqn._Learner(config, 4, 2, _ScoredFirstRows(buffer, config.m * config.batch_size))
    fns[FLOOR] = lambda: floor.update(0.5)
    timing = measure(fns, number=scaled(100, 3), repeat=15)
    REPORT.section(
        "A DQN update",
        "`benchmarks/bench_dqn.py`: one update of the reference agent per arm (CartPole shapes, batch 64, m = 4, "
        "MLP 64x64, one torch thread): time / uniform's time. The last row draws and scores the `m*B` rows exactly "
        "as a LaBER arm does and trains on the first `B` of them, unweighted: the floor of any arm that scores the "
        "large batch with the current network.",
    )
    arms = [name for name in fns if name != "uniform"]
    own = ""
    if "laber-mean" in timing:
        diff = [a - b for a, b in zip(timing.rounds["laber-mean"], timing.rounds[FLOOR], strict=True)]
        own = (
            f"laber-mean minus the floor (LaBER's draw, weights and row selection): {np.median(diff):.1f} us "
            "per update (median over the rounds)."
        )
    REPORT.table("DQN update, time / uniform's", timing, arms, ["uniform", FLOOR], kind="cost", note=own)
    REPORT.ratio_headline("DQN update, laber-mean / uniform (x)", timing, "laber-mean", "uniform")
    REPORT.ratio_headline("DQN update, uniform-large / uniform (x)", timing, "uniform-large", "uniform")
    REPORT.ratio_headline("DQN update, large draw and scoring without LaBER / uniform (x)", timing, FLOOR, "uniform")
    if "laber-mean" in timing:
        REPORT.headline("DQN update, laber-mean minus that floor: us", float(np.median(diff)))


if __name__ == "__main__":
    main()
