"""The production runtime: run a model the way its scaling profile says, on the engine that was measured.

::

    from tuner.runtime import Runtime

    with Runtime.from_profile("profiles/mlp.yaml") as rt:
        for y in rt.map(rows):               # offline: outputs in input order
            ...
        future = rt.submit(one_request)      # online: dynamic batching
        print(rt.stats())

Data flow::

    map(items) ──── partitions ─────────────────────────────┐
    submit(item) ─► queue ─► batcher thread: a partition    ├─► Engine (the one tuner.bench measured)
                             closes at partition_size or    │        │ PartitionResult futures
                             max_batch_delay_ms             ┘        ▼
    item futures ◄── completer thread (outputs / ItemFailed) ◄── done-callbacks ──► latency ring, counters
    autoscaler thread: every interval_s, backlog per worker and p99 ─► engine.resize(n), with its reason

What a profile applies: backend, workers, threads per worker, partition size, timeout, retries,
``retry_on``, backoff, memory limit, the dynamic batcher's delay and the autoscaler's bounds and pace;
the ``platforms:`` entry for this OS is merged over ``recommended`` first.

Safety: loading a profile never executes code from it. The model spec in a profile is a reference;
the runtime imports it only when it builds the model, i.e. when it starts (``start()``, ``with``, or the
first ``map``/``submit``), and with the process backend it is imported in the worker processes only.

Lightness: production processes import this module, so at import time it pulls in only the standard
library and :mod:`tuner.errors`. The engine, the profile schema (pydantic) and the hardware probe
(psutil, numpy) are imported when a Runtime is built; nothing of Textual, plotext, rich or the
benchmark is ever imported (``tests/test_import_hygiene.py`` enforces it).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from tuner.errors import ConfigError, EngineClosed, ItemFailed, ProfileError, TunerError

if TYPE_CHECKING:
    from tuner.engine import Engine, FaultPlan, PartitionResult
    from tuner.engine.events import Event
    from tuner.hardware import Host
    from tuner.profile import HostInfo, ScalingProfile

__all__ = [
    "AutoscaleSettings",
    "Runtime",
    "RuntimeSettings",
    "RuntimeStats",
    "ScalingDecision",
    "adapt_to_host",
]

#: The logger every runtime message goes to (one warning line on a host mismatch; scaling at INFO).
log = logging.getLogger("tuner.runtime")

#: Latency samples kept for percentiles (one per completed partition): a bounded ring, so stats()
#: costs the same after a day as after a minute.
LATENCY_RING = 4096
#: Window of the "recent" throughput and percentiles when there is no autoscaler to set one.
STATS_WINDOW_S = 5.0
#: Scaling decisions kept for stats().
DECISIONS_KEPT = 256

OnFailure = Literal["raise", "yield"]


# --------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class AutoscaleSettings:
    """Bounds and pace of the autoscaler (the profile's ``autoscale:`` section)."""

    min_workers: int
    max_workers: int
    target_backlog_per_worker: float = 4.0  # partitions waiting or running per worker
    target_p99_ms: float | None = None  # also scale up when the recent p99 is above this
    upscale_delay_s: float = 0.0  # the need must last this long before adding workers
    downscale_delay_s: float = 300.0  # ... and this long before removing any (Kubernetes HPA default)
    interval_s: float = 1.0  # how often the autoscaler looks

    def __post_init__(self) -> None:
        if self.min_workers < 1 or self.max_workers < self.min_workers:
            raise ConfigError(
                f"autoscale needs 1 <= min_workers <= max_workers (got {self.min_workers}–{self.max_workers})"
            )
        if self.target_backlog_per_worker <= 0:
            raise ConfigError(
                f"autoscale target_backlog_per_worker must be > 0 (got {self.target_backlog_per_worker})"
            )
        if self.interval_s <= 0 or self.upscale_delay_s < 0 or self.downscale_delay_s < 0:
            raise ConfigError("autoscale needs interval_s > 0 and non-negative delays")


@dataclass(frozen=True)
class RuntimeSettings:
    """Everything the runtime applies; built from a profile or from keyword arguments."""

    backend: str = "process"
    workers: int = 1
    threads_per_worker: int | None = 1
    partition_size: int = 64
    timeout_s: float | None = None
    retries: int = 3
    retry_on: tuple[str, ...] = ()
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 2.0
    memory_limit_mb: float | None = None
    max_batch_delay_ms: float = 5.0
    autoscale: AutoscaleSettings | None = None

    def __post_init__(self) -> None:
        if self.max_batch_delay_ms < 0:
            raise ConfigError(f"max_batch_delay_ms must be >= 0 (got {self.max_batch_delay_ms})")
        a = self.autoscale
        if a is not None and not a.min_workers <= self.workers <= a.max_workers:
            raise ConfigError(
                f"workers ({self.workers}) outside autoscale bounds {a.min_workers}–{a.max_workers}"
            )

    def describe(self) -> str:
        """One line: ``process ×2 · 1 thread · partition 64 · timeout 0.25 s · autoscale 1–2``."""
        threads = self.threads_per_worker
        parts = [
            f"{self.backend} ×{self.workers}",
            "default threads" if threads is None else f"{threads} thread{'s' if threads != 1 else ''}",
            f"partition {self.partition_size}",
            f"timeout {self.timeout_s:g} s" if self.timeout_s is not None else "no timeout",
        ]
        if self.autoscale is not None:
            parts.append(f"autoscale {self.autoscale.min_workers}–{self.autoscale.max_workers}")
        return " · ".join(parts)


_SETTING_NAMES = frozenset(f.name for f in fields(RuntimeSettings))


def settings_from_profile(profile: ScalingProfile, platform: str | None = None) -> RuntimeSettings:
    """The settings a profile asks for on ``platform`` (default: this OS), its override merged in."""
    rec = profile.effective_recommended(platform)
    a = profile.autoscale
    return RuntimeSettings(
        backend=rec.backend,
        workers=rec.workers,
        threads_per_worker=rec.threads_per_worker,
        partition_size=rec.partition_size,
        timeout_s=rec.timeout_s,
        retries=rec.retries,
        retry_on=tuple(rec.retry_on),
        backoff_base_s=rec.backoff.base_s,
        backoff_cap_s=rec.backoff.cap_s,
        memory_limit_mb=rec.memory_limit_mb,
        max_batch_delay_ms=rec.max_batch_delay_ms,
        autoscale=AutoscaleSettings(
            min_workers=a.min_workers,
            max_workers=a.max_workers,
            target_backlog_per_worker=a.target_backlog_per_worker,
            target_p99_ms=a.target_p99_ms,
            upscale_delay_s=a.upscale_delay_s,
            downscale_delay_s=a.downscale_delay_s,
            interval_s=a.interval_s,
        ),
    )


# --------------------------------------------------------------------------------------------- host check


def host_differences(measured: HostInfo, here: Host) -> list[str]:
    """What differs, in words, between the host a profile was measured on and this one."""
    out: list[str] = []
    if measured.usable_cores != here.usable_cores:
        out.append(
            f"profile measured on {measured.usable_cores} usable cores, this host has {here.usable_cores}"
        )
    if measured.physical_cores is not None and measured.physical_cores != here.physical_cores:
        out.append(
            f"profile measured on {measured.physical_cores} physical cores, this host has {here.physical_cores}"
        )
    if measured.cpu_model != here.cpu_model:
        out.append(f"CPU {measured.cpu_model!r} vs {here.cpu_model!r}")
    if measured.platform != here.platform:
        out.append(f"platform {measured.platform} vs {here.platform}")
    if measured.machine != here.machine:
        out.append(f"machine {measured.machine} vs {here.machine}")
    here_gb = here.memory_total_bytes / 1e9
    # Memory moves by a few percent between boots; only a different class of machine is worth a word.
    if abs(measured.memory_total_gb - here_gb) > 0.15 * max(measured.memory_total_gb, here_gb):
        out.append(
            f"profile measured with {measured.memory_total_gb:.0f} GB of memory, this host has {here_gb:.0f} GB"
        )
    return out


def adapt_to_host(
    settings: RuntimeSettings, measured_cores: int, usable: int
) -> tuple[RuntimeSettings, list[str]]:
    """Scale a profile's workers and threads from the cores it was measured on to ``usable`` cores.

    The rule keeps what the measurement showed: a profile that fit its host (workers × threads <=
    its cores, a CPU-bound model) keeps fitting — threads capped at the usable cores, workers at
    usable // threads, the autoscaler's ceiling likewise, and on a larger host the autoscaler may
    grow to fill it (the measured worker count is kept as the starting point, since more workers
    were never measured). A profile that deliberately ran more threads than cores (an I/O-bound
    model) is not CPU-bound, so its worker count is kept. Returns the settings and what changed.
    """
    s = settings
    changes: list[str] = []
    threads = s.threads_per_worker
    if threads is not None and threads > usable:
        changes.append(f"threads {threads}→{usable}")
        threads = usable
    per = threads or 1
    cpu_bound = s.workers * (s.threads_per_worker or 1) <= measured_cores
    workers = s.workers
    auto = s.autoscale
    if cpu_bound:
        ceiling = max(1, usable // per)
        if workers > ceiling:
            changes.append(f"workers {workers}→{ceiling}")
            workers = ceiling
        if auto is not None:
            new_max = (
                min(auto.max_workers, ceiling) if usable < measured_cores else max(auto.max_workers, ceiling)
            )
            new_max = max(new_max, workers)
            new_min = min(auto.min_workers, new_max)
            if (new_min, new_max) != (auto.min_workers, auto.max_workers):
                changes.append(f"autoscale {auto.min_workers}–{auto.max_workers}→{new_min}–{new_max}")
                auto = replace(auto, min_workers=new_min, max_workers=new_max)
    return replace(s, threads_per_worker=threads, workers=workers, autoscale=auto), changes


# --------------------------------------------------------------------------------------------- stats


@dataclass(frozen=True)
class ScalingDecision:
    """One autoscaler resize and why it happened."""

    at: float  # wall clock, time.time()
    old: int
    new: int
    reason: str

    def __str__(self) -> str:
        return f"{'up' if self.new > self.old else 'down'} {self.old}→{self.new}: {self.reason}"


@dataclass(frozen=True)
class RuntimeStats:
    """A snapshot of the runtime (``Runtime.stats()``)."""

    workers: int  # the engine's target worker count now
    live_workers: int  # workers loaded and serving
    backlog: int  # partitions in the engine, waiting or running
    queued: int  # items waiting in the dynamic batcher
    items_done: int  # items with an outcome (output or failure record)
    items_failed: int
    throughput: float  # items/s completed over the last `window_s`
    window_s: float
    latency_ms: dict[str, float | None]  # p50/p95/p99 of partition latency over the window (caller's view)
    failures: dict[str, int]  # failed items by cause
    retries: int  # partition attempts retried by the engine
    replaced: int  # workers replaced after a crash, timeout or memory kill
    scaling: tuple[ScalingDecision, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scaling"] = [vars(x) for x in self.scaling]
        return d


class _Meter:
    """Completed partitions in a bounded ring: throughput and latency percentiles over a window."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ring: deque[tuple[float, float, int]] = deque(maxlen=LATENCY_RING)  # (t_done, latency, items)
        self.items_done = 0
        self.items_failed = 0
        self.failures: dict[str, int] = {}
        self.t0 = time.perf_counter()

    def record(self, t_done: float, latency_s: float, items: int, causes: Iterable[str] = ()) -> None:
        with self._lock:
            self._ring.append((t_done, latency_s, items))
            self.items_done += items
            for cause in causes:
                self.failures[cause] = self.failures.get(cause, 0) + 1
                self.items_failed += 1

    def recent(self, window_s: float, now: float | None = None) -> tuple[float, dict[str, float | None]]:
        """(items/s, {p50, p95, p99} in ms) over the last ``window_s`` seconds."""
        now = time.perf_counter() if now is None else now
        since = now - window_s
        with self._lock:
            recent = [(lat, n) for t, lat, n in self._ring if t >= since]
        span = min(window_s, max(now - self.t0, 1e-3))
        throughput = sum(n for _, n in recent) / span
        lats = sorted(lat for lat, _ in recent)
        return throughput, {f"p{q}": _percentile_ms(lats, q) for q in (50, 95, 99)}


def _percentile_ms(sorted_s: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in ms; None without samples."""
    if not sorted_s:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_s)))
    return sorted_s[rank - 1] * 1000.0


# --------------------------------------------------------------------------------------------- runtime


class _Pending:
    """One submitted item waiting in the batcher."""

    __slots__ = ("future", "index", "item", "t")

    def __init__(self, index: int, item: Any, future: Future[Any], t: float) -> None:
        self.index = index
        self.item = item
        self.future = future
        self.t = t


class Runtime:
    """Runs a model on the tuner engine with a profile's settings: ``map``, ``submit``, autoscaling.

    Build one with :meth:`from_profile` or directly (``Runtime("builtin:mlp", workers=2, ...)``).
    The engine starts on ``start()``, on entering ``with``, or on the first ``map``/``submit``;
    ``close()`` (or leaving ``with``) stops every worker and thread. Thread-safe: several threads
    may ``submit`` and ``map`` at once.
    """

    def __init__(
        self,
        model: Any,
        *,
        backend: str = "process",
        workers: int = 1,
        threads_per_worker: int | None = 1,
        partition_size: int = 64,
        timeout_s: float | None = None,
        retries: int = 3,
        retry_on: Iterable[str] = (),
        backoff_base_s: float = 0.05,
        backoff_cap_s: float = 2.0,
        memory_limit_mb: float | None = None,
        max_batch_delay_ms: float = 5.0,
        autoscale: AutoscaleSettings | None = None,
        faults: FaultPlan | str | None = None,
        on_event: Callable[[Event], None] | None = None,
        settings: RuntimeSettings | None = None,
    ) -> None:
        if settings is None:
            settings = RuntimeSettings(
                backend=backend,
                workers=workers,
                threads_per_worker=threads_per_worker,
                partition_size=partition_size,
                timeout_s=timeout_s,
                retries=retries,
                retry_on=tuple(retry_on),
                backoff_base_s=backoff_base_s,
                backoff_cap_s=backoff_cap_s,
                memory_limit_mb=memory_limit_mb,
                max_batch_delay_ms=max_batch_delay_ms,
                autoscale=autoscale,
            )
        self.model = model
        self.settings = settings
        self.profile: ScalingProfile | None = None
        self._user_cb = on_event
        from tuner.engine import Backoff, Engine, EngineConfig, FaultPlan

        plan = FaultPlan.parse(faults) if isinstance(faults, str) else (faults or FaultPlan())
        s = settings
        # EngineConfig validates every knob (workers >= 1, timeout > 0, ...) with one-line errors.
        self.engine_config = EngineConfig(
            backend=s.backend,
            workers=s.workers,
            partition_size=s.partition_size,
            threads_per_worker=s.threads_per_worker,
            timeout_s=s.timeout_s,
            retries=s.retries,
            retry_on=s.retry_on,
            backoff=Backoff(s.backoff_base_s, s.backoff_cap_s),
            memory_limit_mb=s.memory_limit_mb,
            faults=plan,
        )
        self._engine: Engine = Engine(model, self.engine_config, on_event=on_event)
        self._meter = _Meter()
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        # dynamic batcher
        self._cv = threading.Condition()
        self._queue: deque[_Pending] = deque()
        self._submit_ids = itertools.count()
        self._batcher: threading.Thread | None = None
        self._completer: threading.Thread | None = None
        self._done_q: deque[tuple[list[_Pending], Future[PartitionResult]] | None] = deque()
        self._done_evt = threading.Condition()
        # autoscaler
        self._stop = threading.Event()
        self._scaler: threading.Thread | None = None
        self._decisions: deque[ScalingDecision] = deque(maxlen=DECISIONS_KEPT)
        self._up_since: float | None = None
        self._low_since: float | None = None
        self._low_max = 0

    # ---------------------------------------------------------------- construction from a profile

    @classmethod
    def from_profile(
        cls,
        path: str | os.PathLike[str],
        model: Any = None,
        strict: bool = False,
        *,
        faults: FaultPlan | str | None = None,
        on_event: Callable[[Event], None] | None = None,
        **overrides: Any,
    ) -> Runtime:
        """A runtime with the settings of the profile at ``path`` (nothing is started or imported yet).

        ``model``: the model to run; default: the profile's ``model.spec``. The ``platforms:`` entry
        for this OS is merged over ``recommended``. If the profile was measured on another host, one
        warning line names what differs and how the settings were adapted to this host's usable
        cores; ``strict=True`` raises :class:`ProfileError` instead. ``overrides`` (any
        :class:`RuntimeSettings` field, e.g. ``workers=4``) win over the profile and are not adapted.
        """
        from tuner.profile import load_profile

        unknown = sorted(set(overrides) - _SETTING_NAMES)
        if unknown:
            raise ConfigError(
                f"unknown runtime setting(s): {', '.join(unknown)} (choose from {', '.join(sorted(_SETTING_NAMES))})"
            )
        profile = load_profile(path)
        settings = settings_from_profile(profile)
        settings = cls._check_host(os.fspath(path), profile, settings, strict)
        if overrides:
            auto = overrides.get("autoscale", settings.autoscale)
            if auto is not None and "workers" in overrides:
                # An explicit worker count widens the bounds rather than being refused by them.
                w = overrides["workers"]
                auto = replace(
                    auto, min_workers=min(auto.min_workers, w), max_workers=max(auto.max_workers, w)
                )
            settings = replace(settings, **{**overrides, "autoscale": auto})
        rt = cls(
            model if model is not None else profile.model.spec,
            settings=settings,
            faults=faults,
            on_event=on_event,
        )
        rt.profile = profile
        return rt

    @staticmethod
    def _check_host(
        name: str, profile: ScalingProfile, settings: RuntimeSettings, strict: bool
    ) -> RuntimeSettings:
        from tuner.hardware import probe

        here = probe()
        if profile.host.fingerprint == here.fingerprint():
            return settings
        diffs = host_differences(profile.host, here) or [
            f"host fingerprint {profile.host.fingerprint} vs {here.fingerprint()}"
        ]
        what = "; ".join(diffs)
        if strict:
            raise ProfileError(f"{name}: measured on another host ({what}); strict=True refuses to adapt")
        adapted, changes = adapt_to_host(settings, profile.host.usable_cores, here.usable_cores)
        how = ", ".join(changes) if changes else "settings kept as measured"
        # logging, not warnings.warn: a service routes its logs, and warnings.warn shows a message
        # only once per call site, so a second runtime in the same process would adapt silently.
        log.warning(
            "%s: measured on another host (%s); adapted: %s → %s", name, what, how, adapted.describe()
        )
        return adapted

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Runtime:
        """Start the workers (loading the model in each) and the autoscaler; idempotent."""
        with self._lock:
            if self._closed:
                raise EngineClosed("the runtime is closed")
            if self._started:
                return self
            self._engine.start()
            self._meter.t0 = time.perf_counter()
            a = self.settings.autoscale
            if a is not None and a.min_workers < a.max_workers and self.settings.backend != "inline":
                self._scaler = threading.Thread(
                    target=self._autoscale_loop, name="tuner-autoscaler", daemon=True
                )
                self._scaler.start()
            self._started = True
        return self

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(wait=exc_type is None, cancel=exc_type is not None)

    def close(self, wait: bool = True, cancel: bool = False) -> None:
        """Stop: flush (or, with ``cancel``, fail) queued items, stop the autoscaler, close the engine.

        ``wait``: let submitted work finish first. No worker process or thread outlives this call.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        from tuner.engine import Failure

        with self._cv:
            dropped = list(self._queue) if cancel else []
            if cancel:
                self._queue.clear()
            self._cv.notify_all()
        for p in dropped:
            if p.future.set_running_or_notify_cancel():
                p.future.set_exception(
                    ItemFailed(p.index, Failure("cancelled", "the runtime closed first", 0))
                )
        if self._batcher is not None:
            self._batcher.join()
        if self._scaler is not None:
            self._scaler.join()
        self._engine.close(wait=wait, cancel=cancel)
        with self._done_evt:
            self._done_q.append(None)
            self._done_evt.notify()
        if self._completer is not None:
            self._completer.join()

    @property
    def workers(self) -> int:
        """The number of workers the runtime aims to run now (the autoscaler changes it)."""
        return self._engine.workers

    @property
    def engine(self) -> Engine:
        """The engine this runtime drives (for its events and counters; do not resize it yourself)."""
        return self._engine

    # ---------------------------------------------------------------- offline: map

    def map(self, items: Iterable[Any], on_failure: OnFailure = "raise") -> Iterator[Any]:
        """Outputs in input order, each item exactly once.

        ``on_failure="raise"``: a failed item raises :class:`ItemFailed` (its ``failure`` holds the
        cause, message, attempts and remote traceback) when the iteration reaches it.
        ``"yield"``: its :class:`~tuner.engine.Failure` record is yielded in its place.
        Partitions are submitted ahead of the consumer within a bounded window, sized from the
        autoscaler's ceiling so that a large input shows as backlog and can scale the pool up.
        """
        if on_failure not in ("raise", "yield"):
            raise ConfigError(f"on_failure must be 'raise' or 'yield' (got {on_failure!r})")
        self.start()
        return self._map(items, on_failure)

    #: Check a numpy input of ``map`` against the item the profile was measured with (dtype and
    #: shape; a mismatch is one ConfigError, not a failure per item). Set False for a deliberate change.
    check_input: bool = True

    def _map(self, items: Iterable[Any], on_failure: OnFailure) -> Iterator[Any]:
        from tuner.engine import Failure

        if self.check_input and self.profile is not None and hasattr(items, "dtype"):
            from tuner.models.signature import check_input

            hint = "set check_input = False on the Runtime to run anyway"
            check_input(self.profile, items, "Runtime.map", hint=hint, error=ConfigError)
        s = self.settings
        ceiling = s.autoscale.max_workers if s.autoscale is not None else s.workers
        window = max(4, ceiling * (self.engine_config.prefetch + 2))
        inflight: deque[tuple[int, Future[PartitionResult]]] = deque()
        index = 0
        from tuner.engine.pool import partitions

        chunks = partitions(items, s.partition_size)
        while True:
            while len(inflight) < window:
                chunk = next(chunks, None)
                if chunk is None:
                    break
                inflight.append((index, self._submit_partition(chunk, time.perf_counter())))
                index += len(chunk)
            if not inflight:
                return
            first, fut = inflight.popleft()
            result = fut.result()
            if not result.failed:
                yield from result.outputs
                continue
            for i, out in enumerate(result.outputs):
                if isinstance(out, Failure) and on_failure == "raise":
                    raise ItemFailed(first + i, out)
                yield out

    def _submit_partition(self, chunk: Any, t_first: float) -> Future[PartitionResult]:
        fut = self._engine.submit(chunk)
        fut.add_done_callback(lambda f: self._record(f, t_first))
        return fut

    def _record(self, fut: Future[PartitionResult], t_first: float) -> None:
        # Runs in the engine's supervisor thread: keep it to a few appends.
        if fut.cancelled():
            return
        result = fut.result()
        now = time.perf_counter()
        causes = [o.cause for _, o in result.failures()] if result.failed else ()
        self._meter.record(now, now - t_first, len(result.outputs), causes)

    # ---------------------------------------------------------------- online: submit

    def submit(self, item: Any) -> Future[Any]:
        """Run one item; its future gives its output, or raises :class:`ItemFailed`.

        Items submitted one at a time are grouped into partitions (dynamic batching, like
        Triton's dynamic batcher): a partition closes when it holds ``partition_size`` items or
        when its first item has waited ``max_batch_delay_ms``, whichever comes first.
        """
        self.start()
        fut: Future[Any] = Future()
        with self._cv:
            if self._closed:
                raise EngineClosed("the runtime is closed")
            if self._batcher is None:
                self._batcher = threading.Thread(target=self._batch_loop, name="tuner-batcher", daemon=True)
                self._completer = threading.Thread(
                    target=self._complete_loop, name="tuner-completer", daemon=True
                )
                self._batcher.start()
                self._completer.start()
            self._queue.append(_Pending(next(self._submit_ids), item, fut, time.perf_counter()))
            if len(self._queue) == 1 or len(self._queue) >= self.settings.partition_size:
                self._cv.notify()
        return fut

    def _batch_loop(self) -> None:
        size = self.settings.partition_size
        delay = self.settings.max_batch_delay_ms / 1000.0
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return  # closed and drained
                deadline = self._queue[0].t + delay
                while len(self._queue) < size and not self._closed:
                    remaining = deadline - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._cv.wait(remaining)
                batch = [self._queue.popleft() for _ in range(min(size, len(self._queue)))]
            # A future the caller cancelled while it waited is dropped here, never run.
            batch = [p for p in batch if p.future.set_running_or_notify_cancel()]
            if not batch:
                continue
            try:
                fut = self._submit_partition(_as_partition([p.item for p in batch]), batch[0].t)
            except TunerError as e:  # engine closed or broken (the model cannot load)
                for p in batch:
                    p.future.set_exception(e)
                continue
            fut.add_done_callback(functools.partial(self._hand_over, batch))

    def _hand_over(self, batch: list[_Pending], fut: Future[PartitionResult]) -> None:
        # Runs in the engine's supervisor thread; resolving item futures runs the callers'
        # callbacks, which may be slow, so that happens in the completer thread instead.
        with self._done_evt:
            self._done_q.append((batch, fut))
            self._done_evt.notify()

    def _complete_loop(self) -> None:
        from tuner.engine import Failure

        while True:
            with self._done_evt:
                while not self._done_q:
                    self._done_evt.wait()
                entry = self._done_q.popleft()
            if entry is None:
                return
            batch, fut = entry
            if fut.cancelled():
                failure = Failure("cancelled", "the runtime closed before this item ran", 0)
                for p in batch:
                    p.future.set_exception(ItemFailed(p.index, failure))
                continue
            outputs = fut.result().outputs
            for p, out in zip(batch, outputs, strict=True):
                if isinstance(out, Failure):
                    p.future.set_exception(ItemFailed(p.index, out))
                else:
                    p.future.set_result(out)

    # ---------------------------------------------------------------- stats

    def _window_s(self) -> float:
        a = self.settings.autoscale
        return max(a.interval_s * 2, 0.5) if a is not None else STATS_WINDOW_S

    def stats(self) -> RuntimeStats:
        """Workers, backlog, throughput and latency percentiles over a recent window, failures, retries."""
        e = self._engine.stats()
        window = self._window_s()
        throughput, lat = self._meter.recent(window)
        with self._cv:
            queued = len(self._queue)
        m = self._meter
        with m._lock:
            failures = dict(m.failures)
            done, failed = m.items_done, m.items_failed
        return RuntimeStats(
            workers=e["workers"],
            live_workers=e["live_workers"],
            backlog=e["backlog"],
            queued=queued,
            items_done=done,
            items_failed=failed,
            throughput=throughput,
            window_s=window,
            latency_ms=lat,
            failures=failures,
            retries=e["retried"],
            replaced=e["replaced"],
            scaling=tuple(self._decisions),
        )

    @property
    def scaling_decisions(self) -> list[ScalingDecision]:
        """Every resize the autoscaler made (the last DECISIONS_KEPT), oldest first."""
        return list(self._decisions)

    # ---------------------------------------------------------------- autoscaler

    def _autoscale_loop(self) -> None:
        a = self.settings.autoscale
        assert a is not None
        while not self._stop.wait(a.interval_s):
            try:
                self._autoscale_tick(time.perf_counter())
            except TunerError as e:  # the engine closed under us: nothing left to scale
                log.debug("autoscaler stopped: %s", e)
                return

    def _autoscale_tick(self, now: float) -> ScalingDecision | None:
        """One look: compute the wanted worker count, resize when the need has lasted long enough.

        Wanted = ceil(backlog / target_backlog_per_worker) (the Kubernetes HPA rule
        ``ceil(current × metric / target)``), plus one when the recent p99 is above its target while
        every worker is busy (with idle workers, more of them would not shorten a partition). Up:
        once the need has lasted ``upscale_delay_s``. Down: only after every look for
        ``downscale_delay_s`` wanted fewer, and then to the most any of those looks wanted (HPA's
        stabilisation window), so a short lull never drops capacity a burst is about to need.
        """
        a = self.settings.autoscale
        assert a is not None
        workers = self._engine.workers
        with self._cv:
            queued = len(self._queue)
        backlog = self._engine.backlog() + math.ceil(queued / self.settings.partition_size)
        per_worker = backlog / workers
        wanted = math.ceil(backlog / a.target_backlog_per_worker)
        why = f"backlog {per_worker:.1f} partitions per worker vs target {a.target_backlog_per_worker:g}"
        if a.target_p99_ms is not None and per_worker >= 1:
            _, lat = self._meter.recent(self._window_s(), now)
            p99 = lat["p99"]
            if p99 is not None and p99 > a.target_p99_ms and wanted <= workers:
                wanted = workers + 1
                why = f"p99 {p99:.1f} ms > target {a.target_p99_ms:g} ms with every worker busy"
        wanted = min(a.max_workers, max(a.min_workers, wanted))
        if wanted > workers:
            self._low_since = None
            if self._up_since is None:
                self._up_since = now
            if now - self._up_since >= a.upscale_delay_s:
                self._up_since = None
                return self._resize(workers, wanted, f"{why} (held {a.upscale_delay_s:g} s)")
            return None
        self._up_since = None
        if wanted < workers:
            if self._low_since is None:
                self._low_since, self._low_max = now, wanted
            self._low_max = max(self._low_max, wanted)
            if now - self._low_since >= a.downscale_delay_s:
                target, self._low_since = self._low_max, None
                return self._resize(
                    workers, target, f"{why}; wanted at most {target} for {a.downscale_delay_s:g} s"
                )
            return None
        self._low_since = None
        return None

    def _resize(self, old: int, new: int, reason: str) -> ScalingDecision:
        self._engine.resize(new)
        decision = ScalingDecision(time.time(), old, new, reason)
        self._decisions.append(decision)
        log.info("autoscale %s", decision)
        return decision


# --------------------------------------------------------------------------------------------- helpers


def _as_partition(items: list[Any]) -> Any:
    """Rows of one numpy shape and dtype become one array (it travels by shared memory and feeds
    a batch model as it would from map); anything else stays a list. numpy is not imported for this:
    if it is not loaded, the items cannot be numpy arrays."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(items[0], np.ndarray):
        first = items[0]
        if all(
            isinstance(x, np.ndarray) and x.shape == first.shape and x.dtype == first.dtype for x in items
        ):
            return np.stack(items)
    return items
