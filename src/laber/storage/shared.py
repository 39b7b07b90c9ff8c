"""Shared memory for several processes (``MPReplayBuffer``): ``multiprocessing.shared_memory`` and a shared lock.

Every array is one shared-memory segment. The storage pickles to its segment names and lock, so a buffer passed
to ``multiprocessing.Process(args=(buffer,))`` attaches to the same memory in the child under both ``fork`` and
``spawn``. (Like every multiprocessing lock, the buffer travels through process creation, not through queues.)

Lock: a process-shared lock (``ctx.Lock()``, or a manager's lock when ``ctx`` is a ``SyncManager``) taken around
every public method, below an in-process ``threading.RLock`` for the threads of one process. Its holder's pid is
kept in shared memory: a process that waits more than ``dead_owner_check`` seconds checks whether the holder
still runs, and takes the lock over when it died (an explorer killed mid-``add``). Rows an explorer was writing
when it died are not published (the stored count and next index move only when a call completes), except that
in a full buffer a row being overwritten may hold a part of the new transition.

Lifetime: the process that created the segments unlinks them when the storage is closed or garbage-collected
(``weakref.finalize``), and Python's resource tracker unlinks them if that process dies; other processes only
detach. Nothing is left under ``/dev/shm`` after the creating process ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import weakref
from collections.abc import Iterable
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from laber.fields import Field
from laber.storage.base import Hook
from laber.storage.records import RecordRows


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not yet reaped, counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True


_UNNAMED_WAITS = 40  # with the default 1 s wait: a lock held for 40 s with no holder pid is taken over


class _ProcessLock:
    """Reentrant across the threads of a process, exclusive across processes, recoverable from a dead holder.

    ``lock`` is the process-shared lock, ``takeover`` a second one that serialises the recovery from a dead
    holder (so that two waiters never both release: the second would free the lock a live process just took).
    The in-process part (a ``threading.RLock`` and the nesting depth) is rebuilt in a process forked from
    another, whose copy may be held by a thread that does not exist in the child.
    """

    def __init__(
        self, lock: Any, takeover: Any, owner: np.ndarray, enter: Hook, exit: Hook, dead_owner_check: float
    ) -> None:
        self._lock = lock
        self._takeover = takeover
        self._owner = owner  # shared int64 [pid of the holder, 0 when free]
        self._pid = os.getpid()
        self._local = threading.RLock()
        self._depth = 0
        self._enter = enter
        self._exit = exit
        self._check = dead_owner_check

    def _take_over(self, holder: int) -> bool:
        """The lock is held by ``holder`` (dead, or 0: none recorded for many waits). Under the takeover lock,
        free it if that is still so; True when this process got the lock meanwhile (it was freed)."""
        if not self._takeover.acquire(timeout=self._check):
            return False  # another process is recovering it (or died doing so): wait again
        try:
            if self._lock.acquire(False):  # freed meanwhile: it is ours now
                return True
            if int(self._owner[0]) == holder:
                self._owner[0] = 0
                with contextlib.suppress(ValueError):
                    self._lock.release()
            return False
        finally:
            self._takeover.release()

    def _acquire_shared(self) -> None:
        unnamed = 0  # consecutive waits on a lock held with no holder recorded
        got = False
        try:
            while not got:
                got = self._lock.acquire(timeout=self._check)
                if got:
                    break
                holder = int(self._owner[0])
                unnamed = unnamed + 1 if holder == 0 else 0
                # The holder died: free its lock, then compete for it again. A process killed between taking the
                # lock and writing its pid (or between clearing it and releasing) leaves no pid: a lock that stays
                # held with no holder for many waits (a window of a few instructions otherwise) is taken over too.
                dead = holder != 0 and holder != os.getpid() and not _alive(holder)
                if dead or unnamed >= _UNNAMED_WAITS:
                    got = self._take_over(holder)
                    unnamed = 0
            self._owner[0] = os.getpid()
        except BaseException:  # e.g. KeyboardInterrupt right after the lock was taken: never keep it
            if got:
                self._owner[0] = 0
                self._lock.release()
            raise

    def __enter__(self) -> _ProcessLock:
        if self._pid != os.getpid():  # a forked child: the parent's threads do not exist here
            self._pid = os.getpid()
            self._local = threading.RLock()
            self._depth = 0
        self._local.acquire()
        if self._depth == 0:
            held = False
            try:
                self._acquire_shared()
                held = True
                self._enter()
            except BaseException:  # e.g. KeyboardInterrupt while loading the shared scalars: never keep the lock
                if held:
                    self._owner[0] = 0
                    self._lock.release()
                self._local.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                try:
                    self._exit()
                finally:
                    self._owner[0] = 0
                    self._lock.release()
        finally:
            self._local.release()


class _Segment(shared_memory.SharedMemory):
    """A segment whose mapping outlives it while arrays still use it: the arrays are made with
    ``np.frombuffer``, which holds the buffer, so ``close`` raises ``BufferError`` until the last array is
    gone (the memory is then unmapped with the last one) instead of unmapping memory in use."""

    def __del__(self) -> None:
        with contextlib.suppress(OSError, BufferError):
            self.close()


def _unlink(segments: list[shared_memory.SharedMemory], creator: int) -> None:
    for shm in segments:
        with contextlib.suppress(BufferError):  # an array still points into it: freed when the process ends
            shm.close()
        if os.getpid() == creator:  # never from a forked child holding a copy of this object
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()


class SharedStorage:
    """Arrays in ``multiprocessing.shared_memory`` segments, visible to every process the buffer is passed to.

    ``ctx``: a multiprocessing context (``multiprocessing.get_context("spawn")``, ...) or a started
    ``SyncManager``; its ``Lock()`` is the shared lock. ``None``: the default context.
    """

    name = "shared memory"
    shared = True
    on_device = False

    def __init__(self, ctx: Any = None, *, dead_owner_check: float = 1.0) -> None:
        if ctx is None:
            import multiprocessing

            ctx = multiprocessing.get_context()
        if not hasattr(ctx, "Lock"):
            raise TypeError(
                f"ctx must be a multiprocessing context (multiprocessing.get_context(...)) or a SyncManager, "
                f"got ctx={ctx!r}"
            )
        self._tag = f"laber_{os.getpid()}_{secrets.token_hex(4)}"
        self._creator = os.getpid()
        self._lock = ctx.Lock()
        self._takeover = ctx.Lock()
        self._dead_owner_check = float(dead_owner_check)
        self._segments: list[shared_memory.SharedMemory] = []
        self._names: dict[str, tuple[str, tuple[int, ...], np.dtype[Any]]] = {}
        self._attached = False
        self._owner = self.allocate("_lock_owner", (1,), np.dtype(np.int64), 0)
        self._finalizer = weakref.finalize(self, _unlink, self._segments, self._creator)

    # ------------------------------------------------------------------------------------------- arrays
    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        if self._attached:
            if name not in self._names:
                raise RuntimeError(f"internal error: shared array {name!r} is not part of this buffer")
            segment, shape_, dtype_ = self._names[name]
            if shape_ != tuple(shape) or dtype_ != dtype:
                raise RuntimeError(f"internal error: shared array {name!r} changed shape or dtype")
            shm = self._attach(segment)
        else:
            nbytes = max(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, 1)
            shm = _Segment(name=f"{self._tag}_{len(self._segments)}", create=True, size=nbytes)
            self._segments.append(shm)
            self._names[name] = (shm.name, tuple(shape), dtype)
        count = int(np.prod(shape, dtype=np.int64))
        buf = shm.buf
        if buf is None:
            raise RuntimeError(f"internal error: shared segment {shm.name!r} is closed")
        array: np.ndarray = np.frombuffer(buf, dtype=dtype, count=count).reshape(shape)  # holds the buffer
        if not self._attached and fill != 0:  # new segments are zero-filled
            array.fill(fill)
        return array

    def _attach(self, segment: str) -> shared_memory.SharedMemory:
        shm = _Segment(name=segment)
        self._segments.append(shm)
        return shm

    def rows(self, fields: Iterable[Field], size: int, host: Iterable[str]) -> RecordRows:
        """The rows in the record layout, in arrays from ``allocate``."""
        return RecordRows(fields, size, self.allocate)

    def lock(self, enter: Hook, exit: Hook) -> _ProcessLock:
        return _ProcessLock(self._lock, self._takeover, self._owner, enter, exit, self._dead_owner_check)

    # ------------------------------------------------------------------------------------------- lifetime
    @property
    def segment_names(self) -> list[str]:
        """The ``/dev/shm`` names of the segments (for tests and diagnostics)."""
        return [segment for segment, _, _ in self._names.values()]

    def close(self) -> None:
        """Detach; the creating process also unlinks the segments. Arrays from ``allocate`` become invalid."""
        self._finalizer()

    def __getstate__(self) -> dict[str, Any]:
        return {
            "names": self._names,
            "lock": self._lock,
            "takeover": self._takeover,
            "creator": self._creator,
            "tag": self._tag,
            "dead_owner_check": self._dead_owner_check,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._names = dict(state["names"])
        self._lock = state["lock"]
        self._takeover = state["takeover"]
        self._creator = state["creator"]
        self._tag = state["tag"]
        self._dead_owner_check = state["dead_owner_check"]
        self._segments = []
        self._attached = True
        self._owner = self.allocate("_lock_owner", (1,), np.dtype(np.int64), 0)
        self._finalizer = weakref.finalize(self, _unlink, self._segments, -1)  # detach only, never unlink

    def __repr__(self) -> str:
        return f"SharedStorage(segments={len(self._names)}, attached={self._attached})"
