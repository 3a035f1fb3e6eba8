"""``tuner bench --report``: a real short sweep writes its page, the gate writes the comparison,
an interrupted sweep says so on its page, a bad path is one line, exit 2, nothing written.

The pages are read as static markup (JavaScript off): the figures a test reads back carry
``data-field``/``data-value`` (the recommendation) and ``data-host-speed`` (a comparison).
"""

from __future__ import annotations

import html as markup
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tuner.cli import main
from tuner.profile import load_profile

# Two configurations (and the default deployment twice): a sweep of a few seconds on 2 cores.
SWEEP = ["--model", "builtin:mlp", "--strategy", "grid", "--backends", "process", "--workers", "1,2",
         "--threads", "1", "--partition-sizes", "256", "--window", "0.2", "--budget", "30", "--items", "2048"]  # fmt: skip


def fields(html: str) -> dict[str, float]:
    """The figures the page marks for reading back: ``data-field`` → ``data-value``."""
    return {k: float(v) for k, v in re.findall(r'data-field="([^"]+)" data-value="([^"]+)"', html)}


def text(html: str) -> str:
    """What a reader sees: the markup's text."""
    return markup.unescape(re.sub(r"<[^>]+>", "", html))


def trial_keys(html: str) -> list[str]:
    """The trials table's rows, by configuration key."""
    table = html[html.index('<table class="sortable trials"') :]
    return re.findall(r'<tr data-key="([^"]+)"', table[: table.index("</table>")])


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One real sweep with --report (and a 1 s host calibration), in its own folder."""
    where = tmp_path_factory.mktemp("swept")
    args = [*SWEEP, "--calibration", "1", "--results", "r.jsonl", "--out", "p.yaml", "--report", "rep.html"]
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "bench", *args],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=200,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "report written to rep.html" in proc.stdout
    return where


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_sweeps_page_holds_the_profiles_numbers(swept: Path, capsys: pytest.CaptureFixture[str]) -> None:
    html = (swept / "rep.html").read_text(encoding="utf-8")
    profile = load_profile(swept / "p.yaml")
    ev = profile.evidence
    got = fields(html)
    assert got["throughput"] == ev.throughput
    assert got["p99"] == ev.latency_ms.p99
    # the ratio the recommendation states, against the framework's default deployment (the profile's)
    if ev.speedup is not None:
        assert got["baseline-ratio"] == ev.speedup
        assert f"{ev.speedup:.2f}× the framework's default deployment" in text(html)
    else:  # the default deployment's trials were contaminated (a busy host): the page says so
        assert "baseline-ratio" not in got
        assert "No ratio against the framework's default deployment: it was not measured cleanly" in text(
            html
        )
    # every configuration of the results file is a row (the confirmed winner's two lines once)
    lines = [json.loads(x) for x in (swept / "r.jsonl").read_text().splitlines() if x.strip()]
    assert len(trial_keys(html)) == len({json.dumps(d["config"], sort_keys=True) for d in lines}) == 4
    # the host calibration, and the exact command that made the sweep
    assert profile.host.calibration is not None and "host speed: python" in html
    assert "tuner bench --model builtin:mlp" in html and "--report rep.html" in html
    # the page `tuner report PROFILE --results R` makes shows the same figures and trials
    again = swept / "again.html"
    assert (
        main(["report", str(swept / "p.yaml"), "--results", str(swept / "r.jsonl"), "--out", str(again)]) == 0
    )
    capsys.readouterr()
    other = again.read_text(encoding="utf-8")
    assert fields(other) == got and trial_keys(other) == trial_keys(html)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_gate_writes_the_comparison(swept: Path) -> None:
    from tuner.calibrate import Calibration, compare

    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "bench", "--baseline", "p.yaml", "--window", "0.2", "--calibration", "1",
         "--json", "--report", "diff.html"],
        cwd=swept, capture_output=True, text=True, timeout=200,
    )  # fmt: skip
    assert proc.returncode in (0, 1, 3), proc.stderr[-2000:]  # ok, a regression, or a busy host: a page each
    gate = json.loads(proc.stdout)["gate"]
    assert "comparison written to diff.html" in proc.stderr
    html = (swept / "diff.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and "tuner comparison: " in html
    assert 'data-metric="throughput"' in html and 'data-metric="configuration"' in html
    assert "The gate's verdict: " + gate["line"] in text(html)  # as the gate said it
    # the host-speed ratio between the baseline's host and this one, from the two calibrations
    speed = re.search(r'data-host-speed="([^"]*)"', html)
    assert speed is not None
    hs = gate.get("host_speed") or {}
    base, here = hs.get("baseline_calibration"), hs.get("calibration")
    assert base is not None and here is not None, hs
    both = compare(Calibration.from_dict(base), Calibration.from_dict(here))
    envelope = both.envelope("all") or both.envelope("single")
    if envelope is None:  # every kernel busy on one side: the page says why instead
        assert speed.group(1) == "" and "could not be compared" in html
    else:
        assert float(speed.group(1)) == pytest.approx(envelope.ratio, rel=1e-3)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_an_interrupted_sweep_writes_what_it_measured(
    tmp_path: Path, tuner_cmd: list[str], clean_env: dict[str, str]
) -> None:
    args = ["--model", "builtin:mlp", "--strategy", "grid", "--backends", "process", "--workers", "1,2",
            "--threads", "1", "--partition-sizes", "64,128,256", "--window", "0.2", "--items", "2048",
            "--calibration", "0", "--out", "p.yaml", "--report", "rep.html"]  # fmt: skip
    proc = subprocess.Popen(
        [*tuner_cmd, "bench", *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=clean_env,
    )  # fmt: skip
    assert proc.stderr is not None
    seen, finished = "", 0
    deadline = time.monotonic() + 60
    while finished < 2 and time.monotonic() < deadline:  # two trials ended (their result lines)
        line = proc.stderr.readline()
        if not line:
            break
        seen += line
        finished += " items/s · p99 " in line
    assert finished == 2, seen
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and not (tmp_path / "p.yaml").exists()
    assert "report written to rep.html" in out
    html = (tmp_path / "rep.html").read_text(encoding="utf-8")
    assert "The sweep was interrupted after" in html and "no profile was written" in html
    assert len(trial_keys(html)) >= 2
    assert [p.name for p in tmp_path.iterdir()] == ["rep.html"]  # no temporary left beside it


@pytest.mark.parametrize(
    ("report", "says"),
    [
        ("missing/rep.html", "--report {tmp}/missing/rep.html: folder {tmp}/missing does not exist"),
        ("rep.txt", "--report {tmp}/rep.txt: a report is an .html file"),
        ("folder.html", "--report {tmp}/folder.html: is a folder, not a file"),
    ],
)
@pytest.mark.parametrize("gate", [False, True])
def test_a_bad_report_path_is_one_line_and_exit_2_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], report: str, says: str, gate: bool
) -> None:
    (tmp_path / "folder.html").mkdir()
    extra = ["--baseline", str(Path(__file__).parent / "fixtures" / "plain.yaml")] if gate else []
    argv = ["bench", *SWEEP, *extra, "--out", str(tmp_path / "p.yaml"), "--report", str(tmp_path / report)]
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["tuner: " + says.format(tmp=tmp_path)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.html"]  # no profile, no page, no temporary


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_an_online_sweeps_page_has_its_online_section(
    tmp_path: Path, tuner_cmd: list[str], clean_env: dict[str, str]
) -> None:
    args = ["--model", "builtin:sleep", "--backends", "thread", "--workers", "1", "--partition-sizes", "256",
            "--strategy", "grid", "--window", "0.2", "--items", "2048", "--calibration", "0", "--online",
            "--p99-ms", "50", "--online-budget", "4", "--step", "0.3", "--batch-delays", "2",
            "--online-configs", "1", "--out", "p.yaml", "--report", "rep.html"]  # fmt: skip
    proc = subprocess.run(
        [*tuner_cmd, "bench", *args], cwd=tmp_path, capture_output=True, text=True, env=clean_env, timeout=140
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    online = load_profile(tmp_path / "p.yaml").online
    assert online is not None
    html = (tmp_path / "rep.html").read_text(encoding="utf-8")
    assert fields(html)["max-rate"] == online.max_rate_at_slo
    assert '<section id="online">' in html and 'id="chart-online"' in html


def _calibrated(name: str, scale: float) -> Any:
    """A recorded profile with the reference calibration (tests/fixtures/profiles/good.yaml) scaled."""
    import yaml

    from tuner.profile.calibration import CalibrationRecord

    good = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "profiles" / "good.yaml").read_text())
    cal = good["host"]["calibration"]
    for kernel in cal["kernels"].values():
        for mode in ("single", "all"):
            if kernel.get(mode):
                kernel[mode]["score"] *= scale
                kernel[mode]["ci"] = [x * scale for x in kernel[mode]["ci"]]
    profile = load_profile(Path(__file__).parent / "fixtures" / f"{name}.yaml")
    profile.host.__dict__["calibration"] = CalibrationRecord.model_validate(cal)
    return profile


def test_a_comparison_gives_the_host_speed_ratio_and_the_side_by_side_gate_its_two_versions() -> None:
    from tuner.bench.session import load_results
    from tuner.calibrate import compare
    from tuner.report import render_comparison

    a, b = _calibrated("plain", 1.0), _calibrated("faults", 0.7)
    page = render_comparison(a, b)
    speed = re.search(r'data-host-speed="([^"]+)"', page)
    expected = compare(a.host.calibration.calibration(), b.host.calibration.calibration())
    envelope = expected.envelope("all") or expected.envelope("single")
    assert speed is not None and envelope is not None
    assert float(speed.group(1)) == pytest.approx(envelope.ratio) == pytest.approx(0.7, rel=0.01)
    assert "B's host runs the reference kernels 30% slower than A's: ×0.70" in text(page)
    # --against: the previous version's trials (A) beside the current one's (B), one host, no profile
    results = load_results(Path(__file__).parent / "fixtures" / "plain.jsonl")
    page = render_comparison(
        None, None, results[0::2], results[1::2], names=("previous: old.py", "current: new.py")
    )
    seen = text(page)
    assert "tuner comparison: previous: old.py vs current: new.py" in seen
    assert "Both runs were measured now on this host, interleaved" in seen
