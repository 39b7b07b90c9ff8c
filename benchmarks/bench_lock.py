"""What the thread-safety lock costs a single-threaded user.

Every public method of laber's buffers holds the buffer's ``threading.RLock`` (the concurrency contract in the
README). This times the same calls on two identical buffers in one process, interleaved round by round: one as
shipped, and one whose lock is swapped for a no-op context manager (a benchmark-only swap, never done in the
library). The ratio is the lock's cost; the issue's bound is 10% on ``add`` of one transition.

Buffers: 1e6 slots; obs (4 float32), act (uint8), rew, next_obs (4 float32), done; batch 256.
Run: ``python benchmarks/bench_lock.py`` (or ``make bench``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import REPORT, measure, scaled
from laber import PrioritizedReplayBuffer, ReplayBuffer

SIZE = scaled(10**6, 2**15)
B = 256
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 4},
    "act": {"dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 4},
    "done": {},
}


class _NoLock(contextlib.AbstractContextManager[None]):
    """A context manager that does nothing: the buffer without its lock."""

    def __exit__(self, *exc: object) -> None:
        return None


def _pair(cls: type[ReplayBuffer], fill: dict[str, np.ndarray]) -> tuple[ReplayBuffer, ReplayBuffer]:
    locked, unlocked = cls(SIZE, ENV, rng=0), cls(SIZE, ENV, rng=0)
    unlocked._lock = _NoLock()  # type: ignore[assignment]  # benchmark only: measure the lock by removing it
    for rb in (locked, unlocked):
        rb.add(**fill)
    return locked, unlocked


def main() -> None:
    rng = np.random.default_rng(0)
    one = {"obs": rng.random(4, dtype=np.float32), "act": 1, "rew": 0.5, "next_obs": rng.random(4, dtype=np.float32)}
    one["done"] = 0.0
    many = {
        "obs": rng.random((B, 4), dtype=np.float32),
        "act": rng.integers(0, 2, (B, 1)).astype(np.uint8),
        "rew": rng.random((B, 1), dtype=np.float32),
        "next_obs": rng.random((B, 4), dtype=np.float32),
        "done": np.zeros((B, 1), dtype=np.float32),
    }
    fill = {k: np.repeat(v, 64, axis=0) for k, v in many.items()}
    rb, bare = _pair(ReplayBuffer, fill)
    per, per_bare = _pair(PrioritizedReplayBuffer, fill)
    idx = np.arange(B, dtype=np.int64)
    prio = rng.random(B)

    rows: list[tuple[str, Callable[[], object], Callable[[], object], int]] = [
        ("ReplayBuffer.add(1 transition)", lambda: rb.add(**one), lambda: bare.add(**one), 3000),
        (f"ReplayBuffer.add({B} transitions)", lambda: rb.add(**many), lambda: bare.add(**many), 1000),
        (f"ReplayBuffer.sample({B})", lambda: rb.sample(B), lambda: bare.sample(B), 1000),
        ("PrioritizedReplayBuffer.add(1)", lambda: per.add(**one), lambda: per_bare.add(**one), 3000),
        (f"PrioritizedReplayBuffer.sample({B})", lambda: per.sample(B), lambda: per_bare.sample(B), 500),
        (
            f"PrioritizedReplayBuffer.update_priorities({B})",
            lambda: per.update_priorities(idx, prio),
            lambda: per_bare.update_priorities(idx, prio),
            1000,
        ),
    ]
    REPORT.section(
        "Locks",
        "`benchmarks/bench_lock.py`: the same calls on two identical buffers, one as shipped and one whose lock is "
        "swapped for a no-op (a benchmark-only swap): time with the lock / time without it (1.00x: free; the "
        "bound for `add` of one transition is 1.10x).",
    )
    for title, with_lock, without, number in rows:
        timing = measure({"without lock": without, "with lock (shipped)": with_lock}, number=number, repeat=15)
        REPORT.table(title, timing, ["with lock (shipped)"], ["without lock"], kind="cost")
        if title.startswith("ReplayBuffer.add(1"):
            REPORT.ratio_headline(f"lock cost, {title} (x)", timing, "with lock (shipped)", "without lock")


if __name__ == "__main__":
    main()
