"""Memory of a full buffer, per library: resident memory a buffer of ``ROWS`` transitions adds to its process.

Each buffer is built in a fresh child process (``python bench_memory.py --child NAME ROWS``): the child imports
the library and makes the rows first, reads its resident set size (``/proc/self/statm``), builds and fills the
buffer, collects garbage and reads it again; the difference is the buffer's memory. Rows: obs (4 float32), act
(uint8), rew, next_obs (4 float32), done: 41 bytes of payload per transition, one episode (so ``next_of``
variants store each observation once). The table gives the memory and its ratio to the payload (1.00x: not one
byte more than the data).

Run: ``python benchmarks/bench_memory.py`` (or ``make bench``; ``--quick``: 1e4 rows, laber and cpprb).
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 4},
    "act": {"shape": 1, "dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 4},
    "done": {},
}
PAYLOAD = 4 * 4 + 1 + 4 + 4 * 4 + 4  # bytes per transition


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _data(rows: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = rng.random((rows + 1, 4), dtype=np.float32)
    return {
        "obs": obs[:-1],
        "act": rng.integers(0, 2, (rows, 1), dtype=np.uint8),
        "rew": rng.random((rows, 1), dtype=np.float32),
        "next_obs": obs[1:],
        "done": np.zeros((rows, 1), np.float32),
    }


# Each builder: (import the library) -> a function that builds and fills a buffer from the rows.
def _laber(kind: str) -> Callable[[dict[str, np.ndarray]], Any]:
    import laber

    def build(data: dict[str, np.ndarray]) -> Any:
        rows = data["obs"].shape[0]
        if kind == "per":
            rb: Any = laber.PrioritizedReplayBuffer(rows, ENV, rng=0)
        elif kind == "next_of":
            rb = laber.ReplayBuffer(rows, {k: v for k, v in ENV.items() if k != "next_obs"}, next_of="obs", rng=0)
        else:
            rb = laber.ReplayBuffer(rows, ENV, rng=0)
        rb.add(**data)
        return rb

    return build


def _cpprb(kind: str) -> Callable[[dict[str, np.ndarray]], Any]:
    import cpprb

    def build(data: dict[str, np.ndarray]) -> Any:
        rows = data["obs"].shape[0]
        if kind == "per":
            rb = cpprb.PrioritizedReplayBuffer(rows, ENV)
        elif kind == "next_of":
            rb = cpprb.ReplayBuffer(rows, {k: v for k, v in ENV.items() if k != "next_obs"}, next_of="obs")
        else:
            rb = cpprb.ReplayBuffer(rows, ENV)
        rb.add(**data)
        return rb

    return build


def _torchrl(kind: str) -> Callable[[dict[str, np.ndarray]], Any]:
    import torch
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    def build(data: dict[str, np.ndarray]) -> Any:
        rows = data["obs"].shape[0]
        rb = ReplayBuffer(storage=LazyTensorStorage(rows))
        rb.extend(TensorDict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}, [rows]))
        return rb

    return build


def _sb3(kind: str) -> Callable[[dict[str, np.ndarray]], Any]:
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    def build(data: dict[str, np.ndarray]) -> Any:
        rows = data["obs"].shape[0]
        rb = ReplayBuffer(
            rows,
            spaces.Box(-np.inf, np.inf, (4,), np.float32),
            spaces.Discrete(2),
            device="cpu",
            optimize_memory_usage=kind == "next_of",
            handle_timeout_termination=kind != "next_of",  # SB3 refuses both at once
        )
        # SB3 allocates with np.zeros (pages untouched until written): write every slot, as a full buffer has.
        rb.observations[:, 0] = data["obs"]
        if not rb.optimize_memory_usage:
            rb.next_observations[:, 0] = data["next_obs"]
        rb.actions[:, 0] = data["act"]
        rb.rewards[:, 0] = data["rew"][:, 0]
        rb.dones[:, 0] = data["done"][:, 0]
        if rb.handle_timeout_termination:
            rb.timeouts[:] = 0.5
            rb.timeouts[:] = 0.0
        rb.full = True
        return rb

    return build


def _tianshou(kind: str) -> Callable[[dict[str, np.ndarray]], Any]:
    from tianshou.data import Batch, ReplayBuffer

    def build(data: dict[str, np.ndarray]) -> Any:
        rows = data["obs"].shape[0]
        done = np.zeros(rows, dtype=bool)
        rb = ReplayBuffer(rows)
        rb.set_batch(
            Batch(
                obs=data["obs"].copy(),
                act=data["act"][:, 0].copy(),
                rew=data["rew"][:, 0].copy(),
                terminated=done,
                truncated=done.copy(),
                done=done.copy(),
                obs_next=data["next_obs"].copy(),
            )
        )
        return rb

    return build


def _flashbax(kind: str) -> Callable[[dict[str, np.ndarray]], Any]:
    import flashbax as fbx
    import jax
    import jax.numpy as jnp

    def build(data: dict[str, np.ndarray]) -> Any:
        rows = data["obs"].shape[0]
        buf = fbx.make_flat_buffer(max_length=rows, min_length=1, sample_batch_size=32, add_sequences=True)
        state = buf.init({k: jnp.zeros(v.shape[1:], v.dtype) for k, v in data.items()})
        state = jax.jit(buf.add, donate_argnums=0)(state, {k: jnp.asarray(v) for k, v in data.items()})
        return jax.block_until_ready(state)

    return build


# name -> (package, builder, kind)
BUFFERS: dict[str, tuple[str, Callable[[str], Callable[[dict[str, np.ndarray]], Any]], str]] = {
    "laber ReplayBuffer": ("laber", _laber, "plain"),
    'laber ReplayBuffer(next_of="obs")': ("laber", _laber, "next_of"),
    "laber PrioritizedReplayBuffer": ("laber", _laber, "per"),
    "cpprb ReplayBuffer": ("cpprb", _cpprb, "plain"),
    'cpprb ReplayBuffer(next_of="obs")': ("cpprb", _cpprb, "next_of"),
    "cpprb PrioritizedReplayBuffer": ("cpprb", _cpprb, "per"),
    "TorchRL ReplayBuffer(LazyTensorStorage)": ("torchrl", _torchrl, "plain"),
    "SB3 ReplayBuffer": ("stable-baselines3", _sb3, "plain"),
    "SB3 ReplayBuffer(optimize_memory_usage=True)": ("stable-baselines3", _sb3, "next_of"),
    "Tianshou ReplayBuffer": ("tianshou", _tianshou, "plain"),
    "flashbax flat buffer (jax, CPU)": ("flashbax", _flashbax, "plain"),
}


def child(name: str, rows: int) -> None:
    _, make, kind = BUFFERS[name]
    build = make(kind)
    data = _data(rows)
    warm = build(_data(100))  # first-use allocations (jit, numba, caches) out of the measurement
    del warm
    gc.collect()
    before = _rss()
    rb = build(data)
    gc.collect()
    print(_rss() - before)
    del rb


def main() -> None:
    from _timing import QUICK, REPORT, version, wanted

    rows = 10**4 if QUICK else 10**6
    here = os.path.abspath(__file__)
    lines = [
        f"**Resident memory of a full buffer of {rows:.0e} transitions** ({PAYLOAD} bytes of payload each: "
        f"{rows * PAYLOAD / 2**20:.1f} MiB)",
        "",
        "| buffer | version | MiB | bytes per transition | / payload |",
        "|---|---|---|---|---|",
    ]
    REPORT.section(
        "Memory of a full buffer",
        "`benchmarks/bench_memory.py`: each buffer built and filled in a fresh process; the resident memory it "
        "adds (after the library is imported and the rows made). `next_of` variants store each observation "
        "once (one episode); SB3's `optimize_memory_usage=True` does the same (without timeout handling, which "
        "SB3 does not allow with it).",
    )
    for name, (package, _, _) in BUFFERS.items():
        if package != "laber" and not wanted(package):
            continue
        if version(package) is None:
            print(f"  {name}: {package} is not installed")
            continue
        proc = subprocess.run(
            [sys.executable, here, "--child", name, str(rows)], capture_output=True, text=True, timeout=600
        )
        last = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        if proc.returncode != 0 or not last or not last[0].lstrip("-").isdigit():
            why = (proc.stderr.strip().splitlines() or ["no output"])[-1][:100]
            print(f"  {name}: failed ({why})")
            lines.append(f"| {name} | {version(package)} | failed: {why} | | |")
            continue
        used = int(last[0])
        per_row = used / rows
        print(f"  {name:<48}{used / 2**20:>9.1f} MiB {per_row:>7.1f} B/row {per_row / PAYLOAD:>6.2f}x")
        lines.append(f"| {name} | {version(package)} | {used / 2**20:.1f} | {per_row:.1f} | {per_row / PAYLOAD:.2f}x |")
    REPORT.parts.append("\n".join(lines) + "\n")


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        main()
