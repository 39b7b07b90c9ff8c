"""The GPU check: one prepared script (a few minutes) for a machine with a CUDA device.

1. ``LaBERmean`` on CUDA tensors (``B = 256, m = 4`` and ``B = 4096, m = 16``; float32 priorities, with and
   without five extra arrays on the device): time per call, each call followed by ``torch.cuda.synchronize()``
   so the device's work is counted; then the same calls again under ``torch.cuda.set_sync_debug_mode("error")``,
   where any host synchronisation inside laber raises: the row says "no host sync" only if none did.
2. The data path of one LaBER update (``bench_device.py`` part 1, on ``cuda``): a host buffer's ``sample(m*B)``
   copied to the device, then ``LaBERmean`` there, against the device buffer's own ``sample`` and the same
   ``LaBERmean``; CartPole-sized and Atari-sized observations.
3. The reference DQN's update per arm (``bench_device.py`` part 2): host path on the CPU, device path on the CPU
   and on CUDA; and, for the arms that promise it (``uniform``, ``uniform-large``, the ``laber-*`` arms), five
   device updates under ``set_sync_debug_mode("error")``.

Without CUDA it times nothing and says so (the benchmark page then states that the GPU rows have not been
measured). Run: ``python benchmarks/bench_gpu.py [--write PATH]`` (``--write``: the section as markdown, dated,
for the benchmark page); ``make bench`` runs it too.
"""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import REPORT, measure, scaled

NO_SYNC_ARMS = ("uniform", "uniform-large", "laber-mean", "laber-lazy", "laber-max")


def _no_sync(torch: Any, fn: Callable[[], object], calls: int = 5) -> str:
    """Run ``fn`` ``calls`` times with host synchronisations turned into errors; what happened, in words."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(calls):
            fn()
    except RuntimeError as exc:
        return f"host sync: {str(exc).splitlines()[0][:80]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    return "no host sync"


def _calls(sampler: Any, prios: list[Any], extras: dict[str, Any]) -> tuple[Callable[[], object], ...]:
    """LaBER calls cycling over the priority vectors: priorities alone, and with the extra arrays."""
    counter = iter(range(1 << 62))

    def bare() -> object:
        return sampler(priorities=prios[next(counter) & 7])

    def with_extras() -> object:
        return sampler(priorities=prios[next(counter) & 7], **extras)

    return bare, with_extras


def _laber_on_cuda(torch: Any) -> None:
    from laber import LaBERmean

    gen = torch.Generator(device="cuda")
    gen.manual_seed(0)
    for b, m in ((256, 4), (4096, 16)):
        n = b * m
        prios = [torch.rand(n, device="cuda", generator=gen) for _ in range(8)]
        extras = {
            "obs": torch.rand(n, 4, device="cuda", generator=gen),
            "act": torch.randint(0, 2, (n, 1), device="cuda", generator=gen),
            "rew": torch.rand(n, 1, device="cuda", generator=gen),
            "next_obs": torch.rand(n, 4, device="cuda", generator=gen),
            "done": torch.zeros(n, 1, device="cuda"),
        }
        bare, with_extras = _calls(LaBERmean(b, m, rng=0), prios, extras)
        checks = {"priorities only": _no_sync(torch, bare), "five extra arrays": _no_sync(torch, with_extras)}

        def synced(fn: Callable[[], object]) -> Callable[[], object]:
            def call() -> object:
                out = fn()
                torch.cuda.synchronize()
                return out

            return call

        timing = measure(
            {"priorities only": synced(bare), "five extra arrays": synced(with_extras)},
            number=scaled(200, 5),
            repeat=11,
        )
        REPORT.table(
            f"LaBERmean({b}, m={m}) on CUDA float32 tensors, synchronised after each call",
            timing,
            ["five extra arrays"],
            ["priorities only"],
            kind="cost",
            note='Host synchronisation check (`torch.cuda.set_sync_debug_mode("error")`, 5 calls each): '
            + "; ".join(f"{k}: {v}" for k, v in checks.items())
            + ".",
        )


def _dqn_no_sync(torch: Any) -> None:
    from bench_dqn import _filled_buffer
    from laber.agents import dqn

    lines = ["| arm | 5 device updates on CUDA |", "|---|---|"]
    for arm in NO_SYNC_ARMS:
        config = dqn.DQNConfig(arm=arm, batch_size=64, m=4, hidden=(64, 64), device="cuda")
        seeds = dqn._seeds(0)
        buffer = _filled_buffer(dqn, config, seeds, np.random.default_rng(0))
        learner = dqn._DeviceLearner(
            config, 4, 2, dqn._make_device_sampler(config, buffer, np.random.default_rng(seeds.laber))
        )
        for _ in range(3):
            learner.update(0.5)
        lines.append(f"| {arm} | {_no_sync(torch, lambda learner=learner: learner.update(0.5))} |")
    REPORT.parts.append('**Host synchronisation in the DQN update** (`set_sync_debug_mode("error")`)\n\n')
    REPORT.parts.append("\n".join(lines) + "\n")


def main() -> None:
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        REPORT.section(
            "GPU",
            "`benchmarks/bench_gpu.py` has **not been run on a GPU yet**: this run had no CUDA device, and no GPU "
            "numbers are shown. The script times `LaBERmean` on CUDA tensors and checks that it never "
            "synchronises with the host, the device buffer against a host buffer plus a copy, and the DQN "
            "update per arm on the GPU.",
        )
        return
    torch.set_num_threads(1)
    REPORT.section(
        "GPU",
        f"`benchmarks/bench_gpu.py`, run on {datetime.date.today().isoformat()} on "
        f"{torch.cuda.get_device_name(0)} (torch {torch.__version__}, CUDA {torch.version.cuda}).",
    )
    _laber_on_cuda(torch)
    import bench_device
    from laber import LaBERmean, ReplayBuffer
    from laber.agents import dqn

    bench_device._data_path(torch, LaBERmean, ReplayBuffer, ["cuda"])
    bench_device._dqn_updates(torch, dqn, True)
    _dqn_no_sync(torch)


def _standalone() -> None:
    import os
    import pathlib

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
    if "--write" in sys.argv:
        path = sys.argv[sys.argv.index("--write") + 1]
        pathlib.Path(path).write_text(REPORT.markdown(), encoding="utf-8")
        print(f"wrote {path}")


if __name__ == "__main__":
    _standalone()
