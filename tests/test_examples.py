"""The scripts in examples/ run to the end (short settings)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _run(script: str, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_laber_synthetic(tmp_path: Path) -> None:
    out = _run("laber_synthetic.py", cwd=tmp_path)
    assert "LaBER is" in out


def test_per_laber(tmp_path: Path) -> None:
    out = _run("per_laber.py", cwd=tmp_path)
    assert "refreshed priorities equal the TD errors: True" in out


def test_dqn_laber_cartpole(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    _run("dqn_laber_cartpole.py", "--steps", "300", cwd=tmp_path)


def test_her_bitflip(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = _run("her_bitflip.py", "--quick", cwd=tmp_path)
    assert "with HER (future, k = 4): success rate" in out and "without HER" in out


def test_apex(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    script = [sys.executable, str(EXAMPLES / "apex.py"), "--steps", "2000", "--log-every", "1"]
    with subprocess.Popen(script, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path) as proc:
        out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    assert "explorers stopped and joined (exit codes [0, 0]), buffer closed" in out
    assert "mean evaluation return of the greedy learner policy" in out
    assert "leaked" not in err  # the resource tracker found no shared memory left behind
    assert not list(Path("/dev/shm").glob(f"laber_{proc.pid}_*"))  # the buffer's segments are unlinked
