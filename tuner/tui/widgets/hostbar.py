"""The host as tuner sees it: the one-line summary and live per-core CPU, memory and outside-load bars.

psutil is sampled once a second (cheap, non-blocking: ``cpu_percent`` compares with the previous
call). **Outside load** is what processes other than tuner use (:mod:`tuner.hostload`: the machine's
busy CPU minus this UI process and its descendants — the sweep process and its workers — plus
steal), as a share of the usable cores; while a sweep measures, the bar shows the figure its
windows are judged by (the sweep reports it with every window), so the bar and the event log's
"window discarded" lines agree. Its cost: one read of the system totals, one of each of tuner's
processes and a walk of the process table for new descendants, about 1-2 ms a second.
Tests and snapshots pass a frozen ``sampler`` so the bars are deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psutil
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.reactive import reactive, var
from textual.widget import Widget
from textual.widgets import Static

from tuner.hostload import DEFAULT_MAX_OUTSIDE, HostSampler, Snapshot

GIB = 1024**3
CELL_BAR = 10  # bar width in cells


#: A figure the sweep reported is shown for this long; then the bar's own sample takes over.
REPORTED_FRESH_S = 2.5


@dataclass(frozen=True)
class Load:
    """One sample: per-core busy %, memory used and total (bytes), outside load (None: not yet known)."""

    cores: tuple[float, ...]
    mem_used: int
    mem_total: int
    outside: float | None = None  # share of the usable cores used by processes other than tuner


class LiveSampler:
    """Samples this machine each call; the outside load needs two calls (it is a rate)."""

    def __init__(self) -> None:
        self._host: HostSampler | None = None
        self._prev: Snapshot | None = None

    def __call__(self) -> Load:
        vm = psutil.virtual_memory()
        cores = tuple(psutil.cpu_percent(percpu=True))
        outside = None
        try:
            if self._host is None:
                self._host = HostSampler()
            self._host.scan()  # the sweep process and its workers come and go with every trial
            now = self._host.snapshot()
            if self._prev is not None:
                outside = self._host.interval(self._prev, now).outside
            self._prev = now
        except (OSError, psutil.Error):  # a bar must never take the app down
            outside = None
        return Load(cores, int(vm.total - vm.available), int(vm.total), outside)


psutil_sampler = LiveSampler()
"""The live sampler the app uses by default (one per process: the outside load is a rate)."""


def _style(pct: float) -> str:
    # Colours readable on dark and light backgrounds alike.
    return "bold red" if pct >= 85 else "yellow" if pct >= 50 else "green"


def _bar(pct: float, width: int = CELL_BAR) -> Text:
    filled = round(max(0.0, min(100.0, pct)) / 100 * width)
    t = Text("█" * filled, style=_style(pct))
    t.append("░" * (width - filled), style="dim")
    return t


def outside_bar(outside: float | None) -> Text:
    """The outside load (share of the usable cores) as a bar and a percentage: red above the
    contamination limit at which a measurement window is discarded, yellow from 10% (it can cost a
    few %), else green; a dash while unknown."""
    if outside is None:
        return Text("–", style="dim")
    pct = 100 * outside
    style = "bold red" if outside > DEFAULT_MAX_OUTSIDE else "yellow" if pct >= 10 else "green"
    filled = round(max(0.0, min(100.0, pct)) / 100 * CELL_BAR)
    t = Text()
    t.append("█" * filled, style=style)
    t.append("░" * (CELL_BAR - filled), style="dim")
    t.append(f" {pct:3.0f}%")
    return t


class LoadBars(Widget):
    """Per-core CPU bars and a memory bar, packed into as many lines as the width needs."""

    DEFAULT_CSS = """
    LoadBars { height: auto; }
    """

    load: reactive[Load | None] = reactive(None, layout=True)

    def __init__(self, sampler: Callable[[], Load] | None = psutil_sampler, interval_s: float = 1.0) -> None:
        super().__init__(id="load-bars")
        self._sampler = sampler
        self._interval = interval_s
        self._reported: tuple[float, float] | None = None  # (outside load, monotonic time) from a sweep

    def on_mount(self) -> None:
        if self._sampler is not None:
            self.load = self._sampler()
            if self._sampler is psutil_sampler:
                # Frozen samplers (tests, snapshots) are read once; only live ones tick.
                self.set_interval(self._interval, self._tick)

    def _tick(self) -> None:
        assert self._sampler is not None
        sample = self._sampler()
        if self._reported is not None and time.monotonic() - self._reported[1] < REPORTED_FRESH_S:
            sample = replace(sample, outside=self._reported[0])
        if sample != self.load:
            self.load = sample

    def report_outside(self, outside: float) -> None:
        """The outside load a sweep measured in its latest window, shown from the next tick on
        (not at once: the bar repaints once a second, not with every batch of a sweep's messages)."""
        self._reported = (outside, time.monotonic())
        if self._sampler is not psutil_sampler and self.load is not None:
            self.load = replace(self.load, outside=outside)  # a frozen bar never ticks: show it now

    def _cells(self, load: Load) -> Sequence[Text]:
        cells = []
        for i, pct in enumerate(load.cores):
            t = Text(f"cpu{i} ", style="bold")
            t.append_text(_bar(pct))
            t.append(f" {pct:3.0f}%")
            cells.append(t)
        mem_pct = 100 * load.mem_used / load.mem_total if load.mem_total else 0.0
        t = Text("mem ", style="bold")
        t.append_text(_bar(mem_pct))
        t.append(f" {load.mem_used / GIB:.1f}/{load.mem_total / GIB:.0f} GiB")
        cells.append(t)
        # Other processes' CPU (and steal), share of the usable cores: above the contamination
        # limit a measurement window is discarded (red); from 10% it can cost a few % (yellow).
        t = Text("outside ", style="bold")
        t.append_text(outside_bar(load.outside))
        cells.append(t)
        return cells

    def _lines(self, width: int) -> list[Text]:
        if self.load is None:
            return [Text("sampling…", style="dim")]
        width = max(20, width)
        lines: list[Text] = [Text()]
        for cell in self._cells(self.load):
            line = lines[-1]
            gap = 2 if line.cell_len else 0
            if line.cell_len and line.cell_len + gap + cell.cell_len > width:
                lines.append(Text())
                line, gap = lines[-1], 0
            line.append(" " * gap)
            line.append_text(cell)
        return lines

    def render(self) -> Text:
        return Text("\n").join(self._lines(self.size.width or 80))

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))


class HostPanel(Vertical):
    """Top of every screen: the host summary line and the load bars beneath it."""

    DEFAULT_CSS = """
    HostPanel { height: auto; padding: 0 1; }
    HostPanel #host-summary { height: auto; color: $text-muted; }
    """

    host: var[Any] = var(None)
    """The probed host (tuner.hardware.Host; bound to the app's): its one-line summary is shown."""

    def __init__(self, sampler: Callable[[], Load] | None = psutil_sampler) -> None:
        super().__init__(id="host-panel")
        self._sampler = sampler

    def compose(self) -> ComposeResult:
        yield Static("probing the hardware…", id="host-summary")
        yield LoadBars(self._sampler)

    def watch_host(self, host: Any) -> None:
        if host is not None:
            self.query_one("#host-summary", Static).update(Text(host.summary()))

    def report_outside(self, outside: float) -> None:
        """A sweep's latest window's outside load (see :meth:`LoadBars.report_outside`)."""
        self.query_one(LoadBars).report_outside(outside)
