"""A CPU-bound test model whose per-item cost can be changed while it runs (for drift.py).

``predict(rows)`` does a fixed amount of CPU work per item — :data:`REPS` × the cost factor products
of a 96×96 float64 matrix (BLAS, which releases the GIL: two thread workers use two cores) — so a
busy host or fewer cores make its wall-clock service time longer (as a real CPU-bound model's), and a
larger factor makes it slower at the same load. The factor is 1, or the number in the file named
by ``TUNER_DRIFT_COST_FILE``, re-read at most every :data:`REREAD_S` seconds: write 1.3 there and
every worker does 30% more work per item within it.

Fixed work, not a spin on a CPU clock (``time.thread_time`` is a system call here); BLAS, not a
Python loop, so that the profile can run on the thread backend: a process backend's workers are
not counted as the server's own CPU by its drift watch today (see drift.py).
"""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np

from tuner.models import batch

#: 96×96 products per item: about 0.2 ms on the 2-core dev VM
REPS = 8
REREAD_S = 0.25
_M = np.random.default_rng(0).random((96, 96))
_state = {"factor": 1.0, "next": 0.0}


def _factor() -> float:
    now = time.monotonic()
    if now >= _state["next"]:
        _state["next"] = now + REREAD_S
        path = os.environ.get("TUNER_DRIFT_COST_FILE")
        if path:
            try:
                with open(path, encoding="ascii") as f:
                    _state["factor"] = float(f.read().strip() or 1.0)
            except (OSError, ValueError):
                pass  # keep the last factor: a file being rewritten is read again soon
    return _state["factor"]


def make_rows(n: int, seed: int) -> Any:
    """``n`` float32 rows of 4 values."""
    return np.random.default_rng(seed).random((n, 4), dtype=np.float32)


@batch(inputs=make_rows, bound="blas")
def predict(rows: Any) -> Any:
    """One float per row, after :data:`REPS` × the factor matrix products per row."""
    n = round(REPS * _factor())
    for _ in range(len(rows) * n):
        _M @ _M
    return np.asarray(rows).sum(axis=1)
