"""Process memory: plain numpy arrays and a ``threading.RLock`` (the default backend)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import numpy as np

from laber.fields import Field
from laber.storage.base import Hook
from laber.storage.records import RecordRows


class MemoryStorage:
    """Arrays in this process's memory. Thread-safe through the buffer's ``threading.RLock``."""

    name = "memory"
    shared = False
    on_device = False

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        if fill == 0:
            return np.zeros(shape, dtype=dtype)
        return np.full(shape, fill, dtype=dtype)

    def rows(self, fields: Iterable[Field], size: int, host: Iterable[str]) -> RecordRows:
        """The rows in the record layout, in arrays from ``allocate``."""
        return RecordRows(fields, size, self.allocate)

    def lock(self, enter: Hook, exit: Hook) -> threading.RLock:
        """A ``threading.RLock``; nothing to load or publish, so ``enter`` and ``exit`` are not called."""
        return threading.RLock()

    def close(self) -> None:
        """Nothing to release: the arrays go with the buffer."""

    def __repr__(self) -> str:
        return "MemoryStorage()"
