"""Mid-run checkpoints (laber.agents.resume): an interrupted run, resumed, is the uninterrupted run bit for bit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from laber.agents import dqn  # noqa: E402
from laber.agents.dqn import ARMS, DQNConfig  # noqa: E402
from laber.agents.resume import ResumeError, RunCheckpoints  # noqa: E402


class Stop(Exception):
    """Raised from on_eval: the run is killed there."""


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def _config(arm: str, **kw: Any) -> DQNConfig:
    base: dict[str, Any] = dict(
        env_id="CartPole-v1",
        arm=arm,
        seed=3,
        steps=900,
        batch_size=16,
        m=4,
        hidden=(16,),
        buffer_size=500,
        learning_starts=100,
        target_update=100,
        eps_decay_steps=300,
        eval_every=150,
        eval_episodes=2,
    )
    base.update(kw)
    return DQNConfig(**base)


def _interrupted(config: Any, directory: Path, stop_at: list[int], train: Any = dqn.train) -> tuple[Any, list[int]]:
    """Run, killing it at each step of stop_at (at its evaluation); each attempt resumes; returns the last."""
    resumed_from: list[int] = []
    for stop in [*stop_at, None]:
        checkpoints = RunCheckpoints(directory, config, every_seconds=0)
        resumed_from.append(checkpoints.step() or 0)

        def on_eval(step: int, value: float, stop: int | None = stop) -> None:
            if step == stop:
                raise Stop

        try:
            return train(config, on_eval=on_eval, checkpoints=checkpoints), resumed_from
        except Stop:
            continue
    raise AssertionError("unreachable")


def _same(a: Any, b: Any) -> None:
    assert a.eval_steps == b.eval_steps
    assert a.eval_returns == b.eval_returns
    assert a.episode_steps == b.episode_steps
    assert a.episode_returns == b.episode_returns
    assert a.updates == b.updates


@pytest.mark.parametrize("arm", ARMS)
def test_a_killed_and_resumed_run_is_the_uninterrupted_run(arm: str, tmp_path: Path) -> None:
    config = _config(arm, nstep=1 if arm in ("ger", "laber-exact") else 3)
    reference = dqn.train(config)
    result, resumed_from = _interrupted(config, tmp_path / "ck", [450, 750])
    # killed at the evaluation of step 450: the checkpoint of step 300 (written after its evaluation) holds
    assert resumed_from == [0, 300, 600]
    _same(result, reference)
    assert len(result.eval_train_seconds) == len(reference.eval_train_seconds)
    assert np.all(np.diff(result.eval_train_seconds) >= 0)


def _execute_killed_at(config: DQNConfig, out: Path, stop_step: int) -> None:
    """``execute`` of ``config`` into ``out``, killed at the evaluation of ``stop_step`` (checkpoints at each)."""
    from laber.experiments.runs import execute

    real = dqn.train

    def stop(*args: Any, **kwargs: Any) -> Any:
        def on_eval(step: int, value: float) -> None:
            if step == stop_step:
                raise Stop

        return real(config, on_eval=on_eval, checkpoints=kwargs["checkpoints"])

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dqn, "train", stop)
        with pytest.raises(Stop):
            execute(config, out, progress=False, tensorboard=False, checkpoint_seconds=0)


@pytest.mark.parametrize("arm", ["uniform", "laber-mean", "per-laber"])
def test_the_device_path_resumes_too(arm: str, tmp_path: Path) -> None:
    # device_buffer=True runs the device path (buffer and update in torch ops) on the CPU
    config = _config(arm, device_buffer=True)
    reference = dqn.train(config)
    result, resumed_from = _interrupted(config, tmp_path / "ck", [450])
    assert resumed_from == [0, 300]
    _same(result, reference)


def test_a_replay_that_lands_elsewhere_is_a_resume_error_and_execute_starts_afresh(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from laber.experiments.runs import execute

    out = tmp_path / "run"
    config = _config("uniform", steps=450)
    real = dqn.train
    _execute_killed_at(config, out, 300)
    state = tmp_path / "run.partial" / "resume" / "state"
    obs = np.load(state / "obs.npy")
    np.save(state / "obs.npy", obs + 1.0)  # not where the replay lands
    with pytest.raises(ResumeError, match="another observation at step 150"):
        dqn.train(config, checkpoints=RunCheckpoints(tmp_path / "run.partial" / "resume", config))
    execute(config, out, progress=False, tensorboard=False)
    err = capsys.readouterr().err
    assert "resuming" in err and "cannot resume" in err and "starting the run afresh" in err
    got = np.loadtxt(out / "eval.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(got[:, 1], real(config).eval_returns)


def test_a_buffer_without_checkpoints_is_refused_before_training(tmp_path: Path) -> None:
    def factory(config: Any, shape: Any, rng: Any) -> Any:
        return object()

    config = _config("uniform")
    with pytest.raises(TypeError, match="save_checkpoint and load_checkpoint"):
        dqn.train(config, buffer_factory=factory, checkpoints=RunCheckpoints(tmp_path / "ck", config))
    assert not (tmp_path / "ck").exists()


def test_networks_buffer_and_generators_match_after_resume(tmp_path: Path) -> None:
    config = _config("laber-mean", steps=600)
    seen: dict[str, Any] = {}

    def snapshot(step: int, online: Any, target: Any, buffer: Any) -> None:
        seen[f"online{len(seen)}"] = {k: v.clone() for k, v in online.state_dict().items()}
        seen[f"rows{len(seen)}"] = buffer.get_all_transitions()

    ref: dict[str, Any] = {}

    def ref_snapshot(step: int, online: Any, target: Any, buffer: Any) -> None:
        ref[f"online{len(ref)}"] = {k: v.clone() for k, v in online.state_dict().items()}
        ref[f"rows{len(ref)}"] = buffer.get_all_transitions()

    dqn.train(config, on_snapshot=ref_snapshot, snapshot_steps=[600])
    _killed_at(config, tmp_path / "ck", 450)
    dqn.train(config, on_snapshot=snapshot, snapshot_steps=[600], checkpoints=RunCheckpoints(tmp_path / "ck", config))
    for k, v in ref["online0"].items():
        assert torch.equal(v, seen["online0"][k]), k
    for k, v in ref["rows1"].items():
        np.testing.assert_array_equal(v, seen["rows1"][k], err_msg=k)


def test_a_checkpoint_of_another_config_is_refused_and_left_alone(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    _killed_at(config, tmp_path / "ck", 300)
    before = sorted(p.name for p in (tmp_path / "ck" / "state").iterdir())
    other = _config("uniform", steps=450, lr=5e-4)
    with pytest.raises(ResumeError, match="'lr'"):
        RunCheckpoints(tmp_path / "ck", other).step()
    with pytest.raises(ResumeError, match="'lr'"):
        dqn.train(other, checkpoints=RunCheckpoints(tmp_path / "ck", other))
    assert sorted(p.name for p in (tmp_path / "ck" / "state").iterdir()) == before


def test_a_damaged_checkpoint_is_a_resume_error(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    _killed_at(config, tmp_path / "ck", 300)
    state = tmp_path / "ck" / "state" / "state.json"
    data = json.loads(state.read_text())
    data["step"] = 151
    state.write_text(json.dumps(data))
    with pytest.raises(ResumeError, match="actions for step 151"):
        dqn.train(config, checkpoints=RunCheckpoints(tmp_path / "ck", config))
    state.write_text("{not json")
    with pytest.raises(ResumeError, match="unreadable"):
        RunCheckpoints(tmp_path / "ck", config).step()


def test_a_kill_between_the_renames_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    _killed_at(config, tmp_path / "ck", 300)
    ck = tmp_path / "ck"
    (ck / "state").rename(ck / "state.old")  # killed after moving the previous one aside
    (ck / "state.tmp-999").mkdir()  # and a killed save's temporary
    assert RunCheckpoints(ck, config).step() == 150
    result = dqn.train(config, checkpoints=RunCheckpoints(ck, config))
    _same(result, dqn.train(config))
    assert not (ck / "state.tmp-999").exists()


def test_every_seconds_is_checked() -> None:
    with pytest.raises(ValueError, match="every_seconds"):
        RunCheckpoints("x", _config("uniform"), every_seconds=-1)


@pytest.mark.parametrize("arm", ["uniform", "laber-mean", "per"])
def test_sac_killed_and_resumed_is_the_uninterrupted_run(arm: str, tmp_path: Path) -> None:
    from laber.agents.sac import SACConfig, train_sac

    # checkpoints before learning starts (random actions from the action space's generator) and after; episodes
    # of 200 steps (resets seeded from the exploration stream) on both sides of each kill
    config = SACConfig(
        env_id="Pendulum-v1",
        arm=arm,
        steps=600,
        batch_size=16,
        m=4,
        hidden=(16, 16),
        learning_starts=250,
        eval_every=100,
        eval_episodes=1,
        seed=2,
    )
    reference = train_sac(config)
    result, resumed_from = _interrupted(config, tmp_path / "ck", [200, 500], train=train_sac)
    assert resumed_from == [0, 100, 400]
    _same(result, reference)


def test_minatar_killed_and_resumed_is_the_uninterrupted_run(tmp_path: Path) -> None:
    pytest.importorskip("minatar")
    config = DQNConfig(
        env_id="MinAtar/Breakout-v1",
        arm="laber-mean",
        network="minatar",
        hidden=(32,),
        steps=700,
        batch_size=8,
        buffer_size=300,
        learning_starts=100,
        eval_every=175,
        eval_episodes=1,
        nstep=1,
        optimizer="rmsprop-centered",
        lr=2.5e-4,
        seed=1,
    )
    reference = dqn.train(config)
    result, resumed_from = _interrupted(config, tmp_path / "ck", [525])
    assert resumed_from == [0, 350]
    _same(result, reference)


# ----------------------------------------------------------------------------------------- execute and the CLI
def _argv(out: Path, *extra: str) -> list[str]:
    return [
        "run", "--env", "CartPole-v1", "--arm", "laber-mean", "--steps", "4000", "--learning-starts", "100",
        "--batch-size", "16", "--hidden", "16", "--buffer-size", "1000", "--eval-every", "100",
        "--eval-episodes", "1", "--no-progress", "--no-tensorboard", "--seed", "4", "--out", str(out), *extra,
    ]  # fmt: skip


def test_a_sigkilled_laber_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from laber.cli import main

    out, ref = tmp_path / "run", tmp_path / "ref"
    assert main(_argv(ref, "--no-checkpoints")) == 0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    code = "import sys; from laber.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *_argv(out, "--checkpoint-seconds", "0")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    state = tmp_path / "run.partial" / "resume" / "state" / "state.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["step"] >= 1000:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not out.exists() and (tmp_path / "run.partial" / "resume").is_dir()
    held = RunCheckpoints(tmp_path / "run.partial" / "resume", DQNConfig(env_id="CartPole-v1"))
    assert held.exists()
    resumed = subprocess.run(
        [sys.executable, "-c", code, *_argv(out)], env=env, capture_output=True, text=True, check=True
    )
    assert "resuming" in resumed.stderr and "from its checkpoint at step" in resumed.stderr
    mine = np.loadtxt(out / "eval.csv", delimiter=",", skiprows=1)
    theirs = np.loadtxt(ref / "eval.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(mine[:, :2], theirs[:, :2])  # steps and returns; not the clock
    assert (out / "episodes.csv").read_text() == (ref / "episodes.csv").read_text()
    assert not (out / "resume").exists() and not (tmp_path / "run.partial").exists()


def test_execute_starts_afresh_when_the_checkpoint_is_of_another_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from laber.experiments.runs import execute

    out = tmp_path / "run"
    config = _config("uniform", steps=450)
    _execute_killed_at(config, out, 300)
    assert (tmp_path / "run.partial" / "resume" / "state").is_dir()
    other = _config("uniform", steps=450, lr=5e-4)
    execute(other, out, progress=False, tensorboard=False)
    err = capsys.readouterr().err
    assert "not resuming" in err and "'lr'" in err and "starting the run afresh" in err
    reference = dqn.train(other)
    got = np.loadtxt(out / "eval.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(got[:, 1], reference.eval_returns)


@pytest.mark.parametrize("seconds", [-1.0, float("nan")])
def test_execute_refuses_a_bad_checkpoint_interval(seconds: float, tmp_path: Path) -> None:
    from laber.experiments.runs import execute

    with pytest.raises(ValueError, match="checkpoint_seconds"):
        execute(_config("uniform"), tmp_path / "run", progress=False, checkpoint_seconds=seconds)
    assert not any(tmp_path.iterdir())


def _killed_at(config: DQNConfig, directory: Path, stop_step: int) -> None:
    def stop(step: int, value: float) -> None:
        if step == stop_step:
            raise Stop

    with pytest.raises(Stop):
        dqn.train(config, on_eval=stop, checkpoints=RunCheckpoints(directory, config, every_seconds=0))


def test_a_foreign_directory_is_never_written_nor_deleted(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    foreign = tmp_path / "mine"
    (foreign / "state").mkdir(parents=True)
    (foreign / "state" / "precious.txt").write_text("not laber's")
    with pytest.raises(ValueError, match=r"holds no \.laber-checkpoints marker"):
        dqn.train(config, checkpoints=RunCheckpoints(foreign, config, every_seconds=0))
    RunCheckpoints(foreign, config).discard()
    assert RunCheckpoints(foreign, config).step() is None and not RunCheckpoints(foreign, config).exists()
    assert (foreign / "state" / "precious.txt").read_text() == "not laber's"


def test_discard_removes_laber_s_names_only(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    ck = tmp_path / "ck"
    _killed_at(config, ck, 300)
    (ck / "notes.txt").write_text("the user's")
    RunCheckpoints(ck, config).discard()
    assert sorted(p.name for p in ck.iterdir()) == ["notes.txt"]
    _killed_at(_config("uniform", steps=450, seed=4), tmp_path / "ck2", 300)
    RunCheckpoints(tmp_path / "ck2", config).discard()
    assert not (tmp_path / "ck2").exists()


def test_other_versions_and_missing_files_are_resume_errors(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    ck = tmp_path / "ck"
    _killed_at(config, ck, 300)
    state = ck / "state" / "state.json"
    data = json.loads(state.read_text())
    data["versions"]["torch"] = "0.0.1"
    state.write_text(json.dumps(data))
    with pytest.raises(ResumeError, match=r"other versions.*torch 0\.0\.1"):
        RunCheckpoints(ck, config).step()
    # the same release with another local label (torch's +cpu / +cu121 wheels) continues
    release = str(torch.__version__).split("+", 1)[0]
    for label in ("", "+cu121", "+cpu"):
        data["versions"]["torch"] = release + label
        state.write_text(json.dumps(data))
        assert RunCheckpoints(ck, config).step() == data["step"]
    data["versions"]["laber"] = "0.0.0+" + data["versions"]["laber"]
    state.write_text(json.dumps(data))
    with pytest.raises(ResumeError, match=r"other versions.*laber 0\.0\.0\+"):
        RunCheckpoints(ck, config).step()
    _killed_at(config, tmp_path / "ck2", 300)
    (tmp_path / "ck2" / "state" / "buffer.npz").unlink()
    with pytest.raises(ResumeError, match=r"no buffer\.npz"):
        dqn.train(config, checkpoints=RunCheckpoints(tmp_path / "ck2", config))
    _killed_at(config, tmp_path / "ck3", 300)
    (tmp_path / "ck3" / "state" / "agent.pt").write_bytes(b"garbage")
    with pytest.raises(ResumeError, match="damaged checkpoint"):
        dqn.train(config, checkpoints=RunCheckpoints(tmp_path / "ck3", config))


def test_progress_counts_every_step_once_across_a_resume(tmp_path: Path) -> None:
    from laber.agents.sac import SACConfig, train_sac

    config = SACConfig(
        env_id="Pendulum-v1", steps=2300, batch_size=8, hidden=(8,), learning_starts=2200, eval_every=1150,
        eval_episodes=1,
    )  # fmt: skip
    seen: list[int] = []
    ck = tmp_path / "ck"

    def stop(step: int, value: float) -> None:
        if step == 2300:
            raise Stop

    with pytest.raises(Stop):
        train_sac(
            config, on_eval=stop, on_progress=seen.append, checkpoints=RunCheckpoints(ck, config, every_seconds=0)
        )
    before = sum(seen)  # 2000 reported before the kill (every 1,000 steps), checkpoint at 1,150
    seen.clear()
    train_sac(config, on_progress=seen.append, checkpoints=RunCheckpoints(ck, config))
    assert before == 2000 and seen[0] == 1000 and sum(seen) == 2000  # as an uninterrupted run reports
    seen.clear()
    dseen: list[int] = []
    dconf = _config("uniform", steps=450)
    _killed_at(dconf, tmp_path / "d", 300)
    dqn.train(dconf, on_progress=dseen.append, progress_every=100, checkpoints=RunCheckpoints(tmp_path / "d", dconf))
    assert dseen[0] == 150 and sum(dseen) == 450


def test_another_numpy_version_still_resumes(tmp_path: Path) -> None:
    config = _config("uniform", steps=450)
    ck = tmp_path / "ck"
    _killed_at(config, ck, 300)
    state = ck / "state" / "state.json"
    data = json.loads(state.read_text())
    data["versions"]["numpy"] = "1.0.0"
    state.write_text(json.dumps(data))
    assert RunCheckpoints(ck, config).step() == 150
    _same(dqn.train(config, checkpoints=RunCheckpoints(ck, config)), dqn.train(config))
