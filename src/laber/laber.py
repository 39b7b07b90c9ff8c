r"""LaBER sub-samplers: ``LaBERmean``, ``LaBERlazy``, ``LaBERmax`` and the functional ``laber_subsample``.

Large Batch Experience Replay (T. Lahire, M. Geist, E. Rachelson, "Large Batch Experience Replay", ICML 2022,
arXiv:2110.01528) draws a large uniform batch of ``N = m * B`` transitions, scores each with a surrogate
priority computed by the *current* network (``|TD|`` for an L2 loss, ``min(|TD|, 1)`` for the Huber loss), and
sub-samples ``B`` of them with replacement in proportion to those priorities.

Given priorities ``p`` of length ``N`` and ``eps >= 0``::

    q_k = p_k + eps,        P_k = q_k / sum_i q_i

``B`` positions ``j`` are drawn i.i.d. from ``P`` and returned as ``indexes`` (int64 positions *in the large
batch*), with importance weights

* ``LaBERmean``: ``w_j = mean(q) / q_j = 1 / (N * P_j)``. For any per-sample quantity ``f`` (a loss, a
  gradient) ``E[mean_b w_b f_{j_b}] = mean_k f_k``: the weighted sub-batch is an unbiased estimate of the
  large-batch mean. This is the variant the paper recommends.
* ``LaBERlazy``: ``w_j = 1 / q_j``, the paper's un-normalised "lazy" weights (the scale is absorbed by the
  learning rate). Note: cpprb's ``LaBERlazy`` returns ``1 / P_j = sum(q) / q_j`` instead, which is ``N`` times
  ``LaBERmean``'s weights; laber follows the paper.
* ``LaBERmax``: ``w_j = (1 / q_j) / max_{i drawn} (1 / q_i)``, PER-style weights in ``(0, 1]``, biased in
  scale.

Inputs and outputs: torch tensors (CPU or CUDA; float16, bfloat16, float32, float64; ``requires_grad`` is
allowed, priorities are detached) give torch results on the same device, computed with torch ops and, by
default on accelerators, without a host synchronisation. numpy arrays, lists and objects with ``__array__``
(TF eager tensors, JAX arrays) give numpy results. Weights are float32 for 16- and 32-bit float priorities
and float64 otherwise; ``indexes`` are int64.

The numpy draw is an exact inverse-CDF search in float64: ``cdf`` is the running sum of ``q`` (left to right),
``B`` uniforms ``u`` from the object's ``numpy.random.Generator`` (sorted unless ``shuffle=True``) are scaled by
``sum(q) = cdf[-1]`` and located with ``searchsorted(cdf, u * sum(q), side="right")``; ``mean(q)`` is
``cdf[-1] / N``. With numba installed (the ``fast`` extra; see ``laber.set_numba``), native float32 and float64
numpy priorities (and CPU tensors of those dtypes) take the same draw compiled (``laber._kernels_laber``): one
pass checks the values and sums them, a second searches the uniforms and computes the weights. Both paths do
the same float64 operations, so the same seed gives the same indexes and weights, bit for bit (tested).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np

from laber import _accel
from laber._validation import (
    RngLike,
    as_generator,
    check_nonnegative_float,
    check_positive_int,
    short_repr,
)

if TYPE_CHECKING:
    import torch

__all__ = ["LaBERlazy", "LaBERmax", "LaBERmean", "laber_subsample"]

Variant = Literal["mean", "lazy", "max"]
_VARIANTS: tuple[str, ...] = ("mean", "lazy", "max")
_RESERVED = frozenset({"weights", "indexes"})
_LOW_PRECISION_CHARS = "ef"  # float16, float32: weights come back float32
_INF = float("inf")
_MIN = np.minimum.reduce
_ACCUMULATE = np.add.accumulate  # the prefix sum of q.cumsum(), with less dispatch
_INTP_IS_INT64 = np.dtype(np.intp) == np.dtype(np.int64)
_EMPTY = np.empty
_NDARRAY = np.ndarray
_INT64 = np.dtype(np.int64)
# Priority dtypes the numba kernels take (native byte order only: a dtype compares equal to its own byte order),
# mapped to the weights' dtype.
_KERNEL_WEIGHTS: dict[np.dtype[Any], np.dtype[Any]] = {np.dtype(t): np.dtype(t) for t in (np.float32, np.float64)}


def _torch_module() -> Any:
    """The torch module if the user already imported it (a torch tensor cannot exist otherwise)."""
    return sys.modules.get("torch")


def _is_tensor(x: object) -> bool:
    torch = _torch_module()
    return torch is not None and isinstance(x, torch.Tensor)


# ----------------------------------------------------------------------------------------------- validation
def _bad_priorities_message(p: np.ndarray, eps: float) -> str:
    """Explain why priorities (already 1-D, right length) cannot define a distribution."""
    finite = np.isfinite(p)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        return f"priorities must be finite and >= 0, got priorities[{k}]={p[k]!s}"
    negative = p < 0
    if negative.any():
        k = int(np.flatnonzero(negative)[0])
        return f"priorities must be finite and >= 0, got priorities[{k}]={p[k]!s}"
    with np.errstate(over="ignore"):
        total = float(np.sum(p, dtype=np.float64)) + eps * p.size
    if total == 0.0:
        return (
            "priorities must not all be zero when eps=0 (no distribution to draw from), "
            f"got priorities={short_repr(p)} with eps={eps!r}"
        )
    return f"sum of priorities + eps overflows float64, got priorities={short_repr(p)}"


def _check_priorities_shape(shape: tuple[int, ...], n: int | None, dtype_kind: str, dtype: object) -> None:
    if dtype_kind not in "fiu":
        raise TypeError(f"priorities must hold real numbers, got dtype={dtype}")
    if len(shape) != 1:
        raise ValueError(f"priorities must be 1-D, got shape={shape}")
    if n is None:
        if shape[0] == 0:
            raise ValueError("priorities must not be empty, got shape=(0,)")
    elif shape[0] != n:
        raise ValueError(f"priorities must have length m*batch_size={n}, got length {shape[0]}")


def _prepare_arrays(arrays: Mapping[str, Any], n: int) -> dict[str, Any]:
    """Validate the extra arrays (names and leading lengths) and convert non-tensors to numpy."""
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        if key in _RESERVED:
            raise ValueError(
                f"extra array name {key!r} collides with an output key ({', '.join(sorted(_RESERVED))}); rename it"
            )
        if type(value) is np.ndarray:
            if value.ndim and value.shape[0] == n:  # the common case
                out[key] = value
                continue
        elif not _is_tensor(value):
            try:
                value = np.asarray(value)
            except Exception as exc:  # pragma: no cover - exotic objects
                raise TypeError(f"extra array {key!r} cannot be converted to an array: {exc}") from exc
        shape = tuple(value.shape)
        if len(shape) == 0 or shape[0] != n:
            raise ValueError(
                f"extra array {key!r} must have leading length N={n} (that of priorities), got shape={shape}"
            )
        out[key] = value
    return out


# ----------------------------------------------------------------------------------------------- numpy path
def _numpy_priorities(priorities: Any, n: int | None) -> np.ndarray:
    p = priorities
    if type(p) is np.ndarray and p.ndim == 1 and p.shape[0] == n and p.dtype.kind in "fiu":
        return p  # the common case, accepted without building messages
    try:
        p = np.asarray(priorities)
    except Exception as exc:
        raise TypeError(f"priorities cannot be converted to an array: {short_repr(priorities)}") from exc
    _check_priorities_shape(p.shape, n, p.dtype.kind, p.dtype)
    return p


def _draw_numpy(
    p: np.ndarray, batch_size: int, opts: _Options, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    eps = opts.eps
    k = _accel.kernels("laber")
    if k is not None:
        kernel_w_dtype = _KERNEL_WEIGHTS.get(p.dtype)
        if kernel_w_dtype is not None:
            # The same draw compiled (laber._kernels_laber): one pass checks the values and sums, the uniforms
            # are drawn here (only once the values are known good), a second pass searches and weights.
            cdf = _EMPTY(p.shape[0])
            total = k.cumulate(p, eps, cdf)
            if not 0.0 < total < _INF:
                raise ValueError(_bad_priorities_message(p, eps))
            idx = _EMPTY(batch_size, _INT64)
            w = _EMPTY(batch_size, kernel_w_dtype)
            k.draw(p, eps, cdf, rng.random(batch_size), opts.mode, idx, w)
            return idx, w
    size = p.shape[0]
    q = np.add(p, eps, dtype=np.float64) if eps else p.astype(np.float64)
    cdf = _ACCUMULATE(q)  # (bad input may warn of an overflow here; it is reported below as a ValueError)
    total = cdf.item(-1)
    # A NaN or inf anywhere makes the total non-finite; a negative entry needs its own check.
    if not (0.0 < total < _INF) or (p.dtype.kind != "u" and _MIN(p) < 0):
        raise ValueError(_bad_priorities_message(p, eps))
    u = rng.random(batch_size)
    if not opts.shuffle:
        # Sorting the uniforms returns the same multiset of draws in ascending order, and lets the search walk
        # the CDF forwards (about twice as fast as B independent binary searches).
        u.sort()
    u *= total
    # rng.random() <= 1 - 2**-53, so u < total exactly and the search never runs past the last positive entry;
    # a zero-probability entry spans an empty interval [cdf[k-1], cdf[k]) and is never returned.
    idx = cdf.searchsorted(u, side="right")
    qi = q.take(idx)
    w_dtype = np.float32 if p.dtype.char in _LOW_PRECISION_CHARS else np.float64
    variant = opts.variant
    if variant == "mean":
        w = np.divide(total / size, qi, dtype=w_dtype)
    elif variant == "lazy":
        w = np.divide(1.0, qi, dtype=w_dtype)
    else:
        w = np.divide(qi.min(), qi, dtype=w_dtype)  # == (1/q_j) / max_i (1/q_i)
    return (idx if _INTP_IS_INT64 else idx.astype(np.int64)), w


# ----------------------------------------------------------------------------------------------- torch path
_TorchGenerators = dict[str, "torch.Generator"]


def _torch_generator(cache: _TorchGenerators, device: Any, rng: np.random.Generator) -> Any:
    """A torch Generator for ``device``, re-seeded from ``rng`` so numpy's Generator stays the only state."""
    torch = _torch_module()
    key = str(device)
    gen = cache.get(key)
    if gen is None:
        gen = torch.Generator(device=device)
        cache[key] = gen
    gen.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return gen


_SHARED_DTYPES: list[frozenset[Any]] = []


def _numpy_shared_dtypes() -> frozenset[Any]:
    """torch dtypes whose CPU tensors have an exact numpy view (bfloat16 has none)."""
    if not _SHARED_DTYPES:
        t = _torch_module()
        _SHARED_DTYPES.append(frozenset({t.float16, t.float32, t.float64, t.int64, t.int32, t.int16, t.uint8}))
    return _SHARED_DTYPES[0]


def _torch_priorities(priorities: Any, n: int | None) -> Any:
    torch = _torch_module()
    p = priorities.detach()
    if p.dtype == torch.bool or p.is_complex():
        raise TypeError(f"priorities must hold real numbers, got dtype={p.dtype}")
    _check_priorities_shape(tuple(p.shape), n, "f", p.dtype)
    return p


def _draw_torch(
    p: Any, batch_size: int, opts: _Options, rng: np.random.Generator, cache: _TorchGenerators
) -> tuple[Any, Any]:
    torch = _torch_module()
    size = p.shape[0]
    device = p.device
    work = torch.float32 if device.type == "mps" else torch.float64
    q = p.to(work)
    if opts.eps:
        q = q + opts.eps
    cdf = torch.cumsum(q, 0)
    total = cdf[-1:]
    check = (device.type == "cpu") if opts.check_values is None else opts.check_values
    if check:  # one host synchronisation on accelerators, none on CPU
        t = float(total.item())
        if not (0.0 < t < float("inf")) or bool((p < 0).any()):
            raise ValueError(_bad_priorities_message(p.cpu().double().numpy(), opts.eps))
    gen = _torch_generator(cache, device, rng)
    u = torch.rand(batch_size, generator=gen, device=device, dtype=work)
    if not opts.shuffle:
        u = torch.sort(u).values
    u.mul_(total)
    idx = torch.searchsorted(cdf, u, right=True).clamp_(max=size - 1)
    qi = q.index_select(0, idx)
    if opts.variant == "mean":
        w = (total / size) / qi
    elif opts.variant == "lazy":
        w = qi.reciprocal()
    else:
        w = qi.min() / qi
    out_dtype = torch.float32 if p.dtype in (torch.float16, torch.bfloat16, torch.float32) else torch.float64
    return idx, w.to(out_dtype)


# ----------------------------------------------------------------------------------------------- shared core
@dataclass(frozen=True)
class _Options:
    variant: str
    eps: float
    check_values: bool | None
    shuffle: bool
    mode: int  # for the numba kernels: the variant's position in _VARIANTS, plus 4 with shuffle

    @classmethod
    def checked(cls, variant: str, eps: object, check_values: object, shuffle: object) -> _Options:
        if variant not in _VARIANTS:
            raise ValueError(f"variant must be one of {_VARIANTS}, got variant={variant!r}")
        if check_values is not None and not isinstance(check_values, bool):
            raise TypeError(f"check_values must be None, True or False, got check_values={check_values!r}")
        if not isinstance(shuffle, bool):
            raise TypeError(f"shuffle must be True or False, got shuffle={shuffle!r}")
        mode = _VARIANTS.index(variant) + (4 if shuffle else 0)
        return cls(variant, check_nonnegative_float(eps, "eps"), check_values, shuffle, mode)


def _subsample(
    priorities: Any,
    batch_size: int,
    n: int | None,
    opts: _Options,
    rng: np.random.Generator,
    cache: _TorchGenerators,
    arrays: Mapping[str, Any],
) -> dict[str, Any]:
    """The one implementation behind the classes and ``laber_subsample``.

    The whole call (priorities' shape, extra arrays, priorities' values) is validated before anything is
    drawn, so a failed call leaves the generator where it was.
    """
    if type(priorities) is not np.ndarray and _is_tensor(priorities):
        p = _torch_priorities(priorities, n)
        prepared = _prepare_arrays(arrays, int(p.shape[0])) if arrays else {}
        if p.device.type == "cpu" and p.dtype in _numpy_shared_dtypes():
            # A CPU tensor shares its memory with a numpy view: the numpy kernels are several times faster than
            # torch's on arrays this small, give the very draws numpy input gives, and no data moves.
            torch = _torch_module()
            idx_np, w_np = _draw_numpy(p.numpy(), batch_size, opts, rng)
            idx, w = torch.from_numpy(idx_np), torch.from_numpy(w_np)
        else:
            idx, w = _draw_torch(p, batch_size, opts, rng, cache)
    else:
        p = _numpy_priorities(priorities, n)
        prepared = _prepare_arrays(arrays, int(p.shape[0])) if arrays else {}
        idx, w = _draw_numpy(p, batch_size, opts, rng)
    out = _gather(prepared, idx) if prepared else {}
    out["weights"] = w
    out["indexes"] = idx
    return out


def _gather(arrays: Mapping[str, Any], idx: Any) -> dict[str, Any]:
    """Sub-sample every extra array along axis 0; tensors stay on their device, the rest is numpy."""
    out: dict[str, Any] = {}
    torch_idx = _is_tensor(idx)
    np_idx: np.ndarray | None = None if torch_idx else idx
    for key, value in arrays.items():
        if type(value) is np.ndarray and np_idx is not None:
            out[key] = value.take(np_idx, axis=0)
        elif _is_tensor(value):
            t_idx = idx if torch_idx else _torch_module().from_numpy(idx)
            out[key] = value.index_select(0, t_idx.to(value.device))
        else:
            if np_idx is None:
                np_idx = idx.cpu().numpy()  # numpy extras beside tensor priorities: one device-to-host copy
            out[key] = value.take(np_idx, axis=0)
    return out


# ----------------------------------------------------------------------------------------------- public API
class _LaBER:
    """Common machinery of the three LaBER sub-samplers; see the module docstring for the formulas."""

    variant: ClassVar[str]

    def __init__(
        self,
        batch_size: int,
        m: int = 4,
        *,
        eps: float = 1e-6,
        rng: RngLike = None,
        shuffle: bool = False,
        check_values: bool | None = None,
    ) -> None:
        batch_size = check_positive_int(batch_size, "batch_size")
        m = check_positive_int(m, "m")
        self._opts = _Options.checked(self.variant, eps, check_values, shuffle)
        self._eps, self._mode = self._opts.eps, self._opts.mode  # read on every call
        self._batch_size = batch_size
        self._m = m
        self._n = batch_size * m
        self._rng = as_generator(rng)
        self._torch_generators: _TorchGenerators = {}

    @property
    def batch_size(self) -> int:
        """``B``, the number of transitions drawn by each call."""
        return self._batch_size

    @property
    def m(self) -> int:
        """The large-batch multiplier: each call takes ``m * batch_size`` priorities."""
        return self._m

    @property
    def eps(self) -> float:
        """Added to every priority: ``q = priorities + eps``."""
        return self._opts.eps

    @property
    def rng(self) -> np.random.Generator:
        """The generator every draw comes from (torch draws are seeded from it too)."""
        return self._rng

    def __call__(self, *, priorities: Any, **arrays: Any) -> dict[str, Any]:
        """Sub-sample ``batch_size`` positions of the large batch in proportion to ``priorities + eps``.

        Args:
            priorities: ``m * batch_size`` surrogate priorities (finite, ``>= 0``): a torch tensor, a numpy
                array, a list or anything with ``__array__``.
            **arrays: extra arrays of leading length ``m * batch_size``, each sub-sampled along axis 0 with
                the same indexes (torch tensors stay torch on their device; anything else becomes numpy).

        Returns:
            A dict with every extra array sub-sampled, ``weights`` (shape ``(batch_size,)``) and ``indexes``
            (int64 positions in the large batch), all fresh arrays.

        Raises:
            ValueError, TypeError: on bad input, naming the argument; nothing is drawn then.
        """
        p, n = priorities, self._n
        if type(p) is np.ndarray and p.ndim == 1 and p.shape[0] == n:
            # Fast path for the common call (numpy priorities and extras); anything unusual takes the general
            # path below, which owns the conversions and error messages. Validation still precedes the draw.
            for value in arrays.values() if _RESERVED.isdisjoint(arrays) else (None,):
                if type(value) is not _NDARRAY or not value.ndim or value.shape[0] != n:
                    break
            else:
                k = _accel.kernels("laber")
                w_dtype = None if k is None else _KERNEL_WEIGHTS.get(p.dtype)
                if w_dtype is not None:
                    # _draw_numpy's compiled branch, inline (this call is the hot path of every LaBER update)
                    eps = self._eps
                    cdf = _EMPTY(n)
                    total = k.cumulate(p, eps, cdf)
                    if not 0.0 < total < _INF:
                        raise ValueError(_bad_priorities_message(p, eps))
                    batch_size = self._batch_size
                    idx = _EMPTY(batch_size, _INT64)
                    w = _EMPTY(batch_size, w_dtype)
                    k.draw(p, eps, cdf, self._rng.random(batch_size), self._mode, idx, w)
                elif p.dtype.kind in "fiu":
                    idx, w = _draw_numpy(p, self._batch_size, self._opts, self._rng)
                else:
                    return self._general(priorities, arrays)
                if not arrays:
                    return {"weights": w, "indexes": idx}
                out: dict[str, Any] = {}
                for key, value in arrays.items():  # (a loop, not a comprehension: no extra frame)
                    out[key] = value.take(idx, 0)  # 0: axis (slower as a keyword)
                out["weights"] = w
                out["indexes"] = idx
                return out
        return self._general(priorities, arrays)

    def _general(self, priorities: Any, arrays: Mapping[str, Any]) -> dict[str, Any]:
        """The general path (``_subsample``): any input type, every conversion and every error message."""
        return _subsample(
            priorities,
            self._batch_size,
            self._n,
            self._opts,
            self._rng,
            self._torch_generators,
            arrays,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(batch_size={self._batch_size}, m={self._m}, eps={self._opts.eps!r}, "
            f"shuffle={self._opts.shuffle})"
        )


class LaBERmean(_LaBER):
    r"""LaBER-mean sub-sampler (Lahire et al., ICML 2022), the recommended variant.

    Draws ``B`` positions i.i.d. with ``P_j = q_j / sum(q)``, ``q = priorities + eps``, and returns weights
    ``w_j = mean(q) / q_j = 1 / (N P_j)`` (``N = m B``), so that ``E[mean_b w_b f_{j_b}] = mean_k f_k``:
    the weighted sub-batch loss is an unbiased estimate of the large batch's mean loss.

    On numpy input the draw runs as a compiled numba kernel when numba is installed (``laber.set_numba``), with
    the same results as the numpy implementation.

    Args:
        batch_size: ``B``, the output batch size (a positive int).
        m: multiplier; each call takes ``m * B`` priorities (default 4).
        eps: added to every priority before drawing (``>= 0``; ``0`` reproduces the paper exactly).
        rng: an int seed or a ``numpy.random.Generator``; the same seed gives the same draws (numpy and
            torch paths alike).
        shuffle: the order of the ``B`` draws. ``False`` (default) returns them in ascending order of
            ``indexes``: the same multiset as an i.i.d. draw (a minibatch loss, a mean, is blind to order),
            found by one forward walk of the CDF instead of ``B`` binary searches (numpy; the numba kernel
            sorts the found positions instead, with the same result), and friendlier to the caches of the
            gathers that follow. ``True`` returns them in draw order, an exchangeable i.i.d. sequence,
            for code that slices the batch. For the same seed both give the same multiset.
        check_values: check priorities for NaN, inf, negative and all-zero values. ``None`` (default) checks
            wherever it costs no device synchronisation (numpy input and CPU tensors) and skips it for
            tensors on accelerators; ``True`` always checks (one host synchronisation per call on CUDA);
            ``False`` never checks (bad values then give NaN or inf weights).

    Example:
        >>> laber = LaBERmean(32, 4, rng=0)
        >>> out = laber(priorities=np.random.default_rng(1).random(128))
        >>> out["indexes"].shape, out["weights"].dtype
        ((32,), dtype('float64'))
    """

    variant = "mean"


class LaBERlazy(_LaBER):
    r"""LaBER-lazy sub-sampler: weights ``w_j = 1 / q_j`` with ``q = priorities + eps`` (the paper's).

    Same draw as :class:`LaBERmean`; the weights are not normalised, the constant factor ``mean(q)`` being
    left to the learning rate. cpprb's ``LaBERlazy`` returns ``sum(q) / q_j`` instead (``N`` times
    LaBER-mean's weights); laber follows the paper (Lahire et al., ICML 2022). Arguments as
    :class:`LaBERmean`.
    """

    variant = "lazy"


class LaBERmax(_LaBER):
    r"""LaBER-max sub-sampler: weights ``w_j = (1 / q_j) / max_{i drawn} (1 / q_i)``, in ``(0, 1]``.

    Normalised by the largest weight in the drawn batch, as PER does (Schaul et al., 2016); biased in scale.
    Same draw as :class:`LaBERmean` (Lahire et al., ICML 2022). Arguments as :class:`LaBERmean`.
    """

    variant = "max"


def laber_subsample(
    priorities: Any,
    batch_size: int,
    *,
    variant: Variant = "mean",
    eps: float = 1e-6,
    rng: RngLike = None,
    shuffle: bool = False,
    check_values: bool | None = None,
    **arrays: Any,
) -> dict[str, Any]:
    """Functional LaBER: draw ``batch_size`` positions from ``N = len(priorities)`` and weight them.

    The same implementation as :class:`LaBERmean` / :class:`LaBERlazy` / :class:`LaBERmax` (choose with
    ``variant``), without the object; the other arguments are theirs. ``N`` need not be a multiple of
    ``batch_size``. Pass a ``numpy.random.Generator`` as ``rng`` to keep one stream across calls (an int seed
    restarts it at every call).
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    opts = _Options.checked(variant, eps, check_values, shuffle)
    return _subsample(priorities, batch_size, None, opts, as_generator(rng), {}, arrays)
