"""What ``tuner watch`` and ``tuner verify`` read from a running ``tuner serve``: one scrape of
``/metrics`` turned into figures.

No Textual here (the Live view, :mod:`tuner.tui.widgets.live`, draws what this computes), and no
third-party HTTP client: one ``GET`` with :mod:`http.client` per scrape, run in the view's thread
worker. ``prometheus_client``'s text parser reads the page (the ``metrics`` extra)::

    GET /metrics ─► parse_metrics(text, t) ─► Sample (counters, gauges, latency buckets, at time t)
    figures(previous Sample, this Sample) ─► Figures: rates over the interval, p50/p99 from the
                                             bucket deltas, in flight, workers, drift, the promise

A counter that went down between two scrapes means the server restarted: the interval then gives
no rate (None), never a negative one.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from tuner.errors import BadInput

__all__ = [
    "TIMEOUT_S",
    "Figures",
    "NotTuner",
    "Sample",
    "Scraper",
    "Target",
    "Unreachable",
    "WatchError",
    "fetch_metrics",
    "fetch_profile",
    "figures",
    "get",
    "need_parser",
    "parse_metrics",
    "parse_url",
    "quantile",
    "server_drift",
]

#: how long one scrape may take before the server counts as unreachable for that second
TIMEOUT_S = 2.0
LATENCY = "tuner_item_latency_seconds"


class WatchError(Exception):
    """A scrape that gave no figures; ``str()`` is the one line the view shows."""


class Unreachable(WatchError):
    """Nothing answered (refused, timed out, name unknown)."""


class NotTuner(WatchError):
    """Something answered, but not as a ``tuner serve`` does."""


def need_parser() -> Any:
    """``prometheus_client.parser.text_string_to_metric_families``; BadInput without the metrics extra."""
    try:
        from prometheus_client.parser import text_string_to_metric_families
    except ImportError:
        raise BadInput(
            "tuner watch needs the metrics extra (prometheus_client is missing): pip install 'tuner[metrics]'"
        ) from None
    return text_string_to_metric_families


@dataclass(frozen=True)
class Target:
    """Where the server is: ``http://host:port`` and a path prefix (a server behind a proxy)."""

    scheme: str
    host: str
    port: int
    prefix: str = ""

    @property
    def url(self) -> str:
        """The server's address as a person types it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.prefix}"


def parse_url(text: str) -> Target:
    """``http://127.0.0.1:8000``, ``127.0.0.1:8000`` or ``:8000`` → :class:`Target`; BadInput otherwise."""
    raw = text.strip()
    if raw.startswith(":"):
        raw = "127.0.0.1" + raw
    if "://" not in raw:
        raw = "http://" + raw
    try:
        u = urllib.parse.urlsplit(raw)
        port = u.port
    except ValueError as e:
        raise BadInput(f"URL {text!r}: {e}") from None
    if u.scheme not in ("http", "https") or not u.hostname:
        raise BadInput(f"URL {text!r}: give the server's address, e.g. http://127.0.0.1:8000")
    if u.query or u.fragment:
        raise BadInput(f"URL {text!r}: give the server's address without a query, e.g. http://127.0.0.1:8000")
    default = 443 if u.scheme == "https" else 80
    return Target(u.scheme, u.hostname, port or default, u.path.rstrip("/"))


def get(target: Target, path: str, timeout_s: float = TIMEOUT_S) -> tuple[int, bytes]:
    """``GET path`` → (status, body); :class:`Unreachable` when nothing answers in time."""
    cls = http.client.HTTPSConnection if target.scheme == "https" else http.client.HTTPConnection
    conn = cls(target.host, target.port, timeout=timeout_s)
    try:
        conn.request("GET", target.prefix + path, headers={"Accept": "text/plain, application/json"})
        r = conn.getresponse()
        return r.status, r.read()
    except TimeoutError:
        raise Unreachable(f"{target.url}: no answer within {timeout_s:g} s") from None
    except ConnectionRefusedError:
        raise Unreachable(f"{target.url}: unreachable (connection refused)") from None
    except (OSError, http.client.HTTPException) as e:
        why = getattr(e, "strerror", None) or str(e) or type(e).__name__
        raise Unreachable(f"{target.url}: unreachable ({why})") from None
    finally:
        conn.close()


def fetch_profile(target: Target) -> dict[str, Any]:
    """``GET /v1/profile`` (what the server runs); :class:`NotTuner` when it is not tuner's document."""
    status, body = get(target, "/v1/profile")
    if status != 200:
        raise NotTuner(f"{target.url}: not a tuner server (GET /v1/profile answered {status})")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "recommended" not in doc or "profile" not in doc:
        raise NotTuner(f"{target.url}: not a tuner server (GET /v1/profile is not a tuner profile document)")
    return doc


def fetch_metrics(target: Target) -> str:
    """``GET /metrics`` as text; :class:`NotTuner` when the page is missing or not tuner's."""
    status, body = get(target, "/metrics")
    if status == 501:  # a tuner server without the metrics extra says so in one line
        raise NotTuner(f"{target.url}: the server has no metrics ({_error_line(body)})")
    if status != 200:
        raise NotTuner(f"{target.url}: not a tuner server (GET /metrics answered {status})")
    return body.decode("utf-8", "replace")


def _error_line(body: bytes) -> str:
    try:
        return str(json.loads(body)["error"])
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace").strip()[:200]


@dataclass(frozen=True)
class Sample:
    """One scrape: every tuner sample by name and labels, the latency histogram's cumulative
    buckets (upper bound → count), and when it was taken (monotonic seconds)."""

    t: float
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    buckets: tuple[tuple[float, float], ...]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample ``name{labels}``, or None when the page has none."""
        return self.values.get((name, tuple(sorted(labels.items()))))

    def total(self, name: str) -> float | None:
        """The sum of ``name`` over every label set (None: the page has none)."""
        found = [v for (n, _), v in self.values.items() if n == name]
        return sum(found) if found else None

    def labelled(self, name: str, label: str) -> dict[str, float]:
        """``name`` by the value of ``label``: ``{"up": 2.0, "down": 0.0}``."""
        out = {}
        for (n, labels), v in self.values.items():
            if n == name:
                out[dict(labels).get(label, "")] = v
        return out


def parse_metrics(text: str, t: float) -> Sample:
    """Parse a ``/metrics`` page taken at time ``t``; :class:`NotTuner` when it has no tuner metric."""
    parse = need_parser()
    values: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    buckets: list[tuple[float, float]] = []
    try:
        for family in parse(text):
            for s in family.samples:
                if not s.name.startswith("tuner_"):
                    continue
                if s.name == LATENCY + "_bucket":
                    buckets.append((float(s.labels["le"]), float(s.value)))
                    continue
                values[(s.name, tuple(sorted(s.labels.items())))] = float(s.value)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise NotTuner(f"not a tuner server (its /metrics page does not parse: {e})") from None
    if not any(name == "tuner_items_total" or name == "tuner_requests_total" for name, _ in values):
        raise NotTuner("not a tuner server (its /metrics page has no tuner_ metrics)")
    return Sample(t, values, tuple(sorted(buckets)))


def server_drift(url: str) -> dict[str, bool] | None:
    """The server's own drift verdict from its ``/metrics`` (``tuner_profile_drift{dimension}``):
    dimension → drifting; None when it serves no such figure (no metrics extra, not tuner, gone)."""
    try:
        target = parse_url(url.rsplit("/v1/predict", 1)[0])
        found = parse_metrics(fetch_metrics(target), 0.0).labelled("tuner_profile_drift", "dimension")
    except (WatchError, BadInput):
        return None
    return {d: v > 0 for d, v in found.items()} or None


def quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``buckets`` (upper bound → count, ascending), interpolated
    linearly inside its bucket as Prometheus' ``histogram_quantile`` does; None without counts. In
    the ``+Inf`` bucket: the highest finite bound (nothing finer is known)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank and count > lower_count:
            if math.isinf(bound):
                return lower_bound
            share = (rank - lower_count) / (count - lower_count)
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return lower_bound


@dataclass(frozen=True)
class Figures:
    """What the Live view shows after a scrape. Rates and latencies are over the interval since
    the previous scrape (None on the first scrape, after a restart, or when nothing completed)."""

    t: float
    interval_s: float | None = None
    request_rate: float | None = None  # requests/s answered, every outcome (the offered load)
    error_rate: float | None = None  # requests/s failed, rejected or bad
    item_rate: float | None = None  # items/s done (ok + failed)
    p50_ms: float | None = None  # item latency over the interval
    p99_ms: float | None = None
    in_flight: float | None = None  # items accepted, not yet answered
    max_pending: float | None = None
    requests_in_flight: float | None = None
    workers: float | None = None
    workers_target: float | None = None
    scale_ups: float = 0.0  # autoscaler decisions since the server started
    scale_downs: float = 0.0
    drift: dict[str, bool] = field(default_factory=dict)  # dimension → drifting now
    outside_load: float | None = None  # share of the usable cores
    ready: bool | None = None
    max_rate: float | None = None  # the profile's promise: requests/s within the objective
    objective_ms: float | None = None  # the profile's p99 objective
    throughput: dict[str, float] = field(default_factory=dict)  # the profile's evidence: point, low, high
    requests: dict[str, float] = field(default_factory=dict)  # requests by outcome, since start

    @property
    def drifting(self) -> list[str]:
        """The dimensions drifting from the profile now."""
        return [d for d, on in self.drift.items() if on]


def _delta(now: float | None, before: float | None) -> float | None:
    if now is None or before is None or now < before:
        return None
    return now - before


def figures(prev: Sample | None, cur: Sample) -> Figures:
    """The figures of ``cur``, with rates and latencies over the interval since ``prev``."""
    v = cur.value
    objective = v("tuner_profile_p99_objective_seconds")
    requests = cur.labelled("tuner_requests_total", "outcome")
    common: dict[str, Any] = dict(
        t=cur.t,
        in_flight=v("tuner_items_in_flight"),
        max_pending=v("tuner_max_pending"),
        requests_in_flight=v("tuner_requests_in_flight"),
        workers=v("tuner_workers"),
        workers_target=v("tuner_workers_target"),
        scale_ups=v("tuner_autoscale_decisions_total", direction="up") or 0.0,
        scale_downs=v("tuner_autoscale_decisions_total", direction="down") or 0.0,
        drift={d: x > 0 for d, x in cur.labelled("tuner_profile_drift", "dimension").items()},
        outside_load=v("tuner_host_outside_load_ratio"),
        ready=None if v("tuner_ready") is None else v("tuner_ready") == 1.0,
        max_rate=v("tuner_profile_max_rate_requests_per_second"),
        objective_ms=objective * 1000 if objective is not None else None,
        throughput=cur.labelled("tuner_profile_throughput_items_per_second", "bound"),
        requests=requests,
    )
    dt = cur.t - prev.t if prev is not None else 0.0
    if prev is None or dt <= 0:
        return Figures(**common)
    before = prev.labelled("tuner_requests_total", "outcome")
    reqs = _delta(sum(requests.values()) if requests else None, sum(before.values()) if before else None)
    bad = [_delta(requests.get(o), before.get(o)) for o in ("failed", "rejected", "bad")]
    items = _delta(
        _sum(v("tuner_items_total", outcome="ok"), v("tuner_items_total", outcome="failed")),
        _sum(
            prev.value("tuner_items_total", outcome="ok"), prev.value("tuner_items_total", outcome="failed")
        ),
    )
    restarted = reqs is None or items is None
    p50 = p99 = None
    window = _bucket_delta(prev.buckets, cur.buckets)
    if window is not None and not restarted:
        q50, q99 = quantile(0.5, window), quantile(0.99, window)
        p50 = q50 * 1000 if q50 is not None else None
        p99 = q99 * 1000 if q99 is not None else None
    return Figures(
        **common,
        interval_s=dt,
        request_rate=None if restarted or reqs is None else reqs / dt,
        error_rate=None if restarted or None in bad else sum(b for b in bad if b is not None) / dt,
        item_rate=None if restarted or items is None else items / dt,
        p50_ms=p50,
        p99_ms=p99,
    )


def _sum(a: float | None, b: float | None) -> float | None:
    return None if a is None and b is None else (a or 0.0) + (b or 0.0)


def _bucket_delta(
    before: tuple[tuple[float, float], ...], now: tuple[tuple[float, float], ...]
) -> list[tuple[float, float]] | None:
    """The buckets' counts over the interval; None when the bounds changed or a count went down."""
    if not now or [b for b, _ in before] != [b for b, _ in now]:
        return None
    out = []
    for (bound, c0), (_, c1) in zip(before, now, strict=True):
        if c1 < c0:
            return None
        out.append((bound, c1 - c0))
    return out


class Scraper:
    """Scrapes one server: its profile document once per connection, ``/metrics`` at every call.

    Called once a second from the Live view's thread worker; returns the figures since the
    previous call and the profile document, or raises :class:`WatchError`. After an error the
    next answer starts afresh (the document fetched again: the server may have been replaced).
    """

    def __init__(self, target: Target, clock: Any = None) -> None:
        import time

        self.target = target
        self._clock = clock or time.monotonic
        self._prev: Sample | None = None
        self.profile: dict[str, Any] | None = None

    def __call__(self) -> tuple[Figures, dict[str, Any]]:
        try:
            if self.profile is None:
                self.profile = fetch_profile(self.target)
            text = fetch_metrics(self.target)
            try:
                sample = parse_metrics(text, self._clock())
            except NotTuner as e:
                raise NotTuner(f"{self.target.url}: {e}") from None
        except WatchError:
            self._prev, self.profile = None, None
            raise
        found = figures(self._prev, sample)
        self._prev = sample
        return found, self.profile
