"""Optional compiled kernels through numba (the ``fast`` extra: ``pip install "laber[fast]"``).

laber's core needs numpy only, and every hot path has a vectorised numpy implementation. numpy pays a fixed
cost of about a microsecond per call, which dominates at replay's sizes (a few hundred numbers per step): a
sum-tree descent is ~5 numpy calls per level. When numba is installed, the same algorithms run as compiled
loops instead, with the **same results**: the kernels do the same float64 operations in the same order, so the
same seed gives the same indexes and weights on both paths (tested).

Selection, checked on every call so it can be changed at any time:

* ``LABER_NUMBA=0`` in the environment (read when laber is imported), or ``set_numba(False)``: numpy only.
* ``set_numba(True)``: numba required (``ModuleNotFoundError`` naming the extra if it is missing).
* default (``set_numba(None)``): numba when it imports, numpy otherwise.

The first call of a kernel compiles it (a second or two); compiled code is cached on disk (numba's
``cache=True``), so later processes start fast.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

__all__ = ["kernels", "numba_enabled", "set_numba"]

_choice: bool | None = None  # set_numba's argument
_numba: ModuleType | bool | None = False  # False: not tried yet; None: not importable
_loaded: dict[str, ModuleType] = {}
_env_off = os.environ.get("LABER_NUMBA", "").strip() == "0"  # read once: os.environ costs ~1 us per lookup


def _import_numba() -> ModuleType | None:
    global _numba
    if _numba is False:
        try:
            _numba = importlib.import_module("numba")
        except ImportError:
            _numba = None
    return _numba if isinstance(_numba, ModuleType) else None


def set_numba(enabled: bool | None) -> None:
    """Use numba kernels (``True``), numpy only (``False``), or numba when installed (``None``, the default).

    ``LABER_NUMBA=0`` in the environment turns numba off unless ``set_numba(True)`` is called.
    """
    global _choice
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True, False or None, got enabled={enabled!r}")
    if enabled and _import_numba() is None:
        raise ModuleNotFoundError('set_numba(True) needs numba; install the "fast" extra: pip install "laber[fast]"')
    _choice = enabled


def numba_enabled() -> bool:
    """Whether laber's hot paths run compiled numba kernels now (see ``set_numba``)."""
    if _choice is not None:
        return _choice
    if _env_off:
        return False
    return _import_numba() is not None


def kernels(name: str) -> Any:
    """The kernel module ``laber._kernels_<name>`` when numba is enabled, else ``None``."""
    if not numba_enabled():
        return None
    module = _loaded.get(name)
    if module is None:
        module = importlib.import_module(f"laber._kernels_{name}")
        _loaded[name] = module
    return module
