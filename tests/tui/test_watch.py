"""``tuner watch``: the scrape → figures function on recorded pages, the Live view on a fake scraper,
and the Live view on a real ``tuner serve`` started here (stopped mid-test: the view says so).

``TUNER_SCREENSHOTS=DIR`` makes the real-server test save its picture as ``DIR/watch.svg``
(``screenshots/watch.svg`` comes from ``TUNER_SCREENSHOTS=screenshots pytest tests/tui/test_watch.py``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from serve.helpers import Server, model_spec, write_profile

from tui.conftest import wait_for
from tuner.cli import main
from tuner.errors import BadInput
from tuner.hardware import probe
from tuner.serve.scrape import (
    Figures,
    NotTuner,
    Scraper,
    Unreachable,
    figures,
    parse_metrics,
    parse_url,
    quantile,
)
from tuner.tui.format import si
from tuner.tui.watch import WatchApp

pytestmark = pytest.mark.timeout(120)
SIZE = (120, 40)

# -- recorded pages (the shape tuner serve answers; trimmed to what the view reads) -----------------


def page(
    *, requests: int, items: int, buckets: list[int], in_flight: int = 3, drift: str = "", ups: int = 0
) -> str:
    """A /metrics page: ``requests`` ok, ``items`` ok, latency buckets 1, 2, 5, 10 ms and +Inf."""
    bounds = ["0.001", "0.002", "0.005", "0.01", "+Inf"]
    lines = [
        "# HELP tuner_items_total Items by outcome.",
        "# TYPE tuner_items_total counter",
        f'tuner_items_total{{outcome="ok"}} {items}.0',
        'tuner_items_total{outcome="failed"} 0.0',
        'tuner_items_total{outcome="rejected"} 0.0',
        "# HELP tuner_autoscale_decisions_total Autoscaler resizes.",
        "# TYPE tuner_autoscale_decisions_total counter",
        f'tuner_autoscale_decisions_total{{direction="up"}} {ups}.0',
        'tuner_autoscale_decisions_total{direction="down"} 0.0',
        "# HELP tuner_item_latency_seconds Item latency.",
        "# TYPE tuner_item_latency_seconds histogram",
    ]
    lines += [
        f'tuner_item_latency_seconds_bucket{{le="{b}"}} {c}.0' for b, c in zip(bounds, buckets, strict=True)
    ]
    lines += [
        f"tuner_item_latency_seconds_count {buckets[-1]}.0",
        "tuner_item_latency_seconds_sum 1.0",
        "# TYPE tuner_items_in_flight gauge",
        f"tuner_items_in_flight {in_flight}.0",
        "# TYPE tuner_max_pending gauge",
        "tuner_max_pending 64.0",
        "# TYPE tuner_workers gauge",
        "tuner_workers 2.0",
        "# TYPE tuner_workers_target gauge",
        "tuner_workers_target 2.0",
        "# TYPE tuner_profile_drift gauge",
    ]
    lines += [
        f'tuner_profile_drift{{dimension="{d}"}} {1.0 if d == drift else 0.0}'
        for d in ("service_time", "p99", "throughput", "host")
    ]
    lines += [
        "# TYPE tuner_host_outside_load_ratio gauge",
        "tuner_host_outside_load_ratio 0.12",
        "# TYPE tuner_profile_throughput_items_per_second gauge",
        'tuner_profile_throughput_items_per_second{bound="point"} 1000.0',
        "# TYPE tuner_profile_max_rate_requests_per_second gauge",
        "tuner_profile_max_rate_requests_per_second 250.0",
        "# TYPE tuner_profile_p99_objective_seconds gauge",
        "tuner_profile_p99_objective_seconds 0.05",
        "# HELP tuner_requests_total HTTP requests by outcome.",
        "# TYPE tuner_requests_total counter",
        f'tuner_requests_total{{outcome="ok"}} {requests}.0',
        'tuner_requests_total{outcome="failed"} 0.0',
        'tuner_requests_total{outcome="rejected"} 2.0',
        'tuner_requests_total{outcome="bad"} 0.0',
        'tuner_requests_total{outcome="unfinished"} 0.0',
        "# TYPE tuner_requests_in_flight gauge",
        "tuner_requests_in_flight 1.0",
        "# TYPE tuner_ready gauge",
        "tuner_ready 1.0",
    ]
    return "\n".join(lines) + "\n"


BEFORE = page(requests=100, items=300, buckets=[10, 50, 90, 100, 100])
# 2 s later: 80 more requests, 200 more items; the new items' latencies: 100 under 1 ms, 50 in
# 1-2 ms, 40 in 2-5 ms, 10 in 5-10 ms.
AFTER = page(requests=180, items=500, buckets=[110, 200, 280, 300, 300])


def test_figures_from_two_scrapes_rates_and_percentiles_from_the_bucket_deltas() -> None:
    before, after = parse_metrics(BEFORE, 10.0), parse_metrics(AFTER, 12.0)
    f = figures(before, after)
    assert f.interval_s == 2.0
    assert f.request_rate == pytest.approx(40.0)  # (180 - 100) / 2 s; the 2 rejected are unchanged
    assert f.error_rate == 0.0
    assert f.item_rate == pytest.approx(100.0)
    # deltas: 100 ≤ 1 ms, 150 ≤ 2 ms, 190 ≤ 5 ms, 200 ≤ 10 ms. p50: rank 100 → the top of the 1 ms
    # bucket; p99: rank 198 → in 5-10 ms, 8/10 of the way: 5 + 5 × 0.8 = 9 ms.
    assert f.p50_ms == pytest.approx(1.0)
    assert f.p99_ms == pytest.approx(9.0)
    assert (f.in_flight, f.max_pending, f.workers, f.workers_target) == (3, 64, 2, 2)
    assert f.objective_ms == pytest.approx(50.0)
    assert f.max_rate == 250.0
    assert f.outside_load == pytest.approx(0.12)
    assert f.ready is True
    assert f.drift == {"service_time": False, "p99": False, "throughput": False, "host": False}
    assert f.drifting == []
    assert f.requests["rejected"] == 2.0


def test_first_scrape_restart_and_drift() -> None:
    first = figures(None, parse_metrics(BEFORE, 1.0))
    assert first.request_rate is None and first.p99_ms is None  # nothing to compare with yet
    assert first.in_flight == 3 and first.objective_ms == pytest.approx(50.0)
    # The server restarted: counters went down. No rate, never a negative one.
    restarted = page(requests=5, items=10, buckets=[1, 2, 3, 4, 4], drift="p99", ups=1)
    f = figures(parse_metrics(AFTER, 1.0), parse_metrics(restarted, 2.0))
    assert f.request_rate is None and f.item_rate is None and f.p99_ms is None
    assert f.drifting == ["p99"] and f.scale_ups == 1


def test_quantile_interpolates_inside_a_bucket_and_stops_at_the_last_finite_bound() -> None:
    assert quantile(0.5, [(0.01, 0.0), (0.02, 10.0), (float("inf"), 10.0)]) == pytest.approx(0.015)
    assert quantile(0.99, [(0.01, 0.0), (0.02, 0.0), (float("inf"), 5.0)]) == pytest.approx(0.02)
    assert quantile(0.99, [(0.01, 0.0), (float("inf"), 0.0)]) is None


def test_a_page_that_is_not_tuners_is_said_so() -> None:
    with pytest.raises(NotTuner, match="no tuner_ metrics"):
        parse_metrics("# TYPE go_goroutines gauge\ngo_goroutines 12\n", 0.0)


def test_urls() -> None:
    assert parse_url(":8000").url == "http://127.0.0.1:8000"
    assert parse_url("localhost:81/api/").url == "http://localhost:81/api"
    with pytest.raises(BadInput, match="give the server's address"):
        parse_url("ftp://example.org")


def test_the_command_without_a_server_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unreachable (connection refused)" in err and "--wait" in err


def test_without_the_metrics_extra_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client.parser", None)  # its import now fails
    assert main(["watch", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "tuner: tuner watch needs the metrics extra (prometheus_client is missing): pip install 'tuner[metrics]'\n"
    )


# -- the view on a fake scraper (no process) -----------------------------------------------------------

DOC: dict[str, Any] = {
    "profile": {"path": "profiles/fake.yaml", "name": "fake"},
    "model": {"spec": "builtin:fake"},
    "recommended": {"backend": "thread", "workers": 2, "partition_size": 8},
    "online": {"objective_p99_ms": 50.0, "max_rate_at_slo": 250.0, "curve": []},
}


class FakeScraper:
    """Answers the pages it is given in turn (an exception is raised), then the last one again."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.prev: Any = None
        self.t = 0.0
        self.calls = 0

    def __call__(self) -> tuple[Figures, dict[str, Any]]:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            self.prev = None
            raise answer
        self.t += 2.0  # the recorded pages are 2 s apart
        sample = parse_metrics(answer, self.t)
        found = figures(self.prev, sample)
        self.prev = sample
        return found, DOC


def screen_text(app: Any) -> str:
    """What the terminal shows, as plain text."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_the_view_shows_drift_since_when_and_a_server_that_went_away() -> None:
    drifting = page(requests=300, items=700, buckets=[120, 210, 290, 310, 310], drift="service_time")
    scraper = FakeScraper([BEFORE, AFTER, drifting, Unreachable("http://fake:1: unreachable (connection refused)"),
                           NotTuner("http://fake:1: not a tuner server (GET /metrics answered 404)")])  # fmt: skip
    app = WatchApp("http://fake:1", scraper, interval_s=0.3)
    async with app.run_test(size=SIZE) as pilot:
        live = app.live
        await wait_for(pilot, lambda: "40 requests/s (promise 250/s)" in screen_text(app), what="the rate",
                       detail=lambda: screen_text(app))  # fmt: skip
        assert "p99 9 ms (objective 50 ms)" in screen_text(app)
        await wait_for(
            pilot, lambda: live.error is not None and "not a tuner" in live.error, what="not tuner"
        )
        await pilot.pause(0.1)
        text = screen_text(app)
        assert "not a tuner server (GET /metrics answered 404) — retrying every second" in text
        assert "✗ http://fake:1: unreachable (connection" in text  # the event log said it, once
        assert "drift: service time — detected" in text
        assert "drifting since" in text
        await pilot.press("question_mark")
        await pilot.pause()
        assert "Reading the Live view" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("q")
    assert app.return_code == 0


# -- the view on a real server -------------------------------------------------------------------------------


def online_profile(path: Path) -> Path:
    """A profile of tests/serve/models.py:double_or_fail (2 thread workers) with an online section:
    max 200 requests/s within p99 50 ms, on a curve whose p99 is far above what the test's trickle
    of requests sees (no p99 drift)."""
    write_profile(path, probe(), spec=model_spec("double_or_fail"), item="int64", max_pending=64)
    doc = yaml.safe_load(path.read_text())
    curve = [
        {"rate": r, "offered": r, "achieved": r, "p50_ms": p / 3, "p99_ms": p, "p99_ci_ms": [p * 0.9, p * 1.1],
         "keeps_up": True, "sustainable": p <= 50}
        for r, p in ((50, 20.0), (100, 26.0), (150, 35.0), (200, 45.0), (250, 70.0))
    ]  # fmt: skip
    doc["online"] = {
        "objective_p99_ms": 50.0, "arrivals": "poisson", "request_size": "1", "items_per_request": 1.0,
        "step_s": 2.0, "backend": "thread", "workers": 2, "threads_per_worker": 1, "max_batch_size": 8,
        "max_batch_delay_ms": 1.0, "max_pending": 64, "max_rate_at_slo": 200.0, "max_rate_ci": [200.0, 250.0],
        "p99_at_max_ms": 45.0, "curve": curve,
    }  # fmt: skip
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def send(server: Server, stop: threading.Event, rate: float, ramp: float = 0.0) -> None:
    """Requests of 3 items at about ``rate`` a second, plus ``ramp`` more every second, until ``stop``."""
    t0 = time.monotonic()
    while not stop.is_set():
        try:
            server.post_json({"inputs": [1, 2, 3]}, timeout_s=5)
        except OSError:
            return  # the server is gone
        stop.wait(1 / (rate + ramp * (time.monotonic() - t0)))


async def test_the_live_view_on_a_running_server(tmp_path: Path) -> None:
    profile = online_profile(tmp_path / "ints.yaml")
    with Server(profile) as server:
        server.wait_ready()
        url = f"http://127.0.0.1:{server.port}"
        stop = threading.Event()
        shots = os.environ.get("TUNER_SCREENSHOTS")
        # For the picture: a load that climbs for half a minute (the charts have something to show).
        sender = threading.Thread(target=send, args=(server, stop, 40.0, 4.0 if shots else 0.0), daemon=True)
        sender.start()
        app = WatchApp(url, Scraper(parse_url(url)))
        try:
            async with app.run_test(size=SIZE) as pilot:
                live = app.live
                await wait_for(
                    pilot,
                    lambda: live.figures is not None and (live.figures.request_rate or 0) > 5 and live.scrapes >= 4,
                    timeout=30, what="the request rate", detail=lambda: screen_text(app),
                )  # fmt: skip
                await pilot.pause(0.6)  # one chart refresh
                text = screen_text(app)
                f = live.figures
                assert f is not None
                assert f"{si(f.request_rate)} requests/s" in text
                assert "(promise 200/s)" in text
                assert "(objective 50 ms)" in text and "objective p99 50 ms" in text  # status line and chart
                assert "workers 2" in text
                if f.drifting:  # a busy shared host for 15 s (3 contaminated 5-s windows): the server says so
                    assert f.drifting == ["host"] and "drift: host" in text and "drifting since" in text
                else:
                    assert "no drift" in text and "✓ no drift: live behaviour matches the profile" in text
                assert (
                    f"● ready · {url} · models.py:double_or_fail · thread ×2 · partition 8 · profile ints.yaml"
                    in text
                )
                assert f.error_rate == 0 and (f.item_rate or 0) > 0 and f.p99_ms is not None
                assert "connected: " in text
                if shots:
                    await wait_for(pilot, lambda: live.scrapes >= 30, timeout=60, what="30 scrapes")
                    await pilot.pause(0.6)
                    out = Path(shots)
                    out.mkdir(parents=True, exist_ok=True)
                    app.save_screenshot(str(out / "watch.svg"))
                # The server stops mid-watch: the view says so in one line, and keeps trying.
                stop.set()
                sender.join(10)
                assert server.stop() == 0
                await wait_for(pilot, lambda: live.error is not None, timeout=10, what="the unreachable line")
                assert "unreachable (connection refused) — retrying every second" in screen_text(app)
                scrapes, failures = live.scrapes, live.failures
                await pilot.pause(2.5)
                assert live.error is not None and live.scrapes == scrapes
                assert live.failures >= failures + 2  # it kept trying, once a second
                await pilot.press("q")
            assert app.return_code == 0
        finally:
            stop.set()
        server.assert_nothing_left()
