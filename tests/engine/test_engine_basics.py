"""The engine's contract in the ordinary case: every item once, in order, on every backend."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tests.engine.helpers import spec
from tuner.engine import Engine, EngineConfig, Failure
from tuner.engine import events as ev
from tuner.errors import ConfigError, EngineClosed, ModelSpecError

pytestmark = pytest.mark.timeout(60)

BACKENDS = ["process", "thread", "inline"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_map_returns_every_item_once_in_order(backend: str) -> None:
    with Engine(spec("double"), EngineConfig(backend=backend, workers=2, partition_size=7)) as engine:
        out = list(engine.map(range(1000)))
    assert out == [2 * i for i in range(1000)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_builtin_mlp_outputs_do_not_depend_on_backend(backend: str) -> None:
    from tuner.models import input_generator, load_model

    gen = input_generator("builtin:mlp")
    assert gen is not None
    x = gen(300, 1)
    expected = load_model("builtin:mlp")(x)
    with Engine("builtin:mlp", EngineConfig(backend=backend, workers=2, partition_size=64)) as engine:
        got = np.stack(list(engine.map(x)))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)  # float32 BLAS: block sizes change sums


def test_large_numpy_partitions_travel_through_shared_memory_and_come_back_right() -> None:
    x = np.arange(512 * 300, dtype=np.float64).reshape(512, 300)  # 64 rows = 150 KiB > threshold
    with Engine(spec("row_sums"), EngineConfig(workers=2, partition_size=64)) as engine:
        results = list(engine.map_partitions(x))
        import glob
        import os

        assert glob.glob(f"/dev/shm/tuner_{os.getpid()}_*"), "expected shared-memory segments while running"
    got = np.concatenate([r.outputs for r in results])
    np.testing.assert_array_equal(got, x.sum(axis=1))
    # the autouse fixture checks that every segment is unlinked after close


def test_events_describe_the_run() -> None:
    seen: list[ev.Event] = []
    cfg = EngineConfig(workers=2, partition_size=10, sample_interval_s=0.05)
    with Engine(spec("slow"), cfg, on_event=seen.append) as engine:
        list(engine.map(range(100)))
    kinds = {type(e).__name__ for e in seen}
    assert {
        "WorkerStarted",
        "PartitionSubmitted",
        "PartitionStarted",
        "PartitionFinished",
        "WorkerExited",
    } <= kinds
    assert "ResourceSample" in kinds
    finished = [e for e in seen if isinstance(e, ev.PartitionFinished)]
    assert sorted(e.partition for e in finished) == sorted(
        e.partition for e in seen if isinstance(e, ev.PartitionSubmitted)
    )  # one finish per partition: 10 partitions of 10 items
    assert [e.items for e in finished] == [10] * 10
    # the model sleeps 10 ms per item: 100 ms of service per partition, inside its latency
    assert all(e.latency_s >= e.service_s >= 0.1 for e in finished)
    started = [e for e in seen if isinstance(e, ev.WorkerStarted)]
    exited = [e for e in seen if isinstance(e, ev.WorkerExited)]
    assert len(started) == 2 and os.getpid() not in {e.pid for e in started}
    assert all(0 < e.load_s < 30 for e in started)
    assert sorted(e.pid for e in exited) == sorted(e.pid for e in started)  # the real worker pids
    assert [(e.cause, e.exitcode, e.signal) for e in exited] == [("closed", 0, None)] * 2


def test_a_model_that_fails_to_load_raises_one_line_at_start() -> None:
    engine = Engine(spec("broken_factory"), EngineConfig(workers=2))
    with pytest.raises(ModelSpecError) as info:
        engine.start()
    msg = str(info.value)
    assert "raised RuntimeError: weights not found" in msg and "\n" not in msg
    with pytest.raises(EngineClosed):
        engine.submit([1])


def test_wrong_output_count_fails_each_item_with_the_reason() -> None:
    with Engine(spec("wrong_count"), EngineConfig(workers=1, partition_size=4, retries=0)) as engine:
        out = list(engine.map(range(8)))
    assert all(isinstance(o, Failure) for o in out)
    assert out[0].cause == "exception"
    assert "returned 0 outputs for 1 input" in out[0].message


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="workers must be an integer >= 1"):
        EngineConfig(workers=0)
    with pytest.raises(ConfigError, match="backend 'gpu'"):
        EngineConfig(backend="gpu")
    with pytest.raises(ConfigError, match="timeout_s must be a finite number > 0"):
        EngineConfig(timeout_s=0)
    with pytest.raises(ConfigError, match="sample_interval_s must be a finite number > 0"):
        EngineConfig(sample_interval_s=0)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize(
    ("field", "rule"),
    [
        ("timeout_s", "> 0 (or None)"),
        ("memory_limit_mb", "> 0 (or None)"),
        ("sample_interval_s", "> 0"),
        ("backoff_base_s", ">= 0"),
        ("backoff_cap_s", ">= 0.05"),
    ],
)
def test_a_setting_that_is_not_a_finite_number_is_refused_by_name(
    field: str, rule: str, value: float
) -> None:
    with pytest.raises(ConfigError) as info:
        EngineConfig(**{field: value})
    assert str(info.value) == f"{field} must be a finite number {rule} (got {value})"


def test_threads_per_worker_is_applied_in_each_worker(tmp_path) -> None:
    model = tmp_path / "threads_model.py"
    model.write_text(
        "from threadpoolctl import threadpool_info\n"
        "import numpy\n"
        "def fn(items):\n"
        "    n = max(i['num_threads'] for i in threadpool_info())\n"
        "    return [n for _ in items]\n"
    )
    for threads in (1, 2):
        with Engine(
            f"{model}:fn", EngineConfig(workers=2, threads_per_worker=threads, partition_size=4)
        ) as e:
            assert set(e.map(range(16))) == {threads}


def test_torch_in_the_parent_does_not_hang_workers(tmp_path) -> None:
    """Fork after a parallel torch op deadlocks; our workers come from a clean forkserver."""
    model = tmp_path / "torch_model.py"
    model.write_text(
        "try:\n"
        "    import torch\n"
        "except ImportError:\n"
        "    torch = None\n"
        "def fn(items):\n"
        "    if torch is None:\n"
        "        return [x + 1 for x in items]\n"
        "    return [float(v) for v in (torch.tensor(list(items), dtype=torch.float64) + 1)]\n"
    )
    try:
        import torch

        torch.set_num_threads(2)
        (torch.ones(256, 256) @ torch.ones(256, 256)).sum()  # start torch's intra-op pool in the parent
    except ImportError:
        pass
    with Engine(f"{model}:fn", EngineConfig(workers=2, partition_size=8)) as engine:
        assert list(engine.map(range(64))) == [x + 1 for x in range(64)]


def test_an_engine_that_could_not_start_refuses_work_instead_of_hanging() -> None:
    engine = Engine(spec("double"), EngineConfig(start_method="fork"))
    with pytest.raises(ConfigError, match="start method 'fork' is not supported"):
        engine.start()
    with pytest.raises(EngineClosed):
        engine.submit([1, 2])  # before: queued for a supervisor that never started, forever


def test_the_config_may_be_replaced_until_the_engine_starts_and_not_after() -> None:
    # A measurement varies one of the engine's own knobs on an engine a runtime built (the hedging
    # benchmark's hedge_cancel): before start it takes effect; after, it would only half apply.
    engine = Engine(spec("double"), EngineConfig(backend="thread", workers=1, partition_size=4))
    engine.config = EngineConfig(backend="thread", workers=3, partition_size=4)
    with engine:
        assert engine.workers == 3 and engine.stats()["live_workers"] == 3
        assert list(engine.map(range(20))) == [2 * i for i in range(20)]
        with pytest.raises(ConfigError, match="cannot change once it has started"):
            engine.config = EngineConfig(backend="thread", workers=1)
        assert engine.workers == 3


@pytest.mark.parametrize("backend", ["thread", "inline"])
def test_an_engine_in_the_callers_process_gives_its_blas_threads_back_at_close(backend: str) -> None:
    """A thread or inline engine limits the caller's own BLAS while it runs; after close the caller's
    code runs with the threads it had (seen: left at 1, which slowed every later call)."""
    import numpy as np
    from threadpoolctl import threadpool_info

    def blas() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas()
    if not before or max(before) < 2:
        pytest.skip("this numpy's BLAS runs one thread: nothing to limit")
    with Engine(
        "builtin:mlp", EngineConfig(backend=backend, workers=1, threads_per_worker=1, partition_size=64)
    ) as e:
        list(e.map(np.zeros((128, 256), dtype=np.float32)))
        assert blas() == [1] * len(before)
    assert blas() == before
