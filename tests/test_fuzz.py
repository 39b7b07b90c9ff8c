"""Stateful fuzzing of ReplayBuffer and PrioritizedReplayBuffer against a plain-Python reference model (issue 9).

A hypothesis ``RuleBasedStateMachine`` drives a buffer and a reference model side by side with random sequences of
single and batched adds, ``on_episode_end``, environment resets, ``clear``, ``sample``, ``update_priorities``,
rejected calls and checkpoints (save, then load into a fresh buffer that carries on), and compares the two after
every step. The model knows nothing of laber: a list used as a ring of ``size`` rows, N-step rows by the closed
form ``R_t = sum_{j<k} gamma**j r_{t+j}``, ``discount = gamma**k``, next fields and ``done`` of step ``t + k - 1``
(windows cut by ``done`` or ``on_episode_end``), and priorities with last-wins updates and the running maximum.

Each configuration family (uniform or prioritized, N-step off or on, plain storage, ``next_of``,
``stack_compress`` and their combinations) is its own test; the rest of the configuration (size 1..12, n 1..4,
gamma, frame depth, dtypes, alpha, eps, the numpy or numba kernels, the seed) is drawn when a sequence starts.
The generated episodes are realistic, so ``next_of`` and ``stack_compress`` really link rows: the observation of
step ``t + 1`` is the ``next_obs`` of step ``t``, stacks shift by one frame, with breaks (terminal steps, resets,
stacks that do not continue) and frames that are -0.0 or NaN (bitwise equality, not ``==``).

Profiles: ``make test`` runs a short, seeded profile; ``LABER_FUZZ=long`` (``make fuzz``) runs at least 10,000
sequences. ``LABER_FUZZ_SEED`` changes the seed. The mutation tests at the end run the same machine against
deliberately broken buffers and check that it catches each of them.
"""

from __future__ import annotations

import importlib.util
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import laber
from laber import PrioritizedReplayBuffer, ReplayBuffer
from laber.nstep import DISCOUNT, STEPS, NstepAccumulator
from laber.sumtree import SumMinTree

try:  # the next_of / stack_compress links: laber.links (laber.storage before storage became a package)
    from laber.links import NextOfLinks, StackLinks
except ImportError:  # pragma: no cover
    from laber.storage import NextOfLinks, StackLinks  # type: ignore[no-redef]

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
BACKENDS = ("numpy", "numba") if HAVE_NUMBA else ("numpy",)

PROFILE = os.environ.get("LABER_FUZZ", "short").strip().lower()
if PROFILE not in ("short", "long"):
    raise ValueError(f"LABER_FUZZ must be 'short' or 'long', got {PROFILE!r}")
LONG = PROFILE == "long"
BASE_SEED = int(os.environ.get("LABER_FUZZ_SEED", "20240909"))
EXAMPLES = 560 if LONG else 20  # per family; 20 families: 11,200 sequences in the long profile
STEP_COUNT = 50 if LONG else 30

GAMMAS = (1.0, 0.5, 0.9, 0.99)
PRIORITIES = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 8.0)
ALPHAS = (0.0, 0.6, 1.0)
OBS_DTYPES = ("float32", "uint8", "float64", "int16")
EPSILONS = (0.0, 1e-3, 0.1, 1.0)
BETAS = (0.0, 0.4, 1.0)
NSTEP_TOLERANT = frozenset({"rew", "discount"})  # N-step sums: float tolerance; every other field: bitwise

SEQUENCES: dict[str, int] = {}  # family name -> sequences run (printed by the long profile)


# ------------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class Family:
    """The fixed part of a buffer configuration: one test per family."""

    per: bool
    nstep: bool
    next_of: bool
    stack: str  # "" (none), "obs", "obs+next_obs"

    @property
    def name(self) -> str:
        parts = ["per" if self.per else "uniform", "nstep" if self.nstep else "1step"]
        storage = [p for p, on in (("next_of", self.next_of), (f"stack[{self.stack}]", bool(self.stack))) if on]
        return "-".join(parts + (storage or ["plain"]))


STORAGE = ((False, ""), (True, ""), (False, "obs"), (False, "obs+next_obs"), (True, "obs"))
FAMILIES = [Family(per, nstep, nx, stack) for per in (False, True) for nstep in (False, True) for nx, stack in STORAGE]


@dataclass(frozen=True)
class Config:
    """A whole buffer configuration: the family plus what is drawn when a sequence starts."""

    family: Family
    size: int
    n: int  # 0: no N-step
    gamma: float
    nstep_next: bool  # Nstep names "next": "next_obs" (else next_obs stays that of step t)
    depth: int  # frames per stack (0: no stack_compress)
    obs_dtype: np.dtype[Any]
    alpha: float
    eps: float
    backend: str
    rng: int

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return (2, self.depth) if self.depth else (2,)

    def fields(self) -> dict[str, tuple[tuple[int, ...], np.dtype[Any]]]:
        """Every public field of the buffer with its shape and dtype."""
        f32 = np.dtype(np.float32)
        out = {
            "obs": (self.obs_shape, self.obs_dtype),
            "act": ((1,), np.dtype(np.uint8)),
            "rew": ((1,), f32),
            "next_obs": (self.obs_shape, self.obs_dtype),
            "done": ((1,), f32),
        }
        if self.n:
            out["discount"] = ((1,), f32)
        return out

    def make(self, rng: int | None = None) -> ReplayBuffer:
        """A new, empty buffer of this configuration."""
        fam = self.family
        env: dict[str, dict[str, Any]] = {
            "obs": {"shape": self.obs_shape, "dtype": self.obs_dtype},
            "act": {"dtype": np.uint8},
            "rew": {},
            "done": {},
        }
        if not fam.next_of:
            env["next_obs"] = {"shape": self.obs_shape, "dtype": self.obs_dtype}
        kwargs: dict[str, Any] = {"rng": self.rng if rng is None else rng}
        if fam.next_of:
            kwargs["next_of"] = "obs"
        if fam.stack == "obs":
            kwargs["stack_compress"] = "obs"
        elif fam.stack:
            kwargs["stack_compress"] = ["obs", "next_obs"]
        if self.n:
            nstep: dict[str, Any] = {"size": self.n, "rew": "rew", "gamma": self.gamma}
            if self.nstep_next:
                nstep["next"] = "next_obs"
            kwargs["Nstep"] = nstep
        if fam.per:
            return PrioritizedReplayBuffer(self.size, env, alpha=self.alpha, eps=self.eps, **kwargs)
        return ReplayBuffer(self.size, env, **kwargs)


# ------------------------------------------------------------------------------------------------ the model
Row = dict[str, np.ndarray]


@dataclass
class Transition:
    """One environment step as the model keeps it: canonical arrays of the fields' dtypes, the plain reward."""

    values: Row  # obs, act, rew, next_obs, done
    rew: float
    done: bool
    priority: float | None


@dataclass
class Model:
    """The reference: a ring of rows, N-step by the closed form, priorities with last-wins and a running max."""

    size: int
    n: int
    gamma: float
    nstep_next: bool
    ring: list[Row | None] = field(default_factory=list)
    priorities: list[float] = field(default_factory=list)
    next: int = 0
    stored: int = 0
    pending: list[Transition] = field(default_factory=list)
    max_priority: float = 1.0

    def __post_init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.ring = [None] * self.size
        self.priorities = [0.0] * self.size
        self.next = self.stored = 0
        self.pending = []
        self.max_priority = 1.0

    def rows(self) -> list[Row]:
        """The stored rows in ring order 0 .. stored - 1."""
        return [r for r in self.ring[: self.stored] if r is not None]

    def _write(self, row: Row, priority: float | None) -> int:
        i = self.next
        self.ring[i] = row
        self.priorities[i] = self.max_priority if priority is None else priority  # resolved when written
        self.next = (i + 1) % self.size
        self.stored = min(self.size, self.stored + 1)
        return i

    def _window(self, window: list[Transition]) -> Row:
        """The closed form of one N-step row over ``window`` (its ``k`` steps)."""
        k = len(window)
        first, last = window[0], window[-1]
        total = 0.0
        for j, tr in enumerate(window):
            total += self.gamma**j * tr.rew  # float64, cast like the field afterwards
        row = dict(first.values)
        row["rew"] = np.array([total], dtype=np.float32)
        row["done"] = last.values["done"]
        if self.nstep_next:
            row["next_obs"] = last.values["next_obs"]
        row["discount"] = np.array([self.gamma**k], dtype=np.float32)
        return row

    def _emit(self, final: bool) -> list[tuple[Row, float | None]]:
        out = []
        while self.pending:
            k = next((j + 1 for j, tr in enumerate(self.pending[: self.n]) if tr.done), None)
            if k is None:
                if len(self.pending) >= self.n:
                    k = self.n
                elif final:
                    k = len(self.pending)
                else:
                    break
            out.append((self._window(self.pending[:k]), self.pending[0].priority))
            self.pending.pop(0)
        return out

    def add(self, transitions: list[Transition]) -> int | None:
        """Add transitions; return the ring index of the first row that survives this call, or None."""
        if self.n:
            self.pending.extend(transitions)
            done = self._emit(final=False)
        else:
            done = [(dict(tr.values), tr.priority) for tr in transitions]
        written = [self._write(row, p) for row, p in done]
        given = [tr.priority for tr in transitions if tr.priority is not None]
        if given:
            self.max_priority = max(self.max_priority, *given)
        return written[max(0, len(written) - self.size)] if written else None

    def on_episode_end(self) -> None:
        if self.n:
            for row, p in self._emit(final=True):
                self._write(row, p)

    def update_priorities(self, indexes: list[int], priorities: list[float]) -> None:
        for i, p in zip(indexes, priorities, strict=True):
            self.priorities[i] = p  # in order: the last of duplicates wins
        if priorities:
            self.max_priority = max(self.max_priority, *priorities)

    def weights(self, indexes: list[int], alpha: float, eps: float, beta: float) -> list[float]:
        """PER weights ``(q_i / min_j q_j) ** -beta`` with ``q = (p + eps) ** alpha`` over the stored rows."""
        q = [(p + eps) ** alpha for p in self.priorities[: self.stored]]
        low = min(x for x in q if x > 0)
        return [(q[i] / low) ** -beta for i in indexes]


# ------------------------------------------------------------------------------------------------ strategies
@dataclass(frozen=True)
class Step:
    """What hypothesis draws for one environment step."""

    frame: tuple[int, ...]  # the new frame (codes, see ``BufferMachine.values``)
    act: int
    rew: float
    done: bool
    brk: bool  # the observation does not continue the previous step's next_obs (a stack that does not shift)
    reset: tuple[int, ...]  # codes of a fresh observation (after a terminal step or a break)
    priority: float | None


def digits(count: int) -> Callable[[int], tuple[int, ...]]:
    """An integer's ``count`` base-10 digits: several codes from one draw (draws are what costs time)."""
    return lambda x: tuple((x // 10**i) % 10 for i in range(count))


CODE2 = st.integers(0, 99).map(digits(2))
CODE6 = st.integers(0, 10**6 - 1).map(digits(6))
STEP = st.builds(
    Step,
    frame=CODE2,
    act=st.sampled_from((0, 1, 2, 3, 255)),
    rew=st.integers(-6, 6).map(lambda x: x / 2),
    done=st.integers(0, 4).map(lambda x: x == 0),
    brk=st.integers(0, 7).map(lambda x: x == 0),
    reset=CODE6,
    priority=st.none() | st.sampled_from(PRIORITIES),
)
BATCH = st.lists(STEP, min_size=1, max_size=7)
BATCH_PRIORITIES = st.none() | st.lists(st.sampled_from(PRIORITIES), min_size=7, max_size=7)


def bytes_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == b.tobytes())


# ------------------------------------------------------------------------------------------------ the machine
class BufferMachine(RuleBasedStateMachine):
    """A buffer and the model, driven by the same calls and compared after every step."""

    family: Family = Family(False, False, False, "")
    backends: tuple[str, ...] = BACKENDS
    int_rewards = False  # also pass integral rewards as Python/numpy ints (see the xfail test below)

    def __init__(self) -> None:
        super().__init__()
        self.cfg: Config | None = None
        self.rb: ReplayBuffer | None = None
        self.model: Model | None = None
        self.tmp = tempfile.TemporaryDirectory(prefix="laber-fuzz-")
        self.env_obs: np.ndarray | None = None
        self.last_batch: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None
        self.steps = 0

    def teardown(self) -> None:
        self.tmp.cleanup()
        laber.set_numba(None)
        if self.steps:
            SEQUENCES[self.family.name] = SEQUENCES.get(self.family.name, 0) + 1

    # -------------------------------------------------------------------------------------- set-up
    @initialize(
        size=st.integers(1, 12),
        n=st.integers(1, 4),
        gamma=st.sampled_from(GAMMAS),
        nstep_next=st.integers(0, 4).map(lambda x: x != 0),
        depth=st.integers(2, 3),
        obs_dtype=st.sampled_from(OBS_DTYPES),
        alpha=st.sampled_from(ALPHAS),
        eps=st.sampled_from(EPSILONS),
        backend=st.sampled_from(BACKENDS),
        rng=st.integers(0, 2**16),
        start=CODE6,
    )
    def start(
        self,
        size: int,
        n: int,
        gamma: float,
        nstep_next: bool,
        depth: int,
        obs_dtype: str,
        alpha: float,
        eps: float,
        backend: str,
        rng: int,
        start: tuple[int, ...],
    ) -> None:
        fam = self.family
        if backend not in self.backends:
            backend = self.backends[0]
        self.cfg = Config(
            fam,
            size,
            min(n, size) if fam.nstep else 0,  # the buffer refuses windows longer than itself
            gamma,
            nstep_next,
            depth if fam.stack else 0,
            np.dtype(obs_dtype),
            alpha,
            eps,
            backend,
            rng,
        )
        laber.set_numba(backend == "numba")
        self.rb = self.cfg.make()
        self.model = Model(size, self.cfg.n, gamma, nstep_next)
        self.env_obs = self.fresh_obs(start)

    @property
    def per(self) -> bool:
        return self.family.per

    def values(self, codes: tuple[int, ...]) -> np.ndarray:
        """Frame values from codes: mostly 0..3 (so equal frames are common), 4..7, and -0.0 / NaN for floats
        (the dtype's maximum and minimum for integers)."""
        assert self.cfg is not None
        dtype = self.cfg.obs_dtype
        if dtype.kind == "f":
            special: dict[int, float] = {8: -0.0, 9: math.nan}
        else:
            info = np.iinfo(dtype)
            special = {8: info.max, 9: info.min}
        return np.array([special.get(c, c) for c in codes], dtype=dtype)

    def fresh_obs(self, codes: tuple[int, ...]) -> np.ndarray:
        """An observation that does not continue the previous one (an episode's first, or a break)."""
        assert self.cfg is not None
        size = math.prod(self.cfg.obs_shape)
        return self.values(codes[:size]).reshape(self.cfg.obs_shape)

    def transition(self, step: Step, priority: float | None) -> Transition:
        """The next environment step: obs is the previous next_obs (unless a break), stacks shift one frame."""
        assert self.cfg is not None and self.env_obs is not None
        if step.brk:
            self.env_obs = self.fresh_obs(step.reset[::-1])
        obs = self.env_obs
        frame = self.values(step.frame)
        next_obs = np.concatenate([obs[..., 1:], frame[:, None]], axis=-1) if self.cfg.depth else frame
        self.env_obs = self.fresh_obs(step.reset) if step.done else next_obs
        values = {
            "obs": obs,
            "act": np.array([step.act], dtype=np.uint8),
            "rew": np.array([step.rew], dtype=np.float32),
            "next_obs": next_obs,
            "done": np.array([float(step.done)], dtype=np.float32),
        }
        return Transition(values, step.rew, step.done, priority if self.per else None)

    # -------------------------------------------------------------------------------------- checks
    def check_rows(self, got: dict[str, np.ndarray], want: list[Row], where: str) -> None:
        """``got`` holds exactly the public fields, each equal to the model's rows (bitwise; N-step sums rtol)."""
        assert self.cfg is not None
        fields = self.cfg.fields()
        assert set(got) == set(fields), f"model mismatch in {where}: fields {sorted(got)}, model {sorted(fields)}"
        for name, (shape, dtype) in fields.items():
            g = got[name]
            assert g.dtype == dtype and g.shape == (len(want), *shape), (
                f"model mismatch in {where}: {name!r} is {g.dtype} {g.shape}, model {dtype} {(len(want), *shape)}"
            )
            w = np.array([r[name] for r in want], dtype=dtype).reshape(g.shape)
            tolerant = self.cfg.n and name in NSTEP_TOLERANT
            if np.allclose(g, w, rtol=1e-6, atol=1e-6) if tolerant else bytes_equal(g, w):
                continue
            for i in range(len(want)):  # locate the first row that differs
                ok = np.allclose(g[i], w[i], rtol=1e-6, atol=1e-6) if tolerant else bytes_equal(g[i], w[i])
                assert ok, f"model mismatch in {where}: field {name!r} row {i}: buffer {g[i]!r}, model {w[i]!r}"
            raise AssertionError(f"model mismatch in {where}: field {name!r}")  # pragma: no cover

    @invariant()
    def matches_model(self) -> None:
        """Stored size, next index, every stored row, the priorities and the running max match the model."""
        rb, model = self.rb, self.model
        if rb is None or model is None:
            return
        assert (rb.get_stored_size(), len(rb), rb.get_next_index(), rb.get_buffer_size()) == (
            model.stored,
            model.stored,
            model.next,
            model.size,
        ), (
            f"model mismatch: stored/len/next/size {rb.get_stored_size(), len(rb), rb.get_next_index()}, "
            f"model {model.stored, model.next}"
        )
        self.check_rows(rb.get_all_transitions(), model.rows(), "get_all_transitions")
        if isinstance(rb, PrioritizedReplayBuffer):
            got = rb.get_priorities().tolist()
            want = model.priorities[: model.stored]
            assert got == want, f"model mismatch in get_priorities: buffer {got}, model {want}"
            assert rb.get_max_priority() == model.max_priority, (
                f"model mismatch in get_max_priority: buffer {rb.get_max_priority()}, model {model.max_priority}"
            )
        if self.last_batch is not None:  # a sample's arrays are fresh: later calls never touch them
            batch, copy = self.last_batch
            for key, value in batch.items():
                assert bytes_equal(value, copy[key]), f"sample()[{key!r}] changed after later calls"

    # -------------------------------------------------------------------------------------- adding
    def add(self, transitions: list[Transition], fields: dict[str, Any], priorities: object) -> None:
        assert self.rb is not None and self.model is not None
        if isinstance(self.rb, PrioritizedReplayBuffer):
            got = self.rb.add(priorities=priorities, **fields)
        else:
            got = self.rb.add(**fields)
        want = self.model.add(transitions)
        assert got == want, f"model mismatch in add's return value: buffer {got}, model {want}"
        self.steps += 1

    def reward(self, r: float, form: int) -> Any:
        if self.int_rewards and r.is_integer():
            return int(r) if form % 2 == 0 else np.array([int(r)])
        return r if form == 0 else np.array([r], dtype=np.float32) if form == 1 else np.float64(r)

    @rule(step=STEP, form=st.integers(0, 2))
    def add_one(self, step: Step, form: int) -> None:
        """One transition, as Python scalars (0), field-shaped arrays (1) or 0-d arrays and a bool done (2)."""
        tr = self.transition(step, step.priority)
        v = tr.values
        fields: dict[str, Any] = {"obs": v["obs"], "next_obs": v["next_obs"], "rew": self.reward(tr.rew, form)}
        if form == 0:
            fields.update(act=step.act, done=float(step.done))
        elif form == 1:
            fields.update(act=v["act"].copy(), done=v["done"].copy())
        else:
            fields.update(act=np.asarray(step.act), done=step.done)
        priority: object = tr.priority
        if tr.priority is not None and form == 1:
            priority = np.array([tr.priority])
        self.add([tr], fields, priority)

    @rule(steps=BATCH, prios=BATCH_PRIORITIES, form=st.integers(0, 2))
    def add_batch(self, steps: list[Step], prios: list[float] | None, form: int) -> None:
        """k transitions in one call: (k, *shape) arrays (0), 1-D arrays and bool dones (1), Python lists (2)."""
        k = len(steps)
        given = prios[:k] if prios is not None and self.per else None
        trs = [self.transition(s, None if given is None else given[i]) for i, s in enumerate(steps)]
        obs = np.stack([t.values["obs"] for t in trs])
        next_obs = np.stack([t.values["next_obs"] for t in trs])
        acts = [s.act for s in steps]
        rews = [t.rew for t in trs]
        dones = [float(s.done) for s in steps]
        fields: dict[str, Any] = {"obs": obs, "next_obs": next_obs}
        if form == 0:
            fields.update(
                act=np.array(acts, dtype=np.uint8).reshape(k, 1),
                rew=np.array(rews, dtype=np.float32).reshape(k, 1),
                done=np.array(dones, dtype=np.float32).reshape(k, 1),
            )
        elif form == 1:
            fields.update(act=np.array(acts), rew=np.array(rews), done=np.array(dones, dtype=bool))
        else:
            fields.update(act=acts, rew=rews, done=dones, obs=list(obs), next_obs=list(next_obs))
        if self.int_rewards and all(r.is_integer() for r in rews):
            fields["rew"] = np.array(rews).astype(np.int64)
        priorities: object = None if given is None else (np.array(given) if form != 2 else list(given))
        self.add(trs, fields, priorities)

    @rule(cont=st.integers(0, 3).map(lambda x: x == 0), codes=CODE6)
    def end_episode(self, cont: bool, codes: tuple[int, ...]) -> None:
        """``on_episode_end`` (a time limit, or after a terminal step); the next episode starts afresh or not."""
        assert self.rb is not None and self.model is not None
        self.rb.on_episode_end()
        self.model.on_episode_end()
        if not cont:
            self.env_obs = self.fresh_obs(codes)
        self.steps += 1

    @rule(codes=CODE6)
    def reset_env(self, codes: tuple[int, ...]) -> None:
        """The environment jumps to an unrelated observation without ``on_episode_end`` (a break in the links)."""
        self.env_obs = self.fresh_obs(codes)

    @rule(really=st.integers(0, 2))
    def clear(self, really: int) -> None:
        """``clear`` (one time in three, so the ring also fills up): no rows, no pending N-step, max back to 1."""
        assert self.rb is not None and self.model is not None
        if really == 0:
            self.rb.clear()
            self.model.clear()
            self.steps += 1

    @rule(steps=BATCH, which=st.integers(0, 3))
    def rejected_add(self, steps: list[Step], which: int) -> None:
        """An invalid add (missing field, unknown field, mismatched k, act out of range) changes nothing."""
        assert self.rb is not None and self.cfg is not None and self.env_obs is not None
        k = len(steps)
        shape = self.cfg.obs_shape
        obs = np.zeros((k, *shape), self.cfg.obs_dtype)
        fields: dict[str, Any] = {
            "obs": obs,
            "next_obs": obs.copy(),
            "act": np.zeros(k, np.uint8),
            "rew": np.zeros(k),
            "done": np.zeros(k),
        }
        if which == 0:
            del fields["done"]
        elif which == 1:
            fields["extra"] = np.zeros(k)
        elif which == 2:
            fields["rew"] = np.zeros(k + 1)
        else:
            fields["act"] = np.full(k, 256)
        with pytest.raises(ValueError):
            self.rb.add(**fields)

    # -------------------------------------------------------------------------------------- reading
    def can_sample(self) -> bool:
        """Rows are stored and, for PER, some have ``q = (p + eps) ** alpha > 0`` (else ``sample`` raises)."""
        model, cfg = self.model, self.cfg
        assert model is not None and cfg is not None
        if not self.per:
            return model.stored > 0
        return any((p + cfg.eps) ** cfg.alpha > 0 for p in model.priorities[: model.stored])

    @rule(batch_size=st.integers(1, 9), beta=st.sampled_from(BETAS))
    def sample(self, batch_size: int, beta: float) -> None:
        """Every sampled row is the stored row its index names (all fields); PER weights by the formula."""
        rb, model, cfg = self.rb, self.model, self.cfg
        assert rb is not None and model is not None and cfg is not None
        self.steps += 1
        per = isinstance(rb, PrioritizedReplayBuffer)
        if not self.can_sample():
            with pytest.raises(ValueError):
                rb.sample(batch_size, beta=beta) if isinstance(rb, PrioritizedReplayBuffer) else rb.sample(batch_size)
            return
        batch = rb.sample(batch_size, beta=beta) if isinstance(rb, PrioritizedReplayBuffer) else rb.sample(batch_size)
        idx = batch["indexes"]
        assert idx.dtype == np.int64 and idx.shape == (batch_size,), f"indexes {idx.dtype} {idx.shape}"
        assert ((idx >= 0) & (idx < model.stored)).all(), f"indexes {idx} outside [0, {model.stored})"
        rows = {k: v for k, v in batch.items() if k not in ("indexes", "weights")}
        self.check_rows(rows, [model.rows()[i] for i in idx.tolist()], "sample")
        if per:
            assert (np.diff(idx) >= 0).all(), f"PER indexes not in increasing order: {idx}"
            q = [(p + cfg.eps) ** cfg.alpha for p in model.priorities[: model.stored]]
            assert all(q[i] > 0 for i in idx.tolist()), f"a row with q = 0 was drawn: {idx}, q={q}"
            w = batch["weights"]
            want = model.weights(idx.tolist(), cfg.alpha, cfg.eps, beta)
            assert w.dtype == np.float32 and w.shape == (batch_size,), f"weights {w.dtype} {w.shape}"
            assert np.allclose(w, want, rtol=1e-5, atol=0), f"model mismatch in weights: buffer {w}, model {want}"
        self.last_batch = (batch, {k: v.copy() for k, v in batch.items()})

    @precondition(lambda self: self.family.per)
    @rule(data=st.data(), form=st.integers(0, 3))
    def update_priorities(self, data: st.DataObject, form: int) -> None:
        """Priorities of stored rows, duplicates likely (last wins): numpy arrays, lists, or a sample's indexes."""
        rb, model, cfg = self.rb, self.model, self.cfg
        assert isinstance(rb, PrioritizedReplayBuffer) and model is not None and cfg is not None
        if model.stored == 0:
            with pytest.raises(ValueError):
                rb.update_priorities(np.array([0]), np.array([1.0]))
            return
        self.steps += 1
        if form == 3 and not self.last_batch_usable():
            form = 0
        if form == 3:
            assert self.last_batch is not None
            idx = self.last_batch[0]["indexes"].tolist()
        else:
            idx = data.draw(st.lists(st.integers(0, model.stored - 1), max_size=8), label="indexes")
        p = data.draw(st.lists(st.sampled_from(PRIORITIES), min_size=len(idx), max_size=len(idx)), label="p")
        if form == 1:
            rb.update_priorities(idx, p)
        elif form == 2:
            rb.update_priorities(np.array(idx, dtype=np.int32), np.array(p, dtype=np.float32))
        else:
            rb.update_priorities(np.array(idx, dtype=np.int64), np.array(p, dtype=np.float64))
        model.update_priorities(idx, p)

    def last_batch_usable(self) -> bool:
        assert self.model is not None
        if self.last_batch is None:
            return False
        return bool((self.last_batch[0]["indexes"] < self.model.stored).all())

    @precondition(lambda self: self.family.per)
    @rule(which=st.integers(0, 2))
    def rejected_update(self, which: int) -> None:
        """An invalid update (index out of range, negative or NaN priority) raises and changes nothing."""
        rb, model = self.rb, self.model
        assert isinstance(rb, PrioritizedReplayBuffer) and model is not None
        idx, p = [0, model.stored], [5.0, 6.0]
        if which == 1:
            idx, p = [0], [-1.0]
        elif which == 2:
            idx, p = [0], [math.nan]
        with pytest.raises(ValueError):
            rb.update_priorities(np.array(idx), np.array(p))

    # -------------------------------------------------------------------------------------- checkpoints
    @rule(rng=st.integers(0, 2**16), dirty=st.lists(STEP, max_size=3))
    def save_and_load(self, rng: int, dirty: list[Step]) -> None:
        """Save, load into a new buffer (empty, or holding other rows first) and carry on with that buffer."""
        rb, cfg, model = self.rb, self.cfg, self.model
        assert rb is not None and cfg is not None and model is not None
        self.steps += 1
        path = os.path.join(self.tmp.name, "buffer.npz")
        rb.save_checkpoint(path)
        fresh = cfg.make(rng=rng)
        if dirty:  # load replaces everything, including pending N-step rows and side stores
            v = self.transition(dirty[0], None).values
            fresh.add(**{k: v[k] for k in ("obs", "next_obs", "act", "rew")}, done=0.0)
            fresh.add(**{k: v[k] for k in ("obs", "next_obs", "act", "rew")}, done=1.0)
        fresh.load_checkpoint(path)
        if self.can_sample():
            # the rng state travels: both buffers draw the same batch
            a = rb.sample(5, beta=0.5) if isinstance(rb, PrioritizedReplayBuffer) else rb.sample(5)
            b = fresh.sample(5, beta=0.5) if isinstance(fresh, PrioritizedReplayBuffer) else fresh.sample(5)
            assert set(a) == set(b)
            for key in a:
                assert bytes_equal(a[key], b[key]), f"model mismatch after load: sample()[{key!r}] differs"
        self.rb = fresh


# ------------------------------------------------------------------------------------------------ running
def machine_for(family: Family, **attrs: Any) -> type[BufferMachine]:
    """A ``BufferMachine`` subclass for one family (and optional overrides such as ``backends``)."""
    name = "Fuzz_" + family.name.replace("-", "_").replace("[", "_").replace("]", "").replace("+", "_")
    return type(name, (BufferMachine,), {"family": family, **attrs})


def fuzz_settings(examples: int, steps: int, *, shrink: bool = True) -> settings:
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        database=None,
        phases=phases,
        report_multiple_bugs=False,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def run_machine(machine: type[BufferMachine], config: settings, seed_value: int) -> None:
    seed(seed_value)(machine)
    run_state_machine_as_test(machine, settings=config)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_buffer_matches_model(family: Family, capsys: pytest.CaptureFixture[str]) -> None:
    """Random call sequences on one configuration family: the buffer matches the reference model throughout."""
    before = SEQUENCES.get(family.name, 0)
    run_machine(machine_for(family), fuzz_settings(EXAMPLES, STEP_COUNT), BASE_SEED + FAMILIES.index(family))
    if LONG:  # make fuzz reports what it ran
        with capsys.disabled():
            ran, total = SEQUENCES.get(family.name, 0) - before, sum(SEQUENCES.values())
            print(f"\n{family.name}: {ran} sequences (all families so far: {total})")


# ------------------------------------------------------------------------------------------------ real divergences
NSTEP_PLAIN = Family(False, True, False, "")


def test_nstep_integer_reward_input_into_float_field() -> None:
    """Integral rewards passed as ints (``rew=1``) into a float32 field: the N-step return keeps its fraction.

    Found by the fuzzer: the accumulator cast ``R_t`` to the dtype of the *added* array, not of the field, so
    with gamma = 0.5, ``R = 1 + 0.5 * 1 = 1.5`` was truncated to 1 before it reached the float32 column.
    """
    rb = ReplayBuffer(8, {"obs": {}, "rew": {}, "done": {}}, Nstep={"size": 2, "rew": "rew", "gamma": 0.5})
    rb.add(obs=0.0, rew=1, done=0.0)
    rb.add(obs=1.0, rew=1, done=0.0)
    rb.on_episode_end()
    assert rb.get_all_transitions()["rew"].ravel().tolist() == [1.5, 1.0]


def test_fuzz_integer_reward_inputs() -> None:
    """The machine with integral rewards also passed as Python/numpy ints (it found the divergence above)."""
    machine = machine_for(NSTEP_PLAIN, int_rewards=True)
    run_machine(machine, fuzz_settings(200, STEP_COUNT, shrink=False), BASE_SEED)


# ------------------------------------------------------------------------------------------------ mutation checks
def expect_caught(family: Family, match: str, **attrs: Any) -> None:
    """The machine, on a broken buffer, fails with a model mismatch matching ``match`` (seeded, no shrinking)."""
    machine = machine_for(family, **attrs)
    with pytest.raises(AssertionError, match=match):
        run_machine(machine, fuzz_settings(300, STEP_COUNT, shrink=False), BASE_SEED + 1)


def test_catches_next_of_reading_the_wrong_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant: ``next_of`` derives ``next_obs`` of a linked row from row ``r + s + 1`` instead of ``r + s``."""
    original = NextOfLinks.gather

    def broken(self: NextOfLinks, indices: np.ndarray, links: np.ndarray, read: Any) -> dict[str, np.ndarray]:
        out = original(self, indices, links, read)
        linked = links < 0
        if linked.any():
            target = (indices[linked] - links[linked] + 1) % self.size
            for name, source in self.pairs.items():
                out[name][linked] = read(source.name, target)
        return out

    monkeypatch.setattr(NextOfLinks, "gather", broken)
    expect_caught(Family(False, False, True, ""), "field 'next_obs'")


def broken_emit(change: Callable[[NstepAccumulator, dict[str, np.ndarray], dict[str, np.ndarray]], None]) -> Any:
    """``NstepAccumulator._emit`` with its finished rows passed through ``change(self, seq, out)``."""
    original = NstepAccumulator._emit

    def emit(self: NstepAccumulator, seq: dict[str, np.ndarray], *, final: bool) -> dict[str, np.ndarray] | None:
        out = original(self, seq, final=final)
        if out is not None:
            change(self, seq, out)
        return out

    return emit


def test_catches_nstep_next_obs_from_the_step_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant: N-step rows take ``next_obs`` from step ``t + k - 2`` instead of ``t + k - 1``."""

    def change(self: NstepAccumulator, seq: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        steps = np.asarray(out[STEPS])
        start = np.arange(steps.shape[0])
        for name in self.config.next:
            out[name] = seq[name][np.maximum(start + steps - 2, start)]

    monkeypatch.setattr(NstepAccumulator, "_emit", broken_emit(change))
    expect_caught(NSTEP_PLAIN, "field 'next_obs'")


def test_catches_nstep_discount_off_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant: the N-step discount is ``gamma ** (k - 1)`` instead of ``gamma ** k``."""

    def change(self: NstepAccumulator, seq: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        steps = np.asarray(out[STEPS], dtype=np.float64)
        out[DISCOUNT] = (self.config.gamma ** (steps - 1)).reshape(-1, 1)

    monkeypatch.setattr(NstepAccumulator, "_emit", broken_emit(change))
    expect_caught(NSTEP_PLAIN, "field 'discount'")


def test_catches_first_wins_updates_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant (numpy kernels): duplicate indexes in ``update_priorities`` keep the first value, not the last."""

    def first_wins(self: SumMinTree, idx: np.ndarray, vals: np.ndarray) -> np.ndarray:
        first = np.full(int(idx.max()) + 1, idx.shape[0], dtype=np.int64)
        np.minimum.at(first, idx, np.arange(idx.shape[0], dtype=np.int64))
        return vals.take(first.take(idx))

    monkeypatch.setattr(SumMinTree, "last_wins", first_wins)
    expect_caught(Family(True, False, False, ""), "get_priorities", backends=("numpy",))


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba is not installed (the 'fast' extra)")
def test_catches_first_wins_updates_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant (numba kernels): the compiled priority write runs over duplicates in reverse, so the first wins."""
    from laber import _kernels_sumtree

    original = _kernels_sumtree.write_priorities

    def reversed_write(*args: Any) -> None:
        *tree, idx, q, column, p = args
        original(*tree, idx[::-1].copy(), q[::-1].copy(), column, p[::-1].copy())

    monkeypatch.setattr(_kernels_sumtree, "write_priorities", reversed_write)
    expect_caught(Family(True, False, False, ""), "get_priorities", backends=("numba",))


def test_catches_stack_links_without_the_bitwise_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant: ``stack_compress`` links a write's first stack to the row before it even when it does not shift."""
    original = StackLinks.after_write

    def broken(
        self: StackLinks,
        rows: np.ndarray,
        links: np.ndarray,
        values: dict[str, np.ndarray],
        previous: dict[str, np.ndarray] | None,
    ) -> None:
        if previous is not None:  # a fake predecessor whose frames always continue into the new stack
            previous = {n: np.concatenate([v[:1, ..., :1], v[:1, ..., :-1]], axis=-1) for n, v in values.items()}
        original(self, rows, links, values, previous)

    monkeypatch.setattr(StackLinks, "after_write", broken)
    expect_caught(Family(False, False, False, "obs"), "field 'obs'")


def test_catches_checkpoints_losing_the_running_max(monkeypatch: pytest.MonkeyPatch) -> None:
    """Mutant: checkpoints drop the running maximum priority, so a loaded buffer starts again from 1."""
    original = PrioritizedReplayBuffer._checkpoint_extra

    def broken(self: PrioritizedReplayBuffer) -> dict[str, Any]:
        extra = original(self)
        extra.pop("max_priority", None)
        return extra

    monkeypatch.setattr(PrioritizedReplayBuffer, "_checkpoint_extra", broken)
    expect_caught(Family(True, False, False, ""), "get_max_priority")
