"""Shared fixtures: run a test once per backend (numpy, and numba when it is installed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import laber
from laber import _accel

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
