"""Across-seed statistics of learning curves: means with 95% percentile-bootstrap confidence intervals.

Seeds are the independent units: every interval resamples whole seeds with replacement (Efron and Tibshirani,
"An Introduction to the Bootstrap", 1993; the practice recommended by Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS 2021). With ``S`` seeds and ``R`` resamples, for a
per-seed statistic ``x_s``::

    mean = (1/S) sum_s x_s,     CI = [q_2.5%, q_97.5%] of { (1/S) sum_s x_{s_r,k} : r = 1..R },  s_r,k ~ U{1..S}

Statistics of one run with evaluation returns ``G_i`` at steps ``t_0 < ... < t_K``:

* ``auc``: the normalised area under the curve, ``(1 / (t_K - t_0)) * sum_i (t_{i+1} - t_i) (G_i + G_{i+1}) / 2``,
  i.e. the mean evaluation return over training (higher is better and rewards learning fast);
* ``final``: the mean of the evaluations in the last 10% of the steps (at least the last one).

With fewer than ``MIN_SEEDS_FOR_CI`` (5) seeds a percentile-bootstrap interval means nothing (one seed gives
``[x, x]``; two to four give an interval that badly under-covers), so ``Interval.format`` then says so and gives
the seeds' range instead of an interval. ``smooth`` is the trailing moving average used for plots only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int

__all__ = ["MIN_SEEDS_FOR_CI", "Interval", "auc", "bootstrap_band", "bootstrap_mean", "final_return", "smooth"]

FINAL_FRACTION = 0.1
MIN_SEEDS_FOR_CI = 5


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` seeds with its 95% bootstrap confidence interval and the seeds' range.

    ``n == 0`` means the number of seeds is unknown (the interval is shown as it is).
    """

    mean: float
    low: float
    high: float
    n: int = 0
    lowest: float = math.nan
    highest: float = math.nan

    @property
    def has_ci(self) -> bool:
        """Whether the interval is worth reporting: at least ``MIN_SEEDS_FOR_CI`` seeds (or an unknown number)."""
        return self.n == 0 or self.n >= MIN_SEEDS_FOR_CI

    def format(self, digits: int = 1) -> str:
        """``mean [low, high]``; with fewer than ``MIN_SEEDS_FOR_CI`` seeds, the mean and why there is no CI."""
        if self.has_ci:
            return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        if self.n == 1:
            return f"{self.mean:.{digits}f} (1 seed: no CI)"
        return (
            f"{self.mean:.{digits}f} ({self.n} seeds: too few for a CI; "
            f"seeds {self.lowest:.{digits}f} to {self.highest:.{digits}f})"
        )

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-friendly: ``low``/``high`` are None when there are too few seeds for a CI."""
        return {
            "mean": self.mean,
            "low": self.low if self.has_ci else None,
            "high": self.high if self.has_ci else None,
            "n": self.n,
            "min": self.lowest,
            "max": self.highest,
        }


def _as_curves(curves: object, name: str) -> np.ndarray:
    arr = np.asarray(curves, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (seeds, points), got shape={arr.shape}")
    return arr


def bootstrap_band(
    curves: object, *, n_boot: int = 2000, level: float = 0.95, rng: RngLike = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean curve and the pointwise bootstrap interval over seeds of ``curves`` (shape ``(seeds, points)``)."""
    arr = _as_curves(curves, "curves")
    n_boot = check_positive_int(n_boot, "n_boot")
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got level={level!r}")
    gen = as_generator(rng)
    seeds = arr.shape[0]
    picks = gen.integers(seeds, size=(n_boot, seeds))
    means = arr[picks].mean(axis=1)  # (n_boot, points)
    tail = (1.0 - float(level)) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail], axis=0)
    return arr.mean(axis=0), low, high


def bootstrap_mean(values: object, *, n_boot: int = 2000, level: float = 0.95, rng: RngLike = 0) -> Interval:
    """Mean of per-seed ``values`` with its bootstrap interval."""
    arr = np.asarray(values, dtype=np.float64).reshape(1, -1).T  # (seeds, 1)
    if arr.size == 0:
        raise ValueError("values must not be empty, got values=[]")
    mean, low, high = bootstrap_band(arr, n_boot=n_boot, level=level, rng=rng)
    return Interval(
        float(mean[0]), float(low[0]), float(high[0]), n=arr.shape[0], lowest=float(arr.min()), highest=float(arr.max())
    )


def smooth(curves: object, window: int) -> np.ndarray:
    """Trailing moving average over the last ``window`` points of each curve (fewer at the start).

    ``curves`` is 1-D (one curve) or 2-D (``(seeds, points)``, smoothed along the points); ``window == 1``
    returns a copy unchanged.
    """
    window = check_positive_int(window, "window")
    arr = np.array(curves, dtype=np.float64)
    if arr.ndim not in (1, 2) or arr.shape[-1] == 0:
        raise ValueError(f"curves must be a non-empty 1-D or 2-D array, got shape={arr.shape}")
    if window == 1:
        return arr
    sums = np.cumsum(arr, axis=-1)
    out = np.empty_like(arr)
    points = arr.shape[-1]
    head = min(window, points)
    out[..., :head] = sums[..., :head] / np.arange(1, head + 1)
    if points > window:
        out[..., window:] = (sums[..., window:] - sums[..., :-window]) / window
    return out


def auc(steps: object, returns: object) -> float:
    """Normalised area under one learning curve (the trapezoid mean of the evaluation returns over steps)."""
    t = np.asarray(steps, dtype=np.float64)
    g = np.asarray(returns, dtype=np.float64)
    if t.ndim != 1 or t.shape != g.shape or t.size == 0:
        raise ValueError(f"steps and returns must be 1-D of equal length, got shapes {t.shape} and {g.shape}")
    if t.size == 1:
        return float(g[0])
    span = t[-1] - t[0]
    if span <= 0 or np.any(np.diff(t) <= 0):
        raise ValueError("steps must be strictly increasing")
    return float(np.sum(np.diff(t) * (g[1:] + g[:-1]) / 2.0) / span)


def final_return(steps: object, returns: object, fraction: float = FINAL_FRACTION) -> float:
    """Mean evaluation return over the last ``fraction`` of the steps (at least the last evaluation)."""
    t = np.asarray(steps, dtype=np.float64)
    g = np.asarray(returns, dtype=np.float64)
    if t.ndim != 1 or t.shape != g.shape or t.size == 0:
        raise ValueError(f"steps and returns must be 1-D of equal length, got shapes {t.shape} and {g.shape}")
    cutoff = t[-1] - fraction * (t[-1] - t[0])
    return float(g[t >= cutoff].mean())
