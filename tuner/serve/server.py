"""``tuner serve``'s process: listen, run the app on uvicorn, stop on tuner's terms; its lines.

::

    bind the socket ─► start line ─► the runtime starts in the background ─► uvicorn serves the app
    (/healthz answers at once, /readyz once the workers are warm) ─► ready line
    SIGTERM ─► draining: /readyz and new requests 503 at once; requests in flight go on ...
            ─► ... until none is left (exit 0) or --drain-s ends (the rest answered 503; exit 1)
            ─► uvicorn closes the listener and its connections ─► the runtime closes ─► stop line
    a second SIGTERM, or Ctrl-C (SIGINT): at once — requests in flight answered 503, the runtime's
            queued work cancelled, its workers stopped ─► stop line, exit 130

uvicorn's own signal handling is switched off (:class:`_Server`): it stops accepting at once and
re-raises the signal when done, where a pod's stop needs readiness to drop while requests in flight
finish. The handlers here are the event loop's (``loop.add_signal_handler``): they only set state
and wake the loop, so a signal never interrupts the runtime in the middle of a hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from tuner import fmt
from tuner.errors import BadInput, ExitCode
from tuner.runtime import pending_bound
from tuner.serve.app import Limits, create_app
from tuner.serve.codec import ItemSpec
from tuner.serve.service import Service

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile
    from tuner.runtime import Runtime

__all__ = ["ServeOptions", "body_limit", "default_drain_s", "listen", "serve"]

#: the default body limit, bytes (raised to what a full batch of JSON items needs)
DEFAULT_MAX_BODY = 16_000_000
#: the timeout term of the default drain when the profile sets no timeout: Kubernetes' default grace
NO_TIMEOUT_DRAIN_S = 30.0
#: after the drain, how long uvicorn may wait for responses still being written
WRITE_GRACE_S = 5
LISTEN_BACKLOG = 2048
#: the fields of the profile's online curve that GET /v1/profile carries
_CURVE_FIELDS = {"rate", "offered", "achieved", "p50_ms", "p99_ms", "p99_ci_ms", "sustainable"}


@dataclass(frozen=True)
class ServeOptions:
    """How to serve: the address, the stop's drain time, the body limit (bytes), access logs, and
    whether items are checked against the profile's."""

    host: str = "127.0.0.1"
    port: int = 8000
    drain_s: float = 1.0
    max_body: int = DEFAULT_MAX_BODY
    access_log: bool = False
    check_input: bool = True


def default_drain_s(runtime: Runtime, profile: ScalingProfile) -> float:
    """The work in flight at the profile's throughput (``max_pending`` items) plus one timeout ×
    (retries + 1): the longest a request admitted at SIGTERM should take. Without a timeout, its
    term is 30 s (Kubernetes' default grace period)."""
    s = runtime.settings
    work_s = pending_bound(s) / profile.evidence.throughput
    timeout_s = s.timeout_s if s.timeout_s is not None else NO_TIMEOUT_DRAIN_S
    return work_s + timeout_s * (s.retries + 1)


def body_limit(given_mb: float | None, spec: ItemSpec, batch: int) -> int:
    """The body limit in bytes: ``given_mb`` MB, or 16 MB; never less than a full batch of JSON
    items takes (a given limit below that is refused: the batcher could never fill a batch)."""
    need = spec.json_bytes() * batch + 64
    if given_mb is None:
        return max(DEFAULT_MAX_BODY, need)
    if given_mb * 1e6 < need:
        raise BadInput(
            f"--max-body-mb {given_mb:g}: a full batch ({batch} items of {spec.signature}) takes up to "
            f"{need / 1e6:.2f} MB of JSON; give at least that"
        )
    return int(given_mb * 1e6)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (0: any free port); BadInput when it cannot be had."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as e:
        raise BadInput(f"--host {host}: {e.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError as e:
        sock.close()
        raise BadInput(f"cannot listen on {_url(host, port)}: {e.strerror}") from None
    return sock


def serve(
    runtime: Runtime,
    profile: ScalingProfile,
    path: str,
    options: ServeOptions,
    host_check: str,
    say: Callable[[str], None],
) -> int:
    """Serve ``runtime`` until stopped; the exit code (see the module docstring). A runtime that
    cannot start raises its error (one line, its exit code) once the server has stopped."""
    spec = ItemSpec.of_profile(profile)
    sock = listen(options.host, options.port)
    try:
        address = _url(options.host, sock.getsockname()[1])
        service = Service(runtime, spec, say=say)
        retry_after_s = max(1, math.ceil(pending_bound(runtime.settings) / profile.evidence.throughput))
        limits = Limits(options.max_body, pending_bound(runtime.settings), retry_after_s, options.check_input)
        doc = profile_document(path, profile, runtime, host_check, limits, options.drain_s)
        app = create_app(service, limits, doc)
        say(
            f"tuner: serving {path} ({profile.model.spec}; {runtime.settings.describe()}) on {address} · "
            f"{host_check} · drain ≤ {fmt.seconds(options.drain_s)} · bodies ≤ {options.max_body / 1e6:g} MB; "
            "loading the model (GET /readyz: 200 once ready)"
        )
        t0 = time.perf_counter()
        stopper = asyncio.run(_serve(app, service, sock, options))
    finally:
        sock.close()
    if service.error is not None:
        raise service.error
    say(_stop_line(service, stopper, time.perf_counter() - t0, options.drain_s))
    if stopper.forced:
        return int(ExitCode.INTERRUPTED)
    return int(ExitCode.FAILED) if service.counts.unfinished else int(ExitCode.OK)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handlers (see the module docstring)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Stopper:
    """The stop: a first SIGTERM drains, a second SIGTERM or any SIGINT stops at once."""

    def __init__(self, service: Service, server: uvicorn.Server, drain_s: float) -> None:
        self.service = service
        self.server = server
        self.drain_s = drain_s
        self.signal: str | None = None  # the signal that began the stop
        self.forced: str | None = None  # the signal that ended it at once
        self._wake = asyncio.Event()

    def on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.signal is None and signum == signal.SIGTERM:
            self.signal = name
            self.service.begin_drain()  # readyz 503 from now on, not after the next tick
        else:
            self.signal = self.signal or name
            self.forced = name
            self.service.begin_drain()
            self.service.expire(f"stopped at once on {name}")
            self.server.force_exit = True
        self._wake.set()

    def on_failed(self, error: BaseException) -> None:
        self._wake.set()

    async def watch(self) -> None:
        await self._wake.wait()
        if self.forced is None and self.service.error is None:
            await self.service.drain(self.drain_s)
        self.server.should_exit = True


async def _serve(app: Any, service: Service, sock: socket.socket, options: ServeOptions) -> _Stopper:
    config = uvicorn.Config(
        app,
        log_config=None,  # tuner says its own lines; uvicorn's warnings and errors reach stderr
        log_level="warning",
        access_log=options.access_log,
        lifespan="off",  # the runtime starts and closes here, around server.serve
        timeout_graceful_shutdown=WRITE_GRACE_S,
        server_header=False,
    )
    if options.access_log:
        _log_access()
    server = _Server(config)
    stopper = _Stopper(service, server, options.drain_s)
    service.on_failed = stopper.on_failed
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        loop.add_signal_handler(sig, stopper.on_signal, sig)
    watcher = asyncio.ensure_future(stopper.watch())
    service.begin()
    try:
        await server.serve(sockets=[sock])
    finally:
        watcher.cancel()
        # A normal stop waits for what is queued; a forced one or a start that failed cancels it.
        await service.close(cancel=stopper.forced is not None or service.error is not None)
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)
    return stopper


def _log_access() -> None:
    log = logging.getLogger("uvicorn.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def _stop_line(service: Service, stopper: _Stopper, uptime_s: float, drain_s: float) -> str:
    c = service.counts
    how = f"at once on {stopper.forced}" if stopper.forced else f"on {stopper.signal or 'request'}"
    parts = [
        f"{fmt.plural(c.served, 'request')} served",
        f"{fmt.count(c.failed)} failed",
        f"{fmt.count(c.rejected)} rejected",
        f"{fmt.count(c.bad)} bad",
    ]
    stats = service.final_stats
    if stats is not None:
        parts += [f"{fmt.count(stats.retries)} retried", fmt.plural(stats.replaced, "worker") + " replaced"]
    line = f"tuner: stopped {how} after {fmt.duration(uptime_s)}: {' · '.join(parts)}"
    if stopper.forced:
        return line + (
            f"; {fmt.plural(c.unfinished, 'request')} unfinished (answered 503)" if c.unfinished else ""
        )
    took = fmt.seconds(service.drain_took_s or 0.0)
    if c.unfinished:
        return (
            f"{line}; in flight at {stopper.signal}: {fmt.count(c.drained)} drained, {fmt.count(c.unfinished)} "
            f"unfinished when the drain time ({fmt.seconds(drain_s)}) ended (answered 503)"
        )
    if not c.drained:
        return f"{line}; nothing in flight at {stopper.signal}"
    return f"{line}; {fmt.plural(c.drained, 'request')} in flight at {stopper.signal} drained in {took}"


def profile_document(
    path: str, profile: ScalingProfile, runtime: Runtime, host_check: str, limits: Limits, drain_s: float
) -> dict[str, Any]:
    """What ``GET /v1/profile`` answers: the profile's recommended section and where it came from,
    the settings that run, and the server's limits. No secret: no environment, no address."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    doc: dict[str, Any] = {
        "profile": {
            "path": path,
            "sha256": digest,
            "name": profile.name,
            "created": profile.created.isoformat(),
            "tool_version": profile.tool_version,
        },
        "model": {
            "spec": profile.model.spec,
            "item": profile.model.input.item if profile.model.input is not None else None,
            "outputs": profile.model.outputs,
        },
        "measured_on": {"summary": profile.host.summary, "fingerprint": profile.host.fingerprint},
        "host_check": host_check,
        "recommended": profile.recommended.model_dump(mode="json", exclude_none=True),
        "autoscale": profile.autoscale.model_dump(mode="json", exclude_none=True),
        "applied": runtime.settings.options(),
        "evidence": {
            "throughput": profile.evidence.throughput,
            "latency_ms": profile.evidence.latency_ms.model_dump(mode="json")
            if profile.evidence.latency_ms is not None
            else None,
        },
        "server": {
            "max_pending": limits.max_items,
            "max_body_bytes": limits.max_body,
            "drain_s": drain_s,
            "retry_after_s": limits.retry_after_s,
            "input_check": limits.check_input,
        },
    }
    online = profile.online
    if online is not None:
        doc["online"] = {
            "objective_p99_ms": online.objective_p99_ms,
            "request_size": online.request_size,
            "items_per_request": online.items_per_request,
            "max_rate_at_slo": online.max_rate_at_slo,
            "max_rate_ci": list(online.max_rate_ci),
            "p99_at_max_ms": online.p99_at_max_ms,
            # the measured latency-vs-rate curve: what tuner watch draws the live points on
            "curve": [
                s.model_dump(mode="json", include=_CURVE_FIELDS, exclude_none=True) for s in online.curve
            ],
        }
    return doc


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
