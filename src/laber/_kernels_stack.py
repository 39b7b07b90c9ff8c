"""numba kernels for ``stack_compress`` reads (``laber.links.StackLinks.reconstruct`` and ``reconstruct_next``):
4-deep uint8 stacks.

Loaded through ``laber._accel.kernels("stack")`` only when numba is enabled, and used for the case replay of
Atari frames is: stacks of 4 one-byte frames (``(*frame, 4)``, ``uint8`` or ``int8``) on a little-endian
machine. The numpy path (``StackLinks.reconstruct``) is the reference; this kernel writes the same bytes.

numpy rebuilds a stack frame by frame, each frame a strided write into the last axis (one byte in four), which
costs about five times the bytes' own copy. Here the four bytes of one pixel (its frames ``S - 1 .. 0``, oldest
first) are packed into one ``uint32`` and stored at once: byte ``j`` of pixel ``p`` of row ``r`` is frame
``S - 1 - j``, which is ``column[r - d, p]`` with ``d = S - 1 - j`` while ``d <= e`` (``e``: steps back to the
nearest anchor, ``S - 1`` when none is within the window) and ``side[slot, p, j + e]`` (the anchor's stored older
frames) after it. The kernel trusts its inputs (numba does not check bounds): rows in ``[0, size)``, links
``-1`` or a valid slot, as the buffer keeps them.

``gather4_next`` rebuilds a row's stack and its ``next_of`` stack together: when the next stack is the next
row's and neither window holds an anchor, the words of both come from the same five rows ``r - 3 .. r + 1``
(the next stack is the row's without its oldest frame, with row ``r + 1``'s frame on top), so each of those
frames is read once for two outputs. That path stores bytes, not words: the compiler turns the four byte stores
per pixel into vector byte interleaves, 1.17x faster than packing words at batch 32 on 84x84x4 stacks (1.06x at
256; 15 paired rounds, ``benchmarks/bench_image.py``'s buffer). For one output (``gather4``) the two are equally
fast, and the words stay.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gather4", "gather4_next"]

DEPTH = 4


@numba.njit(cache=True, nogil=True)
def _anchor(links: np.ndarray, r: int, size: int) -> tuple[int, int]:
    """``(e, slot)`` of row ``r``: steps back to the nearest anchor within its window and the anchor's slot
    (``DEPTH - 1`` and 0 when every frame is stored in the rows ``r .. r - 3``)."""
    for t in range(DEPTH - 1):
        link = links[(r - t) % size]
        if link >= 0:
            return t, link
    return DEPTH - 1, 0


@numba.njit(cache=True, nogil=True)
def _row4(column: np.ndarray, side: np.ndarray, links: np.ndarray, r: int, size: int, o: np.ndarray) -> None:
    """The stack of row ``r`` into ``o`` (``(P,)`` uint32, one word per pixel)."""
    n_pix = o.shape[0]
    e, slot = _anchor(links, r, size)
    if e == DEPTH - 1:  # every frame stored in the rows r, r - 1, r - 2, r - 3: no branch per pixel
        f0 = column[(r - 3) % size]
        f1 = column[(r - 2) % size]
        f2 = column[(r - 1) % size]
        f3 = column[r % size]
        for p in range(n_pix):
            o[p] = (
                np.uint32(f0[p])
                | (np.uint32(f1[p]) << np.uint32(8))
                | (np.uint32(f2[p]) << np.uint32(16))
                | (np.uint32(f3[p]) << np.uint32(24))
            )
    else:  # an anchor within the window (a few rows per episode)
        anchor = side[slot]
        for p in range(n_pix):
            word = np.uint32(0)
            for j in range(DEPTH):
                d = DEPTH - 1 - j
                byte = column[(r - d) % size, p] if d <= e else anchor[p, j + e]
                word |= np.uint32(byte) << np.uint32(8 * j)
            o[p] = word


@numba.njit(cache=True, nogil=True)
def gather4(
    column: np.ndarray, side: np.ndarray, links: np.ndarray, indices: np.ndarray, size: int, out: np.ndarray
) -> None:
    """``out[i, p]`` (``uint32``, the ``(k, P, 4)`` uint8 result viewed as one word per pixel) for rows
    ``indices``: ``column`` ``(size, P)`` uint8 (newest frames; rows may be strided), ``side`` ``(slots, P, 3)``
    uint8 (anchors' older frames), ``links`` ``(size,)`` int64."""
    for i in range(indices.shape[0]):
        _row4(column, side, links, indices[i], size, out[i])


@numba.njit(cache=True, nogil=True)
def gather4_next(
    column: np.ndarray,
    side: np.ndarray,
    links: np.ndarray,
    indices: np.ndarray,
    targets: np.ndarray,
    size: int,
    out: np.ndarray,
    out_next: np.ndarray,
) -> None:
    """``gather4`` of rows ``indices`` into ``out`` and of rows ``targets`` into ``out_next`` in one pass
    (``next_of`` of a stacked field: the next stack of row ``r`` is the stack of row ``targets[i]``; a negative
    target leaves its ``out_next`` row untouched). Where the target is ``r + 1`` and neither window holds an
    anchor, the two stacks share three frames: the five rows ``r - 3 .. r + 1`` are read once for both."""
    for i in range(indices.shape[0]):
        r = indices[i]
        t = targets[i]
        if t < 0:
            _row4(column, side, links, r, size, out[i])
            continue
        if t != (r + 1) % size or _anchor(links, r, size)[0] != DEPTH - 1 or links[t] >= 0:
            _row4(column, side, links, r, size, out[i])
            _row4(column, side, links, t, size, out_next[i])
            continue
        f0 = column[(r - 3) % size]
        f1 = column[(r - 2) % size]
        f2 = column[(r - 1) % size]
        f3 = column[r % size]
        f4 = column[t]
        o = out[i].view(np.uint8)  # byte 4p + j: frame j of pixel p (the words' bytes, little-endian)
        q = out_next[i].view(np.uint8)
        for p in range(f0.shape[0]):  # byte stores: the compiler turns them into vector byte interleaves
            b = 4 * p
            a1 = f1[p]
            a2 = f2[p]
            a3 = f3[p]
            o[b] = f0[p]
            o[b + 1] = a1
            o[b + 2] = a2
            o[b + 3] = a3
            q[b] = a1  # the next stack: frames r - 2 .. r + 1
            q[b + 1] = a2
            q[b + 2] = a3
            q[b + 3] = f4[p]
