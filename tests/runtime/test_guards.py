"""Airtight in a long-lived process: no future left pending, no phantom backlog, no nan setting."""

from __future__ import annotations

import logging
import math
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from typing import Any

import pytest

from tuner.errors import ConfigError, EngineClosed, EngineFailed, ItemFailed
from tuner.runtime import AutoscaleSettings, Runtime

from .helpers import model_spec, write_profile
from .test_autoscale import wait_for
from .test_backpressure import Gated

DEADLINE_S = 10.0


def _resolved_with(futures: list[Future[Any]]) -> list[BaseException | None]:
    _, pending = wait_futures(futures, timeout=DEADLINE_S)
    assert not pending, f"{len(pending)} of {len(futures)} futures still pending after {DEADLINE_S} s"
    return [f.exception() for f in futures]


# ------------------------------------------------------------------------------- completer guard


@pytest.mark.timeout(30)
def test_engine_closed_underneath_fails_every_future_with_the_cause() -> None:
    model = Gated()
    rt = Runtime(model, backend="thread", workers=1, partition_size=4).start()
    try:
        futures = [rt.submit(i) for i in range(40)]
        mapped: list[BaseException] = []

        def consume() -> None:
            try:
                list(rt.map(range(40)))
            except BaseException as e:  # the test inspects what escaped
                mapped.append(e)

        consumer = threading.Thread(target=consume)
        consumer.start()
        wait_for(lambda: rt.engine.backlog() >= 10, DEADLINE_S, "partitions in the engine")
        rt.engine.close(wait=False, cancel=True)  # the engine goes away under the runtime
        model.release.set()
        errors = _resolved_with(futures)
        consumer.join(DEADLINE_S)
        assert not consumer.is_alive()
        for e in [*errors, *mapped]:
            assert isinstance(e, EngineClosed), repr(e)
            assert "the engine is closed" in str(e) or "the engine was closed" in str(e)
        assert mapped, "map raised the engine's error, not CancelledError"
        # Later submissions fail too, with the same cause, rather than hang.
        assert isinstance(_resolved_with([rt.submit(1)])[0], EngineClosed)
    finally:
        model.release.set()
        rt.close()


@pytest.mark.timeout(30)
def test_a_failed_engine_future_fails_its_items_and_the_completer_lives_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An engine whose futures end with an error (its supervisor broke): items get that error."""
    with Runtime(model_spec("slow_double"), backend="thread", workers=1, partition_size=4) as rt:
        real_submit = rt.engine.submit

        def broken_submit(items: Any, first_item: int | None = None) -> Future[Any]:
            f: Future[Any] = Future()
            f.set_exception(EngineFailed("engine supervisor failed: boom"))
            return f

        monkeypatch.setattr(rt.engine, "submit", broken_submit)
        errors = _resolved_with([rt.submit(i) for i in range(10)])
        assert all(isinstance(e, EngineFailed) and "boom" in str(e) for e in errors), errors
        with pytest.raises(EngineFailed, match="boom"):
            list(rt.map(range(10)))
        monkeypatch.setattr(rt.engine, "submit", real_submit)
        assert rt.submit(21).result(timeout=DEADLINE_S) == 42, "the completer survived"
        assert rt.stats().pending == 0, "failed items gave their room back"


@pytest.mark.timeout(30)
def test_an_engine_that_raises_on_submit_fails_the_batch_not_the_batcher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Runtime(model_spec("slow_double"), backend="thread", workers=1, partition_size=4) as rt:
        real_submit = rt.engine.submit

        def raising(items: Any, first_item: int | None = None) -> Future[Any]:
            raise RuntimeError("supervisor queue is gone")

        monkeypatch.setattr(rt.engine, "submit", raising)
        errors = _resolved_with([rt.submit(i) for i in range(6)])
        assert all(
            isinstance(e, EngineFailed) and "RuntimeError: supervisor queue is gone" in str(e) for e in errors
        )
        monkeypatch.setattr(rt.engine, "submit", real_submit)
        assert rt.submit(5).result(timeout=DEADLINE_S) == 10, "the batcher survived"


@pytest.mark.timeout(30)
def test_a_raising_event_callback_does_not_take_the_engine_down(caplog: pytest.LogCaptureFixture) -> None:
    def listener(event: object) -> None:
        raise KeyError("listener bug")

    with caplog.at_level(logging.ERROR, logger="tuner.runtime"):
        with Runtime(
            model_spec("slow_double"), backend="thread", workers=1, partition_size=4, on_event=listener
        ) as rt:
            assert list(rt.map(range(100))) == [x * 2 for x in range(100)]
            assert rt.submit(3).result(timeout=DEADLINE_S) == 6
    lines = [r for r in caplog.records if "on_event callback raised" in r.getMessage()]
    assert len(lines) == 1, "logged once per exception type, not once per event"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["wait", "no-wait", "cancel"])
def test_submit_racing_close_never_leaves_a_future_pending(how: str) -> None:
    rt = Runtime(model_spec("slow_double"), backend="thread", workers=2, partition_size=4).start()
    futures: list[Future[Any]] = []
    lock = threading.Lock()
    go = threading.Event()

    def produce() -> None:
        go.wait()
        while True:
            try:
                f = rt.submit(1)
            except EngineClosed:
                return
            with lock:
                futures.append(f)

    producers = [threading.Thread(target=produce) for _ in range(4)]
    for p in producers:
        p.start()
    go.set()
    wait_for(lambda: len(futures) >= 200, DEADLINE_S, "submissions under way")
    rt.close(wait=how == "wait", cancel=how == "cancel")
    for p in producers:
        p.join(DEADLINE_S)
        assert not p.is_alive()
    with lock:
        snapshot = list(futures)
    assert all(f.done() for f in snapshot), "close() returned with futures still pending"
    for f in snapshot:
        e = f.exception()
        assert e is None or isinstance(e, (ItemFailed, EngineClosed)), repr(e)
    if how == "wait":
        assert all(f.exception() is None for f in snapshot), "close(wait=True) finishes accepted work"


# ------------------------------------------------------------------------------- map early exit


def _scaling_runtime() -> Runtime:
    return Runtime(
        model_spec("slower_double"),
        backend="thread",
        workers=1,
        partition_size=4,
        autoscale=AutoscaleSettings(
            min_workers=1, max_workers=3, target_backlog_per_worker=2.0, upscale_delay_s=0.5, interval_s=0.02
        ),
    )


def _assert_no_phantom_backlog(rt: Runtime) -> None:
    wait_for(lambda: rt.engine.backlog() == 0, DEADLINE_S, "the abandoned map's backlog to drain")
    # Nothing may happen now: watch the autoscaler for 50 looks (twice its upscale delay).
    t_end = time.monotonic() + 1.0
    while time.monotonic() < t_end:
        assert rt.workers == 1, f"scaled up after the consumer left: {rt.stats().scaling}"
        time.sleep(0.02)
    assert rt.stats().scaling == () and rt.stats().pending == 0


@pytest.mark.timeout(30)
def test_breaking_out_of_map_cancels_its_partitions() -> None:
    with _scaling_runtime() as rt:
        for y in rt.map(range(4000)):  # ~54 partitions of 20 ms go in flight: 1 s of backlog
            assert y == 0
            break
        _assert_no_phantom_backlog(rt)


@pytest.mark.timeout(30)
def test_closing_the_map_generator_or_a_failed_item_cancels_too() -> None:
    with _scaling_runtime() as rt:
        it = rt.map(range(4000))
        assert next(it) == 0
        it.close()
        _assert_no_phantom_backlog(rt)
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=1, partition_size=4) as rt:
        with pytest.raises(ItemFailed):
            list(rt.map([1, -1, *range(4000)]))
        wait_for(lambda: rt.engine.backlog() == 0, DEADLINE_S, "backlog after a failed item")
        assert rt.stats().pending == 0


# ------------------------------------------------------------------------------- settings


NUMERIC = {
    "workers": "an integer >= 1",
    "threads_per_worker": "an integer >= 1",
    "partition_size": "an integer >= 1",
    "timeout_s": "a finite number > 0",
    "retries": "an integer >= 0",
    "backoff_base_s": "a finite number >= 0",
    "backoff_cap_s": "a finite number >= 0.05",
    "memory_limit_mb": "a finite number > 0",
    "max_batch_delay_ms": "a finite number >= 0",
    "max_pending": "an integer >= 1",
    "overload_timeout_s": "a finite number > 0",
}
AUTOSCALE = {
    "target_backlog_per_worker": "a finite number > 0",
    "target_p99_ms": "a finite number > 0",
    "upscale_delay_s": "a finite number >= 0",
    "downscale_delay_s": "a finite number >= 0",
    "interval_s": "a finite number > 0",
}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, -1])
@pytest.mark.parametrize("name", sorted(NUMERIC))
def test_every_numeric_runtime_setting_must_be_finite_and_in_range(name: str, bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        Runtime("builtin:sleep", backend="thread", **{name: bad})
    msg = str(info.value)
    assert msg.startswith(f"{name} must be {NUMERIC[name]}") and f"(got {bad!r})" in msg, msg


@pytest.mark.timeout(10)
@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
@pytest.mark.parametrize("name", sorted(AUTOSCALE))
def test_every_numeric_autoscale_setting_must_be_finite_and_in_range(name: str, bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        AutoscaleSettings(min_workers=1, max_workers=2, **{name: bad})
    msg = str(info.value)
    assert msg.startswith(f"autoscale {name} must be {AUTOSCALE[name]}") and f"(got {bad!r})" in msg, msg


@pytest.mark.timeout(10)
def test_worker_bounds_and_integers_are_checked() -> None:
    with pytest.raises(ConfigError, match=r"autoscale max_workers must be an integer >= 3 \(got 2\)"):
        AutoscaleSettings(min_workers=3, max_workers=2)
    with pytest.raises(ConfigError, match=r"workers must be an integer >= 1 \(got 2.0\)"):
        Runtime("builtin:sleep", workers=2.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"partition_size must be an integer >= 1 \(got True\)"):
        Runtime("builtin:sleep", partition_size=True)


@pytest.mark.timeout(30)
def test_profile_overrides_are_checked_too(tmp_path: Any, this_host: Any) -> None:
    from .helpers import host_info

    path = write_profile(tmp_path / "p.yaml", host_info(this_host))
    with pytest.raises(ConfigError, match=r"max_batch_delay_ms must be a finite number >= 0 \(got nan\)"):
        Runtime.from_profile(path, max_batch_delay_ms=math.nan)
