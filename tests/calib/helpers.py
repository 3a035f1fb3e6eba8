"""Recorded calibrations and synthetic trials for the host-speed tests (no processes)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tuner.bench.types import OutsideLoad, TrialConfig, TrialResult
from tuner.calibrate import Calibration, KernelScore

#: A real calibration of the 2-core dev VM (tests/benchmarks/calibration.py's host), 5 s budget,
#: quiet (1% outside load): the first of a fresh process, whose all-core blas and memory scores
#: read low there (×1.35 and ×1.24 on 2 cores; later calibrations give ×1.9 and ×1.6) — as the
#: first calibration of a sweep or a gate, both fresh processes, would.
RECORDED = Path(__file__).parent / "data" / "dev_host.json"


def recorded() -> Calibration:
    """The dev VM's calibration, as the profile stores it."""
    return Calibration.from_dict(json.loads(RECORDED.read_text()))


def scaled(cal: Calibration, **factors: float) -> Calibration:
    """``cal`` on a host whose kernels run ``factors`` times as fast (python=0.7: 30% slower)."""

    def times(s: KernelScore | None, f: float) -> KernelScore | None:
        return None if s is None else replace(s, score=s.score * f, ci=(s.ci[0] * f, s.ci[1] * f))

    scores = {
        k: {m: times(s, factors.get(k, 1.0)) for m, s in modes.items()} for k, modes in cal.scores.items()
    }
    return replace(cal, scores=scores)


def slower(cal: Calibration, factor: float) -> Calibration:
    """Every kernel ``factor`` times as fast."""
    return scaled(cal, python=factor, blas=factor, memory=factor)


def trial(
    throughput: float,
    *,
    backend: str = "process",
    workers: int = 2,
    threads: int = 1,
    cpu_share: float = 0.95,
    spread: float = 0.02,
    outside: float = 0.01,
    contaminated: bool = False,
    p99: float = 10.0,
) -> TrialResult:
    """One measured trial: ``spread`` is its CI's half-width, relative."""
    n = 3
    return TrialResult(
        config=TrialConfig(backend, workers, threads, 64),
        throughput=throughput,
        throughput_ci=(throughput * (1 - spread), throughput * (1 + spread)),
        latency_ms={"p50": p99 / 2, "p99": p99},
        latency_ci_ms={"p99": (p99 * 0.95, p99 * 1.05)},
        service_ms={},
        cpu_share=cpu_share,
        peak_rss_mb={},
        stable=True,
        windows=[throughput] * n,
        warmup_s=0.5,
        cold_start_s=0.3,
        measured_s=float(n),
        items=int(throughput * n),
        contaminated=contaminated,
        outside=OutsideLoad(
            cpu=outside, cpu_max=outside, steal=0.0, swap_mb_s=0.0, windows=[outside] * n, limit=0.25
        ),
    )
