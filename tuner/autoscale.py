"""The runtime's autoscaler as a pure policy: (backlog, latency, time) in, a target and its reason out.

No threads, no engine, no clock of its own: :class:`AutoscalePolicy.observe` is given what the
runtime sees at each look and answers with a :class:`ScaleTo` (or None: keep the pool as it is).
The runtime's autoscaler thread only feeds it and resizes the engine, so the rule is tested directly
with a synthetic clock (``tests/runtime/test_autoscale.py``).

The rule (Kubernetes HPA's, on the runtime's own metric):

* wanted = ceil(backlog / target_backlog_per_worker) — HPA's ``ceil(current × metric / target)``
  with the metric "partitions waiting or running per worker";
* plus one when the recent p99 is above ``target_p99_s`` while every worker is busy (with idle
  workers, more of them would not shorten a partition);
* clamped to [min_workers, max_workers];
* up: once the need has lasted ``upscale_delay_s``;
* down: only after every look for ``downscale_delay_s`` wanted fewer, and then to the most any of
  those looks wanted (HPA's stabilisation window), so a short lull never drops capacity a burst is
  about to need.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuner.deployment import AutoscaleSettings

__all__ = ["AutoscalePolicy", "AutoscaleSettings", "ScaleTo"]


@dataclass(frozen=True)
class ScaleTo:
    """The policy's answer: resize the pool to ``target`` workers, because ``reason``."""

    target: int
    reason: str


class AutoscalePolicy:
    """The autoscaler's rule and its memory of recent looks (see the module docstring)."""

    def __init__(self, settings: AutoscaleSettings) -> None:
        self.settings = settings
        self._up_since: float | None = None
        self._low_since: float | None = None
        self._low_max = 0

    def observe(
        self, now: float, workers: int, backlog: float, p99_ms: float | None = None
    ) -> ScaleTo | None:
        """One look: the pool has ``workers``; ``backlog`` partitions wait or run; recent ``p99_ms``.

        ``now`` is any monotonic clock in seconds. Returns the resize to make, or None.
        """
        a = self.settings
        workers = max(1, workers)
        per_worker = backlog / workers
        wanted = math.ceil(backlog / a.target_backlog_per_worker)
        why = f"backlog {per_worker:.1f} partitions per worker vs target {a.target_backlog_per_worker:g}"
        if (
            a.target_p99_s is not None
            and per_worker >= 1
            and p99_ms is not None
            and math.isfinite(p99_ms)
            and p99_ms > a.target_p99_s * 1000.0
            and wanted <= workers
        ):
            wanted = workers + 1
            why = f"p99 {p99_ms:.1f} ms > target {a.target_p99_s * 1000:g} ms with every worker busy"
        wanted = min(a.max_workers, max(a.min_workers, wanted))
        if wanted > workers:
            self._low_since = None
            if self._up_since is None:
                self._up_since = now
            if now - self._up_since >= a.upscale_delay_s:
                self._up_since = None
                return ScaleTo(wanted, f"{why} (held {a.upscale_delay_s:g} s)")
            return None
        self._up_since = None
        if wanted < workers:
            if self._low_since is None:
                self._low_since, self._low_max = now, wanted
            self._low_max = max(self._low_max, wanted)
            if now - self._low_since >= a.downscale_delay_s:
                target, self._low_since = self._low_max, None
                return ScaleTo(target, f"{why}; wanted at most {target} for {a.downscale_delay_s:g} s")
            return None
        self._low_since = None
        return None
