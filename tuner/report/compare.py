"""Two runs compared: what changed beyond the confidence intervals, whether the hosts were alike,
and the same charts overlaid.

**Changed beyond the CIs** — a figure changed when the two 95% confidence intervals do not overlap
(B's low above A's high, or B's high below A's low). Without an interval on either side the page
says it cannot tell rather than guess from the point values. Non-overlapping 95% intervals is a
conservative test (two independent figures whose intervals just touch differ at roughly the 0.6%
level), which is what a report someone acts on wants: a "changed" row is a real change. The gate
(``tuner bench --baseline``) has its own rule with a tolerance; its verdict line is shown as it said.
The recommended configuration changed when its backend, workers, threads or partition size differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuner import __version__
from tuner.report import charts
from tuner.report.html import Cell, e, facts, figure, page, para, section, table, toc
from tuner.report.page import footer, reproduce_section, warnings
from tuner.report.view import Run, Trial, fmt_ms, fmt_rate

CONFIG_KEYS = ("backend", "workers", "threads per worker", "partition size")


@dataclass
class Change:
    """One figure of A and of B, and whether it moved beyond their intervals."""

    metric: str
    a: float | None
    a_ci: tuple[float, float | None] | None
    b: float | None
    b_ci: tuple[float, float | None] | None
    higher_is_better: bool = True

    @property
    def direction(self) -> str:
        """'higher' or 'lower' (beyond the CIs), 'within', or 'unknown' (a figure or a CI missing)."""
        return judge(self.a_ci, self.b_ci) if self.a is not None and self.b is not None else "unknown"

    @property
    def changed(self) -> str:
        """'yes', 'no' or 'unknown'."""
        d = self.direction
        return "unknown" if d == "unknown" else "no" if d == "within" else "yes"

    @property
    def pct(self) -> float | None:
        if self.a is None or self.b is None or self.a == 0:
            return None
        return (self.b - self.a) / self.a * 100


def judge(a: tuple[float, float | None] | None, b: tuple[float, float | None] | None) -> str:
    """'higher' when interval ``b`` lies wholly above ``a``, 'lower' below, 'within' when they
    overlap, 'unknown' without both. An interval's high may be None (open: no failing rate above)."""
    if a is None or b is None:
        return "unknown"
    a_hi = math.inf if a[1] is None else a[1]
    b_hi = math.inf if b[1] is None else b[1]
    if b[0] > a_hi:
        return "higher"
    if b_hi < a[0]:
        return "lower"
    return "within"


def headline_changes(a: Run, b: Run) -> list[Change]:
    """Throughput and p99 of each recommendation (and the online max rate when both have one)."""
    out: list[Change] = []
    if a.rec is not None and b.rec is not None:
        ra, rb = a.rec, b.rec
        out.append(Change("throughput", ra.throughput, ra.throughput_ci, rb.throughput, rb.throughput_ci))
        out.append(
            Change("p99", ra.latency.get("p99"), ra.latency_ci.get("p99"), rb.latency.get("p99"),
                   rb.latency_ci.get("p99"), higher_is_better=False)
        )  # fmt: skip
    if a.online is not None and b.online is not None:
        out.append(
            Change("max rate at the objective", a.online.max_rate, a.online.max_rate_ci, b.online.max_rate,
                   b.online.max_rate_ci)
        )  # fmt: skip
    return out


def config_change(a: Run, b: Run) -> tuple[str, str, str]:
    """(A's configuration, B's, 'yes'/'no'/'unknown'): did the recommended configuration change?"""
    if a.rec is None or b.rec is None:
        return (a.rec.label if a.rec else "none", b.rec.label if b.rec else "none", "unknown")
    same = all(str(a.rec.config.get(k)) == str(b.rec.config.get(k)) for k in CONFIG_KEYS)
    return a.rec.label, b.rec.label, "no" if same else "yes"


def hosts_alike(a: Run, b: Run) -> tuple[str, list[tuple[str, str, str]]]:
    """'same', 'different' or 'unknown' by fingerprint, and the facts that differ (what, A, B)."""
    fa, fb = a.host.fingerprint, b.host.fingerprint
    fa_facts, fb_facts = dict(a.host.facts), dict(b.host.facts)
    diffs = [(k, fa_facts.get(k, "–"), fb_facts.get(k, "–")) for k in {**fa_facts, **fb_facts}
             if fa_facts.get(k) != fb_facts.get(k) and k != "memory"]  # fmt: skip
    if not fa or not fb:
        return "unknown", diffs
    return ("same" if fa == fb else "different"), diffs


def host_speed(a: Run, b: Run) -> tuple[float | None, str]:
    """B's host speed over A's from the two calibrations (:func:`tuner.calibrate.compare`): the
    reference kernels' ratio (their median, on all cores when both hosts have as many, else on one)
    and what it means in words; None, and why, when it cannot be had."""
    from tuner.calibrate import compare

    if a.host is b.host:  # one host for both runs (the side-by-side gate, interleaved)
        return None, "Both runs were measured now on this host, interleaved: no host speed between them."
    ca, cb = a.host.calibration, b.host.calibration
    if ca is None or cb is None:
        missing = " and ".join(w for w, c in (("A", ca), ("B", cb)) if c is None)
        return None, f"{missing} recorded no host calibration: the hosts' speeds cannot be compared."
    speed = compare(ca, cb)
    r = speed.envelope("all") or speed.envelope("single")
    if r is None:
        return None, f"The host calibrations could not be compared ({speed.problem_words()})."
    cores = "1 core" if r.mode == "single" else f"{speed.cores[1]} cores"
    each = ", ".join(f"{k.kernel} {k.words()}" for k in speed.kernels(r.mode))
    pace = "as fast as" if r.words() == "as fast" else f"{r.words()} than"
    noise = (
        "the hosts differ in speed beyond the calibrations' noise: figures may differ because the machines do"
        if r.differs
        else "within the calibrations' noise"
    )
    return r.ratio, (
        f"B's host runs the reference kernels {pace} A's: ×{r.ratio:.2f} (95% CI {r.low:.2f}–{r.high:.2f}; "
        f"{each}; {cores}) — {noise}."
    )


# -- the page ---------------------------------------------------------------------------------------

_FMT = {"throughput": lambda v: f"{fmt_rate(v)} items/s", "p99": fmt_ms,
        "max rate at the objective": lambda v: f"{fmt_rate(v)} requests/s"}  # fmt: skip


def _interval(metric: str, ci: tuple[float, float | None] | None) -> str:
    if ci is None:
        return "no CI"
    if metric == "p99":
        return f"{fmt_ms(ci[0]).removesuffix(' ms')}–{fmt_ms(ci[1])}"
    unit = "items/s" if metric == "throughput" else "requests/s"
    return f"{fmt_rate(ci[0])}–{fmt_rate(ci[1]) if ci[1] is not None else '(open)'} {unit}"


def _verdict_cell(c: Change) -> tuple[str, str]:
    if c.changed == "unknown":
        return "cannot tell (no interval)", "no"
    if c.changed == "no":
        return "no: the intervals overlap", "no"
    better = (c.direction == "higher") == c.higher_is_better
    return f"yes: {c.direction} ({'better' if better else 'worse'})", "better" if better else "yes"


def changes_table(a: Run, b: Run) -> str:
    """The headline rows: figure, A, A's interval, B, B's interval, change, changed beyond the CIs."""
    rows, attrs = [], []
    for c in headline_changes(a, b):
        f = _FMT[c.metric]
        text, cls = _verdict_cell(c)
        pct = f"{c.pct:+.1f}%" if c.pct is not None else "–"
        rows.append(
            [c.metric, f(c.a), _interval(c.metric, c.a_ci), f(c.b), _interval(c.metric, c.b_ci), pct, text]
        )
        attrs.append(
            f'data-metric="{e(c.metric)}" data-changed="{c.changed}" data-direction="{c.direction}" class="{cls}"'
        )
    ca, cb, changed = config_change(a, b)
    rows.append(
        [
            "recommended configuration",
            ca,
            "",
            cb,
            "",
            "",
            "yes: another configuration" if changed == "yes" else changed,
        ]
    )
    attrs.append(
        f'data-metric="configuration" data-changed="{changed}" class="{"yes" if changed == "yes" else "no"}"'
    )
    heads = ["figure", "A", "A: 95% CI", "B", "B: 95% CI", "change", "changed beyond the CIs?"]
    return table(heads, rows, cls="changes", row_attrs=attrs)


def _summary(a: Run, b: Run) -> str:
    moved = [c for c in headline_changes(a, b) if c.changed == "yes"]
    _, _, config = config_change(a, b)
    alike, _ = hosts_alike(a, b)
    words = (
        "Beyond the confidence intervals: "
        + ", ".join(f"{c.metric} {c.direction} ({c.pct:+.1f}%)" for c in moved)
        if moved
        else "No figure moved beyond the confidence intervals"
    )
    words += "; the recommended configuration " + (
        "changed" if config == "yes" else "is the same" if config == "no" else "cannot be compared"
    )
    words += {"same": "; same host (fingerprints match)", "different": "; the hosts differ (fingerprints do not match)",
              "unknown": "; whether the hosts were alike is not known (a fingerprint is missing)"}[alike]  # fmt: skip
    ratio, _ = host_speed(a, b)
    words += f"; B's host ran the reference kernels at ×{ratio:.2f} A's speed." if ratio is not None else "."
    return f'<p class="lead" id="summary">{e(words)}</p>'


def hosts_section(a: Run, b: Run) -> str:
    """Both hosts, their fingerprints, and what differs."""
    alike, diffs = hosts_alike(a, b)
    verdict = {
        "same": f"The same host fingerprint ({a.host.fingerprint}): the two runs measured alike machines.",
        "different": f"Different host fingerprints ({a.host.fingerprint} vs {b.host.fingerprint}): figures "
        "may differ because the machines do.",
        "unknown": "One run did not record its host fingerprint: whether the hosts were alike is not known.",
    }[alike]
    rows: list[list[Cell]] = [[k, va, vb] for k, va, vb in diffs]
    ratio, speed = host_speed(a, b)
    raw = "" if ratio is None else repr(float(ratio))
    return section(
        "hosts",
        "Were the hosts alike?",
        f'<p data-hosts="{alike}">{e(verdict)}</p>',
        f'<p id="host-speed" data-host-speed="{raw}">{e(speed)}</p>',
        table(["", "A", "B"], [["summary", a.host.summary, b.host.summary], *rows], cls="hosts"),
        para(f"A, while measured: {a.host.load_words}.") if a.host.load_words else "",
        para(f"B, while measured: {b.host.load_words}.") if b.host.load_words else "",
    )


def _pair_rows(a: Run, b: Run) -> tuple[list[list[Cell]], list[str]]:
    bt = {t.key: t for t in b.trials}
    rows: list[list[Cell]] = []
    attrs = []
    for ta in a.trials:
        tb: Trial | None = bt.get(ta.key)
        if tb is None:
            continue
        t = Change("throughput", ta.throughput, ta.ci, tb.throughput, tb.ci)
        p = Change("p99", ta.latency.get("p99"), ta.latency_ci.get("p99"), tb.latency.get("p99"),
                   tb.latency_ci.get("p99"), higher_is_better=False)  # fmt: skip
        rows.append([ta.label, (fmt_rate(t.a), t.a or 0), (fmt_rate(t.b), t.b or 0),
                     (f"{t.pct:+.1f}%" if t.pct is not None else "–", t.pct or 0), _verdict_cell(t)[0],
                     (fmt_ms(p.a), p.a or 0), (fmt_ms(p.b), p.b or 0), _verdict_cell(p)[0]])  # fmt: skip
        attrs.append(
            f'data-key="{e(ta.key)}" data-throughput-changed="{t.changed}" data-p99-changed="{p.changed}"'
        )
    return rows, attrs


def configs_section(a: Run, b: Run) -> str:
    """Every configuration both runs measured, side by side."""
    rows, attrs = _pair_rows(a, b)
    if not rows:
        return section(
            "configs",
            "Configurations both runs measured",
            para("No configuration was measured in both runs.", "muted"),
        )
    heads = [
        "configuration",
        "A items/s",
        "B items/s",
        "change",
        "beyond the CIs?",
        "A p99",
        "B p99",
        "beyond the CIs?",
    ]
    return section("configs", "Configurations both runs measured",
                   table(heads, rows, numeric=(1, 2, 3, 5, 6), cls="sortable pairs", row_attrs=attrs))  # fmt: skip


def _side(run: Run, tag: str) -> str:
    cfg = run.rec.config if run.rec else {}
    words = (
        f"{fmt_rate(run.rec.throughput)} items/s, p99 {fmt_ms(run.rec.latency.get('p99'))}"
        if run.rec
        else "none"
    )
    return (
        f"<div><h3>{e(tag)}: {e(run.name)}</h3>{para(words)}"
        + facts([(k, str(v)) for k, v in cfg.items()])
        + "</div>"
    )


def render(a: Run, b: Run, *, page_command: str | None = None) -> str:
    """The comparison of two runs, as a complete HTML document."""
    title = f"tuner comparison: {a.name} vs {b.name}"
    verdict = para(f"The gate's verdict: {b.verdict}", "warn") if b.verdict else ""
    overlays = [
        ("throughput", "Throughput against workers", figure(charts.throughput_chart([a, b]), "Neither run measured a throughput.")),
        ("pareto", "The Pareto fronts", figure(charts.pareto_chart([a, b]), "Neither run measured throughput and p99.")),
        ("latency", "Latency percentiles", figure(charts.latency_chart([a, b]), "No latency to compare.")),
        ("online", "Online: latency against rate", figure(charts.online_chart([a, b]), "Neither run has an online section.")),
    ]  # fmt: skip
    entries = [("changes", "What changed"), ("hosts", "Were the hosts alike?"),
               *((sid, t) for sid, t, _ in overlays), ("configs", "Configurations both runs measured"),
               ("recommendations", "The two recommendations"), ("reproduce", "How to reproduce")]  # fmt: skip
    header = (
        f"<header><h1>{e(title)}</h1><p class='muted'>A = {e(a.name)} ({e(a.created or 'no date')}) · "
        f"B = {e(b.name)} ({e(b.created or 'measured now')}) · model {e(a.model)}</p></header>"
    )
    parts = [
        header,
        warnings(b),
        toc(entries),
        section("changes", "What changed", _summary(a, b), verdict, changes_table(a, b),
                para("A figure changed when the two 95% confidence intervals do not overlap.", "small muted")),
        hosts_section(a, b),
        *(section(sid, t, body) for sid, t, body in overlays),
        configs_section(a, b),
        section("recommendations", "The two recommendations", '<div class="sides">' + _side(a, "A") + _side(b, "B") + "</div>"),
        reproduce_section(b, page_command) if b.command else reproduce_section(a, page_command),
        footer(),
    ]  # fmt: skip
    return page(title, parts, generator=f"tuner {__version__}")
