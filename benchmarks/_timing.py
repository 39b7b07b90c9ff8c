"""Timing and reporting helpers shared by the benchmark scripts (not part of the package, not tests).

The machine is shared and noisy, so every comparison is made inside one run: the implementations of a table are
timed round-robin (round ``r`` of every implementation, then round ``r + 1``, with the order rotated each round
so no implementation always runs first), and a ratio is taken *per round*, between calls that ran at the same
time. Each table reports, over the rounds:

* the median time per call of each implementation (microseconds), and
* for each laber row and each peer, the median ratio and its interquartile range ``[q1, q3]``.

A speed-up is ``peer time / laber time`` (above 1x: laber is faster); a cost is ``time / reference time``.

``REPORT`` collects the tables (and figures) as markdown: ``benchmarks/run.py --write docs/benchmarks.md``
writes them with the machine's description (``machine()``); run on its own, a script prints them only.
``--quick`` (``QUICK``) shrinks every benchmark to a smoke test: a few rounds of a few calls, small sizes.
"""

from __future__ import annotations

import gc
import importlib
import importlib.metadata
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

QUICK = "--quick" in sys.argv

Fns = dict[str, Callable[[], object]]


def scaled(full: int, quick: int) -> int:
    """``full`` normally, ``quick`` under ``--quick``."""
    return quick if QUICK else full


# Peers a quick run times (the others import slowly: jax, Tianshou and TorchRL take seconds each to import and
# compile); LABER_BENCH_ALL_PEERS=1 times every installed peer in a quick run too.
QUICK_PEERS = frozenset({"cpprb"})


def wanted(peer: str) -> bool:
    """Whether to time ``peer`` (a distribution name such as ``"cpprb"`` or ``"torchrl"``) in this run."""
    return not QUICK or peer in QUICK_PEERS or os.environ.get("LABER_BENCH_ALL_PEERS", "") == "1"


def peer_name(package: str, label: str | None = None) -> str:
    """``"TorchRL 0.14.1"``: a peer's label and installed version."""
    return f"{label or package} {version(package) or '?'}"


# ----------------------------------------------------------------------------------------------- measuring
@dataclass
class Timing:
    """Per-round times (microseconds per call) of implementations timed round-robin in one run."""

    rounds: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        return float(np.median(self.rounds[name]))

    def best(self, name: str) -> float:
        return min(self.rounds[name])

    def ratios(self, numerator: str, denominator: str) -> list[float]:
        """``numerator / denominator`` round by round (both timed in the same round)."""
        return [a / b for a, b in zip(self.rounds[numerator], self.rounds[denominator], strict=True)]

    def __contains__(self, name: object) -> bool:
        return name in self.rounds


def _round(fn: Callable[[], object], number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number * 1e6


def _calibrate(fns: Fns, round_ms: float) -> int:
    """Calls per round so that the slowest function's round takes about ``round_ms``."""
    slowest = max(_round(fn, 3) for fn in fns.values())
    return int(min(max(round_ms * 1e3 / max(slowest, 1e-3), 1), 2000))


def measure(fns: Fns, *, number: int | None = 200, repeat: int = 15, round_ms: float = 5.0) -> Timing:
    """Time every function ``repeat`` rounds of ``number`` calls, round-robin, garbage collector off.

    ``number=None``: as many calls as make the slowest function's round last about ``round_ms``. Under
    ``--quick``: at most 3 rounds of at most 5 calls.
    """
    for fn in fns.values():
        fn()  # warm up caches, lazy initialisation, compilation
    if number is None:
        number = _calibrate(fns, round_ms)
    if QUICK:
        number, repeat = min(number, 5), min(repeat, 3)
    names = list(fns)
    out = Timing({name: [] for name in names})
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(repeat):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                out.rounds[name].append(_round(fns[name], number))
    finally:
        if gc_was_enabled:
            gc.enable()
    return out


def interleaved(fns: Fns, *, number: int = 200, repeat: int = 9) -> dict[str, float]:
    """The fastest round of each function (``measure``), in microseconds per call."""
    timing = measure(fns, number=number, repeat=repeat)
    return {name: timing.best(name) for name in fns}


def best_us(fn: Callable[[], object], *, number: int = 200, repeat: int = 7) -> float:
    """Fastest over ``repeat`` rounds of the mean time of ``number`` calls, in microseconds."""
    return interleaved({"fn": fn}, number=number, repeat=repeat)["fn"]


# ----------------------------------------------------------------------------------------------- summaries
def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """Median, first and third quartile."""
    q1, med, q3 = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(med), float(q1), float(q3)


def fmt_ratio(values: Sequence[float]) -> str:
    """``"6.52x [6.31, 6.70]"``: the median ratio and its interquartile range."""
    med, q1, q3 = spread(values)
    return f"{med:.2f}x [{q1:.2f}, {q3:.2f}]"


def fmt_us(us: float) -> str:
    if us >= 1e5:
        return f"{us / 1e3:,.0f} ms"
    if us >= 1e4:
        return f"{us / 1e3:.1f} ms"
    return f"{us:.1f}" if us >= 10 else f"{us:.2f}"


# ----------------------------------------------------------------------------------------------- the report
class Report:
    """Markdown sections collected from the benchmarks of one run (``run.py --write`` saves them)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.figures_dir: str | None = None  # set by run.py --figures; figures are drawn only when set
        self.headlines: dict[str, float] = {}  # label -> value: the numbers kept across runs (run.py --write)

    def headline(self, label: str, value: float) -> None:
        """A number worth comparing across runs (the README quotes their ranges): a ratio or a time."""
        self.headlines[label] = float(value)

    def ratio_headline(self, label: str, timing: Timing, numerator: str, denominator: str) -> None:
        """The median over the rounds of ``numerator / denominator``, if both were timed."""
        if numerator in timing and denominator in timing:
            self.headline(label, spread(timing.ratios(numerator, denominator))[0])

    def section(self, title: str, text: str = "") -> None:
        print(f"\n=== {title}")
        self.parts.append(f"## {title}\n\n{text.strip()}\n" if text else f"## {title}\n")

    def text(self, text: str) -> None:
        print(text)
        self.parts.append(text.strip() + "\n")

    def figure(self, filename: str, caption: str) -> None:
        self.parts.append(f"![{caption}](figures/{filename})\n\n*{caption}*\n")

    def table(
        self,
        title: str,
        timing: Timing,
        ours: Sequence[str],
        refs: Sequence[str] = (),
        *,
        kind: str = "speed-up",
        note: str = "",
    ) -> None:
        """One table: the median time of every row, and for each row of ``ours`` its ratio to each of ``refs``.

        ``kind="speed-up"``: ``ref time / row time`` (the peers are ``refs``); ``kind="cost"``: ``row time / ref
        time`` (e.g. with a lock / without). Rows missing from ``timing`` (a peer that did not load) are skipped.
        """
        ours = [name for name in ours if name in timing]
        refs = [name for name in refs if name in timing]
        rows = ours + [name for name in refs if name not in ours]
        rows += [name for name in timing.rounds if name not in rows]
        n_rounds = len(next(iter(timing.rounds.values()))) if timing.rounds else 0
        label = "speed-up vs" if kind == "speed-up" else "time /"
        header = ["implementation", "us per call: median (fastest round)"] + [f"{label} {ref}" for ref in refs]
        lines = [
            f"**{title}** ({n_rounds} rounds)",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        print(f"\n{title} ({n_rounds} rounds)")
        print(f"  {'implementation':<52}{'us/call (best)':>18}   " + "   ".join(header[2:]))
        for name in rows:
            cells = [name, f"{fmt_us(timing.median(name))} ({fmt_us(timing.best(name))})"]
            for ref in refs:
                if name == ref or name not in ours:
                    cells.append("")
                elif kind == "speed-up":
                    cells.append(fmt_ratio(timing.ratios(ref, name)))
                else:
                    cells.append(fmt_ratio(timing.ratios(name, ref)))
            bold = name in ours and kind == "speed-up"
            md_cells = [f"**{cells[0]}**" if bold else cells[0], *cells[1:]]
            lines.append("| " + " | ".join(md_cells) + " |")
            print(f"  {cells[0]:<52}{cells[1]:>18}   " + "   ".join(c for c in cells[2:] if c))
        if note:
            lines += ["", note.strip()]
        self.parts.append("\n".join(lines) + "\n")

    def markdown(self) -> str:
        return "\n".join(self.parts)


REPORT = Report()


# ----------------------------------------------------------------------------------------------- the machine
PACKAGES = (
    "laber",
    "numpy",
    "numba",
    "torch",
    "cpprb",
    "torchrl",
    "tensordict",
    "stable-baselines3",
    "tianshou",
    "flashbax",
    "jax",
    "gymnasium",
)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def version(package: str) -> str | None:
    """The installed version of ``package`` (a distribution name), or None."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine() -> list[tuple[str, str]]:
    """What the numbers were measured on: CPU model, cores, memory, load, Python and library versions."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    rows = [
        ("CPU", _cpu_model()),
        ("cores", f"{cores} logical ({usable} usable by this process)"),
        ("memory", _memory_gib()),
        ("load average (1, 5, 15 min)", ", ".join(f"{x:.2f}" for x in load)),
        ("OS", f"{platform.system()} {platform.release()}"),
        ("Python", platform.python_version()),
    ]
    for package in PACKAGES:
        rows.append((package, version(package) or "not installed"))
    try:
        torch = importlib.import_module("torch")
        rows.append(("torch threads (default; the torch benchmarks set 1)", str(torch.get_num_threads())))
        cuda = torch.cuda.is_available()
        rows.append(("CUDA", torch.cuda.get_device_name(0) if cuda else "none"))
    except ImportError:
        pass
    return rows
