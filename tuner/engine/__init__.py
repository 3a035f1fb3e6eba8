"""The execution engine: the only code in tuner that runs a model.

Both the benchmark (``tuner.bench``) and the production runtime (``tuner.runtime``) drive an
:class:`Engine`, so what is measured is the code path that serves. Backends: ``process``
(default; forkserver, or spawn where there is no forkserver — never fork, which deadlocks a model
that used torch or OpenMP threads in the parent), ``thread`` (latency-bound models that release the
GIL), ``inline`` (serial baseline in the engine's own thread; no timeouts, no crash isolation).

Layout: ``pool`` (:class:`Engine`, the public face), ``state`` (the lifecycle flags and the mailbox:
what crosses threads), ``supervisor`` (the supervisor's thread: dispatch, the workers' messages,
outcomes, hedging; the data-flow diagram), ``ledger`` (the task side: jobs, parts, retries, splits;
pure bookkeeping), ``hedging`` (hedged stragglers: which part has a second copy, who won, the token
bucket; pure too), ``workers`` (the worker side: spawn, replace, resize, kill, reap, timeouts, the
memory watch), ``handles`` (one worker-handle class per backend), ``worker`` (the worker's loop),
``transport`` (framed sockets, shared memory, the poller), ``faults``, ``events``, ``config``.

Import rule: this package imports nothing of tuner's but ``tuner.models``, ``tuner.errors`` and its
own modules.
"""

from __future__ import annotations

from tuner.engine.config import BACKENDS, Backoff, EngineConfig, Failure
from tuner.engine.faults import FaultPlan, InjectedFault, TargetedFault
from tuner.engine.pool import Engine, PartitionResult, default_start_method

__all__ = [
    "BACKENDS",
    "Backoff",
    "Engine",
    "EngineConfig",
    "Failure",
    "FaultPlan",
    "InjectedFault",
    "PartitionResult",
    "TargetedFault",
    "default_start_method",
]
