"""Spec strings: what ``builtin:mlp``, ``pkg.mod:fn`` or ``path/file.py:fn`` names, parsed without importing.

A :class:`ModelSpec` is plain, picklable data, so it can travel to worker processes; resolving it
(importing, loading) is :mod:`tuner.models.loader`'s work. A model file read by a format adapter
(``model.onnx``, ``model.pt``, ``model.skops`` ...: :mod:`tuner.models.formats`) is recognised by its
suffix before the ``target:attr`` forms; its ``kind`` is the adapter's module name.

A spec also carries what travels with it to every worker: ``options`` (what the user says about a
model file: pickle consent, the scikit-learn method, the input shape) and ``knobs`` (an adapter's
own knobs besides threads, e.g. ONNX Runtime's ``execution_mode``, set per trial by the sweep).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from tuner.errors import ModelSpecError
from tuner.models.formats import format_of

__all__ = ["ModelSpec", "parse_spec", "rebase_spec", "spec_path", "spec_text"]

_SYNTAX = "expected builtin:NAME, package.module:attr, path/file.py:attr or a model file (.onnx, .pt, .pt2, .skops, .joblib, .pkl)"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec string (syntax only; nothing imported yet). Picklable, so it can go to workers."""

    spec: str  # original text, for messages
    kind: str  # "builtin" | "module" | "file" | a format adapter's name ("onnxrt", "pytorch", "scikit")
    target: str  # builtin name / module name / absolute file path
    attr: str  # attribute in the module (may be dotted: "obj.method"); the name for builtins; "" for files
    options: tuple[tuple[str, Any], ...] = ()  # model options (allow_pickle, method, input_shape, ...)
    knobs: tuple[tuple[str, Any], ...] = ()  # an adapter's knobs besides threads (execution_mode, ...)

    @property
    def is_model_file(self) -> bool:
        """A file read by a format adapter (``model.onnx``), not Python code."""
        return self.kind not in ("builtin", "module", "file")

    def with_options(self, **options: Any) -> ModelSpec:
        """This spec with these model options (None values dropped)."""
        merged = {**dict(self.options), **{k: v for k, v in options.items() if v is not None}}
        return replace(self, options=tuple(sorted(merged.items())))

    def with_knobs(self, knobs: Any) -> ModelSpec:
        """This spec with these adapter knobs (pairs or a mapping), replacing any it had."""
        return replace(self, knobs=tuple(sorted(dict(knobs or ()).items())))

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    @property
    def threads_word(self) -> str:
        """What the threads knob sizes, in a recommendation's words: a model file's framework pool
        ('intra-op' for ONNX Runtime and torch), else 'BLAS' (threadpoolctl's limit)."""
        if not self.is_model_file:
            return "BLAS"
        from tuner.models.formats import adapter_named

        return str(getattr(adapter_named(self.kind), "THREADS", "BLAS"))


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string; :class:`ModelSpecError` on bad syntax. Does not import anything."""
    if not isinstance(spec, str):
        raise ModelSpecError(f"{spec!r}: {_SYNTAX}")
    text = spec.strip()
    fmt = format_of(text)
    if fmt is not None:
        return ModelSpec(spec=text, kind=fmt, target=os.path.abspath(os.path.expanduser(text)), attr="")
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


def spec_path(spec: str) -> str | None:
    """The file path a spec names (a model file, ``file.py:attr``), as written; None for others."""
    found = _path_part(spec.strip())
    return found[0] if found is not None else None


def _path_part(text: str) -> tuple[str, str] | None:
    """(the file path a spec names, what follows it) for a model file or ``file.py:attr``; None otherwise."""
    if format_of(text) is not None:
        return text, ""
    target, sep, attr = text.rpartition(":")
    if sep and (target.endswith(".py") or "/" in target or "\\" in target or os.sep in target):
        return target, sep + attr
    return None


def rebase_spec(spec: str, from_dir: str | os.PathLike[str], to_dir: str | os.PathLike[str]) -> str:
    """``spec`` with a relative file path it names, meant from ``from_dir``, rewritten to mean the
    same file from ``to_dir`` (absolute paths, builtins and modules unchanged).

    A profile's model path is relative to the profile file: the loader rebases it from the profile's
    folder to the working directory, the writer from the working directory to the profile's folder,
    so ``tuner run other/dir/p.yaml`` finds the model wherever it is started from.
    """
    text = spec.strip()
    found = _path_part(text)
    if found is None:
        return spec
    path, rest = found
    expanded = os.path.expanduser(path)
    if os.path.isabs(expanded):
        return spec
    absolute = os.path.normpath(os.path.join(os.path.abspath(from_dir), expanded))
    rebased = os.path.relpath(absolute, os.path.abspath(to_dir))
    return rebased.replace(os.sep, "/") + rest
