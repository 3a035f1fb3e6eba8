"""Item signatures: what one input item was when a profile was measured, and the check of new input.

A profile records the measured input as ``model.input.item``, in the words of the model check
(``_describe_item`` in :mod:`tuner.models`)::

    float32[256]     rows of a numpy array: the dtype and one item's shape (the array's shape[1:])
    float64[3x4]     ... a 2-D item
    int64            a 1-D numpy array: each item one scalar of that dtype
    int, float, str  a list of Python values (e.g. from .jsonl)
    json             a list of JSON lists or objects: not checked
    anything else    a type name this module does not know: not checked

:meth:`ItemSignature.check` compares an input with it before any worker starts, so a wrong file
is one line naming expected against got, not one failure per item. What counts as a mismatch:

* **the item's shape** — always: a model measured on 256-wide rows cannot be fed 3-wide ones.
* **the kind of value** (float, signed or unsigned integer, bool, complex, text) — always: integer
  ids where features were measured, or the reverse, is a different workload even when numpy would
  quietly convert it.
* **the precision within a kind** (float64 for a float32 profile) — refused too: each item is
  twice the bytes through shared memory and the model computes on another path (BLAS ``dgemm``
  runs at about half the ``sgemm`` rate), so the profile's partition size, timeout and worker
  count no longer describe the run; outputs silently change dtype; and typed frameworks (ONNX,
  torch) reject the input outright, one failed item after another. Byte order is not a mismatch.

A list input (``.jsonl``) is judged by its first item, and only by shape and kind: JSON has no
float32. A dimension written ``?`` (``float32[?x256]``) matches any size, for models with dynamic
axes. The class describes one array; a model with several named inputs records one per name,
``input_ids: int64[16], mask: int64[16]`` (:func:`describe_items`), and its input is a ``.npz``
read into :class:`~tuner.models.columns.Columns` — names are compared first, then each array.
:func:`check_model_input` compares an input with a model file's own signature the same way.

Light on purpose: no numpy import (an array is recognised by its ``dtype`` and ``shape``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tuner.errors import BadInput, DataError

__all__ = ["ItemSignature", "check_input", "check_model_input", "describe_items", "parse_named"]

#: numpy dtype names as str(dtype) writes them for the native byte order
_NAMED = re.compile(r"^(bool|u?int|float|complex)(\d*)$")
#: numpy type strings for the other byte orders and for text: '>f4', '<U12', '|S3'
_TYPESTR = re.compile(r"^[<>|=]?([biufcUSO])(\d*)$")
_SIGNATURE = re.compile(r"^(?P<dtype>[^\[\]\s]+)(?:\[(?P<dims>[0-9?]+(?:x[0-9?]+)*)\])?$")
#: Python scalar types as _describe_item names them (a list of values): any precision
_PYTHON = {"int": "i", "float": "f", "bool": "b", "str": "U", "complex": "c"}
_KIND_WORD = {
    "b": "bool",
    "i": "integer",
    "u": "unsigned integer",
    "f": "float",
    "c": "complex",
    "U": "text",
    "S": "bytes",
    "O": "object",
}
#: kinds whose itemsize is a length (characters, bytes), not a precision
_SIZELESS = frozenset("USO")

Dims = tuple[int | None, ...]


@dataclass(frozen=True)
class ItemSignature:
    """One item's dtype and shape, as a profile records it (``'float32[256]'``) or as an input has it.

    ``kind`` is numpy's dtype kind letter (``'f'``, ``'i'``, ``'u'``, ``'b'``, ``'c'``, ``'U'``,
    ``'S'``, ``'O'``), or None when the text names nothing checkable. ``itemsize`` is bytes per
    value, None for "any" (Python scalars, text). ``shape`` is the item's shape (``()`` for a
    scalar); a None dimension matches any size; ``shape`` None means unknown.
    """

    text: str
    kind: str | None = None
    itemsize: int | None = None
    shape: Dims | None = None

    def __str__(self) -> str:
        return self.text

    @property
    def checkable(self) -> bool:
        """Whether this signature says enough to compare an input with it."""
        return self.kind is not None and self.shape is not None

    # ------------------------------------------------------------------ construction

    @classmethod
    def parse(cls, text: str) -> ItemSignature:
        """Read a recorded signature; text it cannot read gives an uncheckable signature, not an error
        (a profile written by a newer tuner, or an exotic dtype, must not stop a run)."""
        text = text.strip()
        m = _SIGNATURE.match(text)
        if m is None:
            return cls(text)
        name, dims = m.group("dtype"), m.group("dims")
        kind_size = _dtype_kind(name)
        if kind_size is None:
            return cls(text)
        shape: Dims = tuple(None if d == "?" else int(d) for d in dims.split("x")) if dims else ()
        return cls(text, kind_size[0], kind_size[1], shape)

    @classmethod
    def of(cls, items: Any) -> ItemSignature:
        """The signature of an input: a numpy array (rows are items) or a list (its first item)."""
        dtype, shape = getattr(items, "dtype", None), getattr(items, "shape", None)
        if dtype is not None and shape is not None:
            return cls._of_array(dtype, tuple(shape[1:]))
        if isinstance(items, Sequence) and not isinstance(items, (str, bytes)) and len(items):
            return cls._of_value(items[0])
        return cls(type(items).__name__)

    @classmethod
    def _of_array(cls, dtype: Any, shape: tuple[int, ...]) -> ItemSignature:
        dims = "x".join(str(d) for d in shape)
        text = f"{dtype}[{dims}]" if dims else str(dtype)  # the words of tuner.models._describe_item
        kind = getattr(dtype, "kind", None)
        size = None if kind in _SIZELESS else getattr(dtype, "itemsize", None)
        return cls(text, kind, size, shape)

    @classmethod
    def _of_value(cls, value: Any) -> ItemSignature:
        dtype, shape = getattr(value, "dtype", None), getattr(value, "shape", None)
        if dtype is not None and shape is not None:  # a list of arrays: each is one item
            return cls._of_array(dtype, tuple(shape))
        found = _nested(value)
        if found is None:
            return cls("json" if isinstance(value, (list, dict)) or value is None else type(value).__name__)
        kind, shape = found
        name = next(n for n, k in _PYTHON.items() if k == kind)
        dims = "x".join(str(d) for d in shape)
        return cls(f"{name}[{dims}]" if dims else name, kind, None, shape)

    # ------------------------------------------------------------------ comparison

    def mismatch(self, got: ItemSignature) -> str | None:
        """Why ``got`` is not what this signature describes (a short clause), or None if it fits.

        Only what both sides know is compared: an unknown precision (Python values) or an
        uncheckable signature never makes a mismatch.
        """
        if not (self.checkable and got.checkable):
            return None
        assert self.shape is not None and got.shape is not None
        shape_ok = len(self.shape) == len(got.shape) and all(
            a is None or b is None or a == b for a, b in zip(self.shape, got.shape, strict=True)
        )
        kind_ok = (
            self.kind == got.kind
            or {self.kind, got.kind} <= {"U", "S"}
            # a Python int (no precision) stands for signed and unsigned integers alike
            or ({self.kind, got.kind} <= {"i", "u"} and None in (self.itemsize, got.itemsize))
        )
        why = []
        if not shape_ok:
            why.append(f"each item is {_shape_words(got.shape)}, not {_shape_words(self.shape)}")
        if not kind_ok:
            signed = {self.kind, got.kind} == {"i", "u"}  # say "signed" only where it tells them apart
            why.append(f"{_kind_word(got.kind, signed)} values, not {_kind_word(self.kind, signed)}")
        if why:
            return "; ".join(why)
        if self.itemsize is not None and got.itemsize is not None and self.itemsize != got.itemsize:
            ratio = got.itemsize / self.itemsize
            size = "twice" if ratio == 2 else "half" if ratio == 0.5 else f"{ratio:g}x"
            return (
                f"{size} the bytes per value and another precision to compute in, so the profile's "
                f"figures would not hold; convert with .astype('{_dtype_name(self)}')"
            )
        return None

    def check(
        self,
        items: Any,
        where: str,
        *,
        hint: str = "",
        error: type[BadInput] = DataError,
    ) -> None:
        """Raise ``error`` with one line if ``items`` do not fit this signature, e.g.

        ``rows.npy: items are float64[3], the profile was measured with float32[256] (each item is
        [3], not [256]); pass --no-input-check to run anyway``
        """
        if not self.checkable:
            return
        got = ItemSignature.of(items)
        why = self.mismatch(got)
        if why is None:
            return
        tail = f"; {hint}" if hint else ""
        raise error(f"{where}: items are {got}, the profile was measured with {self} ({why}){tail}")


def check_input(
    profile: Any,
    items: Any,
    where: str,
    *,
    hint: str = "",
    error: type[BadInput] = DataError,
) -> None:
    """Check ``items`` against the item a profile (a ``ScalingProfile``) was measured with, if it
    recorded one; raises ``error`` with one line on a mismatch (see :meth:`ItemSignature.check`)."""
    model = getattr(profile, "model", None)
    recorded = getattr(getattr(model, "input", None), "item", None)
    if not recorded:
        return
    named = parse_named(recorded)
    if named is None:
        if _is_columns(items) and len(items.arrays) == 1:
            items = next(iter(items.arrays.values()))
        ItemSignature.parse(recorded).check(items, where, hint=hint, error=error)
        return
    tail = f"; {hint}" if hint else ""
    got_names = list(items.arrays) if _is_columns(items) else None
    if got_names is None or set(got_names) != set(named):
        got = ", ".join(got_names) if got_names else "one array"
        raise error(
            f"{where}: inputs are {got}, the profile was measured with {', '.join(named)} "
            f"(a .npz with one array per input name){tail}"
        )
    for name, sig in named.items():
        arr = items.arrays[name]
        got_sig = ItemSignature.of(arr)
        why = sig.mismatch(got_sig)
        if why is not None:
            raise error(
                f"{where}: input '{name}' items are {got_sig}, the profile was measured with {sig} ({why}){tail}"
            )


def _is_columns(items: Any) -> bool:
    return type(items).__name__ == "Columns" and hasattr(items, "arrays")


def parse_named(text: str) -> dict[str, ItemSignature] | None:
    """``'a: float32[4], b: int64'`` as {name: signature}; None for a single unnamed signature."""
    if ": " not in text:
        return None
    out: dict[str, ItemSignature] = {}
    for part in text.split(", "):
        name, sep, sig = part.partition(": ")
        if not sep:
            return None
        out[name.strip()] = ItemSignature.parse(sig)
    return out


def describe_items(items: Any) -> str:
    """What a profile records for an input: one signature, or ``name: signature`` per named input."""
    if _is_columns(items):
        if len(items.arrays) == 1:
            return str(ItemSignature.of(next(iter(items.arrays.values()))))
        return ", ".join(f"{k}: {ItemSignature.of(a)}" for k, a in items.arrays.items())
    return str(ItemSignature.of(items))


def check_model_input(
    inputs: Sequence[Any], items: Any, where: str, model: str, *, exact: bool = True
) -> None:
    """A :class:`~tuner.errors.DataError` (one line) if ``items`` do not fit a model file's inputs
    (each an ``InputSpec``: name, dtype, shape with the batch first): the names, each input's item
    shape (the feature count) and — with ``exact`` — the dtype. Inputs the file does not describe
    (``inputs`` empty) are not checked."""
    if not inputs:
        return
    want = [i.name for i in inputs]
    if _is_columns(items):
        got = list(items.arrays)
        if len(want) == 1 and len(got) == 1:
            arrays = {want[0]: items.arrays[got[0]]}
        elif set(got) != set(want):
            missing = [n for n in want if n not in got]
            extra = [n for n in got if n not in want]
            detail = "; ".join(
                x
                for x in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"unexpected {', '.join(extra)}" if extra else "",
                )
                if x
            )
            raise DataError(
                f"{where}: inputs are {', '.join(got)}, {model} takes {', '.join(want)} ({detail})"
            )
        else:
            arrays = dict(items.arrays)
    elif len(want) > 1:
        raise DataError(
            f"{where}: one array, {model} takes {len(want)} inputs ({', '.join(want)}): "
            "give a .npz with one array per input name"
        )
    else:
        arrays = {want[0]: items}
    for spec in inputs:
        expected = ItemSignature.parse(spec.item)
        got_sig = ItemSignature.of(arrays[spec.name])
        if not exact and got_sig.kind in ("f", "i", "u", "b"):
            # scikit-learn converts any numeric input: only the feature count is the model's
            expected = ItemSignature(expected.text, got_sig.kind, got_sig.itemsize, expected.shape)
        why = expected.mismatch(got_sig)
        if (
            why is not None
            and expected.kind == got_sig.kind
            and expected.itemsize is not None
            and got_sig.itemsize != expected.itemsize
            and "each item" not in why
        ):
            why = f"the model computes in {_dtype_name(expected)}; convert with .astype('{_dtype_name(expected)}')"
        if why is not None:
            name = f"input '{spec.name}' " if len(inputs) > 1 else ""
            raise DataError(f"{where}: {name}items are {got_sig}, {model} takes {expected} ({why})")


# ---------------------------------------------------------------------------------------- helpers


def _dtype_kind(name: str) -> tuple[str, int | None] | None:
    """('f', 4) for 'float32' or '<f4'; ('i', None) for the Python 'int'; None if unknown."""
    if name in _PYTHON:
        return _PYTHON[name], None
    if name == "object":
        return "O", None
    m = _NAMED.match(name)
    if m is not None:
        base, bits = m.groups()
        if base == "bool":
            return ("b", 1) if not bits else None
        if not bits or int(bits) % 8:
            return None
        return {"int": "i", "uint": "u", "float": "f", "complex": "c"}[base], int(bits) // 8
    m = _TYPESTR.match(name)
    if m is not None:
        kind, size = m.groups()
        if kind in _SIZELESS:
            return kind, None
        return (kind, int(size)) if size else None
    return None


def _dtype_name(sig: ItemSignature) -> str:
    """The dtype part of a signature's text ('float32' of 'float32[256]')."""
    return sig.text.split("[", 1)[0]


def _kind_word(kind: str | None, signed: bool = False) -> str:
    if signed and kind == "i":
        return "signed integer"
    return _KIND_WORD.get(kind or "", str(kind))


def _shape_words(shape: Dims) -> str:
    if not shape:
        return "one value"
    return "[" + "x".join("?" if d is None else str(d) for d in shape) + "]"


def _nested(value: Any) -> tuple[str, Dims] | None:
    """The (kind, shape) of a Python scalar or a regular nested list of them; None if irregular,
    empty, or holding anything else (dicts, None, mixed text and numbers)."""
    if isinstance(value, bool):
        return "b", ()
    if isinstance(value, int):
        return "i", ()
    if isinstance(value, float):
        return "f", ()
    if isinstance(value, str):
        return "U", ()
    if not isinstance(value, list) or not value:
        return None
    inner = [_nested(v) for v in value]
    if any(x is None for x in inner):
        return None
    shapes = {x[1] for x in inner if x is not None}
    kinds = {x[0] for x in inner if x is not None}
    if len(shapes) != 1:
        return None
    if kinds == {"i", "f"}:  # numpy reads a list mixing ints and floats as floats
        kinds = {"f"}
    if len(kinds) != 1:
        return None
    return kinds.pop(), (len(value), *shapes.pop())
