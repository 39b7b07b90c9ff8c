"""Deep, comparable snapshots of laber objects, for tests that check a failed call changed nothing.

``snapshot(obj)`` returns a nested structure of plain Python values and numpy array copies that captures the
complete state of a ``ReplayBuffer`` / ``PrioritizedReplayBuffer`` (record storage, counters, pending N-step
rows, ``next_of`` and ``stack_compress`` side stores with their free lists and pending links, priorities, the
sum/min tree, the running maximum, the rng state), a LaBER sampler (settings and generator state), a
``SumMinTree``, a ``numpy.random.Generator``, a path on disk (what is there: bytes or a directory listing), and
dicts, lists and tuples of these. ``assert_unchanged(before, after)`` compares two snapshots and fails with one
readable line per difference.

This is the one module of the tests that reads private attributes: when the internals change, update it here.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from laber import PrioritizedReplayBuffer, ReplayBuffer, SumMinTree, _accel
from laber.laber import _LaBER
from laber.links import NextOfLinks, StackLinks, _SideStore

__all__ = ["assert_unchanged", "diff", "snapshot"]


def _array(a: np.ndarray) -> np.ndarray:
    """A copy that compares by dtype, shape and bytes (so NaN equals NaN and -0.0 differs from 0.0)."""
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


def _buffer(rb: ReplayBuffer) -> dict[str, Any]:
    out: dict[str, Any] = {
        "size": rb._size,
        "stored": rb._stored,
        "next": rb._next,
        "storage": {name: _array(rb._store[name]) for name in rb._record_names},
        "storage_bytes": _array(rb._store.view(np.uint8)),
        "record_dtype": rb._record.descr,
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
    return out


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
