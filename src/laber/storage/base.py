"""The storage interface every backend implements (see :mod:`laber.storage`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

Hook = Callable[[], None]


class Storage(Protocol):
    """Allocates a buffer's arrays and makes its lock.

    ``shared`` tells whether other processes see the arrays (so that side stores that live in one process's
    memory, like ``next_of``'s, cannot be used); ``name`` is what error messages call the backend.
    """

    name: str
    shared: bool

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        """A writable array of ``shape`` and ``dtype``, filled with ``fill`` when new. ``name`` is unique
        within one buffer (``"records"``, ``"tree_sum"``, ...)."""
        ...

    def lock(self, enter: Hook, exit: Hook) -> AbstractContextManager[Any]:
        """The buffer's lock. A backend shared between processes calls ``enter`` after acquiring it and
        ``exit`` before releasing it (outermost level only); an in-process backend may ignore both."""
        ...

    def close(self) -> None:
        """Release what the storage holds (idempotent). Arrays it allocated must not be used afterwards."""
        ...
