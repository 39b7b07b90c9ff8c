"""Matched-load costs (laber.experiments.costs, `laber cost`) and their use in the equal-time comparisons."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("matplotlib")

import torch

from laber.agents import dqn
from laber.agents.results import RunResult
from laber.cli import main
from laber.experiments import costs as costs_mod
from laber.experiments.costs import (
    COSTS_FILE,
    ArmCost,
    CostTable,
    check_measurable,
    fill_steps,
    load_costs,
    measure_costs,
    timing_config,
)
from laber.experiments.report import (
    apply_costs,
    auc_time_variants,
    costs_for,
    equal_time_horizon,
    robust_aggregate,
    robust_scores,
    summarize,
    write_summary,
)
from laber.experiments.runs import RunRecord
from test_dqn import short


def _settings(config: dqn.DQNConfig) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("arm")
    data.pop("seed")
    return data


def _table(config: dqn.DQNConfig, **train: float) -> CostTable:
    """Three rounds; uniform's rounds at 1x, 1.2x, 0.9x of its rate, the other arms' at (their rate) x the same
    round factor x (1, 1.1, 0.95): paired ratios rate/uniform x (1, 1.1, 0.95)."""
    load = (1.0, 1.2, 0.9)
    arms = {}
    for arm, t in train.items():
        own = (1.0, 1.0, 1.0) if arm == "uniform" else (1.0, 1.1, 0.95)
        pre = tuple(2e-4 * f for f in load) if arm == "uniform" else tuple(3e-4 * f for f in load)
        steps = tuple(t * f * o for f, o in zip(load, own, strict=True))
        arms[arm] = ArmCost(arm, pre, steps, tuple(x / 2 for x in steps))
    return CostTable(_settings(config), 400, 800, arms, {"laber": "0.test"})


def test_modelled_times_are_the_formula_with_paired_ratios() -> None:
    """T_a(s) = pre_a * min(s, L) + train_a * max(s - L, 0); train_a = uniform's median x the median paired
    ratio, pre_a likewise; ratios and their ranges are over the rounds' pairs."""
    config = short("uniform")
    table = _table(config, uniform=1e-3, **{"laber-mean": 3e-3})
    rng = np.random.default_rng(5)
    steps = rng.integers(0, 5000, size=50)
    lead = config.learning_starts
    u_train, u_pre = 1e-3, 2e-4  # medians of uniform's rounds (factors 1, 1.2, 0.9 -> 1)
    np.testing.assert_allclose(
        table.times("uniform", steps), u_pre * np.minimum(steps, lead) + u_train * np.maximum(steps - lead, 0)
    )
    ratio = 3.0 * 1.0  # median of 3 x (1, 1.1, 0.95)
    np.testing.assert_allclose(
        table.times("laber-mean", steps),
        u_pre * 1.5 * np.minimum(steps, lead) + u_train * ratio * np.maximum(steps - lead, 0),
        rtol=1e-12,
    )
    assert table.ratio("laber-mean", "train_step") == pytest.approx(3.0)
    assert table.ratio("laber-mean") == pytest.approx(3.0)  # per update: the same pairs halved
    assert table.ratio_range("laber-mean") == pytest.approx((2.85, 3.3))
    assert table.ratio("uniform") == pytest.approx(1.0) and table.ratio_range("uniform") == pytest.approx((1.0, 1.0))
    assert np.isnan(table.ratio("per"))
    with pytest.raises(KeyError, match="'per'"):
        table.times("per", steps)
    alone = CostTable(_settings(config), 400, 800, {"per": table.arms["laber-mean"]})
    assert alone.seconds("per") == pytest.approx(float(np.median(table.arms["laber-mean"].train_step)))
    assert np.isnan(alone.ratio("per"))


def test_a_table_round_trips_and_bad_files_are_named(tmp_path: Path) -> None:
    config = short("uniform")
    table = _table(config, uniform=1e-3)
    assert load_costs(tmp_path) is None
    table.save(tmp_path / COSTS_FILE)
    assert load_costs(tmp_path) == table
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / COSTS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=r"costs\.json"):
        load_costs(tmp_path)
    for mutate, match in (
        (lambda d: d["arms"]["uniform"].update({"update": [0.001, -1.0, 0.002]}), "positive, finite"),
        (lambda d: d["arms"]["uniform"].update({"update": [0.001]}), "one value per round"),
        (lambda d: d.update({"train_steps": -5}), "train_steps must be a positive integer"),
        (lambda d: d["settings"].pop("learning_starts"), "learning_starts"),
        (lambda d: d.pop("fill"), "fill"),
        (lambda d: d.update({"arms": {}}), "at least one arm"),
    ):
        data = table.to_dict()
        mutate(data)
        with pytest.raises(ValueError, match=match):
            CostTable.from_dict(data)
    two = _table(config, uniform=1e-3, per=2e-3).to_dict()
    two["arms"]["per"] = {k: v[:2] for k, v in two["arms"]["per"].items()}
    with pytest.raises(ValueError, match="same number of rounds"):
        CostTable.from_dict(two)


def test_covers_names_what_differs() -> None:
    config = short("uniform")
    table = _table(config, uniform=1e-3)
    assert table.covers(_settings(config), ["uniform"]) is None
    reason = table.covers(_settings(short("uniform", lr=1e-2)), ["uniform"])
    assert reason is not None and "lr=" in reason
    assert table.covers(_settings(config), ["uniform", "per"]) == "no costs for arm(s) per"


def test_version_gap_names_the_versions_that_differ_and_counts_the_runs() -> None:
    config = short("uniform")
    table = replace(_table(config, uniform=1e-3), provenance={"laber": "0.2.0", "torch": "2.13.0", "numpy": "2.4"})
    same = {"laber": "0.2.0", "torch": "2.13.0", "numpy": "2.4"}
    assert table.version_gap([same, same]) is None
    assert table.version_gap([]) is None
    assert table.version_gap([{"laber": "0.2.0"}]) is None  # what a run does not record is not a difference
    gap = table.version_gap([same, {**same, "torch": "2.12.1"}, {**same, "torch": "2.11.0", "numpy": "2.3"}])
    assert gap == "torch 2.13.0 (2 of 3 runs trained with 2.11.0, 2.12.1); numpy 2.4 (1 of 3 runs trained with 2.3)"
    # a table that records no versions (written by hand) has nothing to compare
    assert replace(table, provenance={}).version_gap([{**same, "torch": "1.0"}]) is None


def test_timing_config_is_a_steady_state_window() -> None:
    config = short("per", learning_starts=80, steps=10_000, buffer_size=1000, eps_end=0.05)
    fill = fill_steps(config, 120)
    assert fill == 1080  # min(buffer 1000, steps 10,000) rounded up to a multiple of 120
    assert fill_steps(config, 120, cap=100) == 120  # the cap, rounded up, and at least learning_starts
    timed = timing_config(config, "uniform", 3, 120, fill)
    assert (timed.arm, timed.seed, timed.steps, timed.learning_starts) == ("uniform", 3, 1200, 1080)
    assert (timed.eval_every, timed.eval_episodes, timed.eps_start, timed.eps_end) == (120, 1, 0.05, 0.05)
    assert dqn._epsilon(timed, 1081) == pytest.approx(0.05)  # the final rate from the first training step


def _fake_train(calls: list[tuple[str, int, int]]) -> Any:
    """A stand-in for dqn.train: training time t(s) = 1e-4 s + 2e-4 s per step before learning starts and
    (arm's rate) per step after; updates take half of that."""
    rate = {"uniform": 1e-3, "laber-mean": 4e-3, "per": 2e-3}

    def train(config: Any, **_: Any) -> RunResult:
        calls.append((config.arm, config.seed, config.steps))
        result = RunResult(config=config)
        lead = config.learning_starts
        points = sorted({*range(0, config.steps + 1, config.eval_every), config.steps})
        for s in points:
            result.eval_steps.append(s)
            result.eval_returns.append(0.0)
            result.eval_train_seconds.append(1e-4 + 2e-4 * min(s, lead) + rate[config.arm] * max(s - lead, 0))
        result.updates = config.steps - lead
        result.update_seconds = result.updates * rate[config.arm] / 2
        return result

    return train


def test_measure_costs_interleaves_the_arms_and_reads_the_clock_right(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(dqn, "train", _fake_train(calls))
    config = short("uniform", buffer_size=200, steps=10_000)
    arms = ["uniform", "laber-mean", "per"]
    seen: list[tuple[int, str]] = []
    torch.set_num_threads(2)
    table = measure_costs(config, arms, train_steps=120, reps=4, rng=11, on_run=lambda k, a, c: seen.append((k, a)))
    assert torch.get_num_threads() == 2  # restored
    fill = 240  # buffer 200 rounded up to a multiple of 120; evaluations at 0, 120, 240, 360
    warm, timed = calls[:3], calls[3:]
    assert [c[0] for c in warm] == arms and all(c[2] == 80 + 100 for c in warm)
    order = np.random.default_rng(11)
    expected = [(arms[int(i)], k, fill + 120) for k in range(4) for i in order.permutation(3)]
    assert timed == expected  # every round runs every arm once, in the drawn order, seed = round
    assert seen == [(k, a) for a, k, _ in expected]
    for arm, rate in (("uniform", 1e-3), ("laber-mean", 4e-3), ("per", 2e-3)):
        c = table.arms[arm]
        np.testing.assert_allclose(c.pre_step, 2e-4, rtol=1e-9)
        np.testing.assert_allclose(c.train_step, rate, rtol=1e-9)
        np.testing.assert_allclose(c.update, rate / 2, rtol=1e-9)
    assert table.ratio("laber-mean") == pytest.approx(4.0)
    assert table.settings == _settings(config) and (table.fill, table.train_steps, table.reps) == (fill, 120, 4)
    assert table.learning_starts == 80
    assert table.provenance["laber"] and table.provenance["torch"] and table.provenance["torch_threads"] == 1


def test_measure_costs_times_sac(monkeypatch: pytest.MonkeyPatch) -> None:
    """SAC evaluates only at multiples of eval_every: the window's ends must be among them."""
    pytest.importorskip("laber.agents.sac")
    from laber.agents import sac
    from test_sac import short as sac_short

    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(sac, "train_sac", _fake_train(calls))
    config = sac_short("uniform", steps=5000, buffer_size=500)
    table = measure_costs(config, ["uniform", "laber-mean"], train_steps=200, reps=2, warmup=False)
    assert [c[2] for c in calls] == [600 + 200] * 4  # fill: buffer 500 rounded up to 600
    assert table.ratio("laber-mean", "train_step") == pytest.approx(4.0)
    # and a real one, end to end
    monkeypatch.undo()
    real = measure_costs(
        sac_short("uniform", steps=1000, buffer_size=64, learning_starts=64),
        ["uniform", "laber-mean"],
        train_steps=32,
        reps=1,
    )
    assert set(real.arms) == {"uniform", "laber-mean"} and real.fill == 64


@pytest.mark.parametrize(
    ("arms", "kw", "match"),
    [
        (["uniform", "laber-nope"], {}, "laber-nope"),
        (["uniform", "uniform"], {}, "distinct"),
        ([], {}, "at least one"),
        (["uniform"], {"reps": 0}, "reps"),
        (["uniform"], {"train_steps": 1.5}, "train_steps"),
        ("uniform", {}, "sequence of arm names"),
        (["uniform"], {"on_run": 5}, "on_run"),
        (["uniform"], {"warmup": 1}, "warmup"),
    ],
)
def test_bad_arguments_are_refused_before_any_run(
    monkeypatch: pytest.MonkeyPatch, arms: list[str], kw: dict[str, Any], match: str
) -> None:
    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(dqn, "train", _fake_train(calls))
    with pytest.raises((TypeError, ValueError), match=match):
        measure_costs(short("uniform"), arms, **kw)
    assert calls == []


def test_train_steps_must_be_whole_updates() -> None:
    with pytest.raises(ValueError, match="train_steps must be a multiple of train_freq=4"):
        check_measurable(short("uniform", train_freq=4), ["uniform"], train_steps=10, reps=1)


def _records(seconds_per_step: dict[str, float], seeds: int = 5) -> dict[str, list[RunRecord]]:
    steps = np.arange(11, dtype=np.int64) * 100
    curve = np.linspace(0.0, 100.0, 11)
    return {
        arm: [
            RunRecord(
                Path(f"/x/{arm}/{k}"), short(arm, seed=k), steps, curve + k, 1e-3, 1.0, train_seconds=steps * rate
            )
            for k in range(seeds)
        ]
        for arm, rate in seconds_per_step.items()
    }


def test_costs_replace_the_runs_clocks_in_the_equal_time_comparison(tmp_path: Path) -> None:
    """The runs' clocks say laber-mean was as fast as uniform (it trained on a quieter machine); the matched-load
    costs say it costs 3x per step after learning starts, and the equal-time comparison follows the costs."""
    config = short("uniform")
    summaries = summarize(_records({"uniform": 1e-3, "laber-mean": 1e-3}), n_boot=50)
    plain = robust_scores(summaries)
    np.testing.assert_allclose(plain["laber-mean"]["auc_time"], plain["uniform"]["auc_time"])
    table = CostTable(
        _settings(config),
        400,
        800,
        {
            "uniform": ArmCost("uniform", (1e-3,), (1e-3,), (1e-3,)),
            "laber-mean": ArmCost("laber-mean", (1e-3,), (3e-3,), (2.5e-3,)),
        },
    )
    costed, note = apply_costs(summaries, table, _settings(config))
    assert note is None
    steps = summaries[0].steps
    for s in costed:
        assert s.times is not None
        np.testing.assert_allclose(s.times, np.repeat(table.times(s.arm, steps)[None], 5, axis=0))
    assert equal_time_horizon(costed) == pytest.approx(table.times("uniform", [1000])[0])
    scores = robust_scores(costed)
    assert (scores["laber-mean"]["auc_time"] < scores["uniform"]["auc_time"]).all()
    write_summary(costed, tmp_path, env_id="CartPole-v1", config=_settings(config), costs=table)
    text = (tmp_path / "summary.md").read_text()
    assert "matched-load costs" in text and "| 2.50x (2.50-2.50) | 3.00x (3.00-3.00) | 0.35 |" in text
    assert "| 1.00x (1.00-1.00) | 1.00x (1.00-1.00) | 1.00 |" in text  # runs' clock 1 s, modelled 1 s
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["time_basis"] == COSTS_FILE and data["costs_note"] is None
    assert [a["matched_seconds_per_update"] for a in data["arms"]] == pytest.approx([1e-3, 2.5e-3])

    (tmp_path / COSTS_FILE).write_text("{")
    same, used, why = costs_for(tmp_path, summaries, _settings(config))
    assert same is summaries and used is None and why is not None and "cannot be read" in why

    other = _settings(short("uniform", gamma=0.9))
    same, note = apply_costs(summaries, table, other)
    assert same is summaries and note is not None and "gamma=" in note


def test_laber_cost_measures_a_compare_and_remakes_its_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cmp"
    common = ["--env", "CartPole-v1", "--steps", "240", "--learning-starts", "80", "--batch-size", "16"]
    common += ["--eval-every", "80", "--eval-episodes", "1", "--hidden", "16", "--target-update", "50"]
    assert main(["compare", *common, "--arms", "uniform,laber-mean", "--seeds", "1", "--out", str(out)]) == 0
    before = (out / "summary.md").read_text()
    assert "matched" not in before
    capsys.readouterr()
    assert main(["cost", str(out), "--reps", "2", "--train-steps", "80"]) == 0
    printed = capsys.readouterr().out
    assert "round 2/2 laber-mean" in printed and "wrote" in printed and "re-made" in printed
    assert "vs uniform, per update (range)" in printed
    table = load_costs(out)
    assert table is not None and set(table.arms) == {"uniform", "laber-mean"} and table.reps == 2
    assert all(len(c.update) == 2 for c in table.arms.values())
    summary = (out / "summary.md").read_text()
    assert "matched-load costs" in summary and "matched load, per step |" in summary
    # a later report keeps using them
    assert main(["report", "--out", str(out)]) == 0
    assert "matched-load costs" in (out / "summary.md").read_text()
    # a table of other arms is reported as unused, not silently applied
    data = table.to_dict()
    del data["arms"]["laber-mean"]
    (out / COSTS_FILE).write_text(json.dumps(data))
    assert main(["report", "--out", str(out)]) == 0
    assert "costs.json is not used: no costs for arm(s) laber-mean" in (out / "summary.md").read_text()
    from laber.experiments.report import COST_DRAWS
    from laber.experiments.tasks import aggregate_tasks, load_task

    assert load_task(out).clock == "runs (costs.json not used: no costs for arm(s) laber-mean)"
    table.save(out / COSTS_FILE)
    assert load_task(out).clock == "costs.json"
    task = load_task(out)  # its equal-time scores under resampled timing rounds go into the aggregate's intervals
    assert {arm: v.shape for arm, v in task.variants.items()} == {a: (COST_DRAWS, 1) for a in ("uniform", "laber-mean")}
    rows, scores, _ = aggregate_tasks([task], reps=50)
    assert "auc_time" in scores and rows[1].improvement["auc_time"] is not None
    assert json.loads((out / "summary.json").read_text())["costs_version_gap"] is None
    # costs measured with another torch still apply, and every summary says which versions differ
    replace(table, provenance={**table.provenance, "torch": "0.0-other"}).save(out / COSTS_FILE)
    assert main(["report", "--out", str(out)]) == 0
    gap = "torch 0.0-other (2 of 2 runs trained with "
    assert gap in json.loads((out / "summary.json").read_text())["costs_version_gap"]
    assert "measured with other versions than the runs trained with: " + gap in (out / "summary.md").read_text()
    assert load_task(out).clock.startswith("costs.json (measured with other versions than the runs': " + gap)
    table.save(out / COSTS_FILE)
    # measuring a subset warns that the table will not cover the compare
    capsys.readouterr()
    assert main(["cost", str(out), "--reps", "1", "--train-steps", "80", "--arms", "uniform"]) == 0
    err = capsys.readouterr().err
    assert "will not cover laber-mean" in err and "does not use costs.json" in err


def test_laber_cost_refuses_what_is_not_a_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "plain").mkdir()
    with pytest.raises(SystemExit) as err:
        main(["cost", str(tmp_path / "plain")])
    assert err.value.code == 2
    assert "is not a laber compare" in capsys.readouterr().err
    assert list((tmp_path / "plain").iterdir()) == []


def test_config_of_compare_names_a_damaged_file(tmp_path: Path) -> None:
    (tmp_path / "compare.json").write_text('{"settings": {}, "arms": []}')
    with pytest.raises(ValueError, match=r"compare\.json"):
        costs_mod.config_of_compare(tmp_path)


def _noisy_table(config: dqn.DQNConfig) -> CostTable:
    """Five rounds whose paired ratios differ: laber-mean at 1.5x-3x uniform per training step."""
    ratios = (1.5, 2.0, 3.0, 2.2, 1.8)
    base = (1e-3, 1.3e-3, 0.8e-3, 1.1e-3, 0.9e-3)
    return CostTable(
        _settings(config),
        400,
        800,
        {
            "uniform": ArmCost("uniform", base, base, base),
            "laber-mean": ArmCost("laber-mean", base, tuple(b * r for b, r in zip(base, ratios, strict=True)), base),
        },
    )


def test_rounds_selects_paired_rounds_and_checks_its_indexes() -> None:
    table = _noisy_table(short("uniform"))
    picked = table.rounds([2, 2, 0])
    assert picked.reps == 3 and picked.settings == table.settings
    np.testing.assert_allclose(picked.paired_ratios("laber-mean"), [3.0, 3.0, 1.5])
    assert picked.arms["uniform"].train_step == (0.8e-3, 0.8e-3, 1e-3)
    for bad in ([], [5], [-1], [0.5], [[0]]):
        with pytest.raises(ValueError, match="which"):
            table.rounds(bad)  # type: ignore[arg-type]


def test_auc_time_variants_are_the_equal_time_scores_of_resampled_rounds() -> None:
    """Draw v is exactly robust_scores' auc_time with the costs of the rounds the draw's generator picks (each
    draw its own horizon); with identical rounds every draw is the fixed score."""
    config = short("uniform")
    summaries = summarize(_records({"uniform": 1e-3, "laber-mean": 1e-3}), n_boot=20)
    table = _noisy_table(config)
    varied = auc_time_variants(summaries, table, draws=7, rng=3)
    assert varied is not None and set(varied) == {"uniform", "laber-mean"}
    gen = np.random.default_rng(3)
    for v in range(7):
        costed, _ = apply_costs(summaries, table.rounds(gen.integers(0, table.reps, table.reps)), _settings(config))
        expected = robust_scores(costed)
        for arm in varied:
            np.testing.assert_allclose(varied[arm][v], expected[arm]["auc_time"], rtol=1e-12, atol=1e-9)
    # the draws differ (the rounds differ), and with one round repeated they do not
    assert np.ptp(varied["laber-mean"][:, 0]) > 0
    flat = table.rounds([1, 1, 1, 1, 1])
    fixed = robust_scores(apply_costs(summaries, flat, _settings(config))[0])
    same = auc_time_variants(summaries, flat, draws=4)
    assert same is not None
    for arm in same:
        np.testing.assert_allclose(same[arm], np.repeat(fixed[arm]["auc_time"][None], 4, axis=0), rtol=1e-12)
    assert auc_time_variants(summaries, None) is None


def test_equal_time_intervals_carry_the_costs_error_and_nothing_else_moves() -> None:
    """With costs, robust_aggregate's point estimates and its final/AUC intervals are unchanged (same draws of
    runs), and the equal-time intervals also resample the timing rounds: with rounds from 1.5x to 3x, P(laber-mean
    > uniform) at equal time spreads wider than with the rounds' median alone."""
    config = short("uniform")
    summaries = summarize(_records({"uniform": 1e-3, "laber-mean": 1e-3}, seeds=6), n_boot=20)
    table = _noisy_table(config)
    costed, _ = apply_costs(summaries, table, _settings(config))
    plain = robust_aggregate(costed)
    joint = robust_aggregate(costed, costs=table)
    for arm in plain:
        for key, est in plain[arm].items():
            other = joint[arm][key]
            if est is None or other is None:
                assert est is other
                continue
            assert other.value == est.value
            if not key.endswith("auc_time"):
                assert (other.low, other.high) == (est.low, est.high)
    p_plain, p_joint = plain["laber-mean"]["p_auc_time"], joint["laber-mean"]["p_auc_time"]
    assert p_plain is not None and p_joint is not None
    i_plain, i_joint = plain["laber-mean"]["iqm_auc_time"], joint["laber-mean"]["iqm_auc_time"]
    assert i_plain is not None and i_joint is not None
    assert i_joint.high - i_joint.low > i_plain.high - i_plain.low


def test_robust_aggregate_refuses_times_the_costs_do_not_model() -> None:
    """costs= must be the table the summaries' times came from: the runs' own clocks, or another table's times,
    are refused with a ValueError naming the arm, rather than mixing two clocks in one interval."""
    config = short("uniform")
    summaries = summarize(_records({"uniform": 1e-3, "laber-mean": 1e-3}), n_boot=20)
    table = _noisy_table(config)
    with pytest.raises(ValueError, match=r"costs: arm 'laber-mean'.s training times"):
        robust_aggregate(summaries, reps=50, costs=table)  # the runs' own clocks (uniform's happen to agree)
    other, _ = apply_costs(summaries, table.rounds([2, 2, 2, 2, 2]), _settings(config))
    with pytest.raises(ValueError, match=r"costs: arm '(uniform|laber-mean)'.s training times"):
        robust_aggregate(other, reps=50, costs=table)  # another table's (round 2's) times
    costed, _ = apply_costs(summaries, table, _settings(config))
    assert robust_aggregate(costed, reps=50, costs=table)["laber-mean"]["p_auc_time"] is not None


def test_auc_time_variants_when_the_horizon_arm_changes_and_evaluations_start_late() -> None:
    """Rounds in which laber-mean costs 0.6x or 1.7x uniform's per training step: the arm that sets a draw's horizon
    changes from draw to draw. The first evaluation comes after step 0 (the curve is held at its first value
    before it, as in auc_in_time). Each draw is still exactly the equal-time score of its rounds' costs."""
    config = short("uniform")
    records = _records({"uniform": 1e-3, "laber-mean": 1e-3})
    for recs in records.values():
        for i, rec in enumerate(recs):
            keep = rec.steps >= 300
            recs[i] = replace(
                rec, steps=rec.steps[keep], returns=rec.returns[keep] * (1 + i), train_seconds=rec.steps[keep] * 1e-3
            )
    summaries = summarize(records, n_boot=20)
    base = (1e-3, 1.2e-3, 0.9e-3, 1.1e-3, 1e-3)
    ratios = (0.6, 1.7, 0.6, 1.7, 1.0)
    table = CostTable(
        _settings(config),
        400,
        800,
        {
            "uniform": ArmCost("uniform", base, base, base),
            "laber-mean": ArmCost("laber-mean", base, tuple(b * r for b, r in zip(base, ratios, strict=True)), base),
        },
    )
    varied = auc_time_variants(summaries, table, draws=40, rng=11)
    assert varied is not None
    gen = np.random.default_rng(11)
    setters = set()
    for v in range(40):
        drawn = table.rounds(gen.integers(0, table.reps, table.reps))
        costed, note = apply_costs(summaries, drawn, _settings(config))
        assert note is None
        setters.add(min(costed, key=lambda s: float(s.times[0, -1]) if s.times is not None else 0.0).arm)
        expected = robust_scores(costed)
        for arm in varied:
            np.testing.assert_allclose(varied[arm][v], expected[arm]["auc_time"], rtol=1e-12, atol=1e-9)
    assert setters == {"uniform", "laber-mean"}  # both arms set the horizon in some draw
