"""Re-measure the recommended configuration of a fresh profile; compare with its recorded throughput.

For each model, unless ``--profile`` names existing profiles: an adaptive sweep (the default
``tuner bench`` settings, ``--budget`` seconds), a profile built from its recommendation, then
``--repeats`` fresh trials of the recommended configuration. Prints each trial's throughput
against the profile's, and the median's deviation. Target (issue 3): within ±5%.

    .venv/bin/python tests/benchmarks/reproducibility.py [--models sleep,pyloop,mlp] [--budget 60]
    .venv/bin/python tests/benchmarks/reproducibility.py --profile profiles/mlp.yaml
    .venv/bin/python tests/benchmarks/reproducibility.py --smoke    # sleep only, 0.1 s windows, a few seconds

The sweep is ``tuner bench``'s own (:class:`tuner.bench.pipeline.SweepPipeline` with the request the
command line makes: adaptive, the winner confirmed, the default deployment and the cold start
measured). ``--smoke`` checks the script still runs: builtin:sleep on 512 items, a 3 s budget,
0.1 s windows, no host calibration, one re-measurement; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from tuner.bench.measure import MeasureSettings, run_trial
from tuner.bench.pipeline import SweepPipeline
from tuner.bench.request import SweepRequest
from tuner.bench.types import TrialConfig
from tuner.hardware import probe
from tuner.models import input_generator
from tuner.profile import load_profile, save_profile

SMOKE_SETTINGS = MeasureSettings.for_window(0.1)


def fresh_profile(model: str, budget: float, folder: Path, smoke: bool = False) -> Path:
    name = model.split(":")[-1]
    request = SweepRequest(model=model, budget_s=budget, confirm=True)  # as `tuner bench` makes it
    if smoke:  # few items (the default deployment's one partition is all of them), short windows
        request = replace(request, n_items=512, settings=SMOKE_SETTINGS, calibration_s=0.0)
    with SweepPipeline(request) as pipeline:
        outcome = pipeline.run()
    return save_profile(outcome.profile(name), folder / f"{name}.yaml")


def remeasure(path: Path, repeats: int, settings: MeasureSettings) -> tuple[str, float, list[float]]:
    profile = load_profile(path)
    d = profile.deployment()  # threads_per_worker "default" in the file is None here
    config = TrialConfig(d.backend, d.workers, d.threads_per_worker, d.partition_size, d.knobs, d.placement)
    n = profile.model.input.items if profile.model.input and profile.model.input.items else 8192
    gen = input_generator(profile.model.spec)
    assert gen is not None, "reproducibility needs a model with an input generator"
    inputs = gen(n, 0)
    cores = probe().usable_cores
    got = [
        run_trial(profile.model.spec, inputs, config, settings, usable_cores=cores).throughput
        for _ in range(repeats)
    ]
    return config.label(), profile.evidence.throughput, got


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="sleep,pyloop,mlp")
    ap.add_argument("--profile", action="append", help="use this profile instead of a fresh sweep")
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="sleep only, short windows, one re-measurement")
    args = ap.parse_args()
    settings = MeasureSettings()
    if args.smoke:
        args.models, args.budget, args.repeats, settings = "sleep", 3.0, 1, SMOKE_SETTINGS
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(p) for p in args.profile] if args.profile else [
            fresh_profile(f"builtin:{m}", args.budget, Path(tmp), args.smoke)
            for m in args.models.split(",")
        ]  # fmt: skip
        print(
            f"{'profile':28} {'configuration':40} {'recorded':>10} {'re-measured (each)':>30} {'median':>8}"
        )
        for path in paths:
            label, recorded, got = remeasure(path, args.repeats, settings)
            med = statistics.median(got)
            dev = (med - recorded) / recorded
            each = ", ".join(f"{g / 1000:.1f}k" for g in got)
            verdict = "within ±5%" if abs(dev) <= 0.05 else "OUTSIDE ±5%"
            print(f"{path.name:28} {label:40} {recorded / 1000:9.1f}k {each:>30} {dev:+8.1%}  {verdict}")


if __name__ == "__main__":
    main()
