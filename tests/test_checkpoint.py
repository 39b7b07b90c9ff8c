"""Checkpoints (``laber.checkpoint``): loading into another size, whole-file checks before any change, temporaries
of killed saves, file permissions, memory while loading, and one clear message per malformed file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import laber
from laber import PrioritizedReplayBuffer, ReplayBuffer
from laber import checkpoint as ckpt
from laber.links import LINK, STACK_LINK

pytestmark = pytest.mark.usefixtures("storage_backend")  # every storage backend (tests/conftest.py)

FRAME, DEPTH = (2,), 3
OBS = {"shape": (*FRAME, DEPTH)}
NAIVE_ENV = {"obs": OBS, "act": {"dtype": np.uint8}, "rew": {}, "next_obs": OBS, "done": {}}
OBS_ENV = {k: v for k, v in NAIVE_ENV.items() if k != "next_obs"}
NSTEP = {"size": 3, "rew": "rew", "gamma": 0.5, "next": "next_obs"}

# name: (class, keyword arguments); every option and their combination
CONFIGS: dict[str, tuple[type[ReplayBuffer], dict[str, Any]]] = {
    "plain": (ReplayBuffer, {"env_dict": NAIVE_ENV}),
    "nstep": (ReplayBuffer, {"env_dict": NAIVE_ENV, "Nstep": NSTEP}),
    "next_of": (ReplayBuffer, {"env_dict": OBS_ENV, "next_of": "obs"}),
    "stack": (ReplayBuffer, {"env_dict": NAIVE_ENV, "stack_compress": ["obs", "next_obs"]}),
    "next_of+stack+nstep": (
        ReplayBuffer,
        {"env_dict": OBS_ENV, "next_of": "obs", "stack_compress": "obs", "Nstep": NSTEP},
    ),
    "per": (PrioritizedReplayBuffer, {"env_dict": NAIVE_ENV}),
    "per+next_of+stack+nstep": (
        PrioritizedReplayBuffer,
        {"env_dict": OBS_ENV, "next_of": "obs", "stack_compress": "obs", "Nstep": NSTEP},
    ),
}


def make(config: str, size: int, rng: Any = 0) -> ReplayBuffer:
    cls, kw = CONFIGS[config]
    return cls(size, rng=rng, **kw)


def make_naive(config: str) -> ReplayBuffer:
    """The oracle: the same class and N-step, naive storage, never wrapping (row i is transition i's window)."""
    cls, kw = CONFIGS[config]
    return cls(10_000, NAIVE_ENV, Nstep=kw.get("Nstep"), rng=0)


def stacked_episode(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
    """obs and next_obs of an episode of stacked frames: the reset frame repeated, then one new frame per step."""
    frames = rng.integers(0, 50, (length + 1, *FRAME)).astype(np.float32)
    padded = np.concatenate([np.repeat(frames[:1], DEPTH - 1, axis=0), frames])
    stacks = np.stack([np.moveaxis(padded[t : t + DEPTH], 0, -1) for t in range(length + 1)])
    return stacks[:-1], stacks[1:]


def global_rows(buffer: ReplayBuffer, naive: ReplayBuffer) -> np.ndarray:
    """The naive row (= transition) held at each ring index ``0 .. stored - 1`` of ``buffer``, which holds the
    newest rows: oldest at ``next`` when full, else at 0."""
    stored, size, nxt = buffer.get_stored_size(), buffer.get_buffer_size(), buffer.get_next_index()
    start = nxt if stored == size else 0
    chron = (np.arange(stored) - start) % max(stored, 1)
    rows: np.ndarray = naive.get_stored_size() - stored + chron
    return rows


Log = list[tuple[str, Any]]


def play(
    rng: np.random.Generator, buffers: list[ReplayBuffer], naive: ReplayBuffer, episodes: int, log: Log | None = None
) -> None:
    """Random episodes (single and batch adds, truncated or terminal, stacking broken now and then, PER priorities
    given or not and updated), the same calls on every buffer (same ring layout) and on the naive oracle.

    ``log`` gets one ``("add", transition)`` per transition, ``("end", None)`` per ``on_episode_end`` and
    ``("update", (naive rows, priorities))`` per ``update_priorities``."""
    per = isinstance(naive, PrioritizedReplayBuffer)
    log = [] if log is None else log
    for _ in range(episodes):
        length = int(rng.integers(1, 7))
        obs, next_obs = stacked_episode(rng, length)
        if rng.random() < 0.25:  # an observation that continues neither the stack nor the previous next_obs
            obs[length // 2] += 100.0
        done = np.zeros(length, np.float32)
        done[-1] = float(rng.random() < 0.5)
        steps = {
            "obs": obs,
            "act": np.arange(length) % 3,
            "rew": rng.normal(size=length).astype(np.float32),
            "next_obs": next_obs,
            "done": done,
        }
        priorities = rng.random(length) * 5 if per and rng.random() < 0.6 else None
        batch = rng.random() < 0.4
        for b in [*buffers, naive]:
            extra = {} if not per else {"priorities": priorities}
            if batch:
                b.add(**steps, **extra)
            else:
                for i in range(length):
                    one = {} if not per else {"priorities": None if priorities is None else priorities[i]}
                    b.add(**{k: v[i] for k, v in steps.items()}, **one)
        for i in range(length):
            one = {} if not per else {"priorities": None if priorities is None else priorities[i]}
            log.append(("add", {**{k: v[i] for k, v in steps.items()}, **one}))
        if rng.random() < 0.7:
            for b in [*buffers, naive]:
                b.on_episode_end()
            log.append(("end", None))
        if per and buffers[0].get_stored_size() and rng.random() < 0.4:
            idx = rng.integers(0, buffers[0].get_stored_size(), 3)
            p = rng.random(3) * 10
            mapped = global_rows(buffers[0], naive)[idx]
            for b in buffers:
                b.update_priorities(idx, p)  # type: ignore[attr-defined]
            naive.update_priorities(mapped, p)  # type: ignore[attr-defined]
            log.append(("update", (mapped, p)))


def replay(log: Log, into: ReplayBuffer, first: int = 0, *, updates: bool = True) -> None:
    """Make the logged calls on ``into``, from transition ``first`` on (updates only for a naive buffer)."""
    seen = 0
    for kind, payload in log:
        if kind == "add":
            seen += 1
            if seen > first:
                into.add(**payload)
        elif seen > first or (kind == "update" and updates):
            if kind == "end":
                into.on_episode_end()
            elif updates:
                into.update_priorities(*payload)  # type: ignore[attr-defined]


def check_against_naive(buffer: ReplayBuffer, naive: ReplayBuffer) -> None:
    """Every stored row (fields, derived next_obs, reconstructed stacks, priorities) equals the naive row it
    stands for, and sampled rows equal the stored ones."""
    rows = global_rows(buffer, naive)
    got, want = buffer.get_all_transitions(), naive.get_all_transitions()
    assert set(got) == set(want)
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value[rows], err_msg=key)
    if isinstance(buffer, PrioritizedReplayBuffer):
        np.testing.assert_array_equal(buffer.get_priorities(), naive.get_priorities()[rows])  # type: ignore[attr-defined]
        assert buffer._tree.total() == pytest.approx(
            float(((buffer.get_priorities() + buffer.eps) ** buffer.alpha).sum())
        )
    if buffer.get_stored_size():
        batch = buffer.sample(16)
        for key, value in got.items():
            np.testing.assert_array_equal(batch[key], value[batch["indexes"]], err_msg=key)
    check_invariants(buffer)


def check_invariants(buffer: ReplayBuffer) -> None:
    """Side-store slots of stored rows are in range, distinct and not free; the oldest row is a stack anchor."""
    stored = buffer.get_stored_size()
    for store, name in ((buffer._next_of, LINK), (buffer._stack, STACK_LINK)):
        if store is None:
            continue
        links = buffer._cols[name][:stored]
        slots = links[links >= 0]
        assert slots.size == np.unique(slots).size
        assert not np.isin(slots, store._free).any()
        assert (slots < store._capacity).all()
    if buffer._stack is not None and stored:
        oldest = buffer.get_next_index() if stored == buffer.get_buffer_size() else 0
        assert buffer._cols[STACK_LINK][oldest] >= 0


def state_of(gen: np.random.Generator) -> dict[str, Any]:
    state: dict[str, Any] = gen.bit_generator.state
    return state


def generator(state: dict[str, Any]) -> np.random.Generator:
    gen = np.random.default_rng()
    gen.bit_generator.state = state
    return gen


# ================================================================================================ sizes
def _new_sizes(config: str, size: int) -> list[int]:
    low = 3 if "nstep" in config else 1  # N-step needs size >= n
    return sorted({s for s in (1, 2, 3, 4, size - 1, size, size + 1, 2 * size, 40) if s >= low}, reverse=True)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("config", list(CONFIGS))
def test_load_into_any_size_keeps_the_newest_rows(config: str, seed: int, tmp_path: Path) -> None:
    """For buffers that wrapped around (or not) before saving, loading into every size holds the newest
    min(stored, size) rows in order, equal to the originals and to a fresh buffer of that size that saw the same
    newest transitions; adding, sampling and updating afterwards stay equal to both, and links stay right."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(4, 9))
    original = make(config, size, rng=np.random.default_rng(seed))
    naive = make_naive(config)
    log: Log = []
    play(rng, [original], naive, int(rng.integers(1, 9)), log)
    rng_state = state_of(original._rng)
    path = tmp_path / "b.npz"
    original.save_checkpoint(path)
    stored, total = original.get_stored_size(), naive.get_stored_size()
    for new_size in _new_sizes(config, size):
        loaded = make(config, new_size, rng=123)
        loaded.load_checkpoint(path)
        k = stored if new_size == size else min(stored, new_size)
        assert loaded.get_stored_size() == k
        if new_size == size:  # the ring exactly
            assert loaded.get_next_index() == original.get_next_index()
            for key, value in original.get_all_transitions().items():
                np.testing.assert_array_equal(loaded.get_all_transitions()[key], value, err_msg=key)
        else:
            assert loaded.get_next_index() == k % new_size
        assert state_of(loaded._rng) == rng_state
        check_against_naive(loaded, naive)  # every row = the original of the kept newest rows, in order
        if isinstance(loaded, PrioritizedReplayBuffer):
            assert loaded.get_max_priority() == original.get_max_priority()  # type: ignore[attr-defined]

        # a buffer of the new size that saw the newest transitions: those of the kept rows on (all of them
        # for the same size, so that the ring positions match)
        reference = make(config, new_size, rng=generator(state_of(loaded._rng)))
        replay(log, reference, 0 if new_size == size else total - k, updates=False)
        if isinstance(reference, PrioritizedReplayBuffer):  # priorities updated before: the same, and the max
            reference.update_priorities([0], [loaded.get_max_priority()])  # type: ignore[attr-defined]
            reference.update_priorities(np.arange(k), loaded.get_priorities())  # type: ignore[attr-defined]
            assert reference.get_max_priority() == loaded.get_max_priority()  # type: ignore[attr-defined]
        same(loaded, reference)

        # carry on with the same calls on both (and on a naive twin of the whole history)
        twin = make_naive(config)
        replay(log, twin)
        play(np.random.default_rng([seed, new_size]), [loaded, reference], twin, 6)
        same(loaded, reference)
        check_against_naive(loaded, twin)

        # and once more through a checkpoint, into yet another size
        again = tmp_path / "again.npz"
        loaded.save_checkpoint(again)
        third = make(config, 3 if new_size != 3 else 5, rng=1)
        third.load_checkpoint(again)
        check_against_naive(third, twin)


def same(a: ReplayBuffer, b: ReplayBuffer) -> None:
    """Two buffers hold the same rows at the same ring indexes and sample the same batches."""
    assert a.get_stored_size() == b.get_stored_size()
    assert a.get_next_index() == b.get_next_index()
    got, want = a.get_all_transitions(), b.get_all_transitions()
    for key, value in want.items():
        np.testing.assert_array_equal(got[key], value, err_msg=key)
    if a.get_stored_size():
        sa, sb = a.sample(16), b.sample(16)
        for key, value in sb.items():
            np.testing.assert_array_equal(sa[key], value, err_msg=key)


def test_load_into_a_smaller_buffer_by_hand(tmp_path: Path) -> None:
    """The issue's case: a wrapped ring of 4 (rows 2..5, next 2) into sizes 8, 3 and 1."""
    env = {"obs": {"shape": 2}, "rew": {}}
    rb = ReplayBuffer(4, env)
    for i in range(6):
        rb.add(obs=[i, i], rew=i)
    rb.save_checkpoint(tmp_path / "r.npz")
    for size, rows in ((8, [2, 3, 4, 5]), (3, [3, 4, 5]), (1, [5])):
        other = ReplayBuffer(size, env)
        other.load_checkpoint(tmp_path / "r.npz")
        assert other.get_stored_size() == len(rows) and other.get_next_index() == len(rows) % size
        np.testing.assert_array_equal(other.get_all_transitions()["rew"][:, 0], rows)
        other.add(obs=[6, 6], rew=6)  # overwrites the oldest row only when full
        want = [*rows, 6][-size:] if len(rows) < size else [6, *rows[1:]]
        np.testing.assert_array_equal(other.get_all_transitions()["rew"][:, 0], want)


# ================================================================================================ malformed files
COMBO = "per+next_of+stack+nstep"


def filled(config: str, size: int, seed: int) -> ReplayBuffer:
    rb = make(config, size, rng=seed)
    play(np.random.default_rng(seed), [rb], make_naive(config), 8)
    return rb


def _records(rb: ReplayBuffer) -> np.ndarray:
    """The rows in the host record layout: the storage itself on the host, a copy of a device's rows."""
    records = rb.checkpoint_state().records
    if records is None:
        raise RuntimeError(f"{rb!r} has no host records")
    return records


def snapshot(rb: ReplayBuffer) -> dict[str, Any]:
    """Everything a load could change: storage bytes, counters, pending rows, side stores, priorities, tree, rng."""
    out: dict[str, Any] = {
        "store": _records(rb).tobytes(),
        "stored": rb._stored,
        "next": rb._next,
        "rng": rb._rng.bit_generator.state,
    }
    if rb._nstep is not None:
        out["pending"] = {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in rb._nstep.pending().items()}
    for name, store in (("next_of", rb._next_of), ("stack", rb._stack)):
        if store is not None:
            out[name] = {k: (v.shape, v.tobytes()) for k, v in store.state().items()}
    if isinstance(rb, PrioritizedReplayBuffer):
        out["max"] = rb.get_max_priority()
        out["tree"] = (rb._tree._sum_flat.tobytes(), rb._tree._min_flat.tobytes())
    return out


def members(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        return {n.removesuffix(".npy"): np.lib.format.read_array(zf.open(n), allow_pickle=False) for n in zf.namelist()}


def get_meta(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    meta: dict[str, Any] = json.loads(arrays["__meta__"].tobytes())
    return meta


def put_meta(arrays: dict[str, np.ndarray], meta: Any, **dump: Any) -> None:
    arrays["__meta__"] = np.frombuffer(json.dumps(meta, **dump).encode(), np.uint8)


def edit_meta(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, np.ndarray], ReplayBuffer], None]:
    def mutate(arrays: dict[str, np.ndarray], rb: ReplayBuffer) -> None:
        meta = get_meta(arrays)
        change(meta)
        put_meta(arrays, meta)

    return mutate


def edit_rows(
    change: Callable[[np.ndarray, ReplayBuffer], None],
) -> Callable[[dict[str, np.ndarray], ReplayBuffer], None]:
    def mutate(arrays: dict[str, np.ndarray], rb: ReplayBuffer) -> None:
        rows = arrays["rows"].view(rb._record).copy()
        change(rows, rb)
        arrays["rows"] = rows.view(np.uint8)

    return mutate


def _first_slot_row(rows: np.ndarray, column: str) -> int:
    return int(np.flatnonzero(rows[column] >= 0)[0])


def _first_linked_row(arrays: dict[str, np.ndarray], rb: ReplayBuffer) -> int:
    return int(np.flatnonzero(arrays["rows"].view(rb._record)[LINK] < 0)[0])


def _oldest(arrays: dict[str, np.ndarray]) -> int:
    meta = get_meta(arrays)
    return int(meta["next"]) if meta["stored"] == meta["buffer"]["size"] else 0


def _newest(arrays: dict[str, np.ndarray]) -> int:
    meta = get_meta(arrays)
    return (int(meta["next"]) - 1) % int(meta["stored"])


def _set(arrays: dict[str, np.ndarray], key: str, value: Any) -> None:
    arrays[key] = np.asarray(value)


def _mt19937_state() -> dict[str, Any]:
    state = np.random.MT19937(0).state
    state["state"]["key"] = state["state"]["key"].tolist()
    return state


Mutation = Callable[[dict[str, np.ndarray], ReplayBuffer], None]
MALFORMED: dict[str, tuple[Mutation, str]] = {
    # the six of the issue that raised only after the buffer was overwritten, and more of their kind
    "rng of another bit generator": (
        edit_meta(lambda m: m.__setitem__("rng", _mt19937_state())),
        r"rng state \(bit_generator='MT19937'\) does not fit this buffer's PCG64",
    ),
    "rng state malformed": (
        edit_meta(lambda m: m["rng"].__setitem__("state", "x")),
        r"rng state .* does not fit",
    ),
    "next_of side store missing": (lambda a, rb: a.pop("nextof/side/next_obs"), r"'nextof/side/next_obs' is missing"),
    "next_of side store of another shape": (
        lambda a, rb: _set(a, "nextof/side/next_obs", np.zeros((8, 5), np.float32)),
        r"nextof/side/next_obs must be float32 of shape \(slots, \*\(2, 3\)\), got float32 \(8, 5\)",
    ),
    "next_of free list missing": (lambda a, rb: a.pop("nextof/free"), r"'nextof/free' is missing"),
    "next_of free list repeats a slot": (
        lambda a, rb: _set(a, "nextof/free", np.array([7, 7])),
        r"nextof/free must hold distinct slots",
    ),
    "next_of pending links missing": (lambda a, rb: a.pop("nextof/pending"), r"'nextof/pending' is missing"),
    "next_of pending link to a row that has no slot": (
        lambda a, rb: _set(a, "nextof/pending", np.array([[_first_linked_row(a, rb), 0, 1]])),
        r"nextof/pending does not match the rows' links",
    ),
    "next_of pending links of another shape": (
        lambda a, rb: _set(a, "nextof/pending", np.zeros((2, 2), np.int64)),
        r"nextof/pending must be an integer array of shape \(links, 3\)",
    ),
    "stack side store of another dtype": (
        lambda a, rb: _set(a, "stack/side/obs", a["stack/side/obs"].astype(np.float64)),
        r"stack/side/obs must be float32",
    ),
    "stack free list missing": (lambda a, rb: a.pop("stack/free"), r"'stack/free' is missing"),
    "stack free list lists a used slot": (
        edit_rows(lambda r, rb: None),  # replaced below: needs the rows
        "",
    ),
    "running max not a number": (
        edit_meta(lambda m: m["extra"].__setitem__("max_priority", "high")),
        r"running max priority must be a finite number >= 0, got max_priority='high'",
    ),
    "running max negative": (
        edit_meta(lambda m: m["extra"].__setitem__("max_priority", -1.0)),
        r"got max_priority=-1.0",
    ),
    "running max NaN": (
        lambda a, rb: put_meta(a, {**get_meta(a), "extra": {"max_priority": float("nan")}}),
        r"__meta__ is not valid JSON \(NaN is not valid JSON\)",
    ),
    "pending transitions of another shape": (
        lambda a, rb: _set(a, "pending/obs", a["pending/obs"][:, :1]),
        r"pending/obs must be numbers of shape",
    ),
    "pending transitions lack a field": (
        lambda a, rb: a.pop("pending/act"),
        r"pending N-step transitions lack field\(s\) \['act'\]",
    ),
    "pending act outside its dtype": (
        lambda a, rb: _set(a, "pending/act", np.full_like(a["pending/act"], 300, dtype=np.int64)),
        r"pending N-step transition: field 'act' has dtype uint8",
    ),
    "too many pending transitions": (
        lambda a, rb: [_set(a, k, np.concatenate([a[k]] * 3)) for k in list(a) if k.startswith("pending/")],
        r"pending N-step transitions; at most 2 can be pending",
    ),
    "pending priority negative": (
        lambda a, rb: _set(a, "pending/_priority", np.full_like(a["pending/_priority"], -1.0)),
        r"pending priorities must be finite and >= 0",
    ),
    # links out of range and NaN priorities, which loaded silently and broke every later sample
    "next_of link to a slot out of range": (
        edit_rows(lambda r, rb: r[LINK].__setitem__(_first_slot_row(r, LINK), 10**6)),
        r"next_of link is slot 1000000, but the side store has \d+ slots",
    ),
    "next_of links share a slot": (
        edit_rows(lambda r, rb: r[LINK].__setitem__(np.flatnonzero(r[LINK] >= 0)[:2], r[LINK][r[LINK] >= 0][0])),
        r"two rows' next_of links share one side-store slot",
    ),
    "next_of link too far": (
        edit_rows(lambda r, rb: r[LINK].__setitem__(0, -10)),
        r"row 0's next_of link -10 reaches beyond 3 step\(s\)",
    ),
    "next_of link to no newer row": (
        lambda a, rb: edit_rows(lambda r, rb_: r[LINK].__setitem__(_newest(a), -1))(a, rb),
        r"next_of link -1 does not reach a newer stored row",
    ),
    "stack link below -1": (
        edit_rows(lambda r, rb: r[STACK_LINK].__setitem__(1, -2)),
        r"row 1's stack_compress link is -2 \(must be -1 or a slot\)",
    ),
    "stack link to a slot out of range": (
        edit_rows(lambda r, rb: r[STACK_LINK].__setitem__(_first_slot_row(r, STACK_LINK), 999)),
        r"stack_compress link is slot 999",
    ),
    "oldest row not a stack anchor": (
        lambda a, rb: edit_rows(lambda r, rb_: r[STACK_LINK].__setitem__(_oldest(a), -1))(a, rb),
        r"the oldest row \(\d+\) is not a stack_compress anchor",
    ),
    "NaN priority": (
        edit_rows(lambda r, rb: r["_priority"].__setitem__(2, np.nan)),
        r"stored priorities must be finite and >= 0, got stored priorities\[\d+\]=nan",
    ),
    "negative priority": (
        edit_rows(lambda r, rb: r["_priority"].__setitem__(2, -3.0)),
        r"stored priorities must be finite and >= 0",
    ),
    "infinite priority": (
        edit_rows(lambda r, rb: r["_priority"].__setitem__(2, np.inf)),
        r"stored priorities must be finite and >= 0, got stored priorities\[2\]=inf",
    ),
    # the rows themselves
    "rows one byte short": (lambda a, rb: _set(a, "rows", a["rows"][:-1]), r"entry 'rows' must be uint8 of shape"),
    "rows of another dtype": (
        lambda a, rb: _set(a, "rows", a["rows"].astype(np.int16)),
        r"entry 'rows' must be uint8 of shape \(\d+,\) for its stored rows, got dtype int16",
    ),
    # metadata
    "stored larger than the size": (
        edit_meta(lambda m: m.__setitem__("stored", m["buffer"]["size"] + 1)),
        r"__meta__ gives stored=\d+, outside \[0, size=\d+\]",
    ),
    "next outside the ring": (edit_meta(lambda m: m.__setitem__("next", 99)), r"__meta__ gives next=99"),
    "ring not full but next != stored": (
        edit_meta(lambda m: m["buffer"].__setitem__("size", m["buffer"]["size"] + 1)),
        r"a ring that is not full has next == stored",
    ),
    "stored not an integer": (edit_meta(lambda m: m.__setitem__("stored", "5")), r"__meta__\['stored'\] must be"),
    "meta without buffer": (edit_meta(lambda m: m.pop("buffer")), r"__meta__ has no 'buffer'"),
    "buffer description a list": (
        edit_meta(lambda m: m.__setitem__("buffer", [])),
        r"__meta__\['buffer'\] must be a JSON dict",
    ),
    "fields description malformed": (
        edit_meta(lambda m: m["buffer"]["fields"].__setitem__("obs", {"shape": "wide"})),
        r"__meta__ describes field 'obs' as",
    ),
    "meta not UTF-8": (lambda a, rb: _set(a, "__meta__", np.array([0xFF, 0xFE], np.uint8)), r"__meta__ is not UTF-8"),
    "meta not JSON": (
        lambda a, rb: _set(a, "__meta__", np.frombuffer(b"{oops", np.uint8)),
        r"__meta__ is not valid JSON",
    ),
    "meta a JSON list": (lambda a, rb: put_meta(a, []), r"__meta__ must be a JSON object, got list"),
    "meta of another dtype": (
        lambda a, rb: _set(a, "__meta__", a["__meta__"].astype(np.int32)),
        r"__meta__ must be a 1-D uint8 array",
    ),
    "version 2": (
        edit_meta(lambda m: m.__setitem__("version", 2)),
        r"checkpoint version 2 is not supported \(this laber reads version 1\)",
    ),
    "another format": (edit_meta(lambda m: m.__setitem__("format", "other")), r"format='other'"),
    "an unknown entry": (lambda a, rb: _set(a, "junk", np.zeros(1)), r"unexpected entry 'junk.npy'"),
    "an unknown extra state": (
        lambda a, rb: _set(a, "extra/foo", np.zeros(1)),
        r"unexpected extra state \['foo'\] for a PrioritizedReplayBuffer",
    ),
    "an object array": (
        lambda a, rb: _set(a, "nextof/free", np.array([None], dtype=object)),
        r"entry 'nextof/free.npy' is not a readable numpy array",
    ),
}


def _stack_free_lists_a_used_slot(arrays: dict[str, np.ndarray], rb: ReplayBuffer) -> None:
    rows = arrays["rows"].view(rb._record)
    used = int(rows[STACK_LINK][rows[STACK_LINK] >= 0][0])
    arrays["stack/free"] = np.concatenate([arrays["stack/free"], [used]]).astype(np.int64)


MALFORMED["stack free list lists a used slot"] = (
    _stack_free_lists_a_used_slot,
    r"stack_compress link is a slot that the side store lists as free",
)


@pytest.fixture(scope="module")
def combo_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ReplayBuffer]:
    """A checkpoint of a wrapped PER buffer with next_of, stack_compress and N-step, pending transitions included."""
    rb = filled(COMBO, 7, seed=3)
    obs, next_obs = stacked_episode(np.random.default_rng(0), 4)
    for i, p in enumerate([None, 2.5, None, 0.5]):  # the last two wait for their window
        rb.add(obs=obs[i], act=i, rew=1.0, next_obs=next_obs[i], done=0.0, priorities=p)  # type: ignore[call-arg]
    assert rb.get_stored_size() == 7 and rb.get_next_index() != 0 and rb._nstep is not None
    assert rb._nstep.pending_rows == 2 and rb._next_of is not None and rb._next_of._pending.shape[0] > 0
    path = tmp_path_factory.mktemp("combo") / "combo.npz"
    rb.save_checkpoint(path)
    return path, rb


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_raises_before_anything_changes(
    case: str, combo_file: tuple[Path, ReplayBuffer], tmp_path: Path
) -> None:
    """Each malformed file raises one ValueError naming the path and what is wrong, and leaves every part of the
    buffer as it was (storage bytes, counters, pending rows, side stores, priorities, sum tree, rng state)."""
    source, rb = combo_file
    arrays = members(source)
    mutate, match = MALFORMED[case]
    mutate(arrays, rb)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    for size in (7, 5, 12):  # the same size, a smaller and a larger one
        target = filled(COMBO, size, seed=11)
        before = snapshot(target)
        with pytest.raises(ValueError, match=match) as info:
            target.load_checkpoint(path)
        assert str(path) in str(info.value)
        assert snapshot(target) == before
    target = filled(COMBO, 7, seed=11)  # still fully usable afterwards
    target.load_checkpoint(source)
    check_invariants(target)


def test_corrupted_and_foreign_files(combo_file: tuple[Path, ReplayBuffer], tmp_path: Path) -> None:
    source, _ = combo_file
    raw = bytearray(source.read_bytes())
    with zipfile.ZipFile(source) as zf:
        info = zf.getinfo("rows.npy")
    flip = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200  # a byte of the rows data
    raw[flip] ^= 0xFF
    cases = {
        "crc.npz": (bytes(raw), r"entry 'rows' cannot be read \(Bad CRC-32 for file 'rows.npy'\)"),
        "truncated.npz": (source.read_bytes()[:-100], r"not a laber checkpoint: not an \.npz \(zip\) archive"),
        "text.npz": (b"hello, world\n", r"not a laber checkpoint: not an \.npz \(zip\) archive"),
        "empty.npz": (b"", r"not a laber checkpoint: not an \.npz \(zip\) archive"),
    }
    for name, (content, _match) in cases.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "array.npy", np.zeros(3))
    cases["array.npy"] = (b"", r"is not a laber checkpoint: it is a \.npy file \(one array\)")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    cases["other.npz"] = (b"", r"is not a laber checkpoint: no __meta__ entry \(entries: \['a'\]\)")
    for name, (_, match) in cases.items():
        target = filled(COMBO, 7, seed=11)
        before = snapshot(target)
        with pytest.raises(ValueError, match=match) as info:
            target.load_checkpoint(tmp_path / name)
        assert str(tmp_path / name) in str(info.value)
        assert snapshot(target) == before
    with pytest.raises(FileNotFoundError):
        ReplayBuffer(3, NAIVE_ENV).load_checkpoint(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match=r"path must be a str or an os\.PathLike, got path=3"):
        ReplayBuffer(3, NAIVE_ENV).load_checkpoint(3)


def test_a_failure_while_reading_rows_into_storage_leaves_the_buffer_empty(
    combo_file: tuple[Path, ReplayBuffer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """After every check passed, only an I/O error (or the file changing in place) can still fail: then the
    buffer is cleared, never left half-loaded."""
    source, _ = combo_file
    target = filled(COMBO, 7, seed=11)

    def broken(*args: Any) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(ckpt, "_second_pass", broken)
    with pytest.raises(OSError, match="disk on fire"):
        target.load_checkpoint(source)
    assert target.get_stored_size() == 0 and target._nstep is not None and target._nstep.pending_rows == 0
    assert target._tree.total() == 0.0  # type: ignore[attr-defined]


# ================================================================================================ messages
@pytest.mark.parametrize(
    ("other", "match"),
    [
        (
            lambda: ReplayBuffer(7, {**NAIVE_ENV, "rew": {"dtype": np.float64}}),
            r"fields do not match this buffer: field 'rew' has dtype float32 in the file, float64 in this buffer$",
        ),
        (
            lambda: ReplayBuffer(7, {**NAIVE_ENV, "act": {"shape": 2, "dtype": np.uint8}}),
            r"fields do not match this buffer: field 'act' has shape \(1,\) in the file, \(2,\) in this buffer$",
        ),
        (
            lambda: ReplayBuffer(7, {**NAIVE_ENV, "extra": {}}),
            r"fields do not match this buffer: this buffer has field 'extra', the file does not$",
        ),
        (
            lambda: ReplayBuffer(7, {k: v for k, v in NAIVE_ENV.items() if k != "act"}),
            r"fields do not match this buffer: the file has field 'act', this buffer does not$",
        ),
        (
            lambda: ReplayBuffer(7, dict(reversed(NAIVE_ENV.items()))),
            r"fields do not match this buffer: the same fields in another order \(file: \['obs', 'act'",
        ),
        (
            lambda: ReplayBuffer(7, NAIVE_ENV, Nstep={**NSTEP, "gamma": 0.9}),
            r"N-step settings do not match this buffer: gamma is 0.5 in the file, 0.9 in this buffer$",
        ),
        (
            lambda: PrioritizedReplayBuffer(7, NAIVE_ENV),
            r"this buffer has field '_priority', the file does not \(an internal field: was the file written by",
        ),
    ],
)
def test_a_mismatch_says_which_field_differs_and_how(
    other: Callable[[], ReplayBuffer], match: str, tmp_path: Path
) -> None:
    config = "nstep" if "N-step" in match else "plain"
    rb = make(config, 7)
    play(np.random.default_rng(0), [rb], make_naive(config), 3)
    path = tmp_path / "m.npz"
    rb.save_checkpoint(path)
    target = other()
    before = snapshot(target)
    with pytest.raises(ValueError, match=match) as info:
        target.load_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"checkpoint {str(path)!r}: ")
    assert len(message) - len(str(path)) < 300 and "{'shape'" not in message  # no dump of both field dicts
    assert snapshot(target) == before


def test_next_of_and_stack_settings_mismatch(tmp_path: Path) -> None:
    rb = make("next_of+stack+nstep", 7)
    play(np.random.default_rng(0), [rb], make_naive("nstep"), 3)
    rb.save_checkpoint(tmp_path / "s.npz")
    other = ReplayBuffer(7, OBS_ENV, next_of="obs", Nstep=NSTEP)
    with pytest.raises(
        ValueError, match=r"stack_compress settings do not match this buffer: \['obs'\] in the file, None"
    ):
        other.load_checkpoint(tmp_path / "s.npz")
    other = ReplayBuffer(7, NAIVE_ENV, stack_compress="obs", Nstep=NSTEP)
    with pytest.raises(
        ValueError, match=r"next_of settings do not match this buffer: \['next_obs'\] in the file, None"
    ):
        other.load_checkpoint(tmp_path / "s.npz")


# ================================================================================================ format version 1
def _save_as_laber_0_1_0(buffer: ReplayBuffer, path: Path) -> None:
    """The writer of laber 0.1.0 (format version 1), verbatim but for the temporary file."""
    extra = buffer._checkpoint_extra()
    arrays: dict[str, np.ndarray] = {"rows": _records(buffer)[: buffer._stored].view(np.uint8)}
    json_extra: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, np.ndarray):
            arrays[f"extra/{key}"] = value
        else:
            json_extra[key] = value
    if buffer._nstep is not None:
        for key, value in buffer._nstep.pending().items():
            arrays[f"pending/{key}"] = value
    if buffer._next_of is not None:
        for key, value in buffer._next_of.state().items():
            arrays[f"nextof/{key}"] = value
    if buffer._stack is not None:
        for key, value in buffer._stack.state().items():
            arrays[f"stack/{key}"] = value
    meta = {
        "format": "laber-replay-buffer",
        "version": 1,
        "buffer": buffer._describe(),
        "stored": buffer._stored,
        "next": buffer._next,
        "rng": buffer._rng.bit_generator.state,
        "extra": json_extra,
    }
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_files_of_laber_0_1_0_still_load(config: str, tmp_path: Path) -> None:
    rb = filled(config, 6, seed=5)
    _save_as_laber_0_1_0(rb, tmp_path / "old.npz")
    rb.save_checkpoint(tmp_path / "new.npz")
    old, new = members(tmp_path / "old.npz"), members(tmp_path / "new.npz")
    assert list(old) == list(new) and get_meta(old) == get_meta(new)  # the same format, version 1
    for size in (6, 4):
        loaded = make(config, size)
        loaded.load_checkpoint(tmp_path / "old.npz")
        expect = make(config, size)
        expect.load_checkpoint(tmp_path / "new.npz")
        same(loaded, expect)


def test_other_bit_generators_round_trip(tmp_path: Path) -> None:
    """The state of MT19937 or Philox holds arrays: saved as JSON lists, restored exactly."""
    for bit_generator in (np.random.MT19937(3), np.random.Philox(3), np.random.SFC64(3)):
        rb = ReplayBuffer(5, NAIVE_ENV, rng=np.random.Generator(bit_generator))
        play(np.random.default_rng(0), [rb], make_naive("plain"), 2)
        rb.save_checkpoint(tmp_path / "g.npz")
        other = ReplayBuffer(5, NAIVE_ENV, rng=np.random.Generator(type(bit_generator)()))
        other.load_checkpoint(tmp_path / "g.npz")
        np.testing.assert_array_equal(other.sample(8)["indexes"], rb.sample(8)["indexes"])


# ================================================================================================ temporaries
def _live_temporaries(directory: Path, name: str) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_the_next_save_removes_what_a_killed_save_left(tmp_path: Path) -> None:
    """A save killed while writing leaves its temporary; the next save to the same path deletes it."""
    target = tmp_path / "b.npz"
    script = """
import os, signal, sys
import numpy as np
import laber.checkpoint as ck
from laber import ReplayBuffer

rb = ReplayBuffer(2000, {"obs": {"shape": 64}})
rb.add(obs=np.ones((2000, 64)))
def dying(fh, arrays):
    import io
    whole = io.BytesIO()
    real(whole, arrays)
    fh.write(whole.getvalue()[: len(whole.getvalue()) // 2])  # half of the archive, then the process dies
    fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
real, ck._write_npz = ck._write_npz, dying
rb.save_checkpoint(sys.argv[1])
"""
    env = {**os.environ, "PYTHONPATH": str(Path(laber.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", script, str(target)], env=env, check=False)
    assert done.returncode == -signal.SIGKILL
    left = _live_temporaries(tmp_path, "b.npz")
    assert len(left) == 1 and not target.exists()
    assert (tmp_path / left[0]).stat().st_size > 100_000
    rb = filled("plain", 5, seed=0)
    rb.save_checkpoint(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npz"]


def test_stale_temporaries_of_laber_0_1_0_are_removed_when_old(tmp_path: Path) -> None:
    target = tmp_path / "b.npz"
    rb = filled("plain", 5, seed=0)
    _save_as_laber_0_1_0(rb, tmp_path / "whole.npz")
    start = (tmp_path / "whole.npz").read_bytes()[:500]  # the beginning of a checkpoint of laber 0.1.0
    (tmp_path / "whole.npz").unlink()
    old = time.time() - 2 * 3600
    for name, content, mtime in (
        (".b.npz.abcd_12.tmp", start, old),  # 7 characters: not mkstemp's name
        (".b.npz.abcd_123.tmp", start, old),  # laber 0.1.0's, an hour old: removed
        (".b.npz.efgh_567.tmp", start, None),  # too recent: kept (a live save of laber 0.1.0?)
        (".b.npz.ijkl_901.tmp", b"not a checkpoint at all, " * 4, old),  # another program's: kept
    ):
        (tmp_path / name).write_bytes(content)
        if mtime is not None:
            os.utime(tmp_path / name, (mtime, mtime))
    rb.save_checkpoint(target)
    assert _live_temporaries(tmp_path, "b.npz") == [
        ".b.npz.abcd_12.tmp",
        ".b.npz.efgh_567.tmp",
        ".b.npz.ijkl_901.tmp",
    ]


@pytest.mark.skipif(sys.platform == "win32", reason="flock and symlinks")
def test_saving_never_deletes_what_laber_did_not_create_or_a_live_save(tmp_path: Path) -> None:
    import fcntl

    target = tmp_path / "b.npz"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    keep = [
        "b.npz.laber-0123456789abcdef.tmp",  # no leading dot
        ".b.npz.laber-0123456789abcdeg.tmp",  # not hex
        ".b.npz.laber-0123456789abcde.tmp",  # 15 digits
        ".b.npz.laber-0123456789abcdef.tmp.keep",
        ".b.npz.laber-0123456789abcdef.tmpx",
        ".other.npz.laber-0123456789abcdef.tmp",  # another target
        ".xb.npz.laber-0123456789abcdef.tmp",
        ".bxnpz.laber-0123456789abcdef.tmp",  # the dot of the name is not a wildcard
        ".b.npz.laber-0123456789ABCDEF.tmp",
    ]
    old = time.time() - 3 * 3600
    for name in keep:
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, (old, old))
    (tmp_path / ".b.npz.laber-aaaaaaaaaaaaaaaa.tmp").mkdir()  # a directory of the name
    os.symlink(victim, tmp_path / ".b.npz.laber-bbbbbbbbbbbbbbbb.tmp")  # a symlink of the name
    live = tmp_path / ".b.npz.laber-cccccccccccccccc.tmp"  # a save in progress (holds its lock)
    live.write_bytes(b"PK\x03\x04" + b"x" * 1000)
    os.utime(live, (old, old))
    fresh = tmp_path / ".b.npz.laber-dddddddddddddddd.tmp"  # just created, its lock perhaps not taken yet
    fresh.write_bytes(b"")
    stale = tmp_path / ".b.npz.laber-eeeeeeeeeeeeeeee.tmp"  # left by a killed save: removed
    stale.write_bytes(b"PK\x03\x04" + b"x" * 1000)
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        filled("plain", 5, seed=0).save_checkpoint(target)
    for name in [*keep, ".b.npz.laber-aaaaaaaaaaaaaaaa.tmp", live.name, fresh.name]:
        assert (tmp_path / name).exists(), name
    assert (tmp_path / ".b.npz.laber-bbbbbbbbbbbbbbbb.tmp").is_symlink() and victim.read_text() == "keep me"
    assert not stale.exists()
    ReplayBuffer(5, NAIVE_ENV).load_checkpoint(target)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_checkpoint_gets_the_usual_permissions(umask: int, tmp_path: Path) -> None:
    previous = os.umask(umask)
    try:
        filled("plain", 5, seed=0).save_checkpoint(tmp_path / "b.npz")
    finally:
        os.umask(previous)
    assert (tmp_path / "b.npz").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failed_save_leaves_no_temporary_and_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "b.npz"
    rb = filled("plain", 5, seed=0)
    rb.save_checkpoint(target)
    before = target.read_bytes()

    def failing(fh: Any, arrays: Any) -> None:
        fh.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "_write_npz", failing)
    with pytest.raises(KeyboardInterrupt):
        filled("plain", 5, seed=1).save_checkpoint(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.npz"] and target.read_bytes() == before


# ================================================================================================ memory
def test_loading_reads_rows_straight_into_storage(tmp_path: Path, storage_backend: str) -> None:
    """Peak memory while loading (beyond the buffer's own storage) is a few chunks, not a copy of the file."""
    if storage_backend == "device":
        pytest.skip("a device buffer's load stages its rows in one host copy, then uploads them (documented)")
    rows, width = 16384, 1024  # 16 MiB of rows
    env = {"obs": {"shape": width, "dtype": np.uint8}}
    rb = ReplayBuffer(rows, env)
    rb.add(obs=np.random.default_rng(0).integers(0, 255, (rows, width), dtype=np.uint8))
    path = tmp_path / "big.npz"
    rb.save_checkpoint(path)
    size = path.stat().st_size
    for new_size in (rows, rows // 2):
        target = ReplayBuffer(new_size, env)
        _records(target)[:] = 0  # its storage pages exist before the load
        tracemalloc.start()
        try:
            target.load_checkpoint(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < size / 4, (peak, size)
        np.testing.assert_array_equal(target.get_all_transitions()["obs"], rb.get_all_transitions()["obs"][-new_size:])
