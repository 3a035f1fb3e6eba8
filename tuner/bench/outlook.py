"""How far a running sweep is: the trial, how it will end, the time left — one rule for every view.

``tuner bench``'s progress line and the TUI's header both say it; the rule lives here, below both.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ADAPTIVE_WORDS", "MIN_TRIALS_FOR_ESTIMATE", "SweepOutlook", "sweep_outlook"]

#: Finished trials needed before a budget-based estimate of the trial count is shown: one trial's
#: length (warm-up, model load) says little about the next; the median of two is a fair guess.
MIN_TRIALS_FOR_ESTIMATE = 2
ADAPTIVE_WORDS = "adaptive: until the budget or no better neighbour"


@dataclass(frozen=True)
class SweepOutlook:
    """What a sweep's header says about how far it is: the trial, the expected end, time left."""

    trial: str  # "trial 4 of 12" (grid: the count is known) or "trial 4" (adaptive)
    outlook: str  # how the sweep ends: "adaptive: until the budget (~15 trials) or no better neighbour"
    left_s: float  # seconds left at most (adaptive) or expected (grid)
    upper_bound: bool  # True: left_s is a bound (the budget), not an estimate
    total: int | None  # the trial count to show a bar against, None while unknown


def sweep_outlook(
    *,
    strategy: str,
    planned: int,
    done: int,
    trial_s: Sequence[float],
    budget_s: float | None,
    elapsed_s: float,
    max_trials: int | None = None,
) -> SweepOutlook:
    """The header's words for a running sweep (``done`` trials finished, lasting ``trial_s``).

    A grid's trial count is known. An adaptive search stops when no neighbour beats the best, so
    its own "planned" (trials so far plus open neighbours) is a floor that reads as "trial 1 of ~2"
    at the start of a sweep that runs 12: it is never shown. The budget gives a ceiling — as many
    trials as fit at the median length so far — shown once ``MIN_TRIALS_FOR_ESTIMATE`` trials ended.
    """
    left = max(0.0, budget_s - elapsed_s) if budget_s is not None else float("inf")
    per = statistics.median(trial_s) if len(trial_s) >= MIN_TRIALS_FOR_ESTIMATE else None
    fit = None
    if per is not None and per > 0 and budget_s is not None:
        fit = max(done + 1, int(budget_s / per))
    if strategy == "grid":
        total = min(planned, max_trials) if max_trials else planned
        total = max(total, done + 1)
        eta = min(left, per * (total - done)) if per else left
        outlook = f"about {fit} of {total} fit the budget" if fit is not None and fit < total else ""
        return SweepOutlook(f"trial {done + 1} of {total}", outlook, eta, per is None, total)
    cap = min(x for x in (fit, max_trials) if x is not None) if fit or max_trials else None
    if fit is not None and (max_trials is None or fit <= max_trials):
        outlook = f"adaptive: until the budget (~{fit} trials) or no better neighbour"
    elif max_trials is not None:
        until = f"{max_trials} trials" + ("" if fit is not None else ", the budget")
        outlook = f"adaptive: until {until} or no better neighbour"
    else:
        outlook = ADAPTIVE_WORDS
    eta = min(left, per * (cap - done)) if per and cap else left
    return SweepOutlook(f"trial {done + 1}", outlook, eta, True, cap if fit is not None else None)
