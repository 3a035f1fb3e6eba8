"""The Ray actor that is one worker of the ``ray`` backend. Imported only where Ray is installed.

It is tuner's own class, imported by module path inside the actor's process (Ray pickles a class
of an importable module by reference), so an actor never needs the caller's ``__main__``: the model
travels as its spec string (or a picklable callable) and is loaded here by the same loader and
adapters as a local worker, once, with the threads knob applied first.

Calls (the supervisor's handle, :mod:`tuner.engine.ray_backend`, makes them):

    load()                        -> ("ok", pid, node id, load_s) | ("err", one-line message)
    run(id, attempt, first, items, exact, copy) -> the worker loop's messages for one partition
    watch(limit_bytes, period_s)  -> (rss, cpu%): after ``period_s``, or at once when RSS > limit
    leave()                       -> the actor exits once the partitions queued before it are done

``watch`` runs in a concurrency group of its own (one thread), so it answers while a partition
runs; partitions run one at a time, in the order sent (the default group has one thread).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any, cast

import ray

from tuner.engine import worker as _worker
from tuner.engine.faults import FaultPlan
from tuner.engine.transport import PICKLED

#: how often ``watch`` reads the actor's RSS while a memory limit is set
WATCH_STEP_S = 0.05


class ModelActorImpl:
    """One worker: holds the loaded model, runs partitions, reports its memory and CPU."""

    def __init__(self, spec: Any, threads: int | None, plan: FaultPlan, label: str) -> None:
        self._spec = spec
        self._threads = threads
        self._plan = plan
        self._label = label
        self._fn: Any = None
        self._limits: Any = None
        self._ps: Any = None
        self._lock = threading.Lock()

    def load(self) -> tuple[Any, ...]:
        """Load the model (threads limited first); a failure is a one-line message, not a death."""
        t0 = time.perf_counter()
        try:
            self._limits = _worker.limit_threads(self._threads)
            from tuner.models import load_model

            # An engine started while the model's file is imported would start actors of its own.
            _worker._loading_model = True
            try:
                self._fn = load_model(self._spec)
            finally:
                _worker._loading_model = False
            if self._threads is not None:
                _worker._limit_torch(self._threads)  # the model may have imported torch just now
        except BaseException as e:
            return ("err", _worker.load_error_message(e))
        node = ray.get_runtime_context().get_node_id()
        return ("ok", os.getpid(), node, time.perf_counter() - t0)

    def run(self, pid: int, attempt: int, first: int, items: Any, exact: bool, copy: int = 0) -> list[Any]:
        """Run one partition through the worker loop (fault plan included); its messages.
        ``copy`` 1: a hedge copy (it draws injected faults under its own key)."""
        out: list[Any] = []
        msgs = iter(((pid, attempt, first, PICKLED, items, exact, copy), None))
        # in_process: an injected crash is a real os._exit of this actor's process, as locally.
        _worker.serve(
            msgs.__next__,
            lambda m, *_: out.append(m),
            self._fn,
            self._plan,
            in_process=True,
            label=self._label,
        )
        return out

    @ray.method(concurrency_group="watch")
    def watch(self, limit_bytes: int | None, period_s: float) -> tuple[int, float]:
        """(RSS bytes, CPU% since the last call) after ``period_s``; early when RSS passes the limit."""
        import psutil

        with self._lock:
            if self._ps is None:
                self._ps = psutil.Process()
                self._ps.cpu_percent(None)
        ps = self._ps
        deadline = time.monotonic() + period_s
        while True:
            rss = int(ps.memory_info().rss)
            left = deadline - time.monotonic()
            if (limit_bytes is not None and rss > limit_bytes) or left <= 0:
                return rss, float(ps.cpu_percent(None))
            time.sleep(min(WATCH_STEP_S, left) if limit_bytes is not None else left)

    def leave(self) -> None:
        """Exit cleanly after the partitions sent before this call (Ray's own graceful exit)."""
        ray.actor.exit_actor()


# Ray's typing stubs do not list concurrency_groups among remote()'s options (it is documented and
# accepted): hence the cast. Ray's restarts and task retries are off, see tuner.engine.ray_backend.
ModelActor: Any = cast(Any, ray.remote)(concurrency_groups={"watch": 1}, max_restarts=0, max_task_retries=0)(
    ModelActorImpl
)
