r"""Sampling across shards: how a batch is split, how global indexes are formed, and the global PER weights.

Numpy only and pure (no Ray), so every formula here is tested without a cluster.

**Split.** Shard ``s`` has mass ``mu_s``: its stored rows ``N_s`` (uniform) or its total priority
``Q_s = sum_i q_i``, ``q_i = (p_i + eps) ** alpha`` (prioritized). A batch of ``B`` draws is split by
``pi_s = mu_s / sum_t mu_t``, stratified like PER's own draw: ``u_j = (j + U_j) / B`` for ``j < B``, ``U_j``
uniform in ``[0, 1)``, and draw ``j`` goes to the shard whose interval of the cumulative ``pi`` holds ``u_j``.
Shard ``s`` then gets ``floor(B pi_s)`` or ``ceil(B pi_s)`` draws, ``B pi_s`` on average, and draws them from
its own buffer (uniformly, or in proportion to ``q_i`` within it). A row ``i`` of shard ``s`` is therefore drawn
with probability ``P_i = pi_s / N_s`` (uniform) or ``P_i = pi_s q_i / Q_s`` (prioritized) per draw. When
``pi_s`` is computed from the shards' current masses, ``P_i = 1 / N`` and ``P_i = q_i / Q`` with
``N = sum_s N_s`` and ``Q = sum_s Q_s``: exactly one buffer holding all the rows.

**Weights** (Schaul et al., "Prioritized Experience Replay", ICLR 2016, arXiv:1511.05952), over all shards::

    w_i = (N P_i) ** -beta / max_j (N P_j) ** -beta = (P_i / min_j P_j) ** -beta

with ``j`` over every row that can be drawn, in every shard: ``min_j P_j = min_s pi_s m_s / Q_s``, ``m_s`` the
smallest positive ``q`` of shard ``s``. This is the single-buffer formula ``(q_i / min_j q_j) ** -beta`` with the
*global* minimum, not each shard's own (which would weight two shards' rows on different scales).

**Global indexes.** Row ``r`` of shard ``s`` (each shard of capacity ``C``) is ``s * C + r``: ``index // C`` is
the shard, ``index % C`` the row, so ``update_priorities`` goes back to the shard that holds each row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from laber._validation import host_array, short_repr
from laber.distributed.stats import ShardStats

__all__ = ["draw_probabilities", "global_indexes", "global_weights", "route", "split"]


def split(masses: Sequence[float] | np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws per shard for a batch of ``batch_size``: stratified over ``pi = masses / sum(masses)`` (int64).

    ``masses`` must be finite, ``>= 0`` and not all 0 (checked by the caller). Shard ``s`` gets
    ``floor(B pi_s)`` or ``ceil(B pi_s)`` draws, ``B pi_s`` on average; a shard of mass 0 gets none.
    """
    mu = np.asarray(masses, dtype=np.float64)
    cum = np.cumsum(mu)
    u = (np.arange(batch_size) + rng.random(batch_size)) * (cum[-1] / batch_size)
    shard = np.searchsorted(cum, u, side="right")
    # rounding can put u at cum[-1] exactly, or (with empty shards last) past the last shard of positive mass
    shard = np.minimum(shard, int(np.flatnonzero(mu > 0)[-1]))
    counts: np.ndarray = np.bincount(shard, minlength=len(mu)).astype(np.int64)
    return counts


def draw_probabilities(masses: np.ndarray, stats: Sequence[ShardStats]) -> tuple[np.ndarray, float]:
    """``pi_s``, and ``min_j P_j`` over the drawable rows of all shards, for a split by ``masses``.

    ``stats`` are the shards' states when they drew (``total`` = ``Q_s``, ``min_mass`` = ``m_s``). Shards with
    ``pi_s = 0`` or no mass cannot be drawn from and are left out of the minimum.
    """
    pi = np.asarray(masses, dtype=np.float64) / float(np.sum(masses))
    p_min = np.inf
    for s, st in enumerate(stats):
        if pi[s] > 0 and st.total > 0 and np.isfinite(st.min_mass):
            p_min = min(p_min, pi[s] * st.min_mass / st.total)
    return pi, float(p_min)


def global_weights(
    q: Sequence[np.ndarray], pi: np.ndarray, stats: Sequence[ShardStats], p_min: float, beta: float
) -> np.ndarray:
    """``w_i = (P_i / min_j P_j) ** -beta`` (float32) for the rows each shard drew, in shard order.

    ``q[s]`` holds the masses ``q_i`` of the rows shard ``s`` drew (empty if none): ``P_i = pi_s q_i / Q_s``.
    Computed in float64, so that with current masses it equals the single-buffer ``(q_i / min q) ** -beta``
    up to float64 rounding before the cast.
    """
    parts = [pi[s] * np.asarray(qs, dtype=np.float64) / stats[s].total for s, qs in enumerate(q) if len(qs)]
    p = np.concatenate(parts) if parts else np.empty(0)
    ratio = p / p_min
    out = np.empty(ratio.shape[0], dtype=np.float32)
    np.power(ratio, -beta, out=out, dtype=np.float64)
    return out


def global_indexes(local: Sequence[np.ndarray], capacity: int) -> np.ndarray:
    """``s * capacity + row`` for the rows each shard ``s`` drew (int64, in shard order)."""
    parts = [s * capacity + np.asarray(rows, dtype=np.int64) for s, rows in enumerate(local) if len(rows)]
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def route(indexes: object, priorities: object, capacity: int, shards: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{shard: (rows, priorities)}`` for an ``update_priorities`` call, checked as a whole first.

    ``indexes``: 1-D integers in ``[0, shards * capacity)`` (global indexes from ``sample``); ``priorities``:
    as many finite values ``>= 0``. Torch tensors are brought to the host. Within a shard the order is kept,
    so for a duplicated index the last value wins, as in ``PrioritizedReplayBuffer.update_priorities``.
    """
    idx = np.asarray(host_array(indexes))
    if idx.ndim == 0:
        idx = idx.reshape(1)
    if idx.ndim != 1:
        raise ValueError(f"indexes must be 1-D, got shape {idx.shape} for indexes={short_repr(indexes)}")
    if idx.size and idx.dtype.kind not in "iu":
        raise TypeError(f"indexes must be integers, got dtype {idx.dtype} for indexes={short_repr(indexes)}")
    bound = shards * capacity
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= bound):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise ValueError(
            f"indexes must be global indexes in [0, {bound}) (shards * capacity), got {bad} in "
            f"indexes={short_repr(indexes)}"
        )
    value = host_array(priorities)
    try:
        p = np.asarray(value)
        if p.dtype.kind not in "fiu":
            raise TypeError
        p = p.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"priorities must be real numbers, got priorities={short_repr(priorities)}") from None
    if p.ndim == 0:
        p = p.reshape(1)
    if p.shape != idx.shape:
        raise ValueError(f"priorities must have one value per index, got shape {p.shape} for {idx.shape[0]} indexes")
    if p.size and not (p.min() >= 0 and p.max() < np.inf):
        k = int(np.flatnonzero(~(np.isfinite(p) & (p >= 0)))[0])
        raise ValueError(f"priorities must be finite and >= 0, got priorities[{k}]={float(p[k])!r}")
    idx = idx.astype(np.int64)
    shard, rows = np.divmod(idx, capacity)
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for s in np.unique(shard).tolist():  # a loop over the (few) shards, not over the rows
        mask = shard == s
        out[int(s)] = (rows[mask], p[mask])
    return out
