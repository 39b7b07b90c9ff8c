"""Generate the cpprb transitions-file fixtures of ``tests/test_transitions.py`` (see README.md here).

Run with a Python that has cpprb installed (and numpy, nothing else; laber is not needed)::

    python tests/data/cpprb/make_fixtures.py tests/data/cpprb

It writes, for the installed cpprb version ``V`` (e.g. ``11.0.0``):

* ``cpprb-V/<config>-<fill>-<mode>.npz``: ``rb.save_transitions(path, safe=<mode == "safe">)`` of the buffer that
  ``scenario(config, fill)`` fills;
* ``cpprb-V/expected.npz``: for each ``<config>-<fill>``, ``rb.get_all_transitions()`` of that buffer right
  after saving, as plain arrays ``<config>-<fill>/<field>`` (no pickle), plus ``<config>-<fill>/__stored__``.

``scenario`` is also what the side-by-side tests build when cpprb imports, so the fixtures and those tests see
the same buffers.
"""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any

import numpy as np

FRAME_DEPTH = 3  # stacked observations: frame shape (2,), stacked along the last axis
EPISODES = ((3, True), (4, False), (5, False))  # (length, ends with done=1); the last one is not finished
FILLS = {"partial": 16, "wrapped": 8}  # buffer sizes: 12 transitions fit in 16, wrap around in 8
NSTEP = {"size": 3, "rew": "rew", "gamma": 0.5, "next": "next_obs"}

# config: (buffer class, env_dict kind, keyword arguments); kinds: "flat" obs (3,), "stack" obs (2, 3) uint8
CONFIGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "plain": ("ReplayBuffer", "flat", {}),
    "next_of": ("ReplayBuffer", "flat", {"next_of": "obs"}),
    "stack": ("ReplayBuffer", "stack", {"stack_compress": "obs"}),
    "next_of_stack": ("ReplayBuffer", "stack", {"next_of": "obs", "stack_compress": "obs"}),
    "nstep": ("ReplayBuffer", "flat", {"Nstep": NSTEP}),
    "nstep_next_of": ("ReplayBuffer", "flat", {"next_of": "obs", "Nstep": NSTEP}),
    "nstep_stack": ("ReplayBuffer", "stack", {"stack_compress": "obs", "Nstep": NSTEP}),
    "per": ("PrioritizedReplayBuffer", "flat", {}),
    "per_nstep": ("PrioritizedReplayBuffer", "flat", {"Nstep": NSTEP}),
    "mmap_next_of_stack": ("ReplayBuffer", "stack", {"next_of": "obs", "stack_compress": "obs", "mmap": True}),
}
# configs whose safe=False file differs from the safe one (cpprb compresses only next_of / stack_compress)
UNSAFE = ("plain", "next_of", "stack", "next_of_stack", "nstep_stack", "mmap_next_of_stack")


def env_dict(config: str) -> dict[str, dict[str, Any]]:
    """The env_dict of ``config`` (cpprb's form; with next_of, ``next_obs`` is derived, so not listed)."""
    _, kind, kwargs = CONFIGS[config]
    obs = {"shape": (2, FRAME_DEPTH), "dtype": np.uint8} if kind == "stack" else {"shape": 3}
    out = {"obs": obs, "act": {"dtype": np.uint8}, "rew": {}, "next_obs": dict(obs), "done": {}}
    if "next_of" in kwargs:
        del out["next_obs"]
    return out


def observation(kind: str, episode: int, t: int) -> np.ndarray:
    """Observation at step ``t`` of ``episode``: flat ``[100 e + t, t / 10, e]`` (float32), or a stack of the
    frames ``t .. t + 2`` with frame ``s`` = ``[50 e + s, 200 - 50 e - s]`` (uint8), oldest frame first."""
    if kind == "stack":
        s = 50 * episode + t + np.arange(FRAME_DEPTH)
        return np.stack([s, 200 - s]).astype(np.uint8)
    return np.array([100 * episode + t, t / 10, episode], dtype=np.float32)


def transitions(kind: str) -> list[list[dict[str, Any]]]:
    """The episodes of every scenario: per step obs, act, rew, next_obs, done (and priorities for PER)."""
    out = []
    for e, (length, terminal) in enumerate(EPISODES):
        steps = []
        for t in range(length):
            steps.append(
                {
                    "obs": observation(kind, e, t),
                    "act": (7 * e + t) % 4,
                    "rew": float(t + 1) + 0.25 * e,
                    "next_obs": observation(kind, e, t + 1),
                    "done": float(terminal and t == length - 1),
                    "priorities": 0.5 + t + 2 * e,
                }
            )
        out.append(steps)
    return out


def scenario(cpprb: Any, config: str, fill: str, workdir: str) -> Any:
    """A cpprb buffer of ``config`` with the three episodes of ``EPISODES`` added (episode 1 as one batch, the
    others step by step; ``on_episode_end`` after episodes 0 and 1)."""
    cls_name, kind, kwargs = CONFIGS[config]
    kwargs = dict(kwargs)
    if kwargs.pop("mmap", False):
        kwargs["mmap_prefix"] = os.path.join(workdir, f"{config}-{fill}")
    cls = getattr(cpprb, cls_name)
    rb = cls(FILLS[fill], env_dict(config), **kwargs)
    prioritized = cls_name == "PrioritizedReplayBuffer"
    for e, steps in enumerate(transitions(kind)):
        if e == 1:
            batch = {k: np.stack([np.asarray(s[k]) for s in steps]) for k in steps[0]}
            if not prioritized:
                del batch["priorities"]
            rb.add(**batch)
        else:
            for s in steps:
                rb.add(**{k: v for k, v in s.items() if prioritized or k != "priorities"})
        if e < len(EPISODES) - 1:
            rb.on_episode_end()
    return rb


def main(out_dir: str) -> None:
    from importlib.metadata import version

    import cpprb

    target = os.path.join(out_dir, f"cpprb-{version('cpprb')}")
    os.makedirs(target, exist_ok=True)
    expected: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as workdir:
        for config in CONFIGS:
            for fill in FILLS:
                modes = ("safe", "unsafe") if config in UNSAFE else ("safe",)
                for mode in modes:
                    rb = scenario(cpprb, config, fill, workdir)
                    rb.save_transitions(os.path.join(target, f"{config}-{fill}-{mode}"), safe=mode == "safe")
                    rows = rb.get_all_transitions()
                    key = f"{config}-{fill}"
                    for name, value in rows.items():
                        previous = expected.setdefault(f"{key}/{name}", value)
                        if not np.array_equal(previous, value):
                            raise AssertionError(f"{key}: the same scenario gave different rows")
                    expected[f"{key}/__stored__"] = np.array(rb.get_stored_size())
                    del rb
    save: Any = np.savez_compressed
    save(os.path.join(target, "expected.npz"), **expected)
    print(f"wrote {target}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
