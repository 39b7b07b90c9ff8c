"""Rows on a torch device (``ReplayBuffer(..., device="cuda")``; extra ``torch``): sample and LaBER never leave it.

The rows keep the host record layout (:func:`laber.storage.records.record_dtype`) as bytes of one ``(size,
itemsize)`` ``uint8`` tensor on the device, so that an ``add`` is one host-to-device copy of whole records and a
``sample`` one ``index_select`` of whole records, split into per-field views of the gathered block (fresh
memory, like the host backends). Internal columns the host must read (PER's priorities) stay in host numpy arrays.

* ``sample`` draws its indexes on the device with a ``torch.Generator`` re-seeded from the buffer's numpy
  generator at each call (so the numpy generator remains the only random state, as for ``LaBERmean`` on
  tensors) and returns tensors on the device: ``indexes`` (int64) and every field. Nothing is copied to the
  host and nothing waits for the device, so ``LaBERmean(B, m)(priorities=td.abs())`` on those tensors keeps the
  whole LaBER update on the device.
* ``add`` takes numpy arrays, Python numbers or tensors (validated on the host as for every backend), packs the
  records on the host and copies them once. The copy is from pageable host memory, so on CUDA an ``add`` waits
  for the work already queued on the device (acting waits for it anyway when it reads the network's output).
* ``PrioritizedReplayBuffer`` on a device keeps its sum tree on the host: the tree search is a sequential
  descent that the host does in microseconds, while on a GPU it would be a chain of small dependent kernels;
  the drawn indexes (a few hundred int64) go to the device in one copy, the rows are gathered there, and
  ``weights`` come back as a device tensor. ``update_priorities`` needs the new priorities on the host, so it
  synchronises (as any PER does).
* Refused at construction, with a named error: ``next_of`` and ``stack_compress`` (their links are resolved
  by host code), unsigned integer fields wider than 8 bits (torch has no full support for them).
* Checkpoints go through host memory in the host layout, so a device buffer's file is the file a host buffer of
  the same fields writes (either loads the other's); saving copies the stored rows to the host once, loading
  stages them there and uploads them in one copy.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from laber._optional import require
from laber.fields import Field
from laber.storage.base import Hook
from laber.storage.records import record_dtype


def _torch() -> Any:
    return require("torch", "a buffer on a torch device")


def _torch_dtype(dtype: np.dtype[Any]) -> Any:
    torch = _torch()
    table = {
        "b1": torch.bool,
        "u1": torch.uint8,
        "i1": torch.int8,
        "i2": torch.int16,
        "i4": torch.int32,
        "i8": torch.int64,
        "f2": torch.float16,
        "f4": torch.float32,
        "f8": torch.float64,
        "c8": torch.complex64,
        "c16": torch.complex128,
    }
    key = f"{dtype.kind}{dtype.itemsize}"
    if key not in table:
        raise TypeError(f"dtype {dtype} has no full torch equivalent; use a signed or 8-bit integer dtype")
    return table[key]


class DeviceRows:
    """The rows of one buffer on a torch device, in the host record layout (see the module docstring)."""

    def __init__(self, fields: Iterable[Field], size: int, device: Any, host: Iterable[str]) -> None:
        torch = _torch()
        self.device = torch.device(device)
        fields = list(fields)
        host = frozenset(host)
        self._fields = {f.name: f for f in fields}
        self._host_names = tuple(f.name for f in fields if f.name in host)
        on_device = [f for f in fields if f.name not in host]
        for f in on_device:
            try:
                _torch_dtype(f.dtype)
            except TypeError as exc:
                raise TypeError(f"field {f.name!r} cannot live on a torch device: {exc}") from None
        self.record = record_dtype(on_device)
        self.names: tuple[str, ...] = tuple(self.record.names or ())
        self._itemsize = self.record.itemsize
        self.store = torch.zeros((size, self._itemsize), dtype=torch.uint8, device=self.device)
        self._offsets = {name: int(self.record.fields[name][1]) for name in self.names}  # type: ignore[index]
        self.columns: dict[str, Any] = {name: self._split(self.store, name) for name in self.names}
        for name in self._host_names:
            f = self._fields[name]
            self.columns[name] = np.zeros((size, *f.shape), f.dtype)
        self._generator: Any = None

    def _split(self, block: Any, name: str) -> Any:
        """Field ``name`` of a ``(k, itemsize)`` uint8 block, as a ``(k, *shape)`` view of its dtype."""
        f = self._fields[name]
        start = self._offsets[name]
        nbytes = f.size * f.dtype.itemsize
        return block[:, start : start + nbytes].view(_torch_dtype(f.dtype)).reshape(block.shape[0], *f.shape)

    def _index(self, where: Any) -> Any:
        if isinstance(where, slice):
            return where
        torch = _torch()
        if isinstance(where, torch.Tensor):
            return where.to(self.device)
        return torch.as_tensor(np.asarray(where, dtype=np.int64)).to(self.device, non_blocking=True)

    def _records(self, arrays: Mapping[str, Any], k: int) -> Any:
        """The device fields of ``k`` rows packed into host records, as one uint8 tensor ``(k, itemsize)``."""
        torch = _torch()
        block = np.empty(k, dtype=self.record)
        for name in self.names:
            block[name] = np.asarray(arrays[name]).reshape(block[name].shape)
        return torch.from_numpy(block.view(np.uint8).reshape(k, self._itemsize))

    def put_one(self, pos: int, arrays: Mapping[str, Any]) -> None:
        self.put(slice(pos, pos + 1), arrays, (*self.names, *self._host_names))

    def put(self, where: slice | np.ndarray, arrays: Mapping[str, Any], names: Iterable[str]) -> None:
        names = tuple(names)
        k = len(range(*where.indices(self.store.shape[0]))) if isinstance(where, slice) else len(where)
        for name in self._host_names:
            if name in names:
                self.columns[name][where] = np.asarray(arrays[name]).reshape(self.columns[name][where].shape)
        if any(name in self.names for name in names):
            records = self._records(arrays, k).to(self.device, non_blocking=False)
            self.store[self._index(where)] = records

    def to_records(self, record: np.dtype[Any], stored: int) -> np.ndarray:
        """A host copy of rows ``0 .. stored - 1`` in the host layout ``record`` (zeros after them): what a
        checkpoint of this buffer writes, identical to a host buffer's."""
        size = self.store.shape[0]
        out = np.zeros(size, dtype=record)
        if stored:
            block = self.store[:stored].cpu()
            for name in self.names:
                out[name][:stored] = self._split(block, name).numpy().reshape(out[name][:stored].shape)
            for name in self._host_names:
                out[name][:stored] = self.columns[name][:stored]
        return out

    def take(self, indices: Any) -> dict[str, Any]:
        # index_select on every device, the CPU included (numpy's gather of wide records is faster there, but the
        # device path is meant to run torch ops only, and its no-host-read test runs on the CPU)
        block = self.store.index_select(0, self._index(indices))
        return {name: self._split(block, name) for name in self.names}

    def draw(self, batch_size: int, stored: int, rng: np.random.Generator) -> Any:
        torch = _torch()
        if self._generator is None:
            self._generator = torch.Generator(device=self.device)
        self._generator.manual_seed(int(rng.integers(0, 2**63 - 1)))
        return torch.randint(0, stored, (batch_size,), device=self.device, generator=self._generator)

    def output(self, array: np.ndarray) -> Any:
        return _torch().as_tensor(array).to(self.device, non_blocking=True)


class TorchStorage:
    """Rows on a torch device; the sum tree and other small arrays in host memory; a ``threading.RLock``."""

    name = "torch device"
    shared = False
    on_device = True

    def __init__(self, device: Any) -> None:
        torch = _torch()
        if isinstance(device, bool) or not isinstance(device, (str, int, torch.device)):
            raise TypeError(
                f"device must name a torch device ('cpu', 'cuda', 'cuda:1', a torch.device), got device={device!r}"
            )
        try:
            self.device = torch.device(device)
        except (TypeError, RuntimeError) as exc:
            raise ValueError(
                f"device must name a torch device ('cpu', 'cuda', 'cuda:1', ...), got device={device!r}"
            ) from exc
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: CUDA is not available on this machine")

    def allocate(self, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], fill: float) -> np.ndarray:
        return np.full(shape, fill, dtype=dtype)

    def rows(self, fields: Iterable[Field], size: int, host: Iterable[str]) -> DeviceRows:
        return DeviceRows(fields, size, self.device, host)

    def lock(self, enter: Hook, exit: Hook) -> threading.RLock:
        return threading.RLock()

    def close(self) -> None:
        """Nothing to release explicitly: device memory goes with the buffer's tensors."""

    def __repr__(self) -> str:
        return f"TorchStorage(device={str(self.device)!r})"
