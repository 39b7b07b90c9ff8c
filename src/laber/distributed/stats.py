"""``ShardStats``: what a shard reports with every reply, and what the client splits its draws by."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["ShardStats"]


@dataclass(frozen=True)
class ShardStats:
    """One shard's state at the moment it answered a call.

    Attributes:
        shard: the shard's number ``s`` (its rows have global indexes ``s * capacity + row``).
        stored: rows stored, ``N_s``.
        capacity: rows it can hold.
        total: ``Q_s = sum_i q_i`` over its stored rows, ``q_i = (p_i + eps) ** alpha`` (prioritized shards);
            ``N_s`` for uniform shards. What the client splits a batch by.
        min_mass: ``min_i q_i`` over its rows of positive mass (``inf`` if none; uniform shards: 1).
        restored: whether this server incarnation started from a checkpoint (after a restart, or ``resume``).
        restarted: whether Ray restarted this server (this incarnation is not the first).
    """

    shard: int
    stored: int
    capacity: int
    total: float
    min_mass: float = math.inf
    restored: bool = False
    restarted: bool = False
