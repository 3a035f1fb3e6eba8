"""Drift against the profile: the CUSUM on recorded window sequences (quiet, a slower model, a busy
host, fewer cores, another framework, a p99 off the curve, a return), and a live runtime that
announces a model slower than its profile."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tuner.runtime import Runtime
from tuner.runtime.drift import DEFAULT_SPREAD, DriftState, H, K, ProfileDrift, Reference, WindowFigures

from .helpers import host_info, model_spec, write_profile

PER_ITEM_S = 1e-3
REF = Reference(per_item_s=PER_ITEM_S, spread=0.1, partition_size=32, spread_recorded=True,
                curve=((100.0, 20.0, 18.0, 22.0), (400.0, 40.0, 36.0, 44.0)), throughput_ci=(900.0, 1100.0),
                usable_cores=2, framework="onnxruntime 1.20.1")  # fmt: skip


def windows(
    n: int, *, slower: float = 1.0, start: int = 0, seed: int = 0, **figures: Any
) -> list[WindowFigures]:
    """``n`` windows of 20 partitions each whose per-item service time is lognormal around the
    reference (its own spread) × ``slower``."""
    rng = np.random.default_rng(seed)
    return [
        WindowFigures(
            t=5.0 * (start + i),
            per_item_service_s=(PER_ITEM_S * slower * np.exp(rng.normal(0, REF.spread, 20))).tolist(),
            **figures,
        )
        for i in range(n)
    ]


def feed(
    state: DriftState, ws: list[WindowFigures], framework: str | None = None
) -> list[tuple[int, ProfileDrift]]:
    return [(i, e) for i, w in enumerate(ws) for e in state.observe(w, framework)]


def test_a_quiet_service_as_profiled_raises_no_alarm_in_a_day_of_windows() -> None:
    # 17,280 windows of 5 s, observations exactly as the profile measured them: the CUSUM stays down
    # (its average run length to a false alarm, K=0.5 and H=8, is about 19,000 windows).
    assert (K, H) == (0.5, 8.0)
    alarms = [sum(1 for _ in feed(DriftState(REF), windows(17_280, seed=seed))) for seed in range(3)]
    assert alarms.count(0) >= 2, alarms


def test_a_model_30_percent_slower_is_announced_within_two_windows_with_its_cause() -> None:
    state = DriftState(REF)
    events = feed(
        state, windows(50) + windows(20, slower=1.3, start=50, seed=1), framework="onnxruntime 1.20.1"
    )
    assert len(events) == 1, events
    i, e = events[0]
    assert 50 <= i <= 51 and e.dimension == "service_time" and e.drifting and e.cause == "model"
    assert "service time per item 1.3" in e.words and "the model itself is slower" in e.words
    assert state.drifting() == {"service_time": "drifting"}


def test_a_slow_ramp_is_caught_while_it_is_still_small() -> None:
    """The model slows by 0.5% a window: the CUSUM adds the small shifts up long before any one
    window looks wrong on its own."""
    ws = [w for i in range(200) for w in windows(1, slower=1.005**i, start=i, seed=100 + i)]
    events = feed(DriftState(REF), ws)
    assert len(events) == 1, events
    i, e = events[0]
    assert e.dimension == "service_time" and e.cause == "model"
    assert 1.005**i < 1.15, f"caught only at {1.005**i:.2f}x (window {i})"


def test_drift_returns_once_the_service_is_back_and_says_so_once() -> None:
    state = DriftState(REF)
    events = feed(state, windows(10, slower=1.5) + windows(40, start=10, seed=2))
    assert [(e.dimension, e.drifting) for _, e in events] == [("service_time", True), ("service_time", False)]
    assert "back within the profile" in events[1][1].words and state.drifting() == {}


@pytest.mark.parametrize(
    ("figures", "framework", "cause", "words"),
    [
        ({"outside": 0.4}, None, "host load", "other processes use 40% of the usable cores"),
        ({"usable_cores": 1}, None, "cores", "1 usable cores, the profile measured 2"),
        (
            {},
            "onnxruntime 1.22.0",
            "framework",
            "onnxruntime 1.22.0, the profile measured onnxruntime 1.20.1",
        ),
    ],
    ids=["busy-host", "fewer-cores", "other-framework"],
)
def test_the_cause_named_is_the_likeliest_one_seen(
    figures: dict[str, Any], framework: str | None, cause: str, words: str
) -> None:
    (_, e), *_ = feed(DriftState(REF), windows(5, slower=1.5, **figures), framework=framework)
    assert e.cause == cause and words in e.words, e


def test_contaminated_windows_feed_the_host_dimension_not_the_model_ones() -> None:
    state = DriftState(REF)
    busy = windows(6, slower=2.0, contaminated=True, outside=0.9)
    events = feed(state, busy)
    assert [(i, e.dimension, e.drifting) for i, e in events] == [(2, "host", True)]
    assert "outside load 90%" in events[0][1].words and state.cusums["service_time"].s == 0.0
    back = feed(state, windows(5, start=6))
    assert [(e.dimension, e.drifting) for _, e in back] == [("host", False)]


def test_p99_is_judged_at_the_rate_it_arrives_against_the_profiles_curve() -> None:
    state = DriftState(REF)
    # 250 requests/s: the curve says 30 ms. One window's p99 is judged with a spread of at least 20%
    # of the log: 33 ms (10% over) is noise for a day of windows; 45 ms (1.5x) alarms within 10.
    assert feed(state, [WindowFigures(t=i, rate=250.0, p99_ms=33.0) for i in range(17_280)]) == []
    events = feed(state, [WindowFigures(t=20_000 + i, rate=250.0, p99_ms=45.0) for i in range(10)])
    assert [(e.dimension, e.drifting) for _, e in events] == [("p99", True)]
    assert "p99 45 ms at 250 requests/s, the profile's curve says 30 ms" in events[0][1].words
    # Off the curve's measured range the p99 is not judged (no extrapolation).
    assert DriftState(REF).observe(WindowFigures(t=0, rate=1000.0, p99_ms=500.0)) == []


def test_behind_a_server_p99_is_judged_against_the_curve_measured_through_it(tmp_path: Path) -> None:
    from tuner.profile import load_profile

    good = load_profile(Path(__file__).parents[1] / "fixtures" / "profiles" / "good.yaml")
    assert good.online is not None and good.online.http is not None
    in_process, served = Reference.of(good), Reference.of(good, served=True)
    assert in_process.curve_source == "in process" and in_process.curve[0][:2] == (24000.0, 9.5)
    assert served.curve_source == "through the server" and served.curve == ((6000.0, 38.0, 35.0, 41.0),)
    # A served profile without an online.http section judges no p99 (its in-process curve has no
    # HTTP in it: served latency sits above it by design).
    bare = good.model_copy(update={"online": good.online.model_copy(update={"http": None})})
    assert Reference.of(bare, served=True).curve == () and Reference.of(bare, served=True).curve_source == ""


def test_throughput_counts_only_while_saturated() -> None:
    slow = [WindowFigures(t=i, throughput=600.0) for i in range(30)]
    assert feed(DriftState(REF), slow) == []  # light traffic: low throughput is no news
    events = feed(DriftState(REF), [WindowFigures(t=i, throughput=600.0, saturated=True) for i in range(3)])
    assert events and events[0][1].dimension == "throughput" and "saturated at 600" in events[0][1].words
    assert ", since 1 s ago; likeliest cause: " in events[0][1].words  # two windows of 1 s
    # a fall so large that one window is enough: said so, not "since 0 s ago"
    (i, e), *_ = feed(DriftState(REF), [WindowFigures(t=0, throughput=100.0, saturated=True)])
    assert i == 0 and ", in the last window; likeliest cause: " in e.words, e.words


@pytest.mark.timeout(30)
def test_a_window_is_saturated_only_when_its_workers_were_busy_all_of_it(
    tmp_path: Path, this_host: Any
) -> None:
    """A backlog at the window's end is not enough: a batch job's passes with pauses between them
    left windows half idle, and their items/s read as a throughput far below the profile's (the
    drift watch announced a slower model that was not: tests/benchmarks/vs_default.py)."""
    import time

    from tuner.profile import load_profile
    from tuner.runtime.observe import Observer
    from tuner.runtime.stats import Meter

    path = write_profile(tmp_path / "p.yaml", host_info(this_host), spec=model_spec("slow_double"), workers=2)
    meter = Meter(5.0)
    engine = {"backlog": 10, "live_workers": 2}
    observer = Observer(load_profile(path), meter, lambda: dict(engine), None)
    last = time.perf_counter()

    def window(busy_share: float, backlog: int = 10) -> bool:
        """One window of ~0.1 s whose 2 workers were inside the model call ``busy_share`` of it."""
        nonlocal last
        threading.Event().wait(0.1)  # the window's length (its figures are per second of it)
        now = time.perf_counter()
        meter.record(now, 0.01, 64, (), busy_share * 2 * (now - last))
        engine["backlog"] = backlog
        saturated = observer._window().saturated
        last = time.perf_counter()
        return saturated

    assert window(1.0) is False  # no backlog seen at its start yet
    assert window(1.0) is True
    assert window(0.5) is False  # half idle, though backlogged at both ends
    assert window(1.0) is True
    assert window(1.0, backlog=0) is False  # drained by its end
    assert window(1.0) is False  # not backlogged at its start
    assert window(1.0) is True


def test_an_older_profile_without_the_spread_falls_back_to_the_default(
    tmp_path: Path, this_host: Any
) -> None:
    from tuner.profile import load_profile

    profile = load_profile(write_profile(tmp_path / "old.yaml", host_info(this_host)))
    ref = Reference.of(profile)
    assert ref.spread == DEFAULT_SPREAD and not ref.spread_recorded and ref.per_item_s is None


@pytest.mark.timeout(60)
def test_a_live_runtime_announces_a_model_slower_than_its_profile(tmp_path: Path, this_host: Any) -> None:
    """The profile says 1 ms per partition of 4; the model takes 5 ms: an event and stats().drift."""
    from tuner.profile import load_profile, save_profile
    from tuner.profile.evidence import Percentiles

    path = write_profile(
        tmp_path / "p.yaml", host_info(this_host), spec=model_spec("slow_double"), partition_size=4
    )
    p = load_profile(path)
    ev = p.evidence.model_copy(update={"service_time_ms": Percentiles(p50=1.0, p95=1.2, p99=1.5),
                                       "service_time_spread": 0.1})  # fmt: skip
    save_profile(p.model_copy(update={"evidence": ev}), path)
    seen: list[ProfileDrift] = []
    drifted = threading.Event()

    def on_event(e: Any) -> None:
        if isinstance(e, ProfileDrift):
            seen.append(e)
            drifted.set()

    with Runtime.from_profile(path, on_event=on_event, drift=0.3) as rt:
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                list(rt.map([1] * 16))

        feeder = threading.Thread(target=load)
        feeder.start()
        try:
            assert drifted.wait(30), "no drift event"
            drift = rt.stats().drift
        finally:
            stop.set()
            feeder.join(30)
    e = seen[0]
    # A busy shared host (a contaminated window feeds no model dimension) is announced as the host;
    # a quiet one sees the model 5x slower than its profile.
    if e.dimension == "host":
        assert e.drifting and e.cause == "host load" and "the host is busy" in e.words and "host" in drift
    else:
        # the cause: the model, or a host busy below the noise guard's line but still named
        assert e.dimension == "service_time" and e.drifting and e.cause in ("model", "host load")
        assert "service_time" in drift
        assert float(e.words.split("service time per item ")[1].split("×")[0]) > 2


@pytest.mark.timeout(60)
def test_the_watch_counts_the_runtimes_own_worker_processes_as_its_own(
    tmp_path: Path, this_host: Any
) -> None:
    """A process backend's workers are the runtime's CPU, not outside load (else a busy runtime
    reads as a busy host, and only the host dimension could ever alarm)."""
    import time

    import psutil

    path = write_profile(tmp_path / "p.yaml", host_info(this_host), spec=model_spec("slow_double"),
                         backend="process", workers=2)  # fmt: skip
    with Runtime.from_profile(path, drift=0.2) as rt:
        list(rt.map([1] * 64))
        kids = {p.pid for p in psutil.Process().children(recursive=True)}
        assert len(kids) >= 2
        observer: Any = rt._observer
        deadline = time.monotonic() + 20
        while not kids <= observer._sampler.pids and time.monotonic() < deadline:
            threading.Event().wait(0.1)  # a window of the watch's own thread: 0.2 s
        assert kids <= observer._sampler.pids, (kids, observer._sampler.pids)
