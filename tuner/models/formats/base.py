"""What every format adapter provides, and the helpers they share.

An adapter is a module (not a class hierarchy: the lesson of optimum-benchmark's backends is the
pairing of a knobs dataclass with the code that loads and runs, not a base class that branches on
the library). It defines::

    NAME        format name for messages and the profile ('onnx', 'torchscript', ...)
    FRAMEWORK   the framework it runs on, as pip names it ('onnxruntime', 'torch', 'scikit-learn')
    EXTRA       the tuner extra that installs it ('onnx' -> pip install 'tuner[onnx]')
    Knobs       a frozen dataclass of the framework's knobs, each with its default; ``threads``
                is the sweep's threads per worker, the others are the adapter's own
    DIMENSIONS  {knob: values}: extra sweep dimensions the search may try (off unless asked for)
    POOL_NOTE   one line on the framework's thread pools (shown with the thread evidence)
    THREADS     what the threads knob sizes, in a recommendation's words ('intra-op', 'BLAS')
    version()   the installed framework's version, or None (never imports the framework)
    pools(knobs)            {pool name: threads the knobs give it}
    running(knobs)          threads one worker computes with at once (the thread evidence's bound)
    load(path, knobs, options) -> Loaded

``Options`` are what the user says about the file (not swept): pickle consent, the scikit-learn
method, an execution provider, the input shape for a format that does not record one.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from tuner.errors import ModelSpecError

__all__ = [
    "InputSpec",
    "Loaded",
    "Options",
    "framework_version",
    "import_framework",
    "knob_values",
    "make_inputs",
    "one_line",
    "to_batch",
]


@dataclass(frozen=True)
class Options:
    """What the user says about a model file (recorded in the profile, never swept)."""

    allow_pickle: bool = False  # load formats that run code when loaded (.joblib, .pkl)
    method: str = "predict"  # scikit-learn: predict | predict_proba | transform | decision_function
    provider: str | None = None  # ONNX Runtime execution provider; None: CPUExecutionProvider
    input_shape: tuple[int, ...] | None = None  # one item's shape, for formats that record none
    input_dtype: str | None = None

    @classmethod
    def from_pairs(cls, pairs: Any) -> Options:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(pairs).items() if k in known})


@dataclass(frozen=True)
class InputSpec:
    """One named input: numpy dtype name and shape, the first dimension the batch (None: any size)."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]

    @property
    def item(self) -> str:
        """One item as tuner writes it: ``float32[3x224x224]`` (a ``?`` for a size the model leaves open)."""
        dims = "x".join("?" if d is None else str(d) for d in self.shape[1:])
        return f"{self.dtype}[{dims}]" if dims else self.dtype


@dataclass
class Loaded:
    """A model file loaded with its knobs: the batch function and what the file says about itself."""

    run: Callable[[Any], Any]  # fn(partition) -> one output per item (a tuple per item: several outputs)
    inputs: list[InputSpec]
    outputs: list[str]
    framework: str
    version: str
    notes: list[str] = field(default_factory=list)  # said once, e.g. "n_jobs forced to 1"
    description: str = ""
    handle: Any = None  # the framework's own object (session, module, estimator), for inspection


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (framework errors can be pages long)."""
    text = str(e).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def framework_version(dist: str) -> str | None:
    """The installed version of a distribution, without importing it; None if absent."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def import_framework(module: str, path: str, dist: str, extra: str) -> Any:
    """Import a framework, or one line saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name and (
            e.name == module or module.startswith(e.name + ".") or e.name.startswith(module.split(".")[0])
        ):
            name = path.rsplit("/", 1)[-1]
            raise ModelSpecError(f"{name} needs {dist}: pip install 'tuner[{extra}]'") from None
        raise ModelSpecError(f"{path}: importing {module} raised {one_line(e)}") from None


def knob_values(knobs_cls: type, pairs: Any, threads: int | None) -> Any:
    """An adapter's Knobs from the spec's knob pairs and the threads knob; a bad value is one line."""
    names = {f.name for f in fields(knobs_cls)}
    given = dict(pairs or ())
    unknown = sorted(set(given) - names)
    if unknown:
        raise ModelSpecError(
            f"unknown knob(s) {', '.join(unknown)}: choose from {', '.join(sorted(names - {'threads'}))}"
        )
    try:
        return knobs_cls(**{**given, "threads": threads})
    except (TypeError, ValueError) as e:
        raise ModelSpecError(f"knobs: {e}") from None


def make_inputs(inputs: list[InputSpec], n: int, seed: int, where: str) -> Any:
    """``n`` seeded, deterministic items for these inputs: an array (one input) or Columns (several).

    Floats are standard normal, integers uniform in [0, 10), booleans fair coins. A dimension the
    model leaves open past the batch one must be given (``--input-shape``).
    """
    import numpy as np

    from tuner.models.columns import Columns

    rng = np.random.default_rng(seed)
    arrays: dict[str, Any] = {}
    for spec in inputs:
        rest = spec.shape[1:]
        if any(d is None for d in rest):
            raise ModelSpecError(
                f"{where}: input '{spec.name}' is {spec.item}: give one item's shape with --input-shape "
                "(e.g. 3x224x224), or --input FILE"
            )
        shape = (n, *[int(d) for d in rest if d is not None])
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arrays[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            arrays[spec.name] = rng.integers(0, 10, size=shape).astype(dtype)
        elif dtype.kind == "b":
            arrays[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise ModelSpecError(
                f"{where}: cannot generate {spec.dtype} values for input '{spec.name}'; give --input FILE"
            )
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    return Columns(arrays, where)


def to_batch(partition: Any, inputs: list[InputSpec]) -> dict[str, Any]:
    """A partition as {input name: array}: an array (one input), Columns, or a list of items
    (arrays, nested lists from .jsonl, or dicts by input name from ``Runtime.submit``)."""
    import numpy as np

    from tuner.models.columns import Columns

    if isinstance(partition, Columns):
        return {k: np.asarray(v) for k, v in partition.arrays.items()}
    if len(inputs) == 1:
        spec = inputs[0]
        if hasattr(partition, "dtype"):
            return {spec.name: partition}
        items = list(partition)
        if items and isinstance(items[0], dict):
            return {spec.name: np.stack([np.asarray(x[spec.name]) for x in items])}
        return {spec.name: np.asarray(items, dtype=spec.dtype)}
    items = list(partition)
    if items and isinstance(items[0], dict):
        return {s.name: np.stack([np.asarray(x[s.name], dtype=s.dtype) for x in items]) for s in inputs}
    raise ModelSpecError(
        f"the model takes {len(inputs)} inputs ({', '.join(s.name for s in inputs)}): "
        "give a .npz with one array per input name"
    )


def per_item(outputs: list[Any], n: int) -> Any:
    """One output per item: the array itself for a single output, else a tuple per item — kept as
    :class:`~tuner.models.columns.Rows` (the arrays whole) until an item is read."""
    if len(outputs) == 1:
        return outputs[0]
    from tuner.models.columns import Rows

    return Rows(outputs) if n else []
