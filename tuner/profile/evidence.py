"""The profile's ``evidence:`` section: what was measured for the recommendation, and around it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias

from pydantic import Field, Strict

from tuner.profile.base import Count, Interval, Model, NonNeg, NonNegInt, Positive, Str
from tuner.profile.settings import DeploymentModel, deployment_model

__all__ = [
    "Baseline",
    "Candidate",
    "Evidence",
    "HostLoad",
    "LatencyIntervals",
    "OutsideProcessInfo",
    "PeakRss",
    "Percentiles",
    "ThreadEvidence",
]


class Percentiles(Model):
    """Latency percentiles in milliseconds."""

    p50: NonNeg | None = Field(default=None, description="Median, ms.")
    p90: NonNeg | None = Field(default=None, description="90th percentile, ms.")
    p95: NonNeg | None = Field(default=None, description="95th percentile, ms.")
    p99: NonNeg | None = Field(default=None, description="99th percentile, ms.")
    p999: NonNeg | None = Field(default=None, description="99.9th percentile, ms.")


class LatencyIntervals(Model):
    """Confidence intervals [low, high] of latency percentiles, in milliseconds."""

    p50: Interval | None = Field(default=None, description="Interval of the median, ms.")
    p90: Interval | None = Field(default=None, description="Interval of the 90th percentile, ms.")
    p95: Interval | None = Field(default=None, description="Interval of the 95th percentile, ms.")
    p99: Interval | None = Field(default=None, description="Interval of the 99th percentile, ms.")
    p999: Interval | None = Field(default=None, description="Interval of the 99.9th percentile, ms.")


class PeakRss(Model):
    """Peak resident memory while measuring, in MB."""

    per_worker: NonNeg | None = Field(default=None, description="Largest worker's peak RSS, MB.")
    total: NonNeg | None = Field(default=None, description="Peak RSS of all workers together, MB.")


if TYPE_CHECKING:
    Baseline: TypeAlias = DeploymentModel
else:
    Baseline = deployment_model(
        "Baseline",
        "The deployment a user writes without tuner, measured in the same sweep: every gain is stated "
        "against it (older profiles: the slowest configuration measured, by name only).",
        ("backend", "workers", "threads_per_worker", "partition_size"),
        required=False,
        absent=True,
        extra={
            "name": (
                Str,
                Field(description="What the baseline is, e.g. 'the framework's default deployment'."),
            ),
            "throughput": (Positive, Field(description="Its throughput, items/s.")),
            "throughput_ci": (
                Interval | None,
                Field(default=None, description="Its throughput's 95% CI [low, high]."),
            ),
            "p99_ms": (NonNeg | None, Field(default=None, description="Its p99 latency, ms.")),
        },
    )


if TYPE_CHECKING:
    Candidate: TypeAlias = DeploymentModel
else:
    Candidate = deployment_model(
        "Candidate",
        "One measured configuration (a runner-up or a point on the Pareto front).",
        ("backend", "workers", "threads_per_worker", "partition_size"),
        extra={
            "throughput": (Positive, Field(description="Measured throughput, items/s.")),
            "p99_ms": (NonNeg | None, Field(default=None, description="Measured p99 latency, ms.")),
        },
    )


# -- the host around the measurement (issue 12) ---------------------------------------------------
class OutsideProcessInfo(Model):
    """One process outside tuner that was busy while the recommendation was measured."""

    name: Str = Field(description="Process name (an interpreter with what it ran, e.g. 'python pytest').")
    pid: NonNegInt = Field(description="Its process id at the time.")
    share: NonNeg = Field(description="CPU it used, as a share of the usable cores (1.0 = all).")


class HostLoad(Model):
    """What the rest of the machine did while the recommended configuration was measured.

    Outside load = CPU used by processes other than tuner and its workers, plus CPU steal on a VM,
    as a share of the usable cores; a window above ``limit`` was discarded and measured again.
    """

    outside: NonNeg = Field(
        description="Mean outside load over the windows the figures come from (share of the usable "
        "cores; 0.05 = 5%)."
    )
    outside_max: NonNeg = Field(description="Outside load of the busiest measurement window.")
    steal: NonNeg = Field(default=0.0, description="Of which CPU steal (hypervisor), mean.")
    swap_mb_s: NonNeg = Field(default=0.0, description="Swap traffic in + out, MB/s, mean.")
    limit: NonNeg | None = Field(
        default=None, description="Windows with more outside load than this were discarded."
    )
    windows: NonNegInt = Field(description="Measurement windows, discarded ones included.")
    windows_discarded: NonNegInt = Field(
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


class ThreadEvidence(Model):
    """The OS threads that really ran while measuring the recommended configuration."""

    threads_per_worker: Count = Field(description="The threads knob the trial ran with.")
    scope: Str = Field(
        description="'per worker process', or 'process (all workers share it)' for the thread and "
        "inline backends (never divided per worker)."
    )
    allowed: Count = Field(description="Threads the knobs allow to run at once in that scope.")
    os_threads: NonNegInt | None = Field(
        default=None, description="OS threads that existed (the largest worker)."
    )
    ran: NonNegInt | None = Field(
        default=None, description="Threads that used at least 5% of a core during the measurement windows."
    )
    over: Annotated[bool, Strict()] | None = Field(
        default=None, description="More threads ran than the knobs allow: a pool they do not reach."
    )
    pools: list[Str] | None = Field(default=None, description="When over: the thread pools loaded there.")


class Evidence(Model):
    """What was measured for the recommended configuration."""

    throughput: Positive = Field(description="Items per second.")
    throughput_ci: Interval | None = Field(
        default=None, description="Confidence interval of throughput [low, high]."
    )
    latency_ms: Percentiles | None = Field(default=None, description="Per-item latency percentiles, ms.")
    latency_ci_ms: LatencyIntervals | None = Field(
        default=None, description="Confidence intervals of the latency percentiles, ms."
    )
    service_time_ms: Percentiles | None = Field(
        default=None, description="Partition service time (on a worker, excluding queueing), ms."
    )
    service_time_spread: NonNeg | None = Field(
        default=None,
        description="Robust standard deviation of the log partition service time (1.4826 × MAD): with the "
        "median, the reference the runtime's drift detector compares live service times with. Absent in "
        "older profiles (the detector then assumes 10%).",
    )
    service_time_partitions: NonNegInt | None = Field(
        default=None, description="Partition attempts the service-time figures are over."
    )
    cold_start_s: NonNeg | None = Field(
        default=None, description="Time to first result from a cold pool, seconds."
    )
    cpu_share: NonNeg | None = Field(
        default=None, description="Share of the usable cores kept busy (1.0 = all)."
    )
    peak_rss_mb: PeakRss | None = Field(default=None, description="Peak resident memory, MB.")
    trials_run: NonNegInt | None = Field(default=None, description="Configurations measured.")
    strategy: Str | None = Field(default=None, description="Search strategy, e.g. 'grid' or 'adaptive'.")
    measuring_s: NonNeg | None = Field(default=None, description="Wall time spent measuring, seconds.")
    faults: Str | None = Field(default=None, description="Fault plan injected while measuring, if any.")
    faults_observed: dict[str, NonNegInt] | None = Field(
        default=None, description="Failures seen by kind, e.g. {crash: 3, timeout: 1}."
    )
    baseline: Baseline | None = Field(
        default=None, description="The framework's default deployment, measured in the same sweep."
    )
    speedup: Positive | None = Field(
        default=None, description="The recommendation's throughput / the baseline's (the headline's ratio)."
    )
    speedup_ci: Interval | None = Field(
        default=None, description="95% CI of that ratio (bootstrap over both trials' windows)."
    )
    runner_ups: list[Candidate] = Field(default_factory=list, description="Next-best configurations.")
    pareto: list[Candidate] = Field(default_factory=list, description="Throughput/p99 Pareto front.")
    host_load: HostLoad | None = Field(
        default=None, description="What other processes did while the recommendation was measured."
    )
    threads: ThreadEvidence | None = Field(
        default=None, description="The OS threads that ran, next to what the knobs allow."
    )
