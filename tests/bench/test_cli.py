"""`tuner bench` end to end, in subprocesses: sweeps, profiles, resume, the CI gate, bad arguments.

Windows are tiny (0.2 s) and budgets small so the whole file stays well under a minute or two.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tuner.profile import load_profile

FAST = ["--window", "0.2"]

SLOWABLE = """
import os
import time

from tuner.models import batch


def gen(n, seed):
    return list(range(n))


@batch(inputs=gen, bound="io")
def slowable(rows):
    # The "build" under test: TUNER_TEST_DELAY_MS makes it slower without changing the code.
    time.sleep(float(os.environ.get("TUNER_TEST_DELAY_MS", "2")) / 1000.0)
    return [r * 2 for r in rows]
"""


def bench(tuner_cmd, env, *args, cwd=None, timeout=120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tuner_cmd, "bench", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.timeout(120)
def test_small_sweep_writes_a_sane_profile_and_json(tmp_path, tuner_cmd, clean_env) -> None:
    out = tmp_path / "profiles" / "sleep.yaml"
    results = tmp_path / "r.jsonl"
    # --max-trials ends the search, not the budget: the winner's confirmation always has room
    # (with the budget as the limit, a loaded box sometimes spent it all and skipped confirming).
    p = bench(
        tuner_cmd, clean_env, "--model", "builtin:sleep", *FAST, "--budget", "90", "--max-trials", "3",
        "--items", "2048", "--out", str(out), "--results", str(results), "--csv", str(tmp_path / "r.csv"),
        "--summary", str(tmp_path / "s.md"), "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)  # stdout is only the JSON
    assert summary["profile"] == str(out)
    written = lines(results)
    keys = {json.dumps(d["config"], sort_keys=True) for d in written}
    assert len(summary["trials"]) == len(keys) == 3 + 2  # --max-trials, and the default deployment twice
    # the winner was measured twice: its merged line comes last, holding both trials' windows
    assert len(written) == len(keys) + 1
    first_trial = next(d for d in written if d["config"] == written[-1]["config"])
    assert len(written[-1]["windows"]) > len(first_trial["windows"])
    # The recommendation is that merged trial, and the JSON, the profile and the table agree on it.
    rec_json = summary["recommendation"]
    assert rec_json["config"] == written[-1]["config"]
    best = next(t for t in summary["trials"] if t["config"] == rec_json["config"])
    assert rec_json["throughput"] == best["throughput"] == written[-1]["throughput"]
    profile = load_profile(out)
    rec = profile.recommended
    assert rec.model_dump(include=set(rec_json["config"])) == rec_json["config"]
    assert profile.evidence.throughput == pytest.approx(best["throughput"])
    assert profile.evidence.latency_ms is not None
    assert profile.evidence.latency_ms.p99 == pytest.approx(best["latency_ms"]["p99"])
    # timeout: 10x the p99.9 service time of the winner, at least 0.1 s (README)
    p999_s = best["service_ms"]["p999"] / 1000
    assert rec.timeout_s == pytest.approx(max(0.1, 10 * p999_s), abs=0.001)
    assert profile.autoscale.min_workers <= rec.workers <= profile.autoscale.max_workers
    assert profile.model.input is not None and profile.model.input.item == "int64"  # what `run` checks
    assert "Recommended:" in p.stderr  # the words go to stderr with --json
    assert (tmp_path / "r.csv").read_text().count("\n") == len(summary["trials"]) + 1
    assert "| configuration |" in (tmp_path / "s.md").read_text()


@pytest.mark.timeout(120)
def test_grid_sweep_of_a_gil_bound_model_prints_table_and_words(tmp_path, tuner_cmd, clean_env) -> None:
    p = bench(
        tuner_cmd, clean_env, "--model", "builtin:pyloop", *FAST, "--strategy", "grid", "--items", "1024",
        "--backends", "process,thread", "--workers", "1,2", "--partition-sizes", "32",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "Recommended:" in p.stdout
    assert "trials" in p.stdout and "throughput (items/s) vs workers" in p.stdout
    assert p.stdout.count("partition 32") >= 4


@pytest.mark.timeout(120)
def test_interrupted_sweep_resumes_without_redoing_trials(tmp_path, tuner_cmd, clean_env) -> None:
    results = tmp_path / "r.jsonl"
    args = [
        "--model", "builtin:sleep", *FAST, "--strategy", "grid", "--backends", "process",
        "--workers", "1,2", "--partition-sizes", "16,32,64", "--items", "1024", "--results", str(results),
    ]  # fmt: skip
    proc = subprocess.Popen(
        [*tuner_cmd, "bench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env
    )
    deadline = time.monotonic() + 60
    while len(lines(results)) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the file, not guessing how long a trial takes
    assert len(lines(results)) >= 1, "no trial finished"
    t_sig = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t_sig < 4.0  # stops promptly (2 s target, slack for a loaded CI box)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    first = lines(results)
    assert 1 <= len(first) < 8

    p = bench(tuner_cmd, clean_env, *args, "--resume", "--json")
    assert p.returncode == 0, p.stderr
    final = lines(results)
    keys = [json.dumps(d["config"], sort_keys=True) for d in final]
    # every config measured once (none redone: 6 of the grid, the default deployment twice), plus
    # one confirmation of the winner at the end
    assert len(set(keys)) == 8 and len(final) == 9
    assert len(set(keys[:-1])) == 8
    assert final[: len(first)] == first
    assert len(json.loads(p.stdout)["trials"]) == 8


@pytest.mark.timeout(120)
def test_gate_passes_unchanged_and_fails_when_slowed(tmp_path, tuner_cmd, clean_env) -> None:
    model = tmp_path / "slowable.py"
    model.write_text(SLOWABLE)
    spec = f"{model}:slowable"
    profile = tmp_path / "slowable.yaml"
    fixed = ["--backends", "thread", "--workers", "1", "--partition-sizes", "16", "--items", "512"]
    p = bench(tuner_cmd, clean_env, "--model", spec, *FAST, *fixed, "--out", str(profile), cwd=tmp_path)
    assert p.returncode == 0, p.stderr

    ok = bench(
        tuner_cmd, clean_env, "--baseline", str(profile), "--max-regression", "10", *FAST, cwd=tmp_path
    )
    # An unchanged build is never a regression: ok, or — when this shared host was too busy to
    # measure cleanly — inconclusive (exit 3), saying so (issue 12; tests/noise holds the rules).
    assert ok.returncode in (0, 3), ok.stdout + ok.stderr
    if ok.returncode == 0:
        assert "within 10% — ok" in ok.stdout
    else:
        assert "— inconclusive: " in ok.stdout
        assert ok.stderr.strip().splitlines()[-1].startswith("tuner: inconclusive against")

    slowed = dict(clean_env, TUNER_TEST_DELAY_MS="6")  # 3x slower: throughput -67%
    bad = bench(
        tuner_cmd, slowed, "--baseline", str(profile), "--max-regression", "10", *FAST,
        "--summary", str(tmp_path / "gate.md"), "--json", cwd=tmp_path,
    )  # fmt: skip
    gate = json.loads(bad.stdout)["gate"]
    assert bad.returncode in (1, 3), bad.stdout + bad.stderr
    if bad.returncode == 1:
        assert gate["verdict"] == "regression" and "REGRESSION" in gate["line"]
        assert bad.stderr.strip().splitlines()[-1].startswith("tuner: regression against")
    else:
        # Never "ok"; inconclusive only when the host really was too busy to tell: no clean trials,
        # or an outside load that could explain the drop beyond the tolerance.
        assert gate["verdict"] == "inconclusive"
        assert gate["host_busy"] or 100 * gate["outside_load"] >= -gate["throughput_change_pct"] - 10, gate
        assert bad.stderr.strip().splitlines()[-1].startswith("tuner: inconclusive against")
    assert gate["line"] in bad.stderr
    assert "Regression gate" in (tmp_path / "gate.md").read_text()


@pytest.mark.timeout(120)
def test_fault_plan_reports_figures_with_and_without_faults(tmp_path, tuner_cmd, clean_env) -> None:
    p = bench(
        tuner_cmd, clean_env, "--model", "builtin:sleep", *FAST, "--strategy", "grid", "--items", "1024",
        "--backends", "process", "--workers", "2", "--partition-sizes", "32",
        "--faults", "crash=0.05,hang=0.02,seed=3", "--json",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    (trial,) = [t for t in json.loads(p.stdout)["trials"] if not t["role"]]  # the default's two aside
    assert trial["faults"] == "crash=0.05,hang=0.02,seed=3"
    # The same configuration re-measured without faults: crashes cost a worker restart and hangs a
    # timeout each, so the clean run is the faster one — the figure a person compares against.
    assert trial["clean_throughput"] > trial["throughput"]
    assert trial["clean_p99_ms"] is not None and trial["clean_p99_ms"] < trial["latency_ms"]["p99"]
    injected = trial["faults_seen"].get("crash", 0) + trial["faults_seen"].get("timeout", 0)
    assert injected >= 1
    # every injected crash and hang cost one retried attempt, and no item was lost
    assert trial["retries"] >= injected and not trial["failures"]
    assert "crashed: exit 1 (injected)" in p.stderr  # the incident timeline
    rec = json.loads(p.stdout)["recommendation"]
    assert rec["retries"] > 2  # faults observed → more retries than the calm default


BAD_ARGS = [
    (["--workers", "0"], "--workers '0': '0' is out of range (expected a list of integers >= 1"),
    (["--workers", "two"], "not an integer"),
    (["--workers", "1-100000"], "--workers '1-100000': '1-100000' spans 100000 values"),
    (["--partition-sizes", ""], "--partition-sizes '': blank"),
    (["--backends", "gpu"], "--backends"),
    (["--strategy", "random"], "--strategy"),
    (["--objective", "fast"], "--objective"),
    (["--budget", "-1"], "--budget '-1': out of range (expected seconds > 0)"),
    (["--window", "0"], "--window '0': out of range (expected seconds >= 0.01)"),
    (["--p99-ms", "abc"], "--p99-ms 'abc': not a number (expected milliseconds > 0)"),
    (["--faults", "crash=2"], "crash"),
    (["--faults", "explode=0.1"], "explode"),
    (["--model", "no_such_module_xyz:fn"], "no_such_module_xyz"),
    (["--input", "missing.npy"], "missing.npy"),
    (["--resume"], "--resume"),
    (["--out", "profile.txt"], ".yaml"),
    (["--baseline", "missing.yaml"], "missing.yaml"),
    (["--name", "bad name"], "--name"),
    # issue 13: every numeric option finite and in its stated range (NaN compares False with any
    # bound, so a range check alone let it through and a NaN budget ran a full sweep)
    (["--budget", "nan"], "--budget 'nan': not a finite number (expected seconds > 0)"),
    (["--p99-ms", "inf"], "--p99-ms 'inf': not a finite number (expected milliseconds > 0)"),
    (["--window", "nan"], "--window 'nan': not a finite number (expected seconds >= 0.01)"),
    (["--memory-mb", "nan"], "--memory-mb 'nan': not a finite number (expected megabytes > 0)"),
    (["--min-throughput", "inf"], "--min-throughput 'inf': not a finite number (expected items/s > 0)"),
    (["--max-regression", "nan"], "--max-regression 'nan': not a finite number (expected a percentage >= 0)"),
    (
        ["--max-outside-load", "-5"],
        "--max-outside-load '-5': out of range (expected a percentage of the usable cores >= 0)",
    ),
    (["--items", "inf"], "--items 'inf': not an integer (expected an integer >= 1)"),
    (["--max-trials", "0"], "--max-trials '0': out of range (expected an integer >= 1)"),
    (
        ["--faults", "slow=0.1xinf"],
        "--faults: fault plan 'slow=0.1xinf': slow factor xinf: must be >= 1 and finite",
    ),
    # issue 13: an explicitly blank value is an error; only an absent option takes the default
    (["--model", ""], "--model '': blank (expected a model spec; omit --model for the default, builtin:mlp)"),
    (["--model", "   "], "--model '   ': blank"),
    (["--input", ""], "--input '': blank (expected a .npy, .npz or .jsonl file, or omit --input)"),
    (["--faults", ""], "--faults '': blank"),
    (["--backends", " "], "--backends ' ': blank"),
    (["--strategy", ""], "--strategy '': blank"),
    (["--objective", ""], "--objective '': blank"),
    (["--name", ""], "--name '': blank"),
    (["--csv", ""], "--csv '': blank"),
    (["--summary", ""], "--summary '': blank"),
    (["--baseline", ""], "--baseline '': blank"),
    (["--results", ""], "--results '': blank"),
    (["--out", ""], "--out '': blank (expected a .yaml file, or omit --out)"),
    (["--bogus"], "unrecognized arguments: --bogus (try 'tuner bench --help')"),
    # a file the sweep would write at its end, into a folder that is not there: refused up front
    (["--summary", "no/such/dir/s.md"], "--summary no/such/dir/s.md: folder no/such/dir does not exist"),
    (["--csv", "nodir/r.csv"], "--csv nodir/r.csv: folder nodir does not exist"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "needle"), BAD_ARGS, ids=[" ".join(a) for a, _ in BAD_ARGS])
def test_bad_arguments_give_one_line_and_exit_2(tmp_path, tuner_cmd, clean_env, args, needle) -> None:
    out = tmp_path / "p.yaml"
    extra = [] if "--out" in args else ["--out", str(out)]
    p = bench(tuner_cmd, clean_env, *args, *extra, "--results", str(tmp_path / "r.jsonl"), cwd=tmp_path)
    assert p.returncode == 2, (p.stdout, p.stderr)
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("tuner: "), p.stderr
    assert needle in err[0]
    assert "Traceback" not in p.stderr
    assert p.stdout == ""
    assert sorted(x.name for x in tmp_path.iterdir()) == []  # nothing written


OTHER_COMMANDS = [
    # `tuner` alone opens the TUI: its options are checked before the app starts
    (["--budget", "nan"], "--budget 'nan': not a finite number (expected seconds > 0)"),
    (["tui", "--window", "inf"], "--window 'inf': not a finite number (expected seconds >= 0.01)"),
    (["--model", ""], "--model '': blank (expected a model spec; omit --model for the default, builtin:mlp)"),
    (["tui", "--results", ""], "--results '': blank (expected a .jsonl file, or omit --results)"),
    (["tui", "--profile", " "], "--profile ' ': blank"),
    (["tui", "--profiles-dir", ""], "--profiles-dir '': blank"),
    (["hw", "--bogus"], "unrecognized arguments: --bogus (try 'tuner hw --help')"),
    (["check", ""], "PROFILE '': blank (expected a profile file)"),
    (["schema", "extra"], "unrecognized arguments: extra (try 'tuner schema --help')"),
    (["bnech"], "invalid choice: 'bnech'"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "needle"), OTHER_COMMANDS, ids=[" ".join(a) for a, _ in OTHER_COMMANDS])
def test_bad_arguments_of_other_commands(tmp_path, tuner_cmd, clean_env, args, needle) -> None:
    # stdin closed and a timeout: an app that started anyway fails the test instead of hanging it
    p = subprocess.run(
        [*tuner_cmd, *args],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        timeout=30,
    )
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert p.stderr.splitlines() == [f"tuner: {p.stderr.strip().removeprefix('tuner: ')}"]
    assert needle in p.stderr
    assert p.stdout == ""
    assert list(tmp_path.iterdir()) == []  # no .tuner/ folder, no results file


def test_option_values_parse_once_with_ranges_stated() -> None:
    from tuner.errors import BadInput
    from tuner.options import finite, int_list, integer, non_blank

    assert int_list("--workers", "1-3, 8,2") == (1, 2, 3, 8)
    assert finite("--budget", " 2.5 ", gt=0) == 2.5
    assert integer("--retries", "0", ge=0) == 0
    assert non_blank("--out", " p.yaml") == " p.yaml"  # kept as given: only blank is refused
    cases = [
        (lambda: finite("x", "-inf", ge=0, le=1, what="a share"), "x '-inf': not a finite number (expected a share from 0 to 1)"),
        (lambda: finite("x", "1.5", ge=0, le=1, what="a share"), "x '1.5': out of range (expected a share from 0 to 1)"),
        (lambda: finite("x", "0", gt=0, le=5), "x '0': out of range (expected a number > 0 and <= 5)"),
        (lambda: integer("x", "2.0", ge=1), "x '2.0': not an integer (expected an integer >= 1)"),
        (lambda: int_list("x", "0-2"), "x '0-2': '0-2' is out of range (expected a list of integers >= 1, e.g. 1,2,4 or 1-4)"),
    ]  # fmt: skip
    for call, message in cases:
        with pytest.raises(BadInput) as e:
            call()
        assert str(e.value) == message


@pytest.mark.timeout(60)
def test_bad_profile_for_the_gate_names_file_and_line(tmp_path, tuner_cmd, clean_env) -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "profiles"
    p = bench(tuner_cmd, clean_env, "--baseline", str(fixtures / "duplicate_key.yaml"))
    assert p.returncode == 2
    assert p.stderr.startswith("tuner: ") and "duplicate_key.yaml line" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.timeout(120)
def test_a_budget_that_cannot_cover_the_space_says_what_it_cut(tmp_path, tuner_cmd, clean_env) -> None:
    p = bench(
        tuner_cmd, clean_env, "--model", "builtin:sleep", *FAST, "--strategy", "grid", "--items", "1024",
        "--backends", "thread", "--workers", "1,2", "--partition-sizes", "16,32,64,128", "--budget", "2",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    said = p.stdout.replace("\n", " ")
    assert "the budget (2 s) " in said and "raise --budget" in said, p.stdout
