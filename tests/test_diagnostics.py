"""Gradient-variance diagnostics: per-sample gradients, Monte Carlo estimators against exact values, the closed form,
m*, and the exact gradient-norm priorities of the ger / laber-exact arms.

Statistical checks, each a two-sided comparison with ``Z = 4.5`` standard errors (normal approximation, false-failure
probability 2 (1 - Phi(4.5)) = 6.8e-6 each):

* a Monte Carlo trace variance (a mean of R i.i.d. squared deviations) against its exact value, within ``Z`` of its
  own standard error: 11 comparisons (3 uniform / IS, 3 LaBER-mean, 3 enumerated populations, 2 lazy / max);
* a bias check (``unbiased``): each of the ``d`` coordinates of the Monte Carlo mean's error has variance
  ``Cov_jj / R``, so with probability at least ``1 - d 6.8e-6`` all are within ``Z`` standard errors and then
  ``||mean - E ĝ|| <= Z sqrt(tr Cov / R)`` (``tr Cov`` replaced by its estimate, 2 % off at R = 4000): 7 checks
  on the linear model's ``d = 5``, 35 comparisons.

46 comparisons in all: by the union bound the file fails falsely with probability below 3.2e-4. The seeds are fixed,
so a run either passes or fails reproducibly; the probabilities say how unlucky a seed would have to be.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from laber.agents import dqn  # noqa: E402
from laber.agents.gradient_norms import GradientNorms, loss_gradient_norms, q_gradient_norms  # noqa: E402
from laber.diagnostics import (  # noqa: E402
    closed_form,
    gradient_variance,
    m_star,
    monte_carlo,
    pearson,
    per_sample_gradients,
    q_gradients,
    spearman,
)

Z = 4.5
DRAWS = 4000


# ------------------------------------------------------------------------------------- reference values
def linear_population(n: int = 300, k: int = 4, seed: int = 0) -> tuple[Any, Any, Any, np.ndarray]:
    """A linear model f(x) = w.x + b, loss (f(x) - y)^2 / 2: per-sample gradient (f(x) - y) [x, 1], exactly."""
    gen = torch.Generator().manual_seed(seed)
    model = torch.nn.Linear(k, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, k, generator=gen, dtype=torch.float64))
        model.bias.fill_(0.3)
    x = (
        torch.randn(n, k, generator=gen, dtype=torch.float64)
        * torch.linspace(0.2, 3.0, n, dtype=torch.float64)[:, None]
    )
    y = x @ torch.full((k,), 0.5, dtype=torch.float64) + 1.0 + 0.1 * torch.randn(n, generator=gen, dtype=torch.float64)
    residual = (model(x).squeeze(1) - y).detach()
    exact = torch.cat([residual[:, None] * x, residual[:, None]], 1).numpy()
    return model, x, y, exact


def exact_uniform(g: np.ndarray, k: int) -> float:
    return float(((g - g.mean(0)) ** 2).sum(1).mean()) / k


def exact_is(g: np.ndarray, q: np.ndarray, b: int) -> float:
    """tr Cov of B i.i.d. draws with P ∝ q and weights 1/(n P): sum_i P_i ||g_i/(nP_i)||^2 - ||ḡ||^2, over B."""
    prob = q / q.sum()
    scaled = g / (len(q) * prob[:, None])
    return float((prob * (scaled**2).sum(1)).sum() - (g.mean(0) ** 2).sum()) / b


def exact_laber_mean_small(g: np.ndarray, q: np.ndarray, b: int, m: int) -> float:
    """tr Cov of LaBER-mean by brute-force enumeration of every large batch (tiny n and M only)."""
    n, big = len(q), m * b
    mean = g.mean(0)
    total = 0.0
    for combo in np.ndindex(*([n] * big)):  # every ordered large batch, probability n^-M
        idx = np.array(combo)
        qb, gb = q[idx], g[idx]
        s = qb.sum()
        scaled = (s / big) * gb / qb[:, None]
        prob = qb / s
        cond_mean = gb.mean(0)
        cond_var = float((prob * (scaled**2).sum(1)).sum() - (cond_mean**2).sum()) / b
        total += cond_var + float(((cond_mean - mean) ** 2).sum())
    return total / n**big


def within(result: Any, value: float) -> bool:
    return abs(result.trace_variance - value) <= Z * result.stderr


def unbiased(result: Any, mean_grad: np.ndarray, scale: float = 1.0) -> bool:
    """The Monte Carlo mean is within ``Z sqrt(tr Cov / R)`` of ``scale * ḡ`` (module docstring), checked through
    what the result reports: ``|norm_ratio - scale| <= t`` and ``sin(angle) <= t / scale``, with
    ``t = Z sqrt(tr Cov / R) / ||ḡ||`` (a few hundredths here)."""
    t = Z * math.sqrt(result.trace_variance / result.draws) / float(np.linalg.norm(mean_grad))
    assert t < 0.1 * scale, t  # the check must be able to fail
    return bool(abs(result.norm_ratio - scale) <= t and result.cosine >= math.sqrt(1.0 - (t / scale) ** 2))


# ------------------------------------------------------------------------------------- per-sample gradients
def test_per_sample_gradients_of_a_linear_model_are_exact() -> None:
    model, x, y, exact = linear_population()
    before = [p.detach().clone() for p in model.parameters()]

    def loss(out: Any, target: Any) -> Any:
        return 0.5 * (out.squeeze(1) - target) ** 2

    grads = per_sample_gradients(model, loss, x, y, chunk_size=37)  # chunks of 37 rows: 300 is not a multiple
    assert grads.shape == exact.shape and grads.dtype == np.float32
    np.testing.assert_allclose(grads, exact, rtol=1e-5, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def mlp(n_obs: int = 4, hidden: tuple[int, ...] = (16, 8), n_actions: int = 3, seed: int = 0) -> Any:
    torch.manual_seed(seed)
    return dqn._mlp(n_obs, hidden, n_actions)


def autograd_reference(model: Any, obs: Any, act: Any, y: Any, loss: str) -> np.ndarray:
    """Per-sample gradients one sample at a time with torch.autograd.grad (the test's reference only)."""
    rows = []
    for i in range(obs.shape[0]):
        q = model(obs[i : i + 1])[0, act[i]]
        value = torch.nn.functional.huber_loss(q, y[i], delta=1.0) if loss == "huber" else 0.5 * (q - y[i]) ** 2
        grads = torch.autograd.grad(value, list(model.parameters()))
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows).numpy()


def q_batch(n: int = 12, seed: int = 1) -> tuple[Any, Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, 4, generator=gen)
    act = torch.randint(0, 3, (n,), generator=gen)
    y = 2.0 * torch.randn(n, generator=gen)  # |delta| on both sides of the Huber threshold
    return obs, act, y


@pytest.mark.parametrize("loss", ["huber", "mse"])
def test_q_gradients_match_autograd_and_the_surrogate(loss: str) -> None:
    model = mlp()
    obs, act, y = q_batch()
    grads, surrogate = q_gradients(model, obs, act, y, loss=loss, chunk_size=5)
    reference = autograd_reference(model, obs, act, y, loss)
    np.testing.assert_allclose(grads, reference, rtol=1e-5, atol=1e-6)
    td = (y - model(obs).gather(1, act[:, None]).squeeze(1)).detach().double().numpy()
    np.testing.assert_allclose(surrogate, np.minimum(np.abs(td), 1.0) if loss == "huber" else np.abs(td), rtol=1e-6)
    assert np.min(np.abs(td)) < 1.0 < np.max(np.abs(td))


@pytest.mark.parametrize("loss", ["huber", "mse"])
@pytest.mark.parametrize("hidden", [(16, 8), (5,), ()])
def test_ger_priorities_equal_autograd_per_sample_norms(loss: str, hidden: tuple[int, ...]) -> None:
    """The ger / laber-exact priorities (closed form for the ReLU MLP) are ||autograd per-sample gradient||."""
    model = mlp(hidden=hidden)
    obs, act, y = q_batch()
    layers = [(mod.weight, mod.bias) for mod in model if isinstance(mod, torch.nn.Linear)]
    with torch.no_grad():
        td = y - model(obs).gather(1, act[:, None]).squeeze(1)
    reference = np.linalg.norm(autograd_reference(model, obs, act, y, loss), axis=1)
    np.testing.assert_allclose(loss_gradient_norms(layers, obs, act, td, loss).numpy(), reference, rtol=1e-5)
    # ||∇θ Q|| alone: the MSE loss's gradient norm where |delta| = 1
    shifted = model(obs).gather(1, act[:, None]).squeeze(1).detach() + 1.0
    q_ref = np.linalg.norm(autograd_reference(model, obs, act, shifted, "mse"), axis=1)
    np.testing.assert_allclose(q_gradient_norms(layers, obs, act[:, None]).numpy(), q_ref, rtol=1e-5)
    norms = GradientNorms(loss)
    norms.bind(layers)
    host = norms.host(obs.numpy(), act.numpy()[:, None], td.numpy())
    assert host.dtype == np.float32
    np.testing.assert_array_equal(host, norms.tensor(obs, act[:, None], td).numpy())


class DQNConfigs:
    ger = dqn.DQNConfig(arm="ger", batch_size=8, m=4)
    exact = dqn.DQNConfig(arm="laber-exact", batch_size=8, m=4)


def test_ger_arm_writes_gradient_norms_and_laber_exact_draws_on_them() -> None:
    calls: list[tuple[np.ndarray, np.ndarray]] = []

    class Recorder:
        def update_priorities(self, indexes: np.ndarray, priorities: np.ndarray) -> None:
            calls.append((indexes, priorities))

    model = mlp(hidden=(16,), n_actions=2)
    layers = [(mod.weight, mod.bias) for mod in model if isinstance(mod, torch.nn.Linear)]
    gen = np.random.default_rng(2)
    obs = gen.normal(size=(32, 4)).astype(np.float32)
    act = gen.integers(0, 2, (32, 1))
    td = gen.normal(scale=2.0, size=32).astype(np.float32)
    expected = loss_gradient_norms(
        layers, torch.from_numpy(obs), torch.from_numpy(act), torch.from_numpy(td), "huber"
    ).numpy()
    ger = dqn._make_sampler(DQNConfigs.ger, Recorder(), np.random.default_rng(dqn._seeds(0).laber))
    ger.bind(layers)
    ger.feedback(td, {"indexes": np.arange(32), "obs": obs, "act": act})
    ((_indexes, priorities),) = calls
    assert priorities.dtype == np.float64
    np.testing.assert_array_equal(priorities, expected.astype(np.float64))
    exact = dqn._make_sampler(DQNConfigs.exact, None, np.random.default_rng(dqn._seeds(0).laber))
    exact.bind(layers)
    positions, weights = exact.select(td, {"obs": obs, "act": act})
    import laber

    reference = laber.LaBERmean(8, 4, eps=1e-6, rng=np.random.default_rng(dqn._seeds(0).laber))(priorities=expected)
    np.testing.assert_array_equal(positions, reference["indexes"])
    np.testing.assert_array_equal(weights, reference["weights"])


# ------------------------------------------------------------------------------------- Monte Carlo vs exact
@pytest.fixture(scope="module")
def population() -> tuple[np.ndarray, np.ndarray]:
    """The linear model's per-sample gradients (mean far from zero) and priorities loosely tied to their norms."""
    _model, _x, _y, exact = linear_population(n=300, k=4, seed=3)
    gen = np.random.default_rng(4)
    q = np.linalg.norm(exact, axis=1) * gen.uniform(0.3, 1.7, size=300)
    return exact, q


def test_uniform_and_importance_sampling_variance_and_bias(population: tuple[np.ndarray, np.ndarray]) -> None:
    g, q = population
    b = 16
    for k_m, result in (
        (1, monte_carlo(g, "uniform", batch_size=b, draws=DRAWS, rng=10)),
        (4, monte_carlo(g, "uniform", batch_size=b, m=4, draws=DRAWS, rng=11)),
    ):
        assert within(result, exact_uniform(g, k_m * b)), (result, exact_uniform(g, k_m * b))
        assert result.rows == k_m * b
        assert unbiased(result, g.mean(0)), result
    is_result = monte_carlo(g, "is", batch_size=b, priorities=q, draws=DRAWS, rng=12)
    assert within(is_result, exact_is(g, q, b)), (is_result, exact_is(g, q, b))
    cf = closed_form(g, q, b)
    assert cf.v_b == pytest.approx(exact_uniform(g, b), rel=1e-12)
    assert cf.v_is == pytest.approx(exact_is(g, q, b), rel=1e-10)


@pytest.mark.parametrize("m", [1, 2, 8])
def test_laber_mean_closed_form_matches_monte_carlo(population: tuple[np.ndarray, np.ndarray], m: int) -> None:
    g, q = population
    b = 16
    cf = closed_form(g, q, b, eps=1e-6)
    result = monte_carlo(g, "laber-mean", batch_size=b, m=m, priorities=q, eps=1e-6, draws=DRAWS, rng=20 + m)
    assert within(result, cf.laber_mean(m)), (result, cf.laber_mean(m))
    assert cf.laber_mean(m) == pytest.approx((1 - 1 / (m * b)) * cf.v_is + cf.v_b / m)
    assert unbiased(result, g.mean(0)), result


@pytest.mark.parametrize(("b", "m"), [(2, 1), (1, 2), (2, 2)])
def test_the_closed_form_is_exact_for_finite_m_and_the_short_form_is_not(b: int, m: int) -> None:
    """Enumerating every large batch of a 3-row population (3^(mB) of them: 9, 9, 81) gives the exact variance;
    the closed form (1 - 1/(mB)) V_IS + V_B/m equals it to rounding, V_IS + V_B/m is off by V_IS/(mB), and the
    Monte Carlo estimate resolves the difference (the gap is 33 to 77 standard errors, so within 4.5 of the exact
    value implies over 10 from the short form). Both B and m vary: m = 1 alone cannot tell 1/(mB) from 1/B."""
    g = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 1.0]])
    q = np.array([0.5, 1.0, 3.0])
    exact = exact_laber_mean_small(g, q, b, m)
    cf = closed_form(g, q, b)
    assert cf.laber_mean(m) == pytest.approx(exact, rel=1e-12)
    short = cf.v_is + cf.v_b / m
    assert abs(short - exact) == pytest.approx(cf.v_is / (m * b), rel=1e-12)
    result = monte_carlo(g, "laber-mean", batch_size=b, m=m, priorities=q, draws=40_000, rng=5)
    assert within(result, exact)
    assert abs(result.trace_variance - short) > 10 * result.stderr


def test_lazy_is_biased_by_one_over_mean_q_and_max_is_unbiased_on_constant_priorities(
    population: tuple[np.ndarray, np.ndarray],
) -> None:
    g, _ = population
    b = 16
    const = np.full(g.shape[0], 2.0)
    lazy = monte_carlo(g, "laber-lazy", batch_size=b, m=4, priorities=const, draws=DRAWS, rng=30)
    assert unbiased(lazy, g.mean(0), scale=0.5), lazy  # E ĝ = ḡ / mean(q)
    # Constant priorities: the sub-batch is uniform over the large batch, so LaBER-mean's variance is
    # (1 - 1/(mB)) V_B + V_B/m (more than V_B: rows drawn twice), lazy's that over q^2 and max's the same as mean's.
    laber_mean = closed_form(g, const, b).laber_mean(4)
    assert laber_mean == pytest.approx(exact_uniform(g, b) * (1 - 1 / 64 + 1 / 4))
    assert within(lazy, laber_mean / 4)
    mx = monte_carlo(g, "laber-max", batch_size=b, m=4, priorities=const, draws=DRAWS, rng=31)
    assert unbiased(mx, g.mean(0)), mx
    assert within(mx, laber_mean)


# ------------------------------------------------------------------------------------- closed form, m*
def test_m_star_is_infinite_on_constant_priorities_and_matches_its_formula() -> None:
    assert m_star(np.full(10, 0.7)) == math.inf
    q = np.array([1.0, 2.0, 3.0, 6.0])
    assert m_star(q) == pytest.approx(1 + q.mean() ** 2 / q.var())
    cf = closed_form(np.ones((5, 2)) * np.arange(1, 6)[:, None], np.full(5, 3.0), 8)
    assert cf.v_is == pytest.approx(cf.v_b) and cf.break_even_m == math.inf  # constant q: IS is uniform
    with pytest.raises(ValueError, match="priorities must be a non-empty 1-D array"):
        m_star(np.array([1.0, -1.0]))


def test_m_star_is_the_break_even_when_norms_are_proportional_and_the_mean_gradient_is_zero() -> None:
    gen = np.random.default_rng(6)
    q = gen.gamma(2.0, size=200)
    u = gen.normal(size=(200, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    g = np.concatenate([q[:, None] * u, -q[:, None] * u])  # ||g_i|| = q_i, mean exactly zero
    qq = np.concatenate([q, q])
    b = 32
    cf = closed_form(g, 3.0 * qq, b)  # priorities proportional to the norms (any scale)
    assert cf.grad_sq_norm < 1e-20
    assert cf.v_b / (cf.v_b - cf.v_is) == pytest.approx(m_star(qq), rel=1e-9)
    assert cf.break_even_m == pytest.approx((cf.v_b - cf.v_is / b) / (cf.v_b - cf.v_is), rel=1e-12)
    assert cf.break_even_m < m_star(qq)


def test_correlations() -> None:
    x = np.array([1.0, 2.0, 2.0, 3.0, 7.0])
    y = np.array([1.0, 3.0, 2.0, 4.0, 5.0])
    assert pearson(x, y) == pytest.approx(np.corrcoef(x, y)[0, 1])
    # average ranks of the ties: x -> [0, 1.5, 1.5, 3, 4]
    assert spearman(x, y) == pytest.approx(np.corrcoef([0, 1.5, 1.5, 3, 4], [0, 2, 1, 3, 4])[0, 1])
    assert math.isnan(pearson(np.ones(4), np.arange(4.0)))
    with pytest.raises(ValueError, match="same length"):
        spearman(x, y[:3])


def test_gradient_variance_report(population: tuple[np.ndarray, np.ndarray]) -> None:
    g, q = population
    report = gradient_variance(g, q, batch_size=16, ms=(1, 4), draws=400, rng=0)
    names = [(r.name, r.m) for r in report.estimators]
    assert names[0] == ("uniform", 1)
    assert ("uniform-large", 4) in names and ("laber-exact", 4) in names and ("is-exact", 0) in names
    assert ("laber-lazy", 1) in names and ("laber-max", 4) in names
    data = report.to_dict()
    rows = {(r["name"], r["m"]): r for r in data["estimators"]}
    assert rows[("uniform", 1)]["predicted_ratio"] == pytest.approx(1.0)
    assert rows[("laber-mean", 4)]["predicted"] == pytest.approx(report.surrogate.laber_mean(4))
    assert rows[("laber-exact", 4)]["predicted"] == pytest.approx(report.exact.laber_mean(4))
    assert rows[("laber-lazy", 4)]["predicted"] is None
    # the exact norms are the optimal IS priorities: their V_IS is the smallest
    assert report.exact.v_is <= report.surrogate.v_is
    assert data["pearson"] == pytest.approx(pearson(q, np.linalg.norm(g, axis=1)))
    again = gradient_variance(g, q, batch_size=16, ms=(1, 4), draws=400, rng=0)
    assert again.to_dict() == data  # seeded


# ------------------------------------------------------------------------------------- validation
def test_bad_arguments_are_named_and_draw_nothing(population: tuple[np.ndarray, np.ndarray]) -> None:
    g, q = population
    gen = np.random.default_rng(0)
    state = gen.bit_generator.state
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"kind": "sgd"}, ValueError, "kind must be one of"),
        ({"kind": "is"}, ValueError, "needs priorities"),
        ({"kind": "laber-mean", "priorities": q[:-1]}, ValueError, r"priorities must have shape \(300,\)"),
        ({"kind": "laber-mean", "priorities": -q}, ValueError, "priorities must be finite and >= 0"),
        ({"kind": "uniform", "draws": 1}, ValueError, "draws must be >= 2"),
        ({"kind": "uniform", "batch_size": 0}, ValueError, "batch_size"),
        ({"kind": "laber-mean", "priorities": q, "eps": -1.0}, ValueError, "eps must be"),
    ]
    for kwargs, exc, match in cases:
        args = {"batch_size": 16, "draws": 10, **kwargs}
        with pytest.raises(exc, match=match):
            monte_carlo(g, rng=gen, **args)
    with pytest.raises(ValueError, match="grads must be a non-empty 2-D array"):
        monte_carlo(g[0], "uniform", batch_size=4, rng=gen)
    assert gen.bit_generator.state == state
    with pytest.raises(ValueError, match="ms must hold"):
        gradient_variance(g, q, ms=(), rng=gen)
    model = mlp()
    with pytest.raises(ValueError, match="share their leading length"):
        per_sample_gradients(model, lambda out: out.sum(1), torch.zeros(3, 4), torch.zeros(2))
    with pytest.raises(TypeError, match=r"model must be a torch\.nn\.Module"):
        per_sample_gradients(lambda x: x, lambda out: out, torch.zeros(3, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="loss must be one of"):
        q_gradients(model, torch.zeros(3, 4), torch.zeros(3), torch.zeros(3), loss="l1")
