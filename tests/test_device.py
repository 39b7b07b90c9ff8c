"""Buffers on a torch device (``device=``): the same rows as a host buffer, tensors out, draws on the device.

CPU torch runs everywhere (CI); the CUDA checks, including that ``sample`` and LaBER never synchronise with the
host (``torch.cuda.set_sync_debug_mode("error")``), skip cleanly without a GPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from laber import LaBERmean, PrioritizedReplayBuffer, ReplayBuffer

torch = pytest.importorskip("torch")

ENV: dict[str, Any] = {
    "obs": {"shape": (2, 3)},
    "act": {"dtype": np.int64},
    "small": {"dtype": np.uint8},
    "rew": {"dtype": np.float64},
    "done": {"dtype": np.bool_},
}
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _transitions(rng: np.random.Generator, k: int) -> dict[str, np.ndarray]:
    return {
        "obs": rng.normal(size=(k, 2, 3)).astype(np.float32),
        "act": rng.integers(-5, 5, k),
        "small": rng.integers(0, 255, k).astype(np.uint8),
        "rew": rng.normal(size=k),
        "done": rng.random(k) < 0.2,
    }


def _feed(buffers: list[ReplayBuffer], seed: int, calls: int = 30) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(calls):
        k = int(rng.integers(1, 9))
        batch = _transitions(rng, k)
        for rb in buffers:
            if k == 1:
                rb.add(**{name: v[0] for name, v in batch.items()})
            else:
                rb.add(**batch)
        if rng.random() < 0.2:
            for rb in buffers:
                rb.on_episode_end()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("nstep", [None, {"size": 3, "rew": "rew", "gamma": 0.9}])
@pytest.mark.parametrize("seed", range(4))
def test_same_rows_as_a_host_buffer(device: str, nstep: dict[str, Any] | None, seed: int) -> None:
    """Random single and batch adds, ring wrap-around, N-step: every field equals the host buffer's."""
    size = 17 + seed
    on_device = ReplayBuffer(size, ENV, device=device, Nstep=nstep, rng=seed)
    host = ReplayBuffer(size, ENV, Nstep=nstep, rng=seed)
    _feed([on_device, host], seed)
    got, want = on_device.get_all_transitions(), host.get_all_transitions()
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert isinstance(got[key], torch.Tensor) and got[key].device.type == device
        np.testing.assert_array_equal(got[key].cpu().numpy(), value, err_msg=key)
    batch = on_device.sample(64)
    idx = batch["indexes"]
    assert idx.dtype == torch.int64 and idx.device.type == device
    assert int(idx.min()) >= 0 and int(idx.max()) < on_device.get_stored_size()
    for key, value in want.items():
        np.testing.assert_array_equal(batch[key].cpu().numpy(), value[idx.cpu().numpy()], err_msg=key)


@pytest.mark.parametrize("device", DEVICES)
def test_samples_are_fresh_and_seeded(device: str) -> None:
    a = ReplayBuffer(50, ENV, device=device, rng=3)
    b = ReplayBuffer(50, ENV, device=device, rng=3)
    _feed([a, b], 0)
    first = a.sample(32)
    snapshot = {k: v.clone() for k, v in first.items()}
    assert torch.equal(first["indexes"], b.sample(32)["indexes"])  # same seed, same draws
    a.add(**{k: v[:4] for k, v in _transitions(np.random.default_rng(9), 4).items()})
    a.sample(32)
    for key, value in first.items():
        assert torch.equal(value, snapshot[key])  # later calls never touch what a sample returned


@pytest.mark.parametrize("device", DEVICES)
def test_uniform_draws_are_uniform(device: str) -> None:
    """Chi-square of 40,000 draws over 20 rows (19 degrees of freedom; false-failure probability 1e-6)."""
    rb = ReplayBuffer(20, {"x": {}}, device=device, rng=0)
    rb.add(x=np.arange(20.0))
    counts = np.zeros(20)
    for _ in range(40):
        np.add.at(counts, rb.sample(1000)["indexes"].cpu().numpy(), 1)
    chi2 = float(((counts - 2000.0) ** 2 / 2000.0).sum())
    assert chi2 < 61.1  # scipy.stats.chi2.isf(1e-6, 19)


@pytest.mark.parametrize("device", DEVICES)
def test_laber_on_device_samples(device: str) -> None:
    rb = ReplayBuffer(200, ENV, device=device, rng=0)
    _feed([rb], 1)
    large = rb.sample(4 * 16)
    td = large["rew"].reshape(-1).abs().float()
    out = LaBERmean(16, 4, rng=0)(priorities=td, obs=large["obs"])
    assert isinstance(out["weights"], torch.Tensor) and out["weights"].device.type == device
    assert torch.equal(out["obs"], large["obs"][out["indexes"]])


@pytest.mark.parametrize("device", DEVICES)
def test_prioritized_on_device(device: str) -> None:
    rb = PrioritizedReplayBuffer(64, ENV, device=device, alpha=1.0, eps=0.0, rng=0)
    host = PrioritizedReplayBuffer(64, ENV, alpha=1.0, eps=0.0, rng=0)
    batch = _transitions(np.random.default_rng(0), 10)
    p = np.arange(1.0, 11.0)
    rb.add(**batch, priorities=p)
    host.add(**batch, priorities=p)
    got, want = rb.sample(32, beta=0.5), host.sample(32, beta=0.5)
    assert got["weights"].device.type == device and got["indexes"].device.type == device
    np.testing.assert_array_equal(got["indexes"].cpu().numpy(), want["indexes"])
    np.testing.assert_allclose(got["weights"].cpu().numpy(), want["weights"])
    np.testing.assert_array_equal(got["obs"].cpu().numpy(), want["obs"])
    td = torch.arange(32, dtype=torch.float32, device=device, requires_grad=True) * 1.0
    rb.update_priorities(got["indexes"], td)
    host.update_priorities(want["indexes"], np.arange(32.0))
    np.testing.assert_array_equal(rb.get_priorities(), host.get_priorities())


def test_refused_combinations_are_named() -> None:
    with pytest.raises(ValueError, match="not supported with torch device storage"):
        ReplayBuffer(8, {"obs": {}}, device="cpu", next_of="obs")
    with pytest.raises(TypeError, match="field 'obs' cannot live on a torch device"):
        ReplayBuffer(8, {"obs": {"dtype": np.uint32}}, device="cpu")
    with pytest.raises(ValueError, match="device must name a torch device"):
        ReplayBuffer(8, {"obs": {}}, device="nowhere")
    with pytest.raises(ValueError, match="give one of storage, mmap_prefix and device"):
        ReplayBuffer(8, {"obs": {}}, device="cpu", mmap_prefix="x")


@pytest.mark.parametrize("device", DEVICES)
def test_checkpoints_are_the_files_a_host_buffer_writes(device: str, tmp_path: Any) -> None:
    """A device buffer's checkpoint loads into a host buffer and back (rows, priorities, pending N-step rows,
    rng state: the next draws match)."""
    nstep = {"size": 2, "rew": "rew", "gamma": 0.5}
    rb = PrioritizedReplayBuffer(16, ENV, device=device, Nstep=nstep, rng=0)
    batch = _transitions(np.random.default_rng(1), 21)
    rb.add(**batch, priorities=np.arange(21.0))
    rb.save_checkpoint(tmp_path / "dev.npz")
    host = PrioritizedReplayBuffer(16, ENV, Nstep=nstep, rng=5)
    host.load_checkpoint(tmp_path / "dev.npz")
    back = PrioritizedReplayBuffer(16, ENV, device=device, Nstep=nstep, rng=7)
    host.save_checkpoint(tmp_path / "host.npz")
    back.load_checkpoint(tmp_path / "host.npz")
    want = host.get_all_transitions()
    for other in (rb, back):
        got = other.get_all_transitions()
        for key, value in want.items():
            np.testing.assert_array_equal(got[key].cpu().numpy(), value, err_msg=key)
        np.testing.assert_array_equal(other.get_priorities(), host.get_priorities())
    assert torch.equal(rb.sample(8)["indexes"], back.sample(8)["indexes"])
    rb.on_episode_end()
    back.on_episode_end()  # the pending transition came along
    assert back.get_stored_size() == rb.get_stored_size()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_sample_and_laber_never_synchronise() -> None:
    rb = ReplayBuffer(1000, ENV, device="cuda", rng=0)
    _feed([rb], 0, calls=200)
    laber = LaBERmean(32, 4, rng=0)
    rb.sample(128)  # warm up (generator creation, kernels)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        large = rb.sample(128)
        out = laber(priorities=large["rew"].reshape(-1).abs().float(), obs=large["obs"], act=large["act"])
        (out["weights"] * out["obs"].sum(dim=(1, 2))).sum()
    finally:
        torch.cuda.set_sync_debug_mode("default")
