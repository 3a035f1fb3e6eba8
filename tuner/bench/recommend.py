"""From trial results to a recommendation, and from a recommendation to a scaling profile.

What is derived here, and why:

* **best** — the feasible trial with the best objective (throughput, or lowest p99); a stable trial
  wins a tie within its noise. Infeasible trials stay in the results (shown, marked), never dropped.
* **Pareto front** — the trials no other beats on both throughput (higher) and p99 (lower).
* **timeout_s** — 10× the p99.9 partition service time of the best trial, at least 0.1 s
  (:func:`tuner.bench.measure.timeout_for`): a hung partition is cut short, a slow one is not.
* **retries and backoff** — from the faults observed: none → 2 retries, backoff 0.05–2 s; with a
  per-attempt failure rate f, enough retries that an item is lost with probability below 1e-6
  (f^(retries+1) < 1e-6), between 2 and 8; when workers crashed or hung, the backoff base is at
  least a quarter of the cold start (a replacement needs that long to load the model) and the cap
  5 s when failures are frequent (> 5% of attempts).
* **autoscale** — max = the best's worker count (more did not measure faster, or the cores cap
  it); min = the fewest workers measured (same backend, threads and partition size; else any
  backend) that reach about half the best throughput (within 5%) — a pool that can absorb half
  the peak without waiting for a cold start — or half the best's workers when not measured.
* **max_pending** — the runtime's bound on items in flight (backpressure), by Little's law: at the
  measured throughput X, N items in flight take about N / X to clear, so an item accepted past
  X × the p99 budget would miss the budget anyway — better refused or held at the door. Without a
  budget, :data:`DEFAULT_QUEUE_S` (one second of work). Never below the closed loop's depth the
  throughput was measured at (``in_flight_per_worker`` partitions per worker of the autoscaler's
  ceiling), or the runtime could not reach the measured throughput.
* **hedge** — hedged stragglers (:mod:`tuner.engine.hedging`): a partition still running past the p95
  service time of the best trial is sent again to an idle worker, the first result wins, at most
  the deployment's ``hedge_budget`` of duplicate work (Dean & Barroso's hedged requests,
  deferred to the p95). Recommended when the pool may have two workers or more (with one there is
  never an idle worker to send a copy to) and a partition takes at least :data:`HEDGE_MIN_MS` (below
  it the supervisor's own round trip is a good share of the service time, and a straggler costs
  little anyway). The p95 is that of the trial as measured — with ``--faults``, of the faulted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from tuner import fmt
from tuner.bench.defaults import DEFAULT, DEFAULT_WORKER, baseline_of
from tuner.bench.measure import TIMEOUT_FLOOR_S, timeout_for
from tuner.bench.search import beats, score
from tuner.bench.types import Objective, TrialConfig, TrialResult
from tuner.deployment import AutoscaleSettings, Deployment
from tuner.engine.hedging import HEDGE_BURST
from tuner.stats import ratio_ci

if TYPE_CHECKING:
    from tuner.hardware import Host

__all__ = ["Recommendation", "host_load_words", "max_pending_for", "pareto_front", "recommend"]

#: retries so that an item is lost with at most this probability, given the observed failure rate
LOSS_TARGET = 1e-6
MIN_RETRIES, MAX_RETRIES = 2, 8
#: share of the best throughput the smallest pool should still serve
MIN_POOL_SHARE = 0.5
#: how far below half of the best a pool may measure and still count as "about half"
HALF_SLACK = 0.05
#: queued partitions per worker above which the runtime adds a worker (the closed loop's depth)
BACKLOG_PER_WORKER = 4.0
#: without a latency objective, max_pending holds this many seconds of measured throughput
DEFAULT_QUEUE_S = 1.0
#: partitions per worker the trials kept in flight (MeasureSettings.in_flight_per_worker's default)
MEASURED_DEPTH = 4
#: hedging is recommended only for partitions whose p95 service time is at least this (ms)
HEDGE_MIN_MS = 1.0


@dataclass
class Recommendation:
    """The best feasible configuration as the deployment to run, the alternatives, and why."""

    best: TrialResult | None
    #: what to run: the best trial's configuration with the settings derived from the sweep
    #: (timeout, retries, backoff, max_pending, hedge, autoscale bounds); None without a best
    deployment: Deployment | None
    runner_ups: list[TrialResult]
    pareto: list[TrialResult]
    autoscale_reasoning: str
    words: list[str]  # the recommendation in plain words, like WALKTHROUGH section 4
    infeasible: list[TrialResult] = field(default_factory=list)
    retry_reasoning: str = ""
    timeout_reasoning: str = ""
    results: list[TrialResult] = field(default_factory=list)  # every trial, for the evidence
    pending_reasoning: str = ""
    hedge_reasoning: str = ""
    #: the deployment a user writes without tuner, as measured (tuner.bench.defaults.baseline_of)
    baseline: TrialResult | None = None
    speedup: float | None = None  # best / baseline throughput
    speedup_ci: tuple[float, float] | None = None  # its bootstrap 95% CI
    choice_words: list[str] = field(default_factory=list)  # why this and not another, when it matters
    #: seconds from Runtime.start() to ready in a fresh process (tuner.bench.coldstart); None: not timed
    cold_start_s: float | None = None

    def with_pending(self, max_pending: int, reasoning: str) -> Recommendation:
        """The same recommendation with another ``max_pending`` (an online measurement's), its
        reasoning replacing the closed loop's in the autoscale reasoning too."""
        assert self.deployment is not None
        return replace(
            self,
            deployment=replace(self.deployment, max_pending=max_pending),
            autoscale_reasoning=self.autoscale_reasoning.replace(self.pending_reasoning, reasoning),
            pending_reasoning=reasoning,
        )


def pareto_front(results: list[TrialResult]) -> list[TrialResult]:
    """Trials not dominated on (throughput higher, p99 lower), by throughput descending."""
    pts = [r for r in results if r.throughput > 0 and r.latency_ms.get("p99") is not None and not r.error]
    pts.sort(key=lambda r: (-r.throughput, r.latency_ms["p99"]))
    front: list[TrialResult] = []
    best_p99 = math.inf
    for r in pts:
        if r.latency_ms["p99"] < best_p99:
            front.append(r)
            best_p99 = r.latency_ms["p99"]
    return front


def _rank_key(r: TrialResult, objective: Objective) -> tuple[float, bool]:
    return (score(r, objective), r.stable)


def _pick(results: list[TrialResult], objective: Objective) -> TrialResult | None:
    ranked = sorted(results, key=lambda r: score(r, objective), reverse=True)
    if not ranked:
        return None
    top = ranked[0]
    # A stable trial within the top one's noise is the safer pick over an unstable one.
    if not top.stable:
        for r in ranked[1:]:
            if r.stable and not beats(top, r, objective):
                return r
    return top


def _retries(results: list[TrialResult], best: TrialResult) -> tuple[int, tuple[float, float], str]:
    attempts_failed = sum(sum(r.faults_seen.values()) for r in results)
    partitions = sum(max(1, r.items // max(1, r.config.partition_size)) for r in results if r.items)
    base, cap = Deployment.backoff_base_s, Deployment.backoff_cap_s  # the declared defaults
    if attempts_failed == 0:
        text = f"no failures observed: {Deployment.retries} retries, backoff {base:g}–{cap:g} s"
        return Deployment.retries, (base, cap), text
    rate = min(0.9, attempts_failed / max(1, partitions + attempts_failed))
    need = math.ceil(math.log(LOSS_TARGET) / math.log(rate)) - 1 if rate > 0 else MIN_RETRIES
    retries = max(MIN_RETRIES, min(MAX_RETRIES, need))
    kinds: dict[str, int] = {}
    for r in results:
        for k, v in r.faults_seen.items():
            kinds[k] = kinds.get(k, 0) + v
    if any(k in kinds for k in ("crash", "timeout", "memory")):
        base = max(base, round(best.cold_start_s / 4, 3))
    if rate > 0.05:
        cap = 5.0
    cap = max(cap, base)
    seen = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items()))
    text = (
        f"{attempts_failed} failed attempts in ~{partitions} partitions ({rate:.1%}; {seen}): "
        f"{retries} retries keep the chance of losing an item below {LOSS_TARGET:g}"
    )
    return retries, (base, cap), text


def _autoscale(results: list[TrialResult], best: TrialResult, host: Host | None) -> tuple[int, int, str]:
    c = best.config

    def pools(any_backend: bool) -> dict[int, TrialResult]:
        out: dict[int, TrialResult] = {}
        for r in results:
            if (
                r.feasible
                and (any_backend or r.config.backend == c.backend)
                and r.config.threads_per_worker == c.threads_per_worker
                and r.config.partition_size == c.partition_size
                and (r.config.workers not in out or r.throughput > out[r.config.workers].throughput)
            ):
                out[r.config.workers] = r
        return out

    same = pools(any_backend=False)
    if not any(w < c.workers for w in same):
        # No smaller pool on this backend: the other backend's, at equal settings, says as much.
        same = {**pools(any_backend=True), c.workers: best}
    hi = c.workers
    more = [r for w, r in same.items() if w > c.workers]
    cores = host.usable_cores if host is not None else None
    # The framework's own pool sizes itself to the cores it sees.
    used = c.workers * (c.threads_per_worker or cores or 1)
    if more:
        why_max = f"{max(r.config.workers for r in more)} workers measured no faster than {hi}"
    elif cores is not None and used > cores:
        why_max = f"{hi} workers is the largest pool measured (more than the {cores} usable cores: its workers mostly wait)"
    elif cores is not None and used == cores:
        why_max = f"{hi} × {c.threads_text()} already use{'s' if hi == 1 else ''} the {cores} usable cores"
    else:
        why_max = f"{hi} workers is the most measured"
    target = MIN_POOL_SHARE * best.throughput
    measured_fewer = {w: r for w, r in same.items() if w < c.workers}
    # "About half": within the 5% a trial's windows may differ and still count as stable (a pool
    # that scales exactly linearly measures half its size at 49% about as often as at 51%).
    reaching = sorted(w for w, r in measured_fewer.items() if r.throughput >= target * (1 - HALF_SLACK))
    if reaching:
        lo = reaching[0]
        r = same[lo]
        why_min = (
            f"{lo} worker{'s' if lo != 1 else ''} measured {fmt.rate(r.throughput)} items/s, "
            f"{r.throughput / best.throughput:.0%} of the best — the smallest pool reaching about half"
        )
    elif measured_fewer:
        lo = c.workers
        shown = ", ".join(
            f"{w} → {r.throughput / best.throughput:.0%}" for w, r in sorted(measured_fewer.items())
        )
        why_min = f"smaller pools measured below half the best throughput ({shown})"
    else:
        lo = max(1, math.ceil(c.workers * MIN_POOL_SHARE))
        why_min = (
            f"smaller pools not measured at these settings; {lo} is half the pool, "
            "about half the best throughput if it scales linearly"
        )
        if lo == c.workers:
            why_min = f"{lo} worker{'s' if lo != 1 else ''} is the smallest pool"
    text = (
        f"min {lo}: {why_min} (a pool that absorbs half the peak without starting a worker: its model "
        f"load took {fmt.seconds(best.cold_start_s)} in the sweep); max {hi}: {why_max}"
    )
    return lo, hi, text


def host_load_words(r: TrialResult, usable_cores: int | None = None) -> str:
    """What the host did while ``r`` was measured, in words ('' when nothing was recorded)."""
    o = r.outside
    if o is None:
        return ""
    of = f" of the {usable_cores} usable cores" if usable_cores else " of the usable cores"
    n = len(r.discarded_windows)
    if r.contaminated:
        from tuner.hostload import describe_top

        busiest = f"; busiest others: {describe_top(o.top)}" if o.top else ""
        return (
            f"measured on a busy host: outside load {o.cpu:.0%}{of}, too few clean windows "
            f"({n} of {len(r.windows)} discarded) — the figures read low; re-measure on a quiet host{busiest}"
        )
    if n:
        return (
            f"host load while measuring: outside tuner {o.cpu:.0%}{of} in the counted windows; "
            f"{n} busy window{'s' if n != 1 else ''} (up to {o.cpu_max:.0%}) discarded and measured again"
        )
    return f"host load while measuring: outside tuner {o.cpu:.0%}{of} (busiest window {o.cpu_max:.0%})"


def max_pending_for(
    throughput: float, partition_size: int, max_workers: int, p99_budget_ms: float | None
) -> tuple[int, str]:
    """The runtime's bound on items in flight and how it was derived (see the module docstring)."""
    depth = MEASURED_DEPTH * max_workers * partition_size
    if p99_budget_ms is not None:
        horizon_s, what = p99_budget_ms / 1000.0, f"the p99 budget of {p99_budget_ms:g} ms"
    else:
        horizon_s, what = DEFAULT_QUEUE_S, f"{DEFAULT_QUEUE_S:g} s of work (no latency objective)"
    little = math.ceil(throughput * horizon_s)
    if little >= depth:
        return little, (
            f"max_pending {little}: {fmt.rate(throughput)} items/s × {what} (Little's law: "
            "an item accepted past it would wait longer than that)"
        )
    return depth, (
        f"max_pending {depth}: the {MEASURED_DEPTH} partitions of {partition_size} per worker × {max_workers} "
        f"the throughput was measured with ({fmt.rate(throughput)} items/s × {what} is only {little})"
    )


def hedge_for(service_ms: dict[str, float], max_workers: int) -> tuple[float | None, str]:
    """The hedge delay (ms; None: no hedging) from the best trial's service times, and why."""
    p95 = service_ms.get("p95")
    if p95 is None or not math.isfinite(p95) or p95 <= 0:
        return None, "no hedging: no p95 service time was measured"
    if max_workers < 2:
        return None, "no hedging: with one worker there is no idle worker to send a copy to"
    if p95 < HEDGE_MIN_MS:
        return None, (
            f"no hedging: partitions take {fmt.ms(p95)} at p95, too short for a second copy to pay "
            f"(below {HEDGE_MIN_MS:g} ms)"
        )
    return p95, (
        f"hedge: a partition still running after {fmt.ms(p95)} (the p95 service time) is sent again "
        f"to an idle worker, the first result wins; duplicate work at most {Deployment.hedge_budget:.0%} of the "
        f"partitions completed plus a burst of {HEDGE_BURST:g} copies (a token bucket: over N partitions, "
        f"{Deployment.hedge_budget:.0%} + {HEDGE_BURST:g}/N)"
    )


def recommend(
    results: list[TrialResult],
    objective: Objective,
    host: Host | None,
    *,
    prefer: TrialConfig | None = None,
    threads_word: str = "BLAS",
) -> Recommendation:
    """The recommendation from a sweep's results (see the module docstring for what is derived).

    ``prefer``: recommend this configuration's trial when another measurement chose it (the online
    sweep's winner: the highest rate within the latency objective); everything else is derived
    around it as usual. Ignored when no feasible trial of it was measured.
    ``threads_word``: what the threads knob sizes for this model, in the headline ("BLAS" for
    Python models, "intra-op" for ONNX Runtime and torch files: :attr:`ModelSpec.threads_word`).
    """
    ok = [r for r in results if r.feasible and not r.error and r.throughput > 0]
    infeasible = [r for r in results if not r.feasible]
    front = pareto_front(ok or [r for r in results if not r.error])
    baseline = baseline_of(results)
    best, choice_words = _choose(ok, objective, baseline, prefer)
    if best is None:
        words = ["No feasible configuration: nothing to recommend."]
        for r in infeasible[:5]:
            words.append(f"  {r.config.label()}: {'; '.join(r.infeasible_reasons) or 'infeasible'}")
        return Recommendation(None, None, [], front, "", words, infeasible=infeasible)
    ranked = sorted(ok, key=lambda r: _rank_key(r, objective), reverse=True)
    timeout, t_text = _timeout(best)
    if not best.config.kind.can_time_out:
        timeout, t_text = (
            None,
            f"none: the {best.config.backend} backend runs the call in the caller and cannot end it",
        )
    retries, backoff, r_text = _retries(results, best)
    lo, hi, a_text = _autoscale(results, best, host)
    c = best.config
    pending, p_text = max_pending_for(best.throughput, c.partition_size, hi, objective.p99_budget_ms)
    hedge_ms, h_text = hedge_for(best.service_ms, hi)
    deployment = replace(
        c,
        timeout_s=timeout,
        retries=retries,
        backoff_base_s=backoff[0],
        backoff_cap_s=backoff[1],
        memory_limit_mb=objective.memory_budget_mb / c.workers if objective.memory_budget_mb else None,
        max_pending=pending,
        hedge_after_s=hedge_ms / 1000.0 if hedge_ms is not None else None,
        autoscale=AutoscaleSettings(
            min_workers=lo,
            max_workers=hi,
            target_backlog_per_worker=BACKLOG_PER_WORKER,
            target_p99_s=objective.p99_budget_ms / 1000.0 if objective.p99_budget_ms else None,
        ),
    )
    rec = Recommendation(
        best=best,
        deployment=deployment,
        runner_ups=[r for r in ranked if r is not best][:3],
        pareto=front,
        # The runtime's bounds and pace, in one reasoning: backpressure is part of its pace.
        autoscale_reasoning=f"{a_text}; {p_text}",
        words=[],
        infeasible=infeasible,
        retry_reasoning=r_text,
        timeout_reasoning=t_text,
        results=list(results),
        pending_reasoning=p_text,
        hedge_reasoning=h_text,
        baseline=baseline,
        choice_words=choice_words,
    )
    if baseline is not None:
        rec.speedup = best.throughput / baseline.throughput
        rec.speedup_ci = ratio_ci(best.reported_windows(), baseline.reported_windows())
    rec.words = _words(rec, ok, host, threads_word)
    return rec


def _choose(
    ok: list[TrialResult], objective: Objective, baseline: TrialResult | None, prefer: TrialConfig | None
) -> tuple[TrialResult | None, list[str]]:
    """The trial to recommend, and what to say about the choice (see the module docstring).

    The best by the objective, unless it does not beat the default deployment beyond the noise:
    then the default itself — in one worker when that is within the noise of the in-caller form (it
    keeps timeouts and crash isolation). ``prefer`` (the online winner) is taken when its trial is
    within the noise of the best closed-loop one; else the best is kept, and the words say why.
    """
    best = _pick(ok, objective)
    if best is None:
        return None, []
    words: list[str] = []
    preferred = [r for r in ok if r.config == prefer] if prefer is not None else []
    if preferred:
        pick = max(preferred, key=lambda r: r.throughput)
        if beats(best, pick, objective):
            words.append(
                f"  the online search's winner, {pick.config.label()}, measured {fmt.rate(pick.throughput)} items/s "
                f"closed loop, below the best's noise ({fmt.rate(best.throughput)}): the best is kept"
            )
        else:
            best = pick
    if baseline is None or (best.role == "" and beats(best, baseline, objective)):
        return best, words
    defaults = {r.role: r for r in ok if r.role in (DEFAULT, DEFAULT_WORKER) and not r.contaminated}
    inline, worker = defaults.get(DEFAULT), defaults.get(DEFAULT_WORKER)
    chosen = (
        worker if worker is not None and (inline is None or not beats(inline, worker, objective)) else inline
    )
    chosen = chosen or baseline
    if best.role == "":
        ratio = best.throughput / baseline.throughput
        lo, hi = ratio_ci(best.reported_windows(), baseline.reported_windows())
        words.append(
            f"  run it as it is: more workers did not help on this host — the best other configuration, "
            f"{best.config.label()}, measured {ratio:.2f}× the default (CI {lo:.2f}–{hi:.2f}×), within its noise"
        )
    if chosen.config.kind.gives_up():
        words.append(f"  in the caller's process: {'; '.join(chosen.config.kind.gives_up())}")
    return chosen, words


def _timeout(best: TrialResult) -> tuple[float | None, str]:
    """The partition timeout from the best trial's service-time tail, and why."""
    p999 = best.service_ms.get("p999")
    timeout = timeout_for(p999)
    if not p999:
        return timeout, f"{timeout:g} s per partition (no service times measured: a default)"
    if timeout <= TIMEOUT_FLOOR_S and 10 * p999 / 1000 < TIMEOUT_FLOOR_S:
        return (
            timeout,
            f"{timeout:g} s per partition (the floor: 10× the p99.9 service time of {fmt.ms(p999)} is less)",
        )
    return timeout, f"{timeout:g} s per partition (10× the p99.9 service time of {fmt.ms(p999)})"


def _against_default(rec: Recommendation) -> str:
    """The headline's ratio: against the framework's default deployment, measured in the same sweep."""
    base, best = rec.baseline, rec.best
    if base is None:
        return "the default deployment was not measured cleanly in this sweep: no ratio to state"
    where = "in the caller's process" if base.config.kind.in_caller else f"in one {base.config.kind.noun}"
    what = f"the framework's default deployment ({where}, its own threads)"
    if best is base:
        return f"{what} itself"
    lo, hi = rec.speedup_ci or (math.nan, math.nan)
    ci = f", CI {lo:.2f}–{hi:.2f}×" if math.isfinite(lo) and math.isfinite(hi) else ""
    return f"{rec.speedup:.2f}× {what}{ci}"


def _load_words(best: TrialResult) -> str:
    """The trial's workers' model load time: not the cold start a service pays (a fresh process
    starting the runtime, timed after the sweep: tuner.bench.coldstart), so not called one."""
    return f"workers loaded the model in {fmt.seconds(best.cold_start_s)} in the sweep"


def _words(rec: Recommendation, ok: list[TrialResult], host: Host | None, threads_word: str) -> list[str]:
    """The recommendation in plain words: what to run, its evidence, the settings derived, and why."""
    best, d = rec.best, rec.deployment
    assert best is not None and d is not None and d.autoscale is not None
    threads = d.threads_per_worker
    if best.role:
        words = [
            f"Recommended: run it as it is — {d.kind.count(d.workers)} with the framework's own threads "
            f"({threads_word}), partitions of {d.partition_size}"
        ]
    else:
        tw = f"{threads_word} thread{'' if threads == 1 else 's'}"
        shown = threads if threads is not None else "the framework's own"
        words = [f"Recommended: {d.kind.count(d.workers)} × {shown} {tw}, partitions of {d.partition_size}"]
    lo_ci, hi_ci = best.throughput_ci
    line = (
        f"  {fmt.rate(best.throughput)} items/s (95% CI {fmt.rate(lo_ci)}–{fmt.rate(hi_ci)}), "
        f"p99 {fmt.ms(best.latency_ms.get('p99'))}"
    )
    line += " — " + _against_default(rec)
    if not best.stable:
        line += " [unstable: windows never agreed within tolerance]"
    words.append(line)
    words.extend(rec.choice_words)
    if best.faults:
        words.append(
            f"  with faults {best.faults}: {fmt.rate(best.throughput)} items/s, p99 {fmt.ms(best.latency_ms.get('p99'))}; "
            f"without: {fmt.rate(best.clean_throughput or 0)} items/s, p99 {fmt.ms(best.clean_p99_ms)}"
        )
    words.append(
        f"  timeout {rec.timeout_reasoning}, {d.retries} retries, "
        f"backoff {d.backoff_base_s:g}–{d.backoff_cap_s:g} s with jitter"
    )
    a = d.autoscale
    if a.min_workers == a.max_workers:
        words.append(f"  a fixed pool of {d.kind.count(a.max_workers)} (no autoscaling); {_load_words(best)}")
    else:
        words.append(
            f"  autoscale {a.min_workers}–{a.max_workers} workers; scale-up on backlog > "
            f"{BACKLOG_PER_WORKER:g} partitions per worker; {_load_words(best)}"
        )
    load_line = host_load_words(best, host.usable_cores if host is not None else None)
    if load_line:
        words.append(f"  {load_line}")
    if d.hedge_after_s is not None:
        words.append(f"  {rec.hedge_reasoning}")
    if rec.runner_ups:
        words.append(
            "  runner-ups: "
            + "; ".join(f"{r.config.label()} {fmt.rate(r.throughput)}/s" for r in rec.runner_ups)
        )
    if rec.infeasible:
        words.append(
            f"  {len(rec.infeasible)} configuration(s) infeasible (shown in the table, not recommended)"
        )
    words.extend(_thread_words(best, rec.results))
    return words


def _thread_words(best: TrialResult, results: list[TrialResult]) -> list[str]:
    """The thread evidence in words: the winner's, and how many trials ran more than configured."""
    from tuner.bench.threads import describe

    out = []
    line = describe(best.threads) if best.threads else ""
    if line:
        out.append(f"  threads: {line}")
    over = [r for r in results if r.threads.get("over")]
    if over:
        out.append(
            f"  {len(over)} trial(s) ran more threads than configured (marked 'threads over' in the table): "
            "a thread pool the knobs do not reach"
        )
    return out
