"""Engine settings and the outcome records it returns."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, fields
from typing import Any

from tuner.backends import BACKENDS, PLACEMENTS
from tuner.deployment import HEDGE_CANCEL, Deployment, setting
from tuner.engine.faults import FaultPlan
from tuner.errors import ConfigError

__all__ = ["BACKENDS", "HEDGE_CANCEL", "PLACEMENTS", "Backoff", "EngineConfig", "Failure"]


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: ``uniform(0, min(cap, base * 2**attempt))`` (AWS architecture blog)."""

    # the defaults are the deployment's (declared once, in tuner.deployment)
    base_s: float = Deployment.backoff_base_s
    cap_s: float = Deployment.backoff_cap_s

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2.0 ** max(0, attempt - 1))))


@dataclass(frozen=True)
class EngineConfig(Deployment):
    """How the engine runs a model: a :class:`~tuner.deployment.Deployment` (every setting a profile
    records and the runtime applies) plus the engine's own knobs, which no profile records."""

    faults: FaultPlan = field(default_factory=FaultPlan)
    isolate: bool = True  # split a partition that failed for good, to isolate the failing items
    prefetch: int = setting(
        16,
        "At most this many partitions queued per worker (adapts to the service time).",
        low=1,
        integer=True,
        profile="no",
    )
    sample_interval_s: float = setting(
        0.5, "ResourceSample cadence (when someone listens).", unit="s", low=0, low_open=True, profile="no"
    )
    start_method: str | None = None  # None: forkserver where available, else spawn

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.faults.hang > 0 and self.timeout_s is None and self.kind.can_kill:
            raise ConfigError("a hang fault needs a timeout (timeout_s), or the hung partition never ends")

    @classmethod
    def of_deployment(cls, deployment: Deployment, **engine: Any) -> EngineConfig:
        """``deployment`` with the engine's own knobs (``faults``, ``sample_interval_s`` ...)."""
        shared = {f.name: getattr(deployment, f.name) for f in fields(Deployment)}
        return cls(**shared, **engine)

    def deployment(self) -> Deployment:
        """The deployment alone, without the engine's own knobs."""
        return Deployment(**{f.name: getattr(self, f.name) for f in fields(Deployment)})

    @property
    def backoff(self) -> Backoff:
        """The retry delay of the ledger."""
        return Backoff(self.backoff_base_s, self.backoff_cap_s)


@dataclass(frozen=True, slots=True)
class Failure:
    """The outcome of an item that failed for good, in place of its output."""

    cause: str  # exception | timeout | crash | memory | load | cancelled
    message: str
    attempts: int
    exc_type: str | None = None
    traceback: str | None = None
    exitcode: int | None = None
    signal: str | None = None
    injected: bool = False

    def __str__(self) -> str:
        return (
            f"{self.cause}: {self.message} (after {self.attempts} attempt{'s' if self.attempts != 1 else ''})"
        )

    def to_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}
