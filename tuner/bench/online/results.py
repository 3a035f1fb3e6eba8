"""The records an online sweep produces: one step's result (a point of the latency-vs-rate curve).

Plain data, JSON-able (``to_dict``/``from_dict``), below every other module of the online sweep so
that its messages, its search and its steps all read it without importing one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

__all__ = ["StepRaw", "StepResult"]


@dataclass(frozen=True)
class StepRaw:
    """Per-request figures of one step, in schedule order (seconds; not serialised)."""

    intended_s: np.ndarray  # intended send time, from the step's start
    sent_s: np.ndarray  # actual send time, from the step's start (nan: never sent)
    latency_s: np.ndarray  # completion − intended send time (nan unless the request succeeded)


@dataclass
class StepResult:
    """One step at one intended rate: what was offered, what came back, and the verdict."""

    rate: float
    duration_s: float
    objective_ms: float
    requests: int  # scheduled
    sent: int  # sent at all (late ones included)
    offered: float  # requests/s sent before the step's end
    achieved: float  # requests/s completed successfully by the end + the drain allowance
    completed: int  # requests that succeeded (any time before the drain deadline)
    failed: int  # requests with an item that failed for good
    rejected: int  # requests refused by the runtime's backpressure (Overloaded)
    unfinished: int  # requests still in flight at the drain deadline
    items_per_request: float
    latency_ms: dict[str, float]
    latency_ci_ms: dict[str, tuple[float, float]]
    queue: list[tuple[float, int]]  # (seconds since the start, items in flight), downsampled
    queue_slope: float  # items/s over the step's second half
    queue_growing: bool
    batches: dict[int, int]  # partitions the dynamic batcher formed, by size
    late: int  # requests sent more than LATE_S after their intended time
    max_lag_ms: float
    generator_behind: bool
    sustainable: bool = False
    reasons: list[str] = field(default_factory=list)
    #: cores the serving side used over the step: the runtime's process and its workers in process
    #: (the load generator's sender thread included), or the server's processes over HTTP on this
    #: host; None when not measured
    cpu_cores: float | None = None
    outside: float | None = None  # other processes' load over the step (share of the usable cores)
    raw: StepRaw | None = field(default=None, repr=False, compare=False)

    @property
    def p99_ms(self) -> float | None:
        return self.latency_ms.get("p99")

    def verdict(self) -> str:
        """``sustainable`` or ``unsustainable: <reasons>``."""
        return "sustainable" if self.sustainable else "unsustainable: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without ``raw``)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "raw"}
        d["batches"] = {str(k): v for k, v in self.batches.items()}
        d["latency_ms"] = dict(self.latency_ms)
        d["latency_ci_ms"] = {k: list(v) for k, v in self.latency_ci_ms.items()}
        d["queue"] = [list(x) for x in self.queue]
        d["reasons"] = list(self.reasons)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepResult:
        d = dict(d)
        d["batches"] = {int(k): v for k, v in d.get("batches", {}).items()}
        d["latency_ci_ms"] = {k: tuple(v) for k, v in d.get("latency_ci_ms", {}).items()}
        d["queue"] = [tuple(x) for x in d.get("queue", [])]
        return cls(**d)
