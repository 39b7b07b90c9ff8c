"""LaBER at work on synthetic priorities: what it draws, the weights, and the unbiasedness of LaBER-mean.

Run with ``python examples/laber_synthetic.py`` (numpy only; ``tests/test_examples.py`` runs it too). No
network, no environment: a large batch
of ``m * B`` made-up surrogate priorities and per-sample losses stand in for a DQN's.
"""

from __future__ import annotations

import numpy as np

from laber import LaBERlazy, LaBERmax, LaBERmean


def main() -> None:
    batch_size, m = 32, 4
    n = batch_size * m
    data_rng = np.random.default_rng(2022)
    # |TD| errors of a large uniform batch: most small, a few large (heavy tail)
    priorities = np.abs(data_rng.standard_t(df=2, size=n)).astype(np.float32)
    losses = priorities**2  # the per-sample quantity whose large-batch mean we want to estimate

    print(f"Large batch: N = m*B = {m}*{batch_size} = {n} surrogate priorities")
    print(f"  min {priorities.min():.3f}  median {np.median(priorities):.3f}  max {priorities.max():.3f}\n")

    for cls in (LaBERmean, LaBERlazy, LaBERmax):
        out = cls(batch_size, m, rng=0)(priorities=priorities, loss=losses)
        idx, w = out["indexes"], out["weights"]
        print(f"{cls.__name__:>9}: drew {len(np.unique(idx))} distinct of {n}; first indexes {idx[:6]}")
        print(f"{'':>11}weights min {w.min():.4f} max {w.max():.4f} ({w.dtype})")

    # Unbiasedness: the mean over many draws of mean(w * loss[idx]) equals the large-batch mean loss.
    laber = LaBERmean(batch_size, m, rng=1)
    trials = 20_000
    estimates = np.empty(trials)
    for t in range(trials):
        out = laber(priorities=priorities)
        estimates[t] = np.mean(out["weights"] * losses[out["indexes"]])
    target = float(np.mean(losses, dtype=np.float64))
    mean_est = float(estimates.mean())
    se = float(estimates.std(ddof=1) / np.sqrt(trials))
    print(f"\nLaBERmean unbiasedness over {trials} draws:")
    print(f"  large-batch mean loss      {target:.5f}")
    print(
        f"  mean weighted estimate     {mean_est:.5f}  (standard error {se:.5f}, z = {(mean_est - target) / se:+.2f})"
    )

    # Variance against uniform sub-sampling of the same size, the point of prioritising.
    uni = np.random.default_rng(3)
    uniform = np.array([losses[uni.integers(0, n, batch_size)].mean() for _ in range(trials)])
    print(f"  std of the LaBER estimate  {estimates.std():.5f}")
    print(
        f"  std of a uniform B-subset  {uniform.std():.5f}  (LaBER is {uniform.std() / estimates.std():.1f}x tighter)"
    )


if __name__ == "__main__":
    main()
