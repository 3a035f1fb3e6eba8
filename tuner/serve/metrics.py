"""``GET /metrics``: the runtime's figures (:mod:`tuner.runtime.metrics`) and the server's own.

The server adds what only it sees — HTTP requests by how they were answered, the requests in flight,
whether it is ready — to the runtime's collector, in one registry read at scrape time.
``tuner_requests_total`` is the offered request rate that ``tuner export --to kubernetes
--autoscaler keda`` scales on (every outcome counts: a refused request is load, too).
Without ``prometheus_client`` (the ``metrics`` extra) ``/metrics`` answers 501 with one line.

=====================================  ==================================================================
metric                                 what
=====================================  ==================================================================
``tuner_requests_total{outcome}``      requests answered: ok (200), failed (500), rejected (503 at the
                                       door), bad (400, 413), unfinished (503 at the end of a drain)
``tuner_requests_in_flight``           requests accepted, not yet answered
``tuner_ready``                        1 while ``/readyz`` answers 200
=====================================  ==================================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuner.serve.service import Service

__all__ = ["Exposition", "exposition"]

#: Counts field → the outcome label.
OUTCOMES = {"served": "ok", "failed": "failed", "rejected": "rejected", "bad": "bad", "unfinished": "unfinished"}


class _ServerCollector:
    def __init__(self, service: Service, core: Any) -> None:
        self.service, self.core = service, core

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        s, core = self.service, self.core
        requests = core.CounterMetricFamily("tuner_requests", "HTTP requests by outcome.", labels=["outcome"])
        for name, label in OUTCOMES.items():
            requests.add_metric([label], getattr(s.counts, name))
        yield requests
        yield core.GaugeMetricFamily(
            "tuner_requests_in_flight", "Requests accepted, not yet answered.", value=s.requests_in_flight
        )
        yield core.GaugeMetricFamily(
            "tuner_ready", "1 while the server is ready.", value=1.0 if s.unavailable() is None else 0.0
        )


class Exposition:
    """The text ``/metrics`` answers, and its content type."""

    def __init__(self, service: Service) -> None:
        import prometheus_client

        from tuner.runtime.metrics import registry_for

        self.registry = registry_for(service.runtime)
        self.registry.register(_ServerCollector(service, prometheus_client.metrics_core))
        self._latest = prometheus_client.generate_latest
        self.media = prometheus_client.CONTENT_TYPE_LATEST

    def text(self) -> bytes:
        return bytes(self._latest(self.registry))


def exposition(service: Service) -> Exposition | None:
    """The server's exposition, or None without ``prometheus_client``."""
    try:
        return Exposition(service)
    except ImportError:
        return None
