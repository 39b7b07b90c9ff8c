"""The robustness table: malformed calls over laber's public API, and the document rendered from them.

Each ``Case`` builds an object holding state worth protecting (stored rows, pending N-step rows, ``next_of`` and
``stack_compress`` side stores, PER priorities and trees, advanced generators), makes one malformed call on it,
and states the exception type it must raise and the text its message must contain (the argument's name, and
where useful the bad value echoed back). ``tests/test_robustness.py`` runs every case and also checks that the
object is unchanged; constructors have no object (``factory=None``), so only their error is checked.

``docs/robustness.md`` is rendered from this table by running every case (numpy backend, so the document does
not depend on whether numba is installed). Regenerate it with::

    .venv/bin/python tests/robustness_table.py --write      # or: make robustness-doc

(without ``--write`` the document goes to stdout).

A case with ``defect`` set shows a known library defect: the test is ``xfail(strict=True)`` until it is fixed,
and the document lists it under "Known defects" with what happens today.
"""

from __future__ import annotations

import atexit
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import laber
from laber import (
    LaBERlazy,
    LaBERmax,
    LaBERmean,
    PrioritizedReplayBuffer,
    ReplayBuffer,
    SumMinTree,
    _accel,
    laber_subsample,
    per_laber_subsample,
)

__all__ = ["CASES", "DOC_PATH", "Case", "outcome", "render"]

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "robustness.md"
REGENERATE = ".venv/bin/python tests/robustness_table.py --write"


@dataclass(frozen=True)
class Case:
    """One malformed call: ``call(factory())`` must raise exactly ``error`` with ``names`` (and ``echo``) in
    its message, and leave the factory's object unchanged."""

    id: str
    api: str  # the public callable, as the document shows it
    description: str  # the bad input, one line of markdown
    call: Callable[[Any], object]
    error: type[Exception]
    names: str  # the argument's name as the message must spell it
    factory: Callable[[], Any] | None = None  # None: a constructor or a stateless function
    echo: str | None = None  # the bad value, as the message must echo it
    defect: str | None = None  # a known library defect: the case fails until it is fixed


# ------------------------------------------------------------------------------------------------ fixtures
ENV: dict[str, dict[str, Any]] = {
    "obs": {"shape": 3},
    "act": {"dtype": np.uint8},
    "rew": {},
    "next_obs": {"shape": 3},
    "done": {},
}
ENV_NEXT_OF: dict[str, dict[str, Any]] = {k: v for k, v in ENV.items() if k != "next_obs"}
NSTEP: dict[str, Any] = {"size": 3, "rew": "rew", "gamma": 0.9, "next": "next_obs"}
SMALL: dict[str, dict[str, Any]] = {"obs": {}, "rew": {}}


def transitions(k: int, start: int = 0) -> dict[str, np.ndarray]:
    """``k`` transitions whose ``next_obs`` is the next one's ``obs`` (so ``next_of`` links them)."""
    t = np.arange(start, start + k, dtype=np.float32)
    obs = np.stack([t, t + 0.5, -t], axis=1)
    return {
        "obs": obs,
        "act": (np.arange(start, start + k) % 4).astype(np.uint8),
        "rew": 0.1 * t,
        "next_obs": np.stack([t + 1, t + 1.5, -t - 1], axis=1),
        "done": np.zeros(k, dtype=np.float32),
    }


def one(i: int = 0) -> dict[str, Any]:
    """One valid transition (each field of its own shape)."""
    return {k: v[0] for k, v in transitions(1, i).items()}


def batch(k: int = 2, **override: Any) -> dict[str, Any]:
    """``k`` valid transitions with some fields replaced."""
    return {**transitions(k, 40), **override}


def nstep_buffer() -> ReplayBuffer:
    """16 rows, 3-step returns: 6 stored rows, 2 transitions pending, rng advanced."""
    rb = ReplayBuffer(16, ENV, Nstep=NSTEP, rng=0)
    rb.add(**transitions(6))
    rb.on_episode_end()
    rb.add(**transitions(2, 10))
    rb.sample(4)
    return rb


def ring_buffer() -> ReplayBuffer:
    """8 rows, no N-step, wrapped around once (11 adds)."""
    rb = ReplayBuffer(8, ENV, rng=1)
    rb.add(**transitions(5))
    for i in range(5, 11):
        rb.add(**one(i))
    rb.sample(3)
    return rb


def next_of_buffer() -> ReplayBuffer:
    """``next_of="obs"`` with 3-step returns: linked rows, side-store slots, pending links and N-step rows."""
    rb = ReplayBuffer(16, ENV_NEXT_OF, next_of="obs", Nstep=NSTEP, rng=2)
    rb.add(**transitions(5))
    rb.on_episode_end()
    rb.add(**transitions(4, 20))
    rb.sample(4)
    return rb


def stacks(k: int, start: int = 0) -> dict[str, np.ndarray]:
    """``k`` transitions of 3 stacked frames ``(2, 3)`` (stack on the last axis), each stack continuing the last."""
    frames = np.arange(start - 2, start + k + 1, dtype=np.float32)
    obs = np.stack([np.stack([frames[i : i + 3], -frames[i : i + 3]]) for i in range(k + 1)])
    return {"obs": obs[:k], "act": np.zeros(k, np.uint8), "rew": np.ones(k, np.float32), "next_obs": obs[1:]}


def stack_buffer() -> ReplayBuffer:
    """``stack_compress="obs"`` and ``next_of="obs"``: anchors in the side store, linked rows, a pending link."""
    env: dict[str, dict[str, Any]] = {"obs": {"shape": (2, 3)}, "act": {"dtype": np.uint8}, "rew": {}}
    rb = ReplayBuffer(16, env, next_of="obs", stack_compress="obs", rng=3)
    rb.add(**stacks(5))
    rb.add(**stacks(3, 30))
    rb.sample(4)
    return rb


def per_buffer(alpha: float = 0.6) -> PrioritizedReplayBuffer:
    """PER with 3-step returns: 6 stored rows of given priorities (two updated), 2 pending, rng advanced."""
    rb = PrioritizedReplayBuffer(16, ENV, Nstep=NSTEP, alpha=alpha, eps=1e-3, rng=4)
    rb.add(priorities=np.linspace(0.5, 3.0, 6), **transitions(6))
    rb.on_episode_end()
    rb.update_priorities(np.array([0, 2]), np.array([5.0, 0.25]))
    rb.add(priorities=np.array([0.7, 0.9]), **transitions(2, 10))
    rb.sample(4)
    return rb


def per_zero_mass() -> PrioritizedReplayBuffer:
    """PER with ``eps=0`` whose 3 stored rows all have priority 0: nothing can be drawn."""
    rb = PrioritizedReplayBuffer(8, ENV, eps=0.0, rng=5)
    rb.add(priorities=np.zeros(3), **transitions(3))
    return rb


def empty_buffer() -> ReplayBuffer:
    """No stored row yet, but 2 transitions pending in the N-step window."""
    rb = ReplayBuffer(8, ENV, Nstep=NSTEP, rng=6)
    rb.add(**transitions(2))
    return rb


def empty_per() -> PrioritizedReplayBuffer:
    return PrioritizedReplayBuffer(8, ENV, rng=7)


def sampler(cls: type[LaBERmean | LaBERlazy | LaBERmax] = LaBERmean, eps: float = 1e-6) -> Any:
    """A ``B = 4, m = 2`` sampler (takes 8 priorities) that has drawn once."""
    s = cls(4, 2, eps=eps, rng=8)
    s(priorities=np.arange(8.0))
    return s


def generator() -> np.random.Generator:
    """A generator that has drawn, for the functional ``laber_subsample(..., rng=gen)``."""
    gen = np.random.default_rng(9)
    gen.random(3)
    return gen


def tree() -> SumMinTree:
    t = SumMinTree(8, top_size=2, min_fanout=2)
    t.update([0, 3, 5, 6], [1.0, 2.0, 0.5, 0.0])
    return t


def empty_tree_and_generator() -> tuple[SumMinTree, np.random.Generator]:
    return SumMinTree(8), generator()


def per_large_batch() -> tuple[LaBERmean, dict[str, np.ndarray]]:
    """A used ``LaBERmean(4, 2)`` and a large batch of 8 rows from ``per_buffer`` (fields, indexes, weights)."""
    return sampler(), per_buffer().sample(8, beta=0.4)


# scratch files: one directory per process, one subdirectory per case, named by the case (the document shows
# paths relative to it, so it does not depend on where the temporary directory is)
_SCRATCH: list[Path] = []


def scratch(case_id: str) -> Path:
    """A fresh, empty directory for one case."""
    if not _SCRATCH:
        root = Path(tempfile.mkdtemp(prefix="laber-robustness-"))
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        _SCRATCH.append(root)
    d = _SCRATCH[0] / case_id
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def files(case_id: str, make: Callable[[Path], object] | None = None) -> Callable[[], tuple[ReplayBuffer, Path]]:
    """A factory for ``(nstep_buffer(), directory)``, ``make(directory)`` having put files in the directory."""

    def build() -> tuple[ReplayBuffer, Path]:
        d = scratch(case_id)
        if make is not None:
            make(d)
        return nstep_buffer(), d

    return build


def _plain_npz(d: Path) -> None:
    np.savez(d / "plain.npz", rows=np.zeros(3))


def _text_file(d: Path) -> None:
    (d / "notes.txt").write_text("not a checkpoint\n")


def _other_fields(d: Path) -> None:
    rb = ReplayBuffer(16, {"obs": {"shape": 3}}, rng=0)
    rb.add(obs=np.zeros((2, 3)))
    rb.save_checkpoint(d / "ckpt.npz")


def _other_nstep(d: Path) -> None:
    rb = ReplayBuffer(16, ENV, Nstep={**NSTEP, "size": 2}, rng=0)
    rb.add(**transitions(4))
    rb.save_checkpoint(d / "ckpt.npz")


def _truncated(d: Path) -> None:
    rb = ReplayBuffer(32, ENV, Nstep=NSTEP, rng=0)
    rb.add(**transitions(20))
    rb.on_episode_end()
    rb.save_checkpoint(d / "ckpt.npz")
    with open(d / "ckpt.npz", "r+b") as fh:  # a copy cut short, e.g. by a full disk
        fh.truncate((d / "ckpt.npz").stat().st_size // 2)


def _a_directory(d: Path) -> None:
    (d / "adir").mkdir()


# ------------------------------------------------------------------------------------------------ defects
# Known library defects (being fixed); each case naming one is xfail(strict=True) until then.


# ------------------------------------------------------------------------------------------------ the table
CASES: list[Case] = []


def case(
    id: str,
    api: str,
    description: str,
    call: Callable[[Any], object],
    error: type[Exception],
    names: str,
    factory: Callable[[], Any] | None = None,
    *,
    echo: str | None = None,
    defect: str | None = None,
) -> None:
    CASES.append(Case(id, api, description, call, error, names, factory, echo, defect))


NAN, INF = float("nan"), float("inf")
RB = "ReplayBuffer(...)"
PER = "PrioritizedReplayBuffer(...)"

# ReplayBuffer(size, ...)
case("rb-size-zero", RB, "`size=0`", lambda _: ReplayBuffer(0, ENV), ValueError, "size", echo="size=0")
case("rb-size-negative", RB, "`size=-5`", lambda _: ReplayBuffer(-5, ENV), ValueError, "size", echo="-5")
case("rb-size-fraction", RB, "`size=1.5`", lambda _: ReplayBuffer(1.5, ENV), ValueError, "size", echo="1.5")
case("rb-size-nan", RB, "`size=nan`", lambda _: ReplayBuffer(NAN, ENV), ValueError, "size", echo="nan")
case("rb-size-inf", RB, "`size=inf`", lambda _: ReplayBuffer(INF, ENV), ValueError, "size", echo="inf")
case(
    "rb-size-str",
    RB,
    "`size='100'` (a string)",
    lambda _: ReplayBuffer("100", ENV),  # type: ignore[arg-type]
    TypeError,
    "size",
    echo="'100'",
)
case(
    "rb-size-none",
    RB,
    "`size=None`",
    lambda _: ReplayBuffer(None, ENV),  # type: ignore[arg-type]
    TypeError,
    "size",
    echo="None",
)
# env_dict
case("rb-env-none", RB, "`env_dict` missing", lambda _: ReplayBuffer(8), TypeError, "env_dict")
case("rb-env-empty", RB, "`env_dict={}`", lambda _: ReplayBuffer(8, {}), TypeError, "env_dict")
case(
    "rb-env-list",
    RB,
    "`env_dict` a list of pairs",
    lambda _: ReplayBuffer(8, [("obs", {})]),  # type: ignore[arg-type]
    TypeError,
    "env_dict",
)
case(
    "rb-env-spec-int",
    RB,
    "`env_dict={'obs': 4}` (spec not a dict)",
    lambda _: ReplayBuffer(8, {"obs": 4}),  # type: ignore[dict-item]
    TypeError,
    "env_dict['obs']",
)
case(
    "rb-env-key-empty",
    RB,
    "a field named `''`",
    lambda _: ReplayBuffer(8, {"": {}}),
    TypeError,
    "env_dict keys",
    echo="''",
)
case(
    "rb-env-key-int",
    RB,
    "a field named `3` (not a str)",
    lambda _: ReplayBuffer(8, {3: {}}),  # type: ignore[dict-item]
    TypeError,
    "env_dict keys",
)
case(
    "rb-env-spec-unknown-key",
    RB,
    "`{'obs': {'shape': 3, 'dtpye': float}}` (misspelt key)",
    lambda _: ReplayBuffer(8, {"obs": {"shape": 3, "dtpye": float}}),
    ValueError,
    "env_dict['obs']",
    echo="dtpye",
)
case(
    "rb-shape-zero",
    RB,
    "`shape=0`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": 0}}),
    ValueError,
    "env_dict['obs']['shape']",
    echo="shape=0",
)
case(
    "rb-shape-negative",
    RB,
    "`shape=(2, -1)`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, -1)}}),
    ValueError,
    "env_dict['obs']['shape']",
    echo="(2, -1)",
)
case(
    "rb-shape-float",
    RB,
    "`shape=2.5`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": 2.5}}),
    TypeError,
    "env_dict['obs']['shape']",
    echo="2.5",
)
case(
    "rb-shape-str",
    RB,
    "`shape='4'`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": "4"}}),
    TypeError,
    "env_dict['obs']['shape']",
    echo="'4'",
)
case(
    "rb-shape-bool",
    RB,
    "`shape=True`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": True}}),
    TypeError,
    "env_dict['obs']['shape']",
    echo="True",
)
case(
    "rb-shape-float-dim",
    RB,
    "`shape=(2, 2.0)`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, 2.0)}}),
    ValueError,
    "env_dict['obs']['shape']",
)
case(
    "rb-shape-0d-array",
    RB,
    "`shape=np.array(4.0)` (a 0-d float array)",
    lambda _: ReplayBuffer(8, {"obs": {"shape": np.array(4.0)}}),
    TypeError,
    "env_dict['obs']['shape']",
)
case(
    "rb-dtype-unknown",
    RB,
    "`dtype='nope'`",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": "nope"}}),
    TypeError,
    "env_dict['obs']['dtype']",
    echo="'nope'",
)
case(
    "rb-dtype-object",
    RB,
    "`dtype=object`",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": object}}),
    TypeError,
    "env_dict['obs']['dtype']",
    echo="object",
)
case(
    "rb-dtype-str",
    RB,
    "`dtype='U3'` (strings)",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": "U3"}}),
    TypeError,
    "env_dict['obs']['dtype']",
)
case(
    "rb-dtype-datetime",
    RB,
    "`dtype=np.datetime64`",
    lambda _: ReplayBuffer(8, {"obs": {"dtype": np.datetime64}}),
    TypeError,
    "env_dict['obs']['dtype']",
)
case(
    "rb-field-indexes",
    RB,
    "a field named `indexes`",
    lambda _: ReplayBuffer(8, {"obs": {}, "indexes": {}}),
    ValueError,
    "'indexes'",
)
case(
    "rb-field-weights",
    RB,
    "a field named `weights`",
    lambda _: ReplayBuffer(8, {"obs": {}, "weights": {}}),
    ValueError,
    "'weights'",
)
case(
    "rb-field-discount",
    RB,
    "a field named `discount`, no `Nstep`",
    lambda _: ReplayBuffer(8, {"obs": {}, "discount": {}}),
    ValueError,
    "'discount'",
)
case(
    "rb-field-discount-nstep",
    RB,
    "a field named `discount` with `Nstep`",
    lambda _: ReplayBuffer(8, {**SMALL, "discount": {}}, Nstep={"size": 2, "rew": "rew"}),
    ValueError,
    "'discount'",
)
case(
    "rb-field-next-link",
    RB,
    "a field named `_next_link` with `next_of`",
    lambda _: ReplayBuffer(8, {"obs": {}, "_next_link": {}}, next_of="obs"),
    ValueError,
    "'_next_link'",
)
case(
    "rb-field-steps",
    RB,
    "a field named `_steps` with `Nstep`",
    lambda _: ReplayBuffer(8, {**SMALL, "_steps": {}}, Nstep={"size": 2, "rew": "rew"}),
    ValueError,
    "'_steps'",
)
case(
    "rb-default-dtype-unknown",
    RB,
    "`default_dtype='nope'`",
    lambda _: ReplayBuffer(8, ENV, default_dtype="nope"),
    TypeError,
    "default_dtype",
    echo="'nope'",
)
case(
    "rb-default-dtype-object",
    RB,
    "`default_dtype=object`",
    lambda _: ReplayBuffer(8, {"obs": {}}, default_dtype=object),
    TypeError,
    "default_dtype",
)
case("rb-rng-negative", RB, "`rng=-1`", lambda _: ReplayBuffer(8, ENV, rng=-1), ValueError, "rng", echo="-1")
case(
    "rb-rng-str",
    RB,
    "`rng='seed'`",
    lambda _: ReplayBuffer(8, ENV, rng="seed"),  # type: ignore[arg-type]
    TypeError,
    "rng",
    echo="'seed'",
)
case(
    "rb-rng-float",
    RB,
    "`rng=1.5`",
    lambda _: ReplayBuffer(8, ENV, rng=1.5),  # type: ignore[arg-type]
    TypeError,
    "rng",
    echo="1.5",
)
case(
    "rb-unknown-keyword",
    RB,
    "`nstep=...` (lower case)",
    lambda _: ReplayBuffer(8, ENV, nstep=NSTEP),  # type: ignore[call-arg]
    TypeError,
    "nstep",
)
# next_of, stack_compress
case(
    "rb-next-of-unknown",
    RB,
    "`next_of='state'` (no such field)",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of="state"),
    ValueError,
    "next_of",
    echo="'state'",
)
case(
    "rb-next-of-int",
    RB,
    "`next_of=3`",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of=3),  # type: ignore[arg-type]
    TypeError,
    "next_of",
    echo="3",
)
case(
    "rb-next-of-empty",
    RB,
    "`next_of=[]`",
    lambda _: ReplayBuffer(8, ENV_NEXT_OF, next_of=[]),
    TypeError,
    "next_of",
)
case(
    "rb-next-of-declared",
    RB,
    "`next_of='obs'` with `next_obs` in `env_dict`",
    lambda _: ReplayBuffer(8, ENV, next_of="obs"),
    ValueError,
    "next_of",
)
case(
    "rb-stack-unknown",
    RB,
    "`stack_compress='frames'` (no such field)",
    lambda _: ReplayBuffer(8, ENV, stack_compress="frames"),
    ValueError,
    "stack_compress",
    echo="'frames'",
)
case(
    "rb-stack-int",
    RB,
    "`stack_compress=5`",
    lambda _: ReplayBuffer(8, ENV, stack_compress=5),  # type: ignore[arg-type]
    TypeError,
    "stack_compress",
    echo="5",
)
case(
    "rb-stack-one-frame",
    RB,
    "`stack_compress='rew'` (shape `(1,)`)",
    lambda _: ReplayBuffer(8, ENV, stack_compress="rew"),
    ValueError,
    "stack_compress",
    echo="'rew'",
)
case(
    "rb-stack-depths",
    RB,
    "`stack_compress=['a', 'b']` of 3 and 4 frames",
    lambda _: ReplayBuffer(8, {"a": {"shape": (2, 3)}, "b": {"shape": (2, 4)}}, stack_compress=["a", "b"]),
    ValueError,
    "stack_compress",
)
case(
    "rb-stack-derived",
    RB,
    "`stack_compress='next_obs'` with `next_of='obs'`",
    lambda _: ReplayBuffer(8, {"obs": {"shape": (2, 3)}}, next_of="obs", stack_compress="next_obs"),
    ValueError,
    "stack_compress",
    echo="'next_obs'",
)
# Nstep
case("rb-nstep-str", RB, "`Nstep='3'`", lambda _: ReplayBuffer(8, SMALL, Nstep="3"), TypeError, "Nstep")  # type: ignore[arg-type]
case(
    "rb-nstep-unknown-key",
    RB,
    "`Nstep={..., 'gama': 0.9}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "gama": 0.9}),
    ValueError,
    "Nstep",
    echo="gama",
)
case(
    "rb-nstep-size-missing",
    RB,
    "`Nstep` without `size`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"rew": "rew"}),
    ValueError,
    "Nstep['size']",
)
case(
    "rb-nstep-size-zero",
    RB,
    "`Nstep={'size': 0, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 0, "rew": "rew"}),
    ValueError,
    "Nstep['size']",
    echo="size=0",
)
case(
    "rb-nstep-size-float",
    RB,
    "`Nstep={'size': 2.5, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 2.5, "rew": "rew"}),
    ValueError,
    "Nstep['size']",
    echo="2.5",
)
case(
    "rb-nstep-size-huge",
    RB,
    "`Nstep={'size': 10**6, ...}` on 8 rows",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 10**6, "rew": "rew"}),
    ValueError,
    "Nstep['size']",
)
case(
    "rb-nstep-gamma-above-one",
    RB,
    "`Nstep={'gamma': 1.5, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "gamma": 1.5}),
    ValueError,
    "Nstep['gamma']",
    echo="1.5",
)
case(
    "rb-nstep-gamma-nan",
    RB,
    "`Nstep={'gamma': nan, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "gamma": NAN}),
    ValueError,
    "Nstep['gamma']",
    echo="nan",
)
case(
    "rb-nstep-rew-missing",
    RB,
    "`Nstep` without `rew`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3}),
    ValueError,
    "Nstep",
    echo="'rew'",
)
case(
    "rb-nstep-rew-unknown",
    RB,
    "`Nstep={'rew': 'reward', ...}` (no such field)",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "reward"}),
    ValueError,
    "Nstep['rew']",
    echo="'reward'",
)
case(
    "rb-nstep-rew-int",
    RB,
    "`Nstep={'rew': 3, ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": 3}),
    TypeError,
    "Nstep['rew']",
)
case(
    "rb-nstep-rew-uint8",
    RB,
    "`Nstep` reward field of dtype `uint8`",
    lambda _: ReplayBuffer(8, {"obs": {}, "rew": {"dtype": np.uint8}}, Nstep={"size": 3, "rew": "rew"}),
    TypeError,
    "Nstep['rew']",
)
case(
    "rb-nstep-next-unknown",
    RB,
    "`Nstep={'next': 'next_state', ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "next": "next_state"}),
    ValueError,
    "Nstep['next']",
    echo="'next_state'",
)
case(
    "rb-nstep-next-mixed",
    RB,
    "`Nstep={'next': ['obs', 3], ...}`",
    lambda _: ReplayBuffer(8, SMALL, Nstep={"size": 3, "rew": "rew", "next": ["obs", 3]}),
    TypeError,
    "Nstep['next']",
)

# ReplayBuffer.add
ADD = "ReplayBuffer.add"
case(
    "add-missing-field",
    ADD,
    "`done` missing",
    lambda rb: rb.add(**{k: v for k, v in one().items() if k != "done"}),
    ValueError,
    "'done'",
    nstep_buffer,
)
case(
    "add-unknown-field",
    ADD,
    "an extra `foo=1.0`",
    lambda rb: rb.add(**one(), foo=1.0),
    ValueError,
    "'foo'",
    nstep_buffer,
)
case(
    "add-positions-field",
    ADD,
    "`positions=...` (a PER-LaBER output, not one of `sample`'s keys, which `add` ignores)",
    lambda rb: rb.add(**one(), positions=np.zeros(1)),
    ValueError,
    "'positions'",
    nstep_buffer,
)
case(
    "add-wrong-shape",
    ADD,
    "`obs` of shape `(4,)` for `(3,)`",
    lambda rb: rb.add(**{**one(), "obs": np.zeros(4)}),
    ValueError,
    "'obs'",
    nstep_buffer,
    echo="(4,)",
)
case(
    "add-wrong-batch-shape",
    ADD,
    "`obs` of shape `(2, 4)` in a batch of 2",
    lambda rb: rb.add(**batch(obs=np.zeros((2, 4)))),
    ValueError,
    "'obs'",
    nstep_buffer,
    echo="(2, 4)",
)
case(
    "add-extra-axis",
    ADD,
    "`obs` of shape `(2, 1, 3)`",
    lambda rb: rb.add(**batch(obs=np.zeros((2, 1, 3)))),
    ValueError,
    "'obs'",
    ring_buffer,
)
case(
    "add-mismatched-k",
    ADD,
    "`obs` of 3 rows, the rest of 2",
    lambda rb: rb.add(**batch(obs=np.zeros((3, 3)))),
    ValueError,
    "'obs'",
    nstep_buffer,
)
case(
    "add-scalar-in-batch",
    ADD,
    "`rew=1.0` (one) among batches of 2",
    lambda rb: rb.add(**batch(rew=1.0)),
    ValueError,
    "'rew'",
    ring_buffer,
)
case("add-string", ADD, "`obs='abc'`", lambda rb: rb.add(**{**one(), "obs": "abc"}), TypeError, "'obs'", nstep_buffer)
case(
    "add-none",
    ADD,
    "`rew=None`",
    lambda rb: rb.add(**{**one(), "rew": None}),
    TypeError,
    "'rew'",
    nstep_buffer,
    echo="None",
)
case(
    "add-complex",
    ADD,
    "`rew=1j`",
    lambda rb: rb.add(**{**one(), "rew": 1j}),
    TypeError,
    "'rew'",
    nstep_buffer,
    echo="complex",
)
case(
    "add-ragged",
    ADD,
    "`obs=[[1.0], [2.0, 3.0]]` (ragged)",
    lambda rb: rb.add(**batch(obs=[[1.0], [2.0, 3.0]])),
    TypeError,
    "'obs'",
    ring_buffer,
)
case(
    "add-int-too-large",
    ADD,
    "`act=256` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": 256}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="256",
)
case(
    "add-int-negative",
    ADD,
    "`act=-1` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": -1}),
    ValueError,
    "'act'",
    ring_buffer,
    echo="-1",
)
case(
    "add-int-huge",
    ADD,
    "`act=2**64` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": 2**64}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="18446744073709551616",
)
case(
    "add-int-batch-out-of-range",
    ADD,
    "`act=[1, 300]` into `uint8`",
    lambda rb: rb.add(**batch(act=np.array([1, 300]))),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="300",
)
case(
    "add-int-fraction",
    ADD,
    "`act=1.5` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": 1.5}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="1.5",
)
case(
    "add-int-batch-fraction",
    ADD,
    "`act=[1.0, 2.5]` into `uint8`",
    lambda rb: rb.add(**batch(act=np.array([1.0, 2.5]))),
    ValueError,
    "'act'",
    next_of_buffer,
)
case(
    "add-int-nan",
    ADD,
    "`act=nan` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": NAN}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="nan",
)
case(
    "add-int-batch-nan",
    ADD,
    "`act=[1.0, nan]` into `uint8`",
    lambda rb: rb.add(**batch(act=np.array([1.0, NAN]))),
    ValueError,
    "'act'",
    ring_buffer,
)
case(
    "add-int-inf",
    ADD,
    "`act=inf` into `uint8`",
    lambda rb: rb.add(**{**one(), "act": INF}),
    ValueError,
    "'act'",
    nstep_buffer,
    echo="inf",
)
case(
    "add-float32-overflow",
    ADD,
    "`rew=1e39` into `float32`",
    lambda rb: rb.add(**{**one(), "rew": 1e39}),
    ValueError,
    "'rew'",
    ring_buffer,
)
case(
    "add-float32-overflow-array",
    ADD,
    "`obs=[1e39, 0, 0]` into `float32`",
    lambda rb: rb.add(**{**one(), "obs": np.array([1e39, 0.0, 0.0])}),
    ValueError,
    "'obs'",
    nstep_buffer,
)
case(
    "add-empty-batch",
    ADD,
    "every field a batch of 0 rows",
    lambda rb: rb.add(**transitions(0)),
    ValueError,
    "no transitions",
    nstep_buffer,
)
case(
    "add-next-of-missing",
    ADD,
    "`next_of='obs'`: `next_obs` missing",
    lambda rb: rb.add(**{k: v for k, v in one().items() if k not in ("next_obs", "done")}, done=0.0),
    ValueError,
    "'next_obs'",
    next_of_buffer,
)
case(
    "add-next-of-shape",
    ADD,
    "`next_of='obs'`: `next_obs` of shape `(2,)`",
    lambda rb: rb.add(**{**one(), "next_obs": np.zeros(2)}),
    ValueError,
    "'next_obs'",
    next_of_buffer,
)
case(
    "add-next-of-int-range",
    ADD,
    "`next_of='obs'`: `act=[0, 999]` in a batch",
    lambda rb: rb.add(**{**{k: v for k, v in transitions(2, 50).items()}, "act": np.array([0, 999])}),
    ValueError,
    "'act'",
    next_of_buffer,
    echo="999",
)
case(
    "add-stack-shape",
    ADD,
    "`stack_compress='obs'`: `obs` without its stack axis",
    lambda rb: rb.add(**{**stacks(2, 60), "obs": np.zeros((2, 2))}),
    ValueError,
    "'obs'",
    stack_buffer,
)
case(
    "add-stack-int-range",
    ADD,
    "`stack_compress='obs'`: `act=[0, -3]`",
    lambda rb: rb.add(**{**stacks(2, 60), "act": np.array([0, -3])}),
    ValueError,
    "'act'",
    stack_buffer,
    echo="-3",
)

# ReplayBuffer.sample
SAMPLE = "ReplayBuffer.sample"
case("sample-zero", SAMPLE, "`batch_size=0`", lambda rb: rb.sample(0), ValueError, "batch_size", nstep_buffer, echo="0")
case(
    "sample-negative",
    SAMPLE,
    "`batch_size=-1`",
    lambda rb: rb.sample(-1),
    ValueError,
    "batch_size",
    ring_buffer,
    echo="-1",
)
case(
    "sample-float",
    SAMPLE,
    "`batch_size=1.5`",
    lambda rb: rb.sample(1.5),
    TypeError,
    "batch_size",
    nstep_buffer,
    echo="1.5",
)
case(
    "sample-bool",
    SAMPLE,
    "`batch_size=True`",
    lambda rb: rb.sample(True),
    TypeError,
    "batch_size",
    next_of_buffer,
    echo="True",
)
case(
    "sample-str",
    SAMPLE,
    "`batch_size='3'`",
    lambda rb: rb.sample("3"),
    TypeError,
    "batch_size",
    stack_buffer,
    echo="'3'",
)
case(
    "sample-numpy-zero",
    SAMPLE,
    "`batch_size=np.int64(0)`",
    lambda rb: rb.sample(np.int64(0)),
    ValueError,
    "batch_size",
    nstep_buffer,
)
case(
    "sample-empty",
    SAMPLE,
    "an empty buffer (rows pending in N-step only)",
    lambda rb: rb.sample(4),
    ValueError,
    "empty buffer",
    empty_buffer,
)

# PrioritizedReplayBuffer(...)
case(
    "per-alpha-negative",
    PER,
    "`alpha=-0.1`",
    lambda _: PrioritizedReplayBuffer(8, ENV, alpha=-0.1),
    ValueError,
    "alpha",
    echo="-0.1",
)
case(
    "per-alpha-nan",
    PER,
    "`alpha=nan`",
    lambda _: PrioritizedReplayBuffer(8, ENV, alpha=NAN),
    ValueError,
    "alpha",
    echo="nan",
)
case(
    "per-alpha-str",
    PER,
    "`alpha='0.6'`",
    lambda _: PrioritizedReplayBuffer(8, ENV, alpha="0.6"),  # type: ignore[arg-type]
    TypeError,
    "alpha",
    echo="'0.6'",
)
case("per-alpha-bool", PER, "`alpha=True`", lambda _: PrioritizedReplayBuffer(8, ENV, alpha=True), TypeError, "alpha")
case("per-eps-negative", PER, "`eps=-1e-6`", lambda _: PrioritizedReplayBuffer(8, ENV, eps=-1e-6), ValueError, "eps")
case("per-eps-inf", PER, "`eps=inf`", lambda _: PrioritizedReplayBuffer(8, ENV, eps=INF), ValueError, "eps", echo="inf")
case(
    "per-eps-none",
    PER,
    "`eps=None`",
    lambda _: PrioritizedReplayBuffer(8, ENV, eps=None),  # type: ignore[arg-type]
    TypeError,
    "eps",
    echo="None",
)
case(
    "per-beta-keyword",
    PER,
    "`beta=0.4` (a `sample` argument)",
    lambda _: PrioritizedReplayBuffer(8, ENV, beta=0.4),
    TypeError,
    "beta",
)
case(
    "per-field-priority",
    PER,
    "a field named `_priority`",
    lambda _: PrioritizedReplayBuffer(8, {"obs": {}, "_priority": {"shape": 2}}),
    ValueError,
    "'_priority'",
)

# PrioritizedReplayBuffer.add
PADD = "PrioritizedReplayBuffer.add"
case(
    "per-add-nan",
    PADD,
    "`priorities=nan`",
    lambda rb: rb.add(priorities=NAN, **one()),
    ValueError,
    "priorities",
    per_buffer,
    echo="nan",
)
case(
    "per-add-inf",
    PADD,
    "`priorities=[1, inf]`",
    lambda rb: rb.add(priorities=[1.0, INF], **batch()),
    ValueError,
    "priorities",
    per_buffer,
    echo="inf",
)
case(
    "per-add-negative",
    PADD,
    "`priorities=-0.5`",
    lambda rb: rb.add(priorities=-0.5, **one()),
    ValueError,
    "priorities",
    per_buffer,
    echo="-0.5",
)
case(
    "per-add-length",
    PADD,
    "2 priorities for 3 rows",
    lambda rb: rb.add(priorities=[1.0, 2.0], **batch(3)),
    ValueError,
    "priorities",
    per_buffer,
)
case(
    "per-add-2d",
    PADD,
    "`priorities` of shape `(1, 2)`",
    lambda rb: rb.add(priorities=[[1.0, 2.0]], **batch()),
    ValueError,
    "priorities",
    per_buffer,
    echo="(1, 2)",
)
case(
    "per-add-complex",
    PADD,
    "`priorities=1+1j`",
    lambda rb: rb.add(priorities=1 + 1j, **one()),
    TypeError,
    "priorities",
    per_buffer,
    echo="1j",
)
case(
    "per-add-str",
    PADD,
    "`priorities='high'`",
    lambda rb: rb.add(priorities="high", **one()),
    TypeError,
    "priorities",
    per_buffer,
    echo="'high'",
)
case(
    "per-add-numeric-str",
    PADD,
    "`priorities=['1', '2']`",
    lambda rb: rb.add(priorities=["1", "2"], **batch()),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "per-add-none-inside",
    PADD,
    "`priorities=[None, 1.0]`",
    lambda rb: rb.add(priorities=[None, 1.0], **batch()),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "per-add-huge",
    PADD,
    "`priorities=1e308` with `alpha=1` (the sums could overflow)",
    lambda rb: rb.add(priorities=1e308, **one()),
    ValueError,
    "priorities",
    lambda: per_buffer(alpha=1.0),
    echo="1e+308",
)
case(
    "per-add-bool",
    PADD,
    "`priorities=True`",
    lambda rb: rb.add(priorities=True, **one()),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "per-add-hidden-field",
    PADD,
    "`_priority=1.0` as a field",
    lambda rb: rb.add(_priority=1.0, **one()),
    ValueError,
    "_priority",
    per_buffer,
)
case(
    "per-add-field-error",
    PADD,
    "valid priorities, `act=300`",
    lambda rb: rb.add(priorities=2.0, **{**one(), "act": 300}),
    ValueError,
    "'act'",
    per_buffer,
)

# PrioritizedReplayBuffer.sample
PSAMPLE = "PrioritizedReplayBuffer.sample"
case("per-sample-zero", PSAMPLE, "`batch_size=0`", lambda rb: rb.sample(0), ValueError, "batch_size", per_buffer)
case("per-sample-float", PSAMPLE, "`batch_size=2.0`", lambda rb: rb.sample(2.0), TypeError, "batch_size", per_buffer)
case(
    "per-beta-negative",
    PSAMPLE,
    "`beta=-0.4`",
    lambda rb: rb.sample(4, beta=-0.4),
    ValueError,
    "beta",
    per_buffer,
    echo="-0.4",
)
case(
    "per-beta-nan", PSAMPLE, "`beta=nan`", lambda rb: rb.sample(4, beta=NAN), ValueError, "beta", per_buffer, echo="nan"
)
case(
    "per-beta-inf", PSAMPLE, "`beta=inf`", lambda rb: rb.sample(4, beta=INF), ValueError, "beta", per_buffer, echo="inf"
)
case(
    "per-beta-str",
    PSAMPLE,
    "`beta='0.4'`",
    lambda rb: rb.sample(4, beta="0.4"),
    TypeError,
    "beta",
    per_buffer,
    echo="'0.4'",
)
case("per-beta-none", PSAMPLE, "`beta=None`", lambda rb: rb.sample(4, beta=None), TypeError, "beta", per_buffer)
case("per-sample-empty", PSAMPLE, "an empty buffer", lambda rb: rb.sample(4), ValueError, "empty buffer", empty_per)
case(
    "per-sample-zero-mass",
    PSAMPLE,
    "every priority 0 with `eps=0`",
    lambda rb: rb.sample(2),
    ValueError,
    "priority",
    per_zero_mass,
)

# PrioritizedReplayBuffer.update_priorities
UPD = "PrioritizedReplayBuffer.update_priorities"
case(
    "upd-index-stored",
    UPD,
    "index 6 with 6 rows stored",
    lambda rb: rb.update_priorities([0, 6], [1.0, 1.0]),
    ValueError,
    "indexes",
    per_buffer,
    echo="6",
)
case(
    "upd-index-capacity",
    UPD,
    "index `10**6`",
    lambda rb: rb.update_priorities(np.array([10**6]), np.array([1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="1000000",
)
case(
    "upd-index-negative",
    UPD,
    "index -1",
    lambda rb: rb.update_priorities(np.array([-1, 2]), np.array([1.0, 1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="-1",
)
case(
    "upd-index-uint64-huge",
    UPD,
    "index `2**63` as `uint64`",
    lambda rb: rb.update_priorities(np.array([2**63], np.uint64), np.array([1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="9223372036854775808",
)
case(
    "upd-index-float",
    UPD,
    "`indexes=[0.0, 1.0]` (floats)",
    lambda rb: rb.update_priorities(np.array([0.0, 1.0]), np.array([1.0, 1.0])),
    TypeError,
    "indexes",
    per_buffer,
    echo="float64",
)
case(
    "upd-index-bool",
    UPD,
    "`indexes=[True, False]`",
    lambda rb: rb.update_priorities(np.array([True, False]), np.array([1.0, 1.0])),
    TypeError,
    "indexes",
    per_buffer,
)
case(
    "upd-index-str",
    UPD,
    "`indexes=['0']`",
    lambda rb: rb.update_priorities(["0"], [1.0]),
    TypeError,
    "indexes",
    per_buffer,
)
case(
    "upd-index-2d",
    UPD,
    "`indexes` of shape `(2, 1)`",
    lambda rb: rb.update_priorities(np.array([[0], [1]]), np.array([1.0, 1.0])),
    ValueError,
    "indexes",
    per_buffer,
    echo="(2, 1)",
)
case(
    "upd-nan",
    UPD,
    "`priorities=[1, nan]`",
    lambda rb: rb.update_priorities(np.array([0, 1]), np.array([1.0, NAN])),
    ValueError,
    "priorities",
    per_buffer,
    echo="nan",
)
case(
    "upd-inf",
    UPD,
    "`priorities=[inf]`",
    lambda rb: rb.update_priorities([3], [INF]),
    ValueError,
    "priorities",
    per_buffer,
    echo="inf",
)
case(
    "upd-negative",
    UPD,
    "`priorities=[-1]`",
    lambda rb: rb.update_priorities(np.array([1]), np.array([-1.0])),
    ValueError,
    "priorities",
    per_buffer,
    echo="-1.0",
)
case(
    "upd-length",
    UPD,
    "3 indexes, 2 priorities",
    lambda rb: rb.update_priorities(np.array([0, 1, 2]), np.array([1.0, 2.0])),
    ValueError,
    "priorities",
    per_buffer,
)
case(
    "upd-priorities-2d",
    UPD,
    "`priorities` of shape `(2, 1)`",
    lambda rb: rb.update_priorities(np.array([0, 1]), np.array([[1.0], [2.0]])),
    ValueError,
    "priorities",
    per_buffer,
    echo="(2, 1)",
)
case(
    "upd-complex",
    UPD,
    "`priorities=[1+1j]`",
    lambda rb: rb.update_priorities(np.array([0]), np.array([1 + 1j])),
    TypeError,
    "priorities",
    per_buffer,
)
case(
    "upd-huge",
    UPD,
    "`priorities=[1e308]` with `alpha=1`",
    lambda rb: rb.update_priorities(np.array([0]), np.array([1e308])),
    ValueError,
    "priorities",
    lambda: per_buffer(alpha=1.0),
)
case(
    "upd-bool",
    UPD,
    "`priorities=[True, False]`",
    lambda rb: rb.update_priorities(np.array([0, 1]), np.array([True, False])),
    TypeError,
    "priorities",
    per_buffer,
)

# PrioritizedReplayBuffer.get_priorities
GET = "PrioritizedReplayBuffer.get_priorities"
case(
    "get-index-range",
    GET,
    "index 6 with 6 rows stored",
    lambda rb: rb.get_priorities([6]),
    ValueError,
    "indexes",
    per_buffer,
    echo="6",
)
case(
    "get-index-negative",
    GET,
    "index -2",
    lambda rb: rb.get_priorities([-2]),
    ValueError,
    "indexes",
    per_buffer,
    echo="-2",
)
case("get-index-float", GET, "`indexes=[1.5]`", lambda rb: rb.get_priorities([1.5]), TypeError, "indexes", per_buffer)
case(
    "get-index-2d", GET, "`indexes=[[0, 1]]`", lambda rb: rb.get_priorities([[0, 1]]), ValueError, "indexes", per_buffer
)

# LaBERmean / LaBERlazy / LaBERmax (...)
case("laber-batch-zero", "LaBERmean(...)", "`batch_size=0`", lambda _: LaBERmean(0), ValueError, "batch_size", echo="0")
case(
    "laber-batch-negative",
    "LaBERlazy(...)",
    "`batch_size=-32`",
    lambda _: LaBERlazy(-32),
    ValueError,
    "batch_size",
    echo="-32",
)
case(
    "laber-batch-float",
    "LaBERmax(...)",
    "`batch_size=32.0`",
    lambda _: LaBERmax(32.0),  # type: ignore[arg-type]
    TypeError,
    "batch_size",
    echo="32.0",
)
case("laber-batch-str", "LaBERmean(...)", "`batch_size='32'`", lambda _: LaBERmean("32"), TypeError, "batch_size")  # type: ignore[arg-type]
case("laber-batch-bool", "LaBERlazy(...)", "`batch_size=True`", lambda _: LaBERlazy(True), TypeError, "batch_size")
case("laber-m-zero", "LaBERmean(...)", "`m=0`", lambda _: LaBERmean(32, 0), ValueError, "m=", echo="0")
case("laber-m-float", "LaBERmax(...)", "`m=2.5`", lambda _: LaBERmax(32, 2.5), TypeError, "m=", echo="2.5")  # type: ignore[arg-type]
case("laber-eps-negative", "LaBERmean(...)", "`eps=-1e-6`", lambda _: LaBERmean(32, eps=-1e-6), ValueError, "eps")
case("laber-eps-nan", "LaBERlazy(...)", "`eps=nan`", lambda _: LaBERlazy(32, eps=NAN), ValueError, "eps", echo="nan")
case("laber-eps-str", "LaBERmax(...)", "`eps='0'`", lambda _: LaBERmax(32, eps="0"), TypeError, "eps")  # type: ignore[arg-type]
case("laber-rng-str", "LaBERmean(...)", "`rng='0'`", lambda _: LaBERmean(32, rng="0"), TypeError, "rng")  # type: ignore[arg-type]
case("laber-rng-negative", "LaBERmax(...)", "`rng=-3`", lambda _: LaBERmax(32, rng=-3), ValueError, "rng", echo="-3")
case("laber-shuffle-int", "LaBERlazy(...)", "`shuffle=1`", lambda _: LaBERlazy(32, shuffle=1), TypeError, "shuffle")  # type: ignore[arg-type]
case(
    "laber-check-values-str",
    "LaBERmean(...)",
    "`check_values='yes'`",
    lambda _: LaBERmean(32, check_values="yes"),  # type: ignore[arg-type]
    TypeError,
    "check_values",
)

# LaBER __call__
CALL = "LaBERmean(...)(priorities=..., **arrays)"
case(
    "call-length",
    CALL,
    "7 priorities for `m*batch_size=8`",
    lambda s: s(priorities=np.ones(7)),
    ValueError,
    "priorities",
    sampler,
    echo="7",
)
case(
    "call-length-list",
    "LaBERlazy(...)(...)",
    "a list of 9 priorities for 8",
    lambda s: s(priorities=[1.0] * 9),
    ValueError,
    "priorities",
    lambda: sampler(LaBERlazy),
)
case(
    "call-nan",
    CALL,
    "a NaN priority",
    lambda s: s(priorities=np.array([1.0] * 7 + [NAN])),
    ValueError,
    "priorities",
    sampler,
    echo="nan",
)
case(
    "call-inf",
    "LaBERmax(...)(...)",
    "an infinite priority",
    lambda s: s(priorities=np.array([INF] + [1.0] * 7, dtype=np.float32)),
    ValueError,
    "priorities",
    lambda: sampler(LaBERmax),
    echo="inf",
)
case(
    "call-negative",
    CALL,
    "a priority of -1",
    lambda s: s(priorities=np.array([1.0, -1.0] * 4)),
    ValueError,
    "priorities",
    sampler,
    echo="-1",
)
case(
    "call-all-zero",
    CALL,
    "all-zero priorities, `eps=0`",
    lambda s: s(priorities=np.zeros(8)),
    ValueError,
    "priorities",
    lambda: sampler(eps=0.0),
    echo="eps=0.0",
)
case(
    "call-overflow",
    CALL,
    "priorities of `1e308` (the sum overflows)",
    lambda s: s(priorities=np.full(8, 1e308)),
    ValueError,
    "priorities",
    sampler,
)
case(
    "call-2d",
    CALL,
    "priorities of shape `(8, 1)`",
    lambda s: s(priorities=np.ones((8, 1))),
    ValueError,
    "priorities",
    sampler,
    echo="(8, 1)",
)
case(
    "call-str",
    CALL,
    "priorities of strings",
    lambda s: s(priorities=["1"] * 8),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-complex",
    CALL,
    "complex priorities",
    lambda s: s(priorities=np.ones(8, dtype=complex)),
    TypeError,
    "priorities",
    sampler,
    echo="complex128",
)
case(
    "call-bool",
    CALL,
    "bool priorities",
    lambda s: s(priorities=np.ones(8, dtype=bool)),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-ragged",
    CALL,
    "ragged priorities",
    lambda s: s(priorities=[[1.0], [1.0, 2.0]]),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-missing",
    CALL,
    "no `priorities`",
    lambda s: s(obs=np.ones(8)),
    TypeError,
    "priorities",
    sampler,
)
case(
    "call-extra-indexes",
    CALL,
    "an extra array named `indexes`",
    lambda s: s(priorities=np.ones(8), indexes=np.arange(8)),
    ValueError,
    "'indexes'",
    sampler,
)
case(
    "call-extra-weights",
    "LaBERmax(...)(...)",
    "an extra array named `weights`",
    lambda s: s(priorities=np.ones(8), weights=np.ones(8)),
    ValueError,
    "'weights'",
    lambda: sampler(LaBERmax),
)
case(
    "call-extra-length",
    CALL,
    "an extra array `obs` of 7 rows",
    lambda s: s(priorities=np.ones(8), obs=np.zeros((7, 3))),
    ValueError,
    "'obs'",
    sampler,
    echo="(7, 3)",
)
case(
    "call-extra-0d",
    CALL,
    "an extra array `obs=3.0` (0-d)",
    lambda s: s(priorities=np.ones(8), obs=3.0),
    ValueError,
    "'obs'",
    sampler,
)
case(
    "call-extra-list-length",
    "LaBERlazy(...)(...)",
    "an extra list `act` of 3 items",
    lambda s: s(priorities=[1.0] * 8, act=[0, 1, 2]),
    ValueError,
    "'act'",
    lambda: sampler(LaBERlazy),
)

# laber_subsample
LS = "laber_subsample"
case(
    "ls-variant",
    LS,
    "`variant='median'`",
    lambda g: laber_subsample(np.ones(4), 2, variant="median", rng=g),  # type: ignore[arg-type]
    ValueError,
    "variant",
    generator,
    echo="'median'",
)
case(
    "ls-batch-zero",
    LS,
    "`batch_size=0`",
    lambda g: laber_subsample(np.ones(4), 0, rng=g),
    ValueError,
    "batch_size",
    generator,
)
case(
    "ls-empty",
    LS,
    "`priorities=[]`",
    lambda g: laber_subsample([], 2, rng=g),
    ValueError,
    "priorities",
    generator,
)
case(
    "ls-eps-negative",
    LS,
    "`eps=-1.0`",
    lambda g: laber_subsample(np.ones(4), 2, eps=-1.0, rng=g),
    ValueError,
    "eps",
    generator,
    echo="-1.0",
)
case(
    "ls-nan",
    LS,
    "a NaN priority, `rng=` a Generator",
    lambda g: laber_subsample(np.array([1.0, NAN, 2.0]), 2, rng=g),
    ValueError,
    "priorities",
    generator,
    echo="nan",
)
case(
    "ls-2d",
    LS,
    "priorities of shape `(2, 2)`",
    lambda g: laber_subsample(np.ones((2, 2)), 2, rng=g),
    ValueError,
    "priorities",
    generator,
)
case(
    "ls-extra-weights",
    LS,
    "an extra array named `weights`",
    lambda g: laber_subsample(np.ones(4), 2, rng=g, weights=np.ones(4)),
    ValueError,
    "'weights'",
    generator,
)
case(
    "ls-extra-length",
    LS,
    "an extra array `obs` of 3 rows for 4 priorities",
    lambda g: laber_subsample(np.ones(4), 2, rng=g, obs=np.ones(3)),
    ValueError,
    "'obs'",
    generator,
)
case(
    "ls-shuffle-none",
    LS,
    "`shuffle=None`",
    lambda g: laber_subsample(np.ones(4), 2, rng=g, shuffle=None),  # type: ignore[arg-type]
    TypeError,
    "shuffle",
    generator,
)

# per_laber_subsample
PLS = "per_laber_subsample"
case(
    "pls-missing-indexes",
    PLS,
    "`large_batch` without `indexes`",
    lambda o: per_laber_subsample(o[0], {k: v for k, v in o[1].items() if k != "indexes"}, np.ones(8)),
    ValueError,
    "'indexes'",
    per_large_batch,
)
case(
    "pls-missing-weights",
    PLS,
    "`large_batch` without `weights`",
    lambda o: per_laber_subsample(o[0], {k: v for k, v in o[1].items() if k != "weights"}, np.ones(8)),
    ValueError,
    "'weights'",
    per_large_batch,
)
case(
    "pls-batch-length",
    PLS,
    "a large batch of 6 rows for `m*batch_size=8`",
    lambda o: per_laber_subsample(o[0], {k: v[:6] for k, v in o[1].items()}, np.ones(6)),
    ValueError,
    "m * batch_size",
    per_large_batch,
    echo="6",
)
case(
    "pls-collide-positions",
    PLS,
    "a field named `positions`",
    lambda o: per_laber_subsample(o[0], {**o[1], "positions": np.arange(8)}, np.ones(8)),
    ValueError,
    "'positions'",
    per_large_batch,
)
case(
    "pls-collide-per-weights",
    PLS,
    "a field named `per_weights`",
    lambda o: per_laber_subsample(o[0], {**o[1], "per_weights": np.ones(8)}, np.ones(8)),
    ValueError,
    "'per_weights'",
    per_large_batch,
)
case(
    "pls-collide-laber-weights",
    PLS,
    "a field named `laber_weights`",
    lambda o: per_laber_subsample(o[0], {**o[1], "laber_weights": np.ones(8)}, np.ones(8)),
    ValueError,
    "'laber_weights'",
    per_large_batch,
)
case(
    "pls-priorities-length",
    PLS,
    "7 priorities for 8 rows",
    lambda o: per_laber_subsample(o[0], o[1], np.ones(7)),
    ValueError,
    "priorities",
    per_large_batch,
)
case(
    "pls-priorities-nan",
    PLS,
    "a NaN priority",
    lambda o: per_laber_subsample(o[0], o[1], np.array([NAN] + [1.0] * 7)),
    ValueError,
    "priorities",
    per_large_batch,
    echo="nan",
)
case(
    "pls-field-length",
    PLS,
    "field `obs` of 7 rows in a batch of 8",
    lambda o: per_laber_subsample(o[0], {**o[1], "obs": o[1]["obs"][:7]}, np.ones(8)),
    ValueError,
    "'obs'",
    per_large_batch,
)
case(
    "pls-batch-none",
    PLS,
    "`large_batch=None`",
    lambda o: per_laber_subsample(o[0], None, np.ones(8)),  # type: ignore[arg-type]
    TypeError,
    "large_batch",
    per_large_batch,
)
case(
    "pls-laber-none",
    PLS,
    "`laber=None`",
    lambda o: per_laber_subsample(None, o[1], np.ones(8)),
    TypeError,
    "laber",
    per_large_batch,
)

# SumMinTree
TREE = "SumMinTree"
case("tree-capacity-zero", "SumMinTree(...)", "`capacity=0`", lambda _: SumMinTree(0), ValueError, "capacity", echo="0")
case("tree-capacity-float", "SumMinTree(...)", "`capacity=8.0`", lambda _: SumMinTree(8.0), TypeError, "capacity")  # type: ignore[arg-type]
case(
    "tree-top-size-zero", "SumMinTree(...)", "`top_size=0`", lambda _: SumMinTree(8, top_size=0), ValueError, "top_size"
)
case(
    "tree-fanout-one",
    "SumMinTree(...)",
    "`min_fanout=1`",
    lambda _: SumMinTree(8, min_fanout=1),
    ValueError,
    "min_fanout",
    echo="1",
)
case(
    "tree-update-range",
    "SumMinTree.update",
    "index 8 of 8 leaves",
    lambda t: t.update([1, 8], [1.0, 1.0]),
    ValueError,
    "indexes",
    tree,
    echo="8",
)
case(
    "tree-update-negative-index",
    "SumMinTree.update",
    "index -1",
    lambda t: t.update([-1], [1.0]),
    ValueError,
    "indexes",
    tree,
    echo="-1",
)
case(
    "tree-update-float-index",
    "SumMinTree.update",
    "`indexes=[1.5]`",
    lambda t: t.update([1.5], [1.0]),
    TypeError,
    "indexes",
    tree,
)
case(
    "tree-update-2d-index",
    "SumMinTree.update",
    "`indexes=[[1]]`",
    lambda t: t.update([[1]], [1.0]),
    ValueError,
    "indexes",
    tree,
)
case(
    "tree-update-negative",
    "SumMinTree.update",
    "`values=[-1.0]`",
    lambda t: t.update([2], [-1.0]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-update-nan",
    "SumMinTree.update",
    "`values=[1.0, nan]`",
    lambda t: t.update([1, 2], [1.0, NAN]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-update-inf", "SumMinTree.update", "`values=[inf]`", lambda t: t.update([2], [INF]), ValueError, "values", tree
)
case(
    "tree-update-length",
    "SumMinTree.update",
    "2 indexes, 1 value",
    lambda t: t.update([1, 2], [1.0]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-update-complex",
    "SumMinTree.update",
    "`values=[1+2j]`",
    lambda t: t.update([1], np.array([1 + 2j])),
    TypeError,
    "values",
    tree,
    echo="1.+2.j",
)
case(
    "tree-update-str",
    "SumMinTree.update",
    "`values=['a']`",
    lambda t: t.update([1], ["a"]),
    TypeError,
    "values",
    tree,
    echo="'a'",
)
case(
    "tree-update-none",
    "SumMinTree.update",
    "`values=None`",
    lambda t: t.update([1], None),
    TypeError,
    "values",
    tree,
    echo="None",
)
case(
    "tree-find-nan",
    "SumMinTree.find_prefix_sum",
    "`values=[0.5, nan]`",
    lambda t: t.find_prefix_sum([0.5, NAN]),
    ValueError,
    "values",
    tree,
)
case(
    "tree-find-str",
    "SumMinTree.find_prefix_sum",
    "`values=['a']`",
    lambda t: t.find_prefix_sum(["a"]),
    TypeError,
    "values",
    tree,
    echo="'a'",
)
case(
    "tree-find-no-mass",
    "SumMinTree.find_prefix_sum",
    "a tree of zero mass",
    lambda o: o[0].find_prefix_sum([0.5]),
    ValueError,
    "total mass",
    empty_tree_and_generator,
)
case(
    "tree-sample-batch-zero",
    "SumMinTree.sample_stratified",
    "`batch_size=0`",
    lambda t: t.sample_stratified(0, rng=0),
    ValueError,
    "batch_size",
    tree,
)
case(
    "tree-sample-rng-str",
    "SumMinTree.sample_stratified",
    "`rng='0'`",
    lambda t: t.sample_stratified(2, rng="0"),
    TypeError,
    "rng",
    tree,
)
case(
    "tree-sample-no-mass",
    "SumMinTree.sample_stratified",
    "a tree of zero mass, `rng=` a Generator",
    lambda o: o[0].sample_stratified(2, o[1]),
    ValueError,
    "total mass",
    empty_tree_and_generator,
)
case(
    "tree-leaves-range",
    "SumMinTree.leaves",
    "`indexes=[8]` of 8 leaves",
    lambda t: t.leaves(np.array([8])),
    ValueError,
    "indexes",
    tree,
    echo="8",
)
case(
    "tree-leaves-float",
    "SumMinTree.leaves",
    "`indexes=[1.5]`",
    lambda t: t.leaves(np.array([1.5])),
    TypeError,
    "indexes",
    tree,
)
case(
    "tree-check-indexes-2d",
    "SumMinTree.check_indexes",
    "`indexes=[[0, 1]]`",
    lambda t: t.check_indexes([[0, 1]]),
    ValueError,
    "indexes",
    tree,
)

# checkpoints
LOAD, SAVE = "ReplayBuffer.load_checkpoint", "ReplayBuffer.save_checkpoint"
case(
    "load-missing",
    LOAD,
    "a file that does not exist",
    lambda o: o[0].load_checkpoint(o[1] / "missing.npz"),
    FileNotFoundError,
    "missing.npz",
    files("load-missing"),
)
case(
    "load-not-checkpoint",
    LOAD,
    "an `.npz` that is not a checkpoint",
    lambda o: o[0].load_checkpoint(o[1] / "plain.npz"),
    ValueError,
    "plain.npz",
    files("load-not-checkpoint", _plain_npz),
)
case(
    "load-not-npz",
    LOAD,
    "a text file",
    lambda o: o[0].load_checkpoint(o[1] / "notes.txt"),
    ValueError,
    "notes.txt",
    files("load-not-npz", _text_file),
)
case(
    "load-directory",
    LOAD,
    "a directory",
    lambda o: o[0].load_checkpoint(o[1] / "adir"),
    IsADirectoryError,
    "adir",
    files("load-directory", _a_directory),
)
case(
    "load-other-fields",
    LOAD,
    "a checkpoint of other fields",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "fields",
    files("load-other-fields", _other_fields),
)
case(
    "load-other-nstep",
    LOAD,
    "a checkpoint with `Nstep['size']=2`",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "N-step",
    files("load-other-nstep", _other_nstep),
)
case(
    "load-truncated",
    LOAD,
    "a checkpoint cut to half its length",
    lambda o: o[0].load_checkpoint(o[1] / "ckpt.npz"),
    ValueError,
    "ckpt.npz",
    files("load-truncated", _truncated),
)
case(
    "load-none",
    LOAD,
    "`path=None`",
    lambda o: o[0].load_checkpoint(None),
    TypeError,
    "path",
    files("load-none"),
)
case(
    "save-directory",
    SAVE,
    "an existing directory as the path",
    lambda o: o[0].save_checkpoint(o[1] / "adir"),
    IsADirectoryError,
    "adir",
    files("save-directory", _a_directory),
)
case(
    "save-no-parent",
    SAVE,
    "a path in a directory that does not exist",
    lambda o: o[0].save_checkpoint(o[1] / "nodir" / "ckpt.npz"),
    FileNotFoundError,
    "nodir",
    files("save-no-parent"),
)
case(
    "save-none",
    SAVE,
    "`path=None`",
    lambda o: o[0].save_checkpoint(None),
    TypeError,
    "path",
    files("save-none"),
)

# set_numba
case(
    "set-numba-str",
    "set_numba",
    "`enabled='yes'`",
    lambda m: laber.set_numba("yes"),  # type: ignore[arg-type]
    TypeError,
    "enabled",
    lambda: _accel,
    echo="'yes'",
)


# ------------------------------------------------------------------------------------------------ the document
_TMP_NAME = re.compile(r"(/\.[^/']+?\.)[^/'.]+(\.tmp)")  # the random part of a temporary file's name


def clean(message: str) -> str:
    """``message`` without the parts that change between runs (the scratch directory, temporary file names)."""
    if _SCRATCH:
        message = message.replace(str(_SCRATCH[0]), "<tmp>")
    return _TMP_NAME.sub(r"\1XXXXXXXX\2", message)


def outcome(c: Case) -> BaseException | None:
    """Run the case once; the exception it raised (None if it raised nothing)."""
    obj = None if c.factory is None else c.factory()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c.call(obj)
    except Exception as exc:
        return exc
    return None


def _cell(text: str, limit: int = 110) -> str:
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return "`" + text.replace("`", "'").replace("|", "\\|") + "`"


def _matches(c: Case, exc: BaseException | None) -> bool:
    if exc is None or type(exc) is not c.error:
        return False
    message = str(exc)
    return c.names in message and (c.echo is None or c.echo in message)


INTRO = """\
# Robustness: what a malformed call does

Every public entry point of laber validates its arguments before it changes anything. For each malformed call
below, laber guarantees:

1. **the exception type**: `TypeError` for a value of the wrong kind (a string, a complex number, `None`),
   `ValueError` for a value of the right kind that is out of range or inconsistent (a negative size, NaN, a
   shape or length that does not match), and the `OSError` subclass of the failure for files;
2. **a message that names the argument** (or the field, or the file), and usually echoes the bad value;
3. **an unchanged object**: a call that raises leaves the buffer, sampler or tree exactly as it was: stored
   rows, counters, N-step transitions still pending, the `next_of` and `stack_compress` side stores, priorities,
   the sum and min trees, the running maximum priority, the random generator's state, and the files in the
   target directory.

This page is generated from the table of `tests/robustness_table.py` by running every case (numpy backend);
`tests/test_robustness.py` checks all three guarantees for each case, on the numpy and numba backends, and
fails when this page is out of date. Regenerate it with `make robustness-doc`, or
`{regenerate}`.
Messages are cut at 110 characters; `<tmp>` stands for a temporary directory.

Accepted on purpose, so not in the table: an integral float as `size` (`1e6`, as cpprb's examples pass), a 0-d
integer array as a shape, `inf` and NaN given as such to a float field (only values that the field's dtype would
turn into `inf` are refused), and torch tensors as priorities, `requires_grad` or not (they are detached).
"""


def render() -> str:
    """The markdown document, from running every case on the numpy backend."""
    previous = _accel._choice
    laber.set_numba(False)
    try:
        results = [(c, outcome(c)) for c in CASES]
    finally:
        laber.set_numba(previous)
    lines = [INTRO.format(regenerate=REGENERATE), f"{len(CASES)} malformed calls.", ""]
    lines += ["| API | bad input | exception | message |", "|---|---|---|---|"]
    for c, exc in results:
        if _matches(c, exc):
            raised = f"`{c.error.__name__}`"
        elif exc is None:
            raised = f"`{c.error.__name__}` (known defect: today no error)"
        elif type(exc) is not c.error:
            raised = f"`{c.error.__name__}` (known defect: today `{type(exc).__name__}`)"
        else:
            raised = f"`{c.error.__name__}` (known defect: the message does not name `{c.names}`)"
        message = "" if exc is None else _cell(clean(str(exc)))
        lines.append(f"| `{c.api}` | {c.description} | {raised} | {message} |")
    defects = [c for c in CASES if c.defect]
    if defects:
        lines += ["", "## Known defects", ""]
        lines += ["Cases that do not meet the guarantees yet (their tests are expected failures until fixed):", ""]
        lines += [f"- `{c.id}` ({c.api}, {c.description}): {c.defect}." for c in defects]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv not in ([], ["--write"]):
        sys.stderr.write(f"usage: python tests/robustness_table.py [--write]  (--write: update {DOC_PATH})\n")
        return 2
    text = render()  # the whole document first: a failure leaves the old file as it was
    if argv:
        DOC_PATH.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
