"""``tests/benchmarks/vs_default.py --smoke`` runs to its end: nothing else runs the benchmarks in CI.

A smoke test of the script, not of its figures: the built-in mlp on a few thousand items, a 3 s
sweep, one round — every code path of the benchmark (``tuner bench`` as a subprocess, the runtime,
the default deployment, the naive pool, the output check, the ratios and the verdict) in seconds.
Whether the row says PASS or BELOW depends on the host; that it says one of them does not.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tests" / "benchmarks" / "vs_default.py"


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_smoke_prints_a_row_with_a_verdict(tmp_path: Path, clean_env: dict[str, str]) -> None:
    env = {**clean_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), clean_env.get("PYTHONPATH")]))}
    r = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=140,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = r.stdout.splitlines()
    header = next((ln for ln in lines if ln.startswith("model ")), None)
    assert header is not None, r.stdout
    assert "verdict" in header and "steady A/B" in header and "break-even" in header
    row = next((ln for ln in lines if ln.startswith("mlp ")), None)
    assert row is not None, r.stdout
    assert re.search(r"\b(PASS|BELOW)\b", row), row
    # the profile tuner bench wrote is what the runtime ran, and is kept with --keep
    assert (tmp_path / "mlp.yaml").is_file()
    assert "OUTPUTS DIFFER" not in r.stdout
