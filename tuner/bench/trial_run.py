"""One engine run of a trial — warm-up, then windows until stable — and its raw outcome.

:class:`TrialRun` is the measuring loop of :func:`tuner.bench.measure.run_trial` (see that
module's docstring for what is measured and what each figure spans), in named steps::

    run(): start the engine ─► _ready() (tuner's own processes scanned, the cold start read)
           loop: wait for completions ─► _refill() ─► _drain_events()
                 warm-up:  _warmup_tick() every WARMUP_TICK_S ─► _begin_windows() once warm
                 windows:  _close_window() at each window's end (its load, its figure, its
                           verdict: counted or discarded) ─► _done() (stable, capped, or no
                           clean window left to be had)
           ─► _end_evidence() (threads that ran, this process's CPU, the busiest others)
           ─► result() ─► _Run (windows, the reported set, latency and service samples, CPU, RSS)

Closed loop: ``in_flight_per_worker × workers`` partitions are kept submitted; each completion is
replaced by the next slice of the inputs (cycling). Nothing here calls the model: the engine is
the only thing that runs it.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tuner import fmt
from tuner.bench.notes import Collector, Notes
from tuner.bench.types import SweepCallback, TrialConfig, TrialPhase, WindowMeasured
from tuner.engine import Engine, EngineConfig, PartitionResult
from tuner.engine import events as ev
from tuner.errors import TunerError
from tuner.hostload import (
    DEFAULT_MAX_OUTSIDE,
    HostSampler,
    Interval,
    ProcessTable,
    Rule,
    describe_top,
    name_processes,
    top_outside,
)
from tuner.stats import is_stable, percentiles

__all__ = ["WARMUP_TICK_S", "Done", "TrialCancelled", "TrialRun"]

#: How often a warm-up tick is reported (for a chart to show the rise).
WARMUP_TICK_S = 0.25
#: A measurement window holds at least this many partition service times (the warm-up's median).
WINDOW_SERVICES = 3.0
#: The warm-up may run this many partition service times before the trial gives up on it.
WARMUP_CAP_SERVICES = 6.0

#: A completed partition: (t_done, items ok, latency_s, items, service_s).
Done = tuple[float, int, float, int, float]


class TrialCancelled(TunerError):
    """The trial was cancelled (the sweep's cancel event was set) before it finished."""


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
    notes: Notes
    # the host around it: one Interval per measurement window, the windows discarded as busy
    loads: list[Interval]
    discarded: list[int]
    reported_idx: list[int]  # the windows the figures are over
    contaminated: bool
    top: list[Any]  # OutsideProcess, when a window was over the limit
    limit: float | None
    threads: dict[str, Any] = field(default_factory=dict)  # thread evidence (tuner.bench.threads)
    window_s: float = 0.0  # the measurement window used (sized from the service time)
    max_trial_s: float = 0.0  # the trial's time cap used


def _slices(inputs: Any, size: int) -> Iterator[Any]:
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


class TrialRun:
    """One engine run of a trial (see the module docstring). ``run()`` once, then read its ``_Run``."""

    def __init__(
        self,
        model: Any,
        inputs: Any,
        config: TrialConfig,
        settings: Any,  # tuner.bench.measure.MeasureSettings
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
    ) -> None:
        self.model, self.inputs, self.config, self.settings = model, inputs, config, settings
        self.engine_config, self.usable_cores = engine_config, usable_cores
        self.index, self.t_trial0, self.emit, self.cancel, self.label = index, t_trial0, emit, cancel, label
        self.own_pids, self.allowed_threads, self.model_file = own_pids, allowed_threads, model_file
        self.kind = engine_config.kind
        # Whose threads the evidence counts: this process when the workers run in it; else each
        # local worker process as it starts (a Ray actor runs elsewhere: its samples say what it used).
        self.pids: list[int] = [os.getpid()] if self.kind.in_caller else []
        self.collector = Collector()
        self.notes = Notes(index, t_trial0, engine_config.retries, emit, engine_config.timeout_s)
        self.rule = Rule(settings.max_outside, settings.max_swap_mb_s)
        # What counts as "over" for naming the busiest others, even when nothing is discarded by rule.
        self.over_rule = Rule(
            settings.max_outside if settings.max_outside is not None else DEFAULT_MAX_OUTSIDE,
            settings.max_swap_mb_s,
        )
        self.sampler = HostSampler(usable_cores, own_pids)
        self.me: Any = None
        if self.kind.in_caller:  # CPU and memory are this process's
            import psutil

            self.me = psutil.Process()
        self.load_s: list[float] = []
        self.samples: list[ev.ResourceSample] = []
        self.service: list[tuple[float, float]] = []
        self.inflight: set[Future[PartitionResult]] = set()
        self.done_log: list[Done] = []
        self.target = settings.in_flight_per_worker * config.workers
        # The window and the cap, sized again from the warm-up's service time (_begin_windows).
        self.window_s: float = settings.window_s
        self.max_trial_s: float = settings.max_trial_s
        self._init_windows()

    def _init_windows(self) -> None:
        self.warm = True
        self.t_ready = self.t_meas0 = self.wall0 = self.window_end = self.lag = 0.0
        self.tick_start = self.next_tick = 0.0
        self.windows: list[float] = []
        self.window_bounds: list[tuple[float, float]] = []
        self.loads: list[Interval] = []  # the host's load in each measurement window
        self.discarded: list[int] = []  # windows left out because the host was busy
        self.table0: ProcessTable | None = None
        self.rescanned = False
        self.win_load: Interval | None = None  # this window's load, sampled at its end
        self.log_pos = 0  # done_log entries before this index belong to earlier ticks/windows
        self.stable = False
        self.thr0: dict[int, dict[int, float]] = {}
        self.t_thr0 = 0.0
        self.cpu0: Any = None
        self.cpu1: Any = None
        self.rss_self = 0
        self.threads_seen: dict[str, Any] = {}
        self.top: list[Any] = []
        self.snap: Any = None
        self._sized = ""

    # -- small pieces ------------------------------------------------------------------------------
    def _phase(self, name: str, detail: str) -> None:
        if self.emit is not None:
            self.emit(TrialPhase(self.index, name, detail))

    def _refill(self) -> None:
        while len(self.inflight) < self.target:
            self.inflight.add(self.engine.submit(next(self.feed)))

    def _collect(self, done: set[Future[PartitionResult]]) -> None:
        for f in done:
            self.inflight.discard(f)
            if f.cancelled():
                continue
            r = f.result()
            self.done_log.append((r.t_done, len(r) - r.failed, r.latency_s, len(r), r.service_s))

    def _drain_events(self) -> None:
        events = self.collector.events
        while events:
            e = events.popleft()
            if isinstance(e, ev.PartitionFinished):
                self.service.append((e.t, e.service_s))
            elif isinstance(e, ev.ResourceSample):
                self.samples.append(e)
            elif isinstance(e, ev.WorkerStarted):
                self.sampler.add(e.pid)  # a worker (or its replacement) is tuner, not the outside
                if e.replacing is None:
                    self.load_s.append(e.load_s)
                    if not self.kind.in_caller and not self.kind.needs_cluster:
                        self.pids.append(e.pid)  # a local worker process: its threads are counted
                self.notes.handle(e)
            else:
                self.notes.handle(e)

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> _Run:
        """Measure: the engine started, warmed up, windows until stable or capped; the raw outcome."""
        self._phase("clean" if self.label else "warmup", f"{self.label}workers starting, model loading")
        with Engine(self.model, self.engine_config, on_event=self.collector) as engine:
            self.engine = engine
            self._ready()
            perf = time.perf_counter
            while True:
                now = perf()
                deadline = (
                    self.next_tick
                    if self.warm
                    else self.window_end + (self.lag if self.win_load is not None else 0.0)
                )
                done, _ = wait(
                    self.inflight, timeout=max(0.0, min(deadline - now, 0.1)), return_when=FIRST_COMPLETED
                )
                self._collect(done)
                if self.cancel is not None and self.cancel.is_set():
                    raise TrialCancelled("cancelled")
                self._refill()
                self._drain_events()
                now = perf()
                if self.warm:
                    if self._warmup_step(now):
                        break
                elif self._window_step(now):
                    break
            self._end_evidence()
        # The engine is closed (with cancel on an exception: nothing waits for in-flight partitions).
        self._drain_events()
        self.notes.flush()
        return self.result()

    def _ready(self) -> None:
        """The workers are up: tuner's own processes scanned, the cold start said, the loop primed."""
        self.t_ready = time.perf_counter()
        self.feed = _slices(self.inputs, self.config.partition_size)
        self._drain_events()
        # Tuner's processes now: this one, its forkserver, the workers, whatever a model started
        # while loading. Later workers arrive by their WorkerStarted events.
        self.sampler.scan()
        self.snap = self.sampler.snapshot()
        cold = max(self.load_s) if self.load_s else self.t_ready - self.t_trial0
        self._phase(
            "clean" if self.label else "warmup", f"{self.label}workers ready, model loading {cold:.1f} s"
        )
        self.cpu0 = self.me.cpu_times() if self.me is not None else None
        self._refill()
        self.tick_start = self.t_ready
        self.next_tick = self.t_ready + WARMUP_TICK_S

    def _warmup_step(self, now: float) -> bool:
        """A warm-up tick when one is due; the windows begin once warm. True: stop (capped while warm)."""
        s = self.settings
        if now >= self.next_tick:
            # One warm-up tick, so a chart can show the rise (and a host bar the load).
            entries = [d for d in self.done_log[self.log_pos :] if d[0] < now]
            self.log_pos += len(entries)
            after = self.sampler.snapshot()
            tick_load = self.sampler.interval(self.snap, after)
            self.snap = after
            self._emit_window(
                now - self.t_trial0, "warmup", entries, now - self.tick_start, tick_load.outside
            )
            self.tick_start = now
            self.next_tick = now + WARMUP_TICK_S
        if now - self.t_ready >= s.warmup_s and len(self.done_log) >= 2 * self.config.workers:
            self._begin_windows()
        elif now - self.t_ready >= max(s.max_trial_s, WARMUP_CAP_SERVICES * self._service_p50()):
            self.t_meas0 = self.wall0 = now
            return True
        return False

    def _begin_windows(self) -> None:
        s = self.settings
        self.warm = False
        # Who else is busy, read once before the windows start (named at the end only if a window
        # turns out busy: two reads of the process table per trial at most).
        self.table0 = ProcessTable.read()
        # The windows start here: completions before are warm-up.
        self._collect({f for f in self.inflight if f.done()})
        self.log_pos = len(self.done_log)
        self.t_meas0 = time.perf_counter()
        self.snap = self.sampler.snapshot()
        self._size_windows()
        self.window_end = self.t_meas0 + self.window_s
        # A window is counted once the partitions running at its end are back (items are credited
        # pro rata over each partition's service interval, see credit).
        self.lag = min(self.window_s, 2.0 * max((d[4] for d in self.done_log), default=0.0) + 0.01)
        self.wall0 = self.t_meas0
        from tuner.bench import threads as thread_evidence

        self.thr0, self.t_thr0 = thread_evidence.snapshot(self.pids), time.perf_counter()
        if self.me is not None:
            self.cpu0 = self.me.cpu_times()
        self._phase(
            "measuring",
            f"{self.label}windows of {fmt.seconds(self.window_s)} until {s.stable_windows} agree within "
            f"{s.tolerance:.0%}{self._sized}",
        )

    def _service_p50(self) -> float:
        """The median service time of the partitions completed so far (0 before any)."""
        svc = sorted(d[4] for d in self.done_log)
        return svc[len(svc) // 2] if svc else 0.0

    def _size_windows(self) -> None:
        """Windows long enough to hold WINDOW_SERVICES partition service times (Perf Analyzer counts
        requests per window, not seconds): a 1 s window over 2 s partitions reads 0 items/s or
        noise. The cap grows in proportion (as MeasureSettings.for_window has it), so a slow model
        still gets its stable windows."""
        s = self.settings
        svc = self._service_p50()
        need = WINDOW_SERVICES * svc
        self._sized = ""
        if need > s.window_s:
            self.window_s = round(need, 3)
            self.max_trial_s = max(s.max_trial_s, s.max_trial_s / s.window_s * self.window_s)
            self._sized = (
                f" (windows sized to {WINDOW_SERVICES:g} partition service times of {fmt.ms(svc * 1000)})"
            )

    def _window_step(self, now: float) -> bool:
        """At a window's end read the host's load; once its partitions are back, count it. True: stop."""
        if self.win_load is None:
            if now < self.window_end:
                return False
            self._read_window_load()
        if now < self.window_end + self.lag:
            return False
        self._close_window()
        if self._done(now):
            return True
        self.window_end += self.window_s
        return False

    def _read_window_load(self) -> None:
        # The host's load over this window, read as it ends (its partitions still run).
        after = self.sampler.snapshot()
        self.win_load = self.sampler.interval(self.snap, after)
        self.snap = after
        if not self.rescanned and self.rule.verdict(self.win_load, self.usable_cores) is not None:
            # Busy: first make sure no process of tuner's own (a model's subprocess started after
            # the first scan) is being counted as someone else's.
            self.rescanned = True
            if self.sampler.scan():
                self.snap = self.sampler.snapshot()

    def _close_window(self) -> None:
        assert self.win_load is not None
        self._collect({f for f in self.inflight if f.done()})
        w0 = self.window_end - self.window_s
        log = self.done_log
        while self.log_pos < len(log) and log[self.log_pos][0] < w0:
            self.log_pos += 1
        entries = [d for d in log[self.log_pos :] if d[0] < self.window_end]
        self.windows.append(credit(log[self.log_pos :], w0, self.window_end) / self.window_s)
        self.window_bounds.append((w0, self.window_end))
        self.loads.append(self.win_load)
        busy = self.rule.verdict(self.win_load, self.usable_cores)
        if busy is not None:
            self.discarded.append(len(self.windows) - 1)
        outside = self.win_load.outside
        self._emit_window(self.window_end - self.t_trial0, "measuring", entries, self.window_s, outside, busy)
        self.win_load = None

    def _done(self, now: float) -> bool:
        """Stable, capped, or (with busy windows) no clean stable set left to be had in time."""
        s = self.settings
        clean = [w for i, w in enumerate(self.windows) if i not in self.discarded]
        if is_stable(clean, s.stable_windows, s.tolerance):
            self.stable = True
            return True
        if now - self.t_ready >= self.max_trial_s:
            return True
        if self.discarded:
            # Measure on for clean windows while they can still make a stable set in time; a host
            # that gave none in the first half of the measuring time is busy, not briefly
            # interrupted: stop there (contaminated) rather than wait out the cap.
            left = math.ceil((self.t_ready + self.max_trial_s - now) / self.window_s)
            half = (self.t_ready + self.max_trial_s - self.t_meas0) / 2
            return len(clean) + left < s.stable_windows or (not clean and now - self.t_meas0 >= half)
        return False

    def _end_evidence(self) -> None:
        """Before the engine closes: the threads that ran, this process's CPU and RSS, the busiest others."""
        from tuner.bench import threads as thread_evidence

        if self.t_thr0:
            self.threads_seen = thread_evidence.evidence(
                self.thr0,
                thread_evidence.snapshot(self.pids),
                time.perf_counter() - self.t_thr0,
                in_caller=self.kind.in_caller,
                workers=self.config.workers,
                threads=self.config.threads_per_worker or self.allowed_threads,
                allowed_per_worker=self.allowed_threads,
                model_file=self.model_file,
            )
        self._drain_events()
        self.cpu1 = self.me.cpu_times() if self.me is not None else None
        self.rss_self = self.me.memory_info().rss if self.me is not None else 0
        if self.table0 is not None and any(self.over_rule.verdict(x, self.usable_cores) for x in self.loads):
            theirs = self.sampler.pids | set(self.own_pids)
            self.top = name_processes(
                top_outside(self.table0, ProcessTable.read(), self.usable_cores, theirs)
            )

    def _emit_window(
        self, t: float, phase: str, entries: list[Done], span_s: float, outside: float | None = None,
        discarded: str | None = None,
    ) -> None:  # fmt: skip
        if self.emit is None:
            return
        tput = sum(d[1] for d in entries) / span_s if span_s > 0 else 0.0
        if entries:
            p50, p95, p99 = percentiles([d[2] for d in entries], (0.5, 0.95, 0.99), [d[3] for d in entries])
        else:
            p50 = p95 = p99 = math.nan
        load = None if outside is None else round(outside, 3)
        self.emit(
            WindowMeasured(self.index, t, phase, tput, p50 * 1000, p95 * 1000, p99 * 1000, load, discarded)
        )

    # -- the outcome ---------------------------------------------------------------------------------
    def result(self) -> _Run:
        """The raw outcome: which windows are reported, their samples, the CPU and memory used."""
        s = self.settings
        dropped = set(self.discarded)
        windows = self.windows
        clean_idx = [i for i in range(len(windows)) if i not in dropped]
        contaminated = bool(dropped) and len(clean_idx) < s.stable_windows
        if self.stable:
            rep_idx = clean_idx[-s.stable_windows :]
        elif contaminated:
            rep_idx = list(range(len(windows)))  # no clean set to be had: every window, marked
        else:
            rep_idx = clean_idx
        spans = runs(rep_idx, self.window_bounds, dropped)
        sel = [
            d for d in self.done_log
            if any(lo <= d[0] < hi and (not strict or d[0] - d[2] >= lo) for lo, hi, strict in spans)
        ]  # fmt: skip
        credited = sum(credit(self.done_log, lo, hi) for lo, hi, _ in spans)
        cpu_share, rss_worker, rss_total = self._resources(spans, dropped)
        self._say_busy(dropped, clean_idx, contaminated)
        return _Run(
            windows=windows,
            reported=[windows[i] for i in rep_idx],
            stable=self.stable,
            lat=np.array([d[2] for d in sel], dtype=float),
            lat_w=np.array([d[3] for d in sel], dtype=float),
            service=np.array([v for t, v in self.service if _within(t, spans)], dtype=float),
            cpu_share=round(cpu_share, 4),
            rss_worker=round(rss_worker, 1),
            rss_total=round(rss_total, 1),
            warmup_s=round(self.t_meas0 - self.t_trial0, 4) if self.t_meas0 else 0.0,
            cold_start_s=round(max(self.load_s) if self.load_s else 0.0, 4),
            measured_s=round(sum(b - a for a, b in self.window_bounds), 4),
            items=round(credited),
            notes=self.notes,
            loads=self.loads,
            discarded=self.discarded,
            reported_idx=rep_idx,
            contaminated=contaminated,
            top=self.top,
            limit=s.max_outside,
            threads=self.threads_seen,
            window_s=self.window_s,
            max_trial_s=self.max_trial_s,
        )

    def _resources(
        self, spans: list[tuple[float, float, bool]], dropped: set[int]
    ) -> tuple[float, float, float]:
        """CPU (share of the usable cores) and peak RSS (largest worker, all of them), MB."""
        t_end = self.window_bounds[-1][1] if self.window_bounds else time.perf_counter()
        cores = self.usable_cores
        if self.kind.in_caller:
            cpu_share = 0.0
            c0, c1 = self.cpu0, self.cpu1
            if c0 is not None and c1 is not None and t_end > self.wall0:
                used = (c1.user + c1.system) - (c0.user + c0.system)
                cpu_share = used / (t_end - self.wall0) / cores
            return cpu_share, self.rss_self / 1e6, self.rss_self / 1e6
        meas = [x for x in self.samples if self.t_meas0 <= x.t <= t_end + 0.01]
        if dropped:
            meas = [x for x in meas if _within(x.t, spans)] or meas
        shares = [sum(w.cpu_percent for w in x.workers) / 100.0 / cores for x in meas if x.workers]
        rss_worker = max((w.rss_bytes for x in self.samples for w in x.workers), default=0) / 1e6
        rss_total = max((sum(w.rss_bytes for w in x.workers) for x in self.samples), default=0) / 1e6
        return (float(np.mean(shares)) if shares else 0.0), rss_worker, rss_total

    def _say_busy(self, dropped: set[int], clean_idx: list[int], contaminated: bool) -> None:
        if not dropped or self.emit is None:
            return
        worst = max(self.loads[i].outside for i in dropped)
        text = (
            f"host busy: {len(dropped)} of {len(self.windows)} windows discarded (outside load up to "
            f"{worst:.0%} of {self.usable_cores} cores)"
        )
        if contaminated:
            clean_n = f"only {len(clean_idx)} clean" if clean_idx else "no clean window"
            text += f"; {clean_n}, the figures include busy windows"
        if self.top:
            text += f"; busiest others: {describe_top(self.top)}"
        self.notes.note(time.perf_counter(), text, "warning")
        self.notes.flush()


def _within(t: float, spans: list[tuple[float, float, bool]]) -> bool:
    return any(lo <= t < hi for lo, hi, _ in spans)


def runs(
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


def credit(entries: Sequence[Done], w0: float, w1: float) -> float:
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
