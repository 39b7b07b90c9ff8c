"""``next_of`` and ``stack_compress`` memory sharing: links between rows of one ring buffer.

``next_of`` (``NextOfLinks``): store ``obs`` once and derive ``next_obs`` from a later row.
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

import math
import sys
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from laber._accel import kernels
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


class _SideStore:
    """Growable per-field side arrays with a free list of slots (shared by ``next_of`` and ``stack_compress``)."""

    def __init__(self, shapes: Mapping[str, tuple[tuple[int, ...], np.dtype[Any]]], capacity: int = 8) -> None:
        self._shapes = dict(shapes)
        self._initial = capacity
        self._reset_slots()

    def _reset_slots(self) -> None:
        self._capacity = self._initial
        self._side = {n: np.zeros((self._capacity, *shape), dtype) for n, (shape, dtype) in self._shapes.items()}
        self._free: list[int] = list(range(self._capacity - 1, -1, -1))

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

    @property
    def initial_capacity(self) -> int:
        """Slots of the side store when empty (after ``clear``); a restored store should have at least as many."""
        return self._initial

    def _slot_state(self) -> dict[str, np.ndarray]:
        out = {f"side/{n}": a for n, a in self._side.items()}
        out["free"] = np.array(self._free, dtype=np.int64)
        return out

    def _restore_slots(self, state: Mapping[str, np.ndarray]) -> None:
        self._side = {n: np.array(state[f"side/{n}"]) for n in self._shapes}
        self._capacity = next(iter(self._side.values())).shape[0]
        self._free = [int(x) for x in state["free"]]


Reader = Callable[[str, np.ndarray], np.ndarray]
RowReader = Callable[[str, int], np.ndarray]  # the stored value of a field at one row (a view may do)


class NextOfLinks(_SideStore):
    """The side store, free slots and pending links of the ``next_of`` fields of one ring buffer."""

    def __init__(self, size: int, pairs: Mapping[str, Field], capacity: int = 8) -> None:
        """``pairs`` maps each derived field (``next_obs``) to the stored field it comes from (``obs``)."""
        self.size = size
        self.pairs = dict(pairs)
        super().__init__({n: (f.shape, f.dtype) for n, f in self.pairs.items()}, capacity)
        self.clear()

    def clear(self) -> None:
        self._reset_slots()
        # pending links: source row, its slot, its step count (target row = (source + steps) % size)
        self._pending = np.zeros((0, 3), dtype=np.int64)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._side.values()) + self._pending.nbytes

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
        read: Reader,
        values: Mapping[str, np.ndarray],
        steps: np.ndarray,
    ) -> None:
        """Link the new rows ``rows`` (written in order) and resolve pending links whose target is among them.

        ``read(field, rows)`` returns the stored values of a field at ``rows``; ``values[name]`` the added
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
                    equal &= _same_bytes(self._side[name][slot], read(source_field.name, target[hit]))
                links[src[equal]] = -st[equal]
                self._release(slot[equal])
                self._pending = self._pending[~hit]
        # 2. the new rows: link within this write where the successor is here and equal, else a slot
        pos = np.arange(k) + steps
        inside = pos < k
        equal = inside.copy()
        if inside.any():
            here = np.flatnonzero(inside)
            for name, source_field in self.pairs.items():
                v = np.asarray(values[name], dtype=source_field.dtype).reshape(k, *source_field.shape)
                equal[here] &= _same_bytes(v[here], read(source_field.name, rows[pos[here]]))
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

    def before_write_one(self, row: int, links: np.ndarray) -> None:
        """``before_write`` for one stored row ``row`` (the add of one transition): scalar operations only."""
        old = int(links[row])
        if old >= 0:
            self._free.append(old)
        pending = self._pending
        if pending.shape[0] and row in pending[:, 0].tolist():  # a handful of entries: a list beats array calls
            self._pending = pending[pending[:, 0] != row]

    def after_write_one(
        self, row: int, links: np.ndarray, read_one: RowReader, values: Mapping[str, np.ndarray], steps: int
    ) -> None:
        """``after_write`` for one new row ``row``: the same links, slots and pending entries, without the
        array machinery a batch needs (an add of one transition is the hot path of every agent).

        ``read_one(field, row)`` returns the stored value of a field at ``row`` (a view is fine: it is read at
        once and not kept). Its successor is never in the same write, so the row always takes a slot and waits;
        pending rows whose successor is ``row`` are resolved as in ``after_write``. The usual case, one entry
        (the previous row) resolved by this row, builds no intermediate arrays."""
        pending = self._pending
        if pending.shape[0]:
            # a handful of entries (rows whose successor is not stored yet): plain integers beat array calls here
            entries = pending.tolist()
            hits = [i for i, (src, _, st) in enumerate(entries) if (src + st) % self.size == row]
            if hits:
                stored = {f.name: read_one(f.name, row).tobytes() for f in self.pairs.values()}
                for i in hits:
                    src, slot, st = entries[i]
                    if all(self._side[n][slot].tobytes() == stored[f.name] for n, f in self.pairs.items()):
                        links[src] = -st
                        self._free.append(slot)
                keep = [i for i in range(len(entries)) if i not in hits]
                pending = pending[keep] if keep else pending[:0]
        slot_one = self._free.pop() if self._free else int(self._allocate(1)[0])  # as _allocate(1) hands out
        for name, source_field in self.pairs.items():
            self._side[name][slot_one] = np.asarray(values[name], dtype=source_field.dtype).reshape(source_field.shape)
        links[row] = slot_one
        entry = np.array([[row, slot_one, steps]], dtype=np.int64)
        self._pending = np.concatenate([pending, entry]) if pending.shape[0] else entry

    # ------------------------------------------------------------------------------------------- reads
    def targets(self, indices: np.ndarray, links: np.ndarray) -> np.ndarray:
        """The row each next value of rows ``indices`` (links ``links``) is stored in, -1 where it is in the
        side store (a row whose target was not written yet or was overwritten)."""
        out: np.ndarray = np.where(links < 0, (indices - links) % self.size, -1)
        return out

    def fill(self, links: np.ndarray, values: Mapping[str, np.ndarray]) -> None:
        """``values[name]`` holds the next values of rows whose ``links`` are negative (read from their
        :meth:`targets`); write the other rows' from the side store (``gather`` without the reads)."""
        held = links >= 0
        if held.any():
            for name in self.pairs:
                values[name][held] = self._side[name][links[held]]

    def gather(self, indices: np.ndarray, links: np.ndarray, read: Reader) -> dict[str, np.ndarray]:
        """The derived fields of rows ``indices`` whose links are ``links`` (fresh arrays)."""
        linked = links < 0
        target = (indices - links) % self.size
        out = {}
        if linked.all():  # the usual case: no drawn row ends its episode; no second copy of the values
            return {name: read(source_field.name, target) for name, source_field in self.pairs.items()}
        for name, source_field in self.pairs.items():
            value = np.empty((indices.shape[0], *source_field.shape), source_field.dtype)
            value[linked] = read(source_field.name, target[linked])
            value[~linked] = self._side[name][links[~linked]]
            out[name] = value
        return out

    # ------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, np.ndarray]:
        """For checkpoints: ``side/<field>`` (the side arrays, not copied), ``free`` (the free slots; the last one
        is handed out first) and ``pending`` (``(links, 3)`` int64: source row, slot, steps)."""
        out = self._slot_state()
        out["pending"] = self._pending
        return out

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the side store, free slots and pending links with a ``state()`` (copied; checked by the
        caller against the rows' links)."""
        self._restore_slots(state)
        self._pending = np.array(state["pending"], dtype=np.int64).reshape(-1, 3)


STACK_LINK = "_stack_link"
_LITTLE_ENDIAN = sys.byteorder == "little"  # the kernel packs a pixel's 4 frames into one uint32, oldest lowest
_BYTES = (np.dtype(np.uint8), np.dtype(np.int8))


def _flat_view(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """``array`` reshaped to ``shape`` as a view, or None where that needs a copy (never a copy of a column)."""
    try:
        flat: np.ndarray = array.reshape(shape, copy=False)
        return flat
    except ValueError:
        return None
    except TypeError:  # numpy < 2.1: no copy argument
        view: np.ndarray = array.view()
        try:
            view.shape = shape
        except AttributeError:
            return None
        return view


class StackLinks(_SideStore):
    """``stack_compress``: fields of stacked frames (stack along the last axis) store their newest frame only.

    A stacked observation ``o_t`` of shape ``(*frame, S)`` usually repeats ``S - 1`` frames of the previous one:
    ``o_t[..., :-1] == o_{t-1}[..., 1:]``. Each row stores ``o_t[..., -1]`` in its record and a link (a hidden
    int64 column): ``-1`` when that equality holds bitwise with the row written just before it (for every
    stacked field), so the older frames are the newest frames of the rows before it; otherwise (an episode's
    first observation, or the first row after ``clear``) the row is an *anchor* and its ``S - 1`` older frames
    live in a side-store slot, the link's value. Reading row ``r`` walks back at most ``S - 1`` rows: frame
    ``S - 1 - d`` is the stored frame of row ``r - d`` until an anchor ``a = r - e`` is met, and
    ``side[a][..., S - 1 - d + e]`` after it. Derived values are always exactly what was added.

    Before rows are overwritten (ring wrap-around), the ``S - 1`` rows after them that still link back into them
    are made anchors, so a link never reaches an overwritten row. Memory: one frame per row plus ``S - 1`` frames
    per episode, about ``1/S`` of storing the stacks.
    """

    def __init__(self, size: int, fields: Mapping[str, Field], capacity: int = 8) -> None:
        """``fields``: the stacked fields with their full shapes ``(*frame, S)``; all share one ``S``."""
        self.size = size
        self.fields = dict(fields)
        self.depth = next(iter(self.fields.values())).shape[-1]
        super().__init__({n: ((*f.shape[:-1], self.depth - 1), f.dtype) for n, f in self.fields.items()}, capacity)

    def clear(self) -> None:
        self._reset_slots()

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._side.values())

    @staticmethod
    def frame_field(field: Field) -> Field:
        """The record field of a stacked field: its newest frame."""
        return Field(field.name, field.shape[:-1], field.dtype)

    # ------------------------------------------------------------------------------------------- reads
    def reconstruct(
        self, indices: np.ndarray, links: np.ndarray, frames: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The full stacks of rows ``indices`` (fresh arrays); ``links`` and ``frames[name]`` are the columns.

        4-deep stacks of one-byte frames go through a numba kernel when numba is enabled (``laber._kernels_stack``:
        the same bytes, about five times faster); everything else through numpy here.
        """
        depth, size, k = self.depth, self.size, indices.shape[0]
        kern = kernels("stack") if depth == 4 and _LITTLE_ENDIAN else None
        if kern is not None:
            fast = {name: self._gather4(kern, name, indices, links, frames[name]) for name in self.fields}
            if all(v is not None for v in fast.values()):
                return fast  # type: ignore[return-value]
        # e: steps back to the nearest anchor within the window (depth - 1: none, every frame is stored)
        e = np.full(k, depth - 1, dtype=np.int64)
        slot = np.zeros(k, dtype=np.int64)
        found = np.zeros(k, dtype=bool)
        for t in range(depth - 1):
            link = links[(indices - t) % size]
            new = ~found & (link >= 0)
            e[new] = t
            slot[new] = link[new]
            found |= new
        out = {}
        for name, f in self.fields.items():
            value = np.empty((k, *f.shape), f.dtype)
            column, side = frames[name], self._side[name]
            for d in range(depth):
                stored = d <= e
                if stored.all():
                    value[..., depth - 1 - d] = column[(indices - d) % size]
                    continue
                value[stored, ..., depth - 1 - d] = column[(indices[stored] - d) % size]
                older = ~stored
                value[older, ..., depth - 1 - d] = side[slot[older], ..., depth - 1 - d + e[older]]
            out[name] = value
        return out

    def reconstruct_next(
        self, name: str, indices: np.ndarray, targets: np.ndarray, links: np.ndarray, column: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The stacks of field ``name`` at rows ``indices`` and at rows ``targets`` (``next_of`` of a stacked
        field; a negative target leaves its row of the second array unwritten), in one pass of the numba kernel
        (``laber._kernels_stack.gather4_next``: where a target is the next row, the two stacks' five frames are
        read once); None where the kernel does not apply (see ``reconstruct``), the caller then reconstructs."""
        kern = kernels("stack") if self.depth == 4 and _LITTLE_ENDIAN else None
        field = self.fields[name]
        if kern is None or field.dtype not in _BYTES or column.ndim < 2:
            return None
        frame = column.shape[1:]
        pixels = math.prod(frame)
        rows = _flat_view(column.view(np.uint8), (column.shape[0], pixels))
        if rows is None:
            return None
        side = self._side[name].view(np.uint8).reshape(-1, pixels, 3)
        k = indices.shape[0]
        value = np.empty((k, *frame, 4), field.dtype)
        following = np.empty((k, *frame, 4), field.dtype)
        kern.gather4_next(
            rows,
            side,
            links,
            np.asarray(indices, dtype=np.int64),
            np.asarray(targets, dtype=np.int64),
            self.size,
            value.view(np.uint32).reshape(k, pixels),
            following.view(np.uint32).reshape(k, pixels),
        )
        return value, following

    def _gather4(
        self, kern: Any, name: str, indices: np.ndarray, links: np.ndarray, column: np.ndarray
    ) -> np.ndarray | None:
        """``reconstruct`` of one 4-deep field through the kernel; None when its frames are not one-byte
        integers laid out contiguously within a row (numpy's path then)."""
        field = self.fields[name]
        if field.dtype not in _BYTES or column.ndim < 2:
            return None
        frame = column.shape[1:]
        pixels = math.prod(frame)
        rows = _flat_view(column.view(np.uint8), (column.shape[0], pixels))
        if rows is None:
            return None
        side = self._side[name].view(np.uint8).reshape(-1, pixels, 3)
        value = np.empty((indices.shape[0], *frame, 4), field.dtype)
        kern.gather4(
            rows,
            side,
            links,
            np.asarray(indices, dtype=np.int64),
            self.size,
            value.view(np.uint32).reshape(indices.shape[0], pixels),
        )
        return value

    # ------------------------------------------------------------------------------------------- writes
    def before_write(
        self, start: int, count: int, stored: int, links: np.ndarray, frames: Mapping[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        """Rows ``start .. start + count - 1`` (ring order) are about to be written.

        Makes anchors of the stored rows after them that link back into them, frees the slots of overwritten
        anchors, and returns the full stacks of the row before ``start`` (to link the first new row to), or
        None when there is no such row.
        """
        size = self.size
        previous = None
        if stored and count < size:
            previous = self.reconstruct(np.array([(start - 1) % size], dtype=np.int64), links, frames)
        after = (start + count + np.arange(min(self.depth - 1, size - count), dtype=np.int64)) % size
        after = after[(after < stored) & (links[after] < 0)]
        kept = self.reconstruct(after, links, frames) if after.size else None
        written = (start + np.arange(min(count, size), dtype=np.int64)) % size
        old = links[written[written < stored]]
        self._release(old[old >= 0])
        if kept is not None:
            slots = self._allocate(after.size)
            for name, value in kept.items():
                self._side[name][slots] = value[..., :-1]
            links[after] = slots
        return previous

    def after_write(
        self,
        rows: np.ndarray,
        links: np.ndarray,
        values: Mapping[str, np.ndarray],
        previous: Mapping[str, np.ndarray] | None,
    ) -> None:
        """Link the new rows ``rows`` (written in order; ``values[name]`` their full stacks ``(k, *shape)``)."""
        k = rows.shape[0]
        linked = np.ones(k, dtype=bool)
        if previous is None:
            linked[0] = False
        for name in self.fields:
            v = values[name]
            if k > 1:
                linked[1:] &= _same_bytes(v[1:, ..., :-1], v[:-1, ..., 1:])
            if previous is not None:
                linked[0] &= bool(_same_bytes(v[:1, ..., :-1], previous[name][:, ..., 1:])[0])
        links[rows[linked]] = -1
        anchors = np.flatnonzero(~linked)
        if anchors.size:
            slots = self._allocate(anchors.size)
            for name in self.fields:
                self._side[name][slots] = values[name][anchors, ..., :-1]
            links[rows[anchors]] = slots

    # ------------------------------------------------------------------------------------------- checkpoints
    def state(self) -> dict[str, np.ndarray]:
        """For checkpoints: ``side/<field>`` (``(slots, *frame, depth - 1)``, not copied) and ``free``."""
        return self._slot_state()

    def restore(self, state: Mapping[str, np.ndarray]) -> None:
        """Replace the side store and free slots with a ``state()`` (copied; checked by the caller)."""
        self._restore_slots(state)
