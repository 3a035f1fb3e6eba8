"""from_profile: host check (same / different / strict), platform overrides, overrides, no code on load."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.errors import ConfigError, ProfileError
from tuner.hardware import Host
from tuner.profile import load_profile, normalise_platform
from tuner.runtime import Runtime, adapt_to_host, pending_bound

from .helpers import host_info, write_profile

WARN = "tuner.runtime"


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == WARN and r.levelno >= logging.WARNING]


@pytest.mark.timeout(30)
def test_same_host_applies_everything_silently(
    tmp_path: Path, this_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host),
        workers=1,
        partition_size=16,
        timeout_s=1.5,
        retries=5,
        retry_on=["ConnectionError"],
        backoff={"base_s": 0.01, "cap_s": 0.5},
        memory_limit_mb=900.0,
        max_batch_delay_ms=7.0,
        autoscale={"min_workers": 1, "max_workers": 1, "target_backlog_per_worker": 3.0},
    )
    caplog.set_level(logging.INFO, logger=WARN)
    rt = Runtime.from_profile(path)
    assert not _warnings(caplog)
    s = rt.settings
    assert (s.backend, s.workers, s.threads_per_worker, s.partition_size) == ("thread", 1, 1, 16)
    assert (s.timeout_s, s.retries, s.retry_on, s.max_batch_delay_s) == (1.5, 5, ("ConnectionError",), 0.007)
    c = rt.engine_config  # what the engine is actually given
    assert c.backoff.base_s == 0.01 and c.backoff.cap_s == 0.5 and c.memory_limit_mb == 900.0
    assert c.timeout_s == 1.5 and c.retry_on == ("ConnectionError",)
    assert s.autoscale is not None and s.autoscale.target_backlog_per_worker == 3.0
    with rt:
        assert list(rt.map([1, 2, 3])) == [2, 4, 6]


@pytest.mark.timeout(30)
def test_other_host_warns_one_line_and_adapts_to_usable_cores(
    tmp_path: Path, this_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    here = this_host.usable_cores
    big = here * 4
    path = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host, usable_cores=big, cpu_model="Imaginary CPU 9000"),
        spec="builtin:mlp",
        backend="process",
        workers=big,
        threads_per_worker=1,
        autoscale={"min_workers": 2, "max_workers": big},
    )
    caplog.set_level(logging.INFO, logger=WARN)
    rt = Runtime.from_profile(path)
    warnings = _warnings(caplog)
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "\n" not in line
    assert f"profile measured on {big} usable cores, this host has {here}" in line
    assert "Imaginary CPU 9000" in line
    assert f"workers {big}→{here}" in line  # how it adapted
    s = rt.settings
    assert s.workers == here and s.workers * (s.threads_per_worker or 1) <= here
    assert s.autoscale is not None and s.autoscale.max_workers == here
    assert s.autoscale.min_workers <= s.workers <= s.autoscale.max_workers


@pytest.mark.timeout(30)
def test_strict_refuses_another_host(tmp_path: Path, this_host: Host) -> None:
    path = write_profile(tmp_path / "p.yaml", host_info(this_host, usable_cores=this_host.usable_cores + 6))
    with pytest.raises(ProfileError, match=r"measured on another host .*usable cores.*strict"):
        Runtime.from_profile(path, strict=True)
    Runtime.from_profile(write_profile(tmp_path / "same.yaml", host_info(this_host)), strict=True)


def test_adaptation_rules() -> None:
    from tuner.runtime import AutoscaleSettings, RuntimeSettings

    cpu = RuntimeSettings(workers=4, threads_per_worker=2, autoscale=AutoscaleSettings(2, 4))
    s, changes = adapt_to_host(cpu, measured_cores=8, usable=2)
    assert (s.workers, s.threads_per_worker) == (1, 2) and s.autoscale == AutoscaleSettings(1, 1)
    assert changes
    s, _ = adapt_to_host(cpu, measured_cores=8, usable=32)
    # A bigger host: start as measured, let the autoscaler grow into the cores.
    assert (s.workers, s.threads_per_worker) == (4, 2) and s.autoscale is not None
    assert s.autoscale.max_workers == 16
    io = RuntimeSettings(
        backend="thread", workers=16, threads_per_worker=1, autoscale=AutoscaleSettings(8, 16)
    )
    s, changes = adapt_to_host(io, measured_cores=2, usable=1)
    # Oversubscribed on purpose (I/O-bound): cores do not bound it, so the workers are kept.
    assert s.workers == 16 and not changes


@pytest.mark.timeout(30)
def test_platform_override_for_this_os_is_merged(tmp_path: Path, this_host: Host) -> None:
    here = normalise_platform(sys.platform)
    assert here is not None
    other = "windows" if here != "windows" else "linux"
    path = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host),
        partition_size=8,
        retries=2,
        platforms={here: {"partition_size": 32, "backoff": {"cap_s": 5.0}}, other: {"retries": 9}},
    )
    rt = Runtime.from_profile(path)
    assert rt.settings.partition_size == 32  # this OS's override
    assert rt.settings.backoff_cap_s == 5.0 and rt.settings.backoff_base_s == 0.05  # merged, not replaced
    assert rt.settings.retries == 2  # the other OS's override is not applied


def test_overrides_win_and_unknown_ones_are_refused(tmp_path: Path, this_host: Host) -> None:
    path = write_profile(tmp_path / "p.yaml", host_info(this_host), workers=1)
    rt = Runtime.from_profile(path, workers=3, partition_size=5)
    assert rt.settings.workers == 3 and rt.settings.partition_size == 5
    assert rt.settings.autoscale is not None and rt.settings.autoscale.max_workers >= 3
    with pytest.raises(ConfigError, match="unknown runtime setting"):
        Runtime.from_profile(path, wrokers=3)


SIDE_EFFECT_MODEL = """
from pathlib import Path
Path(__file__).with_name("imported.marker").write_text("imported")

def predict(partition):
    return [x + 1 for x in partition]
"""


@pytest.mark.timeout(60)
def test_loading_a_profile_never_imports_its_model(
    tmp_path: Path, this_host: Host, tuner_cmd: list[str]
) -> None:
    (tmp_path / "sidefx.py").write_text(SIDE_EFFECT_MODEL)
    marker = tmp_path / "imported.marker"
    path = write_profile(tmp_path / "p.yaml", host_info(this_host), spec=f"{tmp_path / 'sidefx.py'}:predict")

    load_profile(path)
    check = subprocess.run([*tuner_cmd, "check", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    rt = Runtime.from_profile(path)
    assert not marker.exists(), "load_profile / tuner check / from_profile ran the model's module"

    with rt:  # only building the model imports it
        assert marker.exists()
        assert list(rt.map([1, 2])) == [2, 3]


@pytest.mark.timeout(30)
def test_host_differences_come_from_hardware_in_one_line(
    tmp_path: Path, this_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    """The runtime names differences with Host.differences (one comparison for tuner), one line."""
    gb = this_host.memory_total_bytes / 1e9
    path = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host, memory_total_gb=round(gb * 4 + 16, 1), blas="mkl 2024.1.0"),
    )
    caplog.set_level(logging.INFO, logger=WARN)
    Runtime.from_profile(path)
    (warning,) = _warnings(caplog)
    line = warning.getMessage()
    assert "\n" not in line
    assert "GiB of memory" in line and "BLAS mkl 2024.1.0 vs" in line
    assert "usable cores" not in line and "CPU" not in line, "only what differs"


@pytest.mark.timeout(30)
def test_a_recorded_blas_in_its_short_form_is_not_a_difference(
    tmp_path: Path, this_host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    from tuner.bench.profiles import _blas

    path = write_profile(tmp_path / "p.yaml", host_info(this_host, blas=_blas(this_host)))
    caplog.set_level(logging.INFO, logger=WARN)
    Runtime.from_profile(path)  # fingerprint differs (helpers zero it), facts do not
    (warning,) = _warnings(caplog)
    assert "BLAS" not in warning.getMessage() and "host fingerprint" in warning.getMessage()


@pytest.mark.timeout(30)
def test_profile_backpressure_is_applied_and_old_profiles_default(tmp_path: Path, this_host: Host) -> None:
    path = write_profile(tmp_path / "p.yaml", host_info(this_host), max_pending=512, overload="reject")
    rt = Runtime.from_profile(path)
    assert (rt.settings.max_pending, rt.settings.overload) == (512, "reject")
    assert rt.stats().max_pending == 512
    old = write_profile(tmp_path / "old.yaml", host_info(this_host), partition_size=8)
    # A first-wave profile has neither field.
    lines = [
        x for x in old.read_text().splitlines() if not x.strip().startswith(("max_pending:", "overload:"))
    ]
    old.write_text("\n".join(lines) + "\n")
    rt = Runtime.from_profile(old)
    assert rt.settings.max_pending is None and rt.settings.overload == "block"
    assert rt.stats().max_pending == pending_bound(rt.settings) > 0
