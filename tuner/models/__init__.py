"""Model specs: what a spec string means, how a worker loads it, and how its callable is read.

A *spec* names a callable:

==========================  ==================================================================
``builtin:NAME``            a reference workload from :mod:`tuner.models.builtin` (mlp, pyloop, sleep)
``package.module:attr``     imported like uvicorn's ``app``: the working directory is put on ``sys.path``
``path/to/file.py:attr``    relative or absolute; split on the LAST colon, so ``C:\\m\\serve.py:fn`` parses
a Python callable           accepted wherever a spec string is
==========================  ==================================================================

How the callable is read — decorate it to say so; an undecorated one is read from its signature::

    @batch                       # fn(partition) -> one output per item      (default: one argument)
    def predict(rows): ...

    @per_item                    # fn(item) -> output; tuner loops over the partition
    def score(item): ...

    @factory                     # called ONCE per worker with no arguments (default: zero arguments);
    def load():                  # returns a batch function or an object with __call__
        weights = ...
        return lambda rows: rows @ weights

    @factory(per_item=True)      # the factory returns a per-item function
    def load_scorer(): ...

    @batch(inputs=make_rows, bound="blas")   # attach an input generator gen(n, seed) and a hint
    def predict(rows): ...

A *partition* is a list or a numpy array (a slice of rows); the outputs are a list or a numpy array
with exactly one entry per item (:func:`check_outputs`).

Flow: the parent calls :func:`validate` once (resolve, load, run on a small sample); each worker calls
:func:`load_model` once and then calls the returned ``fn(partition)`` for every partition. This module
imports nothing heavy: worker processes and the production runtime import it.
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
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar, overload

from tuner.errors import ModelSpecError

__all__ = [
    "BOUNDS",
    "BatchFn",
    "InputGen",
    "ModelInfo",
    "ModelSpec",
    "batch",
    "check_outputs",
    "factory",
    "input_generator",
    "load_model",
    "parse_spec",
    "per_item",
    "resolve",
    "spec_text",
    "validate",
]

BatchFn = Callable[[Any], Any]
"""``fn(partition) -> outputs``: what :func:`load_model` returns."""
InputGen = Callable[[int, int], Any]
"""``gen(n_items, seed) -> np.ndarray of n rows (or a list)``, deterministic for a seed."""

BOUNDS = ("blas", "gil", "io", "unknown")
SAMPLE_ITEMS = 4  # items run by validate(): enough to catch a wrong output count, cheap for any model

_F = TypeVar("_F", bound=Callable[..., Any])
_SYNTAX = "expected builtin:NAME, package.module:attr or path/file.py:attr"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


# --------------------------------------------------------------------------- spec strings


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec string (syntax only; nothing imported yet). Picklable, so it can go to workers."""

    spec: str  # original text, for messages
    kind: str  # "builtin" | "module" | "file"
    target: str  # builtin name / module name / absolute file path
    attr: str  # attribute in the module (may be dotted: "obj.method"); the name for builtins


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; :class:`ModelSpecError` on bad syntax. Does not import anything."""
    if not isinstance(spec, str):
        raise ModelSpecError(f"{spec!r}: {_SYNTAX}")
    text = spec.strip()
    if text.startswith("builtin:"):
        name = text[len("builtin:") :]
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ModelSpecError(f"'{spec}': {_SYNTAX}")
        return ModelSpec(spec=text, kind="builtin", target=name, attr=name)
    # The LAST colon separates the attribute, so Windows drive letters (C:\x\m.py:fn) survive.
    target, sep, attr = text.rpartition(":")
    if not sep or not target or not _DOTTED.match(attr):
        raise ModelSpecError(f"'{spec}': {_SYNTAX}")
    if target.endswith(".py") or "/" in target or "\\" in target or os.sep in target:
        return ModelSpec(spec=text, kind="file", target=os.path.abspath(target), attr=attr)
    if not _DOTTED.match(target):
        raise ModelSpecError(f"'{spec}': {_SYNTAX}")
    return ModelSpec(spec=text, kind="module", target=target, attr=attr)


def spec_text(spec: str | ModelSpec | Callable[..., Any]) -> str:
    """The text that names a spec in messages (``module:qualname`` for a callable)."""
    if isinstance(spec, ModelSpec):
        return spec.spec
    if isinstance(spec, str):
        return spec.strip()
    module = getattr(spec, "__module__", None) or "?"
    name = getattr(spec, "__qualname__", None) or type(spec).__name__
    return f"{module}:{name}"


# --------------------------------------------------------------------------- decorators


@dataclass(frozen=True)
class _Mark:
    """What a decorator says about a callable; stored as ``__tuner_model__`` on it."""

    kind: str  # "batch" | "per_item" | "factory"
    inputs: InputGen | None = None
    per_item: bool = False  # factories only: the returned function is per-item
    bound: str = "unknown"


def _marker(mark: _Mark) -> Callable[[_F], _F]:
    if mark.bound not in BOUNDS:
        raise ValueError(f"bound must be one of {', '.join(BOUNDS)}, not {mark.bound!r}")
    if mark.inputs is not None and not callable(mark.inputs):
        raise TypeError(f"inputs must be a callable gen(n, seed), not {_a(mark.inputs)}")

    def apply(fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"@{mark.kind} needs a callable, not {_a(fn)}")
        # The function itself is returned (not a wrapper) so it still pickles by reference
        # and calling it directly does what its author wrote.
        fn.__tuner_model__ = mark  # type: ignore[attr-defined]
        return fn

    return apply


@overload
def batch(fn: _F, /) -> _F: ...
@overload
def batch(*, inputs: InputGen | None = None, bound: str = "unknown") -> Callable[[_F], _F]: ...
def batch(
    fn: Callable[..., Any] | None = None, /, *, inputs: InputGen | None = None, bound: str = "unknown"
) -> Any:
    """Mark ``fn(partition) -> outputs`` (one output per item). The default for one-argument callables."""
    deco = _marker(_Mark("batch", inputs=inputs, bound=bound))
    return deco if fn is None else deco(fn)


@overload
def per_item(fn: _F, /) -> _F: ...
@overload
def per_item(*, inputs: InputGen | None = None, bound: str = "unknown") -> Callable[[_F], _F]: ...
def per_item(
    fn: Callable[..., Any] | None = None, /, *, inputs: InputGen | None = None, bound: str = "unknown"
) -> Any:
    """Mark ``fn(item) -> output``; tuner loops over each partition."""
    deco = _marker(_Mark("per_item", inputs=inputs, bound=bound))
    return deco if fn is None else deco(fn)


@overload
def factory(fn: _F, /) -> _F: ...
@overload
def factory(
    *, per_item: bool = False, inputs: InputGen | None = None, bound: str = "unknown"
) -> Callable[[_F], _F]: ...
def factory(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    per_item: bool = False,
    inputs: InputGen | None = None,
    bound: str = "unknown",
) -> Any:
    """Mark a zero-argument loader called once per worker; it returns the batch (or per-item) function."""
    deco = _marker(_Mark("factory", inputs=inputs, per_item=per_item, bound=bound))
    return deco if fn is None else deco(fn)


# --------------------------------------------------------------------------- resolving


def resolve(spec: str | ModelSpec | Callable[..., Any]) -> Callable[..., Any]:
    """Import the spec's module (or file) and return its callable; :class:`ModelSpecError` if it can't."""
    if isinstance(spec, (str, ModelSpec)):
        ms = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    elif callable(spec):
        return spec
    else:
        raise ModelSpecError(f"{spec!r}: expected a model spec string or a callable, not {_a(spec)}")
    if ms.kind == "builtin":
        from tuner.models.builtin import BUILTINS  # deferred: numpy-backed workloads

        model = BUILTINS.get(ms.target)
        if model is None:
            raise ModelSpecError(
                f"{ms.spec}: unknown built-in model; choose from {', '.join(sorted(BUILTINS))}"
            )
        return model.factory
    if ms.kind == "module":
        module = _import_module(ms)
        where = f"module '{ms.target}'"
    else:
        module = _load_file(ms)
        where = f"file '{ms.target}'"
    obj: Any = module
    for part in ms.attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ModelSpecError(f"{ms.spec}: {where} has no attribute '{ms.attr}'") from None
    if not callable(obj):
        raise ModelSpecError(f"{ms.spec}: '{ms.attr}' is {_a(obj)}, not callable")
    return obj


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
        raise ModelSpecError(f"{ms.spec}: importing {ms.target} raised {_exc(e)}") from e


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
            raise ModelSpecError(f"{ms.spec}: importing {path} raised {_exc(e)}") from e
        raise
    return module


def _syntax_message(ms: ModelSpec, e: SyntaxError) -> str:
    return f"{ms.spec}: {type(e).__name__} in {e.filename} line {e.lineno}: {e.msg}"


# --------------------------------------------------------------------------- loading


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


def _mark_of(obj: Any) -> _Mark | None:
    mark = getattr(obj, "__tuner_model__", None)
    return mark if isinstance(mark, _Mark) else None


def _binds(sig: inspect.Signature, n: int) -> bool:
    try:
        sig.bind(*range(n))
    except TypeError:
        return False
    return True


def _kind_of(text: str, obj: Callable[..., Any]) -> str:
    """ "batch" | "per_item" | "factory": from the decorator, else from the signature."""
    mark = _mark_of(obj)
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
        f"{text}: {_name(obj)}({params}) cannot be called with one partition nor with no arguments; "
        "expected fn(partition), @per_item fn(item) or a zero-argument factory"
    )


def _instantiate(text: str, obj: Callable[..., Any]) -> BatchFn:
    kind = _kind_of(text, obj)
    if kind == "per_item":
        return _PerItem(obj)
    if kind == "batch":
        return obj
    try:
        made = obj()
    except Exception as e:
        raise ModelSpecError(f"{text}: factory {_name(obj)}() raised {_exc(e)}") from e
    if not callable(made):
        raise ModelSpecError(f"{text}: factory {_name(obj)}() returned {_a(made)}, not a callable")
    mark, made_mark = _mark_of(obj), _mark_of(made)
    if (mark is not None and mark.per_item) or (made_mark is not None and made_mark.kind == "per_item"):
        return _PerItem(made)
    return made


def load_model(spec: str | ModelSpec | Callable[..., Any]) -> BatchFn:
    """Resolve, call the factory if it is one, wrap per-item functions: returns ``fn(partition)``.

    Called ONCE per worker. The returned function does not check the output count: call
    :func:`check_outputs` on each result.
    """
    return _instantiate(spec_text(spec), resolve(spec))


def check_outputs(spec_text: str, partition: Any, outputs: Any) -> None:
    """:class:`ModelSpecError` unless ``outputs`` holds exactly one entry per item of ``partition``."""
    n_in = len(partition)
    if isinstance(outputs, (str, bytes, dict)) or not hasattr(outputs, "__len__"):
        raise ModelSpecError(
            f"{spec_text}: returned {_a(outputs)} for {_count(n_in, 'input')}; "
            "expected a list or array with one output per item"
        )
    try:
        n_out = len(outputs)
    except TypeError:  # a 0-d numpy array has __len__ but no length
        raise ModelSpecError(
            f"{spec_text}: returned a scalar for {_count(n_in, 'input')}; "
            "expected a list or array with one output per item"
        ) from None
    if n_out != n_in:
        raise ModelSpecError(f"{spec_text}: returned {_count(n_out, 'output')} for {_count(n_in, 'input')}")


def input_generator(spec: str | ModelSpec | Callable[..., Any]) -> InputGen | None:
    """The model's input generator ``gen(n_items, seed)``, or None if it has none."""
    mark = _mark_of(resolve(spec))
    return mark.inputs if mark is not None else None


# --------------------------------------------------------------------------- validation


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


def validate(spec: str | ModelSpec | Callable[..., Any], sample: Any = None) -> ModelInfo:
    """Resolve, load once and run on a few items (from ``sample`` or the model's generator).

    Raises :class:`ModelSpecError` with one line. Without a sample and a generator nothing is run
    and ``checked`` is False.
    """
    text = spec_text(spec)
    obj = resolve(spec)
    kind = _kind_of(text, obj)
    mark = _mark_of(obj)
    gen = mark.inputs if mark is not None else None
    t0 = time.perf_counter()
    fn = _instantiate(text, obj)
    load_s = time.perf_counter() - t0
    if sample is None and gen is not None:
        try:
            sample = gen(SAMPLE_ITEMS, 0)
        except Exception as e:
            raise ModelSpecError(f"{text}: input generator {_name(gen)}() raised {_exc(e)}") from e
    checked = False
    item = "unknown"
    if sample is not None:
        part = sample[:SAMPLE_ITEMS] if hasattr(sample, "__getitem__") else list(sample)[:SAMPLE_ITEMS]
        if len(part):
            item = _describe_item(part)
            try:
                outputs = fn(part)
            except Exception as e:
                raise ModelSpecError(
                    f"{text}: raised {_exc(e)} on a sample of {_count(len(part), 'item')}"
                ) from e
            check_outputs(text, part, outputs)
            checked = True
    return ModelInfo(
        spec=text,
        kind=kind,
        description=_description(spec, obj),
        bound=mark.bound if mark is not None else "unknown",
        has_generator=gen is not None,
        item=item,
        load_s=load_s,
        checked=checked,
    )


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


# --------------------------------------------------------------------------- wording


def _a(obj: Any) -> str:
    """'an int', 'a NoneType'... for messages."""
    if obj is None:
        return "None"
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _name(obj: Any) -> str:
    return getattr(obj, "__name__", None) or type(obj).__name__


def _exc(e: BaseException) -> str:
    # One line: the first line of the message is what a user acts on.
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg.splitlines()[0]}" if msg else type(e).__name__


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
