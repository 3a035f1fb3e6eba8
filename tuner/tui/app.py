"""The tuner TUI: set up a sweep, watch it run, take the recommendation.

::

    TunerApp: the session's facts (host, the last sweep's values and recommendation, the online
    │         outcome, the fault plan), the keys, the command palette, the chart timer
    ├─ HostPanel    the host line and live bars        host ◄─data_bind─ app.host;  OutsideMeasured ─► it
    ├─ SetupForm    the fields; checks the model as it is typed (@work) ── FaultsApplied ─► app
    ├─ RunPane      start ─ @work(thread) sweep ─ Relay ─ SweepBatch ─► its header, charts, table, log
    │               faults ◄─data_bind─ app.faults      SweepReady, SweepResults ─► app
    ├─ ResultsPane  show(recommendation) · compare(profile)     host ◄─data_bind─ app.host
    └─ OnlinePane   start ─ @work(thread) online sweep ─ SweepBatch ─► its charts, table, plan
                    outcome ◄─data_bind─ app.online_outcome ◄── OnlineResults

Each search runs in a thread worker of the view that shows it, and its coalesced messages go to that
view; what several views need bubbles up to the app, which hands it down by ``data_bind`` or one
call. Stopping or quitting sets the searches' cancel Events and waits for their workers, so no engine
worker process outlives the app; completed trials are already in the results file.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, TabbedContent, TabPane

from tuner.bench.types import TrialResult
from tuner.engine.faults import FaultPlan
from tuner.errors import BadInput, TunerError
from tuner.tui.driver import BenchDriver, Driver
from tuner.tui.messages import HostProbed, LogLine, OnlineResults, OutsideMeasured, SweepReady, SweepResults
from tuner.tui.screens.export import ExportScreen
from tuner.tui.screens.faults import FaultsScreen
from tuner.tui.screens.help import HelpScreen
from tuner.tui.screens.load import LoadProfileScreen
from tuner.tui.widgets.charts import CHART_INTERVAL_S
from tuner.tui.widgets.hostbar import HostPanel, Load, psutil_sampler
from tuner.tui.widgets.online import OnlinePane
from tuner.tui.widgets.results import ResultsPane
from tuner.tui.widgets.run import RunPane
from tuner.tui.widgets.setup import FormValues, SetupForm


def _validate_model(spec: str) -> Any:
    from tuner.models import validate

    return validate(spec)


def _freeze_gc() -> None:
    """Move every object alive now out of the garbage collector's sight (``gc.freeze``).

    The app holds a few hundred thousand long-lived objects (the DOM, styles, imported modules);
    a full collection walks them all — 55-75 ms on a 2-core box, measured landing inside view
    switches and making them the slowest key presses. Frozen, they are skipped; they were never
    going to be garbage, and what is allocated later is collected as usual.
    """
    gc.freeze()


def _probe_host() -> Any:
    from tuner.hardware import probe

    return probe()


class TunerApp(App[int]):
    """``tuner`` with no arguments."""

    CSS_PATH = "tuner.tcss"
    TITLE = "tuner"
    AUTO_FOCUS = "#start"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]  # noqa: RUF012 - Textual reads it as is
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-tall")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start"),
        Binding("x", "stop", "Stop"),
        Binding("r", "restart", "Restart"),
        Binding("f", "faults", "Faults"),
        Binding("e", "export", "Export"),
        Binding("l", "load_profile", "Load"),
        Binding("1", "tab('setup')", "Setup", show=False),
        Binding("2", "tab('run')", "Run", show=False),
        Binding("3", "tab('results')", "Results", show=False),
        Binding("4", "tab('online')", "Online", show=False),
        Binding("t", "toggle_theme", "Theme", show=False),
        Binding("escape", "unfocus", "Leave field", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    host: var[Any] = var(None)
    """This machine as probed (tuner.hardware.Host; None until the probe ends)."""
    faults: var[FaultPlan] = var(FaultPlan)
    """The fault plan in force: the next sweep's, and the running sweep's from its next trial."""
    online_outcome: var[Any] = var(None)
    """The last online search's outcome (tuner.bench.online.sweep.OnlineOutcome), or None."""

    def __init__(
        self,
        *,
        model: str = "builtin:mlp",
        budget_s: float = 150.0,
        window_s: float = 1.0,
        driver: Driver | None = None,
        host: Any = None,
        sampler: Callable[[], Load] | None = psutil_sampler,
        validator: Callable[[str], Any] | None = _validate_model,
        clock: Callable[[], float] = time.time,
        compare_path: Path | None = None,
        profiles_dir: Path = Path("profiles"),
    ) -> None:
        """``driver``/``host``/``sampler``/``validator``/``clock`` are injectable for tests and snapshots."""
        super().__init__()
        self.driver: Driver = driver or BenchDriver()
        if isinstance(self.driver, BenchDriver):
            # Start multiprocessing's resource tracker now, while sys.stderr is still the real one:
            # once Textual runs, stderr is its print capture, whose fileno() is -1; the tracker hands
            # sys.stderr.fileno() to the child it spawns, and -1 fails that spawn with
            # "bad value(s) in fds_to_keep".
            from tuner.engine.transport import ensure_tracker

            ensure_tracker()
        self.host = host
        self._sampler = sampler
        self._validator = validator
        self._clock = clock
        self._model = model
        self._budget = budget_s
        self._window = window_s
        self._compare_path = compare_path
        self.profiles_dir = profiles_dir
        # -- the session's facts (UI thread only; the views read them as tuner.tui.session.Session) --
        self.values: FormValues | None = None  # the last sweep's setup
        self.spec: Any = None  # the last sweep's request
        self.recommendation: Any = None  # tuner.bench.recommend.Recommendation of the last sweep
        self.online_step_s = 1.0  # seconds per load step of an online search (tests shorten it)

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HostPanel(self._sampler).data_bind(TunerApp.host)
        with TabbedContent(id="tabs", initial="setup"):
            with TabPane("1 Setup", id="setup"):
                yield SetupForm(self._model, self._budget, self._window, self._validator)
            with TabPane("2 Run", id="run"):
                yield RunPane(self._clock, id="run-pane").data_bind(TunerApp.faults)
            with TabPane("3 Results", id="results"):
                yield ResultsPane(id="results-pane").data_bind(TunerApp.host)
            with TabPane("4 Online", id="online"):
                yield OnlinePane(self, id="online-pane").data_bind(outcome=TunerApp.online_outcome)
        yield Footer()

    def on_mount(self) -> None:
        self._tabs = self.query_one(TabbedContent)
        self._host_panel = self.query_one(HostPanel)
        self._setup = self.query_one(SetupForm)
        self._run = self.query_one(RunPane)
        self._results = self.query_one(ResultsPane)
        self._online = self.query_one(OnlinePane)
        self.watch(self._run, "running", self._sweep_running)
        if self.host is None:
            self._probe()
        if self._compare_path is not None:
            self._load_compare(self._compare_path)
        self.set_interval(CHART_INTERVAL_S, self.flush_charts)
        self.call_after_refresh(_freeze_gc)

    def flush_charts(self) -> None:
        """Draw the charts that changed in the view on screen: every CHART_INTERVAL_S, and at once
        when a view with charts comes on screen (a plotext build is the UI's biggest CPU cost)."""
        active = self._tabs.active
        if active == "run":
            self._run.flush()
        elif active == "online":
            self._online.flush()

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        # On a short terminal the Run and Results views drop the host summary line (the bars stay).
        # The class goes on the host panel: on the screen it would restyle every widget (tuner.tcss).
        self._host_panel.set_class(event.pane.id != "setup", "-away-from-setup")
        if event.pane.id in ("run", "online"):
            self.call_after_refresh(self.flush_charts)

    def _sweep_running(self, running: bool) -> None:
        # The setup's and the online view's buttons depend on the sweep running: told here, where
        # the views meet, and each view sets its own buttons.
        self._setup.running = running
        self._online.sweep_running = running

    # -- the session's facts, as views read them (tuner.tui.session.Session) ---------------------
    @property
    def running(self) -> bool:
        """A closed-loop sweep is running."""
        return self._run.running

    @property
    def online_running(self) -> bool:
        """An online search is running."""
        return self._online.running

    @property
    def results(self) -> list[TrialResult]:
        """The last sweep's finished trials (the run view's)."""
        return self._run.results

    @results.setter
    def results(self, results: list[TrialResult]) -> None:
        self._run.results = results

    @property
    def interrupted(self) -> bool:
        """The last sweep was stopped before its end."""
        return self._run.interrupted

    @property
    def sweep(self) -> Any:
        """The running (or last) sweep's pipeline stage, once it exists."""
        return self._run.sweep

    @property
    def model_error(self) -> str | None:
        """What is wrong with the model spec in the setup (None: nothing, or not checked yet)."""
        return self._setup.model_error

    @property
    def model_info(self) -> Any:
        """What the setup's model check found (tuner.models.ModelInfo)."""
        return self._setup.model_info

    @property
    def best(self) -> TrialResult | None:
        """The recommended trial, if there is one."""
        return getattr(self.recommendation, "best", None)

    @property
    def measured_host(self) -> Any:
        """The host the last sweep measured on (the probed one until a sweep says)."""
        return getattr(self.sweep, "host", None) or self.host

    @property
    def measured_info(self) -> Any:
        """What the last sweep found of the model (the setup's check until a sweep says)."""
        return getattr(self.sweep, "info", None) or self.model_info

    @property
    def model_spec(self) -> str:
        """The model of the last sweep, or the one in the setup before any."""
        return self.values.model if self.values else self._setup.model_spec

    # -- what the views and workers tell the session -----------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="probe")
    def _probe(self) -> None:
        self.post_message(HostProbed(_probe_host()))

    def on_host_probed(self, msg: HostProbed) -> None:
        self.host = msg.host

    def on_sweep_ready(self, msg: SweepReady) -> None:
        self.spec = msg.spec
        _freeze_gc()  # the benchmark's modules, imported for this sweep, join the frozen set
        if getattr(msg.sweep, "host", None) is not None and self.host is None:
            self.host = msg.sweep.host

    def on_sweep_results(self, msg: SweepResults) -> None:
        self.recommendation = msg.rec
        self._results.show(msg.rec, msg.results, self.interrupted)
        if msg.rec is not None and self._tabs.active == "run" and not self.interrupted:
            self._tabs.active = "results"

    def on_online_results(self, msg: OnlineResults) -> None:
        if msg.rec is not None:  # recomputed around the online winner
            self.recommendation = msg.rec
            self._results.show(msg.rec, self.results, self.interrupted)
        self.online_outcome = msg.outcome  # the Online view shows it and plans from it

    def on_log_line(self, msg: LogLine) -> None:
        self._run.add_event(msg.text)

    def on_outside_measured(self, msg: OutsideMeasured) -> None:
        self._host_panel.report_outside(msg.outside)

    # -- starting and stopping -------------------------------------------------------------------
    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        """Start a sweep with the form's values."""
        if self.running:
            self.notify("A sweep is running: x stops it, r restarts it.")
            return
        if self.model_error is not None:
            self.notify(self.model_error, severity="error", title="model")
            return
        try:
            values = self._setup.read()
        except BadInput as e:
            self._setup.show_error(str(e))
            self.action_tab("setup")
            self.notify(str(e), severity="error")
            return
        self._setup.show_error(None)
        self.values, self.faults, self.recommendation = values, values.faults, None
        self._run.start(values, self.driver, self.host, self.model_info)
        self.action_tab("run")

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Stop the sweep (or the online search); what already finished is kept."""
        self._online.stop()
        self._run.stop()

    async def action_restart(self) -> None:
        """Stop (and wait), then start again with the current setup."""
        await self.stop_and_wait()
        self.action_start()

    async def stop_and_wait(self) -> None:
        """Stop both searches and wait for their worker threads: after this no engine worker remains."""
        await self._online.stop_and_wait()
        await self._run.stop_and_wait()

    async def action_quit(self) -> None:
        """Quit; a running sweep is stopped first so nothing is left behind."""
        if self.running or self.online_running:
            self.notify("stopping the sweep…")
        await self.stop_and_wait()
        self.exit(0)

    @on(Button.Pressed, "#online-start")
    def action_online_start(self) -> None:
        """Search the highest request rate within the p99 objective on the sweep's best configurations."""
        # Started from here: a new search clears the session's online outcome and shows its view.
        if self._online.start():
            self.online_outcome = None
            self.action_tab("online")

    def action_online_stop(self) -> None:
        """Stop the online search; the steps already measured are kept."""
        self._online.stop()

    # -- faults -----------------------------------------------------------------------------------
    def action_faults(self) -> None:
        """Change fault rates; a running sweep takes them from its next trial."""

        def done(plan: FaultPlan | None) -> None:
            if plan is not None:
                self.apply_faults(plan)

        self.push_screen(FaultsScreen(self.faults, self.running), done)

    @on(SetupForm.FaultsApplied)
    def _faults_from_the_form(self, msg: SetupForm.FaultsApplied) -> None:
        self.apply_faults(msg.plan)

    def apply_faults(self, plan: FaultPlan) -> None:
        """Take a new fault plan now (form, counts line, and the running sweep from its next trial)."""
        self.faults = plan
        self._setup.set_faults(plan)
        self._run.set_faults(plan)
        self.notify(f"faults: {plan}")

    # -- profiles: export one, compare with one --------------------------------------------------------
    def action_export(self) -> None:
        """Show the profile YAML and write it where the user says."""
        try:
            screen = ExportScreen.of(self, self.profiles_dir)
        except TunerError as e:
            self.notify(str(e), severity="error", title="export")
            return
        if screen is None:
            self.notify("Nothing to export yet: run a sweep to the end (s).", severity="warning")
            return

        def written(path: Path | None) -> None:
            if path is not None:
                self._run.add_event(Text(f"profile written to {path}", style="bold green"))
                self.notify(f"wrote {path}", title="export")

        self.push_screen(screen, written)

    def action_load_profile(self) -> None:
        """Load a profile to compare against."""

        def loaded(result: tuple[Path, Any] | None) -> None:
            if result is not None:
                self._results.compare(*result)
                self.action_tab("results")

        self.push_screen(LoadProfileScreen(f"{self.profiles_dir}/"), loaded)

    def _load_compare(self, path: Path) -> None:
        from tuner.profile import load_profile

        try:
            profile = load_profile(path)
        except TunerError as e:
            self.notify(str(e), severity="error", title="profile")
            return
        self._results.compare(path, profile)

    # -- other actions ------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self._tabs.active = tab

    def action_unfocus(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen[Any]) -> Any:
        """The command palette: every action, by name."""
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start sweep", "Start a sweep with the setup's values (s)", self.action_start)
        yield SystemCommand("Stop sweep", "Stop; finished trials are kept (x)", self.action_stop)
        yield SystemCommand("Restart sweep", "Stop, then start again (r)", self.action_restart)
        yield SystemCommand(
            "Fault rates",
            "Inject crashes, exceptions, hangs, stragglers, memory spikes (f)",
            self.action_faults,
        )
        yield SystemCommand(
            "Export profile", "Write the recommendation as a profile YAML (e)", self.action_export
        )
        yield SystemCommand(
            "Load profile", "Compare against an existing profile (l)", self.action_load_profile
        )
        yield SystemCommand(
            "Start online search",
            "Highest request rate within the p99 objective, open-loop (Online view, 4)",
            self.action_online_start,
        )
        yield SystemCommand("Stop online search", "Stop it; finished steps are kept", self.action_online_stop)
        yield SystemCommand("Help", "Keys and how to read the views (?)", self.action_help)
