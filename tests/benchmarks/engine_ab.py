"""The engine's dispatch cost in this checkout (B) against another one (A): alternated runs, paired.

A change inside the engine (a refactoring, say) must not make dispatch dearer. Each run is a fresh
interpreter with one checkout's ``tuner`` first on ``sys.path``; it runs the two engine cases of
``engine_overhead.py`` (2 workers; tiny tasks one per partition, and 1 MiB numpy partitions) and
reports, per task, the wall time and the CPU time of the caller's process (the caller's and the
supervisor's threads, not the workers': the dispatch work itself, which other jobs on a shared
host inflate much less than they inflate wall time). Runs alternate, and so does which of a pair
goes first (A B, B A, A B ...: a second run of a pair is not always the same checkout's); each B is
divided by the A of its pair, and the median of those ratios is printed with their quartiles.
``--control`` runs A against itself: the noise floor of the host as it is right now.

Fresh interpreters, not two long-lived ones taking turns: tried here, two long-lived interpreters
of the same checkout differed by ~20% in wall time per tiny task over 60 rounds — a bias of that
pair of processes, not of the code — which many pairs of fresh runs average out.

Run: python tests/benchmarks/engine_ab.py --base /path/to/checkout/A [--pairs 9]; ``--smoke``: this
checkout against itself, two small pairs (the script works; the figures mean nothing).
(for a commit: ``git worktree add /tmp/engine-base <commit>``, and remove it afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
METRICS = ("tiny_wall", "tiny_cpu", "big_wall", "big_cpu")


def _child(root: str, tiny_n: int, big_n: int, repeats: int) -> None:
    """One run in this interpreter, against the ``tuner`` in ``root``; prints one JSON line."""
    sys.path.insert(0, root)
    import numpy as np

    from tuner.engine import Engine, EngineConfig

    assert Path(sys.modules["tuner"].__file__ or "").resolve().is_relative_to(Path(root).resolve())
    spec = str(HERE.parent / "_models.py")
    rows = 128
    tiny = list(range(tiny_n))
    big = np.random.default_rng(0).random((big_n * rows, 1024))
    config = {"workers": 2, "threads_per_worker": 1}
    samples: dict[str, list[float]] = {m: [] for m in METRICS}
    with (
        Engine(f"{spec}:batch", EngineConfig(partition_size=1, **config)) as eng_tiny,
        Engine(f"{spec}:batch_sum", EngineConfig(partition_size=rows, **config)) as eng_big,
    ):
        list(eng_tiny.map(range(100)))
        list(eng_big.map_partitions(big[: 4 * rows]))
        for _ in range(repeats):
            for case, run, n in (
                ("tiny", lambda: list(eng_tiny.map(tiny)), tiny_n),
                ("big", lambda: list(eng_big.map_partitions(big)), big_n),
            ):
                w0, c0 = time.perf_counter(), time.process_time()
                run()
                w1, c1 = time.perf_counter(), time.process_time()
                samples[f"{case}_wall"].append((w1 - w0) / n * 1e6)
                samples[f"{case}_cpu"].append((c1 - c0) / n * 1e6)
    print(json.dumps({m: statistics.median(v) for m, v in samples.items()}))


def _run(root: Path, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, str(HERE), "--child", str(root), "--tiny", str(args.tiny), "--big", str(args.big)]
    cmd += ["--repeats", str(args.repeats)]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, help="checkout A (this checkout is B)")
    ap.add_argument("--pairs", type=int, default=9, help="A/B pairs (alternated runs)")
    ap.add_argument("--repeats", type=int, default=3, help="measurements per run (their median)")
    ap.add_argument("--tiny", type=int, default=20000, help="tiny tasks per measurement")
    ap.add_argument("--big", type=int, default=200, help="1 MiB partitions per measurement")
    ap.add_argument("--control", action="store_true", help="run A against A (the noise floor)")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="this checkout against itself, 2 pairs of small runs: the script works (no figure)",
    )
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.tiny, args.big, args.repeats)
        return
    if args.smoke:
        args.base, args.control = args.base or REPO, True
        args.pairs, args.repeats, args.tiny, args.big = 2, 1, 2000, 20
    if args.base is None:
        ap.error("--base is required")
    b_root = args.base if args.control else REPO
    runs: dict[str, list[dict[str, float]]] = {"A": [], "B": []}
    for i in range(args.pairs):
        pair = (("A", args.base), ("B", b_root))
        for name, root in pair if i % 2 == 0 else pair[::-1]:
            runs[name].append(_run(root, args))
        a, b = runs["A"][-1], runs["B"][-1]
        print(f"pair {i + 1}: " + "  ".join(f"{m} {a[m]:7.1f} -> {b[m]:7.1f}" for m in METRICS), flush=True)
    print(f"\nA = {args.base}, B = {b_root}; {args.pairs} pairs, us per task (median of {args.repeats} each)")
    print(f"{'':10s} {'A median':>9s} {'B median':>9s} {'B/A paired median':>18s} {'quartiles':>14s}")
    for m in METRICS:
        a = [r[m] for r in runs["A"]]
        b = [r[m] for r in runs["B"]]
        ratios = [y / x for x, y in zip(a, b, strict=True)]
        q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
        print(
            f"{m:10s} {statistics.median(a):9.2f} {statistics.median(b):9.2f} "
            f"{statistics.median(ratios):18.3f} {f'{q1:.3f}..{q3:.3f}':>14s}"
        )


if __name__ == "__main__":
    main()
