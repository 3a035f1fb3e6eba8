"""The Online view's charts and table: latency against offered rate, the running step live, the steps.

Like every chart here, they are only marked ``dirty`` when data arrives; the Online view draws them
from the app's chart timer (at most twice a second, while the view is on screen).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

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
        """Draw ``steps`` (StepResult) of the candidate called ``label`` at the next flush."""
        self.label = label
        self.steps = sorted(steps, key=lambda s: s.offered)
        self.objective_ms = objective_ms
        self.border_title = f"latency vs offered rate · {label}" if label else "latency vs offered rate"
        self.dirty = True

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
        p50 = [s.latency_ms.get("p50", 0.0) for s in pts]
        plt.plot(xs, p50, color=C_P50, marker=MARKER, label=_visible("p50", p50, top))
        plt.plot(xs, p99, color=C_P99, marker=MARKER, label=_visible("p99", p99, top))
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
        """One live sample (StepProgress) of the running step; a new step starts a new trace."""
        key = (p.candidate, p.step)
        if key != self.key:  # a new step: start a new trace
            self.points.clear()
            self.key = key
            self.border_title = f"step {p.step + 1} at {si(p.rate)}/s, live"
        self.points.append(p)
        self.dirty = True

    def clear(self) -> None:
        """No step is running yet (a new search)."""
        self.points.clear()
        self.dirty = True

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
        """One finished step ``s`` (StepResult) of ``candidate``, the search's ``index``-th."""
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


def _visible(label: str, ys: list[float], top: float) -> str | None:
    """``label`` when a point of ``ys`` is on the chart, else None: plotext builds the legend from
    the points left after clipping, and a labelled series with none of them left raises IndexError
    in its legend code (every p99 of a search far over the objective, which clips at 4×)."""
    return label if any(y <= top for y in ys) else None
