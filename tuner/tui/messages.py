"""Textual messages: the searches' stream from their worker threads, and what views tell the app.

A worker never touches a widget: it posts these (``post_message`` is thread-safe) to the view that
owns it, whose handlers update its widgets on the UI thread. What the whole session needs to know
(the sweep's stage, its results, the online outcome) bubbles on to the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.message import Message

from tuner.bench.types import SweepMessage


@dataclass
class SweepBatch(Message):
    """Sweep messages in the order they happened, coalesced so the UI wakes a few times a second."""

    messages: list[SweepMessage]
    dropped_notes: int = 0  # engine notes left out of a storm (the log says how many)


@dataclass
class SweepReady(Message):
    """The sweep object exists (model and inputs validated): fault rates can now be changed."""

    sweep: Any
    space_text: str
    spec: Any = None


@dataclass
class SweepFailed(Message):
    """The sweep could not start or stopped with an error; ``text`` is one line for a person."""

    text: str


@dataclass
class ModelChecked(Message):
    """Result of validating the model field: ``error`` is None when the spec is good."""

    spec: str
    error: str | None
    info: Any = None


@dataclass
class HostProbed(Message):
    """The hardware probe finished."""

    host: Any


@dataclass
class SweepResults(Message):
    """The sweep returned: its results and the recommendation (None when none could be made)."""

    rec: Any
    results: list[Any]


@dataclass
class OnlineResults(Message):
    """The online search returned: its outcome (tuner.bench.online.sweep.OnlineOutcome) and the
    recommendation recomputed around its winner (None: keep the current one)."""

    outcome: Any
    rec: Any = None


@dataclass
class OnlineFailed(Message):
    """The online search could not start or stopped with an error; ``text`` is one line."""

    text: str


@dataclass
class LogLine(Message):
    """A view has something for the event log (the app writes it there)."""

    text: Text


@dataclass
class OutsideMeasured(Message):
    """A sweep's window was judged by this outside load (share of the usable cores): the host bar
    shows the same figure."""

    outside: float


@dataclass
class LiveScraped(Message):
    """One scrape of a watched server (``tuner watch``): its figures (tuner.serve.scrape.Figures) and
    its profile document (``GET /v1/profile``). One a second: nothing to coalesce."""

    figures: Any
    profile: dict[str, Any]


@dataclass
class LiveFailed(Message):
    """A scrape gave no figures (unreachable, or not a tuner server); ``text`` is one line."""

    text: str
