"""Issue 18's "bugs and friction seen on the way", each pinned by a test that failed before its fix.

Fast tests (no sweep): the profile's model path, the outputs' dtype and failure mask, the busy-host
verdict of ``tuner check``, console numbers, the hedge's bound, ``tuner plan --p99-ms`` over every
candidate, ``make bench``'s output, the online winner kept only within the closed-loop noise, and
the open-loop search bounded by the closed loop. The ``tuner run`` lines are in
tests/runtime/test_run_command.py.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tuner import fmt
from tuner.bench.measure import check_feasible
from tuner.bench.online.search import SearchSettings, search_max_rate
from tuner.bench.online.step import StepResult
from tuner.bench.recommend import hedge_for, recommend
from tuner.bench.types import Objective, TrialConfig, TrialResult
from tuner.deployment import Deployment
from tuner.engine.hedging import HEDGE_BURST
from tuner.profile import load_profile, save_profile

ROOT = Path(__file__).resolve().parent.parent
GOOD = ROOT / "tests" / "fixtures" / "profiles" / "good.yaml"


# --------------------------------------------------------------------------- the model's path


def test_a_profiles_model_path_is_relative_to_the_profile_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written from the sweep's folder, read from anywhere: the spec names the same file."""
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    model = project / "models" / "m.py"
    model.write_text("def f(x):\n    return x\n", encoding="utf-8")
    profile = load_profile(GOOD)
    profile = profile.model_copy(update={"model": profile.model.model_copy(update={"spec": "models/m.py:f"})})

    monkeypatch.chdir(project)  # the sweep ran here, naming models/m.py
    written = save_profile(profile, project / "other" / "dir" / "p.yaml")
    stored = yaml.safe_load(written.read_text(encoding="utf-8"))["model"]["spec"]
    assert stored == "../../models/m.py:f"  # portable: relative to the profile, not to a cwd

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_profile(project / "other" / "dir" / "p.yaml").model.spec
    path, _, attr = spec.rpartition(":")
    assert attr == "f" and (elsewhere / path).resolve() == model.resolve(), spec


# --------------------------------------------------------------------------- the cold start


@pytest.mark.timeout(120)
def test_the_profiles_cold_start_is_a_fresh_process_starting_the_runtime(tmp_path: Path) -> None:
    """Not the sweep's warm workers' load time: Runtime(...).start() to ready in a new interpreter."""
    from tuner.bench.coldstart import measure_cold_start
    from tuner.bench.profiles import build_profile
    from tuner.bench.request import SweepRequest
    from tuner.hardware import probe
    from tuner.models import parse_spec

    rec = recommend([_trial(TrialConfig("process", 1, 1, 64), 1000.0)], Objective(), None)
    assert rec.deployment is not None
    said = "\n".join(rec.words)  # the trial's warm load time is not called a cold start
    assert "cold start" not in said and "workers loaded the model in 0.3 s in the sweep" in said, said
    cold = measure_cold_start(parse_spec("builtin:sleep"), rec.deployment)
    assert cold is not None and 0 < cold < 60
    rec.cold_start_s = cold
    profile = build_profile(
        rec, name="cold", request=SweepRequest(model="builtin:sleep"), host=probe(), info=None
    )
    assert profile.evidence.cold_start_s == cold != rec.best.cold_start_s  # type: ignore[union-attr]


# --------------------------------------------------------------------------- outputs of failed items


def test_failed_items_keep_each_outputs_dtype_and_are_marked_in_a_mask(tmp_path: Path) -> None:
    from tuner.commands.run import _write

    failures = [{"index": 1, "cause": "error", "message": "boom", "attempts": 1}]
    labels = [
        (np.int64(3), np.array([0.1, 0.9], dtype=np.float32)),
        None,
        (np.int64(7), np.array([0.5, 0.5], dtype=np.float32)),
    ]
    out = tmp_path / "out.npz"
    _write(out, tmp_path / "f.jsonl", labels, failures, ["label", "proba"])
    with np.load(out) as z:
        assert z["label"].dtype == np.int64 and z["label"].tolist() == [3, 0, 7]  # not float64 with NaN
        assert z["proba"].dtype == np.float32 and z["proba"].shape == (3, 2)
        assert z["failed"].tolist() == [False, True, False]

    npy = tmp_path / "out.npy"
    _write(npy, tmp_path / "g.jsonl", [np.int64(4), None], failures, [])
    assert np.load(npy).dtype == np.int64
    assert np.load(tmp_path / "out.failed.npy").tolist() == [False, True]
    _write(npy, tmp_path / "g.jsonl", [np.int64(4), np.int64(5)], [], [])  # a clean run: no stale mask
    assert not (tmp_path / "out.failed.npy").exists()


def test_when_every_item_fails_every_output_array_is_still_there(tmp_path: Path) -> None:
    from tuner.commands.run import _write

    failures = [{"index": i, "cause": "error", "message": "boom", "attempts": 1} for i in range(3)]
    out = tmp_path / "out.npz"
    _write(out, tmp_path / "f.jsonl", [None, None, None], failures, ["label", "proba"])
    with np.load(out) as z:
        assert set(z.files) == {"label", "proba", "failed"}
        assert len(z["label"]) == len(z["proba"]) == 3 and z["failed"].all()


# --------------------------------------------------------------------------- a busy host


def test_check_says_a_profile_measured_on_a_busy_host_and_require_clean_exits_3(
    tuner_cmd: list[str], tmp_path: Path
) -> None:
    text = GOOD.read_text(encoding="utf-8")
    assert "    contaminated: false\n" in text
    busy = tmp_path / "busy.yaml"
    busy.write_text(text.replace("    contaminated: false\n", "    contaminated: true\n"), encoding="utf-8")

    said = subprocess.run([*tuner_cmd, "check", str(busy)], capture_output=True, text=True, timeout=60)
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith(f"{busy}: valid, but measured on a busy host"), said.stdout
    assert ": ok —" not in said.stdout

    strict = subprocess.run(
        [*tuner_cmd, "check", "--require-clean", str(GOOD), str(busy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert strict.returncode == 3, strict.stderr
    assert f"measured on a busy host: {busy} (--require-clean)" in strict.stderr
    clean = subprocess.run(
        [*tuner_cmd, "check", "--require-clean", str(GOOD)], capture_output=True, text=True, timeout=60
    )
    assert clean.returncode == 0 and ": ok —" in clean.stdout


@pytest.mark.timeout(120)
def test_a_sweep_measured_only_on_a_busy_host_says_so_and_require_clean_exits_3(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every window reads 90% outside load: every trial is contaminated. The sweep's last line says
    so; with --require-clean it exits 3 (the gate's inconclusive) and writes no profile."""
    from tuner import hostload
    from tuner.cli import main

    busy = hostload.Interval(span_s=0.2, outside=0.9, steal=0.0, own=0.5, swap_mb_s=0.0)
    monkeypatch.setattr(hostload.HostSampler, "interval", lambda self, a, b: busy)
    out = tmp_path / "p.yaml"
    args = [
        "bench", "--model", "builtin:sleep", "--backends", "process", "--workers", "1", "--threads", "1",
        "--partition-sizes", "64", "--strategy", "grid", "--window", "0.1", "--items", "512", "--budget", "30",
        "--calibration", "0", "--out", str(out),
    ]  # fmt: skip
    assert main([*args, "--require-clean"]) == 3
    err = capsys.readouterr().err
    assert "measured on a busy host (contaminated: too few clean windows)" in err
    assert "(--require-clean: no profile written)" in err and not out.exists()
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "the recommendation was measured on a busy host" in err and "no profile written" not in err
    assert (
        "valid, but measured on a busy host"
        in subprocess.run(
            [sys.executable, "-m", "tuner", "check", str(out)], capture_output=True, text=True, timeout=60
        ).stdout
    )


# --------------------------------------------------------------------------- console numbers


SCI = re.compile(r"\de[+-]?\d")


def test_console_lines_have_no_scientific_notation() -> None:
    """The figures the issue saw as '1.5e+03 ms' and '2.44e+04 of 8.284e+04/s' read as a person writes them."""
    from tuner.bench.online.report import step_line
    from tuner.bench.online.step import judge

    ok, reasons = judge(
        rate=82_840.0, offered=24_400.0, achieved=24_000.0, p99_ms=1500.0, objective_ms=50.0, growing=False,
        slope=0.0, rejected=0, failed=0, unfinished=0,
    )  # fmt: skip
    said = "; ".join(reasons)
    assert not ok and not SCI.search(said), said
    assert "(24.4k of 82.8k/s)" in said and "p99 1,500 ms > objective 50 ms" in said
    line = step_line(
        dataclasses.replace(_step(82_840.0), offered=24_400.0, latency_ms={"p50": 300.0, "p99": 1500.0})
    )
    assert "p99 1,500 ms" in line and not SCI.search(line), line
    for x in (1.5e-7, 1.234e-4, 42.56, 1500.0, 24_400.0, 2.44e6, 3.1e9):
        for text in (fmt.sig(x), fmt.rate(x), fmt.ms(x), fmt.seconds(x)):
            assert not SCI.search(text), text


def test_a_log_gets_plain_lines_of_one_width(monkeypatch: pytest.MonkeyPatch) -> None:
    from tuner.commands.progress import LOG_WIDTH, Progress, console

    monkeypatch.delenv("COLUMNS", raising=False)
    assert console(stderr=True).width == LOG_WIDTH  # pytest's stderr is not a terminal
    assert Progress("grid", 10.0).live is False  # no bar redrawn into a log


# --------------------------------------------------------------------------- the hedge's bound


def test_the_hedging_line_states_the_token_buckets_real_bound() -> None:
    """5% of the partitions completed plus the bucket's burst: 6.3% over 100 partitions is within it."""
    delay, words = hedge_for({"p95": 9.1}, max_workers=2)
    assert delay == 9.1
    budget = f"{Deployment.hedge_budget:.0%}"
    assert (
        f"duplicate work at most {budget} of the partitions completed plus a burst of {HEDGE_BURST:g} copies"
        in words
    )
    assert f"{budget} + {HEDGE_BURST:g}/N" in words
    assert "within a budget of" not in words  # the old promise: 5%, which stats() exceeded
    assert Deployment.hedge_budget + HEDGE_BURST / 100 >= 0.063


# --------------------------------------------------------------------------- tuner plan --p99-ms


def test_plan_under_a_tighter_objective_names_another_candidate_that_meets_it() -> None:
    from online.helpers import online, profile

    from tuner.errors import TunerError
    from tuner.plan import make_plan

    other = dict(
        backend="thread", workers=2, threads_per_worker=1, max_batch_size=8, max_batch_delay_ms=1.0,
        max_rate_at_slo=800.0, p99_ms=37.0, steps=6,
    )  # fmt: skip
    p = profile(
        online(curve=[(500.0, 120.0, True), (1000.0, 152.0, True)], objective=200.0, candidates=[other])
    )
    with pytest.raises(TunerError) as e:
        make_plan(p, 100, p99_ms=50)
    said = str(e.value)
    assert "its lowest p99 measured was 120 ms" in said
    assert (
        "another configuration searched (thread ×2 · batch ≤8 · delay 1 ms) keeps p99 37 ms at 800/s" in said
    )


def test_plan_reads_the_other_batch_settings_of_the_same_pool_too() -> None:
    """The issue's case: the winner's curve reads 152 ms while a shorter delay of the same pool
    measured 37 ms; a candidate is a configuration × batching, not a pool."""
    from online.helpers import online, profile

    from tuner.errors import TunerError
    from tuner.plan import make_plan

    same_pool = dict(
        backend="process", workers=4, threads_per_worker=1, max_batch_size=16, max_batch_delay_ms=0.0,
        max_rate_at_slo=700.0, p99_ms=37.0, steps=6,
    )  # fmt: skip
    p = profile(
        online(curve=[(500.0, 120.0, True), (1000.0, 152.0, True)], objective=200.0, candidates=[same_pool])
    )
    with pytest.raises(
        TunerError,
        match=r"another configuration searched \(process ×4 · batch ≤16 · delay 0 ms\) keeps p99 37 ms",
    ):
        make_plan(p, 100, p99_ms=50)


def test_plan_at_another_objective_warns_when_another_candidate_sustained_more() -> None:
    from online.helpers import online, profile

    from tuner.plan import make_plan

    other = dict(
        backend="thread", workers=4, threads_per_worker=1, max_batch_size=16, max_batch_delay_ms=1.0,
        max_rate_at_slo=900.0, p99_ms=20.0, steps=6,
    )  # fmt: skip
    curve = [(200.0, 10.0, True), (400.0, 25.0, True), (1000.0, 40.0, True)]
    p = profile(online(curve=curve, objective=50.0, candidates=[other]))
    plan = make_plan(p, 100, p99_ms=30, headroom_pct=0)
    assert plan.per_host_rate == 400.0  # the profile's own curve, as before
    said = "\n".join(plan.warnings)
    assert (
        "another configuration searched (thread ×4 · batch ≤16 · delay 1 ms) sustained 900 requests/s with p99 20 ms <= 30 ms"
        in said
    )
    assert "more than this profile's 400/s at that objective" in said
    assert not make_plan(
        p, 100, p99_ms=50, headroom_pct=0
    ).warnings  # at the search's own objective: its winner


# --------------------------------------------------------------------------- make bench


def test_make_bench_writes_a_users_results_not_the_shipped_profile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    args = re.search(r"^BENCH_ARGS \?= (.*)$", makefile, re.M)
    assert args is not None
    out = re.search(r"--out (\S+)", args.group(1))
    assert out is not None and not out.group(1).startswith("profiles/"), args.group(1)
    folder = out.group(1).split("/")[0]
    ignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert any(line.strip("/") == folder for line in ignored), f"{folder}/ is not in .gitignore"


# --------------------------------------------------------------------------- the online winner


def _trial(config: TrialConfig, throughput: float, noise: float = 0.01) -> TrialResult:
    r = TrialResult(
        config=config, throughput=throughput, throughput_ci=(throughput * (1 - noise), throughput * (1 + noise)),
        latency_ms={"p50": 5.0, "p90": 8.0, "p95": 9.0, "p99": 10.0}, latency_ci_ms={"p99": (9.0, 11.0)},
        service_ms={"p50": 1.0, "p95": 1.5, "p99": 2.0, "p999": 3.0, "max": 4.0}, cpu_share=0.9,
        peak_rss_mb={"per_worker": 50.0, "total": 50.0 * config.workers}, stable=True, windows=[throughput] * 3,
        warmup_s=0.5, cold_start_s=0.3, measured_s=3.0, items=int(throughput * 3),
    )  # fmt: skip
    return check_feasible(r, Objective())


def test_the_online_winner_is_recommended_only_within_the_closed_loop_noise_of_the_best() -> None:
    best_cfg, near_cfg, slow_cfg = (TrialConfig("process", 2, 1, 64), TrialConfig("thread", 2, 1, 64),
                                    TrialConfig("process", 1, 1, 64))  # fmt: skip
    trials = [_trial(best_cfg, 1000.0), _trial(near_cfg, 990.0), _trial(slow_cfg, 600.0)]

    within = recommend(trials, Objective(), None, prefer=near_cfg)
    assert within.best is not None and within.best.config == near_cfg  # within the noise: the online winner
    assert not any("the best is kept" in w for w in within.words)

    below = recommend(trials, Objective(), None, prefer=slow_cfg)
    assert below.best is not None and below.best.config == best_cfg  # measured slower closed loop: not taken
    said = "\n".join(below.words)
    assert f"the online search's winner, {slow_cfg.label()}, measured 600 items/s closed loop" in said
    assert "the best is kept" in said


# --------------------------------------------------------------------------- open loop vs closed loop


def _step(rate: float) -> StepResult:
    """Every rate is sustainable: a search without a ceiling would climb past any closed-loop figure."""
    return StepResult(
        rate=rate, duration_s=1.0, objective_ms=50.0, requests=int(rate), sent=int(rate), offered=rate,
        achieved=rate, completed=int(rate), failed=0, rejected=0, unfinished=0, items_per_request=1.0,
        latency_ms={"p50": 4.0, "p99": 15.0}, latency_ci_ms={"p99": (10.0, 20.0)}, queue=[(0.5, 4), (0.9, 4)],
        queue_slope=0.0, queue_growing=False, batches={}, late=0, max_lag_ms=0.0, generator_behind=False,
        sustainable=True, reasons=[],
    )  # fmt: skip


@pytest.mark.parametrize("start", [100.0, 5000.0])
def test_the_open_loop_rate_never_exceeds_the_closed_loop_throughput(start: float) -> None:
    ceiling = 1234.0  # the configuration's closed-loop items/s (CI high end) / items per request
    found = search_max_rate(_step, start, SearchSettings(resolution=0.05), ceiling=ceiling)
    assert found.steps and max(s.rate for s in found.steps) <= ceiling
    assert found.max_rate <= ceiling and found.max_rate >= ceiling * 0.95
    assert found.stop_reason == "at the closed-loop throughput (the open-loop search offers no more)"
    unbounded = search_max_rate(_step, start, SearchSettings(resolution=0.05, max_steps=12))
    assert unbounded.max_rate > ceiling  # what the search claimed before it had a ceiling
