"""YAML with a comment on every value: the writer every exporter shares.

An exporter builds a plain dict (the config) and, beside it, ``why``: for each dotted key path
(``spec.template.spec.containers.0.resources.requests.cpu``) the measurement the value came from.
:func:`emit` writes the dict as block-style YAML and puts ``why[path]`` after the value as a ``#``
comment. Written by hand rather than with ``yaml.safe_dump`` because PyYAML cannot write comments,
and the comments are the point; each scalar is still rendered by PyYAML (quoting, escaping), so what
:func:`yaml.safe_load` reads back is exactly the dict. A multi-line string (a profile inside a
ConfigMap) becomes a literal block (``|``), kept byte for byte.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["document", "emit", "emit_list_item", "num", "scalar"]


def num(x: float) -> float | int:
    """``2.0`` → ``2``, other floats rounded to 6 decimals: numbers as a person writes them."""
    return int(x) if float(x).is_integer() else round(float(x), 6)


def scalar(v: Any) -> str:
    """One scalar (or an empty list/dict) as a YAML flow value, quoted where YAML needs it."""
    text = yaml.safe_dump(v, default_flow_style=True, width=10_000, allow_unicode=True).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _comment(why: dict[str, str], key: str) -> str:
    return f"  # {why[key]}" if key in why else ""


def _block(text: str, indent: int) -> list[str]:
    """A literal block scalar's header indicator and lines, byte for byte on reading back."""
    chomp = "+" if text.endswith("\n\n") else "" if text.endswith("\n") else "-"
    lines = text.split("\n")
    if text.endswith("\n"):
        lines = lines[:-1]
    # An indentation indicator when the first line starts with a space: YAML would take that space
    # as the block's indentation otherwise.
    head = "|" + ("2" if lines and lines[0].startswith(" ") else "") + chomp
    pad = "  " * indent
    return [head, *[(pad + line) if line else "" for line in lines]]


def _is_block(v: Any) -> bool:
    return isinstance(v, str) and "\n" in v


def emit(d: dict[str, Any], why: dict[str, str], indent: int, prefix: str = "") -> list[str]:
    """The lines of mapping ``d`` at ``indent`` (two spaces each); ``prefix`` is its key path."""
    pad = "  " * indent
    out: list[str] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.append(f"{pad}{k}:" + _comment(why, key))
            out += emit(v, why, indent + 1, f"{key}.")
        elif isinstance(v, list) and v:
            out.append(f"{pad}{k}:" + _comment(why, key))
            for i, item in enumerate(v):
                out += _item(item, why, indent + 1, f"{key}.{i}")
        elif _is_block(v):
            head, *body = _block(v, indent + 1)
            out.append(f"{pad}{k}: {head}" + _comment(why, key))
            out += body
        else:
            out.append(f"{pad}{k}: {scalar(v)}" + _comment(why, key))
    return out


def _item(item: Any, why: dict[str, str], indent: int, key: str) -> list[str]:
    """One list entry at ``indent``; ``key`` is its path (``containers.0``)."""
    if isinstance(item, dict) and item:
        return emit_list_item(item, why, indent, f"{key}.")
    pad = "  " * indent
    if isinstance(item, list) and item:
        raise ValueError(f"{key}: lists of lists are not written by this emitter")
    return [f"{pad}- {scalar(item)}" + _comment(why, key)]


def emit_list_item(d: dict[str, Any], why: dict[str, str], indent: int, prefix: str = "") -> list[str]:
    """Mapping ``d`` as one entry of a list at ``indent`` (``- first: ...``, the rest aligned)."""
    lines = emit(d, why, indent + 1, prefix)
    pad = "  " * indent
    return [pad + "- " + lines[0].lstrip(), *lines[1:]]


def document(d: dict[str, Any], why: dict[str, str], head: list[str] | None = None) -> str:
    """One YAML document: ``head`` comment lines (each starting with '#'), then ``d``."""
    lines = [*(head or []), *emit(d, why, 0)]
    return "\n".join(lines) + "\n"
