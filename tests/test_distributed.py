"""laber.distributed: sharding formulas (no Ray), one shard in-process, and the Ray servers on one local Ray.

The Ray tests share ONE local Ray with 2 CPUs (a module-scoped fixture; it takes about 10 s to start here) and
skip when ray is not installed. Servers reserve no CPU (``num_cpus=0``), so writer tasks still find the two.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from laber import ReplayBuffer
from laber.distributed import BufferSpec, ReplayServer
from laber.distributed.server import MASS_KEY
from laber.distributed.sharding import draw_probabilities, global_weights, route, split

ENV: dict[str, dict[str, Any]] = {"obs": {"shape": 2}, "act": {"dtype": np.int64}, "rew": {}, "done": {}}
NSTEP_ENV: dict[str, dict[str, Any]] = {**ENV, "next_obs": {"shape": 2}}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _rows(ids: np.ndarray) -> dict[str, np.ndarray]:
    """Transitions whose ``act`` is a unique id (and ``obs`` derived from it), for accounting."""
    ids = np.asarray(ids, dtype=np.int64)
    return {
        "obs": np.stack([ids, -ids], axis=1).astype(np.float32),
        "act": ids,
        "rew": np.ones(len(ids), dtype=np.float32),
        "done": np.zeros(len(ids), dtype=np.float32),
    }


# ============================================================================================ pure (no Ray)
def test_split_is_stratified_and_follows_the_masses() -> None:
    rng = np.random.default_rng(0)
    masses = np.array([3.0, 0.0, 1.0, 6.0])
    for batch in (1, 7, 64, 1000):
        counts = split(masses, batch, rng)
        assert counts.sum() == batch and counts[1] == 0
        ideal = batch * masses / masses.sum()
        assert np.all(counts >= np.floor(ideal) - 1e-9) and np.all(counts <= np.ceil(ideal) + 1e-9)


def test_route_checks_everything_first_and_keeps_order_within_a_shard() -> None:
    routed = route(np.array([15, 3, 12, 3]), np.array([1.0, 2.0, 3.0, 4.0]), capacity=10, shards=2)
    assert sorted(routed) == [0, 1]
    np.testing.assert_array_equal(routed[0][0], [3, 3])
    np.testing.assert_array_equal(routed[0][1], [2.0, 4.0])  # the last of the duplicates comes last: it wins
    np.testing.assert_array_equal(routed[1][0], [5, 2])
    with pytest.raises(ValueError, match=r"indexes must be global indexes in \[0, 20\).*got 20"):
        route([1, 20], [1.0, 1.0], capacity=10, shards=2)
    with pytest.raises(ValueError, match=r"priorities\[1\]=nan"):
        route([1, 2], [1.0, np.nan], capacity=10, shards=2)
    with pytest.raises(TypeError, match="indexes must be integers"):
        route([1.5], [1.0], capacity=10, shards=2)
    with pytest.raises(ValueError, match="one value per index"):
        route([1, 2], [1.0], capacity=10, shards=2)


def _per_servers(priorities: list[np.ndarray], alpha: float = 0.7, eps: float = 0.01) -> list[ReplayServer]:
    spec = BufferSpec(64, ENV, kind="prioritized", alpha=alpha, eps=eps, seed=3)
    servers = [ReplayServer(spec, s, len(priorities)) for s in range(len(priorities))]
    start = 0
    for server, p in zip(servers, priorities, strict=True):
        server.add([(_rows(np.arange(start, start + len(p))), p)])
        start += len(p)
    return servers


def test_global_weights_are_the_single_buffer_formula_over_all_shards() -> None:
    """Per-shard draws combined with draw_probabilities/global_weights give (q_i / min_j q_j) ** -beta with the
    minimum over *all* shards (shard 1 holds the global minimum; shard 0's own minimum is larger)."""
    rng = np.random.default_rng(1)
    p = [rng.uniform(0.5, 3.0, 20), rng.uniform(0.0, 3.0, 30)]
    servers = _per_servers(p)
    q_all = (np.concatenate(p) + 0.01) ** 0.7
    stat = [s.stats() for s in servers]
    np.testing.assert_allclose([st.total for st in stat], [q_all[:20].sum(), q_all[20:].sum()], rtol=1e-12)
    masses = np.array([st.total for st in stat])
    counts = split(masses, 256, rng)
    draws = [servers[s].sample(int(k))[0] for s, k in enumerate(counts)]
    pi, p_min = draw_probabilities(masses, stat)
    assert p_min == pytest.approx(q_all.min() / q_all.sum(), rel=1e-12)
    for beta in (0.0, 0.4, 1.0):
        w = global_weights([d[MASS_KEY] for d in draws], pi, stat, p_min, beta)
        rows = np.concatenate([draws[0]["indexes"], 20 + draws[1]["indexes"]])
        np.testing.assert_allclose(w, (q_all[rows] / q_all.min()) ** -beta, rtol=1e-6)
        assert w.dtype == np.float32 and w.max() <= 1.0


def test_server_skips_stale_and_lost_rows_in_update_priorities() -> None:
    (server,) = _per_servers([np.ones(64)])
    batch, _ = server.sample(16)
    assert batch is not None
    drawn = np.unique(batch["indexes"])
    overwritten = _rows(np.arange(100, 104))  # the ring's next 4 rows: 0..3
    server.add([(overwritten, None)])
    server.update_priorities(drawn, np.full(drawn.shape, 5.0))
    fresh = drawn[drawn >= 4]
    stale = drawn[drawn < 4]
    total = server.stats().total
    q = (np.array([5.0, 1.0]) + 0.01) ** 0.7
    assert total == pytest.approx(len(fresh) * q[0] + (64 - len(fresh)) * q[1], rel=1e-12)
    assert len(stale) and len(fresh)  # both kinds were drawn (fixed seed)
    # rows at or beyond the stored count (drawn before a restart lost them) are skipped, not an error
    (small,) = _per_servers([np.ones(10)])
    small.sample(4)
    small.update_priorities(np.array([5, 20, 63]), np.array([3.0, 3.0, 3.0]))
    assert small.stats().total == pytest.approx(9 * q[1] + (3.0 + 0.01) ** 0.7, rel=1e-12)


def test_nstep_windows_stay_per_writer(tmp_path: Path) -> None:
    """Two writers interleaving into one shard: each writer's N-step rows are those of its own N-step buffer."""
    from laber.distributed.stream import WriterStream

    nstep = {"size": 3, "rew": "rew", "gamma": 0.9, "next": "next_obs"}
    spec = BufferSpec(100, NSTEP_ENV, Nstep=nstep, seed=0)
    server = ReplayServer(spec)
    streams = [WriterStream(spec), WriterStream(spec)]
    local = [ReplayBuffer(100, NSTEP_ENV, Nstep=nstep), ReplayBuffer(100, NSTEP_ENV, Nstep=nstep)]
    rng = np.random.default_rng(0)
    for t in range(12):
        for w in (0, 1):
            row = {
                "obs": np.array([w, t], dtype=np.float32),
                "act": t,
                "rew": float(rng.random()),
                "next_obs": np.array([w, t + 1], dtype=np.float32),
                "done": float(t == 7 and w == 1),
            }
            local[w].add(**row)
            server.add(streams[w].push(row))
    for w in (0, 1):
        local[w].on_episode_end()
        server.add(streams[w].flush())
    path = tmp_path / "shard.ckpt"
    server.save(str(path))
    stored = spec.build_buffer()
    stored.load_checkpoint(path)
    got = stored.get_all_transitions()
    for w in (0, 1):
        want = local[w].get_all_transitions()
        mine = got["obs"][:, 0] == w
        order = np.argsort(got["obs"][mine, 1])
        for name in ("obs", "act", "rew", "next_obs", "done", "discount"):
            column = got[spec.discount_column()] if name == "discount" else got[name]
            np.testing.assert_allclose(column[mine][order], want[name], rtol=1e-6, err_msg=name)


def test_stream_validates_the_whole_add_first() -> None:
    from laber.distributed.stream import WriterStream

    spec = BufferSpec(10, ENV, kind="prioritized")
    stream = WriterStream(spec)
    with pytest.raises(ValueError, match="obs"):
        stream.push({"obs": np.zeros((2, 3)), "act": [1, 2], "rew": [0, 0], "done": [0, 0]})
    with pytest.raises(ValueError, match=r"priorities\[1\]=-1.0"):
        stream.push(_rows(np.arange(2)), priorities=[1.0, -1.0])
    with pytest.raises(ValueError, match="one value per row"):
        stream.push(_rows(np.arange(2)), priorities=[1.0])
    with pytest.raises(TypeError, match="prioritized server"):
        WriterStream(BufferSpec(10, ENV)).push(_rows(np.arange(2)), priorities=[1.0, 1.0])
    with pytest.raises(ValueError, match="kind must be"):
        BufferSpec(10, ENV, kind="per")
    with pytest.raises(ValueError, match="size must be a positive integer"):
        BufferSpec(0, ENV)


def test_existing_checkpoint_is_refused_without_resume(tmp_path: Path) -> None:
    spec = BufferSpec(10, ENV)
    path = tmp_path / "shard-0.ckpt"
    server = ReplayServer(spec, checkpoint_path=path, checkpoint_every_s=0.0)
    server.add([(_rows(np.arange(4)), None)])
    assert path.exists()
    with pytest.raises(ValueError, match="resume=True"):
        ReplayServer(spec, checkpoint_path=path)
    assert len(ReplayServer(spec, checkpoint_path=path, resume=True)) == 4


def test_without_ray_the_error_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["ray"] = None  # as if ray were not installed
        import numpy as np
        from laber.distributed import BufferSpec, launch
        try:
            launch(BufferSpec(10, {"obs": {}}))
        except ImportError as exc:
            print(exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert "pip install 'laber[ray]'" in result.stdout


# ============================================================================================ on a local Ray
@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()


def test_concurrent_writers_every_row_accounted_for(ray_local: Any, tmp_path: Path) -> None:
    from laber.distributed import launch

    spec = BufferSpec(2000, ENV, seed=0)
    replay = launch(spec, 2, num_cpus=0, rng=0)

    @ray_local.remote(num_cpus=1)
    def write(writer: Any, first: int, count: int) -> int:  # self-contained: Ray workers cannot import tests
        for start in range(first, first + count, 50):  # a batch of 45, then 5 single transitions
            ids = np.arange(start, start + 45)
            writer.add(obs=np.stack([ids, -ids], 1), act=ids, rew=np.ones(45), done=np.zeros(45))
            for i in range(start + 45, start + 50):
                writer.add(obs=[i, -i], act=i, rew=1.0, done=0.0)
        writer.flush()
        return count

    # four writers, two per shard, adding at once
    done = ray_local.get([write.remote(replay.writer(w), 1000 * w, 500) for w in range(4)])
    assert sum(done) == 2000 and len(replay) == 2000
    ids = []
    for path in replay.save(tmp_path):
        buffer = spec.build_buffer()
        buffer.load_checkpoint(path)
        ids.append(buffer.get_all_transitions()["act"].ravel())
    want = np.concatenate([np.arange(1000 * w, 1000 * w + 500) for w in range(4)])
    np.testing.assert_array_equal(np.sort(np.concatenate(ids)), np.sort(want))  # each row once, none lost
    for s, shard_ids in enumerate(ids):
        assert set((shard_ids // 1000) % 2) == {s}  # writer w wrote to shard w % 2


def test_sharded_uniform_follows_the_shard_sizes(ray_local: Any) -> None:
    from laber.distributed import launch

    replay = launch(BufferSpec(100, ENV, seed=1), 2, num_cpus=0, rng=2)
    replay.writer(0).add(**_rows(np.arange(10)))  # 10 rows in shard 0, 40 in shard 1
    w1 = replay.writer(1)
    w1.add(**_rows(np.arange(10, 50)))
    w1.flush()
    counts = np.zeros(50)
    draws = 20 * 2000
    for _ in range(20):
        batch = replay.sample(2000)
        assert "weights" not in batch
        np.add.at(counts, batch["act"].ravel(), 1)
    # stratified split and per-shard draws vary less than multinomial counts: the 1e-4 threshold is an upper bound
    chi2 = float(((counts - draws / 50) ** 2 / (draws / 50)).sum())
    assert chi2 < stats.chi2.isf(1e-4, 49)


def test_sharded_per_frequencies_and_weights_are_global(ray_local: Any) -> None:
    """Three prioritized shards: sampled frequencies follow (p + eps) ** alpha over all rows (chi-square,
    false-failure probability at most 1e-4: the split and PER's draws are stratified, so the counts vary less
    than multinomial ones), and every weight is the single-buffer (q_i / min_j q_j) ** -beta."""
    from laber.distributed import launch

    alpha, eps, beta = 0.6, 0.05, 0.5
    spec = BufferSpec(64, ENV, kind="prioritized", alpha=alpha, eps=eps, seed=4)
    replay = launch(spec, 3, num_cpus=0, rng=5)
    rng = np.random.default_rng(6)
    sizes = [12, 20, 28]
    p = rng.uniform(0.0, 4.0, sum(sizes))
    start = 0
    for s, n in enumerate(sizes):
        w = replay.writer(s)
        w.add(priorities=p[start : start + n], **_rows(np.arange(start, start + n)))
        w.flush()
        start += n
    q = (p + eps) ** alpha
    counts = np.zeros(len(p))
    rounds, batch = 25, 2048
    for _ in range(rounds):
        out = replay.sample(batch, beta=beta)
        ids = out["act"].ravel()
        np.add.at(counts, ids, 1)
        np.testing.assert_allclose(out["weights"], (q[ids] / q.min()) ** -beta, rtol=1e-6)
        shard, row = np.divmod(out["indexes"], 64)
        offsets = np.array([0, 12, 32])
        np.testing.assert_array_equal(offsets[shard] + row, ids)  # global index -> the row that was drawn
    expected = rounds * batch * q / q.sum()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < stats.chi2.isf(1e-4, len(p) - 1)

    # PER-LaBER's write-back: one call per shard; the splits follow the new totals at once
    out = replay.sample(256, beta=beta)
    new = rng.uniform(0.0, 4.0, 256)
    replay.update_priorities(out["indexes"], new)
    p[out["act"].ravel()] = new  # the last value of a duplicate wins, as in one buffer
    q = (p + eps) ** alpha
    np.testing.assert_allclose([st.total for st in replay.stats()], [q[:12].sum(), q[12:32].sum(), q[32:].sum()])
    out = replay.sample(512, beta=1.0)
    np.testing.assert_allclose(out["weights"], q.min() / q[out["act"].ravel()], rtol=1e-6)
    with pytest.raises(ValueError, match="indexes must be global indexes"):
        replay.update_priorities([3 * 64], [1.0])


def test_killed_server_comes_back_from_its_checkpoint(ray_local: Any, tmp_path: Path) -> None:
    """ray.kill(no_restart=False) kills the shard; Ray restarts it, it loads its last checkpoint, and the client's
    retried calls go on: the rows added after that checkpoint are what is lost."""
    from laber.distributed import launch

    replay = launch(
        BufferSpec(100, ENV, seed=7), checkpoint_dir=tmp_path, checkpoint_every_s=3600.0, max_restarts=1, num_cpus=0
    )
    replay.add(**_rows(np.arange(30)))
    replay.flush()
    (server,) = replay.servers
    assert ray_local.get(server.checkpoint.remote())  # the periodic checkpoint, taken now
    replay.add(**_rows(np.arange(30, 50)))
    assert len(replay) == 50
    ray_local.kill(server, no_restart=False)  # returns at once: a call sent right after may still reach the old one
    for _ in range(300):
        (st,) = replay.stats()  # retried while the shard restarts
        if st.restarted:
            break
        time.sleep(0.05)
    assert st.restarted and st.restored and st.stored == 30
    replay.add(**_rows(np.arange(50, 55)))
    assert len(replay) == 35
    assert set(replay.sample(200)["act"].ravel()) <= set(range(30)) | set(range(50, 55))


def test_client_refuses_bad_calls_before_sending(ray_local: Any) -> None:
    from laber.distributed import launch

    replay = launch(BufferSpec(10, ENV, seed=8), num_cpus=0, rng=0)
    with pytest.raises(ValueError, match="cannot sample from an empty buffer"):
        replay.sample(4)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        replay.sample(0)
    with pytest.raises(TypeError, match="prioritized server"):
        replay.update_priorities([0], [1.0])
    with pytest.raises(ValueError, match="act"):
        replay.add(obs=np.zeros(2), act=2**70, rew=0.0, done=0.0)
    assert len(replay) == 0


def test_apex_ray_example(ray_local: Any, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("gymnasium")
    address = ray_local.get_runtime_context().gcs_address
    script = [
        sys.executable,
        str(EXAMPLES / "apex_ray.py"),
        "--steps",
        "800",
        "--steps-per-update",
        "8",
        "--chunk",
        "100",
        "--eval-episodes",
        "2",
        "--address",
        address,
    ]
    result = subprocess.run(script, capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training: 800 steps" in result.stdout
    assert "mean evaluation return of the greedy learner policy" in result.stdout


def test_bench_ray_quick(ray_local: Any) -> None:
    """benchmarks/bench_ray.py --quick runs end to end (on this module's Ray: RAY_ADDRESS), so it cannot rot."""
    import os

    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    bench = Path(__file__).resolve().parent.parent / "benchmarks"
    result = subprocess.run(
        [sys.executable, "bench_ray.py", "--quick"], capture_output=True, text=True, cwd=bench, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "transitions per second added" in result.stdout and "Ray server, 2 shards, sample(1024)" in result.stdout


def test_update_priorities_is_refused_whole_when_one_shard_would_overflow(ray_local: Any) -> None:
    """A priority whose (p + eps) ** alpha could overflow a shard's sums is refused by the client before any
    shard is written (it used to reach shard 0's rows first, then fail in shard 1)."""
    from laber.distributed import launch

    replay = launch(BufferSpec(16, ENV, kind="prioritized", alpha=2.0, seed=9), 2, num_cpus=0, rng=0)
    for s in (0, 1):
        w = replay.writer(s)
        w.add(priorities=np.ones(8), **_rows(np.arange(8) + 8 * s))
        w.flush()
    replay.sample(8)
    before = [st.total for st in replay.stats()]
    with pytest.raises(ValueError, match=r"priorities too large.*priorities=1e\+200"):
        replay.update_priorities([0, 16], [5.0, 1e200])
    assert [st.total for st in replay.stats()] == before


def test_sample_keeps_a_field_named_mass_and_returns_writable_fresh_arrays(ray_local: Any) -> None:
    """A field named ``mass`` (a physics observation) comes back as stored: the shards' sampling masses travel
    under an internal name (they used to overwrite it, and the client then dropped the field). Every array is a
    fresh writable one, as from ReplayBuffer.sample (they used to be read-only views of Ray's object store)."""
    from laber.distributed import launch

    env = {**ENV, "mass": {}}
    alpha, eps = 0.5, 0.1
    for shards in (1, 2):
        replay = launch(BufferSpec(32, env, kind="prioritized", alpha=alpha, eps=eps, seed=10), shards, num_cpus=0)
        p = np.linspace(0.0, 3.0, 20)
        for s in range(shards):
            w = replay.writer(s)
            ids = np.arange(20)[s::shards]
            w.add(priorities=p[ids], mass=ids * 10.0, **_rows(ids))
            w.flush()
        out = replay.sample(64, beta=1.0)
        ids = out["act"].ravel()
        np.testing.assert_array_equal(out["mass"].ravel(), ids * 10.0)
        q = (p + eps) ** alpha
        np.testing.assert_allclose(out["weights"], q.min() / q[ids], rtol=1e-6)
        for name, arr in out.items():
            assert arr.flags.writeable and arr.flags.owndata, name
        out["obs"][:] = 0.5  # the caller's own copy: the replay keeps its rows
        again = replay.sample(64)
        np.testing.assert_array_equal(again["obs"][:, 0], again["act"].ravel())
