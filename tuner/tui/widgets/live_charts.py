"""The Live view's charts: a running server's figures, scrape by scrape, against its profile's promise.

Each keeps the figures of the last :data:`LIVE_POINTS` scrapes (a bounded deque) and, like every
chart here, is only marked ``dirty`` when a scrape arrives; the view draws it from the app's chart
timer. The x axis is seconds since watching began.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import Any

from tuner.serve.scrape import Figures
from tuner.tui.format import si
from tuner.tui.widgets.charts import C_MAIN, C_P50, C_P95, C_P99, C_WARM, MARKER, Chart, _y_si
from tuner.tui.widgets.online_charts import _visible

#: scrapes kept: 5 minutes at one a second
LIVE_POINTS = 300
#: live (rate, p99) points drawn over the profile's curve: the last minute
CURVE_POINTS = 60
C_WORKERS, C_ERR = "magenta", "red"


class LiveChart(Chart):
    """A chart of the last scrapes' figures; x is seconds since ``t0`` (the first scrape)."""

    def __init__(self, title: str, *, id: str, maxlen: int = LIVE_POINTS) -> None:
        super().__init__(title, id=id)
        self.points: deque[Figures] = deque(maxlen=maxlen)
        self.t0: float | None = None

    def add(self, f: Figures) -> None:
        """The figures of one more scrape."""
        if self.t0 is None:
            self.t0 = f.t
        self.points.append(f)
        self.dirty = True

    def xs(self, pts: list[Figures]) -> list[float]:
        t0 = self.t0 or 0.0
        return [p.t - t0 for p in pts]


class LiveRateChart(LiveChart):
    """Requests/s answered (every outcome), errors/s, and the profile's max rate within its objective."""

    def __init__(self) -> None:
        super().__init__("requests/s", id="chart-live-rate")

    def draw(self) -> None:
        pts = [p for p in self.points if p.request_rate is not None]
        if not pts:
            self._empty("requests/s appear from the second scrape")
            return
        plt = self.plt
        plt.clear_figure()
        xs = self.xs(pts)
        rates = [p.request_rate or 0.0 for p in pts]
        plt.plot(xs, rates, color=C_MAIN, marker=MARKER, label="requests/s")
        errors = [p.error_rate or 0.0 for p in pts]
        if any(errors):
            plt.plot(xs, errors, color=C_ERR, marker=MARKER, label="errors/s")
        promise = pts[-1].max_rate
        top = max(rates) * 1.15 or 1.0
        if promise is not None:
            plt.hline(promise, color=C_P95)  # the promise stays in view: how far below it the service runs
            top = max(top, promise * 1.3)
            plt.title(f"promise {si(promise)}/s within the objective")
            _line_ticks(plt, promise, top, si)
        else:
            _y_si(plt, top)
        plt.ylim(0, top)
        plt.xlabel("s")


class LiveLatencyChart(LiveChart):
    """p50 and p99 item latency per scrape interval (from the histogram's bucket deltas); the objective."""

    def __init__(self) -> None:
        super().__init__("item latency, ms", id="chart-live-latency")

    def draw(self) -> None:
        pts = [p for p in self.points if p.p99_ms is not None]
        objective = self.points[-1].objective_ms if self.points else None
        if not pts:
            self._empty("p50 / p99 appear once items complete")
            return
        plt = self.plt
        plt.clear_figure()
        xs = self.xs(pts)
        p99 = [p.p99_ms or 0.0 for p in pts]
        p50 = [p.p50_ms or 0.0 for p in pts]
        top = max(p99) * 1.15 or 1.0
        if objective is not None:
            top = max(objective * 1.3, min(top, objective * 4))  # keep the objective in view; outliers clip
        # p50 first: where they meet, the p99 (what the objective is about) is drawn on top
        plt.plot(xs, p50, color=C_P50, marker=MARKER, label=_visible("p50", p50, top))
        plt.plot(xs, p99, color=C_P99, marker=MARKER, label=_visible("p99", p99, top))
        if objective is not None:
            plt.hline(objective, color=C_P95)
            plt.title(f"objective p99 {objective:g} ms")
            _line_ticks(plt, objective, top)
        plt.ylim(0, top)
        plt.xlabel("s")


class LiveLoadChart(LiveChart):
    """Items in flight (left axis) and workers loaded (right axis); a grey line at each autoscale decision."""

    def __init__(self) -> None:
        super().__init__("in flight · workers", id="chart-live-load")

    def draw(self) -> None:
        pts = [p for p in self.points if p.in_flight is not None]
        if not pts:
            self._empty("items in flight and workers, every scrape")
            return
        plt = self.plt
        plt.clear_figure()
        xs = self.xs(pts)
        flight = [p.in_flight or 0.0 for p in pts]
        plt.plot(xs, flight, color=C_MAIN, marker=MARKER, label="in flight")
        workers = [p.workers or 0.0 for p in pts]
        plt.plot(xs, workers, color=C_WORKERS, marker=MARKER, label="workers", yside="right")
        for x, (a, b) in zip(xs[1:], pairwise(pts), strict=True):
            if (b.scale_ups, b.scale_downs) != (a.scale_ups, a.scale_downs):
                plt.vline(x, color=C_WARM)
        plt.ylim(0, max(flight) * 1.2 or 1.0)
        hi = max(max(workers), max((p.workers_target or 0.0) for p in pts))
        plt.ylim(0, hi + 1, yside="right")  # type: ignore[arg-type]
        plt.xlabel("s")


class LivePromiseChart(LiveChart):
    """The profile's measured curve (p99 against request rate, its CI as a band, the objective, the
    max rate) with the last minute's live points on it: where the service runs on its own curve."""

    def __init__(self) -> None:
        super().__init__("p99 vs requests/s: profile and now", id="chart-live-curve", maxlen=CURVE_POINTS)
        self.curve: list[dict[str, Any]] = []
        self.objective_ms: float | None = None
        self.max_rate: float | None = None

    def set_profile(self, online: dict[str, Any] | None) -> None:
        """The profile document's ``online`` section (None: the profile has none)."""
        online = online or {}
        self.curve = sorted(
            (s for s in online.get("curve") or [] if s.get("p99_ms") is not None), key=lambda s: s["rate"]
        )
        self.objective_ms = online.get("objective_p99_ms")
        self.max_rate = online.get("max_rate_at_slo")
        self.dirty = True

    def draw(self) -> None:
        live = [p for p in self.points if p.request_rate is not None and p.p99_ms is not None]
        if not self.curve and not live:
            self._empty("the profile has no online curve (tuner bench --online measures one)")
            return
        plt = self.plt
        plt.clear_figure()
        obj = self.objective_ms
        rates = [s["rate"] for s in self.curve]
        p99 = [s["p99_ms"] for s in self.curve]
        lows = [(s.get("p99_ci_ms") or [v, v])[0] for s, v in zip(self.curve, p99, strict=True)]
        highs = [(s.get("p99_ci_ms") or [v, v])[1] for s, v in zip(self.curve, p99, strict=True)]
        lx = [p.request_rate or 0.0 for p in live]
        ly = [p.p99_ms or 0.0 for p in live]
        top = max([*highs, *ly, obj or 0.0]) * 1.15 or 1.0
        if obj is not None:
            top = max(obj * 1.3, min(top, obj * 4))  # keep the objective in view; far outliers clip
        if self.curve:
            plt.plot(rates, highs, color=C_WARM, marker=MARKER, label=_visible("profile p99 CI", highs, top))
            plt.plot(rates, lows, color=C_WARM, marker=MARKER)
            plt.plot(rates, p99, color=C_P99, marker=MARKER, label=_visible("profile p99", p99, top))
        if live:
            plt.scatter(lx, ly, color=C_MAIN, marker="dot", label=_visible("now", ly, top))
            plt.scatter(lx[-1:], ly[-1:], color=C_MAIN, marker="●")
        if obj is not None:
            plt.hline(obj, color=C_P95)
            _line_ticks(plt, obj, top)
        if self.max_rate:
            plt.vline(self.max_rate, color=C_P95)
        plt.ylim(0, top)
        hi = max([*rates, *lx, self.max_rate or 0.0]) * 1.05 or 1.0
        plt.xlim(0, hi)
        ticks = [hi * i / 3 for i in range(4)]
        plt.xticks(ticks, [si(t) for t in ticks])
        plt.xlabel("requests/s")


def _line_ticks(plt: Any, line: float, top: float, fmt: Any = None) -> None:
    """Y ticks that put a horizontal line (the objective, the promise) on a labelled row of its own:
    on a chart a few rows high, evenly spaced ticks leave it between two labels."""
    ticks = sorted({0.0, line / 2, line, top})
    plt.yticks(ticks, [fmt(t) if fmt else f"{t:.3g}" for t in ticks])
