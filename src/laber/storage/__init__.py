"""Where a buffer's arrays live: one interface, one module per backend.

A ``ReplayBuffer`` keeps all of its logic (validation, N-step, ``next_of``, ``stack_compress``, prioritized
sampling, checkpoints) and asks its storage for two things only:

* ``allocate(name, shape, dtype, fill)``: a numpy array for the records, the sum tree, ... (``fill`` is the
  initial value of a new array; an array attached to an existing one keeps its contents);
* ``lock(enter, exit)``: the lock every public method holds; ``enter``/``exit`` are the buffer's hooks that
  load and publish the few scalars (next index, stored count, ...) that other processes must see.

Backends:

* :class:`MemoryStorage` (``laber.storage.memory``): process memory, a ``threading.RLock``. The default.
* :class:`MmapStorage` (``laber.storage.mmap``): memory-mapped files (cpprb's ``mmap_prefix=``), for buffers
  larger than RAM.
* :class:`SharedStorage` (``laber.storage.shared``): ``multiprocessing.shared_memory`` segments and a lock
  shared by processes, for ``MPReplayBuffer`` / ``MPPrioritizedReplayBuffer``.
* :class:`TorchStorage` (``laber.storage.device``, extra ``torch``): rows on a torch device
  (``ReplayBuffer(..., device="cuda")``); sampling and LaBER stay on the device.

The host backends keep rows in one record layout (``laber.storage.records``); the device backend keeps the same
bytes in a tensor.
"""

from __future__ import annotations

from laber.storage.base import Storage
from laber.storage.memory import MemoryStorage
from laber.storage.mmap import MmapStorage
from laber.storage.shared import SharedStorage

__all__ = ["MemoryStorage", "MmapStorage", "SharedStorage", "Storage", "TorchStorage"]


def __getattr__(name: str) -> object:
    if name == "TorchStorage":  # imported on first use: torch is optional
        from laber.storage.device import TorchStorage

        return TorchStorage
    raise AttributeError(f"module 'laber.storage' has no attribute {name!r}")
