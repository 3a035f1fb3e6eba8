"""Models for the online tests, loaded by file spec (``tests/online/models.py:NAME``)."""

from __future__ import annotations

import time
from typing import Any

#: How long the stall model blocks on its sentinel item, seconds.
STALL_S = 0.3
#: The item that stalls the worker.
SENTINEL = -1
#: Service time of every other partition, seconds.
SERVICE_S = 0.001


def stall() -> Any:
    """A factory: 1 ms per partition, but a partition holding SENTINEL blocks the worker STALL_S."""

    def call(partition: Any) -> list[Any]:
        items = list(partition)
        time.sleep(STALL_S if SENTINEL in items else SERVICE_S)
        return [x for x in items]

    return call
