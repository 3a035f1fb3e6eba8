"""Run the sweep in a child process, so the UI never shares a GIL or a core's time slice with it.

The TUI's sweep worker thread drives a :class:`RemoteSweep`; the sweep pipeline
(:class:`tuner.bench.pipeline.SweepPipeline`, the same code ``tuner bench`` runs) lives in a child::

    UI process                                         sweep process (one per sweep)
    ──────────                                         ─────────────
    @work(thread) ── RemoteSweep.run(cancel) ◄─ pipe ── SweepPipeline(request, on_message=send).sweep(cancel)
         │  on_message(msg) → Relay → post_message        ▲   └─► Engine ─► worker processes
    UI thread ── set_faults(plan) / cancel ── pipe ──────┘ listener thread

Why: a sweep's ``thread``-backend trials run the model in the sweeping process, and every backend's
closed loop and supervisor hold that process's GIL thousands of times a second. In the UI process
that would slow key presses and make the TUI's figures differ from a headless run. Out of process,
the figures are the headless figures and the UI thread has its GIL to itself.

No orphans: the child ignores Ctrl-C (the UI decides), stops its sweep when told or when the pipe to
the UI closes (the UI died), and its engines stop their own workers as they always do.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from tuner import errors
from tuner.bench.types import SweepCallback, TrialResult
from tuner.errors import TunerError

#: how often the waiting thread looks at the cancel Event while the child is quiet.
POLL_S = 0.1


def _error(kind: str, text: str) -> TunerError:
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, TunerError):
        return cls(text)
    return TunerError(text)


class RemoteSweep:
    """A stage of the sweep pipeline (the closed-loop sweep, or the online search on ``configs``)
    in a child process, with the in-process stage's API (:class:`tuner.tui.driver.LocalStage`).

    Construction starts the child and waits until it has validated the model and inputs: a bad spec
    raises here, with the same one-line error the in-process Sweep gives.
    """

    def __init__(
        self,
        request: Any,
        on_message: SweepCallback | None = None,
        configs: list[Any] | None = None,
        closed_loop: list[Any] | None = None,
    ) -> None:
        import multiprocessing as mp

        from tuner.engine import default_start_method

        ctx: Any = mp.get_context(default_start_method())
        self._on_message = on_message
        self._conn, child = ctx.Pipe(duplex=True)
        self._send_lock = threading.Lock()
        self._proc = ctx.Process(target=_child_main, args=(child, request, configs, closed_loop), name="tuner-sweep", daemon=False)
        self._proc.start()
        child.close()
        self.results: list[TrialResult] = []
        try:
            kind, payload = self._conn.recv()
        except EOFError:
            self._reap()
            raise TunerError(
                f"the sweep process exited before it started (exit code {self._proc.exitcode})"
            ) from None
        if kind == "error":
            self._reap()
            raise _error(*payload)
        self.host, self.info, self.space = payload

    def set_faults(self, plan: Any) -> None:
        """Takes effect from the next trial, as in-process."""
        self._send(("faults", plan))

    def run(self, cancel: threading.Event | None = None) -> list[TrialResult]:
        """Relay the child's messages until its sweep ends; ``cancel`` stops it (within 2 s)."""
        cancelled = False
        try:
            while True:
                if cancel is not None and cancel.is_set() and not cancelled:
                    self._send(("cancel", None))
                    cancelled = True
                if not self._conn.poll(POLL_S):
                    if not self._proc.is_alive() and not self._conn.poll():
                        raise TunerError(f"the sweep process died (exit code {self._proc.exitcode})")
                    continue
                try:
                    kind, payload = self._conn.recv()
                except EOFError:
                    raise TunerError(f"the sweep process died (exit code {self._proc.exitcode})") from None
                if kind == "msg":
                    if self._on_message is not None:
                        self._on_message(payload)
                elif kind == "done":
                    self.results = payload
                    return self.results
                elif kind == "error":
                    raise _error(*payload)
        finally:
            self._reap()

    def _send(self, msg: tuple[str, Any]) -> None:
        with self._send_lock:
            try:
                self._conn.send(msg)
            except OSError:
                pass  # the child is gone; run() reports how

    def _reap(self) -> None:
        self._proc.join(5.0)
        if self._proc.exitcode is None:
            self._proc.terminate()
            self._proc.join(2.0)
        if self._proc.exitcode is None:
            self._proc.kill()
            self._proc.join()
        self._conn.close()


def _child_main(conn: Any, request: Any, configs: list[Any] | None, closed_loop: list[Any] | None) -> None:
    """The sweep process: prepare the pipeline, report it, run its stage, send the results.

    The stage is the closed-loop sweep, or with ``configs`` the online search on them.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from tuner.bench.pipeline import SweepPipeline

    lock = threading.Lock()

    def send(msg: tuple[str, Any]) -> None:
        with lock:
            conn.send(msg)

    pipeline = SweepPipeline(request, on_message=lambda m: send(("msg", m)))
    try:
        p = pipeline.prepare()
    except TunerError as e:
        send(("error", (type(e).__name__, str(e))))
        pipeline.close()
        return
    send(("ready", (p.host, p.info, p.space)))
    cancel = threading.Event()

    def listen() -> None:
        try:
            while True:
                kind, payload = conn.recv()
                if kind == "cancel":
                    cancel.set()
                elif kind == "faults":
                    pipeline.set_faults(payload)
        except (EOFError, OSError):
            cancel.set()  # the UI is gone: stop the sweep, its engines stop their workers

    threading.Thread(target=listen, name="tuner-sweep-listen", daemon=True).start()
    try:
        if configs is not None:
            results: Any = pipeline.online(cancel, configs=configs, closed_loop=closed_loop).results
        else:
            results = pipeline.sweep(cancel)
    except TunerError as e:
        send(("error", (type(e).__name__, str(e))))
        return
    except Exception as e:
        send(("error", ("TunerError", f"{type(e).__name__}: {e}")))
        return
    finally:
        pipeline.close()
    try:
        send(("done", results))
    except OSError:
        pass
