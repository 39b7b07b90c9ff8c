"""Experiment runs on disk, compare with resume, bootstrap statistics, plot and summary."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("matplotlib")
pytest.importorskip("tqdm")

from laber.agents import dqn
from laber.experiments import compare, execute, is_finished, load_run, run_dir, write_report
from laber.experiments.progress import BarDisplay, LogDisplay, QueueReporter, drain, format_duration, open_display
from laber.experiments.report import reference_lines, summarize, write_plot
from laber.experiments.runs import OutDirError, RunRecord, check_run_dir, finished_runs, is_laber_dir
from laber.experiments.stats import Interval, auc, bootstrap_band, bootstrap_mean, final_return, smooth
from test_dqn import has_library_buffer, short, stand_in_factory


@pytest.fixture
def buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Use the stand-in buffer for arms whose library buffer has not landed yet (in this process only)."""
    real = dqn._make_buffer

    def make(config: dqn.DQNConfig, obs_shape: tuple[int, ...], seeds: Any) -> Any:
        if has_library_buffer(config.arm):
            return real(config, obs_shape, seeds)
        return stand_in_factory(config, obs_shape, np.random.default_rng(seeds.buffer))

    monkeypatch.setattr(dqn, "_make_buffer", make)


# ------------------------------------------------------------------------------------- statistics
def test_auc_is_the_trapezoid_mean_of_the_curve() -> None:
    assert auc([0, 10, 20], [5.0, 5.0, 5.0]) == pytest.approx(5.0)
    assert auc([0, 10, 30], [0.0, 10.0, 30.0]) == pytest.approx(15.0)  # linear: mean of the end points
    assert auc([100], [7.0]) == 7.0
    with pytest.raises(ValueError, match="strictly increasing"):
        auc([0, 0, 1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="equal length"):
        auc([0, 1], [1.0])


def test_final_return_averages_the_last_tenth() -> None:
    steps = np.arange(0, 101, 5)
    returns = np.where(steps >= 90, 100.0, 0.0)
    assert final_return(steps, returns) == pytest.approx(100.0)
    assert final_return([0, 10], [1.0, 3.0]) == pytest.approx(3.0)


def test_bootstrap_band_brackets_the_mean_and_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    curves = rng.normal(loc=np.arange(6.0), scale=1.0, size=(8, 6))
    mean, low, high = bootstrap_band(curves, rng=1)
    np.testing.assert_allclose(mean, curves.mean(axis=0))
    assert np.all(low <= mean) and np.all(mean <= high) and np.all(low < high)
    again = bootstrap_band(curves, rng=1)
    np.testing.assert_array_equal(low, again[1])
    same = bootstrap_mean([2.0, 2.0, 2.0])
    assert (same.mean, same.low, same.high) == (2.0, 2.0, 2.0)
    with pytest.raises(ValueError, match="non-empty 2-D"):
        bootstrap_band(np.zeros(3))
    with pytest.raises(ValueError, match="level must be in"):
        bootstrap_band(curves, level=1.5)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent() -> None:
    """Coverage over 200 experiments of 10 normal seeds; a percentile bootstrap with n=10 under-covers slightly.

    False-failure probability: with true coverage ~0.92, P(hits < 170 of 200) < 1e-3.
    """
    rng = np.random.default_rng(11)
    hits = 0
    for k in range(200):
        ci = bootstrap_mean(rng.normal(size=10), n_boot=500, rng=k)
        hits += ci.low <= 0.0 <= ci.high
    assert 170 <= hits <= 200


# ------------------------------------------------------------------------------------- one run on disk
@pytest.mark.parametrize("arm", dqn.ARMS)
def test_execute_writes_every_output_atomically(tmp_path: Path, buffers: None, arm: str) -> None:
    out = tmp_path / "run"
    path = execute(short(arm), out, progress=True)
    assert path == out and is_finished(out)
    assert not (tmp_path / "run.partial").exists()
    with (out / "eval.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["step", "eval_return", "train_seconds"] and [int(r[0]) for r in rows[1:]] == [0, 80, 160, 240]
    seconds = [float(r[2]) for r in rows[1:]]
    assert seconds[0] >= 0.0 and seconds == sorted(seconds)  # training time at each evaluation, increasing
    assert (out / "episodes.csv").read_text().startswith("step,return\n")
    info = json.loads((out / "result.json").read_text())
    assert info["config"]["arm"] == arm and info["updates"] == 160 and info["seconds_per_update"] > 0
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        assert not (out / "tb").exists() and info["tensorboard"] is False
    else:
        assert info["tensorboard"] is True
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        (events,) = (out / "tb").glob("events.out.tfevents.*")
        acc = EventAccumulator(str(events))
        acc.Reload()
        logged = [(e.step, e.value) for e in acc.Scalars("eval/return")]
        assert [s for s, _ in logged] == [0, 80, 160, 240]
        np.testing.assert_allclose([v for _, v in logged], [float(r[1]) for r in rows[1:]], rtol=1e-6)
        n_episodes = len((out / "episodes.csv").read_text().splitlines()) - 1
        assert len(acc.Scalars("train/episode_return")) == n_episodes > 0
    record = load_run(out)
    assert record.config == short(arm)
    np.testing.assert_array_equal(record.steps, [0, 80, 160, 240])


def _interrupted(config: dqn.DQNConfig, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Leave what a run killed while training leaves: ``<out>.partial`` with laber's marker."""

    def killed(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(dqn, "train", killed)
        with pytest.raises(KeyboardInterrupt):
            execute(config, out, progress=False, tensorboard=False)


def test_execute_replaces_an_interrupted_attempt(
    tmp_path: Path, buffers: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    _interrupted(short("uniform"), out, monkeypatch)
    assert is_laber_dir(tmp_path / "run.partial", "run") and not out.exists()
    (tmp_path / "run.partial" / "junk").write_text("left by a killed run")
    execute(short("uniform"), out, progress=False, tensorboard=False)
    assert is_finished(out) and not (tmp_path / "run.partial").exists() and not (out / "tb").exists()
    assert is_laber_dir(out, "run") and not (out / "junk").exists()
    with pytest.raises(FileNotFoundError, match="no finished run"):
        load_run(tmp_path / "missing")


@pytest.mark.parametrize("name", ["run", "run.partial"])
def test_execute_never_deletes_a_directory_laber_did_not_create(
    tmp_path: Path, buffers: None, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    foreign = tmp_path / name
    foreign.mkdir()
    (foreign / "data.csv").write_text("precious")
    monkeypatch.setattr(dqn, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(OutDirError, match=r"exists and is not a laber run .*has no \.laber-run marker"):
        execute(short("uniform"), tmp_path / "run", progress=False)
    with pytest.raises(OutDirError, match=r"exists and is not a laber run"):
        check_run_dir(tmp_path / "run")
    assert (foreign / "data.csv").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_execute_replaces_only_marked_runs(tmp_path: Path, buffers: None) -> None:
    out = tmp_path / "run"
    out.mkdir()  # an empty directory is fine
    execute(short("uniform"), out, progress=False, tensorboard=False)
    execute(short("uniform", seed=1), out, progress=False, tensorboard=False)  # laber's own: replaced
    assert load_run(out).config.seed == 1
    (out / ".laber-run").unlink()  # a finished run without the marker (an older laber's, or someone's copy)
    with pytest.raises(OutDirError, match=r"holds a run without a \.laber-run marker"):
        execute(short("uniform", seed=2), out, progress=False)
    assert load_run(out).config.seed == 1
    with pytest.raises(OutDirError, match="out must name a directory, got out=''"):
        execute(short("uniform"), "", progress=False)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"steps": 80}, r"steps must reach the first update at step 81 \(after learning_starts=80"),
        ({"steps": 40}, r"got steps=40: the run would never train"),
        ({"steps": 99, "train_freq": 50}, r"first update at step 100 .*train_freq=50 .*got steps=99"),
        ({"env_id": "Pendulum-v1"}, r"needs a Discrete action space, got env_id='Pendulum-v1'"),
        ({"env_id": "NoSuchEnv-v9"}, r"env_id='NoSuchEnv-v9' cannot be built"),
    ],
)
def test_execute_rejects_a_run_it_cannot_train_before_writing(
    tmp_path: Path, buffers: None, settings: dict[str, Any], match: str
) -> None:
    config = short("uniform", **settings)
    with pytest.raises(ValueError, match=match):
        execute(config, tmp_path / "run", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match=match):
        if "env_id" in settings:
            dqn.check_env(config.env_id)
        else:
            dqn.train(config, buffer_factory=stand_in_factory)  # no NaN seconds per update


# ------------------------------------------------------------------------------------- compare
def test_compare_writes_plot_and_summary_and_resumes(tmp_path: Path, buffers: None) -> None:
    base = short("uniform")
    out = tmp_path / "cmp"
    result = compare(base, ["uniform", "laber-mean"], [0, 1], out, progress=False, tensorboard=False)
    assert result["trained"] == 4 and result["skipped"] == 0
    assert (out / "curves.png").stat().st_size > 1000
    summary = (out / "summary.md").read_text()
    assert "| uniform | 2 |" in summary and "| laber-mean | 2 |" in summary and "1.00x" in summary
    data = json.loads((out / "summary.json").read_text())
    assert [a["arm"] for a in data["arms"]] == ["uniform", "laber-mean"]

    # Interrupted: one run lost its final file, another left a partial directory.
    (run_dir(out, "laber-mean", 1) / "result.json").unlink()
    shutil.copytree(run_dir(out, "uniform", 0), out / "uniform" / "seed5.partial")
    finished_before = (run_dir(out, "uniform", 0) / "eval.csv").read_text()
    again = compare(base, ["uniform", "laber-mean", "laber-max"], [0, 1], out, progress=False, tensorboard=False)
    assert again["trained"] == 3 and again["skipped"] == 3  # the lost run and the new arm's two
    assert (run_dir(out, "uniform", 0) / "eval.csv").read_text() == finished_before
    assert "| laber-max | 2 |" in (out / "summary.md").read_text()

    with pytest.raises(ValueError, match=r"other settings: steps=240 \(requested 320\)"):
        compare(short("uniform", steps=320), ["uniform"], [0], out, progress=False)

    plot, md = write_report(out, ["uniform", "laber-mean", "laber-max"], [0, 1])
    assert plot.exists() and md.exists()

    # Finished runs are kept even without markers (a compare written before them): never replaced.
    (out / ".laber-run").unlink()
    (run_dir(out, "uniform", 0) / ".laber-run").unlink()
    kept = compare(base, ["uniform"], [0], out, progress=False, tensorboard=False)
    assert kept["trained"] == 0 and (run_dir(out, "uniform", 0) / "eval.csv").read_text() == finished_before
    assert is_laber_dir(out, "compare")


@pytest.mark.parametrize("name", ["seed0", "seed0.partial"])
def test_compare_never_deletes_a_foreign_run_directory(
    tmp_path: Path, buffers: None, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cmp"
    foreign = out / "uniform" / name
    foreign.mkdir(parents=True)
    (foreign / "keep.txt").write_text("not laber's")
    (out / "compare.json").write_text("{}")
    monkeypatch.setattr(dqn, "train", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(OutDirError, match=r"exists and is not a laber run"):
        compare(short("uniform"), ["laber-mean", "uniform"], [0], out, progress=False, tensorboard=False)
    assert (foreign / "keep.txt").read_text() == "not laber's"
    assert sorted(p.name for p in out.iterdir()) == ["compare.json", "uniform"]


def test_compare_refuses_a_foreign_directory_and_a_run(tmp_path: Path, buffers: None) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "curves.png").write_text("my own plot")
    with pytest.raises(OutDirError, match=r"out='.*mine' exists and is not a laber compare"):
        compare(short("uniform"), ["uniform"], [0], mine, progress=False)
    assert sorted(p.name for p in mine.iterdir()) == ["curves.png"]
    one = tmp_path / "one"
    execute(short("uniform"), one, progress=False, tensorboard=False)
    with pytest.raises(OutDirError, match="holds a single laber run, not a compare"):
        compare(short("uniform"), ["uniform"], [0], one, progress=False)
    with pytest.raises(ValueError, match="the run would never train"):
        compare(short("uniform", steps=80), ["uniform"], [0], tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    ("arms", "seeds", "jobs", "match"),
    [
        ([], [0], 1, "arms must not be empty"),
        (["uniform", "greedy"], [0], 1, "arms must be among"),
        (["uniform", "uniform"], [0], 1, "arms must not repeat"),
        (["uniform"], [], 1, "seeds must not be empty"),
        (["uniform"], [0, 0], 1, "seeds must not repeat"),
        (["uniform"], [-1], 1, "seed must be an integer >= 0"),
        (["uniform"], [0], 0, "jobs must be a positive integer"),
    ],
)
def test_compare_rejects_bad_arguments_before_writing(
    tmp_path: Path, arms: list[str], seeds: list[int], jobs: int, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        compare(short("uniform"), arms, seeds, tmp_path / "x", jobs=jobs, progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.skipif(not has_library_buffer("uniform"), reason="worker processes need laber's ReplayBuffer")
def test_compare_in_separate_processes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two worker processes report through the queue; off a terminal the parent writes plain lines."""
    out = tmp_path / "pool"
    result = compare(short("uniform"), ["uniform", "laber-mean"], [0], out, jobs=2, progress=True, tensorboard=False)
    assert result["trained"] == 2
    for arm in ("uniform", "laber-mean"):
        assert is_finished(run_dir(out, arm, 0))
    assert (out / "curves.png").exists() and (out / "summary.md").exists()
    err = capsys.readouterr().err
    assert "compare CartPole-v1: 2 runs to train, 2 at a time, 240 steps each" in err
    for arm in ("uniform", "laber-mean"):
        assert f"compare CartPole-v1: done {arm} seed 0 in " in err
    assert "2/2 runs done" in err and "\x1b" not in err and "\r" not in err


# ------------------------------------------------------------------------------------- too few seeds for a CI
def test_interval_says_so_instead_of_a_ci_with_fewer_than_five_seeds() -> None:
    one = bootstrap_mean([242.6])
    assert one.n == 1 and not one.has_ci
    assert one.format() == "242.6 (1 seed: no CI)" and "[" not in one.format()
    three = bootstrap_mean([1.0, 2.0, 6.0])
    assert three.format() == "3.0 (3 seeds: too few for a CI; seeds 1.0 to 6.0)"
    assert three.to_dict() == {"mean": 3.0, "low": None, "high": None, "n": 3, "min": 1.0, "max": 6.0}
    five = bootstrap_mean([1.0, 2.0, 3.0, 4.0, 5.0])
    assert five.has_ci and five.format().startswith("3.0 [") and five.to_dict()["low"] == five.low
    assert Interval(1.0, 0.5, 1.5).format() == "1.0 [0.5, 1.5]"  # number of seeds unknown: shown as it is


def test_summary_of_few_seeds_prints_no_ci(tmp_path: Path, buffers: None) -> None:
    out = tmp_path / "cmp"
    compare(short("uniform"), ["uniform", "laber-mean"], [0, 1], out, progress=False, tensorboard=False)
    summary = (out / "summary.md").read_text()
    assert "| uniform | 2 | " in summary and "(2 seeds: too few for a CI; seeds " in summary
    assert "get no interval" in summary and "solved 475" in summary
    table = [line for line in summary.splitlines() if line.startswith("| uniform |")]
    assert table and " [" not in table[0]
    data = json.loads((out / "summary.json").read_text())
    assert data["arms"][0]["final"]["low"] is None and data["arms"][0]["final"]["n"] == 2


# ------------------------------------------------------------------------------------- smoothing, reference lines
def test_smooth_is_a_trailing_moving_average() -> None:
    np.testing.assert_allclose(smooth([1.0, 2.0, 3.0, 4.0], 2), [1.0, 1.5, 2.5, 3.5])
    np.testing.assert_allclose(smooth([1.0, 2.0, 3.0, 4.0], 3), [1.0, 1.5, 2.0, 3.0])
    np.testing.assert_allclose(smooth([[0.0, 3.0], [6.0, 0.0]], 5), [[0.0, 1.5], [6.0, 3.0]])  # window > points
    np.testing.assert_array_equal(smooth([5.0, 1.0], 1), [5.0, 1.0])
    with pytest.raises(ValueError, match="window must be a positive integer"):
        smooth([1.0], 0)


def test_reference_lines_come_from_gymnasium() -> None:
    assert reference_lines("CartPole-v1") == [(475.0, "solved 475"), (500.0, "cap 500")]
    assert reference_lines("Acrobot-v1") == [(-100.0, "solved -100")]
    assert reference_lines("NoSuchEnv-v9") == []


def _record(arm: str, seed: int, returns: np.ndarray) -> RunRecord:
    steps = np.arange(returns.size, dtype=np.int64) * 1000
    return RunRecord(Path(f"/x/{arm}/seed{seed}"), short(arm, seed=seed), steps, returns, 1e-3, 1.0)


def test_plot_has_one_panel_per_arm(tmp_path: Path) -> None:
    """Seven arms (one with a single seed) in a 2x4 grid with reference lines, smoothed; the PNG is written."""
    rng = np.random.default_rng(0)
    runs = {
        arm: [_record(arm, k, np.clip(rng.normal(np.linspace(20, 450, 21), 40), 0, 500)) for k in range(n)]
        for arm, n in zip(dqn.ARMS[:7], [5, 5, 5, 5, 5, 5, 1], strict=True)
    }
    summaries = summarize(runs, n_boot=200)
    path = write_plot(
        summaries, tmp_path / "c.png", smooth_window=3, reference="uniform", lines=reference_lines("CartPole-v1")
    )
    assert path.stat().st_size > 10_000
    with pytest.raises(ValueError, match="reference arm 'greedy' has no finished runs"):
        write_plot(summaries, tmp_path / "d.png", reference="greedy")
    assert not (tmp_path / "d.png").exists()


# ------------------------------------------------------------------------------------- a compare directory
def test_report_shows_every_run_on_disk_after_a_smaller_compare(tmp_path: Path, buffers: None) -> None:
    out = tmp_path / "cmp"
    compare(short("uniform"), ["uniform", "laber-mean"], [0, 1], out, progress=False, tensorboard=False)
    again = compare(short("uniform"), ["uniform"], [1], out, progress=False, tensorboard=False)
    assert again["trained"] == 0 and again["skipped"] == 1
    recorded = json.loads((out / "compare.json").read_text())
    assert recorded["arms"] == ["uniform", "laber-mean"] and recorded["seeds"] == [0, 1]  # nothing dropped
    assert "| laber-mean | 2 |" in (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    write_report(out, smooth_window=2)
    summary = (out / "summary.md").read_text()
    assert "| uniform | 2 |" in summary and "| laber-mean | 2 |" in summary
    assert [(a, k) for a, k, _ in finished_runs(out)] == [
        ("uniform", 0),
        ("uniform", 1),
        ("laber-mean", 0),
        ("laber-mean", 1),
    ]
    only = write_report(out, ["uniform"], [0])  # a subset on request
    assert "| laber-mean |" not in only[1].read_text()


def test_compare_refuses_a_directory_holding_runs_of_other_settings(tmp_path: Path, buffers: None) -> None:
    """A finished run that was not requested still belongs to the directory's experiment."""
    out = tmp_path / "cmp"
    compare(short("uniform"), ["laber-mean"], [0], out, progress=False, tensorboard=False)
    with pytest.raises(ValueError, match=r"finished run laber-mean/seed0 with other settings: steps=240"):
        compare(short("uniform", steps=320), ["uniform"], [0], out, progress=False, tensorboard=False)
    assert not run_dir(out, "uniform", 0).exists()
    # A directory mixed by an older laber: the report names the run that differs instead of averaging them.
    execute(short("uniform", steps=320), run_dir(out, "uniform", 0), progress=False, tensorboard=False)
    with pytest.raises(ValueError, match=r"have different settings: .*steps=320"):
        write_report(out)


# ------------------------------------------------------------------------------------- progress
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_display_writes_plain_lines() -> None:
    stream, clock = io.StringIO(), _Clock()
    log = LogDisplay("compare X", runs=2, steps_per_run=100, jobs=2, kept=1, stream=stream, interval=30, clock=clock)
    log.start(("uniform", 0))
    log.start(("per", 0))
    clock.now = 10.0
    log.advance(("uniform", 0), 50)  # before the interval: no status line
    log.evaluated(("uniform", 0), 50, 12.5)
    clock.now = 40.0
    log.advance(("per", 0), 50)  # a status line
    log.finish(("uniform", 0))
    log.advance(("uniform", 0), 10)  # late events of a finished run are ignored
    log.finish(("uniform", 0))
    clock.now = 80.0
    log.finish(("per", 0))
    log.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "compare X: 2 runs to train, 1 finished runs kept, 2 at a time, 100 steps each",
        "compare X: start uniform seed 0",
        "compare X: start per seed 0",
        "compare X: 50% (100/200 steps), 0/2 runs done, 0:40 elapsed, eta 0:40; running uniform seed 0 at 50/100 "
        "(eval 12.5), per seed 0 at 50/100",
        "compare X: done uniform seed 0 in 0:40, last evaluation 12.5; 75% (150/200 steps), 1/2 runs done, "
        "0:40 elapsed, eta 0:13",
        "compare X: done per seed 0 in 1:20; 100% (200/200 steps), 2/2 runs done, 1:20 elapsed, eta 0:00",
    ]
    assert format_duration(3725) == "1:02:05" and format_duration(float("nan")) == "?"


def test_a_resumed_run_counts_as_done_but_not_in_the_rate() -> None:
    stream, clock = io.StringIO(), _Clock()
    log = LogDisplay("compare X", runs=2, steps_per_run=100, jobs=1, stream=stream, interval=30, clock=clock)
    log.start(("uniform", 0))
    log.resumed(("uniform", 0), 60)  # 60 steps done by an interrupted attempt
    clock.now = 40.0
    log.advance(("uniform", 0), 40)  # 40 steps in 40 s: 100 steps to go at 1 step/s
    lines = stream.getvalue().splitlines()
    assert lines[-2] == "compare X: uniform seed 0 resumed at step 60"
    assert lines[-1].startswith("compare X: 50% (100/200 steps), 0/2 runs done, 0:40 elapsed, eta 1:40")
    term = _Terminal()
    bars = open_display("compare X", runs=2, steps_per_run=100, jobs=1, stream=term)
    bars.start(("per", 1))
    bars.resumed(("per", 1), 60)
    assert isinstance(bars, BarDisplay)
    assert "60/100" in term.getvalue() and "60.0/200" in term.getvalue()  # the run's bar and the overall one
    bars.close()
    import queue

    events: queue.Queue[Any] = queue.Queue()
    QueueReporter(events).resumed(("per", 1), 7)
    assert events.get_nowait() == ("resumed", ("per", 1), 7)


def test_display_is_bars_on_a_terminal_only() -> None:
    assert isinstance(open_display("t", runs=2, steps_per_run=10, stream=io.StringIO()), LogDisplay)
    assert isinstance(open_display("t", runs=2, steps_per_run=10, stream=_Terminal(), bars=False), LogDisplay)
    term = _Terminal()
    bars = open_display("compare X", runs=3, steps_per_run=10, jobs=2, stream=term)
    assert isinstance(bars, BarDisplay)
    bars.start(("uniform", 0))
    bars.start(("per", 0))
    bars.start(("laber-mean", 0))  # more runs than lines: counted, not drawn
    bars.advance(("uniform", 0), 4)
    bars.evaluated(("uniform", 0), 4, 9.5)
    bars.finish(("uniform", 0))
    bars.finish(("per", 0))
    bars.finish(("laber-max", 0))  # never reported its start (its events came too late): still counted
    bars.close()
    text = term.getvalue()
    assert "uniform seed 0" in text and "job 1: idle" in text and "runs 3/3 done" in text


def test_queue_reporter_events_reach_the_display() -> None:
    import queue

    events: queue.Queue[Any] = queue.Queue()
    reporter = QueueReporter(events)
    reporter.start(("per", 3))
    reporter.advance(("per", 3), 7)
    reporter.evaluated(("per", 3), 7, 1.5)
    reporter.finish(("per", 3))
    stream = io.StringIO()
    log = LogDisplay("run", runs=1, steps_per_run=7, stream=stream)
    drain(events, log)
    assert stream.getvalue().splitlines()[-1].startswith("run: done in 0:00, last evaluation 1.5")


def test_compare_progress_off_a_terminal_is_plain_lines(
    tmp_path: Path, buffers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    compare(short("uniform"), ["uniform", "laber-mean"], [0], tmp_path / "one", progress=True, tensorboard=False)
    err = capsys.readouterr().err
    assert "compare CartPole-v1: 2 runs to train, 1 at a time, 240 steps each" in err
    assert "compare CartPole-v1: done uniform seed 0 in " in err and "2/2 runs done" in err
    assert "\x1b" not in err and "\r" not in err


def test_summary_has_robust_aggregates(tmp_path: Path) -> None:
    """IQM over seeds and P(arm > uniform) against brute force, in summary.md and summary.json."""
    from laber.experiments.aggregate import iqm
    from laber.experiments.report import robust_aggregate, write_summary

    rng = np.random.default_rng(2)
    runs = {
        arm: [_record(arm, k, rng.normal(np.linspace(20, 200 + shift, 11), 30)) for k in range(6)]
        for arm, shift in (("uniform", 0.0), ("laber-mean", 80.0))
    }
    summaries = summarize(runs, n_boot=200)
    robust = robust_aggregate(summaries, reps=300)
    finals = {s.arm: [final_return(s.steps, c) for c in s.curves] for s in summaries}
    assert robust["laber-mean"]["iqm_final"].value == pytest.approx(iqm(finals["laber-mean"]))  # type: ignore[union-attr]
    wins = np.mean([[a > b for b in finals["uniform"]] for a in finals["laber-mean"]])
    assert robust["laber-mean"]["p_final"].value == pytest.approx(wins)  # type: ignore[union-attr]
    assert robust["uniform"]["p_final"] is None
    write_summary(summaries, tmp_path, env_id="CartPole-v1", config={})
    text = (tmp_path / "summary.md").read_text()
    assert "| arm | IQM final | IQM AUC | P(> uniform), final | P(> uniform), AUC |" in text
    row = next(
        line
        for line in text.splitlines()
        if line.startswith("| laber-mean |") and "IQM" not in line and line.count("|") == 6
    )
    assert f"{wins:.2f} [" in row
    data = json.loads((tmp_path / "summary.json").read_text())
    assert data["arms"][1]["robust"]["p_final"]["value"] == pytest.approx(wins)
    shown = data["arms"][1]["robust"]["p_final"]
    assert shown["low"] is not None and shown["high"] is not None and shown["seeds"] == 6
    # below 5 seeds summary.json carries no interval, as summary.md shows none (and as for final and AUC)
    write_summary(summarize({a: r[:3] for a, r in runs.items()}, n_boot=50), tmp_path, env_id="CartPole-v1", config={})
    few = json.loads((tmp_path / "summary.json").read_text())["arms"][1]["robust"]
    assert few["p_final"]["low"] is None and few["iqm_final"]["high"] is None and few["iqm_final"]["seeds"] == 3
    assert few["iqm_final"]["value"] == pytest.approx(iqm(finals["laber-mean"][:3]))


def test_equal_time_aggregates(tmp_path: Path) -> None:
    """An arm that learns as fast per step but takes twice the time per step is worse at equal time."""
    from laber.experiments.report import auc_in_time, equal_time_horizon, robust_scores, write_summary

    assert auc_in_time(np.array([0.0, 10.0]), np.array([0.0, 10.0]), 10.0) == pytest.approx(5.0)
    assert auc_in_time(np.array([2.0, 4.0]), np.array([1.0, 3.0]), 4.0) == pytest.approx(1.5)  # held at 1 until 2 s
    steps = np.arange(11, dtype=np.int64) * 1000
    curve = np.linspace(0.0, 100.0, 11)

    def rec(arm: str, seed: int, seconds_per_step: float) -> RunRecord:
        return RunRecord(
            Path(f"/x/{arm}/{seed}"),
            short(arm, seed=seed),
            steps,
            curve + seed,
            1e-3,
            1.0,
            train_seconds=steps * seconds_per_step,
        )

    runs = {
        "uniform": [rec("uniform", k, 1e-3) for k in range(5)],
        "laber-mean": [rec("laber-mean", k, 2e-3) for k in range(5)],
    }
    summaries = summarize(runs, n_boot=100)
    assert equal_time_horizon(summaries) == pytest.approx(10.0)  # uniform's 10 s; laber-mean reached 20 s
    scores = robust_scores(summaries)
    np.testing.assert_allclose(scores["uniform"]["auc"], scores["laber-mean"]["auc"])  # equal per step
    np.testing.assert_allclose(scores["uniform"]["auc_time"], 50.0 + np.arange(5), rtol=1e-9)
    np.testing.assert_allclose(scores["laber-mean"]["auc_time"], 25.0 + np.arange(5), rtol=1e-9)  # half-way
    write_summary(summaries, tmp_path, env_id="CartPole-v1", config={})
    text = (tmp_path / "summary.md").read_text()
    assert "IQM AUC, equal time" in text and "first 10 s of training" in text


def test_runs_without_training_times_still_load(tmp_path: Path, buffers: None) -> None:
    out = tmp_path / "run"
    execute(short("uniform"), out, progress=False, tensorboard=False)
    rows = (out / "eval.csv").read_text().splitlines()
    (out / "eval.csv").write_text("\n".join(",".join(r.split(",")[:2]) for r in rows) + "\n")  # laber 0.2's file
    record = load_run(out)
    assert record.train_seconds is None and record.returns.size == len(rows) - 1
