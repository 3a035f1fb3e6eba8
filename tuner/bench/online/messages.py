"""What an online sweep reports while it runs (the TUI turns each into part of a Textual message).

A light module (standard library only at import): the TUI's relay imports it to coalesce the live
:class:`StepProgress` figures without importing numpy or the load generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    from tuner.bench.online.results import StepResult
    from tuner.bench.online.search import CandidateResult
    from tuner.deployment import Deployment

__all__ = [
    "CandidateFinished",
    "CandidateStarted",
    "OnlineFinished",
    "OnlineMessage",
    "StepFinished",
    "StepProgress",
]


@dataclass(frozen=True)
class StepProgress:
    """Live figures of the running step (a few a second; the TUI coalesces them)."""

    candidate: int
    step: int
    t: float  # seconds since the step started
    rate: float  # intended requests/s
    sent: int
    done: int
    p50_ms: float  # over the requests finished in the last second (nan: none yet)
    p99_ms: float
    queue: int  # items in flight now


@dataclass(frozen=True)
class CandidateStarted:
    index: int
    candidate: Deployment  # a configuration with its batching setting
    planned: int  # candidates this sweep expects to search


@dataclass(frozen=True)
class StepFinished:
    candidate: int
    step: int
    result: StepResult


@dataclass(frozen=True)
class CandidateFinished:
    index: int
    result: CandidateResult


@dataclass(frozen=True)
class OnlineFinished:
    results: list[CandidateResult]
    interrupted: bool
    elapsed_s: float


OnlineMessage = Union[CandidateStarted, StepProgress, StepFinished, CandidateFinished, OnlineFinished]  # noqa: UP007
ONLINE_MESSAGES = (CandidateStarted, StepProgress, StepFinished, CandidateFinished, OnlineFinished)
