"""Helpers of the server tests: profiles for this host, and a real ``tuner serve`` in a subprocess.

:class:`Server` starts ``python -m tuner serve PROFILE --port 0`` (the kernel picks a free port; the
start line names it), reads its stderr lines in a thread, talks HTTP to it with ``http.client`` (one
connection per request), and remembers every process the server started, so a test can check that
none survives it — the forkserver included, which the suite's ``no_leaks`` fixture excuses — and
that no shared-memory segment of the server's is left in /dev/shm.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from tuner.hardware import Host
from tuner.profile import (
    Autoscale,
    Evidence,
    HostInfo,
    InputInfo,
    ModelRef,
    Recommended,
    ScalingProfile,
    save_profile,
)

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def model_spec(name: str) -> str:
    """A file spec for a model in tests/serve/models.py."""
    return f"{HERE / 'models.py'}:{name}"


def write_profile(
    path: Path, host: Host, *, spec: str, item: str | None, throughput: float = 1000.0, **recommended: Any
) -> Path:
    """Save a valid profile for ``spec`` measured on this ``host``; keyword arguments set ``recommended``."""
    rec: dict[str, Any] = {"backend": "thread", "workers": 2, "threads_per_worker": 1, "partition_size": 8}
    rec.update(recommended)
    info = HostInfo(
        fingerprint=host.fingerprint(),
        summary=host.summary(),
        usable_cores=host.usable_cores,
        logical_cores=host.logical_cores,
        physical_cores=host.physical_cores,
        memory_total_gb=host.memory_total_bytes / 1e9,
        cpu_model=host.cpu_model,
        platform=host.platform,  # type: ignore[arg-type]
        machine=host.machine,
    )
    profile = ScalingProfile(
        schema_version=1,
        name=path.stem,
        created=datetime.now(timezone.utc),
        tool_version="0.1.0",
        model=ModelRef(spec=spec, input=InputInfo(source="test", item=item) if item else None),
        host=info,
        recommended=Recommended(**rec),
        autoscale=Autoscale(min_workers=1, max_workers=rec["workers"]),
        evidence=Evidence(throughput=throughput),
    )
    return save_profile(profile, path)


class Reply:
    """An HTTP response: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def array(self) -> Any:
        return np.load(io.BytesIO(self.body), allow_pickle=False)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.body[:300]!r})"


class Server:
    """``tuner serve`` in a subprocess (see the module docstring); a context manager that kills it
    if the test did not stop it."""

    def __init__(self, profile: Path, *args: str) -> None:
        cmd = [sys.executable, "-m", "tuner", "serve", str(profile), "--port", "0", *args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, cwd=REPO
        )
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.seen: dict[int, str] = {}  # every descendant seen: pid -> command line
        start = self.wait_line(r"^tuner: serving ", 30)
        m = re.search(r" on http://127\.0\.0\.1:(\d+) ", start)
        assert m, start
        self.port = int(m.group(1))

    # ---------------------------------------------------------------- its output

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cv:
                self.lines.append(line.rstrip("\n"))
                self._cv.notify_all()

    def wait_line(self, pattern: str, timeout_s: float) -> str:
        """The first stderr line matching ``pattern`` (regex), waiting for it up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while True:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no line matching {pattern!r}; stderr so far:\n" + "\n".join(self.lines)
                    )
                self._cv.wait(min(left, 0.1))

    # ---------------------------------------------------------------- HTTP

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
                timeout_s: float = 30.0) -> Reply:  # fmt: skip
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout_s)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            conn.close()

    def get(self, path: str, timeout_s: float = 30.0) -> Reply:
        return self.request("GET", path, timeout_s=timeout_s)

    def post_json(self, doc: Any, timeout_s: float = 30.0) -> Reply:
        return self.post(json.dumps(doc).encode(), "application/json", timeout_s)

    def post_npy(self, arr: Any, timeout_s: float = 30.0) -> Reply:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return self.post(buf.getvalue(), "application/x-npy", timeout_s)

    def post(self, body: bytes, content_type: str | None, timeout_s: float = 30.0) -> Reply:
        headers = {"Content-Type": content_type} if content_type else {}
        return self.request("POST", "/v1/predict", body, headers, timeout_s)

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Poll /readyz until it says 200."""
        deadline = time.monotonic() + timeout_s
        while self.get("/readyz").status != 200:
            assert time.monotonic() < deadline, "not ready in time:\n" + "\n".join(self.lines)
            assert self.proc.poll() is None, "the server exited:\n" + "\n".join(self.lines)
            time.sleep(0.02)
        self.note_processes()

    def wait_health(self, cond: Any, what: str, timeout_s: float = 20.0) -> dict[str, Any]:
        """Poll /healthz until ``cond(its JSON)`` holds."""
        deadline = time.monotonic() + timeout_s
        while True:
            doc = self.get("/healthz").json()
            if cond(doc):
                return doc
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {doc}"
            time.sleep(0.01)

    # ---------------------------------------------------------------- processes

    def note_processes(self) -> list[psutil.Process]:
        """The server's descendants now (remembered, for the check that none survives it)."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for k in kids:
            try:
                self.seen.setdefault(k.pid, " ".join(k.cmdline())[:100])
            except psutil.Error:
                continue
        return kids

    def workers(self) -> list[psutil.Process]:
        """The server's worker processes: the forkserver's children (the forkserver and the resource
        tracker are the server's own children)."""
        out = []
        for k in self.note_processes():
            try:
                if k.ppid() != self.proc.pid:
                    out.append(k)
            except psutil.Error:
                continue
        return out

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit code."""
        self.note_processes()
        self.proc.send_signal(sig)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 30.0) -> int:
        code = self.proc.wait(timeout_s)
        self._reader.join(10)
        return code

    def assert_nothing_left(self) -> None:
        """No process the server started survives it, no shared-memory segment of its is left, and
        it printed no traceback."""
        assert self.proc.poll() is not None, "the server is still running"
        alive = []
        for pid, cmd in self.seen.items():
            try:
                p = psutil.Process(pid)
                p.wait(5)
            except psutil.NoSuchProcess:
                continue
            except psutil.TimeoutExpired:
                alive.append((pid, cmd))
        assert not alive, f"processes left behind by the server: {alive}"
        pids = {self.proc.pid, *self.seen}
        shm = Path("/dev/shm")
        left = (
            [p.name for p in shm.iterdir() if any(p.name.startswith(f"tuner_{pid}_") for pid in pids)]
            if shm.is_dir()
            else []
        )
        assert not left, f"shared-memory segments left behind: {left}"
        tracebacks = [line for line in self.lines if "Traceback" in line]
        assert not tracebacks, "the server printed a traceback:\n" + "\n".join(self.lines)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.note_processes()
            self.proc.kill()
            self.proc.wait(10)
        for pid in self.seen:
            try:
                psutil.Process(pid).kill()
            except psutil.Error:
                pass
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
