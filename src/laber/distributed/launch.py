"""``launch``: start the server actors of one replay on the running Ray cluster and return a client for them."""

from __future__ import annotations

import os
from pathlib import Path

from laber._validation import RngLike, check_nonnegative_float, check_positive_int
from laber.distributed._ray import gather, ray_module, server_actor_class
from laber.distributed.client import ReplayClient
from laber.distributed.spec import BufferSpec

__all__ = ["launch"]


def launch(
    spec: BufferSpec,
    shards: int = 1,
    *,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every_s: float = 60.0,
    resume: bool = False,
    max_restarts: int = 3,
    num_cpus: float = 1.0,
    rng: RngLike = None,
    retry_timeout_s: float = 60.0,
    max_in_flight: int = 4,
) -> ReplayClient:
    """Start ``shards`` :class:`~laber.distributed.server.ReplayServer` actors holding ``spec`` each, and wait
    until every one has built its buffer (so a bad spec fails here).

    Args:
        spec: each shard's buffer.
        shards: how many server actors (``K``); the replay holds up to ``K * spec.size`` rows.
        checkpoint_dir: shard ``s`` saves to ``checkpoint_dir/shard-<s>.ckpt`` every ``checkpoint_every_s``
            seconds (when something changed) and a restarted shard loads it. On a cluster, a directory every
            node can reach. None: no checkpoints (a restarted shard starts empty).
        resume: start from the files already in ``checkpoint_dir`` (otherwise an existing file is an error).
        max_restarts: how often Ray restarts a dead server (``-1``: without limit; 0: never).
        num_cpus: CPUs Ray reserves for each server.
        rng, retry_timeout_s, max_in_flight: for the returned client (see :class:`ReplayClient`).

    ``ray.init()`` (or ``ray.init(address=...)`` for a cluster) must have been called. Returns the client (the
    learner's); ``client.writer(i)`` makes one per acting actor.
    """
    if not isinstance(spec, BufferSpec):
        raise TypeError(f"spec must be a laber.distributed.BufferSpec, got spec={spec!r}")
    shards = check_positive_int(shards, "shards")
    check_nonnegative_float(checkpoint_every_s, "checkpoint_every_s")
    check_nonnegative_float(num_cpus, "num_cpus")
    if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < -1:
        raise ValueError(f"max_restarts must be an int >= -1, got max_restarts={max_restarts!r}")
    if not isinstance(resume, bool):
        raise TypeError(f"resume must be True or False, got resume={resume!r}")
    paths: list[str | None] = [None] * shards
    if checkpoint_dir is not None:
        if not isinstance(checkpoint_dir, (str, os.PathLike)):
            raise TypeError(f"checkpoint_dir must be a str or an os.PathLike, got checkpoint_dir={checkpoint_dir!r}")
        root = Path(os.fspath(checkpoint_dir)).absolute()  # the servers' working directories differ from ours
        paths = [str(root / f"shard-{s}.ckpt") for s in range(shards)]
        existing = [p for p in paths if p is not None and os.path.exists(p)]
        if existing and not resume:
            raise ValueError(
                f"checkpoint_dir={os.fspath(checkpoint_dir)!r} already holds {existing}: pass resume=True to "
                f"continue from them, or choose another directory (laber never deletes a file it did not write)"
            )
    ray = ray_module()
    if not ray.is_initialized():
        raise RuntimeError("launch needs a running Ray: call ray.init() (or ray.init(address=...)) first")
    actor = server_actor_class(max_restarts=max_restarts, num_cpus=num_cpus)
    servers = [
        actor.remote(spec, s, shards, checkpoint_path=paths[s], checkpoint_every_s=checkpoint_every_s, resume=resume)
        for s in range(shards)
    ]
    client = ReplayClient(servers, spec, rng=rng, retry_timeout_s=retry_timeout_s, max_in_flight=max_in_flight)
    gather([s.stats.remote for s in servers], retry_timeout_s, [f"shard {s}" for s in range(shards)])
    return client
