"""``BufferSpec``: what every shard of a replay server holds, as a small picklable value.

A spec travels to each server actor (which builds its buffer from it) and to every client (which validates
``add`` calls against it before anything leaves the process, and runs the N-step windows of its own stream).

N-step across several writers: a laber buffer keeps one N-step window, fed by one stream of transitions. A
server is written by many actors at once, whose transitions interleave, so the windows cannot live in the
server: each client keeps its own (``laber.nstep.NstepAccumulator``, as each process of
``MPReplayBuffer`` keeps its own) and sends finished rows. The server's buffer is then a one-step buffer with
one more float32 column holding ``discount = gamma**k`` (named :data:`DISCOUNT_COLUMN`, or that name with
trailing underscores if a field already has it), returned by ``sample`` as ``discount``, exactly as an N-step
``ReplayBuffer`` returns it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from laber._validation import check_nonnegative_float, check_positive_int
from laber.buffers import ReplayBuffer
from laber.fields import Schema
from laber.nstep import NstepConfig
from laber.prioritized import PrioritizedReplayBuffer

__all__ = ["DISCOUNT_COLUMN", "BufferSpec"]

DISCOUNT_COLUMN = "nstep_discount"
_KINDS = ("uniform", "prioritized")


def _plain(env_dict: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """A deep copy of ``env_dict`` as plain dicts (copied at the door: the caller may change theirs)."""
    if not isinstance(env_dict, Mapping) or not env_dict:
        raise TypeError(f"env_dict must be a non-empty dict of field specs, got env_dict={env_dict!r}")
    out: dict[str, dict[str, Any]] = {}
    for name, spec in env_dict.items():
        if not isinstance(spec, Mapping):
            raise TypeError(f"env_dict[{name!r}] must be a dict like {{'shape': 4}}, got {spec!r}")
        out[name] = dict(spec)
    return out


@dataclass(frozen=True)
class BufferSpec:
    """The buffer of each shard: ``kind`` ``"uniform"`` (``ReplayBuffer``) or ``"prioritized"``
    (``PrioritizedReplayBuffer``), with the usual arguments.

    Args:
        size: capacity of **each** shard in transitions (``K`` shards hold up to ``K * size``).
        env_dict: the fields, as for ``ReplayBuffer``.
        kind: ``"uniform"`` or ``"prioritized"``.
        alpha, eps: PER's exponent and offset, ``q = (p + eps) ** alpha`` (prioritized only).
        Nstep: ``{"size": n, "rew": ..., "gamma": ..., "next": ...}`` as for ``ReplayBuffer``; the windows run
            in each client (see the module docstring), so each writer's transitions form their own episodes.
        next_of: store ``obs`` once and derive ``next_obs`` (as for ``ReplayBuffer``). Rows of interleaved
            writers link only where the values are bitwise equal, so the values stay exact; with ``Nstep`` most
            rows keep their own ``next_obs`` (the saving is then small).
        default_dtype: dtype of fields that name none.
        seed: seeds the shards' generators (shard ``s`` gets ``SeedSequence(seed).spawn(K)[s]``); None: fresh
            entropy.

    Prioritized shards are built with ``check_for_update=True``: ``update_priorities`` skips rows written since
    that shard's last draw (rows the learner never saw), as ``MPPrioritizedReplayBuffer`` does.
    """

    size: int
    env_dict: Mapping[str, Mapping[str, Any]]
    kind: str = "uniform"
    alpha: float = 0.6
    eps: float = 1e-4
    Nstep: Mapping[str, Any] | None = None
    next_of: str | Sequence[str] | None = None
    default_dtype: Any = np.float32
    seed: int | None = None
    _config: NstepConfig | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised copies are set once, here
        set_(self, "size", check_positive_int(self.size, "size"))
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be 'uniform' or 'prioritized', got kind={self.kind!r}")
        set_(self, "alpha", check_nonnegative_float(self.alpha, "alpha"))
        set_(self, "eps", check_nonnegative_float(self.eps, "eps"))
        set_(self, "env_dict", _plain(self.env_dict))
        if self.Nstep is not None and not isinstance(self.Nstep, Mapping):
            raise TypeError(f"Nstep must be None or a dict like {{'size': 3, 'rew': 'rew'}}, got Nstep={self.Nstep!r}")
        if self.Nstep is not None:
            set_(self, "Nstep", dict(self.Nstep))
        if self.next_of is not None and not isinstance(self.next_of, str):
            if not isinstance(self.next_of, Sequence) or not all(isinstance(n, str) for n in self.next_of):
                raise TypeError(f"next_of must be a field name or a list of them, got next_of={self.next_of!r}")
            set_(self, "next_of", tuple(self.next_of))
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"seed must be None or an int >= 0, got seed={self.seed!r}")
        schema = self.input_schema()  # checks env_dict and next_of like ReplayBuffer does
        set_(self, "_config", NstepConfig.parse(self.Nstep, schema, self.size))
        self.build_buffer(1, check_only=True)

    # ------------------------------------------------------------------------------------------- derived
    @property
    def prioritized(self) -> bool:
        """Whether the shards are ``PrioritizedReplayBuffer``\\ s."""
        return self.kind == "prioritized"

    @property
    def nstep(self) -> NstepConfig | None:
        """The parsed N-step configuration (None without ``Nstep``)."""
        return self._config

    def next_names(self) -> tuple[str, ...]:
        """The fields ``next_of`` derives (``("obs",)`` for ``next_of="obs"``)."""
        if self.next_of is None:
            return ()
        return (self.next_of,) if isinstance(self.next_of, str) else tuple(self.next_of)

    def input_schema(self) -> Schema:
        """The fields an ``add`` takes: ``env_dict`` plus ``next_<x>`` for every ``next_of`` field."""
        env = dict(self.env_dict)
        for x in self.next_names():
            if x not in env:
                raise ValueError(f"next_of names {x!r}, which is not a field of env_dict")
            env[f"next_{x}"] = env[x]
        return Schema(env, np.float32 if self.default_dtype is None else self.default_dtype)

    def discount_column(self) -> str:
        """The name of the stored ``discount`` column (N-step only): :data:`DISCOUNT_COLUMN`, lengthened with
        underscores until no field an ``add`` takes has it."""
        taken = set(self.input_schema().fields)
        name = DISCOUNT_COLUMN
        while name in taken:
            name += "_"
        return name

    def mass_fits(self, largest: float) -> bool:
        """Whether a priority ``largest`` keeps ``(p + eps) ** alpha <= float_max / (2 * size)``, the bound a
        ``PrioritizedReplayBuffer`` of this size enforces so its float64 sums cannot overflow (same formula)."""
        limit = np.finfo(np.float64).max / (2.0 * self.size)
        try:
            q_max = (largest + self.eps) ** self.alpha
        except OverflowError:
            return False
        return bool(q_max <= limit)

    # ------------------------------------------------------------------------------------------- building
    def build_buffer(self, size: int | None = None, *, rng: Any = None, check_only: bool = False) -> ReplayBuffer:
        """A new (empty) buffer of this spec: what a server holds. ``size`` overrides the capacity (used to check
        the spec cheaply); ``rng`` seeds it. With ``Nstep``, a one-step buffer with the discount column."""
        env = dict(self.env_dict)
        if self._config is not None:
            env[self.discount_column()] = {"shape": 1, "dtype": np.float32}
        kwargs: dict[str, Any] = {"default_dtype": self.default_dtype, "rng": rng}
        if self.next_of is not None:
            kwargs["next_of"] = list(self.next_names())
        cap = self.size if size is None else size
        if self.prioritized:
            buffer: ReplayBuffer = PrioritizedReplayBuffer(
                cap, env, alpha=self.alpha, eps=self.eps, check_for_update=True, **kwargs
            )
        else:
            buffer = ReplayBuffer(cap, env, **kwargs)
        if check_only:
            buffer.close()
        return buffer

    def shard_seeds(self, shards: int) -> list[np.random.SeedSequence]:
        """One seed sequence per shard, spawned from ``seed``."""
        return np.random.SeedSequence(self.seed).spawn(shards)
