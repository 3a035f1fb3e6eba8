"""How long ``import tuner.runtime`` takes in a fresh interpreter (target: under 150 ms).

Run: ``.venv/bin/python tests/benchmarks/runtime_import.py``
Smoke: ``.venv/bin/python tests/benchmarks/runtime_import.py --smoke`` — one interpreter per figure
instead of 5, to check the script runs; it exits 0 whatever the figure (one sample says nothing).

Each figure is the median of 5 fresh subprocesses, timed with ``time.perf_counter()`` around the
import statement inside the child (so interpreter start-up is not counted), against the baseline
``pass`` timed the same way. Also shown, for context: the import plus building a Runtime from a
profile-like configuration without starting it (which pulls in the engine), and the heaviest
modules by ``-X importtime``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

RUNS = 5
TARGET_MS = 150.0

SNIPPETS = {
    "pass (baseline)": "pass",
    "import tuner.runtime": "import tuner.runtime",
    "import tuner.runtime + Runtime(...) built, not started": (
        "from tuner.runtime import Runtime; Runtime('builtin:mlp', workers=2)"
    ),
}


def time_once(code: str) -> float:
    """Milliseconds for ``code`` in a fresh interpreter, measured inside it."""
    child = f"import time\nt0 = time.perf_counter()\n{code}\nprint((time.perf_counter() - t0) * 1000)\n"
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
    return float(r.stdout.strip().splitlines()[-1])


def wall_once(code: str) -> float:
    """Milliseconds for a whole ``python -c code`` process, start-up included."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return (time.perf_counter() - t0) * 1000


def top_imports(module: str, n: int = 5) -> list[tuple[int, str]]:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True
    )
    rows = []
    for line in r.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1].strip()), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="one interpreter per figure: does it run?")
    args = ap.parse_args()
    runs = 1 if args.smoke else RUNS
    print(f"median of {runs} fresh interpreters ({sys.executable})")
    medians = {}
    for label, code in SNIPPETS.items():
        samples = [time_once(code) for _ in range(runs)]
        medians[label] = statistics.median(samples)
        print(f"  {label:<58} {medians[label]:7.1f} ms   (runs: {', '.join(f'{s:.1f}' for s in samples)})")
    base = statistics.median(wall_once("pass") for _ in range(runs))
    full = statistics.median(wall_once("import tuner.runtime") for _ in range(runs))
    print(
        f"  whole process: python -c pass {base:.1f} ms, python -c 'import tuner.runtime' {full:.1f} ms "
        f"(+{full - base:.1f} ms)"
    )
    imp = medians["import tuner.runtime"]
    verdict = "ok" if imp < TARGET_MS else "OVER TARGET"
    print(f"import tuner.runtime: {imp:.1f} ms vs target {TARGET_MS:.0f} ms — {verdict}")
    print("heaviest modules under import tuner.runtime (-X importtime, cumulative µs):")
    for us, name in top_imports("tuner.runtime"):
        print(f"  {us:8d}  {name.strip()}")
    return 0 if imp < TARGET_MS or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
