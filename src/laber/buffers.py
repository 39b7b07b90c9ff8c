r"""``ReplayBuffer``: a ring of transitions with named fields, N-step returns and checkpoints.

The API follows cpprb's (the reference page): ``ReplayBuffer(size, env_dict, Nstep=...)``, ``add(**fields)``,
``sample(batch_size)``, ``on_episode_end()``, ``get_all_transitions()``, ``save_transitions`` /
``load_transitions`` (cpprb's transitions files), and laber's full-state ``save_checkpoint`` / ``load_checkpoint``.

Storage is a record layout: all fields of one transition sit side by side in one row of a ``uint8`` matrix
(fields ordered by alignment), so ``sample`` gathers each drawn row with one memory access instead of one per
field, then splits the gathered rows into fresh, contiguous, per-field arrays.
"""

from __future__ import annotations

import io
import numbers
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int, host_array
from laber.fields import Field, Schema
from laber.links import LINK, STACK_LINK, NextOfLinks, StackLinks
from laber.nstep import DISCOUNT, STEPS, NstepAccumulator, NstepConfig
from laber.state import BufferRestore, BufferState, NextOfState, NstepState, StackState
from laber.storage import MemoryStorage, MmapStorage, Storage
from laber.storage.records import record_dtype

__all__ = ["ReplayBuffer"]


UNLOCKED_GATHER_BYTES = 1 << 18
"""A sample gathering at least this many bytes of rows (256 KiB: ``B = 256`` rows of 1 KiB) gathers them
outside the buffer's lock, so that writers are not held up by a learner's large batches (see
``ReplayBuffer._gather_unlocked``); smaller gathers stay under the lock, where they cost less than taking it
twice."""


def _choose_storage(storage: object, mmap_prefix: object, device: object = None) -> Storage:
    given = {
        k: v for k, v in {"storage": storage, "mmap_prefix": mmap_prefix, "device": device}.items() if v is not None
    }
    if len(given) > 1:
        raise ValueError(f"give one of storage, mmap_prefix and device, not several; got {given!r}")
    if device is not None:
        from laber.storage.device import TorchStorage

        return TorchStorage(device)
    if mmap_prefix is not None:
        return MmapStorage(mmap_prefix)  # type: ignore[arg-type]  # MmapStorage checks the type
    if storage is None:
        return MemoryStorage()
    if not all(callable(getattr(storage, m, None)) for m in ("allocate", "lock", "close")):
        raise TypeError(f"storage must be a laber.storage backend (allocate, lock, close), got storage={storage!r}")
    return storage  # type: ignore[return-value]


def _check_storage_options(storage: Storage, next_of: object, stack_compress: object) -> None:
    """Refuse the options a storage backend cannot hold, naming them and saying why."""
    if storage.shared and (next_of is not None or stack_compress is not None):
        raise ValueError(
            f"next_of and stack_compress are not supported with {storage.name} storage: their side stores grow "
            f"in one process's memory, which other processes cannot see; got next_of={next_of!r}, "
            f"stack_compress={stack_compress!r}"
        )
    if storage.on_device and (next_of is not None or stack_compress is not None):
        raise ValueError(
            f"next_of and stack_compress are not supported with {storage.name} storage: their links are "
            f"resolved by host code; got next_of={next_of!r}, stack_compress={stack_compress!r}"
        )


def _check_size(size: object) -> int:
    """A positive int; an integral float such as ``1e+6`` (which the reference page passes) is accepted."""
    is_number = isinstance(size, numbers.Real) and not isinstance(size, bool)
    if not is_number:
        raise TypeError(f"size must be a positive integer (or an integral float like 1e6), got size={size!r}")
    if isinstance(size, float) and size.is_integer():
        size = int(size)
    if not isinstance(size, numbers.Integral) or int(size) <= 0:
        raise ValueError(f"size must be a positive integer (or an integral float like 1e6), got size={size!r}")
    return int(size)


class ReplayBuffer:
    r"""Uniform experience replay over named fields, with optional N-step returns.

    Args:
        size: capacity in transitions; the oldest are overwritten first.
        env_dict: ``{name: {"shape": int | tuple (default 1), "dtype": dtype (default default_dtype)}}``.
        next_of: a field name (or list): store ``obs`` once and derive ``next_obs`` from the following row,
            keeping each episode's final next observation apart (see :mod:`laber.links`). ``env_dict`` then
            lists ``obs`` only; ``add`` still takes ``next_obs`` and ``sample`` returns it.
        stack_compress: a field name (or list) of stacked frames, stacked along the last axis (shape
            ``(*frame, S)``, e.g. ``(84, 84, 4)``): each row stores its newest frame only and the ``S - 1`` older
            ones are read from the rows before it, exactly (bitwise-checked; see :class:`laber.links.StackLinks`),
            so the field takes about ``1/S`` of its naive memory. Combines with ``next_of`` and N-step.
        default_dtype: dtype of fields that do not name one (float32).
        Nstep: ``{"size": n, "rew": str | list, "gamma": 0.99, "next": str | list}``. Each stored row then holds
            the discounted return ``R_t = sum_{j<k} gamma**j r_{t+j}`` over the ``k <= n`` steps up to the
            episode's end, the "next" fields and ``done`` of step ``t + k - 1``, and an extra field
            ``discount = gamma**k`` for the exact target ``R_t + discount * (1 - done) * V(next)``.
            A transition with ``done`` true ends every window that reaches it; ``on_episode_end()`` ends the
            others (time limits). See :mod:`laber.nstep`.
        rng: an int seed or a ``numpy.random.Generator`` for ``sample``.
        mmap_prefix: keep the arrays in memory-mapped files ``{mmap_prefix}_{name}.laber.dat`` (cpprb's name):
            buffers larger than RAM. The files must not exist; laber never deletes them
            (see :class:`laber.storage.MmapStorage`).
        device: keep the rows on a torch device (``"cuda"``, ``"cpu"``, a ``torch.device``; extra ``torch``):
            ``sample`` returns tensors there, drawn there (see :mod:`laber.storage.device`).
        storage: where the arrays live (a :mod:`laber.storage` backend); default process memory.
            ``MPReplayBuffer`` passes shared memory.

    Thread safety: every public method may be called from several threads at once (the usual split: actor
    threads ``add``, a learner thread ``sample``\s and updates priorities). Each call holds the buffer's lock
    (a ``threading.RLock``, or a process-shared lock for shared storage) from its first write or read of the rows
    to its last (``add`` validates before taking it), so no call observes or leaves a
    half-written row, a row counted but not yet written, or a tree behind its rows, and no row is lost. Calls
    are serialised but for two parts that run outside the lock: ``add``'s validation, and the gather of a large
    sample (at least ``UNLOCKED_GATHER_BYTES`` of host rows, without ``next_of``/``stack_compress``): writers go
    on while a learner copies its batch, and the rows they overwrote meanwhile are gathered again under the lock
    (``_gather_unlocked``), so each sampled row is whole, as it was when drawn or as it is now. ``add`` of one
    transition holds the lock for a few microseconds, ``sample(B)`` for its draw (and a small gather),
    ``save_checkpoint``/``load_checkpoint`` for the whole file write/read. Arrays
    returned to the caller are fresh and may be used after the lock is released. Across processes, see
    the multi-process buffers (not this class).

    Every ``add`` is validated as a whole before anything is written: every field present, no unknown field,
    shapes ``field_shape`` (one transition) or ``(k, *field_shape)`` (a batch), equal ``k``, integer values that
    fit their dtype. On error a named ``ValueError``/``TypeError`` is raised and the buffer is unchanged.

    Hooks for subclasses (``PrioritizedReplayBuffer`` uses them): ``_hidden_fields()`` declares internal
    fields stored with each row and carried through N-step with the window's first transition;
    ``_check_add(fields, hidden)`` validates an ``add`` (outside the lock) and ``_commit_add(rows, arrays)``
    writes it (lock held); ``_on_rows_written(indices)``
    runs after every write of rows (from ``add``, N-step completions and ``on_episode_end``);
    ``_gather(indices)`` returns fresh public fields of stored rows; ``_column(name)`` is the writable storage of
    one field; ``_checkpoint_extra()`` / ``_restore_extra(extra)`` add state to checkpoints.
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        next_of: str | list[str] | None = None,
        stack_compress: str | list[str] | None = None,
        default_dtype: object = np.float32,
        Nstep: Mapping[str, Any] | None = None,
        rng: RngLike = None,
        mmap_prefix: str | os.PathLike[str] | None = None,
        device: Any = None,
        storage: Storage | None = None,
    ) -> None:
        self._storage = _choose_storage(storage, mmap_prefix, device)
        self._lock = self._storage.lock(self._sync_in, self._sync_out)
        self._size = _check_size(size)
        if env_dict is None:
            raise TypeError("env_dict is required: {name: {'shape': ..., 'dtype': ...}}")
        if not isinstance(env_dict, Mapping) or not env_dict:
            raise TypeError(f"env_dict must be a non-empty dict of field specs, got env_dict={env_dict!r}")
        if DISCOUNT in env_dict:
            raise ValueError(
                f"field name {DISCOUNT!r} is reserved: with Nstep, sample() returns the bootstrap discount "
                f"gamma**k under that name; rename the field in env_dict"
            )
        _check_storage_options(self._storage, next_of, stack_compress)
        derived = self._parse_next_of(next_of, env_dict)
        inputs = {**env_dict, **{f"next_{x}": env_dict[x] for x in derived}}
        if default_dtype is None:  # cpprb's default_dtype=None means float32 (numpy's would be float64)
            default_dtype = np.float32
        schema = Schema(inputs, default_dtype, self._hidden_fields())
        self._nstep_config = NstepConfig.parse(Nstep, schema, self._size)
        if self._nstep_config is not None:
            inputs[DISCOUNT] = {"shape": 1, "dtype": np.float32}
            schema = Schema(inputs, default_dtype, self._hidden_fields())
        self._schema = schema
        self._input_names = tuple(n for n in schema.public if n != DISCOUNT)
        self._all_inputs = self._input_names + tuple(schema.hidden)
        self._nstep = (
            NstepAccumulator(self._nstep_config, self._all_inputs, {n: schema[n].dtype for n in self._nstep_config.rew})
            if self._nstep_config
            else None
        )
        self._rng = as_generator(rng)
        self._next_of = NextOfLinks(self._size, {f"next_{x}": schema[x] for x in derived}) if derived else None
        stacked = self._parse_stack_compress(stack_compress, schema, derived)
        self._stack = StackLinks(self._size, {n: schema[n] for n in stacked}) if stacked else None
        stored_fields = [
            StackLinks.frame_field(f) if f.name in stacked else f
            for f in schema
            if self._next_of is None or f.name not in self._next_of.pairs
        ]
        if self._next_of is not None:
            stored_fields.append(Field(LINK, (), np.dtype(np.int64)))
        if self._stack is not None:
            stored_fields.append(Field(STACK_LINK, (), np.dtype(np.int64)))
        self._layout(stored_fields)
        self._checkpoint_record = record_dtype(stored_fields)  # the host layout, also of a device buffer's files
        self._counters = (
            self._storage.allocate("counters", (3,), np.dtype(np.int64), 0) if self._storage.shared else None
        )
        self._next = 0
        self._stored = 0
        self._written = 0  # ring positions written since creation; clear and load count a whole ring
        # a large gather may run outside the lock (rows only: next_of and stack_compress read side stores too)
        self._unlocked_gathers = not self._storage.on_device and self._next_of is None and self._stack is None
        self._episode_len = 0
        self._watch_rows = type(self)._on_rows_written is not ReplayBuffer._on_rows_written

    @staticmethod
    def _parse_next_of(next_of: object, env_dict: Mapping[str, Any]) -> tuple[str, ...]:
        if next_of is None:
            return ()
        names = (
            (next_of,) if isinstance(next_of, str) else tuple(next_of) if isinstance(next_of, (list, tuple)) else None
        )
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError(f"next_of must be a field name or a list of them, got next_of={next_of!r}")
        for n in names:
            if n not in env_dict:
                raise ValueError(f"next_of names {n!r}, which is not a field of env_dict")
            if f"next_{n}" in env_dict:
                raise ValueError(
                    f"with next_of={n!r}, next_{n} is derived from {n}: remove 'next_{n}' from env_dict "
                    f"(add() still takes next_{n}=...)"
                )
        return names

    @staticmethod
    def _parse_stack_compress(stack_compress: object, schema: Schema, derived: tuple[str, ...]) -> tuple[str, ...]:
        if stack_compress is None:
            return ()
        names = (
            (stack_compress,)
            if isinstance(stack_compress, str)
            else tuple(stack_compress)
            if isinstance(stack_compress, (list, tuple))
            else None
        )
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError(
                f"stack_compress must be a field name or a list of them, got stack_compress={stack_compress!r}"
            )
        depth = None
        for n in names:
            if n not in schema or n in schema.hidden or n == DISCOUNT:
                raise ValueError(f"stack_compress names {n!r}, which is not a field of env_dict")
            if n in {f"next_{x}" for x in derived}:
                raise ValueError(f"stack_compress names {n!r}, which next_of derives; name {n[5:]!r} instead")
            shape = schema[n].shape
            if shape[-1] < 2:
                raise ValueError(
                    f"stack_compress field {n!r} must stack at least 2 frames along its last axis, got shape {shape}"
                )
            if depth is not None and shape[-1] != depth:
                raise ValueError(f"stack_compress fields must stack the same number of frames, got {shape[-1]}")
            depth = shape[-1]
        return names

    # ------------------------------------------------------------------------------------------- layout
    def _layout(self, fields: list[Field]) -> None:
        """The rows, from the storage: the host record layout (``laber.storage.records``) or a torch device."""
        self._rows = self._storage.rows(fields, self._size, self._schema.hidden)
        self._cols = self._rows.columns
        self._record_names: tuple[str, ...] = tuple(self._cols)
        self._row_bytes = 0  # bytes of one stored record on the host (0 on a device)
        if not self._storage.on_device:  # the record array, for checkpoints
            self._record = self._rows.record
            self._store = self._rows.store
            self._row_bytes = self._record.itemsize

    # ------------------------------------------------------------------------------------------- sharing
    def _sync_in(self) -> None:
        """Shared storage, lock just taken: load the scalars other processes may have changed."""
        if self._counters is not None:
            self._next, self._stored, self._written = (int(c) for c in self._counters)

    def _sync_out(self) -> None:
        """Shared storage, lock about to be released: publish the scalars."""
        if self._counters is not None:
            self._counters[:] = self._next, self._stored, self._written

    def close(self) -> None:
        """Release the storage (shared memory is unlinked by the process that created it; mmap files are
        flushed and kept). The buffer must not be used afterwards. Idempotent."""
        self._storage.close()

    # ------------------------------------------------------------------------------------------- hooks
    @classmethod
    def _hidden_fields(cls) -> dict[str, dict[str, Any]]:
        """Internal fields stored with each row, not shown by ``sample``/``get_all_transitions`` (none here)."""
        return {}

    def _column(self, name: str) -> np.ndarray:
        """The writable storage of field ``name``, shape ``(size, *field_shape)`` (internal use)."""
        column: np.ndarray = self._cols[name]
        return column

    def _on_rows_written(self, indices: np.ndarray) -> None:
        """Called after rows ``indices`` (int64 ring positions) were written. No-op here."""

    def _loaded_hidden(self, priorities: np.ndarray | None, keep: slice, rows: int) -> dict[str, np.ndarray]:
        """Values of the hidden fields for ``rows`` rows added by ``load_transitions`` (checked; none here)."""
        return {}

    def _checkpoint_extra(self) -> dict[str, Any]:
        """Extra state for checkpoints: JSON values or numpy arrays (none here)."""
        return {}

    def _restore_extra(self, extra: Mapping[str, Any]) -> None:
        """Restore what ``_checkpoint_extra`` saved; runs after the rows are restored. No-op here."""

    # ------------------------------------------------------------------------------------------- adding
    def add(self, **fields: Any) -> int | None:
        """Add one transition (each field of its declared shape) or a batch (an extra leading axis).

        Returns the ring index of the first row written, or None while N-step still holds the transitions.
        Every value is copied (or converted) before the call returns: the caller may reuse its arrays. The
        input is validated before the buffer's lock is taken (validation reads only the fields' declarations),
        so other threads and processes sample meanwhile; the lock is held from the first write to the last.
        """
        rows, arrays = self._check_add(fields, {})
        with self._lock:
            return self._commit_add(rows, arrays)

    def _check_add(self, fields: Mapping[str, Any], hidden: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
        """Validate an ``add`` and shape its arrays (no lock needed: reads only the immutable schema)."""
        rows, arrays = self._schema.check_add(fields, self._input_names)
        self._fill_hidden(arrays, rows, hidden)
        if self._nstep is not None:
            for name, value in arrays.items():
                f = self._schema[name]
                arrays[name] = np.asarray(value).reshape((rows, *f.shape))
        return rows, arrays

    def _fill_hidden(self, arrays: dict[str, Any], rows: int, hidden: Mapping[str, Any]) -> None:
        """``arrays[name]`` for every hidden field: the given values, or zeros, as ``(rows, *shape)`` of its dtype."""
        for name in self._schema.hidden:
            f = self._schema[name]
            value = np.asarray(hidden[name]) if name in hidden else np.zeros((rows, *f.shape), f.dtype)
            arrays[name] = value.reshape((rows, *f.shape)).astype(f.dtype, copy=False)

    def _commit_add(self, rows: int, arrays: dict[str, Any]) -> int | None:
        """Write a checked ``add`` (the caller holds the lock)."""
        self._episode_len += rows
        if self._nstep is None:
            return self._write(arrays, rows)
        done = self._nstep.push(arrays)
        return None if done is None else self._write(done, len(done[DISCOUNT]))

    def _write(self, arrays: dict[str, np.ndarray], rows: int) -> int:
        size = self._size
        start = self._next
        links = self._next_of
        stack = self._stack
        self._written += rows
        if rows == 1 and stack is None:  # one transition: one record assignment, values as they are
            if links is None:
                self._rows.put_one(start, arrays)
            else:  # next_of: scalar link updates around the write
                link_col = self._cols[LINK]
                if start < self._stored:
                    links.before_write_one(start, link_col)
                self._rows.put_one(start, {**arrays, LINK: -1})  # the link is set just below
                steps = arrays.get(STEPS)
                count = 1 if steps is None else int(np.asarray(steps).reshape(-1)[0])
                links.after_write_one(start, link_col, self._read_row, arrays, count)
            self._next = (start + 1) % size
            if self._stored < size:
                self._stored += 1
            if self._watch_rows:
                self._on_rows_written(np.array([start], dtype=np.int64))
            return start
        if rows == 1:
            arrays = {
                k: np.asarray(v)[np.newaxis]
                if k in self._schema and np.ndim(v) == len(self._schema[k].shape)
                else np.asarray(v)
                for k, v in arrays.items()
            }
        if rows > size:  # only the newest `size` rows survive
            arrays = {k: v[rows - size :] for k, v in arrays.items()}
            start = self._next = (start + rows - size) % size
            rows = size
        contiguous = start + rows <= size
        if contiguous and links is None and stack is None and not self._watch_rows:
            # the common batch add: slice writes only, no index array
            self._rows.put(slice(start, start + rows), arrays, self._record_names)
            self._next = (start + rows) % size
            self._stored = min(size, self._stored + rows)
            return start
        indices = (start + np.arange(rows, dtype=np.int64)) % size
        where: slice | np.ndarray = slice(start, start + rows) if contiguous else indices
        previous = None
        stacks: dict[str, np.ndarray] = {}
        if stack is not None:
            stack_col = self._cols[STACK_LINK]
            previous = stack.before_write(start, rows, self._stored, stack_col, self._cols)
            stacks = {n: np.asarray(arrays[n], dtype=f.dtype).reshape(rows, *f.shape) for n, f in stack.fields.items()}
        if links is not None:
            link_col = self._cols[LINK]
            links.before_write(indices[indices < self._stored], link_col)  # rows that hold data now
        values = {
            n: stacks[n][..., -1] if n in stacks else arrays[n] for n in self._cols if n not in (LINK, STACK_LINK)
        }
        self._rows.put(where, values, values)  # stacks: the newest frame
        if stack is not None:
            stack.after_write(indices, stack_col, stacks, previous)
        if links is not None:
            steps = arrays.get(STEPS)
            links.after_write(
                indices,
                link_col,
                self._read,
                {n: arrays[n] for n in links.pairs},
                np.ones(rows, dtype=np.int64) if steps is None else np.asarray(steps, dtype=np.int64),
            )
        self._next = (start + rows) % size
        self._stored = min(size, self._stored + rows)
        if self._watch_rows:
            self._on_rows_written(indices)
        return start

    def on_episode_end(self) -> None:
        """End the current episode: N-step windows still open are cut at its last transition and stored.

        Holds the buffer's lock for the whole call."""
        self._episode_len = 0
        if self._nstep is not None:
            with self._lock:
                done = self._nstep.flush()
                if done is not None:
                    self._write(done, len(done[DISCOUNT]))

    # ------------------------------------------------------------------------------------------- reading
    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """Draw ``batch_size`` stored rows uniformly with replacement: fresh arrays per field, plus ``indexes``.

        Holds the buffer's lock while it draws; a large gather runs outside it (see ``_gather_unlocked``)."""
        batch_size = check_positive_int(batch_size, "batch_size")
        unlocked = True
        while True:
            with self._lock:
                if self._stored == 0:
                    raise ValueError("cannot sample from an empty buffer: add transitions first")
                idx = self._sample_indices(batch_size)
                mark = self._gather_mark(batch_size) if unlocked else None
                if mark is None:
                    out = self._gather(idx)
            if mark is not None:
                gathered = self._gather_unlocked(idx, mark)
                if gathered is None:  # cleared or loaded meanwhile: draw again, all under the lock
                    unlocked = False
                    continue
                out = gathered
            out["indexes"] = idx
            return out

    def _gather_mark(self, rows: int) -> tuple[int, int] | None:
        """Lock held: ``(next, written)`` if a gather of ``rows`` rows should run outside the lock, else None.

        It should when the rows are host records without side stores and the gather moves at least
        ``UNLOCKED_GATHER_BYTES`` (smaller gathers take less time than taking the lock a second time)."""
        if self._unlocked_gathers and rows * self._row_bytes >= UNLOCKED_GATHER_BYTES:
            return self._next, self._written
        return None

    def _gather_unlocked(self, indices: np.ndarray, mark: tuple[int, int]) -> dict[str, np.ndarray] | None:
        """Gather ``indices`` without the lock, so writers go on meanwhile; then, under the lock, gather again
        the rows written since ``mark`` (``_gather_mark``'s ``(next, written)``, taken when the indices were
        drawn).

        Rows are written only by ``_write``, at consecutive ring positions from ``next``; ``written`` counts
        them (``clear`` and a load count a whole ring). If ``d = written_now - written`` rows were written
        meanwhile, the rows that may have changed under the gather are those at positions
        ``(next + j) mod size`` for ``0 <= j < d``, that is the ``i`` with ``(i - next) mod size < d``: exactly
        those are read again, under the lock, so every returned row is a whole row (as it was when drawn, or as
        it is now), and no row half-written. Returns None when ``d >= size`` (every position may have changed):
        the caller then draws again under the lock.
        """
        out = self._gather(indices)
        start, written = mark
        with self._lock:
            moved = self._written - written
            if moved >= self._size:
                return None
            if moved:
                stale = (indices - start) % self._size < moved
                if stale.any():
                    fresh = self._gather(indices[stale])
                    for name, value in fresh.items():
                        out[name][stale] = value
        return out

    def _sample_indices(self, batch_size: int) -> np.ndarray:
        """Row indices to sample, uniform over the stored rows: ``floor(u * stored)`` with ``u`` a 53-bit
        uniform (``rng.random``), uniform up to a relative ``stored / 2**53`` (1e-10 at 1e6 rows) and twice as
        fast as ``rng.integers`` here."""
        indices: np.ndarray = self._rows.draw(batch_size, self._stored, self._rng)
        return indices

    def _gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Every public field at ``indices``: fresh memory that storage and later calls never touch.

        Without ``stack_compress``, one gather of whole records into a new block, the arrays views of it, each
        field in its own bytes (they may be non-contiguous: ``np.ascontiguousarray`` where it matters). With it,
        the stacks are rebuilt from the columns (:meth:`_stack_and_next`) and every other field is gathered
        on its own: a whole-record copy would copy each row's newest frames too, most of its bytes, only to
        rebuild them (on ``benchmarks/bench_image.py``'s 84x84x4 stacks, 7 paired rounds of old and new: a
        median 1.11x faster at batch 32, 1.06x at 256).
        """
        if self._stack is not None:
            # the stacked fields' frames are most of a record's bytes and are rebuilt from the columns anyway: the
            # other fields column by column (each a fresh array) rather than a copy of whole records
            derived = self._stack_and_next(self._stack, indices)
            block: Mapping[str, np.ndarray] = {
                n: self._cols[n][indices] for n in self._schema.public if n not in derived
            }
        else:
            block = self._rows.take(indices)
            if self._next_of is None:
                return {name: block[name] for name in self._schema.public}
            derived = self._next_of.gather(indices, block[LINK], self._read)
        return {name: derived[name] if name in derived else block[name] for name in self._schema.public}

    def _stack_and_next(self, stack: StackLinks, indices: np.ndarray) -> dict[str, np.ndarray]:
        """The stacked fields at ``indices`` and, with ``next_of``, the derived fields. Where every ``next_of``
        source is a stacked field (Atari's ``next_of="obs"``, ``stack_compress="obs"``), each source and its next
        stacks are rebuilt in one pass (``StackLinks.reconstruct_next``); otherwise field by field."""
        stack_links = self._cols[STACK_LINK]
        if self._next_of is None:
            return stack.reconstruct(indices, stack_links, self._cols)
        links = self._cols[LINK][indices]
        sources = [f.name for f in self._next_of.pairs.values()]
        if len(set(sources)) == len(sources) and all(n in stack.fields for n in sources):
            targets = self._next_of.targets(indices, links)
            fused: dict[str, np.ndarray] = {}
            for name, source in self._next_of.pairs.items():
                pair = stack.reconstruct_next(source.name, indices, targets, stack_links, self._cols[source.name])
                if pair is None:
                    break
                fused[source.name], fused[name] = pair
            else:
                self._next_of.fill(links, fused)
                rest = [n for n in stack.fields if n not in fused]
                if rest:
                    fused.update(
                        {n: v for n, v in stack.reconstruct(indices, stack_links, self._cols).items() if n in rest}
                    )
                return fused
        derived = stack.reconstruct(indices, stack_links, self._cols)
        derived.update(self._next_of.gather(indices, links, self._read))
        return derived

    def _read_row(self, name: str, row: int) -> np.ndarray:
        """Stored value of field ``name`` at row ``row``: a view of the storage where the field is stored whole
        (read it at once, do not keep it), a rebuilt stack for ``stack_compress`` fields."""
        if self._stack is not None and name in self._stack.fields:
            rebuilt: np.ndarray = self._read(name, np.array([row], dtype=np.int64))[0]
            return rebuilt
        value: np.ndarray = self._cols[name][row]
        return value

    def _read(self, name: str, indices: np.ndarray) -> np.ndarray:
        """Stored values of field ``name`` at rows ``indices`` (stacks rebuilt for ``stack_compress`` fields)."""
        if self._stack is not None and name in self._stack.fields:
            return self._stack.reconstruct(indices, self._cols[STACK_LINK], self._cols)[name]
        value: np.ndarray = self._cols[name][indices]
        return value

    def get_all_transitions(self, shuffle: bool = False) -> dict[str, np.ndarray]:
        """Every stored row, in ring order ``0 .. stored - 1`` (fresh arrays), or with ``shuffle`` in an order
        drawn from the buffer's generator (cpprb's argument). Holds the lock while it copies."""
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got shuffle={shuffle!r}")
        with self._lock:
            order = np.arange(self._stored, dtype=np.int64)
            if shuffle:
                order = self._rng.permutation(order)
            return self._gather(order)

    def get_stored_size(self) -> int:
        """Number of rows stored (at most ``get_buffer_size()``). Takes the lock just to read the counter (with
        shared storage, the count other processes published)."""
        with self._lock:
            return self._stored

    def get_buffer_size(self) -> int:
        """Capacity in rows."""
        return self._size

    def get_next_index(self) -> int:
        """Ring index the next row will be written to. Takes the lock just to read the counter."""
        with self._lock:
            return self._next

    def is_Nstep(self) -> bool:
        """Whether the buffer stores N-step returns (``Nstep=`` was given)."""
        return self._nstep is not None

    def get_current_episode_len(self) -> int:
        """Transitions added since the last ``on_episode_end()`` (or ``clear()``), including those an N-step
        window still holds. Counted per process for multi-process buffers (each explorer its own episode)."""
        return self._episode_len

    def __len__(self) -> int:
        return self.get_stored_size()

    def clear(self) -> None:
        """Forget every stored row and any N-step transitions still pending. Holds the buffer's lock."""
        with self._lock:
            self._next = 0
            self._stored = 0
            self._written += self._size  # every position may change: a gather running meanwhile starts over
            self._episode_len = 0
            if self._nstep is not None:
                self._nstep.clear()
            if self._next_of is not None:
                self._next_of.clear()
            if self._stack is not None:
                self._stack.clear()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self._size}, stored={self._stored}, "
            f"fields={list(self._schema.public)}, Nstep={self._nstep_config})"
        )

    # ------------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self, path: str | Any) -> None:
        """Write the buffer's whole state to ``path``: every stored row, pending N-step transitions, the
        ``next_of``/``stack_compress`` side stores, the rng state and, for PER, the priorities (see
        :mod:`laber.checkpoint`). ``load_checkpoint`` restores it exactly. Atomic: a crash never leaves a
        half-written file under ``path``. Holds the buffer's lock for the whole write (one consistent state)."""
        from laber.checkpoint import save

        with self._lock:
            save(self, path)

    def load_checkpoint(self, path: str | Any) -> None:
        """Replace this buffer's state with a checkpoint written by ``save_checkpoint`` (same fields).

        The whole file is checked first: on any error a ``ValueError`` names the path and the buffer is
        unchanged. A checkpoint of this buffer's size is restored exactly (same ring positions); one of another
        size keeps its newest ``min(stored, size)`` rows, oldest first at index 0 (see :mod:`laber.checkpoint`).
        Holds the buffer's lock for the whole read."""
        from laber.checkpoint import load

        with self._lock:
            load(self, path)

    def save_transitions(self, file: str | Any, *, safe: bool = True) -> str | None:
        """Write the stored transitions, oldest first, as a cpprb transitions file (cpprb's format version 1:
        cpprb 10 and 11 load it; ``safe=False`` is cpprb's compact layout for ``next_of``). A name without
        ``.npz`` gets it, as in cpprb. Only the rows: for the whole state (rng, pending N-step transitions,
        priorities) use ``save_checkpoint``. Returns the path written (None for a file object). Holds the lock.
        See :mod:`laber.transitions`."""
        from laber.transitions import write_transitions

        if not isinstance(safe, bool):
            raise TypeError(f"safe must be True or False, got safe={safe!r}")
        if isinstance(file, io.TextIOBase):
            raise TypeError(f"file must be a path or a file opened in binary mode ('wb'), got file={file!r}")
        with self._lock:
            stored, size = self._stored, self._size
            order = (self._next - stored + np.arange(stored, dtype=np.int64)) % size
            rows = {name: np.asarray(host_array(value)) for name, value in self._gather(order).items()}
            nstep = self._nstep is not None
            next_of = None if nstep or self._next_of is None else sorted(n[5:] for n in self._next_of.pairs)
            stack = None if self._stack is None else sorted(self._stack.fields)
            written: str | None = write_transitions(
                file, rows, safe=safe, nstep=nstep, next_of=next_of, stack_compress=stack
            )
            return written

    def load_transitions(self, file: str | Any) -> None:
        """*Add* the transitions of a transitions file to what is stored (cpprb's semantics; a file larger
        than the buffer leaves its newest rows). Reads every file cpprb 10 and 11 write with
        ``save_transitions`` (safe or not, with ``next_of``, ``stack_compress``, N-step) and laber's own files
        (``save_transitions`` and ``save_checkpoint``). The rows are finished rows: they bypass the N-step
        window (this buffer's pending transitions stay pending); N-step rows without a ``discount`` (cpprb's)
        get ``gamma**n``; PER rows get the file's priorities (laber checkpoints) or the running maximum. The
        whole file and every row are checked first: on error a named ``ValueError`` and nothing is added. To
        restore a whole state, use ``load_checkpoint``. Holds the lock while it writes. See
        :mod:`laber.transitions`."""
        from laber.transitions import read_transitions

        data = read_transitions(file)
        with self._lock:
            self._add_loaded(data)

    def _add_loaded(self, data: Any) -> None:
        """``load_transitions`` once the file is read (lock held): check everything, then write. Errors about
        the rows name the file."""
        try:
            arrays, rows = self._check_loaded(data)
        except (TypeError, ValueError) as exc:
            if data.path in str(exc):
                raise
            raise type(exc)(f"{data.path!r}: {exc}") from exc
        if rows:
            self._write(arrays, rows)

    def _check_loaded(self, data: Any) -> tuple[dict[str, Any], int]:
        """The rows of a read transitions file, checked and shaped for ``_write`` (nothing written)."""
        nstep = self._nstep is not None
        if data.nstep != nstep:
            raise ValueError(
                f"{data.path!r} holds {'N-step' if data.nstep else 'one-step'} transitions, but this buffer "
                f"{'computes' if nstep else 'does not compute'} N-step returns"
            )
        missing = [n for n in self._input_names if n not in data.fields]
        if missing:
            raise ValueError(f"{data.path!r} lacks field(s) {missing} that this buffer stores")
        k = data.rows
        if k == 0:
            return {}, 0
        keep = slice(max(0, k - self._size), k)  # a file larger than the buffer: its newest rows survive
        fields = {n: data.fields[n][keep] for n in self._input_names}
        rows, arrays = self._schema.check_add(fields, self._input_names)
        if rows != k - keep.start:
            raise ValueError(f"{data.path!r}: fields disagree on the number of rows")
        for name, value in arrays.items():
            f = self._schema[name]
            arrays[name] = np.asarray(value, dtype=f.dtype).reshape(rows, *f.shape)
        if self._nstep is not None:
            cfg = self._nstep.config
            if DISCOUNT in data.fields:
                discount = np.asarray(data.fields[DISCOUNT][keep], dtype=np.float64).reshape(rows, 1)
            else:
                discount = np.full((rows, 1), cfg.gamma**cfg.size)
            arrays[DISCOUNT] = discount.astype(np.float32)
            if 0.0 < cfg.gamma < 1.0:  # the steps each row summed, for next_of's links
                steps = np.rint(np.log(np.maximum(discount[:, 0], 1e-300)) / np.log(cfg.gamma))
                arrays[STEPS] = np.clip(steps, 1, cfg.size).astype(np.int64)
        self._fill_hidden(arrays, rows, self._loaded_hidden(data.priorities, keep, rows))
        return arrays, rows

    # The checkpoint interface (laber.state.Checkpointable): laber.checkpoint reads and restores a buffer through
    # these three methods only. save_checkpoint/load_checkpoint hold the lock around the whole save/load.
    def checkpoint_state(self) -> BufferState:
        """A read-only view of the whole state, for :mod:`laber.checkpoint` (see :class:`laber.state.BufferState`).

        Takes the lock while it gathers the view; its arrays (the record array, the side stores) are views of the
        buffer's memory, consistent and valid only while the caller holds the lock (``save_checkpoint`` does).
        """
        import copy

        with self._lock:
            host = not self._storage.on_device
            nstep, next_of, stack = self._nstep, self._next_of, self._stack
            return BufferState(
                description=self._describe(),
                size=self._size,
                stored=self._stored,
                next=self._next,
                storage=repr(self._storage),
                on_device=not host,
                record=self._record if host else self._checkpoint_record,
                # a device buffer: a host copy of its rows in the host layout (files are the same either way)
                records=self._store if host else self._rows.to_records(self._checkpoint_record, self._stored),
                schema=self._schema,
                hidden=tuple(f.name for f in self._schema if f.name in self._schema.hidden),
                rng=copy.deepcopy(self._rng.bit_generator),
                nstep=None if nstep is None else NstepState(nstep.names, nstep.config.size, nstep.pending()),
                next_of=None
                if next_of is None
                else NextOfState(next_of.pairs, next_of.initial_capacity, next_of.state()),
                stack=None
                if stack is None
                else StackState(stack.fields, stack.depth, stack.initial_capacity, stack.state()),
                extra=self._checkpoint_extra(),
            )

    def check_checkpoint_extra(
        self, extra: Mapping[str, Any], rows: Mapping[str, np.ndarray], pending: Mapping[str, np.ndarray]
    ) -> None:
        """Check a checkpoint's extra state before ``load_checkpoint`` changes anything (raise ValueError).

        ``extra``: what ``_checkpoint_extra`` saved; ``rows[name]`` and ``pending[name]``: the values of each
        hidden field in every row of the checkpoint and in its pending N-step transitions. A subclass checks
        and removes its own keys, then calls this, which refuses any key left over. Changes nothing.
        """
        if extra:
            raise ValueError(f"unexpected extra state {sorted(extra)} for a {type(self).__name__}")

    def restore_checkpoint(self, restore: BufferRestore) -> None:
        """Install a checkpoint's state, already checked against this buffer (:class:`laber.state.BufferRestore`).

        Clears the buffer, lets ``restore.write_rows`` fill the record memory, then sets the link columns, the
        counters, the N-step, ``next_of`` and ``stack_compress`` state, a subclass's extra state
        (``_restore_extra``: PER rebuilds its sum tree) and the rng state. Should any step raise, the buffer is
        left empty rather than half-loaded, and the error propagates. Takes the lock (``load_checkpoint`` holds
        it from its checks on).
        """
        with self._lock:
            self.clear()
            try:
                k = restore.stored
                if self._storage.on_device:  # through host memory, in the host layout, then one upload
                    staging = np.zeros(self._size, dtype=self._checkpoint_record)
                    restore.write_rows(staging.view(np.uint8).data)
                    names = tuple(staging.dtype.names or ())
                    self._rows.put(slice(0, k), {n: staging[n][:k] for n in names}, names)
                else:
                    restore.write_rows(self._store.view(np.uint8).data)
                if restore.next_links is not None:
                    self._cols[LINK][:k] = restore.next_links
                if restore.stack_links is not None:
                    self._cols[STACK_LINK][:k] = restore.stack_links
                self._stored = k
                self._next = restore.next
                if self._nstep is not None:
                    self._nstep.restore(restore.pending)
                if self._next_of is not None and restore.next_of is not None:
                    self._next_of.restore(restore.next_of)
                if self._stack is not None and restore.stack is not None:
                    self._stack.restore(restore.stack)
                self._restore_extra(restore.extra)
                self._rng.bit_generator.state = dict(restore.rng)
            except BaseException:
                self.clear()
                raise

    def _describe(self) -> dict[str, Any]:
        return {
            "size": self._size,
            "next_of": None if self._next_of is None else sorted(self._next_of.pairs),
            "stack_compress": None if self._stack is None else sorted(self._stack.fields),
            "fields": {f.name: {"shape": list(f.shape), "dtype": f.dtype.str} for f in self._schema},
            "nstep": None
            if self._nstep_config is None
            else {
                "size": self._nstep_config.size,
                "gamma": self._nstep_config.gamma,
                "rew": list(self._nstep_config.rew),
                "next": list(self._nstep_config.next),
            },
        }

    def get_transitions(self, indexes: object) -> dict[str, np.ndarray]:
        """The stored rows at ``indexes`` (ring positions in ``[0, stored)``, repeats allowed), as fresh arrays.

        Every public field (with N-step also ``discount``), as ``sample`` returns them but without ``indexes``;
        an empty ``indexes`` gives ``(0, *shape)`` arrays. ``indexes`` is a 1-D sequence of integers (a torch
        tensor is brought to the host). Raises ``TypeError``/``ValueError`` naming ``indexes``. Holds the lock.
        """
        from laber._validation import host_array, short_repr

        arr = np.asarray(host_array(indexes))
        if arr.dtype.kind not in "iu" and (arr.size or arr.dtype.kind not in "f"):  # [] is fine, None or "0" not
            raise TypeError(f"indexes must be integers, got dtype {arr.dtype} for indexes={short_repr(indexes)}")
        if arr.ndim != 1:
            raise ValueError(f"indexes must be 1-D, got shape {arr.shape} for indexes={short_repr(indexes)}")
        if arr.size and (arr.dtype.kind not in "iu"):
            raise TypeError(f"indexes must be integers, got dtype {arr.dtype} for indexes={short_repr(indexes)}")
        with self._lock:
            if arr.size:
                lo, hi = int(arr.min()), int(arr.max())
                if lo < 0 or hi >= self._stored:
                    bad = lo if lo < 0 else hi
                    raise ValueError(
                        f"indexes must be in [0, {self._stored}), got {bad} in indexes={short_repr(indexes)}"
                    )
            return self._gather(arr.astype(np.int64))
