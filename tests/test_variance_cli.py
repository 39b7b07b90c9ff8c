"""``laber variance``: a small end-to-end run (JSON and figure), the run left unchanged by its measurements, and the
usage errors raised before anything is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gymnasium")
pytest.importorskip("matplotlib")

from laber import cli  # noqa: E402
from laber.agents.dqn import DQNConfig, train  # noqa: E402
from laber.experiments.variance import JSON_NAME, PLOT_NAME  # noqa: E402

SMALL = [
    "--env",
    "CartPole-v1",
    "--steps",
    "400",
    "--learning-starts",
    "100",
    "--batch-size",
    "16",
    "--hidden",
    "16",
    "--eval-every",
    "200",
    "--eval-episodes",
    "1",
    "--draws",
    "60",
    "--population",
    "150",
    "--no-progress",
]


def small_config(arm: str) -> DQNConfig:
    return DQNConfig(
        env_id="CartPole-v1",
        arm=arm,
        steps=400,
        learning_starts=100,
        batch_size=16,
        hidden=(16,),
        eval_every=200,
        eval_episodes=1,
    )


def test_variance_writes_json_and_figure_and_leaves_the_run_unchanged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v"
    (tmp_path / "v").mkdir()
    (out / "notes.txt").write_text("mine")
    code = cli.main(
        ["variance", "--arm", "laber-mean", "--snapshots", "200,400", "--m", "1,4", "--out", str(out), *SMALL]
    )
    assert code == 0
    assert "measured 2 snapshots of laber-mean on CartPole-v1" in capsys.readouterr().out
    assert (out / "notes.txt").read_text() == "mine"  # nothing but its two files is touched
    assert (out / PLOT_NAME).stat().st_size > 10_000
    data = json.loads((out / JSON_NAME).read_text())
    assert data["settings"] == {"snapshots": [200, 400], "ms": [1, 4], "draws": 60, "population": 150, "seed": 0}
    assert [s["step"] for s in data["snapshots"]] == [200, 400]
    for report in data["snapshots"]:
        assert report["batch_size"] == 16 and report["population"] == 150 and report["draws"] == 60
        names = {(r["name"], r["m"]) for r in report["estimators"]}
        assert {("uniform", 1), ("uniform-large", 4), ("laber-mean", 1), ("laber-exact", 4), ("is", 0)} <= names
        assert 0.0 <= report["huber_saturated"] <= 1.0
        assert report["surrogate"]["v_b"] > 0
    # The measurements draw from their own generator: the run is the one `laber run` would train.
    plain = train(small_config("laber-mean"))
    assert data["eval_returns"] == plain.eval_returns


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--snapshots", "500"], "every snapshot must be <= --steps 400"),
        (["--snapshots", "100,x"], "argument --snapshots: must be comma-separated positive integers"),
        (["--snapshots", "100", "--m", "1,1"], "argument --m: must be distinct positive integers"),
        (["--snapshots", "100", "--draws", "1"], "--draws and --population must be >= 2"),
        (["--snapshots", "100", "--arm", "sgd"], "unknown arm 'sgd'"),
    ],
)
def test_variance_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["variance", "--out", str(tmp_path / "v"), *SMALL, *extra])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("usage: laber variance") and message in err
    assert not (tmp_path / "v").exists()


def test_variance_refuses_a_file_as_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(SystemExit) as info:
        cli.main(["variance", "--snapshots", "200", "--out", str(target), *SMALL])
    assert info.value.code == 2 and "argument --out: " in capsys.readouterr().err
    assert target.read_text() == "x"


def test_new_arms_are_offered_by_compare() -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["compare", "--arms", "uniform,ger,laber-exact", "--out", "unused"])
    assert args.arms == ["uniform", "ger", "laber-exact"]


class _Rows:
    """A stand-in replay buffer whose ``get_all_transitions`` returns fixed rows (numpy, or torch tensors as a
    device buffer returns them)."""

    def __init__(self, rows: dict[str, object]) -> None:
        self.rows = rows

    def get_all_transitions(self) -> dict[str, object]:
        return dict(self.rows)


def test_measure_snapshot_reads_tensor_rows_as_a_device_buffer_returns_them() -> None:
    """Regression: rows given as torch tensors (a device buffer's) were passed through ``np.asarray``, which
    refuses tensors on an accelerator; they are now read on the host and sent to the network's device. Without
    a GPU the stand-in is float tensors that require grad (``np.asarray`` refuses those too). The report is the
    same as for the numpy rows."""
    import numpy as np

    from laber.agents import dqn
    from laber.experiments.variance import measure_snapshot

    torch.manual_seed(0)
    online, target = dqn._mlp(4, (8,), 2), dqn._mlp(4, (8,), 2)
    gen = np.random.default_rng(0)
    rows = {
        "obs": gen.normal(size=(40, 4)).astype(np.float32),
        "next_obs": gen.normal(size=(40, 4)).astype(np.float32),
        "act": gen.integers(0, 2, size=(40, 1)),
        "rew": gen.normal(size=(40, 1)).astype(np.float32),
        "done": (gen.random((40, 1)) < 0.1).astype(np.float32),
        "discount": np.full((40, 1), 0.99**3, dtype=np.float32),
    }
    config = DQNConfig(env_id="CartPole-v1", batch_size=4, hidden=(8,))
    kwargs = {"population": 30, "ms": [1, 2], "draws": 20}
    plain = measure_snapshot(online, target, _Rows(rows), config, rng=np.random.default_rng(1), **kwargs)
    as_tensor = {k: torch.from_numpy(np.asarray(v)) for k, v in rows.items()}
    tensors = _Rows({k: v.requires_grad_(True) if v.is_floating_point() else v for k, v in as_tensor.items()})
    again = measure_snapshot(online, target, tensors, config, rng=np.random.default_rng(1), **kwargs)
    assert again == plain and plain["population"] == 30
