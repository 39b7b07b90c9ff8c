"""numba kernels for the LaBER sub-samplers (``laber.laber``): the numpy path's draw, compiled.

Loaded through ``laber._accel.kernels("laber")`` only when numba is enabled, and used for native float32 and
float64 priorities. The numpy path (``laber.laber._draw_numpy``) is the reference; these kernels give the
same indexes and weights, bit for bit, from the same uniforms:

* ``q_k = float64(p_k) + eps`` and the prefix sum ``cdf[k] = cdf[k - 1] + q_k``, left to right as
  ``np.add.accumulate`` does; ``total = cdf[-1]``, and ``mean(q)`` is ``total / N`` on both paths (not numpy's
  pairwise ``np.mean``).
* ``v_b = u_b * total`` and the position ``searchsorted(cdf, v_b, side="right")``, the number of prefix sums
  ``<= v_b``: here a binary search free of branches (arithmetic on the sign of ``v_b - cdf_k``), one step for
  the whole batch at a time.
* The numpy path sorts the uniforms (``shuffle=False``) and returns ascending positions; since the search is
  monotone, sorting the positions instead gives the same array, here by a counting sort (no comparisons).
* Weights as numpy computes ``np.divide(a, q_j, dtype=w.dtype)``: for float32 weights both operands are
  rounded to float32 and divided in float32.

The uniforms themselves are drawn by the caller with ``Generator.random`` between the two kernels (after the
values are checked, so a rejected call leaves the generator untouched). Kernels trust their inputs (numba does
not check bounds): the caller validates shapes, dtypes and the total first.
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["cumulate", "draw"]

MEAN, LAZY, MAX = 0, 1, 2  # variant codes (``mode & 3``)
SHUFFLE = 4  # ``mode`` bit: draw order instead of ascending positions


def _cumulate(p: np.ndarray, eps: float, cdf: np.ndarray) -> float:
    """Write the prefix sums of ``q = p + eps`` into ``cdf``; return the total, or NaN if some ``p_k`` is NaN or
    negative (``-0.0`` is accepted, as ``min(p) < 0`` accepts it). An infinite ``p_k``, or an overflow, gives an
    infinite total; all zeros give ``0.0``: the caller rejects any total outside ``(0, inf)``."""
    acc = 0.0
    ok = True
    for k in range(p.shape[0]):
        x = p[k]
        ok &= x >= 0
        acc += x + eps
        cdf[k] = acc
    return acc if ok else np.nan


def _search(cdf: np.ndarray, v: np.ndarray, pos: np.ndarray) -> None:
    """``pos[b] = searchsorted(cdf, v[b], side="right")`` for a non-decreasing ``cdf``, clipped to ``N - 1``.

    Binary lifting: ``pos`` grows by each power of two, largest first, while ``cdf[pos + step - 1] <= v``. With
    ``P`` the largest power of two ``<= N``, a first step of ``N - P`` (when ``N`` is not a power of two)
    leaves ``P`` candidates, which steps ``P/2, ..., 1`` cover without reading past ``cdf[N - 2]``: no clamp in
    the loop, and a count of ``N`` (``v >= total``) comes out as ``N - 1``, the clip.

    The test is arithmetic, not a comparison: ``copysign(h, v - c)`` is ``+h`` exactly when ``c <= v`` (for
    finite ``c, v >= 0`` the difference is ``+0.0`` on a tie and negative only when ``c > v``), so the step
    taken is ``h + copysign(h, v - c)`` with ``h = step / 2``. A comparison, even written as a select, is
    compiled to a branch that random uniforms mispredict half the time: 16 us instead of 3 us for 256 draws
    from 1024 (measured).
    """
    n = cdf.shape[0]
    batch = v.shape[0]
    step = 1
    while step * 2 <= n:
        step *= 2
    first = n - step
    if first > 0:
        c = cdf[first - 1]
        for b in range(batch):
            pos[b] = int(0.5 + math.copysign(0.5, v[b] - c)) * first
    else:
        for b in range(batch):
            pos[b] = 0
    step >>= 1
    while step > 0:
        half = 0.5 * step
        off = step - 1
        for b in range(batch):
            pos[b] += int(half + math.copysign(half, v[b] - cdf[pos[b] + off]))
        step >>= 1


_search_jit = numba.njit(cache=True, nogil=True)(_search)


def _draw(
    p: np.ndarray,
    eps: float,
    cdf: np.ndarray,
    u: np.ndarray,
    mode: int,
    idx: np.ndarray,
    w: np.ndarray,
) -> None:
    """Positions for the uniforms ``u`` (scaled in place to ``u * total``) into ``idx``, weights into ``w``.

    ``cdf`` comes from ``cumulate`` (its last entry is the total, checked by the caller); ``mode`` is the
    variant code plus ``SHUFFLE``; ``w`` is float32 or float64 and sets the precision of the division.
    """
    n = cdf.shape[0]
    batch = u.shape[0]
    total = cdf[n - 1]
    for b in range(batch):
        u[b] = u[b] * total
    if mode & SHUFFLE:
        _search_jit(cdf, u, idx)
    else:
        pos = np.empty(batch, dtype=np.int64)
        _search_jit(cdf, u, pos)
        counts = np.zeros(n, dtype=np.int64)
        for b in range(batch):
            counts[pos[b]] += 1
        start = 0
        for k in range(n):  # counts -> first output slot of each position
            c = counts[k]
            counts[k] = start
            start += c
        for b in range(batch):
            k = pos[b]
            idx[counts[k]] = k
            counts[k] += 1
    variant = mode & 3
    low = w.itemsize == 4
    if variant == MAX:
        a = np.inf
        for b in range(batch):
            a = min(a, p[idx[b]] + eps)  # min_j q_j: (1/q_j) / max_i (1/q_i) == min_i q_i / q_j
    elif variant == MEAN:
        a = total / n
    else:
        a = 1.0
    if low:
        a32 = np.float32(a)
        for b in range(batch):
            w[b] = a32 / np.float32(p[idx[b]] + eps)
    else:
        for b in range(batch):
            w[b] = a / (p[idx[b]] + eps)


cumulate = numba.njit(cache=True, nogil=True)(_cumulate)
draw = numba.njit(cache=True, nogil=True)(_draw)
