"""The Ray replay server (``laber.distributed``) against an in-process buffer and the shared-memory buffer.

(a) Adds: transitions per second that K = 1, 2, 4 writers put into one buffer, all writing at once for a fixed
window: writer threads of this process into a ``ReplayBuffer`` (the in-process reference: K = 1 only, threads
share one interpreter), ``spawn`` processes into one ``MPReplayBuffer`` (shared memory), and Ray actors through
their ``ReplayClient.writer(i)`` into one server shard (each add a Ray actor call, up to 4 in flight per writer).
Single transitions and batches of 32 (an Ape-X actor's local buffer).

(b) Samples: batches per second the learner (this process) draws alone, of 256 rows and of the LaBER large
batch ``m * B = 1024`` rows, from the in-process buffer, the shared-memory buffer, one Ray shard and two Ray
shards (one call per shard, in parallel). The configurations take turns round after round; each cell is the
median over the rounds, with the interquartile range.

Buffers of 1e6 slots (1e4 with ``--quick``), obs (4 float32), act (1 uint8), rew, next_obs (4 float32), done.
Every process, the Ray workers included, shares the machine's cores: read the numbers with the core count the
header states. Peers: Reverb (DeepMind's replay server, unreleased since 2023) and RLlib's replay actors are not
installed here and not timed. Run: ``python benchmarks/bench_ray.py`` (``--quick``: a smoke test).
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import _timing
from laber import MPReplayBuffer, ReplayBuffer

SIZE = _timing.scaled(10**6, 10**4)
SECONDS = 0.1 if _timing.QUICK else 1.0
ROUNDS = _timing.scaled(5, 1)
SAMPLES = _timing.scaled(100, 5)  # sample calls per round and configuration
WRITERS = (1, 2, 4)
BATCH = 32
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 4},
    "act": {"shape": 1, "dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 4},
    "done": {},
}


def _rows(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    return {
        "obs": rng.random((n, 4), dtype=np.float32),
        "act": rng.integers(0, 2, (n, 1)).astype(np.uint8),
        "rew": rng.random((n, 1), dtype=np.float32),
        "next_obs": rng.random((n, 4), dtype=np.float32),
        "done": np.zeros((n, 1), dtype=np.float32),
    }


def _one(rng: np.random.Generator) -> dict[str, Any]:
    return {k: v[0] for k, v in _rows(rng, 1).items()}


def _add_until(add: Callable[..., object], rows: dict[str, Any], start: float, end: float, k: int) -> int:
    """Call ``add(**rows)`` (``k`` transitions a call) from ``start`` to ``end`` (``time.monotonic``, the same
    clock in every process of the machine); the transitions added."""
    while time.monotonic() < start:
        time.sleep(0.0005)
    n = 0
    while time.monotonic() < end:
        add(**rows)
        n += k
    return n


def _count_into(box: list[int], add: Callable[..., object], rows: dict[str, Any], start: float, end: float) -> None:
    box.append(_add_until(add, rows, start, end, 1))


# ----------------------------------------------------------------------------------------------- writers
def _mp_writer(rb: MPReplayBuffer, seed: int, orders: Any, results: Any) -> None:
    """A writer process: for each ``(start, end, k)`` order, add ``k`` transitions a call; None stops."""
    rng = np.random.default_rng(seed)
    rows = {1: _one(rng), BATCH: _rows(rng, BATCH)}
    results.put(0)
    while (order := orders.get()) is not None:
        start, end, k = order
        results.put(_add_until(rb.add, rows[k], start, end, k))


class _RayWriter:
    """A Ray actor that adds through its own writer client."""

    def __init__(self, writer: Any, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.writer = writer
        self.rows = {1: _one(rng), BATCH: _rows(rng, BATCH)}

    def add_until(self, start: float, end: float, k: int) -> int:
        n = _add_until(self.writer.add, self.rows[k], start, end, k)
        self.writer.flush()  # counted only once stored
        return n


# ----------------------------------------------------------------------------------------------- tables
def _cell(values: list[float]) -> str:
    med, q1, q3 = (float(x) for x in np.percentile(values, [50, 25, 75]))
    return f"{med:,.0f} [{q1:,.0f}, {q3:,.0f}]"


def _table(title: str, unit: str, results: dict[str, list[float]], reference: str) -> None:
    ref = float(np.median(results[reference]))
    lines = [
        f"**{title}** ({len(results[reference])} rounds; median [q1, q3])",
        "",
        f"| configuration | {unit} | median / {reference} |",
        "|---|---|---|",
    ]
    for name, values in results.items():
        lines.append(f"| {name} | {_cell(values)} | {float(np.median(values)) / ref:.2f}x |")
    _timing.REPORT.text("\n".join(lines))


def _adds(ray: Any, replay: Any, rb_mp: MPReplayBuffer, rb_mem: ReplayBuffer, ctx: Any) -> None:
    target = importlib.import_module(Path(__file__).stem)._mp_writer if __name__ != "__main__" else _mp_writer
    orders = [ctx.Queue() for _ in range(max(WRITERS))]
    answers = [ctx.Queue() for _ in range(max(WRITERS))]
    procs = [
        ctx.Process(target=target, args=(rb_mp, 100 + i, o, r), daemon=True)
        for i, (o, r) in enumerate(zip(orders, answers, strict=True))
    ]
    for p in procs:
        p.start()
    for r in answers:
        r.get(timeout=120)
    writer_class = ray.remote(num_cpus=0)(_RayWriter)
    writers = [writer_class.remote(replay.writer(0), 200 + i) for i in range(max(WRITERS))]  # all to shard 0
    ray.get([w.add_until.remote(0.0, time.monotonic() + 0.05, 1) for w in writers])  # started and warm
    one = _one(np.random.default_rng(0))
    results: dict[str, list[float]] = {}

    def window() -> tuple[float, float]:
        start = time.monotonic() + 0.1  # every writer starts at the same instant
        return start, start + SECONDS

    def keep(name: str, total: int) -> None:
        results.setdefault(name, []).append(total / SECONDS)

    try:
        for _ in range(ROUNDS):
            for k in (1, BATCH):
                tag = "1 transition" if k == 1 else f"batches of {k}"
                if k == 1:
                    start, end = window()
                    box: list[int] = []
                    thread = threading.Thread(target=_count_into, args=(box, rb_mem.add, one, start, end))
                    thread.start()
                    thread.join()
                    keep(f"in-process ReplayBuffer, 1 thread, {tag}", box[0])
                for n in WRITERS:
                    start, end = window()
                    for q in orders[:n]:
                        q.put((start, end, k))
                    keep(
                        f"MPReplayBuffer, {n} process{'es' if n > 1 else ''}, {tag}", sum(r.get() for r in answers[:n])
                    )
                for n in WRITERS:
                    start, end = window()
                    counts = ray.get([w.add_until.remote(start, end, k) for w in writers[:n]])
                    keep(f"Ray server (1 shard), {n} actor{'s' if n > 1 else ''}, {tag}", sum(counts))
    finally:
        for q in orders:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.terminate()
        for w in writers:
            ray.kill(w)
    _table(
        "(a) transitions per second added, all writers together",
        "transitions/s",
        results,
        "in-process ReplayBuffer, 1 thread, 1 transition",
    )


def _samples(replay1: Any, replay2: Any, rb_mp: MPReplayBuffer, rb_mem: ReplayBuffer) -> None:
    sources: dict[str, Callable[[int], object]] = {
        "in-process ReplayBuffer": rb_mem.sample,
        "MPReplayBuffer (shared memory)": rb_mp.sample,
        "Ray server, 1 shard": replay1.sample,
        "Ray server, 2 shards": replay2.sample,
    }
    results: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for rows in (256, 1024):
            for name, sample in sources.items():
                sample(rows)  # warm
                t0 = time.perf_counter()
                for _ in range(SAMPLES):
                    sample(rows)
                results.setdefault(f"{name}, sample({rows})", []).append(SAMPLES / (time.perf_counter() - t0))
    _table(
        "(b) batches per second sampled by the learner (no writers)",
        "batches/s",
        results,
        "in-process ReplayBuffer, sample(256)",
    )


def main() -> None:
    try:
        ray = importlib.import_module("ray")
    except ImportError:
        _timing.REPORT.text("*bench_ray: ray is not installed (pip install 'laber[ray]'); skipped.*")
        return
    from laber.distributed import BufferSpec, launch

    if __name__ != "__main__":  # loaded by run.py from a path: Ray workers cannot import this file by name
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    _timing.REPORT.section(
        "Ray replay server (bench_ray)",
        f"One buffer of {SIZE:,} slots per shard, {os.cpu_count()} cores shared by every writer, server and the "
        f"learner; {ROUNDS} rounds of {SECONDS:g} s (adds) and {SAMPLES} calls (samples).",
    )
    started = not ray.is_initialized()
    if started:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ctx = mp.get_context("spawn")
    fill = _rows(np.random.default_rng(1), SIZE)
    rb_mem = ReplayBuffer(SIZE, ENV, rng=0)
    rb_mp = MPReplayBuffer(SIZE, ENV, ctx=ctx, rng=0)
    spec = BufferSpec(SIZE, ENV, seed=0)
    replay1 = launch(spec, 1, num_cpus=0, rng=0)
    replay2 = launch(spec, 2, num_cpus=0, rng=0)
    try:
        for rb in (rb_mem, rb_mp):
            rb.add(**fill)
        for replay in (replay1, replay2):
            for s in range(replay.shards):
                writer = replay.writer(s)
                writer.add(**fill)
                writer.flush()
        _samples(replay1, replay2, rb_mp, rb_mem)
        _adds(ray, replay1, rb_mp, rb_mem, ctx)
    finally:
        rb_mp.close()
        for replay in (replay1, replay2):
            for server in replay.servers:
                ray.kill(server)
        if started:
            ray.shutdown()


if __name__ == "__main__":
    main()
