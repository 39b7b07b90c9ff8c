"""Package-level promises: numpy-only core, extras named on a missing import, a typed public surface, one version.

The built distributions (sdist, wheel, a clean install) are checked by ``make package-check``
(tests/package_check.py), which ``make test`` runs after pytest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import laber
from laber._optional import require

ROOT = Path(__file__).resolve().parent.parent


def test_import_needs_numpy_only() -> None:
    """`import laber` and a LaBER draw work with torch, gymnasium, matplotlib, tqdm and ray all unavailable."""
    code = textwrap.dedent(
        """
        import sys
        for name in ("torch", "gymnasium", "matplotlib", "tqdm", "ray", "scipy", "numba"):
            sys.modules[name] = None  # makes `import name` fail
        import numpy as np
        import laber
        assert not laber.numba_enabled()
        out = laber.LaBERmean(4, 2, rng=0)(priorities=np.ones(8))
        assert out["indexes"].shape == (4,)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_missing_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"progress bars needs the optional dependency 'tqdm'.*laber\[progress\]"):
        require("tqdm", "progress bars")


def test_public_surface() -> None:
    assert set(laber.__all__) >= {"LaBERmean", "LaBERlazy", "LaBERmax", "laber_subsample"}
    for name in laber.__all__:
        assert getattr(laber, name).__doc__, name


def test_set_numba_validates_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from laber import _accel

    with pytest.raises(TypeError, match=r"enabled must be True, False or None, got enabled='yes'"):
        laber.set_numba("yes")  # type: ignore[arg-type]
    monkeypatch.setattr(_accel, "_numba", None)  # as if numba were not installed
    with pytest.raises(ModuleNotFoundError, match=r"laber\[fast\]"):
        laber.set_numba(True)
    assert not laber.numba_enabled()
    laber.set_numba(False)
    assert not laber.numba_enabled()
    laber.set_numba(None)


def test_laber_numba_environment_variable() -> None:
    code = "import laber; print(laber.numba_enabled())"
    env = {**os.environ, "LABER_NUMBA": "0"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_version_is_written_once() -> None:
    """pyproject.toml reads the version from ``laber.__version__`` instead of writing its own."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    assert re.fullmatch(r"\d+\.\d+\.\d+", laber.__version__), laber.__version__
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "laber.__version__"}


def test_changelog_newest_entry_is_the_version() -> None:
    """CHANGELOG.md's headings are `## [Unreleased]` or `## [X.Y.Z] - YYYY-MM-DD`, newest first; the newest
    version is laber.__version__."""
    headings = re.findall(r"^## (.*)$", (ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    releases = []
    for heading in headings:
        if heading == "[Unreleased]":
            continue
        match = re.fullmatch(r"\[(\d+)\.(\d+)\.(\d+)\] - \d{4}-\d{2}-\d{2}", heading)
        assert match, f"CHANGELOG.md heading {heading!r} is neither [Unreleased] nor [X.Y.Z] - YYYY-MM-DD"
        releases.append(tuple(int(part) for part in match.groups()))
    assert releases, "CHANGELOG.md has no release entry"
    assert releases == sorted(set(releases), reverse=True), f"releases not newest first or repeated: {releases}"
    assert ".".join(map(str, releases[0])) == laber.__version__


def test_version_option(capsys: pytest.CaptureFixture[str]) -> None:
    from laber.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"laber {laber.__version__}\n"
