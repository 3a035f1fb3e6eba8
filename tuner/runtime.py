"""The production runtime: run a model the way its scaling profile says, on the engine that was measured.

::

    from tuner.runtime import Runtime

    with Runtime.from_profile("profiles/mlp.yaml") as rt:
        for y in rt.map(rows):               # offline: outputs in input order
            ...
        future = rt.submit(one_request)      # online: dynamic batching
        print(rt.stats())

Data flow::

               ┌─ gate: at most max_pending items in flight; past it block, time out or
               │  reject (Overloaded) — the overload policy
    map(items) ┴─ partitions ───────────────────────────────┐
    submit(item) ─► queue ─► batcher thread: a partition    ├─► Engine (the one tuner.bench measured)
                             closes at max_batch_size or    │        │ PartitionResult futures
                             max_batch_delay_ms             ┘        ▼
    item futures ◄── completer thread (outputs / ItemFailed / ◄── done-callbacks ──► live histogram,
                     the engine's error)                                              counters, gate
    autoscaler thread: every interval_s feeds backlog, p99 and time to the AutoscalePolicy
                       (tuner.autoscale) ─► engine.resize(n), with the policy's reason

Nothing is left pending: an item future resolves with its output, its failure record
(:class:`ItemFailed`) or, when the engine itself failed or was closed under the runtime, with the
engine's error; leaving ``map`` early cancels its partitions still in flight.

What a profile applies: backend, workers, threads per worker, partition size, timeout, retries,
``retry_on``, backoff, memory limit, the dynamic batcher's delay, the backpressure bound and policy
(``max_pending``, ``overload``), hedged stragglers (``hedge``: a partition still running past the
profiled p95 service time is sent again to an idle worker, first result wins; duplicate work at most
the budget's share of the partitions completed (5%) plus a burst of 4 copies; a no-op with one worker) and the autoscaler's bounds and pace; the ``platforms:`` entry for this
OS is merged over ``recommended`` first. A profile measured under traffic (``tuner bench --online``)
has an ``online:`` section whose measured batching (``max_batch_size``, ``max_batch_delay_ms``) and
``max_pending`` win over ``recommended``'s, unless the ``platforms:`` entry sets them explicitly.

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
from concurrent.futures import CancelledError, Future
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from tuner.autoscale import AutoscalePolicy
from tuner.deployment import OVERLOAD_POLICIES, AutoscaleSettings, Deployment
from tuner.errors import (
    ConfigError,
    EngineClosed,
    EngineFailed,
    ItemFailed,
    ModelSpecError,
    Overloaded,
    ProfileError,
    TunerError,
)
from tuner.stats import WindowedHistogram

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
    "apply_hedge",
    "pending_bound",
    "settings_from_profile",
]

#: The logger every runtime message goes to (one warning line on a host mismatch; scaling at INFO).
log = logging.getLogger("tuner.runtime")

#: Window of the "recent" throughput and percentiles when there is no autoscaler to set one.
STATS_WINDOW_S = 5.0
#: Slots per window of the live latency histogram (the window's edge is this fine).
STATS_SLOTS = 5
#: Scaling decisions kept for stats().
DECISIONS_KEPT = 256
#: Default bound on items in flight, in partitions per worker of the pool's ceiling: room for one
#: map's full look-ahead window and as much again of submitted items.
DEFAULT_PENDING_PARTITIONS_PER_WORKER = 36

OnFailure = Literal["raise", "yield"]
Overload = Literal["block", "timeout", "reject"]


# --------------------------------------------------------------------------------------------- settings


#: The runtime's settings are the one deployment value (:class:`tuner.deployment.Deployment`); the
#: name stays for callers that built them by it.
RuntimeSettings = Deployment


def pending_bound(settings: Deployment) -> int:
    """``max_pending``, or the default bound when it is None (room for one map's look-ahead window
    and as much again of submitted items, per worker of the pool's ceiling)."""
    if settings.max_pending is not None:
        return settings.max_pending
    return DEFAULT_PENDING_PARTITIONS_PER_WORKER * settings.ceiling * settings.partition_size


def settings_from_profile(profile: ScalingProfile, platform: str | None = None) -> Deployment:
    """The deployment a profile asks for on ``platform`` (default: this OS), its override merged in."""
    return profile.deployment(platform)


def apply_hedge(
    settings: RuntimeSettings, hedge: bool | float | None, profile: ScalingProfile | None = None
) -> RuntimeSettings:
    """``settings`` with the runtime's ``hedge`` option applied.

    None: as the settings (the profile) say. False: no hedging. A number: the delay in seconds.
    True: the profile's delay — its ``recommended.hedge``, else the p95 service time its evidence
    records; ConfigError when there is none.
    """
    if hedge is None:
        return settings
    if hedge is False:
        return replace(settings, hedge_after_s=None)
    if hedge is True:
        after = settings.hedge_after_s
        if after is None and profile is not None and profile.evidence.service_time_ms is not None:
            p95 = profile.evidence.service_time_ms.p95
            after = p95 / 1000.0 if p95 else None
        if after is None:
            where = (
                "this profile records no p95 service time" if profile is not None else "there is no profile"
            )
            raise ConfigError(
                f"hedge=True takes its delay from a profile's p95 service time, and {where}: "
                "give the delay in seconds instead (e.g. hedge=0.02)"
            )
        return replace(settings, hedge_after_s=after)
    if (
        isinstance(hedge, bool)
        or not isinstance(hedge, (int, float))
        or not math.isfinite(hedge)
        or hedge <= 0
    ):
        raise ConfigError(f"hedge must be True, False, None or a delay in seconds > 0 (got {hedge!r})")
    return replace(settings, hedge_after_s=float(hedge))


# --------------------------------------------------------------------------------------------- host check


def _host_of(measured: HostInfo, here: Host) -> Host:
    """The profile's host record as a :class:`~tuner.hardware.Host`, so ``Host.differences`` (the one
    comparison, covering exactly what the fingerprint covers) can compare it with this host.

    What the record does not hold is taken from ``here`` (then it cannot differ): physical cores when
    the OS could not tell, and BLAS when unrecorded or when its short form ('openblas 0.3.31', as the
    profile writes it) matches this host's library.
    """
    from tuner.hardware import Host

    blas: list[dict[str, Any]] = list(here.blas)
    if measured.blas is not None:
        api, _, version = measured.blas.partition(" ")
        mine = [
            (str(b.get("internal_api")), ".".join(str(b.get("version") or "?").split(".")[:3]))
            for b in here.blas
        ]
        if mine[:1] != [(api, version)]:
            blas = [{"internal_api": api, "version": version}]
    return Host(
        logical_cores=measured.logical_cores,
        physical_cores=measured.physical_cores
        if measured.physical_cores is not None
        else here.physical_cores,
        affinity_cores=measured.usable_cores,
        cgroup_quota=None,
        usable_cores=measured.usable_cores,
        cpu_model=measured.cpu_model,
        cpu_freq_mhz=None,
        memory_total_bytes=int(measured.memory_total_gb * 1e9),
        memory_available_bytes=0,
        platform=measured.platform,
        machine=measured.machine,
        python="",
        numpy="",
        blas=blas,
    )


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


def _connect_for(name: str, profile: ScalingProfile, address: str | None) -> Any:
    """Connect to the cluster a ray profile runs on: ``address``, else the kind it records."""
    from tuner.cluster import connect

    if address is None:
        kind = profile.cluster.address if profile.cluster is not None else "auto"
        if kind == "client":
            address = os.environ.get("RAY_ADDRESS")
            if not address:
                raise ConfigError(
                    f"{name}: measured through Ray Client (ray://); give the address again "
                    "(ray_address=, --ray-address or RAY_ADDRESS)"
                )
        else:
            address = kind
    return connect(address)


def _shapes(shapes: list[str]) -> str:
    """'2 CPUs ×6, 4 CPUs': equal shapes counted."""
    from collections import Counter

    return ", ".join(f"{s} ×{n}" if n > 1 else s for s, n in Counter(shapes).items())


def _check_cluster(
    name: str, profile: ScalingProfile, settings: RuntimeSettings, strict: bool, here: Any
) -> RuntimeSettings:
    """The host check for a ray profile: nodes, total CPUs and node shapes against the profile's.

    Differences: one warning and the settings adapted to the cluster's CPUs (the host rule, with the
    cluster's CPUs as the cores; threads per actor also capped at the largest node's CPUs, since
    an actor cannot span nodes); ``strict`` refuses instead.
    """
    measured = profile.cluster
    assert measured is not None  # the schema refuses a ray profile without it
    diffs = []
    if len(here.nodes) != measured.nodes:
        diffs.append(f"{measured.nodes} nodes measured, {len(here.nodes)} now")
    if here.total_cpus != measured.total_cpus:
        diffs.append(f"{measured.total_cpus:g} CPUs measured, {here.total_cpus:g} now")
    if measured.node_shapes and here.shapes() != sorted(measured.node_shapes):
        diffs.append(
            f"node shapes {_shapes(sorted(measured.node_shapes))} measured, {_shapes(here.shapes())} now"
        )
    if not diffs:
        return settings
    what = "; ".join(diffs)
    if strict:
        raise ProfileError(f"{name}: measured on another cluster ({what}); strict=True refuses to adapt")
    changes = []
    # An actor cannot span nodes: threads first, to the largest node; then the host rule.
    largest = max((int(n.cpus) for n in here.nodes), default=1)
    if settings.threads_per_worker is not None and settings.threads_per_worker > largest:
        changes.append(f"threads {settings.threads_per_worker}→{largest} (largest node)")
        settings = replace(settings, threads_per_worker=largest)
    adapted, more = adapt_to_host(settings, int(measured.total_cpus), max(1, int(here.total_cpus)))
    changes += more
    how = ", ".join(changes) if changes else "settings kept as measured"
    log.warning("%s: measured on another cluster (%s); adapted: %s → %s", name, what, how, adapted.describe())
    return adapted


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
    # p50/p95/p99 item latency over the window, ms (caller's view: each partition's latency weighted
    # by its items, the definition of tuner.stats; from a live histogram, within its resolution)
    latency_ms: dict[str, float | None]
    failures: dict[str, int]  # failed items by cause
    retries: int  # partition attempts retried by the engine
    replaced: int  # workers replaced after a crash, timeout or memory kill
    scaling: tuple[ScalingDecision, ...] = ()
    pending: int = 0  # items in flight: submitted or mapped, not yet resolved
    max_pending: int = 0  # the bound on `pending`
    rejected: int = 0  # submissions refused with Overloaded
    hedges: int = 0  # hedge copies sent (hedged stragglers)
    hedges_won: int = 0  # ... that came back before the original
    duplicate_work: float = 0.0  # hedges / partitions completed

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["scaling"] = [vars(x) for x in self.scaling]
        return d


class _Meter:
    """Completed partitions: counters, and a live histogram of item latency for windowed figures.

    The histogram (tuner.stats) is bounded by its time span and rounding, not by the rate: a window's
    percentiles cover the whole window whether 10 or 100 000 partitions completed in it.
    """

    def __init__(self, window_s: float) -> None:
        self._lock = threading.Lock()
        self.window_s = window_s
        self._hist = WindowedHistogram(window_s / STATS_SLOTS, window_s)
        self.items_done = 0
        self.items_failed = 0
        self.failures: dict[str, int] = {}
        self.t0 = time.perf_counter()

    def record(self, t_done: float, latency_s: float, items: int, causes: Iterable[str] = ()) -> None:
        with self._lock:
            self._hist.record(t_done, latency_s, items)
            self.items_done += items
            for cause in causes:
                self.failures[cause] = self.failures.get(cause, 0) + 1
                self.items_failed += 1

    def recent(self, now: float | None = None) -> tuple[float, dict[str, float | None]]:
        """(items/s, {p50, p95, p99} in ms) over the last ``window_s`` seconds."""
        now = time.perf_counter() if now is None else now
        with self._lock:
            hist, covered = self._hist.window(now, self.window_s)
        span = max(min(covered, now - self.t0), 1e-3)
        qs = hist.percentiles((0.50, 0.95, 0.99))
        lat = {
            f"p{k}": (None if math.isnan(q) else q * 1000.0) for k, q in zip((50, 95, 99), qs, strict=True)
        }
        return hist.total / span, lat


#: Set while the runtime's own threads run a caller's code (future callbacks, event callbacks):
#: those threads are what frees room, so a submit from there must never wait for it.
_callback_thread = threading.local()


class _Gate:
    """At most ``limit`` items in flight; past it, block, time out or refuse (the overload policy)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.pending = 0
        self.rejected = 0
        self.closed = False
        self._cv = threading.Condition()

    def try_acquire(self, n: int) -> int:
        """Take room for ``n`` items if there is some now; the room taken (0: none)."""
        n = min(n, self.limit)  # a partition larger than the bound still fits alone
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            if self.pending + n > self.limit:
                return 0
            self.pending += n
            return n

    def acquire(self, n: int, policy: str, timeout_s: float) -> int:
        """Take room for ``n`` items under ``policy``; raises Overloaded (reject, timeout) or EngineClosed."""
        n = min(n, self.limit)
        with self._cv:
            if self.closed:
                raise EngineClosed("the runtime is closed")
            if self.pending + n > self.limit:
                if policy == "reject" or getattr(_callback_thread, "active", False):
                    self.rejected += 1
                    why = (
                        "; a callback run by the runtime cannot wait for room (only its own thread frees it)"
                        if policy != "reject"
                        else "; retry later, or raise max_pending"
                    )
                    raise Overloaded(
                        f"overloaded: {self.pending} items in flight (max_pending {self.limit}){why}"
                    )
                deadline = None if policy == "block" else time.monotonic() + timeout_s
                while self.pending + n > self.limit and not self.closed:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        self.rejected += 1
                        raise Overloaded(
                            f"overloaded: {self.pending} items in flight (max_pending {self.limit}) "
                            f"for {timeout_s:g} s; retry later, or raise max_pending"
                        )
                    self._cv.wait(remaining)
                if self.closed:
                    raise EngineClosed("the runtime closed while this call waited for room")
            self.pending += n
            return n

    def release(self, n: int) -> None:
        if n:
            with self._cv:
                self.pending -= n
                self._cv.notify_all()

    def close(self) -> None:
        with self._cv:
            self.closed = True
            self._cv.notify_all()


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
        deployment: Deployment | None = None,
        *,
        hedge: bool | float | None = None,
        faults: FaultPlan | str | None = None,
        on_event: Callable[[Event], None] | None = None,
        settings: Deployment | None = None,
        **options: Any,
    ) -> None:
        """``deployment``: how to run it (a :class:`~tuner.deployment.Deployment`; ``settings`` is its
        older name); ``options``: any of its settings by public name (``workers=2``,
        ``max_batch_delay_ms=2``), over ``deployment`` or the defaults. ``hedge``: None keeps the
        deployment's; False turns hedging off; a number is the delay in seconds."""
        base = deployment if deployment is not None else settings
        settings = apply_hedge(Deployment.of(base, **options), hedge)
        self.model = model
        self.settings = settings
        self.profile: ScalingProfile | None = None
        self._user_cb = on_event
        from tuner.engine import Engine, EngineConfig, FaultPlan

        plan = FaultPlan.parse(faults) if isinstance(faults, str) else (faults or FaultPlan())
        self.engine_config = EngineConfig.of_deployment(settings, faults=plan)
        self._cluster: Any = None  # the Ray connection from_profile made (closed with the runtime)
        self._engine: Engine = Engine(
            model, self.engine_config, on_event=_guarded(on_event) if on_event is not None else None
        )
        self._meter = _Meter(self._window_s())
        self._gate = _Gate(pending_bound(settings))
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        # partitions this runtime has in the engine, not done and not cancelled: the autoscaler's
        # backlog (a partition cancelled by an abandoned map leaves it at once, not when the
        # engine's supervisor gets round to dropping it)
        self._live = 0
        self._live_lock = threading.Lock()
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
        self._policy = AutoscalePolicy(settings.autoscale) if settings.autoscale is not None else None
        self._decisions: deque[ScalingDecision] = deque(maxlen=DECISIONS_KEPT)

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
        ray_address: str | None = None,
        allow_pickle: bool = False,
        hedge: bool | float | None = None,
        check_input: bool = True,
        **overrides: Any,
    ) -> Runtime:
        """A runtime with the settings of the profile at ``path`` (nothing is started or imported yet).

        A model file (``model.onnx``, ``model.pt``, ``model.skops`` ...) is loaded through the same
        format adapter as when it was measured, with the profile's knobs (``recommended.knobs``) and
        model options. A pickle loads only with ``allow_pickle=True`` here too: the profile records the
        consent given when it was measured, but never gives it (a profile must not turn into code
        execution by itself). If the profile was measured with another version of the model's
        framework, one warning line says so (``strict=True`` refuses).

        A ``ray`` profile runs on a Ray cluster: ``ray_address`` (auto, local or ray://host:port;
        default: the kind the profile records, RAY_ADDRESS for a ``client`` one) is connected here,
        since the cluster check needs the cluster, and the runtime closes that connection (and a
        local head) on close. The cluster check compares nodes, CPUs and node shapes with the
        profile's ``cluster`` section, with the same warn / adapt / ``strict`` choices as the host check.

        ``model``: the model to run; default: the profile's ``model.spec``. The ``platforms:`` entry
        for this OS is merged over ``recommended``. If the profile was measured on another host, one
        warning line names what differs and how the settings were adapted to this host's usable
        cores; ``strict=True`` raises :class:`ProfileError` instead. ``overrides`` (any
        :class:`RuntimeSettings` field, e.g. ``workers=4``) win over the profile and are not adapted.
        ``hedge``: None applies the profile's ``recommended.hedge``; True hedges after the profile's
        p95 service time even if it does not say to; False turns hedging off; a number is the delay in
        seconds. ``check_input=False``: ``map`` does not check a numpy input against the item the
        profile was measured with (a deliberate change of input; see :attr:`check_input`).
        """
        from tuner.profile import load_profile

        Deployment.of(**{k: v for k, v in overrides.items() if k != "autoscale"})  # checked first: one line
        profile = load_profile(path)
        settings = settings_from_profile(profile)
        conn = None
        if settings.kind.needs_cluster:
            conn = _connect_for(os.fspath(path), profile, ray_address)
            try:
                settings = _check_cluster(os.fspath(path), profile, settings, strict, conn.info())
            except BaseException:
                conn.close()
                raise
        else:
            settings = cls._check_host(os.fspath(path), profile, settings, strict)
        try:
            _check_framework(os.fspath(path), profile, strict)
            if model is None:
                model = _model_of(os.fspath(path), profile, allow_pickle)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        if overrides:
            auto = overrides.get("autoscale", settings.autoscale)
            if auto is not None and "workers" in overrides:
                # An explicit worker count widens the bounds rather than being refused by them.
                w = overrides["workers"]
                auto = replace(
                    auto, min_workers=min(auto.min_workers, w), max_workers=max(auto.max_workers, w)
                )
            settings = Deployment.of(settings, **{**overrides, "autoscale": auto})
        try:
            settings = apply_hedge(settings, hedge, profile)
            rt = cls(model if model is not None else profile.model.spec, settings, faults=faults, on_event=on_event)
        except BaseException:
            if conn is not None:
                conn.close()
            raise
        rt.profile = profile
        rt.check_input = check_input
        rt._cluster = conn
        return rt

    @staticmethod
    def _check_host(
        name: str, profile: ScalingProfile, settings: RuntimeSettings, strict: bool
    ) -> RuntimeSettings:
        from tuner.hardware import probe

        here = probe()
        if profile.host.fingerprint == here.fingerprint():
            return settings
        diffs = _host_of(profile.host, here).differences(here) or [
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
            if a is not None and a.min_workers < a.max_workers and self.settings.kind.pooled:
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

        ``wait``: let submitted work finish first. No worker process or thread outlives this call,
        and every future this runtime returned is resolved when it returns. Callers blocked in
        ``submit`` waiting for room get :class:`EngineClosed`.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._gate.close()
        from tuner.engine import Failure

        with self._cv:
            dropped = list(self._queue) if cancel else []
            if cancel:
                self._queue.clear()
            self._cv.notify_all()
            batcher = self._batcher
        for p in dropped:
            if p.future.set_running_or_notify_cancel():
                p.future.set_exception(
                    ItemFailed(p.index, Failure("cancelled", "the runtime closed first", 0))
                )
        try:
            if batcher is not None:
                batcher.join()
            if self._scaler is not None:
                self._scaler.join()
            self._engine.close(wait=wait, cancel=cancel)
        finally:
            # The engine has resolved or cancelled every partition (their callbacks ran in its
            # supervisor, before close returned): the sentinel comes after every hand-over.
            with self._done_evt:
                self._done_q.append(None)
                self._done_evt.notify()
            if self._completer is not None:
                self._completer.join()
            if self._cluster is not None:
                self._cluster.close()  # disconnects; a local head goes with it

    @property
    def workers(self) -> int:
        """The number of workers the runtime aims to run now (the autoscaler changes it)."""
        return self._engine.workers

    @property
    def engine(self) -> Engine:
        """The engine this runtime drives (for its events and counters; do not resize it yourself)."""
        return self._engine

    def _engine_error(self) -> TunerError:
        """Why the engine dropped a partition the runtime did not cancel: closed, or broken.

        The engine's public door says it: a submit to a closed or broken engine raises the reason
        (an empty partition costs the engine nothing when it is healthy).
        """
        try:
            self._engine.submit([])
        except TunerError as e:
            if isinstance(e, EngineClosed):
                return EngineClosed("the engine was closed before this item ran")
            return e
        return EngineFailed("the engine cancelled this partition without saying why")

    # ---------------------------------------------------------------- offline: map

    def map(
        self, items: Iterable[Any], on_failure: OnFailure = "raise", overload: Overload = "block"
    ) -> Iterator[Any]:
        """Outputs in input order, each item exactly once.

        ``on_failure="raise"``: a failed item raises :class:`ItemFailed` (its ``failure`` holds the
        cause, message, attempts and remote traceback) when the iteration reaches it.
        ``"yield"``: its :class:`~tuner.engine.Failure` record is yielded in its place.
        Partitions are submitted ahead of the consumer within a bounded window, sized from the
        autoscaler's ceiling so that a large input shows as backlog and can scale the pool up, and
        within ``max_pending``: when the runtime is full, map first waits on its own partitions,
        and with none in flight applies ``overload`` (default "block": map is a pull, it waits).
        Leaving the loop early (``break``, an exception, closing the generator) cancels the
        partitions still in flight: no phantom backlog is left to scale the pool up.
        """
        if on_failure not in ("raise", "yield"):
            raise ConfigError(f"on_failure must be 'raise' or 'yield' (got {on_failure!r})")
        if overload not in OVERLOAD_POLICIES:
            raise ConfigError(f"overload {overload!r}: choose from {', '.join(OVERLOAD_POLICIES)}")
        self.start()
        return self._map(items, on_failure, overload)

    #: Check a numpy input of ``map`` against the item the profile was measured with (dtype and
    #: shape; a mismatch is one ConfigError, not a failure per item). Set False for a deliberate change.
    check_input: bool = True

    def _map(self, items: Iterable[Any], on_failure: OnFailure, overload: Overload) -> Iterator[Any]:
        from tuner.engine import Failure

        if self.check_input and self.profile is not None and hasattr(items, "dtype"):
            from tuner.models.signature import check_input

            hint = "pass check_input=False to Runtime.from_profile (or set rt.check_input = False) to run anyway"
            check_input(self.profile, items, "Runtime.map", hint=hint, error=ConfigError)
        from tuner.engine.pool import partitions

        s = self.settings
        window = max(4, s.ceiling * (self.engine_config.prefetch + 2))
        inflight: deque[tuple[int, Future[PartitionResult]]] = deque()
        index = 0
        chunks = partitions(items, s.partition_size)
        held: Any = None  # a chunk taken from the input, waiting for room
        try:
            while True:
                while len(inflight) < window:
                    chunk = held if held is not None else next(chunks, None)
                    held = None
                    if chunk is None:
                        break
                    room = self._gate.try_acquire(len(chunk))
                    if not room and inflight:
                        held = chunk  # full: consume our own head first, it frees room
                        break
                    if not room:
                        room = self._gate.acquire(len(chunk), overload, s.overload_timeout_s)
                    inflight.append((index, self._submit_partition(chunk, time.perf_counter(), room)))
                    index += len(chunk)
                if not inflight:
                    return
                first, fut = inflight.popleft()
                try:
                    result = fut.result()  # an engine error (its supervisor broke) is raised as is
                except CancelledError:  # we cancel only what we abandon: the engine dropped it
                    raise self._engine_error() from None
                if not result.failed:
                    yield from result.outputs
                    continue
                for i, out in enumerate(result.outputs):
                    if isinstance(out, Failure) and on_failure == "raise":
                        raise ItemFailed(first + i, out)
                    yield out
        finally:
            # The consumer left (break, exception, close) or the engine failed: what has not run
            # never will, and leaves the backlog now. A partition already running finishes in its
            # worker and its result is dropped.
            for _, f in inflight:
                f.cancel()

    def _submit_partition(self, chunk: Any, t_first: float, room: int) -> Future[PartitionResult]:
        try:
            fut = self._engine.submit(chunk)
        except BaseException:
            self._gate.release(room)
            raise
        with self._live_lock:
            self._live += 1
        fut.add_done_callback(functools.partial(self._record, t_first, room))
        return fut

    def _record(self, t_first: float, room: int, fut: Future[PartitionResult]) -> None:
        # Runs in the engine's supervisor thread (or the canceller's): keep it to a few appends.
        with self._live_lock:
            self._live -= 1
        self._gate.release(room)
        if fut.cancelled() or fut.exception() is not None:
            return
        result = fut.result()
        now = time.perf_counter()
        causes = [o.cause for _, o in result.failures()] if result.failed else ()
        self._meter.record(now, now - t_first, len(result.outputs), causes)

    # ---------------------------------------------------------------- online: submit

    def submit(self, item: Any) -> Future[Any]:
        """Run one item; its future gives its output, or raises :class:`ItemFailed`.

        Items submitted one at a time are grouped into partitions (dynamic batching, like
        Triton's dynamic batcher): a partition closes when it holds ``max_batch_size`` items
        (default: ``partition_size``) or when its first item has waited ``max_batch_delay_ms``,
        whichever comes first.

        Backpressure: with ``max_pending`` items already in flight, the ``overload`` policy
        applies — "block" waits for room, "timeout" waits ``overload_timeout_s`` then raises
        :class:`Overloaded`, "reject" raises :class:`Overloaded` at once (a service's 503). A
        future whose engine failed or was closed under the runtime raises the engine's error.
        """
        self.start()
        s = self.settings
        self._gate.acquire(1, s.overload, s.overload_timeout_s)
        fut: Future[Any] = Future()
        # Room is given back when the item's future resolves, however it resolves.
        fut.add_done_callback(self._release_one)
        with self._cv:
            if self._closed:
                self._gate.release(1)
                raise EngineClosed("the runtime is closed")
            if self._batcher is None:
                self._batcher = threading.Thread(target=self._batch_loop, name="tuner-batcher", daemon=True)
                self._completer = threading.Thread(
                    target=self._complete_loop, name="tuner-completer", daemon=True
                )
                self._batcher.start()
                self._completer.start()
            self._queue.append(_Pending(next(self._submit_ids), item, fut, time.perf_counter()))
            if len(self._queue) == 1 or len(self._queue) >= s.batch_size:
                self._cv.notify()
        return fut

    def _release_one(self, _fut: Future[Any]) -> None:
        self._gate.release(1)

    def _batch_loop(self) -> None:
        size = self.settings.batch_size
        delay = self.settings.max_batch_delay_s
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
                fut = self._submit_partition(_as_partition([p.item for p in batch]), batch[0].t, 0)
            except TunerError as e:  # engine closed or broken (the model cannot load)
                _fail(batch, e)
                continue
            except Exception as e:  # a bug below us must not strand the queue: fail this batch
                log.exception("runtime: the engine refused a partition")
                _fail(batch, _engine_failed("the engine refused a partition", e))
                continue
            fut.add_done_callback(functools.partial(self._hand_over, batch))

    def _hand_over(self, batch: list[_Pending], fut: Future[PartitionResult]) -> None:
        # Runs in the engine's supervisor thread; resolving item futures runs the callers'
        # callbacks, which may be slow, so that happens in the completer thread instead.
        with self._done_evt:
            self._done_q.append((batch, fut))
            self._done_evt.notify()

    def _complete_loop(self) -> None:
        while True:
            with self._done_evt:
                while not self._done_q:
                    self._done_evt.wait()
                entry = self._done_q.popleft()
            if entry is None:
                return
            batch, fut = entry
            _callback_thread.active = True  # resolving futures runs the callers' callbacks
            try:
                self._complete(batch, fut)
            except Exception as e:  # guarded: one bad batch never stops the completer
                log.exception("runtime: could not hand partition outcomes to their futures")
                _fail(batch, _engine_failed("the runtime could not deliver this outcome", e))
            finally:
                _callback_thread.active = False

    def _complete(self, batch: list[_Pending], fut: Future[PartitionResult]) -> None:
        from tuner.engine import Failure

        if fut.cancelled():
            if self._closed:
                failure = Failure("cancelled", "the runtime closed before this item ran", 0)
                for p in batch:
                    p.future.set_exception(ItemFailed(p.index, failure))
            else:
                _fail(batch, self._engine_error())
            return
        exc = fut.exception()
        if exc is not None:
            _fail(batch, exc)
            return
        outputs = fut.result().outputs
        if len(outputs) != len(batch):
            raise EngineFailed(f"the engine returned {len(outputs)} outcomes for {len(batch)} items")
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
        throughput, lat = self._meter.recent()
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
            window_s=m.window_s,
            latency_ms=lat,
            failures=failures,
            retries=e["retried"],
            replaced=e["replaced"],
            scaling=tuple(self._decisions),
            pending=self._gate.pending,
            max_pending=self._gate.limit,
            rejected=self._gate.rejected,
            hedges=e.get("hedges", 0),
            hedges_won=e.get("hedges_won", 0),
            duplicate_work=e.get("duplicate_ratio", 0.0),
        )

    @property
    def scaling_decisions(self) -> list[ScalingDecision]:
        """Every resize the autoscaler made (the last DECISIONS_KEPT), oldest first."""
        return list(self._decisions)

    # ---------------------------------------------------------------- autoscaler

    def _autoscale_loop(self) -> None:
        policy = self._policy
        assert policy is not None
        while not self._stop.wait(policy.settings.interval_s):
            now = time.perf_counter()
            workers = self._engine.workers
            with self._cv:
                queued = len(self._queue)
            with self._live_lock:
                live = self._live
            backlog = live + math.ceil(queued / self.settings.batch_size)
            _, lat = self._meter.recent(now)
            decision = policy.observe(now, workers, backlog, lat["p99"])
            if decision is None:
                continue
            try:
                self._engine.resize(decision.target)
            except TunerError as e:  # the engine closed under us: nothing left to scale
                log.debug("autoscaler stopped: %s", e)
                return
            made = ScalingDecision(time.time(), workers, decision.target, decision.reason)
            self._decisions.append(made)
            log.info("autoscale %s", made)


# --------------------------------------------------------------------------------------------- model files


def _model_of(name: str, profile: ScalingProfile, allow_pickle: bool) -> Any:
    """The profile's model as the runtime runs it: a model file's spec with the profile's knobs and
    options (the same adapter, the same knobs), or the spec string of Python code."""
    from tuner.models.spec import parse_spec

    m = profile.model
    ms = parse_spec(m.spec)
    if not ms.is_model_file:
        return m.spec
    if m.allow_pickle and not allow_pickle:
        raise ProfileError(
            f"{name}: its model {m.spec} was loaded with allow_pickle (loading it runs the file's code): "
            "pass allow_pickle=True (tuner run --allow-pickle) if you trust that file"
        )
    from tuner.models.formats.scikit import PICKLES, consent_message

    if not allow_pickle and os.path.splitext(ms.target)[1].lower() in PICKLES:
        raise ModelSpecError(consent_message(os.path.basename(ms.target)))
    rec = profile.effective_recommended()
    ms = ms.with_options(allow_pickle=True if allow_pickle else None, method=m.method, provider=m.provider)
    return ms.with_knobs(rec.knobs or {})


def _check_framework(name: str, profile: ScalingProfile, strict: bool) -> None:
    """One warning line (``strict``: ProfileError) when the model's framework has another version here."""
    m = profile.model
    if not m.framework or not m.framework_version:
        return
    from tuner.models.formats import adapter_for

    adapter = adapter_for(m.spec)
    here = adapter.version() if adapter is not None else None
    if here is None or here == m.framework_version:
        return  # absent: loading the model says how to install it, in one line
    what = f"measured with {m.framework} {m.framework_version}, this host has {here}"
    if strict:
        raise ProfileError(f"{name}: {what}; strict=True refuses")
    log.warning("%s: %s; its figures may not hold", name, what)


# --------------------------------------------------------------------------------------------- helpers


def _fail(batch: list[_Pending], error: BaseException) -> None:
    """Resolve every still-open future of ``batch`` with ``error``."""
    for p in batch:
        if not p.future.done():
            p.future.set_exception(error)


def _engine_failed(what: str, cause: BaseException) -> EngineFailed:
    err = EngineFailed(f"{what}: {type(cause).__name__}: {cause}")
    err.__cause__ = cause
    return err


def _guarded(callback: Callable[[Event], None]) -> Callable[[Event], None]:
    """The caller's event callback, kept from taking the engine down with it.

    Events are emitted from the engine's supervisor thread; an exception escaping a listener would
    stop the supervisor and fail every item in flight. It is logged (once per exception type) instead.
    """
    seen: set[type[BaseException]] = set()

    def call(event: Event) -> None:
        _callback_thread.active = True  # the engine's supervisor: it must never wait for room
        try:
            callback(event)
        except Exception as e:
            if type(e) not in seen:
                seen.add(type(e))
                log.exception(
                    "runtime: the on_event callback raised (further %s not logged)", type(e).__name__
                )

    return call


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
