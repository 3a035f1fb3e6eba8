"""Models the engine tests run in workers, named by file spec (``engmodels.py:NAME``).

Each misbehaves on purpose, on a chosen item value, the way real models do: a native crash
(SIGSEGV), an ``os._exit``, a kill from outside, a hang, a memory blow-up, an exception.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tuner.models import factory

HERE = Path(__file__).resolve().parent


def identity(items):
    """Returns its items (lists or arrays) unchanged; outputs == inputs makes checks trivial."""
    return items


def double(items):
    return [x * 2 for x in items]


def row_sums(items):
    """numpy rows in, one float per row out (checks the shared-memory path)."""
    return np.asarray(items).sum(axis=1)


def _marker(name: str) -> Path | None:
    d = os.environ.get("TUNER_TEST_MARKERS")
    return Path(d) / name if d else None


def segv_on_13(items):
    """A native crash (SIGSEGV) on item 13, every time."""
    if 13 in list(items):
        ctypes.string_at(0)
    return list(items)


def exit_on_13(items):
    if 13 in list(items):
        os._exit(3)
    return list(items)


def segv_once_on_13(items):
    """Crash on item 13 the first time only (a marker file remembers), as a transient fault."""
    m = _marker("segv_once")
    if 13 in list(items) and m is not None and not m.exists():
        m.touch()
        ctypes.string_at(0)
    return list(items)


def raise_on_13(items):
    if 13 in list(items):
        raise ValueError("item 13 is poison")
    return list(items)


class Flaky(Exception):
    pass


def flaky_once_on_13(items):
    m = _marker("flaky_once")
    if 13 in list(items) and m is not None and not m.exists():
        m.touch()
        raise Flaky("transient")
    return list(items)


def hang_once_on_13(items):
    m = _marker("hang_once")
    if 13 in list(items) and m is not None and not m.exists():
        m.touch()
        time.sleep(600)
    return list(items)


def announce_pid_then_wait_on_13(items):
    """Writes its pid to a marker and waits (up to 30 s) to be killed from outside, once."""
    m = _marker("pid")
    if 13 in list(items) and m is not None and not m.exists():
        m.write_text(str(os.getpid()))
        for _ in range(3000):
            time.sleep(0.01)
    return list(items)


def hog_on_13(items):
    """Allocate and touch 400 MB on item 13 (every time), then hold it."""
    if 13 in list(items):
        hog = np.ones(400 * 1024 * 1024 // 8)
        time.sleep(5)
        del hog
    return list(items)


def slow(items):
    time.sleep(0.01 * len(items))
    return list(items)


def wrong_count(items):
    return list(items)[:-1]


@factory
def broken_factory():
    raise RuntimeError("weights not found")


def sigterm_self_parent(items):  # pragma: no cover - used by a subprocess script
    os.kill(os.getppid(), signal.SIGTERM)
    return list(items)


# -- models that start processes of their own (guarantee 5: they die with their worker) ------------
def _start_sleeper() -> int:
    """Start a process that would live 10 minutes; record "child_<worker pid>_<its pid>" as a marker."""
    proc = subprocess.Popen(["sleep", "600"])
    m = _marker(f"child_{os.getpid()}_{proc.pid}")
    assert m is not None, "TUNER_TEST_MARKERS is not set"
    m.touch()
    return proc.pid


def _first_time(name: str) -> bool:
    m = _marker(name)
    if m is None or m.exists():
        return False
    m.touch()
    return True


def child_then_crash_on_13(items):
    if 13 in list(items) and _first_time("crash_once"):
        _start_sleeper()
        os._exit(3)
    return list(items)


def child_then_hang_on_13(items):
    if 13 in list(items) and _first_time("hang_once"):
        _start_sleeper()
        time.sleep(600)
    return list(items)


def child_then_hog_on_13(items):
    if 13 in list(items) and _first_time("hog_once"):
        _start_sleeper()
        hog = np.ones(400 * 1024 * 1024 // 8)
        time.sleep(30)
        del hog
    return list(items)


_my_child: int | None = None


def child_per_worker(items):
    """Each worker starts one long-lived process on its first partition, then works slowly."""
    global _my_child
    if _my_child is None:
        _my_child = _start_sleeper()
    time.sleep(0.002 * len(items))
    return list(items)


# -- models that end their partition unusually ----------------------------------------------------
def interrupt_on_13(items):
    if 13 in list(items):
        raise KeyboardInterrupt
    return list(items)


def exit_on_13_via_sys_exit(items):
    if 13 in list(items):
        sys.exit(3)
    return list(items)


def env_threads(items):
    """The OMP_NUM_THREADS this worker sees (None if unset), once per item."""
    value = os.environ.get("OMP_NUM_THREADS")
    return [value for _ in items]


def sleep_2ms(items):
    """A fixed service time per partition (2 ms): long enough that no result is held back for batching."""
    time.sleep(0.002)
    return [x * 2 for x in items]


def nap(items):
    """20 ms per partition, asleep (a straggler fault multiplies it): the hedging tests' model."""
    time.sleep(0.02)
    return list(items)


def nap_short(items):
    """4 ms per partition, asleep."""
    time.sleep(0.004)
    return list(items)
