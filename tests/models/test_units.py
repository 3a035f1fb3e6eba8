"""The pieces behind model files: specs, knobs reaching each framework, the search's adapter
dimensions, .npz data, the runtime's version check, and the thread evidence."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import numpy as np
import pytest

from models.conftest import FEATURES, Models, need
from tuner.bench.measure import MeasureSettings, run_trial
from tuner.bench.search import AdaptiveStrategy, Space, with_dimensions
from tuner.bench.types import Objective, TrialConfig
from tuner.data import load_inputs, save_outputs
from tuner.engine import Engine, EngineConfig
from tuner.errors import ConfigError, DataError, ProfileError
from tuner.models import parse_spec
from tuner.models.columns import Columns
from tuner.models.formats.base import Options
from tuner.models.loader import ModelFile

QUICK = MeasureSettings(window_s=0.2, warmup_s=0.1, max_trial_s=4.0)


def test_model_files_are_specs() -> None:
    ms = parse_spec("some/dir/Model.PT2")
    assert (ms.kind, ms.attr, ms.is_model_file) == ("pytorch", "", True)
    assert ms.target.endswith("some/dir/Model.PT2")
    assert parse_spec("m.onnx").kind == "onnxrt" and parse_spec("m.joblib").kind == "scikit"
    assert not parse_spec("builtin:mlp").is_model_file
    with_knobs = (
        parse_spec("m.onnx").with_options(allow_pickle=None, method="x").with_knobs({"spinning": True})
    )
    assert with_knobs.options == (("method", "x"),) and with_knobs.knobs == (("spinning", True),)


def test_onnx_knobs_reach_the_session(sklearn_models: dict[str, Path]) -> None:
    ort = need("onnxruntime", "onnx")
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed")
    mf = ModelFile(parse_spec(str(sklearn_models["onnx"])).with_knobs({"execution_mode": "parallel"}))
    so = mf.load(threads=2).handle.get_session_options()
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (2, 2)
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "1"  # ONNX Runtime's default
    so = mf.load(threads=3, execution_mode="sequential", spinning=False).handle.get_session_options()
    assert (so.intra_op_num_threads, so.inter_op_num_threads) == (3, 1)
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_estimator_n_jobs_forced_to_one(tmp_path: Path) -> None:
    need("sklearn", "sklearn")
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(0).standard_normal((60, FEATURES))
    joblib.dump(RandomForestClassifier(n_estimators=3, n_jobs=-1).fit(x, x[:, 0] > 0), tmp_path / "rf.joblib")
    loaded = ModelFile(parse_spec(str(tmp_path / "rf.joblib")).with_options(allow_pickle=True)).load(
        threads=1
    )
    assert loaded.handle.n_jobs == 1
    assert loaded.notes == [
        "n_jobs forced to 1 in each worker (was n_jobs=-1): the workers are the parallelism"
    ]


def test_a_factory_may_take_the_knobs(tmp_path: Path) -> None:
    (tmp_path / "wrapper.py").write_text(
        textwrap.dedent(
            """
            from tuner.models import factory

            @factory
            def load(*, threads=1):
                return lambda rows: [threads] * len(rows)

            def plain():
                return lambda rows: ["no knobs"] * len(rows)
            """
        )
    )
    for backend in ("process", "thread"):
        cfg = EngineConfig(backend=backend, workers=1, threads_per_worker=3)
        with Engine(f"{tmp_path / 'wrapper.py'}:load", cfg) as e:
            assert list(e.map([1, 2])) == [3, 3]
        with Engine(f"{tmp_path / 'wrapper.py'}:plain", cfg) as e:  # one without keywords: as before
            assert list(e.map([1])) == ["no knobs"]


def test_adapter_dimensions_in_the_search() -> None:
    from types import SimpleNamespace

    Info = lambda: SimpleNamespace(dimensions={"execution_mode": ("sequential", "parallel")})  # noqa: E731

    base = Space(("process",), (1, 2), (1,), (64,), max_parallel=2)
    space = with_dimensions(base, Info(), ["execution_mode"])
    assert len(space.configs()) == 2 * len(base.configs())
    assert "× execution_mode sequential,parallel" in space.describe()
    strategy = AdaptiveStrategy(
        space, Objective(), TrialConfig("process", 2, 1, 64, (("execution_mode", "sequential"),))
    )
    assert strategy.next() == TrialConfig("process", 2, 1, 64, (("execution_mode", "sequential"),))
    neighbours = strategy._neighbours(strategy.start)
    assert TrialConfig("process", 2, 1, 64, (("execution_mode", "parallel"),)) in neighbours
    with pytest.raises(ConfigError, match="'spin' is not a dimension of this model; it has execution_mode"):
        with_dimensions(base, Info(), ["spin"])
    label = TrialConfig("process", 1, 1, 64, (("execution_mode", "parallel"), ("spinning", True))).label()
    assert label == "process ×1 · 1 thread · partition 64 · execution_mode parallel · spinning on"


def test_npz_in_and_out(tmp_path: Path) -> None:
    a, b = np.arange(12, dtype=np.float32).reshape(6, 2), np.arange(6, dtype=np.int64)
    np.savez(tmp_path / "in.npz", a=a, b=b)
    cols = load_inputs(tmp_path / "in.npz")
    assert isinstance(cols, Columns) and cols.names == ["a", "b"] and len(cols) == 6
    part = cols[2:4]
    np.testing.assert_array_equal(part.arrays["a"], a[2:4])
    assert cols[1]["b"] == 1
    save_outputs(tmp_path / "out.npz", [(x, int(y)) for x, y in zip(a, b, strict=True)], names=["x", "y"])
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["x"], a)
    np.testing.assert_array_equal(out["y"], b)
    np.savez(tmp_path / "ragged.npz", a=a, b=b[:3])
    with pytest.raises(DataError, match=r"arrays hold different numbers of rows \(a 6, b 3\)"):
        load_inputs(tmp_path / "ragged.npz")
    with pytest.raises(DataError, match="each item has 2 outputs"):
        save_outputs(tmp_path / "out.npy", [(1, 2), (3, 4)])
    assert not (tmp_path / "out.npy").exists()


def test_runtime_compares_the_framework_version(
    sklearn_models: dict[str, Path], models: Models, tmp_path: Path, caplog
) -> None:
    need("onnxruntime", "onnx")
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed")
    from tuner.cli import main
    from tuner.profile import load_profile, save_profile
    from tuner.runtime import Runtime

    prof = tmp_path / "p.yaml"
    args = [
        "--workers",
        "1",
        "--threads",
        "1",
        "--partition-sizes",
        "64",
        "--strategy",
        "grid",
        "--window",
        "0.1",
    ]
    assert (
        main(["bench", "--model", str(sklearn_models["onnx"]), *args, "--items", "256", "--out", str(prof)])
        == 0
    )
    p = load_profile(prof)
    save_profile(
        p.model_copy(update={"model": p.model.model_copy(update={"framework_version": "0.0.1"})}), prof
    )
    with caplog.at_level(logging.WARNING, logger="tuner.runtime"):
        rt = Runtime.from_profile(prof)
    assert any("measured with onnxruntime 0.0.1, this host has" in r.getMessage() for r in caplog.records)
    assert dict(rt.model.knobs) == {"execution_mode": "sequential", "spinning": True}
    with pytest.raises(ProfileError, match=r"measured with onnxruntime 0\.0\.1"):
        Runtime.from_profile(prof, strict=True)


def test_first_wave_claim_mlp_runs_one_blas_thread() -> None:
    """builtin:mlp with 1 BLAS thread per worker: one thread computes (OpenBLAS's pool, made at
    numpy's import, exists but sleeps)."""
    x = np.random.default_rng(0).standard_normal((1024, 256)).astype(np.float32)
    r = run_trial("builtin:mlp", x, TrialConfig("process", 1, 1, 64), QUICK, usable_cores=2)
    assert r.threads["ran"] == 1 and r.threads["over"] is False, r.threads
    assert r.threads["os_threads"] >= 2  # the worker's main thread and tuner's parent watch, at least


def test_a_pool_the_knobs_do_not_reach_is_caught(tmp_path: Path) -> None:
    """A wrapper that runs its own pool of 2 under threads_per_worker=1: the trial is marked and
    the evidence names the pools loaded in that worker."""
    (tmp_path / "greedy.py").write_text(
        textwrap.dedent(
            """
            from concurrent.futures import ThreadPoolExecutor
            import numpy as np

            pool = ThreadPoolExecutor(2)  # a pool tuner knows nothing about

            def spin(rows):
                s = 0
                for i in range(20000):
                    s += i
                return s

            def predict(rows):
                list(pool.map(spin, [rows, rows]))
                return np.asarray(rows) * 2
            """
        )
    )
    x = np.arange(512, dtype=np.float32)
    r = run_trial(
        f"{tmp_path / 'greedy.py'}:predict", x, TrialConfig("process", 1, 1, 16), QUICK, usable_cores=2
    )
    assert r.threads["over"] is True and r.threads["ran"] >= 2, r.threads
    assert r.threads["allowed"] == 1
    from tuner.bench.report import status_of

    assert "threads over" in status_of(r)


def test_options_parse(tmp_path: Path) -> None:
    assert Options.from_pairs({"allow_pickle": True, "other": 1}) == Options(allow_pickle=True)


def test_thread_backend_evidence_is_the_process_not_divided() -> None:
    x = np.random.default_rng(0).standard_normal((1024, 256)).astype(np.float32)
    r = run_trial("builtin:mlp", x, TrialConfig("thread", 2, 1, 64), QUICK, usable_cores=2)
    # two worker threads × 1 thread, plus the engine's supervisor and the trial's feeder
    assert r.threads["scope"] == "process (all workers share it)" and r.threads["allowed"] == 4
    assert 1 <= r.threads["ran"] <= 4 and r.threads["over"] is False, r.threads


def test_the_issue_scenario_a_plain_onnx_wrapper_is_caught_the_file_is_not(tmp_path: Path) -> None:
    """A wrapper made as a new user would (``InferenceSession(path)``, no thread settings) under
    threads_per_worker=1: ONNX Runtime's own pool (physical cores) runs beside it, and the evidence
    names it. The same file as a spec runs the 1 thread the profile says."""
    need("onnxruntime", "onnx")
    need("onnx", "test-models")
    import psutil

    if (psutil.cpu_count(logical=False) or 1) < 2:
        pytest.skip("ONNX Runtime's default pool has one thread on a 1-core host: nothing to catch")
    from benchmarks.frameworks import make_onnx

    make_onnx(tmp_path / "mlp.onnx")
    (tmp_path / "plain.py").write_text(
        "import onnxruntime as ort\n\n"
        "def load():\n"
        f"    session = ort.InferenceSession({str(tmp_path / 'mlp.onnx')!r})\n"
        "    return lambda rows: session.run(None, {'x': rows})[0]\n"
    )
    x = np.random.default_rng(0).standard_normal((1024, 512)).astype(np.float32)
    config = TrialConfig("process", 1, 1, 256)
    plain = run_trial(f"{tmp_path / 'plain.py'}:load", x, config, QUICK, usable_cores=2)
    assert plain.threads["over"] is True and plain.threads["ran"] >= 2, plain.threads
    assert plain.threads["pools"] == ["ONNX Runtime's intra-op pool (SessionOptions.intra_op_num_threads)"]
    as_spec = run_trial(str(tmp_path / "mlp.onnx"), x, config, QUICK, usable_cores=2)
    assert as_spec.threads["ran"] == 1 and as_spec.threads["over"] is False, as_spec.threads
