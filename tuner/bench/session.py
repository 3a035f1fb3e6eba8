"""The search loop of a sweep, and the results it leaves: one JSON line per trial, merged trials.

:class:`Sweep` runs a strategy over the space the pipeline prepared (:mod:`tuner.bench.pipeline`),
measuring each configuration as a trial (:func:`tuner.bench.measure.run_trial`) and reporting
:mod:`tuner.bench.types` messages through ``on_message``. Budget: before each trial the sweep
estimates its cost as the median of the trials so far and does not start one that would end past
``budget_s``. ``results_path`` gets one JSON line per trial as each ends (fsynced), so an
interrupted sweep loses nothing; ``resume`` reads it back and the strategy skips the
configurations already measured. :func:`merge_trials` joins two trials of one configuration (the
pipeline's confirmation of the winner).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.bench.measure import TrialCancelled, check_feasible, run_trial
from tuner.bench.request import SweepRequest
from tuner.bench.search import Space, make_strategy
from tuner.bench.types import (
    Objective,
    OutsideLoad,
    SweepCallback,
    SweepMessage,
    TrialConfig,
    TrialFinished,
    TrialResult,
    TrialStarted,
)
from tuner.engine import FaultPlan
from tuner.errors import DataError
from tuner.stats import bootstrap_ci, median

if TYPE_CHECKING:
    from tuner.hardware import Host

__all__ = ["Sweep", "load_results", "merge_trials"]


def load_results(path: str | os.PathLike[str], model: str | None = None) -> list[TrialResult]:
    """Read a results JSON-lines file; a line that is not a trial is a DataError naming its line."""
    p = Path(path)
    out: list[TrialResult] = []
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return out
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            written_for = d.pop("model", None)
            result = TrialResult.from_dict(d)
        except (ValueError, TypeError, KeyError) as e:
            raise DataError(f"{path} line {n}: not a trial result ({type(e).__name__}: {e})") from None
        if model is not None and written_for is not None and written_for != model:
            raise DataError(f"{path} line {n}: written for model '{written_for}', not '{model}'")
        out.append(result)
    return out


def merge_trials(a: TrialResult, b: TrialResult, objective: Objective | None = None) -> TrialResult:
    """Two trials of one configuration as one: throughput = median of both trials' reported windows.

    Latency and service figures are the later trial's (an unbiased sample; the earlier one was
    picked for measuring high); counters add up; stable only if both were. A contaminated trial
    (the host was busy: :mod:`tuner.hostload`) does not drag down a clean one: when only one of the
    two is clean, its figures alone are kept — every window of both stays on record.
    """
    from dataclasses import replace

    if b.error or b.throughput <= 0:
        return a

    used = [x for x in (a, b) if not x.contaminated] or [a, b]
    windows = [w for x in used for w in x.reported_windows()]
    (ci,) = bootstrap_ci(windows, None, (0.5,))
    figures = b if b in used else a
    merged = replace(
        figures,
        throughput=round(median(windows), 2),
        throughput_ci=(round(ci[0], 2), round(ci[1], 2)),
        stable=all(x.stable for x in used),
        windows=[*a.windows, *b.windows],
        measured_s=round(a.measured_s + b.measured_s, 4),
        items=a.items + b.items,
        cold_start_s=max(a.cold_start_s, b.cold_start_s),
        retries=a.retries + b.retries,
        failures={k: a.failures.get(k, 0) + b.failures.get(k, 0) for k in {*a.failures, *b.failures}},
        faults_seen={
            k: a.faults_seen.get(k, 0) + b.faults_seen.get(k, 0) for k in {*a.faults_seen, *b.faults_seen}
        },
        discarded_windows=[*a.discarded_windows, *(i + len(a.windows) for i in b.discarded_windows)],
        contaminated=a.contaminated and b.contaminated,
        outside=_merge_outside(a, b, used),
        role=a.role,  # a confirmed default deployment is still the default
    )
    return check_feasible(merged, objective)


def _merge_outside(a: TrialResult, b: TrialResult, used: list[TrialResult]) -> OutsideLoad | None:
    """The host load of two merged trials: means over the trials whose figures were kept."""
    if a.outside is None or b.outside is None:
        return b.outside or a.outside
    kept = [x.outside for x in used if x.outside is not None]
    weights = [max(1, len(x.reported_windows())) for x in used if x.outside is not None]

    def mean(values: list[float]) -> float:
        return round(sum(v * w for v, w in zip(values, weights, strict=True)) / sum(weights), 3)

    return OutsideLoad(
        cpu=mean([o.cpu for o in kept]),
        cpu_max=max(a.outside.cpu_max, b.outside.cpu_max),
        steal=mean([o.steal for o in kept]),
        swap_mb_s=mean([o.swap_mb_s for o in kept]),
        windows=[*a.outside.windows, *b.outside.windows],
        limit=b.outside.limit,
        top=b.outside.top or a.outside.top,
    )


class Sweep:
    """The search loop of one sweep: a strategy picks configurations, each is measured as a trial.

    It is given what the pipeline prepared (:class:`tuner.bench.pipeline.SweepPipeline`: the host,
    the model with its options, the inputs, the space) and probes, loads and validates nothing itself.
    """

    def __init__(
        self,
        request: SweepRequest,
        *,
        host: Host,
        model: Any,
        inputs: Any,
        space: Space,
        on_message: SweepCallback | None = None,
    ) -> None:
        self.request = request
        self.host = host
        self.model = model
        self.inputs = inputs
        self.space = space
        self.on_message = on_message
        self._faults = request.faults
        self.results: list[TrialResult] = []
        self.resumed: list[TrialResult] = []
        if request.results_path and request.resume:
            # A confirmed winner has two lines (its trial, then the merged one): keep the last.
            self.resumed = list(
                {r.config.key(): r for r in load_results(request.results_path, request.model)}.values()
            )
            self.results = list(self.resumed)
        self.elapsed_s = 0.0
        self.interrupted = False
        self.budget_cut = False  # the budget ended the search while the strategy had configurations left
        self.trial_seconds: list[float] = []

    def set_faults(self, plan: FaultPlan | None) -> None:
        """Change the fault plan; it takes effect from the next trial."""
        self._faults = plan

    @property
    def faults(self) -> FaultPlan | None:
        return self._faults

    def _emit(self, message: SweepMessage) -> None:
        if self.on_message is not None:
            self.on_message(message)

    def append_line(self, result: TrialResult) -> None:
        """One JSON line for ``result`` in the results file (fsynced: an interrupted sweep loses nothing)."""
        if not self.request.results_path:
            return
        line = json.dumps({"model": self.request.model, **result.to_dict()}, allow_nan=True)
        with open(self.request.results_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def trial(self, config: TrialConfig, index: int, cancel: threading.Event | None) -> TrialResult:
        """One trial of this sweep's model, inputs, settings and current fault plan."""
        req = self.request
        return run_trial(
            self.model,
            self.inputs,
            config,
            req.settings,
            faults=self._faults,
            objective=req.objective,
            index=index,
            on_message=self.on_message,
            cancel=cancel,
            usable_cores=self.host.usable_cores,
            own_pids=req.own_pids,
        )

    def _start_file(self) -> None:
        path = self.request.results_path
        if path and not self.request.resume:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                Path(path).write_text("", encoding="utf-8")
            except OSError as e:
                raise DataError(f"{path}: cannot write ({e.strerror or e})") from None

    def run(
        self, cancel: threading.Event | None = None, anchors: Sequence[tuple[str, TrialConfig]] = ()
    ) -> list[TrialResult]:
        """Run the search; returns every result (resumed ones first). On cancel, stops within ~2 s.

        ``anchors``: (role, configuration) measured first, before the strategy starts (the default
        deployment: :mod:`tuner.bench.defaults`), their results marked with their role; the strategy
        does not climb from them (it searches its own space from its own start).
        """
        req = self.request
        t0 = time.perf_counter()
        self._start_file()
        known = {r.config.key(): r for r in self.resumed}
        index = 0
        strategy = make_strategy(
            req.strategy, self.space, self.host, req.objective, max_trials=req.max_trials,
            known={k: r for k, r in known.items() if not r.role},
        )  # fmt: skip
        try:
            for role, anchor in anchors:
                if anchor.key() in known or self._out_of_time(t0, cancel):
                    continue
                planned = int(getattr(strategy, "planned", 0)) + len(self.resumed) + len(anchors)
                if self._measure(index, anchor, cancel, planned=planned, role=role) is None:
                    return self.results
                index += 1
            while True:
                if self._out_of_time(t0, cancel):
                    # The budget ended the search, not the strategy: say what it never reached.
                    self.budget_cut = not self.interrupted and strategy.next() is not None
                    break
                config = strategy.next()
                if config is None:
                    break
                planned = int(getattr(strategy, "planned", 0)) + len(self.resumed) + len(anchors)
                result = self._measure(index, config, cancel, planned=planned)
                if result is None:
                    break
                strategy.report(result)
                index += 1
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            self.elapsed_s = time.perf_counter() - t0
        return self.results

    def _measure(
        self, index: int, config: TrialConfig, cancel: threading.Event | None, *, planned: int, role: str = ""
    ) -> TrialResult | None:
        """One trial, recorded (its line written, its messages sent); None when cancelled."""
        self._emit(TrialStarted(index, config, max(planned, index + 1)))
        t_trial = time.perf_counter()
        try:
            result = self.trial(config, index, cancel)
        except TrialCancelled:
            self.interrupted = True
            return None
        result.role = role
        self.trial_seconds.append(time.perf_counter() - t_trial)
        self.results.append(result)
        self.append_line(result)
        self._emit(TrialFinished(index, result))
        return result

    def _out_of_time(self, t0: float, cancel: threading.Event | None) -> bool:
        """Cancelled, or the next trial (as long as the median so far) would end past the budget."""
        if cancel is not None and cancel.is_set():
            self.interrupted = True
            return True
        budget = self.request.budget_s
        if budget is not None and self.trial_seconds:
            return time.perf_counter() - t0 + statistics.median(self.trial_seconds) > budget
        return False
