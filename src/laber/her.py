r"""``HindsightReplayBuffer``: hindsight experience replay (HER) for goal-conditioned tasks.

M. Andrychowicz, F. Wolski, A. Ray, J. Schneider, R. Fong, P. Welinder, B. McGrew, J. Tobin, P. Abbeel,
W. Zaremba, "Hindsight Experience Replay", NeurIPS 2017, arXiv:1707.01495. An episode that missed its goal
``g`` still shows how to reach the states it did reach: HER stores each transition once with ``g`` and
``k`` more times with goals ``g'`` the episode actually achieved, each with the reward recomputed for ``g'``.

With an episode of ``T`` transitions ``(s_t, a_t, s_{t+1})`` (``state``, ``action``, ``next_state``), a
goal function ``phi`` (``goal_func``; the identity when None) mapping a state to the goal it achieves, and the
reward function ``r`` (``reward_func``), ``on_episode_end(g)`` stores ``(1 + k) T`` rows: first the episode
with its own goal, then ``k`` relabelled copies ``j = 1 .. k``, copy after copy, each in step order:

.. math::

    \text{original: } (s_t, a_t, s_{t+1}, g, r(s_{t+1}, a_t, g)),\qquad
    \text{copy } j\text{: } (s_t, a_t, s_{t+1}, g_{j,t}, r(s_{t+1}, a_t, g_{j,t})),\quad
    g_{j,t} = \phi(x_{j,t})

where ``x_{j,t}`` is the ``next_state`` of a transition chosen by the strategy (the paper's Section 4.5):

* ``"future"``: ``x_{j,t} = s_{u+1}``, ``u ~ U{t, ..., T-1}``: a state reached at or after step ``t`` of the
  same episode (the paper's best strategy, with ``k = 4``);
* ``"episode"``: ``u ~ U{0, ..., T-1}``: any state reached in the episode;
* ``"final"``: ``u = T - 1``: the episode's last state; one copy (``k = 1`` whatever ``additional_goals``);
* ``"random"``: the ``next_state`` of a row drawn uniformly from the whole buffer as it is once this
  episode's original rows are in (older episodes, their copies, and this episode).

The draws, from ``rng`` (a seed or a ``numpy.random.Generator``, shared with the storage's ``sample``), are
one call per episode: ``rng.integers(arange(T), T, size=(k, T))`` for ``future``,
``rng.integers(0, T, size=(k, T))`` for ``episode``, ``rng.integers(0, M, size=(k, T))`` for ``random``, with
``M`` the rows the buffer holds once the originals are in: ``u < M - min(T, size)`` is the ``u``-th oldest
surviving older row, the rest this episode's rows in step order. The reward function gets the *next* state
(the state the action reached), as in cpprb: ``reward_func(next_state, action, goal)``, called on batches.
"""

from __future__ import annotations

import numbers
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from laber._validation import RngLike, as_generator, check_positive_int, host_array, short_repr
from laber.buffers import ReplayBuffer
from laber.fields import Schema
from laber.prioritized import PrioritizedReplayBuffer

__all__ = ["HindsightReplayBuffer"]

STRATEGIES = ("future", "episode", "random", "final")
_REW = "rew"
_GOAL = "goal"


def _shape_tuple(value: object, name: str) -> tuple[int, ...]:
    """An int or an iterable of positive ints as a shape tuple (``()`` becomes ``(1,)``, as for fields)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {name}={value!r}")
    if isinstance(value, numbers.Integral):
        dims: tuple[object, ...] = (value,)
    elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        dims = tuple(value)
    else:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {name}={value!r}")
    out = []
    for d in dims:
        if isinstance(d, bool) or not isinstance(d, numbers.Integral) or int(d) <= 0:
            raise ValueError(f"{name} must hold positive ints, got {name}={value!r}")
        out.append(int(d))
    return tuple(out) if out else (1,)


def _check_nonnegative_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= 0, got {name}={value!r}")
    if int(value) < 0:
        raise ValueError(f"{name} must be an int >= 0, got {name}={value!r}")
    return int(value)


class HindsightReplayBuffer:
    r"""Hindsight experience replay (Andrychowicz et al., NeurIPS 2017) over a laber replay buffer.

    Args:
        size: capacity of the replay buffer in rows (each episode of ``T`` steps takes ``(1 + k) T``).
        env_dict: the fields of one transition (as ``ReplayBuffer``), without ``rew`` and ``goal``: the
            buffer adds ``rew`` (shape 1, ``default_dtype``) and ``goal`` (``goal_shape``, the state's dtype).
        max_episode_len: the most transitions one episode may ``add`` before ``on_episode_end``.
        reward_func: ``reward_func(next_state, action, goal) -> rewards``, on batches of ``n`` rows, giving
            ``n`` rewards (shape ``(n,)`` or ``(n, 1)``).
        goal_func: ``goal_func(states) -> goals``, on a batch of states, giving the goals they achieve
            (shape ``(n, *goal_shape)``); the identity when None.
        goal_shape: shape of a goal; the state's shape when None.
        state, action, next_state: the names of those fields in ``env_dict``.
        strategy: ``"future"``, ``"episode"``, ``"random"`` or ``"final"`` (see :mod:`laber.her`).
        additional_goals: ``k``, relabelled copies of each transition (an int ``>= 0``; 1 for ``"final"``).
        prioritized: store in a :class:`laber.PrioritizedReplayBuffer` (``sample(batch_size, beta)`` then
            returns ``weights``, and ``update_priorities`` works) instead of a :class:`laber.ReplayBuffer`.
        rng: an int seed or a ``numpy.random.Generator`` for the strategy's draws and for ``sample``.
        **kwargs: passed to the replay buffer (``alpha``, ``eps``, ``default_dtype``, ``next_of``,
            ``stack_compress``). ``Nstep`` is refused: copies of one episode would share N-step windows.

    Use: ``add(**transition)`` for each step (or a batch of steps) of the current episode, which are held
    apart until ``on_episode_end(goal)`` relabels and stores them all, with ``goal`` the episode's own goal
    (one goal, or one per step). ``sample``, ``get_all_transitions``, ``get_stored_size`` and the others read
    the replay buffer. Every call is validated before anything changes: a bad one raises a ``ValueError`` or
    ``TypeError`` naming the argument and leaves the buffers and the generator as they were (an
    ``on_episode_end`` whose ``reward_func`` or ``goal_func`` fails or returns the wrong shape included).

    Differences from cpprb 11.0.0: the draws come from ``rng`` (cpprb: an unseeded generator); a batch
    ``add`` that would take the episode past ``max_episode_len`` is refused whole (cpprb checks only the
    length before the call, and its episode ring then overwrites the episode's first steps); ``Nstep`` and an
    ``env_dict`` with ``rew`` or ``goal`` are refused (cpprb builds windows across copies, or fails inside
    ``on_episode_end``); ``goal_func`` and ``reward_func`` are called once per episode on all copies at once
    (cpprb: once per copy), and all ``(1 + k) T`` rows go to the buffer in one ``add``, so they are stored
    together or not at all; ``"random"`` reads the same rows cpprb's does (the buffer with the originals
    in) in another order, so the same draws give other goals; ``sample`` also returns ``indexes`` without PER.

    Thread safety: every public method holds this object's lock (a ``threading.RLock``) for the whole call.
    """

    def __init__(
        self,
        size: int | float,
        env_dict: Mapping[str, Mapping[str, Any]],
        max_episode_len: int,
        reward_func: Callable[[np.ndarray, np.ndarray, np.ndarray], Any],
        *,
        goal_func: Callable[[np.ndarray], Any] | None = None,
        goal_shape: int | Iterable[int] | None = None,
        state: str = "obs",
        action: str = "act",
        next_state: str = "next_obs",
        strategy: str = "future",
        additional_goals: int = 4,
        prioritized: bool = True,
        rng: RngLike = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(env_dict, Mapping) or not env_dict:
            raise TypeError(f"env_dict must be a non-empty dict of field specs, got env_dict={short_repr(env_dict)}")
        for reserved in (_REW, _GOAL):
            if reserved in env_dict:
                raise ValueError(
                    f"env_dict must not have a field {reserved!r}: HindsightReplayBuffer adds it (rewards are "
                    f"recomputed by reward_func, goals relabelled); remove env_dict[{reserved!r}]"
                )
        self._max_episode_len = check_positive_int(max_episode_len, "max_episode_len")
        if not callable(reward_func):
            raise TypeError(f"reward_func must be callable (next_state, action, goal) -> rewards, got {reward_func!r}")
        if goal_func is not None and not callable(goal_func):
            raise TypeError(f"goal_func must be None or callable (states) -> goals, got goal_func={goal_func!r}")
        if not isinstance(strategy, str):
            raise TypeError(f"strategy must be one of {list(STRATEGIES)}, got strategy={strategy!r}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {list(STRATEGIES)}, got strategy={strategy!r}")
        k = _check_nonnegative_int(additional_goals, "additional_goals")
        if not isinstance(prioritized, (bool, np.bool_)):
            raise TypeError(f"prioritized must be True or False, got prioritized={prioritized!r}")
        if "Nstep" in kwargs:
            raise ValueError(
                "Nstep is not supported by HindsightReplayBuffer: the relabelled copies of an episode would "
                "share N-step windows; use 1-step targets (or N-step returns computed before add)"
            )
        next_of = kwargs.get("next_of")
        derived = (next_of,) if isinstance(next_of, str) else tuple(next_of) if isinstance(next_of, list) else ()
        inputs: dict[str, Mapping[str, Any]] = dict(env_dict)
        for x in derived:
            if isinstance(x, str) and x in env_dict:
                inputs[f"next_{x}"] = env_dict[x]
        default_dtype = kwargs.get("default_dtype", np.float32)
        schema = Schema(inputs, default_dtype)  # names a malformed env_dict as ReplayBuffer does
        for arg, name in (("state", state), ("action", action), ("next_state", next_state)):
            if not isinstance(name, str):
                raise TypeError(f"{arg} must be a field name (str), got {arg}={name!r}")
            if name not in inputs:
                raise ValueError(f"{arg}={name!r} is not a field of env_dict (fields: {list(inputs)})")
        state_shape = schema[state].shape
        if goal_shape is None or (isinstance(goal_shape, (tuple, list)) and len(goal_shape) == 0):
            shape = state_shape
        else:
            shape = _shape_tuple(goal_shape, "goal_shape")
        if goal_func is None and shape != state_shape:
            raise ValueError(
                f"goal_shape={goal_shape!r} differs from the shape {state_shape} of {state!r}, but without a "
                f"goal_func the goal is the state itself: give goal_func"
            )
        goal_spec = {"shape": shape, "dtype": schema[state].dtype}
        self._rng = as_generator(rng)
        cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
        self._rb = cls(size, {**env_dict, _REW: {}, _GOAL: goal_spec}, rng=self._rng, **kwargs)
        self._episode = ReplayBuffer(self._max_episode_len, inputs, default_dtype=default_dtype)
        self._episode_schema = schema
        self._names = tuple(inputs)
        self._reward_func = reward_func
        self._goal_func = goal_func
        self._goal_shape = shape
        self._state, self._action, self._next_state = state, action, next_state
        self._strategy = strategy
        self._k = 1 if strategy == "final" else k
        self._prioritized = bool(prioritized)
        self._lock = threading.RLock()

    # ------------------------------------------------------------------------------------------- properties
    @property
    def max_episode_len(self) -> int:
        """The most transitions one episode may hold."""
        return self._max_episode_len

    @property
    def strategy(self) -> str:
        """The goal-sampling strategy."""
        return self._strategy

    @property
    def additional_goals(self) -> int:
        """``k``: relabelled copies stored per transition (1 for ``"final"``)."""
        return self._k

    @property
    def prioritized(self) -> bool:
        """Whether the rows are stored in a ``PrioritizedReplayBuffer``."""
        return self._prioritized

    @property
    def goal_shape(self) -> tuple[int, ...]:
        """Shape of one goal."""
        return self._goal_shape

    # ------------------------------------------------------------------------------------------- adding
    def add(self, **fields: Any) -> None:
        """Add one transition or a batch of the current episode (validated as ``ReplayBuffer.add``).

        Raises ``ValueError`` (nothing added) if the episode would exceed ``max_episode_len`` transitions. A
        ``rew=`` value is ignored, as in cpprb: the rewards are ``reward_func``'s (cpprb's HER example passes one).
        """
        fields = {k: v for k, v in fields.items() if k != _REW}
        with self._lock:
            rows = self._episode_schema.check_add(fields, self._names)[0]
            held = self._episode.get_stored_size()
            if held + rows > self._max_episode_len:
                raise ValueError(
                    f"the episode would exceed max_episode_len={self._max_episode_len}: it holds {held} "
                    f"transitions and add() got {rows}; call on_episode_end(goal) first"
                )
            self._episode.add(**fields)

    def get_current_episode_len(self) -> int:
        """Transitions added to the current episode so far."""
        return self._episode.get_stored_size()

    def _goals_from(self, states: np.ndarray, rows: int) -> np.ndarray:
        """``goal_func(states)`` (the states themselves without one), checked to be ``(rows, *goal_shape)``."""
        if self._goal_func is None:
            return states
        try:
            goals = np.asarray(host_array(self._goal_func(states)))
        except Exception as exc:
            raise ValueError(f"goal_func failed on {rows} states: {exc!r}") from exc
        if goals.shape != (rows, *self._goal_shape) and not (self._goal_shape == (1,) and goals.shape == (rows,)):
            raise ValueError(
                f"goal_func must return one goal of shape {self._goal_shape} per state, got shape {goals.shape} "
                f"for {rows} states"
            )
        return goals.reshape(rows, *self._goal_shape)

    def _draw_sources(self, traj: Mapping[str, np.ndarray], steps: int) -> np.ndarray:
        """The ``(k * T, *state_shape)`` next states whose goals relabel the copies, drawn by the strategy."""
        k = self._k
        next_states = traj[self._next_state]
        if self._strategy == "future":
            idx = self._rng.integers(np.arange(steps), steps, size=(k, steps))
        elif self._strategy == "episode":
            idx = self._rng.integers(0, steps, size=(k, steps))
        elif self._strategy == "final":
            idx = np.full((k, steps), steps - 1, dtype=np.int64)
        else:
            return self._draw_random(next_states, steps)
        return np.asarray(next_states[idx.reshape(-1)])

    def _draw_random(self, next_states: np.ndarray, steps: int) -> np.ndarray:
        """``"random"``: next states of rows drawn uniformly from the buffer as it is once the originals are in."""
        size = self._rb.get_buffer_size()
        stored = self._rb.get_stored_size()
        new_rows = min(steps, size)
        total = min(size, stored + steps)
        old = total - new_rows  # older rows that survive the originals' add
        dropped = stored - old  # older rows the originals overwrite (the oldest)
        oldest = (self._rb.get_next_index() - stored) % size
        u = self._rng.integers(0, total, size=self._k * steps)
        out = np.empty((u.shape[0], *next_states.shape[1:]), dtype=next_states.dtype)
        from_old = u < old
        if from_old.any():
            rows = (oldest + dropped + u[from_old]) % size
            out[from_old] = self._rb.get_transitions(rows)[self._next_state]
        out[~from_old] = next_states[steps - new_rows + (u[~from_old] - old)]
        return out

    def on_episode_end(self, goal: Any) -> None:
        """Relabel the current episode and store it: ``(1 + k) T`` rows (see :mod:`laber.her`).

        ``goal`` is the episode's own goal: one goal of ``goal_shape`` (broadcast over the steps) or one per
        step. An episode with no transition stores nothing. On any error nothing is stored, the episode is kept
        and the generator is restored.
        """
        with self._lock:
            steps = self._episode.get_stored_size()
            if steps == 0:
                return
            try:
                g = np.asarray(host_array(goal))
            except Exception as exc:
                raise TypeError(f"goal cannot be converted to an array: goal={short_repr(goal)}") from exc
            if g.dtype.kind not in "biuf":
                raise TypeError(f"goal must hold numbers, got dtype={g.dtype}: goal={short_repr(goal)}")
            target = (steps, *self._goal_shape)
            if self._goal_shape == (1,) and g.shape == (steps,):
                g = g.reshape(target)
            try:
                original = np.broadcast_to(g, target)
            except ValueError:
                raise ValueError(
                    f"goal must have shape {self._goal_shape} (one goal) or {target} (one per step), "
                    f"got shape {g.shape}"
                ) from None
            traj = self._episode.get_all_transitions()
            saved = self._rng.bit_generator.state
            try:
                self._store_episode(traj, steps, original)
            except BaseException:
                self._rng.bit_generator.state = saved
                raise
            self._episode.clear()

    def _store_episode(self, traj: Mapping[str, np.ndarray], steps: int, original: np.ndarray) -> None:
        k = self._k
        copies = 1 + k
        if k:
            relabelled = self._goals_from(self._draw_sources(traj, steps), k * steps)
            goals = np.concatenate([original, relabelled])  # rb.add checks that the values fit the goal dtype
        else:
            goals = np.array(original)
        fields = {name: np.concatenate([value] * copies) for name, value in traj.items()}
        n = copies * steps
        try:
            rew = np.asarray(host_array(self._reward_func(fields[self._next_state], fields[self._action], goals)))
        except Exception as exc:
            raise ValueError(f"reward_func failed on {n} rows: {exc!r}") from exc
        if rew.shape not in ((n,), (n, 1)):
            raise ValueError(f"reward_func must return one reward per row, got shape {rew.shape} for {n} rows")
        self._rb.add(**fields, **{_REW: rew, _GOAL: goals})
        self._rb.on_episode_end()

    # ------------------------------------------------------------------------------------------- reading
    def sample(self, batch_size: int, **kwargs: Any) -> dict[str, np.ndarray]:
        """Draw from the replay buffer: ``sample(batch_size)``, or ``sample(batch_size, beta=...)`` with PER."""
        with self._lock:
            return self._rb.sample(batch_size, **kwargs)

    def get_all_transitions(self, shuffle: bool = False) -> dict[str, np.ndarray]:
        """Every stored row (fresh arrays), in ring order, or in an order drawn from ``rng`` with ``shuffle``."""
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got shuffle={shuffle!r}")
        with self._lock:
            out = self._rb.get_all_transitions()
            if shuffle:
                order = self._rng.permutation(self._rb.get_stored_size())
                out = {name: value[order] for name, value in out.items()}
            return out

    def get_stored_size(self) -> int:
        """Rows in the replay buffer (the current episode's transitions are not counted until it ends)."""
        return self._rb.get_stored_size()

    def get_buffer_size(self) -> int:
        """Capacity of the replay buffer in rows."""
        return self._rb.get_buffer_size()

    def get_next_index(self) -> int:
        """Ring index the next row goes to."""
        return self._rb.get_next_index()

    def __len__(self) -> int:
        return self._rb.get_stored_size()

    def clear(self) -> None:
        """Forget every stored row and the current episode."""
        with self._lock:
            self._rb.clear()
            self._episode.clear()

    # ------------------------------------------------------------------------------------------- priorities
    def _per(self, what: str) -> PrioritizedReplayBuffer:
        if not isinstance(self._rb, PrioritizedReplayBuffer):
            raise ValueError(f"{what} needs prioritized=True: this buffer was built with prioritized=False")
        return self._rb

    def update_priorities(self, indexes: Any, priorities: Any) -> None:
        """``PrioritizedReplayBuffer.update_priorities`` of the replay buffer (``ValueError`` without PER)."""
        with self._lock:
            self._per("update_priorities").update_priorities(indexes, priorities)

    def get_max_priority(self) -> float:
        """The running maximum priority (``ValueError`` without PER)."""
        with self._lock:
            return self._per("get_max_priority").get_max_priority()

    def get_priorities(self, indexes: Any = None) -> np.ndarray:
        """A fresh copy of the stored priorities, all or at ``indexes`` (``ValueError`` without PER)."""
        with self._lock:
            return self._per("get_priorities").get_priorities(indexes)

    def __repr__(self) -> str:
        return (
            f"HindsightReplayBuffer(size={self.get_buffer_size()}, stored={self.get_stored_size()}, "
            f"strategy={self._strategy!r}, additional_goals={self._k}, prioritized={self._prioritized})"
        )
