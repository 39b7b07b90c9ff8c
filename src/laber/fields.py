"""``env_dict`` -> a schema of named fields, and the validation of a whole ``add()`` before anything is written.

``env_dict = {name: {"shape": int | tuple (default 1), "dtype": numpy dtype (default default_dtype)}}``, as in
cpprb. A field of shape ``(1,)`` accepts a scalar per transition (``rew=1.0``) and comes back as ``(B, 1)``.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from laber._validation import host_array, short_repr

__all__ = ["Field", "Schema"]


_PY_SCALARS = frozenset({float, int, bool})

SAMPLE_OUTPUTS = frozenset({"indexes", "weights", "discount"})
"""What ``sample`` returns besides the fields: ``add`` ignores these keys, so ``rb.add(**rb.sample(k))`` works
(as in cpprb); any other unknown key is an error."""


@functools.cache
def _int_range(dtype: np.dtype[Any]) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


@functools.cache
def _can_cast(src: np.dtype[Any], dst: np.dtype[Any]) -> bool:
    return bool(np.can_cast(src, dst))


@functools.cache
def _float_max(dtype: np.dtype[Any]) -> float:
    return float(np.finfo(dtype).max)


@dataclass(frozen=True)
class Field:
    """One named field: per-transition ``shape`` and ``dtype``."""

    name: str
    shape: tuple[int, ...]
    dtype: np.dtype[Any]

    @property
    def size(self) -> int:
        """Number of scalars per transition."""
        return math.prod(self.shape)


def _parse_shape(name: str, shape: object) -> tuple[int, ...]:
    if isinstance(shape, np.ndarray) and shape.ndim == 0:  # np.array(4): an integer in disguise
        if shape.dtype.kind not in "iu":
            raise TypeError(
                f"env_dict[{name!r}]['shape'] must be an int or a tuple of ints, got a 0-d {shape.dtype} array "
                f"shape={shape!r}"
            )
        shape = int(shape)
    if isinstance(shape, bool):
        raise TypeError(f"env_dict[{name!r}]['shape'] must be an int or a tuple of ints, got shape={shape!r}")
    if isinstance(shape, numbers.Integral):
        dims: tuple[object, ...] = (shape,)
    elif isinstance(shape, Iterable) and not isinstance(shape, (str, bytes)):
        dims = tuple(shape)
    else:
        raise TypeError(f"env_dict[{name!r}]['shape'] must be an int or a tuple of ints, got shape={shape!r}")
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or int(d) <= 0:
            raise ValueError(f"env_dict[{name!r}]['shape'] must hold positive ints, got shape={shape!r}")
        out.append(int(d))
    return tuple(out) if out else (1,)


class Schema:
    """The fields of a buffer, parsed and checked once, and the validation of ``add`` calls against them."""

    def __init__(
        self,
        env_dict: Mapping[str, Mapping[str, Any]],
        default_dtype: object = np.float32,
        hidden: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        if not isinstance(env_dict, Mapping) or not env_dict:
            raise TypeError(f"env_dict must be a non-empty dict of field specs, got env_dict={short_repr(env_dict)}")
        try:
            default = np.dtype(default_dtype)  # type: ignore[call-overload]
        except TypeError as exc:
            raise TypeError(f"default_dtype must be a numpy dtype, got default_dtype={default_dtype!r}") from exc
        if default.kind not in "biufc":
            raise TypeError(f"default_dtype must be a numeric or bool dtype, got default_dtype={default_dtype!r}")
        for name in env_dict:
            if isinstance(name, str) and name.startswith("_"):
                raise ValueError(
                    f"field name {name!r} is reserved: names starting with '_' are laber's internal columns "
                    f"(links, N-step step counts, priorities); rename the field in env_dict"
                )
        fields: dict[str, Field] = {}
        for name, spec in {**env_dict, **(hidden or {})}.items():
            if not isinstance(name, str) or not name:
                raise TypeError(f"env_dict keys must be non-empty strings, got {name!r}")
            if name in ("indexes", "weights"):
                raise ValueError(f"field name {name!r} is reserved for sample() outputs; rename it")
            if not isinstance(spec, Mapping):
                raise TypeError(f"env_dict[{name!r}] must be a dict like {{'shape': 4}}, got {short_repr(spec)}")
            unknown = set(spec) - {"shape", "dtype", "add_shape"}  # add_shape: cpprb writes it into env_dicts
            if unknown:
                raise ValueError(f"env_dict[{name!r}] has unknown keys {sorted(unknown)}; allowed: 'shape', 'dtype'")
            shape = _parse_shape(name, spec.get("shape", 1))
            try:
                dtype = np.dtype(spec.get("dtype", default))
            except TypeError as exc:
                raise TypeError(f"env_dict[{name!r}]['dtype'] is not a numpy dtype: {spec.get('dtype')!r}") from exc
            if dtype.kind not in "biufc":
                raise TypeError(f"env_dict[{name!r}]['dtype'] must be numeric or bool, got dtype={dtype}")
            fields[name] = Field(name, shape, dtype)
        self.fields = fields
        # per field, for the scalar fast path of check_add: (field, takes a scalar, kind, low, high); a Python
        # number outside [low, high] (or NaN) goes through the full checks
        self._scalar: dict[str, tuple[Field, bool, str, float, float]] = {}
        for name, f in fields.items():
            kind = f.dtype.kind
            bounds: tuple[float, float]
            if kind in "iu":
                bounds = _int_range(f.dtype)  # exact Python ints: 2**63 must not pass as 9.2e18
            elif kind == "f":
                bounds = (-_float_max(f.dtype), _float_max(f.dtype))
            else:
                bounds = (-math.inf, math.inf)
            self._scalar[name] = (f, f.shape == (1,), kind, *bounds)
        self.hidden = frozenset(hidden or ())
        self.public = tuple(n for n in fields if n not in self.hidden)
        self._name_sets: dict[tuple[str, ...], frozenset[str]] = {}

    def __iter__(self) -> Any:
        return iter(self.fields.values())

    def __getitem__(self, name: str) -> Field:
        return self.fields[name]

    def __contains__(self, name: object) -> bool:
        return name in self.fields

    # ------------------------------------------------------------------------------------------- validation
    def check_add(self, fields: Mapping[str, Any], names: tuple[str, ...]) -> tuple[int, dict[str, Any]]:
        """Validate one ``add`` call over ``names`` (every one required, nothing else allowed).

        Keys that ``sample`` returns besides the fields (``indexes``, ``weights``, ``discount``) are ignored.
        Returns ``(rows, arrays)``: for a batch each array is ``(rows, *field.shape)``; for one transition
        (``rows == 1``) an array may also be ``field.shape`` (or a 0-d array or a Python scalar for a
        shape-``(1,)`` field), which assigns to one row as is. Integer fields are checked to hold integral
        values inside their range.
        Raises a named ``ValueError``/``TypeError``; nothing is written by this method.
        """
        expected = self._name_sets.get(names)
        if expected is None:
            expected = self._name_sets[names] = frozenset(names)
        if fields.keys() != expected:
            missing = [n for n in names if n not in fields]
            if missing:
                raise ValueError(f"add() is missing field(s) {missing}; every field of env_dict is required")
            unknown = [n for n in fields if n not in names and n not in SAMPLE_OUTPUTS]
            if unknown:
                raise ValueError(f"add() got unknown field(s) {unknown}; known fields: {list(names)}")
            fields = {n: v for n, v in fields.items() if n not in SAMPLE_OUTPUTS}  # rb.add(**rb.sample(k))
        rows = -1
        first = ""
        out: dict[str, Any] = {}
        scalar = self._scalar
        for name in names:
            f, takes_scalar, kind, low, high = scalar[name]
            raw = fields[name]
            if takes_scalar and type(raw) in _PY_SCALARS:  # the common scalar: no array needed
                if rows < 0:
                    rows, first = 1, name
                elif rows != 1:
                    raise ValueError(
                        f"fields disagree on the number of transitions: {first!r} has {rows}, {name!r} has 1"
                    )
                if kind in "iu":
                    if type(raw) is not int or not low <= raw <= high:  # floats, bools and overflows: full check
                        self._check_fits(f, np.asarray(raw))
                elif kind == "f" and not low <= raw <= high:
                    try:  # beyond the dtype's range, or inf / NaN
                        self._check_float_range(f, np.asarray(float(raw)))
                    except OverflowError:  # a Python int beyond float64
                        raise ValueError(
                            f"field {name!r} has dtype {f.dtype} (largest finite value {_float_max(f.dtype):.6g}), "
                            f"got value {short_repr(raw)}, which it would store as inf"
                        ) from None
                out[name] = raw
                continue
            try:
                value = raw if type(raw) is np.ndarray else np.asarray(host_array(raw))
            except Exception as exc:
                raise TypeError(f"field {name!r} cannot be converted to an array: {short_repr(raw)}") from exc
            kind = value.dtype.kind
            if kind not in "biuf":
                raise TypeError(f"field {name!r} must hold numbers, got dtype={value.dtype}: {name}={short_repr(raw)}")
            shape = value.shape
            if shape == f.shape or (shape == () and f.shape == (1,)):
                k = 1
            elif shape[1:] == f.shape and len(shape) > len(f.shape):
                k = shape[0]
            elif f.shape == (1,) and len(shape) == 1:
                k = shape[0]
                value = value.reshape(k, 1)
            else:
                raise ValueError(
                    f"field {name!r} must have shape {f.shape} (one transition) or (k, *{f.shape}) (a batch), "
                    f"got shape {shape}"
                )
            if rows < 0:
                rows, first = k, name
            elif k != rows:
                raise ValueError(
                    f"fields disagree on the number of transitions: {first!r} has {rows}, {name!r} has {k}"
                )
            if f.dtype.kind in "iu" and kind in "iuf":
                self._check_fits(f, value)
            elif f.dtype.kind == "f" and kind in "iuf" and not _can_cast(value.dtype, f.dtype):
                self._check_float_range(f, value)
            out[name] = value
        if rows <= 0:
            raise ValueError(f"add() got no transitions (a batch of length {rows})")
        return rows, out

    @staticmethod
    def _check_float_range(field: Field, value: np.ndarray) -> None:
        """Float fields reject finite values that the cast to their dtype would turn into ``inf``.

        ``inf``, ``-inf`` and NaN given as such are stored as they are; only overflow is refused (a float32
        field holds at most about 3.4e38, float16 65504).
        """
        if value.size == 0:
            return
        limit = _float_max(field.dtype)
        if value.dtype.kind in "iu":
            value = value.astype(np.float64)  # abs() of the most negative int64 would wrap
        with np.errstate(invalid="ignore"):
            big = np.abs(value) > limit  # NaN compares False
        if not big.any():
            return
        with np.errstate(over="ignore"):
            overflow = big & np.isinf(value.astype(field.dtype)) & ~np.isinf(value)
        if overflow.any():
            bad = value.reshape(-1)[int(np.flatnonzero(overflow.reshape(-1))[0])].item()
            raise ValueError(
                f"field {field.name!r} has dtype {field.dtype} (largest finite value {limit:.6g}), got value {bad!r}, "
                f"which it would store as inf"
            )

    @staticmethod
    def _check_fits(field: Field, value: np.ndarray) -> None:
        """Integer fields take only integral values inside the dtype's range (no silent wrap-around)."""
        low, high = _int_range(field.dtype)
        if value.ndim == 0:
            x = value.item()
            if isinstance(x, float) and not x.is_integer():
                raise ValueError(f"field {field.name!r} ({field.dtype}) needs integral values, got {x!r}")
            if not low <= x <= high:
                raise ValueError(f"field {field.name!r} has dtype {field.dtype} (range {low}..{high}), got value {x!r}")
            return
        if value.size == 0 or (value.dtype.kind in "iu" and _can_cast(value.dtype, field.dtype)):
            return
        lo, hi = value.min(), value.max()
        if value.dtype.kind == "f" and (
            not (np.isfinite(lo) and np.isfinite(hi)) or not np.array_equal(value, np.floor(value))
        ):
            raise ValueError(f"field {field.name!r} ({field.dtype}) needs integral values, got {short_repr(value)}")
        if lo < low or hi > high:
            bad = (lo if lo < low else hi).item()
            raise ValueError(f"field {field.name!r} has dtype {field.dtype} (range {low}..{high}), got value {bad!r}")
