"""The online sweep: for each candidate (configuration × batching setting), the highest sustainable rate.

::

    closed-loop results ──► engine configurations (backend, workers, threads), best first, top K
        stage 1: the best configuration × every batching setting (max batch size × max batch delay)
        stage 2: the other configurations × stage 1's best batching setting
    each candidate: a fresh Runtime (the deployed path) ─► warm-up ─► search_max_rate ─► CandidateResult
    summarize(results) ─► the winner, its latency-vs-rate curve, max_pending, the words

Each candidate gets a fair share of what is left of the budget (what is left / candidates left), so a
slow early search cannot starve the later ones. During the search the runtime refuses work past a
generous bound (``overload="reject"``): a sender blocked by backpressure would stop being open-loop,
and a refused request is a failed request, which makes the step unsustainable — as it should.

**The winner** is the candidate with the highest max rate at the objective; candidates within the
search's resolution of it are a tie, broken by the smaller batch delay (the same rate with less
waiting at low load), then by the smaller batch size.

**max_pending** for the runtime (backpressure) at the winner, by Little's law: items in flight at the
max rate = rate × items per request × the objective (an item accepted past that would wait longer
than the objective); never below the peak in flight actually measured at that rate, nor below one
full batch per worker.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tuner import fmt
from tuner.bench.online.messages import (
    CandidateFinished,
    CandidateStarted,
    OnlineFinished,
    OnlineMessage,
    StepFinished,
)
from tuner.bench.online.results import StepResult
from tuner.bench.online.schedule import make_schedule
from tuner.bench.online.search import (
    CandidateResult,
    SearchSettings,
    candidate_label,
    engine_key,
    search_max_rate,
)
from tuner.bench.online.step import BatchCounter, StepCancelled, run_step
from tuner.bench.request import DEFAULT_DELAY_MS, OnlineRequest
from tuner.bench.types import TrialConfig, TrialResult
from tuner.errors import BadInput, TunerError
from tuner.hostload import HostSampler

__all__ = [
    "CandidateFinished",
    "CandidateResult",
    "CandidateStarted",
    "OnlineFinished",
    "OnlineMessage",
    "OnlineOutcome",
    "OnlineSummary",
    "OnlineSweep",
    "StepFinished",
    "engine_configs",
    "summarize",
]

#: Warm-up of each candidate's runtime (workers started, first batches through), not measured.
WARMUP_S = 0.5
#: The first candidate starts at this share of its closed-loop throughput: climbing costs a step per
#: doubling, while a first step far past capacity costs a long drain and a backlog the bound refuses
#: (and per-item submit overhead makes the open-loop capacity lower than the closed loop's).
FIRST_START_SHARE = 0.25
#: When the warm-up's sender could not keep its schedule (a model faster than one Python sender),
#: the search starts at this share of what the sender did send: a first step at a rate it cannot
#: send costs a budget's worth of backlog and says nothing of the model.
GENERATOR_SHARE = 0.7
#: Search settings of the candidates after the first: they start near the best rate found so far.
LATER_START_SHARE = 0.8
LATER_FACTOR = 1.5


def engine_configs(
    results: Sequence[TrialResult], best: TrialConfig | None, k: int
) -> list[tuple[TrialConfig, float]]:
    """Up to ``k`` distinct (backend, workers, threads) of a closed-loop sweep, ``best`` first, then by
    throughput; each with its best trial's partition size and throughput (items/s)."""
    ok = sorted(
        (r for r in results if not r.error and r.throughput > 0), key=lambda r: r.throughput, reverse=True
    )
    seen: dict[tuple[str, int, int | None], tuple[TrialConfig, float]] = {}
    if best is not None:
        match = [r for r in ok if r.config == best]
        if match:
            seen[engine_key(best)] = (best, match[0].throughput)
    for r in ok:
        if engine_key(r.config) not in seen:
            seen[engine_key(r.config)] = (r.config, r.throughput)
    return list(seen.values())[: max(1, k)]


class OnlineSweep:
    """One online sweep (see the module docstring); ``run(cancel)`` returns every candidate's result.

    ``model`` and ``inputs`` are the sweep's own (:class:`tuner.bench.pipeline.SweepPipeline` loads
    them once, with the model file's options); ``configs``: (closed-loop configuration, its items/s),
    best first.
    """

    def __init__(
        self,
        request: OnlineRequest,
        model: Any,
        inputs: Any,
        configs: Sequence[tuple[TrialConfig, float]],
        on_message: Callable[[Any], None] | None = None,
        *,
        seed: int = 0,
        closed_loop: Sequence[TrialResult] = (),
    ) -> None:
        if not configs:
            raise BadInput("the online sweep needs at least one configuration from the closed-loop sweep")
        if not (request.objective_ms > 0 and math.isfinite(request.objective_ms)):
            raise BadInput(
                f"the p99 objective must be a finite number of ms > 0 (got {request.objective_ms})"
            )
        self.request = request
        self.model = model
        self.configs = list(configs)
        # The closed loop's throughput (CI high end) of each pool: what open loop may not exceed.
        self.ceilings: dict[Any, float] = {}
        for r in closed_loop:
            if not r.error and r.throughput > 0:
                key = engine_key(r.config)
                self.ceilings[key] = max(
                    self.ceilings.get(key, 0.0), float(r.throughput_ci[1] or r.throughput)
                )
        self.seed = seed
        self.on_message = on_message
        # One item per element: rows of an array become views (no copy), submitted one by one.
        self.items: list[Any] = list(inputs)
        self.results: list[CandidateResult] = []
        self.interrupted = False
        self.elapsed_s = 0.0

    def _emit(self, msg: Any) -> None:
        if self.on_message is not None:
            self.on_message(msg)

    def planned(self) -> int:
        """Candidates this sweep means to search (stage 1 and stage 2)."""
        return len(self._batching(self.configs[0][0])) + len(self.configs) - 1

    def _batching(self, config: TrialConfig) -> list[TrialConfig]:
        """The candidates of one configuration: each batch size × batch delay (the default's included)."""
        sizes = self.request.batch_sizes or (config.partition_size,)
        delays = sorted({*self.request.delays_ms, DEFAULT_DELAY_MS})
        return [_candidate(config, b, d) for b in sizes for d in delays]

    def run(self, cancel: threading.Event | None = None) -> list[CandidateResult]:
        """Search every candidate within the budget; on cancel, stops within a step's drain."""
        req = self.request
        t0 = time.perf_counter()
        budget_end = t0 + req.budget_s
        first, first_tput = self.configs[0]
        queue: list[tuple[TrialConfig, float]] = [(c, first_tput) for c in self._batching(first)]
        stage2 = len(self.configs) - 1  # candidates still to come once stage 1 is done
        planned = len(queue) + stage2
        index = 0
        try:
            while queue:
                if cancel is not None and cancel.is_set():
                    self.interrupted = True
                    break
                left_s = budget_end - time.perf_counter()
                if left_s <= req.step_s:
                    break
                cand, tput = queue.pop(0)
                share = left_s / (len(queue) + 1 + stage2)  # a fair share of what is left
                self._emit(CandidateStarted(index, cand, planned))
                result = self._search(index, cand, tput, time.perf_counter() + share, cancel)
                self.results.append(result)
                self._emit(CandidateFinished(index, result))
                index += 1
                if self.interrupted:
                    break
                if not queue and stage2:
                    queue = self._stage2()
                    stage2 = 0
        finally:
            self.elapsed_s = time.perf_counter() - t0
            self._emit(OnlineFinished(list(self.results), self.interrupted, self.elapsed_s))
        return self.results

    def _stage2(self) -> list[tuple[TrialConfig, float]]:
        """The other configurations with stage 1's best batching setting."""
        win = summarize(self.results, self.request).winner
        delay = win.candidate.max_batch_delay_s * 1000 if win is not None else DEFAULT_DELAY_MS
        out = []
        for c, t in self.configs[1:]:
            size = (
                win.candidate.batch_size
                if (win is not None and self.request.batch_sizes)
                else c.partition_size
            )
            out.append((_candidate(c, size, delay), t))
        return out

    def _start_rate(self, tput: float) -> tuple[float, SearchSettings]:
        per_request = self.request.request_size.mean
        found = [r.max_rate for r in self.results if r.max_rate > 0]
        if found:
            return LATER_START_SHARE * max(found), replace(self.request.search, factor=LATER_FACTOR)
        return max(self.request.search.min_rate, FIRST_START_SHARE * tput / per_request), self.request.search

    def _search(
        self, index: int, cand: TrialConfig, tput: float, deadline: float, cancel: threading.Event | None
    ) -> CandidateResult:
        from tuner.runtime import Runtime

        req = self.request
        out = CandidateResult(cand, closed_loop_throughput=tput)
        objective_s = req.objective_ms / 1000.0
        bound = math.ceil(8 * tput * max(objective_s, 0.05)) + 4 * cand.batch_size * cand.workers
        counter = BatchCounter()
        sampler = HostSampler()  # this process and its workers: the serving side's CPU per step
        start, settings = self._start_rate(tput)
        position = 0
        steps = 0

        def step(rate: float) -> StepResult:
            nonlocal position, steps
            schedule = make_schedule(
                req.arrivals,
                rate,
                req.step_s,
                size=req.request_size,
                seed=self.seed * 1000 + index * 100 + steps,
            )
            result = run_step(
                rt, schedule, self.items, objective_ms=req.objective_ms, drain_timeout_s=req.drain_timeout_s,
                batches=counter, on_progress=self.on_message, cancel=cancel, candidate=index, step=steps,
                start_item=position, sampler=sampler,
            )  # fmt: skip
            position += schedule.items
            self._emit(StepFinished(index, steps, replace(result, raw=None)))
            steps += 1
            if result.unfinished:
                # A queue that did not drain would poison the next step: stop this candidate here.
                raise _Stuck(
                    f"{result.unfinished} requests still in flight {req.drain_timeout_s:g} s after the step"
                )
            return result

        try:
            # During the search the runtime refuses work past a generous bound: a sender blocked by
            # backpressure would stop being open-loop (see the module docstring).
            rt = Runtime(self.model, replace(cand, max_pending=bound, overload="reject"), on_event=counter)
            with rt:
                warm = make_schedule(req.arrivals, start, WARMUP_S, size=req.request_size, seed=self.seed)
                warmed = run_step(rt, warm, self.items, objective_ms=req.objective_ms,
                                  drain_timeout_s=req.drain_timeout_s, cancel=cancel, ci=False)  # fmt: skip
                position = warm.items
                if warmed.generator_behind and warmed.offered > 0:
                    # A fast model: the sender, not the model, was the limit. Start where it keeps up.
                    start = max(settings.min_rate, GENERATOR_SHARE * warmed.offered)
                ceiling = self.ceilings.get(engine_key(cand))
                per = req.request_size.mean
                found = search_max_rate(
                    step, start, settings, deadline=deadline, ceiling=ceiling / per if ceiling else None
                )
                out.steps = [replace(s, raw=None) for s in found.steps]  # the raw arrays stay here
                out.stop_reason = found.stop_reason
        except StepCancelled:
            self.interrupted = True
            out.stop_reason = "cancelled"
        except _Stuck as e:
            out.stop_reason = str(e)
        except TunerError as e:
            out.error = str(e)
            out.stop_reason = "error"
        if not out.steps and out.stop_reason in ("cancelled", "") and self.interrupted:
            out.stop_reason = "cancelled"
        return out


def _candidate(config: TrialConfig, batch_size: int, delay_ms: float) -> TrialConfig:
    """A closed-loop configuration with a batching setting: what the runtime's submit() runs."""
    return replace(
        config, partition_size=batch_size, max_batch_size=batch_size, max_batch_delay_s=delay_ms / 1000.0
    )


class _Stuck(TunerError):
    """A step's requests did not drain in time: the candidate's search stops."""


# ------------------------------------------------------------------------------- the summary


@dataclass
class OnlineSummary:
    """What an online sweep concludes: the winner, its curve, max_pending, and the words."""

    winner: CandidateResult | None
    default: CandidateResult | None  # the same configuration at the 5 ms default delay, if measured
    max_pending: int | None
    pending_reasoning: str
    words: list[str]


def _rank(results: Sequence[CandidateResult], resolution: float) -> CandidateResult | None:
    ok = [r for r in results if r.max_rate > 0 and r.error is None]
    if not ok:
        return None
    top = max(r.max_rate for r in ok)
    tied = [r for r in ok if r.max_rate >= top / (1 + resolution)]
    return min(tied, key=lambda r: (r.candidate.max_batch_delay_s, r.candidate.batch_size, -r.max_rate))


_fmt = fmt.rate


def summarize(results: Sequence[CandidateResult], request: OnlineRequest) -> OnlineSummary:
    """The online sweep's conclusion (see the module docstring for the rules)."""
    win = _rank(results, request.search.resolution)
    obj = request.objective_ms
    if win is None or win.best is None:
        words = [f"Online: no candidate sustained any rate with p99 <= {obj:g} ms."]
        for r in results[:6]:
            why = r.error or (r.steps[-1].verdict() if r.steps else r.stop_reason or "not measured")
            words.append(f"  {candidate_label(r.candidate)}: {why}")
        return OnlineSummary(win, None, None, "", words)
    c = win.candidate
    best = win.best
    per = best.items_per_request
    lo, hi = win.search.max_rate_ci
    little = math.ceil(win.max_rate * per * obj / 1000.0)
    peak = max((d for _, d in best.queue), default=0)
    floor = c.batch_size * c.workers
    pending = max(little, peak, floor)
    which = (
        "Little's law"
        if pending == little
        else ("the peak in flight measured" if pending == peak else "one batch per worker")
    )
    reasoning = (
        f"max_pending {pending}: {_fmt(win.max_rate)} requests/s × {per:g} items × the {obj:g} ms objective "
        f"= {little} (Little's law); peak in flight measured at that rate {peak}; one batch per worker {floor} "
        f"— the largest ({which})"
    )
    default = next(
        (
            r
            for r in results
            if engine_key(r.candidate) == engine_key(c)
            and r.candidate.batch_size == c.batch_size
            and r.candidate.max_batch_delay_s * 1000 == DEFAULT_DELAY_MS
            and r.error is None
        ),
        None,
    )
    ci = f"{_fmt(lo)}–{_fmt(hi)}" if hi is not None else f"at least {_fmt(lo)}"
    words = [
        f"Online ({request.arrivals_text} arrivals, {request.request_size} item(s) per request, steps of {request.step_s:g} s): "
        f"{candidate_label(c)} sustains {_fmt(win.max_rate)} requests/s with p99 {fmt.ms(best.latency_ms.get('p99'))} "
        f"<= {obj:g} ms (interval {ci}/s)",
    ]
    if default is not None and default is not win:
        d = default.best
        d_p99 = f"p99 {fmt.ms(d.latency_ms.get('p99'))}" if d is not None else "no sustainable step"
        against = f"{_fmt(default.max_rate)}/s ({d_p99}) at the {DEFAULT_DELAY_MS:g} ms default"
        if win.max_rate >= default.max_rate:
            ratio = f" ({win.max_rate / default.max_rate:.2f}×)" if default.max_rate > 0 else ""
            words.append(
                f"  batch delay {c.max_batch_delay_s * 1000:g} ms measured best: {_fmt(win.max_rate)}/s{ratio} against {against}"
            )
        else:
            words.append(
                f"  batch delay {c.max_batch_delay_s * 1000:g} ms: {_fmt(win.max_rate)}/s, within the search's "
                f"{request.search.resolution:.0%} resolution of {against} — the shorter delay wins the tie"
            )
    elif default is win:
        words.append(
            f"  batch delay: the {DEFAULT_DELAY_MS:g} ms default measured best (ties within the resolution included)"
        )
    others = sorted((r for r in results if r is not win), key=lambda r: -r.max_rate)[:4]
    if others:
        words.append(
            "  others: " + "; ".join(f"{candidate_label(r.candidate)} {_fmt(r.max_rate)}/s" for r in others)
        )
    words.append(f"  {reasoning}")
    return OnlineSummary(win, default, pending, reasoning, words)


@dataclass
class OnlineOutcome:
    """An online sweep as a driver keeps it: the request, the configurations it started from, every
    candidate, the conclusion, the time taken."""

    request: OnlineRequest
    configs: list[tuple[TrialConfig, float]]
    results: list[CandidateResult]
    summary: OnlineSummary
    elapsed_s: float

    @property
    def winner_config(self) -> TrialConfig | None:
        """The closed-loop configuration of the winner (its partition size is map's), if any."""
        win = self.summary.winner
        if win is None:
            return None
        match = [c for c, _ in self.configs if engine_key(c) == engine_key(win.candidate)]
        return match[0] if match else None
