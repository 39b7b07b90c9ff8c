"""Shared fixtures: run a test once per kernel backend (numpy, and numba when it is installed), and once per
storage backend (process memory, memory-mapped files, shared memory, torch's CPU device) for the modules that
ask for it with ``pytestmark = pytest.mark.usefixtures("storage_backend")``."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import laber
import laber.buffers
from laber import _accel
from laber.storage import MmapStorage, SharedStorage

STORAGES = ["memory", "mmap", "shared", "device"]

BACKENDS = ["numpy", "numba"]


@pytest.fixture
def torch_one_thread() -> Iterator[None]:
    """torch on one thread for the test (small networks on a shared 2-core machine are many times slower with
    more), restored afterwards."""
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Selects the numpy or the numba kernels for the test (numba skipped when it is not installed)."""
    name: str = request.param
    if name == "numba" and _accel._import_numba() is None:
        pytest.skip("numba is not installed (the 'fast' extra)")
    laber.set_numba(name == "numba")
    try:
        yield name
    finally:
        laber.set_numba(None)


def _skip_refusals(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """A combination the backend refuses at construction skips the test instead of failing it (that refusal
    is tested on its own)."""
    refuse = laber.buffers._check_storage_options

    def skip_refused(*args: Any) -> None:
        try:
            refuse(*args)
        except ValueError as exc:
            pytest.skip(f"refused by {backend} storage: {exc}")

    monkeypatch.setattr(laber.buffers, "_check_storage_options", skip_refused)


def _host_outputs(method: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """``method`` with its torch outputs seen as numpy arrays sharing their memory (``Tensor.numpy()``), so a
    test written against numpy runs unchanged on the device backend and still sees aliasing of the storage."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        out = method(*args, **kwargs)
        return {k: v.numpy() if hasattr(v, "numpy") and not isinstance(v, np.ndarray) else v for k, v in out.items()}

    return wrapper


@pytest.fixture(params=STORAGES)
def storage_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Every buffer the test builds without naming a storage lives in this backend.

    With shared memory or a torch device, a combination the backend refuses at construction (``next_of``,
    ``stack_compress``) skips the test instead of failing it: that refusal is tested on its own. The device
    backend is torch's CPU device (CUDA has its own tests in test_device.py, which skip without a GPU); its
    outputs are handed to the test as numpy arrays sharing the tensors' memory, so the same assertions run;
    what is particular to tensors (types, devices, no host reads) is tested in test_device.py.
    """
    name: str = request.param
    if name == "mmap":
        directory = tmp_path_factory.mktemp("mmap")
        counter = itertools.count()
        monkeypatch.setattr(laber.buffers, "MemoryStorage", lambda: MmapStorage(directory / f"rb{next(counter)}"))
    elif name == "shared":
        monkeypatch.setattr(laber.buffers, "MemoryStorage", SharedStorage)
        _skip_refusals(monkeypatch, name)
    elif name == "device":
        pytest.importorskip("torch")
        from laber.storage.device import TorchStorage

        monkeypatch.setattr(laber.buffers, "MemoryStorage", lambda: TorchStorage("cpu"))
        _skip_refusals(monkeypatch, name)
        for owner in (laber.buffers.ReplayBuffer, laber.PrioritizedReplayBuffer):
            for method in ("sample", "get_all_transitions", "get_transitions"):
                if method in vars(owner):
                    monkeypatch.setattr(owner, method, _host_outputs(vars(owner)[method]))
    yield name
