"""The exported Deployment really runs: its container's command line, run here.

``tuner export PROFILE --to kubernetes --out DIR`` (the CLI, in a subprocess) for each shipped
profile; the Deployment's container is read back — ``command``, ``args``, ``env``, ``workingDir``,
the ConfigMap's profile, the probes, ``terminationGracePeriodSeconds`` — and its command line is run
as a subprocess the way the container would run it. Substituted, and nothing else: the mount
directory (the ConfigMap's profile is written to a temporary folder under the file name the volume
gives it), the port (a free one here, for the ``containerPort`` a container has to itself), the
working directory (``/app`` does not exist here; the builtin models need no file in it), and
``tuner`` resolves to this environment's console script. The environment is this one's, with the
manifest's variables on top.

Then, as the kubelet would: the startup probe's path answers within its window, the readiness
probe's within its own after that, the liveness probe's; the Service's ``targetPort`` names the
port the server listens on; the thread variables reach every process that runs the model, and no
more threads run there than the profile's thread evidence allows; ``/metrics`` (where the pod's
Prometheus annotations say) has the metric the KEDA trigger's query names; SIGTERM — what the kubelet
sends after the preStop hook — ends the server with exit 0 within what is left of
``terminationGracePeriodSeconds``, and no process of its survives.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest
from serve.helpers import REPO, Server

from export.helpers import PROFILES, documents, validate_k8s
from tuner.bench import threads as thread_evidence
from tuner.profile import load_profile

#: the export's options for each shipped profile: one pod (mlp, pyloop); KEDA on the request rate (sleep)
CASES: dict[str, list[str]] = {
    "mlp": ["--autoscaler", "none"],
    "pyloop": ["--autoscaler", "none", "--server-memory-mb", "80"],
    "sleep": ["--rate", "20000", "--autoscaler", "keda", "--prometheus-url", "http://prom.monitoring:9090"],
}
#: Kubernetes' defaults for a probe's fields the manifest leaves out
PROBE_DEFAULTS = {"initialDelaySeconds": 0, "periodSeconds": 10, "failureThreshold": 3}
#: seconds of load while the threads that run are counted
LOAD_S = 1.0


class ManifestServer(Server):
    """:class:`serve.helpers.Server` on a given command line (the container's), environment and
    working directory, listening on a known ``port``."""

    def __init__(self, cmd: list[str], env: dict[str, str], cwd: Path, port: int) -> None:
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True, cwd=cwd
        )
        self.lines: list[str] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.seen: dict[int, str] = {}
        self.port = port
        self.started = time.monotonic()

    def poll_ok(self, path: str, deadline: float, what: str) -> float:
        """Poll ``path`` until it answers 200 (connection refused counts as a failed probe); the
        time it did. Fails the test at ``deadline`` (monotonic) or if the server exits."""
        while True:
            try:
                if self.get(path, timeout_s=1.0).status == 200:
                    return time.monotonic()
            except OSError:
                pass
            assert self.proc.poll() is None, f"the server exited ({what}):\n" + "\n".join(self.lines)
            assert time.monotonic() < deadline, f"{what}: {path} did not answer 200 in time:\n" + "\n".join(
                self.lines
            )
            time.sleep(0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _probe(c: dict[str, Any], kind: str) -> dict[str, Any]:
    return {**PROBE_DEFAULTS, **c[kind]}


def _window_s(probe: dict[str, Any]) -> float:
    """How long the kubelet gives a probe to succeed: initialDelaySeconds + failureThreshold × periodSeconds."""
    return float(probe["initialDelaySeconds"] + probe["failureThreshold"] * probe["periodSeconds"])


def _container_port(c: dict[str, Any], port: int | str) -> int:
    """A probe's or a Service's port (a number, or the name of one of the container's ports)."""
    if isinstance(port, int):
        return port
    (match,) = [p["containerPort"] for p in c["ports"] if p["name"] == port]
    return int(match)


def _command_line(
    c: dict[str, Any],
    pod: dict[str, Any],
    cm: dict[str, Any],
    mount_dir: Path,
    container_port: int,
    port: int,
) -> list[str]:
    """The container's command line with the mount directory and the port (``container_port``,
    which it must listen on, → ``port``) substituted; the ConfigMap's files written into
    ``mount_dir`` under the names the volume gives them."""
    (mount,) = c["volumeMounts"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == cm["metadata"]["name"] and "items" not in volume["configMap"]
    for key, text in cm["data"].items():  # a configMap volume: one file per key, named by it
        (mount_dir / key).write_text(text, encoding="utf-8")
    prefix = mount["mountPath"].rstrip("/") + "/"
    args = [str(mount_dir / a.removeprefix(prefix)) if a.startswith(prefix) else a for a in c["args"]]
    assert args != c["args"], "no argument names the mounted profile"
    i = args.index("--port")
    assert int(args[i + 1]) == container_port, "tuner serve --port is not the port the Service targets"
    args[i + 1] = str(port)
    (exe,) = c["command"]
    assert exe == "tuner"
    script = shutil.which("tuner", path=str(Path(sys.executable).parent))
    return [script, *args] if script else [sys.executable, "-m", "tuner", *args]


def _body(item: str | None, n: int) -> tuple[bytes, str]:
    """A request of ``n`` items like the profile's (``float32[256]`` as .npy, ``int64`` as JSON)."""
    if item == "float32[256]":
        buf = io.BytesIO()
        np.save(buf, np.ones((n, 256), dtype=np.float32), allow_pickle=False)
        return buf.getvalue(), "application/x-npy"
    assert item == "int64", item
    return ('{"inputs": [' + ", ".join(str(i) for i in range(n)) + "]}").encode(), "application/json"


def _load(server: ManifestServer, body: bytes, media: str, seconds: float) -> list[int]:
    """Requests from 4 threads for ``seconds``; their statuses."""
    statuses: list[int] = []
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def send() -> None:
        while time.monotonic() < end:
            r = server.post(body, media)
            with lock:
                statuses.append(r.status)

    senders = [threading.Thread(target=send) for _ in range(4)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    return statuses


def _model_processes(server: ManifestServer, in_caller: bool) -> list[psutil.Process]:
    """The processes that run the model: the server's own (thread, inline backends) or its workers."""
    if in_caller:
        return [psutil.Process(server.proc.pid)]
    workers = server.workers()
    assert workers, "no worker processes"
    return workers


def _metric_families(text: str) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_exported_deployments_command_line_serves_probes_scales_and_drains(
    name: str, tuner_cmd: list[str], tmp_path: Path
) -> None:
    pytest.importorskip("starlette", reason="tuner serve needs the serve extra")
    pytest.importorskip("prometheus_client", reason="/metrics needs the metrics extra")
    deploy = tmp_path / "deploy"
    r = subprocess.run(
        [*tuner_cmd, "export", str(PROFILES[name]), "--to", "kubernetes", *CASES[name], "--out", f"{deploy}/"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    docs = documents((deploy / "kubernetes.yaml").read_text())
    dep, svc, cm = docs["Deployment"], docs["Service"], docs["ConfigMap"]
    for kind in ("ConfigMap", "Deployment", "Service"):
        validate_k8s(docs[kind])  # what runs below is what the API server accepts
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    profile = load_profile(PROFILES[name])

    # The Service sends its traffic to the port tuner serve listens on; the probes ask that port.
    (svc_port,) = svc["spec"]["ports"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    container_port = _container_port(c, svc_port["targetPort"])
    startup, ready, alive = (_probe(c, k) for k in ("startupProbe", "readinessProbe", "livenessProbe"))
    for p in (startup, ready, alive):
        assert _container_port(c, p["httpGet"]["port"]) == container_port
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == container_port

    mount_dir = tmp_path / "mnt"
    mount_dir.mkdir()
    workdir = tmp_path / "app"
    workdir.mkdir()
    port = _free_port()
    cmd = _command_line(c, pod, cm, mount_dir, container_port, port)
    env = {**os.environ, "PYTHONPATH": str(REPO), **{e["name"]: e["value"] for e in c["env"]}}

    grace = pod["terminationGracePeriodSeconds"]
    (sleep, prestop_s) = c["lifecycle"]["preStop"]["exec"]["command"]
    assert sleep == "sleep"
    with ManifestServer(cmd, env, workdir, port) as server:
        # startup: /healthz within the startup probe's window (else the kubelet restarts the
        # container); readiness is probed from then on: /readyz within its own window.
        started = server.poll_ok(
            startup["httpGet"]["path"], server.started + _window_s(startup), "startup probe"
        )
        server.poll_ok(ready["httpGet"]["path"], started + _window_s(ready), "readiness probe")
        assert server.get(alive["httpGet"]["path"]).status == 200
        server.wait_line(rf"^tuner: serving .* on http://0\.0\.0\.0:{port} ", 5)
        server.note_processes()

        # the thread variables reach every process that runs the model, and no more threads run
        # there than the profile's evidence allows (the threads that ran when it was measured)
        applied = server.get("/v1/profile").json()["applied"]
        threads = applied["threads_per_worker"]
        ev = profile.evidence.threads
        assert ev is not None and threads == ev.threads_per_worker == profile.recommended.threads_per_worker
        in_caller = ev.scope.startswith("process")
        procs = _model_processes(server, in_caller)
        wanted_env = {e["name"]: e["value"] for e in c["env"]}
        assert set(wanted_env.values()) == {str(threads)}
        for p in procs:
            penv = p.environ()
            got = {k: penv.get(k) for k in wanted_env}  # only these: no other variable in a message
            assert got == wanted_env, f"pid {p.pid} ({' '.join(p.cmdline())[:80]})"
        body, media = _body(profile.model.input.item if profile.model.input else None, 16)
        pids = [p.pid for p in procs]
        before = thread_evidence.snapshot(pids)
        t0 = time.monotonic()
        statuses = _load(server, body, media, LOAD_S)
        after = thread_evidence.snapshot(pids)
        seen = thread_evidence.evidence(
            before, after, time.monotonic() - t0, in_caller=in_caller, workers=applied["workers"],
            threads=threads, allowed_per_worker=threads, model_file=False,
        )  # fmt: skip
        assert set(statuses) == {200}, statuses
        assert seen["allowed"] == ev.allowed and seen["ran"] <= ev.allowed, seen

        # /metrics, where the pod's annotations point Prometheus, has the metric KEDA scales on
        families = _metric_families(server.get(annotations["prometheus.io/path"]).body.decode())
        names = {s.name: f.type for f in families.values() for s in f.samples}
        wanted = "tuner_requests_total"
        if "ScaledObject" in docs:
            (trigger,) = docs["ScaledObject"]["spec"]["triggers"]
            m = re.search(r"rate\(([a-zA-Z_:][a-zA-Z0-9_:]*)\{", trigger["metadata"]["query"])
            assert m, trigger["metadata"]["query"]
            wanted = m.group(1)
        assert names.get(wanted) == "counter", sorted(names)
        offered = sum(s.value for f in families.values() for s in f.samples if s.name == wanted)
        assert offered == len(statuses)  # every request counts, whatever its outcome

        # the kubelet runs the preStop hook, then SIGTERM: what is left of the grace period
        left = grace - float(prestop_s)
        t0 = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout_s=left + 5)
        took = time.monotonic() - t0
        assert code == 0, "\n".join(server.lines)
        assert took <= left, f"exited {took:.1f} s after SIGTERM; the grace period leaves {left:g} s"
        server.wait_line(r"^tuner: stopped on SIGTERM", 1)
        server.assert_nothing_left()
