"""The event log: the run's incident timeline, one timestamped line per event."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.text import Text
from textual.widgets import RichLog

MAX_LINES = 2000  # a fault storm must not grow the log without bound


class EventLog(RichLog):
    """``12:04:31 t3 worker 2 (pid 41873) crashed: exit 1 (injected) — partition 118 retried``."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(id="events", max_lines=MAX_LINES, wrap=True, markup=False, min_width=20)
        self.border_title = "events"
        self._clock = clock

    def add(self, text: Text, index: int | None = None) -> None:
        """One line, stamped with the time and, when it is about a trial, its number."""
        stamp = Text(time.strftime("%H:%M:%S ", time.localtime(self._clock())), style="dim")
        if index is not None:
            stamp.append(f"t{index + 1} ", style="dim")
        self.write(stamp + text)
