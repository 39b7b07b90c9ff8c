"""The LaBER figure of the documentation (docs/guides/laber.md): one large batch, its priorities, the sub-sample.

Run from the repository root (needs the ``plot`` extra):

    .venv/bin/python docs/figures/laber_figure.py   # writes docs/figures/laber.png

The numbers are the library's own: a ``LaBERmean(B=8, m=4)`` draw (seeded) on the Huber surrogate priorities
``min(|TD|, 1)`` of ``m * B = 32`` made-up TD errors.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from laber import LaBERmean

B, M = 8, 4
N = B * M
OUT = Path(__file__).with_name("laber.png")


def main() -> None:
    td = np.random.default_rng(3).standard_t(df=3, size=N) * 0.45  # heavy-ish tails: a few large errors
    priorities = np.minimum(np.abs(td), 1.0)  # the Huber surrogate
    laber = LaBERmean(B, M, eps=1e-6, rng=56)
    out = laber(priorities=priorities)
    idx, w = out["indexes"], out["weights"]
    q = priorities + laber.eps
    counts = np.bincount(idx, minlength=N)

    fig, (ax1, ax2) = plt.subplots(
        2, 1, figsize=(10, 6.4), gridspec_kw={"height_ratios": [1.25, 1], "hspace": 0.62}, dpi=110
    )
    grey, blue, orange = "#b8bec6", "#3f6fb5", "#e07b39"

    colors = [blue if c else grey for c in counts]
    ax1.bar(np.arange(N), q, color=colors, width=0.8)
    ax1.axhline(q.mean(), color="k", lw=1, ls="--")
    ax1.text(N - 0.5, q.mean() + 0.03, r"mean($q$)", ha="right", va="bottom", fontsize=9)
    for k in np.flatnonzero(counts):
        ax1.text(k, q[k] + 0.03, f"×{counts[k]}", ha="center", va="bottom", fontsize=8, color=blue)
    ax1.set_xlim(-0.8, N - 0.2)
    ax1.set_ylim(0, 1.42)
    ax1.set_xticks(np.arange(0, N, 4))
    ax1.set_xlabel(f"position $k$ in the large batch ($m \\cdot B$ = {M} × {B} = {N} rows drawn uniformly)")
    ax1.set_ylabel(r"priority $q_k = \min(|\mathrm{TD}_k|, 1) + \epsilon$")
    ax1.set_title(
        "1. Score the large batch with the current network; draw B positions with replacement, "
        r"$P_k = q_k / \sum_i q_i$",
        fontsize=10,
        loc="left",
    )
    ax1.legend(
        handles=[
            plt.Rectangle((0, 0), 1, 1, color=blue, label="drawn (×count)"),
            plt.Rectangle((0, 0), 1, 1, color=grey, label="not drawn"),
        ],
        loc="upper right",
        fontsize=8,
        frameon=False,
        ncols=2,
    )

    ax2.bar(np.arange(B), w, color=orange, width=0.6)
    ax2.axhline(1.0, color="k", lw=1, ls="--")
    ax2.set_xticks(np.arange(B), [f"$k$={k}\n$q$={q[k]:.2f}" for k in idx], fontsize=8)
    ax2.set_xlim(-0.6, B - 0.4)
    ax2.set_ylabel(r"weight $w_j = \mathrm{mean}(q) / q_j$")
    ax2.set_xlabel(f"the sub-batch: B = {B} rows (ascending positions), the ones the loss is computed on")
    ax2.set_title(
        "2. Weight each drawn row so that the weighted sub-batch mean is unbiased for the large batch's mean",
        fontsize=10,
        loc="left",
    )
    ax2.set_ylim(0, max(w.max() * 1.18, 1.2))
    for j, v in enumerate(w):
        ax2.text(
            j,
            v + 0.04 * ax2.get_ylim()[1],
            f"{v:.2f}",
            ha="center",
            va="bottom",
            fontsize=8,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6},
        )
    for ax in (ax1, ax2):
        ax.spines[["top", "right"]].set_visible(False)
    fig.suptitle("LaBER-mean: a large batch, its priorities and the sub-sample", fontsize=12, x=0.01, ha="left")
    fig.subplots_adjust(left=0.08, right=0.99, top=0.9, bottom=0.12)
    fig.savefig(OUT)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
