"""The adapter (tuner.report.data) and the comparison's rule, without a browser."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from report.conftest import profile_path, results_path
from tuner.bench.session import load_results
from tuner.profile import CalibrationRecord, load_profile
from tuner.report import render_comparison, render_report
from tuner.report.compare import config_change, headline_changes, hosts_alike, judge
from tuner.report.data import reconstructed_command, run_from_profile, run_from_results
from tuner.report.view import fmt_rate
from tuner.stats import median


def _lines(name: str) -> list[dict]:
    return [json.loads(line) for line in results_path(name).read_text().splitlines() if line.strip()]


def test_a_confirmed_winner_written_twice_is_one_trial_with_its_merged_figures() -> None:
    profile, results = load_profile(profile_path("plain")), load_results(results_path("plain"))
    run = run_from_profile(profile, results)
    configs = {json.dumps(d["config"], sort_keys=True) for d in _lines("plain")}
    assert len(results) == len(configs) + 1  # the recording has the confirmation's second line
    assert len(run.trials) == len(configs)
    (rec,) = [t for t in run.trials if t.recommended]
    assert rec.throughput == profile.evidence.throughput  # the merged line is what the profile records
    assert (rec.backend, rec.workers, rec.partition) == (
        profile.recommended.backend,
        profile.recommended.workers,
        profile.recommended.partition_size,
    )


def test_without_results_the_page_charts_what_the_profile_names_and_says_so() -> None:
    profile = load_profile(profile_path("plain"))
    run = run_from_profile(profile)
    named = {
        (c.backend, c.workers, c.partition_size)
        for c in [*profile.evidence.pareto, *profile.evidence.runner_ups]
    }
    assert {(t.backend, t.workers, t.partition) for t in run.trials} >= named
    assert sum(t.recommended for t in run.trials) == 1
    assert run.notes and "--results" in run.notes[0]
    assert "no results file" in render_report(profile)


def test_the_gates_repeats_are_pooled_as_the_gate_pools_them() -> None:
    results = load_results(results_path("plain"))[:3]
    config = results[0].config
    repeats = [r.__class__(**{**r.__dict__, "config": config}) for r in results]
    run = run_from_results(repeats, name="gate", model="builtin:mlp")
    (t,) = run.trials
    assert t.throughput == sorted(r.throughput for r in repeats)[1]  # the median of three
    assert t.status.startswith("median of 3 clean trials")
    assert run.rec is not None and run.rec.throughput == t.throughput


def test_the_gates_report_is_a_comparison_with_its_verdict() -> None:
    profile = load_profile(profile_path("plain"))
    results = load_results(results_path("plain"))
    best = [r for r in results if r.config.partition_size == 1024 and r.config.workers == 2]
    repeats = [best[-1].__class__(**{**r.__dict__, "config": best[-1].config}) for r in results[:3]]
    repeats[0] = repeats[0].__class__(**{**repeats[0].__dict__, "contaminated": True, "throughput": 1.0})
    host = SimpleNamespace(
        fingerprint=lambda: "0123456789abcdef", summary=lambda: "another host", usable_cores=4
    )
    html = render_comparison(
        profile, None, results_b=repeats, host_b=host, verdict="throughput fell — REGRESSION"
    )
    assert "The gate&#x27;s verdict: throughput fell — REGRESSION" in html
    assert 'data-hosts="different"' in html and "another host" in html
    clean = median([r.throughput for r in repeats[1:]])  # the contaminated one left out, as the gate does
    assert f"<td>{fmt_rate(clean)} items/s</td>" in html


def test_fields_a_later_profile_adds_are_read_when_present() -> None:
    """evidence.baseline gains a throughput_ci, host a calibration section, online steps their CPU (cores)."""
    profile = load_profile(profile_path("online"))
    base = profile.evidence.baseline
    assert base is not None
    profile.evidence.__dict__["baseline"] = SimpleNamespace(**{**dict(base), "throughput_ci": (100.0, 120.0)})
    good = yaml.safe_load((Path(__file__).parents[1] / "fixtures" / "profiles" / "good.yaml").read_text())
    profile.host.__dict__["calibration"] = CalibrationRecord.model_validate(good["host"]["calibration"])
    assert profile.online is not None
    step = profile.online.curve[0]
    profile.online.curve[0] = step.model_copy(update={"cpu_cores": 0.42})
    run = run_from_profile(profile)
    assert run.rec is not None and run.rec.baseline_ci == (100.0, 120.0)
    assert ("host speed: python", "4.42 Mloop/s on 1 core, 8.7 on 2 (×1.97)") in run.host.facts
    assert run.online is not None and any(s.cpu == 0.42 for s in run.online.steps)
    html = render_report(profile)
    assert "beyond both confidence intervals" in html and "CPU 0.42 cores" in html


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ((10.0, 12.0), (13.0, 14.0), "higher"),
        ((10.0, 12.0), (8.0, 9.5), "lower"),
        ((10.0, 12.0), (11.0, 13.0), "within"),
        ((10.0, 12.0), (12.0, 13.0), "within"),  # touching intervals overlap
        ((10.0, None), (20.0, 30.0), "within"),  # an open high: no failing rate above
        (None, (1.0, 2.0), "unknown"),
    ],
)
def test_changed_means_the_two_intervals_do_not_overlap(a, b, expected) -> None:  # type: ignore[no-untyped-def]
    assert judge(a, b) == expected


def test_the_headline_changes_follow_the_profiles_intervals() -> None:
    a, b = load_profile(profile_path("plain")), load_profile(profile_path("faults"))
    ra, rb = run_from_profile(a), run_from_profile(b)
    changes = {c.metric: c for c in headline_changes(ra, rb)}
    ta, tb = a.evidence.throughput_ci, b.evidence.throughput_ci
    assert ta is not None and tb is not None
    overlap = not (tb[0] > ta[1] or tb[1] < ta[0])
    assert changes["throughput"].changed == ("no" if overlap else "yes")
    assert config_change(ra, rb)[2] == "no"  # both recommend process ×2 · 1 thread · partition 1024
    assert hosts_alike(ra, rb)[0] == "same"


def test_another_host_is_said() -> None:
    a = load_profile(profile_path("plain"))
    b = load_profile(profile_path("faults"))
    b.host.__dict__["fingerprint"] = "0123456789abcdef"
    b.host.__dict__["usable_cores"] = 8
    html = render_comparison(a, b)
    assert 'data-hosts="different"' in html and "8 usable" in html


def test_the_reconstructed_command_measures_the_same_thing() -> None:
    assert reconstructed_command(load_profile(profile_path("plain"))).startswith(
        "tuner bench --model builtin:mlp"
    )
    assert "--faults crash=0.02" in reconstructed_command(load_profile(profile_path("faults")))
    online = reconstructed_command(load_profile(profile_path("online")))
    assert "--online" in online and "--p99-ms 50" in online


def test_an_exact_command_is_shown_as_given() -> None:
    profile = load_profile(profile_path("plain"))
    html = render_report(profile, command="tuner bench --model builtin:mlp --budget 20")
    assert "tuner bench --model builtin:mlp --budget 20" in html and "does not record its command" not in html


def test_the_recommendations_figures_are_the_profiles() -> None:
    profile = load_profile(profile_path("faults"))
    html = render_report(profile, load_results(results_path("faults")))
    assert f'data-field="throughput" data-value="{profile.evidence.throughput!r}"' in html
    assert f">{fmt_rate(profile.evidence.throughput)} items/s<" in html


def test_a_probed_host_reads_like_the_profiles_host() -> None:
    """The gate passes a tuner.hardware.Host: its facts must compare equal to the profile's."""
    from tuner.report.data import host_view

    profile = load_profile(profile_path("plain"))
    h = profile.host
    probed = SimpleNamespace(
        fingerprint=lambda: h.fingerprint, summary=lambda: h.summary, usable_cores=h.usable_cores,
        logical_cores=h.logical_cores, physical_cores=h.physical_cores, memory_total_bytes=h.memory_total_gb * 1e9,
        cpu_model=h.cpu_model, platform=h.platform, machine=h.machine,
        blas=[{"internal_api": "openblas", "version": "0.3.31.dev"}],
    )  # fmt: skip
    assert host_view(probed).facts == host_view(h).facts
