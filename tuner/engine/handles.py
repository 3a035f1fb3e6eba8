"""Worker handles: the supervisor's side of one worker, one class per backend.

The supervisor (``supervisor.py``) and its worker manager (``workers.py``) drive every worker through
the same few calls and never ask which backend it is::

    cls.setup(launch) -> shared      once per engine, in the caller's thread (may raise BadInput)
    h.start()                        start the worker; it loads the model and reports READY
    h.send(part) -> bool             queue a partition (True: call h.flush() when the poller allows)
    h.stop() / h.kill(hard) -> bool  leave when idle / end now; True: wait for exit_status()
    h.exit_status()                  None while the worker lives, else (exit code, signal name)
    h.reap()                         after it exited: free what it held (fds, segments, its group)
    cls.teardown(shared)             once, after the last worker

How a worker's words come back depends on what the backend can wait on. A handle with file
descriptors (a process: its socket and its sentinel) lists them in :meth:`WorkerHandle.waitables`
and the supervisor's poller wakes on them; a handle without (a thread; a Ray actor, whose
completions arrive as done-callbacks of its calls' futures) calls ``launch.post(handle, message)``,
which queues the message for the supervisor and pokes its wake socket. Either way the messages are
the tuples of :mod:`tuner.engine.worker`.

A handle keeps the parts it holds in ``inflight`` (oldest first: the head is running). The
supervisor may give one part to two handles at once (hedging); a handle never assumes a part is
only its own.
"""

from __future__ import annotations

import functools
import multiprocessing as mp
import os
import pickle
import queue
import signal
import socket
import sys
import threading
import time
import types
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import context as mp_context
from multiprocessing import spawn
from typing import Any

from tuner.engine import events as ev
from tuner.engine.config import EngineConfig
from tuner.engine.faults import SimulatedCrash
from tuner.engine.ledger import Part
from tuner.engine.transport import PICKLED, Channel, SegmentPool, ensure_tracker
from tuner.engine.worker import (
    DIED,
    LOAD_ERR,
    READY,
    ThreadLimits,
    limit_threads,
    load_error_message,
    loading_model,
    process_main,
    serve,
)
from tuner.errors import ConfigError, ModelSpecError

#: where the poller's answer came from (the ``what`` of a waitable)
READABLE, EXITED = 1, 2


@dataclass
class Launch:
    """What every worker of one engine needs: the model, the settings, and how to reach the supervisor."""

    model: Any
    label: str  # the model's spec text, for messages
    config: EngineConfig
    post: Callable[[WorkerHandle, Any], None]  # queue a worker's message for the supervisor
    shared: Any = None  # what the handle class's setup() returned


class WorkerHandle:
    """One worker as the supervisor sees it. Subclass per backend; see the module docstring."""

    __slots__ = (
        "booted",
        "cause",
        "inflight",
        "kill_at",
        "launch",
        "node",
        "note",
        "pid",
        "ready",
        "replacing",
        "retiring",
        "t_head",
        "t_spawn",
        "wid",
    )

    @property
    def can_kill(self) -> bool:
        """kill() really stops the worker mid-partition (the backend's descriptor says)."""
        return bool(self.launch.config.kind.can_kill)

    def __init__(self, wid: int, replacing: int | None, launch: Launch) -> None:
        self.wid = wid
        self.replacing = replacing  # the worker this one replaces, for events
        self.launch = launch
        self.pid = 0
        self.inflight: deque[Part] = deque()  # sent, oldest first; the head is running
        self.t_head = 0.0  # when the head started (its timeout clock)
        self.booted = True  # it runs our code (a process: once BOOT arrives)
        self.ready = False  # the model is loaded
        self.retiring = False  # takes no new work; stops once drained
        self.cause: str | None = None  # set when it is stopped, killed or dead
        self.note: str | None = None  # an injected fault it announced
        self.node: str | None = None  # the cluster node it runs on (a Ray actor), for events
        self.kill_at = 0.0  # when to escalate if it has not exited
        self.t_spawn = time.perf_counter()

    # -- once per engine ----------------------------------------------------------------------------
    @classmethod
    def setup(cls, launch: Launch) -> Any:
        """Prepare what all workers share; raise BadInput for a model this backend cannot run."""
        return None

    @classmethod
    def teardown(cls, shared: Any) -> None:
        """Free what :meth:`setup` made (after every worker exited)."""

    # -- per worker -----------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker; it reports READY (or LOAD_ERR) as a message."""
        raise NotImplementedError

    def send(self, part: Part) -> bool:
        """Give the worker a partition; True when output now waits for :meth:`flush`."""
        raise NotImplementedError

    def flush(self) -> bool:
        """Write queued output; True when nothing is left. OSError if the worker is gone."""
        return True

    def stop(self) -> bool:
        """Ask the worker to leave once it has finished what it holds. True: wait for its exit."""
        return False

    def kill(self, hard: bool) -> bool:
        """End the worker now (``hard``: no grace). True: wait for its exit (``exit_status``)."""
        return False

    def waitables(self) -> list[tuple[Any, int]]:
        """(fd or object with fileno(), READABLE | EXITED) for the poller; [] if it posts instead."""
        return []

    def out_waitable(self) -> Any:
        """The waitable that reports room for more output (for :meth:`flush`), or None."""
        return None

    def receive(self) -> list[Any]:
        """Messages ready now (a READABLE waitable fired). EOFError when the worker closed its end."""
        return []

    def exit_status(self) -> tuple[int | None, str | None] | None:
        """None while the worker lives, else ``(exit code, signal name)`` (both None if unknown)."""
        return (None, None)

    def join(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` for the worker to exit; True if it has."""
        return True

    def reap(self) -> None:
        """After it exited: free its resources, and end anything it started."""

    def done_with(self, part: Part) -> None:
        """An outcome for ``part`` arrived from this worker: free what carried it."""

    def running_id(self) -> int | None:
        """The id of the partition the worker is running right now, -1 if none; None if it cannot
        tell (then its oldest partition in flight is taken to be the one running)."""
        return None

    def rss(self) -> int | None:
        """Resident memory of the worker (bytes), if it is a process of its own."""
        return None

    def sample(self) -> ev.WorkerSample | None:
        """CPU% and RSS for a ResourceSample, if it is a process of its own."""
        return None


# -------------------------------------------------------------------------------------------- process
def default_start_method() -> str:
    """forkserver where the OS has it, else spawn; never fork (see module docstring of tuner.engine)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


# Workers never need the caller's __main__: the model is a spec string (or a callable named by its
# module), so a worker imports what it needs itself. multiprocessing's spawn and forkserver start
# methods would re-run the caller's main script in every worker ("preparation data" carries its
# path), which breaks a script without `if __name__ == "__main__":`, code piped to `python -`, and
# notebooks. There is no public switch for this, so tuner's worker processes are started by a
# Process subclass whose start() asks for preparation data without the main module: a filter
# around spawn.get_preparation_data (public in spawn.__all__, and what every start method calls),
# active only in the thread that is starting a tuner worker, at that moment. Everything else in
# the preparation data (sys.path, working directory, argv) still goes, so specs resolve as before.
_without_main = threading.local()


def _install_main_filter() -> None:
    current = spawn.get_preparation_data
    if getattr(current, "_tuner_filter", False):
        return

    @functools.wraps(current)
    def get_preparation_data(name: str) -> dict[str, Any]:
        data: dict[str, Any] = current(name)
        if getattr(_without_main, "on", False):
            data.pop("init_main_from_name", None)
            data.pop("init_main_from_path", None)
        return data

    get_preparation_data._tuner_filter = True  # type: ignore[attr-defined]
    spawn.get_preparation_data = get_preparation_data


class _WithoutMain:
    """Process mixin: start() sends preparation data without the caller's main module."""

    def start(self) -> None:
        _without_main.on = True
        try:
            super().start()  # type: ignore[misc]
        finally:
            _without_main.on = False


class _SpawnWorker(_WithoutMain, mp_context.SpawnProcess):
    """A spawn-started worker process (picklable by reference: the child unpickles it)."""


if sys.platform != "win32":

    class _ForkServerWorker(_WithoutMain, mp_context.ForkServerProcess):
        """A forkserver-started worker process (picklable by reference: the child unpickles it)."""

    _PROCESS_CLASSES: dict[str, type] = {"spawn": _SpawnWorker, "forkserver": _ForkServerWorker}
else:  # pragma: no cover - Windows has spawn only
    _PROCESS_CLASSES = {"spawn": _SpawnWorker}


class _MainReference(Exception):
    pass


class _MainFinder(pickle.Pickler):
    """Pickles like multiprocessing does, but stops at anything named in ``__main__``."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, types.FunctionType)) and getattr(obj, "__module__", None) == "__main__":
            raise _MainReference(obj)
        return NotImplemented


def sendable_model(model: Any, label: str) -> Any:
    """The model as it can travel to a worker process: a spec string, or a picklable callable.

    A function or class defined in the caller's main *script* becomes the spec ``script.py:name``
    (the worker imports the file as a module: a script whose top level starts an engine must keep
    that under ``if __name__ == "__main__":``). Anything else that needs ``__main__`` — a lambda,
    code from ``python -c`` or stdin, a notebook cell — cannot reach a worker: ModelSpecError with
    what to do instead.
    """
    if isinstance(model, str) or not callable(model):
        return model
    import io

    try:
        _MainFinder(io.BytesIO(), protocol=pickle.HIGHEST_PROTOCOL).dump(model)
        return model
    except _MainReference as ref:
        found = ref.args[0]
    except Exception as e:
        raise ModelSpecError(
            f"model {label} cannot be sent to worker processes ({type(e).__name__}: {e}); "
            "define it at the top level of a module and pass it by spec ('module:name' or 'file.py:name'), "
            "or use backend='thread'"
        ) from None
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    qualname = getattr(model, "__qualname__", "")
    if (
        found is model
        and isinstance(path, str)
        and path.endswith(".py")
        and os.path.isfile(path)
        and "<" not in qualname
    ):
        return f"{os.path.abspath(path)}:{qualname}"
    where = "a script" if isinstance(path, str) and os.path.isfile(path) else "python -c, stdin or a notebook"
    raise ModelSpecError(
        f"model {label} is defined in __main__ ({where}), which worker processes cannot import: "
        "put it in a .py file and pass 'file.py:name' (or 'module:name'), or use backend='thread'"
    )


@dataclass
class _ProcessShared:
    ctx: Any
    process_cls: type
    model: Any  # what is sent (sendable_model)
    env: dict[str, str]
    alive_r: Any
    alive_w: Any
    segments: SegmentPool


class ProcessHandle(WorkerHandle):
    """A worker process (forkserver or spawn) talking over a framed socket; big numpy partitions
    travel through shared memory. It leads its own process group, killed with it."""

    __slots__ = ("chan", "proc", "ps", "running", "segs")

    def __init__(self, wid: int, replacing: int | None, launch: Launch) -> None:
        super().__init__(wid, replacing, launch)
        self.booted = False
        self.proc: Any = None
        self.chan: Channel | None = None
        self.running: Any = None  # shared slot: the partition id the worker runs (worker.serve)
        self.ps: Any = None  # psutil.Process, made on first use
        self.segs: dict[Part, Any] = {}  # shared-memory segment of each part in flight that has one

    @classmethod
    def setup(cls, launch: Launch) -> _ProcessShared:
        c = launch.config
        if loading_model():
            raise ModelSpecError(
                "a tuner engine was started while a worker imported the model's file: "
                'put the code that starts it under `if __name__ == "__main__":`'
            )
        method = c.start_method or default_start_method()
        if method == "fork":
            raise ConfigError("start method 'fork' is not supported: use forkserver or spawn")
        if method not in _PROCESS_CLASSES:
            raise ConfigError(f"start method '{method}': choose from {', '.join(_PROCESS_CLASSES)}")
        model = sendable_model(launch.model, launch.label)
        ctx = mp.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(["tuner.engine.worker", "tuner.models", "numpy", "threadpoolctl"])
        _install_main_filter()
        ensure_tracker()
        alive_r, alive_w = ctx.Pipe(duplex=False)
        return _ProcessShared(
            ctx=ctx,
            process_cls=_PROCESS_CLASSES[method],
            model=model,
            env=dict(os.environ),
            alive_r=alive_r,
            alive_w=alive_w,
            segments=SegmentPool(),
        )

    @classmethod
    def teardown(cls, shared: _ProcessShared) -> None:
        shared.segments.close()
        shared.alive_w.close()
        shared.alive_r.close()

    def start(self) -> None:
        sh: _ProcessShared = self.launch.shared
        c = self.launch.config
        parent, child = socket.socketpair()
        self.running = sh.ctx.RawArray("q", 1)
        self.running[0] = -1
        proc = sh.process_cls(
            target=process_main,
            args=(child, sh.alive_r, sh.model, c.threads_per_worker, c.faults, sh.env, self.running),
            name=f"tuner-worker-{self.wid}",
            daemon=False,
        )
        try:
            proc.start()
        finally:
            child.close()
        self.proc, self.chan, self.pid = proc, Channel(parent), proc.pid

    def send(self, part: Part) -> bool:
        kind, payload, seg = self.launch.shared.segments.pack(part.items)
        if seg is not None:
            self.segs[part] = seg
        chan = self.chan
        assert chan is not None
        was_empty = not chan.pending
        chan.queue((part.id, part.attempt + 1, part.first, kind, payload, part.exact, part.copy))
        return was_empty

    def flush(self) -> bool:
        assert self.chan is not None
        return self.chan.flush()

    def stop(self) -> bool:
        assert self.chan is not None
        self.chan.queue(None)
        try:
            self.chan.flush()
        except OSError:
            pass  # already gone: its sentinel says so
        return True

    def kill(self, hard: bool) -> bool:
        sig = signal.SIGKILL if hard and hasattr(signal, "SIGKILL") else signal.SIGTERM
        self._signal_group(sig)
        try:
            (self.proc.kill if hard else self.proc.terminate)()
        except (OSError, ValueError):
            pass
        return True

    def _signal_group(self, sig: int) -> None:
        # The worker leads a group whose id is its pid (worker._lead_own_group); the group outlives
        # the worker while anything the model started still runs in it.
        if self.pid and hasattr(os, "killpg"):
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def waitables(self) -> list[tuple[Any, int]]:
        return [(self.chan, READABLE), (self.proc.sentinel, EXITED)]

    def out_waitable(self) -> Any:
        return self.chan

    def receive(self) -> list[Any]:
        assert self.chan is not None
        return self.chan.receive()

    def exit_status(self) -> tuple[int | None, str | None] | None:
        try:
            code = self.proc.exitcode
        except ValueError:  # closed
            return (None, None)
        if code is None:
            return None
        return code, _signal_name(code)

    def join(self, timeout: float | None) -> bool:
        self.proc.join(timeout)
        return self.proc.exitcode is not None

    def reap(self) -> None:
        # Whatever the model started dies with the worker, even if the worker exited cleanly.
        self._signal_group(signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        segments = self.launch.shared.segments
        for seg in self.segs.values():  # the worker is gone: nobody reads them any more
            segments.release(seg)
        self.segs.clear()
        if self.chan is not None:
            self.chan.close()
        try:
            self.proc.close()
        except ValueError:  # still running: close() refuses; the sentinel fd closes with it later
            pass

    def done_with(self, part: Part) -> None:
        if self.segs:
            seg = self.segs.pop(part, None)
            if seg is not None:
                self.launch.shared.segments.release(seg)

    def running_id(self) -> int | None:
        return int(self.running[0]) if self.running is not None else None

    def _psutil(self) -> Any:
        if self.ps is None and self.pid:
            import psutil

            self.ps = psutil.Process(self.pid)
        return self.ps

    def rss(self) -> int | None:
        import psutil

        try:
            ps = self._psutil()
            return None if ps is None else int(ps.memory_info().rss)
        except psutil.Error:
            return None

    def sample(self) -> ev.WorkerSample | None:
        import psutil

        try:
            ps = self._psutil()
            if ps is None:
                return None
            with ps.oneshot():
                return ev.WorkerSample(
                    self.wid, self.pid, ps.cpu_percent(None), ps.memory_info().rss, ps.num_threads()
                )
        except psutil.Error:
            return None


def _signal_name(exitcode: int | None) -> str | None:
    """'SIGKILL' for a process killed by a signal (negative exit code), else None."""
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


# --------------------------------------------------------------------------------------------- thread
class _InCallerProcess(WorkerHandle):
    """A worker in the caller's own process: the thread limit applies to the caller while the engine
    runs and is put back at close."""

    __slots__ = ()

    @classmethod
    def setup(cls, launch: Launch) -> ThreadLimits | None:
        return limit_threads(launch.config.threads_per_worker)

    @classmethod
    def teardown(cls, shared: ThreadLimits | None) -> None:
        if shared is not None:
            shared.restore()


class ThreadHandle(_InCallerProcess):
    """A worker thread in the caller's process: for models that release the GIL. A hung thread cannot
    be killed: it is abandoned (its late words are ignored) and exits when it wakes."""

    __slots__ = ("inbox", "thread")

    def __init__(self, wid: int, replacing: int | None, launch: Launch) -> None:
        super().__init__(wid, replacing, launch)
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._main, name=f"tuner-worker-{self.wid}", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        post = self.launch.post
        try:
            from tuner.models import load_model

            fn = load_model(self.launch.model, threads=self.launch.config.threads_per_worker)
        except BaseException as e:
            post(self, (LOAD_ERR, load_error_message(e)))
            return
        post(self, (READY, threading.get_native_id(), time.perf_counter() - self.t_spawn))
        try:
            serve(
                self.inbox.get,
                lambda m, *_: post(self, m),
                fn,
                self.launch.config.faults,
                in_process=False,
                label=self.launch.label,
            )
        except SimulatedCrash:
            post(self, (DIED, "injected crash"))
        except BaseException as e:
            post(self, (DIED, f"{type(e).__name__}: {e}"))

    def send(self, part: Part) -> bool:
        self.inbox.put((part.id, part.attempt + 1, part.first, PICKLED, part.items, False, part.copy))
        return False

    def stop(self) -> bool:
        self.inbox.put(None)
        return False

    def kill(self, hard: bool) -> bool:
        self.inbox.put(None)  # if it is hung, it sees this when (if) it wakes
        return False

    def join(self, timeout: float | None) -> bool:
        if self.thread is not None:
            self.thread.join(timeout)
            return not self.thread.is_alive()
        return True


# --------------------------------------------------------------------------------------------- inline
class InlineHandle(_InCallerProcess):
    """The model runs in the supervisor's own thread, one partition at a time: the serial baseline.
    No timeouts, no crash isolation."""

    __slots__ = ("fn",)

    def __init__(self, wid: int, replacing: int | None, launch: Launch) -> None:
        super().__init__(wid, replacing, launch)
        self.fn: Callable[[Any], Any] | None = None

    def start(self) -> None:
        from tuner.models import load_model

        try:
            self.fn = load_model(self.launch.model, threads=self.launch.config.threads_per_worker)
        except BaseException as e:
            self.launch.post(self, (LOAD_ERR, load_error_message(e)))
        else:
            self.launch.post(self, (READY, 0, time.perf_counter() - self.t_spawn))

    def send(self, part: Part) -> bool:
        assert self.fn is not None
        post = self.launch.post
        msgs = iter(((part.id, part.attempt + 1, part.first, PICKLED, part.items, False), None))
        try:
            serve(
                msgs.__next__,
                lambda m, *_: post(self, m),
                self.fn,
                self.launch.config.faults,
                in_process=False,
                label=self.launch.label,
            )
        except SimulatedCrash:
            post(self, (DIED, "injected crash"))
        return False
