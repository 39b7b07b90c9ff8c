"""The record layout of the host backends: all fields of one row side by side in one structured numpy array.

``sample`` then gathers each drawn row with one memory access (``store.take``) instead of one per field. The
layout (fields ordered by alignment, each aligned, rows padded to 8 bytes) is shared with the torch backend,
which keeps the same bytes in a ``uint8`` tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from laber.fields import Field

Allocate = Callable[[str, tuple[int, ...], np.dtype[Any], float], np.ndarray]


def record_dtype(fields: Iterable[Field]) -> np.dtype[Any]:
    """One record per row: a structured dtype, fields ordered by decreasing alignment, each aligned."""
    order = sorted(fields, key=lambda f: -f.dtype.alignment)
    names, formats, offsets = [], [], []
    offset = 0
    for f in order:
        offset = -(-offset // f.dtype.alignment) * f.dtype.alignment
        names.append(f.name)
        formats.append((f.dtype, f.shape))
        offsets.append(offset)
        offset += f.size * f.dtype.itemsize
    itemsize = max(8, -(-offset // 8) * 8)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": itemsize})


class RecordRows:
    """The rows of one buffer in a structured numpy array from ``allocate`` (memory, mmap or shared memory).

    ``store`` is the ``(size,)`` record array, ``record`` its dtype, ``names`` its field order, ``columns`` a
    writable ``(size, *shape)`` view per field.
    """

    device = None

    def __init__(self, fields: Iterable[Field], size: int, allocate: Allocate) -> None:
        fields = list(fields)
        self.record = record_dtype(fields)
        self.store: np.ndarray = allocate("records", (size,), self.record, 0)
        self.names: tuple[str, ...] = tuple(self.record.names or ())
        self.columns: dict[str, np.ndarray] = {f.name: self.store[f.name] for f in fields}

    def put_one(self, pos: int, arrays: Mapping[str, Any]) -> None:
        """Row ``pos`` := one transition (values of each field's shape, or Python scalars): one assignment."""
        self.store[pos] = tuple([arrays[name] for name in self.names])

    def put(self, where: slice | np.ndarray, arrays: Mapping[str, Any], names: Iterable[str]) -> None:
        """Rows ``where`` := ``arrays[name]`` (``(k, *shape)``) for each field in ``names``."""
        columns = self.columns
        for name in names:
            columns[name][where] = arrays[name]

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The records at ``indices``: a fresh block (``block[name]`` is a field)."""
        block: np.ndarray = self.store.take(indices)
        return block

    def draw(self, batch_size: int, stored: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform row indices: ``floor(u * stored)`` with ``u`` a 53-bit uniform (``rng.random``), uniform up to
        a relative ``stored / 2**53`` (1e-10 at 1e6 rows) and twice as fast as ``rng.integers`` here."""
        u = rng.random(batch_size)
        u *= stored
        return u.astype(np.int64)

    def output(self, array: np.ndarray) -> np.ndarray:
        """An array ``sample`` returns beside the fields (indexes, weights), as the fields are: numpy here."""
        return array
