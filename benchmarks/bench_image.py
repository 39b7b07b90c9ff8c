"""Image observations: sampling 84x84x4 uint8 frame stacks stored with ``next_of`` and ``stack_compress``, and
adding one transition at a time with ``next_of`` (an agent's hot path: one ``add`` per environment step).

laber and cpprb 11.0.0 each store ``ROWS`` transitions of Atari-shaped stacks (``obs`` of shape (84, 84, 4),
stacked along the last axis, and ``next_obs``, the following stack) with ``next_of="obs"`` and
``stack_compress="obs"``: each row keeps its newest frame only, and ``sample`` rebuilds both stacks of every
drawn row. The floor is a plain numpy gather of the same bytes, ``take`` of the drawn rows from two
(rows, 84, 84, 4) uint8 arrays (``obs`` and ``next_obs`` stored whole; larger than the caches): the memory
bandwidth any sample of these bytes needs. Episodes of 1,000 steps; batches of 32 (the Atari DQN's) and 256.
The adds store MinAtar-shaped (10, 10, 4) and Atari-shaped (84, 84, 4) uint8 observations with ``next_of="obs"``
(each ``next_obs`` is the next ``obs``, episodes of 100 steps), into a buffer of ``ADD_ROWS`` rows that wraps.
The same stacks are also sampled from buffers with ``stack_compress`` but no ``next_of`` (one stack per row).

Run: ``python benchmarks/bench_image.py`` (or ``make bench``; ``--quick``: 2,000 rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from _timing import REPORT, Fns, measure, peer_name, scaled, wanted

ROWS = scaled(20_000, 2_000)
PLAIN_ROWS = scaled(4_000, 500)  # 2 x 4,000 x 28 KB = 226 MB: far larger than the caches
SHAPE = (84, 84, 4)
EPISODE = 1_000
ADD_ROWS = scaled(10_000, 500)
ADD_EPISODE = 100


def _env() -> dict[str, dict[str, Any]]:
    return {"obs": {"shape": SHAPE, "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}}


def _episodes(rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
    """ROWS transitions in episodes of EPISODE steps: consecutive stacks share 3 frames, as from an emulator."""
    out = []
    for _ in range(ROWS // EPISODE):
        frames = rng.integers(0, 256, (EPISODE + 4, 84, 84), dtype=np.uint8)
        stacks = np.lib.stride_tricks.sliding_window_view(frames, 4, axis=0)  # (EPISODE + 1, 84, 84, 4)
        done = np.zeros((EPISODE, 1), np.float32)
        done[-1] = 1.0
        out.append(
            {
                "obs": np.ascontiguousarray(stacks[:-1]),
                "next_obs": np.ascontiguousarray(stacks[1:]),
                "act": rng.integers(0, 4, (EPISODE, 1), dtype=np.uint8),
                "rew": rng.random((EPISODE, 1), dtype=np.float32),
                "done": done,
            }
        )
    return out


def _adder(rb: Any, frames: np.ndarray) -> Callable[[], object]:
    """One ``add`` per call of consecutive observations of ``frames``, ``on_episode_end`` every ADD_EPISODE."""
    position = iter(range(1 << 62))

    def add() -> None:
        i = next(position) % ADD_EPISODE
        rb.add(obs=frames[i], act=1, rew=0.5, next_obs=frames[i + 1], done=float(i == ADD_EPISODE - 1))
        if i == ADD_EPISODE - 1:
            rb.on_episode_end()

    return add


def add_one_next_of() -> None:
    """``add`` of one transition with ``next_of="obs"``: laber against cpprb, two observation shapes."""
    from laber import ReplayBuffer

    cpprb_name = peer_name("cpprb")
    rng = np.random.default_rng(2)
    for shape, label in (((10, 10, 4), "MinAtar 10x10x4"), (SHAPE, "Atari 84x84x4")):
        env = {"obs": {"shape": shape, "dtype": np.uint8}, "act": {"dtype": np.uint8}, "rew": {}, "done": {}}
        frames = rng.integers(0, 2 if shape[0] == 10 else 256, (ADD_EPISODE + 1, *shape), dtype=np.uint8)
        fns: Fns = {"laber": _adder(ReplayBuffer(ADD_ROWS, env, next_of="obs", rng=0), frames)}
        if wanted("cpprb"):
            try:
                import cpprb

                fns[cpprb_name] = _adder(cpprb.ReplayBuffer(ADD_ROWS, env, next_of="obs"), frames)
            except ImportError:
                pass
        timing = measure(fns, number=scaled(2000, 5), repeat=15)
        REPORT.table(f'add 1 transition, {label} uint8, next_of="obs"', timing, ["laber"], [cpprb_name])
        REPORT.ratio_headline(f"image add 1 ({label}), next_of: vs cpprb (x)", timing, cpprb_name, "laber")


def main() -> None:
    from laber import ReplayBuffer

    rng = np.random.default_rng(0)
    episodes = _episodes(rng)
    ours = ReplayBuffer(ROWS, _env(), next_of="obs", stack_compress="obs", rng=0)
    buffers: list[Any] = [ours]
    theirs = None
    cpprb_name = peer_name("cpprb")
    if wanted("cpprb"):
        try:
            import cpprb

            theirs = cpprb.ReplayBuffer(ROWS, _env(), next_of="obs", stack_compress="obs")
            buffers.append(theirs)
        except ImportError:
            print("cpprb is not installed: laber and the numpy floor only")
    for episode in episodes:
        for rb in buffers:
            rb.add(**episode)
            rb.on_episode_end()
    del episodes
    plain_obs = rng.integers(0, 256, (PLAIN_ROWS, *SHAPE), dtype=np.uint8)
    plain_next = rng.integers(0, 256, (PLAIN_ROWS, *SHAPE), dtype=np.uint8)
    small = {"act": np.zeros((PLAIN_ROWS, 1), np.uint8), "rew": np.zeros((PLAIN_ROWS, 1), np.float32)}
    small["done"] = np.zeros((PLAIN_ROWS, 1), np.float32)
    REPORT.section(
        "Image observations",
        f"`benchmarks/bench_image.py`: {ROWS:,} transitions of 84x84x4 uint8 stacks in episodes of {EPISODE:,} "
        'steps, stored with `next_of="obs"` and `stack_compress="obs"` (laber and cpprb): `sample` rebuilds '
        "`obs` and `next_obs` of every drawn row. The floor gathers the same bytes with numpy `take` from two "
        f"plain ({PLAIN_ROWS:,}, 84, 84, 4) arrays (226 MB, larger than the caches): the memory bandwidth "
        "itself. A speed-up below 1x against the floor is the price of the compression (4x less memory).",
    )
    floor_name = "numpy take of the same bytes (floor)"
    draw = np.random.default_rng(1)
    for batch in (32, 256):

        def floor(batch: int = batch) -> object:
            idx = draw.integers(0, PLAIN_ROWS, batch)
            out = {k: v.take(idx, axis=0) for k, v in small.items()}
            out["obs"] = plain_obs.take(idx, axis=0)
            out["next_obs"] = plain_next.take(idx, axis=0)
            return out

        fns: Fns = {"laber": lambda batch=batch: ours.sample(batch)}
        if theirs is not None:
            fns[cpprb_name] = lambda batch=batch, theirs=theirs: theirs.sample(batch)
        fns[floor_name] = floor
        timing = measure(fns, number=None, repeat=11, round_ms=20.0)
        REPORT.table(
            f"sample({batch}): obs and next_obs, 84x84x4 uint8 each ({2 * batch * 84 * 84 * 4 / 2**20:.1f} MiB)",
            timing,
            ["laber"],
            [cpprb_name, floor_name],
        )
        REPORT.ratio_headline(f"image sample({batch}), stack_compress: vs cpprb (x)", timing, cpprb_name, "laber")
        REPORT.ratio_headline(f"image sample({batch}), stack_compress: vs numpy floor (x)", timing, floor_name, "laber")
    stacks_only(rng)
    add_one_next_of()


def stacks_only(rng: np.random.Generator) -> None:
    """``sample`` of the same stacks stored with ``stack_compress`` but without ``next_of`` (one stack per row)."""
    from laber import ReplayBuffer

    fields = _env()
    buffers: dict[str, Any] = {"laber": ReplayBuffer(ROWS, fields, stack_compress="obs", rng=0)}
    cpprb_name = peer_name("cpprb")
    if wanted("cpprb"):
        try:
            import cpprb

            buffers[cpprb_name] = cpprb.ReplayBuffer(ROWS, fields, stack_compress="obs")
        except ImportError:
            pass
    for episode in _episodes(rng):
        del episode["next_obs"]
        for rb in buffers.values():
            rb.add(**episode)
            rb.on_episode_end()
    for batch in (32, 256):
        fns = {name: (lambda rb=rb, batch=batch: rb.sample(batch)) for name, rb in buffers.items()}
        timing = measure(fns, number=None, repeat=11, round_ms=20.0)
        REPORT.table(
            f"sample({batch}) without next_of: obs only, 84x84x4 uint8 ({batch * 84 * 84 * 4 / 2**20:.1f} MiB)",
            timing,
            ["laber"],
            [cpprb_name],
        )


if __name__ == "__main__":
    main()
