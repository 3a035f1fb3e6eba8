"""How the model modules word their one-line messages: 'an int', 'fn', 'ValueError: x', '3 items'."""

from __future__ import annotations

from typing import Any

__all__ = ["article", "name_of", "one_line", "plural"]


def article(obj: Any) -> str:
    """'an int', 'a NoneType'... for messages."""
    if obj is None:
        return "None"
    name = type(obj).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def name_of(obj: Any) -> str:
    """A callable's ``__name__``, else its type's name."""
    return getattr(obj, "__name__", None) or type(obj).__name__


def one_line(e: BaseException) -> str:
    """``Type: first line of the message``: the first line is what a user acts on."""
    msg = str(e).strip()
    return f"{type(e).__name__}: {msg.splitlines()[0]}" if msg else type(e).__name__


def plural(n: int, noun: str) -> str:
    """'1 item', '3 items'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
