"""The ``laber`` command: usage errors name the argument (exit status 2); run, compare and report work."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from laber.cli import build_parser, main

SHORT = [
    "--steps", "160", "--batch-size", "16", "--learning-starts", "80", "--eps-decay-steps", "80",
    "--eval-every", "80", "--eval-episodes", "2", "--hidden", "16", "--no-progress",
]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        ([], "the following arguments are required: {run,compare,report,aggregate,cost,variance}"),
        (["fly"], "invalid choice: 'fly'"),
        (["run", "--arm", "greedy"], "argument --arm: unknown arm 'greedy'"),
        (["run", "--steps", "0"], "argument --steps: must be a positive integer, got '0'"),
        (["run", "--steps", "ten"], "argument --steps: must be a positive integer, got 'ten'"),
        (["run", "--seed", "-3"], "argument --seed: must be an integer >= 0, got '-3'"),
        (["run", "--gamma", "1.5"], "argument --gamma: must be a number in [0, 1], got '1.5'"),
        (["run", "--lr=-1e-3"], "argument --lr: must be a finite number > 0"),
        (["run", "--lr", "0"], "argument --lr: must be a finite number > 0"),
        (["run", "--hidden", "64,x"], "argument --hidden: must be comma-separated layer widths"),
        (["run", "--loss", "l1"], "argument --loss: invalid choice: 'l1'"),
        (["compare", "--arms", "uniform,greedy", "--out", "x"], "argument --arms: unknown arm 'greedy'"),
        (["compare", "--arms", "uniform,,per", "--out", "x"], "argument --arms: must be a comma-separated list"),
        (["compare", "--arms", "per,per", "--out", "x"], "argument --arms: arms must not repeat"),
        (["compare", "--seeds", "0", "--out", "x"], "argument --seeds: must be a positive integer, got '0'"),
        (["compare", "--jobs", "0", "--out", "x"], "argument --jobs: must be a positive integer, got '0'"),
        (["compare", "--arms", "uniform"], "the following arguments are required: --out"),
        (["report"], "the following arguments are required: --out"),
        (["report", "--out", "x", "--smooth", "0"], "argument --smooth: must be a positive integer, got '0'"),
        (["report", "--out", "x", "--reference", "greedy"], "argument --reference: unknown arm 'greedy'"),
        (["run", "--laber-eps=-1"], "argument --laber-eps: must be a finite number >= 0, got '-1'"),
        (["run", "--eps-start", "2"], "argument --eps-start: must be a number in [0, 1], got '2'"),
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(_usage_of(argv)) and needle in err


def test_unknown_environment_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("torch")
    with pytest.raises(SystemExit) as info:
        main(["run", "--env", "NoSuchEnv-v9", "--out", str(tmp_path / "r")])
    assert info.value.code == 2
    assert "argument --env: unknown gymnasium environment 'NoSuchEnv-v9'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_invalid_combination_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("gymnasium")
    pytest.importorskip("torch")
    with pytest.raises(SystemExit) as info:
        main(["run", "--eps-end", "2", "--out", str(tmp_path / "r")])
    assert info.value.code == 2 and "argument --eps-end" in capsys.readouterr().err


def _usage_of(argv: list[str]) -> str:
    """The usage line a usage error of ``argv`` starts with: its sub-command's when it names one."""
    if argv and argv[0] in ("run", "compare", "report"):
        return f"usage: laber {argv[0]} "
    return "usage: laber "


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([*argv, "--help"])
    assert info.value.code == 0
    return capsys.readouterr().out


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    out = _help([], capsys)
    assert "run" in out and "compare" in out and "report" in out
    assert "``" not in out and "Train the reference DQN and compare replay sampling strategies." in out
    assert "laber compare --env CartPole-v1" in out  # the examples, one per line


@pytest.mark.parametrize("command", ["run", "compare", "report"])
def test_help_shows_defaults_and_never_breaks_an_arm_name(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from laber.agents.dqn import ARMS

    for width in ("50", "80", "150"):
        monkeypatch.setenv("COLUMNS", width)
        out = _help([command], capsys)
        assert "``" not in out
        lines = out.splitlines()
        assert not any(line.rstrip().endswith("-") for line in lines), out  # no word broken at a hyphen
        if command == "report":
            assert "(default: 1)" in " ".join(out.split())  # --smooth
            continue
        flat = " ".join(out.split())
        for arm in ARMS:
            assert arm in flat
        for shown in ("50000", "64", "0.99", "64,64", "1.0", "1e-06", "0.0001", "huber", "CartPole-v1"):
            assert f"(default: {shown})" in flat, shown
        if command == "compare":
            assert "(default: uniform,per,laber-mean)" in flat and "--seed-start + N - 1 (default: 5)" in flat
        else:
            assert "(default: laber-mean)" in flat


@pytest.fixture
def buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    from laber.agents import dqn
    from test_dqn import has_library_buffer, stand_in_factory

    real = dqn._make_buffer

    def make(config: Any, obs_shape: tuple[int, ...], seeds: Any) -> Any:
        if has_library_buffer(config.arm):
            return real(config, obs_shape, seeds)
        return stand_in_factory(config, obs_shape, np.random.default_rng(seeds.buffer))

    monkeypatch.setattr(dqn, "_make_buffer", make)


def test_run_compare_and_report(tmp_path: Path, buffers: None, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("tqdm")
    run_out = tmp_path / "one"
    assert main(["run", "--env", "CartPole-v1", "--arm", "per", "--seed", "2", "--out", str(run_out), *SHORT]) == 0
    said = capsys.readouterr().out
    assert "per seed 2 on CartPole-v1: final return " in said
    assert "(mean evaluation return over the last 10% of the steps; last evaluation " in said and "at step 160" in said
    info = json.loads((run_out / "result.json").read_text())
    assert info["config"]["seed"] == 2 and info["config"]["steps"] == 160 and info["config"]["hidden"] == [16]

    cmp_out = tmp_path / "cmp"
    argv = ["compare", "--arms", "uniform,laber-mean", "--seeds", "2", "--jobs", "1", "--out", str(cmp_out), *SHORT]
    assert main(argv) == 0
    assert "trained 4 runs, kept 0 (in " in capsys.readouterr().out
    assert (cmp_out / "curves.png").exists() and (cmp_out / "summary.md").exists()
    assert main(argv) == 0  # resumed: nothing left to train
    assert "trained 0 runs, kept 4" in capsys.readouterr().out

    changed = [a if a != "160" else "240" for a in argv]
    with pytest.raises(SystemExit) as info_exit:
        main(changed)
    assert info_exit.value.code == 2
    assert "argument --out:" in capsys.readouterr().err

    (cmp_out / "summary.md").unlink()
    assert main(["report", "--out", str(cmp_out)]) == 0
    assert (cmp_out / "summary.md").exists()
    with pytest.raises(SystemExit) as info_exit:
        main(["report", "--out", str(tmp_path / "nothing")])
    assert info_exit.value.code == 2
    assert capsys.readouterr().err.startswith("usage: laber report ")


def test_report_shows_runs_on_disk_after_a_smaller_compare(
    tmp_path: Path, buffers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "cmp"
    assert main(["compare", "--arms", "uniform,laber-mean", "--seeds", "2", "--out", str(out), *SHORT]) == 0
    assert main(["compare", "--arms", "uniform", "--seeds", "1", "--out", str(out), *SHORT]) == 0
    assert "trained 0 runs, kept 1" in capsys.readouterr().out
    settings = json.loads((out / "compare.json").read_text())
    assert settings["arms"] == ["uniform", "laber-mean"] and settings["seeds"] == [0, 1]
    (out / "summary.md").unlink()
    assert main(["report", "--out", str(out), "--smooth", "2", "--reference", "laber-mean"]) == 0
    said = capsys.readouterr().out
    assert "from 4 finished runs (seeds per arm: uniform 2, laber-mean 2)" in said
    summary = (out / "summary.md").read_text()
    assert "| uniform | 2 |" in summary and "| laber-mean | 2 |" in summary
    err = _usage_error(["report", "--out", str(out), "--reference", "per"], capsys)
    assert "argument --reference: reference arm 'per' has no finished runs" in err


def test_new_settings_reach_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--eps-start, --laber-eps and --per-eps (and the other agent settings) reach DQNConfig in run and compare."""
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    pytest.importorskip("matplotlib")
    import importlib

    from laber.experiments import runs

    compare_module = importlib.import_module("laber.experiments.compare")  # the package's `compare` is the function

    seen: list[Any] = []

    class Stop(Exception):
        pass

    def capture(config: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(config)
        raise Stop

    monkeypatch.setattr(runs, "execute", capture)
    monkeypatch.setattr(compare_module, "compare", capture)
    extra = ["--eps-start", "0.5", "--laber-eps", "0.01", "--per-eps", "0.002", "--per-alpha", "0.7"]
    with pytest.raises(Stop):
        main(["run", "--arm", "per", "--out", str(tmp_path / "r"), *SHORT, *extra])
    with pytest.raises(Stop):
        main(["compare", "--arms", "per", "--seeds", "1", "--out", str(tmp_path / "c"), *SHORT, *extra])
    assert len(seen) == 2
    for config in seen:
        assert (config.eps_start, config.laber_eps, config.per_eps, config.per_alpha) == (0.5, 0.01, 0.002, 0.7)
        assert (config.steps, config.batch_size, config.hidden) == (160, 16, (16,))


def test_help_and_missing_extra_without_torch() -> None:
    """`laber --help` needs numpy only; `laber run` without torch names the extra to install."""
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # makes `import torch` fail
        from laber.cli import main
        try:
            main(["run", "--steps", "10", "--no-progress"])
        except SystemExit as exc:
            print("exit", exc.code)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "exit 1", result.stderr
    assert "laber[torch]" in result.stderr


# ------------------------------------------------------------------------------------- nothing deleted or half-run
@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training fails the test: the usage errors below must come before it."""
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    from laber.agents import dqn

    def train(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("training started")

    monkeypatch.setattr(dqn, "train", train)


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``argv``, which must be a usage error printing its sub-command's usage; returns stderr."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert err.startswith(_usage_of(argv)), err
    return err


def test_run_never_deletes_a_directory_it_did_not_create(
    tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = tmp_path / "mydata"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    err = _usage_error(["run", "--arm", "uniform", "--out", str(mine), *SHORT], capsys)
    assert f"argument --out: out={str(mine)!r} exists and is not a laber run" in err
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mydata"]  # no mydata.partial either


def test_run_never_deletes_a_foreign_partial_directory(
    tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = tmp_path / "r.partial"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    err = _usage_error(["run", "--arm", "uniform", "--out", str(tmp_path / "r"), *SHORT], capsys)
    assert "argument --out:" in err and f"{str(foreign)!r} (the unfinished attempt of" in err
    assert (foreign / "notes.txt").read_text() == "mine" and not (tmp_path / "r").exists()


def test_run_never_replaces_a_compare(tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]) -> None:
    cmp_out = tmp_path / "cmp"
    cmp_out.mkdir()
    (cmp_out / "compare.json").write_text("{}")
    (cmp_out / "summary.md").write_text("results")
    err = _usage_error(["run", "--arm", "uniform", "--out", str(cmp_out), *SHORT], capsys)
    assert "holds a laber compare, not a run" in err and (cmp_out / "summary.md").exists()


def _bad_out(tmp_path: Path, kind: str) -> tuple[str, str]:
    """An --out value of the given kind, and the text the usage error must hold."""
    if kind == "empty":
        return "", "argument --out: must name a directory, got ''"
    if kind == "file":
        (tmp_path / "afile").write_text("data")
        return str(tmp_path / "afile"), "exists and is not a directory"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        return str(tmp_path / "pipe"), "exists and is not a directory"
    if kind == "devnull":
        return os.devnull, "exists and is not a directory"
    if kind == "under-file":
        (tmp_path / "afile").write_text("data")
        return str(tmp_path / "afile" / "run"), f"cannot be created: {str(tmp_path / 'afile')!r} is not a directory"
    if kind == "dot":
        return str(tmp_path / "x" / ".."), "must name a directory of its own"
    raise AssertionError(kind)


BAD_OUT = ["empty", "file", "fifo", "devnull", "under-file", "dot"]


@pytest.mark.parametrize("kind", BAD_OUT)
def test_bad_run_out_is_a_usage_error_before_anything_is_written(
    tmp_path: Path, kind: str, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    value, needle = _bad_out(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    err = _usage_error(["run", "--arm", "uniform", "--out", value, *SHORT], capsys)
    assert "argument --out:" in err and needle in err and repr(value) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert not os.path.lexists(os.devnull + ".partial")


@pytest.mark.parametrize("kind", BAD_OUT)
def test_bad_compare_out_is_a_usage_error_before_anything_is_written(
    tmp_path: Path, kind: str, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    if kind == "fifo" and not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    if kind == "dot":  # a compare may be written into `.` or `x/..`: it never renames or removes its directory
        return
    value, needle = _bad_out(tmp_path, kind)
    before = sorted(p.name for p in tmp_path.iterdir())
    err = _usage_error(["compare", "--arms", "uniform", "--seeds", "1", "--out", value, *SHORT], capsys)
    assert "argument --out:" in err and needle in err and repr(value) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def _read_only_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory this process may not write to: mode 0500, or, for root (whom mode bits do not stop), one that
    os.access reports as read-only (as it does for root on a read-only file system)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    if os.geteuid() == 0:
        real = os.access

        def access(path: Any, mode: int, **kwargs: Any) -> bool:
            if Path(path) == ro and mode & os.W_OK:
                return False
            return real(path, mode, **kwargs)

        monkeypatch.setattr(os, "access", access)
    return ro


@pytest.mark.parametrize("command", ["run", "compare"])
def test_unwritable_out_is_a_usage_error(
    tmp_path: Path, command: str, no_training: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    ro = _read_only_dir(tmp_path, monkeypatch)
    try:
        value = str(ro / "out")
        arm = ["--arm", "uniform"] if command == "run" else ["--arms", "uniform", "--seeds", "1"]
        err = _usage_error([command, *arm, "--out", value, *SHORT], capsys)
        assert f"argument --out: out={value!r} cannot be created: the directory {str(ro)!r} is not writable" in err
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ("Pendulum-v1", "the reference DQN needs a Discrete action space, got env_id='Pendulum-v1'"),
        ("MountainCarContinuous-v0", "the reference DQN needs a Discrete action space, got env_id='MountainCar"),
        ("FrozenLake-v1", "the reference DQN needs a flat Box observation space, got env_id='FrozenLake-v1'"),
    ],
)
@pytest.mark.parametrize("command", ["run", "compare"])
def test_environment_the_dqn_cannot_handle_is_a_usage_error(
    tmp_path: Path, env: str, needle: str, command: str, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    arm = ["--arm", "uniform"] if command == "run" else ["--arms", "uniform", "--seeds", "1"]
    err = _usage_error([command, "--env", env, *arm, "--out", str(out), *SHORT], capsys)
    assert f"argument --env: {needle}" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "extra",
    [
        ["--steps", "80"],  # == --learning-starts
        ["--steps", "50"],  # < --learning-starts
        ["--steps", "99", "--train-freq", "50"],  # past --learning-starts, before the first update at step 100
    ],
)
@pytest.mark.parametrize("command", ["run", "compare"])
def test_run_that_never_trains_is_a_usage_error(
    tmp_path: Path, extra: list[str], command: str, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    arm = ["--arm", "uniform"] if command == "run" else ["--arms", "uniform", "--seeds", "1"]
    err = _usage_error([command, *arm, "--out", str(out), *SHORT, *extra], capsys)
    assert "argument --steps: the run would never train" in err and "--learning-starts 80" in err
    assert f"got --steps {extra[1]}" in err and "nan" not in err
    assert list(tmp_path.iterdir()) == []


def test_run_replaces_its_own_finished_run_and_trains_at_the_first_update(
    tmp_path: Path, buffers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r"
    argv = ["run", "--arm", "uniform", "--out", str(out), "--no-tensorboard", *SHORT, "--steps", "81"]
    assert main(argv) == 0  # one update, at step 81
    first = capsys.readouterr().out
    assert "ms per update" in first and "nan" not in first
    assert json.loads((out / "result.json").read_text())["updates"] == 1
    assert json.loads((out / ".laber-run").read_text())["created_by"] == "laber"
    assert main([*argv, "--seed", "1"]) == 0  # a finished laber run at --out is replaced
    assert json.loads((out / "result.json").read_text())["config"]["seed"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r"]


def test_compare_never_writes_into_a_foreign_directory(
    tmp_path: Path, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "summary.md").write_text("my own summary")
    err = _usage_error(["compare", "--arms", "uniform", "--seeds", "1", "--out", str(mine), *SHORT], capsys)
    assert f"argument --out: out={str(mine)!r} exists and is not a laber compare" in err
    assert sorted(p.name for p in mine.iterdir()) == ["summary.md"]
    assert (mine / "summary.md").read_text() == "my own summary"


@pytest.mark.parametrize("name", ["seed0", "seed0.partial"])
def test_compare_never_deletes_a_foreign_run_directory(
    tmp_path: Path, name: str, no_training: None, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    cmp_out = tmp_path / "cmp"
    (cmp_out / "uniform" / name).mkdir(parents=True)
    (cmp_out / "compare.json").write_text("{}")  # a compare written before markers existed
    (cmp_out / "uniform" / name / "keep.txt").write_text("not laber's")
    err = _usage_error(["compare", "--arms", "uniform", "--seeds", "1", "--out", str(cmp_out), *SHORT], capsys)
    assert "argument --out:" in err and "is not a laber run" in err
    assert (cmp_out / "uniform" / name / "keep.txt").read_text() == "not laber's"
