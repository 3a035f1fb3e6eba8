"""One run's report: the sections in the order a reader needs them.

The recommendation in words with its evidence; the host and how busy it was; throughput against
workers; latency percentiles per trial; the Pareto front; faults and what they cost; the online
curve; the capacity plan (when asked); every trial; how to reproduce it.
"""

from __future__ import annotations

from datetime import datetime, timezone

from tuner import __version__
from tuner.report import charts
from tuner.report.html import Cell, bullets, e, facts, figure, page, para, section, table, toc
from tuner.report.view import Recommendation, Run, Trial, fmt_ms, fmt_rate


def _nouns(name: str) -> tuple[str, str]:
    """A backend's noun, one and many (tuner.backends); "worker" for one this tuner does not know."""
    from tuner.backends import BACKENDS, backend

    return (backend(name).noun, backend(name).nouns) if name in BACKENDS else ("worker", "workers")


def value(field: str, number: float | None, text: str) -> str:
    """A figure a test (or a script) can read back exactly: ``data-field`` and ``data-value``."""
    raw = "" if number is None else repr(float(number))
    return f'<strong data-field="{e(field)}" data-value="{raw}">{e(text)}</strong>'


def ci_text(ci: tuple[float, float] | None, fmt: object = fmt_rate) -> str:
    """``(95% CI 1.2k–1.3k)`` or nothing."""
    if ci is None:
        return ""
    f = fmt if callable(fmt) else fmt_rate
    return f" (95% CI {f(ci[0])}–{f(ci[1])})"


def _ms_range(ci: tuple[float, float] | None) -> str:
    return f"{fmt_ms(ci[0]).removesuffix(' ms')}–{fmt_ms(ci[1])}" if ci else ""


def recommendation_words(run: Run, rec: Recommendation) -> str:
    """The recommendation in one paragraph: what to run and what it measured."""
    cfg = rec.config
    backend, workers = str(cfg.get("backend")), int(cfg.get("workers", 1))
    one, many = _nouns(backend)
    given = cfg.get("threads per worker", 1)
    if given in (None, "default"):  # the framework's own pool: the default deployment
        threads = "the framework's own threads"
    else:
        threads = f"{int(given)} thread{'s' if int(given) != 1 else ''} each"
    p99 = rec.latency.get("p99")
    p99_ci = rec.latency_ci.get("p99")
    text = (
        f"Run <code>{e(run.model)}</code> as {workers} {e(one if workers == 1 else many)} × {e(threads)}, "
        f"in partitions of {cfg.get('partition size')} items: "
        + value("throughput", rec.throughput, f"{fmt_rate(rec.throughput)} items/s")
        + e(ci_text(rec.throughput_ci))
    )
    if p99 is not None:
        text += ", p99 item latency " + value("p99", p99, fmt_ms(p99))
        text += e(f" (95% CI {_ms_range(p99_ci)})") if p99_ci else ""
    return text + "."


#: How a profile names its baseline when it is the default deployment (tuner.bench.profiles).
DEFAULT_DEPLOYMENT = "the framework's default deployment"


def _baseline_words(rec: Recommendation) -> str:
    """The recommendation against its baseline: the profile's own ratio (``evidence.speedup`` and its
    CI) when it records one, against the framework's default deployment measured in the same sweep;
    older profiles name another baseline (the slowest configuration), said as "the baseline"."""
    if not rec.from_profile:
        return ""
    if not rec.baseline_throughput or not rec.baseline_name:
        return e(
            f"No ratio against {DEFAULT_DEPLOYMENT}: it was not measured cleanly in this sweep "
            "(a busy host, or an error: see its trials)."
        )
    name = rec.baseline_name
    default = name.startswith(DEFAULT_DEPLOYMENT)
    what = DEFAULT_DEPLOYMENT if default else "the baseline"
    detail = name.partition(": ")[2] if default else name
    ratio = rec.speedup if rec.speedup is not None else rec.throughput / rec.baseline_throughput
    if default and rec.baseline_throughput == rec.throughput:  # the same trial: nothing beat it
        return (
            f"That is {value('baseline-ratio', ratio, f'{ratio:.2f}×')} {e(what)}: it is the default "
            f"deployment itself ({e(detail)}) — no configuration measured beat it beyond the noise."
        )
    ci = ci_text(rec.baseline_ci)
    p99 = f", p99 {fmt_ms(rec.baseline_p99)}" if rec.baseline_p99 is not None else ""
    beyond = ""
    if rec.speedup_ci is not None:
        lo, hi = rec.speedup_ci
        apart = lo > 1 or hi < 1
        beyond = f" (95% CI {lo:.2f}–{hi:.2f}×: " + ("beyond the noise)" if apart else "within the noise)")
    elif rec.baseline_ci and rec.throughput_ci:
        apart = rec.throughput_ci[0] > rec.baseline_ci[1] or rec.throughput_ci[1] < rec.baseline_ci[0]
        beyond = " — beyond both confidence intervals" if apart else " — within the confidence intervals"
    measured = ", measured in the same sweep" if default else ""
    return (
        f"That is {value('baseline-ratio', ratio, f'{ratio:.2f}×')} {e(what)}{e(beyond)} — "
        f"{e(detail)}{e(measured)}: {e(fmt_rate(rec.baseline_throughput))} items/s{e(ci)}{e(p99)}."
    )


def _evidence_table(rec: Recommendation) -> str:
    rows: list[list[str | tuple[str, object]]] = [
        ["throughput", f"{fmt_rate(rec.throughput)} items/s", ci_text(rec.throughput_ci).strip(" ()")]
    ]
    for k in ("p50", "p90", "p95", "p99", "p999"):
        if k in rec.latency:
            ci = rec.latency_ci.get(k)
            rows.append(
                [f"item latency {k}", fmt_ms(rec.latency[k]), f"95% CI {_ms_range(ci)}" if ci else ""]
            )
    rows += [[what, text, ""] for what, text in rec.evidence]
    return table(["measured", "value", "interval"], rows, cls="evidence")


def recommendation_section(run: Run) -> str:
    """The recommendation in words, its evidence, what the runtime applies, the runners-up."""
    rec = run.rec
    if rec is None:
        return section(
            "recommendation", "Recommendation", para("No feasible configuration: nothing to recommend.")
        )
    runner_ups = [f"{label}: {fmt_rate(t)} items/s, p99 {fmt_ms(p)}" for label, t, p in rec.runner_ups]
    contaminated = (
        para("Measured on a busy host: the figures read low — " + run.host.load_words, "warn")
        if run.host.contaminated
        else ""
    )
    return section(
        "recommendation",
        "Recommendation",
        f'<p class="lead" id="recommendation-words">{recommendation_words(run, rec)} {_baseline_words(rec)}</p>',
        contaminated,
        para(f"Optimised for {rec.objective}."),
        "<h3>Evidence</h3>",
        _evidence_table(rec),
        "<h3>What the runtime applies</h3>",
        table(["setting", "value"], [[k, str(v)] for k, v in rec.config.items()], cls="config"),
        para(f"Why these autoscaling bounds: {rec.autoscale_reasoning}", "small")
        if rec.autoscale_reasoning
        else "",
        ("<h3>Runners-up</h3>" + bullets(runner_ups)) if runner_ups else "",
    )


def host_section(run: Run) -> str:
    """The host (and cluster), how busy it was while the recommendation and each trial measured."""
    h = run.host
    measured = [t for t in run.trials if t.outside is not None]
    across = ""
    if measured:
        top = max(measured, key=lambda t: t.outside or 0.0)
        windows, dropped = sum(t.windows for t in measured), sum(t.discarded for t in measured)
        across = (
            f"Across the {len(measured)} trials: outside load {sum(t.outside or 0 for t in measured) / len(measured):.0%} "
            f"on average, at most {top.outside:.0%} ({top.label}); {dropped} of {windows} measurement windows "
            "discarded as busy and measured again."
        )
    busiest = [f"{name} (pid {pid}): {share:.0%} of the usable cores" for name, pid, share in h.busiest]
    return section(
        "host",
        "Host and how busy it was",
        para(h.summary),
        facts([("fingerprint", h.fingerprint or "not recorded"), *h.facts]),
        para(f"While the recommendation was measured: {h.load_words}.", "warn" if h.contaminated else "")
        if h.load_words
        else "",
        ("<h3>Busiest other processes</h3>" + bullets(busiest)) if busiest else "",
        ("<h3>Ray cluster</h3>" + facts(h.cluster)) if h.cluster else "",
        para(across) if across else "",
        figure(charts.host_load_chart(run), ""),
    )


def _faults_rows(run: Run) -> list[list[Cell]]:
    rows: list[list[Cell]] = []
    for t in sorted((t for t in run.trials if t.faults), key=lambda t: -t.throughput):
        seen = ", ".join(f"{k} {v}" for k, v in sorted(t.faults_seen.items())) or "none"
        lost = sum(t.failures.values())
        change = t.throughput / t.clean_throughput - 1 if t.clean_throughput else None
        rows.append([
            ("★ " if t.recommended else "") + t.label, seen, (str(t.retries), t.retries), (str(lost), lost),
            (fmt_rate(t.throughput), t.throughput), (fmt_rate(t.clean_throughput), t.clean_throughput or ""),
            (f"{change:+.0%}" if change is not None else "–", "" if change is None else change),
            (fmt_ms(t.latency.get("p99")), t.latency.get("p99", "")), (fmt_ms(t.clean_p99), t.clean_p99 or ""),
        ])  # fmt: skip
    return rows


def faults_section(run: Run) -> str:
    """Faults injected, what they cost each configuration."""
    rows = _faults_rows(run)
    rec = run.rec
    observed = ", ".join(f"{k} {v}" for k, v in sorted((rec.faults_observed if rec else {}).items()))
    if not rows and not (rec and rec.faults):
        return section("faults", "Faults and what they cost",
                       para("No faults were injected in this sweep (tuner bench --faults crash=0.02 rehearses them)."))  # fmt: skip
    heads = ["configuration", "faults seen", "retries", "items lost", "items/s", "clean items/s", "vs clean",
             "p99", "clean p99"]  # fmt: skip
    return section(
        "faults",
        "Faults and what they cost",
        para(
            f"Fault plan: {rec.faults}."
            + (f" Seen while the recommendation measured: {observed}." if observed else "")
        )
        if rec and rec.faults
        else "",
        figure(charts.faults_chart(run), "No trial with faults has a throughput to show."),
        table(heads, rows, numeric=range(2, 9), cls="faults") if rows else "",
    )


def online_section(run: Run) -> str:
    """Serving under traffic: latency against rate, the objective, the knee, every candidate."""
    o = run.online
    if o is None:
        return section("online", "Online: latency against rate",
                       para("No online section: this profile was measured closed-loop only "
                            "(tuner bench --online --p99-ms MS adds one)."))  # fmt: skip
    lo, hi = o.max_rate_ci
    words = (
        f"Highest rate with p99 within {o.objective_ms:g} ms: "
        + value("max-rate", o.max_rate, f"{fmt_rate(o.max_rate)} requests/s")
        + e(f" (sure of {fmt_rate(lo)}–{fmt_rate(hi) if hi is not None else 'no failing rate above'})")
        + e(f", p99 there {fmt_ms(o.p99_at_max)}" if o.p99_at_max is not None else "")
        + e(f", on {o.label}.")
    )
    cands: list[list[Cell]] = [
        [label, (fmt_rate(rate), rate), (fmt_ms(p99), p99 or "")] for label, rate, p99 in o.candidates
    ]
    return section(
        "online",
        "Online: latency against rate",
        f'<p class="lead">{words}</p>',
        figure(charts.online_chart([run]), "No step of the online search measured a p99."),
        facts(o.facts),
        para(o.reasoning, "small") if o.reasoning else "",
        (
            "<h3>Every candidate searched</h3>"
            + table(["candidate", "max rate at the objective", "p99 there"], cands, numeric=(1, 2))
        )
        if cands
        else "",
    )


def plan_section(run: Run) -> str:
    """The capacity plan (only when one was asked)."""
    p = run.plan
    if p is None:
        return ""
    return section(
        "plan",
        "Capacity plan",
        "".join(para(w) for w in p.words),
        ("<h3>Warnings</h3>" + bullets(p.warnings)) if p.warnings else "",
        "<h3>Assumptions</h3>" + bullets(p.assumptions),
        figure(charts.plan_chart(run), "No closed-loop throughput by workers in the profile to fit."),
        para(p.fit_words, "small") if p.fit_words else "",
    )


def trial_row(t: Trial, faults: bool) -> list[Cell]:
    """One row of the trials table (sort values for the numeric columns)."""
    lat = t.latency

    def num(text: str, v: float | None) -> Cell:
        return (text, "" if v is None else v)

    row: list[Cell] = [
        (("★ " if t.recommended else "") + t.backend, t.backend),
        num(str(t.workers), t.workers),
        num(str(t.threads), t.threads),
        num(str(t.partition), t.partition),
        num(fmt_rate(t.throughput), t.throughput),
        num(f"{fmt_rate(t.ci[0])}–{fmt_rate(t.ci[1])}" if t.ci else "–", t.ci[0] if t.ci else None),
        *(num(fmt_ms(lat.get(k)).removesuffix(" ms"), lat.get(k)) for k in ("p50", "p90", "p95", "p99")),
        num(f"{t.cpu_share:.0%}" if t.cpu_share is not None else "–", t.cpu_share),
        num(f"{t.rss_mb:.0f}" if t.rss_mb is not None else "–", t.rss_mb),
        num(f"{t.outside:.0%}" if t.outside is not None else "–", t.outside),
    ]
    if faults:
        seen = ", ".join(f"{k} {v}" for k, v in sorted(t.faults_seen.items())) or "none"
        row.append(seen + (f"; {t.retries} retried" if t.retries else ""))
    row.append(("recommended · " if t.recommended else "") + t.status)
    return row


def trials_table(run: Run) -> str:
    """Every trial, fastest first; sortable by any column when JavaScript runs."""
    faults = any(t.faults for t in run.trials)
    heads = ["backend", "workers", "threads", "partition", "items/s", "95% CI", "p50 ms", "p90 ms", "p95 ms",
             "p99 ms", "CPU", "RSS MB", "outside"] + (["faults"] if faults else []) + ["status"]  # fmt: skip
    ordered = sorted(run.trials, key=lambda t: (not t.ok, -t.throughput))
    attrs = [f'data-key="{e(t.key)}"' + (' class="rec"' if t.recommended else "") for t in ordered]
    rows = [trial_row(t, faults) for t in ordered]
    return table(heads, rows, numeric=range(1, 13), cls="sortable trials", row_attrs=attrs, sorted_by=4)


def trials_section(run: Run) -> str:
    """The trials table, with what it does and does not hold."""
    hint = "Fastest first; click a column's header to sort by it (with JavaScript on). ★ marks the recommendation."
    return section(
        "trials",
        f"Every trial ({len(run.trials)})",
        para(hint, "small muted no-print"),
        *(para(n, "warn") for n in run.notes),
        trials_table(run),
    )


def reproduce_section(run: Run, page_command: str | None = None) -> str:
    """The command that measures it again (and the one that made this page)."""
    how = (
        "The command that made this sweep:"
        if run.command_exact
        else "The profile does not record its command; this one measures the same model, input, objective, "
        "fault plan and online search (budget, window and search ranges take their defaults):"
    )
    return section(
        "reproduce",
        "How to reproduce",
        para(how),
        f'<pre><code id="command">{e(run.command)}</code></pre>',
        (para("This page:") + f"<pre><code>{e(page_command)}</code></pre>") if page_command else "",
    )


def header(title: str, run: Run) -> str:
    """The page's title, what it is about and where it came from."""
    made = f"profile {run.name}" + (f", {run.created}" if run.created else "")
    made += f", tuner {run.tool_version}" if run.tool_version else ""
    sources = f" · from {', '.join(run.sources)}" if run.sources else ""
    return f"<header><h1>{e(title)}</h1><p class='muted'>{e(made + sources)}</p></header>"


def footer() -> str:
    """When and by what the page was made."""
    now = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return f"<footer>Made by tuner {e(__version__)} on {e(now)}: one file, nothing fetched.</footer>"


def render(run: Run, *, page_command: str | None = None) -> str:
    """The report of one run, as a complete HTML document."""
    sweep = [
        ("throughput", "Throughput against workers", figure(charts.throughput_chart([run]), "No trial measured a throughput.")),
        ("latency", "Latency percentiles per trial", figure(charts.latency_chart([run]), "No trial measured latency.")),
        ("pareto", "The Pareto front", figure(charts.pareto_chart([run]), "No trial measured both throughput and p99.")),
    ]  # fmt: skip
    parts = [
        recommendation_section(run),
        host_section(run),
        *(section(sid, title, body) for sid, title, body in sweep),
        faults_section(run),
        online_section(run),
        plan_section(run),
        trials_section(run),
        reproduce_section(run, page_command),
    ]
    entries = [(sid, title) for sid, title in _TITLES if sid != "plan" or run.plan is not None]
    title = f"tuner report: {run.model}"
    head = [header(title, run), warnings(run), toc(entries)]
    return page(title, [*head, *parts, footer()], generator=f"tuner {__version__}")


def warnings(run: Run) -> str:
    """What a reader must know before the figures (a sweep interrupted, no profile written)."""
    return "".join(f'<p class="warn" role="alert" data-warning>{e(w)}</p>' for w in run.warnings)


_TITLES = [
    ("recommendation", "Recommendation"),
    ("host", "Host and how busy it was"),
    ("throughput", "Throughput against workers"),
    ("latency", "Latency percentiles per trial"),
    ("pareto", "The Pareto front"),
    ("faults", "Faults and what they cost"),
    ("online", "Online: latency against rate"),
    ("plan", "Capacity plan"),
    ("trials", "Every trial"),
    ("reproduce", "How to reproduce"),
]
