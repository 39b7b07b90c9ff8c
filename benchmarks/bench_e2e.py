"""End to end: environment steps per second of a whole CartPole-v1 training run, laber's DQN against SB3's DQN.

Three runs take turns, ``REPEATS`` times in one process, each with one torch thread: the reference DQN
(``laber.agents.dqn.train``) with the ``uniform`` arm and with ``laber-mean`` (``m = 4``), and stable-baselines3's
``DQN`` with the same network (MLP 64x64), batch (64), learning rate (1e-3), discount (0.99), 3-step returns,
buffer (1e5), warm-up (1,000 steps), one update per step, target refresh every 500 steps and epsilon decayed
from 1 to 0.05 over 10,000 steps. What still differs is each library's own: laber's targets are Double DQN's
with the Huber loss, SB3's are DQN's (max over the target network) with the Huber loss and gradient clipping at
norm 10; laber evaluates one greedy episode before and after training (a few hundred forward passes).

A cell is the wall time per environment step of a run (the whole run: acting, storing, sampling, updating) and,
for laber's rows, SB3's time over laber's in the same repeat: median [q1, q3] over the repeats.

Each is first run once for 1,050 steps, untimed (imports, first torch calls). Run: ``python
benchmarks/bench_e2e.py`` (about 3 minutes; ``--quick``: 1,100 steps, once).
"""

from __future__ import annotations

import time
from typing import Any

from _timing import REPORT, Timing, peer_name, scaled, wanted

STEPS = scaled(15_000, 1_100)
WARMUP = 1_050  # an untimed short run of each first: imports, first torch calls, kernel loading
REPEATS = scaled(3, 1)
COMMON: dict[str, Any] = {
    "batch_size": 64,
    "lr": 1e-3,
    "gamma": 0.99,
    "nstep": 3,
    "buffer_size": 100_000,
    "learning_starts": 1_000,
    "train_freq": 1,
    "target_update": 500,
    "eps_start": 1.0,
    "eps_end": 0.05,
    "eps_decay_steps": 10_000,
}


def _laber_run(arm: str, seed: int, steps: int = STEPS) -> float:
    from laber.agents import dqn

    config = dqn.DQNConfig(
        env_id="CartPole-v1",
        arm=arm,
        seed=seed,
        steps=steps,
        m=4,
        hidden=(64, 64),
        eval_every=steps,
        eval_episodes=1,
        **COMMON,
    )
    t0 = time.perf_counter()
    dqn.train(config)
    return time.perf_counter() - t0


def _sb3_run(seed: int, steps: int = STEPS) -> float:
    import gymnasium as gym
    from stable_baselines3 import DQN

    env = gym.make("CartPole-v1")
    model = DQN(
        "MlpPolicy",
        env,
        learning_rate=COMMON["lr"],
        buffer_size=COMMON["buffer_size"],
        learning_starts=COMMON["learning_starts"],
        batch_size=COMMON["batch_size"],
        gamma=COMMON["gamma"],
        train_freq=COMMON["train_freq"],
        gradient_steps=1,
        n_steps=COMMON["nstep"],
        target_update_interval=COMMON["target_update"],
        exploration_fraction=min(COMMON["eps_decay_steps"] / steps, 1.0),
        exploration_initial_eps=COMMON["eps_start"],
        exploration_final_eps=COMMON["eps_end"],
        policy_kwargs={"net_arch": [64, 64]},
        device="cpu",
        seed=seed,
        verbose=0,
    )
    t0 = time.perf_counter()
    model.learn(total_timesteps=steps)
    seconds = time.perf_counter() - t0
    env.close()
    return seconds


def main() -> None:
    try:
        import torch

        from laber.agents import dqn  # noqa: F401
    except ImportError as exc:
        print(f"skipped: {exc}")
        return
    torch.set_num_threads(1)
    runs: dict[str, Any] = {
        "laber DQN, uniform": lambda seed, steps=STEPS: _laber_run("uniform", seed, steps),
        "laber DQN, laber-mean": lambda seed, steps=STEPS: _laber_run("laber-mean", seed, steps),
    }
    sb3 = peer_name("stable-baselines3", "SB3") + " DQN"
    if wanted("stable-baselines3"):
        try:
            import stable_baselines3  # noqa: F401

            runs[sb3] = _sb3_run
        except ImportError:
            print("stable-baselines3 is not installed: laber's arms only")
    timing = Timing({name: [] for name in runs})
    names = list(runs)
    for name in names:
        runs[name](0, WARMUP)
    for r in range(REPEATS):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            seconds = runs[name](r)
            timing.rounds[name].append(seconds / STEPS * 1e6)
            print(f"  repeat {r}: {name:<28}{STEPS / seconds:>8.0f} env steps/s")
    REPORT.section(
        "End to end: a CartPole-v1 training run",
        f"`benchmarks/bench_e2e.py`: {STEPS:,} environment steps per run, {REPEATS} repeats taking turns in one "
        "process, one torch thread; the same network (MLP 64x64), batch (64), learning rate, discount, 3-step "
        "returns, buffer, warm-up (1,000 steps), target refresh and exploration schedule in both libraries "
        "(laber's targets are Double DQN's; SB3's are DQN's, with gradient clipping). A repeat is one run: the "
        "rounds below are repeats.",
    )
    steps_per_s = ", ".join(f"{name}: {1e6 / timing.median(name):,.0f}" for name in names)
    REPORT.table(
        "Wall time per environment step of a whole training run (acting, storing, sampling, updating)",
        timing,
        ["laber DQN, uniform", "laber DQN, laber-mean"],
        [sb3, "laber DQN, uniform"],
        note=f"Environment steps per second (median): {steps_per_s}.",
    )
    for name in ("uniform", "laber-mean"):
        REPORT.ratio_headline(
            f"CartPole training, laber {name}: env steps/s vs SB3 DQN (x)", timing, sb3, f"laber DQN, {name}"
        )


if __name__ == "__main__":
    main()
