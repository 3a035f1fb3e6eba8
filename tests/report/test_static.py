"""The page as a file: self-contained, complete without JavaScript (every chart, axis and point is
markup), in the reader's order — checked on the markup itself, no browser needed."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from report.conftest import SWEEPS, profile_path, results_path
from tuner.bench.session import load_results
from tuner.profile import load_profile
from tuner.report.data import trials_from_results


class Markup(HTMLParser):
    """The elements of a page as (tag, attributes, enclosing figure id), and the text of each."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str], str | None]] = []
        self.texts: list[tuple[str, dict[str, str], str]] = []
        self._stack: list[tuple[str, dict[str, str]]] = []
        self._figure: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "figure":
            self._figure.append(a.get("data-chart", ""))
        self.elements.append((tag, a, self._figure[-1] if self._figure else None))
        if tag not in ("meta", "path", "br", "use"):
            self._stack.append((tag, a))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(
            (tag, {k: v or "" for k, v in attrs}, self._figure[-1] if self._figure else None)
        )

    def handle_endtag(self, tag: str) -> None:
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break
        if tag == "figure" and self._figure:
            self._figure.pop()

    def handle_data(self, data: str) -> None:
        if self._stack and data.strip():
            tag, a = self._stack[-1]
            self.texts.append((tag, a, data.strip()))

    def points(self, chart: str) -> list[dict[str, str]]:
        return [
            a
            for t, a, fig in self.elements
            if fig == chart and t == "g" and "pt" in a.get("class", "").split()
        ]

    def charts(self) -> list[str]:
        return [a["data-chart"] for t, a, _ in self.elements if t == "figure" and "data-chart" in a]


def _page(pages: dict[str, Path], name: str) -> tuple[str, Markup]:
    text = pages[name].read_text(encoding="utf-8")
    return text, Markup(text)


@pytest.mark.parametrize("name", [*SWEEPS, "bare", "compare", "compare-online"])
def test_one_file_nothing_fetched(pages: dict[str, Path], name: str) -> None:
    text, m = _page(pages, name)
    assert not [
        a for t, a, _ in m.elements if t in ("link", "img", "iframe") or (t == "script" and "src" in a)
    ]
    urls = set(re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", text)) - {"http://www.w3.org/2000/svg"}
    assert not urls, f"the page refers to {urls}"
    assert len(text.encode()) < 1_000_000


@pytest.mark.parametrize("name", [*SWEEPS, "bare", "compare", "compare-online"])
def test_every_chart_has_labelled_axes_and_points_in_the_markup(pages: dict[str, Path], name: str) -> None:
    _, m = _page(pages, name)
    charts = m.charts()
    assert {"chart-throughput", "chart-latency", "chart-pareto"} <= set(charts)
    labels = [(a.get("data-axis"), text) for tag, a, text in m.texts if "axis-label" in a.get("class", "")]
    assert len([x for x in labels if x[0] == "x"]) == len(charts) == len([x for x in labels if x[0] == "y"])
    assert all(text for _, text in labels)
    for chart in charts:
        assert m.points(chart), f"{chart} has no data points in the markup"


def _trials(name: str) -> list:  # type: ignore[type-arg]
    return trials_from_results(load_results(results_path(name)))


@pytest.mark.parametrize("name", SWEEPS)
def test_the_points_are_the_trials(pages: dict[str, Path], name: str) -> None:
    _, m = _page(pages, name)
    trials = _trials(name)
    assert len(m.points("chart-throughput")) == len([t for t in trials if t.throughput > 0])
    assert len(m.points("chart-pareto")) == len([t for t in trials if "p99" in t.latency])
    assert len(m.points("chart-latency")) == sum(len(t.latency) for t in trials)
    assert {p["data-key"] for p in m.points("chart-throughput")} == {t.key for t in trials}
    assert len(m.points("chart-host-load")) == len([t for t in trials if t.outside is not None])
    rows = [a for t, a, _ in m.elements if t == "tr" and "data-key" in a]
    assert len(rows) == len(trials)


def test_faults_and_online_sections_chart_what_was_measured(pages: dict[str, Path]) -> None:
    _, faults = _page(pages, "faults")
    with_faults = [t for t in _trials("faults") if t.faults]
    points = faults.points("chart-faults")
    assert len(points) == len(with_faults) + len([t for t in with_faults if t.clean_throughput])
    _, online = _page(pages, "online")
    o = load_profile(profile_path("online")).online
    assert o is not None
    expected = len([s for s in o.curve if s.p99_ms is not None]) + len([s for s in o.curve if s.p50_ms])
    assert len(online.points("chart-online")) == expected


def test_the_sections_come_in_the_readers_order(pages: dict[str, Path]) -> None:
    _, m = _page(pages, "online")
    sections = [a["id"] for t, a, _ in m.elements if t == "section"]
    assert sections == [
        "recommendation",
        "host",
        "throughput",
        "latency",
        "pareto",
        "faults",
        "online",
        "trials",
        "reproduce",
    ]


def test_without_javascript_the_trials_are_fastest_first(pages: dict[str, Path]) -> None:
    _, m = _page(pages, "plain")
    keys = [a["data-key"] for t, a, _ in m.elements if t == "tr" and "data-key" in a]
    by_speed = [t.key for t in sorted(_trials("plain"), key=lambda t: -t.throughput)]
    assert keys == by_speed


def test_a_light_and_a_dark_scheme_and_a4_print_rules(pages: dict[str, Path]) -> None:
    text = pages["plain"].read_text(encoding="utf-8")
    assert "@media (prefers-color-scheme:dark)" in text
    assert "@page{size:A4" in text and "break-inside:avoid" in text
