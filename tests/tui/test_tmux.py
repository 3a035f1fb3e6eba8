"""End to end in a real terminal: tmux runs ``python -m tuner``, keys are sent, the pane is read.

Every process the run starts (the app, its forkserver and resource tracker, the sweep's child and
its workers) inherits ``TUNER_TMUX_MARK``, set on the command line in the pane; the test finds them
by it, sees them alive mid-sweep (so the search cannot come back empty by mistake) and requires
none left after quitting. Waits are on what the pane shows, with deadlines sized for a loaded
2-core machine.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.timeout(150),
]
MARK = "TUNER_TMUX_MARK"


def _tmux(*args: str, socket: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=False).stdout


def _wait_pane(socket: str, cond: Callable[[str], bool], what: str, timeout: float = 40.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _tmux("capture-pane", "-p", "-t", "tuner", socket=socket)
        if cond(text):
            return text
        time.sleep(0.2)  # polling a real terminal: there is no event to wait on
    raise AssertionError(f"the pane never showed {what} in {timeout:g} s; last capture:\n{text}")


def _marked(mark: str) -> list[psutil.Process]:
    """Live processes started by this run: those whose environment carries the mark."""
    out = []
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if p.environ().get(MARK) == mark and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def _describe(procs: list[psutil.Process]) -> list[str]:
    out = []
    for p in procs:
        try:
            out.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
        except psutil.Error:
            out.append(f"{p.pid} (gone)")
    return out


def _trial_rows(pane: str) -> int:
    """How many trials the pane's table says it holds ("3 trials · sorted by # (o)")."""
    m = re.search(r"(\d+) trials? · sorted", pane)
    return int(m.group(1)) if m else 0


def test_tuner_in_tmux(tmp_path: Path) -> None:
    socket = f"tuner-test-{os.getpid()}"
    results = tmp_path / "sweep.jsonl"
    # The mark is exported in the pane's command, so every process of this run inherits it (and
    # unset before the pane's closing sleep, which is not tuner's).
    cmd = (
        f"export {MARK}={socket}; cd {shlex.quote(str(REPO))} && "
        f"{shlex.quote(sys.executable)} -m tuner --model builtin:sleep --window 0.2 --budget 60 "
        f"--results {shlex.quote(str(results))}; echo TUNER-EXIT=$?; unset {MARK}; sleep 60"
    )
    env = dict(os.environ, TERM="xterm-256color")
    env.pop(MARK, None)
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", "-s", "tuner", "-x", "120", "-y", "40", cmd],
        check=True,
        env=env,
    )
    try:
        text = _wait_pane(socket, lambda t: "usable core" in t and "Start" in t, "the setup view")
        assert "1 Setup" in text and "builtin:sleep" in text
        _wait_pane(socket, lambda t: "✓" in t, "the model check passing")
        _tmux("send-keys", "-t", "tuner", "s", socket=socket)
        text = _wait_pane(socket, lambda t: "trial 1" in t, "the first trial starting")
        assert "events" in text and "trials" in text
        # The trials table fills as trials finish: two rows, each a configuration with its figures.
        text = _wait_pane(socket, lambda t: _trial_rows(t) >= 2, "two finished trials in the table", 90)
        # "│ 1    inl×1 tdef p2048   22.9k    1,672 ms  stable  2%   54 MB": a row a person can read
        # (the first two: the default deployment, in the caller and in one worker process)
        # (contaminated: the host was too busy for clean windows, as this shared box often is)
        row = re.compile(
            r"│ (\d+) +★? *(inl|proc|thr)×\d+ t(\d+|def) p\d+ +[\d.]+[kM]? +[\d.,]+ ms +"
            r"(stable|unstable|infeasible|contaminated)"
        )
        numbers = [int(m.group(1)) for m in map(row.search, text.splitlines()) if m]
        assert numbers[:2] == [1, 2], text
        assert len(results.read_text().splitlines()) >= 2  # the same trials, kept on disk
        # Mid-sweep, this run's processes are found by the mark: the app and the sweep's child at least.
        alive = _marked(socket)
        assert any("-m tuner" in " ".join(p.cmdline()) for p in alive), _describe(alive)
        assert len(alive) >= 2, _describe(alive)
        _tmux("send-keys", "-t", "tuner", "?", socket=socket)
        _wait_pane(socket, lambda t: "tuner — keys" in t, "the help screen")
        _tmux("send-keys", "-t", "tuner", "Escape", socket=socket)
        # A lone ESC is only a key once the terminal's escape timeout passes: wait for it to land.
        _wait_pane(socket, lambda t: "tuner — keys" not in t, "the help screen closing")
        _tmux("send-keys", "-t", "tuner", "q", socket=socket)
        text = _wait_pane(socket, lambda t: "TUNER-EXIT=" in t, "tuner exiting")
        assert "TUNER-EXIT=0" in text
        # Quitting mid-sweep stops every worker: nothing of this run may outlive the app.
        deadline = time.monotonic() + 15.0
        left = _marked(socket)
        while left and time.monotonic() < deadline:
            psutil.wait_procs(left, timeout=0.5)
            left = _marked(socket)
        assert left == [], f"tuner left processes behind: {_describe(left)}"
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
