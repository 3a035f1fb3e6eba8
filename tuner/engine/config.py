"""Engine settings and the outcome records it returns."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from tuner.engine.faults import FaultPlan
from tuner.errors import ConfigError

BACKENDS = ("process", "thread", "inline", "ray")
#: where the ray backend puts its actors: across nodes (Ray's SPREAD) or filling one node first
PLACEMENTS = ("SPREAD", "PACK")
HEDGE_CANCEL = ("finish", "kill")


@dataclass(frozen=True)
class Backoff:
    """Full-jitter exponential backoff: ``uniform(0, min(cap, base * 2**attempt))`` (AWS architecture blog)."""

    base_s: float = 0.05
    cap_s: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2.0 ** max(0, attempt - 1))))


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs a model. Every field is one a profile's ``recommended`` records."""

    backend: str = "process"
    workers: int = 1
    partition_size: int = 64
    threads_per_worker: int | None = 1  # None: leave BLAS/OpenMP threads as the library sets them
    timeout_s: float | None = None  # per partition attempt; None: no timeout
    retries: int = 2  # further attempts after the first
    retry_on: tuple[str, ...] = ()  # exception type names retried; crashes, timeouts, memory always are
    backoff: Backoff = field(default_factory=Backoff)
    memory_limit_mb: float | None = None  # per worker RSS; process and ray backends
    isolate: bool = True  # split a partition that failed for good, to isolate the failing items
    prefetch: int = 16  # at most this many partitions queued per worker (adapts to service time)
    faults: FaultPlan = field(default_factory=FaultPlan)
    sample_interval_s: float = 0.5  # ResourceSample cadence (when someone listens)
    start_method: str | None = None  # None: forkserver where available, else spawn
    placement: str = "SPREAD"  # ray backend: SPREAD (actors across nodes) or PACK (fill a node first)
    # Hedged stragglers (tuner.engine.hedging): a partition still running this long after it started
    # is sent again to an idle worker, the first result wins. None: no hedging. A profile's value is
    # the p95 service time it measured.
    hedge_after_s: float | None = None
    hedge_budget: float = 0.05  # hedges sent <= this share of partitions completed (+ a small burst)
    # the losing copy: "finish" (it runs to its end, its result is dropped) or "kill" (a losing first
    # copy's process worker is ended and replaced; measured slower, see tuner.engine.hedging)
    hedge_cancel: str = "finish"

    def __post_init__(self) -> None:
        # nan slips through every comparison below (nan <= 0 is False) and inf would mean "never":
        # every number must be finite first, with the field and its range named.
        for name, rule in _RANGES.items():
            value = getattr(self, name) if "." not in name else getattr(self.backoff, name.split(".")[1])
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number {rule} (got {value})")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend '{self.backend}': choose from {', '.join(BACKENDS)}")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1 (got {self.workers})")
        if self.partition_size < 1:
            raise ConfigError(f"partition_size must be >= 1 (got {self.partition_size})")
        if self.threads_per_worker is not None and self.threads_per_worker < 1:
            raise ConfigError(f"threads_per_worker must be >= 1 (got {self.threads_per_worker})")
        if self.timeout_s is not None and self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0 (got {self.timeout_s})")
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0 (got {self.retries})")
        if self.backoff.base_s < 0 or self.backoff.cap_s < self.backoff.base_s:
            raise ConfigError(f"backoff needs 0 <= base_s <= cap_s (got {self.backoff})")
        if self.memory_limit_mb is not None and self.memory_limit_mb <= 0:
            raise ConfigError(f"memory_limit_mb must be > 0 (got {self.memory_limit_mb})")
        if self.prefetch < 1:
            raise ConfigError(f"prefetch must be >= 1 (got {self.prefetch})")
        if self.sample_interval_s <= 0:
            raise ConfigError(f"sample_interval_s must be > 0 (got {self.sample_interval_s})")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement '{self.placement}': choose from {', '.join(PLACEMENTS)}")
        if self.hedge_after_s is not None and self.hedge_after_s <= 0:
            raise ConfigError(f"hedge_after_s must be > 0 (got {self.hedge_after_s})")
        if not 0 < self.hedge_budget <= 1:
            raise ConfigError(f"hedge_budget must be > 0 and <= 1 (got {self.hedge_budget})")
        if self.hedge_cancel not in HEDGE_CANCEL:
            raise ConfigError(f"hedge_cancel '{self.hedge_cancel}': choose from {', '.join(HEDGE_CANCEL)}")
        if self.faults.hang > 0 and self.timeout_s is None and self.backend in ("process", "ray"):
            raise ConfigError("a hang fault needs a timeout (timeout_s), or the hung partition never ends")


#: every numeric setting and its range, for the one-line message about a nan or an infinity
_RANGES = {
    "workers": ">= 1",
    "partition_size": ">= 1",
    "threads_per_worker": ">= 1",
    "timeout_s": "> 0",
    "retries": ">= 0",
    "backoff.base_s": ">= 0",
    "backoff.cap_s": ">= base_s",
    "memory_limit_mb": "> 0",
    "prefetch": ">= 1",
    "sample_interval_s": "> 0",
    "hedge_after_s": "> 0",
    "hedge_budget": "> 0 and <= 1",
}


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
