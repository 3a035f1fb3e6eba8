"""What the rest of the machine does while tuner measures: outside CPU, steal time, swap activity.

A measurement on a shared host (a CI runner, a laptop) is only as good as the quiet around it. This
module turns the machine's own counters into one figure per interval, the **outside load**, and
says when an interval is too busy to trust (*contaminated*). The benchmark samples it once per
measurement window (:mod:`tuner.bench.measure`), the TUI's host bar once a second.

Definitions (every figure is a share of the **usable cores**, 1.0 = all of them)::

    busy     CPU time of everything on the CPUs tuner may run on (its affinity): user + nice +
             system + irq + softirq (+ Windows' interrupt/dpc) — total minus idle, iowait and
             steal; guest time is already inside user/nice on Linux (as psutil and htop count it)
    own      CPU time of tuner: the measuring process, its descendants (forkserver, workers,
             processes a model starts) and any pid it is told is its own (the TUI's UI process);
             user + system + the CPU of their reaped children (a worker's finished subprocess)
    steal    time the hypervisor gave this VM's CPUs to someone else (Linux ``steal``)
    outside  ((busy − own) + steal) / interval − spare cores, over usable cores, at least 0;
             spare cores = CPUs in the affinity − usable cores (a container's CPU quota below the
             CPUs it may run on: load there takes nothing tuner could have used)
    swap     bytes swapped in + out per second (memory pressure), MB/s

**The rule** (:class:`Rule`): an interval is contaminated when its outside load exceeds
``max_outside`` (default :data:`DEFAULT_MAX_OUTSIDE`, a quarter of the usable cores) or the host
swapped more than ``max_swap_mb_s`` (default 1 MB/s). A quarter: one busy process on a 2-core
runner is half the usable cores and contaminates; a desktop's background (a browser, an editor,
a few % of a core each) does not.

**Cost.** A snapshot reads the system totals once (``psutil.cpu_times``, one read of
``/proc/stat``), the CPU times of tuner's own few processes (one small read each) and the swap
counters: about 0.2 ms on the 2-core reference host — a thousandth of a 1 s window. It never
walks every process of the machine: tuner's processes are found once per trial (a scan of its
descendants at the start of the measurement, ~1 ms) and as the engine reports them (a replaced
worker's pid); the whole process table is read only to name the busiest outside processes
(:class:`ProcessTable`, ~2-3 ms), at the start of a measurement and once more at its end when a
window was contaminated.

**Limits, said plainly.** Counters move in clock ticks (10 ms on Linux): in a window shorter than
about 0.5 s the figure is noisy by several %. A process tuner started that the scan has not seen
yet counts as outside until it is found (the engine reports every worker it starts; a model's own
long-lived subprocess is found by the scan at the start of the next measurement, or by
:meth:`HostSampler.scan` when an interval looks contaminated). CPU frequency, shared caches,
memory bandwidth and SMT siblings are not counters this rule can read: an outside load below the
threshold can still cost a few %, which is why the regression gate also subtracts the load it saw
(see ``tuner bench --help``).

Why psutil and not hand-read ``/proc``: it is the portable reading of the same counters (Linux,
macOS, Windows), already a dependency, and costs no more at these rates.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_MAX_OUTSIDE",
    "DEFAULT_MAX_SWAP_MB_S",
    "HostSampler",
    "Interval",
    "OutsideProcess",
    "ProcessTable",
    "Rule",
    "Snapshot",
    "describe_top",
    "interval",
    "name_processes",
    "top_outside",
]

#: Outside load, as a share of the usable cores, above which a window is contaminated.
DEFAULT_MAX_OUTSIDE = 0.25
#: Swap traffic (in + out), MB/s, above which a window is contaminated (memory pressure).
DEFAULT_MAX_SWAP_MB_S = 1.0
#: How many of the busiest outside processes a contaminated measurement names.
TOP_N = 3
_MB = 1e6
# cpu_times fields that are not "busy": idle time, I/O wait (idle too), steal (counted apart) and
# guest time (already inside user/nice on Linux).
_NOT_BUSY = ("idle", "iowait", "steal", "guest", "guest_nice")


@dataclass(frozen=True)
class Snapshot:
    """Cumulative counters at one instant (seconds of CPU since boot, bytes swapped since boot)."""

    t: float  # time.perf_counter()
    busy_s: float  # CPU busy on the CPUs tuner may use, every process (steal excluded)
    steal_s: float  # stolen by the hypervisor on those CPUs
    own_s: float  # tuner's own processes (live ones plus their reaped children)
    swap_bytes: int  # swapped in + out


@dataclass(frozen=True)
class Interval:
    """The load between two snapshots, each figure a share of the usable cores."""

    span_s: float
    outside: float  # other processes + steal, beyond the spare cores
    steal: float  # of which stolen by the hypervisor
    own: float  # tuner itself
    swap_mb_s: float  # swap traffic, MB/s


def interval(a: Snapshot, b: Snapshot, usable_cores: float, spare_cores: float = 0.0) -> Interval:
    """The load between snapshots ``a`` and ``b`` (see the module docstring for the definitions).

    Counters that went backwards (a tick of skew between two files read a moment apart) count as 0.
    """
    span = b.t - a.t
    if span <= 0:
        return Interval(0.0, 0.0, 0.0, 0.0, 0.0)
    cores = max(1.0, float(usable_cores))
    own = max(0.0, b.own_s - a.own_s)
    others = max(0.0, (b.busy_s - a.busy_s) - own)
    steal = max(0.0, b.steal_s - a.steal_s)
    outside_cores = max(0.0, (others + steal) / span - max(0.0, spare_cores))
    return Interval(
        span_s=span,
        outside=outside_cores / cores,
        steal=steal / span / cores,
        own=own / span / cores,
        swap_mb_s=max(0, b.swap_bytes - a.swap_bytes) / _MB / span,
    )


@dataclass(frozen=True)
class Rule:
    """When an interval is contaminated. ``max_outside=None`` never calls one contaminated."""

    max_outside: float | None = DEFAULT_MAX_OUTSIDE
    max_swap_mb_s: float = DEFAULT_MAX_SWAP_MB_S

    def verdict(self, iv: Interval, usable_cores: float) -> str | None:
        """Why ``iv`` is contaminated, in words; None when it is clean."""
        if self.max_outside is None:
            return None
        if iv.outside > self.max_outside:
            steal = f", steal {iv.steal:.0%}" if iv.steal >= 0.01 else ""
            return (
                f"outside load {iv.outside:.0%} of {_cores(usable_cores)}{steal} "
                f"(limit {self.max_outside:.0%})"
            )
        if iv.swap_mb_s > self.max_swap_mb_s:
            return f"swapping {iv.swap_mb_s:.1f} MB/s (limit {self.max_swap_mb_s:g} MB/s)"
        return None


def _cores(n: float) -> str:
    return f"{n:g} core" if n == 1 else f"{n:g} cores"


# ------------------------------------------------------------------------------- the busiest others


@dataclass(frozen=True)
class OutsideProcess:
    """One process outside tuner and the share of the usable cores it used."""

    name: str
    pid: int
    share: float


@dataclass(frozen=True)
class ProcessTable:
    """Every readable process's cumulative CPU at one instant: its own and its reaped children's."""

    t: float  # time.perf_counter()
    # pid -> (name, own cpu s, reaped children's cpu s, create time, ppid)
    cpu: dict[int, tuple[str, float, float, float, int]]

    @classmethod
    def read(cls) -> ProcessTable:
        """Read the whole process table (a few ms for ~100 processes: not a per-window call)."""
        import psutil

        t = time.perf_counter()
        out: dict[int, tuple[str, float, float, float, int]] = {}
        for p in psutil.process_iter(["name", "cpu_times", "create_time", "ppid"]):
            info = p.info
            ct = info.get("cpu_times")
            if ct is None:  # not readable (another user's process on macOS)
                continue
            out[p.pid] = (
                info.get("name") or "?",
                float(ct.user + ct.system),
                float(getattr(ct, "children_user", 0.0) + getattr(ct, "children_system", 0.0)),
                float(info.get("create_time") or 0.0),
                int(info.get("ppid") or 0),
            )
        return cls(t, out)


def top_outside(
    before: ProcessTable,
    after: ProcessTable,
    usable_cores: float,
    own: Iterable[int] = (),
    *,
    n: int = TOP_N,
) -> list[OutsideProcess]:
    """The ``n`` processes (not tuner's own) that used the most CPU between two tables.

    A process that reaps children (``make``, ``apt``, a shell running tests) is credited with their
    CPU, so a build of many short compiler runs shows up as its driver — less what the reaped
    processes had already used when ``before`` was read (that was before the interval): each dead
    process's earlier CPU is taken off its nearest ancestor still alive. Two exceptions, where the
    reaped time cannot be told apart from history: pid 1 (it inherits every orphan of the machine)
    gets its own CPU only, and so does a process whose credit would exceed what every CPU of the
    machine could have done in the interval. A process born between the tables counts whole.
    """
    span = after.t - before.t
    if span <= 0:
        return []
    mine = set(own)
    cores = max(1.0, float(usable_cores))
    capacity = span * (os.cpu_count() or cores)

    def alive(pid: int) -> bool:
        now, then = after.cpu.get(pid), before.cpu.get(pid)
        return now is not None and then is not None and now[3] == then[3]

    # CPU that dead processes had spent before the interval, by their nearest living ancestor
    # (whose "children" time now holds it, through every dead parent between them).
    history: dict[int, float] = {}
    for pid, (_name, own_s, kids_s, _created, ppid) in before.cpu.items():
        if alive(pid):
            continue
        up, seen = ppid, {pid}
        while up in before.cpu and not alive(up) and up not in seen:
            seen.add(up)
            up = before.cpu[up][4]
        history[up] = history.get(up, 0.0) + own_s + kids_s
    found: list[OutsideProcess] = []
    for pid, (name, own_s, kids_s, created, _ppid) in after.cpu.items():
        if pid in mine:
            continue
        prev = before.cpu.get(pid)
        if prev is not None and prev[3] == created:
            mine_s = own_s - prev[1]
            reaped = max(0.0, kids_s - prev[2] - history.get(pid, 0.0))
            used = mine_s + reaped if pid != 1 and mine_s + reaped <= capacity else mine_s
        else:
            # Born between the tables (``before`` lists every readable process; a pid reused after
            # a death has another create time). Create times are not compared with the clock:
            # psutil derives them from the boot time in whole seconds.
            used = own_s + kids_s if own_s + kids_s <= capacity else own_s
        if used > 0:
            found.append(OutsideProcess(name, pid, round(used / span / cores, 3)))
    found.sort(key=lambda p: -p.share)
    return found[:n]


#: Process names that say little on their own: the script they run is named too.
_INTERPRETERS = ("python", "node", "java", "ruby", "perl", "sh", "bash", "dash", "zsh")


def name_processes(top: Sequence[OutsideProcess]) -> list[OutsideProcess]:
    """``python`` → ``python pytest``: interpreters named with what they run (a few reads, top N only)."""
    import psutil

    out = []
    for p in top:
        name = p.name
        if name.rstrip("0123456789.").lower() in _INTERPRETERS:
            try:
                args = psutil.Process(p.pid).cmdline()[1:]
            except (psutil.Error, OSError):
                args = []
            what = _script_of(args)
            if what:
                name = f"{name} {what}"
        out.append(OutsideProcess(name[:60], p.pid, p.share))
    return out


def _script_of(args: Sequence[str]) -> str:
    """What an interpreter runs: ``-m pkg`` → ``pkg``, ``/path/x.py`` → ``x.py``, ``-c ...`` → ``-c``."""
    it = iter(args)
    for a in it:
        if a in ("-m", "-c"):
            nxt = next(it, "")
            return nxt.split()[0] if a == "-m" and nxt else a
        if not a.startswith("-"):
            # A script path or file name, not a bare argument (``bash 3``, ``sleep 10``).
            base = os.path.basename(a)
            return base if ("/" in a or "." in base) and any(c.isalpha() for c in base) else ""
    return ""


def describe_top(top: Sequence[OutsideProcess]) -> str:
    """``stress (pid 4242) 49%, apt (pid 17) 12%`` — shares of the usable cores."""
    return ", ".join(f"{p.name} (pid {p.pid}) {p.share:.0%}" for p in top)


# ------------------------------------------------------------------------------- live sampling


def _proc_cpu(ct: Any) -> float:
    """A process's CPU seconds, its reaped children's included (they ran on its behalf)."""
    return float(
        ct.user + ct.system + getattr(ct, "children_user", 0.0) + getattr(ct, "children_system", 0.0)
    )


def _affinity() -> list[int] | None:
    if hasattr(os, "sched_getaffinity"):
        try:
            return sorted(os.sched_getaffinity(0))
        except OSError:
            return None
    import psutil

    try:
        got = psutil.Process().cpu_affinity()  # Windows, FreeBSD
    except (AttributeError, OSError, psutil.Error):  # macOS has no affinity to read
        return None
    return sorted(got) if got else None


class HostSampler:
    """Reads :class:`Snapshot` s of this machine, counting ``root`` and its descendants as tuner.

    ``usable_cores``: as :func:`tuner.hardware.probe` counts them (affinity and CPU quota); read
    here when not given.
    ``own_pids`` are more processes to count as tuner (with their descendants found by
    :meth:`scan`): the TUI's UI process, parent of the sweep process that measures.
    """

    def __init__(
        self, usable_cores: int | None = None, own_pids: Iterable[int] = (), root: int | None = None
    ) -> None:
        import psutil

        self._psutil = psutil
        ncpu = psutil.cpu_count() or 1
        cpus = _affinity()
        # psutil lists per-CPU times by position; with offline CPUs positions are not ids, and then
        # the machine-wide total is the honest fallback.
        self._cpus = cpus if cpus is not None and len(cpus) < ncpu and max(cpus) < ncpu else None
        n_cpus = len(self._cpus) if self._cpus is not None else ncpu
        if usable_cores is None:
            from tuner.hardware import cgroup_cpu_quota
            from tuner.hardware import usable_cores as usable

            usable_cores = usable(len(cpus) if cpus else ncpu, cgroup_cpu_quota())
        self.usable_cores = max(1, int(usable_cores))
        self.spare_cores = max(0, n_cpus - self.usable_cores)
        self.root = root if root is not None else os.getpid()
        self._roots = [self.root, *(p for p in own_pids if p != self.root)]
        # pid -> (process, its parent's pid): the parent tells whether a dead child's CPU has
        # moved into a process we still read (its reaped children's time) or is gone with it.
        self._procs: dict[int, tuple[Any, int | None]] = {}
        self._retired_s = 0.0  # CPU of own processes that died and whose parent is not ours
        self._last: dict[int, float] = {}  # pid -> its CPU at the previous snapshot
        for pid in self._roots:
            self.add(pid)

    @property
    def pids(self) -> set[int]:
        """The processes counted as tuner now."""
        return set(self._procs)

    def add(self, pid: int) -> None:
        """Count ``pid`` as tuner's (a worker the engine just started).

        Only processes: a thread backend's worker id is a thread of a process already counted, and
        ``/proc/<tid>`` reads as that whole process — counted again, its CPU would hide the outside
        load (psutil's ``pid_exists`` is False for a thread id on Linux)."""
        if pid in self._procs or not self._psutil.pid_exists(pid):
            return
        try:
            p = self._psutil.Process(pid)
            self._procs[pid] = (p, p.ppid())
        except (self._psutil.NoSuchProcess, self._psutil.AccessDenied):
            pass

    def scan(self) -> int:
        """Find every descendant of tuner's processes (a walk of the process table per root, ~1 ms
        per 100 processes); returns how many were new."""
        psutil = self._psutil
        before = len(self._procs)
        for pid in self._roots:
            entry = self._procs.get(pid)
            if entry is None:
                continue
            try:
                kids = entry[0].children(recursive=True)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for k in kids:
                self.add(k.pid)
        return len(self._procs) - before

    def snapshot(self) -> Snapshot:
        """The counters now (about 0.2 ms; see the module docstring)."""
        psutil = self._psutil
        t = time.perf_counter()
        if self._cpus is None:
            rows = [psutil.cpu_times()]
        else:
            per = psutil.cpu_times(percpu=True)
            rows = [per[i] for i in self._cpus if i < len(per)]
        busy = steal = 0.0
        for r in rows:
            busy += sum(getattr(r, f) for f in r._fields if f not in _NOT_BUSY)
            steal += float(getattr(r, "steal", 0.0))
        last: dict[int, float] = {}
        own = self._retired_s
        gone: list[int] = []
        for pid, (p, _ppid) in self._procs.items():
            try:
                c = _proc_cpu(p.cpu_times())
            except psutil.ZombieProcess:
                # Dead, not yet reaped: its CPU is still its own until its parent collects it.
                c = self._last.get(pid, 0.0)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                gone.append(pid)
                continue
            last[pid] = c
            own += c
        for pid in gone:
            _p, ppid = self._procs.pop(pid)
            if ppid not in self._procs:
                # Reaped by a process we do not read (a parent we reap moves the child's CPU into
                # its own "children" times): its last reading is all we will ever know. Keep it,
                # so the own total does not fall and that CPU does not turn into "outside".
                kept = self._last.get(pid, 0.0)
                self._retired_s += kept
                own += kept
        self._last = last
        try:
            sw = psutil.swap_memory()
            swapped = int(sw.sin + sw.sout)
        except (OSError, RuntimeError):
            swapped = 0
        return Snapshot(t, busy, steal, own, swapped)

    def interval(self, a: Snapshot, b: Snapshot) -> Interval:
        """:func:`interval` with this machine's usable and spare cores."""
        return interval(a, b, self.usable_cores, self.spare_cores)
