"""The ``laber`` command: train the reference DQN and compare replay sampling strategies.

    laber run --env CartPole-v1 --arm laber-mean --seed 0 --steps 50000
    laber compare --env CartPole-v1 --arms uniform,per,laber-mean --seeds 5 --steps 50000 --jobs 2 --out runs/X
    laber report --out runs/X
    laber variance --env CartPole-v1 --arm uniform --snapshots 3000,10000,30000 --m 1,2,4,8 --out runs/V

Bad arguments are argparse usage errors (exit status 2) naming the argument, raised before anything is trained or
written: among them an ``--env`` the reference DQN cannot train on, a run that would end before its first update,
and an ``--out`` laber may not write to. laber never deletes a directory it did not create (see
``laber.experiments.runs``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from laber._optional import require
from laber.agents.dqn import ARMS as _ARMS  # numpy only: `laber --help` must not need torch
from laber.agents.dqn import OPTIMIZERS as _OPTIMIZERS
from laber.agents.dqn import PRESETS as _PRESETS
from laber.agents.dqn import DQNConfig
from laber.agents.networks import NETWORKS as _NETWORKS

__all__ = ["build_parser", "main"]

_DESCRIPTION = "Train the reference DQN and compare replay sampling strategies."
_EPILOG = """\
examples:
  laber run --env CartPole-v1 --arm laber-mean --seed 0 --steps 50000
  laber compare --env CartPole-v1 --arms uniform,per,laber-mean --seeds 5 --steps 50000 --jobs 2 --out runs/X
  laber report --out runs/X --smooth 3
  laber aggregate runs/X runs/Y --out runs/XY
  laber cost runs/X --reps 5
  laber variance --env CartPole-v1 --arm uniform --snapshots 3000,10000,30000 --m 1,2,4,8 --out runs/V

'laber COMMAND --help' lists the options of each command, with their defaults."""


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter that never breaks a word at a hyphen (arm names), keeps indented lines of the
    description and epilog as they are, and shows every default that is not already in the help text."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for block in text.split("\n\n"):
            if any(line.startswith(" ") for line in block.splitlines()) or block.rstrip().endswith(":"):
                out.append("\n".join(indent + line for line in block.splitlines()))
            else:
                wrapped = textwrap.wrap(" ".join(block.split()), width, break_on_hyphens=False, break_long_words=False)
                out.append("\n".join(indent + line for line in wrapped))
        return "\n\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if "(default" in text or default is None or default is argparse.SUPPRESS or isinstance(default, bool):
            return text
        shown = ",".join(str(d) for d in default) if isinstance(default, list) else "%(default)s"
        return f"{text} (default: {shown})"


def _show(value: Any) -> str:
    """A DQNConfig default as it is typed on the command line."""
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


_DEFAULTS: dict[str, Any] = {name: getattr(DQNConfig, name) for name in DQNConfig.__dataclass_fields__}


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _nonnegative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _unit_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def _arm(text: str) -> str:
    if text not in _ARMS:
        raise argparse.ArgumentTypeError(f"unknown arm {text!r}; choose from {', '.join(_ARMS)}")
    return text


def _arm_list(text: str) -> list[str]:
    arms = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not a for a in arms):
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of arms, got {text!r}")
    for a in arms:
        _arm(a)
    if len(set(arms)) != len(arms):
        raise argparse.ArgumentTypeError(f"arms must not repeat, got {text!r}")
    return arms


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated positive integers, got {text!r}") from None
    if any(v <= 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"must be distinct positive integers, got {text!r}")
    return values


def _out_dir(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must name a directory, got {text!r}")
    return Path(text)


def _hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated layer widths such as 64,64, got {text!r}") from None
    if not widths or any(w <= 0 for w in widths):
        raise argparse.ArgumentTypeError(f"layer widths must be positive integers, got {text!r}")
    return widths


# (flag, DQNConfig field, type, help)
_HYPER: tuple[tuple[str, str, Callable[[str], Any], str], ...] = (
    ("--batch-size", "batch_size", _positive_int, "training batch size B"),
    ("--m", "m", _positive_int, "LaBER's large-batch multiplier (uniform-large draws m*B)"),
    ("--nstep", "nstep", _positive_int, "n of the n-step returns"),
    ("--gamma", "gamma", _unit_float, "discount factor"),
    ("--lr", "lr", _positive_float, "learning rate (of --optimizer)"),
    ("--hidden", "hidden", _hidden, "hidden layer widths, e.g. 64,64"),
    ("--loss", "loss", str, "huber or mse"),
    ("--buffer-size", "buffer_size", _positive_int, "replay capacity"),
    ("--learning-starts", "learning_starts", _positive_int, "random steps before training starts"),
    ("--train-freq", "train_freq", _positive_int, "environment steps per update"),
    ("--target-update", "target_update", _positive_int, "steps between target network syncs"),
    ("--eps-start", "eps_start", _unit_float, "initial epsilon of epsilon-greedy exploration"),
    ("--eps-end", "eps_end", _unit_float, "final epsilon of epsilon-greedy exploration"),
    ("--eps-decay-steps", "eps_decay_steps", _nonnegative_int, "steps of the linear epsilon decay"),
    ("--eval-every", "eval_every", _positive_int, "steps between evaluations"),
    ("--eval-episodes", "eval_episodes", _positive_int, "greedy episodes per evaluation"),
    ("--laber-eps", "laber_eps", _nonnegative_float, "eps LaBER adds to every surrogate priority before its draw"),
    ("--per-alpha", "per_alpha", _unit_float, "PER priority exponent alpha"),
    ("--per-beta", "per_beta", _unit_float, "PER initial importance exponent beta (annealed to 1)"),
    ("--per-eps", "per_eps", _nonnegative_float, "eps PER adds to abs(TD) in the priorities it sets"),
    ("--network", "network", str, "Q-network: mlp (flat observations) or minatar (10x10xC frames: conv 16@3x3)"),
    ("--optimizer", "optimizer", str, "adam or rmsprop-centered"),
    ("--rms-alpha", "rms_alpha", _positive_float, "RMSprop's smoothing constant alpha"),
    ("--rms-eps", "rms_eps", _positive_float, "RMSprop's eps"),
)
_CHOICES: dict[str, tuple[str, ...]] = {"--loss": ("huber", "mse"), "--network": _NETWORKS, "--optimizer": _OPTIMIZERS}


def _preset_text(name: str) -> str:
    flags = {field: flag for flag, field, _kind, _text in _HYPER}
    return ", ".join(f"{flags.get(k, k)} {_show(v)}" for k, v in _PRESETS[name].items())


def _add_checkpoint_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint-seconds",
        type=_nonnegative_float,
        default=300.0,
        metavar="S",
        help="write a mid-run checkpoint at the first evaluation S seconds after the previous one (0: at every "
        "evaluation); an interrupted run started again with the same settings and --out continues from it, to "
        "the same result (default: 300)",
    )
    parser.add_argument(
        "--no-checkpoints", action="store_true", help="no mid-run checkpoints: an interrupted run starts afresh"
    )


def _add_common(parser: argparse.ArgumentParser, skip: frozenset[str] = frozenset()) -> None:
    parser.add_argument("--env", default="CartPole-v1", help="gymnasium environment id (default: CartPole-v1)")
    parser.add_argument("--steps", type=_positive_int, default=_DEFAULTS["steps"], help="environment steps per run")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress output (otherwise: live bars on a terminal, with laber[progress]; plain log lines on "
        "stderr when it is a file or pipe)",
    )
    parser.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard event files")
    if "--checkpoint-seconds" not in skip:
        _add_checkpoint_flags(parser)
    if "--agent" not in skip:
        parser.add_argument(
            "--agent",
            choices=("dqn", "sac"),
            default="dqn",
            help="the reference agent: dqn (discrete actions; laber.agents.DQNConfig) or sac (continuous actions; "
            "laber.agents.sac.SACConfig, whose own defaults apply; arms uniform, uniform-large, laber-mean, per)",
        )
    if "--tau" not in skip:
        parser.add_argument(
            "--tau",
            type=_unit_float,
            default=None,
            help="--agent sac: Polyak rate of the target critics (default: 0.005)",
        )
    group = parser.add_argument_group("agent settings (defaults: laber.agents.DQNConfig)")
    group.add_argument(
        "--config",
        choices=sorted(_PRESETS),
        default=None,
        help="a named configuration whose settings replace the defaults (flags given here still win): "
        + "; ".join(f"{name}: {_preset_text(name)}" for name in sorted(_PRESETS)),
    )
    for flag, name, kind, text in _HYPER:
        if flag in skip:
            continue
        shown = f"{text} (default: {_show(_DEFAULTS[name])})"
        if flag in _CHOICES:
            group.add_argument(flag, choices=_CHOICES[flag], default=None, help=shown)
        else:
            group.add_argument(flag, type=kind, default=None, metavar=name.upper(), help=shown)
    group.add_argument(
        "--device",
        default=None,
        help="torch device of the networks: cpu (default), cuda, cuda:1, ...; any but cpu keeps the replay buffer "
        "there too and runs the whole update there",
    )
    group.add_argument(
        "--device-buffer",
        action="store_true",
        help="the device path (buffer on --device, update in torch ops there) even when --device is cpu",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``laber`` argument parser (``run``, ``compare``, ``report``, ``aggregate``, ``cost`` and ``variance``)."""
    return _build()[0]


def _build() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its sub-command parsers (whose usage a sub-command's errors print)."""
    from laber import __version__

    parser = argparse.ArgumentParser(
        prog="laber", description=_DESCRIPTION, epilog=_EPILOG, formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"laber {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{run,compare,report,aggregate,cost,variance}")
    arms = ", ".join(_ARMS)

    run = sub.add_parser(
        "run",
        help="train one run of the reference DQN",
        description="Train one run of the reference DQN and write its evaluation curve, episodes and timing.",
        formatter_class=_HelpFormatter,
    )
    _add_common(run)
    run.add_argument("--arm", type=_arm, default="laber-mean", metavar="ARM", help=f"sampling strategy, one of: {arms}")
    run.add_argument("--seed", type=_nonnegative_int, default=0, help="the run's one seed")
    run.add_argument(
        "--out",
        type=_out_dir,
        default=None,
        help="run directory (default: runs/<env>/<arm>/seed<seed>); a previous laber run there is replaced",
    )

    cmp_ = sub.add_parser(
        "compare",
        help="train every arm x seed, then plot and summarise (resumable)",
        description="Train every arm x seed (resumable: finished runs in --out are kept), then write curves.png, "
        "summary.md and summary.json over every finished run in --out.",
        formatter_class=_HelpFormatter,
    )
    _add_common(cmp_)
    cmp_.add_argument(
        "--arms",
        type=_arm_list,
        default=["uniform", "per", "laber-mean"],
        metavar="ARMS",
        help=f"comma-separated arms, from: {arms}",
    )
    cmp_.add_argument(
        "--seeds",
        type=_positive_int,
        default=5,
        metavar="N",
        help="how many seeds: --seed-start, --seed-start + 1, ..., --seed-start + N - 1",
    )
    cmp_.add_argument("--seed-start", type=_nonnegative_int, default=0, metavar="S", help="the first seed")
    cmp_.add_argument("--jobs", type=_positive_int, default=1, help="runs trained at a time, in separate processes")
    cmp_.add_argument(
        "--out", type=_out_dir, required=True, help="output directory (required; re-use it to resume or extend)"
    )

    rep = sub.add_parser(
        "report",
        help="re-make the plot and summary of a compare directory",
        description="Re-make curves.png, summary.md and summary.json from every finished run in a compare's "
        "directory (runs of earlier compares into it included).",
        formatter_class=_HelpFormatter,
    )
    rep.add_argument("--out", type=_out_dir, required=True, help="a compare's output directory (required)")
    rep.add_argument(
        "--smooth",
        type=_positive_int,
        default=1,
        metavar="K",
        help="plot a trailing moving average over K evaluations (1: no smoothing; the summary is never smoothed)",
    )
    rep.add_argument(
        "--reference",
        type=_arm,
        default=None,
        metavar="ARM",
        help="the arm drawn in grey on every panel (default: uniform when it has runs)",
    )
    agg = sub.add_parser(
        "aggregate",
        help="one table and performance profiles over several compare directories (tasks)",
        description="Aggregate compare directories, one task each (e.g. one per MinAtar game): scores normalised "
        "per task (0: the untrained network's return, 1: uniform's mean final return), their interquartile mean "
        "and probability of improvement over uniform with stratified-bootstrap intervals, and performance "
        "profiles (laber.experiments.tasks). Writes aggregate.md, aggregate.json and profiles.png into --out.",
        formatter_class=_HelpFormatter,
    )
    agg.add_argument("dirs", type=_out_dir, nargs="+", metavar="DIR", help="compare directories, one per task")
    agg.add_argument(
        "--out",
        type=_out_dir,
        required=True,
        help="output directory (required): absent, empty, or an earlier laber aggregate's",
    )
    cost = sub.add_parser(
        "cost",
        help="measure a compare's arms' costs side by side, for its comparisons at equal training time",
        description="Time short runs of every arm of a compare directory with its settings, interleaved (each "
        "round runs every arm once, in a random order) so that the machine's load falls on every arm alike; "
        "write costs.json into the directory and re-make its summary when it has one (laber report does so "
        "from then on): the equal-time comparisons then use the training time these costs model instead of the "
        "runs' own clocks (laber.experiments.costs). A timing run is a random phase that fills the buffer as far "
        "as the runs' buffer gets (up to 100,000 rows), then --train-steps training steps at the final "
        "exploration rate; evaluations are left out of its time.",
        formatter_class=_HelpFormatter,
    )
    cost.add_argument("dir", type=_out_dir, metavar="DIR", help="a compare directory")
    cost.add_argument(
        "--arms", type=_arm_list, default=None, metavar="ARMS", help="comma-separated arms (default: the compare's)"
    )
    cost.add_argument(
        "--train-steps", type=_positive_int, default=2000, metavar="N", help="steps with updates per timing run"
    )
    cost.add_argument("--reps", type=_positive_int, default=5, metavar="R", help="rounds (timing runs per arm)")
    cost.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of the rounds' orders")
    var = sub.add_parser(
        "variance",
        help="train one run, snapshot it, and measure its gradient estimators' bias and variance",
        description="Train one run of the reference DQN; at each snapshot, measure on a population of buffer rows "
        "the bias and trace variance of uniform, LaBER and importance-sampled mini-batch gradients (exact "
        "per-sample gradients, Monte Carlo draws) against the closed form; write variance.json and variance.png "
        "to --out (see docs/variance.md).",
        formatter_class=_HelpFormatter,
    )
    _add_common(var, skip=frozenset({"--m", "--agent", "--tau", "--checkpoint-seconds"}))
    var.set_defaults(steps=None)
    var.add_argument("--arm", type=_arm, default="uniform", metavar="ARM", help=f"the arm trained, one of: {arms}")
    var.add_argument("--seed", type=_nonnegative_int, default=0, help="the run's one seed")
    var.add_argument(
        "--snapshots", type=_int_list, required=True, help="comma-separated steps to measure at (required)"
    )
    var.add_argument(
        "--m", dest="ms", type=_int_list, default=[1, 2, 4, 8], metavar="MS", help="the multipliers m measured"
    )
    var.add_argument(
        "--train-m", dest="m", type=_positive_int, default=None, metavar="M", help="--m of the trained arm"
    )
    var.add_argument("--draws", type=_positive_int, default=4000, help="Monte Carlo draws per estimator")
    var.add_argument("--population", type=_positive_int, default=4096, help="buffer rows measured per snapshot")
    var.add_argument("--measure-seed", type=_nonnegative_int, default=0, help="seed of the measurement's draws")
    var.add_argument("--out", type=_out_dir, required=True, help="output directory (required)")
    var.epilog = "--steps defaults to the last snapshot."
    return parser, {"run": run, "compare": cmp_, "report": rep, "aggregate": agg, "cost": cost, "variance": var}


def _sac_config(parser: argparse.ArgumentParser, args: argparse.Namespace, **extra: Any) -> Any:
    """A SACConfig from the arguments (``--agent sac``); DQN-only flags and invalid values are usage errors."""
    sac = _require_or_usage(parser, "laber.agents.sac", "SAC")
    _require_or_usage(parser, "torch", "SAC")
    gym = _require_or_usage(parser, "gymnasium", "SAC")
    if args.command == "compare":
        _require_or_usage(parser, "matplotlib", "the compare's plot")
    if args.env not in gym.envs.registry:
        parser.error(f"argument --env: unknown gymnasium environment {args.env!r}")
    known = set(sac.SACConfig.__dataclass_fields__)
    values: dict[str, Any] = {"env_id": args.env, "steps": args.steps, **extra}
    for flag, name, _kind, _text in _HYPER:
        value = getattr(args, name)
        if value is None:
            continue
        if name not in known:
            parser.error(f"argument {flag}: not a setting of --agent sac")
        values[name] = value
    for flag, given in (("--config", args.config), ("--device", args.device), ("--device-buffer", args.device_buffer)):
        if given:
            parser.error(f"argument {flag}: not a setting of --agent sac")
    if args.tau is not None:
        values["tau"] = args.tau
    try:
        config = sac.SACConfig(**values)
        sac.check_trainable(config)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    try:
        sac.check_continuous_env(config.env_id)
    except ValueError as exc:
        parser.error(f"argument --env: {exc}")
    return config


def _config(parser: argparse.ArgumentParser, args: argparse.Namespace, **extra: Any) -> Any:
    """The agent's config from the arguments (a DQNConfig, or a SACConfig with ``--agent sac``); an invalid
    combination is a usage error."""
    if getattr(args, "agent", "dqn") == "sac":
        return _sac_config(parser, args, **extra)
    if getattr(args, "tau", None) is not None:
        parser.error("argument --tau: a setting of --agent sac only")
    dqn = _require_or_usage(parser, "laber.agents.dqn", "the reference DQN")
    _require_or_usage(parser, "torch", "the reference DQN")
    gym = _require_or_usage(parser, "gymnasium", "the reference DQN")
    if args.command in ("compare", "variance"):
        _require_or_usage(parser, "matplotlib", f"the {args.command}'s plot")
    if args.env.startswith(dqn.MINATAR_PREFIX) and args.env not in gym.envs.registry:
        _require_or_usage(parser, "minatar.gym", "MinAtar environments").register_envs()
    if args.env not in gym.envs.registry:
        parser.error(f"argument --env: unknown gymnasium environment {args.env!r}")
    preset = dict(_PRESETS[args.config]) if getattr(args, "config", None) else {}
    values: dict[str, Any] = {**preset, "env_id": args.env, "steps": args.steps, **extra}
    for _flag, name, _kind, _text in _HYPER:
        value = getattr(args, name)
        if value is not None:
            values[name] = value
    if args.device is not None:
        try:
            dqn.check_device(args.device)
        except (TypeError, ValueError) as exc:
            parser.error(f"argument --device: {exc}")
        values["device"] = args.device
    if args.device_buffer:
        values["device_buffer"] = True
    try:
        config = dqn.DQNConfig(**values)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    first = dqn.first_update_step(config)
    if config.steps < first:
        parser.error(
            f"argument --steps: the run would never train: its first update comes at step {first} (after "
            f"--learning-starts {config.learning_starts}, one update every --train-freq {config.train_freq} "
            f"steps), got --steps {config.steps}"
        )
    try:
        dqn.check_env(config.env_id, config.network)
    except ValueError as exc:
        parser.error(f"argument --env: {exc}")
    return config


def _require_or_usage(parser: argparse.ArgumentParser, module: str, purpose: str) -> Any:
    try:
        return require(module, purpose)
    except ImportError as exc:
        parser.exit(1, f"laber: error: {exc}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``laber`` command; returns the exit status."""
    top, commands = _build()
    args = top.parse_args(argv)
    parser = commands[args.command]  # a sub-command's errors print its own usage
    try:
        if args.command == "report":
            return _report(parser, args)
        if args.command == "aggregate":
            return _aggregate(parser, args)
        if args.command == "cost":
            return _cost(parser, args)
        if args.command == "run":
            return _run(parser, args)
        if args.command == "variance":
            return _variance(parser, args)
        return _compare(parser, args)
    except KeyboardInterrupt:  # Ctrl-C: no traceback; the progress display has been closed on the way out
        sys.stderr.write(
            f"\nlaber {args.command}: interrupted; finished runs are kept, and an unfinished run continues from its "
            "last checkpoint in its .partial directory (re-run the same command to resume; with --no-checkpoints "
            "it starts afresh)\n"
        )
        return 130


def _report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if not (args.out / "compare.json").is_file():
        parser.error(f"argument --out: {str(args.out)!r} holds no compare (no compare.json)")
    _require_or_usage(parser, "matplotlib", "the compare's plot")
    from laber.experiments.report import write_report
    from laber.experiments.runs import finished_runs

    try:
        plot, summary = write_report(args.out, smooth_window=args.smooth, reference=args.reference)
    except FileNotFoundError as exc:
        parser.error(f"argument --out: {exc}")
    except ValueError as exc:
        parser.error(f"argument --reference: {exc}" if str(exc).startswith("reference arm") else str(exc))
    seeds: dict[str, int] = {}
    for arm, _seed, _path in finished_runs(args.out):
        seeds[arm] = seeds.get(arm, 0) + 1
    counts = ", ".join(f"{arm} {n}" for arm, n in seeds.items())
    print(f"wrote {plot} and {summary} from {sum(seeds.values())} finished runs (seeds per arm: {counts})")
    return 0


def _cost(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from laber.experiments.costs import COSTS_FILE, check_measurable, config_of_compare, measure_costs
    from laber.experiments.runs import is_laber_dir

    if not (args.dir / "compare.json").is_file() or not is_laber_dir(args.dir):
        parser.error(f"argument DIR: {str(args.dir)!r} is not a laber compare (no compare.json and .laber-run)")
    _require_or_usage(parser, "torch", "laber cost")
    try:
        config, recorded = config_of_compare(args.dir)
    except ValueError as exc:
        parser.error(f"argument DIR: {exc}")
    from laber.agents.dqn import MINATAR_PREFIX

    if config.env_id.startswith(MINATAR_PREFIX):
        _require_or_usage(parser, "minatar.gym", "MinAtar environments")
    arms = args.arms if args.arms is not None else recorded
    try:
        plans = check_measurable(config, arms, train_steps=args.train_steps, reps=args.reps)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
    left_out = [a for a in recorded if a not in arms]
    if left_out:
        print(
            f"laber cost: warning: {COSTS_FILE} will not cover {', '.join(left_out)}; until it covers every arm, "
            "the summaries keep the runs' own clocks",
            file=sys.stderr,
        )
    fill = plans[0].learning_starts
    print(
        f"timing {len(arms)} arms x {args.reps} rounds on {config.env_id}: {fill:,} random steps filling the buffer, "
        f"then {args.train_steps:,} training steps each",
        flush=True,
    )

    def show(k: int, arm: str, c: Any) -> None:
        print(
            f"  round {k + 1}/{args.reps} {arm}: {c.update[0] * 1e3:.3f} ms / update, "
            f"{c.train_step[0] * 1e3:.3f} ms / training step",
            flush=True,
        )

    table = measure_costs(config, arms, train_steps=args.train_steps, reps=args.reps, rng=args.seed, on_run=show)
    path = table.save(args.dir / COSTS_FILE)
    print("arm | ms / update | ms / training step | vs uniform, per update (range) | per step (range)")
    for arm in table.arms:
        cells = [arm, f"{table.seconds(arm, 'update') * 1e3:.3f}", f"{table.seconds(arm, 'train_step') * 1e3:.3f}"]
        for kind in ("update", "train_step"):
            r, (lo, hi) = table.ratio(arm, kind), table.ratio_range(arm, kind)
            cells.append(f"{r:.2f}x ({lo:.2f}-{hi:.2f})" if math.isfinite(r) else "-")
        print(" | ".join(cells))
    print(f"wrote {path}")
    from laber.experiments.report import SUMMARY_FILE, SUMMARY_JSON, write_report

    if (args.dir / SUMMARY_FILE).is_file():  # a compare's output directory: its summary now uses the costs
        _require_or_usage(parser, "matplotlib", "the compare's plot")
        plot, summary = write_report(args.dir)
        print(f"re-made {plot} and {summary} (default plot options: laber report takes --smooth and --reference)")
        note = json.loads((args.dir / SUMMARY_JSON).read_text()).get("costs_note")
        if note:
            print(f"laber cost: warning: the summary does not use {COSTS_FILE}: {note}", file=sys.stderr)
    return 0


def _aggregate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    for d in args.dirs:
        if not (d / "compare.json").is_file():
            parser.error(f"argument DIR: {str(d)!r} holds no compare (no compare.json)")
    _require_or_usage(parser, "matplotlib", "the performance-profile plot")
    from laber.experiments.runs import OutDirError
    from laber.experiments.tasks import write_aggregate

    try:
        md, js, png = write_aggregate(args.dirs, args.out)
    except OutDirError as exc:
        parser.error(f"argument --out: {exc}")
    except (FileNotFoundError, ValueError) as exc:
        parser.error(f"argument DIR: {exc}")
    print(f"wrote {md}, {js} and {png} from {len(args.dirs)} compare directories")
    return 0


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    config = _config(parser, args, arm=args.arm, seed=args.seed)
    from laber.experiments.runs import OutDirError, check_run_dir, execute, load_run
    from laber.experiments.stats import final_return

    out = args.out if args.out is not None else Path("runs") / args.env / args.arm / f"seed{args.seed}"
    try:
        check_run_dir(out)
        path = execute(
            config,
            out,
            progress=not args.no_progress,
            tensorboard=not args.no_tensorboard,
            checkpoint_seconds=None if args.no_checkpoints else args.checkpoint_seconds,
        )
    except OutDirError as exc:  # raised before training starts
        parser.error(f"argument --out: {exc}")
    record = load_run(path)
    per_update = record.seconds_per_update
    timing = f"{per_update * 1e3:.3f} ms per update" if math.isfinite(per_update) else "no updates"
    final = final_return(record.steps, record.returns)
    print(
        f"{args.arm} seed {args.seed} on {args.env}: final return {final:.1f} (mean evaluation return over the "
        f"last 10% of the steps; last evaluation {record.returns[-1]:.1f} at step {record.steps[-1]}), "
        f"{timing}; outputs in {path}"
    )
    return 0


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    config = _config(parser, args, arm=args.arms[0], seed=args.seed_start)
    from laber.experiments.compare import compare, plan
    from laber.experiments.progress import format_duration
    from laber.experiments.runs import OutDirError

    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    try:
        plan(config, args.arms, seeds, args.out)  # --out: writable, laber's, no finished runs with other settings
    except ValueError as exc:
        parser.error(f"argument --out: {exc}")
    try:
        result = compare(
            config,
            args.arms,
            seeds,
            args.out,
            jobs=args.jobs,
            progress=not args.no_progress,
            tensorboard=not args.no_tensorboard,
            checkpoint_seconds=None if args.no_checkpoints else args.checkpoint_seconds,
        )
    except OutDirError as exc:  # --out could not be created (or changed while the compare ran)
        parser.error(f"argument --out: {exc}")
    print(
        f"trained {result['trained']} runs, kept {result['skipped']} (in {format_duration(result['seconds'])}); "
        f"wrote {result['plot']} and {result['summary']}"
    )
    return 0


def _variance(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.draws < 2 or args.population < 2:
        parser.error(f"arguments --draws and --population must be >= 2, got {args.draws} and {args.population}")
    if args.steps is None:
        args.steps = max(args.snapshots)
    elif max(args.snapshots) > args.steps:
        parser.error(f"argument --snapshots: every snapshot must be <= --steps {args.steps}, got {args.snapshots}")
    config = _config(parser, args, arm=args.arm, seed=args.seed)
    from laber.experiments.runs import OutDirError
    from laber.experiments.variance import JSON_NAME, PLOT_NAME, check_variance_dir, run_variance

    try:
        check_variance_dir(args.out)
    except OutDirError as exc:
        parser.error(f"argument --out: {exc}")

    def log(line: str) -> None:
        if not args.no_progress:
            sys.stderr.write(f"laber variance: {line}\n")
            sys.stderr.flush()

    data = run_variance(
        config,
        args.out,
        snapshots=args.snapshots,
        ms=args.ms,
        draws=args.draws,
        population=args.population,
        seed=args.measure_seed,
        log=log,
    )
    print(
        f"measured {len(data['snapshots'])} snapshots of {args.arm} on {args.env} in {data['seconds']:.0f} s; "
        f"wrote {args.out / JSON_NAME} and {args.out / PLOT_NAME}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
