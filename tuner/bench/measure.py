"""Measure one trial: run a configuration through the engine, closed loop, until its throughput is stable.

What a trial does, in order::

  Engine.start()  ── workers start, each loads the model once ──► cold_start_s (max WorkerStarted.load_s)
  warm-up         ── closed loop, at least ``warmup_s`` and 2 partitions per worker ──► excluded
  windows         ── ``window_s`` each; throughput = items completed (outputs, not failures) in the
                     window / window_s, each partition's items credited pro rata over its service
                     interval (so a window's figure is not quantised to whole partitions; a window
                     is counted once the partitions running at its end are back)
                     ──► stop when the last ``stable_windows`` clean windows agree within
                     ±``tolerance`` of their mean ("stable"), or at ``max_trial_s`` ("unstable")
  host load        ── sampled at every window's end (tuner.hostload: the CPU of everything but
                     tuner and its workers, steal, swap); a window above ``max_outside`` is
                     *discarded* — kept on record, left out of stability and figures — and the
                     trial measures on for clean ones, up to ``max_trial_s`` (or half its
                     measuring time when not one window was clean). Too few clean windows by
                     then: the trial is *contaminated* (figures over every window, marked, with
                     the load and the busiest other processes)

Closed loop: ``in_flight_per_worker × workers`` partitions are kept submitted to the engine; each
completion is replaced by the next slice of the inputs (cycling). Nothing here calls the model: the
engine is the only thing that runs it, so the figures describe the code path that serves.

What the figures span (the reported window set is the last ``stable_windows`` clean windows of a
stable trial, all clean windows of an unstable one, every window of a contaminated one; after a
discarded window, a partition counts for latency only if it was also submitted in a clean one):

* **throughput** — median of the window throughputs; 95% CI by bootstrap of that median.

Every percentile, median and confidence interval comes from :mod:`tuner.stats` (one definition: the
weighted inverted CDF, an observed value — see there).
* **item latency** — from the moment an item's partition is submitted to the engine until its outcome
  is back in the caller: queueing in the engine (a closed loop keeps ``in_flight_per_worker``
  partitions per worker queued, so this includes waiting behind them), transport to the worker, the
  model call, the return trip. Every item of a partition gets its partition's latency, so each
  partition's latency is weighted by its item count. p50/p90/p95/p99 are weighted lower percentiles
  of the partitions completed in the reported windows; 95% CIs by bootstrap over partitions.
* **service time** — time inside the worker's model call, per partition attempt (p50 p95 p99 p999 max),
  unweighted.
* **cpu_share** — the workers' CPU (sum of per-worker CPU%, 100 = one core) / usable cores, averaged
  over the engine's resource samples in the measurement windows; for the thread and inline backends
  it is this whole process's CPU (psutil), feeder thread included.
* **peak RSS** — max over samples of the largest worker and of the sum of workers (this process for
  thread/inline backends).

With a fault plan, the configuration is first measured without faults (shorter), which gives
``clean_throughput``/``clean_p99_ms`` and the timeout used for the faulted run (10× the clean p99.9
service time, at least 0.1 s), then with the plan.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from tuner import fmt
from tuner.bench.trial_run import TrialCancelled, TrialRun, _Run
from tuner.bench.types import Objective, OutsideLoad, SweepCallback, TrialConfig, TrialPhase, TrialResult
from tuner.engine import EngineConfig, FaultPlan
from tuner.errors import TunerError
from tuner.hostload import DEFAULT_MAX_OUTSIDE, DEFAULT_MAX_SWAP_MB_S
from tuner.stats import bootstrap_ci, is_stable, median, percentiles

__all__ = [
    "MeasureSettings",
    "TrialCancelled",
    "bootstrap_ci",
    "check_feasible",
    "is_stable",
    "latency_figures",
    "run_trial",
    "service_figures",
    "timeout_for",
]

#: Floor of a derived partition timeout, and its multiple of the p99.9 service time.
TIMEOUT_FLOOR_S = 0.1
TIMEOUT_FACTOR = 10.0
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


@dataclass(frozen=True)
class MeasureSettings:
    """How long and how carefully each trial is measured."""

    window_s: float = 1.0
    stable_windows: int = 3
    tolerance: float = 0.05
    max_trial_s: float = 12.0  # time cap (warm-up + windows) → trial marked unstable
    warmup_s: float = (
        0.5  # at least this long, and at least 2 partitions per worker, after all workers are ready
    )
    in_flight_per_worker: int = 4  # closed loop: bounded partitions in flight
    # The host around the measurement (tuner.hostload): a window whose outside load exceeds this
    # share of the usable cores, or whose swap traffic exceeds max_swap_mb_s, is discarded and the
    # trial measures on for clean ones. None: record the load, never discard.
    max_outside: float | None = DEFAULT_MAX_OUTSIDE
    max_swap_mb_s: float = DEFAULT_MAX_SWAP_MB_S

    @classmethod
    def for_window(cls, window_s: float, **kw: Any) -> MeasureSettings:
        """Settings for windows of ``window_s``: a warm-up of at most one window and a time cap of
        12 windows (5 at least), so a quick sweep stays quick — and a trial waiting for clean
        windows on a busy host waits in proportion (``tuner bench`` and the TUI alike)."""
        return cls(
            window_s=window_s,
            warmup_s=min(0.5, window_s),
            max_trial_s=max(12.0 * window_s, 5.0 * window_s),
            **kw,
        )


def timeout_for(service_p999_ms: float | None) -> float:
    """Per-partition timeout from the tail of the service time: 10× p99.9, at least 0.1 s.

    10× the p99.9 leaves room for a busy host (a GC pause, a noisy neighbour) without letting a
    truly hung partition hold a worker for long; the floor keeps very fast models from timing out
    on scheduler jitter alone.
    """
    if service_p999_ms is None or not math.isfinite(service_p999_ms):
        return 1.0
    return round(max(TIMEOUT_FLOOR_S, TIMEOUT_FACTOR * service_p999_ms / 1000.0), 3)


def check_feasible(result: TrialResult, objective: Objective | None) -> TrialResult:
    """Set ``feasible`` and ``infeasible_reasons`` from the objective's constraints (in place)."""
    reasons: list[str] = []
    if result.error:
        reasons.append(f"error: {result.error}")
    elif result.throughput <= 0:
        reasons.append("no items completed")
    if objective is not None and not result.error:
        p99 = result.latency_ms.get("p99")
        if objective.p99_budget_ms is not None and p99 is not None and p99 > objective.p99_budget_ms:
            reasons.append(f"p99 {fmt.ms(p99)} > budget {objective.p99_budget_ms:g} ms")
        total = result.peak_rss_mb.get("total")
        if (
            objective.memory_budget_mb is not None
            and total is not None
            and total > objective.memory_budget_mb
        ):
            reasons.append(f"peak RSS {total:.0f} MB > budget {objective.memory_budget_mb:g} MB")
        if objective.min_throughput is not None and result.throughput < objective.min_throughput:
            reasons.append(
                f"throughput {fmt.rate(result.throughput)}/s < minimum {objective.min_throughput:g}/s"
            )
    if not result.faults and result.failures:
        # Without injected faults, an item that fails for good is a broken configuration.
        lost = sum(result.failures.values())
        reasons.append(f"{lost} items failed ({', '.join(sorted(result.failures))})")
    result.feasible = not reasons
    result.infeasible_reasons = reasons
    return result


def error_result(config: TrialConfig, error: str, faults: FaultPlan | None = None) -> TrialResult:
    """A trial that could not run: zero throughput, the error recorded, infeasible."""
    r = TrialResult(
        config=config,
        throughput=0.0,
        throughput_ci=(0.0, 0.0),
        latency_ms={},
        latency_ci_ms={},
        service_ms={},
        cpu_share=0.0,
        peak_rss_mb={},
        stable=False,
        windows=[],
        warmup_s=0.0,
        cold_start_s=0.0,
        measured_s=0.0,
        items=0,
        faults=str(faults) if faults is not None and faults.active else None,
        error=error,
    )
    return check_feasible(r, None)


def latency_figures(
    latency_s: Any, items: Any, *, ci: bool = True
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Item latency p50/p90/p95/p99 in ms (each partition weighted by its items) and their 95% CIs.

    The one definition of :mod:`tuner.stats`; the same samples give the same figures in
    ``Runtime.stats()`` (within its live histogram's resolution) and in every report.
    """
    latency: dict[str, float] = {}
    latency_ci: dict[str, tuple[float, float]] = {}
    if len(latency_s) == 0:
        return latency, latency_ci
    qs = list(PERCENTILES.values())
    vals = percentiles(latency_s, qs, items)
    cis = bootstrap_ci(latency_s, items, qs) if ci else [(v, v) for v in vals]
    for key, v, (lo, hi) in zip(PERCENTILES, vals, cis, strict=True):
        latency[key] = round(v * 1000, 4)
        latency_ci[key] = (round(lo * 1000, 4), round(hi * 1000, 4))
    return latency, latency_ci


def service_figures(service_s: Any) -> dict[str, float]:
    """Service time per partition attempt, ms: p50 p95 p99 p999 (unweighted, the one definition) and
    max. The p95 is the hedge delay a profile recommends (tuner.bench.recommend)."""
    if len(service_s) == 0:
        return {}
    p50, p95, p99, p999 = percentiles(service_s, (0.5, 0.95, 0.99, 0.999))
    return {
        "p50": round(p50 * 1000, 4),
        "p95": round(p95 * 1000, 4),
        "p99": round(p99 * 1000, 4),
        "p999": round(p999 * 1000, 4),
        "max": round(float(max(service_s)) * 1000, 4),
        "log_spread": round(log_spread(service_s), 4),
        "n": float(len(service_s)),
    }


def log_spread(values: Any) -> float:
    """The robust standard deviation of ``log(values)``: 1.4826 × their median absolute deviation
    (a normal's σ when they are lognormal; a few stragglers barely move it). The drift detector's
    reference spread of the service time (tuner.runtime.drift)."""
    import numpy as np

    logs = np.log(np.asarray([v for v in values if v > 0], dtype=float))
    if logs.size < 2:
        return 0.0
    return float(1.4826 * np.median(np.abs(logs - np.median(logs))))


def _figures(run: _Run) -> dict[str, Any]:
    reported = run.reported
    tput = median(reported) if reported else 0.0
    (tput_ci,) = bootstrap_ci(reported, None, (0.5,)) if reported else [(0.0, 0.0)]
    latency, latency_ci = latency_figures(run.lat, run.lat_w)
    return {
        "throughput": round(tput, 2),
        "throughput_ci": (round(tput_ci[0], 2), round(tput_ci[1], 2)),
        "latency_ms": latency,
        "latency_ci_ms": latency_ci,
        "service_ms": service_figures(run.service),
    }


def _outside(run: _Run) -> OutsideLoad | None:
    """The trial's record of the host around it (None when no window was measured)."""
    if not run.loads:
        return None
    rep = [run.loads[i] for i in run.reported_idx] or run.loads
    return OutsideLoad(
        cpu=round(float(np.mean([x.outside for x in rep])), 3),
        cpu_max=round(max(x.outside for x in run.loads), 3),
        steal=round(float(np.mean([x.steal for x in rep])), 3),
        swap_mb_s=round(float(np.mean([x.swap_mb_s for x in rep])), 2),
        windows=[round(x.outside, 3) for x in run.loads],
        limit=run.limit,
        top=list(run.top),
    )


def run_trial(
    model: Any,
    inputs: Any,
    config: TrialConfig,
    settings: MeasureSettings,
    *,
    faults: FaultPlan | None = None,
    objective: Objective | None = None,
    index: int = 0,
    on_message: SweepCallback | None = None,
    cancel: threading.Event | None = None,
    usable_cores: int | None = None,
    own_pids: Sequence[int] = (),
) -> TrialResult:
    """Measure one configuration through the engine (see the module docstring for what is measured).

    ``own_pids``: processes besides this one and its descendants that are tuner's, not the outside
    load (the TUI's UI process, when the sweep runs in a child of it).

    Raises :class:`TrialCancelled` when ``cancel`` is set (the engine is closed first). A trial that
    cannot run (the model fails to load, the engine rejects the configuration) gives a result with
    ``error`` set, not an exception.
    """
    if usable_cores is None:
        from tuner.hardware import probe

        usable_cores = probe().usable_cores
    from tuner.bench.threads import allowed_per_worker

    t_trial0 = time.perf_counter()
    # Samples often enough for several per window, rarely enough to cost nothing.
    sample_every = max(0.1, min(0.5, settings.window_s / 2))
    runnable, allowed, model_file = allowed_per_worker(model, config)

    def measure(engine_config: EngineConfig, how: MeasureSettings, label: str) -> _Run:
        return TrialRun(
            runnable, inputs, config, how, engine_config, usable_cores,
            index=index, t_trial0=t_trial0, emit=on_message, cancel=cancel, label=label,
            own_pids=own_pids, allowed_threads=allowed, model_file=model_file,
        ).run()  # fmt: skip

    clean_run: _Run | None = None
    try:
        if faults is not None and faults.active:
            # Without faults first (shorter): the clean figures, and the timeout a hang needs.
            short = replace(
                settings, max_trial_s=max(settings.warmup_s + settings.window_s * 4, settings.max_trial_s / 2)
            )
            clean_run = measure(
                EngineConfig.of_deployment(config, sample_interval_s=sample_every), short, "without faults: "
            )
            timeout = config.timeout_s
            if timeout is None and faults.needs_timeout():
                timeout = timeout_for(_figures(clean_run)["service_ms"].get("p999"))
            faulted = replace(config, timeout_s=timeout)
            run = measure(
                EngineConfig.of_deployment(faulted, faults=faults, sample_interval_s=sample_every),
                settings,
                "",
            )
        else:
            run = measure(EngineConfig.of_deployment(config, sample_interval_s=sample_every), settings, "")
    except TrialCancelled:
        raise
    except TunerError as e:
        return error_result(config, str(e), faults)
    result = _result(config, run, faults)
    if clean_run is not None:
        clean = _figures(clean_run)
        result.clean_throughput = clean["throughput"]
        result.clean_p99_ms = clean["latency_ms"].get("p99")
    if on_message is not None:
        on_message(_verdict(index, result, run, settings, usable_cores))
    return check_feasible(result, objective)


def _result(config: TrialConfig, run: _Run, faults: FaultPlan | None) -> TrialResult:
    """A trial's figures from its run (see the module docstring for what each spans)."""
    fig = _figures(run)
    return TrialResult(
        config=config,
        throughput=fig["throughput"],
        throughput_ci=fig["throughput_ci"],
        latency_ms=fig["latency_ms"],
        latency_ci_ms=fig["latency_ci_ms"],
        service_ms=fig["service_ms"],
        cpu_share=run.cpu_share,
        peak_rss_mb={"per_worker": run.rss_worker, "total": run.rss_total},
        stable=run.stable,
        windows=[round(w, 2) for w in run.windows],
        warmup_s=run.warmup_s,
        cold_start_s=run.cold_start_s,
        measured_s=run.measured_s,
        items=run.items,
        failures=dict(run.notes.failures),
        faults_seen=dict(run.notes.faults_seen),
        retries=run.notes.retried,
        faults=str(faults) if faults is not None and faults.active else None,
        outside=_outside(run),
        discarded_windows=list(run.discarded),
        contaminated=run.contaminated,
        threads=run.threads,
        window_s=run.window_s,
    )


def _verdict(index: int, r: TrialResult, run: _Run, settings: MeasureSettings, cores: int) -> TrialPhase:
    """The trial's last phase in words: stable, unstable, or contaminated (host busy)."""
    tol = f"{settings.tolerance:.0%}"
    n_out = len(run.discarded)
    busy = f" ({n_out} busy window{'s' if n_out != 1 else ''} discarded)" if n_out else ""
    cap = fmt.seconds(run.max_trial_s or settings.max_trial_s)
    if r.contaminated:
        clean_n = len(run.windows) - n_out
        load = r.outside.cpu if r.outside else 0
        return TrialPhase(
            index,
            "contaminated",
            f"contaminated: host busy, {clean_n} clean window{'s' if clean_n != 1 else ''} of "
            f"{len(run.windows)} in {cap} (outside load {load:.0%} of {cores} cores)",
        )
    if r.stable:
        return TrialPhase(index, "stable", f"stable: {settings.stable_windows} windows within {tol}{busy}")
    return TrialPhase(
        index, "unstable", f"unstable: no {settings.stable_windows} windows within {tol} in {cap}{busy}"
    )
