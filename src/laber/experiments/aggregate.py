r"""Aggregate performance across runs and tasks: interquartile mean, performance profiles and probability of
improvement, each with stratified-bootstrap confidence intervals.

The statistics of R. Agarwal, M. Schwarzer, P. S. Castro, A. Courville and M. G. Bellemare, *Deep Reinforcement
Learning at the Edge of the Statistical Precipice*, NeurIPS 2021 (the ``rliable`` library), implemented here on
numpy alone and tested against their definitions. A score matrix ``X`` of one algorithm has shape
``(runs, tasks)``: ``X[i, j]`` is the (normalised) score of run ``i`` on task ``j``; ``N`` runs per task, ``M``
tasks. With ``x_(1) <= ... <= x_(NM)`` all its entries sorted and ``k = floor(NM / 4)``:

* **interquartile mean** ``IQM(X) = (1 / (NM - 2k)) sum_{r = k+1}^{NM - k} x_(r)``: the mean of the middle half of
  all runs pooled over tasks (robust to outliers like the median, statistically efficient like the mean);
* **performance profile** ``F_X(tau) = (1 / M) sum_j (1 / N) sum_i 1[X_ij > tau]``: the fraction of runs scoring
  above ``tau``, averaged over tasks;
* **probability of improvement** of ``X`` over ``Y`` (``N_X`` and ``N_Y`` runs per task)
  ``P(X > Y) = (1 / M) sum_j (1 / (N_X N_Y)) sum_{i, l} S(X_ij, Y_lj)`` with ``S(x, y) = 1`` if ``x > y``,
  ``1/2`` if ``x = y``, else ``0``: the Mann-Whitney U statistic of each task, normalised, averaged over tasks;
  the chance that a run of ``X`` on a random task beats a run of ``Y``. ``P(X > Y) + P(Y > X) = 1``.

Confidence intervals: the **stratified bootstrap** resamples, for every task independently, ``N`` runs of that
task with replacement (tasks are strata, runs the independent units), computes the statistic on the resampled
matrix, and takes the ``(1 - level) / 2`` and ``(1 + level) / 2`` percentiles over ``reps`` resamples. For the
probability of improvement both algorithms' runs are resampled, independently. With few runs per task a
percentile interval under-covers (Agarwal et al. recommend at least 10 runs in total for IQM intervals);
``Estimate.runs`` carries ``N * M`` so reports can say so.

Scores that rest on a quantity estimated with error of its own (laber's scores at equal training time rest on the
arms' costs, measured over a few rounds of timing runs) take ``variants``: ``V`` versions of the score matrix,
version ``v`` computed from the ``v``-th bootstrap resample of that quantity's data. Replicate ``b`` then
resamples the runs of ``variants[b mod V]`` instead of the scores: a two-stage bootstrap (the quantity's data,
then the runs), whose interval carries both sources of error. The point estimate uses the scores themselves.
Where two algorithms' versions come from the same resample (``variants_x[v]`` and ``variants_y[v]``), their
pairing is kept.

Scores of different tasks are comparable only once normalised: :func:`normalize` maps ``low`` (a random
policy) to 0 and ``high`` (a reference score) to 1 per task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int

__all__ = [
    "Estimate",
    "aggregate_table",
    "iqm",
    "iqm_estimate",
    "normalize",
    "performance_profile",
    "probability_of_improvement",
    "score_matrix",
]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its stratified-bootstrap interval ``[low, high]`` at ``level``, from ``runs`` runs."""

    value: float
    low: float
    high: float
    level: float
    runs: int

    def format(self, digits: int = 2) -> str:
        """``value [low, high]``, e.g. ``0.73 [0.61, 0.84]``."""
        return f"{self.value:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


def score_matrix(scores: object, name: str = "scores") -> np.ndarray:
    """``scores`` as a float64 ``(runs, tasks)`` matrix (a 1-D array is one task). Finite values, at least one
    run; raises ``ValueError``/``TypeError`` naming ``name`` otherwise."""
    try:
        x = np.array(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers, got {name}={scores!r}") from exc
    if x.ndim == 1:
        x = x[:, np.newaxis]
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty (runs, tasks) matrix, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {name}={x.tolist()!r}")
    return x


CHUNK_CELLS = 2**24  # the bootstrap loops resample in chunks of about this many mask cells (bounded memory)


def _check_level(level: float) -> float:
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got level={level!r}")
    return float(level)


def normalize(scores: object, low: Sequence[float] | np.ndarray, high: Sequence[float] | np.ndarray) -> np.ndarray:
    """``(X - low_j) / (high_j - low_j)`` per task ``j``: 0 for ``low`` (a random policy), 1 for ``high``."""
    x = score_matrix(scores)
    lo = np.asarray(low, dtype=np.float64).reshape(-1)
    hi = np.asarray(high, dtype=np.float64).reshape(-1)
    if lo.shape != (x.shape[1],) or hi.shape != (x.shape[1],):
        raise ValueError(f"low and high need one value per task ({x.shape[1]}), got low={low!r}, high={high!r}")
    if not (np.isfinite(lo).all() and np.isfinite(hi).all() and (hi != lo).all()):
        raise ValueError(f"low and high must be finite and differ on every task, got low={low!r}, high={high!r}")
    out: np.ndarray = (x - lo) / (hi - lo)
    return out


def _iqm_rows(pooled: np.ndarray) -> np.ndarray:
    """IQM of every row of ``pooled`` (each row: all scores of one matrix, pooled)."""
    n = pooled.shape[-1]
    k = n // 4
    ordered = np.sort(pooled, axis=-1)
    out: np.ndarray = ordered[..., k : n - k].mean(axis=-1)
    return out


def iqm(scores: object) -> float:
    """The interquartile mean of all runs of all tasks (see the module docstring)."""
    x = score_matrix(scores)
    return float(_iqm_rows(x.reshape(1, -1))[0])


def _check_variants(variants: object, x: np.ndarray, name: str) -> np.ndarray | None:
    """``variants`` of the ``(runs, tasks)`` matrix ``x`` as a float64 ``(V, runs, tasks)`` array (``(V, runs)``
    for one task), finite, ``V >= 1``; None stays None. Raises ``ValueError``/``TypeError`` naming ``name``."""
    if variants is None:
        return None
    try:
        v = np.array(variants, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be an array of numbers, got {name}={variants!r}") from exc
    if v.ndim == 2 and x.shape[1] == 1:
        v = v[:, :, np.newaxis]
    if v.ndim != 3 or v.shape[0] == 0 or v.shape[1:] != x.shape:
        raise ValueError(f"{name} must have shape (V, {x.shape[0]}, {x.shape[1]}) with V >= 1, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError(f"{name} must be finite")
    return v


def _resample(
    x: np.ndarray, reps: int, rng: np.random.Generator, variants: np.ndarray | None = None, start: int = 0
) -> np.ndarray:
    """``reps`` stratified resamples of ``x``: shape ``(reps, runs, tasks)``, runs drawn per task. With
    ``variants`` (``(V, runs, tasks)``), replicate ``start + b`` draws its runs from ``variants[(start + b) % V]``
    (the same rows drawn from ``rng`` either way)."""
    n, m = x.shape
    rows = rng.integers(0, n, size=(reps, n, m))
    if variants is None:
        out: np.ndarray = x[rows, np.arange(m)]
        return out
    which = (start + np.arange(reps)) % variants.shape[0]
    varied: np.ndarray = variants[which[:, np.newaxis, np.newaxis], rows, np.arange(m)]
    return varied


def _interval(value: float, boots: np.ndarray, level: float, runs: int) -> Estimate:
    low, high = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)])
    return Estimate(value=float(value), low=float(low), high=float(high), level=level, runs=runs)


def iqm_estimate(
    scores: object, *, reps: int = 2000, level: float = 0.95, rng: RngLike = 0, variants: object = None
) -> Estimate:
    """The interquartile mean with its stratified-bootstrap percentile interval (``variants``: see the module
    docstring)."""
    x = score_matrix(scores)
    v = _check_variants(variants, x, "variants")
    reps = check_positive_int(reps, "reps")
    level = _check_level(level)
    gen = as_generator(rng)
    boots = _iqm_rows(_resample(x, reps, gen, v).reshape(reps, -1))
    return _interval(iqm(x), boots, level, x.size)


def _profile_rows(samples: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """``F(tau)`` for every resample: ``samples`` ``(reps, runs, tasks)`` -> ``(reps, len(taus))``."""
    above = samples[..., np.newaxis] > taus  # (reps, runs, tasks, taus)
    out: np.ndarray = above.mean(axis=1).mean(axis=1)
    return out


def performance_profile(
    scores: object,
    taus: object,
    *,
    reps: int = 2000,
    level: float = 0.95,
    rng: RngLike = 0,
    variants: object = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(F, low, high)`` at every threshold of ``taus``: the fraction of runs above each, averaged over tasks,
    with pointwise stratified-bootstrap intervals (see the module docstring, also for ``variants``)."""
    x = score_matrix(scores)
    v = _check_variants(variants, x, "variants")
    t = np.asarray(taus, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.isfinite(t).all():
        raise ValueError(f"taus must be a non-empty array of finite thresholds, got taus={taus!r}")
    reps = check_positive_int(reps, "reps")
    level = _check_level(level)
    gen = as_generator(rng)
    value = _profile_rows(x[np.newaxis], t)[0]
    boots = np.empty((reps, t.size))
    chunk = max(1, CHUNK_CELLS // max(1, x.size * t.size))  # bounded memory: the (reps, runs, tasks, taus) mask
    for start in range(0, reps, chunk):
        stop = min(reps, start + chunk)
        boots[start:stop] = _profile_rows(_resample(x, stop - start, gen, v, start), t)
    low, high = np.percentile(boots, [50 * (1 - level), 50 * (1 + level)], axis=0)
    return value, low, high


def _improvement_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``P(A > B)`` per resample: ``a`` ``(reps, n_a, tasks)``, ``b`` ``(reps, n_b, tasks)`` -> ``(reps,)``."""
    wins = a[:, :, np.newaxis, :] > b[:, np.newaxis, :, :]
    ties = a[:, :, np.newaxis, :] == b[:, np.newaxis, :, :]
    per_task = wins.mean(axis=(1, 2)) + 0.5 * ties.mean(axis=(1, 2))
    out: np.ndarray = per_task.mean(axis=-1)
    return out


def probability_of_improvement(
    x: object,
    y: object,
    *,
    reps: int = 2000,
    level: float = 0.95,
    rng: RngLike = 0,
    variants_x: object = None,
    variants_y: object = None,
) -> Estimate:
    """``P(X > Y)``: the chance a run of ``x`` beats a run of ``y`` on a random task (ties count half), with its
    stratified-bootstrap interval; both matrices have one column per task (their numbers of runs may differ).
    ``variants_x``, ``variants_y``: see the module docstring (replicate ``b`` uses version ``b mod V`` of each)."""
    a = score_matrix(x, "x")
    b = score_matrix(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y must cover the same tasks, got {a.shape[1]} and {b.shape[1]} columns")
    va = _check_variants(variants_x, a, "variants_x")
    vb = _check_variants(variants_y, b, "variants_y")
    reps = check_positive_int(reps, "reps")
    level = _check_level(level)
    gen = as_generator(rng)
    value = float(_improvement_rows(a[np.newaxis], b[np.newaxis])[0])
    boots = np.empty(reps)
    chunk = max(1, CHUNK_CELLS // max(1, a.shape[0] * b.shape[0] * a.shape[1]))  # the (reps, n_a, n_b, tasks) masks
    for start in range(0, reps, chunk):
        stop = min(reps, start + chunk)
        boots[start:stop] = _improvement_rows(
            _resample(a, stop - start, gen, va, start), _resample(b, stop - start, gen, vb, start)
        )
    return _interval(value, boots, level, a.size + b.size)


def aggregate_table(
    scores: Mapping[str, object], *, baseline: str | None = None, reps: int = 2000, rng: RngLike = 0
) -> list[dict[str, object]]:
    """One row per algorithm: ``name``, ``runs``, ``iqm`` (an :class:`Estimate`) and, when ``baseline`` names
    one of them, ``improvement``: ``P(algorithm > baseline)`` (None for the baseline itself)."""
    if baseline is not None and baseline not in scores:
        raise ValueError(f"baseline={baseline!r} is not one of {sorted(scores)}")
    gen = as_generator(rng)
    rows: list[dict[str, object]] = []
    for name, value in scores.items():
        x = score_matrix(value, f"scores[{name!r}]")
        row: dict[str, object] = {"name": name, "runs": x.size, "iqm": iqm_estimate(x, reps=reps, rng=gen)}
        if baseline is not None:
            row["improvement"] = (
                None if name == baseline else probability_of_improvement(x, scores[baseline], reps=reps, rng=gen)
            )
        rows.append(row)
    return rows
