"""Package-level promises: numpy-only core, extras named on a missing import, a typed public surface."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

import laber
from laber._optional import require


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
