"""The reference agents the experiment commands run: which config type, which arms, how to check and train one.

``laber run`` / ``laber compare`` (``--agent dqn`` or ``--agent sac``) and :mod:`laber.experiments` go through
this table, so a run directory, a compare and a report work the same for every agent. A run's record
(``result.json``'s ``config``) names its agent with an ``"agent"`` key; records without one (every DQN run, as
they were before SAC existed) are the DQN's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from laber.agents import dqn, sac

__all__ = ["AGENTS", "ALL_ARMS", "AgentKind", "config_from_record", "kind_of"]


@dataclass(frozen=True)
class AgentKind:
    """One agent: its name (``--agent``), config class, arms, checks (run before anything is written: a
    ``ValueError`` for an environment it cannot train on or a run that never reaches an update) and trainer."""

    name: str
    config: type
    arms: tuple[str, ...]
    check: Callable[[Any], None]
    train: Callable[..., Any]


def _check_dqn(config: dqn.DQNConfig) -> None:
    dqn.check_trainable(config)
    dqn.check_env(config.env_id, config.network)


def _check_sac(config: sac.SACConfig) -> None:
    sac.check_trainable(config)
    sac.check_continuous_env(config.env_id)


def _train_dqn(config: dqn.DQNConfig, **kwargs: Any) -> Any:
    return dqn.train(config, **kwargs)  # looked up at each call (tests replace it)


def _train_sac(config: sac.SACConfig, **kwargs: Any) -> Any:
    return sac.train_sac(config, **kwargs)


AGENTS: dict[str, AgentKind] = {
    "dqn": AgentKind("dqn", dqn.DQNConfig, dqn.ARMS, _check_dqn, _train_dqn),
    "sac": AgentKind("sac", sac.SACConfig, sac.SAC_ARMS, _check_sac, _train_sac),
}
ALL_ARMS: tuple[str, ...] = tuple(dict.fromkeys(arm for kind in AGENTS.values() for arm in kind.arms))


def kind_of(config: object) -> AgentKind:
    """The agent whose config ``config`` is; a ``TypeError`` naming the known config classes otherwise."""
    for kind in AGENTS.values():
        if type(config) is kind.config:
            return kind
    names = " or ".join(kind.config.__name__ for kind in AGENTS.values())
    raise TypeError(f"config must be a {names}, got config={config!r}")


def config_from_record(data: Mapping[str, Any]) -> Any:
    """The config a run recorded (``to_dict``'s output): its ``"agent"`` key picks the class (none: the DQN)."""
    name = data.get("agent", "dqn")
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r} in a run record; known: {', '.join(AGENTS)}")
    return AGENTS[name].config.from_dict(dict(data))  # type: ignore[attr-defined]
