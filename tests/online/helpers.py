"""Synthetic profiles with an ``online:`` section, built through tuner.profile's own models."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tuner.profile import (
    Autoscale,
    Evidence,
    HostInfo,
    ModelRef,
    Online,
    OnlineCandidate,
    OnlineStep,
    PeakRss,
    Recommended,
    ScalingCurve,
    ScalingPoint,
    ScalingProfile,
    save_profile,
)


def usl(n: float, lam: float, sigma: float, kappa: float) -> float:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def host(usable: int = 4, memory_gb: float = 16.0, fingerprint: str = "feedfacefeedface") -> HostInfo:
    return HostInfo(
        fingerprint=fingerprint, summary=f"{usable} usable cores", usable_cores=usable, logical_cores=usable,
        memory_total_gb=memory_gb, cpu_model="Test CPU", platform="linux", machine="x86_64",
    )  # fmt: skip


def online(
    *,
    backend: str = "process",
    workers: int = 4,
    max_rate: float = 1000.0,
    objective: float = 50.0,
    scaling: dict[int, list[float]] | None = None,
    candidates: list[dict[str, Any]] | None = None,
    curve: list[tuple[float, float, bool]] | None = None,
    **extra: Any,
) -> Online:
    """An online section; ``curve`` is (rate, p99_ms, keeps_up); ``scaling`` maps workers to window items/s."""
    pts = [
        ScalingPoint(workers=n, throughput=sorted(w)[len(w) // 2], windows=w)
        for n, w in sorted((scaling or {}).items())
    ]
    steps = [
        OnlineStep(rate=r, offered=r, achieved=r if k else r * 0.8, p50_ms=p / 3, p99_ms=p, keeps_up=k,
                   sustainable=k and p <= objective)
        for r, p, k in (curve or [(max_rate / 2, objective / 4, True), (max_rate, objective * 0.8, True),
                                  (max_rate * 1.1, objective * 2, False)])
    ]  # fmt: skip
    fields: dict[str, Any] = dict(
        objective_p99_ms=objective, arrivals="poisson", request_size="1", step_s=2.0, backend=backend,
        workers=workers, threads_per_worker=1, max_batch_size=16, max_batch_delay_ms=2.0, max_pending=64,
        max_rate_at_slo=max_rate, max_rate_ci=(max_rate * 0.95, max_rate * 1.05), p99_at_max_ms=objective * 0.8,
        curve=steps,
        candidates=[OnlineCandidate(**c) for c in (candidates or [])],
        scaling=ScalingCurve(backend=backend, threads_per_worker=1, points=pts) if pts else None,
    )  # fmt: skip
    fields.update(extra)
    return Online(**fields)


def profile(
    sec: Online | None, *, usable: int = 4, memory_gb: float = 16.0, rss_mb: float = 100.0, **rec: Any
) -> ScalingProfile:
    recd: dict[str, Any] = {"backend": "process", "workers": 4, "threads_per_worker": 1, "partition_size": 16}
    recd.update(rec)
    return ScalingProfile(
        schema_version=1, name="synthetic", created=datetime(2025, 1, 1, tzinfo=timezone.utc), tool_version="0.1.0",
        model=ModelRef(spec="builtin:sleep"), host=host(usable, memory_gb), recommended=Recommended(**recd),
        autoscale=Autoscale(min_workers=1, max_workers=max(8, recd["workers"])),
        evidence=Evidence(throughput=1000.0, peak_rss_mb=PeakRss(per_worker=rss_mb, total=rss_mb * recd["workers"])),
        online=sec,
    )  # fmt: skip


def write(path: Path, p: ScalingProfile) -> Path:
    return save_profile(p, path)
