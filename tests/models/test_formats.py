"""Model files end to end: ``tuner bench`` then ``tuner run`` for every format, outputs equal to the
framework run directly, and the threads that ran in each worker equal to what the profile says.

Each sweep is one configuration (process ×1 · 1 thread · partition 64, windows of 0.2 s), so the
whole file stays within its share of the suite. The CLI runs in this process (``tuner.cli.main``):
an interpreter start per command would cost more than the sweep itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.conftest import FEATURES, Models, need
from tuner.backends import backend
from tuner.cli import main
from tuner.profile import load_profile
from tuner.runtime import Runtime

ONE = [
    "--backends", "process", "--workers", "1", "--threads", "1", "--partition-sizes", "64",
    "--strategy", "grid", "--window", "0.2", "--items", "512", "--budget", "60",
]  # fmt: skip


def bench(capsys: pytest.CaptureFixture[str], model: Path, out: Path, *extra: str) -> str:
    code = main(["bench", "--model", str(model), *ONE, "--out", str(out), *extra])
    said = capsys.readouterr()
    assert code == 0, said.err
    return said.out + said.err


def run(capsys: pytest.CaptureFixture[str], profile: Path, x: Path, y: Path, *extra: str) -> None:
    code = main(["run", str(profile), "--input", str(x), "--output", str(y), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 0, err


def threads_as_profiled(profile: Path) -> None:
    """The worker ran exactly the threads the profile's knob says (and not more). A tiny model's
    default deployment (in the caller, the framework's own pool) may win: then its own count ran."""
    p = load_profile(profile)
    ev = p.evidence.threads
    assert ev is not None, "the profile records no thread evidence"
    if p.deployment().threads_per_worker is None:  # "default" in the profile
        assert ev.ran is not None and ev.ran >= 1 and ev.over is False, ev
        return
    # a process worker's own pool, or the one pool of a process whose workers are threads
    own = backend(p.recommended.backend).own_processes
    assert ev.scope == ("per worker process" if own else "process (all workers share it)"), ev
    assert ev.threads_per_worker == p.recommended.threads_per_worker == 1
    assert ev.ran == 1 and ev.over is False, ev
    assert ev.os_threads is not None and ev.os_threads >= ev.ran


@pytest.mark.timeout(90)
def test_onnx_bench_then_run(models: Models, sklearn_models: dict[str, Path], tmp_path: Path, capsys) -> None:
    ort = need("onnxruntime", "onnx")
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed (pip install 'tuner[onnx]')")
    path = sklearn_models["onnx"]
    prof = tmp_path / "clf.yaml"
    # the adapter's dimension is swept too: two trials, sequential and parallel execution
    err = bench(capsys, path, prof, "--dims", "execution_mode")
    assert "model file: onnx · onnxruntime" in err and "inputs X: float32[8]" in err
    # the headline names the pool the threads knob sizes: ONNX Runtime's intra-op pool, not BLAS
    # ("× 1 intra-op thread", or "× the framework's own intra-op threads" when the default won)
    assert "intra-op" in err.split("Recommended:")[1].splitlines()[0], err
    p = load_profile(prof)
    assert (p.model.format, p.model.framework) == ("onnx", "onnxruntime")
    assert p.model.framework_version == ort.__version__
    assert p.model.outputs == ["label", "probabilities"]
    assert p.model.input is not None and p.model.input.item == "float32[8]"
    assert p.recommended.knobs is not None and p.recommended.knobs["execution_mode"] in (
        "sequential",
        "parallel",
    )
    assert p.evidence.trials_run == 2 + 2  # the two execution modes, and the default deployment twice
    run(capsys, prof, models.x_path, tmp_path / "y.npz")
    got = np.load(tmp_path / "y.npz")
    assert got.files == ["label", "probabilities"]
    label, proba = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"X": models.x}
    )
    np.testing.assert_array_equal(got["label"], label)
    np.testing.assert_allclose(got["probabilities"], proba, rtol=1e-6)
    # map_batches: each partition as the session gave it, a label array and a probability array
    with Runtime.from_profile(prof) as rt:
        batches = list(rt.map_batches(models.x))
    assert all(type(b) is tuple and len(b) == 2 and isinstance(b[1], np.ndarray) for b in batches)
    assert max(len(b[0]) for b in batches) == min(p.recommended.partition_size, len(models.x))
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), label)
    np.testing.assert_allclose(np.concatenate([b[1] for b in batches]), proba, rtol=1e-6)
    if p.recommended.knobs["execution_mode"] == "sequential":
        threads_as_profiled(prof)


@pytest.mark.timeout(90)
def test_skops_bench_then_run(
    models: Models, sklearn_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    sio = need("skops.io", "sklearn")
    prof = tmp_path / "skops.yaml"
    # measured on the data it serves (generated items would be float64, and a profile refuses
    # another precision than it was measured with)
    bench(capsys, sklearn_models["skops"], prof, "--input", str(models.x_path))
    p = load_profile(prof)
    assert (p.model.format, p.model.method, p.model.allow_pickle) == ("sklearn", "predict", None)
    run(capsys, prof, models.x_path, tmp_path / "y.npy")
    clf = sio.load(sklearn_models["skops"])
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), clf.predict(models.x))
    threads_as_profiled(prof)


@pytest.mark.timeout(90)
def test_joblib_needs_consent_at_bench_and_again_at_run(
    models: Models, sklearn_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    import joblib

    prof = tmp_path / "pkl.yaml"
    bench(
        capsys,
        sklearn_models["joblib"],
        prof,
        "--allow-pickle",
        "--method",
        "predict_proba",
        "--input",
        str(models.x_path),
    )
    p = load_profile(prof)
    assert (p.model.allow_pickle, p.model.method) == (True, "predict_proba")
    y = tmp_path / "y.npy"
    # The profile records the consent; it never gives it: tuner run asks again.
    code = main(["run", str(prof), "--input", str(models.x_path), "--output", str(y), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not y.exists()
    assert err.count("\n") == 0 and "allow_pickle" in err and "--allow-pickle" in err, err
    run(capsys, prof, models.x_path, y, "--allow-pickle")
    clf = joblib.load(sklearn_models["joblib"])
    np.testing.assert_allclose(np.load(y), clf.predict_proba(models.x))
    threads_as_profiled(prof)


@pytest.mark.timeout(120)
def test_the_online_search_runs_a_pickle_model_with_its_consent_and_options(
    models: Models, sklearn_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    """Every online candidate is the model as the sweep ran it: --allow-pickle and --method reach them."""
    prof = tmp_path / "pkl-online.yaml"
    said = bench(
        capsys,
        sklearn_models["joblib"],
        prof,
        "--allow-pickle",
        "--method",
        "predict_proba",
        "--input",
        str(models.x_path),
        "--online", "--p99-ms", "1000", "--online-budget", "10", "--step", "0.3",
        "--batch-delays", "2", "--online-configs", "1",
    )  # fmt: skip
    assert "pass --allow-pickle" not in said and "failed" not in said, said
    p = load_profile(prof)
    assert p.online is not None, said
    assert p.online.max_rate_at_slo > 0 and any(pt.sustainable for pt in p.online.curve), said


@pytest.mark.timeout(90)
def test_a_runtime_built_directly_loads_a_pickle_only_with_consent(
    models: Models, sklearn_models: dict[str, Path]
) -> None:
    """``Runtime(path)`` asks for the same consent as ``Runtime.from_profile(path)``: ``allow_pickle``."""
    import joblib

    from tuner.errors import ModelSpecError
    from tuner.runtime import Runtime

    path = str(sklearn_models["joblib"])
    with pytest.raises(ModelSpecError, match="a pickle runs code when it is loaded"):
        with Runtime(path, backend="thread", partition_size=50):
            pass
    with Runtime(path, backend="thread", partition_size=50, allow_pickle=True) as rt:
        out = np.array(list(rt.map(models.x)))
    np.testing.assert_array_equal(out, joblib.load(path).predict(models.x))


@pytest.mark.timeout(90)
def test_torchscript_bench_then_run(
    models: Models, torch_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    import torch

    prof = tmp_path / "pt.yaml"
    # TorchScript records no input shape: tuner generates items of the shape given
    said = bench(capsys, torch_models["pt"], prof, "--input-shape", str(FEATURES))
    assert "intra-op" in said.split("Recommended:")[1].splitlines()[0], said
    p = load_profile(prof)
    assert (p.model.format, p.model.framework) == ("torch", "torch")
    assert p.model.input is not None and p.model.input.item == f"float32[{FEATURES}]"
    run(capsys, prof, models.x_path, tmp_path / "y.npy")
    with torch.inference_mode():
        want = torch.jit.load(str(torch_models["pt"]))(torch.from_numpy(models.x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)
    threads_as_profiled(prof)


@pytest.mark.timeout(90)
def test_torch_export_bench_then_run(
    models: Models, torch_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    import torch

    prof = tmp_path / "pt2.yaml"
    err = bench(capsys, torch_models["pt2"], prof)
    assert "inputs x: float32[8]" in err  # read from the program: no --input-shape needed
    run(capsys, prof, models.x_path, tmp_path / "y.npy")
    with torch.inference_mode():
        want = torch.export.load(str(torch_models["pt2"])).module()(torch.from_numpy(models.x)).numpy()
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), want, rtol=1e-5, atol=1e-6)
    threads_as_profiled(prof)


@pytest.mark.timeout(90)
def test_two_named_inputs_and_two_outputs(
    models: Models, torch_models: dict[str, Path], tmp_path: Path, capsys
) -> None:
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((200, 4)).astype(np.float32) for _ in range(2))
    np.savez(tmp_path / "ab.npz", a=a, b=b)
    prof = tmp_path / "two.yaml"
    bench(capsys, torch_models["two"], prof, "--input", str(tmp_path / "ab.npz"))
    p = load_profile(prof)
    assert p.model.input is not None and p.model.input.item == "a: float32[4], b: float32[4]"
    run(capsys, prof, tmp_path / "ab.npz", tmp_path / "y.npz")
    got = np.load(tmp_path / "y.npz")
    assert got.files == ["output_0", "output_1"]
    np.testing.assert_allclose(got["output_0"], a + b, rtol=1e-6)
    np.testing.assert_allclose(got["output_1"], a * b, rtol=1e-6)
    # several outputs per item do not fit one .npy: one line, nothing written
    code = main(["run", str(prof), "--input", str(tmp_path / "ab.npz"), "--output", str(tmp_path / "y.npy")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not (tmp_path / "y.npy").exists()
    assert "outputs" in err and ".npz" in err and err.count("\n") == 0, err
