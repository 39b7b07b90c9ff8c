"""Timing helpers shared by the benchmark scripts (not part of the package, not tests).

The machine is shared and noisy: each benchmark times the peers in the same process, interleaved round by
round, and keeps each implementation's fastest round (the round least disturbed by other processes, as
``timeit`` advises). Compare ratios, not absolute times.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def _round(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number * 1e6


def best_us(fn: Callable[[], object], *, number: int = 200, repeat: int = 7) -> float:
    """Fastest over ``repeat`` rounds of the mean time of ``number`` calls, in microseconds."""
    return interleaved({"fn": fn}, number=number, repeat=repeat)["fn"]


def interleaved(fns: dict[str, Callable[[], object]], *, number: int = 200, repeat: int = 9) -> dict[str, float]:
    """Time several implementations round-robin (so load spikes hit all alike); fastest round each, in us."""
    for fn in fns.values():
        fn()  # warm up caches and lazy initialisation
    best = dict.fromkeys(fns, float("inf"))
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeat):
            for name, fn in fns.items():
                best[name] = min(best[name], _round(fn, number))
    finally:
        if gc_was_enabled:
            gc.enable()
    return best


def report(title: str, rows: list[tuple[str, float | None]], baseline: str) -> None:
    """Print one table: name, microseconds, and the baseline's time divided by each row's (speed-up)."""
    base = dict(rows).get(baseline)
    print(f"\n{title}")
    print(f"  {'implementation':<46}{'us/call':>10}   {'speed-up vs ' + baseline}")
    for name, us in rows:
        if us is None:
            print(f"  {name:<46}{'n/a':>10}")
            continue
        ratio = f"{base / us:.2f}x" if base else "-"
        print(f"  {name:<46}{us:>10.1f}   {ratio}")
