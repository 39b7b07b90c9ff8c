r"""``ReverseReplayBuffer``: reverse experience replay, strided batches walking back from the newest transition.

Reverse Experience Replay (E. Rotinov, "Reverse Experience Replay", 2019, arXiv:1910.08780) replays the most
recent transitions backwards, so that a reward propagates through the value estimates of the states that led to
it. cpprb's ``ReverseReplayBuffer`` (which cites the same paper) draws each batch as equally spaced rows going
back from a cursor, and moves the cursor back by one row per call. This class has the same semantics, as a
part composed on :class:`laber.ReplayBuffer` (which stores the rows; this class only chooses which to read).

With ``S`` stored rows, ``n`` the next ring index, ``c`` the cursor (0 at first) and stride ``s``, a call
``sample(B)`` first moves the cursor:

.. math::

    d = (n - c) \bmod^{+} S \quad(\text{the distance from the cursor forward to } n \text{, in } (0, S]),\qquad
    c \leftarrow \begin{cases} (n - 1) \bmod S & \text{if } d \ge 2s \quad\text{(restart at the newest row)}\\
                               (c - 1) \bmod S & \text{otherwise (one row further back)} \end{cases}

then returns the rows ``i_j = (c - j s) mod S`` for ``j = 0 .. B - 1``: the newest row, the row ``s`` before
it, ``2s`` before it, ..., wrapping from index 0 to ``S - 1``. Before the ring wraps (``S < size``) row
``S - 1`` is the newest, so a batch that passes index 0 continues from the newest rows; once it has wrapped it
continues from the oldest row backwards through the ring, which is the same thing in time order. Consecutive
calls therefore give

    sample 1: ``T_t, T_{t-s}, T_{t-2s}, ...``;   sample 2: ``T_{t-1}, T_{t-1-s}, ...``;   ...

until the cursor falls ``2s`` rows behind the next index (new rows were added in between, or it walked back
``2s`` rows), when it restarts at the newest row.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from laber._validation import check_positive_int
from laber.buffers import ReplayBuffer

__all__ = ["ReverseReplayBuffer"]


class ReverseReplayBuffer:
    r"""Reverse experience replay over a :class:`laber.ReplayBuffer` (Rotinov 2019, arXiv:1910.08780).

    Args:
        size: capacity in transitions (as ``ReplayBuffer``).
        env_dict: the fields (as ``ReplayBuffer``).
        stride: rows between two consecutive transitions of a batch, a positive int (cpprb's default 300).
        **kwargs: every other ``ReplayBuffer`` option (``Nstep``, ``next_of``, ``stack_compress``,
            ``default_dtype``, ``rng``); they apply to the storage as they do there.

    ``sample(batch_size)`` returns the rows ``(c - j * stride) mod S``, ``j = 0 .. batch_size - 1``, for a
    cursor ``c`` that starts at the newest row and moves back one row per call; it restarts at the newest row
    when it is ``2 * stride`` or more rows behind the next index (the formulas are in :mod:`laber.reverse`).
    Nothing is random: the same calls give the same rows. ``add``, ``on_episode_end``, ``get_all_transitions``
    and the counters behave as the ``ReplayBuffer`` ones.

    Differences from cpprb 11.0.0, all outside its documented behaviour: ``clear()`` and ``load_transitions``
    put the cursor back at its start (cpprb keeps the old cursor, which can then point past the stored rows
    and read stale memory); ``sample`` on an empty buffer raises ``ValueError`` (cpprb returns rows that hold
    no transition); ``stride`` must be a positive int (cpprb takes 0, which repeats one row); ``sample`` also
    returns the ``indexes`` it read, as ``ReplayBuffer.sample`` does.

    Thread safety: every public method holds this object's lock (a ``threading.RLock``) for the whole call,
    so the cursor and the rows it reads always agree.
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        stride: int = 300,
        **kwargs: Any,
    ) -> None:
        self._stride = check_positive_int(stride, "stride")
        self._rb = ReplayBuffer(size, env_dict, **kwargs)
        self._lock = threading.RLock()
        self._cursor = 0

    @property
    def stride(self) -> int:
        """Rows between two consecutive transitions of a batch."""
        return self._stride

    # ------------------------------------------------------------------------------------------- adding
    def add(self, **fields: Any) -> int | None:
        """Add one transition or a batch, exactly as ``ReplayBuffer.add`` (validated first; same return)."""
        with self._lock:
            return self._rb.add(**fields)

    def on_episode_end(self) -> None:
        """End the current episode (N-step windows still open are stored), as ``ReplayBuffer.on_episode_end``."""
        with self._lock:
            self._rb.on_episode_end()

    # ------------------------------------------------------------------------------------------- reading
    def _reverse_indexes(self, batch_size: int, next_index: int, stored: int) -> np.ndarray:
        """Move the cursor for one call and return the rows it reads (see the module docstring)."""
        cursor = self._cursor
        ahead = next_index + stored if next_index <= cursor else next_index
        distance = ahead - cursor
        if distance < 0 or distance >= 2 * self._stride:
            start = next_index if next_index else stored  # restart at the newest row
        else:
            start = cursor if cursor else stored  # one row back, from index 0 to the last stored row
        self._cursor = start - 1
        steps = np.arange(batch_size, dtype=np.int64) * self._stride
        return np.mod(self._cursor - steps, stored)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """The next reverse batch: ``batch_size`` rows ``stride`` apart, going back from the cursor.

        Returns fresh arrays per field plus ``indexes`` (int64 ring positions). Raises ``ValueError`` on an
        empty buffer; the cursor then does not move.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        with self._lock:
            stored = self._rb.get_stored_size()
            if stored == 0:
                raise ValueError("cannot sample from an empty buffer: add transitions first")
            idx = self._reverse_indexes(batch_size, self._rb.get_next_index(), stored)
            out = self._rb.get_transitions(idx)
        out["indexes"] = idx
        return out

    def get_all_transitions(self, shuffle: bool = False) -> dict[str, np.ndarray]:
        """Every stored row in ring order ``0 .. stored - 1`` (fresh arrays), or shuffled, as ``ReplayBuffer``."""
        with self._lock:
            return self._rb.get_all_transitions(shuffle)

    def get_stored_size(self) -> int:
        """Number of rows stored."""
        return self._rb.get_stored_size()

    def get_buffer_size(self) -> int:
        """Capacity in rows."""
        return self._rb.get_buffer_size()

    def get_next_index(self) -> int:
        """Ring index the next row will be written to."""
        return self._rb.get_next_index()

    def __len__(self) -> int:
        return self._rb.get_stored_size()

    def clear(self) -> None:
        """Forget every row (and pending N-step transitions); the cursor goes back to its start."""
        with self._lock:
            self._rb.clear()
            self._cursor = 0

    # ------------------------------------------------------------------------------------------- checkpoints
    def save_transitions(self, path: Any, *, safe: bool = True) -> str | None:
        """Write the stored rows to ``path`` as a cpprb transitions file, as ``ReplayBuffer.save_transitions``
        (the cursor is not saved)."""
        with self._lock:
            return self._rb.save_transitions(path, safe=safe)

    def load_transitions(self, path: Any) -> None:
        """Add the rows of a transitions file, as ``ReplayBuffer.load_transitions``; the cursor restarts.

        On error the buffer and the cursor are unchanged."""
        with self._lock:
            self._rb.load_transitions(path)
            self._cursor = 0

    def save_checkpoint(self, path: Any) -> None:
        """The whole state of the rows, as ``ReplayBuffer.save_checkpoint`` (the cursor is not saved)."""
        with self._lock:
            self._rb.save_checkpoint(path)

    def load_checkpoint(self, path: Any) -> None:
        """Replace the rows with a checkpoint, as ``ReplayBuffer.load_checkpoint``; the cursor restarts."""
        with self._lock:
            self._rb.load_checkpoint(path)
            self._cursor = 0

    def __repr__(self) -> str:
        return (
            f"ReverseReplayBuffer(size={self.get_buffer_size()}, stored={self.get_stored_size()}, "
            f"stride={self._stride})"
        )
