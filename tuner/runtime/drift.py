"""Drift: live behaviour against the profile, decided by a CUSUM over windows, with a cause.

A profile is measured once; production runs for months on a host that changes. Every
:data:`WINDOW_S` the runtime's drift watch (a thread of its own, started with the runtime when it
has a profile) turns what it saw into one observation per **dimension** and feeds each to its own
one-sided CUSUM (Page's test):

* ``service_time`` — the median of the window's per-item service time (a partition's time inside
  the model call over its items, partitions of at least half the profiled size), as ``log(median /
  reference)`` standardised by the reference spread: the profile's ``evidence.service_time_ms.p50``
  over its partition size and ``evidence.service_time_spread`` (older profiles: 10%, said once).
  Service time is measured on the worker, so the arrival rate does not move it — only the model, the
  host's CPU, or the threads it runs with. The standard error of a window's median of ``k`` values
  is taken as ``1.2533 σ / √k`` (a normal's), with σ never below :data:`MIN_SPREAD` (a profile
  measured in one quiet minute is tighter than a day of production).
* ``p99`` — where the profile has an ``online:`` curve: the window's p99 item latency against the
  curve's p99 at the window's arrival rate (interpolated), as ``log(p99 / curve)`` over the curve's
  relative CI there, never below :data:`P99_SPREAD` (one window's p99 moves more than a measured
  step's). Behind ``tuner serve`` the reference is the curve measured *through* the server
  (``online.http``): the in-process curve has no HTTP parsing or event loop in it, and served
  latency sits above it by design (tests/benchmarks/drift.py saw 1.35–1.8× at the same rate), so a served runtime
  whose profile has no ``online.http`` does not judge p99, and says so once.
* ``throughput`` — only while saturated for the whole window (a backlog beyond every worker busy
  at its start and its end, and the workers inside the model call at least 80% of it): the
  window's items/s against the evidence's throughput CI. A model whose partitions spend much of
  their time outside the model call (transport) is then rarely judged on throughput; its service
  time still is.

**The decision.** ``S = max(0, S + z − K)``; drift when ``S > H``. With ``K = 0.5`` and ``H = 8``
a dimension whose observations stay standard-normal alarms after about 19,000 windows on average
(Siegmund's approximation of the average run length, ``(e^b − b − 1)/0.5`` with ``b = H + 1.166``:
about 26 hours at 5-s windows) — the false-alarm rate. A shift of one standard error per window is
detected after about 16 windows on average, of three after about 4, and a 30% slower model
(``log 1.3 ≈ 0.26`` against a spread of 0.1 over 50 partitions: ``z ≈ 15``) within one window. Return: once drifting, the
dimension is back after :data:`CLEAR_WINDOWS` observations in a row below ``K`` (a service as
profiled does that within about ten windows; one still a standard error off, about once in 300),
and its CUSUM starts again from 0. One log line and one :class:`ProfileDrift` event at each onset and
each return, never per window.

**The host's part.** Each window also samples the host (:mod:`tuner.hostload`: the outside load
beyond this process and its workers, steal, swap). A window the noise guard would call
contaminated feeds no dimension: it counts toward the ``host`` dimension instead, which drifts after
:data:`HOST_WINDOWS` contaminated windows in a row. The cause of a model dimension's drift is the
likeliest the runtime can see, in this order: fewer usable cores than the profile measured (affinity
or CPU quota: a fact), the host busy (outside load of at least 10% in the drifted window), another
framework version than the profile's, else the model itself slower at the same load.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner import fmt

__all__ = [
    "CLEAR_WINDOWS",
    "DIMENSIONS",
    "HOST_WINDOWS",
    "MIN_SPREAD",
    "WINDOW_S",
    "Cusum",
    "DriftState",
    "DriftWatch",
    "ProfileDrift",
    "Reference",
    "WindowFigures",
]

log = logging.getLogger("tuner.runtime")

DIMENSIONS = ("service_time", "p99", "throughput", "host")
WINDOW_S = 5.0
#: CUSUM allowance and threshold (see the module docstring for the false-alarm rate)
K = 0.5
H = 8.0
#: the least spread (of the log p99) a window's p99 is judged with
P99_SPREAD = 0.2
#: observations in a row below K after a drift before it counts as over
CLEAR_WINDOWS = 5
#: contaminated windows in a row before the host counts as the drift
HOST_WINDOWS = 3
#: the smallest spread of the log service time the detector assumes (5%)
MIN_SPREAD = 0.05
#: ... and what it assumes for a profile that records none
DEFAULT_SPREAD = 0.10
#: a window needs this many partitions before its median says anything
MIN_PARTITIONS = 5


@dataclass(frozen=True)
class ProfileDrift:
    """An event: a dimension left the profile (``drifting``) or came back (not ``drifting``)."""

    t: float  # time.time()
    dimension: str
    drifting: bool
    words: str  # what moved, by how much, since when, the likeliest cause
    cause: str = ""  # "host load" | "cores" | "framework" | "model" | ""


@dataclass
class Cusum:
    """Page's one-sided CUSUM on standardised observations (see the module docstring)."""

    k: float = K
    h: float = H
    s: float = 0.0
    drifting: bool = False
    quiet: int = 0  # windows at S == 0 since the drift began to clear
    since: float | None = None  # when S last left 0 (the drift's start, once it alarms)

    def add(self, z: float, t: float) -> str | None:
        """One observation at ``t``; "onset" or "return" when the state changes, else None."""
        if self.drifting:
            # Back when CLEAR_WINDOWS observations in a row sit below the allowance K.
            self.quiet = self.quiet + 1 if z < self.k else 0
            if self.quiet >= CLEAR_WINDOWS:
                self.drifting, self.s, self.since = False, 0.0, None
                return "return"
            return None
        if self.s == 0.0 and z - self.k > 0:
            self.since = t
        self.s = max(0.0, self.s + z - self.k)
        if self.s > self.h:
            self.drifting, self.quiet = True, 0
            return "onset"
        return None


@dataclass(frozen=True)
class Reference:
    """What the profile measured, as the detector reads it."""

    per_item_s: float | None  # median service time per item at the profiled partition size
    spread: float  # of the log service time
    partition_size: int
    spread_recorded: bool
    curve: tuple[tuple[float, float, float, float], ...] = ()  # (requests/s, p99 ms, CI low, CI high)
    items_per_request: float = 1.0
    throughput_ci: tuple[float, float] | None = None  # items/s
    usable_cores: int | None = None
    framework: str | None = None  # "onnxruntime 1.20.1"
    curve_source: str = ""  # "in process", "through the server", or "" (no p99 judged): its words

    @classmethod
    def of(cls, profile: Any, served: bool = False) -> Reference:
        """The profile as the detector reads it; ``served``: the runtime sits behind ``tuner serve``."""
        ev, rec = profile.evidence, profile.recommended
        size = int(rec.partition_size)
        p50 = ev.service_time_ms.p50 if ev.service_time_ms is not None else None
        spread = ev.service_time_spread
        curve: tuple[tuple[float, float, float, float], ...] = ()
        per_request, source = 1.0, ""
        online = profile.online
        if online is not None:
            per_request = online.items_per_request
            steps, source = online.curve, "in process"
            if served:
                http = online.http
                steps, source = (http.curve, "through the server") if http is not None else ([], "")
            curve = tuple(
                (s.rate, s.p99_ms, *(s.p99_ci_ms or (s.p99_ms, s.p99_ms)))
                for s in steps
                if s.p99_ms is not None
            )
        m = profile.model
        return cls(
            per_item_s=p50 / 1000.0 / size if p50 else None,
            spread=max(MIN_SPREAD, spread if spread else DEFAULT_SPREAD),
            partition_size=size,
            spread_recorded=bool(spread),
            curve=tuple(sorted(curve)),
            items_per_request=per_request,
            throughput_ci=(ev.throughput_ci[0], ev.throughput_ci[1]) if ev.throughput_ci else None,
            usable_cores=profile.host.usable_cores,
            framework=f"{m.framework} {m.framework_version}" if m.framework and m.framework_version else None,
            curve_source=source if curve else "",
        )

    def p99_at(self, rate: float) -> tuple[float, float] | None:
        """(p99 ms, its CI half-width) the curve says at ``rate`` requests/s; None off its measured range."""
        pts = self.curve
        if not pts or rate < pts[0][0] or rate > pts[-1][0]:
            return None
        lo = max(p for p in pts if p[0] <= rate)
        hi = min(p for p in pts if p[0] >= rate)
        w = 0.0 if hi[0] == lo[0] else (rate - lo[0]) / (hi[0] - lo[0])
        p99 = lo[1] + w * (hi[1] - lo[1])
        half = max(lo[3] - lo[1], hi[3] - hi[1], 0.0)
        return p99, half


@dataclass
class WindowFigures:
    """One window as the watch saw it (the detector's input; recorded sequences test it)."""

    t: float
    per_item_service_s: Sequence[float] = ()  # partitions of at least half the profiled size
    rate: float = 0.0  # requests/s that arrived
    p99_ms: float | None = None
    throughput: float = 0.0  # items/s completed
    saturated: bool = False
    outside: float = 0.0  # outside load, share of the usable cores
    contaminated: bool = False
    usable_cores: int | None = None


@dataclass
class DriftState:
    """The detector: a CUSUM per dimension and the words of each change (pure: no thread, no clock)."""

    ref: Reference
    cusums: dict[str, Cusum] = field(default_factory=lambda: {d: Cusum() for d in DIMENSIONS})
    host_run: int = 0
    last_outside: float = 0.0  # the last contaminated window's outside load
    last_window_outside: float = 0.0  # the last window's

    def observe(self, w: WindowFigures, framework: str | None = None) -> list[ProfileDrift]:
        """Feed one window; the changes it makes (usually none)."""
        events: list[ProfileDrift] = []
        self.last_window_outside = w.outside
        if w.contaminated:
            self.host_run += 1
            self.last_outside = w.outside
            self._host(w, events, z=H + 1 if self.host_run >= HOST_WINDOWS else 0.0)
            return events
        self.host_run = 0
        self._host(w, events, z=-1.0)
        for dim, z, words in self._observations(w):
            change = self.cusums[dim].add(z, w.t)
            if change is not None:
                events.append(self._event(dim, change, words, w, framework))
        return events

    def _host(self, w: WindowFigures, events: list[ProfileDrift], z: float) -> None:
        change = self.cusums["host"].add(z, w.t)
        if change == "onset":
            events.append(ProfileDrift(time.time(), "host", True,
                                       f"the host is busy: outside load {w.outside:.0%} of the usable cores for "
                                       f"{self.host_run} windows in a row — figures read low, not the model's doing",
                                       "host load"))  # fmt: skip
        elif change == "return":
            events.append(ProfileDrift(time.time(), "host", False, "the host is quiet again", "host load"))

    def _observations(self, w: WindowFigures) -> list[tuple[str, float, str]]:
        out: list[tuple[str, float, str]] = []
        ref = self.ref
        if ref.per_item_s and len(w.per_item_service_s) >= MIN_PARTITIONS:
            k = len(w.per_item_service_s)
            med = statistics.median(w.per_item_service_s)
            ratio = med / ref.per_item_s
            z = math.log(ratio) / (1.2533 * ref.spread / math.sqrt(k))
            out.append(
                (
                    "service_time",
                    z,
                    f"service time per item {ratio:.2f}× the profile's ({_ms(med)} vs {_ms(ref.per_item_s)})",
                )
            )
        if w.p99_ms is not None and w.rate > 0:
            at = ref.p99_at(w.rate)
            if at is not None:
                p99, half = at
                spread = max(P99_SPREAD, math.log1p(half / p99) / 1.96)
                z = math.log(max(w.p99_ms, 1e-9) / p99) / spread
                out.append(
                    (
                        "p99",
                        z,
                        f"p99 {fmt.ms(w.p99_ms)} at {w.rate:.0f} requests/s, the profile's curve says {fmt.ms(p99)}",
                    )
                )
        if w.saturated and ref.throughput_ci is not None and w.throughput > 0:
            lo, hi = ref.throughput_ci
            mid = (lo + hi) / 2
            z = (mid - w.throughput) / max((hi - lo) / 3.92, 0.02 * mid)
            out.append(
                (
                    "throughput",
                    z,
                    f"saturated at {fmt.rate(w.throughput)} items/s, the profile's CI {fmt.rate(lo)}–{fmt.rate(hi)}",
                )
            )
        return out  # fmt: skip

    def _event(
        self, dim: str, change: str, words: str, w: WindowFigures, framework: str | None
    ) -> ProfileDrift:
        if change == "return":
            return ProfileDrift(time.time(), dim, False, f"{dim} is back within the profile: {words}")
        since = self.cusums[dim].since
        if since is None:
            ago = ""
        elif w.t - since < 1:  # one window was enough
            ago = ", in the last window"
        else:
            ago = f", since {w.t - since:.0f} s ago"
        cause, why = self.cause(w, framework)
        return ProfileDrift(
            time.time(), dim, True, f"{dim} left the profile: {words}{ago}; likeliest cause: {why}", cause
        )

    def cause(self, w: WindowFigures, framework: str | None) -> tuple[str, str]:
        """The likeliest cause tuner can see, and its words."""
        ref = self.ref
        # fewer cores first: a fact, where outside load may be what the lost core's neighbours do
        if ref.usable_cores and w.usable_cores and w.usable_cores < ref.usable_cores:
            return "cores", f"{w.usable_cores} usable cores, the profile measured {ref.usable_cores}"
        if w.outside >= 0.1:
            return "host load", f"other processes use {w.outside:.0%} of the usable cores"
        if framework and ref.framework and framework != ref.framework:
            return "framework", f"{framework}, the profile measured {ref.framework}"
        return (
            "model",
            "the model itself is slower at the same load (the host is quiet, its cores and framework as measured)",
        )

    def drifting(self) -> dict[str, str]:
        """The dimensions drifting now (dimension → since when, in words)."""
        return {d: "drifting" for d, c in self.cusums.items() if c.drifting}


def _ms(s: float) -> str:
    return fmt.ms(s * 1000)


class DriftWatch:
    """The runtime's thread: every ``window_s`` a :class:`WindowFigures` from ``take()``, fed to the
    detector; changes logged once and handed to ``emit``."""

    def __init__(
        self,
        state: DriftState,
        take: Callable[[], WindowFigures],
        emit: Callable[[ProfileDrift], None],
        window_s: float = WINDOW_S,
        framework: str | None = None,
    ) -> None:
        self.state = state
        self._take = take
        self._emit = emit
        self.window_s = window_s
        self.framework = framework
        self.events: list[ProfileDrift] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuner-drift", daemon=True)
        if state.ref.per_item_s is not None and not state.ref.curve_source:
            log.info(
                "drift: p99 not judged — the profile has no latency curve for this runtime "
                "(behind tuner serve: one measured through it, tuner bench --online --url)"
            )
        if not state.ref.spread_recorded:
            log.info(
                "drift: the profile records no service-time spread; assuming %.0f%%", 100 * DEFAULT_SPREAD
            )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _run(self) -> None:
        while not self._stop.wait(self.window_s):
            try:
                for e in self.state.observe(self._take(), self.framework):
                    self.events.append(e)
                    (log.warning if e.drifting else log.info)("drift: %s", e.words)
                    self._emit(e)
            except Exception:  # the watch must never take the runtime down
                log.exception("drift: the watch failed on a window; it goes on")
