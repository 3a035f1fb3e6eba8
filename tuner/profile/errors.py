"""Errors of a profile, as one line: ``FILE line N: key.path: what is wrong (got VALUE)``.

pydantic's ``ValidationError`` lists every problem with its own wording and a URL; a person editing a
profile needs the first one, in the file's terms: the line it is on, the key path as written, what
the value must be. :class:`Where` maps key paths to lines (the loader fills it while walking the
YAML); :func:`translate` turns a ``ValidationError`` into one :class:`~tuner.errors.ProfileError`.
Nothing here knows the profile's schema: the root model and the words for its patterns are passed in.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tuner.errors import ProfileError

__all__ = ["Loc", "Where", "explain", "format_loc", "show", "translate"]

Loc = tuple[Any, ...]
"""A key path: mapping keys and list indices, from the top of the document."""


class Where:
    """Where the keys of one document are: key path -> line (1-based)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: dict[Loc, int] = {}

    def line(self, loc: Loc) -> int | None:
        """The line of ``loc``, or of its nearest parent written in the file."""
        loc = tuple(x for x in loc if x != "[key]")
        while loc not in self.lines and loc:
            loc = loc[:-1]
        return self.lines.get(loc)

    def error(self, loc: Loc, message: str, line: int | None = None) -> ProfileError:
        """``FILE line N: key.path: message`` (``line`` defaults to the line of ``loc``)."""
        line = self.line(loc) if line is None else line
        where = f"{self.name} line {line}" if line is not None else self.name
        path = format_loc(loc)
        return ProfileError(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def format_loc(loc: Loc) -> str:
    """A key path as a person writes it: ``evidence.runner_ups[0].workers``."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_KIND = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list [low, high]",
    "datetime_type": "expected a date-time like 2026-11-27T05:30:00Z",
    "datetime_parsing": "expected a date-time like 2026-11-27T05:30:00Z",
    "datetime_from_date_parsing": "expected a date-time like 2026-11-27T05:30:00Z",
}
_BOUND = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def show(value: Any) -> str:
    """A value as the user wrote it in YAML, shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        if abs(value) < 10**15:
            return str(value)
        digits = str(abs(value))  # shown like a float: 1.23e+400
        mantissa = f"{digits[0]}.{digits[1:3]}".rstrip("0").rstrip(".")
        return f"{'-' if value < 0 else ''}{mantissa}e+{len(digits) - 1}"
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "...'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, datetime):
        return value.isoformat()
    return type(value).__name__


def explain(err: ErrorDetails, root: type[BaseModel], patterns: Mapping[str, str]) -> str:
    """One error's message, without its key path."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    loc = err["loc"]
    if kind == "missing":
        if loc and isinstance(loc[-1], int):
            return "expected a list [low, high]"
        return f"missing required key '{loc[-1]}'" if loc else "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "finite_number" or (kind == "float_type" and type(value) is int):
        # NaN, infinity, or an integer past the largest float: say which numbers are allowed.
        bounds = _bounds(_number_schema(root, tuple(loc)))
        shown = show(value) + (": too large" if type(value) is int else "")
        return f"must be a finite number{bounds} (got {shown})"
    if kind in _KIND:
        text = f"{_KIND[kind]}, got {show(value)}"
        if kind == "string_type" and isinstance(value, (int, float)):
            text += " (put it in quotes)"
        return text
    if kind in _BOUND:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUND[kind]} {show(bound)} (got {show(value)})"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '?')} (got {show(value)})"
    if kind == "string_pattern_mismatch":
        rule = patterns.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern', '?')}")
        return f"{rule} (got {show(value)})"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("too_long", "too_short"):
        return f"expected a list [low, high], got {len(value) if isinstance(value, (list, tuple)) else '?'} items"
    if kind in ("cross_field", "interval_order"):
        return err["msg"]
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    return f"{msg[:1].lower()}{msg[1:]} (got {show(value)})"


def _number_schema(root: type[BaseModel], loc: Loc) -> dict[str, Any]:
    """The JSON Schema of the number at ``loc`` (as ``tuner schema`` publishes it), or {}."""
    schema = root.model_json_schema()
    defs = schema.get("$defs", {})

    def options(node: dict[str, Any]) -> list[dict[str, Any]]:
        out = []
        for option in node.get("anyOf", [node]):
            while "$ref" in option:  # "#/$defs/Name"
                option = defs.get(option["$ref"].rsplit("/", 1)[-1], {})
            out.append(option)
        return out

    node = schema
    for part in loc:
        found: dict[str, Any] | None = None
        for option in options(node):
            if isinstance(part, int) and part < len(option.get("prefixItems", [])):
                found = option["prefixItems"][part]
            elif isinstance(part, int) and isinstance(option.get("items"), dict):
                found = option["items"]
            elif isinstance(part, str) and part in option.get("properties", {}):
                found = option["properties"][part]
            elif isinstance(part, str) and isinstance(option.get("additionalProperties"), dict):
                found = option["additionalProperties"]
            if found is not None:
                break
        if found is None:
            return {}
        node = found
    return next((o for o in options(node) if o.get("type") in ("number", "integer")), {})


_RANGE_WORDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}


def _bounds(number: dict[str, Any]) -> str:
    """' > 0', ' >= 0 and <= 1', or '' for a number without bounds."""
    return " and".join(f" {op} {show(number[k])}" for k, op in _RANGE_WORDS.items() if k in number)


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class whose fields are valid at ``loc`` (to suggest a key for a typo)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _inner_model(field.annotation) if field is not None else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def translate(
    error: ValidationError, where: Where, root: type[BaseModel], patterns: Mapping[str, str]
) -> ProfileError:
    """The first problem of ``error`` (nearest the top of the file) as one line; ``root`` is the
    validated model, ``patterns`` the words for its string patterns."""
    errors = error.errors(include_url=False)
    # A typo'd key shows up twice in pydantic's list: the unknown key and the missing real one.
    # Report the typo with a suggestion and drop the missing-key error it explains.
    explained: set[Loc] = set()
    hints: dict[int, str] = {}
    for i, err in enumerate(errors):
        if err["type"] != "extra_forbidden" or not err["loc"]:
            continue
        parent, key = err["loc"][:-1], err["loc"][-1]
        model = _model_at(root, parent)
        allowed = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        if close:
            hints[i] = f"unknown key (did you mean '{close[0]}'?)"
            explained.add((*parent, close[0]))
        elif allowed:
            hints[i] = f"unknown key (allowed: {', '.join(allowed)})"
    kept = [
        (i, err)
        for i, err in enumerate(errors)
        if not (err["type"] == "missing" and tuple(err["loc"]) in explained)
    ]

    def place(item: tuple[int, ErrorDetails]) -> tuple[Loc, int | None]:
        _, err = item
        loc = tuple(err["loc"])
        if err["type"] == "missing":
            # A missing key has no line of its own: point at its parent mapping.
            return loc[:-1], where.line(loc[:-1])
        at = (err.get("ctx") or {}).get("at")
        if at:
            target = (*loc, *at.split("."))
            return loc, where.line(target)
        return loc, where.line(loc)

    # Report the problem nearest the top of the file: that is where a person starts reading.
    # On a tie, a wrong or unknown key says more than a missing one.
    kept.sort(key=lambda item: (place(item)[1] or 0, item[1]["type"] == "missing", item[0]))
    i, err = kept[0]
    loc, line = place((i, err))
    message = hints.get(i) or explain(err, root, patterns)
    # (for a missing key, loc is now the parent mapping's path; the message names the key)
    if len(kept) > 1:
        message += f" (+{len(kept) - 1} more)"
    return where.error(loc, message, line=line)
