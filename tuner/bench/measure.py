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
import os
import threading
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tuner.bench.types import (
    EngineNote,
    Objective,
    OutsideLoad,
    SweepCallback,
    TrialConfig,
    TrialPhase,
    TrialResult,
    WindowMeasured,
)
from tuner.engine import Engine, EngineConfig, FaultPlan, PartitionResult
from tuner.engine import events as ev
from tuner.errors import TunerError
from tuner.hostload import (
    DEFAULT_MAX_OUTSIDE,
    DEFAULT_MAX_SWAP_MB_S,
    HostSampler,
    Interval,
    ProcessTable,
    Rule,
    describe_top,
    name_processes,
    top_outside,
)
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

#: How often a warm-up tick is reported (for a chart to show the rise).
WARMUP_TICK_S = 0.25
#: Event-log lines per second before the rest are summarised (a 5% crash rate must not flood a UI).
NOTES_PER_S = 4
#: Floor of a derived partition timeout, and its multiple of the p99.9 service time.
TIMEOUT_FLOOR_S = 0.1
TIMEOUT_FACTOR = 10.0
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}


class TrialCancelled(TunerError):
    """The trial was cancelled (the sweep's cancel event was set) before it finished."""


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
            reasons.append(f"p99 {p99:.3g} ms > budget {objective.p99_budget_ms:g} ms")
        total = result.peak_rss_mb.get("total")
        if (
            objective.memory_budget_mb is not None
            and total is not None
            and total > objective.memory_budget_mb
        ):
            reasons.append(f"peak RSS {total:.0f} MB > budget {objective.memory_budget_mb:g} MB")
        if objective.min_throughput is not None and result.throughput < objective.min_throughput:
            reasons.append(f"throughput {result.throughput:.4g}/s < minimum {objective.min_throughput:g}/s")
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


# ------------------------------------------------------------------------------- engine events


class _Collector:
    """Receives engine events on the supervisor thread (append only: the callback must be quick)."""

    def __init__(self) -> None:
        self.events: deque[ev.Event] = deque()

    def __call__(self, event: ev.Event) -> None:
        if not isinstance(event, (ev.PartitionSubmitted, ev.PartitionStarted)):
            self.events.append(event)


class _Notes:
    """Turns engine events into incident-timeline lines (EngineNote) and counts faults."""

    def __init__(
        self, index: int, t0: float, retries: int, emit: SweepCallback | None, timeout_s: float | None
    ) -> None:
        self.index = index
        self.t0 = t0
        self.retries = retries
        self.emit = emit
        self.timeout_s = timeout_s
        self.sent = 0  # notes sent in the current second
        self.second = 0.0
        self.suppressed = 0
        self.faults_seen: dict[str, int] = {}
        self.failures: dict[str, int] = {}
        self.retried = 0
        # worker id -> the first half of a line waiting for its replacement to come up
        self.waiting: dict[int, tuple[float, str, str]] = {}
        self.crashed: dict[int, ev.WorkerExited] = {}

    def note(self, t: float, text: str, level: str) -> None:
        if self.emit is None:
            return
        if t - self.second >= 1.0:
            self._summarise(t)
            self.second = t
            self.sent = 0
        if self.sent >= NOTES_PER_S:
            self.suppressed += 1
            return
        self.sent += 1
        self.emit(EngineNote(self.index, max(0.0, t - self.t0), text, level))

    def _summarise(self, t: float) -> None:
        if self.suppressed and self.emit is not None:
            n = self.suppressed
            text = f"… {n} more engine event{'s' if n != 1 else ''} not shown"
            self.emit(EngineNote(self.index, max(0.0, t - self.t0), text, "info"))
        self.suppressed = 0

    def handle(self, e: ev.Event) -> None:
        if isinstance(e, ev.WorkerExited):
            if e.cause == "crash":
                self.crashed[e.worker] = e
        elif isinstance(e, ev.PartitionFailed):
            self._failed(e)
        elif isinstance(e, ev.ItemsFailed):
            self.failures[e.cause] = self.failures.get(e.cause, 0) + e.items
            self.note(e.t, f"{e.items} item{'s' if e.items != 1 else ''} failed for good: {e.cause}", "error")
        elif isinstance(e, ev.WorkerStarted) and e.replacing is not None:
            pending = self.waiting.pop(e.replacing, None)
            if pending is not None:
                t, head, tail = pending
                self.note(t, f"{head}, replaced in {e.load_s:.2f} s{tail}", "warning")

    def _failed(self, e: ev.PartitionFailed) -> None:
        self.faults_seen[e.cause] = self.faults_seen.get(e.cause, 0) + 1
        if e.retry == "retry":
            self.retried += 1
            what = f"retried, attempt {e.attempt + 1}/{self.retries + 1}"
        elif e.retry == "split":
            what = "split in halves to isolate the failing items"
        else:
            what = "failed for good"
        tag = " (injected)" if e.injected else ""
        level = "warning" if e.injected else "error"
        if e.cause == "crash":
            dead = self.crashed.pop(e.worker, None)
            if dead is not None:
                how = f"killed by {dead.signal}" if dead.signal else f"exit {dead.exitcode}"
                head = f"worker {e.worker} (pid {dead.pid}) crashed: {how}{tag}"
            else:
                head = f"{e.message}{tag}"
            self.note(e.t, f"{head} — partition {e.partition} {what}", level)
        elif e.cause in ("timeout", "memory"):
            if e.cause == "timeout":
                head = f"partition {e.partition} timed out after {self.timeout_s or 0:g} s{tag} — worker {e.worker} terminated"
            else:
                head = f"partition {e.partition}: worker {e.worker} over its memory limit{tag} — killed"
            # Wait for the replacement to say how long it took; flushed at the end if it never comes.
            self.waiting[e.worker] = (e.t, head, f", {what}")
        else:
            self.note(e.t, f"partition {e.partition} raised {e.message}{tag} — {what}", level)

    def flush(self) -> None:
        for t, head, tail in self.waiting.values():
            self.note(t, f"{head}{tail}", "warning")
        self.waiting.clear()
        # A worker that died with nothing in flight (no PartitionFailed to pair it with).
        for dead in self.crashed.values():
            how = f"killed by {dead.signal}" if dead.signal else f"exit {dead.exitcode}"
            tag = " (injected)" if dead.injected else ""
            self.note(
                dead.t, f"worker {dead.worker} (pid {dead.pid}) crashed: {how}{tag} — replaced", "warning"
            )
        self.crashed.clear()
        self._summarise(time.perf_counter())


# ------------------------------------------------------------------------------- one run


@dataclass
class _Run:
    """The raw outcome of one engine run (faulted or clean)."""

    windows: list[float]
    reported: list[float]  # the windows the figures are over
    stable: bool
    lat: np.ndarray  # per-partition latency, s, in the reported windows
    lat_w: np.ndarray  # items per partition (the latency weights)
    service: np.ndarray  # per-attempt service time, s, in the reported windows
    cpu_share: float
    rss_worker: float
    rss_total: float
    warmup_s: float
    cold_start_s: float
    measured_s: float
    items: int
    notes: _Notes
    # the host around it: one Interval per measurement window, the windows discarded as busy
    loads: list[Interval]
    discarded: list[int]
    reported_idx: list[int]  # the windows the figures are over
    contaminated: bool
    top: list[Any]  # OutsideProcess, when a window was over the limit
    limit: float | None
    threads: dict[str, Any] = field(default_factory=dict)  # thread evidence (tuner.bench.threads)


def _slices(inputs: Any, size: int) -> Any:
    """Endless partitions of ``size`` consecutive items, cycling over the inputs."""
    n = len(inputs)
    if n == 0:
        raise TunerError("no input items to measure with")
    if n <= size:
        while True:
            yield inputs
    pos = 0
    while True:
        if pos + size > n:
            pos = 0
        yield inputs[pos : pos + size]
        pos += size


def _engine_run(
    model: Any,
    inputs: Any,
    config: TrialConfig,
    settings: MeasureSettings,
    engine_config: EngineConfig,
    usable_cores: int,
    *,
    index: int,
    t_trial0: float,
    emit: SweepCallback | None,
    cancel: threading.Event | None,
    label: str,
    own_pids: Sequence[int] = (),
    allowed_threads: int = 1,
    model_file: bool = False,
) -> _Run:
    from tuner.bench import threads as thread_evidence

    perf = time.perf_counter
    pids: list[int] = [os.getpid()] if engine_config.backend != "process" else []
    collector = _Collector()
    notes = _Notes(index, t_trial0, engine_config.retries, emit, engine_config.timeout_s)
    rule = Rule(settings.max_outside, settings.max_swap_mb_s)
    # What counts as "over" for naming the busiest others, even when nothing is discarded by rule.
    over_rule = Rule(
        settings.max_outside if settings.max_outside is not None else DEFAULT_MAX_OUTSIDE,
        settings.max_swap_mb_s,
    )

    def phase(name: str, detail: str) -> None:
        if emit is not None:
            emit(TrialPhase(index, name, detail))

    phase("clean" if label else "warmup", f"{label}workers starting, model loading")
    in_process = engine_config.backend in ("thread", "inline")  # ray actors report their own samples
    me = None
    if in_process:
        import psutil

        me = psutil.Process()
    sampler = HostSampler(usable_cores, own_pids)
    engine = Engine(model, engine_config, on_event=collector)
    load_s: list[float] = []
    samples: list[ev.ResourceSample] = []
    service: list[tuple[float, float]] = []
    with engine:
        t_ready = perf()
        feed = _slices(inputs, config.partition_size)
        target = settings.in_flight_per_worker * config.workers
        inflight: set[Future[PartitionResult]] = set()
        # completions: (t_done, items ok, latency_s, items, service_s)
        done_log: list[tuple[float, int, float, int, float]] = []

        def refill() -> None:
            while len(inflight) < target:
                inflight.add(engine.submit(next(feed)))

        def collect(done: set[Future[PartitionResult]]) -> None:
            for f in done:
                inflight.discard(f)
                if f.cancelled():
                    continue
                r = f.result()
                done_log.append((r.t_done, len(r) - r.failed, r.latency_s, len(r), r.service_s))

        def drain_events() -> None:
            while collector.events:
                e = collector.events.popleft()
                if isinstance(e, ev.PartitionFinished):
                    service.append((e.t, e.service_s))
                elif isinstance(e, ev.ResourceSample):
                    samples.append(e)
                elif isinstance(e, ev.WorkerStarted):
                    sampler.add(e.pid)  # a worker (or its replacement) is tuner, not the outside
                    if e.replacing is None:
                        load_s.append(e.load_s)
                        if engine_config.backend == "process":
                            pids.append(e.pid)  # whose threads the evidence counts
                    notes.handle(e)
                else:
                    notes.handle(e)

        drain_events()
        # Tuner's processes now: this one, its forkserver, the workers, whatever a model started
        # while loading. Later workers arrive by their WorkerStarted events.
        sampler.scan()
        snap = sampler.snapshot()
        cold = max(load_s) if load_s else t_ready - t_trial0
        phase("clean" if label else "warmup", f"{label}workers ready, model loading {cold:.1f} s")
        cpu0 = me.cpu_times() if me is not None else None
        refill()
        tick_start = t_ready
        next_tick = t_ready + WARMUP_TICK_S
        warm = True
        t_meas0 = 0.0
        window_end = 0.0
        windows: list[float] = []
        window_bounds: list[tuple[float, float]] = []
        loads: list[Interval] = []  # the host's load in each measurement window
        discarded: list[int] = []  # windows left out because the host was busy
        table0: ProcessTable | None = None
        rescanned = False
        win_load: Interval | None = None  # this window's load, sampled at its end
        log_pos = 0  # done_log entries before this index belong to earlier ticks/windows
        lag = 0.0
        stable = False
        wall0 = 0.0
        n_stable = settings.stable_windows
        thr0: dict[int, dict[int, float]] = {}
        t_thr0 = 0.0
        while True:
            now = perf()
            if warm:
                deadline = next_tick
            else:
                deadline = window_end + lag if win_load is not None else window_end
            done, _ = wait(inflight, timeout=max(0.0, min(deadline - now, 0.1)), return_when=FIRST_COMPLETED)
            collect(done)
            if cancel is not None and cancel.is_set():
                raise TrialCancelled("cancelled")
            refill()
            drain_events()
            now = perf()
            if warm:
                if now >= next_tick:
                    # One warm-up tick, so a chart can show the rise (and a host bar the load).
                    entries = [d for d in done_log[log_pos:] if d[0] < now]
                    log_pos += len(entries)
                    after = sampler.snapshot()
                    tick_load = sampler.interval(snap, after)
                    snap = after
                    _emit_window(
                        emit, index, now - t_trial0, "warmup", entries, now - tick_start, tick_load.outside
                    )
                    tick_start = now
                    next_tick = now + WARMUP_TICK_S
                if now - t_ready >= settings.warmup_s and len(done_log) >= 2 * config.workers:
                    warm = False
                    # Who else is busy, read once before the windows start (named at the end only
                    # if a window turns out busy: two reads of the process table per trial at most).
                    table0 = ProcessTable.read()
                    # The windows start here: completions before are warm-up.
                    collect({f for f in inflight if f.done()})
                    log_pos = len(done_log)
                    t_meas0 = perf()
                    snap = sampler.snapshot()
                    window_end = t_meas0 + settings.window_s
                    # A window is counted once the partitions running at its end are back (items
                    # are credited pro rata over each partition's service interval, see _credit).
                    lag = min(settings.window_s, 2.0 * max((d[4] for d in done_log), default=0.0) + 0.01)
                    wall0 = t_meas0
                    thr0, t_thr0 = thread_evidence.snapshot(pids), perf()
                    if me is not None:
                        cpu0 = me.cpu_times()
                    phase(
                        "measuring",
                        f"{label}windows of {settings.window_s:g} s until {n_stable} agree "
                        f"within {settings.tolerance:.0%}",
                    )
                elif now - t_ready >= settings.max_trial_s:
                    t_meas0 = wall0 = now
                    break
                continue
            if win_load is None:
                if now < window_end:
                    continue
                # The host's load over this window, read as it ends (its partitions still run).
                after = sampler.snapshot()
                win_load = sampler.interval(snap, after)
                snap = after
                if not rescanned and rule.verdict(win_load, usable_cores) is not None:
                    # Busy: first make sure no process of tuner's own (a model's subprocess
                    # started after the first scan) is being counted as someone else's.
                    rescanned = True
                    if sampler.scan():
                        after = sampler.snapshot()
                        snap = after
            if now < window_end + lag:
                continue
            collect({f for f in inflight if f.done()})
            w0 = window_end - settings.window_s
            while log_pos < len(done_log) and done_log[log_pos][0] < w0:
                log_pos += 1
            entries = [d for d in done_log[log_pos:] if d[0] < window_end]
            tput = _credit(done_log[log_pos:], w0, window_end) / settings.window_s
            windows.append(tput)
            window_bounds.append((w0, window_end))
            loads.append(win_load)
            busy = rule.verdict(win_load, usable_cores)
            if busy is not None:
                discarded.append(len(windows) - 1)
            _emit_window(
                emit, index, window_end - t_trial0, "measuring", entries, settings.window_s,
                win_load.outside, busy,
            )  # fmt: skip
            win_load = None
            clean = [w for i, w in enumerate(windows) if i not in discarded]
            if is_stable(clean, n_stable, settings.tolerance):
                stable = True
                break
            if now - t_ready >= settings.max_trial_s:
                break
            if discarded:
                # Measure on for clean windows while they can still make a stable set in time;
                # a host that gave none in the first half of the measuring time is busy, not
                # briefly interrupted: stop there (contaminated) rather than wait out the cap.
                left = math.ceil((t_ready + settings.max_trial_s - now) / settings.window_s)
                half = (t_ready + settings.max_trial_s - t_meas0) / 2
                if len(clean) + left < n_stable or (not clean and now - t_meas0 >= half):
                    break
            window_end += settings.window_s
        t_end = window_bounds[-1][1] if window_bounds else perf()
        threads_seen: dict[str, Any] = {}
        if t_thr0:
            threads_seen = thread_evidence.evidence(
                thr0,
                thread_evidence.snapshot(pids),
                perf() - t_thr0,
                backend=engine_config.backend,
                workers=config.workers,
                threads=config.threads_per_worker,
                allowed_per_worker=allowed_threads,
                model_file=model_file,
            )
        drain_events()
        cpu1 = me.cpu_times() if me is not None else None
        rss_self = me.memory_info().rss if me is not None else 0
        top: list[Any] = []
        if table0 is not None and any(over_rule.verdict(x, usable_cores) for x in loads):
            top = name_processes(
                top_outside(table0, ProcessTable.read(), usable_cores, sampler.pids | set(own_pids))
            )
    # The engine is closed (with cancel on an exception: nothing waits for in-flight partitions).
    drain_events()
    notes.flush()
    dropped = set(discarded)
    clean_idx = [i for i in range(len(windows)) if i not in dropped]
    contaminated = bool(dropped) and len(clean_idx) < n_stable
    if stable:
        rep_idx = clean_idx[-n_stable:]
    elif contaminated:
        rep_idx = list(range(len(windows)))  # no clean set to be had: every window, marked
    else:
        rep_idx = clean_idx
    runs = _runs(rep_idx, window_bounds, dropped)
    sel = [
        d for d in done_log
        if any(lo <= d[0] < hi and (not strict or d[0] - d[2] >= lo) for lo, hi, strict in runs)
    ]  # fmt: skip
    credited = sum(_credit(done_log, lo, hi) for lo, hi, _ in runs)

    def counted(t: float) -> bool:
        return any(lo <= t < hi for lo, hi, _ in runs)

    lat = np.array([d[2] for d in sel], dtype=float)
    lat_w = np.array([d[3] for d in sel], dtype=float)
    svc = np.array([s for t, s in service if counted(t)], dtype=float)
    meas = [s for s in samples if t_meas0 <= s.t <= t_end + 0.01]
    if dropped:
        meas = [s for s in meas if counted(s.t)] or meas
    if in_process:
        cpu_share = 0.0
        if cpu0 is not None and cpu1 is not None and t_end > wall0:
            used = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
            cpu_share = used / (t_end - wall0) / usable_cores
        rss_worker = rss_total = rss_self / 1e6
    else:
        shares = [sum(w.cpu_percent for w in s.workers) / 100.0 / usable_cores for s in meas if s.workers]
        cpu_share = float(np.mean(shares)) if shares else 0.0
        rss_worker = max((w.rss_bytes for s in samples for w in s.workers), default=0) / 1e6
        rss_total = max((sum(w.rss_bytes for w in s.workers) for s in samples), default=0) / 1e6
    if dropped and emit is not None:
        worst = max(loads[i].outside for i in dropped)
        text = (
            f"host busy: {len(dropped)} of {len(windows)} windows discarded (outside load up to "
            f"{worst:.0%} of {usable_cores} cores)"
        )
        if contaminated:
            clean_n = f"only {len(clean_idx)} clean" if clean_idx else "no clean window"
            text += f"; {clean_n}, the figures include busy windows"
        if top:
            text += f"; busiest others: {describe_top(top)}"
        notes.note(perf(), text, "warning")
        notes.flush()
    return _Run(
        windows=windows,
        reported=[windows[i] for i in rep_idx],
        stable=stable,
        lat=lat,
        lat_w=lat_w,
        service=svc,
        cpu_share=round(cpu_share, 4),
        rss_worker=round(rss_worker, 1),
        rss_total=round(rss_total, 1),
        warmup_s=round(t_meas0 - t_trial0, 4) if t_meas0 else 0.0,
        cold_start_s=round(max(load_s) if load_s else 0.0, 4),
        measured_s=round(sum(b - a for a, b in window_bounds), 4),
        items=round(credited),
        notes=notes,
        loads=loads,
        discarded=discarded,
        reported_idx=rep_idx,
        contaminated=contaminated,
        top=top,
        limit=settings.max_outside,
        threads=threads_seen,
    )


def _runs(
    idx: list[int], bounds: list[tuple[float, float]], dropped: set[int]
) -> list[tuple[float, float, bool]]:
    """The reported windows as time spans ``(start, end, strict)``, consecutive windows joined.

    ``strict``: the window before the span was discarded, so a partition counts only if it was
    also *submitted* inside the span — one that queued through the busy window would carry the
    busy host into a clean figure.
    """
    spans: list[tuple[float, float, bool]] = []
    prev = None
    for i in idx:
        if prev is not None and i == prev + 1:
            lo, _hi, strict = spans[-1]
            spans[-1] = (lo, bounds[i][1], strict)
        else:
            spans.append((bounds[i][0], bounds[i][1], (i - 1) in dropped))
        prev = i
    return spans


def _credit(entries: Sequence[tuple[float, int, float, int, float]], w0: float, w1: float) -> float:
    """Items completed in [w0, w1), each partition's good items spread over its service interval.

    Counting whole partitions by completion time quantises a window's throughput to the partition
    (8 workers finishing 512-item partitions in step make windows jump by 10%); spreading them over
    the time they were being computed gives the same total with far less window-to-window noise.
    """
    total = 0.0
    for t_done, ok, _lat, _n, svc in entries:
        if svc <= 0:
            if w0 <= t_done < w1:
                total += ok
            continue
        start = t_done - svc
        overlap = min(t_done, w1) - max(start, w0)
        if overlap > 0:
            total += ok * overlap / svc
    return total


def _emit_window(
    emit: SweepCallback | None,
    index: int,
    t: float,
    phase: str,
    entries: list[tuple[float, int, float, int, float]],
    span_s: float,
    outside: float | None = None,
    discarded: str | None = None,
) -> None:
    if emit is None:
        return
    tput = sum(d[1] for d in entries) / span_s if span_s > 0 else 0.0
    if entries:
        p50, p95, p99 = percentiles([d[2] for d in entries], (0.5, 0.95, 0.99), [d[3] for d in entries])
    else:
        p50 = p95 = p99 = math.nan
    load = None if outside is None else round(outside, 3)
    emit(WindowMeasured(index, t, phase, tput, p50 * 1000, p95 * 1000, p99 * 1000, load, discarded))


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
    }


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
    engine_overrides: dict[str, Any] | None = None,
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
    t_trial0 = time.perf_counter()
    overrides = dict(engine_overrides or {})
    base = {
        "backend": config.backend,
        "workers": config.workers,
        "threads_per_worker": config.threads_per_worker,
        "partition_size": config.partition_size,
        "placement": config.placement,
        # Samples often enough for several per window, rarely enough to cost nothing.
        "sample_interval_s": max(0.1, min(0.5, settings.window_s / 2)),
    }
    active = faults is not None and faults.active
    from tuner.bench.threads import allowed_per_worker

    model, allowed, model_file = allowed_per_worker(model, config)
    extra: dict[str, Any] = {"allowed_threads": allowed, "model_file": model_file}
    try:
        clean_run: _Run | None = None
        if active:
            assert faults is not None
            short = replace(
                settings, max_trial_s=max(settings.warmup_s + settings.window_s * 4, settings.max_trial_s / 2)
            )
            clean_cfg = EngineConfig(**{**base, **overrides})
            clean_run = _engine_run(
                model, inputs, config, short, clean_cfg, usable_cores,
                index=index, t_trial0=t_trial0, emit=on_message, cancel=cancel, label="without faults: ",
                own_pids=own_pids, **extra,
            )  # fmt: skip
            kw = {**base, "faults": faults, "retries": 3, **overrides}
            if kw.get("timeout_s") is None and (
                faults.hang > 0 or any(t.kind == "hang" for t in faults.targeted)
            ):
                kw["timeout_s"] = timeout_for(_figures(clean_run)["service_ms"].get("p999"))
            run = _engine_run(
                model, inputs, config, settings, EngineConfig(**kw), usable_cores,
                index=index, t_trial0=t_trial0, emit=on_message, cancel=cancel, label="",
                own_pids=own_pids, **extra,
            )  # fmt: skip
        else:
            run = _engine_run(
                model, inputs, config, settings, EngineConfig(**{**base, **overrides}), usable_cores,
                index=index, t_trial0=t_trial0, emit=on_message, cancel=cancel, label="",
                own_pids=own_pids, **extra,
            )  # fmt: skip
    except TrialCancelled:
        raise
    except TunerError as e:
        return error_result(config, str(e), faults)
    fig = _figures(run)
    result = TrialResult(
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
        faults=str(faults) if active else None,
        outside=_outside(run),
        discarded_windows=list(run.discarded),
        contaminated=run.contaminated,
        threads=run.threads,
    )
    if clean_run is not None:
        clean = _figures(clean_run)
        result.clean_throughput = clean["throughput"]
        result.clean_p99_ms = clean["latency_ms"].get("p99")
    if on_message is not None:
        tol = f"{settings.tolerance:.0%}"
        n_out = len(run.discarded)
        busy = f" ({n_out} busy window{'s' if n_out != 1 else ''} discarded)" if n_out else ""
        if result.contaminated:
            clean_n = len(run.windows) - n_out
            on_message(
                TrialPhase(
                    index,
                    "contaminated",
                    f"contaminated: host busy, {clean_n} clean window{'s' if clean_n != 1 else ''} of "
                    f"{len(run.windows)} in {settings.max_trial_s:g} s (outside load "
                    f"{result.outside.cpu if result.outside else 0:.0%} of {usable_cores} cores)",
                )
            )
        elif result.stable:
            on_message(
                TrialPhase(index, "stable", f"stable: {settings.stable_windows} windows within {tol}{busy}")
            )
        else:
            on_message(
                TrialPhase(
                    index,
                    "unstable",
                    f"unstable: no {settings.stable_windows} windows within {tol} in {settings.max_trial_s:g} s{busy}",
                )
            )
    return check_feasible(result, objective)
