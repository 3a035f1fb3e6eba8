"""The Online view: the open-loop search runs from here; latency against offered rate, the running step
live, verdicts and a capacity plan are shown here.

::

    ┌ status: candidate 2/6 · thread ×2 · batch ≤64 · delay 2 ms · step 3 at 12.0k/s ─── [p99 ms] [Start] [Stop]
    ├ latency vs offered rate (p50, p99; objective ─ line; knee │ marked) ┬ this step, live: p99 and queue depth
    ├ steps: candidate · rate · offered · achieved · p99 · verdict        ┴ plan: [target requests/s] → words
    └

    app: Start ─► start() ── @work(thread) _search: driver.make_online ─► online sweep (child process) ──┐
                  apply() ◄── SweepBatch (the same Relay as the closed-loop sweep) ◄───────────────────────┤
    app.online_outcome ◄── OnlineResults (bubbles on: the outcome and a recommendation around its winner) ◄┘
        └──data_bind──► outcome ─► the winner's curve, the words, the capacity plan

The search starts from the session's last sweep (:class:`tuner.tui.session.Session`), read when
Start is pressed; what it finds is the session's, so it goes to the app, which hands the outcome
back through ``data_bind``. Charts are only marked dirty as messages arrive and drawn by ``flush``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import Button, Input, Label, Static
from textual.worker import Worker, WorkerError

from tuner.bench.online.messages import (
    ONLINE_MESSAGES,
    CandidateFinished,
    CandidateStarted,
    OnlineFinished,
    StepFinished,
    StepProgress,
)
from tuner.bench.online.search import candidate_label
from tuner.bench.types import TrialConfig, TrialResult
from tuner.errors import BadInput, TunerError
from tuner.tui.driver import objective_of
from tuner.tui.format import si
from tuner.tui.messages import LogLine, OnlineFailed, OnlineResults, SweepBatch
from tuner.tui.relay import Relay
from tuner.tui.session import Session, online_section
from tuner.tui.widgets.online_charts import OnlineCurveChart, OnlineLiveChart, OnlineStepsTable
from tuner.tui.widgets.setup import FormValues

__all__ = ["OnlineCurveChart", "OnlineJob", "OnlineLiveChart", "OnlinePane", "OnlineStepsTable"]

NO_PLAN = "the capacity plan appears here once the online search has a max rate"


@dataclass(frozen=True)
class OnlineJob:
    """One online search, as Start found the session: made on the UI thread, read by the worker."""

    make: Callable[..., tuple[Any, Any]]  # the driver's make_online
    recommend: Callable[..., Any]  # the driver's recommend (with prefer=, when it has it)
    values: FormValues  # the closed-loop sweep's setup
    configs: list[tuple[TrialConfig, float]]  # the candidates' engines, best first, with their items/s
    objective_ms: float  # p99 objective
    step_s: float  # seconds per load step
    results: list[TrialResult]  # the closed-loop trials
    best: TrialResult  # the closed-loop recommendation
    host: Any

    def recommend_around(self, winner: TrialConfig | None) -> Any:
        """The closed-loop recommendation again, around the online winner (None: keep the current one)."""
        if winner is None or winner == self.best.config:
            return None
        try:
            return self.recommend(self.results, objective_of(self.values), self.host, prefer=winner)
        except (TypeError, TunerError):
            return None  # a driver without `prefer`: keep the closed-loop recommendation


class OnlinePane(Vertical):
    """Everything the online search shows, and its worker (see the module docstring)."""

    outcome: var[Any] = var(None)
    """The last search's outcome (bound to the app's ``online_outcome``)."""
    running: var[bool] = var(False)
    """The search's worker is running."""
    sweep_running: var[bool] = var(False)
    """A closed-loop sweep is running (the app says so): a search starts from its end, not during it."""

    def __init__(self, session: Session, objective_ms: float = 50.0, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._session = session
        self._objective = objective_ms
        self.candidates: dict[int, Any] = {}
        self.steps: dict[int, list[Any]] = {}
        self.current: int | None = None
        self.planned = 0
        self.results: list[Any] = []
        self._cancel = threading.Event()
        self._worker: Worker[None] | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="online-head"):
            yield Static("no online search yet — run a sweep (s), then Start online", id="online-status")
            yield Label("p99 ms", id="online-p99-label")
            yield Input(f"{self._objective:g}", id="online-p99", restrict=r"[0-9.]*", compact=True)
            yield Button("Start online", id="online-start", variant="success", compact=True)
            yield Button("Stop", id="online-stop", variant="error", compact=True, disabled=True)
        with Grid(id="online-charts"):
            yield OnlineCurveChart()
            yield OnlineLiveChart()
        with Horizontal(id="online-bottom"):
            yield OnlineStepsTable()
            with Vertical(id="plan-box") as box:
                box.border_title = "capacity plan"
                yield Input(
                    placeholder="plan for requests/s, e.g. 5000",
                    id="plan-rate",
                    restrict=r"[0-9.]*",
                    compact=True,
                )
                with VerticalScroll(id="plan-scroll"):
                    yield Static(NO_PLAN, id="plan-text")

    def on_mount(self) -> None:
        self._curve = self.query_one(OnlineCurveChart)
        self._live = self.query_one(OnlineLiveChart)
        self._table = self.query_one(OnlineStepsTable)

    def on_unmount(self) -> None:
        # However the app ends, the online sweep is told to stop.
        self._cancel.set()

    # -- the buttons ---------------------------------------------------------------------------------
    def watch_running(self) -> None:
        self._sync_buttons()

    def watch_sweep_running(self) -> None:
        self._sync_buttons()

    def _sync_buttons(self) -> None:
        self.query_one("#online-start", Button).disabled = self.running or self.sweep_running
        self.query_one("#online-stop", Button).disabled = not self.running

    # -- the search's life ---------------------------------------------------------------------------
    def start(self) -> bool:
        """Search the highest request rate within the p99 objective on the last sweep's best
        configurations; False (a notification says why) when it cannot start now."""
        s = self._session
        if self.running:
            self.notify("An online search is running: Stop ends it.")
            return False
        if s.running:
            self.notify("A sweep is running: the online search starts from its results, when it ends.")
            return False
        best = s.best
        if best is None or s.values is None:
            self.notify("Run a sweep to the end first (s): the online search starts from its best configurations.",
                        severity="warning")  # fmt: skip
            return False
        make = getattr(s.driver, "make_online", None)
        if make is None:
            self.notify("This driver has no online search.", severity="warning")
            return False
        from tuner.options import finite

        try:
            objective = finite("p99 objective", self.query_one("#online-p99", Input).value, gt=0, what="milliseconds")
        except BadInput as e:
            self.status(Text(str(e), style="bold red"))
            self.notify(str(e), severity="error")
            return False
        from tuner.bench.online.sweep import engine_configs

        configs = engine_configs(s.results, best.config, 2)
        job = OnlineJob(make, s.driver.recommend, s.values, configs, objective, s.online_step_s, s.results, best, s.host)
        self.reset(objective)
        self.status(f"online search starting: p99 <= {objective:g} ms on {len(configs)} configuration(s)")
        self._cancel = threading.Event()
        self._worker = self._search(job, self._cancel)
        self.running = True
        self.post_message(LogLine(Text(f"online search started: p99 <= {objective:g} ms", style="bold")))
        return True

    @on(Button.Pressed, "#online-stop")
    def stop(self) -> None:
        """Stop the search; the steps already measured are kept."""
        if self.running:
            self._cancel.set()
            self.status("stopping the online search…")

    async def stop_and_wait(self) -> None:
        """Stop the search and wait for its worker: after this its child process is gone."""
        self._cancel.set()
        worker = self._worker
        if worker is not None and worker.is_running:
            try:
                await worker.wait()
            except WorkerError:
                pass  # the worker already said what went wrong (OnlineFailed)
            # Now, not when its StateChanged arrives: a restart asks at once whether it still runs.
            self.running = worker.is_running

    @work(thread=True, exclusive=True, exit_on_error=False, group="online")
    def _search(self, job: OnlineJob, cancel: threading.Event) -> None:
        """The online sweep, off the UI thread (in a child process, like the closed-loop sweep)."""
        relay = Relay(self.post_message)
        try:
            t0 = time.perf_counter()
            try:
                osweep, ospec = job.make(job.values, job.configs, job.objective_ms, relay, step_s=job.step_s,
                                         closed_loop=list(job.results))  # fmt: skip
            except TunerError as e:
                self.post_message(OnlineFailed(str(e)))
                return
            found = osweep.run(cancel)
            relay.flush()
            from tuner.bench.online.sweep import OnlineOutcome, summarize

            outcome = OnlineOutcome(ospec, job.configs, list(found), summarize(found, ospec), time.perf_counter() - t0)
            self.post_message(OnlineResults(outcome, job.recommend_around(outcome.winner_config)))
        except TunerError as e:
            relay.flush()
            self.post_message(OnlineFailed(str(e)))
        except Exception as e:  # never let a bug kill the app silently
            relay.flush()
            self.post_message(OnlineFailed(f"{type(e).__name__}: {e}"))

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._worker:
            self.running = event.worker.is_running

    # -- what the search says (UI thread) ------------------------------------------------------------
    def on_sweep_batch(self, batch: SweepBatch) -> None:
        batch.stop()
        for m in batch.messages:
            if isinstance(m, ONLINE_MESSAGES):
                self.apply(m)

    def on_online_failed(self, msg: OnlineFailed) -> None:
        msg.stop()
        self.status(Text("✗ " + msg.text, style="bold red"))
        self.post_message(LogLine(Text("✗ online: " + msg.text, style="bold red")))
        self.notify(msg.text, severity="error", title="online")

    def reset(self, objective_ms: float) -> None:
        """A new search with this p99 objective: the steps, candidates and charts start empty."""
        self._objective = objective_ms
        self.candidates, self.steps, self.current, self.planned, self.results = {}, {}, None, 0, []
        self._table.clear()
        self._live.clear()
        self._curve.show("", [], objective_ms)

    def apply(self, m: Any) -> None:
        """One online message (CandidateStarted, StepProgress, StepFinished, CandidateFinished, OnlineFinished)."""
        if isinstance(m, StepProgress):
            self._live.add(m)
            c = self.candidates.get(m.candidate)
            self.status(
                f"candidate {m.candidate + 1}/{self.planned} · {candidate_label(c) if c else ''} · step {m.step + 1} at "
                f"{si(m.rate)}/s\nlive: p50 {m.p50_ms:.3g} ms · p99 {m.p99_ms:.3g} ms · {m.queue} items in flight "
                f"· {m.done:,} of {m.sent:,} sent done"
            )
        elif isinstance(m, CandidateStarted):
            self.candidates[m.index] = m.candidate
            self.steps[m.index] = []
            self.current, self.planned = m.index, m.planned
            self._curve.show(candidate_label(m.candidate), [], self._objective)
            self.status(f"candidate {m.index + 1}/{m.planned} · {candidate_label(m.candidate)} · warming up")
        elif isinstance(m, StepFinished):
            self.steps.setdefault(m.candidate, []).append(m.result)
            c = self.candidates.get(m.candidate)
            if c is not None:
                self._table.add_step(c, m.candidate, m.result)
                self._curve.show(candidate_label(c), self.steps[m.candidate], self._objective)
        elif isinstance(m, CandidateFinished):
            self.results.append(m.result)
        elif isinstance(m, OnlineFinished):
            self.results = list(m.results)
            word = "stopped" if m.interrupted else "finished"
            self.status(f"online search {word}: {len(m.results)} candidates in {m.elapsed_s:.0f} s")

    def watch_outcome(self, outcome: Any) -> None:
        """The search's conclusion: the winner's curve, the words in the status line and the log, a plan."""
        if outcome is None:
            return
        win = outcome.summary.winner
        if win is not None:
            self._curve.show(candidate_label(win.candidate) + " (winner)", win.steps, self._objective)
        words = outcome.summary.words
        second = next(
            (w for w in words[1:] if w.strip().startswith("batch delay")), words[1] if len(words) > 1 else ""
        )
        self.status(words[0] + ("\n" + second.strip() if second else ""))
        for line in words[:2]:
            self.post_message(LogLine(Text(line.strip(), style="bold green" if win else "yellow")))
        self.update_plan()

    # -- the capacity plan ---------------------------------------------------------------------------
    @on(Input.Submitted, "#plan-rate")
    @on(Input.Changed, "#plan-rate")
    def update_plan(self) -> None:
        """The capacity plan for the rate typed in, from the last online search (tuner.plan)."""
        text = self.query_one("#plan-rate", Input).value.strip()
        s = self._session
        section = online_section(self.outcome, s.results)
        if section is None:
            self.show_plan(NO_PLAN)
            return
        if not text:
            self.show_plan(f"type a target rate: this host sustains {si(section.max_rate_at_slo)} requests/s "
                           f"within p99 {section.objective_p99_ms:g} ms")  # fmt: skip
            return
        from tuner.bench.profiles import profile_for_plan
        from tuner.options import finite
        from tuner.plan import make_plan

        try:
            rate = finite("target rate", text, gt=0, what="requests/s")
            profile = profile_for_plan(section, model=s.model_spec, host=s.measured_host, best=s.best)
            plan = make_plan(profile, rate)
        except TunerError as e:
            self.show_plan(Text(str(e), style="bold red"))
            return
        body = Text("\n".join(plan.words[:2]), style="bold")
        for w in plan.warnings:
            body.append("\nwarning: " + w, style="yellow")
        body.append("\n" + plan.words[3].strip() + "\n" + plan.fit_note, style="dim")
        self.show_plan(body)

    # -- small pieces --------------------------------------------------------------------------------
    def status(self, text: str | Text) -> None:
        """The two-line status at the top of the view."""
        self.query_one("#online-status", Static).update(text)

    def show_plan(self, text: str | Text) -> None:
        """The words in the capacity plan box."""
        self.query_one("#plan-text", Static).update(text)

    def flush(self) -> None:
        """Draw the charts whose data changed (the app's chart timer, while this view is on screen)."""
        with self.app.batch_update():
            self._curve.flush()
            self._live.flush()
