"""The trials table: one row per finished configuration, sortable, infeasible and unstable marked.

Sort with ``o`` (cycles the column) and ``O`` (reverses), or click a column header. Its ``results``
are bound to the run view's (``data_bind``): a finished trial appears without anyone pushing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.widgets import DataTable

from tuner.bench.types import TrialResult
from tuner.tui.format import ms, si, status_of

STATUS_STYLE = {
    "stable": "green",
    "unstable": "yellow",
    "contaminated": "yellow",  # the host was busy: the figures read low
    "infeasible": "bold red",
    "error": "bold red",
}

# (header, sort key); the key turns a result into something comparable.
COLUMNS: list[tuple[str, Callable[[int, TrialResult], Any]]] = [
    ("#", lambda i, r: i),
    (
        "configuration",
        lambda i, r: (
            r.config.backend,
            r.config.workers,
            r.config.threads_per_worker,
            r.config.partition_size,
        ),
    ),
    ("items/s", lambda i, r: r.throughput),
    ("p99", lambda i, r: r.latency_ms.get("p99", float("inf"))),
    ("status", lambda i, r: status_of(r)),
    ("CPU", lambda i, r: r.cpu_share),
    ("RSS", lambda i, r: r.peak_rss_mb.get("total", 0.0)),
]
NARROW = 72  # below this width the table uses short labels: "proc×2 t1 p64"


class TrialsTable(DataTable[Any]):
    """Finished trials; the best so far is starred."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "sort_next", "Sort by"),
        Binding("O", "sort_reverse", "Reverse", show=False),
    ]

    results: var[list[TrialResult]] = var(list)
    """The sweep's finished trials, in the order they finished."""

    def __init__(self) -> None:
        super().__init__(id="trials", zebra_stripes=True, cursor_type="row")
        self.sort_col = 0
        self.reverse = False
        self.border_title = "trials"
        self._narrow = False
        self._built_width = -1

    def on_mount(self) -> None:
        self._rebuild()

    def on_resize(self) -> None:
        # Rebuild on any width change: rows added while the Run view was hidden (width 0) were laid
        # out for no width, and the narrow/full labels depend on the width too. A few rows: cheap.
        if self.size.width != self._built_width:
            self._rebuild()

    def watch_results(self) -> None:
        if self.is_mounted:
            self._rebuild()

    def action_sort_next(self) -> None:
        self.sort_col = (self.sort_col + 1) % len(COLUMNS)
        # Bigger is better for throughput: show it best-first by default.
        self.reverse = COLUMNS[self.sort_col][0] in ("items/s",)
        self._rebuild()

    def action_sort_reverse(self) -> None:
        self.reverse = not self.reverse
        self._rebuild()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_index == self.sort_col:
            self.reverse = not self.reverse
        else:
            self.sort_col = event.column_index
            self.reverse = COLUMNS[self.sort_col][0] in ("items/s",)
        self._rebuild()

    def _rebuild(self) -> None:
        self.clear(columns=True)
        ok = [r for r in self.results if r.error is None and r.feasible]
        best = max(ok, key=lambda r: r.throughput) if ok else None
        key = COLUMNS[self.sort_col][1]
        order = sorted(enumerate(self.results, 1), key=lambda ir: key(*ir), reverse=self.reverse)
        self._built_width = self.size.width
        labels = [
            name + ((" ▼" if self.reverse else " ▲") if n == self.sort_col and n else "")
            for n, (name, _) in enumerate(COLUMNS)
        ]

        def layout(narrow: bool) -> tuple[list[tuple[int, list[Text | str]]], list[int]]:
            rows = [(i, _cells(i, r, r is best, narrow)) for i, r in order]
            # Explicit widths: Textual's auto width kept the header's width when the table was
            # cleared and refilled in one go, cutting "process ×2 · 1 thread · partition 64" short.
            widths = [
                max([len(label)] + [_cell_len(cs[n]) for _, cs in rows]) for n, label in enumerate(labels)
            ]
            return rows, widths

        self._narrow = 0 < self.size.width < NARROW
        rows, widths = layout(self._narrow)
        if not self._narrow and 0 < self.size.width < sum(widths) + 2 * len(widths) + 2:
            self._narrow = True  # full labels would push the last columns out of sight
            rows, widths = layout(True)
        for label, width, (name, _) in zip(labels, widths, COLUMNS, strict=True):
            self.add_column(label, key=name, width=width)
        for i, cells in rows:
            self.add_row(*cells, key=str(i))
        self.border_subtitle = f"{len(self.results)} trials · sorted by {COLUMNS[self.sort_col][0]} (o)"


def _cell_len(cell: Text | str) -> int:
    return Text(cell).cell_len if isinstance(cell, str) else cell.cell_len


def short_label(r: TrialResult) -> str:
    """``proc×2 t1 p64`` (``inl×1 tdef p2048``: the framework's own threads): the configuration when
    the table is narrow (80 columns)."""
    c = r.config
    threads = "def" if c.threads_per_worker is None else c.threads_per_worker
    return f"{c.kind.short}×{c.workers} t{threads} p{c.partition_size}"


def _cells(i: int, r: TrialResult, best: bool, narrow: bool = False) -> list[Text | str]:
    p99 = r.latency_ms.get("p99")
    thr = Text(si(r.throughput))
    lat = Text(ms(p99))
    if r.clean_throughput is not None and not narrow:
        # With faults injected the row shows both figures: as measured, and the same config clean.
        thr.append(f" ({si(r.clean_throughput)} clean)", style="dim")
    if r.clean_p99_ms is not None and not narrow:
        lat.append(f" ({ms(r.clean_p99_ms)})", style="dim")
    status = status_of(r)
    stext = Text(status, style=STATUS_STYLE[status])
    if r.retries:
        stext.append(f" · {r.retries} retried", style="dim")
    label = Text(
        ("★ " if best else "  ") + (short_label(r) if narrow else r.config.label()),
        style="bold" if best else "",
    )
    return [
        str(i),
        label,
        thr,
        lat,
        stext,
        f"{r.cpu_share * 100:.0f}%",
        f"{r.peak_rss_mb.get('total', 0.0):.0f} MB",
    ]
