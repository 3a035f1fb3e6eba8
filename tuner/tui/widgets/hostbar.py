"""The host as tuner sees it: the one-line summary and live per-core CPU and memory bars.

psutil is sampled a couple of times a second (cheap, non-blocking: ``cpu_percent`` compares with the
previous call). Tests and snapshots pass a frozen ``sampler`` so the bars are deterministic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psutil
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Size
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

GIB = 1024**3
CELL_BAR = 10  # bar width in cells


@dataclass(frozen=True)
class Load:
    """One sample: per-core busy %, memory used and total (bytes)."""

    cores: tuple[float, ...]
    mem_used: int
    mem_total: int


def psutil_sampler() -> Load:
    """A live sample of this machine."""
    vm = psutil.virtual_memory()
    return Load(tuple(psutil.cpu_percent(percpu=True)), int(vm.total - vm.available), int(vm.total))


def _style(pct: float) -> str:
    # Colours readable on dark and light backgrounds alike.
    return "bold red" if pct >= 85 else "yellow" if pct >= 50 else "green"


def _bar(pct: float, width: int = CELL_BAR) -> Text:
    filled = round(max(0.0, min(100.0, pct)) / 100 * width)
    t = Text("█" * filled, style=_style(pct))
    t.append("░" * (width - filled), style="dim")
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

    def on_mount(self) -> None:
        if self._sampler is not None:
            self.load = self._sampler()
            if self._sampler is psutil_sampler:
                # Frozen samplers (tests, snapshots) are read once; only live ones tick.
                self.set_interval(self._interval, self._tick)

    def _tick(self) -> None:
        assert self._sampler is not None
        sample = self._sampler()
        if sample != self.load:
            self.load = sample

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

    def __init__(self, sampler: Callable[[], Load] | None = psutil_sampler) -> None:
        super().__init__(id="host-panel")
        self._sampler = sampler

    def compose(self) -> ComposeResult:
        yield Static("probing the hardware…", id="host-summary")
        yield LoadBars(self._sampler)

    def show_host(self, summary: str) -> None:
        """Show the probed host's one-line summary."""
        self.query_one("#host-summary", Static).update(Text(summary))
