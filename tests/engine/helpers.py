from __future__ import annotations

import time
from pathlib import Path

import psutil

from tuner.engine import FaultPlan

HERE = Path(__file__).resolve().parent


def spec(name: str) -> str:
    """A file spec for a model in engmodels.py."""
    return f"{HERE / 'engmodels.py'}:{name}"


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie has exited; only its parent has not reaped it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def gone(pids: list[int], timeout: float = 5.0) -> bool:
    """Every pid has exited within ``timeout`` (polling the OS: there is no event for another's exit)."""
    deadline = time.monotonic() + timeout
    while any(alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def children_recorded(markers: Path) -> dict[int, int]:
    """{child pid: worker pid} for every process a test model started (see engmodels._start_sleeper)."""
    out = {}
    for m in markers.glob("child_*"):
        _, worker, child = m.name.split("_")
        out[int(child)] = int(worker)
    return out


def expected_failures(
    plan: FaultPlan, n_items: int, size: int, retries: int
) -> tuple[list[tuple[int, int, str]], dict[int, int]]:
    """What a fault plan does to a run of ``n_items`` in partitions of ``size``, worked out from its
    seeded decisions and the documented policy (retry ``retries`` times at each size, then split in
    halves): the failed attempts as sorted (items, attempt at that size, decision), and
    {item: attempts} of the items that fail for good. Every fault kind is assumed to fail its
    attempt (a straggler must outlast the timeout)."""
    attempts: list[tuple[int, int, str]] = []
    final: dict[int, int] = {}

    def run(first: int, n: int, total: int) -> None:
        attempt = 0
        while plan.decide(first, n, attempt + 1) is not None:
            attempt += 1
            total += 1
            if attempt <= retries:
                attempts.append((n, attempt, "retry"))
            elif n > 1:
                attempts.append((n, attempt, "split"))
                run(first, n // 2, total)
                run(first + n // 2, n - n // 2, total)
                return
            else:
                attempts.append((n, attempt, "final"))
                final[first] = total
                return

    for first in range(0, n_items, size):
        run(first, min(size, n_items - first), 0)
    return sorted(attempts), final
