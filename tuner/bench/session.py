"""A sweep: validate the model and inputs, then let a strategy pick trials and measure each one.

The two drivers (``tuner bench`` and the TUI) build a :class:`SweepSpec`, make a :class:`Sweep`
(which checks the model and inputs at once, before anything starts) and call :meth:`Sweep.run`,
usually in a worker thread, receiving :mod:`tuner.bench.types` messages through ``on_message``.
Neither contains benchmark logic.

With ``confirm``, after the search the winner is measured once more and the two trials merged
into its row (see :meth:`Sweep._confirm`). Budget: before each trial the sweep estimates its cost as the median of the trials so far and does
not start one that would end past ``budget_s``. ``results_path`` gets one JSON line per trial as
each ends (fsynced), so an interrupted sweep loses nothing; ``resume`` reads it back and the
strategy skips the configurations already measured.
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.bench.measure import MeasureSettings, TrialCancelled, run_trial
from tuner.bench.search import Space, make_strategy, with_dimensions
from tuner.bench.types import (
    Objective,
    OutsideLoad,
    SweepCallback,
    SweepFinished,
    SweepMessage,
    TrialConfig,
    TrialFinished,
    TrialPhase,
    TrialResult,
    TrialStarted,
)
from tuner.engine import FaultPlan
from tuner.errors import BadInput, DataError

__all__ = ["Sweep", "SweepSpec", "load_results", "merge_trials"]


@dataclass
class SweepSpec:
    """Everything a sweep needs: what to run, on what, how to search and how to measure."""

    model: str
    input_path: str | None = None
    n_items: int = 8192
    seed: int = 0
    space: Space | None = None  # None → Space.default(host, model, items)
    strategy: str = "adaptive"
    budget_s: float | None = 150.0
    max_trials: int | None = None
    objective: Objective = field(default_factory=Objective)
    faults: FaultPlan | None = None
    settings: MeasureSettings = field(default_factory=MeasureSettings)
    results_path: str | None = None
    resume: bool = False
    engine_overrides: dict[str, Any] | None = None  # passed to every trial's EngineConfig
    # Processes besides the measuring one (and its descendants) that are tuner, not outside load:
    # the TUI's UI process when the sweep runs in a child of it (tuner.hostload).
    own_pids: tuple[int, ...] = ()
    # Measure the winner once more and merge the two trials (against the winner's curse). Off by
    # default: the confirmation arrives as one more TrialStarted/TrialFinished pair for a config
    # already shown, so a driver must update that row (by config key) rather than add one.
    # `tuner bench` turns it on.
    confirm: bool = False
    # Model files (tuner.models.formats): what the user says about the file (allow_pickle, method,
    # provider, input_shape, input_dtype), and the adapter dimensions to sweep (e.g. execution_mode).
    model_options: dict[str, Any] = field(default_factory=dict)
    dims: tuple[str, ...] = ()


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

    from tuner.bench.measure import check_feasible
    from tuner.stats import bootstrap_ci, median

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
    """One sweep over a model's configuration space on this host."""

    def __init__(self, spec: SweepSpec, on_message: SweepCallback | None = None) -> None:
        from tuner.data import load_inputs
        from tuner.hardware import probe
        from tuner.models import input_generator, parse_spec, validate

        self.spec = spec
        self.on_message = on_message
        self.host = probe()
        # What the trials run: the spec, with a model file's options (they travel to every worker).
        self.model: Any = parse_spec(spec.model)
        if spec.model_options:
            if not self.model.is_model_file:
                raise BadInput(
                    f"{spec.model}: {', '.join('--' + k.replace('_', '-') for k in spec.model_options)} "
                    "apply to model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl) only"
                )
            self.model = self.model.with_options(**spec.model_options)
        if spec.input_path is not None:
            inputs: Any = load_inputs(spec.input_path)
            if len(inputs) == 0:
                raise DataError(f"{spec.input_path}: no items")
        else:
            if spec.n_items < 1:
                raise BadInput(f"items must be >= 1 (got {spec.n_items})")
            gen = input_generator(self.model)
            if gen is None:
                raise BadInput(
                    f"{spec.model}: the model has no input generator; give --input FILE (.npy or .jsonl)"
                )
            inputs = gen(spec.n_items, spec.seed)
        self.inputs = inputs
        # Runs the model once on a small sample: a wrong spec, or an input that does not fit a model
        # file's signature, fails here, in one line, before any worker starts.
        self.info = validate(self.model, sample=inputs[:8], where=spec.input_path or "generated inputs")
        self.space = spec.space or Space.default(self.host, self.info, len(inputs))
        if spec.dims:
            self.space = with_dimensions(self.space, self.info, spec.dims)
        if not self.space.configs():
            raise BadInput(
                "the sweep space has no feasible configuration: workers × threads exceeds the "
                f"{self.host.usable_cores} usable cores (add --oversubscribe to allow it)"
            )
        self._faults = spec.faults
        self.results: list[TrialResult] = []
        self.resumed: list[TrialResult] = []
        if spec.results_path and spec.resume:
            # A confirmed winner has two lines (its trial, then the merged one): keep the last.
            self.resumed = list(
                {r.config.key(): r for r in load_results(spec.results_path, spec.model)}.values()
            )
            self.results = list(self.resumed)
        self.elapsed_s = 0.0
        self.interrupted = False
        self.strategy_name = spec.strategy
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

    def _append_line(self, result: TrialResult) -> None:
        if not self.spec.results_path:
            return
        line = json.dumps({"model": self.spec.model, **result.to_dict()}, allow_nan=True)
        with open(self.spec.results_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _confirm(self, index: int, t0: float, cancel: threading.Event | None) -> None:
        """Measure the best configuration once more and merge the two trials into its row.

        Picking the best of many noisy trials picks, among near-equals, the one that happened to
        measure high (the winner's curse); a profile recording that figure makes the CI gate and a
        re-measurement look like a regression. A second trial of the winner, merged, records what
        it does on a typical run. Skipped when the budget has no room left for it.
        """
        from tuner.bench.recommend import recommend

        spec = self.spec
        best = recommend(self.results, spec.objective, self.host).best
        if best is None or best.error:
            return
        if spec.budget_s is not None and self.trial_seconds:
            if time.perf_counter() - t0 + statistics.median(self.trial_seconds) > spec.budget_s:
                return
        self._emit(TrialStarted(index, best.config, index + 1))
        self._emit(TrialPhase(index, "warmup", "confirming the winner: measuring it once more"))
        try:
            again = self._trial(best.config, index, cancel)
        except TrialCancelled:
            self.interrupted = True
            return
        merged = merge_trials(best, again, spec.objective)
        self.results[self.results.index(best)] = merged
        self._append_line(merged)
        self._emit(TrialFinished(index, merged))

    def _trial(self, config: TrialConfig, index: int, cancel: threading.Event | None) -> TrialResult:
        """One trial of this sweep's model, inputs, settings and current fault plan."""
        spec = self.spec
        return run_trial(
            self.model,
            self.inputs,
            config,
            spec.settings,
            faults=self._faults,
            engine_overrides=spec.engine_overrides,
            objective=spec.objective,
            index=index,
            on_message=self.on_message,
            cancel=cancel,
            usable_cores=self.host.usable_cores,
            own_pids=spec.own_pids,
        )

    def run(self, cancel: threading.Event | None = None) -> list[TrialResult]:
        """Run the sweep; returns every result (resumed ones first). On cancel, stops within ~2 s."""
        spec = self.spec
        t0 = time.perf_counter()
        if spec.results_path and not spec.resume:
            try:
                Path(spec.results_path).parent.mkdir(parents=True, exist_ok=True)
                Path(spec.results_path).write_text("", encoding="utf-8")
            except OSError as e:
                raise DataError(f"{spec.results_path}: cannot write ({e.strerror or e})") from None
        known = {r.config.key(): r for r in self.resumed}
        strategy = make_strategy(
            spec.strategy, self.space, self.host, spec.objective, max_trials=spec.max_trials, known=known
        )
        index = 0
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    self.interrupted = True
                    break
                elapsed = time.perf_counter() - t0
                if spec.budget_s is not None and self.trial_seconds:
                    expected = statistics.median(self.trial_seconds)
                    if elapsed + expected > spec.budget_s:
                        break
                config = strategy.next()
                if config is None:
                    break
                planned = int(getattr(strategy, "planned", 0)) + len(self.resumed)
                self._emit(TrialStarted(index, config, max(planned, index + 1)))
                t_trial = time.perf_counter()
                try:
                    result = self._trial(config, index, cancel)
                except TrialCancelled:
                    self.interrupted = True
                    break
                self.trial_seconds.append(time.perf_counter() - t_trial)
                strategy.report(result)
                self.results.append(result)
                self._append_line(result)
                self._emit(TrialFinished(index, result))
                index += 1
            if spec.confirm and not self.interrupted and index > 1:
                self._confirm(index, t0, cancel)
        except KeyboardInterrupt:
            self.interrupted = True
            raise
        finally:
            self.elapsed_s = time.perf_counter() - t0
            self._emit(SweepFinished(list(self.results), self.interrupted, self.elapsed_s))
        return self.results
