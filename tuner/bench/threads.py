"""Thread evidence: the OS threads that really ran in each worker, next to what the knobs allow.

A profile says "1 thread per worker"; this checks it. From the supervisor's side (psutil, no help
from the worker), each worker's threads and their CPU times are read when the measurement windows
start (after warm-up) and when they end. A thread **ran** if it used at least ``RAN_SHARE`` of a
core in between: idle threads a library keeps (OpenBLAS's pool, created at numpy's import with
one thread per core and kept asleep under a limit of 1; tuner's own parent watch) exist but do not
run, so they are counted as OS threads and not as threads that ran.

What the knobs allow, per worker process: ``threads_per_worker`` threads computing at once (the
caller is one of them; a pool of T adds T - 1), or what a format adapter says its framework runs
(ONNX Runtime's parallel mode runs an inter-op pool beside the intra-op one). With the thread and
inline backends every worker shares this process, so the figure is the process's, all workers
together (W × T, plus tuner's supervisor and feeder threads), never divided per worker.

More threads ran than allowed: the trial is marked (``over``) and ``pools`` names the thread pools
loaded in that worker which the knobs do not reach for this spec (read from the libraries it has
mapped), e.g. ONNX Runtime's intra-op pool in a hand-written wrapper that made its session
without ``intra_op_num_threads``.
"""

from __future__ import annotations

import os
from typing import Any

import psutil

__all__ = ["RAN_SHARE", "evidence", "snapshot"]

#: a thread ran if it used at least this share of one core during the measurement windows
RAN_SHARE = 0.05
#: tuner's own busy threads in the caller's process for the thread/inline backends: the engine's
#: supervisor and the trial's feeder (the thread running run_trial)
IN_PROCESS_OVERHEAD = 2

#: library file name fragment -> the pool it runs, and whether tuner's generic limit reaches it
#: (threadpoolctl and OMP_NUM_THREADS reach BLAS and OpenMP; worker.limit_threads sets torch's)
_POOLS = (
    ("onnxruntime", "ONNX Runtime's intra-op pool (SessionOptions.intra_op_num_threads)", False),
    ("libtorch_cpu", "torch's intra-op pool (torch.set_num_threads)", True),
    ("libgomp", "an OpenMP pool (OMP_NUM_THREADS)", True),
    ("libiomp", "an OpenMP pool (OMP_NUM_THREADS)", True),
    ("libomp", "an OpenMP pool (OMP_NUM_THREADS)", True),
    ("openblas", "OpenBLAS's pool (threadpoolctl)", True),
    ("mkl_rt", "MKL's pool (threadpoolctl)", True),
    ("tensorflow", "TensorFlow's pools (not set by tuner)", False),
)


def snapshot(pids: list[int]) -> dict[int, dict[int, float]]:
    """{pid: {thread id: CPU seconds}} for the processes still alive."""
    out: dict[int, dict[int, float]] = {}
    for pid in pids:
        try:
            out[pid] = {t.id: t.user_time + t.system_time for t in psutil.Process(pid).threads()}
        except (psutil.Error, OSError):
            continue
    return out


def _loaded_pools(pid: int, model_file: bool) -> list[str]:
    """The pools loaded in a process that the knobs do not reach for this spec (all of them when
    every one is reached: then the report lists what could have run the extra threads)."""
    try:
        paths = {os.path.basename(m.path) for m in psutil.Process(pid).memory_maps(grouped=True)}
    except (psutil.Error, OSError):
        return []
    found: list[tuple[str, bool]] = []
    for fragment, words, reached in _POOLS:
        if any(fragment in p for p in paths) and words not in (w for w, _ in found):
            # A model file's adapter sets its framework's pool itself.
            found.append((words, reached or (model_file and fragment in ("onnxruntime",))))
    unreached = [w for w, r in found if not r]
    return unreached or [w for w, _ in found]


def evidence(
    before: dict[int, dict[int, float]],
    after: dict[int, dict[int, float]],
    wall_s: float,
    *,
    in_caller: bool,
    workers: int,
    threads: int,
    allowed_per_worker: int,
    model_file: bool,
) -> dict[str, Any]:
    """The thread evidence of one trial (JSON-able; see the module docstring)."""
    per: list[tuple[int, int, int]] = []  # (pid, OS threads, threads that ran)
    for pid, now in after.items():
        then = before.get(pid, {})
        ran = sum(
            1 for tid, cpu in now.items() if wall_s > 0 and (cpu - then.get(tid, 0.0)) / wall_s >= RAN_SHARE
        )
        per.append((pid, len(now), ran))
    in_process = in_caller
    allowed = workers * allowed_per_worker + IN_PROCESS_OVERHEAD if in_process else allowed_per_worker
    out: dict[str, Any] = {
        "threads_per_worker": threads,
        "scope": "process (all workers share it)" if in_process else "per worker process",
        "allowed": allowed,
    }
    if not per:
        return out
    worst = max(per, key=lambda x: (x[2], x[1]))
    out["os_threads"] = max(p[1] for p in per)
    out["ran"] = worst[2]
    out["over"] = worst[2] > allowed
    if out["over"]:
        out["pools"] = _loaded_pools(worst[0], model_file)
    return out


def describe(ev: dict[str, Any]) -> str:
    """One line: ``2 threads ran per worker process (the knobs allow 1; 3 OS threads)`` + the pools."""
    if "ran" not in ev:
        return ""
    scope = (
        "in this process (all workers)" if ev.get("scope", "").startswith("process") else "per worker process"
    )
    line = f"{ev['ran']} thread{'s' if ev['ran'] != 1 else ''} ran {scope} (the knobs allow {ev['allowed']}; {ev['os_threads']} OS threads)"
    if ev.get("over"):
        pools = ev.get("pools") or []
        line += " — MORE than configured" + (f"; pools loaded there: {', '.join(pools)}" if pools else "")
    return line


def allowed_per_worker(model: Any, config: Any) -> tuple[Any, int, bool]:
    """The model a trial runs (a model file's spec with the trial's adapter knobs), the threads
    one worker may run at once with its knobs, and whether it is a model file."""
    from tuner.models.formats import adapter_named
    from tuner.models.spec import ModelSpec, parse_spec

    # The framework's own default pool: as many threads as it sees cores.
    threads = config.threads_per_worker or os.cpu_count() or 1
    ms = model if isinstance(model, ModelSpec) else parse_spec(model) if isinstance(model, str) else None
    if ms is None or not ms.is_model_file:
        return model, threads, False
    if config.knobs:
        ms = ms.with_knobs({**dict(ms.knobs), **dict(config.knobs)})
    adapter = adapter_named(ms.kind)
    try:
        knobs = adapter.Knobs(threads=threads, **dict(ms.knobs))
    except (TypeError, ValueError):
        return ms, threads, True  # the worker says what is wrong with the knobs, in one line
    return ms, int(adapter.running(knobs)), True
