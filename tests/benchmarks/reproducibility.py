"""Re-measure the recommended configuration of a fresh profile; compare with its recorded throughput.

For each model, unless ``--profile`` names existing profiles: an adaptive sweep (the default
``tuner bench`` settings, ``--budget`` seconds), a profile built from its recommendation, then
``--repeats`` fresh trials of the recommended configuration. Prints each trial's throughput
against the profile's, and the median's deviation. Target (issue 3): within ±5%.

    .venv/bin/python tests/benchmarks/reproducibility.py [--models sleep,pyloop,mlp] [--budget 60]
    .venv/bin/python tests/benchmarks/reproducibility.py --profile profiles/mlp.yaml
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from tuner.bench.measure import MeasureSettings, run_trial
from tuner.bench.recommend import build_profile, recommend
from tuner.bench.session import Sweep, SweepSpec
from tuner.bench.types import TrialConfig
from tuner.hardware import probe
from tuner.models import input_generator
from tuner.profile import load_profile, save_profile


def fresh_profile(model: str, budget: float, folder: Path) -> Path:
    spec = SweepSpec(model=model, budget_s=budget, confirm=True)  # as `tuner bench` does
    sweep = Sweep(spec)
    results = sweep.run()
    rec = recommend(results, spec.objective, sweep.host)
    profile = build_profile(
        rec, name=model.split(":")[-1], spec=spec, host=sweep.host, info=sweep.info, trials_run=len(results)
    )
    return save_profile(profile, folder / f"{model.split(':')[-1]}.yaml")


def remeasure(path: Path, repeats: int) -> tuple[str, float, list[float]]:
    profile = load_profile(path)
    r = profile.recommended
    config = TrialConfig(r.backend, r.workers, r.threads_per_worker, r.partition_size)
    n = profile.model.input.items if profile.model.input and profile.model.input.items else 8192
    gen = input_generator(profile.model.spec)
    assert gen is not None, "reproducibility needs a model with an input generator"
    inputs = gen(n, 0)
    cores = probe().usable_cores
    got = [
        run_trial(profile.model.spec, inputs, config, MeasureSettings(), usable_cores=cores).throughput
        for _ in range(repeats)
    ]
    return config.label(), profile.evidence.throughput, got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sleep,pyloop,mlp")
    ap.add_argument("--profile", action="append", help="use this profile instead of a fresh sweep")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(p) for p in args.profile] if args.profile else [
            fresh_profile(f"builtin:{m}", args.budget, Path(tmp)) for m in args.models.split(",")
        ]  # fmt: skip
        print(
            f"{'profile':28} {'configuration':40} {'recorded':>10} {'re-measured (each)':>30} {'median':>8}"
        )
        for path in paths:
            label, recorded, got = remeasure(path, args.repeats)
            med = statistics.median(got)
            dev = (med - recorded) / recorded
            each = ", ".join(f"{g / 1000:.1f}k" for g in got)
            verdict = "within ±5%" if abs(dev) <= 0.05 else "OUTSIDE ±5%"
            print(f"{path.name:28} {label:40} {recorded / 1000:9.1f}k {each:>30} {dev:+8.1%}  {verdict}")


if __name__ == "__main__":
    main()
