"""On the real machine: what is tuner and what is outside, and a trial and the gate beside CPU burners.

These run beside whatever else the host does (on the reference box: other test suites), so they
assert what must hold either way: the burners are outside load, tuner's own processes never are,
a burner per usable core contaminates every window, and the gate never calls an unchanged build a
regression while they run. Every burner ends by itself within a bound and is stopped by the test.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest

from tuner.hardware import probe
from tuner.hostload import DEFAULT_MAX_OUTSIDE, HostSampler

BURN = (
    "import sys, time\n"
    "try:\n"
    "    open('/proc/self/comm', 'w').write('tuner-burner')\n"  # its name in `top` lists (Linux)
    "except OSError:\n"
    "    pass\n"
    "end = time.monotonic() + float(sys.argv[1])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
FAST = ["--window", "0.2"]


@contextmanager
def burners(n: int, seconds: float = 90.0) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` CPU-bound processes (each exits after ``seconds`` at most); stopped on leaving."""
    procs = [subprocess.Popen([sys.executable, "-c", BURN, str(seconds)]) for _ in range(n)]
    try:
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait(timeout=10)


def cpu_of(pid: int) -> float:
    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


@pytest.mark.timeout(60)
def test_descendants_are_tuner_and_a_sibling_is_outside() -> None:
    usable = probe().usable_cores
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with burners(1, seconds=30) as (burner,):
            mine = HostSampler(usable, root=os.getpid())  # the burner is a child: tuner's own
            theirs = HostSampler(usable, root=idle.pid)  # the burner is a stranger to it
            assert mine.scan() >= 2 and burner.pid in mine.pids and burner.pid not in theirs.pids
            a_mine, a_theirs = mine.snapshot(), theirs.snapshot()
            burned0 = cpu_of(burner.pid)
            kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            # A short-lived child that runs and is reaped inside the interval: its CPU moves into
            # this process's "children" times, and is still tuner's.
            subprocess.run([sys.executable, "-c", BURN, "0.3"], check=True, timeout=30)
            kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            deadline = time.perf_counter() + 1.0
            while time.perf_counter() < deadline:  # measuring over an interval, not waiting on an event
                time.sleep(0.05)
            b_mine, b_theirs = mine.snapshot(), theirs.snapshot()
            burned = cpu_of(burner.pid) - burned0
        reaped = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        assert reaped > 0.05 and burned > 0.1  # the host let both run a little at least
        tick = 0.05  # clock-tick truncation of a handful of counters
        # Tuner's own CPU holds the burner and the reaped child; the other sampler's does not.
        assert b_mine.own_s - a_mine.own_s >= burned + reaped - tick
        assert b_theirs.own_s - a_theirs.own_s < 0.05
        # To the other sampler the burner is outside load.
        span = b_theirs.t - a_theirs.t
        outside = theirs.interval(a_theirs, b_theirs).outside
        assert outside >= (burned - tick) / span / usable
    finally:
        idle.kill()
        idle.wait()


def bench(tuner_cmd: list[str], env: dict[str, str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*tuner_cmd, "bench", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
    )


ONE_TRIAL = [
    "--model", "builtin:pyloop", "--strategy", "grid", "--backends", "process", "--workers", "1",
    "--partition-sizes", "64", "--items", "1024", *FAST,
]  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_a_trial_beside_a_burner_per_core_is_contaminated(
    backend: str, tmp_path: Path, tuner_cmd, clean_env
) -> None:
    # thread: the workers are threads of the measuring process, whose ids are not processes of
    # their own (counted as tuner's, each added the whole process's CPU again: with 2 workers the
    # burners' load vanished behind tuner's tripled CPU, and the gate called it a regression)
    usable = probe().usable_cores
    trial = list(ONE_TRIAL)
    if backend == "thread":
        trial[trial.index("process")] = "thread"
        trial[trial.index("--workers") + 1] = "2"
    with burners(usable):
        proc = bench(tuner_cmd, clean_env, *trial, "--json", cwd=tmp_path)
        out, err = proc.communicate(timeout=100)
    assert proc.returncode == 0, err
    (trial,) = [t for t in json.loads(out)["trials"] if not t["role"]]  # the default deployment's two aside
    # One busy process per usable core beside the trial: whatever else runs here, more than a
    # quarter of the cores is someone else's in every window.
    assert trial["contaminated"] is True
    assert trial["discarded_windows"] == list(range(len(trial["windows"])))
    outside = trial["outside"]
    assert outside["cpu"] > DEFAULT_MAX_OUTSIDE and min(outside["windows"]) > DEFAULT_MAX_OUTSIDE
    assert outside["top"], "the busiest others are named"
    assert proc.pid not in {p["pid"] for p in outside["top"]}  # tuner is never its own outside load
    assert "host busy: window discarded" in err and "contaminated: host busy" in err
    assert "measured on a busy host" in err  # the recommendation's words say so


@pytest.mark.timeout(180)
def test_the_gate_never_calls_a_busy_host_a_regression(tmp_path: Path, tuner_cmd, clean_env) -> None:
    profile = tmp_path / "p.yaml"
    made = bench(tuner_cmd, clean_env, *ONE_TRIAL, "--out", str(profile), cwd=tmp_path)
    _, err = made.communicate(timeout=100)
    assert made.returncode == 0, err
    with burners(probe().usable_cores):  # the same build, now beside a burner per core
        gate = bench(tuner_cmd, clean_env, "--baseline", str(profile), *FAST, "--json", cwd=tmp_path)
        out, err = gate.communicate(timeout=150)
    verdict = json.loads(out)["gate"]
    assert gate.returncode in (0, 3), err  # never 1
    assert verdict["verdict"] in ("ok", "inconclusive")
    assert verdict["host_busy"] is True and verdict["clean_trials"] == 0
    assert verdict["trials"] == 5  # every trial was busy: two more were tried
    if gate.returncode == 3:
        last = err.strip().splitlines()[-1]
        assert last.startswith(f"tuner: inconclusive against {profile}: host busy — outside load ")
    else:
        assert "ok (on a busy host: outside load" in verdict["line"]
