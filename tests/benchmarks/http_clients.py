"""Which asyncio HTTP client sends faster here: aiohttp against httpx, on a loopback Starlette endpoint.

The open-loop load generator over HTTP (``tuner.bench.online.http``) shares the cores with the
server it measures, so its rate and its CPU per request both matter. This script starts a Starlette
echo endpoint on uvicorn in a subprocess, then sends the same requests from one event loop with each
client, alternated (AB, BA, AB), ``--in-flight`` at a time, and prints the requests/s and the
client's CPU per request (medians), and the ratio against aiohttp (the named baseline).

    .venv/bin/python tests/benchmarks/http_clients.py              # 3,000 requests × 3 rounds
    .venv/bin/python tests/benchmarks/http_clients.py --smoke      # 200 requests, 1 round
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.request

SERVER = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def predict(request):
        body = await request.json()
        return JSONResponse({"outputs": body["inputs"]})

    app = Starlette(routes=[Route("/v1/predict", predict, methods=["POST"])])
    """
)
BODY = json.dumps({"inputs": [1.0]}).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _limited(n: int, in_flight: int, one) -> None:  # type: ignore[no-untyped-def]
    sem = asyncio.Semaphore(in_flight)

    async def go() -> None:
        async with sem:
            await one()

    await asyncio.gather(*(go() for _ in range(n)))


async def with_aiohttp(url: str, n: int, in_flight: int) -> tuple[float, float]:
    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=in_flight)) as s:

        async def one() -> None:
            async with s.post(url, data=BODY, headers={"content-type": "application/json"}) as r:
                await r.read()

        t, c = time.perf_counter(), time.process_time()
        await _limited(n, in_flight, one)
        return n / (time.perf_counter() - t), (time.process_time() - c) / n * 1e6


async def with_httpx(url: str, n: int, in_flight: int) -> tuple[float, float]:
    import httpx

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=in_flight), timeout=None) as s:

        async def one() -> None:
            r = await s.post(url, content=BODY, headers={"content-type": "application/json"})
            r.read()

        t, c = time.perf_counter(), time.process_time()
        await _limited(n, in_flight, one)
        return n / (time.perf_counter() - t), (time.process_time() - c) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--in-flight", type=int, default=64)
    ap.add_argument("--smoke", action="store_true", help="200 requests, 1 round")
    args = ap.parse_args()
    if args.smoke:
        args.requests, args.rounds = 200, 1
    clients = {"aiohttp": with_aiohttp}
    try:
        import httpx  # noqa: F401

        clients["httpx"] = with_httpx
    except ImportError:
        print("httpx is not installed: aiohttp alone")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER + f"\nimport uvicorn\nuvicorn.run(app, port={port}, log_level='warning')"]
    )
    url = f"http://127.0.0.1:{port}/v1/predict"
    try:
        deadline = time.monotonic() + 30
        while True:  # polling the port until the server answers, not guessing its start time
            try:
                urllib.request.urlopen(urllib.request.Request(url, data=BODY, method="POST"), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the echo server did not start") from None
                time.sleep(0.05)
        got: dict[str, list[tuple[float, float]]] = {name: [] for name in clients}
        names = list(clients)
        for k in range(args.rounds):
            for name in names if k % 2 == 0 else names[::-1]:
                got[name].append(asyncio.run(clients[name](url, args.requests, args.in_flight)))
    finally:
        server.terminate()
        server.wait(10)
    base = statistics.median(r for r, _ in got["aiohttp"])
    print(f"{args.requests} one-item JSON requests, {args.in_flight} in flight, {args.rounds} rounds (medians)")
    for name, runs in got.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(f"  {name:8} {rate:8.0f} requests/s  {cpu:8.0f} µs client CPU/request  {rate / base:5.2f}× aiohttp")


if __name__ == "__main__":
    main()
