"""Progress of runs and compares: live bars on a terminal, plain log lines anywhere else.

Training reports through a ``Reporter`` (``start``, ``advance``, ``evaluated``, ``finish``, per run). A compare's
worker processes hold a ``QueueReporter``, which sends these events through a multiprocessing queue to the
parent process; the parent owns the only display (``open_display``) and feeds it with ``dispatch``:

* ``BarDisplay``, when the stream is a terminal and ``tqdm`` is installed (``laber[progress]``): one overall bar
  over the steps of every run to train (rate, elapsed time, ETA, runs done) and one live line per job naming the
  run it trains with its step count and last evaluation. A job's line is reused by its next run; everything is
  cleared on ``close``, so nothing is left behind between the command's own output;
* ``LogDisplay``, otherwise (a file, a pipe, no tqdm): plain lines without escape codes, one when the display
  opens, one when each run starts and finishes, and a status line at most every ``interval`` seconds (default 30)
  while runs train.
"""

from __future__ import annotations

import math
import queue
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

__all__ = [
    "BarDisplay",
    "Display",
    "LogDisplay",
    "QueueReporter",
    "Reporter",
    "RunKey",
    "dispatch",
    "drain",
    "format_duration",
    "is_terminal",
    "open_display",
]

RunKey = tuple[str, int]  # (arm, seed)

LOG_INTERVAL = 30.0  # seconds between the status lines of a LogDisplay
_REFRESH = 1.0  # seconds between forced refreshes of the bars (their clocks keep moving during evaluations)


def _label(key: RunKey) -> str:
    return f"{key[0]} seed {key[1]}"


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``; ``?`` when unknown (not finite or negative)."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Reporter(Protocol):
    """Where a run reports its progress; ``key`` is ``(arm, seed)``."""

    def start(self, key: RunKey) -> None: ...

    def advance(self, key: RunKey, steps: int) -> None: ...

    def resumed(self, key: RunKey, steps: int) -> None:
        """The run continues from a checkpoint at step ``steps``: they count as done, but not as done now (rates
        and estimated times leave them out)."""
        ...

    def evaluated(self, key: RunKey, step: int, value: float) -> None: ...

    def finish(self, key: RunKey) -> None: ...


class Display(Reporter, Protocol):
    """A ``Reporter`` that shows the progress; ``poll`` keeps it live, ``close`` ends it."""

    def poll(self) -> None: ...

    def close(self) -> None: ...


class QueueReporter:
    """A ``Reporter`` for a worker process: each event becomes a tuple on ``events`` (see ``dispatch``)."""

    def __init__(self, events: Any) -> None:
        self._events = events

    def start(self, key: RunKey) -> None:
        self._events.put(("start", key))

    def advance(self, key: RunKey, steps: int) -> None:
        self._events.put(("advance", key, int(steps)))

    def resumed(self, key: RunKey, steps: int) -> None:
        self._events.put(("resumed", key, int(steps)))

    def evaluated(self, key: RunKey, step: int, value: float) -> None:
        self._events.put(("evaluated", key, int(step), float(value)))

    def finish(self, key: RunKey) -> None:
        self._events.put(("finish", key))


def dispatch(display: Reporter, event: tuple[Any, ...]) -> None:
    """Apply one ``QueueReporter`` event to ``display``."""
    kind, key = event[0], (str(event[1][0]), int(event[1][1]))
    if kind == "start":
        display.start(key)
    elif kind == "advance":
        display.advance(key, int(event[2]))
    elif kind == "resumed":
        display.resumed(key, int(event[2]))
    elif kind == "evaluated":
        display.evaluated(key, int(event[2]), float(event[3]))
    elif kind == "finish":
        display.finish(key)
    else:  # pragma: no cover - QueueReporter sends only these
        raise ValueError(f"unknown progress event {event!r}")


def drain(events: Any, display: Reporter) -> None:
    """Apply every event waiting on ``events`` (a queue) to ``display``, without blocking."""
    while True:
        try:
            event = events.get_nowait()
        except queue.Empty:
            return
        except (EOFError, OSError):  # the queue's other end is gone (a worker died): nothing more to show
            return
        dispatch(display, event)


@dataclass
class _Run:
    done: int = 0
    started: float = 0.0
    last_eval: float | None = None


class _Tracker:
    """The bookkeeping both displays share: steps done per run, runs finished, late events ignored."""

    def __init__(self, runs: int, steps_per_run: int, clock: Callable[[], float]) -> None:
        self.runs = runs
        self.steps_per_run = steps_per_run
        self.total = runs * steps_per_run
        self.clock = clock
        self.began = clock()
        self.active: dict[RunKey, _Run] = {}
        self.finished: set[RunKey] = set()
        self.steps_done = 0
        self.resumed_steps = 0  # done before this display began (runs continued from checkpoints)

    def start(self, key: RunKey) -> _Run | None:
        if key in self.finished or key in self.active:
            return None
        run = _Run(started=self.clock())
        self.active[key] = run
        return run

    def advance(self, key: RunKey, steps: int) -> int:
        """Steps to add to the overall count (0 for a run that is not active)."""
        run = self.active.get(key)
        if run is None:
            return 0
        steps = max(0, min(steps, self.steps_per_run - run.done))
        run.done += steps
        self.steps_done += steps
        return steps

    def resume(self, key: RunKey, steps: int) -> int:
        """A run continued at step ``steps``: counted as done, left out of the rate; returns the steps added."""
        added = self.advance(key, steps)
        self.resumed_steps += added
        return added

    def finish(self, key: RunKey) -> tuple[_Run | None, int]:
        """The finished run (None when it never reported its start) and the steps it still owed the total."""
        if key in self.finished:
            return None, 0
        self.finished.add(key)
        run = self.active.pop(key, None)
        owed = self.steps_per_run - (run.done if run is not None else 0)
        self.steps_done += owed
        return run, owed

    def eta(self) -> float:
        elapsed = self.clock() - self.began
        done_now = self.steps_done - self.resumed_steps
        if done_now <= 0:
            return float("nan")
        return elapsed * (self.total - self.steps_done) / done_now


class LogDisplay:
    """Plain progress lines on ``stream`` (no escape codes): for files, pipes, and when tqdm is missing."""

    def __init__(
        self,
        title: str,
        *,
        runs: int,
        steps_per_run: int,
        jobs: int = 1,
        kept: int = 0,
        stream: TextIO | None = None,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._title = title
        self._stream = stream if stream is not None else sys.stderr
        self._interval = float(interval)
        self._t = _Tracker(runs, steps_per_run, clock)
        self._last_line = self._t.began
        if runs == 1:
            self._line(f"{steps_per_run} steps")
        else:
            kept_text = f", {kept} finished runs kept" if kept else ""
            self._line(f"{runs} runs to train{kept_text}, {min(jobs, runs)} at a time, {steps_per_run} steps each")

    def _line(self, text: str) -> None:
        self._stream.write(f"{self._title}: {text}\n")
        self._stream.flush()
        self._last_line = self._t.clock()

    def _overall(self) -> str:
        t = self._t
        percent = 100.0 * t.steps_done / t.total if t.total else 100.0
        elapsed = format_duration(t.clock() - t.began)
        return (
            f"{percent:.0f}% ({t.steps_done}/{t.total} steps), {len(t.finished)}/{t.runs} runs done, "
            f"{elapsed} elapsed, eta {format_duration(t.eta())}"
        )

    def start(self, key: RunKey) -> None:
        if self._t.start(key) is not None and self._t.runs > 1:
            self._line(f"start {_label(key)}")

    def advance(self, key: RunKey, steps: int) -> None:
        self._t.advance(key, steps)
        self.poll()

    def resumed(self, key: RunKey, steps: int) -> None:
        if self._t.resume(key, steps):
            self._line(f"{_label(key) + ' ' if self._t.runs > 1 else ''}resumed at step {steps}")

    def evaluated(self, key: RunKey, step: int, value: float) -> None:
        run = self._t.active.get(key)
        if run is not None:
            run.last_eval = value

    def finish(self, key: RunKey) -> None:
        if key in self._t.finished:
            return
        run, _ = self._t.finish(key)
        took = format_duration(self._t.clock() - run.started) if run is not None else "?"
        last = f", last evaluation {run.last_eval:.1f}" if run is not None and run.last_eval is not None else ""
        if self._t.runs == 1:
            self._line(f"done in {took}{last}")
        else:
            self._line(f"done {_label(key)} in {took}{last}; {self._overall()}")

    def poll(self) -> None:
        if self._t.clock() - self._last_line < self._interval or not self._t.active:
            return
        if self._t.runs == 1:
            run = next(iter(self._t.active.values()))
            ev = f", last evaluation {run.last_eval:.1f}" if run.last_eval is not None else ""
            elapsed = format_duration(self._t.clock() - self._t.began)
            self._line(
                f"{run.done}/{self._t.steps_per_run} steps{ev}, {elapsed} elapsed, eta {format_duration(self._t.eta())}"
            )
            return
        running = []
        for key, run in self._t.active.items():
            ev = f" (eval {run.last_eval:.1f})" if run.last_eval is not None else ""
            running.append(f"{_label(key)} at {run.done}/{self._t.steps_per_run}{ev}")
        self._line(f"{self._overall()}; running {', '.join(running)}")

    def close(self) -> None:
        self._stream.flush()


class BarDisplay:
    """Live tqdm bars on a terminal: an overall bar (when there is more than one run) and one line per job."""

    _IDLE = "{desc}"
    _RUN = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]"  # no rate: the overall bar has it

    def __init__(
        self,
        title: str,
        *,
        runs: int,
        steps_per_run: int,
        jobs: int = 1,
        kept: int = 0,
        stream: TextIO | None = None,
        tqdm: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if tqdm is None:
            from tqdm import tqdm as tqdm_cls  # laber[progress]

            tqdm = tqdm_cls
        self._stream = stream if stream is not None else sys.stderr
        self._t = _Tracker(runs, steps_per_run, clock)
        self._kept = kept
        self._last_refresh = self._t.began
        common: dict[str, Any] = {"file": self._stream, "leave": False, "dynamic_ncols": True, "mininterval": 0.2}
        self._overall: Any = None
        self._lines: list[Any] = []
        self._slot: dict[RunKey, int] = {}
        position = 0
        if runs > 1:
            self._overall = tqdm(
                total=self._t.total,
                desc=title,
                unit="step",
                unit_scale=True,
                smoothing=0.05,
                position=0,
                postfix=self._postfix(),
                **common,
            )
            position = 1
        for k in range(min(jobs, runs)):
            bar = tqdm(
                total=steps_per_run,
                desc=f"job {k + 1}: waiting",
                unit="step",
                position=position + k,
                bar_format=self._IDLE,
                **common,
            )
            self._lines.append(bar)
        self._title = title

    def _postfix(self) -> str:
        kept = f", {self._kept} kept" if self._kept else ""
        return f"runs {len(self._t.finished)}/{self._t.runs} done{kept}"

    def _overall_postfix(self) -> None:
        if self._overall is not None:
            self._overall.set_postfix_str(self._postfix(), refresh=False)

    def start(self, key: RunKey) -> None:
        if self._t.start(key) is None:
            return
        used = set(self._slot.values())
        free = next((k for k in range(len(self._lines)) if k not in used), None)
        if free is None:
            return
        self._slot[key] = free
        bar = self._lines[free]
        bar.bar_format = self._RUN if self._overall is not None else None  # one run alone: with its rate
        bar.set_description_str(_label(key) if self._overall is not None else self._title, refresh=False)
        bar.set_postfix_str("", refresh=False)
        bar.reset(total=self._t.steps_per_run)  # redraws

    def advance(self, key: RunKey, steps: int) -> None:
        added = self._t.advance(key, steps)
        if not added:
            return
        slot = self._slot.get(key)
        if slot is not None:
            self._lines[slot].update(added)
        if self._overall is not None:
            self._overall.update(added)
        self.poll()

    def resumed(self, key: RunKey, steps: int) -> None:
        added = self._t.resume(key, steps)
        if not added:
            return
        slot = self._slot.get(key)
        bars = ([self._lines[slot]] if slot is not None else []) + (
            [self._overall] if self._overall is not None else []
        )
        for bar in bars:  # moved forward without a rate: tqdm's rate counts from `initial` and the last print
            bar.n += added
            bar.initial += added
            bar.last_print_n += added
            bar.refresh()
        self.poll()

    def evaluated(self, key: RunKey, step: int, value: float) -> None:
        run = self._t.active.get(key)
        if run is None:
            return
        run.last_eval = value
        slot = self._slot.get(key)
        if slot is not None:
            self._lines[slot].set_postfix_str(f"eval {value:.1f}", refresh=False)

    def finish(self, key: RunKey) -> None:
        _, owed = self._t.finish(key)
        slot = self._slot.pop(key, None)
        if slot is not None:
            bar = self._lines[slot]
            bar.bar_format = self._IDLE
            bar.set_description_str(f"job {slot + 1}: idle", refresh=False)
            bar.refresh()
        if self._overall is not None:
            self._overall_postfix()
            if owed:
                self._overall.update(owed)
            self._overall.refresh()

    def poll(self) -> None:
        now = self._t.clock()
        if now - self._last_refresh < _REFRESH:
            return
        self._last_refresh = now
        if self._overall is not None:
            self._overall.refresh()
        for slot in self._slot.values():
            self._lines[slot].refresh()

    def close(self) -> None:
        for bar in reversed(self._lines):
            bar.close()
        if self._overall is not None:
            self._overall.close()
        self._lines = []
        self._overall = None


def _has_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401
    except ImportError:
        return False
    return True


def is_terminal(stream: TextIO) -> bool:
    """Whether ``stream`` is an interactive terminal (where bars may move the cursor)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):
        return False


def open_display(
    title: str,
    *,
    runs: int,
    steps_per_run: int,
    jobs: int = 1,
    kept: int = 0,
    stream: TextIO | None = None,
    bars: bool | None = None,
    interval: float = LOG_INTERVAL,
) -> Display:
    """The display for ``runs`` runs of ``steps_per_run`` steps, ``jobs`` at a time, on ``stream`` (stderr).

    ``bars=None`` picks ``BarDisplay`` when ``stream`` is a terminal and tqdm is installed, ``LogDisplay``
    otherwise; ``True`` or ``False`` forces one (``True`` still falls back to lines without tqdm).
    """
    out = stream if stream is not None else sys.stderr
    use_bars = is_terminal(out) if bars is None else bars
    if use_bars and _has_tqdm():
        return BarDisplay(title, runs=runs, steps_per_run=steps_per_run, jobs=jobs, kept=kept, stream=out)
    return LogDisplay(
        title, runs=runs, steps_per_run=steps_per_run, jobs=jobs, kept=kept, stream=out, interval=interval
    )
