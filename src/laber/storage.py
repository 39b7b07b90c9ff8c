"""``next_of`` memory sharing: store ``obs`` once and derive ``next_obs`` from a later row.

Each stored row ``r`` carries a link (a hidden int64 column). For a row whose window summed ``s`` steps (``s = 1``
without N-step), the transition ``s`` rows later begins where this one ended, so its ``obs`` normally *is* this
row's ``next_obs``: the link is then ``-s`` and ``next_obs[r] = obs[(r + s) % size]``. The link is made only when
the two are bitwise equal, so derived values are always exactly what was added. Otherwise (the last step of an
episode, whose final observation is never an ``obs``; or the newest rows, whose successor is not stored yet) the
value lives in a small side store and the link is its slot ``>= 0``; a pending row is linked, and its slot
freed, as soon as its successor is written and found equal.

A row is always overwritten before the later row it links to, so links never dangle. The side store holds about
one slot per episode in the buffer, so for episodes of a few dozen steps or more the memory is within a few
percent of storing ``obs`` alone (naive storage of ``next_obs`` doubles it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from laber.fields import Field

__all__ = ["NextOfLinks"]

LINK = "_next_link"


def _same_bytes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise bitwise equality of two ``(k, ...)`` arrays of one dtype."""
    k = a.shape[0]
    av = np.ascontiguousarray(a).view(np.uint8).reshape(k, -1)
    bv = np.ascontiguousarray(b).view(np.uint8).reshape(k, -1)
    same: np.ndarray = (av == bv).all(axis=1)
    return same


class NextOfLinks:
    """The side store, free slots and pending links of the ``next_of`` fields of one ring buffer."""

    def __init__(self, size: int, pairs: Mapping[str, Field], capacity: int = 64) -> None:
        """``pairs`` maps each derived field (``next_obs``) to the stored field it comes from (``obs``)."""
        self.size = size
        self.pairs = dict(pairs)
        self._capacity = capacity
        self.clear()

    def clear(self) -> None:
        self._side = {n: np.zeros((self._capacity, *f.shape), f.dtype) for n, f in self.pairs.items()}
        self._free: list[int] = list(range(self._capacity - 1, -1, -1))
        # pending links: source row, its slot, its step count (target row = (source + steps) % size)
        self._pending = np.zeros((0, 3), dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._side.values()) + self._pending.nbytes

    # ------------------------------------------------------------------------------------------- slots
    def _allocate(self, count: int) -> np.ndarray:
        while len(self._free) < count:
            old = self._capacity
            self._capacity *= 2
            for n, arr in self._side.items():
                grown = np.zeros((self._capacity, *arr.shape[1:]), arr.dtype)
                grown[:old] = arr
                self._side[n] = grown
            self._free.extend(range(self._capacity - 1, old - 1, -1))
        taken = self._free[len(self._free) - count :]
        del self._free[len(self._free) - count :]
        return np.array(taken[::-1], dtype=np.int64)

    def _release(self, slots: np.ndarray) -> None:
        self._free.extend(slots.tolist())

    # ------------------------------------------------------------------------------------------- writes
    def before_write(self, rows: np.ndarray, links: np.ndarray) -> None:
        """Rows ``rows`` are about to be overwritten: free their slots and forget their pending links."""
        old = links[rows]
        self._release(old[old >= 0])
        if self._pending.shape[0]:
            self._pending = self._pending[~np.isin(self._pending[:, 0], rows)]

    def after_write(
        self,
        rows: np.ndarray,
        links: np.ndarray,
        sources: Mapping[str, np.ndarray],
        values: Mapping[str, np.ndarray],
        steps: np.ndarray,
    ) -> None:
        """Link the new rows ``rows`` (written in order) and resolve pending links whose target is among them.

        ``sources[name]`` is the storage column of the field ``name`` derives from; ``values[name]`` the added
        values of ``name``, ``(k, *shape)``; ``steps`` the step count of each new row.
        """
        k = rows.shape[0]
        # 1. pending rows whose successor has just been written
        if self._pending.shape[0]:
            target = (self._pending[:, 0] + self._pending[:, 2]) % self.size
            hit = np.isin(target, rows)
            if hit.any():
                src, slot, st = self._pending[hit].T
                equal = np.ones(src.shape[0], dtype=bool)
                for name, source_field in self.pairs.items():
                    col = sources[source_field.name]
                    equal &= _same_bytes(self._side[name][slot], col[target[hit]])
                links[src[equal]] = -st[equal]
                self._release(slot[equal])
                self._pending = self._pending[~hit]
        # 2. the new rows: link within this write where the successor is here and equal, else a slot
        pos = np.arange(k) + steps
        inside = pos < k
        equal = inside.copy()
        if inside.any():
            for name, source_field in self.pairs.items():
                col = sources[source_field.name]
                here = np.flatnonzero(inside)
                v = np.asarray(values[name], dtype=source_field.dtype).reshape(k, *source_field.shape)
                equal[here] &= _same_bytes(v[here], col[rows[pos[here]]])
        links[rows[equal]] = -steps[equal]
        need = np.flatnonzero(~equal)
        if need.size:
            slots = self._allocate(need.size)
            for name, source_field in self.pairs.items():
                v = np.asarray(values[name], dtype=source_field.dtype).reshape(k, *source_field.shape)
                self._side[name][slots] = v[need]
            links[rows[need]] = slots
            waiting = ~inside[need]  # successor not written yet: try to link when it is
            if waiting.any():
                add = np.stack([rows[need][waiting], slots[waiting], steps[need][waiting]], axis=1)
                self._pending = np.concatenate([self._pending, add.astype(np.int64)])

    # ------------------------------------------------------------------------------------------- reads
    def gather(
        self, indices: np.ndarray, links: np.ndarray, sources: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The derived fields of rows ``indices`` whose links are ``links`` (fresh arrays)."""
        linked = links < 0
        target = (indices - links) % self.size
        out = {}
        for name, source_field in self.pairs.items():
            value = np.empty((indices.shape[0], *source_field.shape), source_field.dtype)
            value[linked] = sources[source_field.name][target[linked]]
            value[~linked] = self._side[name][links[~linked]]
            out[name] = value
        return out

    # ------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, np.ndarray]:
        out = {f"side/{n}": a for n, a in self._side.items()}
        out["free"] = np.array(self._free, dtype=np.int64)
        out["pending"] = self._pending
        return out

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        self._side = {n: np.array(state[f"side/{n}"]) for n in self.pairs}
        self._capacity = next(iter(self._side.values())).shape[0]
        self._free = [int(x) for x in state["free"]]
        self._pending = np.array(state["pending"], dtype=np.int64).reshape(-1, 3)
