"""The results view: the recommendation in words, runner-ups, the Pareto chart, the comparison.

The comparison with a loaded profile is kept here and redrawn with every new recommendation, and
when the host (bound to the app's ``host``) turns out to be another than the profile's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import var
from textual.widgets import DataTable, Static

from tuner.bench.types import TrialResult
from tuner.tui.format import ms, si
from tuner.tui.widgets.charts import ParetoChart


class ResultsPane(Vertical):
    """What to deploy and why."""

    host: var[Any] = var(None)
    """This machine (tuner.hardware.Host; bound to the app's): a profile measured elsewhere says so."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.compared: tuple[Path, Any] | None = None  # (path, ScalingProfile) loaded to compare with
        self._best: TrialResult | None = None  # this sweep's recommended trial

    def compose(self) -> ComposeResult:
        with Horizontal(id="results-top"):
            with VerticalScroll(id="rec-scroll"):
                yield Static("No recommendation yet: run a sweep (s), then come back here.", id="rec-words")
            yield ParetoChart()
        with Horizontal(id="results-bottom"):
            table: DataTable[Any] = DataTable(id="runner-ups", cursor_type="row", zebra_stripes=True)
            table.border_title = "runner-ups"
            yield table
            cmp = Static("Load a profile (l) to compare this sweep with it.", id="compare")
            cmp.border_title = "compared with"
            yield cmp

    def on_mount(self) -> None:
        t = self.query_one("#runner-ups", DataTable)
        t.add_columns("configuration", "items/s", "p99", "vs best")

    def show(self, rec: Any, results: list[TrialResult], interrupted: bool) -> None:
        """Fill in from a Recommendation (or say why there is none)."""
        words = self.query_one("#rec-words", Static)
        chart = self.query_one(ParetoChart)
        table = self.query_one("#runner-ups", DataTable)
        table.clear()
        self._best = getattr(rec, "best", None)
        self._show_compare()
        lines = [w for w in (getattr(rec, "words", None) or []) if not w.strip().startswith("runner-ups:")]
        if rec is None or getattr(rec, "best", None) is None:
            why = (
                "the sweep was stopped before any trial finished"
                if interrupted and not results
                else "no configuration met the constraints"
                if results
                else "no trial finished"
            )
            text = Text(f"No recommendation: {why}.\n", style="bold yellow")
            for line in lines[1:]:
                text.append(line + "\n")
            words.update(text)
            chart.set_data(results, [], None)
            chart.redraw()
            return
        best: TrialResult = rec.best
        text = Text()
        # The first line is the headline ("Recommended: 2 worker processes × 1 BLAS thread, ...").
        head = lines[0] if lines else f"Recommended: {best.config.label()}"
        text.append(head + "\n", style="bold green")
        for line in lines[1:]:
            text.append(line + "\n")
        if not lines:
            text.append(_derived(rec) + "\n", style="dim")
        if interrupted:
            text.append("\nfrom a sweep stopped early: fewer configurations were measured\n", style="yellow")
        text.append("\ne exports it as a profile · l loads one to compare", style="dim italic")
        words.update(text)
        for r in getattr(rec, "runner_ups", []) or []:
            ratio = r.throughput / best.throughput if best.throughput else 0.0
            table.add_row(r.config.label(), si(r.throughput), ms(r.latency_ms.get("p99")), f"{ratio:.0%}")
        chart.set_data(results, list(getattr(rec, "pareto", []) or []), best)
        chart.redraw()

    def compare(self, path: Path, profile: Any) -> None:
        """Show ``profile`` (loaded from ``path``) beside this sweep's best, from now on."""
        self.compared = (path, profile)
        self._show_compare()

    def watch_host(self) -> None:
        self._show_compare()

    def _show_compare(self) -> None:
        if self.compared is None or not self.is_mounted:
            return
        path, profile = self.compared
        diff: list[str] = []
        if self.host is not None and profile.host.fingerprint != self.host.fingerprint():
            diff = [f"profile host: {profile.host.summary}"]
        self.query_one("#compare", Static).update(compare_text(str(path), profile, self._best, diff))


def compare_text(path: str, profile: Any, best: TrialResult | None, host_diff: list[str]) -> Text:
    """A loaded profile's figures beside this sweep's best, and whether it was measured here."""
    rec = profile.recommended
    ev = profile.evidence
    p99 = ev.latency_ms.p99 if ev.latency_ms is not None else None
    t = Text()
    t.append(f"{path}\n", style="bold")
    t.append(
        f"{rec.backend} ×{rec.workers} · {rec.threads_per_worker} thread(s) · partition {rec.partition_size}\n"
    )
    t.append(f"{si(ev.throughput)} items/s · p99 {ms(p99)} · measured {profile.created:%Y-%m-%d}\n")
    if best is not None:
        delta = (best.throughput / ev.throughput - 1) * 100 if ev.throughput else 0.0
        style = "green" if delta >= -5 else "bold red"
        t.append(f"this sweep's best: {si(best.throughput)} items/s ({delta:+.1f}%)", style=style)
        bp99 = best.latency_ms.get("p99")
        if bp99 is not None and p99:
            t.append(f", p99 {ms(bp99)} ({(bp99 / p99 - 1) * 100:+.0f}%)")
        t.append("\n")
    load = getattr(ev, "host_load", None)
    if load is not None:
        busy = load.contaminated or load.windows_discarded
        t.append(load.words(profile.host.usable_cores) + "\n", style="yellow" if busy else "dim")
    if host_diff:
        t.append("measured on another host: " + "; ".join(host_diff), style="yellow")
    else:
        t.append("same host fingerprint", style="dim")
    return t


def _derived(rec: Any) -> str:
    parts = []
    timeout = getattr(rec, "timeout_s", None)
    if timeout:
        parts.append(f"timeout {timeout:g} s")
    retries = getattr(rec, "retries", None)
    if retries is not None:
        parts.append(f"{retries} retries")
    lo, hi = getattr(rec, "min_workers", None), getattr(rec, "max_workers", None)
    if lo is not None and hi is not None:
        parts.append(f"autoscale {lo}–{hi} workers")
    return " · ".join(parts)
