"""The interface between a replay buffer and its checkpoints: what the buffer exposes, what a load writes back.

:mod:`laber.checkpoint` serialises a buffer without knowing its internals. It sees only (the protocol
:class:`Checkpointable`, which ``ReplayBuffer`` implements):

* ``buffer.checkpoint_state()`` -> :class:`BufferState`: a read-only view of everything a checkpoint holds (the
  buffer's description, ring counters, record layout and record array, side stores, pending N-step transitions,
  rng, a subclass's extra state) and of the layout a loaded file is checked against;
* ``buffer.check_checkpoint_extra(extra, rows, pending)``: a subclass's checks of its extra state (for
  ``PrioritizedReplayBuffer``: the running maximum and every priority), run before anything changes;
* ``buffer.restore_checkpoint(restore)`` with a :class:`BufferRestore`: the checked state to install. The buffer
  clears itself, lets ``restore.write_rows`` stream the rows straight into its record memory, then installs the
  links, counters, side stores, pending transitions, extra state (for PER: the priorities' sum tree is rebuilt,
  the running maximum set) and the rng state. Should any step fail, the buffer is left empty, never half-loaded.

Locking: the buffer's public ``save_checkpoint`` / ``load_checkpoint`` hold the buffer's lock around the whole
``laber.checkpoint.save`` / ``load``, so the state seen, the checks and the restore form one consistent step.
``checkpoint_state`` and ``restore_checkpoint`` also take the (re-entrant) lock themselves, but a caller that
reads a state, checks a file against it and then restores must hold the lock throughout. The arrays of a
:class:`BufferState` are views of the buffer's memory (the record array, the side stores): valid and unchanging
only while that lock is held; they must not be written.

The dataclasses here are plain data: this module imports neither the buffers nor the checkpoint module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from laber.fields import Field, Schema

__all__ = ["BufferRestore", "BufferState", "Checkpointable", "NextOfState", "NstepState", "RowWriter", "StackState"]


@dataclass(frozen=True)
class NstepState:
    """N-step settings a checkpoint checks against, and the transitions still waiting for their window.

    ``names``: the fields of one pending transition (public inputs, then hidden fields such as ``_priority``);
    ``window``: ``Nstep["size"]`` (at most ``window - 1`` transitions can be pending); ``pending``: the pending
    transitions, ``{name: (count, *shape)}`` (copies), empty when there are none.
    """

    names: tuple[str, ...]
    window: int
    pending: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class NextOfState:
    """The ``next_of`` side store (:class:`laber.links.NextOfLinks`).

    ``pairs``: each derived field (``next_obs``) and the stored field it comes from (``obs``), with its shape
    and dtype; ``initial_capacity``: the side store's slots when empty (a loaded, compacted store has at least
    that many); ``arrays``: ``NextOfLinks.state()``, i.e. ``side/<field>`` (``(slots, *shape)``), ``free`` (the
    free slots) and ``pending`` (``(links, 3)`` int64: source position, slot, steps).
    """

    pairs: Mapping[str, Field]
    initial_capacity: int
    arrays: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class StackState:
    """The ``stack_compress`` side store (:class:`laber.links.StackLinks`).

    ``fields``: the stacked fields with their full shapes ``(*frame, depth)``; ``depth``: frames per stack;
    ``initial_capacity``: the side store's slots when empty; ``arrays``: ``StackLinks.state()``, i.e.
    ``side/<field>`` (``(slots, *frame, depth - 1)``, the older frames of anchor rows) and ``free``.
    """

    fields: Mapping[str, Field]
    depth: int
    initial_capacity: int
    arrays: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class BufferState:
    """A read-only view of a buffer's whole state, as ``ReplayBuffer.checkpoint_state()`` hands it out.

    Attributes:
        description: the buffer's settings, JSON-ready: ``size``, ``fields`` (every field in schema order,
            ``{"shape": [...], "dtype": dtype.str}``), ``nstep``, ``next_of``, ``stack_compress``. A checkpoint
            stores it and a load compares it with the target buffer's.
        size: the capacity in rows.
        stored: rows stored (ring positions ``0 .. stored - 1``).
        next: the ring position the next row goes to.
        storage: the storage backend, as error messages name it (its ``repr``).
        on_device: the rows live on a torch device (``records`` is then a host copy of them, in ``record``).
        record: the host record layout (a structured dtype: every stored field, hidden ones and the link
            columns ``laber.links.LINK`` / ``STACK_LINK`` included); on a device, the layout its checkpoints use.
        records: the ``(size,)`` record array itself (a view of the storage; a load streams rows into it
            through ``BufferRestore.write_rows``, never through this view); on a device, a host copy of its rows.
        schema: the buffer's fields (:class:`laber.fields.Schema`: shapes, dtypes, ``hidden`` names, and
            ``check_add``, the validation ``add`` applies, which a load applies to pending transitions).
        hidden: the hidden fields (stored with each row, not sampled: ``_priority`` for PER), schema order.
        rng: a copy of the buffer's bit generator (its ``state`` is saved; a load tries the file's state on
            another copy of it).
        nstep: N-step settings and pending transitions; None without ``Nstep``.
        next_of: the ``next_of`` side store; None without ``next_of``.
        stack: the ``stack_compress`` side store; None without ``stack_compress``.
        extra: a subclass's extra state (PER: ``{"max_priority": float}``): JSON values or numpy arrays.
    """

    description: Mapping[str, Any]
    size: int
    stored: int
    next: int
    storage: str
    on_device: bool
    record: np.dtype[Any] | None
    records: np.ndarray | None
    schema: Schema
    hidden: tuple[str, ...]
    rng: np.random.BitGenerator
    nstep: NstepState | None
    next_of: NextOfState | None
    stack: StackState | None
    extra: Mapping[str, Any]

    @property
    def max_steps(self) -> int:
        """Steps one stored row can span (``Nstep["size"]``, 1 without N-step): a ``next_of`` link's reach."""
        return 1 if self.nstep is None else self.nstep.window


RowWriter = Callable[[memoryview], None]
"""Fills the record memory of a buffer being restored: called once with the writable bytes of the whole
``(size,)`` record array (``size * record.itemsize`` bytes); writes the rows of positions ``0 .. stored - 1``."""


@dataclass(frozen=True)
class BufferRestore:
    """What ``ReplayBuffer.restore_checkpoint`` installs: a state already checked against the buffer.

    Attributes:
        stored: rows stored after the restore (``<= size``).
        next: the ring position the next row goes to.
        write_rows: streams the rows into the buffer's record memory (see :data:`RowWriter`); it may raise
            (an I/O error, a file changed since its checks), and the buffer is then left empty.
        next_links: the ``next_of`` link column of positions ``0 .. stored - 1`` (overrides what ``write_rows``
            wrote there); None without ``next_of``.
        stack_links: the ``stack_compress`` link column of positions ``0 .. stored - 1``; None without it.
        next_of: the ``next_of`` side store, for ``NextOfLinks.restore``; None without ``next_of``.
        stack: the ``stack_compress`` side store, for ``StackLinks.restore``; None without it.
        pending: the pending N-step transitions, for ``NstepAccumulator.restore`` (empty: none).
        rng: the bit generator's ``state``.
        extra: a subclass's extra state (what ``check_checkpoint_extra`` accepted, before its keys were
            removed): JSON values and numpy arrays.
    """

    stored: int
    next: int
    write_rows: RowWriter
    next_links: np.ndarray | None
    stack_links: np.ndarray | None
    next_of: Mapping[str, np.ndarray] | None
    stack: Mapping[str, np.ndarray] | None
    pending: Mapping[str, np.ndarray]
    rng: Mapping[str, Any]
    extra: Mapping[str, Any]


class Checkpointable(Protocol):
    """What :mod:`laber.checkpoint` needs of a buffer (``ReplayBuffer`` implements it; see the module docstring).

    ``checkpoint_state()``: the buffer's :class:`BufferState`. ``check_checkpoint_extra(extra, rows, pending)``:
    raise ``ValueError`` (or ``TypeError``) if a checkpoint's extra state does not fit this buffer; ``rows[name]``
    and ``pending[name]`` are the values of each hidden field in every row of the file and in its pending N-step
    transitions; nothing changes. ``restore_checkpoint(restore)``: install a checked :class:`BufferRestore`
    (on any error the buffer is left empty).
    """

    def checkpoint_state(self) -> BufferState: ...

    def check_checkpoint_extra(
        self, extra: Mapping[str, Any], rows: Mapping[str, np.ndarray], pending: Mapping[str, np.ndarray]
    ) -> None: ...

    def restore_checkpoint(self, restore: BufferRestore) -> None: ...
