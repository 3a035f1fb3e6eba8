"""The Online view: latency against offered rate, the running step live, verdicts, a capacity plan.

::

    ┌ status: candidate 2/6 · thread ×2 · batch ≤64 · delay 2 ms · step 3 at 12.0k/s ─── [p99 ms] [Start] [Stop]
    ├ latency vs offered rate (p50, p99; objective ─ line; knee │ marked) ┬ this step, live: p99 and queue depth
    ├ steps: candidate · rate · offered · achieved · p99 · verdict        ┴ plan: [target requests/s] → words
    └

It is fed the online sweep's messages by the app (``apply``), which arrive coalesced through the same
relay as the closed-loop sweep's; charts are only marked dirty there and redrawn by ``flush`` at most
twice a second, while the view is on screen.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, DataTable, Input, Label, Static

from tuner.bench.online.search import candidate_label
from tuner.tui.format import si
from tuner.tui.widgets.charts import C_MAIN, C_P50, C_P95, C_P99, C_WARM, MARKER, Chart

#: StepProgress points kept for the live chart (a step of 10 s at 4 a second).
LIVE_POINTS = 240


class OnlineCurveChart(Chart):
    """p50 and p99 against offered rate for one candidate; the objective and the knee drawn."""

    def __init__(self) -> None:
        super().__init__("latency vs offered rate", id="chart-online-curve")
        self.steps: list[Any] = []  # StepResult
        self.objective_ms: float | None = None
        self.label = ""

    def show(self, label: str, steps: list[Any], objective_ms: float | None) -> None:
        self.label = label
        self.steps = sorted(steps, key=lambda s: s.offered)
        self.objective_ms = objective_ms
        self.border_title = f"latency vs offered rate · {label}" if label else "latency vs offered rate"

    @property
    def knee(self) -> float | None:
        """The highest sustainable rate among the steps shown (the max rate at the objective)."""
        ok = [s.rate for s in self.steps if s.sustainable]
        return max(ok) if ok else None

    def draw(self) -> None:
        pts = [s for s in self.steps if s.latency_ms.get("p99") is not None]
        if not pts:
            self._empty("p50 and p99 against offered rate, one point per step")
            return
        plt = self.plt
        plt.clear_figure()
        xs = [s.offered for s in pts]
        p99 = [s.latency_ms["p99"] for s in pts]
        obj = self.objective_ms
        top = max(p99) * 1.1
        if obj is not None:
            top = max(obj * 1.3, min(top, obj * 4))  # keep the objective in view; far outliers clip
        plt.plot(xs, [s.latency_ms.get("p50", 0.0) for s in pts], color=C_P50, marker=MARKER, label="p50")
        plt.plot(xs, p99, color=C_P99, marker=MARKER, label="p99")
        ok = [s for s in pts if s.sustainable]
        if ok:
            plt.scatter([s.offered for s in ok], [s.latency_ms["p99"] for s in ok], color=C_MAIN, marker="●",
                        label="sustainable")  # fmt: skip
        if obj is not None:
            plt.hline(obj, color=C_P95)
        knee = self.knee
        if knee is not None:
            plt.vline(knee, color=C_WARM)
            plt.title(
                f"knee {si(knee)}/s · objective p99 {obj:g} ms" if obj is not None else f"knee {si(knee)}/s"
            )
        plt.ylim(0, top)
        if obj is not None:  # ticks that put the objective on its own row, labelled
            ticks = sorted({0.0, obj / 2, obj, round(top, 1)})
            plt.yticks(ticks, [f"{t:.3g}" for t in ticks])
        lo, hi = min(xs), max(xs)
        pad = (hi - lo) * 0.05 or hi * 0.1 or 1.0
        plt.xlim(max(0.0, lo - pad), hi + pad)
        ticks = [lo + (hi - lo) * i / 3 for i in range(4)] if hi > lo else [lo]
        plt.xticks(ticks, [si(t) for t in ticks])
        plt.xlabel("offered requests/s")


class OnlineLiveChart(Chart):
    """The running step: p99 over the last second (left axis, ms) and items in flight (right axis)."""

    def __init__(self) -> None:
        super().__init__("this step, live", id="chart-online-live")
        self.points: deque[Any] = deque(maxlen=LIVE_POINTS)  # StepProgress
        self.key: tuple[int, int] | None = None

    def add(self, p: Any) -> None:
        key = (p.candidate, p.step)
        if key != self.key:  # a new step: start a new trace
            self.points.clear()
            self.key = key
            self.border_title = f"step {p.step + 1} at {si(p.rate)}/s, live"
        self.points.append(p)

    def draw(self) -> None:
        pts = list(self.points)
        if not pts:
            self._empty("p99 and queue depth while a step runs")
            return
        plt = self.plt
        plt.clear_figure()
        xs = [p.t for p in pts]
        p99 = [p.p99_ms if math.isfinite(p.p99_ms) else 0.0 for p in pts]
        plt.plot(xs, p99, color=C_P99, marker=MARKER, label="p99 ms")
        plt.plot(
            xs, [float(p.queue) for p in pts], color=C_MAIN, marker=MARKER, label="in flight", yside="right"
        )
        plt.ylim(0, max(p99) * 1.15 or 1.0)
        plt.xlabel("s")


class OnlineStepsTable(DataTable[Any]):
    """One row per finished step: the candidate, the rates, the p99, the verdict."""

    def __init__(self) -> None:
        super().__init__(id="online-steps", zebra_stripes=True, cursor_type="row")
        self.border_title = "steps"

    def on_mount(self) -> None:
        self.add_columns("#", "rate/s", "offered", "achieved", "p99 ms", "verdict", "candidate")

    def add_step(self, candidate: Any, index: int, s: Any) -> None:
        c = candidate
        short = (
            f"{c.kind.short}×{c.workers} ≤{c.batch_size} {c.max_batch_delay_s * 1000:g}ms"
        )
        p99 = s.latency_ms.get("p99")
        verdict = (
            Text("✓ sustainable", style="green")
            if s.sustainable
            else Text("✗ " + "; ".join(s.reasons), style="red")
        )
        self.add_row(
            str(self.row_count + 1), si(s.rate), si(s.offered), si(s.achieved),
            f"{p99:.3g}" if p99 is not None else "–", verdict, f"c{index + 1} {short}",
        )  # fmt: skip
        self.move_cursor(row=self.row_count - 1)


class OnlinePane(Vertical):
    """Everything the online search shows (see the module docstring)."""

    def __init__(self, objective_ms: float = 50.0, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._objective = objective_ms
        self.candidates: dict[int, Any] = {}
        self.steps: dict[int, list[Any]] = {}
        self.current: int | None = None
        self.planned = 0
        self.results: list[Any] = []
        self.dirty = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="online-head"):
            yield Static("no online search yet — run a sweep (s), then Start online", id="online-status")
            yield Label("p99 ms", id="online-p99-label")
            yield Input(f"{self._objective:g}", id="online-p99", restrict=r"[0-9.]*", compact=True)
            yield Button("Start online", id="online-start", variant="success", compact=True)
            yield Button("Stop", id="online-stop", variant="error", compact=True, disabled=True)
        with Grid(id="online-charts"):
            yield OnlineCurveChart()
            yield OnlineLiveChart()
        with Horizontal(id="online-bottom"):
            yield OnlineStepsTable()
            with Vertical(id="plan-box") as box:
                box.border_title = "capacity plan"
                yield Input(
                    placeholder="plan for requests/s, e.g. 5000",
                    id="plan-rate",
                    restrict=r"[0-9.]*",
                    compact=True,
                )
                with VerticalScroll(id="plan-scroll"):
                    yield Static(
                        "the capacity plan appears here once the online search has a max rate", id="plan-text"
                    )

    # -- fed by the app, on the UI thread ----------------------------------------------------------
    def reset(self, objective_ms: float) -> None:
        self._objective = objective_ms
        self.candidates, self.steps, self.current, self.planned, self.results = {}, {}, None, 0, []
        self.query_one(OnlineStepsTable).clear()
        self.query_one(OnlineLiveChart).points.clear()
        self.query_one(OnlineCurveChart).show("", [], objective_ms)
        self.dirty = True

    def apply(self, m: Any) -> None:
        """One online message (CandidateStarted, StepProgress, StepFinished, CandidateFinished, OnlineFinished)."""
        from tuner.bench.online.messages import (
            CandidateFinished,
            CandidateStarted,
            OnlineFinished,
            StepFinished,
            StepProgress,
        )

        if isinstance(m, StepProgress):
            self.query_one(OnlineLiveChart).add(m)
            c = self.candidates.get(m.candidate)
            self.status(
                f"candidate {m.candidate + 1}/{self.planned} · {candidate_label(c) if c else ''} · step {m.step + 1} at "
                f"{si(m.rate)}/s\nlive: p50 {m.p50_ms:.3g} ms · p99 {m.p99_ms:.3g} ms · {m.queue} items in flight "
                f"· {m.done:,} of {m.sent:,} sent done"
            )
        elif isinstance(m, CandidateStarted):
            self.candidates[m.index] = m.candidate
            self.steps[m.index] = []
            self.current, self.planned = m.index, m.planned
            self.query_one(OnlineCurveChart).show(candidate_label(m.candidate), [], self._objective)
            self.status(f"candidate {m.index + 1}/{m.planned} · {candidate_label(m.candidate)} · warming up")
        elif isinstance(m, StepFinished):
            self.steps.setdefault(m.candidate, []).append(m.result)
            c = self.candidates.get(m.candidate)
            if c is not None:
                self.query_one(OnlineStepsTable).add_step(c, m.candidate, m.result)
                self.query_one(OnlineCurveChart).show(candidate_label(c), self.steps[m.candidate], self._objective)
        elif isinstance(m, CandidateFinished):
            self.results.append(m.result)
        elif isinstance(m, OnlineFinished):
            self.results = list(m.results)
            word = "stopped" if m.interrupted else "finished"
            self.status(f"online search {word}: {len(m.results)} candidates in {m.elapsed_s:.0f} s")
        self.dirty = True

    def show_outcome(self, outcome: Any) -> None:
        """The sweep's conclusion: the winner's curve, the words in the status line."""
        win = outcome.summary.winner
        if win is not None:
            self.query_one(OnlineCurveChart).show(
                candidate_label(win.candidate) + " (winner)", win.steps, self._objective
            )
        words = outcome.summary.words
        second = next(
            (w for w in words[1:] if w.strip().startswith("batch delay")), words[1] if len(words) > 1 else ""
        )
        self.status(words[0] + ("\n" + second.strip() if second else ""))
        self.dirty = True

    def status(self, text: str | Text) -> None:
        self.query_one("#online-status", Static).update(text)

    def show_plan(self, text: str | Text) -> None:
        self.query_one("#plan-text", Static).update(text)

    def set_running(self, running: bool, can_start: bool) -> None:
        self.query_one("#online-start", Button).disabled = running or not can_start
        self.query_one("#online-stop", Button).disabled = not running

    def flush(self) -> None:
        """Redraw the charts if anything changed (the app's chart timer calls it)."""
        if not self.dirty:
            return
        self.query_one(OnlineCurveChart).redraw()
        self.query_one(OnlineLiveChart).redraw()
        self.dirty = False
