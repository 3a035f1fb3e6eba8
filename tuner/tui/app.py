"""The tuner TUI: set up a sweep, watch it run, take the recommendation.

::

    Setup form ──s──► @work(thread) ── Sweep.run(cancel) ── on_message ─► Relay ──post_message──┐
        ▲                    │ (blocking, off the UI thread)          (coalesced ≤ 4 Hz)        │
        │ f: set_faults ─────┘                                                                  ▼
    Results ◄── recommend (in the worker) ◄── SweepFinished            on_sweep_batch: charts, table, log

    Online view: Start online ── @work(thread) ── online sweep (tuner.bench.online, child process) ──┐
                 the same relay and SweepBatch; StepProgress coalesced like windows ◄────────────────┘

The worker is the only place that runs benchmark code; widgets change only in message handlers on
the UI thread. Stopping or quitting sets the sweep's cancel Event and waits for the worker, so no
engine worker process outlives the app; completed trials are already in the results file.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import (
    Button,
    Footer,
    Input,
    ProgressBar,
    RichLog,
    Select,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import Worker, WorkerError, get_current_worker

from tuner.bench.online.messages import ONLINE_MESSAGES
from tuner.bench.types import (
    EngineNote,
    SweepFinished,
    SweepMessage,
    TrialFinished,
    TrialPhase,
    TrialResult,
    TrialStarted,
    WindowMeasured,
)
from tuner.engine.faults import FaultPlan
from tuner.errors import BadInput, TunerError
from tuner.tui.driver import BenchDriver, Driver, objective_of, space_text
from tuner.tui.format import duration, profile_name, si, status_of, sweep_outlook
from tuner.tui.messages import (
    HostProbed,
    ModelChecked,
    OnlineEnded,
    OnlineFailed,
    OnlineResults,
    SweepBatch,
    SweepEnded,
    SweepFailed,
    SweepReady,
    SweepResults,
)
from tuner.tui.relay import Relay
from tuner.tui.screens.export import ExportScreen
from tuner.tui.screens.faults import FaultsScreen
from tuner.tui.screens.help import HelpScreen
from tuner.tui.screens.load import LoadProfileScreen
from tuner.tui.widgets.charts import ComparisonChart, LatencyChart, ThroughputChart
from tuner.tui.widgets.hostbar import HostPanel, Load, psutil_sampler
from tuner.tui.widgets.online import OnlinePane
from tuner.tui.widgets.results import ResultsPane
from tuner.tui.widgets.run import RunPane
from tuner.tui.widgets.setup import FormValues, SetupForm
from tuner.tui.widgets.trials import TrialsTable

VALIDATE_DEBOUNCE_S = 0.4
CHART_INTERVAL_S = 0.5  # live charts redraw at most this often
LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "bold red"}


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
        # -- sweep state (UI thread only) --
        self.sweep: Any = None
        self.spec: Any = None
        self.values: FormValues | None = None
        self.results: list[TrialResult] = []
        self.recommendation: Any = None
        self.interrupted = False
        self.faults = FaultPlan()
        self.model_info: Any = None
        self.model_error: str | None = None
        self._cancel = threading.Event()
        self._worker: Worker[None] | None = None
        self._started_at: float | None = None
        self._planned = 0
        self._trial_t0: float | None = None
        self._trial_s: list[float] = []  # wall time of each finished trial, for the outlook
        self._current = ""
        self._phase = ""
        self._validate_timer: Any = None
        self.compared: tuple[Path, Any] | None = None
        self.batches_seen = 0
        self._dirty_live = self._dirty_compare = False
        # -- online search state (UI thread only) --
        self.online_outcome: Any = None  # tuner.bench.online.sweep.OnlineOutcome of the last search
        self._online_worker: Worker[None] | None = None
        self._online_cancel = threading.Event()
        self._online_spec: Any = None
        self.online_step_s = 1.0  # seconds per load step (tests shorten it)

    # -- layout ----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield HostPanel(self._sampler)
        with TabbedContent(id="tabs", initial="setup"):
            with TabPane("1 Setup", id="setup"):
                yield SetupForm(self._model, self._budget, self._window)
            with TabPane("2 Run", id="run"):
                yield RunPane(id="run-pane")
            with TabPane("3 Results", id="results"):
                yield ResultsPane(id="results-pane")
            with TabPane("4 Online", id="online"):
                yield OnlinePane(id="online-pane")
        yield Footer()

    def on_mount(self) -> None:
        if self.host is not None:
            self.query_one(HostPanel).show_host(self.host.summary())
        else:
            self._probe()
        self._check_model(self._model)
        if self._compare_path is not None:
            self._load_compare(self._compare_path)
        self.set_interval(1.0, self._tick_progress)
        self.set_interval(CHART_INTERVAL_S, self._flush_charts)
        self.call_after_refresh(_freeze_gc)

    def _flush_charts(self) -> None:
        active = self.query_one(TabbedContent).active
        if active == "online":
            self.query_one(OnlinePane).flush()
            return
        if not (self._dirty_live or self._dirty_compare):
            return
        if active != "run":
            return
        with self.batch_update():
            if self._dirty_live:
                self.query_one(ThroughputChart).redraw()
                self.query_one(LatencyChart).redraw()
            if self._dirty_compare:
                self.query_one(ComparisonChart).redraw()
        self._dirty_live = self._dirty_compare = False

    @on(TabbedContent.TabActivated)
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        # On a short terminal the Run and Results views drop the host summary line (the bars stay).
        # The class goes on the host panel: on the screen it would restyle every widget (tuner.tcss).
        self.query_one(HostPanel).set_class(event.pane.id != "setup", "-away-from-setup")
        if event.pane.id in ("run", "online"):
            self.call_after_refresh(self._flush_charts)

    # -- host and model checks (thread workers) --------------------------------------------------
    @work(thread=True, exclusive=True, exit_on_error=False, group="probe")
    def _probe(self) -> None:
        self.post_message(HostProbed(_probe_host()))

    def on_host_probed(self, msg: HostProbed) -> None:
        self.host = msg.host
        self.query_one(HostPanel).show_host(msg.host.summary())

    @on(Input.Changed, "#model")
    def _model_changed(self, event: Input.Changed) -> None:
        if self._validate_timer is not None:
            self._validate_timer.stop()
        spec = event.value.strip()
        if spec == self._model and self.model_error is None and self.model_info is not None:
            return
        self._recheck(spec)

    def _recheck(self, spec: str) -> None:
        self._model = spec
        self.query_one("#model-status", Static).update(Text("checking…", style="dim"))
        # Debounced: loading a model on every keystroke would be wasteful.
        self._validate_timer = self.set_timer(VALIDATE_DEBOUNCE_S, lambda: self._check_model(spec))

    @on(Select.Changed, "#allow-pickle")
    @on(Select.Changed, "#method")
    @on(Input.Changed, "#input-shape")
    def _model_options_changed(self) -> None:
        # A model file's options change what loads (a pickle with consent, another method): check again.
        if self._validate_timer is not None:
            self._validate_timer.stop()
        from tuner.models.formats import format_of

        if format_of(self._model):
            self._recheck(self._model)

    def _check_model(self, spec: str) -> None:
        if self._validator is None:
            self.post_message(ModelChecked(spec, None, None))
            return
        try:
            options = self.query_one(SetupForm).model_options()
        except TunerError as e:
            self.post_message(ModelChecked(spec, str(e)))
            return
        self._validate_worker(spec, options)

    @work(thread=True, exclusive=True, exit_on_error=False, group="validate")
    def _validate_worker(self, spec: str, options: dict[str, Any] | None = None) -> None:
        assert self._validator is not None
        try:
            if options:
                from tuner.models import parse_spec

                info = self._validator(parse_spec(spec).with_options(**options))  # type: ignore[arg-type]
            else:
                info = self._validator(spec)
        except TunerError as e:
            self.post_message(ModelChecked(spec, str(e)))
            return
        except Exception as e:  # a model that breaks in an unexpected way is still one line
            self.post_message(ModelChecked(spec, f"{spec}: {type(e).__name__}: {e}"))
            return
        if not get_current_worker().is_cancelled:
            self.post_message(ModelChecked(spec, None, info))

    def on_model_checked(self, msg: ModelChecked) -> None:
        if msg.spec != self._model:
            return  # an older check finished after the user typed more
        status = self.query_one("#model-status", Static)
        self.model_error = msg.error
        self.model_info = msg.info
        if msg.error:
            status.update(Text("✗ " + msg.error, style="bold red"))
        elif msg.info is not None:
            info = msg.info
            dims = self.query_one("#dims", Input)
            if getattr(info, "framework", None):
                # A model file: its format, framework and version, its input signature, its notes.
                offered = list(getattr(info, "dimensions", None) or {})
                text = (
                    f"✓ {info.format} · {info.framework} {info.framework_version} · inputs {info.inputs or '?'}"
                    + (f" · outputs {', '.join(info.outputs)}" if info.outputs else "")
                    + f" · loads in {info.load_s * 1000:.0f} ms"
                )
                for note in info.notes:
                    text += f"\n  {note}"
                status.update(Text(text, style="green"))
                dims.placeholder = f"none; offers {', '.join(offered)}" if offered else "none"
            else:
                status.update(
                    Text(
                        f"✓ {info.description} · {info.item} items · {info.bound}-bound · "
                        f"loads in {info.load_s * 1000:.0f} ms",
                        style="green",
                    )
                )
                dims.placeholder = "none"
        else:
            status.update(Text("✓", style="green"))
        self._sync_buttons()

    # -- starting and stopping -------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._worker is not None and self._worker.is_running

    def _sync_buttons(self) -> None:
        self.query_one("#start", Button).disabled = self.model_error is not None or self.running
        self.query_one("#stop", Button).disabled = not self.running
        self.query_one(OnlinePane).set_running(self.online_running, not self.running)

    @on(Button.Pressed, "#start")
    def action_start(self) -> None:
        """Start a sweep with the form's values."""
        if self.running:
            self.notify("A sweep is running: x stops it, r restarts it.")
            return
        if self.model_error is not None:
            self.notify(self.model_error, severity="error", title="model")
            return
        form = self.query_one(SetupForm)
        err = self.query_one("#form-error", Static)
        try:
            values = form.read()
        except BadInput as e:
            err.update(Text(str(e), style="bold red"))
            self.query_one(TabbedContent).active = "setup"
            self.notify(str(e), severity="error")
            return
        err.update("")
        self.faults = values.faults
        self.values = values
        self._reset_run()
        self._cancel = threading.Event()
        self._started_at = self._clock()
        self._worker = self._run_sweep(values, self._cancel)
        self._sync_buttons()
        self.query_one(TabbedContent).active = "run"
        self.log_event(
            Text(
                f"sweep started: {values.model} · {values.strategy} · budget {values.budget_s:g} s"
                + (f" · faults {values.faults}" if values.faults.active else ""),
                style="bold",
            )
        )

    @on(Button.Pressed, "#stop")
    def action_stop(self) -> None:
        """Stop the sweep (or the online search); what already finished is kept."""
        if self.online_running:
            self.action_online_stop()
        if not self.running:
            return
        self._cancel.set()
        self.log_event(
            Text("stopping: the current trial is abandoned, finished trials are kept", style="yellow")
        )
        self._set_status("stopping…")

    async def action_restart(self) -> None:
        """Stop (and wait), then start again with the current setup."""
        await self.stop_and_wait()
        self.action_start()

    async def stop_and_wait(self) -> None:
        """Cancel the sweep and wait for its worker thread: after this no engine worker remains."""
        online = self._online_worker
        if online is not None:
            self._online_cancel.set()
            if online.is_running:
                try:
                    await online.wait()
                except WorkerError:
                    pass
        worker = self._worker
        if worker is None:
            self._sync_buttons()
            return
        self._cancel.set()
        if worker.is_running:
            try:
                await worker.wait()
            except WorkerError:
                pass
        self._sync_buttons()

    async def action_quit(self) -> None:
        """Quit; a running sweep is stopped first so nothing is left behind."""
        if self.running or self.online_running:
            self.notify("stopping the sweep…")
        await self.stop_and_wait()
        self.exit(0)

    def on_unmount(self) -> None:
        # Belt and braces: however the app ends, the sweep's engine is told to stop.
        self._cancel.set()
        self._online_cancel.set()

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep")
    def _run_sweep(self, values: FormValues, cancel: threading.Event) -> None:
        relay = Relay(self.post_message)
        try:
            try:
                sweep, spec = self.driver.make_sweep(values, relay, self.host, self.model_info)
            except TunerError as e:
                self.post_message(SweepFailed(str(e)))
                return
            self.post_message(SweepReady(sweep, space_text(getattr(sweep, "space", None)), spec))
            try:
                results = sweep.run(cancel)
            except TunerError as e:
                relay.flush()
                self.post_message(SweepFailed(str(e)))
                return
            relay.flush()
            rec = None
            if results:
                try:
                    # Recommending bootstraps intervals: done here, off the UI thread.
                    rec = self.driver.recommend(
                        results, objective_of(values), getattr(sweep, "host", self.host)
                    )
                except TunerError as e:
                    self.post_message(SweepFailed(f"recommend: {e}"))
            self.post_message(SweepResults(rec, list(results)))
        except Exception as e:  # never let a bug kill the app silently: say it in the log
            relay.flush()
            self.post_message(SweepFailed(f"{type(e).__name__}: {e}"))
        finally:
            self.post_message(SweepEnded())

    # -- sweep messages (UI thread) ----------------------------------------------------------------
    def on_sweep_ready(self, msg: SweepReady) -> None:
        self.sweep = msg.sweep
        self.spec = msg.spec
        _freeze_gc()  # the benchmark's modules, imported for this sweep, join the frozen set
        if msg.space_text:
            self.log_event(Text(f"space: {msg.space_text}", style="dim"))
        if getattr(msg.sweep, "host", None) is not None and self.host is None:
            self.host = msg.sweep.host

    def on_sweep_failed(self, msg: SweepFailed) -> None:
        self.log_event(Text("✗ " + msg.text, style="bold red"))
        self._set_status(Text("✗ " + msg.text, style="bold red"))
        self.notify(msg.text, severity="error", title="sweep")

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._worker:
            self._sync_buttons()

    def on_sweep_ended(self, msg: SweepEnded) -> None:
        self._sync_buttons()
        self._tick_progress()

    def on_sweep_batch(self, batch: SweepBatch) -> None:
        self.batches_seen += 1
        tput = self.query_one(ThroughputChart)
        lat = self.query_one(LatencyChart)
        charts_dirty = compare_dirty = False
        outside: float | None = None
        with self.batch_update():
            for m in batch.messages:
                charts_dirty |= isinstance(m, (WindowMeasured, TrialStarted, TrialPhase))
                compare_dirty |= isinstance(m, TrialFinished)
                if isinstance(m, WindowMeasured) and m.outside is not None:
                    outside = m.outside
                self._apply(m, tput, lat)
            if outside is not None:
                # The host bar shows the load the sweep's windows are judged by (latest of the batch).
                self.query_one(HostPanel).report_outside(outside)
            if batch.dropped_notes:
                self.log_event(Text(f"… {batch.dropped_notes} more engine events in this burst", style="dim"))
            # Charts are only marked here; _flush_charts redraws them at most twice a second, and
            # only while the Run view is on screen (a plotext build is the UI's biggest CPU cost).
            self._dirty_live |= charts_dirty
            self._dirty_compare |= compare_dirty

    def _apply(self, m: SweepMessage, tput: ThroughputChart, lat: LatencyChart) -> None:
        if isinstance(m, ONLINE_MESSAGES):
            self.query_one(OnlinePane).apply(m)
            return
        if isinstance(m, WindowMeasured):
            tput.add(m)
            lat.add(m)
            if m.discarded is not None:
                self.log_event(
                    Text(f"window at {m.t:.1f} s discarded, host busy: {m.discarded}", style="yellow"),
                    m.index,
                )
        elif isinstance(m, TrialStarted):
            self._planned = m.planned
            self._trial_t0 = self._clock()
            self._current = m.config.label()
            self._phase = "warm-up"
            tput.reset(f"trial {m.index + 1}")
            lat.reset()
            self.log_event(Text(f"trial {m.index + 1}: {self._current}", style="bold"), m.index)
            self._tick_progress()
        elif isinstance(m, TrialPhase):
            # The detail usually starts with the phase word already ("stable: 3 windows within 5%").
            word = {"warmup": "warm-up"}.get(m.phase, m.phase)
            detail = m.detail or word
            self._phase = detail if detail.startswith(m.phase) else f"{word}: {detail}"
            tput.phase_text = self._phase
            if m.phase in ("stable", "unstable", "clean", "contaminated"):
                style = "yellow" if m.phase in ("unstable", "contaminated") else "dim"
                self.log_event(Text(self._phase, style=style), m.index)
            self._tick_progress()
        elif isinstance(m, EngineNote):
            self.log_event(Text(m.text, style=LEVEL_STYLE.get(m.level, "")), m.index)
        elif isinstance(m, TrialFinished):
            self._trial_finished(m.result, m.index)
        elif isinstance(m, SweepFinished):
            self.interrupted = m.interrupted
            word = "stopped" if m.interrupted else "finished"
            self.log_event(
                Text(f"sweep {word}: {len(m.results)} trials in {duration(m.elapsed_s)}", style="bold")
            )
            self._set_status(f"sweep {word}: {len(m.results)} trials in {duration(m.elapsed_s)}")
            self._started_at = None
            self.query_one("#progress", ProgressBar).update(total=100, progress=100)

    def _trial_finished(self, r: TrialResult, index: int) -> None:
        self.results.append(r)
        if self._trial_t0 is not None:
            self._trial_s.append(self._clock() - self._trial_t0)
            self._trial_t0 = None
        self.query_one(TrialsTable).add_result(r)
        self.query_one(ComparisonChart).set_results(self.results)
        st = status_of(r)
        line = Text(f"done: {si(r.throughput)} items/s · p99 {r.latency_ms.get('p99', 0):.2f} ms · {st}")
        if r.infeasible_reasons:
            line.append(" (" + "; ".join(r.infeasible_reasons) + ")")
        if r.error:
            line.append(f" — {r.error}")
        if r.discarded_windows:
            n = len(r.discarded_windows)
            line.append(f" · {n} busy window{'s' if n != 1 else ''} discarded")
        line.stylize(
            "bold red"
            if st in ("error", "infeasible")
            else "yellow"
            if st in ("unstable", "contaminated")
            else "green"
        )
        self.log_event(line, index)
        self._update_counts()

    def on_sweep_results(self, msg: SweepResults) -> None:
        self.recommendation = msg.rec
        pane = self.query_one(ResultsPane)
        pane.show(msg.rec, msg.results, self.interrupted)
        if self.compared is not None:
            self._show_compare()
        tabs = self.query_one(TabbedContent)
        if msg.rec is not None and tabs.active == "run" and not self.interrupted:
            tabs.active = "results"

    # -- small pieces -----------------------------------------------------------------------------
    def _reset_run(self) -> None:
        self.results = []
        self.recommendation = None
        self.interrupted = False
        self._planned = 0
        self._trial_t0 = None
        self._trial_s = []
        self._current = self._phase = ""
        self.query_one(TrialsTable).clear_results()
        self.query_one(ComparisonChart).set_results([])
        self.query_one(ComparisonChart).redraw()
        self.query_one(ThroughputChart).reset("")
        self.query_one(ThroughputChart).redraw()
        self.query_one(LatencyChart).reset()
        self.query_one(LatencyChart).redraw()
        self.query_one("#events", RichLog).clear()
        self._update_counts()

    def log_event(self, text: Text, index: int | None = None) -> None:
        """One timestamped line in the event log."""
        stamp = Text(time.strftime("%H:%M:%S ", time.localtime(self._clock())), style="dim")
        if index is not None:
            stamp.append(f"t{index + 1} ", style="dim")
        try:
            self.query_one("#events", RichLog).write(stamp + text)
        except NoMatches:
            pass  # closing

    def _set_status(self, text: str | Text) -> None:
        try:
            self.query_one("#run-status", Static).update(text)
        except NoMatches:
            pass  # the app is closing: a last timer tick or message arrives after the widgets left

    def _tick_progress(self) -> None:
        if self._started_at is None or self.values is None or not self.query("#progress"):
            return
        elapsed = self._clock() - self._started_at
        budget = self.values.budget_s
        if not self._current:
            status = f"starting: loading the model, probing\n{duration(elapsed)} elapsed"
        else:
            o = sweep_outlook(
                strategy=self.values.strategy,
                planned=self._planned,
                done=len(self.results),
                trial_s=self._trial_s,
                budget_s=budget,
                elapsed_s=elapsed,
                max_trials=self.values.max_trials,
            )
            left = f"{'≤ ' if o.upper_bound else ''}{duration(o.left_s)} left"
            # Two lines, each cut with an ellipsis rather than wrapped (tuner.tcss): a wrapped first
            # line used to push the time line out of the two-row header.
            second = " · ".join(x for x in (f"{duration(elapsed)} elapsed", left, o.outlook) if x)
            status = f"{o.trial} · {self._current} · {self._phase}\n{second}"
        self._set_status(status)
        self.query_one("#progress", ProgressBar).update(total=budget, progress=min(elapsed, budget))

    def _update_counts(self) -> None:
        outputs = sum(r.items for r in self.results)
        lost = sum(sum(r.failures.values()) for r in self.results)
        retried = sum(r.retries for r in self.results)
        faults = sum(sum(r.faults_seen.values()) for r in self.results)
        text = f"{outputs + lost:,} items · {outputs:,} outputs · {lost:,} lost · {retried:,} retried"
        if faults:
            text += f" · {faults:,} faults seen"
        text += f" · faults injected: {self.faults}"
        try:
            self.query_one("#counts", Static).update(text)
        except NoMatches:
            pass  # closing

    # -- other actions ------------------------------------------------------------------------------
    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_unfocus(self) -> None:
        if isinstance(self.focused, Input):
            self.set_focus(None)

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.theme == "textual-dark" else "textual-dark"

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_faults(self) -> None:
        """Change fault rates; a running sweep takes them from its next trial."""

        def done(plan: FaultPlan | None) -> None:
            if plan is None:
                return
            self.apply_faults(plan)

        self.push_screen(FaultsScreen(self.faults, self.running), done)

    @on(Button.Pressed, "#apply-faults")
    def _apply_faults_button(self) -> None:
        try:
            plan = self.query_one(SetupForm).read_faults()
        except BadInput as e:
            self.query_one("#form-error", Static).update(Text(str(e), style="bold red"))
            return
        self.apply_faults(plan)

    def apply_faults(self, plan: FaultPlan) -> None:
        """Take a new fault plan now (form, log, and the running sweep from its next trial)."""
        self.faults = plan
        self.query_one(SetupForm).set_faults(plan)
        if self.running and self.sweep is not None:
            self.sweep.set_faults(plan if plan.active else None)
            self.log_event(Text(f"faults set to {plan}: applied from the next trial", style="bold yellow"))
        else:
            self.log_event(Text(f"faults set to {plan} for the next sweep", style="yellow"))
        self._update_counts()
        self.notify(f"faults: {plan}")

    def action_export(self) -> None:
        """Show the profile YAML and write it where the user says."""
        rec = self.recommendation
        if rec is None or getattr(rec, "best", None) is None:
            self.notify("Nothing to export yet: run a sweep to the end (s).", severity="warning")
            return
        name = profile_name(self.values.model if self.values else self._model)
        host = getattr(self.sweep, "host", None) or self.host
        info = getattr(self.sweep, "info", None) or self.model_info
        try:
            profile = self.driver.build_profile(rec, name, self.spec, host, info, online=self._online_section())
        except TunerError as e:
            self.notify(str(e), severity="error", title="export")
            return

        def written(path: Path | None) -> None:
            if path is not None:
                self.log_event(Text(f"profile written to {path}", style="bold green"))
                self.notify(f"wrote {path}", title="export")

        self.push_screen(ExportScreen(profile, self.profiles_dir / f"{name}.yaml"), written)

    def action_load_profile(self) -> None:
        """Load a profile to compare against."""

        def loaded(result: tuple[Path, Any] | None) -> None:
            if result is not None:
                self.compared = result
                self._show_compare()
                self.query_one(TabbedContent).active = "results"

        self.push_screen(LoadProfileScreen(f"{self.profiles_dir}/"), loaded)

    def _load_compare(self, path: Path) -> None:
        from tuner.profile import load_profile

        try:
            self.compared = (path, load_profile(path))
        except TunerError as e:
            self.notify(str(e), severity="error", title="profile")
            return
        self._show_compare()

    def _show_compare(self) -> None:
        assert self.compared is not None
        path, profile = self.compared
        best = getattr(self.recommendation, "best", None)
        diff: list[str] = []
        if self.host is not None and profile.host.fingerprint != self.host.fingerprint():
            diff = [f"profile host: {profile.host.summary}"]
        self.query_one(ResultsPane).compare(str(path), profile, best, diff)

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

    # -- the online search (Online view) --------------------------------------------------------------
    @property
    def online_running(self) -> bool:
        return self._online_worker is not None and self._online_worker.is_running

    @on(Button.Pressed, "#online-start")
    def action_online_start(self) -> None:
        """Search the highest request rate within the p99 objective on the sweep's best configurations."""
        pane = self.query_one(OnlinePane)
        if self.online_running:
            self.notify("An online search is running: Stop ends it.")
            return
        if self.running:
            self.notify("A sweep is running: the online search starts from its results, when it ends.")
            return
        rec = self.recommendation
        if rec is None or getattr(rec, "best", None) is None or self.values is None:
            self.notify("Run a sweep to the end first (s): the online search starts from its best configurations.",
                        severity="warning")  # fmt: skip
            return
        make = getattr(self.driver, "make_online", None)
        if make is None:
            self.notify("This driver has no online search.", severity="warning")
            return
        from tuner.options import finite

        try:
            objective = finite(
                "p99 objective", self.query_one("#online-p99", Input).value, gt=0, what="milliseconds"
            )
        except BadInput as e:
            pane.status(Text(str(e), style="bold red"))
            self.notify(str(e), severity="error")
            return
        from tuner.bench.online.sweep import engine_configs

        configs = engine_configs(self.results, rec.best.config, 2)
        self.online_outcome = None
        pane.reset(objective)
        pane.status(f"online search starting: p99 <= {objective:g} ms on {len(configs)} configuration(s)")
        self.query_one(TabbedContent).active = "online"
        self._online_cancel = threading.Event()
        self._online_worker = self._run_online(make, self.values, configs, objective, self._online_cancel)
        self._sync_buttons()
        self.log_event(Text(f"online search started: p99 <= {objective:g} ms", style="bold"))

    @on(Button.Pressed, "#online-stop")
    def action_online_stop(self) -> None:
        """Stop the online search; the steps already measured are kept."""
        if self.online_running:
            self._online_cancel.set()
            self.query_one(OnlinePane).status("stopping the online search…")

    @work(thread=True, exclusive=True, exit_on_error=False, group="online")
    def _run_online(self, make: Any, values: FormValues, configs: list[Any], objective: float,
                    cancel: threading.Event) -> None:  # fmt: skip
        relay = Relay(self.post_message)
        try:
            t0 = time.perf_counter()
            try:
                osweep, ospec = make(values, configs, objective, relay, step_s=self.online_step_s,
                                     closed_loop=list(self.results))  # fmt: skip
            except TunerError as e:
                self.post_message(OnlineFailed(str(e)))
                return
            self._online_spec = ospec
            found = osweep.run(cancel)
            relay.flush()
            from tuner.bench.online.sweep import OnlineOutcome, summarize

            outcome = OnlineOutcome(ospec, configs, list(found), summarize(found, ospec), time.perf_counter() - t0)
            rec = None
            best = getattr(self.recommendation, "best", None)
            prefer = outcome.winner_config
            if prefer is not None and best is not None and prefer != best.config:
                try:
                    rec = self.driver.recommend(self.results, objective_of(values), self.host, prefer=prefer)  # type: ignore[call-arg]
                except (TypeError, TunerError):
                    rec = None  # a driver without `prefer`: keep the closed-loop recommendation
            self.post_message(OnlineResults(outcome, rec))
        except TunerError as e:
            relay.flush()
            self.post_message(OnlineFailed(str(e)))
        except Exception as e:  # never let a bug kill the app silently
            relay.flush()
            self.post_message(OnlineFailed(f"{type(e).__name__}: {e}"))
        finally:
            self.post_message(OnlineEnded())

    def on_online_results(self, msg: OnlineResults) -> None:
        self.online_outcome = msg.outcome
        if msg.rec is not None:
            self.recommendation = msg.rec
            self.query_one(ResultsPane).show(msg.rec, self.results, self.interrupted)
        pane = self.query_one(OnlinePane)
        pane.show_outcome(msg.outcome)
        for line in msg.outcome.summary.words[:2]:
            self.log_event(Text(line.strip(), style="bold green" if msg.outcome.summary.winner else "yellow"))
        self._update_plan()

    def on_online_failed(self, msg: OnlineFailed) -> None:
        self.query_one(OnlinePane).status(Text("✗ " + msg.text, style="bold red"))
        self.log_event(Text("✗ online: " + msg.text, style="bold red"))
        self.notify(msg.text, severity="error", title="online")

    def on_online_ended(self, msg: OnlineEnded) -> None:
        self._sync_buttons()

    def _online_section(self) -> Any:
        """The profile's online: section from the last online search (None without a winner)."""
        o = self.online_outcome
        if o is None or o.summary.winner is None:
            return None
        from tuner.bench.online.report import online_section

        return online_section(o.summary, o.results, o.request, self.results, measuring_s=o.elapsed_s)

    @on(Input.Submitted, "#plan-rate")
    @on(Input.Changed, "#plan-rate")
    def _plan_rate_changed(self) -> None:
        self._update_plan()

    def _update_plan(self) -> None:
        """The capacity plan for the rate typed in, from the last online search (tuner.plan)."""
        pane = self.query_one(OnlinePane)
        text = self.query_one("#plan-rate", Input).value.strip()
        section = self._online_section()
        if section is None:
            pane.show_plan("the capacity plan appears here once the online search has a max rate")
            return
        if not text:
            pane.show_plan(f"type a target rate: this host sustains {si(section.max_rate_at_slo)} requests/s "
                           f"within p99 {section.objective_p99_ms:g} ms")  # fmt: skip
            return
        from tuner.bench.profiles import profile_for_plan
        from tuner.options import finite
        from tuner.plan import make_plan

        try:
            rate = finite("target rate", text, gt=0, what="requests/s")
            host = getattr(self.sweep, "host", None) or self.host
            best = getattr(self.recommendation, "best", None)
            profile = profile_for_plan(section, model=self.values.model if self.values else self._model,
                                       host=host, best=best)  # fmt: skip
            plan = make_plan(profile, rate)
        except TunerError as e:
            pane.show_plan(Text(str(e), style="bold red"))
            return
        body = Text("\n".join(plan.words[:2]), style="bold")
        for w in plan.warnings:
            body.append("\nwarning: " + w, style="yellow")
        body.append("\n" + plan.words[3].strip() + "\n" + plan.fit_note, style="dim")
        pane.show_plan(body)
