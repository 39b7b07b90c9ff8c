"""``WriterStream``: one writer's transitions, checked at the door and turned into the rows a server stores.

Each client owns one stream. ``push`` validates a whole ``add`` call (every field present, shapes, dtypes,
integer ranges: the checks of ``ReplayBuffer.add``, through the same ``laber.fields.Schema``; priorities finite,
``>= 0`` and within the shard's float64 bound) before anything is kept or sent, and copies the values. Without
N-step the call becomes one part to send. With N-step the transitions go through this writer's own
``laber.nstep.NstepAccumulator`` (the windows of one actor never mix with another's), and the finished rows,
``R_t = sum_{j<k} gamma**j r_{t+j}`` with ``discount = gamma**k`` (see :mod:`laber.nstep`), become the parts;
a transition's priority travels with the first transition of its window, as in ``PrioritizedReplayBuffer``.

A part is ``(fields, priorities)``: ``fields`` a dict of ``(rows, *shape)`` arrays of the stored dtypes,
``priorities`` a float64 array of one value per row, or None (the shard then gives the running maximum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from laber._validation import host_array, short_repr
from laber.distributed.spec import BufferSpec
from laber.nstep import DISCOUNT, NstepAccumulator

__all__ = ["Part", "WriterStream"]

Part = tuple[dict[str, np.ndarray], "np.ndarray | None"]

_PRIORITY = "_stream_priority"  # the priorities' column inside the accumulator (never a field name: '_' prefix)


def check_priorities(priorities: object, rows: int, spec: BufferSpec, name: str = "priorities") -> np.ndarray:
    """``priorities`` as a fresh 1-D float64 array of ``rows`` finite values ``>= 0`` that the shard accepts."""
    value = host_array(priorities)
    try:
        arr = np.array(value)
        if arr.dtype.kind not in "fiu":  # bools, complex, objects and text are no priorities
            raise TypeError
        arr = arr.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be real numbers, got {name}={short_repr(priorities)}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.shape[0] != rows:
        raise ValueError(
            f"{name} must hold one value per row added ({rows}), got shape {arr.shape} for {name}={short_repr(value)}"
        )
    if arr.size and not (arr.min() >= 0 and arr.max() < math.inf):
        k = int(np.flatnonzero(~(np.isfinite(arr) & (arr >= 0)))[0])
        raise ValueError(f"{name} must be finite and >= 0, got {name}[{k}]={float(arr[k])!r}")
    if arr.size and not spec.mass_fits(float(arr.max())):
        raise ValueError(
            f"{name} too large: (p + eps) ** alpha for {name}={float(arr.max())!r} with alpha={spec.alpha!r} "
            f"could overflow the sum over a shard of {spec.size} rows"
        )
    return arr


class WriterStream:
    """One writer's ``add`` calls, validated, copied and (with N-step) windowed; see the module docstring."""

    def __init__(self, spec: BufferSpec) -> None:
        self.spec = spec
        self._schema = spec.input_schema()
        self._names = tuple(self._schema.public)
        config = spec.nstep
        self._discount = spec.discount_column() if config is not None else None
        self._nstep = (
            None
            if config is None
            else NstepAccumulator(config, (*self._names, _PRIORITY), {n: self._schema[n].dtype for n in config.rew})
        )

    @property
    def pending_rows(self) -> int:
        """Transitions waiting for their N-step window (0 without N-step)."""
        return 0 if self._nstep is None else self._nstep.pending_rows

    def push(self, fields: dict[str, Any], priorities: object = None) -> list[Part]:
        """Check one ``add`` call as a whole (raising a named ``ValueError``/``TypeError`` with nothing kept) and
        return the parts to send now (none while N-step windows are still open)."""
        if priorities is not None and not self.spec.prioritized:
            raise TypeError("priorities=... needs a prioritized server (BufferSpec(kind='prioritized'))")
        rows, arrays = self._schema.check_add(fields, self._names)
        shaped = {
            n: np.array(arrays[n], dtype=self._schema[n].dtype).reshape(rows, *self._schema[n].shape)
            for n in self._names
        }  # fresh arrays of the stored dtypes: the caller may reuse its own
        p = None if priorities is None else check_priorities(priorities, rows, self.spec)
        if self._nstep is None:
            return [(shaped, p)]
        shaped[_PRIORITY] = np.full(rows, np.nan) if p is None else p
        return self._parts(self._nstep.push(shaped))

    def flush(self) -> list[Part]:
        """The episode ended: the open N-step windows are cut at its last transition; their rows to send."""
        if self._nstep is None:
            return []
        return self._parts(self._nstep.flush())

    def clear(self) -> None:
        """Forget the open N-step windows."""
        if self._nstep is not None:
            self._nstep.clear()

    def _parts(self, rows: dict[str, np.ndarray] | None) -> list[Part]:
        """Finished N-step rows as parts: the discount in its stored column; rows with and without a given
        priority in separate parts (a window's priority is that of its first transition)."""
        if rows is None or self._discount is None:
            return []
        fields = {n: rows[n] for n in self._names}
        fields[self._discount] = np.asarray(rows[DISCOUNT], dtype=np.float32).reshape(-1, 1)
        p = np.asarray(rows[_PRIORITY], dtype=np.float64).reshape(-1)
        missing = np.isnan(p)
        if missing.all():
            return [(fields, None)]
        if not missing.any():
            return [(fields, p)]
        given = ~missing
        return [
            ({n: v[given] for n, v in fields.items()}, p[given]),
            ({n: v[missing] for n, v in fields.items()}, None),
        ]
