"""How long the runtime takes to be ready on this host: measured as a fresh process starts it.

A trial's workers start inside a sweep whose forkserver already runs and whose model modules the
measuring process has imported; a service (``tuner run``, ``tuner serve``, a pod) starts cold. The
profile's ``cold_start_s`` must be what a cold start costs, so after the sweep the recommended
deployment is started once in a new interpreter: ``Runtime(model, deployment).start()``, timed from
the call to the moment every worker has loaded the model (the forkserver's own start included).
The model crosses to that interpreter pickled (a spec with its options: no code runs to send it).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from typing import Any

__all__ = ["COLD_START_TIMEOUT_S", "measure_cold_start"]

#: a cold start that takes longer than this is not measured (the profile keeps the trial's figure)
COLD_START_TIMEOUT_S = 120.0

_CHILD = """
import pickle, sys, time
model, deployment = pickle.load(sys.stdin.buffer)
from tuner.runtime import Runtime
rt = Runtime(model, deployment)
t0 = time.perf_counter()
try:
    rt.start()
    print(repr(time.perf_counter() - t0))
finally:
    rt.close()
"""


def measure_cold_start(model: Any, deployment: Any, timeout_s: float = COLD_START_TIMEOUT_S) -> float | None:
    """Seconds from ``Runtime(model, deployment).start()`` to ready in a fresh interpreter; None
    when it could not be measured (the model cannot be sent, the start failed or timed out)."""
    try:
        payload = pickle.dumps((model, deployment))
    except Exception:
        return None
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD], input=payload, capture_output=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    try:
        return float(done.stdout.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
