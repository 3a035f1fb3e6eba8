"""What a report shows, as plain values: the page and the charts read only these.

:mod:`tuner.report.data` fills them from a profile and a results file; nothing here knows either.
The number formatters are the rest of tuner's (:mod:`tuner.fmt`: one formatter per unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tuner import fmt

PERCENTILES = ("p50", "p90", "p95", "p99")

Interval = tuple[float, float]


fmt_rate = fmt.rate
fmt_ms = fmt.ms


@dataclass
class Trial:
    """One measured configuration, as a row of the page."""

    key: str
    label: str
    backend: str
    workers: int
    threads: int
    partition: int
    throughput: float
    ci: Interval | None = None
    latency: dict[str, float] = field(default_factory=dict)  # p50 p90 p95 p99, ms
    latency_ci: dict[str, Interval] = field(default_factory=dict)
    cpu_share: float | None = None
    rss_mb: float | None = None
    stable: bool = True
    ok: bool = True  # feasible, no error, a throughput: a candidate for the recommendation
    status: str = "stable"
    faults: str | None = None
    faults_seen: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    clean_throughput: float | None = None
    clean_p99: float | None = None
    outside: float | None = None  # outside load, share of the usable cores
    contaminated: bool = False  # too few clean windows: the host was busy, the figures read low
    windows: int = 0
    discarded: int = 0
    recommended: bool = False
    from_profile: bool = False  # a runner-up or Pareto point of the profile, not a results line


@dataclass
class Recommendation:
    """The recommended configuration, its evidence, and what it is compared with."""

    label: str
    config: dict[str, Any]  # what the runtime applies, as shown in the page (name -> value)
    throughput: float
    throughput_ci: Interval | None
    latency: dict[str, float]
    latency_ci: dict[str, Interval]
    service: dict[str, float]
    autoscale_reasoning: str = ""
    objective: str = "throughput"
    baseline_name: str | None = None
    baseline_throughput: float | None = None
    baseline_ci: Interval | None = None
    baseline_p99: float | None = None
    # The profile's own ratio against its baseline (evidence.speedup, its CI): the figure the
    # recommendation's words state, read back rather than recomputed from rounded throughputs.
    speedup: float | None = None
    speedup_ci: Interval | None = None
    runner_ups: list[tuple[str, float, float | None]] = field(default_factory=list)
    evidence: list[tuple[str, str]] = field(default_factory=list)  # (what, value) lines
    faults: str | None = None
    faults_observed: dict[str, int] = field(default_factory=dict)
    from_profile: bool = True  # False: a run's fastest trial (no profile: no baseline to state)

    @classmethod
    def from_trial(cls, t: Trial) -> Recommendation:
        """What a run "recommends" when it has no profile: its fastest feasible trial."""
        config = {"backend": t.backend, "workers": t.workers, "threads per worker": t.threads,
                  "partition size": t.partition}  # fmt: skip
        return cls(label=t.label, config=config, throughput=t.throughput, throughput_ci=t.ci,
                   latency=t.latency, latency_ci=t.latency_ci, service={}, from_profile=False)  # fmt: skip


@dataclass
class HostView:
    """The machine (and cluster) and how busy it was."""

    fingerprint: str | None
    summary: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    load_words: str = ""
    contaminated: bool = False
    busiest: list[tuple[str, int, float]] = field(default_factory=list)
    cluster: list[tuple[str, str]] = field(default_factory=list)
    calibration: Any = None  # tuner.calibrate.Calibration: the host's measured speed, when recorded


@dataclass
class Step:
    """One step of the online search: a point of latency against rate."""

    rate: float
    offered: float
    achieved: float
    p50: float | None
    p99: float | None
    p99_ci: Interval | None
    sustainable: bool
    keeps_up: bool
    cpu: float | None = None


@dataclass
class OnlineView:
    """The online section: latency against rate, the objective and the knee."""

    objective_ms: float
    label: str
    max_rate: float
    max_rate_ci: tuple[float, float | None]
    p99_at_max: float | None
    steps: list[Step]
    facts: list[tuple[str, str]] = field(default_factory=list)
    candidates: list[tuple[str, float, float | None]] = field(default_factory=list)
    reasoning: str = ""
    scaling: list[tuple[int, float]] = field(default_factory=list)  # closed-loop items/s by workers


@dataclass
class PlanView:
    """A capacity plan (``tuner plan``) and the scalability fit under it."""

    words: list[str]
    warnings: list[str]
    assumptions: list[str]
    measured: list[tuple[int, float]] = field(default_factory=list)  # (workers, items/s)
    fitted: list[tuple[float, float]] = field(default_factory=list)  # the USL curve
    fit_words: str = ""


@dataclass
class Run:
    """Everything one report shows: a profile, the sweep's trials, and where they came from."""

    name: str
    model: str
    created: str
    tool_version: str
    rec: Recommendation | None
    host: HostView
    trials: list[Trial]
    online: OnlineView | None = None
    plan: PlanView | None = None
    command: str = ""
    command_exact: bool = False
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    verdict: str | None = None  # the regression gate's line, when a gate made this run
    warnings: list[str] = field(default_factory=list)  # said at the top (e.g. an interrupted sweep)

    @property
    def trials_from_results(self) -> bool:
        return any(not t.from_profile for t in self.trials)


def config_label(backend: str, workers: int, threads: int, partition: int) -> str:
    t = "thread" if threads == 1 else "threads"
    return f"{backend} ×{workers} · {threads} {t} · partition {partition}"


def pooled(trials: list[Trial]) -> Trial:
    """Repeated trials of one configuration as one, as the regression gate pools them: the median of
    each figure over the clean trials when at least two are clean (``tuner.bench.gate``), else over all."""
    from tuner.stats import median

    if len(trials) == 1:
        return trials[0]
    clean = [t for t in trials if t.throughput > 0 and not t.contaminated]
    used = clean if len(clean) >= 2 else trials
    cis = [t.ci for t in used if t.ci is not None]
    p99s = [t.latency["p99"] for t in used if "p99" in t.latency]
    p99_cis = [t.latency_ci["p99"] for t in used if "p99" in t.latency_ci]
    latency_ci = (
        {"p99": (median([c[0] for c in p99_cis]), median([c[1] for c in p99_cis]))} if p99_cis else {}
    )
    which = "clean " if used is clean else ""
    return Trial(
        **{**used[0].__dict__, "throughput": median([t.throughput for t in used]),
           "ci": (median([c[0] for c in cis]), median([c[1] for c in cis])) if cis else None,
           "latency": {**used[0].latency, "p99": median(p99s)} if p99s else used[0].latency,
           "latency_ci": {**used[0].latency_ci, **latency_ci},
           "status": f"median of {len(used)} {which}trials of {len(trials)} ({sum(t.stable for t in used)} stable)"},
    )  # fmt: skip
