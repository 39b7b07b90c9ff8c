"""Reference agents (need the ``torch`` and ``gym`` extras).

``laber.agents.dqn`` holds the reference Double DQN with a pluggable sampling strategy (uniform, large uniform,
PER, the three LaBER variants, PER-LaBER, GER and LaBER on exact gradient norms). Nothing here is imported by
``import laber``.
"""

from laber.agents.dqn import ARMS, DQNConfig, RunResult, train

__all__ = ["ARMS", "DQNConfig", "RunResult", "train"]
