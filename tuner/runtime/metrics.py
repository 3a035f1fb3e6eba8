"""The runtime's figures for Prometheus: one collector, read at scrape time.

``registry_for(rt)`` gives a ``prometheus_client.CollectorRegistry`` holding a
:class:`RuntimeCollector` (``tuner serve`` serves it at ``GET /metrics``); ``RuntimeCollector(rt, registry)``
registers in a registry of the caller's own. (Not a ``Runtime`` method: the runtime's core does not
import this room, so the package keeps its one-way imports.) Nothing is counted for it on the hot path: a scrape
reads the counters, the histograms and the stats the runtime keeps anyway (:mod:`tuner.runtime.stats`).
``prometheus_client`` is imported only here, inside the functions (the ``metrics`` extra), so
``import tuner.runtime`` stays light.

=====================================================  ======================================================
metric                                                 what
=====================================================  ======================================================
``tuner_items_total{outcome}``                         items by outcome: ok, failed, rejected (counter)
``tuner_item_failures_total{cause}``                   failed items by cause (error, timeout, crash, memory)
``tuner_item_latency_seconds``                         item latency, histogram (buckets around the profile's)
``tuner_partition_service_seconds``                    partition time inside the model call, histogram
``tuner_items_in_flight`` / ``tuner_max_pending``      items accepted, not yet answered / the bound
``tuner_items_queued``                                 items waiting in the dynamic batcher
``tuner_workers`` / ``tuner_workers_target``           workers loaded / the engine's target
``tuner_autoscale_decisions_total{direction}``         autoscaler resizes (up, down)
``tuner_hedges_total`` / ``tuner_hedge_wins_total``    hedge copies sent / won
``tuner_worker_restarts_total{cause}``                 workers replaced, by cause
``tuner_retries_total``                                partition attempts retried
``tuner_cold_start_seconds``                           the profile's cold start
``tuner_profile_max_rate_requests_per_second``         the profile's promise: max rate within the objective
``tuner_profile_p99_objective_seconds``                the objective
``tuner_profile_throughput_items_per_second{bound}``   the evidence's throughput: point, low, high (its CI)
``tuner_profile_drift{dimension}``                     1 while a dimension drifts from the profile
``tuner_host_outside_load_ratio``                      other processes' load, share of the usable cores
=====================================================  ======================================================

Labels are bounded: outcomes, causes the engine names, two directions, the drift dimensions.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput

if TYPE_CHECKING:
    from tuner.runtime.core import Runtime

__all__ = ["RuntimeCollector", "registry_for"]


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise BadInput("metrics need prometheus_client: pip install 'tuner[metrics]'") from None
    return prometheus_client


class RuntimeCollector:
    """A ``prometheus_client`` collector of one runtime (see the module docstring)."""

    def __init__(self, rt: Runtime, registry: Any = None) -> None:
        self.rt = rt
        self._core = _prometheus().metrics_core
        if registry is not None:
            registry.register(self)

    def describe(self) -> list[Any]:
        return []  # names known only at collect time: the registry does not check them up front

    def collect(self) -> Iterator[Any]:
        core, rt = self._core, self.rt
        s = rt.stats()
        yield from self._counts(core, s)
        latency, service = rt._meter.histograms()
        yield _histogram(
            core,
            "tuner_item_latency_seconds",
            "Item latency, from the item's arrival to its outcome.",
            latency,
        )
        yield _histogram(
            core, "tuner_partition_service_seconds", "Partition time inside the model call.", service
        )
        yield from self._gauges(core, s)
        yield from self._promise(core)

    def _counts(self, core: Any, s: Any) -> Iterator[Any]:
        items = core.CounterMetricFamily("tuner_items", "Items by outcome.", labels=["outcome"])
        items.add_metric(["ok"], s.items_done - s.items_failed)
        items.add_metric(["failed"], s.items_failed)
        items.add_metric(["rejected"], s.rejected)
        yield items
        causes = core.CounterMetricFamily("tuner_item_failures", "Failed items by cause.", labels=["cause"])
        for cause, n in sorted(s.failures.items()):
            causes.add_metric([cause], n)
        yield causes
        decisions = core.CounterMetricFamily(
            "tuner_autoscale_decisions", "Autoscaler resizes.", labels=["direction"]
        )
        ups = sum(1 for d in s.scaling if d.new > d.old)
        decisions.add_metric(["up"], ups)
        decisions.add_metric(["down"], len(s.scaling) - ups)
        yield decisions
        yield core.CounterMetricFamily("tuner_hedges", "Hedge copies sent.", value=s.hedges)
        yield core.CounterMetricFamily(
            "tuner_hedge_wins", "Hedge copies that came back first.", value=s.hedges_won
        )
        yield core.CounterMetricFamily("tuner_retries", "Partition attempts retried.", value=s.retries)
        restarts = core.CounterMetricFamily(
            "tuner_worker_restarts", "Workers replaced, by cause.", labels=["cause"]
        )
        for cause, n in sorted(self.rt._engine.stats().get("replaced_by", {}).items()):
            restarts.add_metric([cause], n)
        yield restarts

    def _gauges(self, core: Any, s: Any) -> Iterator[Any]:
        g = core.GaugeMetricFamily
        yield g("tuner_items_in_flight", "Items accepted and not yet answered.", value=s.pending)
        yield g("tuner_max_pending", "The bound on items in flight.", value=s.max_pending)
        yield g("tuner_items_queued", "Items waiting in the dynamic batcher.", value=s.queued)
        yield g("tuner_workers", "Workers loaded and serving.", value=s.live_workers)
        yield g("tuner_workers_target", "The engine's target worker count.", value=s.workers)
        if self.rt.profile is not None:  # no profile, no promise to drift from
            drift = g(
                "tuner_profile_drift", "1 while the dimension drifts from the profile.", labels=["dimension"]
            )
            from tuner.runtime.drift import DIMENSIONS

            for d in DIMENSIONS:
                drift.add_metric([d], 1.0 if d in s.drift else 0.0)
            yield drift
        outside = getattr(self.rt, "_observer", None)
        if outside is not None:
            yield g("tuner_host_outside_load_ratio", "Other processes' load, share of the usable cores.",
                    value=outside.state.last_window_outside)  # fmt: skip

    def _promise(self, core: Any) -> Iterator[Any]:
        profile = self.rt.profile
        if profile is None:
            return
        g = core.GaugeMetricFamily
        ev = profile.evidence
        if ev.cold_start_s is not None:
            yield g("tuner_cold_start_seconds", "The profile's cold start.", value=ev.cold_start_s)
        tput = g(
            "tuner_profile_throughput_items_per_second",
            "The profile's throughput evidence.",
            labels=["bound"],
        )
        tput.add_metric(["point"], ev.throughput)
        if ev.throughput_ci:
            tput.add_metric(["low"], ev.throughput_ci[0])
            tput.add_metric(["high"], ev.throughput_ci[1])
        yield tput
        if profile.online is not None:
            o = profile.online
            yield g("tuner_profile_max_rate_requests_per_second", "The profile's max rate within its objective.",
                    value=o.max_rate_at_slo)  # fmt: skip
            yield g(
                "tuner_profile_p99_objective_seconds",
                "The profile's p99 objective.",
                value=o.objective_p99_ms / 1000,
            )


def _histogram(core: Any, name: str, doc: str, b: Any) -> Any:
    return core.HistogramMetricFamily(name, doc, buckets=b.cumulative(), sum_value=b.sum)


def registry_for(rt: Runtime) -> Any:
    """A ``CollectorRegistry`` with ``rt``'s collector."""
    registry = _prometheus().CollectorRegistry(auto_describe=False)
    RuntimeCollector(rt, registry)
    return registry
