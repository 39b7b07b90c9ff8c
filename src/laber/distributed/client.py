r"""``ReplayClient``: the picklable handle that actors add through and the learner samples through.

One client talks to ``K >= 1`` server actors (shards, see :mod:`laber.distributed.server`):

* ``add`` / ``on_episode_end`` go to the client's *write shard* (``writer(i)`` gives actor ``i`` a client
  writing to shard ``i % K``), after the call is checked whole in this process
  (:class:`~laber.distributed.stream.WriterStream`); N-step windows run here, per writer. Adds are pipelined:
  up to ``max_in_flight`` calls travel at once, and ``flush()`` (which ``sample``, ``len``, ``save`` and
  ``load`` call first) waits for them, so a client always reads its own writes.
* ``sample(B, beta)`` splits the ``B`` draws across the shards by their sizes (uniform) or total priorities
  (prioritized) and asks every shard in parallel, one call each, for its share: a LaBER large batch of
  ``m * B`` rows is one round trip per shard. The PER weights are the single-buffer formula over all shards
  (:mod:`laber.distributed.sharding`), and ``indexes`` are global (``shard * capacity + row``).
* ``update_priorities(indexes, priorities)`` sends each shard its rows in one call (PER-LaBER writes the
  ``m * B`` fresh priorities back this way).

The split: every reply carries the shard's :class:`~laber.distributed.stats.ShardStats`, and the client
splits the next batch by the latest it has (each ``sample`` asks every shard, those without draws for their
stats only, so they are one call old at most). Splitting by masses known before the draw is what keeps it to
one round trip; a global snapshot of all shards would need a lock over all of them. The weights use the
probabilities the rows were *actually* drawn with, ``P_i = pi_s q_i / Q_s`` with ``Q_s`` at the draw, so they
are exact importance weights even when other writers changed a shard in between; when nothing changed (the
learner's own ``update_priorities`` replies refresh the stats) they are exactly the single-buffer weights
and the draw follows ``q_i / Q`` over all shards.

Arrays from ``sample`` are fresh and writable, the caller's own, as from ``ReplayBuffer.sample``: the rows
travel through Ray's object store without pickling copies, and the client copies them out of it once (the
concatenation across shards; with one shard, a copy), so a kept batch does not pin object-store memory.

Failures: a call to a server that died is retried (doubling waits, up to ``retry_timeout_s``) while Ray restarts
it from its checkpoint (``launch(max_restarts=...)``); then ``ServerUnavailableError``. A retried ``add``
resends its rows; a retried ``update_priorities`` after a restart is dropped for rows the restart lost.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from laber._validation import RngLike, as_generator, check_nonnegative_float, check_positive_int
from laber.distributed._ray import gather, ray_module
from laber.distributed.server import MASS_KEY
from laber.distributed.sharding import draw_probabilities, global_indexes, global_weights, route, split
from laber.distributed.spec import BufferSpec
from laber.distributed.stats import ShardStats
from laber.distributed.stream import Part, WriterStream

__all__ = ["ReplayClient"]

_ATTEMPTS = 3  # sample: splits redrawn when a shard turned out empty (restarted without a checkpoint)


class ReplayClient:
    """A handle on the servers of one replay (see the module docstring). Made by :func:`laber.distributed.launch`.

    Args:
        servers: the shards' Ray actor handles, in shard order.
        spec: their :class:`~laber.distributed.BufferSpec`.
        write_shard: the shard ``add`` writes to.
        rng: seeds the split of each batch across shards (int, Generator or None).
        retry_timeout_s: how long a call to a dead or restarting server is retried.
        max_in_flight: ``add`` calls that may travel at once (1: every add waits for its reply).

    Pickling (to pass the client to Ray actors) keeps the servers, spec, write shard and generator state, and
    starts a fresh stream: adds in flight and open N-step windows stay with the original.

    Threads: every public method holds the client's lock (a ``threading.RLock``) for the whole call, replies
    included, so threads sharing one client are served one call at a time; give each thread its own client
    (``writer(i)``) to overlap them.
    """

    def __init__(
        self,
        servers: Sequence[Any],
        spec: BufferSpec,
        *,
        write_shard: int = 0,
        rng: RngLike = None,
        retry_timeout_s: float = 60.0,
        max_in_flight: int = 4,
    ) -> None:
        if not isinstance(spec, BufferSpec):
            raise TypeError(f"spec must be a laber.distributed.BufferSpec, got spec={spec!r}")
        servers = tuple(servers)
        if not servers:
            raise ValueError("servers must hold at least one server actor, got none")
        if isinstance(write_shard, bool) or not isinstance(write_shard, int) or not 0 <= write_shard < len(servers):
            raise ValueError(f"write_shard must be an int in [0, {len(servers)}), got write_shard={write_shard!r}")
        self._timeout = check_nonnegative_float(retry_timeout_s, "retry_timeout_s")
        self._max_in_flight = check_positive_int(max_in_flight, "max_in_flight")
        self._rng = as_generator(rng)
        ray_module()
        self._servers = servers
        self._spec = spec
        self._write_shard = write_shard
        self._stream = WriterStream(spec)
        self._in_flight: list[tuple[Any, list[Part]]] = []
        self._stats: list[ShardStats | None] = [None] * len(servers)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------- handles
    @property
    def spec(self) -> BufferSpec:
        """The shards' buffer spec."""
        return self._spec

    @property
    def shards(self) -> int:
        """How many servers (shards) this client talks to."""
        return len(self._servers)

    @property
    def servers(self) -> tuple[Any, ...]:
        """The shards' Ray actor handles."""
        return self._servers

    @property
    def write_shard(self) -> int:
        """The shard ``add`` writes to."""
        return self._write_shard

    def writer(self, index: int, *, rng: RngLike = None) -> ReplayClient:
        """A new client for writer ``index`` (an actor), writing to shard ``index % shards``, with its own stream."""
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"index must be an int >= 0, got index={index!r}")
        return ReplayClient(
            self._servers,
            self._spec,
            write_shard=index % len(self._servers),
            rng=rng,
            retry_timeout_s=self._timeout,
            max_in_flight=self._max_in_flight,
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_in_flight"] = []
        state["_stream"] = None
        state["_lock"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stream = WriterStream(self._spec)
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"ReplayClient(shards={len(self._servers)}, kind={self._spec.kind!r}, write_shard={self._write_shard})"

    def _name(self, shard: int) -> str:
        return f"replay server shard {shard}"

    # ------------------------------------------------------------------------------------------- writing
    def add(self, priorities: object = None, **fields: Any) -> None:
        """Add one transition (each field of its declared shape) or a batch (an extra leading axis).

        Checked as a whole here first (a named ``ValueError``/``TypeError``, nothing sent or kept); then sent
        to the write shard without waiting for the reply (at most ``max_in_flight`` calls travel at once).
        ``priorities``: None (the shard's running maximum), a scalar or one value per row (prioritized).
        """
        with self._lock:
            self._send(self._stream.push(fields, priorities))

    def on_episode_end(self) -> None:
        """End this writer's episode: open N-step windows are cut and their rows sent."""
        with self._lock:
            self._send(self._stream.flush())

    def _send(self, parts: list[Part]) -> None:
        if not parts:
            return
        self._in_flight.append((self._submit_add(parts), parts))
        self._settle(self._max_in_flight - 1)

    def _submit_add(self, parts: list[Part]) -> Any:
        return self._servers[self._write_shard].add.remote(parts)

    def _settle(self, keep: int) -> None:
        """Wait for the oldest adds in flight until at most ``keep`` remain (a failed one is sent again)."""
        ray = ray_module()
        while len(self._in_flight) > keep:
            ref, parts = self._in_flight.pop(0)
            try:
                stats = ray.get(ref)
            except ray.exceptions.RayActorError:
                (stats,) = gather([partial(self._submit_add, parts)], self._timeout, [self._name(self._write_shard)])
            self._stats[self._write_shard] = stats

    def flush(self) -> None:
        """Wait until every add sent by this client is stored (N-step windows still open stay here)."""
        with self._lock:
            self._settle(0)

    # ------------------------------------------------------------------------------------------- reading
    def stats(self) -> list[ShardStats]:
        """Every shard's :class:`ShardStats` now (one parallel call each; after this client's adds)."""
        with self._lock:
            self.flush()
            return self._refresh()

    def _refresh(self) -> list[ShardStats]:
        calls = [s.stats.remote for s in self._servers]
        stats: list[ShardStats] = gather(calls, self._timeout, [self._name(i) for i in range(self.shards)])
        self._stats = list(stats)
        return stats

    def __len__(self) -> int:
        return sum(st.stored for st in self.stats())

    def _masses(self) -> np.ndarray:
        stats = self._stats if all(st is not None for st in self._stats) else self._refresh()
        return np.array([st.total for st in stats if st is not None], dtype=np.float64)

    def sample(self, batch_size: int, beta: float = 0.4) -> dict[str, np.ndarray]:
        r"""Draw ``batch_size`` rows across all shards (see the module docstring): the fields, ``indexes`` (global,
        int64) and, from prioritized shards, ``weights`` (float32),
        ``w_i = (P_i / min_j P_j) ** -beta`` over the rows of every shard. ``beta >= 0`` (ignored by uniform
        shards, which return no weights). Fresh writable arrays; one call per shard, in parallel.
        """
        with self._lock:
            batch_size = check_positive_int(batch_size, "batch_size")
            beta = check_nonnegative_float(beta, "beta")
            self.flush()
            for _ in range(_ATTEMPTS):
                masses = self._masses()
                if not masses.sum() > 0:
                    masses = np.array([st.total for st in self._refresh()], dtype=np.float64)
                    if not masses.sum() > 0:
                        raise ValueError("cannot sample from an empty buffer: add transitions first")
                counts = split(masses, batch_size, self._rng)
                calls = [
                    partial(s.sample.remote, int(k), beta) if k else s.stats.remote
                    for s, k in zip(self._servers, counts, strict=True)
                ]
                replies = gather(calls, self._timeout, [self._name(i) for i in range(self.shards)])
                stats = [reply[1] if k else reply for reply, k in zip(replies, counts, strict=True)]
                self._stats = list(stats)
                batches = [reply[0] if k else None for reply, k in zip(replies, counts, strict=True)]
                if all(b is not None for b, k in zip(batches, counts, strict=True) if k):
                    return self._merge(batches, masses, stats, beta)
            raise ValueError("cannot sample: the shards kept changing (restarting empty) while the batch was drawn")

    def _merge(
        self,
        batches: list[dict[str, np.ndarray] | None],
        masses: np.ndarray,
        stats: list[ShardStats],
        beta: float,
    ) -> dict[str, np.ndarray]:
        drawn = [b for b in batches if b is not None]
        names = [n for n in drawn[0] if n not in ("indexes", MASS_KEY)]
        out: dict[str, np.ndarray] = {}
        for name in names:  # np.concatenate always allocates: a fresh array out of the object store's views
            out[name] = np.concatenate([b[name] for b in drawn])
        empty = np.empty(0, dtype=np.int64)
        local = [empty if b is None else b["indexes"] for b in batches]
        out["indexes"] = global_indexes(local, self._spec.size)
        if self._spec.prioritized:
            pi, p_min = draw_probabilities(masses, stats)
            q = [np.empty(0) if b is None else b[MASS_KEY] for b in batches]
            out["weights"] = global_weights(q, pi, stats, p_min, beta)
        return out

    # ------------------------------------------------------------------------------------------- priorities
    def update_priorities(self, indexes: object, priorities: object) -> None:
        """Set the priorities of the rows at global ``indexes`` (from ``sample``): one call per shard holding
        some, in parallel. Checked as a whole first. A shard skips rows written since its last draw (rows the
        learner never saw: ``check_for_update``) and rows a restart lost. Duplicates: the last value wins."""
        with self._lock:
            if not self._spec.prioritized:
                raise TypeError("update_priorities needs a prioritized server (BufferSpec(kind='prioritized'))")
            routed = route(indexes, priorities, self._spec.size, self.shards)
            top = max((float(p.max()) for _, p in routed.values() if p.size), default=0.0)  # a loop over shards
            if not self._spec.mass_fits(top):  # refused here, before any shard writes (not by one of them)
                raise ValueError(
                    f"priorities too large: (p + eps) ** alpha for priorities={top!r} with alpha={self._spec.alpha!r} "
                    f"could overflow the sum over a shard of {self._spec.size} rows"
                )
            order = sorted(routed)
            calls = [partial(self._servers[s].update_priorities.remote, *routed[s]) for s in order]
            for s, st in zip(order, gather(calls, self._timeout, [self._name(s) for s in order]), strict=True):
                self._stats[s] = st

    # ------------------------------------------------------------------------------------------- files
    def _paths(self, directory: str | os.PathLike[str]) -> list[str]:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a str or an os.PathLike, got directory={directory!r}")
        root = Path(os.fspath(directory)).absolute()
        return [str(root / f"shard-{s}.laber") for s in range(self.shards)]

    def save(self, directory: str | os.PathLike[str]) -> list[str]:
        """Every shard's ``save_checkpoint`` to ``directory/shard-<s>.laber`` (atomic each; the directory is on
        the servers' machines, so give a shared file system on a cluster). The paths written."""
        with self._lock:
            paths = self._paths(directory)
            self.flush()
            calls = [partial(s.save.remote, p) for s, p in zip(self._servers, paths, strict=True)]
            written: list[str] = gather(calls, self._timeout, [self._name(i) for i in range(self.shards)])
            return written

    def load(self, directory: str | os.PathLike[str]) -> None:
        """Replace every shard's state with ``directory/shard-<s>.laber`` (as written by ``save``). Every file
        must exist first (checked here, on this machine's view of the directory); each shard checks its file
        whole before it changes anything."""
        with self._lock:
            paths = self._paths(directory)
            missing = [p for p in paths if not os.path.exists(p)]
            if missing:
                raise ValueError(f"directory={os.fspath(directory)!r} lacks {missing} (one file per shard)")
            self.flush()
            self._stream.clear()
            calls = [partial(s.load.remote, p) for s, p in zip(self._servers, paths, strict=True)]
            self._stats = list(gather(calls, self._timeout, [self._name(i) for i in range(self.shards)]))
