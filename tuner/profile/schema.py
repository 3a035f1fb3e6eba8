"""The profile's schema: pydantic models, one per mapping of the YAML, with a description on every field.

A profile is the YAML that records what tuner recommends for one model on one host, the host it was
measured on and the evidence. Every model forbids unknown keys, takes numbers strictly (no "2" for 2,
no ``true`` for 1) and refuses NaN and infinity; cross-field rules (``cap_s >= base_s``, workers inside
the autoscale bounds on every platform) are model validators whose errors point at the key to fix.
The JSON Schema ``tuner schema`` prints is generated from these models.
"""

from __future__ import annotations

import sys
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tuner.profile.errors import explain, format_loc

SCHEMA_VERSION = 1
"""The profile format this tuner reads and writes; bumped on any incompatible change."""

Backend = Literal["process", "thread", "inline", "ray"]
Placement = Literal["SPREAD", "PACK"]
Platform = Literal["linux", "darwin", "windows"]
PLATFORMS: tuple[str, ...] = typing.get_args(Platform)

# Strict numbers: YAML already gives real ints and floats, so a string "2" or a boolean where a
# number belongs is a mistake to report, not something to coerce (pydantic's lax mode takes
# `workers: true` as 1). Ints are accepted where floats are expected; NaN and infinity are refused
# for every float by _Model's config.
_Str = Annotated[str, Strict()]

_Count = Annotated[int, Strict(), Field(ge=1)]
_NonNegInt = Annotated[int, Strict(), Field(ge=0)]
_Positive = Annotated[float, Strict(), Field(gt=0)]
_NonNeg = Annotated[float, Strict(), Field(ge=0)]
_NAME_PATTERN = r"^[a-zA-Z0-9_.-]+$"
_EXCEPTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"
_ExceptionName = Annotated[str, Strict(), Field(pattern=_EXCEPTION_PATTERN)]

PATTERN_WORDS = {
    _NAME_PATTERN: "may hold only letters, digits, '_', '.' and '-'",
    _EXCEPTION_PATTERN: "must be an exception type name such as 'ValueError' or 'mypkg.Transient'",
}
"""What each pattern of the schema means, in the words an error message uses."""


def _ordered_pair(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise PydanticCustomError(
            "interval_order", "low ({low}) > high ({high})", {"low": pair[0], "high": pair[1]}
        )
    return pair


_Interval = Annotated[tuple[_NonNeg, _NonNeg], AfterValidator(_ordered_pair)]


def _cross(detail: str, at: str = "") -> PydanticCustomError:
    """A cross-field error. ``at`` is a dotted key path (relative to the model that raises it)
    whose line the message should point at; the shown key path stays the model's own."""
    return PydanticCustomError("cross_field", "{detail}", {"detail": detail, "at": at})


class _Model(BaseModel):
    """Base of every profile model: unknown keys are errors, so typos never pass silently; no
    float field takes NaN or infinity (``.nan`` and ``.inf`` are valid YAML floats, infinity
    passes any lower bound, and a field without bounds would take either)."""

    model_config = ConfigDict(extra="forbid", validate_default=False, allow_inf_nan=False)


class InputInfo(_Model):
    """What the model was fed while measuring."""

    source: _Str = Field(
        description="Where the input came from, e.g. 'builtin generator' or 'file data.npy'."
    )
    kind: Literal["ndarray", "list"] | None = Field(
        default=None, description="How items were passed: rows of an ndarray, or a Python list."
    )
    item: _Str | None = Field(default=None, description="One item's type and shape, e.g. 'float32[256]'.")
    items: _NonNegInt | None = Field(default=None, description="How many items the measured input held.")


class ModelRef(_Model):
    """The model the profile is for. A reference only: loading a profile never imports or runs it."""

    spec: _Str = Field(
        min_length=1,
        description="Model spec as given to tuner: 'builtin:mlp', 'pkg.mod:fn', 'file.py:fn', 'model.onnx'.",
    )
    input: InputInfo | None = Field(default=None, description="The input used while measuring.")
    # Model files (second wave); absent for Python specs and in older profiles.
    format: Literal["onnx", "torch", "sklearn"] | None = Field(
        default=None, description="The model file's format, when the spec is a model file."
    )
    framework: _Str | None = Field(
        default=None, description="The framework that ran it, e.g. 'onnxruntime', 'torch', 'scikit-learn'."
    )
    framework_version: _Str | None = Field(
        default=None,
        description="The framework's version when measured; the runtime says when it runs another.",
    )
    allow_pickle: Annotated[bool, Strict()] | None = Field(
        default=None,
        description="The model file is a pickle (or holds types skops does not trust) and was loaded with "
        "consent. The runtime asks for that consent again (allow_pickle=True, tuner run --allow-pickle): "
        "a profile never turns into code execution by itself.",
    )
    method: Literal["predict", "predict_proba", "transform", "decision_function"] | None = Field(
        default=None, description="scikit-learn: the estimator method that was measured."
    )
    provider: _Str | None = Field(
        default=None, description="ONNX Runtime execution provider, when not the CPU one."
    )
    outputs: list[_Str] | None = Field(
        default=None, description="Output names, in order (several: each item's output is a tuple)."
    )


class HostInfo(_Model):
    """The machine the profile was measured on (from ``tuner.hardware``)."""

    fingerprint: _Str = Field(
        min_length=1,
        description="Stable hash of the hardware facts; a different host gives a different value.",
    )
    summary: _Str = Field(description="One human line describing the host.")
    usable_cores: _Count = Field(
        description="Cores this process may really use (affinity, container CPU quota)."
    )
    logical_cores: _Count = Field(description="Logical CPUs the OS reports.")
    physical_cores: _Count | None = Field(
        default=None, description="Physical cores, when the OS can tell (it cannot always)."
    )
    memory_total_gb: _Positive = Field(description="Memory available to this process, in GB.")
    cpu_model: _Str = Field(description="CPU model name as the OS reports it.")
    platform: Platform = Field(description="Operating system family.")
    machine: _Str = Field(description="CPU architecture, e.g. 'x86_64' or 'arm64'.")
    blas: _Str | None = Field(
        default=None, description="BLAS library and version numpy uses, e.g. 'openblas 0.3.31'."
    )


class Objective(_Model):
    """What the recommendation optimises, and the constraints it had to meet."""

    goal: Literal["throughput", "p99"] = Field(
        default="throughput", description="'throughput': most items/s; 'p99': lowest 99th-percentile latency."
    )
    p99_budget_ms: _Positive | None = Field(
        default=None, description="Reject configurations whose p99 exceeds this."
    )
    memory_budget_mb: _Positive | None = Field(
        default=None, description="Reject configurations whose total peak RSS exceeds this."
    )
    min_throughput: _Positive | None = Field(
        default=None, description="Reject configurations slower than this many items/s."
    )


class Backoff(_Model):
    """Retry delay: full jitter, uniform in [0, min(cap_s, base_s * 2**attempt)]."""

    base_s: _Positive = Field(default=0.05, description="Delay scale of the first retry, seconds.")
    cap_s: _Positive = Field(default=2.0, description="Longest delay between retries, seconds (>= base_s).")

    @model_validator(mode="after")
    def _cap_at_least_base(self) -> Backoff:
        if self.cap_s < self.base_s:
            raise _cross(f"cap_s ({self.cap_s:g}) < base_s ({self.base_s:g})", at="cap_s")
        return self


class Hedge(_Model):
    """Hedged stragglers: a partition still running after ``after_ms`` is sent again to an idle worker;
    the first result wins, the other copy's is dropped (Dean & Barroso, *The Tail at Scale*)."""

    after_ms: _Positive = Field(
        description="Send a second copy of a partition still running after this many ms to an idle "
        "worker; tuner bench sets it to the p95 service time it measured."
    )
    budget: Annotated[float, Strict(), Field(gt=0, le=1)] = Field(
        default=0.05,
        description="Most duplicate work, as a share of partitions completed (a token bucket: each "
        "unhedged partition earns this much of a hedge).",
    )


class HedgeOverride(_Model):
    """A partial :class:`Hedge` in a platform override; unset fields keep the base values (``hedge:
    null`` turns hedging off on that platform)."""

    after_ms: _Positive | None = Field(default=None, description="Overrides hedge.after_ms.")
    budget: Annotated[float, Strict(), Field(gt=0, le=1)] | None = Field(
        default=None, description="Overrides hedge.budget."
    )


class BackoffOverride(_Model):
    """A partial :class:`Backoff` in a platform override; unset fields keep the base values."""

    base_s: _Positive | None = Field(default=None, description="Delay scale of the first retry, seconds.")
    cap_s: _Positive | None = Field(default=None, description="Longest delay between retries, seconds.")


# One description per knob, shared by Recommended and RecommendedOverride so they cannot drift.
_REC_DOC = {
    "backend": "How workers run: 'process' (one process each), 'thread' (threads in this process), "
    "'inline' (in the caller, no pool), 'ray' (one Ray actor each, on the cluster in `cluster`).",
    "placement": "ray backend: 'SPREAD' (actors across nodes) or 'PACK' (fill a node's CPUs first); "
    "absent = SPREAD.",
    "workers": "Number of workers, each with the model loaded once.",
    "threads_per_worker": "BLAS / intra-op threads each worker may use.",
    "partition_size": "Items sent to a worker at once (the unit of dispatch).",
    "timeout_s": "Seconds one partition may run before its worker is replaced and the partition retried; "
    "absent or null = no timeout.",
    "retries": "Extra attempts for a failed partition before its items fail for good.",
    "retry_on": "Exception type names (e.g. 'ConnectionError') whose failures are retried; worker "
    "crashes, timeouts and memory-limit kills are always retried.",
    "backoff": "Delay between retries (full jitter).",
    "memory_limit_mb": "RSS above which a worker is replaced; absent or null = no limit.",
    "max_batch_delay_ms": "How long the runtime waits to fill a partition when items arrive one by one.",
    "hedge": "Hedged stragglers: re-send a partition still running past the delay to an idle worker, "
    "first result wins; absent or null = no hedging.",
    "knobs": "A model file adapter's own knobs besides threads, e.g. {execution_mode: sequential, "
    "spinning: false} for ONNX Runtime; absent = the adapter's defaults.",
}

# An adapter knob's value: a word, a switch or a count.
_Knob = Annotated[str, Strict()] | Annotated[bool, Strict()] | Annotated[int, Strict()]


class Recommended(_Model):
    """The configuration the runtime applies."""

    backend: Backend = Field(description=_REC_DOC["backend"])
    workers: _Count = Field(description=_REC_DOC["workers"])
    threads_per_worker: _Count = Field(description=_REC_DOC["threads_per_worker"])
    partition_size: _Count = Field(description=_REC_DOC["partition_size"])
    timeout_s: _Positive | None = Field(default=None, description=_REC_DOC["timeout_s"])
    retries: _NonNegInt = Field(default=3, description=_REC_DOC["retries"])
    retry_on: list[_ExceptionName] = Field(default_factory=list, description=_REC_DOC["retry_on"])
    backoff: Backoff = Field(default_factory=Backoff, description=_REC_DOC["backoff"])
    memory_limit_mb: _Positive | None = Field(default=None, description=_REC_DOC["memory_limit_mb"])
    max_batch_delay_ms: _NonNeg = Field(default=5.0, description=_REC_DOC["max_batch_delay_ms"])
    placement: Placement | None = Field(default=None, description=_REC_DOC["placement"])
    knobs: dict[_Str, _Knob] | None = Field(default=None, description=_REC_DOC["knobs"])
    # Backpressure (second wave). Absent in older profiles: the runtime then derives a bound itself.
    max_pending: _Count | None = Field(
        default=None,
        description="Items in flight (submitted, not yet resolved) the runtime accepts before its "
        "overload policy applies; derived from measured throughput × the latency objective. "
        "Absent or null = the runtime's default bound.",
    )
    overload: Literal["block", "timeout", "reject"] = Field(
        default="block",
        description="What submit() does at max_pending: 'block' until there is room, 'timeout' "
        "(block, then raise Overloaded), or 'reject' at once with Overloaded (a service's 503).",
    )
    # Hedged stragglers (second wave). Absent in older profiles: no hedging.
    hedge: Hedge | None = Field(default=None, description=_REC_DOC["hedge"])


class RecommendedOverride(_Model):
    """Any subset of :class:`Recommended`'s fields, merged over it on one platform."""

    backend: Backend | None = Field(default=None, description=_REC_DOC["backend"])
    workers: _Count | None = Field(default=None, description=_REC_DOC["workers"])
    threads_per_worker: _Count | None = Field(default=None, description=_REC_DOC["threads_per_worker"])
    partition_size: _Count | None = Field(default=None, description=_REC_DOC["partition_size"])
    timeout_s: _Positive | None = Field(default=None, description=_REC_DOC["timeout_s"])
    retries: _NonNegInt | None = Field(default=None, description=_REC_DOC["retries"])
    retry_on: list[_ExceptionName] | None = Field(default=None, description=_REC_DOC["retry_on"])
    backoff: BackoffOverride | None = Field(default=None, description=_REC_DOC["backoff"])
    memory_limit_mb: _Positive | None = Field(default=None, description=_REC_DOC["memory_limit_mb"])
    max_batch_delay_ms: _NonNeg | None = Field(default=None, description=_REC_DOC["max_batch_delay_ms"])
    placement: Placement | None = Field(default=None, description=_REC_DOC["placement"])
    knobs: dict[_Str, _Knob] | None = Field(default=None, description=_REC_DOC["knobs"])
    max_pending: _Count | None = Field(default=None, description="Overrides recommended.max_pending.")
    overload: Literal["block", "timeout", "reject"] | None = Field(
        default=None, description="Overrides recommended.overload."
    )
    hedge: HedgeOverride | None = Field(default=None, description=_REC_DOC["hedge"])


class PlatformOverrides(_Model):
    """Per-OS partial overrides of ``recommended`` (e.g. threads on macOS, where fork is unsafe)."""

    linux: RecommendedOverride | None = Field(default=None, description="Applied on Linux.")
    darwin: RecommendedOverride | None = Field(default=None, description="Applied on macOS.")
    windows: RecommendedOverride | None = Field(default=None, description="Applied on Windows.")


class Autoscale(_Model):
    """Bounds and pace of the runtime's autoscaler."""

    min_workers: _Count = Field(description="Never fewer workers than this.")
    max_workers: _Count = Field(description="Never more workers than this (>= min_workers).")
    target_backlog_per_worker: _Positive = Field(
        default=4.0, description="Queued partitions per worker above which the autoscaler adds a worker."
    )
    target_p99_ms: _Positive | None = Field(
        default=None, description="Also scale up when the recent p99 latency exceeds this."
    )
    upscale_delay_s: _NonNeg = Field(
        default=0.0, description="How long the need must persist before adding workers, seconds."
    )
    downscale_delay_s: _NonNeg = Field(
        default=300.0,
        description="How long the need must persist before removing workers, seconds "
        "(300 = the Kubernetes HPA default stabilisation window).",
    )
    interval_s: _Positive = Field(default=1.0, description="How often the autoscaler looks, seconds.")
    reasoning: _Str = Field(default="", description="Why these bounds, in words.")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Autoscale:
        if self.min_workers > self.max_workers:
            raise _cross(
                f"min_workers ({self.min_workers}) > max_workers ({self.max_workers})", at="min_workers"
            )
        return self


class Percentiles(_Model):
    """Latency percentiles in milliseconds."""

    p50: _NonNeg | None = Field(default=None, description="Median, ms.")
    p90: _NonNeg | None = Field(default=None, description="90th percentile, ms.")
    p95: _NonNeg | None = Field(default=None, description="95th percentile, ms.")
    p99: _NonNeg | None = Field(default=None, description="99th percentile, ms.")
    p999: _NonNeg | None = Field(default=None, description="99.9th percentile, ms.")


class LatencyIntervals(_Model):
    """Confidence intervals [low, high] of latency percentiles, in milliseconds."""

    p50: _Interval | None = Field(default=None, description="Interval of the median, ms.")
    p90: _Interval | None = Field(default=None, description="Interval of the 90th percentile, ms.")
    p95: _Interval | None = Field(default=None, description="Interval of the 95th percentile, ms.")
    p99: _Interval | None = Field(default=None, description="Interval of the 99th percentile, ms.")
    p999: _Interval | None = Field(default=None, description="Interval of the 99.9th percentile, ms.")


class PeakRss(_Model):
    """Peak resident memory while measuring, in MB."""

    per_worker: _NonNeg | None = Field(default=None, description="Largest worker's peak RSS, MB.")
    total: _NonNeg | None = Field(default=None, description="Peak RSS of all workers together, MB.")


class Baseline(_Model):
    """The naive configuration the recommendation is compared with."""

    name: _Str = Field(description="What the baseline is, e.g. 'naive Pool(os.cpu_count()) default threads'.")
    throughput: _Positive = Field(description="Its throughput, items/s.")
    p99_ms: _NonNeg | None = Field(default=None, description="Its p99 latency, ms.")


class Candidate(_Model):
    """One measured configuration (a runner-up or a point on the Pareto front)."""

    backend: Backend = Field(description=_REC_DOC["backend"])
    workers: _Count = Field(description=_REC_DOC["workers"])
    threads_per_worker: _Count = Field(description=_REC_DOC["threads_per_worker"])
    partition_size: _Count = Field(description=_REC_DOC["partition_size"])
    throughput: _Positive = Field(description="Measured throughput, items/s.")
    p99_ms: _NonNeg | None = Field(default=None, description="Measured p99 latency, ms.")


# -- the host around the measurement (issue 12) ---------------------------------------------------
class OutsideProcessInfo(_Model):
    """One process outside tuner that was busy while the recommendation was measured."""

    name: _Str = Field(description="Process name (an interpreter with what it ran, e.g. 'python pytest').")
    pid: _NonNegInt = Field(description="Its process id at the time.")
    share: _NonNeg = Field(description="CPU it used, as a share of the usable cores (1.0 = all).")


class HostLoad(_Model):
    """What the rest of the machine did while the recommended configuration was measured.

    Outside load = CPU used by processes other than tuner and its workers, plus CPU steal on a VM,
    as a share of the usable cores; a window above ``limit`` was discarded and measured again.
    """

    outside: _NonNeg = Field(
        description="Mean outside load over the windows the figures come from (share of the usable "
        "cores; 0.05 = 5%)."
    )
    outside_max: _NonNeg = Field(description="Outside load of the busiest measurement window.")
    steal: _NonNeg = Field(default=0.0, description="Of which CPU steal (hypervisor), mean.")
    swap_mb_s: _NonNeg = Field(default=0.0, description="Swap traffic in + out, MB/s, mean.")
    limit: _NonNeg | None = Field(
        default=None, description="Windows with more outside load than this were discarded."
    )
    windows: _NonNegInt = Field(description="Measurement windows, discarded ones included.")
    windows_discarded: _NonNegInt = Field(
        default=0, description="Windows left out of the figures because the host was busy."
    )
    contaminated: Annotated[bool, Strict()] = Field(
        default=False,
        description="True: too few clean windows could be had; the figures include busy windows "
        "and read low. Re-measure on a quiet host.",
    )
    top: list[OutsideProcessInfo] = Field(
        default_factory=list, description="The busiest other processes, when a window was over the limit."
    )

    def words(self, usable_cores: int | None = None) -> str:
        """``outside load 3% of 2 cores``; the discarded windows when some were; ``measured on a
        busy host`` with the load and the busiest others when no clean measurement could be had."""
        of = f" of {usable_cores} cores" if usable_cores else " of the usable cores"
        if self.contaminated:
            busiest = ", ".join(f"{p.name} (pid {p.pid}) {p.share:.0%}" for p in self.top)
            return (
                f"measured on a busy host: outside load {self.outside:.0%}{of}, {self.windows_discarded} "
                f"of {self.windows} windows busy — figures read low" + (f" ({busiest})" if busiest else "")
            )
        if self.windows_discarded:
            return (
                f"outside load {self.outside:.0%}{of} ({self.windows_discarded} of {self.windows} "
                "windows discarded as busy)"
            )
        return f"outside load {self.outside:.0%}{of}"


class ThreadEvidence(_Model):
    """The OS threads that really ran while measuring the recommended configuration."""

    threads_per_worker: _Count = Field(description="The threads knob the trial ran with.")
    scope: _Str = Field(
        description="'per worker process', or 'process (all workers share it)' for the thread and "
        "inline backends (never divided per worker)."
    )
    allowed: _Count = Field(description="Threads the knobs allow to run at once in that scope.")
    os_threads: _NonNegInt | None = Field(default=None, description="OS threads that existed (the largest worker).")
    ran: _NonNegInt | None = Field(
        default=None, description="Threads that used at least 5% of a core during the measurement windows."
    )
    over: Annotated[bool, Strict()] | None = Field(
        default=None, description="More threads ran than the knobs allow: a pool they do not reach."
    )
    pools: list[_Str] | None = Field(default=None, description="When over: the thread pools loaded there.")


class Evidence(_Model):
    """What was measured for the recommended configuration."""

    throughput: _Positive = Field(description="Items per second.")
    throughput_ci: _Interval | None = Field(
        default=None, description="Confidence interval of throughput [low, high]."
    )
    latency_ms: Percentiles | None = Field(default=None, description="Per-item latency percentiles, ms.")
    latency_ci_ms: LatencyIntervals | None = Field(
        default=None, description="Confidence intervals of the latency percentiles, ms."
    )
    service_time_ms: Percentiles | None = Field(
        default=None, description="Partition service time (on a worker, excluding queueing), ms."
    )
    cold_start_s: _NonNeg | None = Field(
        default=None, description="Time to first result from a cold pool, seconds."
    )
    cpu_share: _NonNeg | None = Field(
        default=None, description="Share of the usable cores kept busy (1.0 = all)."
    )
    peak_rss_mb: PeakRss | None = Field(default=None, description="Peak resident memory, MB.")
    trials_run: _NonNegInt | None = Field(default=None, description="Configurations measured.")
    strategy: _Str | None = Field(default=None, description="Search strategy, e.g. 'grid' or 'adaptive'.")
    measuring_s: _NonNeg | None = Field(default=None, description="Wall time spent measuring, seconds.")
    faults: _Str | None = Field(default=None, description="Fault plan injected while measuring, if any.")
    faults_observed: dict[str, _NonNegInt] | None = Field(
        default=None, description="Failures seen by kind, e.g. {crash: 3, timeout: 1}."
    )
    baseline: Baseline | None = Field(default=None, description="The naive configuration, for comparison.")
    runner_ups: list[Candidate] = Field(default_factory=list, description="Next-best configurations.")
    pareto: list[Candidate] = Field(default_factory=list, description="Throughput/p99 Pareto front.")
    host_load: HostLoad | None = Field(
        default=None, description="What other processes did while the recommendation was measured."
    )
    threads: ThreadEvidence | None = Field(
        default=None, description="The OS threads that ran, next to what the knobs allow."
    )


# -- online: serving under traffic (tuner bench --online) --------------------------------------------


def _low_high(pair: tuple[float, float | None]) -> tuple[float, float | None]:
    if pair[1] is not None and pair[0] > pair[1]:
        raise PydanticCustomError(
            "interval_order", "low ({low}) > high ({high})", {"low": pair[0], "high": pair[1]}
        )
    return pair


_OpenInterval = Annotated[tuple[_NonNeg, _NonNeg | None], AfterValidator(_low_high)]


class OnlineStep(_Model):
    """One step of open-loop load: a point of the latency-vs-rate curve."""

    rate: _Positive = Field(description="Intended requests/s of the step's schedule.")
    offered: _NonNeg = Field(description="Requests/s the load generator really sent before the step's end.")
    achieved: _NonNeg = Field(
        description="Requests/s that completed successfully by the step's end plus the drain allowance "
        "(the objective)."
    )
    p50_ms: _NonNeg | None = Field(default=None, description="Median request latency, ms, from the intended send time.")
    p99_ms: _NonNeg | None = Field(default=None, description="99th-percentile request latency, ms.")
    p999_ms: _NonNeg | None = Field(default=None, description="99.9th-percentile request latency, ms.")
    p99_ci_ms: _Interval | None = Field(default=None, description="95% confidence interval of the p99, ms.")
    keeps_up: Annotated[bool, Strict()] = Field(
        description="Every criterion but latency held: achieved >= 99% of offered, queue not growing, "
        "no refusals or failures, the generator on schedule."
    )
    sustainable: Annotated[bool, Strict()] = Field(
        description="keeps_up and p99 within the objective."
    )


class OnlineCandidate(_Model):
    """One configuration × batching setting the online sweep searched, and its max rate."""

    backend: Backend = Field(description=_REC_DOC["backend"])
    workers: _Count = Field(description=_REC_DOC["workers"])
    threads_per_worker: _Count = Field(description=_REC_DOC["threads_per_worker"])
    max_batch_size: _Count = Field(description="Most items the dynamic batcher put in one partition.")
    max_batch_delay_ms: _NonNeg = Field(description=_REC_DOC["max_batch_delay_ms"])
    max_rate_at_slo: _NonNeg = Field(description="Highest sustainable requests/s found (0: none).")
    p99_ms: _NonNeg | None = Field(default=None, description="p99 at that rate, ms.")
    steps: _NonNegInt = Field(default=0, description="Steps the search measured.")


class ScalingPoint(_Model):
    """Closed-loop throughput at one worker count (for the scalability fit)."""

    workers: _Count = Field(description="Workers.")
    throughput: _Positive = Field(description="Items/s (median of the trial's windows).")
    windows: list[_Positive] = Field(default_factory=list, description="Items/s of each measurement window.")


class ScalingCurve(_Model):
    """Closed-loop throughput against workers at one backend and thread count."""

    backend: Backend = Field(description=_REC_DOC["backend"])
    threads_per_worker: _Count = Field(description=_REC_DOC["threads_per_worker"])
    points: list[ScalingPoint] = Field(default_factory=list, description="One per worker count measured.")


class Online(_Model):
    """Serving under traffic: the highest request rate within a latency objective, measured open-loop.

    The runtime applies ``max_batch_size``, ``max_batch_delay_ms`` and ``max_pending`` from here
    (over ``recommended``; a ``platforms:`` entry that sets them explicitly still wins).
    """

    objective_p99_ms: _Positive = Field(description="The p99 latency objective the rates were searched at, ms.")
    arrivals: _Str = Field(description="Arrival process: 'poisson', 'constant' or 'trace FILE ...'.")
    request_size: _Str = Field(description="Items per request: '1', or a uniform range such as '1-8'.")
    items_per_request: _Positive = Field(default=1.0, description="Mean items per request.")
    step_s: _Positive = Field(description="Duration of each measured step, seconds.")
    backend: Backend = Field(description="Backend of the configuration measured best.")
    workers: _Count = Field(description="Its workers.")
    threads_per_worker: _Count = Field(description="Its threads per worker.")
    max_batch_size: _Count = Field(description="Most items per partition the dynamic batcher forms (submit).")
    max_batch_delay_ms: _NonNeg = Field(
        description="How long the batcher waits to fill a partition, ms: measured, the best for the rate "
        "at the objective."
    )
    max_pending: _Count = Field(
        description="Items in flight the runtime accepts before its overload policy applies: the max rate "
        "× items per request × the objective (Little's law), at least the peak in flight measured."
    )
    max_rate_at_slo: _NonNeg = Field(description="Highest sustainable requests/s with p99 within the objective.")
    max_rate_ci: _OpenInterval = Field(
        description="[low, high]: the rates the verdict is sure of either side of max_rate_at_slo "
        "(high null when no rate above failed)."
    )
    p99_at_max_ms: _NonNeg | None = Field(default=None, description="p99 at max_rate_at_slo, ms.")
    curve: list[OnlineStep] = Field(default_factory=list, description="Latency against rate, by rate.")
    candidates: list[OnlineCandidate] = Field(default_factory=list, description="Every candidate searched.")
    scaling: ScalingCurve | None = Field(
        default=None, description="Closed-loop throughput by workers (the capacity plan fits the USL to it)."
    )
    budget_s: _Positive | None = Field(default=None, description="Time budget of the online sweep, seconds.")
    measuring_s: _NonNeg | None = Field(default=None, description="Time it took, seconds.")
    reasoning: _Str = Field(default="", description="Why these settings, in words.")


class ActorResources(_Model):
    """What each Ray actor reserves (ray backend)."""

    num_cpus: _Positive = Field(description="CPUs each actor reserves (= threads_per_worker).")
    memory_mb: _Positive | None = Field(
        default=None,
        description="Memory each actor reserves (Ray's `memory` resource), MB; = memory_limit_mb.",
    )


class ClusterInfo(_Model):
    """The Ray cluster a ray-backend profile was measured on: how to reach it (its kind, never a
    host or a secret) and its shape, which the runtime's cluster check compares."""

    address: Literal["auto", "local", "client"] = Field(
        description="How to reach the cluster: 'auto' (the one this machine belongs to), 'local' "
        "(a head started on loopback for the run), 'client' (ray://host:port, given again with "
        "--ray-address or RAY_ADDRESS when the profile is run)."
    )
    ray_version: _Str = Field(description="Ray's version while measuring.")
    nodes: _Count = Field(description="Live nodes while measuring.")
    total_cpus: _Positive = Field(description="CPUs of all nodes together (Ray's logical CPUs).")
    node_shapes: list[_Str] = Field(
        default_factory=list, description="Each node's CPUs, e.g. '4 CPUs', sorted."
    )
    actor: ActorResources = Field(description="What each actor reserves.")


class ScalingProfile(_Model):
    """tuner scaling profile: how to run one model on one host, and the evidence for it."""

    schema_version: Literal[1] = Field(description="Profile format version; this tuner reads 1.")
    name: _Str = Field(pattern=_NAME_PATTERN, description="Profile name (letters, digits, '_', '.', '-').")
    created: datetime = Field(description="When the profile was made (ISO 8601, UTC).")
    tool_version: _Str = Field(description="Version of tuner that made it.")
    model: ModelRef = Field(description="The model the profile is for.")
    host: HostInfo = Field(description="The machine it was measured on.")
    objective: Objective = Field(
        default_factory=Objective, description="What was optimised, under which limits."
    )
    recommended: Recommended = Field(description="The configuration the runtime applies.")
    autoscale: Autoscale = Field(description="Autoscaler bounds and pace.")
    platforms: PlatformOverrides | None = Field(
        default=None, description="Per-OS partial overrides merged over `recommended`."
    )
    evidence: Evidence = Field(description="What was measured.")
    cluster: ClusterInfo | None = Field(
        default=None, description="The Ray cluster it was measured on (backend 'ray' only)."
    )
    online: Online | None = Field(
        default=None, description="Serving under traffic (tuner bench --online): max rate within a p99 objective."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ScalingProfile:
        if self.recommended.backend == "ray" and self.cluster is None:
            raise _cross(
                "recommended.backend is 'ray' but the profile has no `cluster` section",
                at="recommended.backend",
            )
        # Every platform's merged configuration must itself be valid, and start inside the
        # autoscaler's bounds: otherwise the runtime would find out only on that OS, in production.
        for platform in (None, *PLATFORMS):
            if platform is not None and self._override(platform) is None:
                continue
            where = "recommended" if platform is None else f"platforms.{platform}"
            try:
                rec = self.effective_recommended(platform) if platform else self.recommended
            except ValidationError as e:
                first = e.errors(include_url=False)[0]
                inner = [str(x) for x in first["loc"]]
                if (first.get("ctx") or {}).get("at"):
                    inner.append(first["ctx"]["at"])
                # Point at the override's key that broke the merge (the line falls back to the
                # nearest written parent when the key came from the base `recommended`).
                at = ".".join([where, *inner])
                key = format_loc(tuple(first["loc"]))
                why = explain(first, Recommended, PATTERN_WORDS)
                detail = f"{key}: {why}" if key else why
                raise _cross(f"{where}: merged over recommended, {detail}", at=at) from None
            lo, hi = self.autoscale.min_workers, self.autoscale.max_workers
            if not lo <= rec.workers <= hi:
                raise _cross(
                    f"{where}.workers ({rec.workers}) outside autoscale bounds {lo}–{hi}",
                    at=f"{where}.workers",
                )
        return self

    def _override(self, platform: str) -> RecommendedOverride | None:
        return getattr(self.platforms, platform, None) if self.platforms is not None else None

    def effective_recommended(self, platform: str | None = None) -> Recommended:
        """``recommended`` with the override for ``platform`` merged over it.

        ``platform`` is 'linux', 'darwin' or 'windows', or a ``sys.platform`` value; the default is
        this process's platform. An OS without an override gets ``recommended`` unchanged.
        """
        key = normalise_platform(sys.platform if platform is None else platform)
        override = self._override(key) if key else None
        if override is None:
            return self.recommended
        merged = _deep_merge(self.recommended.model_dump(), override.model_dump(exclude_unset=True))
        return Recommended.model_validate(merged)


def normalise_platform(value: str) -> str | None:
    """'linux', 'darwin' or 'windows' for a ``sys.platform``-like value; None for other systems."""
    v = value.lower()
    if v.startswith("linux"):
        return "linux"
    if v in ("darwin", "macos", "mac"):
        return "darwin"
    if v in ("win32", "cygwin", "windows", "win"):
        return "windows"
    return None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema of a profile (draft 2020-12), for editors and other tools."""
    schema = ScalingProfile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tuner scaling profile",
        **{k: v for k, v in schema.items() if k != "title"},
    }
