"""Measuring a calibration: the runners, the kernels, the round-robin reps within the budget."""

from __future__ import annotations

import math
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from tuner.calibrate.record import (
    BLAS_N,
    DEFAULT_BUDGET_S,
    KERNELS,
    MEMORY_MIB,
    MIN_BUDGET_S,
    MIN_CLEAN,
    MIN_REPS,
    MODES,
    PY_LOOPS_PER_UNIT,
    PY_RUNNER,
    REP_LIMIT,
    REP_S,
    RESERVE_S,
    STABLE_REPS,
    STABLE_TOLERANCE,
    START_TIMEOUT_S,
    STOP_GRACE_S,
    Calibration,
    CalibrationError,
    KernelScore,
)
from tuner.errors import ConfigError
from tuner.hostload import DEFAULT_MAX_OUTSIDE
from tuner.stats import bootstrap_ci, is_stable, median

# ------------------------------------------------------------------------------- measuring


class _PythonRunners:
    """``n`` child interpreters running the python kernel on request (one line in, one line out)."""

    def __init__(self, n: int) -> None:
        if not sys.executable:
            raise CalibrationError("calibration: no Python executable to start the python kernel with")
        self._replies: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        self._readers: list[threading.Thread] = []
        t0 = time.perf_counter()
        try:
            for i in range(n):
                p = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", PY_RUNNER],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                    bufsize=1,
                )
                self.procs.append(p)
                # One reader thread per child: a portable read with a timeout (select() does not
                # take pipes on Windows). The thread only blocks on the pipe; it ends at EOF.
                r = threading.Thread(target=self._read, args=(i, p), daemon=True, name=f"calibrate-read-{i}")
                r.start()
                self._readers.append(r)
            self._collect(range(n), time.perf_counter() + START_TIMEOUT_S, "start")
        except BaseException:
            self.close()
            raise
        self.start_s = time.perf_counter() - t0

    def _read(self, i: int, p: subprocess.Popen[str]) -> None:
        assert p.stdout is not None
        for line in p.stdout:
            self._replies.put((i, line))
        self._replies.put((i, None))

    def _collect(self, which: range, deadline: float, what: str) -> list[str]:
        waiting = set(which)
        got: list[str] = []
        while waiting:
            try:
                i, line = self._replies.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                raise CalibrationError(
                    f"calibration: python runner did not {what} in time ({len(waiting)} of {len(which)} silent)"
                ) from None
            if line is None:
                raise CalibrationError(f"calibration: python runner {self._why(i)}")
            waiting.discard(i)
            got.append(line)
        return got

    def _why(self, i: int) -> str:
        p = self.procs[i]
        try:
            p.wait(timeout=STOP_GRACE_S)
            err = (p.stderr.read() if p.stderr else "").strip().splitlines()
        except (subprocess.TimeoutExpired, OSError, ValueError):
            err = []
        return f"exited with code {p.returncode}" + (f": {err[-1]}" if err else "")

    def rep(self, units: int, runners: int, limit_s: float) -> tuple[int, float]:
        """The first ``runners`` children each run ``units`` (stopping after the unit that passes
        ``limit_s``): (units done in all, wall seconds until the last one is done)."""
        t0 = time.perf_counter()
        for i, p in enumerate(self.procs[:runners]):
            assert p.stdin is not None
            try:
                p.stdin.write(f"{units} {limit_s:.6f}\n")
                p.stdin.flush()
            except OSError:  # it died: its pipe is broken (the reader may not have seen EOF yet)
                raise CalibrationError(f"calibration: python runner {self._why(i)}") from None
        done = self._collect(range(runners), t0 + limit_s + START_TIMEOUT_S, "finish a rep")
        return sum(int(d) for d in done), time.perf_counter() - t0

    def close(self) -> None:
        """Stop every child (EOF, then SIGKILL after STOP_GRACE_S) and reap it."""
        for p in self.procs:
            try:
                if p.stdin is not None:
                    p.stdin.close()
            except OSError:  # a child that died already: its pipe is broken
                pass
        deadline = time.perf_counter() + STOP_GRACE_S
        for p in self.procs:
            try:
                p.wait(timeout=max(0.0, deadline - time.perf_counter()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for r in self._readers:
            r.join(timeout=STOP_GRACE_S)
        for p in self.procs:
            for f in (p.stdout, p.stderr):
                if f is not None:
                    f.close()


@dataclass
class _Kit:
    """What the kernels run on: the python runners, the arrays, the thread pool, the noise guard."""

    cores: int
    sampler: Any  # tuner.hostload.HostSampler
    rule: Any  # tuner.hostload.Rule
    runners: _PythonRunners | None = None
    matrices: list[tuple[Any, Any]] = field(default_factory=list)
    arrays: list[tuple[Any, Any]] = field(default_factory=list)
    pool: Any = None  # concurrent.futures.ThreadPoolExecutor, for the all-cores numpy kernels
    deadline: float = math.inf  # perf_counter() by which the last rep must be over
    outside: list[tuple[float, float]] = field(default_factory=list)  # (span, outside) per rep


#: a rep (rep(units, runners, limit_s)) -> (units done in all, wall seconds)
_Rep = Callable[[int, int, float], tuple[int, float]]


def _threaded(
    kit: _Kit, work: Callable[[int, int, float], int], units: int, runners: int, limit_s: float
) -> tuple[int, float]:
    """``work(runner, units, stop_at)`` on ``runners`` runners at once (the caller's thread when 1)."""
    t0 = time.perf_counter()
    stop = t0 + limit_s
    if runners == 1:
        done = work(0, units, stop)
    else:
        done = sum(f.result() for f in [kit.pool.submit(work, i, units, stop) for i in range(runners)])
    return done, time.perf_counter() - t0


def _kernel(kit: _Kit, name: str) -> tuple[_Rep, float]:
    """(the kernel's rep, work per unit in the kernel's UNITS). Every rep stops after the unit
    that passes its limit: a host that stalls cannot carry a rep (or the budget) away."""
    import numpy as np

    if name == "python":
        assert kit.runners is not None
        return kit.runners.rep, PY_LOOPS_PER_UNIT / 1e6

    if name == "blas":

        def matmul(i: int, units: int, stop: float) -> int:
            a, b = kit.matrices[i]
            for done in range(1, units + 1):
                np.matmul(a, b)
                if time.perf_counter() > stop:
                    return done
            return units

        return (lambda u, r, limit: _threaded(kit, matmul, u, r, limit)), 2 * BLAS_N**3 / 1e9

    def copy(i: int, units: int, stop: float) -> int:
        src, dst = kit.arrays[i]
        for done in range(1, units + 1):
            np.copyto(dst, src)
            if time.perf_counter() > stop:
                return done
        return units

    return (lambda u, r, limit: _threaded(kit, copy, u, r, limit)), 2 * MEMORY_MIB * 2**20 / 1e9


def _setup(kit: _Kit, memory_runners: int) -> None:
    import numpy as np

    rng = np.random.default_rng(23)
    for _ in range(kit.cores):
        a = rng.standard_normal((BLAS_N, BLAS_N), dtype=np.float32)
        kit.matrices.append((a, a.T.copy()))
    n = MEMORY_MIB * 2**20 // 8
    for _ in range(memory_runners):
        # ones(), not empty(): every page is touched now, in setup, not in the first reps
        kit.arrays.append((np.ones(n), np.ones(n)))


def _size(kit: _Kit, rep: _Rep, runners: int, target_s: float) -> int:
    """Units per runner for a rep of about ``target_s`` (the sizing reps warm the kernel up)."""
    units = 1
    while True:
        done, took = rep(units, runners, _limit(kit, target_s))
        if took >= min(0.02, target_s / 3) or units >= 1 << 20 or done < units * runners:
            break
        units *= 4 if took < 0.005 else 2
    return max(1, round(done / runners * target_s / max(took, 1e-6)))


def _limit(kit: _Kit, target_s: float) -> float:
    """How long a rep may run: REP_LIMIT times its target, and never past the deadline."""
    return max(0.0, min(REP_LIMIT * target_s, kit.deadline - time.perf_counter()))


@dataclass
class _Pair:
    """One kernel × mode while it is measured: its rep, its work unit and the reps so far."""

    kernel: str
    mode: str
    runners: int
    rep: _Rep
    per_unit: float  # work per unit, in the kernel's UNITS
    units: int = 1
    target_s: float = REP_S
    last_s: float = REP_S
    clean: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    clean_outside: list[float] = field(default_factory=list)  # outside load of each clean rep
    done: bool = False

    def run(self, kit: _Kit) -> None:
        """One rep inside one noise-guard window; a busy window's rep is kept apart."""
        a = kit.sampler.snapshot()
        done, wall = self.rep(self.units, self.runners, _limit(kit, self.target_s))
        b = kit.sampler.snapshot()
        iv = kit.sampler.interval(a, b)
        kit.outside.append((iv.span_s, iv.outside))
        score = done * self.per_unit / wall
        if kit.rule.verdict(iv, kit.cores):
            self.busy.append(score)
        else:
            self.clean.append(score)
            self.clean_outside.append(iv.outside)
        self.last_s = wall
        self.done = len(self.clean) >= MIN_REPS and is_stable(self.clean, STABLE_REPS, STABLE_TOLERANCE)

    def score(self) -> KernelScore:
        """The median of the clean reps and its bootstrap CI (every rep when too few are clean)."""
        few = len(self.clean) < MIN_CLEAN
        used = self.clean + self.busy if few else self.clean
        [(lo, hi)] = bootstrap_ci(used, None, (0.5,))
        return KernelScore(
            score=median(used),
            ci=(lo, hi),
            reps=len(self.clean),
            discarded=len(self.busy),
            stable=is_stable(self.clean, STABLE_REPS, STABLE_TOLERANCE),
            # As many busy reps as clean ones: the host was busy throughout, and the reps between
            # its bursts are not trusted either (seen: a python score at half speed from 3 "clean"
            # reps among 4 busy ones — caches, frequency and SMT siblings are not in the counters).
            busy=few or len(self.busy) >= len(self.clean),
            outside=sum(self.clean_outside) / len(self.clean_outside) if self.clean_outside else 0.0,
        )


def _rounds(kit: _Kit, pairs: list[_Pair], deadline: float) -> None:
    """Reps round-robin over the pairs until each is stable or the next rep would pass ``deadline``.

    Round-robin, not one pair after another: on a shared VM a core's speed drifts over seconds
    (turbo, the neighbours' load; seen: the blas kernel 145 → 95 GFLOP/s within 1.5 s). Measured
    in turn, every pair samples the whole calibration, so a drift moves all the kernels alike and
    shows in each one's CI — not as one kernel's speed against another's.
    """
    while True:
        todo = [p for p in pairs if not p.done]
        if not todo:
            return
        for p in todo:
            if time.perf_counter() + p.last_s > deadline and (p.clean or p.busy):
                return
            p.run(kit)


@contextmanager
def _kit(usable: int | None, max_outside: float | None) -> Iterator[_Kit]:
    """Everything the kernels need, torn down on the way out whatever happens (an exception,
    Ctrl-C): the runner processes are stopped and reaped, the thread pool joined, BLAS restored."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    from tuner.hostload import HostSampler, Rule

    with ExitStack() as stack:
        sampler = HostSampler(usable_cores=usable)
        kit = _Kit(cores=sampler.usable_cores, sampler=sampler, rule=Rule(max_outside=max_outside))
        # One BLAS thread per call: the all-cores mode runs one call per runner thread.
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        kit.runners = _PythonRunners(kit.cores)
        stack.callback(kit.runners.close)
        for p in kit.runners.procs:
            sampler.add(p.pid)  # the runners' CPU is tuner's own, not outside load
        if kit.cores > 1:
            kit.pool = ThreadPoolExecutor(max_workers=kit.cores, thread_name_prefix="calibrate")
            stack.callback(kit.pool.shutdown, wait=True, cancel_futures=True)
        yield kit


def _memory_runners(cores: int) -> int:
    """Runners the memory kernel gets on all cores: every core, unless that would take more than a
    quarter of the available memory (then it does single only)."""
    import psutil

    per = 2 * MEMORY_MIB * 2**20
    return cores if cores * per * 4 <= psutil.virtual_memory().available else 1


def calibrate(
    host: Any = None, budget_s: float = DEFAULT_BUDGET_S, max_outside: float | None = DEFAULT_MAX_OUTSIDE
) -> Calibration:
    """Measure this host on the reference kernels within ``budget_s`` seconds (see the module
    docstring). ``host``: a :class:`tuner.hardware.Host` (its usable cores), or None to read them.
    ``max_outside``: the noise guard's outside-load limit, a share of the usable cores (None: no
    rep is ever discarded, as :class:`tuner.hostload.Rule` reads it).

    Raises :class:`ConfigError` for a budget below :data:`MIN_BUDGET_S`, :class:`CalibrationError`
    when a runner process cannot start or dies.
    """
    if not budget_s >= MIN_BUDGET_S:
        raise ConfigError(f"calibration budget must be at least {MIN_BUDGET_S:g} s (got {budget_s})")
    t0 = time.perf_counter()
    deadline = t0 + budget_s - RESERVE_S
    usable = int(host.usable_cores) if host is not None else None
    with _kit(usable, max_outside) as kit:
        assert kit.runners is not None
        kit.deadline = deadline
        cores = kit.cores
        mem_runners = _memory_runners(cores)
        _setup(kit, mem_runners)
        setup_s = time.perf_counter() - t0
        wanted = [
            (k, m)
            for k in KERNELS
            for m in MODES
            if m == "single" or (cores > 1 and (k != "memory" or mem_runners > 1))
        ]
        # Rep length: REP_S, or shorter when the budget cannot give every pair MIN_REPS + 1 of them.
        target = max(0.005, min(REP_S, (deadline - time.perf_counter()) / len(wanted) / (MIN_REPS + 2)))
        pairs = []
        for k, m in wanted:
            runners = 1 if m == "single" else cores
            rep, per_unit = _kernel(kit, k)
            units = _size(kit, rep, runners, target)
            pairs.append(_Pair(k, m, runners, rep, per_unit, units, target_s=target, last_s=target))
        _rounds(kit, pairs, deadline)
        scores: dict[str, dict[str, KernelScore | None]] = {k: dict.fromkeys(MODES) for k in KERNELS}
        for p in pairs:
            scores[p.kernel][p.mode] = p.score()
        start_s = kit.runners.start_s
    spans = kit.outside
    total = sum(s for s, _ in spans)
    return Calibration(
        scores=scores,
        cores=cores,
        budget_s=budget_s,
        elapsed_s=time.perf_counter() - t0,
        start_s=start_s,
        setup_s=setup_s,
        outside_load=sum(s * o for s, o in spans) / total if total > 0 else 0.0,
        outside_load_max=max((o for _, o in spans), default=0.0),
    )
