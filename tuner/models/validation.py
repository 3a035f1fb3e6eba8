"""Checking a model: :func:`validate` runs it once on a small sample in the parent, before any worker
starts; :func:`check_outputs` checks every partition's result (one output per item).
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tuner.errors import ModelSpecError
from tuner.models.decorators import mark_of
from tuner.models.loader import instantiate, kind_of, resolve
from tuner.models.spec import ModelSpec, parse_spec, spec_text
from tuner.models.words import article, name_of, one_line, plural

__all__ = ["SAMPLE_ITEMS", "ModelInfo", "check_outputs", "validate"]

SAMPLE_ITEMS = 4  # items run by validate(): enough to catch a wrong output count, cheap for any model


def check_outputs(spec_text: str, partition: Any, outputs: Any) -> None:
    """:class:`ModelSpecError` unless ``outputs`` holds exactly one entry per item of ``partition``."""
    n_in = len(partition)
    if isinstance(outputs, (str, bytes, dict)) or not hasattr(outputs, "__len__"):
        raise ModelSpecError(
            f"{spec_text}: returned {article(outputs)} for {plural(n_in, 'input')}; "
            "expected a list or array with one output per item"
        )
    try:
        n_out = len(outputs)
    except TypeError:  # a 0-d numpy array has __len__ but no length
        raise ModelSpecError(
            f"{spec_text}: returned a scalar for {plural(n_in, 'input')}; "
            "expected a list or array with one output per item"
        ) from None
    if n_out != n_in:
        raise ModelSpecError(f"{spec_text}: returned {plural(n_out, 'output')} for {plural(n_in, 'input')}")


@dataclass
class ModelInfo:
    """What :func:`validate` learned about a model in the parent process."""

    spec: str
    kind: str  # "batch" | "factory" | "per_item": how the spec's callable is read
    description: str
    bound: str  # "blas" | "gil" | "io" | "unknown": a hint for the search
    has_generator: bool
    item: str  # one input item, e.g. "float32[256]", "int64", "int", "json"
    load_s: float  # seconds for one load (factory call) in the parent
    checked: bool = False  # the model ran on a sample and returned one output per item
    # model files (tuner.models.formats) only:
    format: str | None = None  # "onnx", "torch", "sklearn"
    framework: str | None = None  # "onnxruntime", "torch", "scikit-learn"
    framework_version: str | None = None
    inputs: str | None = None  # the file's input signature, e.g. "X: float32[?x8]"
    outputs: list[str] = field(default_factory=list)  # output names, in order
    notes: list[str] = field(default_factory=list)  # what the adapter changed or could not apply
    dimensions: dict[str, tuple[Any, ...]] = field(default_factory=dict)  # extra sweep dimensions
    knobs: dict[str, Any] = field(default_factory=dict)  # the adapter's knobs and their defaults
    pool_note: str = ""  # the framework's thread pools, in words
    #: seconds per item of a second call on the sample in this process, with the framework's own
    #: threads (the first call pays one-off costs): what sizes the default deployment's partitions
    per_item_s: float | None = None


def validate(
    spec: str | ModelSpec | Callable[..., Any], sample: Any = None, where: str | None = None
) -> ModelInfo:
    """Resolve, load once and run on a few items (from ``sample`` or the model's generator).

    Raises :class:`ModelSpecError` with one line; a ``sample`` that does not fit a model file's
    inputs is a :class:`~tuner.errors.DataError` naming ``where`` (the input file). Without a sample
    and a generator nothing is run and ``checked`` is False.
    """
    from tuner.models.loader import ModelFile

    text = spec_text(spec)
    obj = resolve(spec)
    kind = kind_of(text, obj)
    mark = mark_of(obj)
    gen = mark.inputs if mark is not None else None
    t0 = time.perf_counter()
    extra: dict[str, Any] = {}
    if isinstance(obj, ModelFile):
        loaded = obj.describe()
        fn = loaded.run
        a = obj.adapter
        extra = {
            "format": a.NAME,
            "framework": loaded.framework,
            "framework_version": loaded.version,
            "inputs": ", ".join(f"{i.name}: {i.item}" for i in loaded.inputs) or None,
            "outputs": list(loaded.outputs),
            "notes": list(loaded.notes),
            "dimensions": dict(a.DIMENSIONS),
            "knobs": {k: v for k, v in asdict(a.Knobs()).items() if k != "threads"},
            "pool_note": a.POOL_NOTE,
        }
        if sample is not None:
            obj.check_input(sample, where or "input")
    else:
        fn = instantiate(text, obj)
    load_s = time.perf_counter() - t0
    if sample is None and gen is not None:
        try:
            sample = gen(SAMPLE_ITEMS, 0)
        except Exception as e:
            raise ModelSpecError(f"{text}: input generator {name_of(gen)}() raised {one_line(e)}") from e
    checked = False
    per_item_s: float | None = None
    item = "unknown"
    if sample is not None:
        part = sample[:SAMPLE_ITEMS] if hasattr(sample, "__getitem__") else list(sample)[:SAMPLE_ITEMS]
        if len(part):
            item = _describe_item(part)
            try:
                outputs = fn(part)
            except Exception as e:
                raise ModelSpecError(
                    f"{text}: raised {one_line(e)} on a sample of {plural(len(part), 'item')}"
                ) from e
            check_outputs(text, part, outputs)
            checked = True
            per_item_s = _per_item_s(fn, sample)
    return ModelInfo(
        spec=text,
        kind=kind,
        description=loaded.description if isinstance(obj, ModelFile) else _description(spec, obj),
        bound=mark.bound if mark is not None else "unknown",
        has_generator=gen is not None,
        item=item,
        load_s=load_s,
        checked=checked,
        per_item_s=per_item_s,
        **extra,
    )


#: the per-item timing stops growing its slice once one call takes this long
TIMING_CALL_S = 0.05


def _per_item_s(fn: Callable[[Any], Any], sample: Any) -> float | None:
    """Seconds per item of the model in this process, with the framework's own threads: calls on
    slices of the sample growing ×4 from SAMPLE_ITEMS until one takes TIMING_CALL_S (so a call's
    fixed cost does not pass for per-item cost) or the sample ends; the lowest per-item figure of
    those calls (noise only ever adds time). The first call, which paid one-off costs, is not timed
    (it ran above)."""
    if not hasattr(sample, "__getitem__") or not hasattr(sample, "__len__"):
        return None
    n, best = SAMPLE_ITEMS, math.inf
    while True:
        part = sample[: min(n, len(sample))]
        t0 = time.perf_counter()
        fn(part)
        dt = time.perf_counter() - t0
        best = min(best, dt / max(1, len(part)))
        if dt >= TIMING_CALL_S or len(part) >= len(sample):
            return best
        n *= 4


def _description(spec: str | ModelSpec | Callable[..., Any], obj: Any) -> str:
    ms = spec if isinstance(spec, ModelSpec) else None
    if isinstance(spec, str):
        ms = parse_spec(spec)
    if ms is not None and ms.kind == "builtin":
        from tuner.models.builtin import BUILTINS

        return BUILTINS[ms.target].description
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _describe_item(part: Any) -> str:
    if type(part).__name__ == "Columns":
        from tuner.models.signature import describe_items

        return describe_items(part)
    shape = getattr(part, "shape", None)
    dtype = getattr(part, "dtype", None)
    if shape is not None and dtype is not None:
        dims = "x".join(str(d) for d in shape[1:])
        return f"{dtype}[{dims}]" if dims else str(dtype)
    first = part[0]
    if isinstance(first, bool):
        return "bool"
    if isinstance(first, (int, float, str)):
        return type(first).__name__
    if isinstance(first, (dict, list)) or first is None:
        return "json"
    return type(first).__name__
