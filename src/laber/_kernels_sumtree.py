"""numba kernels for ``laber.sumtree.SumMinTree`` and ``laber.prioritized.PrioritizedReplayBuffer``.

Loaded through ``laber._accel.kernels("sumtree")`` only when numba is enabled. Each kernel is the compiled
twin of a vectorised numpy path in ``laber.sumtree``: the same float64 operations in the same order
(``parent = left + right``; at the top level one prefix sum ``cum[i] = cum[i - 1] + top[i]`` and a binary
search counting the prefix sums ``<= v``; on the way down ``v -= left * (v >= left)``, and the same careful
fallback where rounding would reach a leaf of mass 0), so both paths build bit-identical trees and draw
identical indexes from the same uniforms. Only the loop order differs, which no result depends on: every batch
element descends on its own, and a sum node recomputed from its children gets the same value whenever it is
recomputed. Min nodes are updated incrementally (see ``_update``); a minimum is exact, so they too end equal
to the minimum of their block, as numpy's recomputation gives.

The tree is passed as two flat float64 arrays, the sum levels and the min levels (level 0 the leaves), each
with an int64 array of level offsets (level ``l`` is ``flat[off[l]:off[l + 1]]``); ``SumMinTree`` keeps its
level arrays as views of these. Kernels trust their inputs (numba does not check bounds): callers validate
first, and nothing here raises.

Powers (``(p + eps) ** alpha``, ``ratio ** -beta``) stay in numpy on both paths: libm's and numpy's ``pow``
may round differently, and the results must not depend on the backend.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["check_update", "find", "sample", "update", "write_priorities"]

_INF = np.inf


def _top_cumsum(sums: np.ndarray, off: np.ndarray) -> np.ndarray:
    """``np.cumsum`` of the top sum level, as numpy computes it (left to right)."""
    start = off[off.shape[0] - 2]
    n = off[off.shape[0] - 1] - start
    cum = np.empty(n, dtype=np.float64)
    acc = sums[start]
    cum[0] = acc
    for i in range(1, n):
        acc = acc + sums[start + i]
        cum[i] = acc
    return cum


def _descend(sums: np.ndarray, off: np.ndarray, cum: np.ndarray, v: np.ndarray, node: np.ndarray) -> None:
    """``SumMinTree._search``: leaves for ``v`` (each in ``[0, cum[-1])``, changed in place) into ``node``."""
    batch = v.shape[0]
    ntop = cum.shape[0]
    v0 = np.empty(batch, dtype=np.float64)
    node0 = np.empty(batch, dtype=np.int64)
    # searchsorted(cum, v, side="right"), the number of prefix sums <= v, by binary lifting: one step for the
    # whole batch at a time, so the batch's searches overlap in the pipeline.
    step = 1
    while step * 2 <= ntop:
        step *= 2
    node[:] = 0
    while step > 0:
        for b in range(batch):
            j = node[b] + step
            if j <= ntop and cum[j - 1] <= v[b]:
                node[b] = j
        step >>= 1
    for b in range(batch):
        count = node[b]
        if count > 0:
            v[b] = v[b] - cum[count - 1]
        v0[b] = v[b]
        node0[b] = count
    levels = off.shape[0] - 1
    # Level by level over the batch (as the numpy path), and without branches on the data: the loads of one
    # level are independent, so the memory system overlaps their cache misses.
    for level in range(levels - 2, -1, -1):
        base = off[level]
        for b in range(batch):
            child = node[b] + node[b]
            left = sums[base + child]
            right = v[b] >= left
            v[b] = v[b] - left * right  # as numpy: v - left * (v >= left)
            node[b] = child + right
    for b in range(batch):
        if sums[node[b]] <= 0:  # rounding stepped into a child of mass 0: SumMinTree._careful_search
            x = v0[b]
            k = node0[b]
            for level in range(levels - 2, -1, -1):
                base = off[level]
                k = k + k
                left = sums[base + k]
                right_mass = sums[base + k + 1]
                if (x >= left and right_mass > 0) or left <= 0:
                    x = max(x - left, 0.0)
                    k += 1
                else:
                    x = min(x, np.nextafter(left, 0.0))
            node[b] = k


def _sample(
    sums: np.ndarray, off: np.ndarray, mins: np.ndarray, moff: np.ndarray, u: np.ndarray, node: np.ndarray
) -> float:
    """``SumMinTree.sample_stratified`` for the uniforms ``u``: the leaves into ``node``, and ``q_leaf / min q``
    into ``u`` (read first, then overwritten: one array less to allocate). Returns the total mass.

    With a total mass ``<= 0`` nothing is searched or written (the caller raises).
    """
    batch = u.shape[0]
    cum = _top_cumsum_jit(sums, off)
    total: float = cum[cum.shape[0] - 1]
    if not total > 0:
        return total
    scale = total / batch
    hi = np.nextafter(total, 0.0)
    v = np.empty(batch, dtype=np.float64)
    for b in range(batch):
        x = (float(b) + u[b]) * scale  # as numpy: (arange(batch) + u) * (total / batch), then min with hi
        v[b] = x if x <= hi else hi
    _descend_jit(sums, off, cum, v, node)
    lowest = _INF
    for i in range(moff[moff.shape[0] - 2], moff[moff.shape[0] - 1]):
        lowest = min(lowest, mins[i])
    for b in range(batch):
        u[b] = sums[node[b]] / lowest
    return total


def _find(sums: np.ndarray, off: np.ndarray, v: np.ndarray, node: np.ndarray) -> float:
    """``SumMinTree.find_prefix_sum`` for ``v`` (no NaN; clipped in place): the leaves into ``node``. Returns the
    total mass; with a total mass ``<= 0`` nothing is searched."""
    cum = _top_cumsum_jit(sums, off)
    total: float = cum[cum.shape[0] - 1]
    if not total > 0:
        return total
    hi = np.nextafter(total, 0.0)
    for b in range(v.shape[0]):
        v[b] = min(max(v[b], 0.0), hi)
    _descend_jit(sums, off, cum, v, node)
    return total


def _update(
    sums: np.ndarray,
    off: np.ndarray,
    mins: np.ndarray,
    moff: np.ndarray,
    fanout: int,
    idx: np.ndarray,
    vals: np.ndarray,
) -> None:
    """``SumMinTree._update_unchecked``: set ``q[idx] = vals`` in order (so the last of duplicates wins) and
    refresh the ancestors. ``idx`` in range, ``vals`` finite and ``>= 0``.

    Sum nodes are recomputed from their children, level by level, as the numpy path does. A min node is a
    minimum, which is exact in any order, so it is kept up to date one leaf at a time, visiting only what can
    change: a parent takes the new value if it is smaller, is recomputed from its block only if the old value
    was its minimum and the new one is larger, and is left alone otherwise (the common case, which stops
    there). After every leaf each min node equals the minimum of its block, as a from-scratch build gives.
    """
    n = idx.shape[0]
    leaves = off[1]
    if 8 * n >= leaves:  # a large update: write the leaves and rebuild every level
        for i in range(n):
            x = vals[i]
            sums[idx[i]] = x
            mins[idx[i]] = x if x > 0 else _INF
        for level in range(1, off.shape[0] - 1):
            below = off[level - 1]
            base = off[level]
            for j in range((base - below) >> 1):
                sums[base + j] = sums[below + 2 * j] + sums[below + 2 * j + 1]
        for level in range(1, moff.shape[0] - 1):
            below = moff[level - 1]
            base = moff[level]
            for j in range((base - below) // fanout):
                _min_block(mins, below, base, j, fanout)
        return
    levels = moff.shape[0] - 1
    for i in range(n):
        leaf = idx[i]
        x = vals[i]
        sums[leaf] = x
        new = x if x > 0 else _INF
        old = mins[leaf]
        mins[leaf] = new
        j = leaf
        for level in range(1, levels):
            j //= fanout
            base = moff[level]
            held = mins[base + j]
            if new < held:
                mins[base + j] = new
            elif old == held and new > old:  # the old value was the block's minimum: rescan the block
                new = _min_block(mins, moff[level - 1], base, j, fanout)
                if new == held:
                    break
            else:
                break
            old = held
    for level in range(1, off.shape[0] - 1):
        below = off[level - 1]
        base = off[level]
        last = -1
        for i in range(n):
            j = idx[i] >> level
            if j != last:
                sums[base + j] = sums[below + 2 * j] + sums[below + 2 * j + 1]
                last = j


def _min_block_py(mins: np.ndarray, below: int, base: int, j: int, fanout: int) -> float:
    """Set min node ``j`` of the level at ``base`` to the minimum of its ``fanout`` children at ``below``."""
    start = below + j * fanout
    lowest = mins[start]
    for c in range(start + 1, start + fanout):
        lowest = min(lowest, mins[c])
    mins[base + j] = lowest
    return float(lowest)


def _check_update(idx: np.ndarray, p: np.ndarray) -> tuple[int, int, int, int]:
    """One pass over an update's arguments: ``(min idx, max idx, first p not finite or < 0, argmax p)``.

    ``-1`` for "none" in the last two (and ``0, -1`` for the range of an empty ``idx``); ``argmax`` is the
    first position of the largest value, as ``np.argmax``.
    """
    lo, hi = 0, -1
    if idx.shape[0]:
        lo = idx[0]
        hi = idx[0]
        for i in range(1, idx.shape[0]):
            k = idx[i]
            if k < lo:
                lo = k
            elif k > hi:
                hi = k
    bad, top = -1, -1
    for i in range(p.shape[0]):
        x = p[i]
        if not (x >= 0 and x < _INF):  # also NaN
            bad = i
            break
        if top < 0 or x > p[top]:
            top = i
    return lo, hi, bad, top


def _write_priorities(
    sums: np.ndarray,
    off: np.ndarray,
    mins: np.ndarray,
    moff: np.ndarray,
    fanout: int,
    idx: np.ndarray,
    q: np.ndarray,
    column: np.ndarray,
    p: np.ndarray,
) -> None:
    """``PrioritizedReplayBuffer.update_priorities`` once checked: ``column[idx] = p`` and ``q[idx] = q``,
    each in order (the last of duplicate indexes wins), then the tree's ancestors."""
    for i in range(idx.shape[0]):
        column[idx[i]] = p[i]
    _update_jit(sums, off, mins, moff, fanout, idx, q)


_jit = numba.njit(cache=True, nogil=True)
_top_cumsum_jit = _jit(_top_cumsum)
_descend_jit = _jit(_descend)
_min_block = _jit(_min_block_py)
_update_jit = _jit(_update)

sample = _jit(_sample)
find = _jit(_find)
update = _update_jit
check_update = _jit(_check_update)
write_priorities = _jit(_write_priorities)
