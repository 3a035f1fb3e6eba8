"""The production runtime: run a model the way its scaling profile says, on the engine that was measured.

::

    from tuner.runtime import Runtime

    with Runtime.from_profile("profiles/mlp.yaml") as rt:
        for y in rt.map(rows):               # offline: outputs in input order
            ...
        future = rt.submit(one_request)      # online: dynamic batching
        print(rt.stats())

In an event loop (an ASGI app, an asyncio service)::

    async with Runtime.from_profile("profiles/mlp.yaml") as rt:  # workers load in a thread
        y = await rt.asubmit(one_request)      # submit's batcher and backpressure, awaited
        async for y in rt.amap(rows):          # map's window, outputs in input order
            ...
        ys = await rt.asubmit_all(request)     # a request's items, all or none (a server's 503)

``asubmit`` and ``amap`` (module :mod:`.aio`) resolve on the caller's loop without blocking it and
without a thread per request: past ``max_pending`` a coroutine waits for room on an ``asyncio``
future that the runtime's threads wake with ``loop.call_soon_threadsafe`` (first come first
served); an outcome reaches the loop through one inbox per loop, one wake-up per burst of outcomes,
and is read from the item's future as ``submit(...).result()`` would give it. ``Overloaded``
("reject", "timeout") and every item's error raise in the coroutine; "block" awaits room while the
loop runs on. Cancelling the awaiting task cancels its item if the batcher has not sent it yet (its
room comes back at once); leaving ``amap`` early cancels its partitions in flight, as for ``map``.
``astart``/``aclose`` (and ``async with``) start and close in a thread of their own.
``asubmit_all`` (``tuner serve``'s door) takes room for all of a request's items at once or raises
``Overloaded`` at once, whatever the policy, and returns each output or failure record in order.

Data flow (each box is a module of this package)::

               ┌─ gate: at most max_pending items in flight; past it block, time out or
               │  reject (Overloaded) — the overload policy
    map(items) ┴─ mapping: partitions ─────────────────────┐
    submit(item) ─► batcher: queue ─► a partition closes   ├─► dispatch ─► Engine (the one tuner.bench
                    at max_batch_size or max_batch_delay_ms┘                measured)
                                                                   │ PartitionResult futures
    item futures ◄── batcher's completer thread (outputs /  ◄──────┤ done-callbacks ──► stats: live
                     ItemFailed / the engine's error)               │  histogram, counters; gate: room
    autoscaler thread: every interval_s feeds backlog, p99 and time to the AutoscalePolicy
                       (tuner.autoscale) ─► engine.resize(n), with the policy's reason

    aio: asubmit / amap — the gate's async acquire, then the same batcher or window; outcomes
    handed to the caller's event loop.
    core: Runtime — builds and closes the rooms; settings: the deployment and the profile's
    translation; hostcheck: this host (or cluster) against the profile's; link: the cluster
    connection; model: the profile's model file, pickle consent, the framework's version.

Nothing is left pending: an item future resolves with its output, its failure record
(:class:`ItemFailed`) or, when the engine itself failed or was closed under the runtime, with the
engine's error; leaving ``map`` early cancels its partitions still in flight.

What a profile applies: backend, workers, threads per worker, partition size, timeout, retries,
``retry_on``, backoff, memory limit, the dynamic batcher's delay, the backpressure bound and policy
(``max_pending``, ``overload``), hedged stragglers (``hedge``: a partition still running past the
profiled p95 service time is sent again to an idle worker, first result wins; duplicate work at most
the budget's share of the partitions completed (5%) plus a burst of 4 copies; a no-op with one worker) and the autoscaler's bounds and pace; the ``platforms:`` entry for this
OS is merged over ``recommended`` first. A profile measured under traffic (``tuner bench --online``)
has an ``online:`` section whose measured batching (``max_batch_size``, ``max_batch_delay_ms``) and
``max_pending`` win over ``recommended``'s, unless the ``platforms:`` entry sets them explicitly.
``Runtime(...)`` takes the same options as ``Runtime.from_profile(...)`` where they mean something
without a profile (``faults``, ``on_event``, ``hedge``, ``ray_address``, ``allow_pickle``).

Safety: loading a profile never executes code from it. The model spec in a profile is a reference;
the runtime imports it only when it builds the model, i.e. when it starts (``start()``, ``with``, or the
first ``map``/``submit``), and with the process backend it is imported in the worker processes only.

Lightness: production processes import this package, so at import time it pulls in only the standard
library and tuner's bottom layer (:mod:`tuner.errors`, :mod:`tuner.deployment`, :mod:`tuner.autoscale`,
:mod:`tuner.stats`). The engine, the profile schema (pydantic) and the hardware probe (psutil, numpy)
are imported when a Runtime is built; nothing of Textual, plotext, rich or the benchmark is ever
imported (``tests/test_import_hygiene.py`` enforces it).
"""

from __future__ import annotations

from tuner.deployment import AutoscaleSettings
from tuner.runtime.core import Runtime
from tuner.runtime.hostcheck import adapt_to_host
from tuner.runtime.settings import RuntimeSettings, apply_hedge, pending_bound, settings_from_profile
from tuner.runtime.stats import Meter as _Meter
from tuner.runtime.stats import RuntimeStats, ScalingDecision

__all__ = [
    "AutoscaleSettings",
    "Runtime",
    "RuntimeSettings",
    "RuntimeStats",
    "ScalingDecision",
    "_Meter",
    "adapt_to_host",
    "apply_hedge",
    "pending_bound",
    "settings_from_profile",
]
