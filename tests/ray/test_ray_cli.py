"""The Ray side of the command line, each command in its own process: `--ray-address local` starts
a head on loopback for the command and stops every process of it; without Ray, one line."""

from __future__ import annotations

import json
import subprocess
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
