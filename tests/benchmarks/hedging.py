"""Hedged stragglers under open-loop load: the same arrivals and stragglers, hedging off and on, in one run.

Run: ``.venv/bin/python tests/benchmarks/hedging.py [--repeats 3] [--seconds 8] [--workers 8] [--load 0.4]
[--variants off,5%,10%,5%-kill]``
Smoke: ``.venv/bin/python tests/benchmarks/hedging.py --smoke`` — 2 workers, one 0.5 s calibration run,
one repeat of 1 s with ``off,5%,5%-kill``: checks the script runs; its figures mean nothing.

**The load.** A model whose partition takes 10 ms, asleep (``_models.nap``: like a call to an
accelerator or a remote service, so the host's other work moves it little), served by
``Runtime.submit`` — the deployed path — on ``--workers`` process workers, one request per partition
(``partition_size=1``, no batching delay). Requests arrive open-loop, Poisson at a fixed rate
(``--load`` × the pool's capacity with the stragglers), sent by tuner's own open-loop generator
(``tuner.bench.online``: an absolute schedule fixed before the step, latency from each request's
*intended* send time, so a stall shows in every request scheduled during it; the generator reports
when it fell behind). Stragglers are injected with ``--faults slow=0.05x10`` (5% of partition
attempts take 10× as long, seeded: the same requests straggle in every variant).

**The hedge delay** is what a profile would record: the p95 service time of calibration runs
at the same rate, without faults or hedging (the median of three, as one host stall moves a p95) (``tuner bench`` measures the service time the same
way, inside the worker). The engine adds the round trip it measures on top (see
``tuner.engine.hedging``).

**Variants**, each a fresh runtime on the same schedule and fault seed, alternating order per repeat:
``off`` (the baseline), ``5%`` (hedging with the default budget), ``10%`` (a budget of 10%),
``5%-kill`` (the default budget, but a straggling first copy that lost is killed and its worker
replaced instead of finishing: the other way to cancel a loser, measured to justify the default; set
on the engine's config, a measurement-only switch).

**What to expect from the arithmetic.** The budget earns 0.05 of a hedge per partition completed
unhedged, so at most ~4.75% of partitions (+ the burst of 4) can be hedged, while ``slow=0.05``
makes ~5% of them stragglers (5-6.5% in a given seeded run) — and a p99 only drops once fewer than
1% of requests are left slow. At the default budget the straggler rate of the issue's target is
just out of reach by construction; ``--faults slow=0.02x10`` shows the default budget against a
straggler rate below it, and the ``10%`` variant the same straggler rate with room in the budget.

**Printed**, per variant, medians over ``--repeats``: request latency p50 / p99 / p99.9 (ms, the one
definition of ``tuner.stats``), hedges sent / partitions completed (the duplicate work), hedges won,
workers restarted; then the p99 ratio off / variant (median of the per-repeat ratios: each pair
shares its schedule and its host's mood). Target (issue 10): p99 at least 2× lower with hedging,
duplicate work <= 5%.

The host is shared with other work while this runs: say so with any figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

MODEL = f"{REPO / 'tests' / 'benchmarks' / '_models.py'}:nap"
SERVICE_S = 0.010  # _models.nap
DRAIN_S = 30.0  # how long to wait for the last requests after the schedule's end
OBJECTIVE_MS = 50.0  # the step's p99 objective (its verdict and drain allowance; not a target here)
ITEMS = list(range(1000))  # request payloads, cycled (the model returns them)


@dataclasses.dataclass
class Variant:
    name: str
    budget: float | None  # None: no hedging
    cancel: str = "finish"


VARIANTS = {
    "off": Variant("off", None),
    "5%": Variant("5%", 0.05),
    "10%": Variant("10%", 0.10),
    "5%-kill": Variant("5%-kill", 0.05, "kill"),
}


def schedule(rate: float, seconds: float, seed: int) -> Any:
    """Poisson arrivals at ``rate`` for ``seconds``, seeded (the online load generator's schedule)."""
    from tuner.bench.online.schedule import make_schedule

    return make_schedule("poisson", rate, seconds, seed=seed)


def run(
    variant: Variant, sched: Any, workers: int, faults: str | None, hedge_after_s: float | None
) -> dict[str, Any]:
    """One runtime, one open-loop step of ``sched`` through ``Runtime.submit`` (tuner.bench.online's
    generator: latency from the intended send time), and the runtime's counters."""
    from tuner.bench.online.step import run_step
    from tuner.engine import events as ev
    from tuner.runtime import Runtime
    from tuner.stats import percentiles

    service: list[float] = []
    restarts: list[float] = []

    def on_event(e: Any) -> None:
        if isinstance(e, ev.PartitionFinished):
            service.append(e.service_s)
        elif isinstance(e, ev.WorkerStarted) and e.replacing is not None:
            restarts.append(e.load_s)

    rt = Runtime(
        MODEL,
        backend="process",
        workers=workers,
        partition_size=1,
        max_batch_delay_ms=0.0,
        max_pending=100_000,
        hedge=hedge_after_s if variant.budget is not None else False,
        hedge_budget=variant.budget or 0.05,
        faults=faults,
        on_event=on_event,
    )
    if variant.cancel != "finish":  # measurement-only: the runtime always finishes losers
        rt.engine.config = dataclasses.replace(rt.engine.config, hedge_cancel=variant.cancel)
    with rt:
        # Every worker warm; the same number of items before the step in every variant, so the
        # engine numbers the step's items alike and the fault plan picks the same stragglers.
        list(rt.map(range(4 * workers)))
        service.clear()
        step = run_step(rt, sched, ITEMS, objective_ms=OBJECTIVE_MS, drain_timeout_s=DRAIN_S, ci=False)
        stats = rt.stats()
    if step.unfinished or step.failed or step.rejected:
        raise SystemExit(f"{variant.name}: {step.verdict()}")
    (svc95,) = percentiles(service, (0.95,)) if service else (float("nan"),)
    return {
        "p50": step.latency_ms["p50"],
        "p99": step.latency_ms["p99"],
        "p999": step.latency_ms["p999"],
        "dup": stats.duplicate_work,
        "hedges": stats.hedges,
        "won": stats.hedges_won,
        "restarts": len(restarts),
        "restart_s": statistics.median(restarts) if restarts else float("nan"),
        "lag_ms": step.max_lag_ms,
        "late": step.late,
        "svc95": svc95 * 1000,
        "requests": step.requests,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0, help="schedule length of each run")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--load", type=float, default=0.4, help="share of the pool's capacity with stragglers")
    ap.add_argument("--faults", default="slow=0.05x10")
    ap.add_argument("--variants", default="off,5%,10%,5%-kill")
    ap.add_argument("--smoke", action="store_true", help="one short round of three variants: does it run?")
    args = ap.parse_args()
    calibrations, calibration_s = 3, 3.0
    if args.smoke:
        args.repeats, args.seconds, args.workers, args.variants = 1, 1.0, 2, "off,5%,5%-kill"
        calibrations, calibration_s = 1, 0.5
        print("smoke run: the figures below show that each variant ran, not what hedging does")
    from tuner.engine import FaultPlan

    plan = FaultPlan.parse(args.faults)
    variants = [VARIANTS[v.strip()] for v in args.variants.split(",")]
    if variants[0].name != "off":
        variants.insert(0, VARIANTS["off"])
    mean_service = SERVICE_S * (1 - plan.slow + plan.slow * plan.slow_factor)
    rate = args.load * args.workers / mean_service
    print(
        f"{args.workers} process workers · nap 10 ms · {args.faults} · Poisson {rate:.0f} requests/s "
        f"({args.load:.0%} of the capacity with stragglers) · {args.seconds:g} s per run · "
        f"{args.repeats} repeats",
        flush=True,
    )
    # The median of three short calibrations: a host stall during one would move a single p95.
    p95s = [
        run(VARIANTS["off"], schedule(rate, calibration_s, 900 + k), args.workers, None, None)["svc95"]
        for k in range(calibrations)
    ]
    after_s = statistics.median(p95s) / 1000
    print(
        f"hedge delay: p95 service time without faults = {after_s * 1000:.2f} ms "
        f"(median of {', '.join(f'{x:.2f}' for x in p95s)})",
        flush=True,
    )

    rows: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
    for rep in range(args.repeats):
        sched = schedule(rate, args.seconds, seed=rep + 1)
        faults = f"{args.faults},seed={rep + 1}"
        order = variants if rep % 2 == 0 else list(reversed(variants))
        for v in order:
            r = run(v, sched, args.workers, faults, after_s)
            rows[v.name].append(r)
            print(
                f"  repeat {rep + 1} {v.name:>8}: p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f}  p99.9 {r['p999']:6.1f} ms"
                f"  dup {r['dup']:5.1%}  hedges {r['hedges']:4d} won {r['won']:4d}  restarts {r['restarts']:3d}"
                f"  sender: {r['late']} late, max lag {r['lag_ms']:.1f} ms",
                flush=True,
            )

    med = statistics.median
    print()
    print(f"{'variant':>8} | {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>8} | {'dup work':>8} {'won':>5} "
          f"{'restarts':>8} | {'p99 off/x':>9}")  # fmt: skip
    base = rows["off"]
    verdict = []
    for v in variants:
        rs = rows[v.name]
        ratio = med([b["p99"] / r["p99"] for b, r in zip(base, rs, strict=True)])
        dup = med([r["dup"] for r in rs])
        print(
            f"{v.name:>8} | {med([r['p50'] for r in rs]):7.1f} {med([r['p99'] for r in rs]):7.1f} "
            f"{med([r['p999'] for r in rs]):8.1f} | {dup:8.1%} {med([r['won'] for r in rs]):5.0f} "
            f"{med([r['restarts'] for r in rs]):8.0f} | {ratio:8.2f}x"
        )
        if v.name != "off":
            verdict.append((v.name, ratio, dup))
    kill = rows.get("5%-kill")
    if kill and any(r["restarts"] for r in kill):
        times_s = [r["restart_s"] for r in kill if r["restarts"]]
        print(f"\n5%-kill: a killed loser's replacement took {med(times_s) * 1000:.0f} ms to load (median)")
    print()
    for name, ratio, dup in verdict:
        ok = ratio >= 2.0 and dup <= 0.05
        print(
            f"target (p99 >= 2x lower, duplicate work <= 5%) with {name}: "
            f"{'met' if ok else 'NOT met'} — p99 {ratio:.2f}x lower, duplicate work {dup:.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
