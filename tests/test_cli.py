"""The ``laber`` command: usage errors name the argument (exit status 2); run, compare and report work."""

from __future__ import annotations

import json
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
        ([], "the following arguments are required: {run,compare,report}"),
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
    ],
)
def test_bad_arguments_are_usage_errors(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: laber") and needle in err


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


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "run" in out and "compare" in out and "report" in out


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
    assert "per seed 2 on CartPole-v1" in capsys.readouterr().out
    info = json.loads((run_out / "result.json").read_text())
    assert info["config"]["seed"] == 2 and info["config"]["steps"] == 160 and info["config"]["hidden"] == [16]

    cmp_out = tmp_path / "cmp"
    argv = ["compare", "--arms", "uniform,laber-mean", "--seeds", "2", "--jobs", "1", "--out", str(cmp_out), *SHORT]
    assert main(argv) == 0
    assert "trained 4 runs, kept 0" in capsys.readouterr().out
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
