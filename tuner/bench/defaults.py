"""The deployment a user writes without tuner, as a trial of every sweep, and the baseline of every claim.

Without tuner a model runs in the caller's process, with its framework's own thread pool, on large
batches: ``model.predict(X)``, a default ``InferenceSession`` over batches, ``encode(sentences)``.
Every sweep measures that first, with the same rules as any trial (:func:`default_deployments`):

* **the default** — in the caller's process (the backend without a pool: no timeouts, no crash
  isolation), the framework's own threads (``threads_per_worker`` None), partitions as large as the
  input allows, capped so one takes at most :data:`DEFAULT_PARTITION_S` (from the validation's own
  timing of the model on a sample);
* **the default in one worker** — the same in one worker process, which keeps the engine's
  guarantees (a timeout, a crash costs one attempt) that the in-caller form gives up.

:func:`baseline_of` picks the trial every gain is stated against: the default, else the default in
one worker, never a contaminated trial (a busy host makes any trial read low: a ratio against it
would flatter the recommendation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tuner.backends import BACKENDS, backend
from tuner.bench.types import TrialConfig, TrialResult

__all__ = [
    "DEFAULT",
    "DEFAULT_PARTITION_S",
    "DEFAULT_WORKER",
    "baseline_of",
    "default_deployments",
    "default_partition",
]

#: A default partition takes at most about this long (the validation's timing, in this process).
DEFAULT_PARTITION_S = 2.0
#: The roles of the two default trials (TrialResult.role).
DEFAULT, DEFAULT_WORKER = "default", "default-worker"


def _first(**capabilities: bool) -> str:
    """The first backend of the registry with these capabilities."""
    for name in BACKENDS:
        kind = backend(name)
        if all(getattr(kind, k) == v for k, v in capabilities.items()):
            return name
    raise LookupError(f"no backend with {capabilities}")  # pragma: no cover - the registry has both


def default_partition(info: Any, n_items: int) -> int:
    """As large as the input allows, capped so that one partition takes at most DEFAULT_PARTITION_S."""
    per_item = getattr(info, "per_item_s", None)
    if per_item and per_item > 0:
        return max(1, min(n_items, math.floor(DEFAULT_PARTITION_S / per_item)))
    return max(1, n_items)


def default_deployments(info: Any, n_items: int) -> list[tuple[str, TrialConfig]]:
    """(role, configuration) of the default deployment and of the same in one worker process."""
    size = default_partition(info, n_items)
    in_caller = _first(in_caller=True, pooled=False)
    one_worker = _first(own_processes=True, needs_cluster=False)
    return [
        (DEFAULT, TrialConfig(backend=in_caller, workers=1, threads_per_worker=None, partition_size=size)),
        (
            DEFAULT_WORKER,
            TrialConfig(backend=one_worker, workers=1, threads_per_worker=None, partition_size=size),
        ),
    ]


def baseline_of(results: Sequence[TrialResult]) -> TrialResult | None:
    """The trial every gain is stated against: the default deployment, else the default in one worker
    — clean and measured (never a contaminated trial); None when neither is."""
    for role in (DEFAULT, DEFAULT_WORKER):
        for r in results:
            if r.role == role and not r.contaminated and not r.error and r.throughput > 0:
                return r
    return None
