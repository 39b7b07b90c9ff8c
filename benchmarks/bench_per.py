"""Prioritized replay: sample of 256, and sample + update of 256 priorities, from 1e6 stored rows.

Side by side in one process, interleaved round by round (``_timing.interleaved``): laber with its numba kernels
(the ``fast`` extra) and with numpy only (``laber.set_numba(False)``), cpprb 11.0.0 and, where they import,
Tianshou, TorchRL and flashbax. Rows: obs (4 float32), act, rew, next_obs (4 float32), done. Every
buffer holds 1e6 rows with random priorities. Compare the ratios, not the absolute times.

Run: ``python benchmarks/bench_per.py`` (``make bench`` installs cpprb). ``--quick``: a smoke test (1e4 rows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from _timing import REPORT, Timing, measure, peer_name, scaled, wanted

N = scaled(1_000_000, 10_000)
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

    name = peer_name("tianshou", "Tianshou")
    return {name: lambda: rb.sample(B), name + " s+u": su}


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

    name = peer_name("torchrl", "TorchRL")
    return {name: lambda: rb.sample(), name + " s+u": su}


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

    name = peer_name("flashbax") + " (jax, CPU)"
    return {name: s, name + " s+u": su}


PEERS: dict[str, Callable[[dict[str, np.ndarray], np.ndarray], Fns]] = {
    "laber": laber_fns,
    "laber (numpy)": laber_numpy_fns,
    "cpprb 11.0.0": cpprb_fns,
    "tianshou": tianshou_fns,
    "torchrl": torchrl_fns,
    "flashbax": flashbax_fns,
}


def main() -> None:
    rng = np.random.default_rng(0)
    data = _data(rng)
    prio = rng.random(N) + 0.01
    fns: Fns = {}
    missing: dict[str, str] = {}
    for name, make in PEERS.items():
        if name not in ("laber", "laber (numpy)") and not wanted(name.split()[0]):
            continue
        try:
            fns.update(make(data, prio))
        except Exception as exc:  # a peer that is not installed or does not load is reported, not fatal
            missing[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90] if str(exc) else ''}"
    timing = measure(fns, number=scaled(100, 5), repeat=15)
    ours = ["laber (numba)", "laber (numpy)"]
    peers = [n for n in timing.rounds if n.split(" s+u")[0] not in ours and not n.endswith(" s+u")]
    notes = "\n".join(f"* {name}: not timed ({why})" for name, why in missing.items())
    REPORT.section(
        "Prioritized replay",
        f"`benchmarks/bench_per.py`: {N:.0e} rows of obs (4), act, rew, next_obs (4), done with random priorities; "
        f"batch {B}; alpha 0.6, beta 0.4; every implementation in one round-robin.",
    )
    REPORT.table(f"PER sample of {B} from {N:.0e} rows", _only(timing, lambda n: not n.endswith(" s+u")), ours, peers)
    REPORT.ratio_headline(f"PER sample({B}), numba: vs cpprb (x)", timing, "cpprb 11.0.0", "laber (numba)")
    REPORT.ratio_headline(
        f"PER sample({B}) + update_priorities, numba: vs cpprb (x)", timing, "cpprb 11.0.0 s+u", "laber (numba) s+u"
    )
    REPORT.table(
        f"PER sample of {B} + update_priorities of {B}",
        _only(timing, lambda n: n.endswith(" s+u")),
        [n + " s+u" for n in ours],
        [n + " s+u" for n in peers],
        note=notes,
    )


def _only(timing: Timing, keep: Callable[[str], bool]) -> Timing:
    return Timing({name: rounds for name, rounds in timing.rounds.items() if keep(name)})


if __name__ == "__main__":
    main()
