"""The backends as descriptors: how a worker can run, and what each way can and cannot do.

One registry, one entry per backend. The rest of tuner asks a backend's *capabilities* here and
never compares its name: the engine finds the worker-handle class through the entry, the benchmark
asks whether the workers run in the caller's process (then CPU, memory and threads are that
process's), the recommendation says what a backend gives up (no timeouts, no crash isolation), the
sweep asks whether placement means anything. Adding a backend is one handle class and one entry.

This module is bottom layer: it imports nothing of tuner's. A handle class is named by its import
path and imported only when an engine runs that backend (Ray is an optional extra).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from tuner.errors import ConfigError

__all__ = ["BACKENDS", "PLACEMENTS", "Backend", "backend", "names"]

#: where the ray backend puts its actors: across nodes (Ray's SPREAD) or filling one node first
PLACEMENTS = ("SPREAD", "PACK")


@dataclass(frozen=True)
class Backend:
    """One way to run workers, and what it can do."""

    name: str
    #: ``module:Class`` of its worker handle (:mod:`tuner.engine.handles`), imported when used
    handle: str
    #: one worker and several, in words: "worker process", "worker processes"
    noun: str
    nouns: str
    #: a short form for narrow tables: "proc", "thr"
    short: str
    #: the workers run in the caller's own process (threads, or the caller's thread itself): CPU,
    #: memory and OS threads are that process's, and the caller's thread limits apply while it runs
    in_caller: bool
    #: more than one worker at a time (inline runs one partition at a time in the supervisor)
    pooled: bool = True
    #: a partition past its timeout can be taken from its worker (inline runs it to its end)
    can_time_out: bool = True
    #: kill() really stops a worker mid-partition (a process, an actor); a thread is only abandoned
    can_kill: bool = False
    #: a worker that crashes costs one attempt of one partition, not the caller's process
    isolates_crashes: bool = False
    #: workers can be placed (SPREAD across nodes, PACK onto one)
    has_placement: bool = False
    #: runs on a cluster the caller connects to first (``--ray-address``)
    needs_cluster: bool = False
    #: the optional extra it needs (``pip install 'tuner[ray]'``), if any
    extra: str | None = None

    @property
    def threads_in_caller(self) -> bool:
        """Its workers are threads of the caller's one interpreter (they share its GIL)."""
        return self.in_caller and self.pooled

    @property
    def own_processes(self) -> bool:
        """Each worker is a process of its own (its CPU, memory and threads are its own)."""
        return not self.in_caller

    def handle_class(self) -> Any:
        """The worker-handle class (imports the module that defines it)."""
        module, _, attr = self.handle.partition(":")
        return getattr(importlib.import_module(module), attr)

    def count(self, n: int) -> str:
        """``2 worker processes``, ``1 Ray actor``."""
        return f"{n} {self.noun if n == 1 else self.nouns}"

    def gives_up(self) -> list[str]:
        """What running this way gives up, in words (empty for a backend that keeps every guarantee)."""
        out = []
        if not self.can_time_out:
            out.append("no timeouts (a hung call hangs the caller)")
        if not self.isolates_crashes:
            out.append("no crash isolation (a crash in the model ends the caller's process)")
        return out


_REGISTRY: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "process",
            "tuner.engine.handles:ProcessHandle",
            "worker process",
            "worker processes",
            "proc",
            in_caller=False,
            can_kill=True,
            isolates_crashes=True,
        ),
        Backend(
            "thread",
            "tuner.engine.handles:ThreadHandle",
            "worker thread",
            "worker threads",
            "thr",
            in_caller=True,
        ),
        Backend(
            "inline",
            "tuner.engine.handles:InlineHandle",
            "inline worker",
            "inline workers",
            "inl",
            in_caller=True,
            pooled=False,
            can_time_out=False,
        ),
        Backend(
            "ray",
            "tuner.engine.ray_backend:RayHandle",
            "Ray actor",
            "Ray actors",
            "ray",
            in_caller=False,
            can_kill=True,
            isolates_crashes=True,
            has_placement=True,
            needs_cluster=True,
            extra="ray",
        ),
    )
}

#: every backend's name, in the registry's order
BACKENDS: tuple[str, ...] = tuple(_REGISTRY)


def names(*, where: str | None = None) -> tuple[str, ...]:
    """The backends' names; ``where`` a capability that must hold (e.g. ``"needs_cluster"``)."""
    return tuple(n for n, b in _REGISTRY.items() if where is None or getattr(b, where))


def backend(name: str) -> Backend:
    """The descriptor of ``name``; ConfigError naming the choices for an unknown one."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"backend {name!r}: choose from {', '.join(BACKENDS)}") from None
