"""Loading a model: resolve a spec to its callable (import the module or file), read the callable, get
the batch function a worker calls for every partition.

Each worker calls :func:`load_model` once. Resolving dispatches on the spec's ``kind`` (``_RESOLVERS``):
Python code is imported; a model file (``model.onnx``) resolves to a :class:`ModelFile`, a factory
that loads the file through its format adapter (:mod:`tuner.models.formats`) with the knobs.

The knobs (``threads`` and an adapter's own, e.g. ``execution_mode``) reach every factory that
accepts them as keyword arguments, so a user's own wrapper can apply them too::

    @factory
    def load(*, threads=1):
        so = onnxruntime.SessionOptions(); so.intra_op_num_threads = threads
        return onnxruntime.InferenceSession("model.onnx", so).run ...
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from tuner.errors import ModelSpecError, TunerError
from tuner.models.decorators import BatchFn, InputGen, Mark, mark_of
from tuner.models.spec import ModelSpec, parse_spec, spec_text
from tuner.models.words import article, name_of, one_line

__all__ = ["ModelFile", "input_generator", "instantiate", "kind_of", "load_model", "resolve"]


def resolve(spec: str | ModelSpec | Callable[..., Any]) -> Callable[..., Any]:
    """Import the spec's module (or file) and return its callable; :class:`ModelSpecError` if it can't."""
    if isinstance(spec, (str, ModelSpec)):
        ms = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    elif callable(spec):
        return spec
    else:
        raise ModelSpecError(f"{spec!r}: expected a model spec string or a callable, not {article(spec)}")
    return _RESOLVERS[ms.kind](ms)


def _resolve_builtin(ms: ModelSpec) -> Callable[..., Any]:
    from tuner.models.builtin import BUILTINS  # deferred: numpy-backed workloads

    model = BUILTINS.get(ms.target)
    if model is None:
        raise ModelSpecError(f"{ms.spec}: unknown built-in model; choose from {', '.join(sorted(BUILTINS))}")
    return model.factory


def _resolve_module(ms: ModelSpec) -> Callable[..., Any]:
    return _attribute(ms, _import_module(ms), f"module '{ms.target}'")


def _resolve_file(ms: ModelSpec) -> Callable[..., Any]:
    return _attribute(ms, _load_file(ms), f"file '{ms.target}'")


def _attribute(ms: ModelSpec, module: ModuleType, where: str) -> Callable[..., Any]:
    obj: Any = module
    for part in ms.attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModelSpecError(f"{ms.spec}: {where} has no attribute '{ms.attr}'") from None
    if not callable(obj):
        raise ModelSpecError(f"{ms.spec}: '{ms.attr}' is {article(obj)}, not callable")
    return obj


class ModelFile:
    """A model file as a factory: ``ModelFile(spec)(threads=2, execution_mode=...)`` loads it through
    its format adapter with those knobs and returns the batch function.

    ``describe()`` loads it once in this process (1 thread) for what the file says about itself:
    inputs, outputs, framework and version; the input generator is built from it.
    """

    def __init__(self, ms: ModelSpec) -> None:
        from tuner.models.formats import adapter_named
        from tuner.models.formats.base import Options

        self.spec = ms
        self.adapter = adapter_named(ms.kind)
        self.options = Options.from_pairs(ms.options)
        self._described: Any = None
        self.__tuner_model__ = Mark("factory", inputs=self.generate, bound="blas")
        self.__doc__ = f"{os.path.basename(ms.target)} ({self.adapter.FRAMEWORK})"

    def knobs(self, threads: int | None, **knobs: Any) -> Any:
        """The adapter's Knobs from the threads knob, the spec's knobs and these (which win)."""
        from tuner.models.formats.base import knob_values

        try:
            return knob_values(self.adapter.Knobs, {**dict(self.spec.knobs), **knobs}, threads)
        except ModelSpecError as e:
            raise ModelSpecError(f"{self.spec.spec}: {e}") from None

    def load(self, threads: int | None = 1, **knobs: Any) -> Any:
        """The adapter's :class:`~tuner.models.formats.base.Loaded` for these knobs."""
        return self.adapter.load(self.spec.target, self.knobs(threads, **knobs), self.options)

    def __call__(self, threads: int | None = 1, **knobs: Any) -> BatchFn:
        return self.load(threads, **knobs).run

    def describe(self) -> Any:
        """Loaded once with 1 thread (cached): inputs, outputs, framework, version, notes."""
        if self._described is None:
            self._described = self.load(1)
        return self._described

    def generate(self, n: int, seed: int) -> Any:
        """``n`` seeded items from the model's input signature (see formats.base.make_inputs)."""
        from tuner.models.formats.base import make_inputs

        loaded = self.describe()
        if not loaded.inputs:
            raise ModelSpecError(
                f"{self.spec.spec}: the file records no input shapes; give --input FILE, or "
                "--input-shape (e.g. 3x224x224) and --input-dtype (default float32)"
            )
        return make_inputs(loaded.inputs, n, seed, self.spec.spec)

    def check_input(self, items: Any, where: str) -> None:
        """One line if ``items`` do not fit the model's inputs (names, dtype, shape, feature count)."""
        from tuner.models.signature import check_model_input

        check_model_input(
            self.describe().inputs, items, where, self.spec.spec, exact=self.spec.kind != "scikit"
        )


def _resolve_model_file(ms: ModelSpec) -> Callable[..., Any]:
    return ModelFile(ms)


# One resolver per ModelSpec.kind; a model-file format adapter is one more entry.
_RESOLVERS: dict[str, Callable[[ModelSpec], Callable[..., Any]]] = {
    "builtin": _resolve_builtin,
    "module": _resolve_module,
    "file": _resolve_file,
    "onnxrt": _resolve_model_file,
    "pytorch": _resolve_model_file,
    "scikit": _resolve_model_file,
}


def _ensure_on_path(folder: str) -> None:
    # Workers are fresh processes (forkserver/spawn): the module must be importable from the
    # folder the user ran tuner in, as uvicorn does with --app-dir.
    if folder not in sys.path and not (folder == os.getcwd() and "" in sys.path):
        sys.path.insert(0, folder)


def _import_module(ms: ModelSpec) -> ModuleType:
    _ensure_on_path(os.getcwd())
    if ms.target not in sys.modules:
        importlib.invalidate_caches()  # a module written after start-up must be found
    try:
        return importlib.import_module(ms.target)
    except ModuleNotFoundError as e:
        # Missing module itself (or a parent package) vs. a missing import *inside* it.
        if e.name and (ms.target == e.name or ms.target.startswith(e.name + ".")):
            raise ModelSpecError(f"{ms.spec}: no module named '{e.name}'") from e
        raise ModelSpecError(f"{ms.spec}: importing {ms.target} raised ModuleNotFoundError: {e}") from e
    except SyntaxError as e:
        raise ModelSpecError(_syntax_message(ms, e)) from e
    except Exception as e:
        raise ModelSpecError(f"{ms.spec}: importing {ms.target} raised {one_line(e)}") from e


def _file_module_name(path: str) -> str:
    """A stable module name per absolute path, so functions defined there pickle by reference."""
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    digest = hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"_tuner_file_{stem}_{digest}"


_file_lock = threading.RLock()


def _load_file(ms: ModelSpec) -> ModuleType:
    # Thread workers load the model concurrently: one of them must not see another's half-run module.
    with _file_lock:
        return _load_file_locked(ms)


def _load_file_locked(ms: ModelSpec) -> ModuleType:
    path = ms.target
    if not os.path.exists(path):
        raise ModelSpecError(f"{ms.spec}: file not found: {path}")
    if os.path.isdir(path):
        raise ModelSpecError(f"{ms.spec}: {path} is a folder, not a Python file")
    name = _file_module_name(path)
    mtime = os.stat(path).st_mtime_ns
    cached = sys.modules.get(name)
    # Reuse the module unless the file changed (a long TUI session may re-check an edited model).
    if cached is not None and getattr(cached, "__tuner_mtime__", None) == mtime:
        return cached
    loader = importlib.machinery.SourceFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None  # a loader is given, so a spec is always made
    module = importlib.util.module_from_spec(spec)
    module.__tuner_mtime__ = mtime  # type: ignore[attr-defined]
    # Like `python file.py`: sibling modules of the model file are importable.
    _ensure_on_path(os.path.dirname(path))
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        if isinstance(e, SyntaxError):
            raise ModelSpecError(_syntax_message(ms, e)) from e
        if isinstance(e, Exception):
            raise ModelSpecError(f"{ms.spec}: importing {path} raised {one_line(e)}") from e
        raise
    return module


def _syntax_message(ms: ModelSpec, e: SyntaxError) -> str:
    return f"{ms.spec}: {type(e).__name__} in {e.filename} line {e.lineno}: {e.msg}"


class _PerItem:
    """Turns ``fn(item)`` into ``fn(partition) -> list``."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __call__(self, partition: Any) -> list[Any]:
        fn = self.fn
        return [fn(item) for item in partition]

    def __repr__(self) -> str:
        return f"per_item({self.fn!r})"


def _binds(sig: inspect.Signature, n: int) -> bool:
    try:
        sig.bind(*range(n))
    except TypeError:
        return False
    return True


def kind_of(text: str, obj: Callable[..., Any]) -> str:
    """ "batch" | "per_item" | "factory": from the decorator, else from the signature."""
    mark = mark_of(obj)
    if mark is not None:
        return mark.kind
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):  # some C callables have no signature: take the default
        return "batch"
    if _binds(sig, 1):
        return "batch"
    if _binds(sig, 0):
        return "factory"
    params = ", ".join(str(p.replace(annotation=p.empty)) for p in sig.parameters.values())
    raise ModelSpecError(
        f"{text}: {name_of(obj)}({params}) cannot be called with one partition nor with no arguments; "
        "expected fn(partition), @per_item fn(item) or a zero-argument factory"
    )


def _knob_kwargs(obj: Callable[..., Any], knobs: dict[str, Any]) -> dict[str, Any]:
    """The knobs a factory accepts as keyword arguments (all of them if it takes ``**kwargs``)."""
    if not knobs:
        return {}
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return dict(knobs)
    return {
        k: v
        for k, v in knobs.items()
        if k in params
        and params[k].kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def instantiate(text: str, obj: Callable[..., Any], knobs: dict[str, Any] | None = None) -> BatchFn:
    """The batch function ``obj`` stands for: itself, a per-item wrapper, or what its factory returns.

    A factory is called with the ``knobs`` it accepts as keyword arguments (``threads``, an adapter's
    own); one that takes none is called with no arguments, as before.
    """
    kind = kind_of(text, obj)
    if kind == "per_item":
        return _PerItem(obj)
    if kind == "batch":
        return obj
    try:
        made = obj(**_knob_kwargs(obj, knobs or {}))
    except TunerError:
        raise
    except Exception as e:
        raise ModelSpecError(f"{text}: factory {name_of(obj)}() raised {one_line(e)}") from e
    if not callable(made):
        raise ModelSpecError(f"{text}: factory {name_of(obj)}() returned {article(made)}, not a callable")
    mark, made_mark = mark_of(obj), mark_of(made)
    if (mark is not None and mark.per_item) or (made_mark is not None and made_mark.kind == "per_item"):
        return _PerItem(made)
    return made


def load_model(spec: str | ModelSpec | Callable[..., Any], threads: int | None = None) -> BatchFn:
    """Resolve, call the factory if it is one, wrap per-item functions: returns ``fn(partition)``.

    Called ONCE per worker, with the worker's threads knob (None: not set); a factory that accepts
    ``threads`` (or a ModelSpec's adapter knobs) as keyword arguments gets them. The returned
    function does not check the output count: call :func:`~tuner.models.check_outputs` on each result.
    """
    knobs: dict[str, Any] = {"threads": threads}
    if isinstance(spec, ModelSpec):
        knobs.update(dict(spec.knobs))
    return instantiate(spec_text(spec), resolve(spec), knobs)


def input_generator(spec: str | ModelSpec | Callable[..., Any]) -> InputGen | None:
    """The model's input generator ``gen(n_items, seed)``, or None if it has none."""
    mark = mark_of(resolve(spec))
    return mark.inputs if mark is not None else None
