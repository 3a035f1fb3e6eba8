"""Helpers for the runtime tests: profiles written through :mod:`tuner.profile`'s own models and saver."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tuner.hardware import Host
from tuner.profile import (
    Autoscale,
    Evidence,
    HostInfo,
    ModelRef,
    PlatformOverrides,
    Recommended,
    RecommendedOverride,
    ScalingProfile,
    save_profile,
)

HERE = Path(__file__).resolve().parent


def host_info(host: Host, **changes: Any) -> HostInfo:
    """The profile record of ``host``; ``changes`` (e.g. usable_cores=8) make it another machine."""
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
    if changes:
        changes.setdefault("fingerprint", "0000000000000000")
        info = info.model_copy(update=changes)
    return info


def write_profile(
    path: Path,
    host: HostInfo,
    *,
    spec: str = "builtin:sleep",
    autoscale: dict[str, Any] | None = None,
    platforms: dict[str, dict[str, Any]] | None = None,
    **recommended: Any,
) -> Path:
    """Save a valid profile for ``spec`` measured on ``host``; keyword arguments set ``recommended``."""
    rec: dict[str, Any] = {"backend": "thread", "workers": 1, "threads_per_worker": 1, "partition_size": 8}
    rec.update(recommended)
    auto: dict[str, Any] = {"min_workers": 1, "max_workers": max(1, rec["workers"])}
    auto.update(autoscale or {})
    profile = ScalingProfile(
        schema_version=1,
        name="test",
        created=datetime.now(timezone.utc),
        tool_version="0.1.0",
        model=ModelRef(spec=spec),
        host=host,
        recommended=Recommended(**rec),
        autoscale=Autoscale(**auto),
        platforms=PlatformOverrides(**{k: RecommendedOverride(**v) for k, v in platforms.items()})
        if platforms
        else None,
        evidence=Evidence(throughput=1000.0),
    )
    return save_profile(profile, path)


def model_spec(name: str) -> str:
    """A file spec for a model in sample_models.py (works in worker processes too)."""
    return f"{HERE / 'sample_models.py'}:{name}"
