"""LaBER sub-sampling, side by side with cpprb 11.0.0: ``LaBERmean(256, m=4)`` on float32 numpy priorities.

Run: ``python benchmarks/bench_laber.py`` (or ``make bench``). Prints microseconds per call and speed-ups.
"""

from __future__ import annotations

import numpy as np
from _timing import best_us, report

from laber import LaBERlazy, LaBERmax, LaBERmean

B, M = 256, 4
N = B * M


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
    prio = rng.random(N, dtype=np.float32)
    extras = _extras(rng)

    ours = LaBERmean(B, M, rng=0)

    def floor() -> None:  # the numpy floor: inverse-CDF draw of B from N
        cdf = np.cumsum(prio)
        cdf.searchsorted(rng.random(B) * cdf[-1])

    rows: list[tuple[str, float | None]] = []
    rows_x: list[tuple[str, float | None]] = []
    try:
        import cpprb

        theirs = cpprb.LaBERmean(B, M)
        rows.append(("cpprb 11.0.0 LaBERmean", best_us(lambda: theirs(priorities=prio))))
        rows_x.append(("cpprb 11.0.0 LaBERmean + 5 extras", best_us(lambda: theirs(priorities=prio, **extras))))
    except ImportError:
        rows.append(("cpprb (not installed: pip install cpprb==11.0.0)", None))
        rows_x.append(("cpprb (not installed)", None))
    rows.append(("laber LaBERmean", best_us(lambda: ours(priorities=prio))))
    rows.append(("laber LaBERlazy", best_us(lambda f=LaBERlazy(B, M, rng=0): f(priorities=prio))))
    rows.append(("laber LaBERmax", best_us(lambda f=LaBERmax(B, M, rng=0): f(priorities=prio))))
    rows.append(("numpy floor: cumsum + searchsorted", best_us(floor)))
    rows_x.append(("laber LaBERmean + 5 extras", best_us(lambda: ours(priorities=prio, **extras))))

    baseline = rows[0][0] if rows[0][1] is not None else "laber LaBERmean"
    report(f"LaBER sub-sampling of B={B} from m*B={N} float32 priorities", rows, baseline)
    report("... with five extra arrays (obs, act, rew, next_obs, done)", rows_x, rows_x[0][0])

    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)
    tprio = torch.from_numpy(prio)
    trows: list[tuple[str, float | None]] = [
        ("laber LaBERmean, numpy in", best_us(lambda: ours(priorities=prio))),
        ("laber LaBERmean, torch CPU tensor in", best_us(lambda: ours(priorities=tprio))),
    ]
    report("torch path (CPU)", trows, trows[0][0])


if __name__ == "__main__":
    main()
