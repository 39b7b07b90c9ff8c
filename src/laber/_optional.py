"""Lazy imports of optional dependencies, with an error that names the extra to install."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

_EXTRA_OF = {
    "torch": "torch",
    "gymnasium": "gym",
    "matplotlib": "plot",
    "tqdm": "progress",
    "ray": "ray",
    "minatar": "minatar",
}


def require(module: str, purpose: str = "this feature") -> ModuleType:
    """Import ``module`` or raise ``ImportError`` telling which ``laber`` extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_OF.get(top, top)
        raise ImportError(
            f"{purpose} needs the optional dependency {top!r}; install it with: pip install 'laber[{extra}]'"
        ) from exc


def loaded(module: str) -> ModuleType | None:
    """The module if it has already been imported by the user, else None (never triggers an import)."""
    return sys.modules.get(module)
