"""Fixtures of the report's tests: recorded sweeps (``fixtures/``) and pages rendered from them.

The recordings are real ``tuner bench`` runs on the 2-core reference host (builtin:mlp, budget 20 s,
window 0.2 s): ``plain`` (closed loop), ``faults`` (``--faults crash=0.02``), ``online``
(``--online --p99-ms 50``) and ``grid40`` (a 40-trial grid, for the size benchmark).
"""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SWEEPS = ("plain", "faults", "online")


def profile_path(name: str) -> Path:
    return FIXTURES / f"{name}.yaml"


def results_path(name: str) -> Path:
    return FIXTURES / f"{name}.jsonl"


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every recorded sweep as a report, and two comparisons, written to a temporary folder."""
    from tuner.bench.session import load_results
    from tuner.profile import load_profile
    from tuner.report import render_comparison, render_report

    out = tmp_path_factory.mktemp("reports")
    paths: dict[str, Path] = {}
    for name in SWEEPS:
        text = render_report(load_profile(profile_path(name)), load_results(results_path(name)))
        paths[name] = out / f"{name}.html"
        paths[name].write_text(text, encoding="utf-8")
    bare = render_report(load_profile(profile_path("plain")))  # without results: the profile alone
    paths["bare"] = out / "bare.html"
    paths["bare"].write_text(bare, encoding="utf-8")
    pairs = {"compare": ("plain", "faults"), "compare-online": ("plain", "online")}
    for key, (a, b) in pairs.items():
        text = render_comparison(
            load_profile(profile_path(a)),
            load_profile(profile_path(b)),
            load_results(results_path(a)),
            load_results(results_path(b)),
        )
        paths[key] = out / f"{key}.html"
        paths[key].write_text(text, encoding="utf-8")
    return paths
