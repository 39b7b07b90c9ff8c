"""The storage interface every backend implements (see :mod:`laber.storage`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any, Protocol

import numpy as np

from laber.fields import Field

Hook = Callable[[], None]


class Storage(Protocol):
    """Allocates a buffer's arrays and makes its lock.

    ``shared`` tells whether other processes see the arrays (so that side stores that live in one process's
    memory, like ``next_of``'s, cannot be used), ``on_device`` whether the rows live on a torch device; ``name``
    is what error messages call the backend.
    """

    name: str
    shared: bool
    on_device: bool

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        """A writable array of ``shape`` and ``dtype``, filled with ``fill`` when new. ``name`` is unique
        within one buffer (``"records"``, ``"tree_sum"``, ...)."""
        ...

    def rows(self, fields: Iterable[Field], size: int, host: Iterable[str]) -> Any:
        """Where the rows live: ``RecordRows`` (host record layout) or ``DeviceRows`` (a torch device); the
        fields named in ``host`` must stay readable as numpy arrays (internal columns such as priorities)."""
        ...

    def lock(self, enter: Hook, exit: Hook) -> AbstractContextManager[Any]:
        """The buffer's lock. A backend shared between processes calls ``enter`` after acquiring it and
        ``exit`` before releasing it (outermost level only); an in-process backend may ignore both."""
        ...

    def close(self) -> None:
        """Release what the storage holds (idempotent). Arrays it allocated must not be used afterwards."""
        ...
