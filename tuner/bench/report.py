"""Sweep results for people and machines: a rich table, plotext charts, Markdown, CSV, a JSON summary.

Only the headless command imports this (rich and plotext are loaded on first use).
"""

from __future__ import annotations

import csv
import io
import math
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.bench.recommend import Recommendation
from tuner.bench.types import TrialResult

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["charts", "csv_text", "json_summary", "markdown_summary", "results_table", "status_of"]


def status_of(r: TrialResult, best: TrialResult | None = None) -> str:
    """:attr:`TrialResult.status` with its reasons: 'best · stable · 1 busy window discarded',
    'infeasible: ...', 'error: ...' (the CLI's table; the TUI shows the one word)."""
    if r.error:
        return f"error: {r.error}"
    if not r.feasible:
        return "infeasible: " + "; ".join(r.infeasible_reasons)
    tag = r.status
    n = len(r.discarded_windows)
    if r.contaminated:
        tag = "contaminated: host busy"
    elif n:
        tag += f" · {n} busy window{'s' if n != 1 else ''} discarded"
    if r.threads.get("over"):
        tag += " · threads over"  # more threads ran than the knobs allow (tuner.bench.threads)
    return f"best · {tag}" if best is not None and r is best else tag


def _sorted(results: list[TrialResult]) -> list[TrialResult]:
    return sorted(results, key=lambda r: (not r.feasible, -r.throughput))


def results_table(results: list[TrialResult], best: TrialResult | None = None) -> Table:
    """One row per trial, best first; infeasible and unstable trials marked, not hidden."""
    from rich.table import Table

    t = Table(title="trials", title_justify="left", show_lines=False)
    any_faults = any(r.faults for r in results)
    cols = [("configuration", "left"), ("items/s", "right"), ("95% CI", "right"), ("p50", "right"),
            ("p99", "right"), ("CPU", "right"), ("RSS", "right")]  # fmt: skip
    if any_faults:
        cols.append(("faults", "right"))
    cols.append(("status", "left"))
    for col, just in cols:
        t.add_column(col, justify=just, no_wrap=col != "status")  # type: ignore[arg-type]
    for r in _sorted(results):
        style = (
            "bold green" if r is best else ("red" if not r.feasible else ("yellow" if not r.stable else ""))
        )
        lo, hi = r.throughput_ci
        row = [
            r.config.label(),
            fmt.rate(r.throughput),
            f"{fmt.rate(lo)}–{fmt.rate(hi)}" if r.throughput else "–",
            fmt.ms(r.latency_ms.get("p50")),
            fmt.ms(r.latency_ms.get("p99")),
            f"{r.cpu_share:.0%}",
            f"{r.peak_rss_mb.get('total', 0):.0f} MB" if r.peak_rss_mb else "–",
        ]
        if any_faults:
            clean = f" (clean {fmt.rate(r.clean_throughput)}/s)" if r.clean_throughput else ""
            row.append(f"{sum(r.faults_seen.values())} seen, {r.retries} retried{clean}" if r.faults else "")
        row.append(status_of(r, best))
        t.add_row(*row, style=style)
    return t


def charts(results: list[TrialResult], width: int = 100, height: int = 18) -> str:
    """Two plotext charts as text: throughput vs workers (a line per partition size), p99 vs throughput."""
    import plotext as plt

    ok = [r for r in results if r.throughput > 0 and not r.error]
    if not ok:
        return ""
    out = []
    # plotext's module functions share one global figure: clear it before and after each chart.
    plt.clf()
    plt.plotsize(width, height)
    plt.theme("clear")
    for size in sorted({r.config.partition_size for r in ok}):
        best_at: dict[int, float] = {}
        for r in ok:
            if r.config.partition_size == size:
                best_at[r.config.workers] = max(best_at.get(r.config.workers, 0.0), r.throughput)
        xs = sorted(best_at)
        plt.plot(xs, [best_at[x] for x in xs], label=f"partition {size}", marker="dot")
    plt.title("throughput (items/s) vs workers — best over backends and threads")
    plt.xlabel("workers")
    plt.xticks(sorted({r.config.workers for r in ok}))
    out.append(plt.build())
    plt.clf()
    pts = [r for r in ok if r.latency_ms.get("p99") is not None]
    if pts:
        plt.plotsize(width, height)
        plt.theme("clear")
        plt.scatter([r.throughput for r in pts], [r.latency_ms["p99"] for r in pts], marker="dot")
        plt.title("p99 latency (ms) vs throughput (items/s)")
        plt.xlabel("items/s")
        out.append(plt.build())
        plt.clf()
    return "\n".join(out)


def csv_text(results: list[TrialResult]) -> str:
    """One CSV row per trial."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "backend",
            "workers",
            "threads_per_worker",
            "partition_size",
            "throughput",
            "throughput_ci_low",
            "throughput_ci_high",
            "p50_ms",
            "p90_ms",
            "p95_ms",
            "p99_ms",
            "service_p99_ms",
            "cpu_share",
            "peak_rss_total_mb",
            "stable",
            "feasible",
            "faults",
            "faults_seen",
            "retries",
            "clean_throughput",
            "clean_p99_ms",
            "error",
            "outside_load",
            "outside_load_max",
            "windows_discarded",
            "contaminated",
        ]
    )
    for r in results:
        c = r.config
        w.writerow(
            [
                c.backend,
                c.workers,
                c.threads_per_worker,
                c.partition_size,
                r.throughput,
                r.throughput_ci[0],
                r.throughput_ci[1],
                *(r.latency_ms.get(k, "") for k in ("p50", "p90", "p95", "p99")),
                r.service_ms.get("p99", ""),
                r.cpu_share,
                r.peak_rss_mb.get("total", ""),
                r.stable,
                r.feasible,
                r.faults or "",
                sum(r.faults_seen.values()),
                r.retries,
                r.clean_throughput if r.clean_throughput is not None else "",
                r.clean_p99_ms if r.clean_p99_ms is not None else "",
                r.error or "",
                r.outside.cpu if r.outside is not None else "",
                r.outside.cpu_max if r.outside is not None else "",
                len(r.discarded_windows),
                r.contaminated,
            ]
        )
    return buf.getvalue()


def markdown_summary(
    results: list[TrialResult],
    rec: Recommendation | None,
    *,
    title: str,
    host: str,
    gate_line: str | None = None,
) -> str:
    """A Markdown summary that suits a CI job summary (``$GITHUB_STEP_SUMMARY``)."""
    lines = [f"## {title}", "", f"Host: {host}", ""]
    if gate_line:
        lines += [f"**Regression gate:** {gate_line}", ""]
    if rec is not None:
        lines += ["```", *rec.words, "```", ""]
    if results:
        best = rec.best if rec is not None else None
        lines += [
            "| configuration | items/s | 95% CI | p50 | p99 | CPU | status |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for r in _sorted(results):
            lo, hi = r.throughput_ci
            lines.append(
                f"| {r.config.label()} | {fmt.rate(r.throughput)} | {fmt.rate(lo)}–{fmt.rate(hi)} | "
                f"{fmt.ms(r.latency_ms.get('p50'))} | {fmt.ms(r.latency_ms.get('p99'))} | "
                f"{r.cpu_share:.0%} | {status_of(r, best)} |"
            )
        lines.append("")
    return "\n".join(lines)


def _clean(v: Any) -> Any:
    """JSON has no NaN: None in its place."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def json_summary(results: list[TrialResult], rec: Recommendation | None, **extra: Any) -> dict[str, Any]:
    """The machine-readable summary ``--json`` prints."""
    out: dict[str, Any] = dict(extra)
    out["trials"] = [r.to_dict() for r in results]
    if rec is not None and rec.best is not None and rec.deployment is not None:
        b, d = rec.best, rec.deployment
        assert d.autoscale is not None
        out["recommendation"] = {
            "config": b.config.swept(),
            "throughput": b.throughput,
            "throughput_ci": list(b.throughput_ci),
            "latency_ms": b.latency_ms,
            "timeout_s": d.timeout_s,
            "retries": d.retries,
            "backoff": [d.backoff_base_s, d.backoff_cap_s],
            "min_workers": d.autoscale.min_workers,
            "max_workers": d.autoscale.max_workers,
            "autoscale_reasoning": rec.autoscale_reasoning,
            "max_pending": d.max_pending,
            "max_pending_reasoning": rec.pending_reasoning,
            "pareto": [r.config.key() for r in rec.pareto],
            "words": rec.words,
        }
    else:
        out["recommendation"] = None
    cleaned: dict[str, Any] = _clean(out)
    return cleaned
