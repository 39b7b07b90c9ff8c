"""laber: experience replay for deep reinforcement learning, built around Large Batch Experience Replay.

LaBER (Lahire, Geist, Rachelson, "Large Batch Experience Replay", ICML 2022, arXiv:2110.01528) draws a large
uniform batch of ``m * B`` transitions, scores each with a cheap surrogate priority from the current network and
sub-samples ``B`` of them in proportion, with importance weights that keep the gradient estimate unbiased.
"""

from laber._accel import numba_enabled, set_numba
from laber.buffers import ReplayBuffer
from laber.gym import create_before_add_func, create_env_dict
from laber.her import HindsightReplayBuffer
from laber.laber import LaBERlazy, LaBERmax, LaBERmean, laber_subsample
from laber.mp import MPPrioritizedReplayBuffer, MPReplayBuffer
from laber.prioritized import PrioritizedReplayBuffer, per_laber_subsample
from laber.reverse import ReverseReplayBuffer
from laber.selective import SelectiveReplayBuffer
from laber.sumtree import SumMinTree
from laber.util import create_buffer, train

__all__ = [
    "HindsightReplayBuffer",
    "LaBERlazy",
    "LaBERmax",
    "LaBERmean",
    "MPPrioritizedReplayBuffer",
    "MPReplayBuffer",
    "PrioritizedReplayBuffer",
    "ReplayBuffer",
    "ReverseReplayBuffer",
    "SelectiveReplayBuffer",
    "SumMinTree",
    "create_before_add_func",
    "create_buffer",
    "create_env_dict",
    "laber_subsample",
    "numba_enabled",
    "per_laber_subsample",
    "set_numba",
    "train",
]

__version__ = "0.2.0"
