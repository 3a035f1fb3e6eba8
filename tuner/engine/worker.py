"""The worker: load the model once, then run partitions until told to stop.

One loop (:func:`serve`) serves every backend; only how messages travel differs (a pipe for a
process, a queue for a thread, a direct call for inline). Messages are plain tuples, the cheapest
thing to pickle:

    parent -> worker   (partition_id, attempt, first_item, kind, payload, exact)   or None to stop
    worker -> parent   (OK, partition_id, outputs, service_s)
                       (ERR, partition_id, exc_type, message, traceback, service_s)
                       (NOTE, partition_id, fault_kind)       an injected fault is about to strike
                       (READY, os_pid, load_s)  /  (LOAD_ERR, message)   once, at start
                       (DIED, exit_note)                      a thread worker's simulated crash

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

OK, ERR, NOTE, READY, LOAD_ERR, DIED = range(6)

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


def limit_threads(n: int | None) -> Any:
    """Limit BLAS/OpenMP threads to ``n`` in this process; returns a handle to keep (or restore).

    The environment variables reach libraries loaded later (torch, onnxruntime read them at load);
    threadpoolctl reaches the ones already loaded (numpy's BLAS, preloaded in the forkserver).
    """
    if n is None:
        return None
    for var in _THREAD_ENV:
        os.environ[var] = str(n)
    from threadpoolctl import threadpool_limits

    handle = threadpool_limits(limits=n)
    _limit_torch(n)
    return handle


def _limit_torch(n: int) -> None:
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            torch.set_num_threads(n)
        except Exception:
            pass


def serve(
    recv: Callable[[], Any],
    send: Callable[..., None],
    fn: Callable[[Any], Any],
    plan: FaultPlan,
    *,
    in_process: bool,
    label: str = "model",
    flush: Callable[[], None] | None = None,
) -> None:
    """Run partitions until ``recv()`` returns None. Raises SimulatedCrash out of a thread worker.

    ``label`` names the model in messages (its spec text). ``flush`` sends results held back for
    batching; it runs before an ``exact`` partition (one re-run after a crash or a timeout), so the
    supervisor can tell exactly which partition a worker was running when it died.
    """
    from tuner.models import check_outputs

    attachments = Attachments()
    active = plan.active
    perf = time.perf_counter
    while True:
        msg = recv()
        if msg is None:
            return
        pid, attempt, first, kind, payload, exact = msg
        if exact and flush is not None:
            flush()  # a suspect partition: results before it must be out before it runs
        part = attachments.view(payload) if kind == SHARED else payload
        t0 = perf()
        try:
            if active:
                fault = plan.decide(first, len(part), attempt)
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
        except Exception as e:
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
    """Exit at once when the parent is gone: its end of the ``alive`` pipe closes, recv sees EOF."""
    try:
        while True:
            alive.recv_bytes()
    except (EOFError, OSError):
        os._exit(EXIT_PARENT_GONE)


def process_main(
    sock: Any, alive: Any, spec: Any, threads: int | None, plan: FaultPlan, env: dict[str, str] | None = None
) -> None:
    """Entry point of a worker process; ``sock`` is its end of the framed channel.

    ``env`` is the parent's environment when the engine started: a forkserver child would otherwise
    inherit the forkserver's, frozen when it first started, and miss what the caller set since.
    """
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    # Ctrl-C reaches the whole process group; the parent decides, and stops us in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(alive,), name="tuner-parent-watch", daemon=True).start()
    chan = WorkerChannel(sock)
    t0 = time.perf_counter()
    try:
        limits = limit_threads(threads)
        from tuner.models import load_model, spec_text

        fn = load_model(spec)
        if threads is not None:
            _limit_torch(threads)  # the model may have imported torch just now
    except BaseException as e:
        chan.send((LOAD_ERR, _one_line(e)))
        sock.close()
        return
    chan.send((READY, os.getpid(), time.perf_counter() - t0))
    try:
        serve(chan.recv, chan.send, fn, plan, in_process=True, label=spec_text(spec), flush=chan.flush)
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # parent closed the channel: nothing left to do
    finally:
        del limits


def _one_line(e: BaseException) -> str:
    from tuner.errors import TunerError

    if isinstance(e, TunerError):
        return str(e)
    return f"loading the model raised {type(e).__name__}: {e}".splitlines()[0]


def load_error_message(e: BaseException) -> str:
    """The one-line message for a model that failed to load in a thread or inline worker."""
    return _one_line(e)
