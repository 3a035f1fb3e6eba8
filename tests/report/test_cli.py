"""``tuner report``: what it writes, and one line and exit 2 (nothing written) for bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from report.conftest import FIXTURES, profile_path, results_path
from tuner.cli import main


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["report", *argv])
    return code, capsys.readouterr().err


def test_writes_one_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "report.html"  # a missing folder is created
    code, err = _run(
        capsys, str(profile_path("plain")), "--results", str(results_path("plain")), "--out", str(out)
    )
    assert code == 0 and f"report written to {out}" in err
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "tuner report: builtin:mlp" in text
    assert f"tuner report {profile_path('plain')} --results {results_path('plain')} --out {out}" in text


def test_a_comparison_and_a_plan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "diff.html"
    argv = [str(profile_path("plain")), "--compare", str(profile_path("faults")), "--compare-results"]
    code, err = _run(capsys, *argv, str(results_path("faults")), "--out", str(out))
    assert code == 0 and "comparison written" in err
    assert 'data-metric="throughput"' in out.read_text(encoding="utf-8")
    plan = tmp_path / "plan.html"
    code, _ = _run(capsys, str(profile_path("online")), "--rate", "50000", "--out", str(plan))
    text = plan.read_text(encoding="utf-8")
    assert code == 0 and '<section id="plan">' in text and "To serve 50.0k requests/s" in text


BAD = [
    (["missing.yaml"], "missing.yaml"),
    (["{plain}", "--results", "missing.jsonl"], "missing.jsonl: results file not found"),
    (["{plain}", "--results", "{bad_lines}"], "line 1: not a trial result"),
    (["{plain}", "--compare-results", "{plain_results}"], "--compare-results needs --compare"),
    (["{plain}", "--rate", "1000"], "has no online: section"),
    (["{online}", "--compare", "{plain}", "--rate", "1000"], "not with --compare"),
    (["{online}", "--p99-ms", "20"], "give --rate R as well"),
    (["{online}", "--rate", "nan"], "--rate 'nan': not a finite number"),
    (["{plain}", "--results", "{other_model}"], "written for model 'builtin:sleep'"),
]


@pytest.mark.parametrize(("argv", "says"), BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], says: str
) -> None:
    bad_lines = tmp_path / "bad.jsonl"
    bad_lines.write_text("{not json\n", encoding="utf-8")
    other = tmp_path / "other.jsonl"
    other.write_text(
        results_path("plain").read_text().replace('"builtin:mlp"', '"builtin:sleep"'), encoding="utf-8"
    )
    names = {"plain": profile_path("plain"), "online": profile_path("online"), "bad_lines": bad_lines,
             "plain_results": results_path("plain"), "other_model": other}  # fmt: skip
    out = tmp_path / "report.html"
    out.write_text("the previous report", encoding="utf-8")
    code, err = _run(capsys, *[a.format(**names) for a in argv], "--out", str(out))
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuner: ") and says in lines[0], err
    assert out.read_text(encoding="utf-8") == "the previous report"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_out_is_required_and_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, str(profile_path("plain")))
    assert code == 2 and "--out" in err
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "report" in capsys.readouterr().out


@pytest.mark.timeout(60)
def test_the_console_script_path(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "plain.yaml", tmp_path / "p.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "tuner", "report", "p.yaml", "--out", "r.html"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000
