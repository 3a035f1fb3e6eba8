"""A running server measured against its profile: the max rate within the objective *through* it
(``tuner bench --online --url``), and ``tuner verify``'s predicted-against-observed steps.

The configuration is the server's (it runs a profile), so over HTTP only rates are searched — the
same rate search (:func:`tuner.bench.online.search.search_max_rate`), the same steps
(:func:`tuner.bench.online.step.run_step`, latency from the intended send time), the requests sent
by :class:`tuner.bench.online.http.HttpSink`. When the server runs on this host (a loopback
address), its process is found by its listening port and its CPU is recorded per step
(``cpu_cores``), and the noise guard counts it as the system under test, not as outside load.

**verify** offers fractions (default 0.5, 0.8, 1.0) of the profile's max rate at the objective —
the one measured over HTTP when the profile has it, else the in-process one, said which — each for
a step long enough for a p99 with a CI (:func:`verify_step_s`), and compares with the profile's
latency-vs-rate curve (interpolated). The verdict:

* ``does not hold`` (exit 1) — at a rate the profile says it sustains (at or below its max rate),
  the observed p99's CI low is above the objective, or more than 0.1% of requests failed;
* ``inconclusive: host busy`` (exit 3) — otherwise, when the outside load over a step passed the
  noise guard's limit (as the gate reads it): a busy host can make a good server look slow;
* ``holds`` (exit 0) — otherwise.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.bench.online.http import HttpSink, server_address
from tuner.bench.online.results import StepResult
from tuner.bench.online.schedule import make_schedule
from tuner.bench.online.search import RateSearch, SearchSettings, search_max_rate
from tuner.bench.online.step import StepCancelled, run_step
from tuner.errors import BadInput

if TYPE_CHECKING:
    from tuner.bench.request import OnlineRequest
    from tuner.hostload import HostSampler
    from tuner.profile import Online, OnlineStep, ScalingProfile

__all__ = [
    "ERROR_SHARE",
    "HttpSearch",
    "VerifyOutcome",
    "VerifyStep",
    "local_server_pid",
    "predicted",
    "search_over_http",
    "verify",
    "verify_step_s",
]

#: more than this share of requests failed (any status but 200 and 503) and the profile does not hold
ERROR_SHARE = 0.001
#: a verify step holds about this many requests: enough that its p99 has ~10 above it and a CI
VERIFY_REQUESTS = 2000
VERIFY_MIN_S, VERIFY_MAX_S = 5.0, 30.0
#: the search's first step offers this share of the in-process max rate (HTTP costs something)
START_SHARE = 0.5
WARMUP_S = 0.5


def local_server_pid(url: str) -> int | None:
    """The pid listening on ``url``'s port when it is on this host (a loopback address); else None."""
    from urllib.parse import urlsplit

    import psutil

    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1", "0.0.0.0") or parts.port is None:
        return None
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == parts.port and c.pid:
            return int(c.pid)
    return None


def _sampler(url: str) -> HostSampler | None:
    from tuner.hostload import HostSampler

    pid = local_server_pid(url)
    # the server's processes and this one (the load generator) are the measurement; the rest is outside
    return HostSampler(root=pid, own_pids=[os.getpid()]) if pid is not None else None


@dataclass
class HttpSearch:
    """What a search through a server found, and what the load generator cost."""

    found: RateSearch
    server: str  # host:port
    status: Counter[str]
    client: str  # the HTTP client and its version
    client_cores: float  # cores this process (the load generator) used while searching
    elapsed_s: float
    interrupted: bool = False


def _client() -> str:
    import aiohttp

    return f"aiohttp {aiohttp.__version__}"


def search_over_http(
    url: str,
    items: Any,
    request: OnlineRequest,
    *,
    start_rate: float,
    ceiling: float | None = None,
    on_message: Any = None,
    cancel: threading.Event | None = None,
    seed: int = 0,
) -> HttpSearch:
    """The highest request rate ``url`` sustains within ``request.objective_ms``, within
    ``request.budget_s`` (see the module docstring)."""
    sampler = _sampler(url)
    t0, c0 = time.perf_counter(), time.process_time()
    deadline = t0 + request.budget_s
    steps = 0
    position = 0
    with HttpSink(url) as sink:
        server = _ready(sink, url)

        def step(rate: float) -> StepResult:
            nonlocal steps, position
            schedule = make_schedule(
                request.arrivals, rate, request.step_s, size=request.request_size, seed=seed * 1000 + steps
            )
            result = run_step(
                sink, schedule, items, objective_ms=request.objective_ms, drain_timeout_s=request.drain_timeout_s,
                on_progress=on_message, cancel=cancel, step=steps, start_item=position, sampler=sampler,
            )  # fmt: skip
            position += schedule.items
            steps += 1
            if on_message is not None:
                from tuner.bench.online.messages import StepFinished

                on_message(StepFinished(0, steps - 1, replace(result, raw=None)))
            return result

        interrupted = False
        found = RateSearch()
        try:
            warm = make_schedule(request.arrivals, start_rate, WARMUP_S, size=request.request_size, seed=seed)
            run_step(sink, warm, items, objective_ms=request.objective_ms, drain_timeout_s=request.drain_timeout_s,
                     cancel=cancel, ci=False)  # fmt: skip
            position = warm.items
            settings = SearchSettings()
            per = request.request_size.mean
            found = search_max_rate(
                step, start_rate, settings, deadline=deadline, ceiling=ceiling / per if ceiling else None
            )
        except StepCancelled:
            interrupted = True
        status = Counter(sink.status)
    elapsed = time.perf_counter() - t0
    return HttpSearch(
        found=found, server=server, status=status, client=_client(),
        client_cores=round((time.process_time() - c0) / elapsed, 3) if elapsed > 0 else 0.0,
        elapsed_s=elapsed, interrupted=interrupted,
    )  # fmt: skip


def _ready(sink: HttpSink, url: str) -> str:
    """The server's address, once ``/readyz`` says it is ready (BadInput when it is not)."""
    code, _ = sink.get_json("/readyz")
    if code != 200:
        raise BadInput(
            f"{url}: the server is not ready (/readyz answered {code}): wait for it, or check its log"
        )
    return server_address(url)


# ----------------------------------------------------------------------------------------- verify


def predicted(curve: list[OnlineStep], rate: float) -> tuple[float | None, float | None]:
    """The profile's (p50, p99) at ``rate``, ms: linear between the curve's two nearest measured
    rates, the nearest one's beyond its ends; (None, None) without a curve."""
    pts = sorted((s.rate, s.p50_ms, s.p99_ms) for s in curve if s.p99_ms is not None)
    if not pts:
        return None, None
    lo = max((p for p in pts if p[0] <= rate), default=pts[0])
    hi = min((p for p in pts if p[0] >= rate), default=pts[-1])
    if hi[0] == lo[0]:
        return lo[1], lo[2]
    w = (rate - lo[0]) / (hi[0] - lo[0])

    def mix(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else a + w * (b - a)

    return mix(lo[1], hi[1]), mix(lo[2], hi[2])


def verify_step_s(rate: float, step_s: float) -> float:
    """A step long enough for a p99 with a CI: about VERIFY_REQUESTS requests, within bounds."""
    return min(VERIFY_MAX_S, max(VERIFY_MIN_S, step_s, VERIFY_REQUESTS / rate))


@dataclass
class VerifyStep:
    """One rate offered: what the profile predicted and what the server did."""

    share: float
    rate: float
    predicted_p50_ms: float | None
    predicted_p99_ms: float | None
    result: StepResult
    status: dict[str, int]

    @property
    def errors(self) -> int:
        return sum(n for code, n in self.status.items() if code not in ("200", "503"))

    def to_json(self) -> dict[str, Any]:
        r = self.result
        return {
            "share": self.share,
            "rate": round(self.rate, 3),
            "achieved": r.achieved,
            "predicted": {"p50_ms": self.predicted_p50_ms, "p99_ms": self.predicted_p99_ms},
            "observed": {
                "p50_ms": r.latency_ms.get("p50"),
                "p99_ms": r.latency_ms.get("p99"),
                "p99_ci_ms": list(r.latency_ci_ms["p99"]) if "p99" in r.latency_ci_ms else None,
            },
            "requests": r.sent,
            "status": dict(self.status),
            "cpu_cores": r.cpu_cores,
            "outside_load": r.outside,
        }


@dataclass
class VerifyOutcome:
    """The verdict and everything its lines and JSON say."""

    kind: str  # "holds" | "does not hold" | "inconclusive"
    line: str
    basis: str  # which max rate was offered: "over HTTP" or "in process"
    max_rate: float
    objective_ms: float
    steps: list[VerifyStep] = field(default_factory=list)
    server_drift: dict[str, bool] | None = None  # the server's /metrics: dimension → drifting

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.kind,
            "server_drift": self.server_drift,
            "line": self.line,
            "max_rate": self.max_rate,
            "max_rate_basis": self.basis,
            "objective_p99_ms": self.objective_ms,
            "steps": [s.to_json() for s in self.steps],
        }


def _basis(online: Online) -> tuple[float, list[OnlineStep], str]:
    http = online.http
    if http is not None and http.max_rate_at_slo > 0:
        return http.max_rate_at_slo, http.curve, f"over HTTP ({http.server}, {http.measured})"
    return online.max_rate_at_slo, online.curve, "in process (the profile has no figure measured over HTTP)"


def verify(
    profile: ScalingProfile,
    url: str,
    items: Any,
    *,
    shares: tuple[float, ...] = (0.5, 0.8, 1.0),
    max_outside: float | None = None,
    on_message: Any = None,
    cancel: threading.Event | None = None,
) -> VerifyOutcome:
    """Offer ``shares`` of the profile's max rate to ``url`` and judge (see the module docstring)."""
    from tuner.bench.online.schedule import RequestSize, parse_request_size
    from tuner.hostload import DEFAULT_MAX_OUTSIDE

    online = profile.online
    if online is None:
        raise BadInput("the profile has no online: section — measure it with tuner bench --online first")
    max_rate, curve, basis = _basis(online)
    if max_rate <= 0:
        raise BadInput("the profile's online search found no sustainable rate: nothing to verify")
    limit = DEFAULT_MAX_OUTSIDE if max_outside is None else max_outside
    # the request size the profile was measured with ("as in the trace": one item each)
    size = (
        parse_request_size("request_size", online.request_size)
        if online.request_size[:1].isdigit()
        else RequestSize()
    )
    sampler = _sampler(url)
    steps: list[VerifyStep] = []
    with HttpSink(url) as sink:
        _ready(sink, url)
        position = 0
        for k, share in enumerate(shares):
            rate = share * max_rate
            schedule = make_schedule("poisson", rate, verify_step_s(rate, online.step_s), size=size, seed=k)
            before = Counter(sink.status)
            result = run_step(
                sink, schedule, items, objective_ms=online.objective_p99_ms, on_progress=on_message,
                cancel=cancel, step=k, start_item=position, sampler=sampler,
            )  # fmt: skip
            position += schedule.items
            status = dict(Counter(sink.status) - before)
            p50, p99 = predicted(curve, rate)
            steps.append(VerifyStep(share, rate, p50, p99, replace(result, raw=None), status))
    return _judge(steps, max_rate, online.objective_p99_ms, basis, limit)


def drift_words(drift: dict[str, bool] | None) -> str:
    """The server's drift verdict in words."""
    if drift is None:
        return "the server reports no drift figures (its /metrics needs the metrics extra)"
    moved = sorted(d for d, on in drift.items() if on)
    if not moved:
        return "the server's own drift watch: within its profile"
    return f"the server's own drift watch: {', '.join(moved)} left the profile (see the server's log for why)"


def _judge(
    steps: list[VerifyStep], max_rate: float, objective_ms: float, basis: str, limit: float
) -> VerifyOutcome:
    broken: list[str] = []
    for s in steps:
        r = s.result
        sent = max(1, r.sent)
        if s.errors / sent > ERROR_SHARE:
            codes = ", ".join(f"{n} × {c}" for c, n in sorted(s.status.items()) if c not in ("200", "503"))
            broken.append(f"at {fmt.rate(s.rate)}/s {s.errors} of {r.sent} requests failed ({codes})")
        ci = r.latency_ci_ms.get("p99")
        if s.rate <= max_rate * (1 + 1e-9) and ci is not None and ci[0] > objective_ms:
            broken.append(
                f"at {fmt.rate(s.rate)}/s p99 {fmt.ms(r.latency_ms['p99'])} (CI {_ms_range(ci)}) "
                f"is above the objective {objective_ms:g} ms"
            )
    busy = [s for s in steps if s.result.outside is not None and s.result.outside > limit]
    head = f"max rate {fmt.rate(max_rate)} requests/s at p99 ≤ {objective_ms:g} ms, {basis}"
    if busy:  # the noise guard's rule: a busy host explains a miss, and makes a pass lucky
        worst = max(s.result.outside or 0.0 for s in busy)
        seen = f" (what it saw: {'; '.join(broken)})" if broken else ""
        return VerifyOutcome(
            "inconclusive",
            f"{head}: inconclusive: host busy — outside load up to {worst:.0%} of the usable cores "
            f"over {len(busy)} of {len(steps)} steps (limit {limit:.0%}){seen}",
            basis, max_rate, objective_ms, steps,
        )  # fmt: skip
    if broken:
        return VerifyOutcome(
            "does not hold",
            f"{head}: does not hold — {'; '.join(broken)}",
            basis,
            max_rate,
            objective_ms,
            steps,
        )
    return VerifyOutcome("holds", f"{head}: holds", basis, max_rate, objective_ms, steps)


def _ms_range(ci: tuple[float, float]) -> str:
    return f"{fmt.ms(ci[0]).removesuffix(' ms')}–{fmt.ms(ci[1])}"


def verify_table(outcome: VerifyOutcome) -> list[str]:
    """The steps as lines a person reads: predicted against observed."""
    lines = []
    for s in outcome.steps:
        r = s.result
        p99 = r.latency_ms.get("p99")
        ci = r.latency_ci_ms.get("p99")
        ci_text = f" (CI {_ms_range(ci)})" if ci else ""
        pred = f"{fmt.ms(s.predicted_p99_ms)}" if s.predicted_p99_ms is not None else "?"
        codes = ", ".join(f"{c}: {n}" for c, n in sorted(s.status.items()))
        observed = f"{fmt.ms(p99)}{ci_text}" if p99 is not None else "none completed"
        lines.append(
            f"  {s.share:.0%} · {fmt.rate(s.rate)}/s offered, {fmt.rate(r.achieved)}/s achieved · p99 predicted "
            f"{pred}, observed {observed} · {codes}"
            + (f" · server {fmt.sig(r.cpu_cores, 2)} cores" if r.cpu_cores is not None else "")
        )
    return lines


def need_online(profile: ScalingProfile, path: str) -> Online:
    """The profile's online section, or one line (exit 2)."""
    if profile.online is None:
        raise BadInput(
            f"{path}: the profile has no online: section — measure it with tuner bench --online first"
        )
    return profile.online
