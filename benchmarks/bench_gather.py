"""Writers while a learner samples large batches: gathers under the lock against gathers outside it.

An explorer process adds single image transitions (84x84x4 uint8 frames and their next frames, 56 KiB a row)
to an ``MPReplayBuffer`` while the learner (this process) draws ``sample(B)`` back to back. A batch of 64 moves
3.5 MiB, so each gather takes a while; ``laber.buffers.UNLOCKED_GATHER_BYTES`` decides whether it runs under the
buffer's lock (set above any batch: the explorer waits for every gather) or outside it (the default for such
batches: the explorer goes on, and the rows it overwrote meanwhile are gathered again under the lock). The two
settings take turns, round after round, with the same explorer (started once, ``fork``), and the table reports
the explorer's adds per second and the learner's samples per second for each, with the ratio per round.

On two cores the explorer and the learner each have one; with fewer cores than processes, read with ``nproc``.
Run: ``python benchmarks/bench_gather.py`` (``--quick``: short rounds; ``--batch N``: ``sample(N)``, default 64;
LaBER's large batch of ``m * B`` rows is ``--batch 256`` for ``B = 64, m = 4``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from typing import Any

import numpy as np

import laber.buffers
from _timing import QUICK, REPORT, fmt_ratio
from laber import MPReplayBuffer

SIZE = 20_000
B = 64
FRAME = (84, 84, 4)
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": FRAME, "dtype": np.uint8},
    "act": {"dtype": np.int64},
    "rew": {},
    "next_obs": {"shape": FRAME, "dtype": np.uint8},
    "done": {},
}


def _explorer(rb: MPReplayBuffer, go: Any, stop: Any, counts: Any, slot: Any) -> None:
    rng = np.random.default_rng(os.getpid())
    frame = rng.integers(0, 255, FRAME, dtype=np.uint8)
    while True:
        go.wait()
        if stop.is_set():
            return
        n = 0
        while go.is_set():
            rb.add(obs=frame, act=1, rew=0.0, next_obs=frame, done=0.0)
            n += 1
        counts[slot.value] = n


def main() -> None:
    quick = QUICK
    batch = int(sys.argv[sys.argv.index("--batch") + 1]) if "--batch" in sys.argv else B
    seconds, rounds = (0.3, 2) if quick else (2.0, 7)
    ctx = mp.get_context("fork")
    rb = MPReplayBuffer(SIZE, ENV, ctx=ctx, rng=0)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, (1000, *FRAME), dtype=np.uint8)
    for _ in range(0, SIZE, 1000):
        rb.add(obs=frames, act=np.zeros(1000, np.int64), rew=np.zeros(1000), next_obs=frames, done=np.zeros(1000))
    go, stop = ctx.Event(), ctx.Event()
    counts = ctx.Array("q", 2 * rounds)
    slot = ctx.Value("i", 0)
    worker = ctx.Process(target=_explorer, args=(rb, go, stop, counts, slot), daemon=True)
    worker.start()
    default = laber.buffers.UNLOCKED_GATHER_BYTES
    modes = {"gather under the lock": 1 << 62, "gather outside the lock (default)": default}
    adds: dict[str, list[float]] = {m: [] for m in modes}
    samples: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for r in range(rounds):
            order = list(modes) if r % 2 == 0 else list(reversed(modes))
            for mode in order:
                laber.buffers.UNLOCKED_GATHER_BYTES = modes[mode]
                slot.value = r * 2 + list(modes).index(mode)
                go.set()
                t0 = time.perf_counter()
                n = 0
                while time.perf_counter() - t0 < seconds:
                    rb.sample(batch)
                    n += 1
                go.clear()
                elapsed = time.perf_counter() - t0
                time.sleep(0.05)  # the explorer publishes its count
                adds[mode].append(counts[slot.value] / elapsed)
                samples[mode].append(n / elapsed)
    finally:
        laber.buffers.UNLOCKED_GATHER_BYTES = default
        stop.set()
        go.set()
        worker.join(timeout=10)
        rb.close()
    locked, unlocked = list(modes)
    row_kib = 2 * int(np.prod(FRAME)) / 1024
    lines = [
        f"**sample({batch}) of {row_kib:.0f} KiB rows from {SIZE:,} rows while an explorer adds** ({rounds} rounds "
        f"of {seconds} s; {os.cpu_count()} cores)",
        "",
        "| | explorer adds/s (median) | learner samples/s (median) |",
        "|---|---|---|",
    ]
    for mode in modes:
        lines.append(f"| {mode} | {np.median(adds[mode]):,.0f} | {np.median(samples[mode]):,.1f} |")
    add_ratio = [a / b for a, b in zip(adds[unlocked], adds[locked], strict=True)]
    sample_ratio = [a / b for a, b in zip(samples[unlocked], samples[locked], strict=True)]
    lines.append(f"| outside / under, per round | {fmt_ratio(add_ratio)} | {fmt_ratio(sample_ratio)} |")
    REPORT.section(
        "Large gathers and writers",
        "`benchmarks/bench_gather.py`: an explorer process adds image transitions to an `MPReplayBuffer` while "
        "the learner samples large batches, with the gather under the buffer's lock and outside it (the default "
        "for large batches).",
    )
    REPORT.text("\n".join(lines))


if __name__ == "__main__":
    main()
