"""The run view: the closed-loop sweep runs from here, and everything that moves while it runs is here.

::

    app ── start(values, driver, host, info) ──► RunPane ── @work(thread) _sweep ─────────────────────┐
                                                   driver.make_sweep ─► sweep.run(cancel)             │
                                                   ─► recommend           │ on_message                │
                                                                          ▼                           │
    on_sweep_batch ◄── SweepBatch (coalesced ≤ 4 Hz) ◄── Relay ◄──────────┘   SweepReady, SweepResults ┘
      ├─ charts: marked dirty; flush() draws them       (they bubble on to the app: the session's facts)
      ├─ header (trial, phase, clock) · event log
      └─ results ──data_bind──► TrialsTable · ComparisonChart · RunCounts
         phase   ──data_bind──► RunHeader · ThroughputChart (its title)

The worker is the only place here that runs benchmark code; the widgets change only in message
handlers on the UI thread. ``stop`` sets the sweep's cancel Event, ``stop_and_wait`` also waits for
the worker, so no engine worker process outlives it; finished trials are already in the results file.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical
from textual.reactive import var
from textual.worker import Worker, WorkerError

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
from tuner.errors import TunerError
from tuner.tui.driver import Driver, objective_of, space_text
from tuner.tui.format import duration, si, status_of
from tuner.tui.messages import OutsideMeasured, SweepBatch, SweepFailed, SweepReady, SweepResults
from tuner.tui.relay import Relay
from tuner.tui.widgets.charts import Chart, ComparisonChart, LatencyChart, ThroughputChart
from tuner.tui.widgets.events import EventLog
from tuner.tui.widgets.progress import RunCounts, RunHeader
from tuner.tui.widgets.setup import FormValues
from tuner.tui.widgets.trials import TrialsTable

LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "bold red"}
#: Phases that end a trial's measurement: the log says which way it went.
VERDICTS = ("stable", "unstable", "clean", "contaminated")


class RunPane(Vertical):
    """The closed-loop sweep: its worker, its progress, its charts, its table and its event log."""

    results: var[list[TrialResult]] = var(list)
    """This sweep's finished trials, in the order they finished."""
    phase: var[str] = var("", always_update=True)
    """What the running trial is doing (``stable: 3 windows within 5%``); always_update: a new trial
    starts in ``warm-up`` again, and the header must redraw for its new configuration."""
    faults: var[FaultPlan] = var(FaultPlan)
    """The fault plan in force (bound to the app's): the counts line says it."""
    running: var[bool] = var(False)
    """The sweep's worker is running (the app watches it to enable its buttons)."""

    def __init__(self, clock: Callable[[], float], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._clock = clock
        self.sweep: Any = None  # the pipeline's stage (LocalStage | RemoteSweep), once it exists
        self.interrupted = False  # the last sweep was stopped before its end
        self._cancel = threading.Event()
        self._worker: Worker[None] | None = None
        self._pending_faults: FaultPlan | None = None  # changed before the stage existed

    def compose(self) -> ComposeResult:
        yield RunHeader(self._clock).data_bind(RunPane.phase)
        with Grid(id="charts"):
            yield ThroughputChart().data_bind(phase_text=RunPane.phase)
            yield LatencyChart()
            yield ComparisonChart().data_bind(trials=RunPane.results)
        with Horizontal(id="run-bottom"):
            yield TrialsTable().data_bind(RunPane.results)
            yield EventLog(self._clock)
        yield RunCounts().data_bind(RunPane.results, RunPane.faults)

    def on_mount(self) -> None:
        self._header = self.query_one(RunHeader)
        self._throughput = self.query_one(ThroughputChart)
        self._latency = self.query_one(LatencyChart)
        self._charts = list(self.query(Chart))
        self._events = self.query_one(EventLog)

    def on_unmount(self) -> None:
        # However the app ends, the sweep's engine is told to stop.
        self._cancel.set()

    # -- the sweep's life ----------------------------------------------------------------------------
    def begin(self, values: FormValues, started_at: float | None = None) -> None:
        """A sweep with ``values`` begins (at ``started_at``, default now): clear the view, start the clock."""
        self.results = []
        self.interrupted = False
        self.sweep = None
        self._pending_faults = None
        self._throughput.reset("")
        self._latency.reset()
        self._events.clear()
        self._header.begin(values, started_at)
        self.phase = ""
        for chart in self._charts:
            chart.redraw()

    def start(self, values: FormValues, driver: Driver, host: Any, info: Any) -> None:
        """Start a sweep with ``values`` in a thread worker; ``host`` and ``info`` are what is known
        already (None: the sweep finds out)."""
        self.begin(values)
        self._cancel = threading.Event()
        self._worker = self._sweep(values, driver, host, info, self._cancel)
        self.running = True
        faults = f" · faults {values.faults}" if values.faults.active else ""
        self.add_event(
            Text(f"sweep started: {values.model} · {values.strategy} · budget {values.budget_s:g} s{faults}",
                 style="bold")
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the sweep; the trials already finished are kept."""
        if not self.running:
            return
        self._cancel.set()
        self.add_event(Text("stopping: the current trial is abandoned, finished trials are kept", style="yellow"))
        self._header.say("stopping…")

    async def stop_and_wait(self) -> None:
        """Stop the sweep and wait for its worker thread: after this no engine worker remains."""
        self._cancel.set()
        worker = self._worker
        if worker is not None and worker.is_running:
            try:
                await worker.wait()
            except WorkerError:
                pass  # the worker already said what went wrong (SweepFailed)
            # Now, not when its StateChanged arrives: a restart asks at once whether it still runs.
            self.running = worker.is_running

    def set_faults(self, plan: FaultPlan) -> None:
        """Take ``plan`` from the running sweep's next trial, or say it is for the next sweep."""
        if not self.running:
            self.add_event(Text(f"faults set to {plan} for the next sweep", style="yellow"))
            return
        if self.sweep is not None:
            self.sweep.set_faults(plan if plan.active else None)
        else:
            self._pending_faults = plan  # the stage is being prepared: it takes them when ready
        self.add_event(Text(f"faults set to {plan}: applied from the next trial", style="bold yellow"))

    @work(thread=True, exclusive=True, exit_on_error=False, group="sweep")
    def _sweep(self, values: FormValues, driver: Driver, host: Any, info: Any, cancel: threading.Event) -> None:
        """The sweep, off the UI thread: prepare the stage, run it, recommend. Everything it has to
        say is posted; recommending bootstraps intervals, so it is done here too."""
        relay = Relay(self.post_message)
        try:
            try:
                sweep, spec = driver.make_sweep(values, relay, host, info)
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
                    rec = driver.recommend(results, objective_of(values), getattr(sweep, "host", host))
                except TunerError as e:
                    self.post_message(SweepFailed(f"recommend: {e}"))
            self.post_message(SweepResults(rec, list(results)))
        except Exception as e:  # never let a bug kill the app silently: say it in the log
            relay.flush()
            self.post_message(SweepFailed(f"{type(e).__name__}: {e}"))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._worker:
            self.running = event.worker.is_running

    # -- what the sweep says (UI thread) -------------------------------------------------------------
    def on_sweep_ready(self, msg: SweepReady) -> None:
        # Not stopped: the app keeps the stage's request and host too.
        self.sweep = msg.sweep
        if self._pending_faults is not None:
            plan, self._pending_faults = self._pending_faults, None
            self.sweep.set_faults(plan if plan.active else None)
        if msg.space_text:
            self.add_event(Text(f"space: {msg.space_text}", style="dim"))

    def on_sweep_failed(self, msg: SweepFailed) -> None:
        msg.stop()
        self.add_event(Text("✗ " + msg.text, style="bold red"))
        self._header.failed(Text("✗ " + msg.text, style="bold red"))
        self.notify(msg.text, severity="error", title="sweep")

    def on_sweep_batch(self, batch: SweepBatch) -> None:
        batch.stop()
        outside: float | None = None
        with self.app.batch_update():
            for m in batch.messages:
                if isinstance(m, WindowMeasured) and m.outside is not None:
                    outside = m.outside
                self._apply(m)
            if batch.dropped_notes:
                self.add_event(Text(f"… {batch.dropped_notes} more engine events in this burst", style="dim"))
        if outside is not None:
            # The host bar shows the load the sweep's windows are judged by (the batch's latest).
            self.post_message(OutsideMeasured(outside))

    def _apply(self, m: SweepMessage) -> None:
        # Charts are only marked dirty here: flush() draws them at most twice a second.
        if isinstance(m, WindowMeasured):
            self._throughput.add(m)
            self._latency.add(m)
            if m.discarded is not None:
                self.add_event(Text(f"window at {m.t:.1f} s discarded, host busy: {m.discarded}", style="yellow"),
                               m.index)  # fmt: skip
        elif isinstance(m, TrialStarted):
            self._header.trial_started(m)
            self._throughput.reset(f"trial {m.index + 1}")
            self._latency.reset()
            self.add_event(Text(f"trial {m.index + 1}: {m.config.label()}", style="bold"), m.index)
            self.phase = "warm-up"
        elif isinstance(m, TrialPhase):
            # The detail usually starts with the phase word already ("stable: 3 windows within 5%").
            word = {"warmup": "warm-up"}.get(m.phase, m.phase)
            detail = m.detail or word
            self.phase = detail if detail.startswith(m.phase) else f"{word}: {detail}"
            if m.phase in VERDICTS:
                style = "yellow" if m.phase in ("unstable", "contaminated") else "dim"
                self.add_event(Text(self.phase, style=style), m.index)
        elif isinstance(m, EngineNote):
            self.add_event(Text(m.text, style=LEVEL_STYLE.get(m.level, "")), m.index)
        elif isinstance(m, TrialFinished):
            self._trial_finished(m.result, m.index)
        elif isinstance(m, SweepFinished):
            self.interrupted = m.interrupted
            word = "stopped" if m.interrupted else "finished"
            text = f"sweep {word}: {len(m.results)} trials in {duration(m.elapsed_s)}"
            self.add_event(Text(text, style="bold"))
            self._header.finished(text)

    def _trial_finished(self, r: TrialResult, index: int) -> None:
        self.results = [*self.results, r]
        self._header.trial_finished()
        st = status_of(r)
        line = Text(f"done: {si(r.throughput)} items/s · p99 {r.latency_ms.get('p99', 0):.2f} ms · {st}")
        if r.infeasible_reasons:
            line.append(" (" + "; ".join(r.infeasible_reasons) + ")")
        if r.error:
            line.append(f" — {r.error}")
        if r.discarded_windows:
            n = len(r.discarded_windows)
            line.append(f" · {n} busy window{'s' if n != 1 else ''} discarded")
        bad = st in ("error", "infeasible")
        line.stylize("bold red" if bad else "yellow" if st in ("unstable", "contaminated") else "green")
        self.add_event(line, index)

    # -- small pieces --------------------------------------------------------------------------------
    def add_event(self, text: Text, index: int | None = None) -> None:
        """One timestamped line in the event log (``index``: the trial it is about)."""
        self._events.add(text, index)

    def flush(self) -> None:
        """Draw the charts whose data changed (the app's chart timer, while this view is on screen)."""
        dirty = [c for c in self._charts if c.dirty]
        if dirty:
            with self.app.batch_update():
                for chart in dirty:
                    chart.redraw()
