"""Models the server tests serve (by spec ``tests/serve/models.py:NAME``, in worker processes too)."""

from __future__ import annotations

import time
from typing import Any

from tuner.models import batch, factory


@batch
def double_or_fail(partition: Any) -> list[Any]:
    """Doubles every item; a negative item raises ValueError (not retried: a poison item)."""
    for x in partition:
        if x < 0:
            raise ValueError(f"negative item {x}")
    return [x * 2 for x in partition]


@batch
def nap(partition: Any) -> list[Any]:
    """Each item is a number of seconds: the partition sleeps the longest, then doubles every item."""
    time.sleep(max(float(x) for x in partition))
    return [x * 2 for x in partition]


@factory
def slow_start() -> Any:
    """``nap``, after a 2 s load (a model that takes a while to load)."""
    time.sleep(2.0)
    return nap
