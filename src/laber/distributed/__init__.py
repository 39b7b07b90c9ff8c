"""Distributed replay on Ray (extra ``ray``): many acting processes, on many machines, add; one learner samples.

The Ape-X layout (Horgan et al., "Distributed Prioritized Experience Replay", ICLR 2018, arXiv:1803.00933) with
laber's buffers and LaBER (Lahire, Geist, Rachelson, "Large Batch Experience Replay", ICML 2022,
arXiv:2110.01528)::

    import ray
    from laber.distributed import BufferSpec, launch

    ray.init()                                   # or ray.init(address="auto") on a cluster
    spec = BufferSpec(100_000, env_dict, kind="prioritized", Nstep={"size": 3, "rew": "rew", "next": "next_obs"})
    replay = launch(spec, shards=2, checkpoint_dir="replay-ckpt")   # the learner's client
    writer = replay.writer(0)                    # picklable: hand one to each acting actor
    writer.add(obs=..., act=..., rew=..., next_obs=..., done=...)
    large = replay.sample(m * B, beta=0.4)       # one round trip per shard; LaBER sub-samples B on the learner
    replay.update_priorities(large["indexes"], td_errors)

Modules: :mod:`~laber.distributed.spec` (what a shard holds), :mod:`~laber.distributed.stream` (one writer's
checked adds and N-step windows), :mod:`~laber.distributed.server` (a shard, its checkpoints),
:mod:`~laber.distributed.sharding` (the split, global indexes and global PER weights),
:mod:`~laber.distributed.client` and :mod:`~laber.distributed.launch`. Importing this package needs numpy
only; starting or reaching servers needs Ray (``pip install 'laber[ray]'``), and says so when it is missing.
"""

from laber.distributed._ray import ServerUnavailableError
from laber.distributed.client import ReplayClient
from laber.distributed.launch import launch
from laber.distributed.server import ReplayServer
from laber.distributed.spec import BufferSpec
from laber.distributed.stats import ShardStats

__all__ = ["BufferSpec", "ReplayClient", "ReplayServer", "ServerUnavailableError", "ShardStats", "launch"]
