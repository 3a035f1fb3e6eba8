"""The runtime behind the server: its start, readiness, the requests in flight, the drain, the close.

::

    starting ──(workers loaded, one zero item per worker run)──► ready ──SIGTERM──► draining ─► stopped
        │                                                                   ▲
        └──(the model failed to load)──► failed                            └── SIGTERM while starting

The HTTP layer asks :meth:`Service.unavailable` before it reads a request (a 503 while starting,
draining, stopped or failed) and runs a request's items with :meth:`Service.submit`, which tracks
it as in flight: :meth:`Service.drain` waits for those, and :meth:`Service.expire` cancels the ones
still running when the drain time ends (their handlers answer 503). Everything here runs on the
server's one event loop; the runtime's threads only wake it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.errors import EngineClosed

if TYPE_CHECKING:
    from tuner.runtime import Runtime, RuntimeStats
    from tuner.serve.codec import ItemSpec

__all__ = ["Counts", "Service", "Unavailable", "Unfinished"]

STARTING, READY, DRAINING, STOPPED, FAILED = "starting", "ready", "draining", "stopped", "failed"


class Unavailable(Exception):
    """The server takes no request now (starting, draining, stopped, failed): a 503 saying why."""


class Unfinished(Exception):
    """The drain time ended before this request's items did: a 503."""


@dataclass
class Counts:
    """Requests by how they were answered: the stop line's figures."""

    served: int = 0  # 200
    failed: int = 0  # 500: some item failed for good (or the engine did)
    rejected: int = 0  # 503 at the door: overloaded, starting, draining
    bad: int = 0  # 400, 413
    unfinished: int = 0  # 503: still running when the drain time ended (or at a forced stop)
    drained: int = 0  # in flight at SIGTERM and answered before the drain time ended


class Service:
    """One runtime served: started in the background (``/healthz`` answers meanwhile), then ready
    until a drain; requests in flight tracked; the counts of the stop line.

    ``say`` writes a line for a person (the ready line); ``on_failed`` is called once if the
    runtime cannot start (the server then stops, with that error's exit code).
    """

    on_failed: Callable[[BaseException], None] | None

    def __init__(
        self,
        runtime: Runtime,
        spec: ItemSpec,
        *,
        say: Callable[[str], None],
        on_failed: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.runtime = runtime
        self.spec = spec
        self.state = STARTING
        self.error: BaseException | None = None
        self.counts = Counts()
        self.items_in_flight = 0
        self.final_stats: RuntimeStats | None = None
        self.drain_took_s: float | None = None
        self.ready_after_s: float | None = None
        self._say = say
        self.on_failed = on_failed
        self._inflight: set[asyncio.Task[list[Any]]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self._expired: str | None = None  # why the requests in flight were cancelled
        self._at_drain = 0
        self._t0 = time.perf_counter()
        self._starter: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None

    # ---------------------------------------------------------------- start

    def begin(self) -> None:
        """Start the runtime in the background (before uvicorn serves: it must not wait)."""
        if self._starter is None:
            self._t0 = time.perf_counter()
            self._starter = asyncio.ensure_future(self._start())

    async def _start(self) -> None:
        try:
            await self.runtime.astart()
            warm = await self._warm_up()
        except Exception as e:
            if self.state in (STOPPED, DRAINING):
                return  # stopped while starting: the close says what happened
            self.state, self.error = FAILED, e
            if self.on_failed is not None:
                self.on_failed(e)
            return
        self.ready_after_s = time.perf_counter() - self._t0
        if self.state == STARTING:
            self.state = READY
            workers = fmt.plural(self.runtime.workers, "worker")
            self._say(f"tuner: ready in {fmt.seconds(self.ready_after_s)}: {workers} loaded, {warm}")

    async def _warm_up(self) -> str:
        """Run one zero item on each worker (a partition each), so a worker's first request does not
        pay its first call (lazy allocations, a JIT, caches); what happened, in words."""
        partition = self.spec.warm_partition()
        if partition is None:
            return "no warm-up (the profile records no item to make one from)"
        n = self.runtime.workers
        futures = self.runtime.engine.submit_many([partition] * n)
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in futures))
        failures = [f for r in results for _, f in r.failures()]
        if failures:
            return f"warm-up: {len(failures)} of {n} zero items failed ({failures[0]})"
        return f"warmed up ({fmt.plural(n, 'zero item')})"

    # ---------------------------------------------------------------- requests

    def unavailable(self) -> str | None:
        """Why no request is taken now (a 503's message), or None when ready."""
        if self.state == READY:
            return None
        if self.state == STARTING:
            return "starting: the model is loading (GET /readyz says when it is ready)"
        if self.state == FAILED:
            return f"the model failed to start: {self.error}"
        return f"{self.state}: this server is stopping; send to another replica"

    async def submit(self, items: Any) -> list[Any]:
        """Run a request's items, all or none (Overloaded at once past max_pending); each output or
        failure record. Unavailable when not ready; Unfinished when the drain time ended first."""
        reason = self.unavailable()
        if reason is not None:
            raise Unavailable(reason)
        task = asyncio.ensure_future(self.runtime.asubmit_all(items))
        n = len(items)
        self._inflight.add(task)
        self._idle.clear()
        self.items_in_flight += n
        try:
            return await task
        except asyncio.CancelledError:
            if self._expired is not None and task.cancelled():
                raise Unfinished(
                    f"the server stopped before this request finished ({self._expired})"
                ) from None
            raise
        except EngineClosed:
            raise Unavailable(f"{self.state}: this server is stopping; send to another replica") from None
        finally:
            self.items_in_flight -= n
            self._inflight.discard(task)
            if not self._inflight:
                self._idle.set()

    @property
    def requests_in_flight(self) -> int:
        """Requests whose items are running."""
        return len(self._inflight)

    # ---------------------------------------------------------------- stop

    def begin_drain(self) -> None:
        """Take no more requests (readyz and predict answer 503 from now on); those in flight go on."""
        if self.state in (STARTING, READY):
            self.state = DRAINING
            self._at_drain = len(self._inflight)

    async def drain(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for the requests in flight; then cancel what is left (503s)."""
        t0 = time.perf_counter()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError:
            self.expire("drain time over")
        self.drain_took_s = time.perf_counter() - t0
        self.counts.drained = max(0, self._at_drain - self.counts.unfinished)

    def expire(self, why: str) -> None:
        """Cancel every request still in flight: each handler answers 503 (Unfinished: ``why``)."""
        self._expired = why
        for task in list(self._inflight):
            if task.cancel():  # False: its outcome is in, its handler answers with it
                self.counts.unfinished += 1

    async def close(self, cancel: bool = False) -> None:
        """Close the runtime (once; later calls wait for the first): its workers stop, its threads
        end. ``cancel`` (or a drain that expired): fail what is queued, do not wait for it."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close(cancel or self._expired is not None))
        await asyncio.shield(self._closing)

    async def _close(self, cancel: bool) -> None:
        if self.state != FAILED:
            self.state = STOPPED
        try:
            self.final_stats = self.runtime.stats()
        except Exception:  # the engine never started, or broke: the stop line goes without
            self.final_stats = None
        await self.runtime.aclose(wait=not cancel, cancel=cancel)
        if self._starter is not None and not self._starter.done():
            await asyncio.gather(self._starter, return_exceptions=True)
