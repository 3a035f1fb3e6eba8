"""``tuner serve``'s command line: what is refused before anything starts (one line, exit 2), a model
that cannot load, and the import hygiene of the core (no Starlette, no uvicorn)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.hardware import Host

from .helpers import REPO, Server, model_spec, write_profile


def _tuner(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    run_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=run_env,
        cwd=REPO,
    )


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    return lines[0]


@pytest.mark.timeout(60)
def test_a_missing_serve_extra_is_one_line_and_exit_2(tmp_path: Path, mlp_profile: Path) -> None:
    fake = tmp_path / "site" / "uvicorn"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named uvicorn', name='uvicorn')\n")
    r = _tuner("serve", str(mlp_profile), env={"PYTHONPATH": f"{fake.parent}{os.pathsep}{REPO}"})
    assert r.returncode == 2
    assert _one_line(r) == (
        "tuner: tuner serve needs the serve extra (uvicorn is missing): pip install 'tuner[serve]'"
    )


@pytest.mark.timeout(60)
def test_what_cannot_be_served_is_refused_before_anything_starts(
    tmp_path: Path, mlp_profile: Path, this_host: Host
) -> None:
    small = _tuner("serve", str(mlp_profile), "--max-body-mb", "0.1")
    assert small.returncode == 2
    # 64 rows of 256 numbers, each up to 26 bytes in JSON: 0.43 MB
    assert _one_line(small) == (
        "tuner: --max-body-mb 0.1: a full batch (64 items of float32[256]) takes up to 0.43 MB of JSON; "
        "give at least that"
    )
    assert _one_line(_tuner("serve", str(mlp_profile), "--drain-s", "-1")) == (
        "tuner: --drain-s '-1': out of range (expected seconds >= 0)"
    )
    two = write_profile(tmp_path / "two.yaml", this_host, spec="builtin:mlp", item="a: float32[4], b: int64")
    r = _tuner("serve", str(two))
    assert (
        r.returncode == 2
        and "tuner serve takes a model with one input; this profile's has 2 (a, b)" in _one_line(r)
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = _tuner("serve", str(mlp_profile), "--port", str(port))
    assert busy.returncode == 2
    assert _one_line(busy) == f"tuner: cannot listen on http://127.0.0.1:{port}: Address already in use"


@pytest.mark.timeout(60)
def test_a_model_that_cannot_load_stops_the_server_with_its_line(tmp_path: Path, this_host: Host) -> None:
    profile = write_profile(tmp_path / "gone.yaml", this_host, spec=model_spec("no_such_model"), item="int64")
    with Server(profile) as server:
        code = server.wait()
    assert code == 2, server.lines
    assert server.lines[-1].startswith("tuner: ") and "no_such_model" in server.lines[-1], server.lines
    assert not any(line.startswith(("tuner: ready", "tuner: stopped")) for line in server.lines)
    server.assert_nothing_left()


@pytest.mark.timeout(60)
def test_the_runtime_and_the_cli_parser_import_neither_starlette_nor_uvicorn() -> None:
    probe = (
        "import json, sys, tuner.runtime, tuner.cli, tuner.commands.serve\n"
        "tuner.cli.build_parser()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    mods = json.loads(r.stdout.strip().splitlines()[-1])
    heavy = [
        m
        for m in mods
        if m.split(".")[0] in ("starlette", "uvicorn", "tuner")
        and m.startswith(("starlette", "uvicorn", "tuner.serve"))
    ]
    assert not heavy, heavy
