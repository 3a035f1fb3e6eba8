"""``tuner watch URL``: the TUI on a running ``tuner serve`` — one Live view (:mod:`tuner.tui.widgets.live`).

A small app of its own: it starts no sweep and no engine, so it needs none of the session's
machinery; it shares the styles, the chart timer, the keys and the help screen of the tuning
session. Quitting closes the view only: the server is read, never stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer

from tuner.serve.scrape import Figures
from tuner.tui.screens.help import WATCH_HELP, HelpScreen
from tuner.tui.widgets.charts import CHART_INTERVAL_S
from tuner.tui.widgets.live import SCRAPE_INTERVAL_S, LivePane

__all__ = ["WatchApp"]


class WatchApp(App[int]):
    """``tuner watch URL``."""

    CSS_PATH = "tuner.tcss"
    TITLE = "tuner watch"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 - Textual reads it as is
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("t", "toggle_theme", "Theme"),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit (the server goes on)"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        url: str,
        scrape: Callable[[], tuple[Figures, dict[str, Any]]],
        *,
        clock: Callable[[], float] = time.time,
        interval_s: float = SCRAPE_INTERVAL_S,
    ) -> None:
        """``scrape`` (tuner.serve.scrape.Scraper, or a fake in tests) runs in a thread every ``interval_s``."""
        super().__init__()
        self.url = url
        self._scrape = scrape
        self._clock = clock
        self._interval = interval_s
        self.sub_title = url

    def compose(self) -> ComposeResult:
        yield LivePane(self.url, self._scrape, clock=self._clock, interval_s=self._interval, id="live-pane")
        yield Footer()

    def on_mount(self) -> None:
        self.live = self.query_one(LivePane)
        self.set_interval(CHART_INTERVAL_S, self.live.flush)

    async def action_quit(self) -> None:
        """Close the view; the server is not touched."""
        self.live.stop()
        self.exit(0)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.push_screen(HelpScreen(WATCH_HELP))

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        """The command palette: every action, by name."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Help", "Keys and how to read the Live view (?)", self.action_help)
