"""Timing helpers shared by the benchmark scripts (not part of the package, not tests)."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def best_us(fn: Callable[[], object], *, number: int = 200, repeat: int = 7) -> float:
    """Median over ``repeat`` rounds of the mean time of ``number`` calls, in microseconds.

    The median of means resists the noise of a shared machine; compare peers measured in the same run.
    """
    fn()  # warm up caches and lazy initialisation
    rounds = []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            rounds.append((time.perf_counter() - t0) / number * 1e6)
    finally:
        if gc_was_enabled:
            gc.enable()
    rounds.sort()
    return rounds[len(rounds) // 2]


def report(title: str, rows: list[tuple[str, float | None]], baseline: str) -> None:
    """Print one table: name, microseconds, and the baseline's time divided by each row's (speed-up)."""
    base = dict(rows).get(baseline)
    print(f"\n{title}")
    print(f"  {'implementation':<44}{'us/call':>10}{'x vs ' + baseline:>22}")
    for name, us in rows:
        if us is None:
            print(f"  {name:<44}{'n/a':>10}")
            continue
        ratio = f"{base / us:.2f}" if base else "-"
        print(f"  {name:<44}{us:>10.1f}{ratio:>22}")
