"""LaBER sub-samplers on the torch path: tensors in, tensors out on the same device, torch ops only.

CUDA cases run when a GPU is visible and skip cleanly otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from laber import LaBERlazy, LaBERmax, LaBERmean, laber_subsample

torch = pytest.importorskip("torch")

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ),
]
CLASSES = [LaBERmean, LaBERlazy, LaBERmax]


def reference_weights(variant: str, q: np.ndarray, idx: np.ndarray) -> np.ndarray:
    if variant == "mean":
        return np.mean(q) / q[idx]
    if variant == "lazy":
        return 1.0 / q[idx]
    inv = 1.0 / q[idx]
    return inv / inv.max()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    ("dtype", "out_dtype"),
    [
        (torch.float16, torch.float32),
        (torch.bfloat16, torch.float32),
        (torch.float32, torch.float32),
        (torch.float64, torch.float64),
    ],
)
def test_torch_weights_match_formula(device: str, cls: type, dtype: object, out_dtype: object) -> None:
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(64, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
    out = cls(16, 4, eps=1e-3, rng=1)(priorities=p)
    idx, w = out["indexes"], out["weights"]
    assert isinstance(idx, torch.Tensor) and isinstance(w, torch.Tensor)
    assert idx.device.type == device and w.device.type == device
    assert idx.dtype == torch.int64 and w.dtype == out_dtype and w.shape == (16,)
    q = p.double().cpu().numpy() + 1e-3  # the priorities as the sampler saw them, in float64
    expected = reference_weights(cls.variant, q, idx.cpu().numpy())
    rtol = 1e-12 if dtype == torch.float64 else 2e-7
    np.testing.assert_allclose(w.double().cpu().numpy(), expected, rtol=rtol)


@pytest.mark.parametrize("device", DEVICES)
def test_requires_grad_is_detached_and_extras_keep_their_graph(device: str) -> None:
    td = torch.rand(32, device=device, requires_grad=True)
    abs_td = td * 2.0
    out = LaBERmean(8, 4, rng=0)(priorities=abs_td, loss=abs_td**2)
    assert not out["weights"].requires_grad
    assert out["loss"].requires_grad  # extra arrays are gathered, not detached: the loss can backpropagate
    (out["weights"] * out["loss"]).mean().backward()
    assert td.grad is not None


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_frequencies_chi_square(device: str, shuffle: bool, dtype: object) -> None:
    """Frequencies of torch draws against P (400 calls x 64 draws); false-failure probability 1e-3.

    On the CPU, float32 tensors take the shared-memory numpy route and bfloat16 ones the torch kernels."""
    rng = np.random.default_rng(77)
    p_np = rng.random(128) ** 2
    p_np[[5, 9]] = 0.0
    p = torch.tensor(p_np, dtype=dtype, device=device)
    laber = LaBERmean(64, 2, eps=0.0, rng=3, shuffle=shuffle)
    counts = torch.zeros(128, dtype=torch.int64, device=device)
    for _ in range(400):
        counts += torch.bincount(laber(priorities=p)["indexes"], minlength=128)
    counts_np = counts.cpu().numpy()
    assert counts_np[[5, 9]].sum() == 0
    prob = p.double().cpu().numpy()
    prob = prob / prob.sum()
    keep = prob * counts_np.sum() >= 5
    obs = np.append(counts_np[keep], counts_np[~keep].sum())
    exp = np.append(prob[keep], prob[~keep].sum()) * counts_np.sum()
    assert stats.chisquare(obs, exp).pvalue > 1e-3


def test_cpu_tensors_give_the_numpy_draws() -> None:
    p_np = np.random.default_rng(8).random(64).astype(np.float32)
    a = LaBERmean(16, 4, rng=1)(priorities=p_np)
    b = LaBERmean(16, 4, rng=1)(priorities=torch.from_numpy(p_np))
    np.testing.assert_array_equal(a["indexes"], b["indexes"].numpy())
    np.testing.assert_array_equal(a["weights"], b["weights"].numpy())


def test_torch_kernels_and_numpy_agree_in_distribution_and_weights() -> None:
    """Same priorities: the torch kernels (bfloat16 forces them on the CPU) and numpy draws follow one law
    (two-sample chi-square, p > 1e-3), and the weights of any index agree."""
    p_t = torch.rand(64, generator=torch.Generator().manual_seed(8)).to(torch.bfloat16)
    p_np = p_t.float().numpy()
    a, b = LaBERmean(64, 1, rng=1), LaBERmean(64, 1, rng=2)
    ca = np.zeros(64)
    cb = np.zeros(64)
    for _ in range(300):
        out_n = a(priorities=p_np)
        out_t = b(priorities=p_t)
        ca += np.bincount(out_n["indexes"], minlength=64)
        cb += np.bincount(out_t["indexes"].numpy(), minlength=64)
        w_of_n = dict(zip(out_n["indexes"].tolist(), out_n["weights"].tolist(), strict=True))
        for i, w in zip(out_t["indexes"].tolist(), out_t["weights"].tolist(), strict=True):
            if i in w_of_n:
                assert w == pytest.approx(w_of_n[i], rel=1e-6)  # both float32 weights of the same q
    table = np.vstack([ca, cb])
    assert stats.chi2_contingency(table).pvalue > 1e-3


@pytest.mark.parametrize("device", DEVICES)
def test_torch_same_seed_same_draws(device: str) -> None:
    p = torch.rand(256, device=device)
    a, b = LaBERmean(64, 4, rng=5), LaBERmean(64, 4, rng=5)
    for _ in range(3):
        torch.testing.assert_close(a(priorities=p)["indexes"], b(priorities=p)["indexes"])
    # one numpy Generator drives both paths: interleaving numpy calls stays reproducible
    c, d = LaBERmean(64, 4, rng=6), LaBERmean(64, 4, rng=6)
    c(priorities=p.cpu().numpy())
    d(priorities=p.cpu().numpy())
    torch.testing.assert_close(c(priorities=p)["indexes"], d(priorities=p)["indexes"])


@pytest.mark.parametrize("device", DEVICES)
def test_torch_extras_follow_indexes(device: str) -> None:
    obs = torch.arange(64 * 3, device=device, dtype=torch.float32).reshape(64, 3)
    act_np = np.arange(64, dtype=np.int64)
    out = LaBERmean(16, 4, rng=0)(priorities=torch.rand(64, device=device), obs=obs, act=act_np)
    idx = out["indexes"]
    torch.testing.assert_close(out["obs"], obs[idx])
    assert isinstance(out["act"], np.ndarray)  # a numpy extra stays numpy
    np.testing.assert_array_equal(out["act"], act_np[idx.cpu().numpy()])


def test_torch_extras_beside_numpy_priorities() -> None:
    obs = torch.arange(32.0).reshape(16, 2)
    out = LaBERmean(4, 4, rng=0)(priorities=np.ones(16), obs=obs)
    assert isinstance(out["obs"], torch.Tensor)
    torch.testing.assert_close(out["obs"], obs[torch.from_numpy(out["indexes"])])


def test_torch_bad_input_on_cpu_raises_and_leaves_rng() -> None:
    laber = LaBERmean(4, 2, rng=0)
    state = laber.rng.bit_generator.state
    cases = [
        (torch.tensor([1.0, 2, float("nan"), 1, 1, 1, 1, 1]), ValueError, r"got priorities\[2\]=.*nan"),
        (torch.tensor([1.0, 2, 1, -1, 1, 1, 1, 1]), ValueError, r"got priorities\[3\]=.*-1"),
        (torch.ones(7), ValueError, r"length m\*batch_size=8, got length 7"),
        (torch.ones(2, 4), ValueError, r"must be 1-D, got shape=\(2, 4\)"),
        (torch.ones(8, dtype=torch.bool), TypeError, r"real numbers, got dtype=torch.bool"),
        (torch.ones(8, dtype=torch.complex64), TypeError, r"real numbers, got dtype=torch.complex64"),
    ]
    for prio, error, match in cases:
        with pytest.raises(error, match=match):
            laber(priorities=prio)
    with pytest.raises(ValueError, match=r"'obs' must have leading length N=8"):
        laber(priorities=torch.ones(8), obs=torch.ones(3))
    with pytest.raises(ValueError, match=r"must not all be zero"):
        LaBERmean(4, 2, eps=0.0)(priorities=torch.zeros(8))
    assert laber.rng.bit_generator.state == state


def test_functional_form_with_tensors() -> None:
    p = torch.rand(30)
    out = laber_subsample(p, 7, variant="max", rng=0)
    assert out["indexes"].shape == (7,) and float(out["weights"].max()) == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_path_does_not_synchronise() -> None:
    """With the default check_values=None, a CUDA call makes no device-to-host synchronisation."""
    p = torch.rand(1024, device="cuda")
    obs = torch.rand(1024, 4, device="cuda")
    laber = LaBERmean(256, 4, rng=0)
    laber(priorities=p, obs=obs)  # warm-up (lazy CUDA initialisation may synchronise)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = laber(priorities=p, obs=obs)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out["weights"].is_cuda and out["obs"].is_cuda


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_check_values_true_raises() -> None:
    p = torch.tensor([1.0, float("nan"), 1.0, 1.0], device="cuda")
    with pytest.raises(ValueError, match=r"got priorities\[1\]=.*nan"):
        LaBERmean(2, 2, check_values=True)(priorities=p)
