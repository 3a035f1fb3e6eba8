"""Spec strings: what ``builtin:mlp``, ``pkg.mod:fn`` or ``path/file.py:fn`` names, parsed without importing.

A :class:`ModelSpec` is plain, picklable data, so it can travel to worker processes; resolving it
(importing, loading) is :mod:`tuner.models.loader`'s work. A model file read by a format adapter
(``model.onnx``) is one more ``kind``: :func:`parse_spec` would recognise it by its suffix before the
``target:attr`` forms, and the loader's ``_RESOLVERS`` would gain one entry for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.errors import ModelSpecError

__all__ = ["ModelSpec", "parse_spec", "spec_text"]

_SYNTAX = "expected builtin:NAME, package.module:attr or path/file.py:attr"
_DOTTED = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


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
