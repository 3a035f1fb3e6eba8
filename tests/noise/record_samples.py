"""Record the host-load samples the unit tests in this folder replay (``samples.json``).

Not a test: run it on a Linux host to refresh the recording (about 7 s)::

    .venv/bin/python tests/noise/record_samples.py tests/noise/samples.json

What it records, every 0.5 s for 6 s, with :class:`tuner.hostload.HostSampler` rooted at an idle
child process (so the recorder itself is "outside", like any other process):

* 0-6 s: an *own* burner (counted as tuner through ``own_pids``) keeps one core busy;
* 2-4 s: one *outside* burner per usable core (named ``tuner-burner``), and from 1.5 s a shell that
  runs short busy children one after another (its reaped children's CPU is its own);
* the whole process table at 2 s and at 4 s, to name the busiest outside processes.

The host's own background load is recorded as it was (the file says how busy it was).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tuner.hostload import HostSampler, ProcessTable

BURN = (
    "import sys, time\n"
    "try:\n"
    "    open('/proc/self/comm', 'w').write(sys.argv[1])\n"
    "except OSError:\n"
    "    pass\n"
    "end = time.monotonic() + float(sys.argv[2])\n"
    "while time.monotonic() < end:\n"
    "    pass\n"
)
REAPER = 'for i in 1 2 3 4 5 6; do {py} -c "{burn}" short-child 0.35; done'


def burner(name: str, seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BURN, name, str(seconds)])


def table(t: ProcessTable) -> dict[str, object]:
    return {"t": t.t, "cpu": {str(k): list(v) for k, v in t.cpu.items()}}


def main(out: str) -> None:
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    own = burner("own-burner", 6.5)
    try:
        sampler = HostSampler(root=idle.pid, own_pids=[own.pid])
        t0 = time.perf_counter()
        snaps = [sampler.snapshot()]
        outside: list[subprocess.Popen[bytes]] = []
        reaper = None
        tables = {}
        for k in range(1, 13):
            time.sleep(max(0.0, t0 + 0.5 * k - time.perf_counter()))
            snaps.append(sampler.snapshot())
            if k == 3:
                burn = BURN.replace('"', '\\"').replace("\n", "\\n")
                code = REAPER.format(py=sys.executable, burn=burn)
                reaper = subprocess.Popen(["sh", "-c", code.replace("\\n", "\n")])
            if k == 4:
                tables["before"] = ProcessTable.read()
                outside = [burner("tuner-burner", 2.2) for _ in range(sampler.usable_cores)]
            if k == 8:
                tables["after"] = ProcessTable.read()
        for p in [*outside, own, *([reaper] if reaper else [])]:
            p.wait(timeout=10)
        data = {
            "recorded": time.strftime("%Y-%m-%d %H:%M:%S"),
            "usable_cores": sampler.usable_cores,
            "spare_cores": sampler.spare_cores,
            "window_s": 0.5,
            "own_burner": own.pid,
            "outside_burners": [p.pid for p in outside],
            "reaper": reaper.pid if reaper else None,
            "root": idle.pid,
            "snapshots": [[s.t - t0, s.busy_s, s.steal_s, s.own_s, s.swap_bytes] for s in snaps],
            "tables": {k: table(v) for k, v in tables.items()},
        }
        with open(out, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)
    finally:
        for p in (idle, own):
            if p.poll() is None:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "samples.json"))
