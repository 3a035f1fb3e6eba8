"""How far the sweep is: the run view's two-line header (with its progress bar) and its counts line.

The header owns the sweep's clock: when it began, the trial running and how long finished trials
took; it redraws itself once a second and whenever the run view's ``phase`` changes (bound with
``data_bind``). The counts line follows the run view's ``results`` and ``faults`` the same way.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import var
from textual.widgets import ProgressBar, Static

from tuner.bench.types import TrialResult, TrialStarted
from tuner.engine.faults import FaultPlan
from tuner.tui.format import duration, sweep_outlook
from tuner.tui.widgets.setup import FormValues

TICK_S = 1.0  # the elapsed and left times move once a second


class RunHeader(Horizontal):
    """``trial 3 · process ×2 · 1 thread · partition 64 · stable: …`` over ``42s elapsed · 1m left · …``."""

    phase: var[str] = var("")
    """What the running trial is doing (bound to the run view's)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(id="run-head")
        self._clock = clock
        self.values: FormValues | None = None
        self.started_at: float | None = None  # None: no sweep is measuring, the clock stands still
        self.planned = 0  # the strategy's guess of its trials (a grid knows; adaptive guesses low)
        self.current = ""  # the running trial's configuration
        self.done = 0
        self._trial_t0: float | None = None
        self._trial_s: list[float] = []  # wall time of each finished trial, for the outlook

    def compose(self) -> ComposeResult:
        yield Static("no sweep yet — press s to start", id="run-status")
        yield ProgressBar(total=100, show_eta=False, show_percentage=False, id="progress")

    def on_mount(self) -> None:
        self.set_interval(TICK_S, self.tick)

    def begin(self, values: FormValues, started_at: float | None = None) -> None:
        """A sweep with ``values`` starts (at ``started_at``, default now)."""
        self.values = values
        self.started_at = self._clock() if started_at is None else started_at
        self.planned = self.done = 0
        self.current = ""
        self._trial_t0 = None
        self._trial_s = []

    def trial_started(self, m: TrialStarted) -> None:
        """A trial starts; the status shows it with the next ``phase``."""
        self.planned = m.planned
        self.current = m.config.label()
        self._trial_t0 = self._clock()

    def trial_finished(self) -> None:
        """A trial ended: one more done, and its wall time tells the outlook how long trials take."""
        self.done += 1
        if self._trial_t0 is not None:
            self._trial_s.append(self._clock() - self._trial_t0)
            self._trial_t0 = None

    def watch_phase(self) -> None:
        self.tick()

    def finished(self, text: str) -> None:
        """The sweep ended: ``text`` stays, the clock stops, the bar fills."""
        self.started_at = None
        self.say(text)
        self.query_one(ProgressBar).update(total=100, progress=100)

    def failed(self, text: Text) -> None:
        """The sweep stopped on an error: ``text`` stays (the clock stops, or its tick would cover it)."""
        self.started_at = None
        self.say(text)

    def say(self, text: str | Text) -> None:
        """Show ``text`` in the status until the next tick replaces it."""
        self.query_one("#run-status", Static).update(text)

    def tick(self) -> None:
        """Redraw the status and the bar from the clock (a no-op while no sweep is measuring)."""
        values = self.values
        if self.started_at is None or values is None or not self.is_mounted:
            return
        elapsed = self._clock() - self.started_at
        budget = values.budget_s
        if not self.current:
            status = f"starting: loading the model, probing\n{duration(elapsed)} elapsed"
        else:
            o = sweep_outlook(
                strategy=values.strategy,
                planned=self.planned,
                done=self.done,
                trial_s=self._trial_s,
                budget_s=budget,
                elapsed_s=elapsed,
                max_trials=values.max_trials,
            )
            left = f"{'≤ ' if o.upper_bound else ''}{duration(o.left_s)} left"
            # Two lines, each cut with an ellipsis rather than wrapped (tuner.tcss): a wrapped first
            # line used to push the time line out of the two-row header.
            second = " · ".join(x for x in (f"{duration(elapsed)} elapsed", left, o.outlook) if x)
            status = f"{o.trial} · {self.current} · {self.phase}\n{second}"
        self.say(status)
        self.query_one(ProgressBar).update(total=budget, progress=min(elapsed, budget))


class RunCounts(Static):
    """``15,360 items · 15,360 outputs · 0 lost · 14 retried · faults injected: crash=0.05``."""

    results: var[list[TrialResult]] = var(list)
    """The sweep's finished trials (bound to the run view's)."""
    faults: var[FaultPlan] = var(FaultPlan)
    """The fault plan in force (bound to the run view's, which has the app's)."""

    def __init__(self) -> None:
        super().__init__("", id="counts")

    def watch_results(self) -> None:
        self.update(self.text())

    def watch_faults(self) -> None:
        self.update(self.text())

    def text(self) -> str:
        """The line for the trials so far: every item is an output or a loss."""
        results = self.results
        outputs = sum(r.items for r in results)
        lost = sum(sum(r.failures.values()) for r in results)
        retried = sum(r.retries for r in results)
        faults = sum(sum(r.faults_seen.values()) for r in results)
        text = f"{outputs + lost:,} items · {outputs:,} outputs · {lost:,} lost · {retried:,} retried"
        if faults:
            text += f" · {faults:,} faults seen"
        return text + f" · faults injected: {self.faults}"
