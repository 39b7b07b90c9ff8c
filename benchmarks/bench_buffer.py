"""ReplayBuffer add and sample, side by side with cpprb 11.0.0 (and TorchRL / SB3 when installed).

1e6 slots; fields obs (4, float32), act (1, uint8), rew, next_obs (4, float32), done; batch 256.
Run: ``python benchmarks/bench_buffer.py`` (or ``make bench``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _timing import interleaved, report
from laber import ReplayBuffer

SIZE = 10**6
B = 256
CPPRB = "cpprb 11.0.0"


def env_dict() -> dict[str, dict[str, object]]:
    return {
        "obs": {"shape": 4},
        "act": {"shape": 1, "dtype": np.uint8},
        "rew": {},
        "next_obs": {"shape": 4},
        "done": {},
    }


def main() -> None:
    rng = np.random.default_rng(0)
    one = {
        "obs": rng.random(4, dtype=np.float32),
        "act": 1,
        "rew": 0.5,
        "next_obs": rng.random(4, dtype=np.float32),
        "done": 0.0,
    }
    many = {
        "obs": rng.random((B, 4), dtype=np.float32),
        "act": rng.integers(0, 2, (B, 1)).astype(np.uint8),
        "rew": rng.random((B, 1), dtype=np.float32),
        "next_obs": rng.random((B, 4), dtype=np.float32),
        "done": np.zeros((B, 1), dtype=np.float32),
    }
    ours = ReplayBuffer(SIZE, env_dict(), rng=0)
    fill = {k: np.repeat(v, SIZE // B, axis=0) for k, v in many.items()}
    ours.add(**fill)
    add1: dict[str, Callable[[], object]] = {}
    addb: dict[str, Callable[[], object]] = {}
    samp: dict[str, Callable[[], object]] = {}
    try:
        import cpprb

        theirs = cpprb.ReplayBuffer(SIZE, env_dict())
        theirs.add(**fill)
        add1[CPPRB] = lambda: theirs.add(**one)
        addb[CPPRB] = lambda: theirs.add(**many)
        samp[CPPRB] = lambda: theirs.sample(B)
    except ImportError:
        print("cpprb is not installed (pip install cpprb==11.0.0): laber alone")
    add1["laber"] = lambda: ours.add(**one)
    addb["laber"] = lambda: ours.add(**many)
    samp["laber"] = lambda: ours.sample(B)

    store = {k: np.zeros((SIZE, *np.shape(v)[1:]), dtype=np.asarray(v).dtype) for k, v in many.items()}
    pos = iter(range(1 << 62))

    def numpy_store() -> None:  # the floor: plain per-field numpy stores of one transition
        i = next(pos) % SIZE
        for k, col in store.items():
            col[i] = one[k]

    add1["plain numpy per-field stores (floor)"] = numpy_store
    report("add 1 transition", list(interleaved(add1, number=2000).items()), CPPRB)
    report(f"add {B} transitions", list(interleaved(addb, number=500).items()), CPPRB)
    report(f"sample {B}", list(interleaved(samp, number=500).items()), CPPRB)


if __name__ == "__main__":
    main()
