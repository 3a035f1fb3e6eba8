"""A real ``tuner serve`` under load: backpressure (503 + Retry-After at once), the model loading while
/healthz answers, the stop on SIGTERM (drain, drain time over, at once), a killed worker — and
nothing left behind after any of them."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from tuner.hardware import Host

from .helpers import Reply, Server, model_spec, write_profile


def nap_profile(tmp_path: Path, host: Host, name: str = "nap", **recommended: Any) -> Path:
    """The ``nap`` model (each item a number of seconds to sleep): float64 items, one per partition."""
    rec: dict[str, Any] = {"partition_size": 1, "max_batch_delay_ms": 0}
    rec.update(recommended)
    return write_profile(tmp_path / f"{name}.yaml", host, spec=model_spec(name), item="float64", **rec)


def napping_worker(server: Server, timeout_s: float = 10.0) -> psutil.Process:
    """A worker caught inside a nap (its main thread asleep in the kernel's timer), so that killing
    it kills a partition in progress, not a worker between two partitions (whose queued partitions
    go back without an attempt counted). Where the kernel does not show where a process sleeps, the
    first worker."""
    deadline = time.monotonic() + timeout_s
    while True:
        workers = server.workers()
        for w in workers:
            try:
                wchan = Path(f"/proc/{w.pid}/wchan").read_text()
            except OSError:
                return workers[0]
            if wchan in ("", "0"):
                return workers[0]
            if "nanosleep" in wchan:
                return w
        assert time.monotonic() < deadline, "no worker was seen inside a nap"
        time.sleep(0.005)  # polling /proc: there is nothing to wait on


class Clients:
    """``n`` threads, each sending ``make(i)`` in a loop until told to stop; every reply (or the error
    in its place) is kept with the time it came back."""

    def __init__(self, server: Server, n: int, doc: Callable[[int], Any], rounds: int | None = None) -> None:
        self.server = server
        self.stopping = threading.Event()
        self.replies: list[tuple[float, Reply | BaseException]] = []
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._loop, args=(doc, i, rounds), daemon=True) for i in range(n)
        ]
        for t in self._threads:
            t.start()

    def _loop(self, doc: Callable[[int], Any], i: int, rounds: int | None) -> None:
        done = 0
        while not self.stopping.is_set() and (rounds is None or done < rounds):
            try:
                got: Reply | BaseException = self.server.post_json(doc(i))
            except OSError as e:
                got = e
            with self._lock:
                self.replies.append((time.monotonic(), got))
            done += 1

    def join(self, timeout_s: float = 30.0) -> list[Reply | BaseException]:
        for t in self._threads:
            t.join(timeout_s)
            assert not t.is_alive(), "a client is still waiting for its reply"
        return [r for _, r in self.replies]


@pytest.mark.timeout(60)
def test_past_max_pending_it_answers_503_with_retry_after_at_once(tmp_path: Path, this_host: Host) -> None:
    # The profile says "block" for library callers: the server refuses at once all the same.
    profile = nap_profile(tmp_path, this_host, max_pending=4, overload="block")
    with Server(profile) as server:
        server.wait_ready()
        clients = Clients(server, 4, lambda i: {"input": 1.5}, rounds=1)
        server.wait_health(lambda h: h["items_in_flight"] == 4, "4 items in flight")
        t0 = time.monotonic()
        refused = server.post_json({"inputs": [0.0, 0.0]})
        refused_s = time.monotonic() - t0
        t0 = time.monotonic()
        health = server.get("/healthz")
        health_s = time.monotonic() - t0
        assert refused.status == 503 and refused.headers["retry-after"] == "1", refused
        assert refused.json()["error"] == (
            "overloaded: 4 items in flight (max_pending 4); retry later, or raise max_pending"
        )
        # "at once": the items in flight take 1.5 s each, two at a time
        assert refused_s < 1.0 and health_s < 1.0, (refused_s, health_s)
        assert health.status == 200 and health.json()["requests_in_flight"] == 4
        replies = clients.join()
        assert [r.status for r in replies if isinstance(r, Reply)] == [200] * 4, replies
        assert server.post_json({"inputs": [0.0, 0.0]}).status == 200, "room again"
        assert server.stop() == 0
    assert "5 requests served · 0 failed · 1 rejected · 0 bad" in server.wait_line("^tuner: stopped", 1)
    server.assert_nothing_left()


@pytest.mark.timeout(60)
def test_healthz_answers_while_the_model_loads_and_readyz_once_it_is_ready(
    tmp_path: Path, this_host: Host
) -> None:
    profile = nap_profile(tmp_path, this_host, name="slow_start", workers=1)
    with Server(profile) as server:
        t0 = time.monotonic()
        health = server.get("/healthz")
        assert health.status == 200 and health.json()["state"] == "starting", health
        ready = server.get("/readyz")
        assert (
            ready.status == 503
            and ready.headers["retry-after"] == "1"
            and ready.json()["state"] == "starting"
        )
        early = server.post_json({"input": 0.0})
        assert early.status == 503 and early.json()["error"].startswith("starting: the model is loading"), (
            early
        )
        assert time.monotonic() - t0 < 1.5, "answered while the model loads (2 s)"
        server.wait_ready()
        assert server.wait_line(r"^tuner: ready in ", 1).endswith("1 worker loaded, warmed up (1 zero item)")
        assert server.post_json({"input": 0.0}).json() == {"output": 0.0}
        assert server.stop() == 0
    server.assert_nothing_left()


@pytest.mark.timeout(60)
def test_sigterm_while_the_model_loads_stops_cleanly(tmp_path: Path, this_host: Host) -> None:
    profile = nap_profile(tmp_path, this_host, name="slow_start", workers=1, backend="process")
    with Server(profile) as server:
        server.wait_health(lambda h: h["state"] == "starting", "starting")
        assert server.stop() == 0
    assert server.wait_line("^tuner: stopped", 1).endswith("nothing in flight at SIGTERM")
    assert not any(line.startswith("tuner: ready") for line in server.lines)
    server.assert_nothing_left()


@pytest.mark.timeout(60)
def test_sigterm_under_load_drains_every_request_in_flight_and_exits_0(
    tmp_path: Path, this_host: Host
) -> None:
    profile = nap_profile(tmp_path, this_host, backend="process", workers=2)
    with Server(profile, "--drain-s", "10") as server:
        server.wait_ready()
        # One request per client, all at the server before SIGTERM: a client still looping could
        # send its next request just after the signal and rightly get a 503 (seen in a fresh clone).
        clients = Clients(server, 6, lambda i: {"inputs": [0.6, 0.1 * (i % 3)]}, rounds=1)
        server.wait_health(lambda h: h["requests_in_flight"] == 6, "6 requests in flight")
        server.note_processes()
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        ready = server.get("/readyz")
        late = server.post_json({"input": 0.0})
        assert ready.status == 503 and ready.json()["state"] == "draining", ready
        assert late.status == 503 and late.headers["retry-after"] == "1", late
        assert late.headers["connection"] == "close" and late.json()["error"].startswith("draining: ")
        replies = clients.join()
        code = server.wait()
        took = time.monotonic() - t0
    assert code == 0, server.lines
    assert took < 10, f"exited {took:.1f} s after SIGTERM (drain time 10 s)"
    for i, r in enumerate(replies):
        assert isinstance(r, Reply) and r.status == 200, (i, r)
    assert len(replies) == 6
    stop = server.wait_line("^tuner: stopped on SIGTERM", 1)
    assert " · 1 rejected · 0 bad" in stop and " in flight at SIGTERM drained in " in stop, stop
    server.assert_nothing_left()


@pytest.mark.timeout(60)
def test_requests_unfinished_when_the_drain_time_ends_get_503_and_exit_1(
    tmp_path: Path, this_host: Host
) -> None:
    profile = nap_profile(tmp_path, this_host, backend="process", workers=2)
    with Server(profile, "--drain-s", "0.5") as server:
        server.wait_ready()
        clients = Clients(server, 2, lambda i: {"input": 20.0}, rounds=1)
        server.wait_health(lambda h: h["requests_in_flight"] == 2, "2 requests in flight")
        t0 = time.monotonic()
        code = server.stop(signal.SIGTERM)
        took = time.monotonic() - t0
        replies = clients.join()
    assert code == 1, server.lines
    assert took < 10, f"exited {took:.1f} s after SIGTERM (drain 0.5 s; the items take 20 s)"
    for r in replies:
        assert isinstance(r, Reply) and r.status == 503 and r.headers["retry-after"] == "1", r
        assert r.json()["error"] == "the server stopped before this request finished (drain time over)"
    stop = server.wait_line("^tuner: stopped on SIGTERM", 1)
    assert stop.endswith("0 drained, 2 unfinished when the drain time (0.5 s) ended (answered 503)"), stop
    server.assert_nothing_left()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signals", [("SIGTERM", "SIGTERM"), ("SIGINT",)], ids=["second-sigterm", "ctrl-c"])
def test_a_second_sigterm_or_ctrl_c_ends_at_once_with_130(
    tmp_path: Path, this_host: Host, signals: tuple[str, ...]
) -> None:
    profile = nap_profile(tmp_path, this_host, backend="process", workers=1)
    with Server(profile, "--drain-s", "60") as server:
        server.wait_ready()
        clients = Clients(server, 1, lambda i: {"input": 20.0}, rounds=1)
        server.wait_health(lambda h: h["requests_in_flight"] == 1, "a request in flight")
        server.note_processes()
        t0 = time.monotonic()
        for name in signals:
            server.proc.send_signal(getattr(signal, name))
            if len(signals) > 1:
                server.wait_health(lambda h: h["state"] == "draining", "draining")
        code = server.wait()
        took = time.monotonic() - t0
        replies = clients.join()
    assert code == 130, server.lines
    assert took < 10, f"exited {took:.1f} s after the signal (the item takes 20 s)"
    stop = server.wait_line(f"^tuner: stopped at once on {signals[-1]}", 1)
    assert stop.endswith("; 1 request unfinished (answered 503)"), stop
    # The request in flight is answered 503 if the connection is still open to say it.
    (reply,) = replies
    assert isinstance(reply, Reply) and reply.status == 503, reply
    assert (
        reply.json()["error"]
        == f"the server stopped before this request finished (stopped at once on {signals[-1]})"
    )
    server.assert_nothing_left()


@pytest.mark.timeout(60)
def test_a_killed_worker_under_load_costs_no_request(tmp_path: Path, this_host: Host) -> None:
    profile = nap_profile(tmp_path, this_host, backend="process", workers=2, retries=2)
    with Server(profile) as server:
        server.wait_ready()
        clients = Clients(server, 4, lambda i: {"inputs": [0.3, 0.2]}, rounds=4)
        server.wait_health(lambda h: h["items_in_flight"] >= 6, "both workers busy and more queued")
        victim = napping_worker(server)
        victim.kill()
        replies = clients.join()
        assert len(replies) == 16
        for r in replies:
            assert isinstance(r, Reply) and r.status == 200 and r.json() == {"outputs": [0.6, 0.4]}, r
        server.note_processes()  # the replacement too
        assert server.stop() == 0
    stop = server.wait_line("^tuner: stopped", 1)
    assert "16 requests served · 0 failed" in stop and "· 1 worker replaced" in stop, stop
    assert " · 0 retried" not in stop, stop
    server.assert_nothing_left()
