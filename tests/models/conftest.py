"""Tiny real models, made here (no downloads), once per session: a scikit-learn classifier saved with
skops and joblib and converted with skl2onnx; a small torch network saved as TorchScript and as a
``torch.export`` program; a torch program with two named inputs and two outputs.

A framework that is not installed skips the tests that need it, with the reason (CI installs the
extras: ``TEST_EXTRAS`` in the Makefile, so nothing is skipped there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

FEATURES = 8
CLASSES = 3


def need(module: str, extra: str) -> Any:
    """The module, or skip with the install line that would bring it."""
    return pytest.importorskip(module, reason=f"{module} is not installed (pip install 'tuner[{extra}]')")


@dataclass
class Models:
    folder: Path
    x: np.ndarray  # float32 rows of FEATURES: what every single-input model is fed
    x_path: Path


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    folder = tmp_path_factory.mktemp("models")
    x = np.random.default_rng(7).standard_normal((300, FEATURES)).astype(np.float32)
    np.save(folder / "x.npy", x)
    return Models(folder, x, folder / "x.npy")


@pytest.fixture(scope="session")
def sklearn_models(models: Models) -> dict[str, Path]:
    """clf.skops, clf.joblib (a pickle) and clf.onnx (skl2onnx, probabilities as a plain tensor)."""
    need("sklearn", "sklearn")
    sio = need("skops.io", "sklearn")
    import joblib
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5).astype(int)
    clf = LogisticRegression(max_iter=200).fit(x, y)
    out = {"skops": models.folder / "clf.skops", "joblib": models.folder / "clf.joblib"}
    sio.dump(clf, out["skops"])
    joblib.dump(clf, out["joblib"])
    try:
        from skl2onnx import to_onnx
    except ImportError:
        return out
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    out["onnx"] = models.folder / "clf.onnx"
    out["onnx"].write_bytes(onx.SerializeToString())
    return out


@pytest.fixture(scope="session")
def torch_models(models: Models) -> dict[str, Path]:
    """net.pt (TorchScript), net.pt2 (torch.export, dynamic batch) and two.pt2 (inputs a, b;
    outputs a + b and a * b)."""
    torch = need("torch", "torch")
    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = torch.nn.Linear(FEATURES, 16)
            self.b = torch.nn.Linear(16, CLASSES)

        def forward(self, x: Any) -> Any:
            return self.b(torch.relu(self.a(x)))

    class Two(torch.nn.Module):
        def forward(self, a: Any, b: Any) -> Any:
            return a + b, a * b

    net = Net().eval()
    out = {"pt": models.folder / "net.pt", "pt2": models.folder / "net.pt2", "two": models.folder / "two.pt2"}
    torch.jit.save(torch.jit.trace(net, torch.zeros(4, FEATURES)), str(out["pt"]))
    batch = torch.export.Dim("batch")
    example = torch.zeros(4, FEATURES)
    torch.export.save(torch.export.export(net, (example,), dynamic_shapes={"x": {0: batch}}), str(out["pt2"]))
    pair = (torch.zeros(4, 4), torch.zeros(4, 4))
    dyn = {"a": {0: batch}, "b": {0: batch}}
    torch.export.save(torch.export.export(Two(), pair, dynamic_shapes=dyn), str(out["two"]))
    return out
