"""The ``ray`` backend: each worker is a Ray actor that holds the loaded model.

One :class:`RayHandle` per actor, beside the process, thread and inline handles; the supervisor
drives it through the same calls and keeps the same guarantees, because the bookkeeping (retries,
splits, every item one outcome in order) is the engine's ledger, not Ray's:

- the actor (:class:`tuner.engine.ray_actor.ModelActor`) reserves ``num_cpus = threads_per_worker``
  and applies the threads knob itself; partitions are actor calls, run one at a time in the order
  sent. Ray's own task retries and actor restarts are off (``max_restarts=0``,
  ``max_task_retries=0``): a lost actor is the engine's to replace, and a lost partition the
  ledger's to retry, so nothing runs twice behind its back;
- numpy partitions and outputs larger than Ray's inline limit (100 KiB) travel through Ray's object
  store (zero-copy reads on the same node), like shared memory for the process backend;
- completions need no polling: each call's ObjectRef gives a ``concurrent.futures.Future``
  (``ObjectRef.future()``) whose done-callback posts the result to the supervisor's outbox and pokes
  its wake socket (``launch.post``), in the order the calls were sent. Those callbacks run on Ray's
  own I/O thread, where a blocking Ray call (``ray.kill``, even ``.remote()``) deadlocks the
  driver; what a callback needs from Ray is queued for one helper thread per engine;
- an actor that dies (``RayActorError``: killed from outside, a crash, its node lost) is reported
  as a worker death: its running partition costs one attempt and is retried on another actor, the
  others it held go back to the queue, and it is replaced. An error that leaves the actor's state
  unknown (``ActorUnavailableError``, a lost result object) is treated the same, after
  ``ray.kill``, so a late copy can never be mistaken for a live worker;
- a partition past its timeout: ``ray.kill(actor, no_restart=True)``, replaced, retried;
- the memory limit: each actor reports its own RSS (``watch``, in a concurrency group of its own, so
  it answers while a partition runs; at once when the limit is passed), and the supervisor's memory
  watch kills it with cause "memory", as it does a process; the limit is also reserved as Ray's
  ``memory`` resource so Ray places the actor where that much is free;
- placement: ``SPREAD`` (Ray's own strategy: actors across nodes) or ``PACK`` (fill one node's
  CPUs before the next: a soft node affinity chosen here, so a node that is gone or full falls back
  to Ray's choice).

The engine does not connect to a cluster itself: ``tuner.cluster.connect`` (or ``ray.init``) does,
before the engine starts; an engine started without one says so in one line.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from tuner.engine import events as ev
from tuner.engine.handles import Launch, WorkerHandle, sendable_model
from tuner.engine.ledger import Part
from tuner.engine.worker import DIED, ERR, LOAD_ERR, NOTE, READY
from tuner.errors import ConfigError

#: the one line printed when Ray is not installed
RAY_MISSING = "the ray backend needs Ray: pip install 'tuner[ray]'"
#: faults announced before they strike (as a process worker's NOTE does), so deaths and timeouts
#: they cause are marked injected
_ANNOUNCED = ("crash", "hang", "slow", "memory")


def import_ray() -> Any:
    """The ``ray`` module, or ConfigError with the line saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_MISSING) from None
    return ray


def alive_nodes(ray: Any) -> list[dict[str, Any]]:
    """The cluster's live nodes that offer CPUs, head first (``ray.nodes()``)."""
    nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0]
    nodes.sort(key=lambda n: ("node:__internal_head__" not in n.get("Resources", {}), n["NodeID"]))
    return nodes


@dataclass
class _RayShared:
    ray: Any
    actor_cls: Any
    model: Any
    cpus: float
    placement: str
    memory_bytes: int | None
    # PACK's view of where this engine's actors are (node id -> actors), kept by the handles
    per_node: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Ray calls that done-callbacks need, run by one helper thread (see the module docstring)
    calls: queue.SimpleQueue[Callable[[], None] | None] = field(default_factory=queue.SimpleQueue)
    helper: threading.Thread | None = None

    def later(self, call: Callable[[], None]) -> None:
        """Run ``call`` on the helper thread (never on Ray's callback thread)."""
        self.calls.put(call)

    def _serve(self) -> None:
        while True:
            call = self.calls.get()
            if call is None:
                return
            try:
                call()
            except Exception:  # an actor gone meanwhile, a driver shutting down: nothing to do
                pass


class RayHandle(WorkerHandle):
    """A worker that is a Ray actor (see the module docstring). It posts its messages; the
    supervisor's poller has nothing of it to wait on."""

    __slots__ = ("_exit_code", "_gone", "_leaving", "_lock", "_node_choice", "_queue", "_sample", "actor")

    def __init__(self, wid: int, replacing: int | None, launch: Launch) -> None:
        super().__init__(wid, replacing, launch)
        self.actor: Any = None
        self._lock = threading.Lock()
        # calls in flight, in the order sent: (part, future of its messages, fault it will inject)
        self._queue: deque[tuple[Part, Future[Any], str | None]] = deque()
        self._gone = threading.Event()  # the actor is dead, killed, or has left
        self._exit_code: int | None = None  # 0 once it left when asked
        self._sample: tuple[int, float] | None = None  # (rss, cpu%) from its last watch report
        self._node_choice: str | None = None  # the node PACK chose for it
        self._leaving = False  # asked to leave: its end is an exit, not a death

    # -- once per engine ----------------------------------------------------------------------------
    @classmethod
    def setup(cls, launch: Launch) -> _RayShared:
        c = launch.config
        ray = import_ray()
        if not ray.is_initialized():
            raise ConfigError(
                "the ray backend is not connected to a Ray cluster: pass --ray-address "
                "(auto | local | ray://host:port), or call tuner.cluster.connect(...) (or ray.init) first"
            )
        model = sendable_model(launch.model, launch.label)
        cpus = float(c.threads_per_worker or 1)
        nodes = alive_nodes(ray)
        if not nodes:
            raise ConfigError("the Ray cluster has no live node with CPUs")
        largest = max(n["Resources"]["CPU"] for n in nodes)
        total = sum(n["Resources"]["CPU"] for n in nodes)
        if cpus > largest:
            raise ConfigError(
                f"threads_per_worker={c.threads_per_worker}: an actor reserves that many CPUs, "
                f"and no node of the Ray cluster has them (largest: {largest:g} CPUs)"
            )
        if c.workers * cpus > total:
            raise ConfigError(
                f"{c.workers} actors × {cpus:g} CPUs need {c.workers * cpus:g} CPUs; "
                f"the Ray cluster has {total:g} (lower workers or threads_per_worker)"
            )
        from tuner.engine.ray_actor import ModelActor

        memory = int(c.memory_limit_mb * 1024 * 1024) if c.memory_limit_mb is not None else None
        shared = _RayShared(ray, ModelActor, model, cpus, c.placement, memory)
        shared.helper = threading.Thread(target=shared._serve, name="tuner-ray-calls", daemon=True)
        shared.helper.start()
        return shared

    @classmethod
    def teardown(cls, shared: _RayShared) -> None:
        shared.calls.put(None)
        if shared.helper is not None:
            shared.helper.join(5.0)

    # -- per worker -----------------------------------------------------------------------------------
    def start(self) -> None:
        sh: _RayShared = self.launch.shared
        c = self.launch.config
        opts: dict[str, Any] = {"num_cpus": sh.cpus, "scheduling_strategy": self._strategy(sh)}
        if sh.memory_bytes is not None:
            opts["memory"] = sh.memory_bytes
        self.actor = sh.actor_cls.options(**opts).remote(
            sh.model, c.threads_per_worker, c.faults, self.launch.label
        )
        fut = self.actor.load.remote().future()
        fut.add_done_callback(self._loaded)

    def _strategy(self, sh: _RayShared) -> Any:
        if sh.placement != "PACK":
            return "SPREAD"
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        # Fill the first node (head first) that still has room for one more of our actors.
        nodes = alive_nodes(sh.ray)
        with sh.lock:
            for n in nodes:
                if (sh.per_node[n["NodeID"]] + 1) * sh.cpus <= n["Resources"]["CPU"]:
                    self._node_choice = n["NodeID"]
                    sh.per_node[n["NodeID"]] += 1
                    # soft: a node that is gone or full falls back to Ray's own choice
                    return NodeAffinitySchedulingStrategy(self._node_choice, soft=True)
        return "DEFAULT"

    def _loaded(self, fut: Future[Any]) -> None:
        post = self.launch.post
        exc = fut.exception()
        if exc is not None:
            self._lost(exc)
            return
        res = fut.result()
        if res[0] == "err":
            post(self, (LOAD_ERR, res[1]))
            return
        _, pid, node, _load_s = res
        self.node = node
        sh: _RayShared = self.launch.shared
        if sh is not None and self._node_choice is not None and self._node_choice != node:
            with sh.lock:  # soft affinity fell back elsewhere: count it where it is
                sh.per_node[self._node_choice] -= 1
                sh.per_node[node] += 1
                self._node_choice = node
        post(self, (READY, pid, time.perf_counter() - self.t_spawn))
        if sh is not None:
            sh.later(self._watch)

    def _watch(self) -> None:
        if self._gone.is_set():
            return
        c = self.launch.config
        try:
            fut = self.actor.watch.remote(self.launch.shared.memory_bytes, c.sample_interval_s).future()
        except Exception:  # the engine is shutting down under us
            return
        fut.add_done_callback(self._watched)

    def _watched(self, fut: Future[Any]) -> None:
        exc = fut.exception()
        if exc is not None:
            self._lost(exc)
            return
        self._sample = fut.result()
        sh: _RayShared | None = self.launch.shared
        if sh is not None:
            sh.later(self._watch)

    def send(self, part: Part) -> bool:
        attempt = part.attempt + 1
        plan = self.launch.config.faults
        fault = plan.decide(part.first, part.n, attempt, part.copy) if plan.active else None
        fut: Future[Any]
        try:
            fut = self.actor.run.remote(
                part.id, attempt, part.first, part.items, part.exact, part.copy
            ).future()
        except Exception as e:  # the items could not be serialized: the partition's failure
            import traceback

            fut = Future()
            msg = (
                ERR,
                part.id,
                type(e).__name__,
                f"partition could not be sent: {e}",
                traceback.format_exc(),
                0.0,
            )
            fut.set_result([msg])
        with self._lock:
            announce = not self._queue and fault in _ANNOUNCED
            self._queue.append((part, fut, fault))
        if announce:
            self.launch.post(self, (NOTE, part.id, fault))
        fut.add_done_callback(self._completed)
        return False

    def _completed(self, _fut: Future[Any]) -> None:
        """A call ended: post the outcomes of the calls at the head that have ended, in order."""
        post = self.launch.post
        with self._lock:
            while self._queue and self._queue[0][1].done():
                part, fut, _ = self._queue.popleft()
                exc = fut.exception()
                if exc is not None:
                    if not self._is_task_error(exc):
                        self._queue.clear()
                        self._lost(exc)
                        return
                    # tuner's own actor code raised (not the model: serve() catches that)
                    post(self, (ERR, part.id, type(exc).__name__, _one_line(exc), str(exc), 0.0))
                else:
                    for msg in fut.result():
                        if msg[0] != NOTE:  # announced when it became the head (below)
                            post(self, msg)
                if self._queue:
                    head, _, fault = self._queue[0]
                    if fault in _ANNOUNCED:
                        post(self, (NOTE, head.id, fault))

    def _is_task_error(self, exc: BaseException) -> bool:
        ray = self.launch.shared.ray if self.launch.shared is not None else None
        return ray is not None and isinstance(exc, ray.exceptions.RayTaskError)

    def _lost(self, exc: BaseException) -> None:
        """The actor died, or its state is unknown: make sure it is gone, then report a death."""
        if self._leaving:
            self._left(None)
            return
        if self._gone.is_set():
            self.launch.post(self, (NOTE, -1, None))  # wakes a supervisor waiting for its exit
            return
        sh: _RayShared | None = self.launch.shared
        if sh is not None and not isinstance(exc, sh.ray.exceptions.ActorDiedError):
            actor = self.actor
            sh.later(lambda: sh.ray.kill(actor, no_restart=True))
        self._gone.set()
        self.launch.post(self, (DIED, death_note(exc)))

    def stop(self) -> bool:
        if self._gone.is_set() or self.actor is None:
            self._gone.set()
            return False
        self._leaving = True
        try:
            fut = self.actor.leave.remote().future()
        except Exception:
            self.kill(hard=True)
            return True
        fut.add_done_callback(self._left)
        return True

    def _left(self, _fut: Future[Any] | None) -> None:
        if self._exit_code is None and not self._gone.is_set():
            self._exit_code = 0
        self._gone.set()
        self.launch.post(self, (NOTE, -1, None))  # wake the supervisor: it reaps us

    def kill(self, hard: bool) -> bool:
        # ray.kill is final whichever way we are asked (Ray has no SIGTERM for an actor); its
        # CPUs are free for the replacement as soon as the raylet has ended the process.
        if self.actor is not None and not self._gone.is_set():
            try:
                self.launch.shared.ray.kill(self.actor, no_restart=True)
            except Exception:
                pass
        self._gone.set()
        return True

    def exit_status(self) -> tuple[int | None, str | None] | None:
        if not self._gone.is_set():
            return None
        return (self._exit_code, None)

    def join(self, timeout: float | None) -> bool:
        return self._gone.wait(timeout)

    def reap(self) -> None:
        sh: _RayShared | None = self.launch.shared
        if sh is not None and self._node_choice is not None:
            with sh.lock:
                sh.per_node[self._node_choice] -= 1
            self._node_choice = None
        with self._lock:
            self._queue.clear()
        self.actor = None  # the last reference: Ray frees the actor's record

    def rss(self) -> int | None:
        s = self._sample
        return None if s is None else s[0]

    def sample(self) -> ev.WorkerSample | None:
        s = self._sample
        return None if s is None else ev.WorkerSample(self.wid, self.pid, s[1], s[0])


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def death_note(exc: BaseException) -> str:
    """How an actor was lost, in one line (Ray's own words, shortened)."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if name == "ActorUnavailableError":
        return "actor unreachable (ActorUnavailableError; its node may be lost): killed and replaced"
    marker = "Worker exit detail:"
    if marker in text:
        detail = text.split(marker, 1)[1].strip().split(". ")[0]
        return f"actor died ({detail})"
    if "node has died" in text or "node died" in text or "node is dead" in text:
        return f"actor lost with its node ({name})"
    return f"actor died ({name})"
