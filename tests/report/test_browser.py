"""The reports in headless Chromium: what a reader sees.

One browser for the module (:func:`report.browser.observe` opens every page, reads it and closes
the browser before the first test body runs), Debian's chromium driven by Playwright. Skipped, with
one line saying why, where there is no Chromium or no Playwright.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from report.browser import Seen, Visit, observe, skip_reason
from report.conftest import SWEEPS, profile_path, results_path
from tuner.bench.session import load_results
from tuner.profile import load_profile
from tuner.report.compare import judge
from tuner.report.data import trials_from_results
from tuner.report.view import fmt_ms, fmt_rate

pytestmark = [
    pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason())),
    pytest.mark.timeout(180),
]

PAGES = [*SWEEPS, "bare", "compare", "compare-online"]


@pytest.fixture(scope="module")
def seen(pages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Seen]:
    out = tmp_path_factory.mktemp("browser")
    visits = {name: Visit(pages[name]) for name in PAGES}
    visits["plain"] = Visit(pages["plain"], click_sort="workers", pdf=out / "plain.pdf")
    visits["faults"] = Visit(pages["faults"], pdf=out / "faults.pdf")
    visits["compare"] = Visit(pages["compare"], pdf=out / "compare.pdf")
    visits["plain-nojs"] = Visit(pages["plain"], javascript=False)
    visits["online-dark"] = Visit(pages["online"], scheme="dark", pdf=out / "online-dark.pdf")
    names = list(visits)
    return dict(zip(names, observe([visits[n] for n in names]), strict=True))


@pytest.mark.parametrize("name", [*PAGES, "plain-nojs", "online-dark"])
def test_no_console_error_and_nothing_fetched(seen: dict[str, Seen], name: str) -> None:
    s = seen[name]
    assert s.errors == []
    assert [m for m in s.console if m[0] in ("error", "warning")] == []
    assert s.requests == []


@pytest.mark.parametrize("name", [*PAGES, "plain-nojs", "online-dark"])
def test_every_chart_is_drawn_with_labelled_axes_and_nothing_cut(seen: dict[str, Seen], name: str) -> None:
    charts = seen[name].page["charts"]
    assert {"chart-throughput", "chart-latency", "chart-pareto"} <= {c["id"] for c in charts}
    for c in charts:
        assert c["axes"].get("x") and c["axes"].get("y"), c["id"]
        assert c["points"] and all(p["visible"] for p in c["points"]), c["id"]
        assert c["cut"] == [], f"{c['id']}: text outside the chart: {c['cut']}"
        assert c["width"] > 300 and c["legend"], c["id"]


@pytest.mark.parametrize("name", SWEEPS)
def test_the_points_counted_against_the_results(seen: dict[str, Seen], name: str) -> None:
    trials = trials_from_results(load_results(results_path(name)))
    charts = {c["id"]: c for c in seen[name].page["charts"]}
    throughput = charts["chart-throughput"]["points"]
    assert sorted((p["key"], p["x"], p["y"]) for p in throughput) == sorted(
        (t.key, float(t.workers), t.throughput) for t in trials if t.throughput > 0
    )
    pareto = charts["chart-pareto"]["points"]
    assert sorted((p["x"], p["y"]) for p in pareto) == sorted(
        (t.throughput, t.latency["p99"]) for t in trials
    )
    assert len(charts["chart-latency"]["points"]) == sum(len(t.latency) for t in trials)
    assert len(seen[name].page["trials"]) == len(trials)


def test_the_online_curve_is_the_profiles(seen: dict[str, Seen]) -> None:
    online = load_profile(profile_path("online")).online
    assert online is not None
    (chart,) = [c for c in seen["online"].page["charts"] if c["id"] == "chart-online"]
    p99 = sorted((p["x"], p["y"]) for p in chart["points"] if p["series"] == "p99")
    assert p99 == sorted((s.offered, s.p99_ms) for s in online.curve if s.p99_ms is not None)
    assert chart["axes"] == {"x": "offered load, requests/s", "y": "request latency, ms"}
    fields = seen["online"].page["fields"]
    assert float(fields["max-rate"]["value"]) == online.max_rate_at_slo


@pytest.mark.parametrize("name", [*SWEEPS, "bare"])
def test_the_recommendations_numbers_are_the_profiles(seen: dict[str, Seen], name: str) -> None:
    ev = load_profile(profile_path("plain" if name == "bare" else name)).evidence
    fields = seen[name].page["fields"]
    assert float(fields["throughput"]["value"]) == ev.throughput
    assert fields["throughput"]["text"] == f"{fmt_rate(ev.throughput)} items/s"
    assert ev.latency_ms is not None and ev.latency_ms.p99 is not None
    assert float(fields["p99"]["value"]) == ev.latency_ms.p99
    assert fields["p99"]["text"] == fmt_ms(ev.latency_ms.p99)
    assert ev.throughput_ci is not None
    lo, hi = ev.throughput_ci
    assert f"(95% CI {fmt_rate(lo)}–{fmt_rate(hi)})" in seen[name].page["text"]


@pytest.mark.parametrize(
    ("name", "a", "b"), [("compare", "plain", "faults"), ("compare-online", "plain", "online")]
)
def test_the_comparisons_changed_rows_are_what_the_statistics_say(
    seen: dict[str, Seen], name: str, a: str, b: str
) -> None:
    pa, pb = load_profile(profile_path(a)), load_profile(profile_path(b))
    rows = {r["metric"]: r for r in seen[name].page["changes"]}

    def apart(x: tuple[float, float] | None, y: tuple[float, float] | None) -> str:
        if x is None or y is None:
            return "unknown"
        return "yes" if y[0] > x[1] or y[1] < x[0] else "no"

    assert rows["throughput"]["changed"] == apart(pa.evidence.throughput_ci, pb.evidence.throughput_ci)
    ca, cb = pa.evidence.latency_ci_ms, pb.evidence.latency_ci_ms
    assert rows["p99"]["changed"] == apart(ca.p99 if ca else None, cb.p99 if cb else None)
    ra, rb = pa.recommended, pb.recommended
    same = (ra.backend, ra.workers, ra.threads_per_worker, ra.partition_size) == (
        rb.backend, rb.workers, rb.threads_per_worker, rb.partition_size)  # fmt: skip
    assert rows["configuration"]["changed"] == ("no" if same else "yes")
    assert seen[name].page["hosts"] == ("same" if pa.host.fingerprint == pb.host.fingerprint else "different")
    # every configuration both sweeps measured, judged the same way
    ta = {t.key: t for t in trials_from_results(load_results(results_path(a)))}
    tb = {t.key: t for t in trials_from_results(load_results(results_path(b)))}
    pairs = {r["key"]: r for r in seen[name].page["pairs"]}
    assert set(pairs) == set(ta) & set(tb)
    for key, row in pairs.items():
        expected = judge(ta[key].ci, tb[key].ci)
        assert row["throughputChanged"] == {"within": "no", "unknown": "unknown"}.get(expected, "yes")


def test_overlaid_charts_hold_both_runs(seen: dict[str, Seen]) -> None:
    charts = {c["id"]: c for c in seen["compare"].page["charts"]}
    series = {p["series"][:2] for p in charts["chart-throughput"]["points"]}
    assert series == {"A:", "B:"}
    n = len(trials_from_results(load_results(results_path("plain")))) + len(
        trials_from_results(load_results(results_path("faults")))
    )
    assert len(charts["chart-pareto"]["points"]) == n


def test_with_javascript_off_everything_is_there_but_sorting(seen: dict[str, Seen]) -> None:
    on, off = seen["plain"].page, seen["plain-nojs"].page
    assert off["sortButtons"] == 0 and on["sortButtons"] > 0
    assert [(c["id"], len(c["points"])) for c in off["charts"]] == [
        (c["id"], len(c["points"])) for c in on["charts"]
    ]
    assert [r["key"] for r in off["trials"]] == [r["key"] for r in on["trials"]]


def test_the_trials_table_sorts_by_a_column(seen: dict[str, Seen]) -> None:
    after = seen["plain"].after_sort
    assert after is not None
    workers = [int(r["cells"][1]) for r in after["trials"]]
    assert workers == sorted(workers) and workers != [
        int(r["cells"][1]) for r in seen["plain"].page["trials"]
    ]


def test_dark_scheme_and_readable_text(seen: dict[str, Seen]) -> None:
    light, dark = seen["online"].page, seen["online-dark"].page
    assert light["bodyBackground"] != dark["bodyBackground"] and light["bodyColor"] != dark["bodyColor"]
    assert {c["markFill"] for c in light["charts"]} != {c["markFill"] for c in dark["charts"]}
    for name in PAGES:
        assert seen[name].page["minFontPx"] >= 12, name
        assert seen[name].page["scrollWidth"] <= seen[name].page["clientWidth"], f"{name} scrolls sideways"


@pytest.mark.parametrize("name", ["plain", "faults", "compare", "online-dark"])
def test_prints_to_a4_without_cut_charts(
    seen: dict[str, Seen], name: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    s = seen[name]
    assert s.print_page is not None
    assert s.print_page["scrollWidth"] <= s.print_page["clientWidth"], "wider than an A4 page"
    for c in s.print_page["charts"]:
        assert c["width"] <= s.print_page["clientWidth"] and c["cut"] == [], c["id"]
    pdfs = list(tmp_path_factory.getbasetemp().glob(f"browser*/{name}.pdf"))
    assert pdfs and pdfs[0].read_bytes().startswith(b"%PDF")
    assert pdfs[0].read_bytes().count(b"/Type /Page") >= 2
