"""Code of the caller's that the runtime's own threads run: event listeners and future callbacks.

Those threads (the engine's supervisor, the completer) are what frees room at the gate — a
partition's completion gives its items' room back — so a callback they run must never wait for
room (the gate refuses it at once instead: :func:`in_runtime_thread`), and an exception escaping a
listener must never stop them (:func:`guarded`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tuner.engine.events import Event

__all__ = ["guarded", "in_runtime_thread", "mark_runtime_thread"]

#: every runtime module logs to this one logger (one name for a service to route)
log = logging.getLogger("tuner.runtime")

_state = threading.local()


def mark_runtime_thread() -> None:
    """Mark the calling thread as one of the runtime's: a submit from it cannot wait for room."""
    _state.active = True


def in_runtime_thread() -> bool:
    """True in a thread :func:`mark_runtime_thread` marked."""
    return getattr(_state, "active", False)


def guarded(callback: Callable[[Event], None]) -> Callable[[Event], None]:
    """The caller's event callback, kept from taking the engine down with it.

    Events are emitted from the engine's supervisor thread; an exception escaping a listener would
    stop the supervisor and fail every item in flight. It is logged (once per exception type) instead.
    """
    seen: set[type[BaseException]] = set()

    def call(event: Event) -> None:
        mark_runtime_thread()  # the engine's supervisor: it must never wait for room
        try:
            callback(event)
        except Exception as e:
            if type(e) not in seen:
                seen.add(type(e))
                log.exception(
                    "runtime: the on_event callback raised (further %s not logged)", type(e).__name__
                )

    return call
