"""A real short sweep (``tuner bench``), its report (``tuner report``), opened in headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from report.browser import Visit, observe, skip_reason

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SWEEP = ["--model", "builtin:mlp", "--strategy", "grid", "--backends", "process", "--workers", "1,2",
         "--threads", "1", "--partition-sizes", "64,256", "--window", "0.1", "--budget", "60"]  # fmt: skip


def _tuner(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tuner", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )


@pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
def test_a_real_sweep_reported_and_read_in_the_browser(tmp_path: Path) -> None:
    bench = _tuner(["bench", *SWEEP, "--results", "r.jsonl", "--out", "p.yaml"], tmp_path)
    assert bench.returncode == 0, bench.stderr[-2000:]
    report = _tuner(["report", "p.yaml", "--results", "r.jsonl", "--out", "report.html"], tmp_path)
    assert report.returncode == 0, report.stderr
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines() if x.strip()]
    configs = {json.dumps(d["config"], sort_keys=True) for d in lines}
    (seen,) = observe([Visit(tmp_path / "report.html")])
    assert seen.errors == [] and [m for m in seen.console if m[0] == "error"] == []
    charts = {c["id"]: c for c in seen.page["charts"]}
    assert len(charts["chart-throughput"]["points"]) == len(configs) == 4 + 2  # and the default deployment twice
    assert len(seen.page["trials"]) == 4 + 2
    for c in charts.values():
        assert c["axes"].get("x") and c["axes"].get("y") and not c["cut"], (c["id"], c["axes"], c["cut"])
    profile_text = (tmp_path / "p.yaml").read_text()
    assert f"throughput: {seen.page['fields']['throughput']['value']}" in profile_text
