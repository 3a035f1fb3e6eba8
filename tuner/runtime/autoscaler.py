"""The autoscaler's loop: every ``interval_s``, what the runtime sees goes to the policy, and its answer
to the engine.

The rule itself is a pure policy, :class:`tuner.autoscale.AutoscalePolicy` (backlog, p99 and time
in, a target and its reason out); this thread only feeds it — the backlog (partitions waiting or
running, and queued items in partitions), the recent p99 from the meter — resizes the engine, and
keeps each decision with its reason.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from tuner.autoscale import AutoscalePolicy
from tuner.errors import TunerError
from tuner.runtime.callbacks import log
from tuner.runtime.stats import ScalingDecision

if TYPE_CHECKING:
    from tuner.deployment import Deployment
    from tuner.engine import Engine
    from tuner.runtime.stats import Meter

__all__ = ["DECISIONS_KEPT", "Autoscaler"]

#: Scaling decisions kept for stats().
DECISIONS_KEPT = 256


class Autoscaler:
    """The thread that resizes ``engine`` as the policy says, between the deployment's bounds."""

    def __init__(
        self, settings: Deployment, engine: Engine, backlog: Callable[[], float], meter: Meter
    ) -> None:
        assert settings.autoscale is not None
        self.policy = AutoscalePolicy(settings.autoscale)
        self.decisions: deque[ScalingDecision] = deque(maxlen=DECISIONS_KEPT)
        self._engine = engine
        self._backlog = backlog
        self._meter = meter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def needed(settings: Deployment) -> bool:
        """Whether ``settings`` leave the autoscaler anything to do (bounds apart, a pool to resize)."""
        a = settings.autoscale
        return a is not None and a.min_workers < a.max_workers and settings.kind.pooled

    def start(self) -> None:
        """Start looking (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="tuner-autoscaler", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop looking; returns at once (see :meth:`join`)."""
        self._stop.set()

    def join(self) -> None:
        """Wait for the thread to end (after :meth:`stop`)."""
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        policy = self.policy
        while not self._stop.wait(policy.settings.interval_s):
            now = time.perf_counter()
            workers = self._engine.workers
            _, lat = self._meter.recent(now)
            decision = policy.observe(now, workers, self._backlog(), lat["p99"])
            if decision is None:
                continue
            try:
                self._engine.resize(decision.target)
            except TunerError as e:  # the engine closed under us: nothing left to scale
                log.debug("autoscaler stopped: %s", e)
                return
            made = ScalingDecision(time.time(), workers, decision.target, decision.reason)
            self.decisions.append(made)
            log.info("autoscale %s", made)
