"""Gymnasium helpers: an ``env_dict`` and an ``add`` converter from an environment's spaces (cpprb's util).

``create_env_dict(env)`` describes the fields of one transition of ``env`` (``obs``, ``act``, ``rew``,
``next_obs``, ``done``) for ``ReplayBuffer``; ``create_before_add_func(env)`` returns the function that turns the
(possibly nested) observations and actions of ``env`` into the flat keyword fields ``rb.add(**...)`` takes. Both
name the fields the same way, so ``rb.add(**before_add(obs, act, next_obs, rew, done))`` always works.

Field types follow cpprb (``int_type`` defaults to ``int32``, ``float_type`` to ``float32``):

=================  ================================  ==============
space              shape                             dtype
=================  ================================  ==============
``Discrete``       ``1``                             ``int_type``
``MultiDiscrete``  ``nvec.shape``                    ``int_type``
``MultiBinary``    ``n`` (an int or a tuple)         ``int_type``
``Box``            ``space.shape``                   ``float_type``
=================  ================================  ==============

``rew`` and ``done`` are ``float_type`` of shape 1. Every ``Box`` is stored as ``float_type`` whatever its own
dtype (an ``uint8`` image ``Box`` too), as in cpprb, so samples have the dtypes cpprb users expect.

Names of the fields of composite spaces (``prefix`` is ``obs``, ``next_obs`` or ``act``):

* ``Tuple`` at the top: ``obs0``, ``obs1``, ... (cpprb's names);
* ``Dict`` at the top: ``obs_<key>``, ``next_obs_<key>``, ``act_<key>`` (the names cpprb's
  ``create_before_add_func`` produces; cpprb's ``create_env_dict`` names them ``<key>`` and ``next_<key>``
  instead, which its own converter does not produce, so there ``rb.add(**before_add(...))`` fails for ``Dict``
  spaces);
* nested below the top (cpprb supports no nesting): every further level appends ``_<i>`` or ``_<key>``, e.g.
  ``Dict(pos=Box, sub=Tuple(Discrete, Box))`` gives ``obs_pos``, ``obs_sub_0``, ``obs_sub_1`` and
  ``Tuple(Dict(a=Box), Box)`` gives ``obs0_a``, ``obs1``.

Names that would collide (``Dict`` keys ``"a_0"`` and ``"a"`` holding a ``Tuple``) are refused with a
``ValueError``. Spaces of variable size (``Text``, ``Sequence``, ``Graph``, ``OneOf``) and unknown spaces raise
:class:`UnsupportedSpaceError`, which is both a ``NotImplementedError`` (what cpprb raises) and a ``TypeError``.

gymnasium is imported only when these functions are called (``pip install 'laber[gym]'``).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from laber._optional import require

if TYPE_CHECKING:
    from gymnasium import Env, Space
    from numpy.typing import DTypeLike

__all__ = ["UnsupportedSpaceError", "create_before_add_func", "create_env_dict"]


class UnsupportedSpaceError(NotImplementedError, TypeError):
    """A gymnasium space that cannot be stored as fixed-shape fields (``Text``, ``Sequence``, ``Graph``, ...).

    A ``NotImplementedError`` (what cpprb raises for such spaces) and a ``TypeError`` (the space is of a type
    laber does not take), so either ``except`` clause catches it.
    """


@dataclass(frozen=True)
class _Leaf:
    """One stored field: its name, ``env_dict`` spec, and the part of the env's spaces it stores (``where``)."""

    name: str
    spec: dict[str, Any]
    where: str


@dataclass(frozen=True)
class _Branch:
    """A ``Tuple`` (``keys`` are ``0 .. n-1``) or ``Dict`` space and its children, in the space's order."""

    is_dict: bool
    keys: tuple[Hashable, ...]
    children: tuple[_Leaf | _Branch, ...]


_Node = _Leaf | _Branch


def _spaces() -> Any:
    return require("gymnasium.spaces", "laber.gym (create_env_dict, create_before_add_func)")


def _int_dtype(value: DTypeLike | None, name: str) -> np.dtype[Any]:
    """``value`` (default ``int32``) as a numpy integer dtype, or a ``TypeError`` naming ``name``."""
    if value is None:
        return np.dtype(np.int32)
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be a numpy integer dtype such as np.int32, got {name}={value!r}") from None
    if dtype.kind not in "iu":
        raise TypeError(f"{name} must be a numpy integer dtype such as np.int32, got {name}={value!r}")
    return dtype


def _float_dtype(value: DTypeLike | None, name: str) -> np.dtype[Any]:
    """``value`` (default ``float32``) as a numpy floating dtype, or a ``TypeError`` naming ``name``."""
    if value is None:
        return np.dtype(np.float32)
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{name} must be a numpy float dtype such as np.float32, got {name}={value!r}") from None
    if dtype.kind != "f":
        raise TypeError(f"{name} must be a numpy float dtype such as np.float32, got {name}={value!r}")
    return dtype


def _check_int_range(low: int, high: int, int_type: np.dtype[Any], where: str, space: object) -> None:
    info = np.iinfo(int_type)
    if low < int(info.min) or high > int(info.max):
        raise ValueError(
            f"int_type={int_type.name} cannot hold the values {low}..{high} of {where} ({space}); "
            f"pass a wider int_type, e.g. int_type=np.int64"
        )


def _child_name(prefix: str, key: Hashable, top: bool, is_dict: bool) -> str:
    """cpprb's ``obs<i>`` / ``obs_<key>`` at the top level; ``_<i>`` / ``_<key>`` below it."""
    if is_dict or not top:
        return f"{prefix}_{key}"
    return f"{prefix}{key}"


def _compile(
    space: Space[Any],
    prefix: str,
    where: str,
    int_type: np.dtype[Any],
    float_type: np.dtype[Any],
    top: bool = True,
) -> _Node:
    """The tree of stored fields of ``space``, its leaves named from ``prefix`` (``where``: for messages)."""
    spaces = _spaces()
    if isinstance(space, spaces.Discrete):
        start, n = int(space.start), int(space.n)
        _check_int_range(start, start + n - 1, int_type, where, space)
        return _Leaf(prefix, {"shape": 1, "dtype": int_type.type}, where)
    if isinstance(space, spaces.MultiDiscrete):
        starts = np.asarray(space.start, dtype=np.int64)
        highs = starts + np.asarray(space.nvec, dtype=np.int64) - 1
        if highs.size:
            _check_int_range(int(starts.min()), int(highs.max()), int_type, where, space)
        return _Leaf(prefix, {"shape": tuple(int(d) for d in space.nvec.shape), "dtype": int_type.type}, where)
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        shape: int | tuple[int, ...] = (
            int(n) if isinstance(n, numbers.Integral) else tuple(int(d) for d in np.asarray(n).reshape(-1))
        )
        return _Leaf(prefix, {"shape": shape, "dtype": int_type.type}, where)
    if isinstance(space, spaces.Box):
        return _Leaf(prefix, {"shape": tuple(int(d) for d in space.shape), "dtype": float_type.type}, where)
    if isinstance(space, spaces.Tuple):
        keys: tuple[Hashable, ...] = tuple(range(len(space.spaces)))
        is_dict = False
        children_spaces: Sequence[Space[Any]] = space.spaces
    elif isinstance(space, spaces.Dict):
        keys = tuple(space.spaces)
        is_dict = True
        children_spaces = tuple(space.spaces.values())
    else:
        raise UnsupportedSpaceError(
            f"{where} is a {type(space).__name__} space ({space}), which has no fixed-shape representation in a "
            f"replay buffer; supported: Box, Discrete, MultiDiscrete, MultiBinary, and Tuple/Dict of them"
        )
    if not keys:
        raise ValueError(f"{where} is an empty {type(space).__name__} space: it has nothing to store")
    children = tuple(
        _compile(
            child,
            _child_name(prefix, key, top, is_dict),
            f"{where}[{key!r}]",
            int_type,
            float_type,
            top=False,
        )
        for key, child in zip(keys, children_spaces, strict=True)
    )
    return _Branch(is_dict, keys, children)


def _leaves(node: _Node) -> list[_Leaf]:
    if isinstance(node, _Leaf):
        return [node]
    return [leaf for child in node.children for leaf in _leaves(child)]


def _env_spaces(env: Env[Any, Any]) -> tuple[Space[Any], Space[Any]]:
    spaces = _spaces()
    out = []
    for attr in ("observation_space", "action_space"):
        space = getattr(env, attr, None)
        if not isinstance(space, spaces.Space):
            raise TypeError(
                f"env must be a gymnasium environment with an {attr} (a gymnasium.spaces.Space), got "
                f"env={env!r} whose {attr} is {space!r}"
            )
        out.append(space)
    return out[0], out[1]


def _compile_env(
    env: Env[Any, Any], int_type: DTypeLike | None = None, float_type: DTypeLike | None = None
) -> tuple[_Node, _Node, _Node, dict[str, dict[str, Any]]]:
    """The trees of ``obs``, ``act`` and ``next_obs``, and the env_dict they make (names checked unique)."""
    itype = _int_dtype(int_type, "int_type")
    ftype = _float_dtype(float_type, "float_type")
    obs_space, act_space = _env_spaces(env)
    obs = _compile(obs_space, "obs", "env.observation_space", itype, ftype)
    act = _compile(act_space, "act", "env.action_space", itype, ftype)
    next_obs = _compile(obs_space, "next_obs", "env.observation_space", itype, ftype)
    env_dict: dict[str, dict[str, Any]] = {}
    stores: dict[str, str] = {}
    scalar = {"shape": 1, "dtype": ftype.type}
    for leaves in (
        _leaves(obs),
        _leaves(act),
        [_Leaf("rew", scalar, "the reward")],
        _leaves(next_obs),
        [_Leaf("done", scalar, "the done flag")],
    ):
        for leaf in leaves:
            if leaf.name in env_dict:
                raise ValueError(
                    f"{stores[leaf.name]} and {leaf.where} would both be stored as field {leaf.name!r}; rename the "
                    f"Dict keys that make it (nested names join keys and indexes with '_')"
                )
            env_dict[leaf.name] = dict(leaf.spec)
            stores[leaf.name] = leaf.where
    return obs, act, next_obs, env_dict


def create_env_dict(
    env: Env[Any, Any], *, int_type: DTypeLike | None = None, float_type: DTypeLike | None = None
) -> dict[str, dict[str, Any]]:
    """The ``env_dict`` of ``env``'s transitions, for ``ReplayBuffer(size, env_dict)`` (cpprb's helper).

    Args:
        env: a gymnasium environment (only its ``observation_space`` and ``action_space`` are read). Spaces may
            be ``Box``, ``Discrete``, ``MultiDiscrete``, ``MultiBinary``, and ``Tuple``/``Dict`` of them, nested
            to any depth.
        int_type: dtype of the discrete fields (``Discrete``, ``MultiDiscrete``, ``MultiBinary``); default
            ``np.int32``. Every value the space can take must fit (else ``ValueError``).
        float_type: dtype of the ``Box`` fields and of ``rew`` and ``done``; default ``np.float32``.

    Returns:
        ``{name: {"shape": ..., "dtype": ...}}`` with the fields ``obs``, ``act``, ``rew``, ``next_obs`` and
        ``done`` (composite spaces give one field per leaf, named as the module docstring says), the same names
        the function of :func:`create_before_add_func` produces.

    Raises:
        TypeError: ``env`` has no gymnasium spaces, or ``int_type``/``float_type`` is not an integer/float dtype.
        ValueError: a discrete space's values do not fit ``int_type``, an empty ``Tuple``/``Dict``, or two
            leaves that would get the same name.
        UnsupportedSpaceError: a space of variable size (``Text``, ``Sequence``, ``Graph``, ``OneOf``).
    """
    return _compile_env(env, int_type, float_type)[3]


def _flatten(node: _Node, value: Any, where: str, out: dict[str, Any]) -> None:
    """Put the leaves of ``value`` (shaped like ``node``) into ``out`` under their field names."""
    if isinstance(node, _Leaf):
        out[node.name] = value
        return
    if node.is_dict:
        if not isinstance(value, Mapping):
            raise TypeError(
                f"{where} must be a dict with keys {list(node.keys)} (the env's Dict space), got {type(value).__name__}"
            )
        missing = [k for k in node.keys if k not in value]
        extra = [k for k in value if k not in node.keys]
        if missing or extra:
            raise ValueError(
                f"{where} must have exactly the keys {list(node.keys)} of the env's Dict space; "
                f"missing {missing}, unexpected {extra}"
            )
        for key, child in zip(node.keys, node.children, strict=True):
            _flatten(child, value[key], f"{where}[{key!r}]", out)
        return
    if isinstance(value, (str, bytes)) or not isinstance(value, (Sequence, np.ndarray)):
        raise TypeError(
            f"{where} must be a tuple of {len(node.keys)} values (the env's Tuple space), got {type(value).__name__}"
        )
    if len(value) != len(node.keys):
        raise ValueError(
            f"{where} must be a tuple of {len(node.keys)} values (the env's Tuple space), got {len(value)} values"
        )
    for i, child in enumerate(node.children):
        _flatten(child, value[i], f"{where}[{i}]", out)


def create_before_add_func(env: Env[Any, Any]) -> Callable[[Any, Any, Any, Any, Any], dict[str, Any]]:
    """A function ``before_add(obs, act, next_obs, rew, done)`` returning the keyword fields of ``rb.add``.

    Nested observations and actions (``Tuple``/``Dict`` spaces, at any depth) are split into one field per
    leaf, with the names of :func:`create_env_dict` (e.g. ``obs_pos``, ``next_obs_pos``, ``act0``); other
    values pass through unchanged (the buffer checks and copies them). A batch of transitions works the same way
    (a ``Dict`` of batched arrays, a ``Tuple`` of batched arrays). ``rew`` and ``done`` are passed as they are.

    The structure of each value is checked against its space: a ``Dict`` value must have exactly the space's
    keys and a ``Tuple`` value its length, else a ``TypeError``/``ValueError`` names the part (``obs['pos']``).

    Args:
        env: a gymnasium environment (only its spaces are read, once, here).

    Raises:
        The errors of :func:`create_env_dict` for the spaces of ``env``.
    """
    obs_tree, act_tree, next_tree, _ = _compile_env(env)

    def before_add(obs: Any, act: Any, next_obs: Any, rew: Any, done: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        _flatten(obs_tree, obs, "obs", out)
        _flatten(act_tree, act, "act", out)
        out["rew"] = rew
        _flatten(next_tree, next_obs, "next_obs", out)
        out["done"] = done
        return out

    return before_add
