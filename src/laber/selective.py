r"""``SelectiveReplayBuffer``: transitions kept as whole episodes that can be read and deleted one by one.

cpprb's ``SelectiveReplayBuffer`` stores transitions in a flat array (no ring: once it is full, further
transitions are dropped) and remembers where each episode begins, so an episode can be read back or deleted
(the later rows move down to close the gap). This class has the same semantics on any ``env_dict``, as a
part composed on :class:`laber.ReplayBuffer`, which holds the rows; this class keeps the episode boundaries.

With ``b_0 = 0 < b_1 < ... < b_m`` the row where each episode begins (``b_m`` the start of the episode being
recorded) and ``N`` the stored rows:

* episode ``i`` is the rows ``[b_i, b_{i+1})`` (``[b_m, N)`` for the current one);
* ``get_stored_episode_size() = m + 1`` if the current episode has a row (``N > b_m``), else ``m``;
* deleting episode ``i < m`` removes ``b_{i+1} - b_i`` rows and subtracts that from every later ``b``;
  deleting episode ``m`` (the current one) removes its ``N - b_m`` rows.

An episode ends after a transition whose ``done`` field (if ``env_dict`` has one) is true, or at
``on_episode_end()``.
"""

from __future__ import annotations

import numbers
import threading
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int
from laber.buffers import ReplayBuffer
from laber.fields import Schema

__all__ = ["SelectiveReplayBuffer"]

_DONE = "done"


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_episode_index(i: object) -> int:
    if isinstance(i, bool) or not isinstance(i, numbers.Integral):
        raise TypeError(f"i must be an integer episode index, got i={i!r}")
    if int(i) < 0:
        raise ValueError(f"i must be >= 0 (episodes are counted from the oldest, 0), got i={i!r}")
    return int(i)


_LEGACY_ORDER = ("obs", "act", "rew", "next_obs", "done")


def _cpprb_env_dict(obs_dim: object, act_dim: object, rew_dim: object) -> dict[str, dict[str, Any]]:
    """cpprb's fixed fields for ``SelectiveReplayBuffer(episode_len, obs_dim, act_dim, ...)``: float64."""
    dims = {
        "obs_dim": check_positive_int(obs_dim, "obs_dim"),
        "act_dim": check_positive_int(act_dim, "act_dim"),
        "rew_dim": check_positive_int(rew_dim, "rew_dim"),
    }
    f64 = np.float64
    return {
        "obs": {"shape": dims["obs_dim"], "dtype": f64},
        "act": {"shape": dims["act_dim"], "dtype": f64},
        "rew": {"shape": dims["rew_dim"], "dtype": f64},
        "next_obs": {"shape": dims["obs_dim"], "dtype": f64},
        "done": {"shape": 1, "dtype": f64},
    }


class SelectiveReplayBuffer:
    r"""Episode-level storage over a :class:`laber.ReplayBuffer`: read or delete whole episodes.

    Two ways to build one:

    * ``SelectiveReplayBuffer(size, env_dict, *, default_dtype=float32, next_of=None, stack_compress=None,
      rng=None)``: ``size`` transitions over the fields of ``env_dict`` (as ``ReplayBuffer``);
    * cpprb's form, ``SelectiveReplayBuffer(episode_len, obs_dim=1, act_dim=1, Nepisodes=10, *, rew_dim=1)``:
      room for ``episode_len * Nepisodes`` transitions of the float64 fields ``obs (obs_dim,)``,
      ``act (act_dim,)``, ``rew (rew_dim,)``, ``next_obs (obs_dim,)`` and ``done (1,)``. Used when the second
      argument is an int or missing (no ``env_dict``).

    Episodes end after a transition whose ``done`` field (when ``env_dict`` has a field named ``done``) is
    non-zero, or at ``on_episode_end()``. The rows are not a ring: when the buffer is full, ``add`` stores what
    fits and drops the rest (as cpprb), with a ``UserWarning`` saying how many were dropped; delete episodes to
    make room. ``add`` returns the row its first transition went to (cpprb: the number of rows stored before).

    ``get_episode(i)`` returns episode ``i`` (0 the oldest; the episode being recorded counts once it has a
    row) as fresh arrays, or empty ``(0, *shape)`` arrays when there is no episode ``i`` (as cpprb).
    ``delete_episode(i)`` removes it, moves the later rows down, and returns how many rows it removed (0 when
    there is no episode ``i``). ``sample(batch_size)`` draws stored rows uniformly with replacement (from
    ``rng``), as ``ReplayBuffer.sample``.

    Deleting costs a copy of the stored rows (they are read back and rewritten through ``ReplayBuffer``'s
    public ``add``), ``O(stored)`` as in cpprb, which moves the later rows.

    Differences from cpprb 11.0.0: any ``env_dict`` (cpprb's fields are fixed); every ``done`` of a batch ends
    an episode (cpprb registers only the first ``done`` of a batch, merging the episodes after it);
    ``on_episode_end()`` also ends an episode; a negative or non-integer ``i`` is an error, not a C overflow;
    ``sample`` returns ``indexes`` too; the warning when transitions are dropped (cpprb drops them silently).

    Thread safety: every public method holds this object's lock for the whole call.
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]] | int | None = None,
        act_dim: int | None = None,
        Nepisodes: int | None = None,
        *,
        obs_dim: int | None = None,
        rew_dim: int | None = None,
        default_dtype: object = np.float32,
        next_of: str | list[str] | None = None,
        stack_compress: str | list[str] | None = None,
        rng: RngLike = None,
    ) -> None:
        spec: Any
        if env_dict is None or _is_int(env_dict):
            if env_dict is not None and obs_dim is not None:
                raise TypeError("obs_dim was given twice: as the second argument and as obs_dim=")
            episode_len = check_positive_int(size, "episode_len")
            episodes = check_positive_int(10 if Nepisodes is None else Nepisodes, "Nepisodes")
            dims = 1 if env_dict is None else env_dict
            spec = _cpprb_env_dict(
                dims if obs_dim is None else obs_dim,
                1 if act_dim is None else act_dim,
                1 if rew_dim is None else rew_dim,
            )
            capacity: int | float = episode_len * episodes
            self._legacy_dims: dict[str, int] | None = {
                "obs": spec["obs"]["shape"],
                "act": spec["act"]["shape"],
                "rew": spec["rew"]["shape"],
            }
        else:
            self._legacy_dims = None
            given = {"act_dim": act_dim, "Nepisodes": Nepisodes, "obs_dim": obs_dim, "rew_dim": rew_dim}
            extra = [k for k, v in given.items() if v is not None]
            if extra:
                raise TypeError(
                    f"{', '.join(extra)} belong to cpprb's form SelectiveReplayBuffer(episode_len, obs_dim, "
                    f"act_dim, Nepisodes); with an env_dict, give the capacity as size"
                )
            spec = dict(env_dict) if isinstance(env_dict, Mapping) else env_dict  # ReplayBuffer names a bad one
            capacity = size
        self._rb = ReplayBuffer(
            capacity,
            spec,
            default_dtype=default_dtype,
            next_of=next_of,
            stack_compress=stack_compress,
            rng=as_generator(rng),
        )
        inputs = dict(spec)
        for x in (next_of,) if isinstance(next_of, str) else tuple(next_of or ()):
            inputs[f"next_{x}"] = spec[x]
        self._schema = Schema(inputs, default_dtype)
        self._names = tuple(inputs)
        self._begins: list[int] = [0]
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------- adding
    def add(self, *args: Any, **fields: Any) -> int:
        """Add one transition or a batch (validated as ``ReplayBuffer.add``); store what fits, drop the rest.

        A non-zero ``done`` ends the episode after that transition. Returns the row of the first transition
        (equal to the number of rows stored before the call; ``get_buffer_size()`` when nothing fitted). With
        cpprb's form of the constructor, the fields may also be given positionally, in cpprb's order
        ``add(obs, act, rew, next_obs, done)``.
        """
        if args:
            if self._legacy_dims is None or len(args) > len(_LEGACY_ORDER):
                raise TypeError(
                    "positional fields are only taken with cpprb's form SelectiveReplayBuffer(episode_len, "
                    f"obs_dim, act_dim, Nepisodes), in the order {list(_LEGACY_ORDER)}; got {len(args)} of them"
                )
            named = dict(zip(_LEGACY_ORDER, args, strict=False))
            twice = sorted(set(named) & set(fields))
            if twice:
                raise TypeError(f"field(s) {twice} given both positionally and by name")
            fields = {**named, **fields}
        with self._lock:
            rows, arrays = self._schema.check_add(fields, self._names)
            start = self._rb.get_stored_size()
            room = self._rb.get_buffer_size() - start
            keep = min(rows, room)
            if keep < rows:
                warnings.warn(
                    f"SelectiveReplayBuffer is full ({self._rb.get_buffer_size()} transitions): dropped "
                    f"{rows - keep} of the {rows} transitions added; delete_episode() makes room",
                    UserWarning,
                    stacklevel=2,
                )
            if keep == 0:
                return start
            if rows > 1:
                arrays = {k: np.asarray(v)[:keep] for k, v in arrays.items()}
            self._rb.add(**arrays)
            if _DONE in arrays:
                done = np.asarray(arrays[_DONE]).reshape(keep, -1).any(axis=1)
                self._begins.extend(int(start + j + 1) for j in np.flatnonzero(done))
            return start

    def on_episode_end(self) -> None:
        """End the current episode (a no-op when it has no row yet)."""
        with self._lock:
            stored = self._rb.get_stored_size()
            if stored > self._begins[-1]:
                self._begins.append(stored)

    # ------------------------------------------------------------------------------------------- episodes
    def _legacy(self, name: str) -> int:
        if self._legacy_dims is None:
            raise AttributeError(
                f"get_{name}_dim belongs to cpprb's form SelectiveReplayBuffer(episode_len, obs_dim, act_dim, "
                f"Nepisodes); this buffer was built from an env_dict"
            )
        return int(self._legacy_dims[name])

    def get_obs_dim(self) -> int:
        """``obs_dim`` of cpprb's form of the constructor."""
        return self._legacy("obs")

    def get_act_dim(self) -> int:
        """``act_dim`` of cpprb's form of the constructor."""
        return self._legacy("act")

    def get_rew_dim(self) -> int:
        """``rew_dim`` of cpprb's form of the constructor."""
        return self._legacy("rew")

    def get_obs_shape(self) -> tuple[int]:
        """``(obs_dim,)`` of cpprb's form of the constructor."""
        return (self._legacy("obs"),)

    def get_stored_episode_size(self) -> int:
        """Number of episodes stored, the current one included once it has a row."""
        with self._lock:
            open_rows = self._rb.get_stored_size() > self._begins[-1]
            return len(self._begins) - (0 if open_rows else 1)

    def _episode_range(self, i: int) -> tuple[int, int]:
        begin = self._begins[i]
        end = self._begins[i + 1] if i + 1 < len(self._begins) else self._rb.get_stored_size()
        return begin, end

    def get_episode(self, i: int) -> dict[str, np.ndarray]:
        """Episode ``i`` (0 the oldest) as fresh arrays; empty ``(0, *shape)`` arrays if there is none."""
        i = _check_episode_index(i)
        with self._lock:
            if i >= self.get_stored_episode_size():
                return self._rb.get_transitions(np.arange(0, dtype=np.int64))
            begin, end = self._episode_range(i)
            return self._rb.get_transitions(np.arange(begin, end, dtype=np.int64))

    def delete_episode(self, i: int) -> int:
        """Delete episode ``i``; later rows move down. Returns the number of rows deleted (0: no episode ``i``)."""
        i = _check_episode_index(i)
        with self._lock:
            if i >= len(self._begins):
                return 0
            begin, end = self._episode_range(i)
            if end == begin:
                return 0
            rows = self._rb.get_all_transitions()
            kept = {k: np.concatenate([v[:begin], v[end:]]) for k, v in rows.items()}
            self._rb.clear()
            if kept and len(next(iter(kept.values()))):
                self._rb.add(**kept)
            removed = end - begin
            if i + 1 < len(self._begins):
                self._begins[i + 1 :] = [b - removed for b in self._begins[i + 1 :]]
                del self._begins[i]
            return removed

    # ------------------------------------------------------------------------------------------- reading
    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """``batch_size`` stored rows drawn uniformly with replacement (fresh arrays plus ``indexes``)."""
        with self._lock:
            return self._rb.sample(batch_size)

    def get_all_transitions(self) -> dict[str, np.ndarray]:
        """Every stored row, oldest episode first (fresh arrays)."""
        with self._lock:
            return self._rb.get_all_transitions()

    def get_stored_size(self) -> int:
        """Number of rows stored."""
        return self._rb.get_stored_size()

    def get_next_index(self) -> int:
        """Row the next transition goes to (equal to the stored size: the rows are not a ring)."""
        return self._rb.get_stored_size()

    def get_buffer_size(self) -> int:
        """Capacity in rows."""
        return self._rb.get_buffer_size()

    def __len__(self) -> int:
        return self._rb.get_stored_size()

    def clear(self) -> None:
        """Forget every row and episode."""
        with self._lock:
            self._rb.clear()
            self._begins = [0]

    def __repr__(self) -> str:
        return (
            f"SelectiveReplayBuffer(size={self.get_buffer_size()}, stored={self.get_stored_size()}, "
            f"episodes={self.get_stored_episode_size()})"
        )
