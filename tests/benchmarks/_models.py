"""Functions the benchmark baselines (Pool, ProcessPoolExecutor) and the engine run alike."""

from __future__ import annotations

import numpy as np


def one(x):
    """A tiny task: the cost measured is pure dispatch."""
    return x


def batch(items):
    """The same tiny task, as a batch function for the engine."""
    return list(items)


def array_sum(a):
    """One 1 MB partition in, one small array out: the cost measured is moving the partition."""
    return a.sum(axis=1)


def batch_sum(a):
    return np.asarray(a).sum(axis=1)


def nap(items):
    """A partition that takes 10 ms, asleep, whatever its size — like a call to an accelerator or a
    remote service: no CPU, so the host's other work moves its time little. A straggler fault
    (``slow=RATExFACTOR``) makes it FACTOR times longer."""
    import time

    time.sleep(0.010)
    return list(items)
