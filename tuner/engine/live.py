"""The engines alive in this process: closed at interpreter exit, or on request by what they run on.

A small registry of its own, below the supervisor, so that whoever must stop engines — the
interpreter's exit, a cluster connection about to close — reaches them without importing the
supervisor (the engine's modules form no circle).
"""

from __future__ import annotations

import atexit

# multiprocessing's own exit hook (it joins every child process) is registered when
# multiprocessing.util is imported; ours must be registered after it, to run before it (LIFO).
import multiprocessing.util  # noqa: F401
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["add", "close_where", "discard"]

_live: weakref.WeakSet[Any] = weakref.WeakSet()


def add(engine: Any) -> None:
    """An engine started: close it at exit if its owner does not."""
    _live.add(engine)


def discard(engine: Any) -> None:
    """An engine closed."""
    _live.discard(engine)


def close_where(wanted: Callable[[Any], bool]) -> None:
    """Close, cancelling their work, the live engines ``wanted`` picks (e.g. those on a cluster about
    to be disconnected: another thread's calls would fail under them)."""
    for engine in list(_live):
        if wanted(engine):
            engine.close(wait=False, cancel=True)


@atexit.register
def _close_all() -> None:
    # Runs before multiprocessing's own atexit hook (see the import above), which would otherwise
    # wait forever on workers that are still serving.
    close_where(lambda engine: True)
