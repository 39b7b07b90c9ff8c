"""Buffers on the accelerator (issue 10): a LaBER batch reaching the device from a host buffer or a device buffer.

Part 1, the data path of one LaBER update, ``B = 256``, ``m = 4`` (``m*B = 1024`` rows), obs and next_obs both
stored, 10,000 rows, for CartPole-sized (4 float32) and Atari-sized (84x84x4 uint8) observations:

* (a) host buffer: ``ReplayBuffer.sample(m*B)`` in host memory, every field ``torch.as_tensor(...).to(device)``,
  then ``LaBERmean`` on the device (priorities ``|rew| + done`` computed there, every field sub-sampled);
* (b) device buffer: ``ReplayBuffer(..., device=device).sample(m*B)`` (drawn and gathered on the device), then
  the same ``LaBERmean`` call.

It runs on ``cpu`` (there ``.to("cpu")`` copies nothing, so (a) is the plain host path) and, when CUDA is
available, on ``cuda`` too, where every timed call ends with ``torch.cuda.synchronize()`` so that the device's
work is counted, not only its launch.

Part 2, the whole reference-DQN update per arm (CartPole shapes, batch 64, m = 4, MLP 64x64, 1 torch thread, as
``bench_dqn.py``): the host path (host buffer, selection and weights in numpy) against the device path
(``DQNConfig(device_buffer=True)``: device buffer, every step in torch ops) on the CPU, both from buffers of the
same 20,000 transitions; with CUDA, the device path on ``cuda`` as a third column.

All variants of a table are timed in the same run, interleaved round by round (``_timing.interleaved``, fastest
round each); compare the ratios, not the absolute times. Run: ``python benchmarks/bench_device.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import REPORT, fmt_ratio, measure, scaled

BATCH, M = 256, 4
ROWS = scaled(10_000, 2_000)
SHAPES: dict[str, tuple[tuple[int, ...], Any]] = {
    "CartPole obs (4,) float32": ((4,), np.float32),
    "Atari obs (84, 84, 4) uint8": ((84, 84, 4), np.uint8),
}


def _env_dict(shape: tuple[int, ...], dtype: Any) -> dict[str, Any]:
    return {
        "obs": {"shape": shape, "dtype": dtype},
        "act": {"shape": 1, "dtype": np.int64},
        "rew": {},
        "next_obs": {"shape": shape, "dtype": dtype},
        "done": {},
    }


def _fill(buffers: list[Any], shape: tuple[int, ...], dtype: Any) -> None:
    """The same ROWS transitions into every buffer, in chunks of 1,000 (random frames or states)."""
    rng = np.random.default_rng(0)
    for _ in range(ROWS // 1000):
        if np.dtype(dtype).kind == "u":
            obs = rng.integers(0, 256, (1001, *shape), dtype=np.uint8)
        else:
            obs = rng.normal(size=(1001, *shape)).astype(dtype)
        chunk = {
            "obs": obs[:-1],
            "act": rng.integers(0, 4, (1000, 1)),
            "rew": rng.normal(size=(1000, 1)).astype(np.float32),
            "next_obs": obs[1:],
            "done": (rng.random((1000, 1)) < 0.01).astype(np.float32),
        }
        for rb in buffers:
            rb.add(**chunk)


def _laber_step(laber: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """LaBER on the device tensors of a large batch: priorities there, every field sub-sampled with them."""
    priorities = batch["rew"].reshape(-1).abs() + batch["done"].reshape(-1)
    fields = {k: v for k, v in batch.items() if k != "indexes"}
    out: dict[str, Any] = laber(priorities=priorities, **fields)
    return out


def _synced(torch: Any, device: str, fn: Callable[[], object]) -> Callable[[], object]:
    if device.startswith("cuda"):

        def call() -> object:
            out = fn()
            torch.cuda.synchronize()
            return out

        return call
    return fn


def _data_path(torch: Any, laber_cls: Any, replay_buffer: Any, devices: list[str]) -> None:
    for device in devices:
        for label, (shape, dtype) in SHAPES.items():
            env_dict = _env_dict(shape, dtype)
            host = replay_buffer(ROWS, env_dict, rng=1)
            on_device = replay_buffer(ROWS, env_dict, rng=1, device=device)
            _fill([host, on_device], shape, dtype)
            laber_a, laber_b = laber_cls(BATCH, M, rng=2), laber_cls(BATCH, M, rng=2)

            def host_then_copy(host: Any = host, laber: Any = laber_a, device: str = device) -> object:
                batch = {k: torch.as_tensor(v).to(device) for k, v in host.sample(M * BATCH).items()}
                return _laber_step(laber, batch)

            def device_buffer(rb: Any = on_device, laber: Any = laber_b) -> object:
                return _laber_step(laber, rb.sample(M * BATCH))

            atari = np.dtype(dtype).kind == "u"
            fns = {
                "(a) host buffer + .to(device), LaBERmean": _synced(torch, device, host_then_copy),
                "(b) device buffer, LaBERmean": _synced(torch, device, device_buffer),
            }
            timing = measure(fns, number=scaled(3 if atari else 100, 2), repeat=11)
            REPORT.table(
                f"m*B = {M * BATCH} rows to B = {BATCH} on {device}, {label}: sample + LaBERmean",
                timing,
                ["(b) device buffer, LaBERmean"],
                ["(a) host buffer + .to(device), LaBERmean"],
            )
            del host, on_device


def _dqn_updates(torch: Any, dqn: Any, cuda: bool) -> None:
    from bench_dqn import _filled_buffer

    fns: dict[str, Callable[[], object]] = {}
    columns = ["host buffer (cpu)", "device buffer (cpu)"] + (["device buffer (cuda)"] if cuda else [])
    for arm in dqn.ARMS:
        for column in columns:
            config = dqn.DQNConfig(
                arm=arm,
                batch_size=64,
                m=4,
                hidden=(64, 64),
                device="cuda" if "cuda" in column else "cpu",
                device_buffer=column != "host buffer (cpu)",
            )
            seeds = dqn._seeds(0)
            buffer = _filled_buffer(dqn, config, seeds, np.random.default_rng(0))  # the same rows in each
            torch.manual_seed(0)
            if config.on_device:
                learner: Any = dqn._DeviceLearner(
                    config, 4, 2, dqn._make_device_sampler(config, buffer, np.random.default_rng(seeds.laber))
                )
            else:
                learner = dqn._Learner(
                    config, 4, 2, dqn._make_sampler(config, buffer, np.random.default_rng(seeds.laber))
                )
            fns[f"{arm} | {column}"] = _synced(torch, config.device, lambda learner=learner: learner.update(0.5))
    timing = measure(fns, number=scaled(50, 3), repeat=15)
    host = "host buffer (cpu)"
    lines = [
        "**DQN update per arm** (CartPole shapes, batch 64, m = 4, MLP 64x64, 1 torch thread): us per update "
        "(median), and the device path's time over the host path's on the CPU, median [q1, q3]",
        "",
        "| arm | " + " | ".join(columns) + " | device / host (cpu) |",
        "|---|" + "---|" * (len(columns) + 1),
    ]
    print("\nDQN update per arm (us per update, median)")
    for arm in dqn.ARMS:
        cells = [f"{timing.median(f'{arm} | {c}'):.1f}" for c in columns]
        ratio = fmt_ratio(timing.ratios(f"{arm} | device buffer (cpu)", f"{arm} | {host}"))
        print(f"  {arm:<16}" + "".join(f"{c:>24}" for c in cells) + f"   {ratio}")
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {ratio} |")
    REPORT.parts.append("\n".join(lines) + "\n")


def main() -> None:
    try:
        import torch

        from laber import LaBERmean, ReplayBuffer
        from laber.agents import dqn
    except ImportError as exc:
        print(f"skipped: {exc}")
        return
    torch.set_num_threads(1)
    cuda = torch.cuda.is_available()
    devices = ["cpu"] + (["cuda"] if cuda else [])
    REPORT.section(
        "Buffers on the device",
        "`benchmarks/bench_device.py`: (a) a host buffer's `sample(m*B)` moved with `.to(device)` then "
        "`LaBERmean` there, against (b) a device buffer (`ReplayBuffer(..., device=...)`) and the same "
        "`LaBERmean`; then the DQN update per arm, host path against device path."
        + ("" if cuda else ' This run had no CUDA device: the CPU only (`.to("cpu")` copies nothing).'),
    )
    _data_path(torch, LaBERmean, ReplayBuffer, devices)
    _dqn_updates(torch, dqn, cuda)


if __name__ == "__main__":
    main()
