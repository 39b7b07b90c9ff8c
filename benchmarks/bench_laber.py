"""LaBER sub-sampling, side by side with cpprb 11.0.0: ``LaBERmean(256, m=4)`` on float32 numpy priorities.

Run: ``python benchmarks/bench_laber.py`` (or ``make bench``). Prints microseconds per call and speed-ups,
each table timed round-robin in one process (see ``_timing.py``). laber is timed twice when numba is installed:
"numba" with its compiled kernels (``laber.set_numba(True)``), "numpy" with numpy only (``set_numba(False)``
around each call, which costs about 0.2 us).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _timing import interleaved, report
from laber import LaBERlazy, LaBERmax, LaBERmean, set_numba

B, M = 256, 4
N = B * M
CPPRB = "cpprb 11.0.0 LaBERmean"


def _numba_available() -> bool:
    try:
        set_numba(True)
    except ModuleNotFoundError:
        print("numba is not installed (pip install 'laber[fast]'): laber with numpy only")
        return False
    return True


def _numpy_only(fn: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        set_numba(False)
        try:
            return fn()
        finally:
            set_numba(True)

    return run


def _extras(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "obs": rng.random((N, 4), dtype=np.float32),
        "act": rng.integers(0, 2, (N, 1)).astype(np.uint8),
        "rew": rng.random((N, 1), dtype=np.float32),
        "next_obs": rng.random((N, 4), dtype=np.float32),
        "done": rng.integers(0, 2, (N, 1)).astype(np.float32),
    }


def _table(title: str, fns: dict[str, Callable[[], object]], baseline: str) -> None:
    times = interleaved(fns)
    report(title, list(times.items()), baseline if baseline in times else next(iter(times)))


def main() -> None:
    rng = np.random.default_rng(0)
    # 16 different priority vectors, cycled, so branch predictors cannot learn one input
    prios = [rng.random(N, dtype=np.float32) for _ in range(16)]
    heavy = [np.abs(rng.standard_t(2, N)).astype(np.float32) for _ in range(16)]
    extras = _extras(rng)
    counter = iter(range(1 << 62))

    def cycle(ps: list[np.ndarray]) -> Callable[[], np.ndarray]:
        return lambda: ps[next(counter) & 15]

    p, h = cycle(prios), cycle(heavy)
    ours = LaBERmean(B, M, rng=0)
    lazy, mx, shuffled = LaBERlazy(B, M, rng=0), LaBERmax(B, M, rng=0), LaBERmean(B, M, rng=0, shuffle=True)

    def floor() -> None:  # the numpy floor of the issue: inverse-CDF draw of B from N
        x = p()
        cdf = np.cumsum(x)
        cdf.searchsorted(rng.random(B) * cdf[-1])

    fns: dict[str, Callable[[], object]] = {}
    fns_x: dict[str, Callable[[], object]] = {}
    fns_h: dict[str, Callable[[], object]] = {}
    try:
        import cpprb

        theirs = cpprb.LaBERmean(B, M)
        their_lazy, their_max = cpprb.LaBERlazy(B, M), cpprb.LaBERmax(B, M)
        fns[CPPRB] = lambda: theirs(priorities=p())
        fns["cpprb 11.0.0 LaBERlazy"] = lambda: their_lazy(priorities=p())
        fns["cpprb 11.0.0 LaBERmax"] = lambda: their_max(priorities=p())
        fns_x[CPPRB] = lambda: theirs(priorities=p(), **extras)
        fns_x["cpprb 11.0.0 LaBERlazy"] = lambda: their_lazy(priorities=p(), **extras)
        fns_x["cpprb 11.0.0 LaBERmax"] = lambda: their_max(priorities=p(), **extras)
        fns_h[CPPRB] = lambda: theirs(priorities=h())
    except ImportError:
        print("cpprb is not installed (pip install cpprb==11.0.0): laber alone")

    def both(table: dict[str, Callable[[], object]], name: str, fn: Callable[[], object]) -> None:
        if numba:
            table[f"laber {name} (numba)"] = fn
        table[f"laber {name} (numpy)"] = _numpy_only(fn) if numba else fn

    numba = _numba_available()
    both(fns, "LaBERmean", lambda: ours(priorities=p()))
    both(fns, "LaBERlazy", lambda: lazy(priorities=p()))
    both(fns, "LaBERmax", lambda: mx(priorities=p()))
    both(fns, "LaBERmean shuffle=True", lambda: shuffled(priorities=p()))
    fns["numpy floor: cumsum + searchsorted"] = floor
    both(fns_x, "LaBERmean", lambda: ours(priorities=p(), **extras))
    both(fns_x, "LaBERlazy", lambda: lazy(priorities=p(), **extras))
    both(fns_x, "LaBERmax", lambda: mx(priorities=p(), **extras))
    both(fns_h, "LaBERmean", lambda: ours(priorities=h()))

    _table(f"Sub-sample B={B} of m*B={N} float32 priorities, uniform(0, 1)", fns, CPPRB)
    _table("... with five extra arrays (obs, act, rew, next_obs, done)", fns_x, CPPRB)
    _table("... heavy-tailed priorities |t(2)|", fns_h, CPPRB)

    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    tprios = [torch.from_numpy(x) for x in prios]
    tp = cycle(tprios)  # type: ignore[arg-type]
    bf = [x.to(torch.bfloat16) for x in tprios]
    tb = cycle(bf)  # type: ignore[arg-type]
    _table(
        "torch tensors on the CPU (numba when installed)",
        {
            "laber LaBERmean, numpy float32": lambda: ours(priorities=p()),
            "laber LaBERmean, torch float32 (numpy view)": lambda: ours(priorities=tp()),
            "laber LaBERmean, torch bfloat16 (torch ops)": lambda: ours(priorities=tb()),
        },
        "laber LaBERmean, numpy float32",
    )


if __name__ == "__main__":
    main()
