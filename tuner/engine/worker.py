"""The worker: load the model once, then run partitions until told to stop.

One loop (:func:`serve`) serves every backend; only how messages travel differs (a pipe for a
process, a queue for a thread, a direct call for inline). Messages are plain tuples, the cheapest
thing to pickle:

    parent -> worker   (partition_id, attempt, first_item, kind, payload, exact, copy)   or None to stop
                       (copy: 0, or 1 for a hedge copy; a 6-tuple means copy 0)
    worker -> parent   (OK, partition_id, outputs, service_s)
                       (ERR, partition_id, exc_type, message, traceback, service_s)
                       (NOTE, partition_id, fault_kind)       an injected fault is about to strike
                       (BOOT,)                                a process worker runs our code (before loading)
                       (READY, os_pid, load_s)  /  (LOAD_ERR, message)   once, at start
                       (DIED, exit_note)                      a thread worker's simulated crash

A process worker leads its own process group, so whatever the model starts (a subprocess, a pool
of its own) is in that group: the supervisor kills the group when the worker crashes, times out,
goes over memory, retires or closes, and the worker kills it itself when its parent is gone. A
process that leaves the group on purpose (``setsid``, a daemon) escapes this.

This module is preloaded by the forkserver, so it imports only what every worker needs.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from tuner.engine.faults import FaultPlan, SimulatedCrash, run_with_fault
from tuner.engine.transport import SHARED, Attachments, WorkerChannel

OK, ERR, NOTE, READY, LOAD_ERR, DIED, BOOT = range(7)

#: results of partitions faster than this may be batched (see WorkerChannel).
DEFER_BELOW_S = 0.0005
#: exit code of a worker that noticed its parent is gone.
EXIT_PARENT_GONE = 75

_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


#: set while a process worker imports the model: an engine started then would start workers of its own
_loading_model = False


class ThreadLimits:
    """BLAS/OpenMP threads limited to ``n`` in this process, until :meth:`restore`.

    The environment variables reach libraries loaded later (torch, onnxruntime read them at load);
    threadpoolctl reaches the ones already loaded (numpy's BLAS, preloaded in the forkserver). A
    thread or inline engine limits the caller's own process, so it must put everything back when it
    closes: an engine started later (or the caller's own code) would inherit the limit otherwise.
    """

    def __init__(self, n: int) -> None:
        self._value = str(n)
        self._env_before = {var: os.environ.get(var) for var in _THREAD_ENV}
        for var in _THREAD_ENV:
            os.environ[var] = self._value
        from threadpoolctl import threadpool_limits

        self._pools: Any = threadpool_limits(limits=n)
        self._torch_before = _limit_torch(n)

    def restore(self) -> None:
        """Put back the environment, the BLAS limits and torch's thread count as they were."""
        for var, old in self._env_before.items():
            if os.environ.get(var) != self._value:
                continue  # changed by someone else since: theirs now
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old
        if self._pools is not None:
            self._pools.restore_original_limits()
            self._pools = None
        if self._torch_before is not None:
            _limit_torch(self._torch_before)
            self._torch_before = None


def limit_threads(n: int | None) -> ThreadLimits | None:
    """Limit BLAS/OpenMP threads to ``n`` in this process (None: leave them); see :class:`ThreadLimits`."""
    return None if n is None else ThreadLimits(n)


def loading_model() -> bool:
    """True while this process is a worker importing its model (see :func:`process_main`)."""
    return _loading_model


def _limit_torch(n: int) -> int | None:
    """Set torch's intra-op threads if torch is loaded; returns the previous count (None: no torch)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        before = int(torch.get_num_threads())
        torch.set_num_threads(n)
    except Exception:
        return None
    return before


def serve(
    recv: Callable[[], Any],
    send: Callable[..., None],
    fn: Callable[[Any], Any],
    plan: FaultPlan,
    *,
    in_process: bool,
    label: str = "model",
    flush: Callable[[], None] | None = None,
    running: Any = None,
) -> None:
    """Run partitions until ``recv()`` returns None. Raises SimulatedCrash out of a thread worker.

    ``label`` names the model in messages (its spec text). ``flush`` sends results held back for
    batching; it runs before an ``exact`` partition (one re-run after a crash or a timeout).
    ``running[0]`` (shared memory, for a process worker) holds the id of the partition being
    handled, -1 between partitions: results held back for batching die with a crashed worker, so
    the supervisor reads this to charge a death to the partition that really ran.
    """
    from tuner.models import check_outputs

    attachments = Attachments()
    active = plan.active
    perf = time.perf_counter
    while True:
        if running is not None:
            running[0] = -1
        msg = recv()
        if msg is None:
            return
        if len(msg) == 7:
            pid, attempt, first, kind, payload, exact, copy = msg
        else:
            pid, attempt, first, kind, payload, exact = msg
            copy = 0
        if running is not None:
            running[0] = pid
        if exact and flush is not None:
            flush()  # a suspect partition: results before it must be out before it runs
        part = attachments.view(payload) if kind == SHARED else payload
        t0 = perf()
        try:
            if active:
                fault = plan.decide(first, len(part), attempt, copy)
                announce = _announcer(send, pid)
                out = run_with_fault(fault, plan, fn, part, in_process=in_process, announce=announce)
            else:
                out = fn(part)
            try:
                counted = len(out) == len(part) and not isinstance(out, (str, bytes, dict))
            except TypeError:
                counted = False
            if not counted:
                check_outputs(label, part, out)  # raises ModelSpecError with the one-line reason
            dt = perf() - t0
        except SimulatedCrash:
            raise
        except (Exception, KeyboardInterrupt, SystemExit) as e:
            # KeyboardInterrupt and SystemExit raised by the model are the model's failure like any
            # other: a process worker ignores SIGINT, and a thread worker never receives it.
            send((ERR, pid, type(e).__name__, str(e), traceback.format_exc(), perf() - t0))
            continue
        del part
        try:
            if dt < DEFER_BELOW_S and not exact:
                send((OK, pid, out, dt), True)  # a tiny partition's result may ride with the next ones
            else:
                send((OK, pid, out, dt))
        except Exception as e:
            send((ERR, pid, type(e).__name__, f"output could not be sent: {e}", traceback.format_exc(), dt))


def _announcer(send: Callable[[Any], None], pid: int) -> Callable[[str], None]:
    def announce(kind: str) -> None:
        send((NOTE, pid, kind))

    return announce


def _watch_parent(alive: Any) -> None:
    """Exit at once when the parent is gone: its end of the ``alive`` pipe closes, recv sees EOF.

    The whole process group goes: this worker and whatever the model started.
    """
    try:
        while True:
            alive.recv_bytes()
    except (EOFError, OSError):
        _kill_own_group()
        os._exit(EXIT_PARENT_GONE)


def _lead_own_group() -> None:
    """Make this worker the leader of a new process group (POSIX), for the supervisor to kill."""
    if hasattr(os, "setpgid"):
        try:
            os.setpgid(0, 0)
        except OSError:  # already a session or group leader: keep the group it has
            pass


def _leads_group() -> bool:
    return hasattr(os, "killpg") and os.getpgid(0) == os.getpid()


def _kill_own_group() -> None:
    """SIGKILL this worker's group: the worker itself and whatever the model started."""
    if _leads_group():
        try:
            os.killpg(0, signal.SIGKILL)
        except OSError:
            pass


def _end_own_group() -> None:
    """Told to stop: SIGTERM what the model started, keep our own exit clean (exit code 0).

    The supervisor SIGKILLs the group once we have exited, for what ignores SIGTERM; this covers the
    moment in between, should the supervisor die in it.
    """
    if _leads_group():
        try:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.killpg(0, signal.SIGTERM)
        except OSError:
            pass


def process_main(
    sock: Any,
    alive: Any,
    spec: Any,
    threads: int | None,
    plan: FaultPlan,
    env: dict[str, str] | None = None,
    running: Any = None,
) -> None:
    """Entry point of a worker process; ``sock`` is its end of the framed channel, ``running`` its
    shared slot for the id of the partition it runs (see :func:`serve`).

    ``env`` is the parent's environment when the engine started: a forkserver child would otherwise
    inherit the forkserver's, frozen when it first started, and miss what the caller set since.
    """
    global _loading_model
    _lead_own_group()
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    # Ctrl-C is the parent's to handle: it stops us in order (we lead our own group, but a model
    # may still send SIGINT to us).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(alive,), name="tuner-parent-watch", daemon=True).start()
    chan = WorkerChannel(sock)
    chan.send((BOOT,))  # we run: a death from now on happened while loading the model, not before
    t0 = time.perf_counter()
    try:
        limits = limit_threads(threads)
        from tuner.models import load_model, spec_text

        _loading_model = True
        try:
            # The threads knob reaches the model's loader too: a model file's adapter sets its
            # framework's own pool (ONNX Runtime's, torch's), which the limits above do not reach,
            # and a user's factory may take ``threads=`` to do the same.
            fn = load_model(spec, threads=threads)
        finally:
            _loading_model = False
        if threads is not None:
            _limit_torch(threads)  # the model may have imported torch just now
    except BaseException as e:
        chan.send((LOAD_ERR, _one_line(e)))
        sock.close()
        return
    chan.send((READY, os.getpid(), time.perf_counter() - t0))
    try:
        serve(
            chan.recv,
            chan.send,
            fn,
            plan,
            in_process=True,
            label=spec_text(spec),
            flush=chan.flush,
            running=running,
        )
    except (EOFError, OSError):
        # The channel closed without a stop: the parent is gone. This thread may get here before
        # the parent watch does; either way the group goes with us.
        _kill_own_group()
        os._exit(EXIT_PARENT_GONE)
    del limits
    _end_own_group()


def _one_line(e: BaseException) -> str:
    from tuner.errors import TunerError

    if isinstance(e, TunerError):
        return str(e)
    return f"loading the model raised {type(e).__name__}: {e}".splitlines()[0]


def load_error_message(e: BaseException) -> str:
    """The one-line message for a model that failed to load in a thread or inline worker."""
    return _one_line(e)
