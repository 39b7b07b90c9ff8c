"""Process memory: plain numpy arrays and a ``threading.RLock`` (the default backend)."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from laber.storage.base import Hook


class MemoryStorage:
    """Arrays in this process's memory. Thread-safe through the buffer's ``threading.RLock``."""

    name = "memory"
    shared = False

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        if fill == 0:
            return np.zeros(shape, dtype=dtype)
        return np.full(shape, fill, dtype=dtype)

    def lock(self, enter: Hook, exit: Hook) -> threading.RLock:
        """A ``threading.RLock``; nothing to load or publish, so ``enter`` and ``exit`` are not called."""
        return threading.RLock()

    def close(self) -> None:
        """Nothing to release: the arrays go with the buffer."""

    def __repr__(self) -> str:
        return "MemoryStorage()"
