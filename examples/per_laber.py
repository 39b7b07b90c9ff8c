"""PER-LaBER in a few lines: a large batch from a prioritized buffer, a LaBER sub-sample, all priorities written back.

Lahire, Geist, Rachelson, "Large Batch Experience Replay" (ICML 2022, arXiv:2110.01528), PER-LaBER: the large
batch of ``m * B`` rows is drawn by prioritized replay instead of uniformly, LaBER sub-samples ``B`` of them from
fresh surrogate priorities, and the fresh priorities of all ``m * B`` rows go back to the buffer.

No network here: a fixed made-up "TD error" per row stands in for ``|Q(s, a) - y|`` computed by the current
network, so the script shows the bookkeeping (which row is which, which weight goes where) and checks it. Run
``python examples/per_laber.py``.
"""

from __future__ import annotations

import numpy as np

from laber import LaBERmean, PrioritizedReplayBuffer, per_laber_subsample


def main() -> None:
    batch_size, m = 32, 4
    env_dict = {"obs": {"shape": 4}, "act": {"dtype": np.int64}, "rew": {}, "next_obs": {"shape": 4}, "done": {}}
    rb = PrioritizedReplayBuffer(10_000, env_dict, alpha=0.6, eps=1e-4, rng=0)
    data_rng = np.random.default_rng(1)
    n = 5_000
    rb.add(
        obs=data_rng.normal(size=(n, 4)),
        act=data_rng.integers(0, 2, n),
        rew=data_rng.normal(size=n),
        next_obs=data_rng.normal(size=(n, 4)),
        done=np.zeros(n),
    )  # no priorities given: every row starts at the running maximum, 1
    td_error = np.abs(data_rng.standard_t(df=2, size=n))  # stand-in for |TD| from the current network

    laber = LaBERmean(batch_size, m, rng=2)
    for step in range(200):
        beta = 0.4 + 0.6 * step / 199  # anneal the PER correction towards 1, as in Schaul et al.
        large = rb.sample(batch_size * m, beta=beta)  # fields, buffer "indexes", PER "weights"
        surrogate = td_error[large["indexes"]]  # in a DQN: |Q(s, a) - y| on the large batch, no gradient
        batch = per_laber_subsample(laber, large, priorities=surrogate)
        # batch["weights"] = PER weight * LaBER weight multiplies each loss term of the B transitions;
        # batch["indexes"] are their buffer rows, batch["positions"] their rows in the large batch.
        rb.update_priorities(large["indexes"], surrogate)  # all m * B rows, as in the paper
        assert np.array_equal(batch["indexes"], large["indexes"][batch["positions"]])

    p = rb.get_priorities()
    seen = p != 1.0
    print(f"rows whose priority was refreshed: {seen.sum()} of {n}")
    print(f"refreshed priorities equal the TD errors: {np.allclose(p[seen], td_error[seen])}")
    print(
        f"last sub-batch: {len(batch['indexes'])} rows, weights in [{batch['weights'].min():.3g}, "
        f"{batch['weights'].max():.3g}], PER part max {batch['per_weights'].max():.3g}"
    )


if __name__ == "__main__":
    main()
