"""The Ray side of the command line, each command in its own process: `--ray-address local` starts
a head on loopback for the command and stops every process of it; without Ray, one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray]

DEFAULT_RAY_DIR = Path("/tmp/ray")


def ray_env(clean_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    env = dict(clean_env)
    env["RAY_AUTH_MODE"] = "disabled"  # no token file in the home folder
    env["TMPDIR"] = str(tmp_path)  # where a local head's folder goes (tempfile)
    env.pop("RAY_TMPDIR", None)
    env.pop("RAY_ADDRESS", None)
    return env


def short_tmp(tmp_path: Path) -> Path:
    # Ray's unix sockets live 60-odd characters under its folder (107 at most): pytest's is too deep.
    import tempfile

    return Path(tempfile.mkdtemp(prefix="tc-", dir="/tmp"))


@pytest.mark.timeout(120)
def test_hw_shows_a_local_cluster_and_stops_it(
    tuner_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    folder = short_tmp(tmp_path)
    had_default = DEFAULT_RAY_DIR.exists()
    try:
        env = ray_env(clean_env, folder)
        r = subprocess.run(
            [*tuner_cmd, "hw", "--ray-address", "local", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=100,
        )
        assert r.returncode == 0, r.stderr
        info = json.loads(r.stdout)
        assert info["kind"] == "local" and info["ray_version"]
        assert (
            len(info["nodes"]) == 1
            and info["nodes"][0]["address"] == "127.0.0.1"
            and info["nodes"][0]["head"]
        )
        assert info["nodes"][0]["cpus"] >= 1 and info["nodes"][0]["memory_bytes"] > 0
        # the head's folder is removed, and nothing was written where Ray writes by default
        assert list(folder.iterdir()) == []
        assert had_default or not DEFAULT_RAY_DIR.exists()
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(60)
def test_without_ray_the_ray_backend_is_one_line(
    tuner_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    # A site-customize that hides Ray, as on a machine without the extra.
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['ray'] = None\n")
    env = dict(clean_env, PYTHONPATH=str(tmp_path))
    for args in (
        ["bench", "--backends", "ray", "--ray-address", "local", "--max-trials", "1"],
        ["hw", "--ray-address", "local"],
    ):
        r = subprocess.run(
            [*tuner_cmd, *args], env=env, capture_output=True, text=True, timeout=50, cwd=tmp_path
        )
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.strip() == "tuner: the ray backend needs Ray: pip install 'tuner[ray]'", args


@pytest.mark.timeout(30)
def test_a_bad_address_is_one_line(tuner_cmd: list[str], clean_env: dict[str, str]) -> None:
    r = subprocess.run(
        [*tuner_cmd, "hw", "--ray-address", "ray://nohost"],
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == "tuner: --ray-address 'ray://nohost': use auto, local or ray://host:port"


@pytest.mark.timeout(120)
def test_an_unreachable_address_is_one_line_and_no_ray_warning(
    tuner_cmd: list[str], clean_env: dict[str, str]
) -> None:
    # Nothing listens on port 1: Ray Client gives up after its connection timeout (~30 s by
    # default; its own variables shorten it to ~3 s here, the same path and message).
    env = {**clean_env, "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "1"}
    r = subprocess.run(
        [*tuner_cmd, "hw", "--ray-address", "ray://127.0.0.1:1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "tuner: --ray-address ray://127.0.0.1:1: cannot connect to Ray (ray client connection timeout)"
    ], r.stderr


@pytest.mark.timeout(200)
def test_bench_on_a_local_head_then_export_and_run_the_profile(
    tuner_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    """The whole path on Ray: sweep (SPREAD vs PACK), profile with its cluster, Serve config, run."""
    pytest.importorskip("ray")
    import numpy as np
    import yaml

    folder = short_tmp(tmp_path)
    had_default = DEFAULT_RAY_DIR.exists()
    try:
        env = ray_env(clean_env, folder)
        profile = tmp_path / "ray.yaml"
        r = subprocess.run(
            [
                *tuner_cmd, "bench", "--model", "builtin:sleep", "--ray-address", "local",
                "--placements", "SPREAD,PACK", "--strategy", "grid", "--workers", "1,2",
                "--partition-sizes", "256", "--window", "0.25", "--items", "4000", "--out", str(profile),
            ],
            env=env, capture_output=True, text=True, timeout=150, cwd=tmp_path,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr[-3000:]
        assert "cluster: Ray " in r.stderr and "(local): 1 node" in r.stderr
        assert "· SPREAD ·" in r.stderr and "· PACK ·" in r.stderr  # both placements measured
        data = yaml.safe_load(profile.read_text())
        assert data["recommended"]["backend"] == "ray" and data["recommended"]["placement"] in (
            "SPREAD",
            "PACK",
        )
        assert data["cluster"]["address"] == "local" and data["cluster"]["nodes"] == 1
        assert data["cluster"]["actor"] == {"num_cpus": 1.0}
        assert "127.0.0.1" not in profile.read_text()  # the kind of address, never the address

        serve = subprocess.run(
            [*tuner_cmd, "export", str(profile), "--to", "ray-serve"],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert serve.returncode == 0, serve.stderr
        from ray.serve.schema import ServeDeploySchema

        dep = ServeDeploySchema.model_validate(yaml.safe_load(serve.stdout)).applications[0].deployments[0]
        assert dep.user_config["max_batch_size"] == 256

        np.save(tmp_path / "in.npy", np.arange(500, dtype=np.int64))
        out = tmp_path / "out.npy"
        run = subprocess.run(
            [*tuner_cmd, "run", str(profile), "--input", str(tmp_path / "in.npy"), "--output", str(out), "--no-progress"],
            env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        assert np.load(out).tolist() == [2 * x for x in range(500)]
        assert list(folder.iterdir()) == []  # every local head's folder removed
        assert had_default or not DEFAULT_RAY_DIR.exists()
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(60)
def test_an_engine_on_ray_without_a_connection_says_how_to_connect(clean_env: dict[str, str]) -> None:
    pytest.importorskip("ray")
    code = (
        "from tuner.engine import Engine, EngineConfig\n"
        "from tuner.errors import ConfigError\n"
        "try:\n"
        "    Engine('builtin:sleep', EngineConfig(backend='ray')).start()\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], env=clean_env, capture_output=True, text=True, timeout=50
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == (
        "the ray backend is not connected to a Ray cluster: pass --ray-address "
        "(auto | local | ray://host:port), or call tuner.cluster.connect(...) (or ray.init) first"
    )


@pytest.mark.timeout(150)
def test_sigterm_mid_sweep_stops_the_local_head_it_started(
    tuner_cmd: list[str], clean_env: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("ray")
    import signal
    import time

    import psutil

    folder = short_tmp(tmp_path)
    try:
        env = ray_env(clean_env, folder)
        proc = subprocess.Popen(
            [
                *tuner_cmd, "bench", "--model", "builtin:sleep", "--ray-address", "local", "--strategy", "grid",
                "--workers", "1,2", "--partition-sizes", "8,16,32", "--window", "0.5", "--items", "4000",
            ],
            env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:  # wait until a trial runs on the head tuner started
            seen.append(line)
            if "ray ×1" in line:
                break
        assert any("cluster: Ray" in s for s in seen), "".join(seen)
        ray_procs = [
            p
            for p in psutil.Process(proc.pid).children(recursive=True)
            if "raylet" in p.name() or "gcs_server" in p.name()
        ]
        assert ray_procs, "the local head's raylet and GCS run under tuner"
        proc.send_signal(signal.SIGTERM)
        rest = proc.stderr.read()
        assert proc.wait(60) == 130, rest[-2000:]
        deadline = time.monotonic() + 10
        while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in ray_procs):
            assert time.monotonic() < deadline, "Ray processes outlived tuner's SIGTERM"
            time.sleep(0.1)
        assert list(folder.iterdir()) == []  # the head's folder went with it
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
