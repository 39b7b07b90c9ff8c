"""Memory-mapped files (cpprb's ``mmap_prefix=``): buffers larger than RAM.

Each array is a file ``{prefix}_{name}.laber.dat`` mapped with ``mmap``; the operating system pages rows
in and out, so resident memory follows the rows touched, not the buffer's size. Files are created exclusively:
an existing file is never overwritten (a named ``FileExistsError`` says which), and laber never deletes them, not
even at ``close()``: they are the user's disk space to keep or remove. The lock is a ``threading.RLock`` (one
process; for several processes use ``MPReplayBuffer``).
"""

from __future__ import annotations

import glob
import mmap
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from laber.fields import Field
from laber.storage.base import Hook
from laber.storage.records import RecordRows


class MmapStorage:
    """Arrays in memory-mapped files named ``{prefix}_{name}.laber.dat``."""

    name = "mmap"
    shared = False
    on_device = False

    def __init__(self, prefix: str | os.PathLike[str]) -> None:
        if not isinstance(prefix, (str, os.PathLike)) or not str(prefix):
            raise TypeError(f"mmap_prefix must be a non-empty path prefix (str or os.PathLike), got {prefix!r}")
        self.prefix = str(prefix)
        parent = Path(self.prefix + "_x").parent
        if not parent.is_dir():
            raise ValueError(f"mmap_prefix={self.prefix!r}: directory {str(parent)!r} does not exist")
        taken = sorted(str(p) for p in parent.glob(glob.escape(Path(self.prefix).name) + "_*.laber.dat"))
        if taken:  # checked before any file is made, so a refused buffer leaves nothing behind
            raise FileExistsError(
                f"mmap_prefix={self.prefix!r}: {taken[0]!r} already exists; laber never overwrites a file: "
                f"remove the files {self.prefix}_*.laber.dat or choose another mmap_prefix"
            )
        self.paths: list[Path] = []
        self._maps: list[mmap.mmap] = []

    def path(self, name: str) -> Path:
        """The file that holds array ``name``."""
        return Path(f"{self.prefix}_{name}.laber.dat")

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        path = self.path(name)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            raise FileExistsError(
                f"mmap_prefix={self.prefix!r}: {str(path)!r} already exists; laber never overwrites a file: "
                f"remove it or choose another mmap_prefix"
            ) from None
        try:
            os.ftruncate(fd, max(nbytes, 1))  # sparse: zeros that take no disk until written
            mapping = mmap.mmap(fd, max(nbytes, 1))
        finally:
            os.close(fd)  # the mapping keeps the file open
        if hasattr(mmap, "MADV_RANDOM"):  # replay reads rows at random: no readahead around each one
            mapping.madvise(mmap.MADV_RANDOM)
        self.paths.append(path)
        self._maps.append(mapping)
        array: np.ndarray = np.frombuffer(mapping, dtype=dtype, count=int(np.prod(shape, dtype=np.int64)))
        array = array.reshape(shape)
        if fill != 0:
            array.fill(fill)
        return array

    def rows(self, fields: Iterable[Field], size: int, host: Iterable[str]) -> RecordRows:
        """The rows in the record layout, in arrays from ``allocate``."""
        return RecordRows(fields, size, self.allocate)

    def lock(self, enter: Hook, exit: Hook) -> threading.RLock:
        return threading.RLock()

    def flush(self) -> None:
        """Write dirty pages to the files (``msync``)."""
        for mapping in self._maps:
            mapping.flush()

    def drop_pages(self) -> None:
        """Flush, then tell the kernel this process no longer needs the mapped pages (``MADV_DONTNEED``): they
        leave the resident set and are read back from the files when next touched. Contents are unchanged."""
        self.flush()
        if hasattr(mmap, "MADV_DONTNEED"):
            for mapping in self._maps:
                mapping.madvise(mmap.MADV_DONTNEED)

    def close(self) -> None:
        """Flush the maps and drop this storage's references to them; the files stay on disk. The mappings
        themselves go when the buffer's arrays do."""
        self.flush()
        self._maps.clear()

    def __repr__(self) -> str:
        return f"MmapStorage(prefix={self.prefix!r})"
