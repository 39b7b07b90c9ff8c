"""Multi-process replay on shared memory: ``MPReplayBuffer`` and ``MPPrioritizedReplayBuffer`` (cpprb's names).

The Ape-X layout on one machine (Horgan et al., "Distributed Prioritized Experience Replay", ICLR 2018): several
explorer processes ``add`` while one learner ``sample``\\s and ``update_priorities``. These are the ordinary
``ReplayBuffer`` / ``PrioritizedReplayBuffer`` over :class:`laber.storage.SharedStorage`: the same validation,
N-step, sampling and checkpoints; only where the arrays live and which lock guards them differ.

Pass the buffer to the processes when you create them (``multiprocessing.Process(target=explore,
args=(rb,))``), under ``fork`` or ``spawn``; each process then works on the same rows. Every public method holds a
lock shared by all processes (and the threads in them) for its whole call, so no process sees a half-written row
and no row is lost; a process that dies while holding it (an explorer killed mid-``add``) is detected and its lock
taken over. N-step works per process: each explorer accumulates its own windows (its pending transitions stay in
its memory until they complete or it calls ``on_episode_end``). ``next_of`` and ``stack_compress`` are refused:
their side stores grow in one process's memory.

Shared memory is unlinked by the creating process at ``close()`` or when its buffer is garbage-collected; Python's
resource tracker unlinks it if that process dies.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from laber.buffers import ReplayBuffer
from laber.prioritized import PrioritizedReplayBuffer
from laber.storage import SharedStorage

__all__ = ["MPPrioritizedReplayBuffer", "MPReplayBuffer"]

_BACKENDS = ("SharedMemory", "sharedctypes")


def _shared_storage(ctx: Any, backend: object, kwargs: Mapping[str, Any]) -> SharedStorage:
    if not isinstance(backend, str):
        raise TypeError(f"backend must be one of {list(_BACKENDS)}, got backend={backend!r}")
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {list(_BACKENDS)}, got backend={backend!r}")
    for key in ("storage", "mmap_prefix", "device"):
        if key in kwargs:
            raise ValueError(f"{key} cannot be given to a multi-process buffer (it always uses shared memory)")
    return SharedStorage(ctx)


class _Pickled:
    """Pickling of a multi-process buffer: its constructor arguments and its (attached) shared storage."""

    _init_args: tuple[tuple[Any, ...], dict[str, Any]]
    _storage: Any

    def __getstate__(self) -> dict[str, Any]:
        args, kwargs = self._init_args
        return {"args": args, "kwargs": kwargs, "storage": self._storage}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(*state["args"], _storage=state["storage"], **state["kwargs"])  # type: ignore[misc]


class MPReplayBuffer(_Pickled, ReplayBuffer):
    """``ReplayBuffer`` on shared memory, for explorer processes adding while a learner samples.

    Args:
        size, env_dict, default_dtype: as ``ReplayBuffer`` (``default_dtype`` may be given positionally, as
            in cpprb).
        ctx: a multiprocessing context (``multiprocessing.get_context("spawn")``) or a started
            ``multiprocessing.managers.SyncManager``, whose ``Lock()`` guards the buffer. Default: the default
            context.
        backend: ``"SharedMemory"`` or ``"sharedctypes"`` (cpprb's default); both use
            ``multiprocessing.shared_memory`` here.
        logger: accepted for cpprb's signature and unused (laber raises named errors instead of warning).
        **kwargs: ``Nstep``, ``rng``, ... as ``ReplayBuffer``; ``next_of`` and ``stack_compress`` are refused.
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]] | None = None,
        default_dtype: object = None,
        *,
        ctx: Any = None,
        backend: str = "SharedMemory",
        logger: Any = None,
        _storage: SharedStorage | None = None,
        **kwargs: Any,
    ) -> None:
        del logger  # cpprb's argument: laber raises named errors instead of logging warnings
        if default_dtype is not None:
            kwargs["default_dtype"] = default_dtype
        storage = _storage if _storage is not None else _shared_storage(ctx, backend, kwargs)
        self._init_args = ((size, env_dict), dict(kwargs))
        super().__init__(size, env_dict, storage=storage, **kwargs)


class MPPrioritizedReplayBuffer(_Pickled, PrioritizedReplayBuffer):
    """``PrioritizedReplayBuffer`` on shared memory: rows, priorities, sum tree and running maximum are shared.

    Args as ``MPReplayBuffer``, plus ``alpha`` and ``eps`` (positional third and fourth, as in cpprb) and
    ``check_for_update`` (default True here, as cpprb's multi-process buffer always does: ``update_priorities``
    skips rows that explorers overwrote since the learner's last ``sample``).
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]] | None = None,
        alpha: float = 0.6,
        eps: float = 1e-4,
        *,
        ctx: Any = None,
        backend: str = "SharedMemory",
        logger: Any = None,
        check_for_update: bool = True,
        _storage: SharedStorage | None = None,
        **kwargs: Any,
    ) -> None:
        del logger  # cpprb's argument: laber raises named errors instead of logging warnings
        kwargs["check_for_update"] = check_for_update
        storage = _storage if _storage is not None else _shared_storage(ctx, backend, kwargs)
        self._init_args = ((size, env_dict, alpha, eps), dict(kwargs))
        super().__init__(size, env_dict, alpha=alpha, eps=eps, storage=storage, **kwargs)
