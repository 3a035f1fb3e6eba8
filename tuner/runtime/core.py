"""The :class:`Runtime`: a model run the way its deployment says, on the engine that was measured.

The runtime wires the package's rooms together and owns their lifecycle; each job is its own
module: settings and the profile's translation (:mod:`.settings`), the host and cluster checks
(:mod:`.hostcheck`), the cluster connection (:mod:`.link`), the model file (:mod:`.model`), the
backpressure gate (:mod:`.gate`), the door to the engine (:mod:`.dispatch`), ``map``'s window
(:mod:`.mapping`), ``submit``'s batcher and completer (:mod:`.batcher`), the autoscaler's loop
(:mod:`.autoscaler`), the figures (:mod:`.stats`) and the event loop's side of ``asubmit`` and
``amap`` (:mod:`.aio`, imported when first used). See :mod:`tuner.runtime` for the data flow.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any

from tuner.deployment import Deployment
from tuner.errors import ConfigError, EngineClosed, ItemFailed
from tuner.runtime.autoscaler import Autoscaler
from tuner.runtime.batcher import Batcher
from tuner.runtime.callbacks import guarded
from tuner.runtime.dispatch import Dispatcher
from tuner.runtime.gate import Gate
from tuner.runtime.hostcheck import check_cluster, check_host
from tuner.runtime.link import ClusterLink, address_for, link_for
from tuner.runtime.mapping import PartitionWindow, failed_outputs, partition_outputs
from tuner.runtime.model import check_framework, model_of, with_consent
from tuner.runtime.settings import (
    OnFailure,
    Overload,
    apply_hedge,
    check_map_options,
    pending_bound,
    settings_from_profile,
    with_overrides,
)
from tuner.runtime.stats import Meter, RuntimeStats, ScalingDecision, window_for

if TYPE_CHECKING:
    from tuner.engine import Engine, FaultPlan
    from tuner.engine.events import Event
    from tuner.profile import ScalingProfile
    from tuner.runtime.observe import Observer

__all__ = ["Runtime"]


class Runtime:
    """Runs a model on the tuner engine with a profile's settings: ``map``, ``submit``, autoscaling.

    Build one with :meth:`from_profile` or directly (``Runtime("builtin:mlp", workers=2, ...)``);
    both take the same options. The engine starts on ``start()``, on entering ``with``, or on the
    first ``map``/``submit``; ``close()`` (or leaving ``with``) stops every worker and thread, and
    closes the cluster connection the runtime made. Thread-safe: several threads may ``submit``
    and ``map`` at once.
    """

    #: Check a numpy input of ``map`` against the item the profile was measured with (dtype and
    #: shape; a mismatch is one ConfigError, not a failure per item). Set False for a deliberate change.
    check_input: bool = True

    def __init__(
        self,
        model: Any,
        deployment: Deployment | None = None,
        *,
        hedge: bool | float | None = None,
        faults: FaultPlan | str | None = None,
        on_event: Callable[[Event], None] | None = None,
        ray_address: str | None = None,
        allow_pickle: bool = False,
        check_input: bool = True,
        settings: Deployment | None = None,
        drift: bool | float = True,
        served: bool = False,
        **options: Any,
    ) -> None:
        """``deployment``: how to run it (a :class:`~tuner.deployment.Deployment`; ``settings`` is its
        older name); ``options``: any of its settings by public name (``workers=2``,
        ``max_batch_delay_ms=2``), over ``deployment`` or the defaults. ``hedge``: None keeps the
        deployment's; False turns hedging off; a number is the delay in seconds. ``faults``: a fault
        plan to rehearse failures (``"crash=0.1,seed=1"``). ``on_event``: called with every engine
        event, in the engine's thread (an exception it raises is logged, never fatal).

        ``ray_address`` (auto, local or ray://host:port; default auto): the cluster a backend that runs
        on one (ray) connects to when the runtime starts; the runtime closes that connection on close,
        and uses a connection this process already has (``ray.init``) as it is. Refused for a backend
        that runs on no cluster. ``allow_pickle``: consent to load a model file that is a pickle (it
        runs the file's code). ``check_input``: see :attr:`check_input`. ``drift``: watch live behaviour
        against the profile (:mod:`tuner.runtime.drift`; a runtime made from a profile, once started),
        in windows of ``drift`` seconds when it is a number (True: the drift module's WINDOW_S).
        ``served``: the runtime sits behind an HTTP server (``tuner serve``): its p99 is judged against
        the profile's curve measured through the server (``online.http``), not the in-process one.
        """
        base = deployment if deployment is not None else settings
        settings = apply_hedge(Deployment.of(base, **options), hedge)
        self.settings = settings
        self.model = with_consent(model, allow_pickle)
        self.profile: ScalingProfile | None = None
        self.check_input = check_input
        if not isinstance(drift, bool) and not (isinstance(drift, (int, float)) and 0 < drift < math.inf):
            raise ConfigError(f"drift must be True, False or a window in seconds > 0 (got {drift!r})")
        self.drift = drift
        self.served = served
        self._on_event = guarded(on_event) if on_event is not None else None
        self._observer: Observer | None = None
        self._link: ClusterLink | None = link_for(settings, ray_address)
        from tuner.engine import Engine, EngineConfig, FaultPlan

        plan = FaultPlan.parse(faults) if isinstance(faults, str) else (faults or FaultPlan())
        self.engine_config = EngineConfig.of_deployment(settings, faults=plan)
        self._engine: Engine = Engine(self.model, self.engine_config, on_event=self._on_event)
        self._meter = Meter(window_for(settings.autoscale))
        self._gate = Gate(pending_bound(settings))
        self._dispatch = Dispatcher(self._engine, self._gate, self._meter)
        self._batcher = Batcher(settings.batch_size, settings.max_batch_delay_s, self._dispatch)
        self._autoscaler = (
            Autoscaler(settings, self._engine, self._backlog, self._meter)
            if Autoscaler.needed(settings)
            else None
        )
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._start_lock = threading.Lock()  # not _lock: start() holds that while the workers load
        self._starting: Future[Any] | None = None  # astart's one start in a thread

    # ---------------------------------------------------------------- construction from a profile

    @classmethod
    def from_profile(
        cls,
        path: str | os.PathLike[str],
        model: Any = None,
        strict: bool = False,
        *,
        faults: FaultPlan | str | None = None,
        on_event: Callable[[Event], None] | None = None,
        ray_address: str | None = None,
        allow_pickle: bool = False,
        hedge: bool | float | None = None,
        check_input: bool = True,
        drift: bool | float = True,
        served: bool = False,
        **overrides: Any,
    ) -> Runtime:
        """A runtime with the settings of the profile at ``path`` (nothing is started or imported yet).

        A model file (``model.onnx``, ``model.pt``, ``model.skops`` ...) is loaded through the same
        format adapter as when it was measured, with the profile's knobs (``recommended.knobs``) and
        model options. A pickle loads only with ``allow_pickle=True`` here too: the profile records the
        consent given when it was measured, but never gives it (a profile must not turn into code
        execution by itself). If the profile was measured with another version of the model's
        framework, one warning line says so (``strict=True`` refuses).

        A ``ray`` profile runs on a Ray cluster: ``ray_address`` (auto, local or ray://host:port;
        default: the kind the profile records, RAY_ADDRESS for a ``client`` one) is connected here,
        since the cluster check needs the cluster, and the runtime closes that connection (and a
        local head) on close. The cluster check compares nodes, CPUs and node shapes with the
        profile's ``cluster`` section, with the same warn / adapt / ``strict`` choices as the host
        check. For a profile that runs on no cluster, ``ray_address`` is ignored.

        ``model``: the model to run; default: the profile's ``model.spec``. The ``platforms:`` entry
        for this OS is merged over ``recommended``. If the profile was measured on another host, one
        warning line names what differs and how the settings were adapted to this host's usable
        cores; ``strict=True`` raises :class:`ProfileError` instead. ``overrides`` (any
        :class:`RuntimeSettings` field, e.g. ``workers=4``) win over the profile and are not adapted.
        ``hedge``: None applies the profile's ``recommended.hedge``; True hedges after the profile's
        p95 service time even if it does not say to; False turns hedging off; a number is the delay in
        seconds. ``check_input=False``: ``map`` does not check a numpy input against the item the
        profile was measured with (a deliberate change of input; see :attr:`check_input`). ``drift``:
        the drift watch (see ``__init__``).
        """
        from tuner.profile import load_profile

        Deployment.of(**{k: v for k, v in overrides.items() if k != "autoscale"})  # checked first: one line
        name = os.fspath(path)
        profile = load_profile(path)
        settings = settings_from_profile(profile)
        link = ClusterLink(address_for(name, profile, ray_address)) if settings.kind.needs_cluster else None
        try:
            if link is not None:
                settings = check_cluster(name, profile, settings, strict, link.connect().info())
            else:
                settings = check_host(name, profile, settings, strict)
            check_framework(name, profile, strict)
            if model is None:
                model = model_of(name, profile, allow_pickle)
            settings = apply_hedge(with_overrides(settings, overrides), hedge, profile)
            rt = cls(
                model,
                settings,
                faults=faults,
                on_event=on_event,
                allow_pickle=allow_pickle,
                check_input=check_input,
                drift=drift,
                served=served,
            )
        except BaseException:
            if link is not None:
                link.close()
            raise
        rt.profile = profile
        rt._link = link  # connected for the cluster check: the runtime's, closed with it
        return rt

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Runtime:
        """Connect to the cluster (if the backend runs on one), start the workers (loading the model in
        each) and the autoscaler; idempotent."""
        with self._lock:
            if self._closed:
                raise EngineClosed("the runtime is closed")
            if self._started:
                return self
            try:
                if self._link is not None:
                    self._link.connect()
                self._engine.start()
            except BaseException:
                if self._link is not None:
                    self._link.close()  # a local head started for this runtime goes with the failure
                raise
            self._meter.t0 = time.perf_counter()
            if self._autoscaler is not None:
                self._autoscaler.start()
            self._observe()
            self._started = True
        return self

    def _observe(self) -> None:
        """Histogram bounds from the profile; the drift watch when there is a profile to watch against."""
        from tuner.runtime.drift import WINDOW_S
        from tuner.runtime.observe import Observer, bounds_for

        self._meter.use_bounds(*bounds_for(self.profile))
        if self.profile is not None and self.drift:
            window = WINDOW_S if self.drift is True else float(self.drift)
            self._observer = Observer(
                self.profile, self._meter, self._engine.stats, self._on_event, window, self.served
            )
            self._observer.start()

    def __enter__(self) -> Runtime:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close(wait=exc_type is None, cancel=exc_type is not None)

    def close(self, wait: bool = True, cancel: bool = False) -> None:
        """Stop: flush (or, with ``cancel``, fail) queued items, stop the autoscaler, close the engine.

        ``wait``: let submitted work finish first. No worker process or thread outlives this call,
        and every future this runtime returned is resolved when it returns. Callers blocked in
        ``submit`` waiting for room get :class:`EngineClosed`. The cluster connection the runtime
        made is closed last.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._autoscaler is not None:
            self._autoscaler.stop()
        if self._observer is not None:
            self._observer.stop()
        self._gate.close()
        try:
            self._batcher.stop(cancel)
            if self._autoscaler is not None:
                self._autoscaler.join()
            self._engine.close(wait=wait, cancel=cancel)
        finally:
            self._batcher.finish()
            if self._link is not None:
                self._link.close()  # disconnects; a local head goes with it

    @property
    def workers(self) -> int:
        """The number of workers the runtime aims to run now (the autoscaler changes it)."""
        return self._engine.workers

    @property
    def engine(self) -> Engine:
        """The engine this runtime drives (for its events and counters; do not resize it yourself)."""
        return self._engine

    # ---------------------------------------------------------------- offline: map

    def map(
        self, items: Iterable[Any], on_failure: OnFailure = "raise", overload: Overload = "block"
    ) -> Iterator[Any]:
        """Outputs in input order, each item exactly once.

        ``on_failure="raise"``: a failed item raises :class:`ItemFailed` (its ``failure`` holds the
        cause, message, attempts and remote traceback) when the iteration reaches it.
        ``"yield"``: its :class:`~tuner.engine.Failure` record is yielded in its place.
        Partitions are submitted ahead of the consumer within a bounded window, sized from the
        autoscaler's ceiling so that a large input shows as backlog and can scale the pool up, and
        within ``max_pending``: when the runtime is full, map first waits on its own partitions,
        and with none in flight applies ``overload`` (default "block": map is a pull, it waits).
        Leaving the loop early (``break``, an exception, closing the generator) cancels the
        partitions still in flight: no phantom backlog is left to scale the pool up.
        """
        check_map_options(on_failure, overload)
        self.start()
        return self._map(items, on_failure, overload, batches=False)

    def map_batches(
        self, items: Iterable[Any], on_failure: OnFailure = "raise", overload: Overload = "block"
    ) -> Iterator[Any]:
        """``map``, one partition at a time: for each partition of ``items`` (the profile's partition
        size), in input order, what the model returned for it — an array with one row per item, or
        a tuple with one array per output for a model with several. Nothing is done per item, so
        a fast model keeps the throughput its profile measured: ``map`` builds one output (a tuple
        of rows for several outputs) per item, which cost a two-output ONNX model at 2.5M items/s
        about half of it (``tests/benchmarks/vs_default.py``). ``np.concatenate`` joins the
        batches. The same window, backpressure, cancellation and ``overload`` as ``map``; with a
        failed item, ``on_failure="raise"`` raises :class:`ItemFailed` at it, ``"yield"`` gives
        that partition as a list of outcomes with the :class:`~tuner.engine.Failure` in its place.
        """
        check_map_options(on_failure, overload)
        self.start()
        return self._map(items, on_failure, overload, batches=True)

    def _map(
        self, items: Iterable[Any], on_failure: OnFailure, overload: Overload, batches: bool
    ) -> Iterator[Any]:
        window = self._window(items, "Runtime.map_batches" if batches else "Runtime.map")
        timeout_s = self.settings.overload_timeout_s
        try:
            while True:
                waiting = window.fill()
                if waiting is not None:
                    window.send(waiting, self._gate.acquire(len(waiting), overload, timeout_s))
                    continue
                if not window.inflight:
                    return
                first, fut = window.inflight.popleft()
                try:
                    result = fut.result()  # an engine error (its supervisor broke) is raised as is
                except CancelledError:  # we cancel only what we abandon: the engine dropped it
                    raise self._dispatch.engine_error() from None
                if batches:
                    yield partition_outputs(first, result, on_failure)
                elif not result.failed:
                    yield from result.outputs
                else:
                    yield from failed_outputs(first, result, on_failure)
        finally:
            window.cancel()

    def _window(self, items: Iterable[Any], where: str) -> PartitionWindow:
        """A look-ahead window over ``items`` (checked against the profile's item first, if numpy)."""
        if self.check_input and self.profile is not None and hasattr(items, "dtype"):
            from tuner.models.signature import check_input

            hint = (
                "pass check_input=False to Runtime.from_profile (or set rt.check_input = False) to run anyway"
            )
            check_input(self.profile, items, where, hint=hint, error=ConfigError)
        s = self.settings
        size = max(4, s.ceiling * (self.engine_config.prefetch + 2))
        return PartitionWindow(items, s.partition_size, size, self._gate, self._dispatch)

    # ---------------------------------------------------------------- online: submit

    def submit(self, item: Any) -> Future[Any]:
        """Run one item; its future gives its output, or raises :class:`ItemFailed`.

        Items submitted one at a time are grouped into partitions (dynamic batching, like
        Triton's dynamic batcher): a partition closes when it holds ``max_batch_size`` items
        (default: ``partition_size``) or when its first item has waited ``max_batch_delay_ms``,
        whichever comes first.

        Backpressure: with ``max_pending`` items already in flight, the ``overload`` policy
        applies — "block" waits for room, "timeout" waits ``overload_timeout_s`` then raises
        :class:`Overloaded`, "reject" raises :class:`Overloaded` at once (a service's 503). A
        future whose engine failed or was closed under the runtime raises the engine's error.
        """
        self.start()
        s = self.settings
        self._gate.acquire(1, s.overload, s.overload_timeout_s)
        return self._enqueue(item)

    def _enqueue(self, item: Any) -> Future[Any]:
        """Hand one item, its room taken, to the batcher; the room is given back when its future
        resolves, however it resolves."""
        fut: Future[Any] = Future()
        fut.add_done_callback(self._release_one)
        try:
            self._batcher.put(item, fut)
        except BaseException:
            self._gate.release(1)  # the future never resolves: nobody else gives the room back
            raise
        return fut

    def _release_one(self, _fut: Future[Any]) -> None:
        self._gate.release(1)

    # ---------------------------------------------------------------- in an event loop

    async def asubmit(self, item: Any) -> Any:
        """``submit``, awaited: the item's output, or its error raised in the coroutine (ItemFailed,
        or the engine's), resolved on the caller's event loop without blocking it.

        The same batcher and backpressure as ``submit``: past ``max_pending``, "reject" and "timeout"
        raise :class:`Overloaded` here, "block" awaits room while the loop runs on. Cancelling the
        awaiting task cancels the item if it has not been sent to a worker yet (its room comes back
        at once); once sent, it runs and its outcome is dropped.
        """
        from tuner.runtime.aio import until_done

        if not self._started:
            await self.astart()
        if not self._gate.try_acquire(1, in_turn=True):  # room now: no coroutine made to wait for it
            await self._gate.acquire_async(1, self.settings.overload, self.settings.overload_timeout_s)
        fut = self._enqueue(item)
        try:
            await until_done(fut)
        except BaseException:  # the awaiting task was cancelled
            fut.cancel()  # not sent yet: dropped, its room back now; already running: its outcome is dropped
            raise
        return fut.result()

    async def asubmit_all(self, items: Sequence[Any]) -> list[Any]:
        """A request's items, all or none: each item's output, or its failure record in its place.

        Room for every item is taken at once, or :class:`Overloaded` is raised at once — never
        waiting, whatever the ``overload`` policy (a server's 503: ``"block"`` inside an HTTP
        handler would be an unbounded queue in disguise). The items then go through ``submit``'s
        batcher side by side, and the coroutine awaits them all on the caller's loop (one wake-up
        for the request, not one per item). Returns, in order, each output or its
        :class:`~tuner.engine.Failure` record (cause, message, attempts), as ``map(...,
        on_failure="yield")`` gives them; the engine's own error (``EngineClosed``, ``EngineFailed``)
        is raised once every item is resolved. Cancelling the awaiting task cancels the items not
        sent to a worker yet (their room comes back at once); those already running finish and
        their outcomes are dropped.
        """
        from tuner.runtime.aio import until_all_done

        if not self._started:
            await self.astart()
        n = len(items)
        self._gate.acquire_now(n)
        futures: list[Future[Any]] = []
        for _ in range(n):
            fut: Future[Any] = Future()
            fut.add_done_callback(self._release_one)
            futures.append(fut)
        try:
            self._batcher.put_many(items, futures)
        except BaseException:
            self._gate.release(n)  # none was queued: their futures never resolve
            raise
        try:
            await until_all_done(futures)
        except BaseException:  # the awaiting task was cancelled
            for fut in futures:
                fut.cancel()
            raise
        return _outcomes(futures)

    def amap(
        self, items: Iterable[Any], on_failure: OnFailure = "raise", overload: Overload = "block"
    ) -> AsyncIterator[Any]:
        """``map``, awaited: ``async for y in rt.amap(items)`` — outputs in input order, each item
        exactly once, ``on_failure`` as for ``map``, the same bounded look-ahead window and
        ``max_pending``, with ``overload`` applied by awaiting (the loop runs on). Leaving the loop
        early (``break``, an exception, a cancelled task, ``aclose()``) cancels the partitions still in
        flight; after a ``break`` that happens when the generator is finalised, at once with
        ``contextlib.aclosing``. ``items`` is iterated on the loop: give a sequence or an array, not
        an iterator that blocks.
        """
        return self._amap(items, on_failure, overload, batches=False)

    def amap_batches(
        self, items: Iterable[Any], on_failure: OnFailure = "raise", overload: Overload = "block"
    ) -> AsyncIterator[Any]:
        """``map_batches``, awaited: ``async for batch in rt.amap_batches(items)`` — each partition's
        outputs whole, in input order, as ``amap`` runs them."""
        return self._amap(items, on_failure, overload, batches=True)

    def _amap(
        self, items: Iterable[Any], on_failure: OnFailure, overload: Overload, batches: bool
    ) -> AsyncIterator[Any]:
        from tuner.runtime.aio import map_window

        check_map_options(on_failure, overload)

        async def prepare() -> PartitionWindow:
            if not self._started:
                await self.astart()
            return self._window(items, "Runtime.amap_batches" if batches else "Runtime.amap")

        timeout_s = self.settings.overload_timeout_s
        return map_window(
            prepare, self._gate, overload, timeout_s, on_failure, self._dispatch.engine_error, batches
        )

    async def astart(self) -> Runtime:
        """``start``, awaited: the workers load in a thread of their own while the loop runs on; every
        coroutine that finds the runtime not started awaits this one start (a failed start raises
        its error in each of them)."""
        from tuner.runtime.aio import in_thread, until_done

        if self._started:
            return self
        if self._closed:
            raise EngineClosed("the runtime is closed")
        with self._start_lock:
            if self._starting is None:
                self._starting = in_thread(self.start, "tuner-start")
            starting = self._starting
        await until_done(starting)
        starting.result()
        return self

    async def aclose(self, wait: bool = True, cancel: bool = False) -> None:
        """``close``, awaited: the runtime flushes (or, with ``cancel``, fails) its work and stops in a
        thread of its own while the loop runs on, so coroutines awaiting outcomes get them; those
        awaiting room get :class:`EngineClosed`."""
        from tuner.runtime.aio import in_thread, until_done

        closing = in_thread(functools.partial(self.close, wait, cancel), "tuner-close")
        await until_done(closing)
        closing.result()

    async def __aenter__(self) -> Runtime:
        return await self.astart()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        await self.aclose(wait=exc_type is None, cancel=exc_type is not None)

    # ---------------------------------------------------------------- figures

    def _backlog(self) -> float:
        """Partitions waiting or running, and queued items counted in partitions (the autoscaler's metric)."""
        return self._dispatch.live + math.ceil(self._batcher.queued() / self.settings.batch_size)

    def stats(self) -> RuntimeStats:
        """Workers, backlog, throughput and latency percentiles over a recent window, failures, retries."""
        e = self._engine.stats()
        throughput, lat = self._meter.recent()
        done, failed, failures = self._meter.totals()
        return RuntimeStats(
            workers=e["workers"],
            live_workers=e["live_workers"],
            backlog=e["backlog"],
            queued=self._batcher.queued(),
            items_done=done,
            items_failed=failed,
            throughput=throughput,
            window_s=self._meter.window_s,
            latency_ms=lat,
            failures=failures,
            retries=e["retried"],
            replaced=e["replaced"],
            scaling=tuple(self.scaling_decisions),
            pending=self._gate.pending,
            max_pending=self._gate.limit,
            rejected=self._gate.rejected,
            hedges=e.get("hedges", 0),
            hedges_won=e.get("hedges_won", 0),
            duplicate_work=e.get("duplicate_ratio", 0.0),
            drift=self._observer.drifting() if self._observer is not None else {},
        )

    @property
    def scaling_decisions(self) -> list[ScalingDecision]:
        """Every resize the autoscaler made (the last DECISIONS_KEPT), oldest first."""
        return list(self._autoscaler.decisions) if self._autoscaler is not None else []


def _outcomes(futures: list[Future[Any]]) -> list[Any]:
    """Each done future's output or its failure record; the engine's error is raised (the first)."""
    out: list[Any] = []
    error: BaseException | None = None
    for fut in futures:
        e = fut.exception()
        if e is None:
            out.append(fut.result())
        elif isinstance(e, ItemFailed):
            out.append(e.failure)
        else:
            error = error or e
            out.append(None)
    if error is not None:
        raise error
    return out
