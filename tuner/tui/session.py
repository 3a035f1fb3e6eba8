"""What a view reads of the session it belongs to: the app's facts, behind a small interface.

The app holds what the whole session knows (the host, the last sweep's values, results and
recommendation, the online outcome). A view that starts work from them (the online search) or
builds something out of all of them (the export) is handed the app typed as :class:`Session`: it
reads what it needs without importing the app, and changes the session only by posting messages
to it, so every fact has one writer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from tuner.bench.types import TrialResult
    from tuner.tui.driver import Driver
    from tuner.tui.widgets.setup import FormValues


class Session(Protocol):
    """The session's facts, as views read them (UI thread only)."""

    driver: Driver
    values: FormValues | None  # the last sweep's setup (None: no sweep yet)
    spec: Any  # the last sweep's request (tuner.bench.request.SweepRequest)
    recommendation: Any  # tuner.bench.recommend.Recommendation, or None
    online_step_s: float  # seconds per load step of an online search

    @property
    def host(self) -> Any:
        """This machine as probed (tuner.hardware.Host; None until the probe ends)."""

    @property
    def results(self) -> list[TrialResult]:
        """The last sweep's finished trials."""

    @property
    def running(self) -> bool:
        """A closed-loop sweep is running."""

    @property
    def online_outcome(self) -> Any:
        """The last online search's outcome (tuner.bench.online.sweep.OnlineOutcome), or None."""

    @property
    def best(self) -> TrialResult | None:
        """The recommended trial, if there is one."""

    @property
    def measured_host(self) -> Any:
        """The host the last sweep measured on (the probed one until a sweep says)."""

    @property
    def measured_info(self) -> Any:
        """What the last sweep found of the model (the setup's check until a sweep says)."""

    @property
    def model_spec(self) -> str:
        """The model of the last sweep, or the one in the setup before any."""


def online_section(outcome: Any, closed_loop: list[TrialResult]) -> Any:
    """The profile's ``online:`` section from an online search's outcome (None without a winner)."""
    if outcome is None or outcome.summary.winner is None:
        return None
    from tuner.bench.online.report import online_section as section

    return section(outcome.summary, outcome.results, outcome.request, closed_loop, measuring_s=outcome.elapsed_s)
