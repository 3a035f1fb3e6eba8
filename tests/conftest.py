"""Shared fixtures. Every test that starts processes must leave none behind (dask's check_process_leak).

``no_leaks`` is autouse: after each test, no descendant of this pytest process may survive (the
forkserver and the resource tracker are infrastructure that lives for the whole session and is
excluded by name), and no shared-memory segment that tuner created may remain in /dev/shm.

"Descendant" includes orphans: on Linux this process is made a child subreaper, so a process whose
parent died — say one a model started in a worker that then crashed — is re-parented to pytest
rather than to init, and stays visible here instead of escaping every children check. (Elsewhere
only processes whose parents are still alive can be seen.) Adopted orphans that exit stay zombies
of pytest until it exits: reaping them here could steal the exit status of a process that a
``subprocess.Popen`` or ``multiprocessing.Process`` still waits for.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
SHM_PREFIX = "tuner_"
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h

# The suite's many short sweeps skip the host calibration (up to 5 s each, tuner.calibrate); the
# tests of the calibration and of the host-adjusted gate ask for it with --calibration.
os.environ.setdefault("TUNER_CALIBRATION_S", "0")


def _become_subreaper() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


SUBREAPER = _become_subreaper()

# Several tests press Ctrl-C on a tuner they started (SIGINT to a subprocess). A shell starts a
# background job (`make test &`, nohup) with SIGINT ignored, and an ignored signal stays ignored
# across exec: every such child would shrug the key press off. Python's own handler here makes the
# children start with the default disposition, however the suite itself was started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _infrastructure(p: psutil.Process) -> bool:
    try:
        cmd = " ".join(p.cmdline())
        if _in_module_ray_cluster(p):
            return True
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return True
    return "forkserver" in cmd or "resource_tracker" in cmd


def _in_module_ray_cluster(p: psutil.Process) -> bool:
    """A process of the Ray cluster a tests/ray module keeps for the module: its fixture sets
    RAY_TMPDIR, and checks after the module that no process is left. Ray's agents overwrite their
    environment with their title, so a process counts if it or an ancestor names that RAY_TMPDIR."""
    ray_dir = os.environ.get("RAY_TMPDIR")
    if not ray_dir:
        return False
    for q in (p, *p.parents()):
        try:
            if q.environ().get("RAY_TMPDIR") == ray_dir:
                return True
        except psutil.Error:
            continue
    return False


def _children() -> list[psutil.Process]:
    try:
        kids = psutil.Process().children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    out = []
    for k in kids:
        try:
            if k.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.NoSuchProcess:
            continue
        if not _infrastructure(k):
            out.append(k)
    return out


def _describe(p: psutil.Process) -> tuple[int, str]:
    try:
        return p.pid, " ".join(p.cmdline())[:120] or p.name()
    except psutil.Error:
        return p.pid, "?"


def _shm_segments() -> set[str]:
    """Segments this test process created (named tuner_<pid>_<n>); tests of subprocesses check theirs."""
    d = Path("/dev/shm")
    if not d.is_dir():
        return set()
    mine = f"{SHM_PREFIX}{os.getpid()}_"
    return {p.name for p in d.iterdir() if p.name.startswith(mine)}


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    shm_before = _shm_segments()
    yield
    # Children get a short grace to finish exiting (a reaped process disappears at once; this
    # waits on the OS, it does not paper over a leak: anything alive after 5 s fails the test).
    deadline = time.monotonic() + 5.0
    alive = _children()
    while alive and time.monotonic() < deadline:
        psutil.wait_procs(alive, timeout=0.2)
        alive = _children()
    described = [_describe(p) for p in alive]
    for p in alive:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    leaked_shm = _shm_segments() - shm_before
    assert not alive, f"test left processes behind: {described}"
    assert not leaked_shm, f"test left shared-memory segments behind: {sorted(leaked_shm)}"


@pytest.fixture
def tuner_cmd() -> list[str]:
    """How to invoke the CLI in a subprocess (the console script's code path)."""
    return [sys.executable, "-m", "tuner"]


@pytest.fixture
def clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("COLUMNS", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env
