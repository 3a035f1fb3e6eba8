"""The adapter: the only module of the report that reads a profile or a results file.

Everything the page shows is copied here into small plain dataclasses (:class:`Run` and its parts),
so that when the profile grows or a field moves, this one module changes and the charts and the
page do not. Fields that may or may not exist (older profiles, newer ones) are read with
``getattr(x, "field", None)``; nothing here raises on a missing optional section — the page says
what it could not show instead.

What is read, for whoever keeps this working as the schema grows:

* profile (``tuner.profile.load_profile``): ``name created tool_version``; ``model.spec``,
  ``model.input.source/items``; ``host.*`` (fingerprint, summary, cores, memory, cpu_model,
  platform, machine, blas) and, when present, ``host.calibration``; ``cluster.*``; ``objective.*``;
  ``recommended.*`` and ``autoscale.*``; ``evidence.*`` (throughput and its CI, latency percentiles
  and CIs, service time, cpu_share, peak_rss_mb, cold_start_s, baseline (+ ``throughput_ci`` when
  it has one), runner_ups, pareto, host_load, threads, faults, faults_observed, trials_run,
  strategy, measuring_s); ``online.*`` (objective, curve steps — with ``cpu`` when a step has it —,
  candidates, scaling, max rate and its CI, reasoning).
* results (``tuner.bench.session.load_results``): every ``TrialResult`` field listed in
  :class:`Trial`; a configuration written twice (a confirmed winner: its trial, then the merged
  one) is kept once, the last line.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from tuner import fmt
from tuner.errors import DataError
from tuner.report.capacity import plan_view
from tuner.report.view import (
    PERCENTILES,
    HostView,
    Interval,
    OnlineView,
    Recommendation,
    Run,
    Step,
    Trial,
    config_label,
    fmt_ms,
    fmt_rate,
    pooled,
)

# -- reading files ----------------------------------------------------------------------------------


def read_profile(path: str | os.PathLike[str]) -> Any:
    """The profile at ``path`` (a ``ProfileError`` line when it is missing or bad)."""
    from tuner.profile import load_profile

    return load_profile(path)


def read_results(path: str | os.PathLike[str], model: str | None = None) -> list[Any]:
    """The trials of a results file (written for ``model``, when given); a missing or empty file is
    a ``DataError`` (a report from a results file that is not there would silently show only the
    profile's few candidates)."""
    from tuner.bench.session import load_results

    if not Path(path).is_file():
        raise DataError(f"{path}: results file not found")
    results = load_results(path, model)
    if not results:
        raise DataError(f"{path}: no trials in this results file")
    return results


# -- trials -----------------------------------------------------------------------------------------


def _status(r: Any) -> str:
    if getattr(r, "error", None):
        return f"error: {r.error}"
    if not getattr(r, "feasible", True):
        return "infeasible: " + ("; ".join(getattr(r, "infeasible_reasons", []) or []) or "constraint")
    tag = "stable" if r.stable else "unstable"
    n = len(getattr(r, "discarded_windows", []) or [])
    if getattr(r, "contaminated", False):
        tag = "contaminated: host busy"
    elif n:
        tag += f" · {n} busy window{'s' if n != 1 else ''} discarded"
    if (getattr(r, "threads", None) or {}).get("over"):
        tag += " · threads over"
    return tag


def _pairs(d: Any) -> dict[str, Interval]:
    return {k: (float(v[0]), float(v[1])) for k, v in (d or {}).items() if v is not None}


def trial_from_result(r: Any) -> Trial:
    """A results line (a ``TrialResult``) as a :class:`Trial`."""
    c, outside, g = (
        r.config,
        getattr(r, "outside", None),
        lambda name, default=None: getattr(r, name, default),
    )
    ok = not g("error") and g("feasible", True) and r.throughput > 0
    return Trial(
        key=c.key(), label=c.label(), backend=c.backend, workers=c.workers, threads=c.threads_per_worker,
        partition=c.partition_size, throughput=float(r.throughput),
        ci=(float(r.throughput_ci[0]), float(r.throughput_ci[1])) if r.throughput > 0 else None,
        latency={k: float(v) for k, v in (r.latency_ms or {}).items() if k in PERCENTILES},
        latency_ci={k: v for k, v in _pairs(g("latency_ci_ms")).items() if k in PERCENTILES},
        cpu_share=g("cpu_share"), rss_mb=(g("peak_rss_mb") or {}).get("total"), stable=bool(r.stable),
        ok=bool(ok), status=_status(r), faults=g("faults"), faults_seen=dict(g("faults_seen") or {}),
        failures=dict(g("failures") or {}), retries=int(g("retries", 0) or 0),
        clean_throughput=g("clean_throughput"), clean_p99=g("clean_p99_ms"), outside=getattr(outside, "cpu", None),
        windows=len(g("windows") or []), discarded=len(g("discarded_windows") or []),
        contaminated=bool(g("contaminated", False)),
    )  # fmt: skip


def trials_from_results(results: list[Any]) -> list[Trial]:
    """One :class:`Trial` per configuration, the last line of each (a confirmed winner is written
    twice: its first trial, then both merged)."""
    last: dict[str, Any] = {}
    for r in results:
        last.pop(r.config.key(), None)  # keep the order of the last line
        last[r.config.key()] = r
    return [trial_from_result(r) for r in last.values()]


def _named(c: Any, throughput: float, status: str, **figures: Any) -> Trial:
    """A configuration the profile names (a candidate, or the recommendation) as a row."""
    return Trial(
        key=f"{c.backend}/w{c.workers}/t{c.threads_per_worker}/p{c.partition_size}",
        label=config_label(c.backend, c.workers, c.threads_per_worker, c.partition_size),
        backend=c.backend, workers=c.workers, threads=c.threads_per_worker, partition=c.partition_size,
        throughput=float(throughput), status=status, from_profile=True, **figures,
    )  # fmt: skip


def _candidate_trials(profile: Any, *lists: str) -> list[Trial]:
    """The configurations a profile names (``evidence.pareto``, ``evidence.runner_ups``), once each."""
    out: dict[str, Trial] = {}
    for c in [
        c for name in lists or ("pareto", "runner_ups") for c in getattr(profile.evidence, name, None) or []
    ]:
        p99 = getattr(c, "p99_ms", None)
        t = _named(
            c, c.throughput, "from the profile", latency={"p99": float(p99)} if p99 is not None else {}
        )
        out.setdefault(t.key, t)
    return list(out.values())


def _rec_trial(profile: Any) -> Trial:
    ev = profile.evidence
    ci = getattr(ev, "throughput_ci", None)
    return _named(
        profile.recommended, ev.throughput, "recommended (from the profile)",
        ci=(float(ci[0]), float(ci[1])) if ci else None,
        latency=_percentiles(getattr(ev, "latency_ms", None)),
        latency_ci=_intervals(getattr(ev, "latency_ci_ms", None)),
        cpu_share=getattr(ev, "cpu_share", None),
        rss_mb=getattr(getattr(ev, "peak_rss_mb", None), "total", None),
    )  # fmt: skip


def _mark_recommended(trials: list[Trial], profile: Any) -> list[Trial]:
    """Mark the trial the profile recommends; add it from the evidence when no trial matches."""
    rec = _rec_trial(profile)
    same = [t for t in trials if t.key == rec.key or t.key.startswith(rec.key + "/")]
    if same:
        max(same, key=lambda t: t.throughput).recommended = True
        return trials
    rec.recommended = True
    return [rec, *trials]


def _percentiles(p: Any) -> dict[str, float]:
    values = {k: getattr(p, k, None) for k in (*PERCENTILES, "p999")} if p is not None else {}
    return {k: float(v) for k, v in values.items() if v is not None}


def _intervals(p: Any) -> dict[str, Interval]:
    values = {k: getattr(p, k, None) for k in (*PERCENTILES, "p999")} if p is not None else {}
    return {k: (float(v[0]), float(v[1])) for k, v in values.items() if v is not None}


# -- the recommendation -----------------------------------------------------------------------------


def _rec_config(rec: Any, auto: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "backend": rec.backend,
        "workers": rec.workers,
        "threads per worker": rec.threads_per_worker,
        "partition size": rec.partition_size,
        "timeout": f"{rec.timeout_s:g} s" if getattr(rec, "timeout_s", None) else "none",
        "retries": getattr(rec, "retries", None),
    }
    backoff = getattr(rec, "backoff", None)
    if backoff is not None:
        cfg["backoff"] = f"{backoff.base_s:g}–{backoff.cap_s:g} s"
    for name, attr in (("max pending", "max_pending"), ("overload", "overload"), ("placement", "placement")):
        if getattr(rec, attr, None) is not None:
            cfg[name] = getattr(rec, attr)
    delay = getattr(rec, "max_batch_delay_ms", None)
    if delay is not None:
        cfg["max batch delay"] = f"{delay:g} ms"
    hedge = getattr(rec, "hedge", None)
    cfg["hedge"] = f"after {fmt.ms(hedge.after_ms)}" if hedge is not None else "off"
    if getattr(rec, "memory_limit_mb", None):
        cfg["memory limit"] = f"{rec.memory_limit_mb:g} MB"
    for k, v in (getattr(rec, "knobs", None) or {}).items():
        cfg[k] = v
    cfg["autoscale"] = f"{auto.min_workers}–{auto.max_workers} workers"
    return cfg


def _objective_words(obj: Any) -> str:
    goal = "most items/s" if getattr(obj, "goal", "throughput") == "throughput" else "lowest p99"
    limits = []
    if getattr(obj, "p99_budget_ms", None) is not None:
        limits.append(f"p99 ≤ {obj.p99_budget_ms:g} ms")
    if getattr(obj, "memory_budget_mb", None) is not None:
        limits.append(f"memory ≤ {obj.memory_budget_mb:g} MB")
    if getattr(obj, "min_throughput", None) is not None:
        limits.append(f"≥ {fmt_rate(obj.min_throughput)} items/s")
    return goal + (f" with {', '.join(limits)}" if limits else "")


def _evidence_lines(ev: Any) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = []
    svc = _percentiles(getattr(ev, "service_time_ms", None))
    if svc:
        lines.append(("service time per partition", " · ".join(f"{k} {fmt_ms(v)}" for k, v in svc.items())))
    if getattr(ev, "cpu_share", None) is not None:
        lines.append(("CPU", f"{ev.cpu_share:.0%} of the usable cores"))
    rss = getattr(ev, "peak_rss_mb", None)
    if rss is not None and getattr(rss, "total", None) is not None:
        lines.append(("peak memory", f"{rss.total:.0f} MB in all, {rss.per_worker or 0:.0f} MB per worker"))
    if getattr(ev, "cold_start_s", None) is not None:
        lines.append(("cold start", f"{ev.cold_start_s:.2f} s"))
    threads = getattr(ev, "threads", None)
    if threads is not None and getattr(threads, "ran", None) is not None:
        over = " — more than configured" if getattr(threads, "over", False) else ""
        lines.append(
            ("threads that ran", f"{threads.ran} ({threads.scope}; the knobs allow {threads.allowed}){over}")
        )
    run = [getattr(ev, "trials_run", None), getattr(ev, "strategy", None), getattr(ev, "measuring_s", None)]
    if any(v is not None for v in run):
        words = [
            f"{run[0]} trials" if run[0] is not None else "",
            f"{run[1]} search" if run[1] else "",
            f"{run[2]:g} s measuring" if run[2] is not None else "",
        ]
        lines.append(("sweep", ", ".join(w for w in words if w)))
    return lines


def recommendation(profile: Any) -> Recommendation:
    """The profile's recommendation and evidence."""
    rec, ev, auto = profile.recommended, profile.evidence, profile.autoscale
    t = _rec_trial(profile)
    base = getattr(ev, "baseline", None)
    base_ci = getattr(base, "throughput_ci", None) if base is not None else None
    speedup_ci = getattr(ev, "speedup_ci", None)
    return Recommendation(
        label=t.label,
        config=_rec_config(rec, auto),
        throughput=t.throughput,
        throughput_ci=t.ci,
        latency=t.latency,
        latency_ci=t.latency_ci,
        service=_percentiles(getattr(ev, "service_time_ms", None)),
        autoscale_reasoning=getattr(auto, "reasoning", "") or "",
        objective=_objective_words(getattr(profile, "objective", None)),
        baseline_name=getattr(base, "name", None),
        baseline_throughput=getattr(base, "throughput", None),
        baseline_ci=(float(base_ci[0]), float(base_ci[1])) if base_ci else None,
        baseline_p99=getattr(base, "p99_ms", None),
        speedup=getattr(ev, "speedup", None),
        speedup_ci=(float(speedup_ci[0]), float(speedup_ci[1])) if speedup_ci else None,
        runner_ups=[
            (t.label, t.throughput, t.latency.get("p99")) for t in _candidate_trials(profile, "runner_ups")
        ],
        evidence=_evidence_lines(ev),
        faults=getattr(ev, "faults", None),
        faults_observed=dict(getattr(ev, "faults_observed", None) or {}),
    )


# -- the host, the cluster --------------------------------------------------------------------------


def _call(x: Any, name: str) -> Any:
    """``x.name()`` when it is a method (a probed ``tuner.hardware.Host``), ``x.name`` otherwise."""
    v = getattr(x, name, None)
    return v() if callable(v) else v


def _host_facts(h: Any, calibration: Any = None) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    cores = [f"{h.usable_cores} usable"]
    for what, attr in (("logical", "logical_cores"), ("physical", "physical_cores")):
        if getattr(h, attr, None) is not None:
            cores.append(f"{getattr(h, attr)} {what}")
    facts.append(("cores", ", ".join(cores)))
    mem = getattr(h, "memory_total_gb", None)
    if mem is None and getattr(h, "memory_total_bytes", None):
        mem = h.memory_total_bytes / 1e9
    if mem is not None:
        facts.append(("memory", f"{mem:.1f} GB"))
    for what, attr in (
        ("CPU", "cpu_model"),
        ("platform", "platform"),
        ("machine", "machine"),
        ("BLAS", "blas"),
    ):
        v = getattr(h, attr, None)
        if v and isinstance(v, list):  # a probed host's BLAS list: as the profile writes it
            b = v[0] if isinstance(v[0], dict) else {}
            v = f"{b.get('internal_api')} {'.'.join(str(b.get('version') or '?').split('.')[:3])}"
        if v:
            facts.append((what, str(v)))
    if calibration is not None:
        facts.extend(_calibration_facts(calibration))
    return facts


def _calibration_facts(cal: Any) -> list[tuple[str, str]]:
    """``host speed: python`` → ``4.42 Mloop/s on 1 core, 8.70 on 2 (×1.97)``, one per kernel."""
    facts = []
    for name, k in (getattr(cal, "kernels", None) or {}).items():
        one, every = getattr(k, "single", None), getattr(k, "all", None)
        if one is None:
            continue
        text = f"{fmt.sig(one.score)} {k.unit} on 1 core"
        if every is not None:
            text += f", {fmt.sig(every.score)} on {cal.cores} (×{every.score / one.score:.2f})"
        if one.busy or (every is not None and every.busy):
            text += " — measured on a busy host, not compared"
        facts.append((f"host speed: {name}", text))
    if facts:
        facts.append(
            (
                "calibration",
                f"{cal.elapsed_s:.1f} s of {cal.budget_s:g} s, outside load {cal.outside_load:.0%}",
            )
        )
    return facts


def _cluster_facts(c: Any) -> list[tuple[str, str]]:
    if c is None:
        return []
    actor = getattr(c, "actor", None)
    facts = [
        ("Ray", f"{getattr(c, 'ray_version', '?')}, reached as '{getattr(c, 'address', '?')}'"),
        ("nodes", f"{c.nodes} ({', '.join(getattr(c, 'node_shapes', None) or []) or 'shapes not recorded'})"),
        ("CPUs", f"{c.total_cpus:g} in all"),
    ]
    if actor is not None:
        mem = f", {actor.memory_mb:g} MB" if getattr(actor, "memory_mb", None) else ""
        facts.append(("each actor reserves", f"{actor.num_cpus:g} CPUs{mem}"))
    return facts


def calibration_of(record: Any) -> Any:
    """A ``host.calibration`` record (or a ``tuner.calibrate.Calibration``) as a Calibration, the
    form :func:`tuner.calibrate.compare` takes; None when there is none or it cannot be read."""
    if record is None:
        return None
    to_calibration = getattr(record, "calibration", None)
    try:
        return to_calibration() if callable(to_calibration) else record
    except (ValueError, TypeError, KeyError):  # a record this version cannot read: shown, not compared
        return None


def host_view(host: Any, load: Any = None, cluster: Any = None, calibration: Any = None) -> HostView:
    """A profile's ``host`` (or a probed Host) with the evidence's ``host_load``; ``calibration``:
    the host's measured speed when the host does not carry it (a probed Host: the sweep's own)."""
    if host is None:
        return HostView(fingerprint=None, summary="host not recorded")
    cal = calibration if calibration is not None else getattr(host, "calibration", None)
    view = HostView(
        fingerprint=_call(host, "fingerprint"),
        summary=str(_call(host, "summary") or ""),
        facts=_host_facts(host, cal),
        cluster=_cluster_facts(cluster),
        calibration=calibration_of(cal),
    )
    if load is not None:
        words = getattr(load, "words", None)
        view.load_words = words(getattr(host, "usable_cores", None)) if callable(words) else ""
        view.contaminated = bool(getattr(load, "contaminated", False))
        view.busiest = [(p.name, p.pid, p.share) for p in getattr(load, "top", None) or []]
    return view


# -- online, plan -----------------------------------------------------------------------------------


def _step(s: Any) -> Step:
    ci = getattr(s, "p99_ci_ms", None)
    cpu = getattr(s, "cpu_cores", None)  # cores the serving side used at this rate
    return Step(
        rate=float(s.rate),
        offered=float(s.offered),
        achieved=float(s.achieved),
        p50=getattr(s, "p50_ms", None),
        p99=getattr(s, "p99_ms", None),
        p99_ci=(float(ci[0]), float(ci[1])) if ci else None,
        sustainable=bool(s.sustainable),
        keeps_up=bool(getattr(s, "keeps_up", s.sustainable)),
        cpu=float(cpu) if isinstance(cpu, (int, float)) else None,
    )


def batch_label(c: Any) -> str:
    """An online candidate (or the online winner): ``thread ×8 · 1 thread · batches ≤ 512 · delay 1 ms``."""
    label = config_label(c.backend, c.workers, c.threads_per_worker, c.max_batch_size)
    return label.replace("partition", "batches ≤") + f" · delay {c.max_batch_delay_ms:g} ms"


def online_view(o: Any) -> OnlineView | None:
    """The profile's ``online:`` section, or None."""
    if o is None:
        return None
    label = batch_label(o)
    facts = [
        ("arrivals", f"{o.arrivals}, {o.request_size} item(s) per request, steps of {o.step_s:g} s"),
        ("batching", f"≤ {o.max_batch_size} items, waiting ≤ {o.max_batch_delay_ms:g} ms"),
        ("max pending", str(o.max_pending)),
    ]
    if getattr(o, "measuring_s", None) is not None:
        facts.append(
            ("search", f"{o.measuring_s:g} s" + (f" of a {o.budget_s:g} s budget" if o.budget_s else ""))
        )
    lo, hi = o.max_rate_ci
    return OnlineView(
        objective_ms=float(o.objective_p99_ms),
        label=label,
        max_rate=float(o.max_rate_at_slo),
        max_rate_ci=(float(lo), None if hi is None else float(hi)),
        p99_at_max=getattr(o, "p99_at_max_ms", None),
        steps=sorted((_step(s) for s in o.curve), key=lambda s: s.offered),
        facts=facts,
        candidates=[
            (batch_label(c), float(c.max_rate_at_slo), c.p99_ms) for c in getattr(o, "candidates", None) or []
        ],
        reasoning=getattr(o, "reasoning", "") or "",
        scaling=[(int(p.workers), float(p.throughput)) for p in getattr(o.scaling, "points", None) or []],
    )


# -- the command ------------------------------------------------------------------------------------


def reconstructed_command(profile: Any) -> str:
    """A ``tuner bench`` command that measures what this profile measured (the profile does not
    record the command itself: budget, window and search ranges take their defaults here)."""
    args = ["tuner", "bench", "--model", profile.model.spec]
    source = getattr(getattr(profile.model, "input", None), "source", "") or ""
    if source.startswith("file "):
        args += ["--input", source[5:]]
    obj = getattr(profile, "objective", None)
    if getattr(obj, "goal", "throughput") != "throughput":
        args += ["--objective", str(getattr(obj, "goal", ""))]
    p99 = getattr(obj, "p99_budget_ms", None)
    online = getattr(profile, "online", None)
    if online is not None:
        p99 = online.objective_p99_ms
    for flag, value in (
        ("--p99-ms", p99),
        ("--memory-mb", getattr(obj, "memory_budget_mb", None)),
        ("--min-throughput", getattr(obj, "min_throughput", None)),
    ):
        if value is not None:
            args += [flag, f"{value:g}"]
    faults = getattr(profile.evidence, "faults", None)
    if faults:
        args += ["--faults", faults]
    if getattr(profile, "cluster", None) is not None:
        address = profile.cluster.address
        args += ["--ray-address", "ray://HOST:PORT" if address == "client" else address]
    if online is not None:
        args += ["--online", "--request-size", online.request_size]
    args += ["--results", f"{profile.name}.jsonl", "--out", f"{profile.name}.yaml"]
    return shlex.join(args)


# -- runs -------------------------------------------------------------------------------------------


def run_from_profile(
    profile: Any,
    results: list[Any] | None = None,
    *,
    command: str | None = None,
    plan: Any = None,
    sources: list[str] | None = None,
    warnings: list[str] | None = None,
) -> Run:
    """A :class:`Run` from a loaded profile and, when at hand, its sweep's results."""
    ev = profile.evidence
    if results:
        trials = trials_from_results(results)
        notes = []
    else:
        trials = _candidate_trials(profile)
        notes = [
            "no results file: the charts show only the configurations the profile names "
            "(the recommendation, runner-ups, the Pareto front); give --results for every trial"
        ]
    created = getattr(profile, "created", None)
    online = online_view(getattr(profile, "online", None))
    return Run(
        name=profile.name,
        model=profile.model.spec,
        created=created.isoformat() if created is not None else "",
        tool_version=str(getattr(profile, "tool_version", "") or ""),
        rec=recommendation(profile),
        host=host_view(profile.host, getattr(ev, "host_load", None), getattr(profile, "cluster", None)),
        trials=_mark_recommended(trials, profile),
        online=online,
        plan=plan_view(plan, online.scaling if online is not None else None),
        command=command or reconstructed_command(profile),
        command_exact=command is not None,
        sources=list(sources or []),
        notes=notes,
        warnings=list(warnings or []),
    )


def run_from_results(
    results: list[Any],
    *,
    name: str,
    model: str,
    host: Any = None,
    command: str | None = None,
    verdict: str | None = None,
    calibration: Any = None,
    recommend: bool = True,
    warnings: list[str] | None = None,
) -> Run:
    """A :class:`Run` from trials alone (the regression gate's new measurement, or a sweep that
    ended without a profile): repeated trials of one configuration are pooled (median of each
    figure), and the fastest feasible configuration is what this run "recommends" (nothing when
    ``recommend`` is False: a sweep whose trials were none of them feasible)."""
    groups: dict[str, list[Trial]] = {}
    for r in results:
        t = trial_from_result(r)
        groups.setdefault(t.key, []).append(t)
    trials = [pooled(g) for g in groups.values()]
    ok = [t for t in trials if t.ok] or trials
    best = max(ok, key=lambda t: t.throughput) if ok and recommend else None
    if best is not None:
        best.recommended = True
    return Run(
        name=name,
        model=model,
        created="",
        tool_version="",
        rec=Recommendation.from_trial(best) if best is not None else None,
        host=host_view(host, calibration=calibration),
        trials=trials,
        command=command or "",
        command_exact=command is not None,
        verdict=verdict,
        warnings=list(warnings or []),
    )
