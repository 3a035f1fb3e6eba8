"""Models the runtime tests run (by spec ``tests/runtime/sample_models.py:NAME`` or as callables)."""

from __future__ import annotations

import time
from typing import Any

from tuner.models import batch


@batch
def double_or_fail(partition: Any) -> list[Any]:
    """Doubles every item; a negative item raises ValueError (not retried: a poison item)."""
    for x in partition:
        if x < 0:
            raise ValueError(f"negative item {x}")
    return [x * 2 for x in partition]


@batch
def slow_double(partition: Any) -> list[Any]:
    """Doubles every item after 5 ms per partition (releases the GIL, like a remote call)."""
    time.sleep(0.005)
    return [x * 2 for x in partition]


@batch
def slow_len(partition: Any) -> list[Any]:
    """The length of every item, after 5 ms per partition (a slow model for large payloads)."""
    time.sleep(0.005)
    return [len(x) for x in partition]


@batch
def slower_double(partition: Any) -> list[Any]:
    """Doubles every item after 20 ms per partition."""
    time.sleep(0.02)
    return [x * 2 for x in partition]


@batch
def pairs_in_twos(partition: Any) -> Any:
    """Two outputs per item, (2x, x + 1), as whole arrays (what an ONNX or torch model with two
    outputs gives); a partition of more than two items raises MemoryError, so the engine splits it
    until its pieces run (a failure of the partition, not of its items)."""
    import numpy as np

    from tuner.models.columns import Rows

    if len(partition) > 2:
        raise MemoryError(f"a partition of {len(partition)} items is too large")
    x = np.asarray(partition, dtype=np.float64)
    return Rows([x * 2, x + 1])


@batch
def pairs_or_fail(partition: Any) -> Any:
    """Two outputs per item, (2x, x + 1), as whole arrays; a negative item raises ValueError."""
    import numpy as np

    from tuner.models.columns import Rows

    x = np.asarray(partition, dtype=np.float64)
    if (x < 0).any():
        raise ValueError(f"negative item {x[x < 0][0]:g}")
    return Rows([x * 2, x + 1])
