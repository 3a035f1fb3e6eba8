"""What ``tuner bench`` prints while it measures (stderr), and how Ctrl-C stops it cleanly.

:class:`Progress` shows a sweep's and an online search's messages: a rich progress bar (trial n of
N when it can be known, configuration, phase, time left — the TUI's own rule,
:func:`tuner.bench.outlook.sweep_outlook`) and one line per finished trial, fault and online step.
:func:`cancellable` runs a stage in a worker thread so that Ctrl-C in the main thread cancels it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from tuner import fmt
from tuner.bench.online.messages import CandidateFinished, CandidateStarted, StepFinished
from tuner.bench.outlook import SweepOutlook, sweep_outlook
from tuner.bench.types import (
    EngineNote,
    SweepMessage,
    TrialFinished,
    TrialPhase,
    TrialStarted,
    WindowMeasured,
)

__all__ = ["Progress", "cancellable", "console"]

#: the width of every line tuner bench writes where no terminal says how wide it is (a log)
LOG_WIDTH = 120


def console(stderr: bool) -> Any:
    """A rich console; a file or CI log gets LOG_WIDTH columns (rich's 80 squeezes the tables)."""
    import os

    from rich.console import Console

    out = Console(stderr=stderr)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(stderr=stderr, width=LOG_WIDTH)
    return out


T = TypeVar("T")


def cancellable(stage: Callable[[threading.Event], T], console: Any, what: str) -> tuple[T | None, bool]:
    """Run ``stage(cancel)`` in a worker thread; Ctrl-C sets ``cancel`` and waits for it to stop.
    Returns (its result, interrupted); re-raises what it raised."""
    cancel = threading.Event()
    done = threading.Event()  # not Thread.is_alive/join: a Ctrl-C inside join() can leave the thread
    box: dict[str, Any] = {}  # reading as finished while it still runs (CPython 3.11)

    def target() -> None:
        try:
            box["result"] = stage(cancel)
        except BaseException as e:
            box["error"] = e
        finally:
            done.set()

    t = threading.Thread(target=target, name="tuner-stage", daemon=True)
    interrupted = False
    t.start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        interrupted = True
        cancel.set()
        console.print(f"[yellow]interrupted: stopping {what}…[/yellow]")
        done.wait(15.0)
    if "error" in box:
        raise box["error"]
    return box.get("result"), interrupted


class Progress:
    """A rich progress bar on stderr for the sweep, and lines for the online search."""

    def __init__(self, strategy: str, budget_s: float | None, max_trials: int | None = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as Bar

        self.console = console(stderr=True)
        # On a terminal a live bar; in a log (CI, a file, a pipe) plain lines only: a bar redrawn
        # into a log leaves truncated frames between the lines.
        self.live = self.console.is_terminal
        self.strategy = strategy
        self.budget_s = budget_s
        self.max_trials = max_trials
        self.progress = Bar(
            TextColumn("[bold]trial"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("left {task.fields[eta]}"),
            TextColumn("{task.description}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("starting", total=None, eta="?")
        self.t0 = time.perf_counter()
        self.durations: list[float] = []
        self.t_trial = self.t0
        self.planned = 0
        self.done = 0
        self._said_outlook = False
        self._said_busy = False  # the current trial's first discarded window was said

    def __enter__(self) -> Progress:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.progress.stop()

    def say(self, text: str, style: str | None = None) -> None:
        """One line on stderr, never wrapped (not markup: a line can name processes, and a name may
        hold "[")."""
        self.console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    def _outlook(self) -> SweepOutlook:
        return sweep_outlook(
            strategy=self.strategy,
            planned=self.planned,
            done=self.done,
            trial_s=self.durations,
            budget_s=self.budget_s,
            elapsed_s=time.perf_counter() - self.t0,
            max_trials=self.max_trials,
        )

    @staticmethod
    def _eta(o: SweepOutlook) -> str:
        if o.left_s == float("inf"):
            return "?"
        return f"{'≤ ' if o.upper_bound else ''}{o.left_s:.0f} s"

    def __call__(self, m: SweepMessage | Any) -> None:
        if isinstance(m, WindowMeasured):
            if m.discarded is not None and not self._said_busy:
                # Once per trial: the trial's end says how many windows went (an EngineNote).
                self._said_busy = True
                self.say(
                    f"  host busy: window discarded — {m.discarded}; measuring on for clean windows", "yellow"
                )
        elif isinstance(m, TrialStarted):
            self._started(m)
        elif isinstance(m, TrialPhase):
            label = self.progress.tasks[0].description.split(" — ")[0]
            self.progress.update(self.task, description=f"{label} — {m.detail}")
        elif isinstance(m, EngineNote):
            if m.level != "info" or "not shown" in m.text:
                self.say(f"  {m.text}", "dim")
        elif isinstance(m, TrialFinished):
            self._finished(m)
        else:
            self._online(m)

    def _started(self, m: TrialStarted) -> None:
        self._said_busy = False
        self.planned = m.planned
        self.t_trial = time.perf_counter()
        o = self._outlook()
        if o.outlook and not self._said_outlook:
            self.say(f"  {o.outlook}", "dim")
            self._said_outlook = True
        if not self.live:
            self.say(f"{o.trial}: {m.config.label()}")
        self.progress.update(self.task, total=o.total, description=m.config.label(), eta=self._eta(o))

    def _finished(self, m: TrialFinished) -> None:
        from tuner.bench.report import status_of

        r = m.result
        self.durations.append(time.perf_counter() - self.t_trial)
        self.done += 1
        self.say(
            f"  {r.config.label()} · {fmt.rate(r.throughput)} items/s · p99 "
            f"{fmt.ms(r.latency_ms.get('p99'))} · {status_of(r)}"
        )
        o = self._outlook()
        self.progress.update(self.task, completed=self.done, total=o.total, eta=self._eta(o))

    def _online(self, m: Any) -> None:
        from tuner.bench.online.report import step_line
        from tuner.bench.online.search import candidate_label

        if isinstance(m, CandidateStarted):
            self.say(f"online {m.index + 1}/{m.planned}: {candidate_label(m.candidate)}")
        elif isinstance(m, StepFinished):
            self.say(f"  step {m.step + 1}: {step_line(m.result)}")
        elif isinstance(m, CandidateFinished):
            r = m.result
            what = r.error or f"max {fmt.rate(r.max_rate)} requests/s at the objective ({r.stop_reason})"
            self.say(f"  → {what}")
