"""The ASGI app: ``/v1/predict``, ``/healthz``, ``/readyz``, ``/v1/profile`` in front of one :class:`Service`.

Starlette, because it is the small, well-kept core under FastAPI: routing, requests and responses,
nothing else — the server needs no validation framework (the codec checks items against
the profile's signature) and no dependency injection. No ASGI lifespan: ``tuner.serve.server``
starts the runtime in the background before uvicorn serves (the server listens, and ``/healthz``
answers, while the model loads) and closes it after uvicorn returns, on every way out — a forced
stop cancels a lifespan mid-wait, and Starlette then prints the CancelledError's traceback.

Nothing here blocks the loop: a request past ``max_pending`` is refused at once (503), a large
body is parsed and its answer written in a worker thread, and the items wait on the runtime's
futures, not in threads. An unexpected error is a 500 ``{"error": ...}`` — never a traceback.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from tuner.errors import Overloaded, TunerError
from tuner.serve import codec
from tuner.serve.codec import Answer, BadRequest
from tuner.serve.metrics import exposition
from tuner.serve.service import Service, Unavailable, Unfinished

__all__ = ["Limits", "create_app"]

#: bodies larger than this are parsed, and their answers written, in a worker thread
OFF_LOOP_BYTES = 64 * 1024
#: a body over the limit is read and dropped up to this many times the limit before the 413
DISCARD_FACTOR = 4


@dataclass(frozen=True)
class Limits:
    """What the server takes: body bytes, items per request (``max_pending``), the Retry-After of
    an overload 503 in seconds, and whether items are checked against the profile's."""

    max_body: int
    max_items: int
    retry_after_s: int = 1
    check_input: bool = True


def create_app(service: Service, limits: Limits, profile_doc: dict[str, Any]) -> Starlette:
    """The app serving ``service``; ``profile_doc`` is what ``GET /v1/profile`` answers."""
    ends = _Endpoints(service, limits, json.dumps(profile_doc, default=str).encode())

    return Starlette(
        routes=[
            Route("/v1/predict", ends.predict, methods=["POST"]),
            Route("/healthz", ends.healthz, methods=["GET"]),
            Route("/readyz", ends.readyz, methods=["GET"]),
            Route("/v1/profile", ends.profile, methods=["GET"]),
            Route("/metrics", ends.metrics, methods=["GET"]),
        ],
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )


class _Endpoints:
    def __init__(self, service: Service, limits: Limits, profile_doc: bytes) -> None:
        self.service = service
        self.limits = limits
        self.profile_doc = profile_doc
        self.exposition = exposition(service)

    async def healthz(self, request: Request) -> Response:
        """The process is alive (200 while the model loads and while it drains, too)."""
        s = self.service
        doc = {
            "status": "alive",
            "state": s.state,
            "requests_in_flight": s.requests_in_flight,
            "items_in_flight": s.items_in_flight,
        }
        return _respond(Answer(200, json.dumps(doc).encode(), codec.MEDIA_JSON))

    async def readyz(self, request: Request) -> Response:
        """200 once the workers have loaded the model and warmed up; 503 while starting or draining."""
        reason = self.service.unavailable()
        if reason is None:
            return _respond(Answer(200, b'{"ready":true,"state":"ready"}', codec.MEDIA_JSON))
        doc = {"ready": False, "state": self.service.state, "reason": reason}
        return _respond(Answer(503, json.dumps(doc).encode(), codec.MEDIA_JSON), retry_after_s=1)

    async def profile(self, request: Request) -> Response:
        """The profile's recommended section, what runs, and where it came from."""
        return _respond(Answer(200, self.profile_doc, codec.MEDIA_JSON))

    async def metrics(self, request: Request) -> Response:
        """The runtime's and the server's figures in Prometheus' text format (:mod:`tuner.serve.metrics`)."""
        if self.exposition is None:
            return _respond(codec.error(501, "metrics need prometheus_client: pip install 'tuner[metrics]'"))
        return Response(self.exposition.text(), media_type=self.exposition.media)

    async def predict(self, request: Request) -> Response:
        """Run a request's items; see :mod:`tuner.serve` for the wire format."""
        answer, outcome, retry_after_s = await self._predict(request)
        counts = self.service.counts
        if outcome == "served":
            counts.served += 1
        elif outcome == "failed":
            counts.failed += 1
        elif outcome == "rejected":
            counts.rejected += 1
        elif outcome == "bad":
            counts.bad += 1
        # "unfinished": counted when the drain cancelled it
        closing = self.service.state in ("draining", "stopped") or answer.status == 413
        return _respond(answer, retry_after_s=retry_after_s, close=closing)

    async def _predict(self, request: Request) -> tuple[Answer, str, int | None]:
        """(answer, how it counts, Retry-After)."""
        service, limits = self.service, self.limits
        reason = service.unavailable()
        if reason is not None:
            return codec.error(503, reason), "rejected", 1
        try:
            media = codec.media_of(request.headers.get("content-type"))
            body = await self._body(request)
            parsed = await _off_loop(len(body), codec.parse, body, media, service.spec, limits.check_input)
            if len(parsed) > limits.max_items:
                raise BadRequest(
                    f"{len(parsed)} items in one request is more than max_pending {limits.max_items} "
                    "(the most items in flight): send fewer at a time",
                    413,
                )
        except BadRequest as e:
            return codec.error(e.status, str(e)), "bad", None
        except ClientDisconnect:
            return codec.error(400, "the client went away before its body arrived"), "bad", None
        try:
            outcomes = await service.submit(parsed.items)
        except Overloaded as e:
            return codec.error(503, str(e)), "rejected", limits.retry_after_s
        except Unavailable as e:
            return codec.error(503, str(e)), "rejected", 1
        except Unfinished as e:
            return codec.error(503, str(e)), "unfinished", 1
        except TunerError as e:  # the engine failed (a bug of tuner's, logged by the engine)
            return codec.error(500, f"{type(e).__name__}: {e}"), "failed", None
        answer = await _off_loop(len(body), codec.encode, parsed.form, outcomes)
        return answer, "served" if answer.status == 200 else "failed", None

    async def _body(self, request: Request) -> bytes:
        """The body, read up to the limit; BadRequest 413 past it. A body too large is still read
        (and dropped) up to DISCARD_FACTOR times the limit, so that a client that sends it all
        before reading the answer gets the 413 rather than a reset connection; past that, the
        answer goes at once and the connection closes."""
        limit = self.limits.max_body
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit * DISCARD_FACTOR:
            raise BadRequest(_too_large(int(declared), limit), 413)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                chunks.clear()  # dropped: read on only to answer
                if size > limit * DISCARD_FACTOR:
                    break
            else:
                chunks.append(chunk)
        if size > limit:
            raise BadRequest(_too_large(size, limit, more=size > limit * DISCARD_FACTOR), 413)
        return b"".join(chunks)


def _too_large(size: int, limit: int, more: bool = False) -> str:
    return (
        f"the body is {'more than ' if more else ''}{size / 1e6:.2f} MB, more than the {limit / 1e6:g} MB "
        "this server takes (--max-body-mb): send fewer items at a time"
    )


async def _off_loop(size: int, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, in a worker thread when the body is large (parsing 16 MB of JSON takes the
    loop's thread for a while: other requests, /healthz among them, would wait)."""
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def _respond(answer: Answer, retry_after_s: int | None = None, close: bool = False) -> Response:
    headers = {}
    if answer.status == 503:
        headers["Retry-After"] = str(max(1, retry_after_s or 1))
    if close:  # stopping, or a body left unread: the client reconnects (elsewhere)
        headers["Connection"] = "close"
    return Response(answer.body, status_code=answer.status, media_type=answer.media, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    answer = codec.error(exc.status_code, str(exc.detail))
    response = _respond(answer)
    response.headers.update(exc.headers or {})
    return response


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the server's log (uvicorn logs it), never to the client.
    return _respond(codec.error(500, f"internal error ({type(exc).__name__}); see the server's log"))
