"""``ReplayServer``: one shard, a laber buffer behind the methods a Ray actor serves.

The class itself is plain Python (Ray is imported lazily, only to ask whether this incarnation is a restart), so
it also runs in-process; ``laber.distributed.launch`` turns it into Ray actors with ``max_restarts``. A Ray
actor runs one call at a time, so every call sees and leaves the buffer whole; the buffer's own lock is then
uncontended.

Fault tolerance: with ``checkpoint_path`` the server saves its buffer with the crash-safe
``save_checkpoint`` (written to a temporary file and renamed: a crash never leaves a half-written file) once
``checkpoint_every_s`` seconds have passed since the last save and something changed; the check runs at every
call it receives (a learner calls every step). When Ray restarts a dead server, ``__init__`` runs again and
loads that file. **What is lost** is what the shard acknowledged after its last checkpoint: rows added and
priorities updated in the last ``checkpoint_every_s`` seconds (plus the time a save takes); a client retries an
add that failed, so an add the crash interrupted is sent again. A file already there at the first start is
refused unless ``resume=True`` (laber never deletes a file it did not write).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from laber._optional import loaded
from laber._validation import check_nonnegative_float, check_positive_int
from laber.distributed.spec import BufferSpec
from laber.distributed.stats import ShardStats
from laber.distributed.stream import Part
from laber.prioritized import PrioritizedReplayBuffer

__all__ = ["MASS_KEY", "ReplayServer"]

MASS_KEY = "_mass"  # the q_i of a prioritized shard's drawn rows, in its sample reply ('_': never a field name)


def _restarted() -> bool:
    """Whether this process is a Ray actor that Ray has restarted (False outside an actor)."""
    ray = loaded("ray")
    if ray is None or not ray.is_initialized():
        return False
    try:
        with warnings.catch_warnings():  # ray 2.x warns about its own use of a deprecated name inside
            warnings.simplefilter("ignore")
            return bool(ray.get_runtime_context().was_current_actor_reconstructed)
    except (AssertionError, AttributeError, RuntimeError):  # not in an actor (the driver, a task)
        return False


class ReplayServer:
    """One shard: a buffer built from ``spec`` and periodic crash-safe checkpoints.

    A prioritized shard reports its ``Q_s`` and ``min q`` (and the ``q_i`` of the rows it draws) from the
    buffer's own sum tree (``get_total_mass``, ``get_min_mass``, ``get_masses``).

    Args:
        spec: the buffer (see :class:`laber.distributed.BufferSpec`).
        shard: this shard's number ``s`` of ``shards``; its generator is ``spec.shard_seeds(shards)[s]``.
        shards: how many shards the spec is split into (seeds only).
        checkpoint_path: where to save periodically (None: never); loaded on a restart.
        checkpoint_every_s: seconds between checkpoints (0: after every call that changed something).
        resume: at the first start, load ``checkpoint_path`` if it exists (otherwise an existing file is an
            error).
    """

    def __init__(
        self,
        spec: BufferSpec,
        shard: int = 0,
        shards: int = 1,
        *,
        checkpoint_path: str | os.PathLike[str] | None = None,
        checkpoint_every_s: float = 60.0,
        resume: bool = False,
    ) -> None:
        if not isinstance(spec, BufferSpec):
            raise TypeError(f"spec must be a laber.distributed.BufferSpec, got spec={spec!r}")
        shards = check_positive_int(shards, "shards")
        if isinstance(shard, bool) or not isinstance(shard, int) or not 0 <= shard < shards:
            raise ValueError(f"shard must be an int in [0, {shards}), got shard={shard!r}")
        self._every = check_nonnegative_float(checkpoint_every_s, "checkpoint_every_s")
        if not isinstance(resume, bool):
            raise TypeError(f"resume must be True or False, got resume={resume!r}")
        self._path = None if checkpoint_path is None else Path(os.fspath(checkpoint_path))
        restarted = _restarted()
        if self._path is not None and self._path.exists() and not (restarted or resume):
            raise ValueError(
                f"checkpoint_path={str(self._path)!r} already exists: pass resume=True to continue from it, or "
                f"choose another checkpoint directory (laber never deletes a file it did not write)"
            )
        self.spec = spec
        self.shard = shard
        self._buffer = spec.build_buffer(rng=spec.shard_seeds(shards)[shard])
        self._per = self._buffer if isinstance(self._buffer, PrioritizedReplayBuffer) else None
        self._discount = spec.discount_column() if spec.nstep is not None else None
        self._restarted = restarted
        self._restored = False
        if self._path is not None and self._path.exists():
            self._buffer.load_checkpoint(self._path)
            self._restored = True
        self._dirty = False
        self._saved_at = time.monotonic()

    # ------------------------------------------------------------------------------------------- state
    def stats(self) -> ShardStats:
        """This shard's :class:`ShardStats` now (and a checkpoint if one is due)."""
        self._maybe_checkpoint()
        return self._stats()

    def _stats(self) -> ShardStats:
        stored = self._buffer.get_stored_size()
        if self._per is None:
            total, low = float(stored), 1.0 if stored else math.inf
        else:
            total, low = self._per.get_total_mass(), self._per.get_min_mass()
        return ShardStats(
            shard=self.shard,
            stored=stored,
            capacity=self._buffer.get_buffer_size(),
            total=total,
            min_mass=low,
            restored=self._restored,
            restarted=self._restarted,
        )

    def _changed(self) -> None:
        self._dirty = True
        self._maybe_checkpoint()

    def _maybe_checkpoint(self) -> None:
        if self._path is not None and self._dirty and time.monotonic() - self._saved_at >= self._every:
            self.checkpoint()

    def checkpoint(self) -> bool:
        """Save to ``checkpoint_path`` now (atomically); False without a path."""
        if self._path is None:
            return False
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._buffer.save_checkpoint(self._path)
        self._dirty = False
        self._saved_at = time.monotonic()
        return True

    # ------------------------------------------------------------------------------------------- writes
    def add(self, parts: list[Part]) -> ShardStats:
        """Store the parts a :class:`laber.distributed.stream.WriterStream` made, in order (one call: all or,
        on an error, the parts before the failing one)."""
        for fields, priorities in parts:
            rows = len(next(iter(fields.values())))
            if rows == 0:
                continue
            if self._per is None:
                self._buffer.add(**fields)
            else:
                self._per.add(priorities=priorities, **fields)
        self._changed()
        return self._stats()

    def update_priorities(self, rows: np.ndarray, priorities: np.ndarray) -> ShardStats:
        """Set the priorities of this shard's ``rows``. Rows at or beyond the stored count (lost with a crash
        since they were drawn) are skipped, and so, by the buffer's ``check_for_update``, are rows written since
        this shard's last draw; for duplicates the last value wins."""
        if self._per is None:
            raise TypeError("update_priorities needs a prioritized server (BufferSpec(kind='prioritized'))")
        rows = np.asarray(rows, dtype=np.int64)
        priorities = np.asarray(priorities, dtype=np.float64)
        keep = rows < self._buffer.get_stored_size()
        rows, priorities = rows[keep], priorities[keep]
        if rows.size:
            self._per.update_priorities(rows, priorities)
            self._changed()
        else:
            self._maybe_checkpoint()
        return self._stats()

    # ------------------------------------------------------------------------------------------- reads
    def sample(self, count: int, beta: float = 0.0) -> tuple[dict[str, np.ndarray] | None, ShardStats]:
        """``count`` rows drawn from this shard's buffer (uniformly, or by priority, stratified), with ``indexes``
        its rows and, for a prioritized shard, :data:`MASS_KEY`: their ``q_i`` (a name no field can have). The
        shard's own PER weights are not returned: the client computes the global ones
        (:mod:`laber.distributed.sharding`). None for an empty shard. N-step rows carry ``discount``."""
        del beta  # the weights are computed by the client, across all shards
        self._maybe_checkpoint()
        if self._buffer.get_stored_size() == 0:
            return None, self._stats()
        batch: dict[str, Any]
        if self._per is None:
            batch = self._buffer.sample(count)
        else:
            batch = self._per.sample(count, beta=0.0)
            batch.pop("weights")
            batch[MASS_KEY] = self._per.get_masses(batch["indexes"])
        if self._discount is not None:
            batch["discount"] = batch.pop(self._discount)
        return batch, self._stats()

    def __len__(self) -> int:
        return self._buffer.get_stored_size()

    # ------------------------------------------------------------------------------------------- files
    def save(self, path: str) -> str:
        """``save_checkpoint(path)`` of this shard's buffer (atomic); the path written."""
        target = Path(os.fspath(path))
        target.parent.mkdir(parents=True, exist_ok=True)
        self._buffer.save_checkpoint(target)
        return str(target)

    def load(self, path: str) -> ShardStats:
        """Replace this shard's state with ``load_checkpoint(path)`` (checked first: on error, unchanged)."""
        self._buffer.load_checkpoint(Path(os.fspath(path)))
        self._changed()
        return self._stats()

    def close(self) -> None:
        """Release the buffer's storage."""
        self._buffer.close()
