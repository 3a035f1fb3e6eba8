"""End to end in a real terminal: tmux runs ``python -m tuner``, keys are sent, the pane is read."""

from __future__ import annotations

import os
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
    pytest.mark.timeout(60),
]


def _tmux(*args: str, socket: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=False).stdout


def _wait_pane(socket: str, cond: Callable[[str], bool], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = _tmux("capture-pane", "-p", "-t", "tuner", socket=socket)
        if cond(text):
            return text
        time.sleep(0.2)  # polling a real terminal: there is no event to wait on
    raise AssertionError(f"pane never showed what was expected; last capture:\n{text}")


def _marked(mark: str) -> list[tuple[int, str]]:
    """Live processes (other than the pane's shell and its sleep) carrying the marker."""
    out = []
    for p in psutil.process_iter(["pid", "name"]):
        try:
            if p.environ().get("TUNER_TMUX_MARK") == mark and p.info["name"] not in (
                "sh",
                "bash",
                "sleep",
                "zsh",
            ):
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append((p.info["pid"], p.info["name"]))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return out


def test_tuner_in_tmux(tmp_path: Path) -> None:
    socket = f"tuner-test-{os.getpid()}"
    results = tmp_path / "sweep.jsonl"
    cmd = (
        f"cd {REPO} && {sys.executable} -m tuner --model builtin:sleep --window 0.2 --budget 20 "
        f"--results {results}; echo TUNER-EXIT=$?; sleep 30"
    )
    env = dict(os.environ, TERM="xterm-256color")
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", "-s", "tuner", "-x", "120", "-y", "40", cmd],
        check=True,
        env=env,
    )
    try:
        text = _wait_pane(socket, lambda t: "usable core" in t and "Start" in t)
        assert "1 Setup" in text and "builtin:sleep" in text
        _wait_pane(socket, lambda t: "✓" in t)  # the model check passed
        _tmux("send-keys", "-t", "tuner", "s", socket=socket)
        text = _wait_pane(socket, lambda t: "trial 1" in t)
        assert "events" in text and "trials" in text
        _tmux("send-keys", "-t", "tuner", "?", socket=socket)
        _wait_pane(socket, lambda t: "tuner — keys" in t)
        _tmux("send-keys", "-t", "tuner", "Escape", socket=socket)
        # A lone ESC is only a key once the terminal's escape timeout passes: wait for it to land.
        _wait_pane(socket, lambda t: "tuner — keys" not in t)
        _tmux("send-keys", "-t", "tuner", "q", socket=socket)
        text = _wait_pane(socket, lambda t: "TUNER-EXIT=" in t)
        assert "TUNER-EXIT=0" in text
        assert _marked(socket) == [], "tuner left processes behind"
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)
