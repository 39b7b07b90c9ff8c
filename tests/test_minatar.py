"""The MinAtar configuration of the reference DQN: the paper's network, optimiser and settings, image rows in the
buffer as uint8 frames with next_of, and short runs of every arm the network supports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")

from laber.agents import dqn  # noqa: E402
from laber.agents.dqn import PRESETS, DQNConfig  # noqa: E402
from laber.agents.networks import minatar_forward, minatar_network, parameter_pairs  # noqa: E402

PAPER = PRESETS["minatar-paper"]


pytestmark = pytest.mark.usefixtures("torch_one_thread")  # tests/conftest.py


def test_the_network_is_the_papers() -> None:
    net = minatar_network((10, 10, 4), (128,), 3)
    conv, fc, out = (m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    assert conv.in_channels == 4 and conv.out_channels == 16 and conv.kernel_size == (3, 3) and conv.stride == (1, 1)
    assert fc.in_features == 16 * 8 * 8 and fc.out_features == 128 and out.out_features == 3
    x = torch.randint(0, 2, (5, 10, 10, 4), generator=torch.Generator().manual_seed(0)).to(torch.uint8)
    want = net(x.float().permute(0, 3, 1, 2))  # the module on channels-first float frames
    torch.testing.assert_close(minatar_forward(torch, parameter_pairs(net), x), want, rtol=0, atol=0)
    with pytest.raises(ValueError, match="height, width, channels"):
        minatar_network((100,), (128,), 3)


def test_the_preset_is_the_papers_settings() -> None:
    config = DQNConfig(**PAPER)
    assert (config.batch_size, config.buffer_size, config.target_update, config.learning_starts) == (
        32,
        100_000,
        1_000,
        5_000,
    )
    assert (config.eps_start, config.eps_end, config.eps_decay_steps, config.nstep, config.loss) == (
        1.0,
        0.1,
        100_000,
        1,
        "huber",
    )
    net = dqn._Networks(config, (10, 10, 4), 3)
    opt = net.optimizer
    assert isinstance(opt, torch.optim.RMSprop)
    group = opt.param_groups[0]
    assert group["centered"] and group["lr"] == 2.5e-4 and group["alpha"] == 0.95 and group["eps"] == 0.01


def test_new_settings_stay_out_of_records_at_their_defaults() -> None:
    """Records of MLP runs read as before these settings existed (a compare resumes over them)."""
    data = DQNConfig().to_dict()
    assert not {"network", "optimizer", "rms_alpha", "rms_eps"} & set(data)
    paper = DQNConfig(**PAPER).to_dict()
    assert paper["network"] == "minatar" and DQNConfig.from_dict(paper) == DQNConfig(**PAPER)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"network": "resnet"}, "network must be one of"),
        ({"network": "minatar", "arm": "ger"}, "does not support network='minatar'"),
        ({"network": "minatar", "arm": "laber-exact"}, "does not support network='minatar'"),
        ({"optimizer": "sgd"}, "optimizer must be one of"),
        ({"rms_alpha": 1.0}, "rms_alpha"),
        ({"rms_eps": 0.0}, "rms_eps"),
    ],
)
def test_bad_settings(settings: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DQNConfig(**settings)


def test_frames_are_stored_as_uint8_with_next_of() -> None:
    config = DQNConfig(**PAPER)
    buffer = dqn._make_buffer(config, (10, 10, 4), dqn._seeds(0))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 2, (6, 10, 10, 4)).astype(bool)
    for t in range(5):
        buffer.add(obs=frames[t], act=1, rew=1.0, next_obs=frames[t + 1], done=0.0)
    rows = buffer.get_all_transitions()
    assert rows["obs"].dtype == np.uint8
    np.testing.assert_array_equal(rows["obs"], frames[:5])
    np.testing.assert_array_equal(rows["next_obs"], frames[1:])  # derived by next_of
    record = buffer.checkpoint_state().record
    assert record is not None and "next_obs" not in (record.names or ())  # each frame stored once, not twice


minatar = pytest.importorskip("minatar.gym", reason="the minatar extra")


@pytest.mark.parametrize("arm", ["uniform", "laber-mean", "per-laber-paper"])
def test_short_runs_on_minatar(arm: str) -> None:
    config = DQNConfig(
        **{
            **PAPER,
            "env_id": "MinAtar/Breakout-v1",
            "arm": arm,
            "steps": 400,
            "learning_starts": 200,
            "eval_every": 200,
            "eval_episodes": 1,
            "buffer_size": 1000,
        }
    )
    result = dqn.train(config)
    assert result.eval_steps == [0, 200, 400] and result.updates == 200
    assert all(np.isfinite(result.eval_returns))


def test_minatar_needs_the_minatar_network() -> None:
    with pytest.raises(ValueError, match="network='minatar'"):
        dqn.check_env("MinAtar/Breakout-v1")
    assert dqn.check_env("MinAtar/Breakout-v1", "minatar") == (400, 3)


def test_the_cli_runs_the_preset(tmp_path: Path) -> None:
    from laber.cli import main

    out = tmp_path / "run"
    code = main(
        [
            "run",
            "--env",
            "MinAtar/Breakout-v1",
            "--config",
            "minatar-paper",
            "--arm",
            "uniform",
            "--steps",
            "300",
            "--learning-starts",
            "200",
            "--eval-every",
            "150",
            "--eval-episodes",
            "1",
            "--no-progress",
            "--no-tensorboard",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    record = json.loads((out / "result.json").read_text())["config"]
    assert record["network"] == "minatar" and record["optimizer"] == "rmsprop-centered" and record["batch_size"] == 32
    assert record["learning_starts"] == 200  # a flag given wins over the preset
