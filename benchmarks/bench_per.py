"""Prioritized replay: sample of 256, and sample + update of 256 priorities, from 1e6 stored rows.

Side by side in one process, interleaved round by round (``_timing.interleaved``): laber with its numba kernels
(the ``fast`` extra) and with numpy only (``laber.set_numba(False)``), cpprb 11.0.0 and, where they import,
Tianshou, TorchRL and flashbax. Rows: obs (4 float32), act, rew, next_obs (4 float32), done. Every
buffer holds 1e6 rows with random priorities. Compare the ratios, not the absolute times.

Run: ``python benchmarks/bench_per.py`` (``make bench`` installs cpprb). ``--quick`` times fewer rounds.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from _timing import interleaved, report

N = 1_000_000
B = 256

Fns = dict[str, Callable[[], object]]


def _data(rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {
        "obs": rng.random((N, 4), dtype=np.float32),
        "act": rng.integers(0, 2, N).astype(np.float32),
        "rew": rng.random(N, dtype=np.float32),
        "next_obs": rng.random((N, 4), dtype=np.float32),
        "done": np.zeros(N, dtype=np.float32),
    }


ENV = {"obs": {"shape": 4}, "act": {}, "rew": {}, "next_obs": {"shape": 4}, "done": {}}


def laber_fns(data: dict[str, np.ndarray], prio: np.ndarray) -> Fns:
    """laber as installed: numba kernels when numba imports (the ``fast`` extra), else numpy."""
    import laber
    from laber import PrioritizedReplayBuffer

    rb = PrioritizedReplayBuffer(N, ENV, alpha=0.6, eps=1e-4, rng=0)
    rb.add(priorities=prio, **data)
    new = np.random.default_rng(1).random(B)

    def su() -> None:
        s = rb.sample(B, beta=0.4)
        rb.update_priorities(s["indexes"], new)

    name = "laber (numba)" if laber.numba_enabled() else "laber (numpy)"
    return {name: lambda: rb.sample(B, beta=0.4), name + " s+u": su}


def laber_numpy_fns(data: dict[str, np.ndarray], prio: np.ndarray) -> Fns:
    """laber with numpy only (``laber.set_numba(False)`` around each call): the core without the extra."""
    import laber
    from laber import PrioritizedReplayBuffer

    if not laber.numba_enabled():
        return {}  # already timed as "laber (numpy)"
    rb = PrioritizedReplayBuffer(N, ENV, alpha=0.6, eps=1e-4, rng=0)
    rb.add(priorities=prio, **data)
    new = np.random.default_rng(1).random(B)

    def s() -> object:
        laber.set_numba(False)
        try:
            return rb.sample(B, beta=0.4)
        finally:
            laber.set_numba(None)

    def su() -> None:
        laber.set_numba(False)
        try:
            out = rb.sample(B, beta=0.4)
            rb.update_priorities(out["indexes"], new)
        finally:
            laber.set_numba(None)

    return {"laber (numpy)": s, "laber (numpy) s+u": su}


def cpprb_fns(data: dict[str, np.ndarray], prio: np.ndarray) -> Fns:
    from cpprb import PrioritizedReplayBuffer

    rb = PrioritizedReplayBuffer(N, ENV, alpha=0.6, eps=1e-4)
    rb.add(priorities=prio, **data)
    new = np.random.default_rng(1).random(B)

    def su() -> None:
        s = rb.sample(B, beta=0.4)
        rb.update_priorities(s["indexes"], new)

    return {"cpprb 11.0.0": lambda: rb.sample(B, beta=0.4), "cpprb 11.0.0 s+u": su}


def tianshou_fns(data: dict[str, np.ndarray], prio: np.ndarray) -> Fns:
    from tianshou.data import Batch, PrioritizedReplayBuffer

    rb = PrioritizedReplayBuffer(N, alpha=0.6, beta=0.4)
    done = np.zeros(N, dtype=bool)
    batch = Batch(
        obs=data["obs"],
        act=data["act"],
        rew=data["rew"],
        terminated=done,
        truncated=done,
        done=done,
        obs_next=data["next_obs"],
    )
    rb.set_batch(batch)  # fill storage directly: 1e6 single adds would take minutes
    rb._size, rb._index = N, 0
    rb.update_weight(np.arange(N), prio)
    new = np.random.default_rng(1).random(B)

    def su() -> None:
        _, idx = rb.sample(B)
        rb.update_weight(idx, new)

    return {"tianshou": lambda: rb.sample(B), "tianshou s+u": su}


def torchrl_fns(data: dict[str, np.ndarray], prio: np.ndarray) -> Fns:
    import torch
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, TensorDictPrioritizedReplayBuffer

    rb = TensorDictPrioritizedReplayBuffer(
        alpha=0.6, beta=0.4, storage=LazyTensorStorage(N), batch_size=B, priority_key="td_error"
    )
    td = TensorDict({k: torch.from_numpy(v) for k, v in data.items()}, batch_size=[N])
    td["td_error"] = torch.from_numpy(prio)
    rb.extend(td)
    new = torch.rand(B)

    def su() -> None:
        s = rb.sample()
        rb.update_priority(s["index"], new)

    return {"torchrl": lambda: rb.sample(), "torchrl s+u": su}


def flashbax_fns(data: dict[str, np.ndarray], prio: np.ndarray) -> Fns:
    import flashbax as fbx
    import jax
    import jax.numpy as jnp

    buf = fbx.make_prioritised_flat_buffer(
        max_length=N, min_length=1, sample_batch_size=B, add_sequences=True, add_batch_size=None, priority_exponent=0.6
    )
    state = buf.init({k: jnp.zeros(v.shape[1:], v.dtype) for k, v in data.items()})
    state = jax.jit(buf.add, donate_argnums=0)(state, {k: jnp.asarray(v) for k, v in data.items()})
    sample = jax.jit(buf.sample)
    set_priorities = jax.jit(buf.set_priorities, donate_argnums=0)
    state = set_priorities(state, jnp.arange(N), jnp.asarray(prio, jnp.float32))
    box = {"state": state, "key": jax.random.PRNGKey(0)}
    new = jnp.asarray(np.random.default_rng(1).random(B), jnp.float32)

    def s() -> object:
        box["key"], key = jax.random.split(box["key"])
        out = sample(box["state"], key)
        jax.block_until_ready(out)
        return out

    def su() -> None:
        out = s()
        box["state"] = set_priorities(box["state"], out.indices, new)
        jax.block_until_ready(box["state"])

    return {"flashbax": s, "flashbax s+u": su}


PEERS: dict[str, Callable[[dict[str, np.ndarray], np.ndarray], Fns]] = {
    "laber": laber_fns,
    "laber (numpy)": laber_numpy_fns,
    "cpprb 11.0.0": cpprb_fns,
    "tianshou": tianshou_fns,
    "torchrl": torchrl_fns,
    "flashbax": flashbax_fns,
}


def main() -> None:
    quick = "--quick" in sys.argv
    rng = np.random.default_rng(0)
    data = _data(rng)
    prio = rng.random(N) + 0.01
    fns: Fns = {}
    missing: dict[str, str] = {}
    for name, make in PEERS.items():
        try:
            fns.update(make(data, prio))
        except Exception as exc:  # a peer that is not installed or does not load is reported, not fatal
            missing[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90] if str(exc) else ''}"
    times = interleaved(fns, number=20 if quick else 100, repeat=3 if quick else 7)
    names = ["laber (numba)", "laber (numpy)", *list(PEERS)[2:]]
    report(
        f"PER sample of {B} from {N:.0e} rows (alpha 0.6, beta 0.4)",
        [(n, times.get(n)) for n in names],
        baseline="cpprb 11.0.0",
    )
    report(
        f"PER sample of {B} + update_priorities of {B}",
        [(n + " s+u", times.get(n + " s+u")) for n in names],
        baseline="cpprb 11.0.0 s+u",
    )
    for name, why in missing.items():
        print(f"  {name}: not timed ({why})")


if __name__ == "__main__":
    main()
