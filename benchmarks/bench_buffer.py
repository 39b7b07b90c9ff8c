"""ReplayBuffer add and sample, side by side with cpprb 11.0.0 (and TorchRL / SB3 when installed).

1e6 slots; fields obs (4, float32), act (1, uint8), rew, next_obs (4, float32), done; batch 256.
Run: ``python benchmarks/bench_buffer.py`` (or ``make bench``). Each table is timed round-robin in one process;
the speed-ups are per-round ratios (``_timing.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _timing import REPORT, measure, scaled, wanted
from laber import ReplayBuffer

SIZE = scaled(10**6, 10**4)
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


Fns = dict[str, Callable[[], object]]


def _torchrl(one: dict[str, object], many: dict[str, np.ndarray]) -> tuple[Fns, Fns, Fns] | None:
    """TorchRL's ReplayBuffer on an in-memory LazyTensorStorage of TensorDicts (its uniform RandomSampler)."""
    try:
        import torch
        import torchrl
        from tensordict import TensorDict
        from torchrl.data import LazyTensorStorage
        from torchrl.data import ReplayBuffer as TorchRLBuffer
    except ImportError:
        return None
    name = f"TorchRL {torchrl.__version__}"
    rb = TorchRLBuffer(storage=LazyTensorStorage(SIZE), batch_size=B)
    big = {k: torch.as_tensor(np.repeat(v, SIZE // B, axis=0)) for k, v in many.items()}
    rb.extend(TensorDict(big, batch_size=[SIZE // B * B]))
    td_many = TensorDict({k: torch.as_tensor(v) for k, v in many.items()}, batch_size=[B])
    td_one = TensorDict(
        {k: torch.as_tensor(np.asarray(v, dtype=many[k].dtype).reshape(many[k].shape[1:])) for k, v in one.items()},
        batch_size=[],
    )
    return {name: lambda: rb.add(td_one)}, {name: lambda: rb.extend(td_many)}, {name: lambda: rb.sample()}


def _sb3(one: dict[str, object], many: dict[str, np.ndarray]) -> tuple[Fns, Fns, Fns] | None:
    """SB3's ReplayBuffer (numpy storage, samples returned as torch tensors). SB3 adds one step of ``n_envs``
    environments per call, so "add 256" is one call on a buffer with ``n_envs=256``."""
    try:
        import stable_baselines3
        from gymnasium import spaces
        from stable_baselines3.common.buffers import ReplayBuffer as SB3Buffer
    except ImportError:
        return None
    name = f"SB3 {stable_baselines3.__version__}"
    obs_space = spaces.Box(-np.inf, np.inf, (4,), np.float32)
    act_space = spaces.Discrete(2)
    single = SB3Buffer(SIZE, obs_space, act_space, device="cpu", n_envs=1)
    single.full = True  # filled: only the sample and add costs matter
    vector = SB3Buffer(SIZE, obs_space, act_space, device="cpu", n_envs=B)
    vector.full = True
    o = np.asarray(one["obs"]).reshape(1, 4)
    no = np.asarray(one["next_obs"]).reshape(1, 4)
    a, r, d = np.array([[1]]), np.array([0.5]), np.array([0.0])
    infos: list[dict[str, object]] = [{}]
    infos_b: list[dict[str, object]] = [{} for _ in range(B)]
    ab = many["act"].astype(np.int64)
    rb_, db = many["rew"][:, 0], many["done"][:, 0]

    def add_one() -> None:
        single.add(o, no, a, r, d, infos)

    def add_many() -> None:
        vector.add(many["obs"], many["next_obs"], ab, rb_, db, infos_b)

    return {name: add_one}, {name: add_many}, {name: lambda: single.sample(B)}


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
    for name, fns in (
        ("TorchRL", _torchrl(one, many) if wanted("torchrl") else None),
        ("SB3", _sb3(one, many) if wanted("stable-baselines3") else None),
    ):
        if fns is None:
            print(f"{name} is not installed: no {name} rows")
            continue
        add1.update(fns[0])
        addb.update(fns[1])
        samp.update(fns[2])
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
    peers = [CPPRB, *(n for n in add1 if n.startswith(("SB3", "TorchRL"))), "plain numpy per-field stores (floor)"]
    REPORT.section(
        "Replay buffer",
        f"`benchmarks/bench_buffer.py`: {SIZE:.0e} slots of obs (4 float32), act (uint8), rew, next_obs (4 float32), "
        f"done, filled; batch {B}. SB3 adds one step of `n_envs` environments per call (add {B}: one call with "
        "`n_envs=256`) and returns torch tensors; TorchRL stores TensorDicts in a `LazyTensorStorage`.",
    )
    for title, fns, number, refs in (
        ("add 1 transition", add1, 2000, peers),
        (f"add {B} transitions", addb, 500, peers[:-1]),
        (f"sample {B}", samp, 500, peers[:-1]),
    ):
        timing = measure(fns, number=scaled(number, 5), repeat=15)
        REPORT.table(title, timing, ["laber"], refs)
        REPORT.ratio_headline(f"ReplayBuffer {title}: vs cpprb (x)", timing, CPPRB, "laber")


if __name__ == "__main__":
    main()
