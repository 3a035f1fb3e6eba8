"""What HTTP costs: the max rate within the objective in process (``Runtime.submit``) against through
``tuner serve`` over loopback HTTP, side by side in one run on the same profile (issue 19; target:
>= 0.9x for ``builtin:sleep`` with requests of 64 items).

Run: ``.venv/bin/python tests/benchmarks/serve.py [--cases sleep64,sleep1,mlp64,mlp1] [--repeats 2]
[--step-s 1] [--budget-s 20]``
Smoke: ``.venv/bin/python tests/benchmarks/serve.py --smoke`` — sleep64 only, one repeat, 0.3 s steps,
5 s budgets: checks the script runs; its figures mean nothing.

For each case (a profile from ``profiles/`` and a request size), ``--repeats`` times, alternating
which arm goes first:

* **in process** — ``Runtime.from_profile(profile, overload="reject")`` (the server's ``max_pending``,
  refusing past it as the server answers 503), the open-loop rate search of ``tuner bench --online``
  (:func:`tuner.bench.online.search.search_max_rate` over :func:`tuner.bench.online.step.run_step`,
  the same warm-up, steps, objective and ceiling);
* **over HTTP** — ``python -m tuner serve PROFILE --port N`` in a subprocess (one per profile, up the
  whole run), searched with :func:`tuner.bench.online.remote.search_over_http` (aiohttp, the
  load generator of ``tuner bench --online --url``), which starts at half the in-process figure.

Printed per case: both max rates (medians), the ratio HTTP / in process, and the HTTP cost from the
two rates — ``1/R_http − 1/R_in`` per request (the capacity one request takes beyond the runtime's
own), over the request's items per item. Then where the time goes, from one fixed-rate step per
arm at 70% of the lower max rate (the same rate on both arms), CPU time per request read with
psutil: the serving side (in process: this process, its sender included; over HTTP: the server's
process tree) split into user and system time (system: mostly the loopback transport, the
sockets' syscalls); the server's parsing and answer encoding (``tuner.serve.codec.parse`` and
``encode`` timed here on the same bodies); the rest of the server's user time over the in-process
figure (the event loop, uvicorn's HTTP parsing, Starlette, the asyncio hand-over to the runtime).
The load generator (this process during the HTTP search) shares the 2 cores: its cores are
printed, and its CPU per request in the fixed-rate step.

The host may be shared with other work while this runs: each arm's outside load (median over its
steps, tuner's noise guard's figure) is printed beside it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
#: case → (profile in profiles/, items per request)
CASES = {"sleep64": ("sleep", 64), "sleep1": ("sleep", 1), "mlp64": ("mlp", 64), "mlp1": ("mlp", 1)}
#: the objective when the profile has no online section (mlp's has none)
DEFAULT_P99_MS = 20.0
FIXED_SHARE = 0.7  # the fixed-rate step: this share of the lower max rate
WARMUP_S = 0.5
START_SHARE = 0.25  # of the closed-loop throughput: where the in-process search starts (as the sweep)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """``tuner serve PROFILE`` in a subprocess of its own session."""

    profile: Path
    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    log_path: str = ""  # the server's stderr: appended to by it, read here through another handle
    pids: set[int] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60.0) -> None:
        self.port = free_port()
        fd, self.log_path = tempfile.mkstemp(prefix="tuner-serve-", suffix=".log")
        os.close(fd)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tuner", "serve", str(self.profile), "--port", str(self.port)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:  # poll /readyz: the workers are warm when it answers 200
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"tuner serve {self.profile.name} did not become ready:\n{self.stderr()}")
            time.sleep(0.1)
        self.pids = {p.pid for p in self.tree()}

    def tree(self) -> list[Any]:
        import psutil

        assert self.proc is not None
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the server's process tree."""
        user = system = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
            except Exception:
                continue
            user += t.user + t.children_user
            system += t.system + t.children_system
        return user, system

    def stderr(self, offset: int = 0) -> str:
        """The server's stderr from byte ``offset``."""
        if not self.log_path:
            return ""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def stop(self) -> int:
        """SIGTERM (a drain), then the session killed if it outstays 30 s; processes left behind."""

        if self.proc is None:
            return 0
        self.pids |= {p.pid for p in self.tree()}
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        time.sleep(0.2)
        left = [p for p in self.pids if _alive(p)]
        for p in left:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.log_path:
            os.unlink(self.log_path)
            self.log_path = ""
        return len(left)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class Arm:
    """One search: its max rate (requests/s), the load generator's cores, the median outside load."""

    rate: float
    steps: int
    outside: float | None
    client_cores: float | None = None
    stop_reason: str = ""


def _outside(steps: list[Any]) -> float | None:
    got = [s.outside for s in steps if s.outside is not None]
    return statistics.median(got) if got else None


def search_in_process(path: Path, items: Any, request: Any, start: float, ceiling: float | None) -> Arm:
    from tuner.bench.online.schedule import make_schedule
    from tuner.bench.online.search import SearchSettings, search_max_rate
    from tuner.bench.online.step import run_step
    from tuner.hostload import HostSampler
    from tuner.runtime import Runtime

    settings = SearchSettings()
    sampler = HostSampler()
    position = 0
    n = 0
    # The server's max_pending and its answer past it (503): the runtime refuses, it does not block.
    with Runtime.from_profile(path, overload="reject") as rt:
        warm = make_schedule(request.arrivals, start, WARMUP_S, size=request.request_size, seed=0)
        warmed = run_step(rt, warm, items, objective_ms=request.objective_ms, ci=False)
        position = warm.items
        if warmed.generator_behind and warmed.offered > 0:
            start = max(settings.min_rate, 0.7 * warmed.offered)  # as the sweep: where the sender keeps up

        def step(rate: float) -> Any:
            nonlocal position, n
            schedule = make_schedule(
                request.arrivals, rate, request.step_s, size=request.request_size, seed=n
            )
            r = run_step(
                rt, schedule, items, objective_ms=request.objective_ms, start_item=position, sampler=sampler
            )
            position += schedule.items
            n += 1
            return r

        per = request.request_size.mean
        found = search_max_rate(
            step,
            start,
            settings,
            deadline=time.perf_counter() + request.budget_s,
            ceiling=ceiling / per if ceiling else None,
        )
    return Arm(found.max_rate, len(found.steps), _outside(found.steps), stop_reason=found.stop_reason)


def search_http(server: Server, items: Any, request: Any, start: float, ceiling: float | None) -> Arm:
    from tuner.bench.online.remote import search_over_http

    got = search_over_http(server.url, items, request, start_rate=start, ceiling=ceiling)
    f = got.found
    return Arm(f.max_rate, len(f.steps), _outside(f.steps), got.client_cores, f.stop_reason)


@dataclass
class Cpu:
    """CPU per request (µs) in one fixed-rate step."""

    requests: int
    user_us: float
    system_us: float
    client_us: float = 0.0
    outside: float | None = None

    @property
    def total_us(self) -> float:
        return self.user_us + self.system_us


def _per(requests: int, seconds: float) -> float:
    return seconds / max(1, requests) * 1e6


def fixed_in_process(path: Path, items: Any, request: Any, rate: float) -> Cpu:
    import psutil

    from tuner.bench.online.schedule import make_schedule
    from tuner.bench.online.step import run_step
    from tuner.hostload import HostSampler
    from tuner.runtime import Runtime

    me = psutil.Process()
    with Runtime.from_profile(path, overload="reject") as rt:
        run_step(rt, make_schedule(request.arrivals, rate, WARMUP_S, size=request.request_size), items,
                 objective_ms=request.objective_ms, ci=False)  # fmt: skip
        schedule = make_schedule(
            request.arrivals, rate, request.step_s * 3, size=request.request_size, seed=7
        )
        a = me.cpu_times()
        r = run_step(rt, schedule, items, objective_ms=request.objective_ms, sampler=HostSampler())
        b = me.cpu_times()
    return Cpu(r.completed, _per(r.completed, b.user - a.user), _per(r.completed, b.system - a.system),
               outside=r.outside)  # fmt: skip


def fixed_http(server: Server, items: Any, request: Any, rate: float) -> Cpu:
    from tuner.bench.online.http import HttpSink
    from tuner.bench.online.schedule import make_schedule
    from tuner.bench.online.step import run_step
    from tuner.hostload import HostSampler

    assert server.proc is not None
    with HttpSink(server.url) as sink:
        run_step(sink, make_schedule(request.arrivals, rate, WARMUP_S, size=request.request_size), items,
                 objective_ms=request.objective_ms, ci=False)  # fmt: skip
        schedule = make_schedule(
            request.arrivals, rate, request.step_s * 3, size=request.request_size, seed=7
        )
        sampler = HostSampler(root=server.proc.pid)
        sampler.scan()
        a, c0 = server.cpu(), time.process_time()
        r = run_step(sink, schedule, items, objective_ms=request.objective_ms, sampler=sampler)
        b, c1 = server.cpu(), time.process_time()
    n = r.completed
    return Cpu(n, _per(n, b[0] - a[0]), _per(n, b[1] - a[1]), _per(n, c1 - c0), r.outside)


def codec_us(profile: Any, items: Any, size: int, outputs: list[Any]) -> tuple[float, float]:
    """(parse, encode) µs per request of ``size`` items, as the server does them."""
    from tuner.bench.online.http import encode_request
    from tuner.serve import codec
    from tuner.serve.codec import ItemSpec

    spec = ItemSpec.of_profile(profile)
    body, kind = encode_request(items[:size])
    media = codec.media_of(kind)
    parsed = codec.parse(body, media, spec)
    outs = (outputs * (size // max(1, len(outputs)) + 1))[:size]
    n = max(200, 20000 // size)
    t = time.perf_counter()
    for _ in range(n):
        codec.parse(body, media, spec)
    t_parse = (time.perf_counter() - t) / n * 1e6
    t = time.perf_counter()
    for _ in range(n):
        codec.encode(parsed.form, outs)
    return t_parse, (time.perf_counter() - t) / n * 1e6


def run_case(name: str, server: Server, args: argparse.Namespace) -> dict[str, Any]:
    from tuner.bench.online.schedule import RequestSize
    from tuner.bench.request import OnlineRequest
    from tuner.models import input_generator
    from tuner.profile import load_profile
    from tuner.runtime import Runtime

    prof_name, size = CASES[name]
    path = server.profile
    profile = load_profile(path)
    objective = profile.online.objective_p99_ms if profile.online is not None else args.p99_ms
    gen = input_generator(profile.model.spec)
    assert gen is not None
    items = list(gen(8192, 1))  # run_step takes a sequence (`if not items`), not an array
    request = OnlineRequest(
        objective_ms=objective,
        request_size=RequestSize(size, size),
        step_s=args.step_s,
        budget_s=args.budget_s,
    )
    ev = profile.evidence
    ceiling = ev.throughput_ci[1] if ev.throughput_ci else ev.throughput
    start = START_SHARE * ev.throughput / size
    inproc: list[Arm] = []
    http: list[Arm] = []
    for k in range(args.repeats):
        for which in ("in", "http") if k % 2 == 0 else ("http", "in"):
            if which == "in":
                inproc.append(search_in_process(path, items, request, start, ceiling))
            else:
                s = 0.5 * statistics.median(a.rate for a in inproc) if inproc else start
                http.append(search_http(server, items, request, max(1.0, s), ceiling))
    r_in = statistics.median(a.rate for a in inproc)
    r_http = statistics.median(a.rate for a in http)
    fixed = FIXED_SHARE * min(r_in, r_http) if min(r_in, r_http) > 0 else None
    cpu_in = fixed_in_process(path, items, request, fixed) if fixed else None
    cpu_http = fixed_http(server, items, request, fixed) if fixed else None
    with Runtime.from_profile(path) as rt:
        outputs = list(rt.map(items[: min(size, 64)]))
    parse_us, encode_us = codec_us(profile, items, size, outputs)
    return {
        "name": name, "profile": prof_name, "size": size, "objective": objective,
        "in": inproc, "http": http, "r_in": r_in, "r_http": r_http, "fixed": fixed,
        "cpu_in": cpu_in, "cpu_http": cpu_http, "parse_us": parse_us, "encode_us": encode_us,
    }  # fmt: skip


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def report(row: dict[str, Any], repeats: int) -> None:
    size, r_in, r_http = row["size"], row["r_in"], row["r_http"]
    ratio = r_http / r_in if r_in > 0 else 0.0
    label = f"{row['profile']} ×{size}"
    target = ""
    if row["name"] == "sleep64":
        target = f" (target ≥ 0.9×: {'ok' if ratio >= 0.9 else 'MISSED'})"
    print(
        f"{label:<9} in process {r_in:>8,.0f} req/s ({r_in * size:>9,.0f} items/s)   over HTTP {r_http:>8,.0f} req/s "
        f"({r_http * size:>9,.0f} items/s)   HTTP/in-process {ratio:.2f}×{target}"
    )
    print(
        f"          p99 ≤ {row['objective']:g} ms, medians of {repeats}: in process {[round(a.rate) for a in row['in']]} "
        f"over HTTP {[round(a.rate) for a in row['http']]}; outside load in process "
        f"{_pct(statistics.median([a.outside for a in row['in'] if a.outside is not None] or [0]))}, "
        f"over HTTP {_pct(statistics.median([a.outside for a in row['http'] if a.outside is not None] or [0]))}"
    )
    cores = [a.client_cores for a in row["http"] if a.client_cores is not None]
    if r_in > 0 and r_http > 0:
        per_req = (1 / r_http - 1 / r_in) * 1e6
        print(
            f"          HTTP cost from the max rates: {per_req:,.0f} µs/request, {per_req / size:,.1f} µs/item "
            f"(of the host's capacity); load generator {statistics.median(cores):.2f} cores while searching"
        )
    ci, ch = row["cpu_in"], row["cpu_http"]
    if ci is not None and ch is not None:
        parse, enc = row["parse_us"], row["encode_us"]
        rest = ch.user_us - ci.user_us - parse - enc
        print(
            f"          at {row['fixed']:,.0f} req/s, CPU per request: in process {ci.total_us:,.0f} µs "
            f"(user {ci.user_us:,.0f}, system {ci.system_us:,.0f}; sender included) · server {ch.total_us:,.0f} µs "
            f"(user {ch.user_us:,.0f}, system {ch.system_us:,.0f}) · load generator {ch.client_us:,.0f} µs"
        )
        print(
            f"          where the server's extra {ch.total_us - ci.total_us:,.0f} µs/request goes: parse "
            f"{parse:,.0f} µs + encode {enc:,.0f} µs (timed apart) · loop, uvicorn, Starlette, hand-over "
            f"{rest:,.0f} µs (the rest of user time) · kernel/transport {ch.system_us - ci.system_us:,.0f} µs "
            f"(system time over in process); outside load {_pct(ci.outside)} / {_pct(ch.outside)}"
        )
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help=f"of {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--step-s", type=float, default=1.0, help="each search step's length")
    parser.add_argument("--budget-s", type=float, default=20.0, help="each search's time budget")
    parser.add_argument(
        "--p99-ms", type=float, default=DEFAULT_P99_MS, help="objective for a profile without one"
    )
    parser.add_argument("--smoke", action="store_true", help="sleep64, one short round: does it run?")
    args = parser.parse_args(argv)
    if args.smoke:
        args.cases, args.repeats, args.step_s, args.budget_s = "sleep64", 1, 0.3, 5.0
        print("smoke run: the figures below show that each part ran, not what HTTP costs")
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    bad = [c for c in names if c not in CASES]
    if bad:
        parser.error(f"unknown cases {bad}; known: {', '.join(CASES)}")
    print(
        f"host load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} (2 shared cores)"
    )
    left = 0
    for prof in dict.fromkeys(CASES[c][0] for c in names):
        path = REPO / "profiles" / f"{prof}.yaml"
        server = Server(path)
        try:
            server.start()
            for name in (c for c in names if CASES[c][0] == prof):
                report(run_case(name, server, args), args.repeats)
        finally:
            left += server.stop()
    print(f"processes left behind: {left}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
