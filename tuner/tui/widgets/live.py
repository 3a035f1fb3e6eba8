"""The Live view: a running ``tuner serve`` watched against its profile's promise (``tuner watch URL``).

::

    ┌ ● ready · http://127.0.0.1:8000 · builtin:mlp · thread ×2 · profile mlp.yaml
    │ 412 requests/s (promise 12.8k/s) · p50 3.1 ms · p99 8.2 ms (objective 20 ms) · 12 in flight · …
    ├ requests/s ─ promise line          ┬ p50 / p99 ─ objective line
    ├ in flight · workers │ autoscale    ┴ p99 vs requests/s: the profile's curve and band, now
    └ drift from the profile · outside load · autoscale   ┴ events

    on_mount ─► @work(thread) _watch: every second scrape() ─► LiveScraped | LiveFailed ─► apply / failed
                (tuner.serve.scrape.Scraper: GET /v1/profile once, GET /metrics each time; never on the UI thread)

The worker is the only place that talks HTTP; widgets change only in the message handlers on the
UI thread, and the charts are only marked dirty there and drawn by ``flush`` (the app's chart
timer). A scrape that fails says so in one line at the top and in the event log (once, not every
second) and the worker tries again a second later; the charts keep what they had. Quitting stops
the worker: the server is only read, never stopped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import Static

from tuner.serve.scrape import Figures, WatchError
from tuner.tui.format import si
from tuner.tui.messages import LiveFailed, LiveScraped
from tuner.tui.widgets.charts import Chart
from tuner.tui.widgets.events import EventLog
from tuner.tui.widgets.hostbar import outside_bar
from tuner.tui.widgets.live_charts import (
    LiveChart,
    LiveLatencyChart,
    LiveLoadChart,
    LivePromiseChart,
    LiveRateChart,
)

__all__ = ["SCRAPE_INTERVAL_S", "LivePane"]

#: one scrape a second
SCRAPE_INTERVAL_S = 1.0
DRIFT_WORDS = {
    "service_time": "service time",
    "p99": "p99 at this rate",
    "throughput": "throughput saturated",
    "host": "host (outside load)",
}


class LivePane(Vertical):
    """Everything ``tuner watch`` shows, and the worker that scrapes (see the module docstring)."""

    def __init__(
        self,
        url: str,
        scrape: Callable[[], tuple[Figures, dict[str, Any]]],
        *,
        clock: Callable[[], float] = time.time,
        interval_s: float = SCRAPE_INTERVAL_S,
        id: str | None = None,
    ) -> None:
        """``scrape`` is called in a thread once every ``interval_s``; ``clock`` stamps the log (wall time)."""
        super().__init__(id=id)
        self.url = url
        self._scrape = scrape
        self._clock = clock
        self._interval = interval_s
        self._cancel = threading.Event()
        self.figures: Figures | None = None  # the latest scrape's
        self.profile: dict[str, Any] | None = None  # the server's /v1/profile document
        self.error: str | None = None  # what the latest scrape said instead of figures
        self.scrapes = 0  # scrapes that gave figures
        self.failures = 0  # scrapes that did not
        self.drift_since: dict[
            str, tuple[float, bool]
        ] = {}  # dimension → (wall time, seen at the first scrape)
        self._last_ok: float | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"connecting to {self.url}…", style="dim"), id="live-status")
        with Grid(id="live-charts"):
            yield LiveRateChart()
            yield LiveLatencyChart()
            yield LiveLoadChart()
            yield LivePromiseChart()
        with Horizontal(id="live-bottom"):
            yield Static("", id="live-drift")
            yield EventLog(self._clock)

    def on_mount(self) -> None:
        self._status = self.query_one("#live-status", Static)
        self._drift = self.query_one("#live-drift", Static)
        self._drift.border_title = "drift from the profile"
        self._charts = list(self.query(LiveChart))
        self._curve = self.query_one(LivePromiseChart)
        self._events = self.query_one(EventLog)
        self._events.add(Text(f"watching {self.url}: /metrics every {self._interval:g} s"))
        self._watch(self._cancel)

    def on_unmount(self) -> None:
        self._cancel.set()

    def stop(self) -> None:
        """Stop scraping (the worker ends within a second; the server is not touched)."""
        self._cancel.set()

    # -- the worker ----------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="watch")
    def _watch(self, cancel: threading.Event) -> None:
        """Scrape every interval until cancelled; each answer is one message to the UI thread."""
        while not cancel.is_set():
            t = time.monotonic()
            try:
                found, doc = self._scrape()
                msg: Any = LiveScraped(found, doc)
            except WatchError as e:
                msg = LiveFailed(str(e))
            except Exception as e:  # never let a bug end the watch silently
                msg = LiveFailed(f"{type(e).__name__}: {e}")
            if cancel.is_set():
                return
            self.post_message(msg)
            cancel.wait(max(0.05, self._interval - (time.monotonic() - t)))

    # -- what the worker says (UI thread) ------------------------------------------------------------
    def on_live_scraped(self, msg: LiveScraped) -> None:
        msg.stop()
        f, doc = msg.figures, msg.profile
        if self.error is not None or self.scrapes == 0 or doc is not self.profile:
            self._connected(doc)
        prev = self.figures
        self.figures, self.error = f, None
        self.scrapes += 1
        self._last_ok = self._clock()
        for chart in self._charts:
            chart.add(f)
        self._log_changes(prev, f)
        self._status.update(self.status_text())
        self._drift.update(self.drift_text())

    def on_live_failed(self, msg: LiveFailed) -> None:
        msg.stop()
        self.failures += 1
        if msg.text != self.error:
            self._events.add(Text("✗ " + msg.text, style="bold red"))
        self.error = msg.text
        self._status.update(self.status_text())

    def _connected(self, doc: dict[str, Any]) -> None:
        again = self.error is not None and self.scrapes > 0
        self.profile = doc
        self._curve.set_profile(doc.get("online"))
        self._events.add(
            Text(("reachable again: " if again else "connected: ") + self.describe(), style="green")
        )

    def _log_changes(self, prev: Figures | None, f: Figures) -> None:
        now = self._clock()
        first = prev is None and self.scrapes == 1
        for dim in f.drifting:
            if dim not in self.drift_since:
                self.drift_since[dim] = (now, first)
                when = "already drifting when watching began" if first else "detected"
                self._events.add(Text(f"drift: {DRIFT_WORDS.get(dim, dim)} — {when}", style="bold yellow"))
        for dim in list(self.drift_since):
            if not f.drift.get(dim, False):
                since, _ = self.drift_since.pop(dim)
                self._events.add(
                    Text(
                        f"drift over: {DRIFT_WORDS.get(dim, dim)} as profiled again after {_ago(now - since)}",
                        style="green",
                    )
                )
        if (
            prev is not None
            and prev.workers is not None
            and f.workers is not None
            and prev.workers != f.workers
        ):
            self._events.add(Text(f"workers {prev.workers:.0f} → {f.workers:.0f}"))
        if prev is not None and (f.scale_ups, f.scale_downs) != (prev.scale_ups, prev.scale_downs):
            up, down = f.scale_ups - prev.scale_ups, f.scale_downs - prev.scale_downs
            said = " · ".join(
                w for w in (f"{up:.0f} up" if up > 0 else "", f"{down:.0f} down" if down > 0 else "") if w
            )
            self._events.add(
                Text(f"autoscaler: {said or 'counters reset'} (target {f.workers_target or 0:.0f})")
            )
        if prev is not None and prev.ready is not None and f.ready is not None and prev.ready != f.ready:
            said = "ready" if f.ready else "not ready (starting or draining)"
            self._events.add(Text(said, style="green" if f.ready else "yellow"))

    # -- words -----------------------------------------------------------------------------------------
    def describe(self) -> str:
        """The server in one line: its URL, model, deployment and profile."""
        doc = self.profile or {}
        rec = doc.get("recommended") or {}
        model = str((doc.get("model") or {}).get("spec", "?"))
        model = model.replace("\\", "/").rsplit("/", 1)[-1]  # a file spec's folder is noise here
        deploy = f"{rec.get('backend', '?')} ×{rec.get('workers', '?')}"
        if rec.get("partition_size"):
            deploy += f" · partition {rec['partition_size']}"
        about = doc.get("profile") or {}
        name = str(about.get("path") or about.get("name") or "?").replace("\\", "/").rsplit("/", 1)[-1]
        return f"{self.url} · {model} · {deploy} · profile {name}"

    def status_text(self) -> Text:
        """The two lines at the top: the server and its state; the figures now against the promise."""
        f = self.figures
        if self.error is not None:
            t = Text()
            t.append("✗ " + self.error, style="bold red")
            t.append(" — retrying every second", style="red")
            t.append("\n")
            if self._last_ok is not None:
                stamp = time.strftime("%H:%M:%S", time.localtime(self._last_ok))
                t.append(f"last figures at {stamp}; the charts hold what was seen until then", style="dim")
            else:
                t.append("no figures yet", style="dim")
            return t
        if f is None:
            return Text(f"connecting to {self.url}…", style="dim")
        ready = f.ready is not False
        t = Text()
        # separators end the styled span before them (an SVG screenshot drops a span's leading space)
        t.append("● ready " if ready else "◌ not ready ", style="bold green" if ready else "bold yellow")
        t.append("· " + self.describe())
        t.append("\n")
        t.append_text(figures_line(f))
        return t

    def drift_text(self) -> Text:
        """Each drift dimension (✓ as profiled, ✗ drifting since when), the outside load, the autoscaler."""
        f = self.figures
        t = Text()
        if f is None:
            return t
        if not f.drift:
            t.append("no drift watch: the server has no profile to compare with\n", style="dim")
        elif not f.drifting:
            t.append("✓ no drift: ", style="bold green")
            t.append("live behaviour matches the profile\n")
        for dim, on in f.drift.items():
            words = DRIFT_WORDS.get(dim, dim)
            if on:
                since, before = self.drift_since.get(dim, (self._clock(), False))
                stamp = time.strftime("%H:%M:%S", time.localtime(since))
                t.append(f"✗ {words:<20}", style="bold red")
                t.append(f" drifting since {'before ' if before else ''}{stamp}\n", style="red")
            else:
                t.append(f"  {words:<20}", style="dim")
                t.append(" ✓ as profiled\n", style="green")
        t.append("outside load ", style="bold")
        t.append_text(outside_bar(f.outside_load))
        t.append(" (other processes)", style="dim")
        t.append("\nautoscaler ", style="bold")
        t.append(
            f"{f.scale_ups:.0f} up · {f.scale_downs:.0f} down · workers {_n(f.workers)} (target {_n(f.workers_target)})"
        )
        return t

    def flush(self) -> None:
        """Draw the charts whose data changed (the app's chart timer)."""
        with self.app.batch_update():
            for chart in self._charts:
                chart.flush()

    @property
    def charts(self) -> list[Chart]:
        """The view's charts."""
        return list(self._charts)


def figures_line(f: Figures) -> Text:
    """``412 requests/s (promise 12.8k/s) · p50 3.1 ms · p99 8.2 ms (objective 20 ms) · …``: the
    figures against the promise first, what is left as room allows (the line is cut at the edge)."""
    t = Text()
    t.append(f"{si(f.request_rate)} requests/s ", style="bold")
    if f.max_rate is not None:
        t.append(f"(promise {si(f.max_rate)}/s) ", style="dim")
    t.append(f"· p50 {_ms(f.p50_ms)} · ")
    over = f.p99_ms is not None and f.objective_ms is not None and f.p99_ms > f.objective_ms
    t.append(f"p99 {_ms(f.p99_ms)} ", style="bold red" if over else "bold")
    if f.objective_ms is not None:
        t.append(f"(objective {f.objective_ms:g} ms) ", style="dim")
    if f.drifting:
        t.append("· ")
        t.append("drift: " + ", ".join(f.drifting) + " ", style="bold red")
    elif f.drift:
        t.append("· ")
        t.append("no drift ", style="green")
    if f.error_rate:
        t.append("· ")
        t.append(f"{si(f.error_rate)} errors/s ", style="bold red")
    t.append(f"· in flight {_n(f.in_flight)}/{_n(f.max_pending)} · workers {_n(f.workers)}")
    t.append(f" · {si(f.item_rate)} items/s")
    return t


def _ms(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g} ms"


def _n(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f}"


def _ago(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min"
