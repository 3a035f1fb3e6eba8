"""Bad model files and inputs: one line each on stderr, exit 2, nothing written, before any worker
starts (the model is checked in the parent, on a sample, against the file's own signature)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from models.conftest import FEATURES, Models, need
from tuner.cli import main

ONE = ["--workers", "1", "--threads", "1", "--partition-sizes", "64", "--strategy", "grid", "--window", "0.2"]


def refused(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    """Run ``tuner bench ... --out`` expecting exit 2; the one line it printed (profile not written)."""
    out = tmp_path / "never.yaml"
    code = main(["bench", *args, *ONE, "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert not out.exists()
    assert err.startswith("tuner: ") and err.count("\n") == 0, err
    assert "Traceback" not in err
    return err[len("tuner: ") :]


@pytest.mark.timeout(60)
def test_wrong_feature_count_names_expected_and_got(
    models: Models, sklearn_models, tmp_path: Path, capsys
) -> None:
    need("onnxruntime", "onnx")
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed (pip install 'tuner[onnx]')")
    x5 = tmp_path / "x5.npy"
    np.save(x5, models.x[:, :5])
    onnx = str(sklearn_models["onnx"])
    err = refused(capsys, tmp_path, "--model", onnx, "--input", str(x5))
    assert err == f"{x5}: items are float32[5], {onnx} takes float32[8] (each item is [5], not [8])"
    # scikit-learn: the feature count too
    skops = str(sklearn_models["skops"])
    err = refused(capsys, tmp_path, "--model", skops, "--input", str(x5))
    assert err == f"{x5}: items are float32[5], {skops} takes float64[8] (each item is [5], not [8])"


@pytest.mark.timeout(60)
def test_wrong_dtype(models: Models, sklearn_models, tmp_path: Path, capsys) -> None:
    need("onnxruntime", "onnx")
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed (pip install 'tuner[onnx]')")
    x64 = tmp_path / "x64.npy"
    np.save(x64, models.x.astype(np.float64))
    onnx = str(sklearn_models["onnx"])
    err = refused(capsys, tmp_path, "--model", onnx, "--input", str(x64))
    assert err == (
        f"{x64}: items are float64[8], {onnx} takes float32[8] "
        "(the model computes in float32; convert with .astype('float32'))"
    )
    ints = tmp_path / "ints.npy"
    np.save(ints, np.ones((10, FEATURES), dtype=np.int64))
    err = refused(capsys, tmp_path, "--model", onnx, "--input", str(ints))
    assert "integer values, not float" in err


@pytest.mark.timeout(60)
def test_wrong_input_names(torch_models, tmp_path: Path, capsys) -> None:
    ac = tmp_path / "ac.npz"
    np.savez(ac, a=np.zeros((8, 4), np.float32), c=np.zeros((8, 4), np.float32))
    two = str(torch_models["two"])
    err = refused(capsys, tmp_path, "--model", two, "--input", str(ac))
    assert err == f"{ac}: inputs are a, c, {two} takes a, b (missing b; unexpected c)"
    one = tmp_path / "one.npy"
    np.save(one, np.zeros((8, 4), np.float32))
    err = refused(capsys, tmp_path, "--model", two, "--input", str(one))
    assert err == f"{one}: one array, {two} takes 2 inputs (a, b): give a .npz with one array per input name"


@pytest.mark.timeout(60)
def test_corrupt_files(tmp_path: Path, capsys) -> None:
    for name, words in (
        ("bad.onnx", "not a model ONNX Runtime can load"),
        ("bad.pt", "not a TorchScript file torch can load"),
        ("bad.pt2", "not a torch.export program torch can load"),
        ("bad.skops", "not a skops file"),
    ):
        module = {"onnx": "onnxruntime", "pt": "torch", "pt2": "torch", "skops": "skops.io"}[
            name.split(".")[1]
        ]
        if module == "skops.io":
            need("sklearn", "sklearn")
        need(module, "x")
        path = tmp_path / name
        path.write_bytes(b"this is not a model\n" * 10)
        err = refused(capsys, tmp_path, "--model", str(path))
        assert err.startswith(f"{name}: {words} ("), err


@pytest.mark.timeout(60)
def test_missing_framework_says_which_extra(sklearn_models, tmp_path: Path, capsys, monkeypatch) -> None:
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed (pip install 'tuner[onnx]')")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails as if absent
    err = refused(capsys, tmp_path, "--model", str(sklearn_models["onnx"]))
    assert err == "clf.onnx needs onnxruntime: pip install 'tuner[onnx]'"


@pytest.mark.timeout(60)
def test_pickle_without_consent(sklearn_models, tmp_path: Path, capsys) -> None:
    err = refused(capsys, tmp_path, "--model", str(sklearn_models["joblib"]))
    assert err == (
        "clf.joblib: a pickle runs code when it is loaded; if you trust this file pass --allow-pickle "
        "(allow_pickle: true in a profile), or save the model with skops.io.dump and use the .skops file"
    )


@pytest.mark.timeout(60)
def test_model_file_options_on_python_code_are_refused(tmp_path: Path, capsys) -> None:
    err = refused(capsys, tmp_path, "--model", "builtin:mlp", "--allow-pickle")
    assert (
        err
        == "builtin:mlp: --allow-pickle apply to model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl) only"
    )


@pytest.mark.timeout(60)
def test_torchscript_without_shape_says_how(torch_models, tmp_path: Path, capsys) -> None:
    pt = str(torch_models["pt"])
    err = refused(capsys, tmp_path, "--model", pt)
    assert err == (
        f"{pt}: the file records no input shapes; give --input FILE, or --input-shape (e.g. 3x224x224) "
        "and --input-dtype (default float32)"
    )


@pytest.mark.timeout(60)
def test_unknown_dimension(sklearn_models, tmp_path: Path, capsys) -> None:
    if "onnx" not in sklearn_models:
        pytest.skip("skl2onnx is not installed (pip install 'tuner[onnx]')")
    need("onnxruntime", "onnx")
    err = refused(capsys, tmp_path, "--model", str(sklearn_models["onnx"]), "--dims", "warp_speed")
    assert (
        err
        == "--dims warp_speed: 'warp_speed' is not a dimension of this model; it has execution_mode, spinning"
    )
