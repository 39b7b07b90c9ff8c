"""Deep, comparable snapshots of laber objects, for tests that check a failed call changed nothing.

``snapshot(obj)`` returns a nested structure of plain Python values and numpy array copies that captures the
complete state of a ``ReplayBuffer`` / ``PrioritizedReplayBuffer`` (record storage, counters, the current
episode's length, pending N-step rows, ``next_of`` and ``stack_compress`` side stores with their free lists and
pending links, priorities, the sum/min tree, the running maximum, the sample count and ``check_for_update``
stamps, the rng state), whatever its storage: process memory, memory-mapped files (the files it maps), a torch
device (the rows' bytes copied to the host, the device generator) or shared memory (``MPReplayBuffer`` /
``MPPrioritizedReplayBuffer``: the counters and running maximum published in shared memory, the lock's holder and
the segments, besides what the public methods report); of a ``ReverseReplayBuffer`` (its cursor and rows), a
``SelectiveReplayBuffer`` (its episode boundaries and rows), a ``HindsightReplayBuffer`` (the replay buffer, the
current episode's buffer, the generator, the settings), a LaBER sampler (settings and generator state), a
``SumMinTree``, a ``numpy.random.Generator``, a path on disk (what is there: bytes or a directory listing), an
object of the table's own fixtures that describes itself (``_robustness_state()``: a counting environment, the
process's shared-memory segments), and dicts, lists and tuples of these. ``assert_unchanged(before, after)``
compares two snapshots and fails with one readable line per difference.

This is the one module of the tests that reads private attributes: when the internals change, update it here.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from laber import (
    HindsightReplayBuffer,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    ReverseReplayBuffer,
    SelectiveReplayBuffer,
    SumMinTree,
    _accel,
)
from laber.laber import _LaBER
from laber.links import NextOfLinks, StackLinks, _SideStore
from laber.storage import MmapStorage, SharedStorage

__all__ = ["assert_unchanged", "diff", "snapshot"]


def _array(a: Any) -> np.ndarray:
    """A host copy that compares by dtype, shape and bytes (so NaN equals NaN and -0.0 differs from 0.0); a torch
    tensor (a device buffer's rows) is copied to the host first."""
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.array(a, copy=True)


def _side_store(store: _SideStore) -> dict[str, Any]:
    out: dict[str, Any] = {
        "capacity": store._capacity,
        "side": {name: _array(a) for name, a in store._side.items()},
        "free": list(store._free),
    }
    if isinstance(store, NextOfLinks):
        out["pending_links"] = _array(store._pending)
    return out


def _tree(tree: SumMinTree) -> dict[str, Any]:
    # ``_last`` is scratch space of ``last_wins``, rewritten by every deduplication: not state.
    return {
        "capacity": tree.capacity,
        "top_size": tree.top_size,
        "min_fanout": tree.min_fanout,
        "sum_offsets": _array(tree._sum_off),
        "min_offsets": _array(tree._min_off),
        "sum_tree": _array(tree._sum_flat),
        "min_tree": _array(tree._min_flat),
        "levels_are_views": all(level.base is tree._sum_flat for level in tree._sums)
        and all(level.base is tree._min_flat for level in tree._mins),
    }


def _storage(rb: ReplayBuffer) -> dict[str, Any]:
    """Where the rows live: the backend, and what it holds outside the rows (files, segments, the lock)."""
    storage = rb._storage
    out: dict[str, Any] = {"backend": type(storage).__name__}
    if isinstance(storage, MmapStorage):
        out["files"] = [str(path) for path in storage.paths]
    if isinstance(storage, SharedStorage):
        out["segments"] = list(storage.segment_names)
        out["lock_holder"] = int(storage._owner[0])  # 0: free (a failed call must not keep the lock)
        out["counters"] = None if rb._counters is None else _array(rb._counters)  # [next, stored], published
    if storage.on_device:
        rows = rb._rows
        generator = rows._generator
        out["device"] = str(rows.device)
        out["host_columns"] = {name: _array(rows.columns[name]) for name in rows._host_names}
        out["device_generator"] = None if generator is None else _array(generator.get_state())
    return out


def _buffer(rb: ReplayBuffer) -> dict[str, Any]:
    rows = rb._rows
    # through the public methods first (with shared memory they take the lock and load the published counters)
    public: dict[str, Any] = {
        "stored": rb.get_stored_size(),
        "size": rb.get_buffer_size(),
        "next": rb.get_next_index(),
        "episode_len": rb.get_current_episode_len(),
        "is_Nstep": rb.is_Nstep(),
    }
    if isinstance(rb, PrioritizedReplayBuffer):
        public["max_priority"] = rb.get_max_priority()
    out: dict[str, Any] = {
        "class": type(rb).__name__,
        "public": public,
        "size": rb._size,
        "stored": rb._stored,
        "next": rb._next,
        "episode_len": rb._episode_len,
        "backend": _storage(rb),
        "storage": {name: _array(rb._cols[name]) for name in rb._record_names},
        # the record array's bytes, padding included (a torch device's store is a uint8 tensor already)
        "storage_bytes": _array(rows.store.view(np.uint8) if isinstance(rows.store, np.ndarray) else rows.store),
        "record_dtype": rows.record.descr,
        "rng": rb._rng.bit_generator.state,
        "nstep_pending": None
        if rb._nstep is None or rb._nstep._pending is None
        else {name: _array(v) for name, v in rb._nstep._pending.items()},
        "next_of": None if rb._next_of is None else _side_store(rb._next_of),
        "stack_compress": None if rb._stack is None else _side_store(rb._stack),
    }
    if isinstance(rb, PrioritizedReplayBuffer):
        out["alpha"] = rb.alpha
        out["eps"] = rb.eps
        out["priorities"] = _array(rb._priority_column())
        out["max_priority"] = rb._max_priority
        out["tree"] = _tree(rb._tree)
        out["sample_count"] = rb._sample_count
        out["row_stamps"] = None if rb._stamps is None else _array(rb._stamps)  # check_for_update
        out["shared_max"] = None if rb._shared_max is None else _array(rb._shared_max)  # [max, samples], shared
    return out


def _reverse(rb: ReverseReplayBuffer) -> dict[str, Any]:
    return {"class": "ReverseReplayBuffer", "stride": rb.stride, "cursor": rb._cursor, "rows": _buffer(rb._rb)}


def _selective(rb: SelectiveReplayBuffer) -> dict[str, Any]:
    return {
        "class": "SelectiveReplayBuffer",
        "episodes": rb.get_stored_episode_size(),
        "begins": list(rb._begins),
        "rows": _buffer(rb._rb),
    }


def _hindsight(rb: HindsightReplayBuffer) -> dict[str, Any]:
    return {
        "class": "HindsightReplayBuffer",
        "settings": {
            "max_episode_len": rb.max_episode_len,
            "strategy": rb.strategy,
            "additional_goals": rb.additional_goals,
            "prioritized": rb.prioritized,
            "goal_shape": rb.goal_shape,
        },
        "current_episode_len": rb.get_current_episode_len(),
        "rng": rb._rng.bit_generator.state,  # shared with the replay buffer's sample
        "rows": _buffer(rb._rb),
        "episode": _buffer(rb._episode),
    }


def _sampler(s: _LaBER) -> dict[str, Any]:
    return {
        "class": type(s).__name__,
        "batch_size": s._batch_size,
        "m": s._m,
        "n": s._n,
        "options": s._opts,
        "rng": s._rng.bit_generator.state,
        "torch_generators": sorted(s._torch_generators),
    }


def _path(p: Path) -> Any:
    if p.is_dir():
        return {"dir": {child.name: _path(child) for child in sorted(p.iterdir())}}
    if p.exists():
        return {"file": p.read_bytes()}
    return {"missing": str(p)}


def snapshot(obj: Any) -> Any:
    """A deep copy of ``obj``'s complete state, comparable with ``assert_unchanged``."""
    if isinstance(obj, ReplayBuffer):
        return _buffer(obj)
    if isinstance(obj, ReverseReplayBuffer):
        return _reverse(obj)
    if isinstance(obj, SelectiveReplayBuffer):
        return _selective(obj)
    if isinstance(obj, HindsightReplayBuffer):
        return _hindsight(obj)
    describe = getattr(obj, "_robustness_state", None)
    if callable(describe):  # the table's own fixtures (an environment that counts its calls, ...)
        return {"fixture": type(obj).__name__, "state": snapshot(describe())}
    if isinstance(obj, _LaBER):
        return _sampler(obj)
    if isinstance(obj, SumMinTree):
        return _tree(obj)
    if isinstance(obj, StackLinks | NextOfLinks):
        return _side_store(obj)
    if isinstance(obj, np.random.Generator):
        return {"generator": obj.bit_generator.state}
    if isinstance(obj, types.ModuleType) and obj is _accel:
        return {"numba_choice": _accel._choice}
    if isinstance(obj, Path):
        return _path(obj)
    if isinstance(obj, np.ndarray):
        return _array(obj)
    if isinstance(obj, Mapping):
        return {key: snapshot(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(snapshot(value) for value in obj)
    if obj is None or isinstance(obj, bool | int | float | str | bytes):
        return obj
    raise TypeError(f"snapshot() does not know how to capture the state of {type(obj).__name__}")


def _describe_array_diff(a: np.ndarray, b: np.ndarray) -> str:
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"dtype/shape {a.dtype}{a.shape} -> {b.dtype}{b.shape}"
    flat_a, flat_b = a.reshape(-1), b.reshape(-1)
    item = a.dtype.itemsize
    ab = np.ascontiguousarray(flat_a).view(np.uint8).reshape(flat_a.size, item)
    bb = np.ascontiguousarray(flat_b).view(np.uint8).reshape(flat_b.size, item)
    bad = np.flatnonzero((ab != bb).any(axis=1))
    first = int(bad[0])
    where = np.unravel_index(first, a.shape) if a.ndim else ()
    return (
        f"{bad.size} element(s) differ; first at {tuple(int(i) for i in where)}: {flat_a[first]!r} -> {flat_b[first]!r}"
    )


def diff(before: Any, after: Any, path: str = "state") -> list[str]:
    """One line per difference between two snapshots (empty when they are equal)."""
    if isinstance(before, np.ndarray) or isinstance(after, np.ndarray):
        if not (isinstance(before, np.ndarray) and isinstance(after, np.ndarray)):
            return [f"{path}: {type(before).__name__} -> {type(after).__name__}"]
        if before.dtype == after.dtype and before.shape == after.shape and before.tobytes() == after.tobytes():
            return []
        return [f"{path}: {_describe_array_diff(before, after)}"]
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[str] = []
        for key in before.keys() | after.keys():
            if key not in after:
                out.append(f"{path}[{key!r}]: removed")
            elif key not in before:
                out.append(f"{path}[{key!r}]: added")
            else:
                out.extend(diff(before[key], after[key], f"{path}[{key!r}]"))
        return sorted(out)
    if isinstance(before, list | tuple) and isinstance(after, list | tuple) and type(before) is type(after):
        if len(before) != len(after):
            return [f"{path}: length {len(before)} -> {len(after)}"]
        return [line for i, (a, b) in enumerate(zip(before, after, strict=True)) for line in diff(a, b, f"{path}[{i}]")]
    if type(before) is not type(after) or before != after:
        return [f"{path}: {before!r:.200} -> {after!r:.200}"]
    return []


def assert_unchanged(before: Any, after: Any) -> None:
    """Fail, listing every difference, unless the two snapshots are equal."""
    lines = diff(before, after)
    if lines:
        raise AssertionError("the failed call changed the object's state:\n  " + "\n  ".join(lines))
