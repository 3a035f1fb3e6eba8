"""Open-loop load over HTTP: the step's requests sent to a running ``tuner serve`` (or any server
that speaks its ``POST /v1/predict``), for ``tuner bench --online --url`` and ``tuner verify``.

::

    sender thread (tuner.bench.online.sender) ── on its absolute deadlines ── HttpSink.send(i, items)
         │ the body encoded there (x-npy for array rows, JSON otherwise), then handed to the loop
         ▼
    client thread: one asyncio loop, one aiohttp session (keep-alive, up to CONNECTIONS sockets)
         POST /v1/predict ─► 200: every item ok · 503: refused · anything else: failed (by status)
         └─ done(i, t, ok, n) at the moment the whole response was read

The latency is counted as everywhere in the online search: from the request's *intended* send
time (the schedule) to its response, so a client that falls behind carries its delay in the
latency (no coordinated omission); the sender's own lag is recorded apart and a step whose
generator fell behind is not sustainable.

**Why aiohttp.** Measured here (2026-12-03, the 2-core dev VM, a Starlette echo endpoint on uvicorn
over loopback, 3,000 one-item JSON requests, 64 in flight, medians of 3 alternated runs):
aiohttp 3.14 sent 7.2k requests/s at 113 µs of client CPU per request; httpx 0.29 sent 310/s at
3.1 ms per request (with all 3,000 in flight at once httpx's pool timed out, aiohttp did 5.6k/s).
The client shares the cores with the server it measures, so its CPU per request matters as much
as its rate. Reproduce: ``python tests/benchmarks/http_clients.py``.
"""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tuner.bench.online.sender import Outcomes
from tuner.errors import BadInput, TunerError

__all__ = ["CONNECTIONS", "HttpSink", "ServerUnreachable", "encode_request", "predict_url", "server_address"]

#: sockets the client may keep open to the server (requests past it wait for one, on the loop)
CONNECTIONS = 256
#: a request not answered in this long is failed ("timeout"); the step's own drain bounds it too
REQUEST_TIMEOUT_S = 60.0


class ServerUnreachable(TunerError):
    """The server did not answer (refused, wrong address, not a tuner server)."""


def predict_url(url: str) -> str:
    """``URL`` as the predict endpoint: ``http://host:port`` → ``http://host:port/v1/predict``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInput(f"--url {url!r}: give the server's address, e.g. http://127.0.0.1:8000")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/predict"):
        path += "/v1/predict"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def server_address(url: str) -> str:
    """``host:port`` of ``url``, without credentials (what a profile may record)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _jsonable(x: Any) -> Any:
    tolist = getattr(x, "tolist", None)
    return tolist() if callable(tolist) else x


def encode_request(items: Sequence[Any]) -> tuple[bytes, str]:
    """(body, content type) of one request: the rows as one ``.npy`` array when every item is an
    array of one dtype and shape (float32 rows: the server's natural format), else JSON."""
    import numpy as np

    first = items[0] if len(items) else None
    if isinstance(first, np.ndarray) and all(
        isinstance(x, np.ndarray) and x.dtype == first.dtype and x.shape == first.shape for x in items
    ):
        buf = io.BytesIO()
        np.save(buf, np.stack(list(items)), allow_pickle=False)
        return buf.getvalue(), "application/x-npy"
    return json.dumps({"inputs": [_jsonable(x) for x in items]}).encode(), "application/json"


class HttpSink:
    """A :class:`~tuner.bench.online.sender.Sink` that POSTs each request to ``url`` (see the
    module docstring). Use as a context manager: the client's loop thread starts and stops with it.

    ``status``: responses by status code (``"timeout"`` and ``"connection"`` for none), for the
    verdict's "errors by status code"."""

    def __init__(
        self, url: str, *, connections: int = CONNECTIONS, timeout_s: float = REQUEST_TIMEOUT_S
    ) -> None:
        self.url = predict_url(url)
        self.connections = connections
        self.timeout_s = timeout_s
        self.status: Counter[str] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: Any = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- the client's loop ------------------------------------------------------------------------
    def __enter__(self) -> HttpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the client's loop thread and its session."""
        try:
            import aiohttp  # noqa: F401
        except ImportError:
            raise BadInput("load over HTTP needs aiohttp: pip install 'tuner[serve]'") from None
        self._thread = threading.Thread(target=self._run, name="tuner-http-client", daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        import aiohttp

        loop = asyncio.new_event_loop()
        self._loop = loop

        async def open_session() -> None:
            connector = aiohttp.TCPConnector(limit=self.connections, force_close=False)
            timeout = aiohttp.ClientTimeout(total=self.timeout_s)
            self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)

        loop.run_until_complete(open_session())
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._session.close())
            loop.close()

    def close(self) -> None:
        """Stop the loop (requests still in flight are dropped) and the thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)
        self._loop = self._thread = None

    def call(self, coro: Any, timeout_s: float = 30.0) -> Any:
        """Run ``coro`` on the client's loop and wait for its result (for probes, not for load)."""
        assert self._loop is not None, "start the sink first"
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return fut.result(timeout_s)

    # -- the load ---------------------------------------------------------------------------------
    def send(self, i: int, items: Sequence[Any], out: Outcomes) -> int:
        body, kind = encode_request(items)
        assert self._loop is not None, "start the sink first"
        self._loop.call_soon_threadsafe(self._spawn, i, body, kind, len(items), out)
        return len(items)

    def _spawn(self, i: int, body: bytes, kind: str, n: int, out: Outcomes) -> None:
        assert self._loop is not None
        self._loop.create_task(self._post(i, body, kind, n, out))

    async def _post(self, i: int, body: bytes, kind: str, n: int, out: Outcomes) -> None:
        import aiohttp

        try:
            async with self._session.post(self.url, data=body, headers={"content-type": kind}) as r:
                await r.read()
                status = r.status
        except asyncio.TimeoutError:
            self.status["timeout"] += 1
            out.done(i, time.perf_counter(), False, n)
            return
        except aiohttp.ClientError:
            self.status["connection"] += 1
            out.done(i, time.perf_counter(), False, n)
            return
        t = time.perf_counter()
        self.status[str(status)] += 1
        if status == 503:
            out.refuse(i)
        out.done(i, t, status == 200, n)

    # -- probes -------------------------------------------------------------------------------------
    def get_json(self, path: str) -> tuple[int, Any]:
        """``GET path`` on the server: (status, the JSON body or None)."""
        base = self.url.rsplit("/v1/predict", 1)[0]

        async def get() -> tuple[int, Any]:
            async with self._session.get(base + path) as r:
                try:
                    return r.status, await r.json(content_type=None)
                except ValueError:
                    return r.status, None

        try:
            return self.call(get())
        except Exception as e:
            raise ServerUnreachable(f"{base}{path}: no answer ({type(e).__name__}: {e})"[:300]) from None
