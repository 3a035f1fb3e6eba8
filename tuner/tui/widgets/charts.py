"""Live charts on textual-plotext. Each chart draws on its own ``.plt`` (never the global plotext).

Data lives in bounded deques; ``redraw()`` rebuilds the figure from them and asks for one repaint.
New data only marks a chart ``dirty``; the view that holds it calls ``flush()`` from the app's chart
timer (at most twice a second, only while the view is on screen), so plotting never competes with
the workers being measured. A plotext build is the UI's biggest CPU cost.
"""

from __future__ import annotations

from collections import deque

from textual.reactive import var
from textual_plotext import PlotextPlot

from tuner.bench.types import TrialResult, WindowMeasured
from tuner.tui.format import si

CHART_INTERVAL_S = 0.5  # live charts redraw at most this often (the app's chart timer)
MAX_POINTS = 600  # ~10 min of 1 s windows; older points fall off the left
# plotext colour names that read on dark and light canvases alike.
C_MAIN, C_WARM, C_P50, C_P95, C_P99 = "cyan", "gray", "green", "orange", "red"
# "hd" (quadrant blocks) rather than braille: block elements are in every monospace font, so
# lines stay inside the frame in SVG screenshots and in terminals with narrow braille fallbacks.
MARKER = "hd"
LINE_COLORS = ("cyan", "orange", "green", "magenta", "blue", "red", "yellow")


class Chart(PlotextPlot):
    """A PlotextPlot with a title line and a placeholder while there is no data."""

    def __init__(self, title: str, *, id: str) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.dirty = False  # data changed since the last draw

    def on_mount(self) -> None:
        super().on_mount()
        self.redraw()

    def _empty(self, text: str) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.frame(False)
        plt.xticks([])
        plt.yticks([])
        plt.title(text)

    def draw(self) -> None:
        """Rebuild the figure from the data (subclasses)."""
        raise NotImplementedError

    def redraw(self) -> None:
        """Rebuild and repaint once."""
        self.draw()
        self.refresh()
        self.dirty = False

    def flush(self) -> None:
        """Redraw if the data changed since the last draw (the view's chart timer calls it)."""
        if self.dirty:
            self.redraw()


class ThroughputChart(Chart):
    """Throughput of the current trial over time; warm-up in grey, measured windows in colour."""

    phase_text: var[str] = var("")
    """What the trial is doing, as the chart's title (bound to the run view's ``phase``)."""

    def __init__(self) -> None:
        super().__init__("throughput, items/s", id="chart-throughput")
        self.points: deque[WindowMeasured] = deque(maxlen=MAX_POINTS)

    def watch_phase_text(self) -> None:
        self.dirty = True

    def reset(self, label: str) -> None:
        """A new trial begins."""
        self.points.clear()
        self.border_title = f"throughput · {label}"
        self.dirty = True

    def add(self, w: WindowMeasured) -> None:
        """One more window of the current trial."""
        self.points.append(w)
        self.dirty = True

    def draw(self) -> None:
        if not self.points:
            self._empty(self.phase_text or "waiting for the first window")
            return
        plt = self.plt
        plt.clear_figure()
        warm = [p for p in self.points if p.phase == "warmup"]
        meas = [p for p in self.points if p.phase != "warmup"]
        if warm:
            # Join the warm-up line to the first measured point so the curve reads as one.
            xs = [p.t for p in warm] + ([meas[0].t] if meas else [])
            ys = [p.throughput for p in warm] + ([meas[0].throughput] if meas else [])
            plt.plot(xs, ys, color=C_WARM, marker=MARKER, label="warm-up")
        if meas:
            plt.plot(
                [p.t for p in meas],
                [p.throughput for p in meas],
                color=C_MAIN,
                marker=MARKER,
                label="measured",
            )
        top = max(p.throughput for p in self.points)
        plt.ylim(0, top * 1.15 or 1)
        _y_si(plt, top * 1.15 or 1)
        plt.xlabel("s")
        if self.phase_text:
            plt.title(self.phase_text)


class LatencyChart(Chart):
    """p50 / p95 / p99 item latency of the current trial over time."""

    def __init__(self) -> None:
        super().__init__("latency, ms", id="chart-latency")
        self.points: deque[WindowMeasured] = deque(maxlen=MAX_POINTS)

    def reset(self) -> None:
        """A new trial begins."""
        self.points.clear()
        self.dirty = True

    def add(self, w: WindowMeasured) -> None:
        """One more window of the current trial."""
        self.points.append(w)
        self.dirty = True

    def draw(self) -> None:
        pts = [p for p in self.points if p.p99_ms > 0]
        if not pts:
            self._empty("p50 / p95 / p99 appear with the first window")
            return
        plt = self.plt
        plt.clear_figure()
        xs = [p.t for p in pts]
        plt.plot(xs, [p.p99_ms for p in pts], color=C_P99, marker=MARKER, label="p99")
        plt.plot(xs, [p.p95_ms for p in pts], color=C_P95, marker=MARKER, label="p95")
        plt.plot(xs, [p.p50_ms for p in pts], color=C_P50, marker=MARKER, label="p50")
        plt.ylim(0, max(p.p99_ms for p in pts) * 1.15)
        plt.xlabel("s")


class ComparisonChart(Chart):
    """Throughput against workers, one line per (backend, partition size), one point per config."""

    trials: var[list[TrialResult]] = var(list)
    """The sweep's finished trials (bound to the run view's ``results``)."""

    def __init__(self, id: str = "chart-compare") -> None:
        super().__init__("trials: items/s vs workers", id=id)
        self.results: list[TrialResult] = []  # the trials drawn: those that measured something

    def watch_trials(self, trials: list[TrialResult]) -> None:
        self.results = [r for r in trials if r.error is None and r.throughput > 0]
        self.dirty = True

    def draw(self) -> None:
        if not self.results:
            self._empty("one point per finished trial")
            return
        plt = self.plt
        plt.clear_figure()
        backends = {r.config.backend for r in self.results}
        series: dict[str, dict[int, float]] = {}
        for r in self.results:
            c = r.config
            name = f"p{c.partition_size}" if len(backends) == 1 else f"{c.kind.short} p{c.partition_size}"
            best = series.setdefault(name, {})
            # Several thread counts share a worker count: the line shows the best of them.
            best[c.workers] = max(best.get(c.workers, 0.0), r.throughput)
        workers = sorted({w for s in series.values() for w in s})
        for i, (name, pts) in enumerate(sorted(series.items(), key=lambda kv: _part_key(kv[0]))):
            xs = sorted(pts)
            plt.plot(
                xs, [pts[x] for x in xs], color=LINE_COLORS[i % len(LINE_COLORS)], marker="dot", label=name
            )
        plt.xticks([float(w) for w in workers], [str(w) for w in workers])
        if len(workers) == 1:
            plt.xlim(workers[0] - 1, workers[0] + 1)
        top = max(r.throughput for r in self.results) * 1.15
        plt.ylim(0, top)
        _y_si(plt, top)
        plt.xlabel("workers")


class ParetoChart(Chart):
    """Every feasible trial as p99 (x) against throughput (y); the Pareto front joined by a line."""

    def __init__(self) -> None:
        super().__init__("Pareto front: items/s vs p99 ms", id="chart-pareto")
        self.results: list[TrialResult] = []
        self.front: list[TrialResult] = []
        self.best: TrialResult | None = None

    def set_data(
        self, results: list[TrialResult], front: list[TrialResult], best: TrialResult | None
    ) -> None:
        self.results = [
            r for r in results if r.error is None and r.throughput > 0 and r.latency_ms.get("p99")
        ]
        self.front = sorted(front, key=lambda r: r.latency_ms.get("p99", 0.0))
        self.best = best

    def draw(self) -> None:
        if not self.results:
            self._empty("the Pareto front appears when trials finish")
            return
        plt = self.plt
        plt.clear_figure()
        plt.scatter(
            [r.latency_ms["p99"] for r in self.results],
            [r.throughput for r in self.results],
            color=C_WARM,
            marker="dot",
            label="trials",
        )
        if self.front:
            plt.plot(
                [r.latency_ms["p99"] for r in self.front],
                [r.throughput for r in self.front],
                color=C_MAIN,
                marker=MARKER,
                label="Pareto front",
            )
        if self.best is not None and self.best.latency_ms.get("p99"):
            plt.scatter(
                [self.best.latency_ms["p99"]],
                [self.best.throughput],
                color=C_P99,
                marker="●",
                label="recommended",
            )
        top = max(r.throughput for r in self.results) * 1.15
        plt.ylim(0, top)
        _y_si(plt, top)
        plt.xlabel("p99 ms")


def _part_key(name: str) -> tuple[str, int]:
    head, _, num = name.rpartition("p")
    return head, int(num) if num.isdigit() else 0


def _y_si(plt: object, top: float) -> None:
    """Y ticks as 12.5k rather than 12500.0 (plotext's default is hard to read)."""
    ticks = [top * i / 4 for i in range(5)]
    plt.yticks(ticks, [si(t) for t in ticks])  # type: ignore[attr-defined]
