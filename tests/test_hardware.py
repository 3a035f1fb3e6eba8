"""`tuner hw` and the hardware probe: usable cores, container quota, fingerprint, differences."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tuner.hardware import GIB, Host, cgroup_cpu_quota, probe, usable_cores

NO_PROC_CGROUP = Path("/nonexistent/proc/self/cgroup")


def _hw(cmd: list[str], env: dict[str, str], *extra: str, prefix: tuple[str, ...] = ()) -> str:
    out = subprocess.run(
        [*prefix, *cmd, "hw", *extra], capture_output=True, text=True, env=env, timeout=50, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _expected_quota_here() -> float | None:
    # Read the real files independently of tuner, so the test knows whether this sandbox has a quota.
    v2 = Path("/sys/fs/cgroup/cpu.max")
    if v2.exists():
        quota, period = v2.read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
    if v1.exists():
        quota_us = int(v1.read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota_us < 0 else quota_us / period_us
    return None


@pytest.mark.timeout(60)
def test_hw_json_reports_usable_cores(tuner_cmd: list[str], clean_env: dict[str, str]) -> None:
    d = json.loads(_hw(tuner_cmd, clean_env, "--json"))
    assert 1 <= d["usable_cores"] <= d["logical_cores"] == psutil.cpu_count(logical=True)
    assert len(d["fingerprint"]) == 16
    int(d["fingerprint"], 16)
    if _expected_quota_here() is None:
        assert d["cgroup_quota"] is None
        assert d["usable_cores"] == len(os.sched_getaffinity(0))
        assert "no container quota" in d["summary"]
    # The record read back is the same host.
    assert Host.from_dict(d).fingerprint() == d["fingerprint"]


@pytest.mark.timeout(60)
def test_hw_table_shows_summary_and_fingerprint(tuner_cmd: list[str], clean_env: dict[str, str]) -> None:
    out = _hw(tuner_cmd, clean_env)
    host = probe()
    first = out.splitlines()[0]
    # Available memory moves between the two probes; everything before it must match exactly.
    assert first.split(" · ")[0] == host.summary().split(" · ")[0]
    assert " · Python " in first
    assert host.fingerprint() in out
    for label in ("usable cores", "physical cores", "CPU", "memory total", "BLAS", "GPUs"):
        assert label in out


@pytest.mark.timeout(60)
@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset is not installed")
def test_taskset_one_core_gives_one_usable_core(tuner_cmd: list[str], clean_env: dict[str, str]) -> None:
    cpu = min(os.sched_getaffinity(0))
    d = json.loads(_hw(tuner_cmd, clean_env, "--json", prefix=("taskset", "-c", str(cpu))))
    assert d["affinity_cores"] == 1
    assert d["usable_cores"] == 1
    assert d["summary"].startswith("1 usable core (")


def test_cgroup_v2_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    quota = cgroup_cpu_quota(tmp_path, NO_PROC_CGROUP)
    assert quota == 1.5
    assert usable_cores(4, quota) == 2
    assert usable_cores(1, quota) == 1  # affinity is tighter than the quota

    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(tmp_path, NO_PROC_CGROUP) is None
    assert usable_cores(4, None) == 4


def test_cgroup_v2_quota_of_own_cgroup_and_ancestors(tmp_path: Path) -> None:
    # A quota on the process's own cgroup counts, and so does a tighter one on a parent.
    own = tmp_path / "kubepods" / "pod1"
    own.mkdir(parents=True)
    (own / "cpu.max").write_text("300000 100000\n")
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text("0::/kubepods/pod1\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 3.0
    (tmp_path / "kubepods" / "cpu.max").write_text("200000 100000\n")
    assert cgroup_cpu_quota(tmp_path, proc) == 2.0


def test_cgroup_v1_quota(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu,cpuacct"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("250000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    quota = cgroup_cpu_quota(tmp_path, NO_PROC_CGROUP)
    assert quota == 2.5
    assert usable_cores(4, quota) == 3  # rounded up

    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path, NO_PROC_CGROUP) is None


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path, NO_PROC_CGROUP) is None
    (tmp_path / "cpu.max").write_text("garbage\n")
    assert cgroup_cpu_quota(tmp_path, NO_PROC_CGROUP) is None


def test_fingerprint_is_stable_and_ignores_available_memory() -> None:
    a, b = probe(), probe()
    assert a.fingerprint() == b.fingerprint()
    assert a.differences(b) == []
    busy = dataclasses.replace(a, memory_available_bytes=a.memory_available_bytes // 3, cpu_freq_mhz=1.0)
    assert busy.fingerprint() == a.fingerprint()
    assert busy.summary() != a.summary()


def test_round_trip_through_json() -> None:
    host = probe()
    back = Host.from_dict(json.loads(json.dumps(host.to_dict())))
    assert back == host
    assert back.fingerprint() == host.fingerprint()


def test_differences_name_what_changed() -> None:
    here = probe()
    profile_host = dataclasses.replace(
        here,
        usable_cores=here.usable_cores + 6,
        platform="darwin" if here.platform != "darwin" else "linux",
        memory_total_bytes=here.memory_total_bytes + 64 * GIB,
        blas=[{"internal_api": "mkl", "version": "2024.1", "num_threads": 8}],
    )
    assert profile_host.fingerprint() != here.fingerprint()
    diffs = profile_host.differences(here.to_dict())  # a profile's host arrives as a dict
    assert (
        f"profile measured on {here.usable_cores + 6} usable cores, this host has {here.usable_cores}"
        in diffs
    )
    assert f"platform {profile_host.platform} vs {here.platform}" in diffs
    assert any(d.startswith("BLAS mkl 2024.1 vs ") for d in diffs)
    assert any("GiB of memory" in d for d in diffs)
    assert len(diffs) == 4


def test_from_dict_names_missing_fields() -> None:
    from tuner.errors import BadInput

    d = probe().to_dict()
    del d["usable_cores"]
    with pytest.raises(BadInput, match="usable_cores"):
        Host.from_dict(d)


def test_gpus_from_nvidia_smi_and_none_when_it_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA A100-SXM4-40GB, 40960 MiB'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    host = probe()
    assert host.gpus == ["NVIDIA A100-SXM4-40GB (40960 MiB)"]
    assert host.summary().endswith("1 GPU: NVIDIA A100-SXM4-40GB (40960 MiB)")

    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert probe().gpus == []


@pytest.mark.timeout(60)
def test_fingerprint_ignores_other_packages_blas() -> None:
    """numpy's BLAS is the host's: a process that also loaded scipy (scikit-learn does) has a second
    OpenBLAS, and must still fingerprint the same, or every runtime there says "another host"."""
    pytest.importorskip("scipy.linalg", reason="scipy is not installed")
    code = "import {0}; from tuner.hardware import probe; print(probe().fingerprint())"
    plain, with_scipy = (
        subprocess.run([sys.executable, "-c", code.format(m)], capture_output=True, text=True, timeout=60)
        for m in ("numpy", "scipy.linalg")
    )
    assert plain.returncode == 0 and with_scipy.returncode == 0, plain.stderr + with_scipy.stderr
    assert plain.stdout.strip() == with_scipy.stdout.strip()
