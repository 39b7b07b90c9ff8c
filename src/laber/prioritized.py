r"""Proportional prioritized experience replay, and its combination with LaBER (PER-LaBER).

``PrioritizedReplayBuffer`` is the ``ReplayBuffer`` of ``laber.buffers`` (same fields, N-step returns, next_of,
checkpoints) drawing rows in proportion to their priorities (T. Schaul, J. Quan, I. Antonoglou, D. Silver,
"Prioritized Experience Replay", ICLR 2016, arXiv:1511.05952). With ``N`` stored rows of priorities ``p``::

    q_i = (p_i + eps) ** alpha,        P_i = q_i / sum_k q_k

    w_i = (N * P_i) ** -beta / max_j (N * P_j) ** -beta  =  (q_i / min_j q_j) ** -beta

where ``j`` runs over the stored rows that can be drawn (``q_j > 0``), so ``0 < w_i <= 1``. ``alpha = 0`` is
uniform sampling, ``beta = 1`` the full importance-sampling correction.

Speed: the priorities live in ``laber.sumtree.SumMinTree``. With numba installed (the ``fast`` extra) the tree
search of ``sample`` and the checks and writes of ``update_priorities`` run as compiled loops
(``laber._kernels_sumtree``); without it, or with ``laber.set_numba(False)``, as vectorised numpy. Both give the
same indexes, weights and trees, bit for bit, for the same seed.

``per_laber_subsample`` is PER-LaBER (T. Lahire, M. Geist, E. Rachelson, "Large Batch Experience Replay",
ICML 2022, arXiv:2110.01528, the PER-LaBER variant of its experiments): the large batch of ``m * B`` rows is drawn
by PER instead of uniformly, LaBER sub-samples ``B`` of them from fresh surrogate priorities, and the fresh
priorities of all ``m * B`` rows are written back to the buffer.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np

from laber import _accel
from laber._validation import check_nonnegative_float, check_positive_int, host_array, short_repr
from laber.buffers import ReplayBuffer
from laber.sumtree import SumMinTree, index_range_error

__all__ = ["PrioritizedReplayBuffer", "per_laber_subsample"]

_PRIORITY = "_priority"
_RESERVED_OUTPUTS = ("indexes", "weights")


def _check_priorities(priorities: object, name: str = "priorities") -> np.ndarray:
    """``priorities`` as a 1-D float64 array of finite values ``>= 0`` (a scalar becomes length 1).

    Torch tensors are detached and brought to the host; bools are refused (``True`` is not a priority).
    """
    try:
        arr = np.asarray(host_array(priorities))
        if arr.dtype.kind in "cbOSUV":  # complex would lose its imaginary part; bools, objects, text are no numbers
            raise TypeError
        arr = arr.astype(np.float64, copy=False)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be real numbers, got {name}={short_repr(priorities)}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape} for {name}={short_repr(priorities)}")
    # min and max propagate NaN, so two reductions check everything in the common (valid) case.
    if arr.size and not (arr.min() >= 0 and arr.max() < math.inf):
        bad = ~(np.isfinite(arr) & (arr >= 0))
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be finite and >= 0, got {name}[{k}]={float(arr[k])!r}")
    return arr


def _fast_arrays(indexes: object, priorities: object) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``indexes`` and ``priorities`` as contiguous int64 and float64 arrays when both are 1-D numpy arrays of
    integers and of real numbers (what ``sample`` returns and a network computes), else ``None`` for either."""
    if type(indexes) is not np.ndarray or indexes.ndim != 1 or indexes.dtype.kind not in "iu":
        return None, None
    if type(priorities) is not np.ndarray or priorities.ndim != 1 or priorities.dtype.kind not in "fiu":
        return None, None
    if indexes.dtype == np.uint64 and indexes.size and int(indexes.max()) > np.iinfo(np.int64).max:
        return None, None  # would wrap around in int64: let the general checks reject it
    return np.ascontiguousarray(indexes, dtype=np.int64), np.ascontiguousarray(priorities, dtype=np.float64)


class PrioritizedReplayBuffer(ReplayBuffer):
    r"""A ``ReplayBuffer`` that draws rows in proportion to ``(p + eps) ** alpha``, with PER importance weights.

    Parameters
    ----------
    size, env_dict, Nstep, next_of, rng, ...:
        As for ``ReplayBuffer``.
    alpha:
        Prioritisation exponent, ``>= 0`` (0: uniform).
    eps:
        Added to every priority before the exponent, ``>= 0``, so rows of priority 0 stay drawable.
    check_for_update:
        cpprb's option for multi-process learning: ``update_priorities`` skips rows written (overwritten by
        new transitions) since the last ``sample()``, whose priorities would belong to rows the learner never
        saw. Costs one int64 stamp per row.

    Sampling (Schaul et al. 2016): with ``N`` stored rows of priorities ``p``,
    ``q_i = (p_i + eps) ** alpha``, ``P_i = q_i / sum_k q_k``; ``sample(batch_size, beta)`` splits the total
    mass into ``batch_size`` equal segments and draws one row in each (stratified sampling), so a row's
    expected count in a batch is ``batch_size * P_i``. The weights are

    .. math:: w_i = (N P_i)^{-\beta} / \max_j (N P_j)^{-\beta} = (q_i / \min_j q_j)^{-\beta}

    with ``j`` over the stored rows with ``q_j > 0`` (a row with ``q_j = 0``, possible only when ``eps = 0``,
    can never be drawn and is left out).

    Priorities: ``add(priorities=None, **fields)`` gives rows without a priority the running maximum of all
    priorities given so far (starting at 1), so new rows are drawn at least once early.
    ``update_priorities(indexes, priorities)`` sets them for stored rows; with duplicate indexes the last value
    wins. Priorities travel through N-step with the first transition of each window, are stored in a hidden
    float64 column, and are kept, with the running maximum, by checkpoints.

    All of the numbers are checked before anything is written: a bad call raises ``ValueError``/``TypeError``
    naming the argument and leaves the buffer unchanged, and the sum tree never holds NaN or inf.
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        alpha: float = 0.6,
        eps: float = 1e-4,
        check_for_update: bool = False,
        **kwargs: Any,
    ) -> None:
        if not isinstance(check_for_update, bool):
            raise TypeError(f"check_for_update must be True or False, got check_for_update={check_for_update!r}")
        self.alpha = check_nonnegative_float(alpha, "alpha")
        self.eps = check_nonnegative_float(eps, "eps")
        super().__init__(size, env_dict, **kwargs)
        self._tree = SumMinTree(self.get_buffer_size(), allocate=self._storage.allocate)
        self._max_priority = 1.0
        self._sample_count = 0
        self._stamps = (
            self._storage.allocate("row_stamps", (self.get_buffer_size(),), np.dtype(np.int64), 0)
            if check_for_update
            else None
        )
        # shared storage: [running max priority, number of sample() calls]
        self._shared_max: np.ndarray | None = (
            self._storage.allocate("max_priority", (2,), np.dtype(np.float64), 0.0) if self._storage.shared else None
        )
        if self._shared_max is not None and self._shared_max[0] == 0.0:  # new (an attached one keeps its value)
            self._shared_max[0] = 1.0

    # ------------------------------------------------------------------------------------- hooks (base)
    def _sync_in(self) -> None:
        super()._sync_in()
        if self._shared_max is not None:
            self._max_priority = float(self._shared_max[0])
            self._sample_count = int(self._shared_max[1])

    def _sync_out(self) -> None:
        super()._sync_out()
        if self._shared_max is not None:
            self._shared_max[0] = self._max_priority
            self._shared_max[1] = self._sample_count

    @classmethod
    def _hidden_fields(cls) -> dict[str, dict[str, Any]]:
        return {**super()._hidden_fields(), _PRIORITY: {"shape": 1, "dtype": np.float64}}

    def _priority_column(self) -> np.ndarray:
        """The writable ``(size,)`` view of the stored priorities ``p`` (NaN: not yet resolved)."""
        return self._column(_PRIORITY)[:, 0]

    def _check_mass(self, priorities: np.ndarray, k: int | None = None) -> float:
        """Reject priorities whose ``(p + eps) ** alpha`` could overflow the tree's float64 sums.

        Returns the largest priority (``-inf`` if there are none); ``k``, if known, is its position.
        """
        if not priorities.size:
            return -math.inf
        if k is None:
            k = int(np.argmax(priorities))
        largest = float(priorities[k])
        limit = sys.float_info.max / (2.0 * self._size)
        try:
            q_max = (largest + self.eps) ** self.alpha  # q is increasing in p for alpha >= 0
        except OverflowError:
            q_max = math.inf
        if not q_max <= limit:
            raise ValueError(
                f"priorities too large: (p + eps) ** alpha = {q_max!r} for priorities[{k}]={largest!r} "
                f"with alpha={self.alpha!r} could overflow the sum over {self._size} rows"
            )
        return largest

    def _mass(self, priorities: np.ndarray) -> np.ndarray:
        """``q = (p + eps) ** alpha`` in float64 (priorities already checked)."""
        q: np.ndarray = priorities + self.eps
        np.power(q, self.alpha, out=q)
        return q

    def _on_rows_written(self, indices: np.ndarray) -> None:
        super()._on_rows_written(indices)
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            return
        column = self._priority_column()
        p = column[idx]
        missing = np.isnan(p)
        if missing.any():
            p[missing] = self._max_priority
            column[idx] = p
        self._tree._update_unchecked(idx, self._mass(p))
        if self._stamps is not None:
            self._stamps[idx] = self._sample_count

    def _loaded_hidden(self, priorities: np.ndarray | None, keep: slice, rows: int) -> dict[str, np.ndarray]:
        """``load_transitions``: the file's priorities (checked) or NaN, which the write turns into the running
        maximum; a given priority raises the running maximum."""
        if priorities is None:
            return {_PRIORITY: np.full(rows, np.nan)}
        p = _check_priorities(np.asarray(priorities)[keep], "priorities in the file")
        if p.shape[0] != rows:
            raise ValueError(f"the file holds {p.shape[0]} priorities for {rows} rows")
        largest = self._check_mass(p)
        if p.size and largest > self._max_priority:
            self._max_priority = largest
        return {_PRIORITY: p}

    # checkpoints (laber.state): the running maximum travels as extra state (the priorities are a hidden column
    # of the rows); checked by check_checkpoint_extra, and the sum tree rebuilt from the rows by _restore_extra
    def _checkpoint_extra(self) -> dict[str, Any]:
        """``{"max_priority": float}``, the running maximum, for ``checkpoint_state().extra``."""
        extra = dict(super()._checkpoint_extra())
        extra["max_priority"] = self._max_priority
        return extra

    def check_checkpoint_extra(
        self, extra: Mapping[str, Any], rows: Mapping[str, np.ndarray], pending: Mapping[str, np.ndarray]
    ) -> None:
        """A checkpoint's running maximum must be a finite number ``>= 0``; the priorities of its rows finite and
        ``>= 0`` (those of pending N-step transitions may also be NaN: not given yet), and none so
        large that ``(p + eps) ** alpha`` could overflow the sums over this buffer's size."""
        rest = dict(extra)
        top = rest.pop("max_priority", 1.0)
        try:
            value = float(top) if isinstance(top, (int, float)) and not isinstance(top, bool) else math.nan
        except OverflowError:
            value = math.inf
        if not (math.isfinite(value) and value >= 0):
            raise ValueError(f"the running max priority must be a finite number >= 0, got max_priority={top!r}")
        self._check_mass(np.array([value]))
        stored = _check_priorities(rows[_PRIORITY].reshape(-1), "stored priorities")
        self._check_mass(stored)
        if _PRIORITY in pending:
            given = np.asarray(pending[_PRIORITY], dtype=np.float64).reshape(-1)
            given = _check_priorities(given[~np.isnan(given)], "pending priorities")
            self._check_mass(given)
        super().check_checkpoint_extra(rest, rows, pending)

    def _restore_extra(self, extra: Mapping[str, Any]) -> None:
        """Called by ``restore_checkpoint`` once the rows are in: the running maximum, the sum tree rebuilt from
        the restored priorities (and, with ``check_for_update``, every row stamped as just written)."""
        super()._restore_extra(extra)
        self._max_priority = float(extra.get("max_priority", 1.0))
        stored = self.get_stored_size()
        self._tree.reset()
        if self._stamps is not None:  # every row was just written
            self._stamps[:] = self._sample_count
        if stored:
            idx = np.arange(stored, dtype=np.int64)
            self._tree._update_unchecked(idx, self._mass(self._priority_column()[:stored].copy()))

    # ------------------------------------------------------------------------------------------- public
    def add(self, priorities: object = None, **fields: Any) -> int | None:
        """Add one transition or a batch, as ``ReplayBuffer.add``, with optional priorities.

        ``priorities``: None (every row gets the running maximum priority, 1 at first), a scalar (one
        transition) or one value per row, each finite and ``>= 0``. A given priority also raises the running
        maximum. The call is validated as a whole first, before the buffer's lock is taken: on error nothing is
        written. The lock is held from the first write to the sum-tree update.
        """
        if _PRIORITY in fields:
            raise ValueError(f"{_PRIORITY} is an internal field; pass priorities=... instead")
        rows, arrays = self._check_add(fields, {})  # before the lock: reads only immutable settings
        if priorities is None:
            arrays[_PRIORITY] = np.full((rows, 1), np.nan)
            given = None
        else:
            p = _check_priorities(priorities)
            if p.shape[0] != rows:
                raise ValueError(
                    f"priorities must have one value per row added, got {p.shape[0]} priorities for {rows} rows"
                )
            given = self._check_mass(p) if p.size else None
            arrays[_PRIORITY] = p.reshape(rows, 1)
        with self._lock:
            out = self._commit_add(rows, arrays)
            if given is not None:
                self._max_priority = max(self._max_priority, given)
            return out

    def sample(self, batch_size: int, beta: float = 0.4) -> dict[str, np.ndarray]:
        r"""Draw ``batch_size`` rows in proportion to ``q_i = (p_i + eps) ** alpha``, stratified.

        Returns the fields (fresh arrays), ``indexes`` (int64, a fresh array, in increasing order) and
        ``weights`` (float32), ``w_i = (N P_i) ** -beta / max_j (N P_j) ** -beta = (q_i / min_j q_j) ** -beta``
        over the ``N`` stored rows (see the class docstring). ``beta >= 0``. The tree search runs as a compiled
        numba kernel when numba is enabled (``laber.set_numba``), with the same indexes and weights. Holds the
        buffer's lock while it searches the tree; a large gather of the rows runs outside it, as in
        ``ReplayBuffer.sample``.
        """
        if type(batch_size) is not int or batch_size <= 0:  # the common case skips the (slower) general checks
            batch_size = check_positive_int(batch_size, "batch_size")
        if type(beta) is not float or not 0.0 <= beta < math.inf:
            beta = check_nonnegative_float(beta, "beta")
        unlocked = True
        while True:
            with self._lock:
                if self._stored == 0:
                    raise ValueError("cannot sample from an empty buffer: add transitions first")
                idx, ratios = self._tree._stratified(batch_size, self._rng, with_ratios=True)
                self._sample_count += 1
                mark = self._gather_mark(batch_size) if unlocked else None
                if mark is None:
                    out = self._gather(idx)
            if mark is None:
                break
            gathered = self._gather_unlocked(idx, mark)
            if gathered is not None:
                out = gathered
                break
            unlocked = False  # cleared or loaded meanwhile: draw again, all under the lock
        if ratios is None:  # with_ratios=True always returns them
            raise RuntimeError("internal error: the sum tree returned no probability ratios")
        out["indexes"] = self._rows.output(idx)
        weights = np.empty(batch_size, dtype=np.float32)
        np.power(ratios, -beta, out=weights, dtype=np.float64)  # (q_i / min_j q_j) ** -beta, in float64
        out["weights"] = self._rows.output(weights)
        return out

    def update_priorities(self, indexes: object, priorities: object) -> None:
        """Set the priorities of stored rows. Duplicate indexes: the last value wins.

        ``indexes`` must be integers in ``[0, stored)``, ``priorities`` finite and ``>= 0``, one per index.
        The running maximum rises to the largest new priority. Validated first: on error nothing changes.
        With numba (``laber.set_numba``) the checks and the writes run as compiled loops, with the same results.
        Torch tensors (``requires_grad`` or not, any device) are detached and copied to the host first. Holds the
        buffer's lock from the checks to the last tree write.
        """
        indexes = host_array(indexes)
        priorities = host_array(priorities)
        with self._lock:
            if self._stamps is not None:
                indexes, priorities = self._not_overwritten(indexes, priorities)
            self._update_priorities(indexes, priorities)

    def _checked_update(self, indexes: object, priorities: object) -> tuple[np.ndarray, np.ndarray]:
        """The general checks of ``update_priorities``: int64 indexes in ``[0, stored)``, float64 priorities,
        one per index (a named error otherwise)."""
        idx = self._tree.check_indexes(indexes, "indexes", bound=self._stored)
        p = _check_priorities(priorities)
        if p.shape != idx.shape:
            raise ValueError(
                f"priorities must have one value per index, got {p.shape[0]} priorities for {idx.shape[0]} indexes"
            )
        return idx, p

    def _not_overwritten(self, indexes: object, priorities: object) -> tuple[np.ndarray, np.ndarray]:
        """``check_for_update``: the (checked) indexes and priorities of rows not written since the last sample."""
        idx, p = self._checked_update(indexes, priorities)
        keep = self._stamps[idx] < self._sample_count if self._stamps is not None else slice(None)
        return idx[keep], p[keep]

    def _update_priorities(self, indexes: object, priorities: object) -> None:
        k = _accel.kernels("sumtree")
        if k is None:
            self._update_priorities_numpy(indexes, priorities)
            return
        stored = self._stored
        idx, p = _fast_arrays(indexes, priorities)
        if idx is None or p is None:  # anything but 1-D numeric arrays: the general checks convert and raise
            idx = self._tree.check_indexes(indexes, "indexes", bound=stored)
            p = _check_priorities(priorities)
        lo, hi, bad, top = k.check_update(idx, p)
        if lo < 0 or hi >= stored:
            index_range_error("indexes", stored, lo, hi, indexes)
        if bad >= 0:
            raise ValueError(f"priorities must be finite and >= 0, got priorities[{bad}]={float(p[bad])!r}")
        if p.shape != idx.shape:
            raise ValueError(
                f"priorities must have one value per index, got {p.shape[0]} priorities for {idx.shape[0]} indexes"
            )
        if idx.size == 0:
            return
        largest = self._check_mass(p, top)
        tree = self._tree
        k.write_priorities(
            tree._sum_flat,
            tree._sum_off,
            tree._min_flat,
            tree._min_off,
            tree.min_fanout,
            idx,
            self._mass(p),
            self._priority_column(),
            p,
        )
        if largest > self._max_priority:
            self._max_priority = largest

    def _update_priorities_numpy(self, indexes: object, priorities: object) -> None:
        """``update_priorities`` with numpy only: vectorised checks, last-wins, column and tree writes."""
        idx, p = self._checked_update(indexes, priorities)
        if idx.size == 0:
            return
        largest = self._check_mass(p)
        p = self._tree.last_wins(idx, p)
        self._priority_column()[idx] = p
        self._tree._update_unchecked(idx, self._mass(p), all_positive=self.eps > 0 or self.alpha == 0)
        if largest > self._max_priority:
            self._max_priority = largest

    def get_max_priority(self) -> float:
        """The running maximum priority: 1 at first, raised by every priority given to ``add`` or an update.
        Takes the lock to read it (with shared storage, the value other processes published)."""
        with self._lock:
            return self._max_priority

    def get_priorities(self, indexes: object = None) -> np.ndarray:
        """A fresh float64 copy of the stored priorities ``p`` (all stored rows, or those at ``indexes``).

        Holds the buffer's lock while it copies."""
        indexes = host_array(indexes)
        with self._lock:
            stored = self.get_stored_size()
            column = self._priority_column()[:stored]
            if indexes is None:
                return np.array(column, dtype=np.float64)
            idx = self._tree.check_indexes(indexes, "indexes", bound=stored)
            return np.array(column[idx], dtype=np.float64)

    def get_masses(self, indexes: object = None) -> np.ndarray:
        """A fresh float64 array of the sampling masses ``q_i = (p_i + eps) ** alpha`` (all stored rows, or those
        at ``indexes``: integers in ``[0, stored)``, checked), as the sum tree holds them: bit for bit the values
        ``sample`` draws by, so ``P_i = q_i / get_total_mass()``. Holds the buffer's lock while it reads."""
        indexes = host_array(indexes)
        with self._lock:
            stored = self.get_stored_size()
            if indexes is None:
                return self._tree.leaves(np.arange(stored, dtype=np.int64))
            idx = self._tree.check_indexes(indexes, "indexes", bound=stored)
            return self._tree.leaves(idx)

    def get_total_mass(self) -> float:
        """``Q = sum_i q_i = sum_i (p_i + eps) ** alpha`` over the stored rows: the sum tree's root, the
        normaliser of ``P_i = q_i / Q`` (0.0 for an empty buffer). Holds the buffer's lock while it reads."""
        with self._lock:
            return self._tree.total()

    def get_min_mass(self) -> float:
        """``min_j q_j`` over the stored rows of positive mass ``q_j = (p_j + eps) ** alpha > 0`` (the rows that
        can be drawn; ``inf`` if there are none): the ``min_j q_j`` of the weights
        ``w_i = (q_i / min_j q_j) ** -beta``. Holds the buffer's lock while it reads."""
        with self._lock:
            return self._tree.min()

    def clear(self) -> None:
        """Remove every transition; priorities and the running maximum start afresh. Holds the buffer's lock."""
        with self._lock:
            super().clear()
            self._tree.reset()
            self._max_priority = 1.0


def per_laber_subsample(laber: Any, large_batch: Mapping[str, Any], priorities: object) -> dict[str, np.ndarray]:
    r"""PER-LaBER: sub-sample a large batch drawn by ``PrioritizedReplayBuffer.sample`` with a LaBER sampler.

    Lahire, Geist, Rachelson, "Large Batch Experience Replay" (ICML 2022, arXiv:2110.01528), PER-LaBER: draw
    the large batch of ``N = m * B`` rows from the PER buffer, compute fresh surrogate priorities for all of
    them with the current network, sub-sample ``B`` with LaBER, and write the fresh priorities of **all**
    ``m * B`` rows back (``per.update_priorities(large_batch["indexes"], priorities)``; this helper does not
    write, so the caller decides what the buffer stores, e.g. ``|TD|`` rather than the Huber surrogate).

    ``laber`` is a ``LaBERmean``/``LaBERlazy``/``LaBERmax`` instance; ``large_batch`` the dict returned by
    ``per.sample(m * B, beta)``; ``priorities`` the ``N`` surrogate priorities (numpy, or a CPU/CUDA torch
    tensor). Only the priorities go to LaBER, which returns positions ``j`` in the large batch; the helper
    gathers every field of the large batch at those positions itself, so PER's ``indexes`` and ``weights``
    never meet LaBER's outputs (passing ``**per.sample(...)`` to a LaBER sampler, as one would with cpprb,
    silently overwrote them there; laber's samplers refuse those names).

    Returns the ``B`` sub-sampled fields plus

    * ``positions``: int64 positions ``j`` in the large batch (LaBER's ``indexes``);
    * ``indexes``: int64 buffer rows, ``large_batch["indexes"][positions]``;
    * ``per_weights``: the PER weights of those rows, ``(q_i / min q) ** -beta``;
    * ``laber_weights``: LaBER's weights, e.g. ``mean(q') / q'_j`` for ``LaBERmean``;
    * ``weights``: ``per_weights * laber_weights`` (float32), the weight to put on each loss term.

    Why the product: the two draws are nested importance sampling. Conditional on the large batch, LaBERmean's
    weighted mean is an unbiased estimate of the large batch's mean of ``f_i``; with ``beta = 1`` the PER
    weight ``1 / (N P_i)`` (up to the constant ``min`` normalisation) makes the large batch's PER-weighted
    mean an unbiased estimate of the uniform mean over the buffer. So ``E[mean_b per_b * laber_b * f_b]``
    is, up to that constant, the uniform buffer mean, as for plain DQN; ``beta < 1`` keeps part of PER's
    bias toward high priorities, exactly as in PER. The paper itself reports that the combination brings
    little over LaBER alone, at extra cost.
    """
    if not callable(laber):
        raise TypeError(f"laber must be a LaBER sampler (LaBERmean, LaBERlazy or LaBERmax), got laber={laber!r}")
    if not isinstance(large_batch, Mapping):
        raise TypeError(
            f"large_batch must be the dict returned by PrioritizedReplayBuffer.sample, "
            f"got large_batch={short_repr(large_batch)}"
        )
    for key in _RESERVED_OUTPUTS:
        if key not in large_batch:
            raise ValueError(
                f"large_batch must be the dict returned by PrioritizedReplayBuffer.sample (with {key!r}), "
                f"got keys {sorted(large_batch)!r}"
            )
    for key in ("positions", "per_weights", "laber_weights"):
        if key in large_batch:
            raise ValueError(f"large_batch has a field named {key!r}, which would collide with an output")
    buffer_indexes = np.asarray(host_array(large_batch["indexes"]))
    n = buffer_indexes.shape[0]
    laber_n = int(getattr(laber, "batch_size", 0)) * int(getattr(laber, "m", 0))
    if laber_n and laber_n != n:
        raise ValueError(f"large_batch must hold m * batch_size = {laber_n} rows for this LaBER sampler, got {n} rows")
    fields: dict[str, np.ndarray] = {}
    for key, value in large_batch.items():  # the whole call is checked before LaBER's generator draws
        if key == "indexes":
            continue
        try:
            arr = np.asarray(host_array(value))
        except Exception as exc:
            raise TypeError(f"large_batch[{key!r}] cannot be converted to an array: {short_repr(value)}") from exc
        if arr.ndim == 0 or arr.shape[0] != n:
            raise ValueError(
                f"large_batch[{key!r}] must have {n} rows (one per row of large_batch['indexes']), "
                f"got shape {arr.shape}"
            )
        fields[key] = arr
    if buffer_indexes.ndim != 1:
        raise ValueError(f"large_batch['indexes'] must be 1-D, got shape {buffer_indexes.shape}")
    out = laber(priorities=priorities)
    positions = out["indexes"]
    laber_weights = out["weights"]
    if not isinstance(positions, np.ndarray):  # a torch tensor: positions are few, bring them to the host
        positions = positions.detach().cpu().numpy()
        laber_weights = laber_weights.detach().cpu().numpy()
    positions = np.asarray(positions, dtype=np.int64)
    laber_weights = np.asarray(laber_weights)
    result: dict[str, np.ndarray] = {key: arr.take(positions, axis=0) for key, arr in fields.items()}
    per_weights = result.pop("weights")
    result["positions"] = positions
    result["indexes"] = buffer_indexes.take(positions)
    result["per_weights"] = per_weights
    result["laber_weights"] = laber_weights
    result["weights"] = (per_weights.astype(np.float64) * laber_weights.astype(np.float64)).astype(np.float32)
    return result
