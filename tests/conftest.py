"""Shared fixtures: run a test once per kernel backend (numpy, and numba when it is installed), and once per
storage backend (process memory, memory-mapped files, shared memory) for the modules that ask for it with
``pytestmark = pytest.mark.usefixtures("storage_backend")``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

import laber
import laber.buffers
from laber import _accel
from laber.storage import MmapStorage, SharedStorage

STORAGES = ["memory", "mmap", "shared"]

BACKENDS = ["numpy", "numba"]


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


@pytest.fixture(params=STORAGES)
def storage_backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Every buffer the test builds without naming a storage lives in this backend.

    With shared memory, a combination the backend refuses at construction (``next_of``, ``stack_compress``)
    skips the test instead of failing it: that refusal is tested on its own.
    """
    name: str = request.param
    if name == "mmap":
        directory = tmp_path_factory.mktemp("mmap")
        counter = itertools.count()
        monkeypatch.setattr(laber.buffers, "MemoryStorage", lambda: MmapStorage(directory / f"rb{next(counter)}"))
    elif name == "shared":
        monkeypatch.setattr(laber.buffers, "MemoryStorage", SharedStorage)
        refuse = laber.buffers._check_storage_options

        def skip_refused(*args: Any) -> None:
            try:
                refuse(*args)
            except ValueError as exc:
                pytest.skip(f"refused by shared storage: {exc}")

        monkeypatch.setattr(laber.buffers, "_check_storage_options", skip_refused)
    yield name
