"""Argument checks shared by every public class.

Each helper raises ``TypeError`` or ``ValueError`` naming the argument and echoing the value it got, in the
form ``"<name> must be ..., got <name>=<value!r>"``. None of them changes anything, so callers can validate a
whole call before writing any state.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

RngLike = int | np.random.Generator | np.random.SeedSequence | None


def as_generator(rng: object, name: str = "rng") -> np.random.Generator:
    """Normalise ``rng`` (None, an int seed, a SeedSequence or a Generator) to a ``numpy.random.Generator``.

    A Generator is used as is (shared, not copied), following numpy's SPEC 7.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    if isinstance(rng, bool) or not isinstance(rng, numbers.Integral):
        raise TypeError(f"{name} must be None, an int seed or a numpy.random.Generator, got {name}={rng!r}")
    if int(rng) < 0:
        raise ValueError(f"{name} seed must be >= 0, got {name}={rng!r}")
    return np.random.default_rng(int(rng))


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int if it is a positive integer (bools, floats and strings are rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive integer, got {name}={value!r}")
    if int(value) <= 0:
        raise ValueError(f"{name} must be a positive integer, got {name}={value!r}")
    return int(value)


def check_nonnegative_float(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number >= 0."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite real number >= 0, got {name}={value!r}")
    out = float(value)
    if not math.isfinite(out) or out < 0:
        raise ValueError(f"{name} must be a finite real number >= 0, got {name}={value!r}")
    return out


def host_array(value: Any) -> Any:
    """A torch tensor (any device, ``requires_grad`` or not) as a detached host numpy array; anything else as is.

    Duck-typed (``detach``/``cpu``/``numpy``), so torch is never imported here.
    """
    if type(value) is np.ndarray:
        return value
    if hasattr(value, "detach") and hasattr(value, "cpu") and hasattr(value, "numpy"):
        return value.detach().cpu().numpy()
    return value


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters, for echoing large arrays in error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
