"""numba kernel for ``stack_compress`` reads (``laber.links.StackLinks.reconstruct``): 4-deep uint8 stacks.

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
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["gather4"]

DEPTH = 4


@numba.njit(cache=True, nogil=True)
def gather4(
    column: np.ndarray, side: np.ndarray, links: np.ndarray, indices: np.ndarray, size: int, out: np.ndarray
) -> None:
    """``out[i, p]`` (``uint32``, the ``(k, P, 4)`` uint8 result viewed as one word per pixel) for rows
    ``indices``: ``column`` ``(size, P)`` uint8 (newest frames; rows may be strided), ``side`` ``(slots, P, 3)``
    uint8 (anchors' older frames), ``links`` ``(size,)`` int64."""
    k = indices.shape[0]
    n_pix = out.shape[1]
    for i in range(k):
        r = indices[i]
        e = DEPTH - 1
        slot = 0
        for t in range(DEPTH - 1):
            link = links[(r - t) % size]
            if link >= 0:
                e = t
                slot = link
                break
        o = out[i]
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
