"""The distributions laber ships, checked end to end (``make package-check``, part of ``make test``).

1. ``python -m build --no-isolation`` makes the sdist, then the wheel from the unpacked sdist (so a file missing
   from the sdist breaks the wheel too); ``--no-isolation`` uses the venv's setuptools and wheel (the ``dev``
   extra) instead of downloading them into a fresh build environment. It builds from a copy of the files git
   would commit (tracked, or untracked and not ignored), as a fresh clone has them: a stale ``*.egg-info`` in
   the working tree would otherwise add its old file list to the sdist and hide a missing MANIFEST.in line.
2. ``twine check --strict`` accepts both.
3. The sdist holds README.md, LICENSE, CHANGELOG.md, pyproject.toml, every file of src/laber (py.typed included)
   and the test suite; no venv, run directory, cache, build output or benchmark environment. The wheel holds
   every module and py.typed, and nothing outside the ``laber`` package and its metadata.
4. Both are named for ``laber.__version__`` (read from src/laber/__init__.py), and so is the wheel's metadata.
5. The wheel, installed into a clean venv (no pip, no torch, nothing but laber and numpy), imports from that venv
   with ``laber.__version__`` right, samples a buffer and draws with LaBER, and ``laber --version`` prints
   ``laber <version>``.

Run from the repository root with the venv's python: ``.venv/bin/python tests/package_check.py``. Exits non-zero
with a message naming what is wrong; prints one line per check and the time each took.
"""

from __future__ import annotations

import email.parser
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "laber"

# Path parts that must never be in a distribution.
FORBIDDEN_PARTS = {
    ".venv",
    "runs",
    ".git",
    "build",
    "dist",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "benchmarks",
}


class CheckError(RuntimeError):
    pass


def _run(cmd: list[str], *, cwd: Path = ROOT, what: str) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise CheckError(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return result.stdout


def _version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"$', (SRC / "__init__.py").read_text(), re.MULTILINE)
    if match is None:
        raise CheckError("src/laber/__init__.py assigns no __version__ = '...' string")
    return match.group(1)


def _forbidden(names: list[str]) -> list[str]:
    bad = []
    for name in names:
        parts = Path(name).parts
        if any(p in FORBIDDEN_PARTS or p.startswith(".venv-") for p in parts) or name.endswith((".pyc", ".pyo")):
            bad.append(name)
    return bad


def _source_files(tree: Path) -> list[str]:
    """Every file of the package in the tree built from, relative to its root."""
    return sorted(
        str(p.relative_to(tree))
        for p in (tree / "src" / "laber").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".pyc", ".pyo")
    )


def _clean_copy(dest: Path) -> Path:
    """The files git would commit, copied to ``dest`` (the tree itself when it is not a git checkout)."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return ROOT  # e.g. an unpacked sdist: build in place
    for name in listed.decode().split("\0"):
        source = ROOT / name
        if name and source.is_file():  # a tracked file deleted in the working tree is skipped
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return dest


def check_sdist(sdist: Path, version: str, tree: Path) -> int:
    prefix = f"laber-{version}/"
    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    outside = [n for n in names if not n.startswith(prefix)]
    if outside:
        raise CheckError(f"sdist {sdist.name}: files outside {prefix}: {outside[:5]}")
    rel = {n[len(prefix) :] for n in names}
    required = {"README.md", "LICENSE", "CHANGELOG.md", "pyproject.toml", "PKG-INFO", "tests/conftest.py"}
    required |= set(_source_files(tree))
    required |= {str(p.relative_to(tree)) for p in (tree / "tests").glob("test_*.py")}
    missing = sorted(required - rel)
    if missing:
        raise CheckError(f"sdist {sdist.name} lacks {missing}")
    bad = _forbidden(sorted(rel))
    if bad:
        raise CheckError(f"sdist {sdist.name} holds what it must not: {bad[:10]}")
    return len(rel)


def check_wheel(wheel: Path, version: str, tree: Path) -> int:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(f"laber-{version}.dist-info/METADATA").decode()
    info = email.parser.Parser().parsestr(metadata)
    if info["Version"] != version:
        raise CheckError(f"wheel metadata says version {info['Version']!r}, laber.__version__ is {version!r}")
    if info["Name"] != "laber":
        raise CheckError(f"wheel metadata says name {info['Name']!r}")
    outside = [n for n in names if not (n.startswith("laber/") or n.startswith(f"laber-{version}.dist-info/"))]
    if outside:
        raise CheckError(f"wheel {wheel.name} holds files outside the laber package: {outside[:10]}")
    expected = {f"laber/{Path(p).relative_to('src/laber')}" for p in _source_files(tree)}
    missing = sorted(expected - set(names))
    if missing:
        raise CheckError(f"wheel {wheel.name} lacks {missing}")
    bad = _forbidden(names)
    if bad:
        raise CheckError(f"wheel {wheel.name} holds what it must not: {bad[:10]}")
    return len(names)


_IN_CLEAN_VENV = textwrap.dedent(
    """
    import importlib.metadata as md
    import importlib.util
    import sys

    import numpy as np

    import laber

    venv = sys.argv[1]
    assert laber.__file__.startswith(venv), f"laber imported from {laber.__file__}, not from the venv {venv}"
    installed = sorted(d.metadata["Name"].lower() for d in md.distributions())
    assert installed == ["laber", "numpy"], f"the clean venv holds {installed}, expected laber and numpy only"
    for extra in ("torch", "gymnasium", "matplotlib", "tqdm", "numba", "scipy"):
        assert importlib.util.find_spec(extra) is None, f"{extra} is importable in the clean venv"
    assert md.version("laber") == laber.__version__, (md.version("laber"), laber.__version__)
    rb = laber.ReplayBuffer(64, {"obs": {"shape": 4}, "rew": {}}, rng=0)
    rb.add(obs=np.ones((10, 4)), rew=np.arange(10.0))
    batch = rb.sample(16)
    out = laber.LaBERmean(4, 4, rng=0)(priorities=np.abs(batch["rew"]).ravel() + 1.0, obs=batch["obs"])
    assert out["obs"].shape == (4, 4) and not laber.numba_enabled()
    print(laber.__version__)
    """
)


def check_clean_install(wheel: Path, version: str, work: Path) -> str:
    venv = work / "clean-venv"
    # No pip in the venv: this venv's pip installs into it (pip --python), which saves seeding pip each run.
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], what="creating the clean venv")
    python = venv / "bin" / "python"
    _run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
        what="installing the wheel into the clean venv",
    )
    # Run outside the tree (-I: no cwd, no PYTHONPATH, no user site), so src/ cannot be what is imported.
    printed = _run([str(python), "-I", "-c", _IN_CLEAN_VENV, str(venv)], cwd=work, what="importing laber").strip()
    if printed != version:
        raise CheckError(f"laber.__version__ in the clean venv is {printed!r}, expected {version!r}")
    answer = _run([str(venv / "bin" / "laber"), "--version"], cwd=work, what="laber --version").strip()
    if answer != f"laber {version}":
        raise CheckError(f"laber --version printed {answer!r}, expected 'laber {version}'")
    return answer


def main() -> int:
    version = _version()
    start = time.perf_counter()

    def step(text: str) -> None:
        print(f"package-check: {text} ({time.perf_counter() - start:.1f} s)", flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="laber-package-check-") as tmp:
            work = Path(tmp)
            dist = work / "dist"
            tree = _clean_copy(work / "tree")
            _run(
                [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(tree)],
                what="python -m build",
            )
            sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
            expected = ([f"laber-{version}.tar.gz"], [f"laber-{version}-py3-none-any.whl"])
            if ([p.name for p in sdists], [p.name for p in wheels]) != expected:
                raise CheckError(f"python -m build made {sorted(p.name for p in dist.iterdir())}, expected {expected}")
            sdist, wheel = sdists[0], wheels[0]
            sizes = [f"{p.name} ({p.stat().st_size // 1024} KiB)" for p in (sdist, wheel)]
            step("built " + ", ".join(sizes))
            out = _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], what="twine")
            lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).replace(f"{dist}/", "") for line in out.splitlines()]
            step("twine check --strict: " + "; ".join(line.strip() for line in lines if line.strip()))
            n_sdist, n_wheel = check_sdist(sdist, version, tree), check_wheel(wheel, version, tree)
            step(f"sdist: {n_sdist} files, README, LICENSE, CHANGELOG, src, py.typed, tests; no venv, runs, caches")
            step(f"wheel: {n_wheel} files, every module and py.typed, metadata version {version}")
            answer = check_clean_install(wheel, version, work)
            step(f"clean venv (laber + numpy only): import laber -> {version}; laber --version -> {answer}")
    except CheckError as exc:
        print(f"package-check: FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"package-check: ok, laber {version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
