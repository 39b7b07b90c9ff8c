r"""A float64 sum tree and min tree over ``capacity`` leaves, vectorised over the batch.

The structure behind proportional prioritized experience replay (T. Schaul, J. Quan, I. Antonoglou, D. Silver,
"Prioritized Experience Replay", ICLR 2016, arXiv:1511.05952, appendix B.2.1). Each leaf ``k`` holds a mass
``q_k >= 0``; every internal node of the sum tree holds the sum of its children, every node of the min tree the
minimum of its children's positive masses, and a prefix-sum search walks from the top to a leaf.

Layout (each tree one flat float64 array of its levels, level 0 the leaves, with int64 level offsets; the numpy
path works on views of the levels, the numba kernels on the flat arrays):

* The sum tree is binary and stops at its first level with at most ``top_size`` nodes (4096). A search does one
  ``cumsum`` + ``searchsorted`` over that top level, then one vectorised step per level below it (one gather,
  one compare, one subtract). Measured with ``10**6`` leaves and a batch of 256 (numpy's per-call overhead
  dominates at this size, so fewer numpy calls win): fan-out 16 or 32 needs a prefix sum inside every visited
  node, a ``(batch, fanout)`` cumsum per level, and searched about 2-3x slower than fan-out 2; cutting the
  binary tree at 4096 top nodes was about 10% faster on sample + update than at 512-1024.
* The min tree has fan-out ``min_fanout`` (32): it is only updated, never searched, so fewer, wider levels win.
  Leaves of mass 0 count as ``+inf``: they can never be drawn and are left out of the minimum.
* With numba (``laber.set_numba``; the ``fast`` extra), search and update run as compiled loops over the same
  layout (``laber._kernels_sumtree``): the same float64 operations in the same order, so both paths build
  bit-identical trees and return identical leaves for the same uniforms (tested). There a search costs one
  binary search in the top level's prefix sums plus one load per level below it, not ~5 numpy calls per level.

Exactness:

* ``update`` sets the leaves, then recomputes every touched parent *from its children* (never by adding
  deltas), level by level with one vectorised gather and reduction per level. A duplicated index, or two
  indexes sharing a parent, recompute the same node twice with the same result, so the tree after any sequence
  of updates is bit-for-bit the tree built from scratch from the same leaves.
* Duplicate indexes in one update: the **last** value wins (enforced, not left to numpy's unspecified order of
  fancy assignment).
* ``find_prefix_sum`` returns, for each ``v`` in ``[0, total)``, the leaf ``k`` with
  ``sum_{i<k} q_i <= v < sum_{i<=k} q_i``. Where float rounding would make the descent step into a child of
  mass 0, the nearest child of positive mass is taken instead, so a leaf of mass 0 is never returned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NoReturn

import numpy as np

from laber import _accel
from laber._validation import RngLike, as_generator, check_positive_int, short_repr

__all__ = ["SumMinTree"]

_INF = float("inf")


def _real_values(values: object, name: str = "values") -> np.ndarray:
    """``values`` as a float64 array, refusing what a cast would silently mangle (complex, bool, text, objects)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):  # ragged sequences
        raise TypeError(f"{name} must be real numbers, got {name}={short_repr(values)}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype} for {name}={short_repr(values)}")
    return arr.astype(np.float64)


Allocate = Callable[[str, tuple[int, ...], np.dtype[Any], float], np.ndarray]
"""``allocate(name, shape, dtype, fill)``: a new array filled with ``fill`` (see ``laber.storage``)."""


def _allocate_here(name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
    return np.full(shape, fill, dtype=dtype)


def _level_offsets(n: int, fanout: int, top_size: int, *, complete: bool = False) -> np.ndarray:
    """Offsets of the level arrays in one flat array (level ``l`` is ``flat[off[l]:off[l + 1]]``), level 0 the
    leaves: each level padded to a multiple of ``fanout`` while it has more than ``top_size`` nodes.

    ``complete``: every level exactly ``fanout`` times the size of the level above it, so that every node, a
    padding node included, has all of its children (a descent never leaves the arrays, even where rounding
    steps into padding; the careful descent then takes over, as for any leaf of mass 0).
    """
    sizes: list[int] = []
    while n > top_size:
        n = -(-n // fanout) * fanout
        sizes.append(n)
        n //= fanout
    sizes.append(n)
    if complete:
        for level in range(len(sizes) - 2, -1, -1):
            sizes[level] = sizes[level + 1] * fanout
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


class SumMinTree:
    """Sum and min of ``capacity`` float64 leaves, with batch updates and batch stratified prefix-sum search.

    Parameters
    ----------
    capacity:
        Number of leaves; all start at mass 0.
    top_size:
        The binary sum tree stops at its first level with at most ``top_size`` nodes (searched with one
        ``cumsum`` + ``searchsorted``).
    min_fanout:
        Children per node of the min tree (``>= 2``).

    Each tree is one flat float64 array (``_sum_flat``, ``_min_flat``) with int64 level offsets (``_sum_off``,
    ``_min_off``; level ``l`` is ``flat[off[l]:off[l + 1]]``, level 0 the leaves); ``_sums`` and ``_mins`` are
    the level views the numpy path works on, the flat arrays what the numba kernels take.
    """

    def __init__(
        self, capacity: int, *, top_size: int = 4096, min_fanout: int = 32, allocate: Allocate | None = None
    ) -> None:
        self.capacity = check_positive_int(capacity, "capacity")
        self.top_size = check_positive_int(top_size, "top_size")
        self.min_fanout = check_positive_int(min_fanout, "min_fanout")
        if self.min_fanout < 2:
            raise ValueError(f"min_fanout must be >= 2, got min_fanout={min_fanout!r}")
        self._sum_off = _level_offsets(self.capacity, 2, self.top_size, complete=True)
        self._min_off = _level_offsets(self.capacity, self.min_fanout, self.top_size)
        make = _allocate_here if allocate is None else allocate
        self._sum_flat = make("tree_sum", (int(self._sum_off[-1]),), np.dtype(np.float64), 0.0)
        self._min_flat = make("tree_min", (int(self._min_off[-1]),), np.dtype(np.float64), _INF)
        self._sums = [self._sum_flat[a:b] for a, b in zip(self._sum_off[:-1], self._sum_off[1:], strict=True)]
        self._mins = [self._min_flat[a:b] for a, b in zip(self._min_off[:-1], self._min_off[1:], strict=True)]
        self._top = int(self._sum_off[-2])  # flat position of the first top-level sum node
        self._last = np.zeros(self.capacity, dtype=np.int64)  # scratch for last-wins deduplication
        # Views made once: the left and right children of every sum node, the children blocks of every min node.
        self._pairs = [level.reshape(-1, 2) for level in self._sums[:-1]]
        self._blocks = [level.reshape(-1, self.min_fanout) for level in self._mins[:-1]]

    def reset(self) -> None:
        """Every leaf back to mass 0, in place (the arrays may be shared with other processes)."""
        self._sum_flat.fill(0.0)
        self._min_flat.fill(_INF)

    # ------------------------------------------------------------------------------------------- queries
    def total(self) -> float:
        """``sum_k q_k`` over all leaves."""
        return float(self._sums[-1].sum())

    def min(self) -> float:
        """``min_k q_k`` over the leaves of positive mass; ``inf`` if there is none."""
        return float(self._mins[-1].min())

    def leaves(self, indexes: np.ndarray | None = None) -> np.ndarray:
        """A fresh float64 copy of the leaf masses (all of them, or those at ``indexes``, integers in
        ``[0, capacity)``; checked)."""
        leaves = self._sums[0][: self.capacity]
        if indexes is None:
            return np.array(leaves)
        arr = np.asarray(indexes)
        self.check_indexes(arr.reshape(-1), "indexes")  # raises naming indexes; the result keeps arr's shape
        return np.asarray(leaves.take(arr.astype(np.int64)))

    def _has_mass(self) -> bool:
        """Whether some leaf has positive mass (the first top node almost always answers)."""
        return self._sum_flat.item(self._top) > 0 or bool(self._sums[-1].any())

    # ------------------------------------------------------------------------------------------- updates
    def check_indexes(self, indexes: object, name: str = "indexes", bound: int | None = None) -> np.ndarray:
        """``indexes`` as a 1-D int64 array, each in ``[0, bound)`` (``bound`` defaults to ``capacity``)."""
        bound = self.capacity if bound is None else bound
        arr = np.asarray(indexes)
        if arr.ndim == 0:
            arr = arr.reshape(1)
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape} for {name}={short_repr(indexes)}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(f"{name} must be integers, got dtype {arr.dtype} for {name}={short_repr(indexes)}")
        if arr.size:  # on the given dtype: a uint64 index >= 2**63 would wrap to a negative int64
            lo, hi = int(arr.min()), int(arr.max())
            if lo < 0 or hi >= bound:
                index_range_error(name, bound, lo, hi, indexes)
        return arr.astype(np.int64, copy=False)

    def update(self, indexes: object, values: object) -> None:
        """Set ``q[indexes] = values`` (finite and ``>= 0``; checked) and refresh the ancestors in both trees.

        Duplicate indexes: the last value wins. The cost is ``O(len(indexes))`` per level: one vectorised numpy
        step per level, or one compiled loop with numba (``laber.set_numba``); no Python loop over elements.
        """
        idx = self.check_indexes(indexes)
        vals = _real_values(values).reshape(-1)
        if vals.shape != idx.shape:
            raise ValueError(
                f"values must have one entry per index, got {vals.shape[0]} values for {idx.shape[0]} indexes"
            )
        # min/max propagate NaN, so these two comparisons also reject NaN.
        if vals.size and not (vals.min() >= 0 and vals.max() < _INF):
            raise ValueError(f"values must be finite and >= 0, got values={short_repr(vals)}")
        if idx.size:
            k = _accel.kernels("sumtree")
            if k is not None:  # the kernel writes in order: the last of duplicate indexes wins by itself
                k.update(self._sum_flat, self._sum_off, self._min_flat, self._min_off, self.min_fanout, idx, vals)
            else:
                self._update_unchecked(idx, self.last_wins(idx, vals))

    def last_wins(self, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
        """``vals`` with each entry replaced by the value of the *last* occurrence of its index in ``idx``.

        After this, duplicate indexes carry equal values, so any assignment order gives the same result.
        ``np.maximum.at`` is defined for repeated indexes, unlike fancy assignment, whose order numpy leaves
        unspecified. ``idx`` must be int64 in ``[0, capacity)``.
        """
        n = idx.shape[0]
        if n <= 1 or (idx[1:] > idx[:-1]).all():
            return vals  # strictly increasing (as sampled indexes without repeats are): no duplicates
        last = self._last
        last[idx] = -1
        np.maximum.at(last, idx, np.arange(n, dtype=np.int64))
        return vals.take(last.take(idx))

    def _update_unchecked(self, idx: np.ndarray, vals: np.ndarray, all_positive: bool = False) -> None:
        """Write leaves and refresh ancestors. ``idx`` int64 in range, ``vals`` float64 finite ``>= 0``, same
        length, and equal values at duplicate indexes (see ``last_wins``); ``all_positive`` if every value is
        known to be ``> 0`` (saves a pass)."""
        k = _accel.kernels("sumtree")
        if k is not None:
            k.update(self._sum_flat, self._sum_off, self._min_flat, self._min_off, self.min_fanout, idx, vals)
            return
        n = idx.shape[0]
        sums = self._sums
        sums[0][idx] = vals
        node = idx
        for level in range(1, len(sums)):
            node = node >> 1
            pairs = self._pairs[level - 1]
            if 4 * n >= pairs.shape[0]:
                # A small level: recomputing all of it (one strided add) is cheaper than gathering.
                np.add(pairs[:, 0], pairs[:, 1], out=sums[level][: pairs.shape[0]])
            else:
                rows = pairs.take(node, axis=0)  # take on the contiguous (n, 2) view: no copy of the level
                sums[level][node] = rows[:, 0] + rows[:, 1]
        mins, k = self._mins, self.min_fanout
        mins[0][idx] = vals if all_positive else np.where(vals > 0, vals, _INF)
        node = idx
        for level in range(1, len(mins)):
            node = node // k
            blocks = self._blocks[level - 1]
            if 2 * n * k >= blocks.size:
                np.minimum.reduce(blocks, axis=1, out=mins[level][: blocks.shape[0]])
            else:
                # reduceat over the flattened rows has less per-row overhead than .min(axis=1)
                rows = blocks.take(node, axis=0).reshape(-1)
                mins[level][node] = np.minimum.reduceat(rows, np.arange(0, rows.shape[0], k))

    # -------------------------------------------------------------------------------------------- search
    def find_prefix_sum(self, values: object) -> np.ndarray:
        """For each ``v``, the leaf ``k`` with ``cum_{k-1} <= v < cum_k``, where ``cum_k = sum_{i<=k} q_i``.

        ``values`` outside ``[0, total)`` are clipped into it (NaN is rejected). Returns int64 leaf indexes,
        never a leaf of mass 0. Raises ``ValueError`` if the total mass is 0.
        """
        v = _real_values(values).reshape(-1)
        if np.isnan(v).any():
            raise ValueError(f"values must not be NaN, got values={short_repr(values)}")
        k = _accel.kernels("sumtree")
        if k is not None:
            node = np.empty(v.shape[0], dtype=np.int64)
            total = k.find(self._sum_flat, self._sum_off, v, node)
            if not total > 0:
                raise ValueError(f"cannot search: the total mass is {total!r} (no leaf has positive mass)")
            return node
        top_cum = np.cumsum(self._sums[-1])
        total = float(top_cum[-1])
        if not total > 0:
            raise ValueError(f"cannot search: the total mass is {total!r} (no leaf has positive mass)")
        np.clip(v, 0.0, math.nextafter(total, 0.0), out=v)
        return self._search(v, top_cum)

    def _search(self, v: np.ndarray, top_cum: np.ndarray) -> np.ndarray:
        """Descend from the top level; ``v`` (float64, changed in place) must lie in ``[0, top_cum[-1])``."""
        # Top level: node = number of prefix sums <= v, so top_cum[node - 1] <= v < top_cum[node] and the node
        # has positive mass.
        node = np.searchsorted(top_cum, v, side="right")
        np.subtract(v, top_cum.take(node - 1), out=v, where=node > 0)
        v0, node0 = v.copy(), node
        for level in range(len(self._sums) - 2, -1, -1):
            node = node + node  # left child (cheaper than a shift here)
            left = self._sums[level].take(node)
            right = v >= left
            v = v - left * right
            node = node + right
        bad = self._sums[0].take(node) <= 0
        if bad.any():
            # Rounding pushed some v past its node's mass: redo those few with the careful descent.
            node[bad] = self._careful_search(v0[bad], node0[bad])
        return node

    def _careful_search(self, v: np.ndarray, node: np.ndarray) -> np.ndarray:
        """The descent of ``_search``, never stepping into a child of mass 0 (for the rare rounding cases)."""
        for level in range(len(self._sums) - 2, -1, -1):
            node = node << 1
            left = self._sums[level].take(node)
            right_mass = self._sums[level].take(node + 1)
            go_right = ((v >= left) & (right_mass > 0)) | (left <= 0)
            v = np.where(go_right, np.maximum(v - left, 0.0), np.minimum(v, np.nextafter(left, 0.0)))
            node = node + go_right
        return node

    def sample_stratified(self, batch_size: int, rng: RngLike = None) -> np.ndarray:
        """Stratified proportional draw: one leaf from each of ``batch_size`` equal segments of the total mass.

        With ``T = sum_k q_k``, draw ``u_b ~ U[0, 1)`` and search ``v_b = (b + u_b) * T / batch_size`` for
        ``b = 0 .. batch_size - 1`` (Schaul et al. 2016, appendix B.2.1). A draw from a uniformly chosen
        stratum has law ``P(k) = q_k / T``, so the expected count of leaf ``k`` in a batch is
        ``batch_size * q_k / T``; the batch covers the mass evenly, and its indexes come in increasing order.
        Raises ``ValueError`` if the total mass is 0. numpy and numba (``laber.set_numba``) return the same
        leaves for the same ``rng``.
        """
        batch_size = check_positive_int(batch_size, "batch_size")
        return self._stratified(batch_size, as_generator(rng), with_ratios=False)[0]

    def _stratified(
        self, batch_size: int, gen: np.random.Generator, with_ratios: bool
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``sample_stratified``'s leaves and, if ``with_ratios`` (always with numba), ``q_leaf / min_k q_k``.

        The mass is checked before ``gen`` draws anything, so a failing call leaves ``gen`` as it was.
        """
        k = _accel.kernels("sumtree")
        if k is not None:
            if not self._has_mass():
                raise ValueError("cannot sample: the total mass is 0.0 (no row has positive priority)")
            ratios = gen.random(batch_size)  # the uniforms, overwritten with the ratios
            node = np.empty(batch_size, dtype=np.int64)
            k.sample(self._sum_flat, self._sum_off, self._min_flat, self._min_off, ratios, node)
            return node, ratios
        top_cum = np.cumsum(self._sums[-1])
        total = float(top_cum[-1])
        if not total > 0:
            raise ValueError(f"cannot sample: the total mass is {total!r} (no row has positive priority)")
        v = np.arange(batch_size, dtype=np.float64)
        v += gen.random(batch_size)
        v *= total / batch_size
        np.minimum(v, math.nextafter(total, 0.0), out=v)
        node = self._search(v, top_cum)
        if not with_ratios:
            return node, None
        q: np.ndarray = self._sums[0].take(node)
        q /= self.min()
        return node, q


def index_range_error(name: str, bound: int, lo: int, hi: int, value: object) -> NoReturn:
    """Raise the ``ValueError`` for indexes outside ``[0, bound)`` (``lo``, ``hi``: their min and max)."""
    bad = lo if lo < 0 else hi
    raise ValueError(f"{name} must be in [0, {bound}), got {bad} in {name}={short_repr(value)}")
