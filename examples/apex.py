"""Ape-X on one machine: explorer processes fill a shared prioritized buffer, one learner trains with PER-LaBER.

Ape-X: D. Horgan, J. Quan, D. Budden, G. Barth-Maron, M. Hessel, H. van Hasselt, D. Silver, "Distributed
Prioritized Experience Replay", ICLR 2018, arXiv:1803.00933. LaBER: T. Lahire, M. Geist, E. Rachelson, "Large
Batch Experience Replay", ICML 2022, arXiv:2110.01528. Needs: pip install "laber[torch,gym]".

Architecture::

    explorer 0 (eps_0) --+                                   +--> learner (this process): sample m*B by PER,
    explorer 1 (eps_1) --+--> MPPrioritizedReplayBuffer  ----+    LaBER-mean sub-samples B, Double DQN step,
    ...                  |    (shared memory, N-step per     |    all m*B priorities written back
    explorer K-1 --------+     explorer, one shared lock)    |
          ^                                                  |
          +------- shared parameter vector (+ version) <-----+  published every --publish-every updates

* Explorers (``--explorers K`` processes, ``spawn`` by default): each runs its own gymnasium environment with
  an epsilon-greedy policy on a local copy of the Q-network, ``eps_i = 0.4 ** (1 + 7 i / (K - 1))`` (Ape-X's
  schedule; 0.1 when ``K = 1``), and refreshes that copy from the shared parameter vector every
  ``--sync-every`` environment steps. It computes each transition's initial priority itself, as Ape-X's actors
  do: the n-step TD error ``|R_t + gamma^k max_a Q(s_{t+k}, a) - Q(s_t, a_t)|`` under its local network, from
  Q-values it already computed to act (one extra forward pass per truncated episode). A transition's priority
  is known once its n-step window closes, so an explorer hands its transitions to the buffer ``nstep - 1`` steps
  late, in batches of up to ``--local-batch`` (Ape-X's local buffer; one lock per batch); the buffer's own
  N-step, kept per process, then stores exactly the rows the priorities were computed for (reward ``R_t``,
  ``next_obs`` of step ``t + k - 1``, ``discount = gamma^k``).
* Learner (the main process): draws ``m * B`` rows by prioritized replay (beta annealed to 1), computes Double
  DQN n-step targets and TD errors for all of them without gradients, sub-samples ``B`` rows with LaBER-mean on
  the Huber surrogate ``min(|TD|, 1)`` (``laber.per_laber_subsample``: weight = PER weight * LaBER weight),
  takes one Adam step on the weighted Huber loss of those ``B`` rows and writes ``|TD|`` of all ``m * B`` rows
  back as their priorities (the paper's PER-LaBER). The network, targets and hyperparameters are those of
  ``laber.agents.dqn`` (its ``DQNConfig`` defaults; ``target_update`` counts learner updates here).
* Pace: on a small machine the explorers would out-run the learner and take its cores, so each explorer stays
  within ``(learning_starts + steps_per_update * updates) / K`` steps (``--steps-per-update``; 0: Ape-X's
  free-running actors). The run ends after ``--steps`` environment steps in all, split between the explorers.
* Races, as in Ape-X: a row an explorer overwrites (the buffer is a ring) between the learner's ``sample`` and its
  ``update_priorities`` gets the priority computed for the row it replaced; rare with a buffer much larger than
  a batch, and harmless (it is a priority, not a label).
* Shut-down: the explorers are stopped (an event) and joined, and the buffer is closed, which unlinks its
  shared memory (nothing is left under ``/dev/shm``); the greedy learner policy is then evaluated.

Seeds: ``--seed`` seeds the learner's network, the buffer, LaBER and the evaluation, and gives each explorer its
own stream (``numpy.random.SeedSequence.spawn``). The processes run concurrently, so runs are not bit-for-bit
repeatable (which transitions the learner sees depends on timing).

Run (2 explorers, CartPole-v1)::

    python examples/apex.py --quick           # 30000 steps: 30-45 s on two cores, greedy return ~130-150
    python examples/apex.py                   # 100000 steps: about 2 minutes, greedy return 500

More cores: one process per core, torch with one thread in each (as here): ``--explorers K`` with one core
left for the learner, and raise ``--steps-per-update`` (or set it to 0) so that the larger stream of
transitions is not held back by the one learner; Ape-X ran hundreds of explorers per learner and a replay ratio
well below one. Explorers add in batches (``--local-batch``): every call holds the buffer's lock, so single
adds from many processes queue on it (``benchmarks/bench_mp.py``). Ctrl-C or SIGTERM stops the run cleanly;
explorers whose learner was killed notice it and exit.
"""

from __future__ import annotations

import argparse
import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from laber import LaBERmean, MPPrioritizedReplayBuffer, per_laber_subsample
from laber.agents.dqn import DQNConfig, check_env, double_dqn_target


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
    """Ape-X's per-explorer exploration rates ``0.4 ** (1 + 7 i / (K - 1))``; 0.1 for a single explorer."""
    if k == 1:
        return [0.1]
    return [0.4 ** (1 + 7 * i / (k - 1)) for i in range(k)]


class SharedParams:
    """The learner's latest parameters as one float32 vector in shared memory, with a version number.

    ``publish`` and ``load`` copy the whole vector under the array's lock, so an explorer never loads a mix of
    two versions. Passed to the explorers when they are created (as every multiprocessing lock).
    """

    def __init__(self, ctx: Any, size: int) -> None:
        self.array = ctx.Array(ctypes.c_float, size)
        self.version = ctx.RawValue(ctypes.c_int64, 0)

    def publish(self, net: nn.Module) -> None:
        flat = nn.utils.parameters_to_vector(net.parameters()).detach().numpy()
        with self.array.get_lock():
            np.frombuffer(self.array.get_obj(), dtype=np.float32)[:] = flat
            self.version.value += 1

    def load(self, net: nn.Module, seen: int) -> int:
        """Copy the parameters into ``net`` if they changed since version ``seen``; the version loaded."""
        if self.version.value == seen:
            return seen
        with self.array.get_lock():
            flat = np.frombuffer(self.array.get_obj(), dtype=np.float32).copy()
            version = int(self.version.value)
        nn.utils.vector_to_parameters(torch.from_numpy(flat), net.parameters())
        return version


@dataclass(frozen=True)
class ExplorerSpec:
    """What one explorer process needs to know (picklable)."""

    index: int
    explorers: int
    epsilon: float
    seed: np.random.SeedSequence
    env_id: str
    n_obs: int
    n_actions: int
    hidden: tuple[int, ...]
    gamma: float
    nstep: int
    steps: int  # this explorer's share of the run's steps
    learning_starts: int
    steps_per_update: float
    sync_every: int
    local_batch: int


def explore(
    spec: ExplorerSpec,
    rb: MPPrioritizedReplayBuffer,
    params: SharedParams,
    counters: Any,
    stop: Any,
    episodes: Any,
) -> None:
    """One explorer: act epsilon-greedily, give each transition its n-step TD error as priority, add to ``rb``.

    ``counters[index]`` is this explorer's step count (read by the learner), ``counters[explorers]`` the
    learner's update count (read here, for the pace); ``episodes`` receives ``(index, step, return)``.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the learner, which stops the explorers
    torch.set_num_threads(1)
    rng = np.random.default_rng(spec.seed)
    env = gym.make(spec.env_id)
    n_actions = spec.n_actions
    net = q_network(spec.n_obs, spec.hidden, n_actions).requires_grad_(False)
    version = params.load(net, -1)
    gamma, n, me = spec.gamma, spec.nstep, spec.index
    slack = spec.local_batch + 2 * n  # enough steps for rows to reach the buffer before the learner starts

    def q_values(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(net(torch.from_numpy(np.asarray(x, dtype=np.float32))).numpy())

    window: deque[tuple[np.ndarray, int, float, np.ndarray, bool, float]] = deque()  # (s, a, r, s', done, Q(s,a))
    ready: list[tuple[np.ndarray, int, float, np.ndarray, bool, float]] = []  # (..., priority)

    def close_oldest(bootstrap: float) -> None:
        """The oldest open transition's window is complete: its n-step TD error under the local network."""
        ret = sum(gamma**j * step[2] for j, step in enumerate(window))
        obs_, act_, rew_, next_, done_, q_sa = window.popleft()
        target = ret + gamma ** (len(window) + 1) * bootstrap
        ready.append((obs_, act_, rew_, next_, done_, abs(target - q_sa)))

    def flush() -> None:
        if ready:
            obs_, act_, rew_, next_, done_, prio = zip(*ready, strict=True)
            rb.add(
                obs=np.stack(obs_),
                act=np.array(act_),
                rew=np.array(rew_),
                next_obs=np.stack(next_),
                done=np.array(done_, dtype=np.float32),
                priorities=np.array(prio),
            )
            ready.clear()

    obs, _ = env.reset(seed=int(rng.integers(2**31)))
    episode_return, steps = 0.0, 0

    def ahead() -> bool:
        """Whether this explorer is ahead of its share of ``learning_starts + steps_per_update * updates``."""
        allowed = (spec.learning_starts + spec.steps_per_update * counters[spec.explorers]) / spec.explorers
        return spec.steps_per_update > 0 and steps >= slack + allowed

    learner_pid = os.getppid()

    def running() -> bool:
        """Not told to stop, and the learner still runs (an orphaned explorer, its learner killed, ends too)."""
        return not stop.is_set() and os.getppid() == learner_pid

    while steps < spec.steps and running():
        while ahead() and running():
            time.sleep(0.0005)
        if steps % spec.sync_every == 0:
            version = params.load(net, version)
        q = q_values(obs[None])[0]
        if len(window) == n:
            close_oldest(float(q.max()))  # s_t is the bootstrap state of the transition n steps back
        action = int(rng.integers(n_actions)) if rng.random() < spec.epsilon else int(q.argmax())
        next_obs, reward, terminated, truncated, _ = env.step(action)
        window.append((obs, action, float(reward), next_obs, bool(terminated), float(q[action])))
        episode_return += float(reward)
        steps += 1
        counters[me] = steps
        if terminated or truncated:
            bootstrap = 0.0 if terminated else float(q_values(next_obs[None])[0].max())
            while window:
                close_oldest(bootstrap)
            flush()
            rb.on_episode_end()
            episodes.put((me, steps, episode_return))
            episode_return = 0.0
            obs, _ = env.reset()
        else:
            obs = next_obs
            if len(ready) >= spec.local_batch:
                flush()
    flush()
    env.close()


class Learner:
    """Online and target networks, Adam, and the PER-LaBER Double DQN update of ``laber.agents.dqn``."""

    def __init__(self, config: DQNConfig, n_obs: int, n_actions: int, rng: np.random.Generator) -> None:
        self.config = config
        self.online = q_network(n_obs, config.hidden, n_actions)
        self.target = q_network(n_obs, config.hidden, n_actions).requires_grad_(False)
        self.sync_target()
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=config.lr, fused=True)
        self.laber = LaBERmean(config.batch_size, config.m, eps=config.laber_eps, rng=rng)

    def sync_target(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def update(self, rb: MPPrioritizedReplayBuffer, beta: float) -> float:
        """One step: PER draws ``m*B`` rows, LaBER-mean keeps ``B``, all ``m*B`` priorities refreshed."""
        large = rb.sample(self.config.sample_size, beta=beta)
        n = len(large["indexes"])
        obs = torch.from_numpy(np.ascontiguousarray(large["obs"]))
        next_obs = torch.from_numpy(np.ascontiguousarray(large["next_obs"]))
        act = torch.from_numpy(large["act"].reshape(n, 1).astype(np.int64))
        rew = torch.from_numpy(large["rew"].reshape(n).astype(np.float32))
        discount = torch.from_numpy(large["discount"].reshape(n).astype(np.float32))
        not_done = torch.from_numpy(1.0 - large["done"].reshape(n).astype(np.float32))
        with torch.no_grad():
            q_both = self.online(torch.cat((obs, next_obs)))
            q_sa_all = q_both[:n].gather(1, act).view(n)
            y = double_dqn_target(q_both[n:], self.target(next_obs), rew, discount, not_done)
        td = (y - q_sa_all).numpy()
        batch = per_laber_subsample(self.laber, large, priorities=np.minimum(np.abs(td), 1.0))  # Huber surrogate
        rb.update_priorities(large["indexes"], np.abs(td).astype(np.float64))
        pos = torch.from_numpy(batch["positions"])
        q_sa = self.online(obs[pos]).gather(1, act[pos]).view(-1)
        losses = nn.functional.huber_loss(q_sa, y[pos], reduction="none", delta=1.0)
        loss = (losses * torch.from_numpy(batch["weights"])).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def act(self, obs: np.ndarray) -> int:
        with torch.inference_mode():
            return int(self.online(torch.from_numpy(np.asarray(obs, dtype=np.float32))[None]).argmax())


def evaluate(learner: Learner, env_id: str, episodes: int, rng: np.random.Generator) -> list[float]:
    """Returns of ``episodes`` greedy episodes of the learner's online network."""
    env = gym.make(env_id)
    returns = []
    try:
        for _ in range(episodes):
            obs, _ = env.reset(seed=int(rng.integers(2**31)))
            total, done = 0.0, False
            while not done:
                obs, reward, terminated, truncated, _ = env.step(learner.act(obs))
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium id (flat Box observations, Discrete actions)")
    parser.add_argument("--explorers", type=int, default=2, help="explorer processes K")
    parser.add_argument("--steps", type=int, default=None, help="environment steps in all (default 100000)")
    parser.add_argument("--quick", action="store_true", help="a short run: 30000 steps unless --steps is given")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps-per-update", type=float, default=2.0, help="explorer steps per update (0: free)")
    parser.add_argument("--sync-every", type=int, default=100, help="explorer steps between parameter refreshes")
    parser.add_argument("--publish-every", type=int, default=25, help="learner updates between publications")
    parser.add_argument("--local-batch", type=int, default=16, help="transitions an explorer adds per call")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--log-every", type=float, default=5.0, help="seconds between progress lines")
    parser.add_argument("--start-method", choices=("spawn", "forkserver", "fork"), default="spawn")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 30_000 if args.quick else 100_000
    for name in ("explorers", "steps", "sync_every", "publish_every", "local_batch", "eval_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.steps_per_update < 0:
        parser.error("--steps-per-update must be >= 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))  # clean up as on Ctrl-C
    torch.set_num_threads(1)
    start = time.perf_counter()
    k = args.explorers
    config = DQNConfig(env_id=args.env, arm="per-laber", seed=args.seed, steps=args.steps)
    learning_starts = min(config.learning_starts, max(args.steps // 4, 1))
    n_obs, n_actions = check_env(config.env_id)
    ctx = mp.get_context(args.start_method)
    s_torch, s_buffer, s_laber, s_eval, s_explorers = np.random.SeedSequence(args.seed).spawn(5)
    torch.manual_seed(int(s_torch.generate_state(1, np.uint64)[0] >> np.uint64(1)))
    eps = epsilons(k)
    env_dict: dict[str, dict[str, Any]] = {
        "obs": {"shape": n_obs},
        "act": {"shape": 1, "dtype": np.int64},
        "rew": {},
        "next_obs": {"shape": n_obs},
        "done": {},
    }
    rb = MPPrioritizedReplayBuffer(
        config.buffer_size,
        env_dict,
        config.per_alpha,
        config.per_eps,
        ctx=ctx,
        rng=np.random.default_rng(s_buffer),
        Nstep={"size": config.nstep, "rew": "rew", "gamma": config.gamma, "next": "next_obs"},
    )
    procs: list[Any] = []
    episodes = ctx.Queue()
    stop = ctx.Event()
    recent: list[deque[float]] = [deque(maxlen=10) for _ in range(k)]
    counts = [0] * k

    def drain() -> None:
        while True:
            try:
                i, _, ret = episodes.get_nowait()
            except queue.Empty:
                return
            recent[i].append(ret)
            counts[i] += 1

    try:
        learner = Learner(config, n_obs, n_actions, np.random.default_rng(s_laber))
        params = SharedParams(ctx, sum(p.numel() for p in learner.online.parameters()))
        params.publish(learner.online)
        counters = ctx.RawArray(ctypes.c_int64, k + 1)
        for i, seed in enumerate(s_explorers.spawn(k)):
            spec = ExplorerSpec(
                index=i,
                explorers=k,
                epsilon=eps[i],
                seed=seed,
                env_id=config.env_id,
                n_obs=n_obs,
                n_actions=n_actions,
                hidden=config.hidden,
                gamma=config.gamma,
                nstep=config.nstep,
                steps=args.steps // k + (i < args.steps % k),
                learning_starts=learning_starts,
                steps_per_update=args.steps_per_update,
                sync_every=args.sync_every,
                local_batch=args.local_batch,
            )
            procs.append(ctx.Process(target=explore, args=(spec, rb, params, counters, stop, episodes)))
        for p in procs:
            p.start()
        print(
            f"Ape-X: {k} explorer process{'es' if k > 1 else ''} ({args.start_method}), epsilons "
            f"{', '.join(f'{e:.3g}' for e in eps)}; learner PER-LaBER (B={config.batch_size}, m={config.m}), "
            f"{args.steps} steps on {config.env_id}",
            flush=True,
        )
        updates, total, last_log = 0, 0, time.perf_counter()
        losses: deque[float] = deque(maxlen=100)
        while True:
            total = sum(counters[:k])
            if total >= args.steps:
                break
            if total < learning_starts or len(rb) == 0:
                time.sleep(0.01)
            else:
                losses.append(learner.update(rb, config.per_beta + (1 - config.per_beta) * total / args.steps))
                updates += 1
                counters[k] = updates
                if updates % config.target_update == 0:
                    learner.sync_target()
                if updates % args.publish_every == 0:
                    params.publish(learner.online)
            now = time.perf_counter()
            if now - last_log >= args.log_every:
                last_log = now
                drain()
                failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if failed:
                    raise RuntimeError(f"an explorer failed (exit codes {failed})")
                per = " | ".join(
                    f"explorer {i}: {counts[i]} episodes, last 10 {np.mean(recent[i]) if recent[i] else 0:.1f}"
                    for i in range(k)
                )
                loss = np.mean(losses) if losses else float("nan")
                print(
                    f"{now - start:6.1f}s  steps {total:>7}  updates {updates:>6}  loss {loss:.3f}  "
                    f"buffer {len(rb):>6}  {per}",
                    flush=True,
                )
    finally:
        stop.set()
        deadline = time.monotonic() + 30
        while any(p.is_alive() for p in procs) and time.monotonic() < deadline:
            drain()  # an explorer exits only once what it put on the queue is read
            for p in procs:
                p.join(timeout=0.05)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()
        drain()
        rb.close()
    codes = [p.exitcode for p in procs]
    print(f"explorers stopped and joined (exit codes {codes}), buffer closed", flush=True)
    if any(code != 0 for code in codes):
        raise SystemExit(f"an explorer failed (exit codes {codes})")
    per = ", ".join(f"explorer {i}: last 10 {np.mean(recent[i]) if recent[i] else 0:.1f}" for i in range(k))
    print(f"training: {total} steps, {updates} updates, {counts} episodes; {per}")
    returns = evaluate(learner, config.env_id, args.eval_episodes, np.random.default_rng(s_eval))
    print(
        f"mean evaluation return of the greedy learner policy over {len(returns)} episodes: "
        f"{np.mean(returns):.1f} (wall time {time.perf_counter() - start:.1f} s)"
    )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted (explorers stopped, buffer closed)")
