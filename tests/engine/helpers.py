from __future__ import annotations

import time
from pathlib import Path

import psutil

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
