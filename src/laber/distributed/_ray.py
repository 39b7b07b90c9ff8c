"""Ray, imported lazily (extra ``ray``), and calls to server actors that are retried while a server restarts."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from laber._optional import require

__all__ = ["ServerUnavailableError", "gather", "ray_module", "server_actor_class"]

_BACKOFF_S = (0.05, 1.0)  # first wait between retries, and the longest (the wait doubles in between)


class ServerUnavailableError(RuntimeError):
    """A server actor stayed unreachable (dead, or restarting) for the client's whole ``retry_timeout_s``."""


def ray_module() -> ModuleType:
    """``ray``, or ``ImportError`` naming the extra: ``pip install 'laber[ray]'``."""
    return require("ray", "laber.distributed (the Ray replay server)")


def server_actor_class(*, max_restarts: int, num_cpus: float) -> Any:
    """``ReplayServer`` as a Ray actor class that Ray restarts up to ``max_restarts`` times (-1: always)."""
    ray = ray_module()
    from laber.distributed.server import ReplayServer

    return ray.remote(num_cpus=num_cpus, max_restarts=max_restarts, max_task_retries=0)(ReplayServer)


def gather(calls: Sequence[Callable[[], Any]], timeout_s: float, names: Sequence[str]) -> list[Any]:
    """Submit every call (each returns an ``ObjectRef``), then wait for all of their results.

    A call whose actor died or is restarting (``ray.exceptions.RayActorError``) is submitted again, after a
    wait that doubles from 0.05 s to at most 1 s, until ``timeout_s`` seconds have passed since the first
    submission; then ``ServerUnavailableError`` names the server (``names[i]``). An exception the server raised
    itself (a ``ValueError`` from the buffer) propagates at once (Ray re-raises it as the same type), and so,
    as ``ServerUnavailableError``, does a server whose ``__init__`` failed.
    """
    ray = ray_module()
    actor_error = ray.exceptions.RayActorError
    deadline = time.monotonic() + timeout_s
    refs = [call() for call in calls]
    results: list[Any] = [None] * len(calls)
    pending = list(range(len(calls)))
    wait = _BACKOFF_S[0]
    while pending:
        failed: list[int] = []
        for i in pending:
            try:
                results[i] = ray.get(refs[i])
            except actor_error as exc:
                if getattr(exc, "actor_init_failed", False):  # its __init__ raised: a restart would too
                    raise ServerUnavailableError(f"{names[i]} failed to start: {exc}") from exc
                if time.monotonic() >= deadline:
                    raise ServerUnavailableError(
                        f"{names[i]} did not answer within retry_timeout_s={timeout_s:g} s (dead or restarting): {exc}"
                    ) from exc
                failed.append(i)
        if failed:
            time.sleep(min(wait, max(deadline - time.monotonic(), 0.0)))
            wait = min(2 * wait, _BACKOFF_S[1])
            for i in failed:
                refs[i] = calls[i]()
        pending = failed
    return results
