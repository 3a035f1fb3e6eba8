"""The benchmark's vocabulary: what a trial is, what it yields, and what a sweep reports as it runs.

These are the contract between the measuring code (``measure``, ``search``, ``session``), its two
drivers (the headless ``tuner bench`` and the TUI) and ``recommend``. Plain dataclasses, JSON-able
through :func:`dataclasses.asdict`, so a trial can be written as one JSON line and read back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Protocol

from tuner.deployment import Deployment
from tuner.hostload import OutsideProcess

#: A trial's configuration is a deployment (:class:`tuner.deployment.Deployment`): what is measured
#: is what a profile records and the runtime applies. Its swept settings (backend, workers, threads,
#: partition size, adapter knobs, placement) are its key and label.
TrialConfig = Deployment


@dataclass(frozen=True)
class Objective:
    """What to optimise and the constraints a recommendation must meet."""

    goal: str = "throughput"  # "throughput" (maximise) | "p99" (minimise)
    p99_budget_ms: float | None = None
    memory_budget_mb: float | None = None
    min_throughput: float | None = None


@dataclass
class OutsideLoad:
    """What the rest of the machine did while a trial measured (:mod:`tuner.hostload`).

    Every figure is a share of the usable cores (1.0 = all of them) used by processes other than
    tuner and its workers, plus CPU steal on a VM.
    """

    cpu: float  # mean outside load over the windows the trial's figures come from
    cpu_max: float  # the busiest measurement window
    steal: float  # of which stolen by the hypervisor (mean over the figures' windows)
    swap_mb_s: float  # swap traffic, MB/s (mean over the figures' windows)
    windows: list[float]  # outside load of every measurement window, parallel to TrialResult.windows
    limit: float | None  # a window above this was discarded; None: nothing was discarded by rule
    top: list[OutsideProcess] = field(default_factory=list)  # busiest others, when a window was over

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutsideLoad:
        d = dict(d)
        d["top"] = [OutsideProcess(**p) for p in d.get("top", [])]
        return cls(**d)


@dataclass
class TrialResult:
    """Everything measured for one configuration. Latency is item latency: see ``latency_ms``."""

    config: TrialConfig
    throughput: float  # items/s over the measurement windows (median of windows)
    throughput_ci: tuple[float, float]  # bootstrap 95% CI of the window throughputs' median
    # Item latency, ms: from the moment the item's partition is submitted to the engine until its
    # outcome is back in the caller — queueing in the engine, transport, the model call and the
    # return trip; every item of a partition shares its partition's latency. Keys p50 p90 p95 p99.
    latency_ms: dict[str, float]
    latency_ci_ms: dict[str, tuple[float, float]]  # bootstrap 95% CIs, same keys
    service_ms: dict[str, float]  # time inside the model call per partition: p50 p95 p99 p999 max
    cpu_share: float  # CPU of the workers as a share of usable cores (0..1+)
    peak_rss_mb: dict[str, float]  # {"per_worker": max over workers, "total": max of the sum}
    stable: bool  # last 3 windows within tolerance before the time cap
    windows: list[float]  # throughput of each measurement window, items/s
    warmup_s: float  # worker start + model load + first partitions, excluded from the figures
    cold_start_s: float  # worker start to model loaded (max over workers)
    measured_s: float  # time spent in measurement windows
    items: int  # items completed in the measurement windows
    failures: dict[str, int] = field(default_factory=dict)  # items failed for good, by cause
    faults_seen: dict[str, int] = field(default_factory=dict)  # partition attempts failed, by cause
    retries: int = 0
    faults: str | None = None  # fault plan string, if one was set
    clean_throughput: float | None = None  # same config measured without the fault plan
    clean_p99_ms: float | None = None
    feasible: bool = True
    infeasible_reasons: list[str] = field(default_factory=list)
    error: str | None = None  # the trial could not run (e.g. the model failed to load)
    # -- the host around the measurement (issue 12) --
    outside: OutsideLoad | None = None  # what other processes used while it measured
    # Windows left out of the figures because the host was busy (indices into ``windows``). The
    # trial measured on to collect clean ones; ``windows`` keeps every window, discarded or not.
    discarded_windows: list[int] = field(default_factory=list)
    # Too few clean windows by the time cap: the figures include busy windows and read low.
    contaminated: bool = False
    # The OS threads that ran, next to what the knobs allow (tuner.bench.threads.evidence); "over"
    # marks a trial where more threads ran than configured.
    threads: dict[str, Any] = field(default_factory=dict)
    # The measurement window used, seconds: the setting, or longer for a slow model (a window holds
    # a few partition service times; tuner.bench.trial_run). 0: not recorded (older results).
    window_s: float = 0.0
    # What the trial was: "default" (the framework's default deployment, in the caller's process),
    # "default-worker" (the same in one process worker), "" for the search's trials.
    role: str = ""

    def to_dict(self) -> dict[str, Any]:
        """One JSON line's content; the configuration as its swept settings (Deployment.swept)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "config"}
        d = {"config": self.config.swept(), **asdict_values(d)}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialResult:
        d = dict(d)
        d["config"] = Deployment.from_swept(d["config"])
        d["throughput_ci"] = tuple(d["throughput_ci"])
        d["latency_ci_ms"] = {k: tuple(v) for k, v in d.get("latency_ci_ms", {}).items()}
        if d.get("outside") is not None:
            d["outside"] = OutsideLoad.from_dict(d["outside"])
        return cls(**d)

    @property
    def status(self) -> str:
        """One word for its state: error / infeasible / contaminated (host busy) / unstable / stable."""
        if self.error:
            return "error"
        if not self.feasible:
            return "infeasible"
        if self.contaminated:
            return "contaminated"
        return "stable" if self.stable else "unstable"

    def clean_windows(self) -> list[float]:
        """The windows that were not discarded, in order."""
        dropped = set(self.discarded_windows)
        return [w for i, w in enumerate(self.windows) if i not in dropped]

    def reported_windows(self, stable_windows: int = 3) -> list[float]:
        """The windows the figures are over: the last ``stable_windows`` clean ones of a stable
        trial, every clean one of an unstable trial, every window of a contaminated one."""
        if self.contaminated:
            return list(self.windows)
        clean = self.clean_windows()
        return clean[-max(1, stable_windows) :] if self.stable else clean


def asdict_values(d: dict[str, Any]) -> dict[str, Any]:
    """A mapping whose dataclass values become plain dicts (JSON-able)."""
    return {k: asdict(v) if is_dataclass(v) and not isinstance(v, type) else v for k, v in d.items()}


class Strategy(Protocol):
    """A search strategy (Triton Model Analyzer's config-generator shape): the runner never knows which.

    ``next()`` gives the next configuration to measure, or None when done; ``report(result)`` feeds
    each measurement back before the next call.
    """

    name: str

    def next(self) -> TrialConfig | None: ...

    def report(self, result: TrialResult) -> None: ...


# -- what a sweep reports while it runs (the TUI turns each into a Textual message) -----------------
@dataclass(frozen=True)
class TrialStarted:
    index: int  # 0-based trial number in this sweep
    config: TrialConfig
    planned: int  # the strategy's estimate of the total trial count (may change)


@dataclass(frozen=True)
class TrialPhase:
    index: int
    phase: str  # "warmup" | "measuring" | "stable" | "unstable" | "clean" (re-run without faults)
    detail: str  # "workers starting, model loading 0.4 s", "stable: 3 windows within 5%"


@dataclass(frozen=True)
class WindowMeasured:
    """One measurement window (or warm-up tick) of the current trial."""

    index: int
    t: float  # seconds since the trial started
    phase: str  # "warmup" | "measuring"
    throughput: float  # items/s in this window
    p50_ms: float
    p95_ms: float
    p99_ms: float
    outside: float | None = None  # outside load in this window, share of the usable cores
    discarded: str | None = None  # why the window was left out (host busy), None when it counts


@dataclass(frozen=True)
class EngineNote:
    """An engine event worth a line in an event log: a fault, a worker death, a recovery."""

    index: int
    t: float
    text: str
    level: str = "info"  # "info" | "warning" | "error"


@dataclass(frozen=True)
class TrialFinished:
    index: int
    result: TrialResult


@dataclass(frozen=True)
class SweepFinished:
    results: list[TrialResult]
    interrupted: bool
    elapsed_s: float


SweepMessage = TrialStarted | TrialPhase | WindowMeasured | EngineNote | TrialFinished | SweepFinished
SweepCallback = Callable[[SweepMessage], None]
