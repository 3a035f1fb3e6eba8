"""Seeded, deterministic stand-ins for the TUI's tests and snapshots: a frozen host and load, a
fake sweep with the real Sweep's API, and demo data fed straight to the run view's handlers."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from tuner.bench.types import (
    EngineNote,
    OutsideLoad,
    SweepFinished,
    SweepMessage,
    TrialConfig,
    TrialFinished,
    TrialPhase,
    TrialResult,
    TrialStarted,
    WindowMeasured,
)
from tuner.engine.faults import FaultPlan
from tuner.errors import ModelSpecError
from tuner.hardware import Host
from tuner.tui.messages import ModelChecked, SweepBatch, SweepResults
from tuner.tui.widgets.hostbar import Load

GIB = 1024**3
FROZEN_HOST = Host(
    logical_cores=2,
    physical_cores=2,
    affinity_cores=2,
    cgroup_quota=None,
    usable_cores=2,
    cpu_model="AMD EPYC",
    cpu_freq_mhz=2596.0,
    memory_total_bytes=24 * GIB,
    memory_available_bytes=int(23.4 * GIB),
    platform="linux",
    machine="x86_64",
    python="3.11.7",
    numpy="2.4.6",
    blas=[{"internal_api": "openblas", "version": "0.3.31.188.0", "num_threads": 2}],
    gpus=[],
)
FROZEN_LOAD = Load((63.0, 41.0), int(9.1 * GIB), 24 * GIB, outside=0.12)
FIXED_CLOCK = 1_700_000_000.0  # a fixed wall time: log timestamps do not change between runs


def frozen_sampler() -> Load:
    return FROZEN_LOAD


def fixed_clock() -> float:
    return FIXED_CLOCK


@dataclass
class FakeInfo:
    """Looks like tuner.models.ModelInfo to the app."""

    spec: str
    description: str = "numpy float32 MLP 256-1024-1024-10 (ReLU)"
    item: str = "float32[256]"
    bound: str = "blas"
    load_s: float = 0.012
    kind: str = "factory"


def fake_validator(spec: str) -> FakeInfo:
    """Accepts builtin:* specs; anything else fails like the real one, in one line."""
    if not spec.startswith("builtin:") or spec.split(":", 1)[1] not in ("mlp", "pyloop", "sleep"):
        raise ModelSpecError(f"{spec}: no such model (builtin: mlp, pyloop, sleep)")
    return FakeInfo(spec)


CONFIGS = [
    TrialConfig("process", 1, 1, 64),
    TrialConfig("process", 2, 1, 64),
    TrialConfig("process", 2, 1, 16),
    TrialConfig("process", 2, 1, 256),
    TrialConfig("process", 1, 2, 64),
    TrialConfig("process", 2, 2, 64),
    TrialConfig("process", 1, 1, 256),
]


#: the default deployment (tuner.bench.defaults): in the caller, then in one worker process
DEFAULTS = [
    ("default", TrialConfig("inline", 1, None, 2048)),
    ("default-worker", TrialConfig("process", 1, None, 2048)),
]


def _outside(k: int, busy: bool) -> float:
    """A seeded host: 3-5% of the cores busy elsewhere, and one window at 41% when ``busy``."""
    return 0.41 if busy else 0.03 + 0.01 * (k % 3)


#: The demo trials during which another process took the host for a moment (one window discarded).
BUSY_TRIALS = (3,)
BUSY_REASON = "outside load 41% of 2 cores (limit 25%)"


def _result(
    c: TrialConfig, rng: random.Random, windows: list[float], faults: FaultPlan | None, busy: bool = False
) -> TrialResult:
    thr = sorted(windows)[len(windows) // 2]
    p99 = 1000 * c.partition_size / thr * c.workers * (1.6 + 0.2 * rng.random())
    unstable = c.partition_size == 16
    threads = 2 if c.threads_per_worker is None else c.threads_per_worker  # None: the framework's own
    over = c.threads_per_worker is not None and c.workers * threads > 2
    faults_seen = {"crash": 3, "timeout": 1} if faults is not None and faults.active else {}
    return TrialResult(
        config=c,
        throughput=thr,
        throughput_ci=(thr * 0.98, thr * 1.02),
        latency_ms={"p50": p99 * 0.45, "p90": p99 * 0.7, "p95": p99 * 0.8, "p99": p99},
        latency_ci_ms={"p99": (p99 * 0.9, p99 * 1.1)},
        service_ms={"p50": p99 * 0.3, "p99": p99 * 0.6, "p999": p99 * 0.7, "max": p99},
        cpu_share=min(1.0, 0.48 * c.workers * threads),
        peak_rss_mb={"per_worker": 92.0, "total": 92.0 * c.workers},
        stable=not unstable,
        windows=windows,
        warmup_s=0.4,
        cold_start_s=0.31,
        measured_s=len(windows) * 1.0,
        items=int(thr * len(windows)),
        failures={},
        faults_seen=faults_seen,
        retries=sum(faults_seen.values()),
        faults=str(faults) if faults_seen else None,
        clean_throughput=thr * 1.08 if faults_seen else None,
        feasible=not over,
        infeasible_reasons=["p99 exceeds the 20 ms budget"] if over else [],
        outside=OutsideLoad(
            cpu=0.04,
            cpu_max=0.41 if busy else 0.05,
            steal=0.0,
            swap_mb_s=0.0,
            windows=[_outside(k, busy and k == 1) for k in range(len(windows))],
            limit=0.25,
        ),
        discarded_windows=[1] if busy else [],
    )


def trial_messages(
    i: int, c: TrialConfig, rng: random.Random, planned: int, faults: FaultPlan | None = None, role: str = ""
) -> list[SweepMessage]:
    """What a sweep says while measuring one configuration: warm-up, windows, notes, the end."""
    threads = 2 if c.threads_per_worker is None else c.threads_per_worker  # None: the framework's own (2 cores)
    base = (
        24000.0
        * c.workers
        / (1.0 + 0.35 * (threads - 1) * c.workers)
        * (c.partition_size / (c.partition_size + 12))
    )
    out: list[SweepMessage] = [
        TrialStarted(i, c, planned),
        TrialPhase(i, "warmup", "workers starting, model loading"),
    ]
    t = 0.0
    for k in range(3):
        t += 0.3
        out.append(WindowMeasured(i, t, "warmup", base * (0.35 + 0.2 * k), 1.2, 2.0, 2.6 + k))
    out.append(TrialPhase(i, "measuring", "windows of 1 s until 3 agree within 5%"))
    windows: list[float] = []
    busy = i in BUSY_TRIALS
    for k in range(5):
        t += 1.0
        thr = base * (1 + 0.03 * (rng.random() - 0.5))
        windows.append(thr)
        p50 = 1000 * c.partition_size / thr * c.workers * 0.5
        hit = busy and k == 1
        out.append(
            WindowMeasured(
                i, t, "measuring", thr, p50, p50 * 1.7, p50 * 2.1, _outside(k, hit), BUSY_REASON if hit else None
            )
        )
    if faults is not None and faults.active:
        out.append(
            EngineNote(
                i,
                t - 2.5,
                f"worker 2 (pid {41870 + i}) crashed: exit 1 (injected) — partition {118 + i} retried, attempt 2/4",
                "warning",
            )
        )
        out.append(
            EngineNote(
                i,
                t - 1.2,
                f"partition {131 + i} timed out after 0.25 s — worker 1 terminated, replaced in 0.31 s, retried",
                "warning",
            )
        )
    stable = c.partition_size != 16
    out.append(
        TrialPhase(
            i,
            "stable" if stable else "unstable",
            "stable: 3 windows within 5%" if stable else "unstable: windows disagree by 9% at the time cap",
        )
    )
    result = _result(c, rng, windows, faults, busy)
    result.role = role
    out.append(TrialFinished(i, result))
    return out


def demo_messages(
    n_trials: int = 6, seed: int = 7, faults: FaultPlan | None = None, finished: bool = True
) -> list[SweepMessage]:
    """The default deployment's two trials, then ``n_trials`` of the search (and the next one in
    progress when ``finished`` is False) — as a real sweep measures them."""
    rng = random.Random(seed)
    out: list[SweepMessage] = []
    results: list[TrialResult] = []
    planned = len(CONFIGS) + len(DEFAULTS)
    for i, (role, c) in enumerate(DEFAULTS):
        msgs = trial_messages(i, c, rng, planned, role=role)
        out += msgs
        last = msgs[-1]
        assert isinstance(last, TrialFinished)
        results.append(last.result)
    for j in range(n_trials):
        i = j + len(DEFAULTS)
        msgs = trial_messages(i, CONFIGS[j % len(CONFIGS)], rng, planned, faults if j >= 2 else None)
        out += msgs
        last = msgs[-1]
        assert isinstance(last, TrialFinished)
        results.append(last.result)
    if finished:
        out.append(SweepFinished(results, False, 41.0))
    else:
        # The next trial, caught mid-measurement: the view a person sees most of the time.
        nxt = trial_messages(n_trials + len(DEFAULTS), CONFIGS[n_trials % len(CONFIGS)], rng, planned, faults)
        out += nxt[:-3]
    return out


async def feed(app: Any, pilot: Any, messages: list[SweepMessage], *, recommend: bool = True) -> None:
    """Hand seeded sweep messages to the run view exactly as its sweep's relay would, then settle."""
    from tuner.tui.widgets.run import RunPane
    from tuner.tui.widgets.setup import SetupForm

    app.values = app.query_one(SetupForm).read()
    run = app.query_one(RunPane)
    run.begin(app.values, started_at=FIXED_CLOCK - 42.0)
    run.post_message(SweepBatch(messages))
    await pilot.pause()
    app.flush_charts()  # the charts' refresh timer, run now: snapshots must not race it
    await pilot.pause()
    fin = [m for m in messages if isinstance(m, SweepFinished)]
    if fin and recommend:
        from tuner.bench.recommend import recommend as real_recommend
        from tuner.bench.types import Objective

        rec = real_recommend(fin[0].results, Objective(), FROZEN_HOST)
        app.post_message(SweepResults(rec, fin[0].results))
    await pilot.pause()


class FakeSweep:
    """The real Sweep's API over seeded messages; checks ``cancel`` between messages."""

    def __init__(self, n_trials: int, on_message: Any, delay_s: float = 0.01) -> None:
        self.n_trials = n_trials
        self.on_message = on_message
        self.delay_s = delay_s
        self.host = FROZEN_HOST
        self.info = FakeInfo("builtin:mlp")
        self.space = None
        self.faults: FaultPlan | None = None
        self.fault_changes: list[FaultPlan | None] = []

    def set_faults(self, plan: FaultPlan | None) -> None:
        self.faults = plan
        self.fault_changes.append(plan)

    def run(self, cancel: threading.Event) -> list[TrialResult]:
        rng = random.Random(3)
        results: list[TrialResult] = []
        t0 = time.monotonic()
        interrupted = False
        for i in range(self.n_trials):
            for m in trial_messages(i, CONFIGS[i % len(CONFIGS)], rng, self.n_trials, self.faults):
                if cancel.wait(self.delay_s):
                    interrupted = True
                    break
                if isinstance(m, TrialFinished):
                    results.append(m.result)
                self.on_message(m)
            if interrupted:
                break
        self.on_message(SweepFinished(results, interrupted, time.monotonic() - t0))
        return results


class FakeDriver:
    """Drives the app with :class:`FakeSweep` (no processes): for flow tests of the UI alone."""

    def __init__(self, n_trials: int = 3, delay_s: float = 0.01) -> None:
        self.n_trials = n_trials
        self.delay_s = delay_s
        self.sweeps: list[FakeSweep] = []

    def make_sweep(self, values: Any, on_message: Any, host: Any, info: Any) -> tuple[FakeSweep, Any]:
        fake_validator(values.model)
        s = FakeSweep(self.n_trials, on_message, self.delay_s)
        s.faults = values.faults if values.faults.active else None
        self.sweeps.append(s)
        return s, None

    def recommend(self, results: list[TrialResult], objective: Any, host: Any) -> Any:
        from tuner.bench.recommend import recommend

        return recommend(results, objective, host)

    def build_profile(self, rec: Any, name: str, request: Any, host: Any, info: Any, online: Any = None) -> Any:
        raise NotImplementedError("export is tested with the real driver")


__all__ = [
    "FROZEN_HOST",
    "FakeDriver",
    "ModelChecked",
    "demo_messages",
    "feed",
    "fixed_clock",
    "frozen_sampler",
]
