"""LaBER sub-sampling, side by side with cpprb 11.0.0: ``LaBERmean(256, m=4)`` on float32 numpy priorities.

Run: ``python benchmarks/bench_laber.py`` (or ``make bench``). laber is timed twice when numba is installed:
"numba" with its compiled kernels (``laber.set_numba(True)``), "numpy" with numpy only (``set_numba(False)``
around each call, which costs about 0.2 us). Every table is timed round-robin in one process; the speed-ups
are per-round ratios (``_timing.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _timing import REPORT, Fns, Timing, measure, scaled
from laber import LaBERlazy, LaBERmax, LaBERmean, set_numba

B, M = 256, 4
N = B * M
CPPRB = "cpprb 11.0.0"


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
    numba = _numba_available()
    try:
        import cpprb

        peer: dict[str, Callable[..., dict[str, np.ndarray]]] = {
            "mean": cpprb.LaBERmean(B, M),
            "lazy": cpprb.LaBERlazy(B, M),
            "max": cpprb.LaBERmax(B, M),
        }
    except ImportError:
        print("cpprb is not installed (pip install cpprb==11.0.0): laber alone")
        peer = {}

    def table(title: str, ours: Callable[[], object], theirs: Callable[[], object] | None, note: str = "") -> Timing:
        fns: Fns = {}
        if numba:
            fns["laber (numba)"] = ours
        fns["laber (numpy)"] = _numpy_only(ours) if numba else ours
        if theirs is not None:
            fns[CPPRB] = theirs
        timing = measure(fns, number=scaled(300, 5), repeat=21)
        REPORT.table(title, timing, ["laber (numba)", "laber (numpy)"], [CPPRB], note=note)
        return timing

    REPORT.section(
        "LaBER sub-sampling",
        f"`benchmarks/bench_laber.py`: `B = {B}` of `m*B = {N}` float32 numpy priorities (16 vectors, cycled), "
        "laber with its numba kernels and with numpy only, against cpprb 11.0.0's samplers of the same variant.",
    )
    ours_mean, lazy, mx = LaBERmean(B, M, rng=0), LaBERlazy(B, M, rng=0), LaBERmax(B, M, rng=0)
    shuffled = LaBERmean(B, M, rng=0, shuffle=True)
    mean_peer = peer.get("mean")
    bare = table(
        "LaBERmean(256, m=4), uniform(0, 1) priorities",
        lambda: ours_mean(priorities=p()),
        None if mean_peer is None else lambda: mean_peer(priorities=p()),
    )
    more = table(
        "LaBERmean(256, m=4) with five extra arrays (obs, act, rew, next_obs, done)",
        lambda: ours_mean(priorities=p(), **extras),
        None if mean_peer is None else lambda: mean_peer(priorities=p(), **extras),
    )
    for label, timing in (("", bare), (" with five extra arrays", more)):
        if "laber (numba)" in timing:
            REPORT.headline(f"LaBERmean(256, m=4){label}, numba: us per call", timing.median("laber (numba)"))
            fastest = timing.best("laber (numba)")
            REPORT.headline(f"LaBERmean(256, m=4){label}, numba: us per call, fastest round", fastest)
            REPORT.ratio_headline(f"LaBERmean(256, m=4){label}, numba: vs cpprb (x)", timing, CPPRB, "laber (numba)")
        REPORT.ratio_headline(f"LaBERmean(256, m=4){label}, numpy only: vs cpprb (x)", timing, CPPRB, "laber (numpy)")
    table(
        "LaBERmean(256, m=4), heavy-tailed priorities |t(2)|",
        lambda: ours_mean(priorities=h()),
        None if mean_peer is None else lambda: mean_peer(priorities=h()),
    )
    for name, ours, key in (("LaBERlazy", lazy, "lazy"), ("LaBERmax", mx, "max")):
        theirs = peer.get(key)
        table(
            f"{name}(256, m=4)",
            lambda ours=ours: ours(priorities=p()),
            None if theirs is None else lambda theirs=theirs: theirs(priorities=p()),
        )
    table(
        "LaBERmean(256, m=4, shuffle=True): draw order instead of ascending (cpprb: its only order)",
        lambda: shuffled(priorities=p()),
        None if mean_peer is None else lambda: mean_peer(priorities=p()),
    )

    def floor() -> None:  # inverse-CDF draw of B from N with numpy: no validation, no weights
        x = p()
        cdf = np.cumsum(x)
        cdf.searchsorted(rng.random(B) * cdf[-1])

    timing = measure(
        {"laber LaBERmean": lambda: ours_mean(priorities=p()), "numpy cumsum + searchsorted": floor},
        number=scaled(300, 5),
        repeat=21,
    )
    REPORT.table(
        "LaBERmean against numpy's bare inverse-CDF draw (no checks, no weights)",
        timing,
        ["laber LaBERmean"],
        ["numpy cumsum + searchsorted"],
    )

    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    tprios = [torch.from_numpy(x) for x in prios]
    bf = [x.to(torch.bfloat16) for x in tprios]
    tp, tb = cycle(tprios), cycle(bf)  # type: ignore[arg-type]
    base = "numpy float32 priorities"
    timing = measure(
        {
            base: lambda: ours_mean(priorities=p()),
            "torch float32 CPU tensor (numpy view)": lambda: ours_mean(priorities=tp()),
            "torch bfloat16 CPU tensor (torch ops)": lambda: ours_mean(priorities=tb()),
        },
        number=scaled(300, 5),
        repeat=15,
    )
    REPORT.table(
        "LaBERmean on torch tensors on the CPU (numba when installed)",
        timing,
        ["torch float32 CPU tensor (numpy view)", "torch bfloat16 CPU tensor (torch ops)"],
        [base],
        kind="cost",
    )


if __name__ == "__main__":
    main()
