"""Multi-process buffers on shared memory: what the shared memory costs, and what several explorers add.

(a) One process: ``MPReplayBuffer`` against the in-memory ``ReplayBuffer`` (add 1, add 256, sample 256) and
``MPPrioritizedReplayBuffer`` against ``PrioritizedReplayBuffer`` (sample 256, update_priorities 256), timed
side by side in one process, interleaved round by round (``_timing.interleaved``). The difference is the
storage and the process-shared lock (a semaphore and the holder's pid in shared memory) each call takes. Goal:
shared memory within 1.5x of in-memory.

(b) Throughput into one ``MPReplayBuffer``: adds of single transitions per second from one writer thread in
this process, from 1 and from 2 explorer processes (``spawn``), each adding for a fixed time; and the samples
of 256 per second a learner (this process) draws alone and while 2 explorers add. The configurations take turns,
round after round, with the same explorer processes (started once); each keeps its best round. An extra row
has the 2 explorers add batches of 32 (an Ape-X actor's local buffer): each call holds the lock once. On a machine
with fewer cores than processes the explorers and the learner share cores: read the ratios with ``nproc``.

Buffers: 1e6 slots; obs (4 float32), act (1 uint8), rew, next_obs (4 float32), done; batch 256.
Run: ``python benchmarks/bench_mp.py`` (``--quick``: fewer and shorter rounds).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from _timing import QUICK, REPORT, Timing, fmt_ratio, measure, scaled
from laber import MPPrioritizedReplayBuffer, MPReplayBuffer, PrioritizedReplayBuffer, ReplayBuffer

SIZE = scaled(10**6, 10**4)
B = 256
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 4},
    "act": {"shape": 1, "dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 4},
    "done": {},
}
BATCHED = 32  # the extra row: explorers adding batches of this many (an Ape-X actor's local buffer)
BATCHED_NAME = f"2 explorer processes, adds of {BATCHED} (rows/s)"
MEMORY = "in-memory"
SHARED = "shared memory (MP)"


def _one(rng: np.random.Generator) -> dict[str, Any]:
    return {
        "obs": rng.random(4, dtype=np.float32),
        "act": 1,
        "rew": 0.5,
        "next_obs": rng.random(4, dtype=np.float32),
        "done": 0.0,
    }


def _many(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "obs": rng.random((n, 4), dtype=np.float32),
        "act": rng.integers(0, 2, (n, 1)).astype(np.uint8),
        "rew": rng.random((n, 1), dtype=np.float32),
        "next_obs": rng.random((n, 4), dtype=np.float32),
        "done": np.zeros((n, 1), dtype=np.float32),
    }


# ----------------------------------------------------------------------------------------------- (b) workers
def _add_until(rb: MPReplayBuffer, rows: dict[str, Any], start: float, end: float, k: int = 1) -> int:
    """Add ``rows`` (``k`` transitions a call) from ``start`` to ``end`` (``time.monotonic``, system-wide);
    the number of transitions added."""
    while time.monotonic() < start:
        pass
    n = 0
    while time.monotonic() < end:
        rb.add(**rows)
        n += k
    return n


def _explorer(rb: MPReplayBuffer, seed: np.random.SeedSequence, orders: Any, results: Any) -> None:
    """An explorer process: for each ``(start, end, k)`` order, add ``k`` transitions a call (1 or ``BATCHED``)
    in that window; None stops."""
    rng = np.random.default_rng(seed)
    one = _one(rng)
    batch = _many(rng, BATCHED)
    results.put(0)  # attached and ready
    while (order := orders.get()) is not None:
        start, end, k = order
        results.put(_add_until(rb, one if k == 1 else batch, start, end, k))


def _sample_until(rb: MPReplayBuffer, start: float, end: float) -> int:
    while time.monotonic() < start:
        pass
    n = 0
    while time.monotonic() < end:
        rb.sample(B)
        n += 1
    return n


class _Explorers:
    """Explorer processes started once; ``run(k, start, end)`` has the first ``k`` add in the window."""

    def __init__(self, ctx: Any, rb: MPReplayBuffer, seeds: list[np.random.SeedSequence]) -> None:
        # Under spawn the child unpickles the target by module name; import this file as a module so that also
        # works when run.py loads it from a path (such a module is not in sys.modules).
        target = importlib.import_module(Path(__file__).stem)._explorer
        self.orders = [ctx.Queue() for _ in seeds]
        self.results = [ctx.Queue() for _ in seeds]
        self.procs = [
            ctx.Process(target=target, args=(rb, seed, o, r), daemon=True)
            for seed, o, r in zip(seeds, self.orders, self.results, strict=True)
        ]
        for p in self.procs:
            p.start()
        for r in self.results:
            r.get(timeout=120)

    def start(self, k: int, start: float, end: float, batch: int = 1) -> None:
        for q in self.orders[:k]:
            q.put((start, end, batch))

    def counts(self, k: int) -> list[int]:
        return [int(r.get(timeout=120)) for r in self.results[:k]]

    def close(self) -> None:
        for q in self.orders:
            q.put(None)
        for p in self.procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
                p.join()


def _throughput(seconds: float, rounds: int) -> None:
    ctx = mp.get_context("spawn")
    seeds = np.random.SeedSequence(0).spawn(3)
    rb = MPReplayBuffer(SIZE, ENV, ctx=ctx, rng=np.random.default_rng(seeds[0]))
    rb.add(**_many(np.random.default_rng(seeds[1]), SIZE))  # full: every add overwrites, sample sees 1e6 rows
    one = _one(np.random.default_rng(seeds[2]))
    explorers = _Explorers(ctx, rb, seeds[1:])
    rates: dict[str, list[float]] = {}
    parts: dict[str, list[list[float]]] = {}

    def keep(name: str, total: float, split: list[float] | None = None) -> None:
        rates.setdefault(name, []).append(total)
        if split is not None:
            parts.setdefault(name, []).append(split)

    def window() -> tuple[float, float]:
        start = time.monotonic() + 0.05  # every writer starts at the same instant
        return start, start + seconds

    try:
        for _ in range(rounds):
            start, end = window()
            counter: list[int] = []
            thread = threading.Thread(target=lambda c=counter, s=start, e=end: c.append(_add_until(rb, one, s, e)))
            thread.start()
            thread.join()
            keep("1 writer thread (this process)", counter[0] / seconds)
            for k in (1, 2):
                start, end = window()
                explorers.start(k, start, end)
                counts = explorers.counts(k)
                keep(f"{k} explorer process{'es' if k > 1 else ''} (spawn)", sum(counts) / seconds)
            start, end = window()
            explorers.start(2, start, end, BATCHED)
            keep(BATCHED_NAME, sum(explorers.counts(2)) / seconds)
            start, end = window()
            keep("learner alone: sample(256)", _sample_until(rb, start, end) / seconds)
            start, end = window()
            explorers.start(2, start, end)
            samples = _sample_until(rb, start, end)
            counts = explorers.counts(2)
            keep("learner with 2 explorers adding: sample(256)", samples / seconds)
            keep("2 explorers, learner sampling", sum(counts) / seconds, [c / seconds for c in counts])
    finally:
        explorers.close()
        rb.close()

    def table(title: str, names: list[str], unit: str) -> None:
        base = names[0]
        lines = [
            f"**{title}** ({rounds} rounds of {seconds:g} s)",
            "",
            f"| configuration | {unit} (median) | / {base}: median [q1, q3] |",
            "|---|---|---|",
        ]
        print(f"\n{title}")
        for name in names:
            ratio = fmt_ratio([a / b for a, b in zip(rates[name], rates[base], strict=True)])
            median = float(np.median(rates[name]))
            extra = ""
            if name in parts:
                split = np.median(np.asarray(parts[name]), axis=0)
                extra = " (" + ", ".join(f"{v:,.0f}" for v in split) + " each)"
            print(f"  {name:<46}{median:>12,.0f}   {ratio}{extra}")
            lines.append(f"| {name} | {median:,.0f}{extra} | {'' if name == base else ratio} |")
        REPORT.parts.append("\n".join(lines) + "\n")

    cpus = os.cpu_count()
    REPORT.text(
        f"(b) one MPReplayBuffer of {SIZE:.0e} slots, {cpus} CPUs (the explorers and the learner share them): "
        "the configurations take turns, round after round, with the same explorer processes."
    )
    table(
        "adds of 1 transition per second, all writers together",
        [
            "1 writer thread (this process)",
            "1 explorer process (spawn)",
            "2 explorer processes (spawn)",
            "2 explorers, learner sampling",
            BATCHED_NAME,
        ],
        "adds/s",
    )
    table(
        f"samples of {B} per second in this process",
        ["learner alone: sample(256)", "learner with 2 explorers adding: sample(256)"],
        "samples/s",
    )


# ----------------------------------------------------------------------------------------------- (a) one process
def _single_process() -> None:
    ctx = mp.get_context("spawn")
    rng = np.random.default_rng(0)
    one, many = _one(rng), _many(rng, B)
    fill = _many(rng, SIZE)
    prio = rng.random(SIZE)
    idx = np.sort(rng.integers(0, SIZE, B))
    new = rng.random(B)

    mem, shm = ReplayBuffer(SIZE, ENV, rng=0), MPReplayBuffer(SIZE, ENV, ctx=ctx, rng=0)
    per, mper = PrioritizedReplayBuffer(SIZE, ENV, rng=0), MPPrioritizedReplayBuffer(SIZE, ENV, ctx=ctx, rng=0)
    try:
        for rb in (mem, shm):
            rb.add(**fill)
        for p in (per, mper):
            p.add(**fill, priorities=prio)
        rows: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
            ("ReplayBuffer add 1 transition", lambda: mem.add(**one), lambda: shm.add(**one), 3000),
            (f"ReplayBuffer add {B} transitions", lambda: mem.add(**many), lambda: shm.add(**many), 1000),
            (f"ReplayBuffer sample {B}", lambda: mem.sample(B), lambda: shm.sample(B), 1000),
            (f"PrioritizedReplayBuffer sample {B}", lambda: per.sample(B), lambda: mper.sample(B), 500),
            (
                f"PrioritizedReplayBuffer update_priorities {B}",
                lambda: per.update_priorities(idx, new),
                lambda: mper.update_priorities(idx, new),
                1000,
            ),
        ]
        REPORT.text(f"(a) one process, {SIZE:.0e} slots: shared-memory time / in-memory time (goal: within 1.5x)")
        for title, in_memory, shared, number in rows:
            timing: Timing = measure({MEMORY: in_memory, SHARED: shared}, number=number, repeat=15)
            REPORT.table(title, timing, [SHARED], [MEMORY], kind="cost")
    finally:
        shm.close()
        mper.close()


def main() -> None:
    REPORT.section(
        "Multi-process buffers on shared memory",
        "`benchmarks/bench_mp.py`: what shared memory costs one process, and what several explorer processes add.",
    )
    _single_process()
    _throughput(seconds=0.1 if QUICK else 1.0, rounds=2 if QUICK else 7)


if __name__ == "__main__":
    main()
