"""cpprb's utilities: ``create_buffer`` (a buffer from flags) and ``train`` (an off-policy training loop).

``train`` runs a gymnasium environment (``reset`` returning ``(obs, info)``, ``step`` returning
``(obs, reward, terminated, truncated, info)``), stores every transition in a replay buffer and, after the
warm-up steps, samples a batch and calls ``update_policy`` once per step (feeding the returned ``|TD|`` back as
priorities for a prioritized buffer). Neither function draws random numbers of its own: the buffer has its own
``rng``, the environment is seeded by ``train(..., seed=...)``, and the policy is yours.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from laber.buffers import ReplayBuffer
from laber.mp import MPPrioritizedReplayBuffer, MPReplayBuffer
from laber.prioritized import PrioritizedReplayBuffer

if TYPE_CHECKING:
    from gymnasium import Env

__all__ = ["TrainSummary", "create_buffer", "train"]

_LOGGER = logging.getLogger(__name__)


def create_buffer(
    size: int | float,
    env_dict: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    prioritized: bool = False,
    Nstep: Mapping[str, Any] | None = None,
    next_of: str | list[str] | None = None,
    stack_compress: str | list[str] | None = None,
    default_dtype: object = None,
    mmap_prefix: str | os.PathLike[str] | None = None,
    ctx: Any = None,
    backend: str | None = None,
    **kwargs: Any,
) -> ReplayBuffer:
    """A replay buffer chosen by flags (cpprb's helper): ``ReplayBuffer``, or ``PrioritizedReplayBuffer`` with
    ``prioritized=True``; with ``ctx`` or ``backend``, their multi-process versions ``MPReplayBuffer`` /
    ``MPPrioritizedReplayBuffer`` (a laber addition: cpprb's ``create_buffer`` never builds those).

    Args:
        size: capacity in transitions (an integral float such as ``1e6`` is accepted).
        env_dict: the fields, ``{name: {"shape": ..., "dtype": ...}}`` (e.g. from :func:`laber.create_env_dict`).
        prioritized: build a prioritized buffer (then ``alpha`` and ``eps`` may be passed too).
        Nstep, next_of, stack_compress: as for ``ReplayBuffer`` (the multi-process buffers refuse the last two).
        default_dtype: dtype of fields that name none; ``None`` (cpprb's default) means ``np.float32``.
        mmap_prefix: keep the rows in memory-mapped files named from this prefix (as ``ReplayBuffer``).
        ctx, backend: a multiprocessing context and a shared-memory backend: either one makes the buffer a
            multi-process one (see :mod:`laber.mp`).
        **kwargs: the other arguments of the buffer's constructor (``rng``, ``storage``; ``alpha``, ``eps``
            when prioritized). Unlike cpprb, which ignores keywords it does not know, an unknown keyword is a
            ``TypeError``.

    Raises:
        TypeError: ``prioritized`` is not a bool, ``alpha``/``eps`` without ``prioritized=True``, or an unknown
            keyword; and the errors of the buffer's constructor (e.g. ``mmap_prefix`` with ``ctx``).
    """
    if not isinstance(prioritized, (bool, np.bool_)):
        raise TypeError(f"prioritized must be True or False, got prioritized={prioritized!r}")
    if not prioritized:
        for name in ("alpha", "eps"):
            if name in kwargs:
                raise TypeError(
                    f"create_buffer: {name} is an option of prioritized buffers; pass prioritized=True to use it "
                    f"(got {name}={kwargs[name]!r} with prioritized=False)"
                )
    given = {
        "Nstep": Nstep,
        "next_of": next_of,
        "stack_compress": stack_compress,
        "default_dtype": default_dtype,
        "mmap_prefix": mmap_prefix,
    }
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None} | kwargs
    if ctx is not None or backend is not None:
        if backend is not None:
            options["backend"] = backend
        if prioritized:
            return MPPrioritizedReplayBuffer(size, env_dict, ctx=ctx, **options)
        return MPReplayBuffer(size, env_dict, ctx=ctx, **options)
    if prioritized:
        return PrioritizedReplayBuffer(size, env_dict, **options)
    return ReplayBuffer(size, env_dict, **options)


class _Buffer(Protocol):
    """What ``train`` needs of a buffer (``update_priorities`` too, when it has one)."""

    def add(self, **fields: Any) -> Any: ...

    def sample(self, batch_size: int) -> dict[str, np.ndarray]: ...

    def get_stored_size(self) -> int: ...

    def on_episode_end(self) -> None: ...


@dataclass(frozen=True)
class TrainSummary:
    """What :func:`train` did: ``steps`` environment steps, ``episodes`` finished episodes, ``updates`` calls of
    ``update_policy``."""

    steps: int
    episodes: int
    updates: int


def _check_count(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {name}={value!r}")
    return int(value)


def _check_callable(value: object, name: str, optional: bool) -> None:
    if value is None and optional:
        return
    if not callable(value):
        kind = "a callable or None" if optional else "a callable"
        raise TypeError(f"{name} must be {kind}, got {name}={value!r}")


def _reset(env: Env[Any, Any], seed: int | None) -> Any:
    result = env.reset(seed=seed) if seed is not None else env.reset()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise TypeError(
            f"env.reset() must return gymnasium's (obs, info), got {type(result).__name__}: train needs a "
            f"gymnasium>=1.0 environment (wrap an old gym one with gymnasium's compatibility wrappers)"
        )
    return result[0]


def train(
    buffer: _Buffer,
    env: Env[Any, Any],
    get_action: Callable[[Any, int, int, bool], Any],
    update_policy: Callable[[dict[str, np.ndarray], int, int], Any],
    *,
    max_steps: int = 1_000_000,
    max_episodes: int | None = None,
    batch_size: int = 64,
    n_warmups: int = 0,
    after_step: Callable[[Any, Any, tuple[Any, ...], int, int], Mapping[str, Any]] | None = None,
    done_check: Callable[[Mapping[str, Any]], Any] | None = None,
    obs_update: Callable[[Mapping[str, Any]], Any] | None = None,
    rew_sum: Callable[[float, Mapping[str, Any]], float] | None = None,
    episode_callback: Callable[[int, int, float], Any] | None = None,
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    seed: int | None = None,
) -> TrainSummary:
    """Train a policy off-policy on a gymnasium environment (cpprb's ``train``, for gymnasium's API).

    Each step ``step = 0 .. max_steps - 1`` (``episode`` counts finished episodes):

    1. ``action = get_action(obs, step, episode, is_warmup)``, with ``is_warmup = step < n_warmups``;
    2. ``returns = env.step(action)``, the 5-tuple ``(next_obs, reward, terminated, truncated, info)``;
    3. ``transition = after_step(obs, action, returns, step, episode)`` if given, else
       ``{"obs": obs, "act": action, "rew": reward, "next_obs": next_obs, "done": terminated}`` (a time-limit
       truncation is not ``done``: the target still bootstraps), and ``buffer.add(**transition)``;
    4. after the warm-up, if the buffer holds any row (an N-step buffer may not yet):
       ``td = update_policy(buffer.sample(batch_size), step, episode)``; for a buffer with
       ``update_priorities`` (prioritized) ``buffer.update_priorities(sample["indexes"], td)``;
    5. ``episode_reward = rew_sum(episode_reward, transition)`` if given, else ``episode_reward + reward``;
    6. the episode ends when ``terminated`` or ``truncated``, or when ``done_check(transition)`` is true. Then
       the episode is logged (INFO), ``episode_callback(episode, episode_step, episode_reward)`` is called
       (``episode_step``: the 0-based index of the episode's last step, as in cpprb, so its length is
       ``episode_step + 1``), ``buffer.on_episode_end()``, and ``obs, _ = env.reset()``; training stops once
       ``max_episodes`` episodes have ended. Otherwise ``obs = obs_update(transition)`` if given, else
       ``next_obs``.

    Args:
        buffer: a laber buffer (anything with ``add``, ``sample``, ``get_stored_size``, ``on_episode_end``).
        env: a gymnasium>=1.0 environment.
        get_action: ``(obs, step, episode, is_warmup) -> action``.
        update_policy: ``(sample, step, episode) -> |TD|`` of the sample (the return value is used as new
            priorities for a prioritized buffer, ignored otherwise).
        max_steps: environment steps to run (``>= 0``).
        max_episodes: stop after this many episodes (``None``: no limit).
        batch_size: rows sampled per update.
        n_warmups: steps before the first update (the buffer fills; ``get_action`` is told ``is_warmup``).
        after_step: ``(obs, action, env.step(action), step, episode) -> transition`` (the keyword fields of
            ``buffer.add``), e.g. from :func:`laber.create_before_add_func` for nested spaces.
        done_check: ``(transition) -> bool``: ends an episode early (e.g. on a life lost). The environment's
            ``terminated``/``truncated`` always end it: gymnasium needs a reset after either.
        obs_update: ``(transition) -> obs`` for the next step.
        rew_sum: ``(episode_reward, transition) -> episode_reward``.
        episode_callback: ``(episode, episode_step, episode_reward)``, at the end of each episode.
        logger: where the per-episode INFO lines go; default the ``laber.util`` logger (laber installs no
            handler: configure ``logging`` to see them).
        seed: passed to the first ``env.reset(seed=seed)``; later resets continue the environment's own
            generator, so a run is reproducible from ``seed``, the buffer's ``rng`` and the policy's.

    Returns:
        A :class:`TrainSummary` (cpprb returns None).

    Raises:
        TypeError/ValueError naming the argument for bad arguments (checked before the environment is touched),
        an ``env`` that does not follow gymnasium's ``reset``/``step`` API, an ``after_step`` that does not return
        a mapping, or a prioritized buffer whose ``update_policy`` returns None.
    """
    for method in ("add", "sample", "get_stored_size", "on_episode_end"):
        if not callable(getattr(buffer, method, None)):
            raise TypeError(f"buffer must be a laber replay buffer (it has no {method}()), got buffer={buffer!r}")
    for method in ("reset", "step"):
        if not callable(getattr(env, method, None)):
            raise TypeError(f"env must be a gymnasium environment (it has no {method}()), got env={env!r}")
    _check_callable(get_action, "get_action", optional=False)
    _check_callable(update_policy, "update_policy", optional=False)
    steps_limit = _check_count(max_steps, "max_steps", 0)
    episodes_limit = math.inf if max_episodes is None else _check_count(max_episodes, "max_episodes", 1)
    batch = _check_count(batch_size, "batch_size", 1)
    warmups = _check_count(n_warmups, "n_warmups", 0)
    hooks = {
        "after_step": after_step,
        "done_check": done_check,
        "obs_update": obs_update,
        "rew_sum": rew_sum,
        "episode_callback": episode_callback,
    }
    for name, hook in hooks.items():
        _check_callable(hook, name, optional=True)
    if logger is None:
        logger = _LOGGER
    elif not callable(getattr(logger, "info", None)):
        raise TypeError(f"logger must be a logging.Logger (or have .info), got logger={logger!r}")
    if seed is not None:
        seed = _check_count(seed, "seed", 0)
    update_priorities = getattr(buffer, "update_priorities", None)
    if not callable(update_priorities):
        update_priorities = None

    episode = episode_step = updates = steps = 0
    episode_reward = 0.0
    obs = _reset(env, seed)
    started = time.perf_counter()
    for step in range(steps_limit):
        is_warmup = step < warmups
        action = get_action(obs, step, episode, is_warmup)
        returns = env.step(action)
        if not (isinstance(returns, tuple) and len(returns) == 5):
            raise TypeError(
                f"env.step() must return gymnasium's (obs, reward, terminated, truncated, info), got "
                f"{type(returns).__name__} of length {len(returns) if isinstance(returns, tuple) else '-'}"
            )
        next_obs, reward, terminated, truncated, _info = returns
        steps += 1
        if after_step is not None:
            transition = after_step(obs, action, returns, step, episode)
            if not isinstance(transition, Mapping):
                raise TypeError(
                    f"after_step must return the fields of buffer.add as a dict, got {type(transition).__name__}"
                )
        else:
            transition = {"obs": obs, "act": action, "rew": reward, "next_obs": next_obs, "done": terminated}
        buffer.add(**transition)

        if not is_warmup and buffer.get_stored_size() > 0:
            sample = buffer.sample(batch)
            td = update_policy(sample, step, episode)
            updates += 1
            if update_priorities is not None:
                if td is None:
                    raise TypeError(
                        "update_policy must return the |TD| of the sample's rows for a prioritized buffer "
                        "(its new priorities), got None"
                    )
                update_priorities(sample["indexes"], td)

        if rew_sum is not None:
            episode_reward = float(rew_sum(episode_reward, transition))
        else:
            episode_reward += float(reward)

        if terminated or truncated or (done_check is not None and done_check(transition)):
            elapsed = max(time.perf_counter() - started, 1e-9)
            logger.info(
                "episode %d: %d steps (%d in all), reward %+.2f, %.1f steps/s",
                episode,
                episode_step + 1,
                step + 1,
                episode_reward,
                (episode_step + 1) / elapsed,
            )
            if episode_callback is not None:
                episode_callback(episode, episode_step, episode_reward)
            buffer.on_episode_end()
            episode += 1
            if episode >= episodes_limit:
                break
            obs = _reset(env, None)
            episode_reward = 0.0
            episode_step = 0
            started = time.perf_counter()
        else:
            obs = obs_update(transition) if obs_update is not None else next_obs
            episode_step += 1
    return TrainSummary(steps=steps, episodes=episode, updates=updates)
