"""laber aggregate: compare directories as tasks, normalised against uniform, IQM, probability of improvement and
performance profiles against brute force; the output directory's safety; the command line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from laber.agents.dqn import DQNConfig
from laber.cli import main
from laber.experiments.aggregate import iqm
from laber.experiments.runs import OutDirError, is_laber_dir
from laber.experiments.stats import auc, final_return
from laber.experiments.tasks import aggregate_tasks, load_task, write_aggregate

STEPS = np.arange(0, 11_000, 1000)


def _curve(rng: np.random.Generator, start: float, end: float) -> np.ndarray:
    return np.linspace(start, end, STEPS.size) + rng.normal(0, 3, STEPS.size)


def _write_compare(root: Path, env_id: str, curves: dict[str, list[np.ndarray]]) -> None:
    """A compare directory with one finished run per curve (the files ``load_run`` reads)."""
    root.mkdir(parents=True)
    (root / "compare.json").write_text(json.dumps({"arms": list(curves)}))
    for arm, runs in curves.items():
        for seed, curve in enumerate(runs):
            path = root / arm / f"seed{seed}"
            path.mkdir(parents=True)
            rows = "".join(f"{s},{float(r)!r},{0.01 * s}\n" for s, r in zip(STEPS, curve, strict=True))
            (path / "eval.csv").write_text("step,eval_return,train_seconds\n" + rows)
            config = DQNConfig(env_id=env_id, arm=arm, seed=seed, steps=int(STEPS[-1]))
            info = {"config": config.to_dict(), "seconds_per_update": 1e-3, "wall_seconds": 1.0}
            (path / "result.json").write_text(json.dumps(info))


@pytest.fixture
def two_tasks(tmp_path: Path) -> tuple[Path, Path, dict[str, dict[str, list[np.ndarray]]]]:
    rng = np.random.default_rng(5)
    data = {
        "a": {
            "uniform": [_curve(rng, 10, 200) for _ in range(5)],
            "laber-mean": [_curve(rng, 10, 260) for _ in range(6)],
        },
        "b": {
            "uniform": [_curve(rng, -50, 20) for _ in range(5)],
            "laber-mean": [_curve(rng, -50, 10) for _ in range(5)],
            "per": [_curve(rng, -50, 30) for _ in range(5)],  # not in task a: left out of the aggregate
        },
    }
    _write_compare(tmp_path / "a", "CartPole-v1", data["a"])
    _write_compare(tmp_path / "b", "Acrobot-v1", data["b"])
    return tmp_path / "a", tmp_path / "b", data


def _normalised(data: dict[str, list[np.ndarray]], arm: str, score: str, runs: int) -> np.ndarray:
    low = np.mean([c[0] for curves in data.values() for c in curves])
    high = np.mean([final_return(STEPS, c) for c in data["uniform"]])
    f = final_return if score == "final" else auc
    return (np.array([f(STEPS, c) for c in data[arm][:runs]]) - low) / (high - low)


def test_normalisation_iqm_improvement_and_profiles_match_brute_force(
    two_tasks: tuple[Path, Path, dict[str, dict[str, list[np.ndarray]]]],
) -> None:
    a, b, data = two_tasks
    tasks = [load_task(a), load_task(b)]
    assert tasks[0].low == pytest.approx(np.mean([c[0] for v in data["a"].values() for c in v]))
    assert tasks[1].high == pytest.approx(np.mean([final_return(STEPS, c) for c in data["b"]["uniform"]]))
    taus = np.array([-0.5, 0.0, 0.5, 0.9, 1.0, 1.1, 2.0])
    rows, scores, got_taus = aggregate_tasks(tasks, reps=200, taus=taus)
    assert [r.arm for r in rows] == ["uniform", "laber-mean"]  # per: only in task b
    assert scores == ["final", "auc", "auc_time"] and got_taus is taus
    lm = rows[1]
    assert lm.runs_per_task == 5  # 6 seeds in task a, 5 in b: the first 5 of each
    for score in ("final", "auc"):
        x = np.stack([_normalised(data[t], "laber-mean", score, 5) for t in "ab"], axis=1)
        y = np.stack([_normalised(data[t], "uniform", score, 5) for t in "ab"], axis=1)
        assert lm.iqm[score].value == pytest.approx(iqm(x))
        per_task = [np.mean(x[:, j, None] > y[None, :, j]) for j in range(2)]  # no ties in continuous scores
        improvement = lm.improvement[score]
        assert improvement is not None and improvement.value == pytest.approx(np.mean(per_task))
        profile = lm.profile[score][0]
        np.testing.assert_allclose(profile, [np.mean((x > t).mean(axis=0)) for t in taus])
        assert lm.iqm[score].low <= lm.iqm[score].value <= lm.iqm[score].high
    assert rows[0].improvement["final"] is None
    # uniform's normalised final scores average 1 on every task, by construction
    uniform_final = np.stack([_normalised(data[t], "uniform", "final", 5) for t in "ab"], axis=1)
    np.testing.assert_allclose(uniform_final.mean(axis=0), 1.0)


def test_write_aggregate_outputs_and_reruns(
    tmp_path: Path, two_tasks: tuple[Path, Path, dict[str, dict[str, list[np.ndarray]]]]
) -> None:
    a, b, _ = two_tasks
    out = tmp_path / "agg"
    md, js, png = write_aggregate([a, b], out, reps=100)
    assert is_laber_dir(out, "aggregate") and png.stat().st_size > 10_000
    text = md.read_text()
    assert "| a | CartPole-v1 |" in text and "| b | Acrobot-v1 |" in text
    assert "| laber-mean | 10 |" in text and "P(> uniform), AUC at equal time" in text
    data = json.loads(js.read_text())
    assert [r["arm"] for r in data["arms"]] == ["uniform", "laber-mean"]
    assert data["arms"][1]["improvement"]["final"]["runs"] == 20
    assert data["arms"][1]["improvement"]["final"]["low"] is not None
    assert [t["path"] for t in data["tasks"]] == [os.path.relpath(a, out), os.path.relpath(b, out)]
    write_aggregate([a, b], out, reps=100)  # an earlier aggregate's directory may be written again


def test_foreign_output_directory_is_refused_untouched(
    tmp_path: Path, two_tasks: tuple[Path, Path, dict[str, dict[str, list[np.ndarray]]]]
) -> None:
    a, b, _ = two_tasks
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "aggregate.md").write_text("my notes")
    with pytest.raises(OutDirError, match="not written by laber aggregate"):
        write_aggregate([a, b], foreign, reps=10)
    assert [p.name for p in foreign.iterdir()] == ["aggregate.md"]
    assert (foreign / "aggregate.md").read_text() == "my notes"


def test_a_task_without_uniform_is_refused_before_writing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    _write_compare(tmp_path / "c", "CartPole-v1", {"per": [_curve(rng, 0, 10) for _ in range(3)]})
    with pytest.raises(ValueError, match="no finished uniform runs"):
        write_aggregate([tmp_path / "c"], tmp_path / "out", reps=10)
    assert not (tmp_path / "out").exists()


def test_cli_aggregate(
    tmp_path: Path,
    two_tasks: tuple[Path, Path, dict[str, dict[str, list[np.ndarray]]]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b, _ = two_tasks
    assert main(["aggregate", str(a), str(b), "--out", str(tmp_path / "agg")]) == 0
    assert "from 2 compare directories" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["aggregate", str(tmp_path), "--out", str(tmp_path / "agg2")])
    assert exc.value.code == 2
    assert "holds no compare" in capsys.readouterr().err
    assert not (tmp_path / "agg2").exists()


def test_improvement_intervals_need_enough_uniform_runs_too(tmp_path: Path) -> None:
    """An arm with 6 runs gets an IQM interval, but its P(> uniform) has none when uniform has only 4 runs (as a
    compare's summary does it): null bounds in aggregate.json, no interval in aggregate.md."""
    rng = np.random.default_rng(9)
    curves = {"uniform": [_curve(rng, 0, 100) for _ in range(4)], "laber-mean": [_curve(rng, 0, 120) for _ in range(6)]}
    _write_compare(tmp_path / "t", "CartPole-v1", curves)
    md, js, _ = write_aggregate([tmp_path / "t"], tmp_path / "agg", reps=100)
    rows = {r["arm"]: r for r in json.loads(js.read_text())["arms"]}
    assert rows["laber-mean"]["iqm"]["final"]["low"] is not None
    assert rows["laber-mean"]["improvement"]["final"]["low"] is None
    assert rows["uniform"]["iqm"]["final"]["low"] is None
    line = next(x for x in md.read_text().splitlines() if x.startswith("| laber-mean | 6 |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert "too few runs" not in cells[2] and all("too few runs" in c for c in cells[5:])
