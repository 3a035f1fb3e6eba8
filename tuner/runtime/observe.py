"""The runtime watching itself against its profile: histogram bounds from the profile's figures and
the drift watch (:mod:`tuner.runtime.drift`), started and stopped with the runtime.

Started only for a runtime made from a profile (``Runtime.from_profile``: there is something to
compare with) and ``drift=True`` (the default there). Its cost on the hot path is one append per
partition (the meter keeps the per-item service time for the window); the watch's thread wakes
every :data:`~tuner.runtime.drift.WINDOW_S` seconds, reads the meter and samples the host.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from tuner.runtime.drift import WINDOW_S, DriftState, DriftWatch, ProfileDrift, Reference, WindowFigures
from tuner.runtime.stats import DEFAULT_BOUNDS, profile_bounds

if TYPE_CHECKING:
    from collections.abc import Callable

    from tuner.runtime.stats import Meter

__all__ = ["Observer"]

log = logging.getLogger("tuner.runtime")

#: a window is saturated when its workers were inside the model call at least this share of it
SATURATED_BUSY = 0.8


def bounds_for(profile: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(item latency, partition service time) histogram bounds with resolution at the profile's figures."""
    if profile is None:
        return DEFAULT_BOUNDS, DEFAULT_BOUNDS
    ev = profile.evidence
    lat = ev.latency_ms
    svc = ev.service_time_ms
    lat_figs = [getattr(lat, k, None) for k in ("p50", "p99")] if lat is not None else []
    svc_figs = [getattr(svc, k, None) for k in ("p50", "p99")] if svc is not None else []
    if profile.online is not None:
        lat_figs.append(profile.online.objective_p99_ms)
    return (
        profile_bounds(*(x / 1000.0 for x in lat_figs if x)),
        profile_bounds(*(x / 1000.0 for x in svc_figs if x)),
    )


class Observer:
    """The drift watch of one runtime (see the module docstring)."""

    def __init__(
        self,
        profile: Any,
        meter: Meter,
        engine_stats: Callable[[], dict[str, Any]],
        on_event: Callable[[Any], None] | None,
        window_s: float = WINDOW_S,
        served: bool = False,
    ) -> None:
        """``meter`` is the runtime's, ``engine_stats`` its engine's ``stats``, ``on_event`` its listener
        (handed in, not the runtime: this room sits below the runtime's core)."""
        from tuner.hostload import HostSampler, Rule

        self._meter, self._engine_stats, self._on_event = meter, engine_stats, on_event
        self.ref = Reference.of(profile, served)
        self.state = DriftState(self.ref)
        self._sampler = HostSampler()
        self._rule = Rule()
        self._sampler.scan()
        self._snap = self._sampler.snapshot()
        self._done = meter.totals()[0]
        self._busy = meter.busy_s()
        self._backlogged = False  # at the end of the last window
        meter.min_items = max(1, self.ref.partition_size // 2)
        self.watch = DriftWatch(self.state, self._window, self._emit, window_s, framework=_framework(profile))

    def start(self) -> None:
        self.watch.start()

    def stop(self) -> None:
        self.watch.stop()

    def drifting(self) -> dict[str, str]:
        """Dimension → the words of its latest onset, for the ones drifting now."""
        words: dict[str, str] = {}
        for e in self.watch.events:
            if e.drifting:
                words[e.dimension] = e.words
            else:
                words.pop(e.dimension, None)
        return {d: w for d, w in words.items() if self.state.cusums[d].drifting}

    def _emit(self, event: ProfileDrift) -> None:
        if self._on_event is not None:  # on_event takes the engine's events and the runtime's own
            self._on_event(event)

    def _window(self) -> WindowFigures:
        meter = self._meter
        self._sampler.scan()  # the engine's worker processes (and their replacements) are the runtime's own
        snap = self._sampler.snapshot()
        iv = self._sampler.interval(self._snap, snap)
        self._snap = snap
        done = meter.totals()[0]
        span = max(iv.span_s, 1e-3)
        items_s = (done - self._done) / span
        self._done = done
        _, lat = meter.recent()
        st = self._engine_stats()
        workers = max(int(st["live_workers"]), 1)
        busy = meter.busy_s()
        busy_share = (busy - self._busy) / (span * workers)
        self._busy = busy
        backlogged = st["backlog"] > workers * 2
        # Saturated for the whole window, not at its end: a backlog at both ends and the workers
        # busy nearly all of it. A backlog read at one instant called a window saturated that was
        # half idle (a batch job's passes with pauses between them), and its items/s then read as
        # a throughput far below the profile's.
        saturated = backlogged and self._backlogged and busy_share >= SATURATED_BUSY
        self._backlogged = backlogged
        return WindowFigures(
            t=snap.t,
            per_item_service_s=meter.take_service(),
            rate=items_s / max(self.ref.items_per_request, 1e-9),
            p99_ms=lat.get("p99"),
            throughput=items_s,
            saturated=saturated,
            outside=iv.outside,
            contaminated=self._rule.verdict(iv, self._sampler.usable_cores) is not None,
            usable_cores=_usable_cores(),
        )


def _framework(profile: Any) -> str | None:
    """The version of the profile's framework this process would load (None: not a model file)."""
    m = profile.model
    if not m.framework:
        return None
    from importlib.metadata import PackageNotFoundError, version

    dist = {"scikit-learn": "scikit-learn", "onnxruntime": "onnxruntime", "torch": "torch"}.get(
        m.framework, m.framework
    )
    try:
        return f"{m.framework} {version(dist)}"
    except PackageNotFoundError:
        return None


def _usable_cores() -> int | None:
    """This process's usable cores now (affinity, CPU quota): a ``taskset`` or a quota cut shows here."""
    from tuner.hardware import cgroup_cpu_quota, usable_cores

    try:
        # the main thread's (the process id's), not this drift thread's: `taskset -p PID` sets that one
        cpus = os.sched_getaffinity(os.getpid()) if hasattr(os, "sched_getaffinity") else None
        return int(usable_cores(len(cpus) if cpus else (os.cpu_count() or 1), cgroup_cpu_quota()))
    except OSError:  # a host that will not say: no figure, no cause from it
        return None
