"""The run view: status and progress, the three live charts, the trials table and the event log."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.widgets import ProgressBar, RichLog, Static

from tuner.tui.widgets.charts import ComparisonChart, LatencyChart, ThroughputChart
from tuner.tui.widgets.trials import TrialsTable


class RunPane(Vertical):
    """Everything that moves while a sweep runs."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="run-head"):
            yield Static("no sweep yet — press s to start", id="run-status")
            yield ProgressBar(total=100, show_eta=False, show_percentage=False, id="progress")
        with Grid(id="charts"):
            yield ThroughputChart()
            yield LatencyChart()
            yield ComparisonChart()
        with Horizontal(id="run-bottom"):
            yield TrialsTable()
            log = RichLog(id="events", max_lines=2000, wrap=True, markup=False, min_width=20)
            log.border_title = "events"
            yield log
        yield Static("", id="counts")
