r"""N-step returns, as a pure accumulator over a stream of transitions.

For a window starting at transition ``t`` that sums ``k`` steps (``k = n`` unless the episode ends first, by
``done`` inside the window or by ``on_episode_end()``)::

    R_t = sum_{j=0}^{k-1} gamma**j * r_{t+j},      discount_t = gamma**k

the stored row keeps the fields of transition ``t`` (obs, act, ...), the reward ``R_t``, the "next" fields of
transition ``t + k - 1`` (its ``next_obs``), its ``done`` flag, and ``discount_t``, so that the exact bootstrapped
target is ``R_t + discount_t * (1 - done) * V(next_obs)`` (Sutton & Barto, *Reinforcement Learning*, 2nd ed.,
section 7.1). cpprb stores the same rows but drops ``discount_t``, which is then wrong for windows cut short.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from laber.fields import Schema

__all__ = ["NstepAccumulator", "NstepConfig"]

DISCOUNT = "discount"
STEPS = "_steps"  # internal: steps summed by each emitted row (used by next_of)


def _names(value: object, key: str, schema: Schema) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, Iterable) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise TypeError(f"Nstep[{key!r}] must be a field name or a list of them, got {value!r}")
    for n in names:
        if n not in schema:
            raise ValueError(f"Nstep[{key!r}] names {n!r}, which is not a field of env_dict")
    return names


@dataclass(frozen=True)
class NstepConfig:
    """Parsed ``Nstep={"size": n, "rew": str | list, "gamma": 0.99, "next": str | list}``."""

    size: int
    gamma: float
    rew: tuple[str, ...]
    next: tuple[str, ...]
    done: str | None

    @classmethod
    def parse(cls, nstep: object, schema: Schema, capacity: int | None = None) -> NstepConfig | None:
        """Check ``Nstep`` against the fields (and the buffer's ``capacity``, which bounds the window)."""
        if nstep is None or nstep is False:
            return None
        if not isinstance(nstep, Mapping):
            raise TypeError(f"Nstep must be None or a dict like {{'size': 3, 'rew': 'rew'}}, got Nstep={nstep!r}")
        unknown = set(nstep) - {"size", "rew", "gamma", "next"}
        if unknown:
            raise ValueError(f"Nstep has unknown keys {sorted(unknown)}; allowed: 'size', 'rew', 'gamma', 'next'")
        size = nstep.get("size")
        if isinstance(size, bool) or not isinstance(size, numbers.Integral) or int(size) < 1:
            raise ValueError(f"Nstep['size'] must be a positive integer, got size={size!r}")
        if capacity is not None and int(size) > capacity:
            raise ValueError(
                f"Nstep['size'] must be at most the buffer size {capacity} (up to size - 1 transitions wait "
                f"outside the buffer for their window to complete), got size={size!r}"
            )
        gamma = nstep.get("gamma", 0.99)
        if isinstance(gamma, bool) or not isinstance(gamma, numbers.Real) or not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"Nstep['gamma'] must be a real number in [0, 1], got gamma={gamma!r}")
        if "rew" not in nstep:
            raise ValueError("Nstep needs 'rew', the reward field(s) to sum")
        rew = _names(nstep["rew"], "rew", schema)
        for n in rew:
            dtype = schema[n].dtype
            if dtype.kind not in "fc":
                raise TypeError(
                    f"Nstep['rew'] field {n!r} has dtype {dtype}: the discounted N-step return "
                    f"sum_j gamma**j r_(t+j) is not an integer in general and could overflow it; "
                    f"declare {n!r} with a float dtype, e.g. {{'dtype': np.float32}}"
                )
        nxt = _names(nstep["next"], "next", schema) if "next" in nstep else ()
        if DISCOUNT in schema:
            raise ValueError(f"field name {DISCOUNT!r} is reserved for the N-step bootstrap discount; rename it")
        return cls(int(size), float(gamma), rew, nxt, "done" if "done" in schema else None)


class NstepAccumulator:
    """Turns transitions into N-step rows. ``push`` and ``flush`` return the finished rows (or None).

    Vectorised over the transitions of a call: the only Python loop runs over the ``n`` offsets in a window.
    """

    def __init__(
        self, config: NstepConfig, names: Iterable[str], dtypes: Mapping[str, np.dtype[Any]] | None = None
    ) -> None:
        """``dtypes``: the stored dtype of each reward field; the return ``R_t`` is summed in float64 and cast
        to it (never to the dtype of the added values: ``rew=1`` as an int must still give ``R = 1.5``)."""
        self.config = config
        self.names = tuple(names)
        self.dtypes = dict(dtypes or {})
        self._pending: dict[str, np.ndarray] | None = None

    @property
    def pending_rows(self) -> int:
        return 0 if self._pending is None else len(next(iter(self._pending.values())))

    def pending(self) -> dict[str, np.ndarray]:
        """The transitions still waiting for their window (for checkpoints)."""
        return {} if self._pending is None else {k: v.copy() for k, v in self._pending.items()}

    def restore(self, pending: Mapping[str, np.ndarray]) -> None:
        """Replace the pending transitions with ``pending()`` of a checkpoint (copied; empty: none pending)."""
        self._pending = {k: np.array(v) for k, v in pending.items()} if pending else None

    def clear(self) -> None:
        self._pending = None

    def push(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray] | None:
        """Add transitions (each array ``(k, ...)``); return the rows whose window is now complete.

        The transitions are copied: rows still waiting for their window never share memory with the caller's
        arrays. Cost: ``O(L log n)`` for ``L`` pending plus new transitions.
        """
        if self._pending is None:  # a copy: the caller may reuse its arrays (envs often do)
            seq = {k: np.array(arrays[k], copy=True) for k in self.names}
        else:
            seq = {k: np.concatenate([self._pending[k], arrays[k]]) for k in self.names}
        return self._emit(seq, final=False)

    def flush(self) -> dict[str, np.ndarray] | None:
        """The episode ended: every pending window is cut at the last transition."""
        if self._pending is None:
            return None
        return self._emit(self._pending, final=True)

    def _emit(self, seq: dict[str, np.ndarray], *, final: bool) -> dict[str, np.ndarray] | None:
        cfg = self.config
        length = len(next(iter(seq.values())))
        t = np.arange(length)
        if cfg.done is not None:
            done = seq[cfg.done].reshape(length, -1)[:, 0] != 0
            big = length + cfg.size
            next_done = np.minimum.accumulate(np.where(done, t, big)[::-1])[::-1]
            end = np.minimum(t + (cfg.size - 1), next_done)
        else:
            end = t + (cfg.size - 1)
        if final:
            np.minimum(end, length - 1, out=end)
        complete = int(np.searchsorted(end, length - 1, side="right"))  # end is non-decreasing
        self._pending = {k: v[complete:] for k, v in seq.items()} if complete < length else None
        if complete == 0:
            return None
        start = t[:complete]
        stop = end[:complete]
        steps = stop - start + 1
        out = {k: v[:complete] for k, v in seq.items()}
        for k in cfg.next:
            out[k] = seq[k][stop]
        if cfg.done is not None:
            out[cfg.done] = seq[cfg.done][stop]
        for k in cfg.rew:
            dtype = self.dtypes.get(k, np.dtype(np.float64))
            out[k] = _window_sums(seq[k].astype(np.float64), start, steps, cfg.gamma).astype(dtype)
        out[DISCOUNT] = (cfg.gamma ** steps.astype(np.float64)).reshape(complete, 1)
        out[STEPS] = steps
        return out


def _window_sums(r: np.ndarray, start: np.ndarray, steps: np.ndarray, gamma: float) -> np.ndarray:
    r"""``R_i = sum_{j < steps_i} gamma**j r[start_i + j]`` for every window, in ``O(L log n)`` work.

    Doubling: level ``b`` holds ``A_b[t] = sum_{j < 2**b} gamma**j r[t + j]`` (cut at the end of ``r``), with
    ``A_{b+1}[t] = A_b[t] + gamma**(2**b) A_b[t + 2**b]``. A window of ``s`` steps is the concatenation of chunks
    of lengths ``2**b`` for the set bits ``b`` of ``s``, in increasing order, so
    ``R = sum_b gamma**o_b A_b[start + o_b]`` with ``o_b`` the total length of the chunks before chunk ``b``.
    Every window lies inside ``r`` (``start_i + steps_i <= len(r)``), so the cuts never matter. ``log2(n)``
    vectorised passes replace the ``n`` passes of the direct sum, so a long window (``Nstep={"size": 10**6}``)
    costs milliseconds, not seconds.
    """
    total = np.zeros((start.shape[0], *r.shape[1:]))
    if start.shape[0] == 0:
        return total
    offset = np.zeros_like(start)
    longest = int(steps.max())
    level = r
    span = 1
    while span <= longest:
        rows = np.flatnonzero(steps & span)
        if rows.size:
            o = offset[rows]
            scale = np.power(gamma, o.astype(np.float64)).reshape((rows.size,) + (1,) * (r.ndim - 1))
            total[rows] += scale * level[start[rows] + o]
            offset[rows] += span
        if 2 * span <= longest:
            nxt = level.copy()
            nxt[: len(r) - span] += gamma**span * level[span:]
            level = nxt
        span *= 2
    return total
