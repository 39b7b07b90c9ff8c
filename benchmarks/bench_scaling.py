"""How cost grows: the same operations as the buffer grows (1e3 to 1e7 rows) and as the batch grows (32 to 4096).

Part 1, buffer size: for 1e3, 1e4, 1e5, 1e6 and 1e7 stored rows of obs (4 float32), act (uint8), rew, next_obs
(4 float32), done, each library's uniform ``sample(256)``, prioritized ``sample(256)``, ``update_priorities`` of
256 and ``add`` of 256 rows to the full buffer. laber and one peer are built at a time and timed round-robin
together (so each speed-up is a per-round ratio between calls that ran at the same time), then freed: the
largest size holds about 1 GB per prioritized buffer, and only two exist at once. Peers: cpprb, TorchRL (its
``LazyTensorStorage``; its prioritized sampler needs a C++ extension that may not load), SB3 (uniform only; one
call adds a step of ``n_envs = 256`` environments), Tianshou (its ``add`` takes one transition per call: not
timed) and flashbax (jax on the CPU), each where it installs.

Part 2, batch size: ``LaBERmean(B, m)`` on ``m*B`` float32 priorities for ``B`` from 32 to 4096 and ``m`` from 1
to 16, against cpprb's ``LaBERmean`` (the only peer with LaBER).

Figures (``run.py --figures DIR``): ``bench-scaling-size.png`` and ``bench-scaling-batch.png``, log-log.
Run: ``python benchmarks/bench_scaling.py`` (several minutes; ``--quick``: 1e3 and 1e4 rows, a few batches).
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import QUICK, REPORT, Fns, Timing, fmt_ratio, fmt_us, measure, peer_name, spread, wanted

B = 256
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 4},
    "act": {"shape": 1, "dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 4},
    "done": {},
}
OPS = {
    "sample": f"uniform sample({B})",
    "per_sample": f"PER sample({B})",
    "per_update": f"PER update_priorities({B})",
    "add": f"add({B}) to a full buffer",
}
FRESH = 16  # priority vectors cycled by the update_priorities timings


def _fresh_priorities(convert: Callable[[np.ndarray], Any]) -> Callable[[], Any]:
    """The next of FRESH priority vectors at each call: every update writes other values than the rows hold. (The
    same vector again would let a segment tree that stops where a node does not change, as cpprb's does, skip
    the whole climb: a cost no training run sees.)"""
    vectors = [convert(v) for v in np.random.default_rng(2).random((FRESH, B))]
    order = itertools.cycle(vectors)
    return lambda: next(order)


Builder = Callable[[int, dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray], bool], Fns]
ROUNDS = 15


def _sizes() -> list[int]:
    return [10**3, 10**4] if QUICK else [10**3, 10**4, 10**5, 10**6, 10**7]


def _data(size: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    obs = rng.random((size + 1, 4), dtype=np.float32)
    data = {
        "obs": obs[:-1],
        "act": rng.integers(0, 2, (size, 1), dtype=np.uint8),
        "rew": rng.random((size, 1), dtype=np.float32),
        "next_obs": obs[1:],
        "done": np.zeros((size, 1), np.float32),
    }
    return data, rng.random(size) + 0.01


# ----------------------------------------------------------------------------------------------- builders
def laber_ops(size: int, data: dict[str, np.ndarray], prio: np.ndarray, new: dict[str, np.ndarray], per: bool) -> Fns:
    from laber import PrioritizedReplayBuffer, ReplayBuffer

    if not per:
        rb = ReplayBuffer(size, ENV, rng=0)
        rb.add(**data)
        return {"sample": lambda: rb.sample(B), "add": lambda: rb.add(**new)}
    prb = PrioritizedReplayBuffer(size, ENV, alpha=0.6, eps=1e-4, rng=0)
    prb.add(priorities=prio, **data)
    idx = np.random.default_rng(1).integers(0, size, B)
    p_new = _fresh_priorities(lambda v: v)
    return {"per_sample": lambda: prb.sample(B, beta=0.4), "per_update": lambda: prb.update_priorities(idx, p_new())}


def cpprb_ops(size: int, data: dict[str, np.ndarray], prio: np.ndarray, new: dict[str, np.ndarray], per: bool) -> Fns:
    import cpprb

    if not per:
        rb = cpprb.ReplayBuffer(size, ENV)
        rb.add(**data)
        return {"sample": lambda: rb.sample(B), "add": lambda: rb.add(**new)}
    prb = cpprb.PrioritizedReplayBuffer(size, ENV, alpha=0.6, eps=1e-4)
    prb.add(priorities=prio, **data)
    idx = np.random.default_rng(1).integers(0, size, B)
    p_new = _fresh_priorities(lambda v: v)
    return {"per_sample": lambda: prb.sample(B, beta=0.4), "per_update": lambda: prb.update_priorities(idx, p_new())}


def torchrl_ops(size: int, data: dict[str, np.ndarray], prio: np.ndarray, new: dict[str, np.ndarray], per: bool) -> Fns:
    import torch
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, ReplayBuffer, TensorDictPrioritizedReplayBuffer

    td = TensorDict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in data.items()}, batch_size=[size])
    if not per:
        td_new = TensorDict({k: torch.from_numpy(v) for k, v in new.items()}, batch_size=[B])
        rb = ReplayBuffer(storage=LazyTensorStorage(size), batch_size=B)
        rb.extend(td)
        return {"sample": lambda: rb.sample(), "add": lambda: rb.extend(td_new)}
    # its prioritized sampler is a C++ extension that may not match the torch build: then this raises
    prb = TensorDictPrioritizedReplayBuffer(
        alpha=0.6, beta=0.4, storage=LazyTensorStorage(size), batch_size=B, priority_key="td_error"
    )
    td["td_error"] = torch.from_numpy(prio)
    prb.extend(td)
    idx = torch.from_numpy(np.random.default_rng(1).integers(0, size, B))
    p_new = _fresh_priorities(lambda v: torch.from_numpy(v.astype(np.float32)))
    return {"per_sample": lambda: prb.sample(), "per_update": lambda: prb.update_priority(idx, p_new())}


def sb3_ops(size: int, data: dict[str, np.ndarray], prio: np.ndarray, new: dict[str, np.ndarray], per: bool) -> Fns:
    from gymnasium import spaces
    from stable_baselines3.common.buffers import ReplayBuffer

    if per:
        return {}  # SB3 has no prioritized replay
    envs = B  # one add() stores one step of every environment: add(256) is one call
    rb = ReplayBuffer(
        size, spaces.Box(-np.inf, np.inf, (4,), np.float32), spaces.Discrete(2), device="cpu", n_envs=envs
    )
    rows = rb.buffer_size  # size // envs per environment
    rb.observations[:] = data["obs"][: rows * envs].reshape(rows, envs, 4)
    rb.next_observations[:] = data["next_obs"][: rows * envs].reshape(rows, envs, 4)
    rb.full = True
    obs, next_obs = new["obs"], new["next_obs"]
    act = new["act"].astype(np.int64)
    rew, done = new["rew"][:, 0], new["done"][:, 0]
    infos: list[dict[str, Any]] = [{} for _ in range(envs)]
    return {"sample": lambda: rb.sample(B), "add": lambda: rb.add(obs, next_obs, act, rew, done, infos)}


def tianshou_ops(
    size: int, data: dict[str, np.ndarray], prio: np.ndarray, new: dict[str, np.ndarray], per: bool
) -> Fns:
    from tianshou.data import Batch, PrioritizedReplayBuffer, ReplayBuffer

    done = np.zeros(size, dtype=bool)
    batch = Batch(
        obs=data["obs"],
        act=data["act"][:, 0],
        rew=data["rew"][:, 0],
        terminated=done,
        truncated=done,
        done=done,
        obs_next=data["next_obs"],
    )
    # the storage is filled directly (set_batch): one add() per transition would take minutes at 1e7
    if not per:
        rb = ReplayBuffer(size)
        rb.set_batch(batch)
        rb._size, rb._index = size, 0
        return {"sample": lambda: rb.sample(B)}
    prb = PrioritizedReplayBuffer(size, alpha=0.6, beta=0.4)
    prb.set_batch(batch)
    prb._size, prb._index = size, 0
    prb.update_weight(np.arange(size), prio)
    idx = np.random.default_rng(1).integers(0, size, B)
    p_new = _fresh_priorities(lambda v: v)
    return {"per_sample": lambda: prb.sample(B), "per_update": lambda: prb.update_weight(idx, p_new())}


def flashbax_ops(
    size: int, data: dict[str, np.ndarray], prio: np.ndarray, new: dict[str, np.ndarray], per: bool
) -> Fns:
    import flashbax as fbx
    import jax
    import jax.numpy as jnp

    rows = {k: jnp.asarray(v) for k, v in data.items()}
    example = {k: jnp.zeros(v.shape[1:], v.dtype) for k, v in data.items()}
    box: dict[str, Any] = {"key": jax.random.PRNGKey(0)}

    def key() -> Any:
        box["key"], k = jax.random.split(box["key"])
        return k

    if not per:
        flat = fbx.make_flat_buffer(
            max_length=size, min_length=1, sample_batch_size=B, add_sequences=True, add_batch_size=None
        )
        flat_add = jax.jit(flat.add, donate_argnums=0)
        box["state"] = flat_add(flat.init(example), rows)
        del rows
        new_rows = {k: jnp.asarray(v) for k, v in new.items()}
        flat_sample = jax.jit(flat.sample)

        def add() -> None:
            box["state"] = flat_add(box["state"], new_rows)
            jax.block_until_ready(box["state"])

        return {"sample": lambda: jax.block_until_ready(flat_sample(box["state"], key())), "add": add}
    prb = fbx.make_prioritised_flat_buffer(
        max_length=size,
        min_length=1,
        sample_batch_size=B,
        add_sequences=True,
        add_batch_size=None,
        priority_exponent=0.6,
    )
    set_priorities = jax.jit(prb.set_priorities, donate_argnums=0)
    state = jax.jit(prb.add, donate_argnums=0)(prb.init(example), rows)
    del rows
    box["state"] = set_priorities(state, jnp.arange(size), jnp.asarray(prio, jnp.float32))
    per_sample = jax.jit(prb.sample)
    idx = jnp.asarray(np.random.default_rng(1).integers(0, size, B))
    p_new = _fresh_priorities(lambda v: jnp.asarray(v, jnp.float32))

    def update() -> None:
        box["state"] = set_priorities(box["state"], idx, p_new())
        jax.block_until_ready(box["state"])

    return {"per_sample": lambda: jax.block_until_ready(per_sample(box["state"], key())), "per_update": update}


PEERS: dict[str, tuple[str, Builder]] = {
    "cpprb": (peer_name("cpprb"), cpprb_ops),
    "torchrl": (peer_name("torchrl", "TorchRL"), torchrl_ops),
    "stable-baselines3": (peer_name("stable-baselines3", "SB3"), sb3_ops),
    "tianshou": (peer_name("tianshou", "Tianshou"), tianshou_ops),
    "flashbax": (peer_name("flashbax") + " (jax)", flashbax_ops),
}


COLORS = {label: f"C{i}" for i, (label, _) in enumerate(PEERS.values())}
NOT_TIMED: dict[str, str] = {}  # peer -> why, for the page


# ----------------------------------------------------------------------------------------------- part 1
def _by_size() -> dict[str, dict[str, dict[int, Timing]]]:
    """results[op][peer][size]: the round-robin timing of laber ("laber") and that peer."""
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, dict[int, Timing]]] = {op: {} for op in OPS}
    new_rng = np.random.default_rng(3)
    new = {
        "obs": new_rng.random((B, 4), dtype=np.float32),
        "act": new_rng.integers(0, 2, (B, 1), dtype=np.uint8),
        "rew": new_rng.random((B, 1), dtype=np.float32),
        "next_obs": new_rng.random((B, 4), dtype=np.float32),
        "done": np.zeros((B, 1), np.float32),
    }
    for size in _sizes():
        data, prio = _data(size, rng)
        for per in (False, True):  # uniform buffers, then prioritized ones: two buffers alive at a time
            ours = laber_ops(size, data, prio, new, per)
            for package, (label, build) in PEERS.items():
                if not wanted(package):
                    continue
                try:
                    theirs = build(size, data, prio, new, per)
                except Exception as exc:  # not installed, or does not load: reported, not fatal
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80] if str(exc) else ''}"
                    print(f"  {label} at {size:.0e} rows: not timed ({why})")
                    NOT_TIMED[f"{label}{' prioritized' if per else ''}"] = why
                    continue
                for op in theirs:
                    timing = measure({"laber": ours[op], label: theirs[op]}, number=None, repeat=ROUNDS)
                    results[op].setdefault(label, {})[size] = timing
                    ratio = fmt_ratio(timing.ratios(label, "laber"))
                    them = fmt_us(timing.median(label))
                    print(f"  {size:>9.0e} rows {OPS[op]:<32}{label:<24}{them:>10}  laber {ratio}")
                del theirs
                gc.collect()
            del ours
            gc.collect()
        del data, prio
        gc.collect()
    return results


def _laber_median(per_peer: dict[str, dict[int, Timing]], size: int) -> float | None:
    rounds = [x for timings in per_peer.values() if size in timings for x in timings[size].rounds["laber"]]
    return float(np.median(rounds)) if rounds else None


def _size_tables(results: dict[str, dict[str, dict[int, Timing]]]) -> None:
    for op, title in OPS.items():
        per_peer = results[op]
        if not per_peer:
            continue
        peers = list(per_peer)
        lines = [
            f"**{title}**: us per call (median); for each peer, laber's speed-up, median [q1, q3] over {ROUNDS} rounds",
            "",
            "| rows | laber | " + " | ".join(peers) + " |",
            "|---|---|" + "---|" * len(peers),
        ]
        for size in _sizes():
            ours = _laber_median(per_peer, size)
            cells = [f"{size:.0e}", fmt_us(ours) if ours is not None else "n/a"]
            for peer in peers:
                t = per_peer[peer].get(size)
                cells.append("n/a" if t is None else f"{fmt_us(t.median(peer))} ({fmt_ratio(t.ratios(peer, 'laber'))})")
            lines.append("| " + " | ".join(cells) + " |")
        REPORT.parts.append("\n".join(lines) + "\n")


def _size_figure(results: dict[str, dict[str, dict[int, Timing]]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
    sizes = _sizes()
    for ax, (op, title) in zip(axes.flat, OPS.items(), strict=True):
        per_peer = results[op]
        ours = [_laber_median(per_peer, s) for s in sizes]
        xs = [s for s, y in zip(sizes, ours, strict=True) if y is not None]
        ax.loglog(xs, [y for y in ours if y is not None], "o-", color="black", lw=2.5, label="laber")
        for peer, timings in per_peer.items():
            px = [s for s in sizes if s in timings]
            ax.loglog(px, [timings[s].median(peer) for s in px], "s--", color=COLORS.get(peer), label=peer)
        ax.set_title(title)
        ax.set_ylabel("us per call (median)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("rows in the buffer")
    fig.suptitle("Cost as the buffer grows (batch 256), one machine, one run")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ----------------------------------------------------------------------------------------------- part 2
def _by_batch() -> tuple[list[int], list[int], dict[tuple[int, int], Timing]]:
    from laber import LaBERmean

    batches = [32, 256] if QUICK else [32, 64, 128, 256, 512, 1024, 2048, 4096]
    ms = [1, 4] if QUICK else [1, 2, 4, 8, 16]
    try:
        import cpprb
    except ImportError:
        cpprb = None
    rng = np.random.default_rng(0)
    out: dict[tuple[int, int], Timing] = {}
    for b in batches:
        for m in ms:
            prios = [rng.random(m * b, dtype=np.float32) for _ in range(8)]
            counter = iter(range(1 << 62))

            def p(prios: list[np.ndarray] = prios, counter: Any = counter) -> np.ndarray:
                return prios[next(counter) & 7]

            ours = LaBERmean(b, m, rng=0)
            fns: Fns = {"laber": lambda ours=ours, p=p: ours(priorities=p())}
            if cpprb is not None:
                theirs = cpprb.LaBERmean(b, m)
                fns["cpprb"] = lambda theirs=theirs, p=p: theirs(priorities=p())
            out[(b, m)] = measure(fns, number=None, repeat=ROUNDS)
    return batches, ms, out


def _batch_table(batches: list[int], ms: list[int], out: dict[tuple[int, int], Timing]) -> None:
    has_peer = "cpprb" in next(iter(out.values()))
    lines = [
        "**LaBERmean(B, m)**: laber's us per call (median)"
        + (f"; in brackets its speed-up over cpprb's LaBERmean, median [q1, q3] over {ROUNDS} rounds" * has_peer),
        "",
        "| B | " + " | ".join(f"m = {m}" for m in ms) + " |",
        "|---|" + "---|" * len(ms),
    ]
    for b in batches:
        cells = [str(b)]
        for m in ms:
            t = out[(b, m)]
            cell = fmt_us(t.median("laber"))
            if has_peer:
                cell += f" ({fmt_ratio(t.ratios('cpprb', 'laber'))})"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    REPORT.parts.append("\n".join(lines) + "\n")


def _batch_figure(batches: list[int], ms: list[int], out: dict[tuple[int, int], Timing], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(ms)))
    for m, color in zip(ms, colors, strict=True):
        ax.loglog(batches, [out[(b, m)].median("laber") for b in batches], "o-", color=color, label=f"laber, m={m}")
        if "cpprb" in out[(batches[0], m)]:
            ax.loglog(batches, [out[(b, m)].median("cpprb") for b in batches], "s--", color=color, alpha=0.6)
            meds = [spread(out[(b, m)].ratios("cpprb", "laber")) for b in batches]
            bx.semilogx(batches, [x[0] for x in meds], "o-", color=color, label=f"m={m}")
            bx.fill_between(batches, [x[1] for x in meds], [x[2] for x in meds], color=color, alpha=0.12)
    ax.set_xlabel("B (output batch)")
    ax.set_ylabel("us per call (median)")
    ax.set_title("LaBERmean(B, m): laber (solid), cpprb (dashed)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    bx.set_xlabel("B (output batch)")
    bx.set_ylabel("cpprb time / laber time")
    bx.set_title("laber's speed-up over cpprb (median, band: IQR)")
    bx.grid(True, which="both", alpha=0.3)
    bx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    import os

    REPORT.section(
        "How cost grows",
        "`benchmarks/bench_scaling.py`. Buffer size: rows of obs (4 float32), act (uint8), rew, next_obs (4), done; "
        "laber and one peer at a time, timed round-robin together; each cell is the peer's median time per call "
        "and, in brackets, laber's speed-up over it. SB3's buffer holds `n_envs = 256` environments (its "
        "`add` stores one step of each); Tianshou's `add` takes one transition per call and is not timed; "
        "flashbax runs jax on the CPU. Batch size: `LaBERmean(B, m)` on `m*B` float32 priorities.",
    )
    results = _by_size()
    _size_tables(results)
    if NOT_TIMED:
        REPORT.parts.append("\n".join(f"* {peer}: not timed ({why})" for peer, why in NOT_TIMED.items()) + "\n")
    batches, ms, out = _by_batch()
    _batch_table(batches, ms, out)
    if REPORT.figures_dir:
        _size_figure(results, os.path.join(REPORT.figures_dir, "bench-scaling-size.png"))
        REPORT.figure("bench-scaling-size.png", "Time per call against the number of stored rows, log-log")
        _batch_figure(batches, ms, out, os.path.join(REPORT.figures_dir, "bench-scaling-batch.png"))
        REPORT.figure("bench-scaling-batch.png", "LaBERmean against the batch size B for each m, log-log")


if __name__ == "__main__":
    main()
