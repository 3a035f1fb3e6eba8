"""The sweep pipeline: the one service ``tuner bench`` and the TUI both call.

::

    SweepRequest (plain data) ──► SweepPipeline(request, on_message)      nothing probed, loaded or run
      prepare():  host probe ─► cluster (--ray-address) ─► model + its options ─► inputs ─► a trial
                  call of the model on a sample (a bad spec or input is one line, before any worker)
                  ─► the space (the default for this host and model, the request's overrides)
      calibrate(): the host's speed on reference kernels (tuner.calibrate; once, before any trial)
      sweep():    the strategy's trials (tuner.bench.session.Sweep) ─► confirm the winner (request.confirm)
      recommend() ─► Recommendation (a Deployment and its reasons)
      online():   the open-loop search on the best configurations (request.online)
      run():      all of the above, in order ─► SweepOutcome ─► .profile(name): the ScalingProfile
      gate():     the same pipeline with a baseline profile: its configuration measured again ─► Verdict

Messages (:mod:`tuner.bench.types`, :mod:`tuner.bench.online.messages`) reach ``on_message`` from
the stage that runs; a driver shows them and contains no benchmark logic. The cluster connection
the pipeline makes is its own: :meth:`close` (or leaving ``with``) ends it, a local head included.
"""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.bench.defaults import default_deployments
from tuner.bench.online.sweep import OnlineOutcome, OnlineSweep, engine_configs, summarize
from tuner.bench.profiles import build_profile
from tuner.bench.recommend import Recommendation, recommend
from tuner.bench.request import SweepRequest
from tuner.bench.search import Space, with_dimensions
from tuner.bench.session import Sweep, merge_trials
from tuner.bench.types import (
    EngineNote,
    SweepCallback,
    SweepFinished,
    TrialConfig,
    TrialFinished,
    TrialPhase,
    TrialResult,
    TrialStarted,
)
from tuner.errors import BadInput, DataError

if TYPE_CHECKING:
    from tuner.bench.hostspeed import Nature
    from tuner.calibrate import Calibration
    from tuner.engine import FaultPlan
    from tuner.hardware import Host
    from tuner.profile import ScalingProfile

#: items the validation may time the model on (it stops early for a slow model)
VALIDATION_SAMPLE = 1024

__all__ = [
    "GateOutcome",
    "Prepared",
    "SweepOutcome",
    "SweepPipeline",
    "baseline_request",
    "load_sweep_inputs",
]


@dataclass
class Prepared:
    """What :meth:`SweepPipeline.prepare` found: the host, the model as trials run it, the inputs,
    what a trial call said about the model, the space, and the cluster (ray backend)."""

    host: Host
    model: Any  # the parsed spec, a model file's options applied (tuner.models.ModelSpec)
    inputs: Any
    info: Any  # tuner.models.ModelInfo
    space: Space
    cluster: Any = None  # tuner.cluster.ClusterShape, when the request names a cluster
    connection_kind: str | None = None  # auto | local | client

    @property
    def threads_word(self) -> str:
        """What the threads knob sizes for this model ("BLAS", "intra-op")."""
        return str(getattr(self.model, "threads_word", "BLAS"))


@dataclass
class SweepOutcome:
    """Everything a sweep produced, typed: what the drivers print and what the profile records."""

    request: SweepRequest
    prepared: Prepared
    results: list[TrialResult]
    recommendation: Recommendation
    interrupted: bool
    elapsed_s: float  # the closed-loop sweep's wall time
    online: OnlineOutcome | None = None
    resumed: list[TrialResult] = field(default_factory=list)
    calibration: Calibration | None = None  # this host's speed, measured before the trials
    calibration_problem: str | None = None  # why there is none, when one was asked for

    def nature(self) -> Nature:
        """What sets the model's speed, read from the sweep's trials (:func:`tuner.bench.hostspeed.model_nature`)."""
        from tuner.bench.hostspeed import model_nature

        return model_nature(self.results, self.prepared.host.usable_cores, calibration=self.calibration)

    def profile(self, name: str) -> ScalingProfile:
        """The scaling profile of this sweep (BadInput when nothing is recommended)."""
        from tuner.bench.online.report import online_section

        section = None
        if self.online is not None and self.online.summary.winner is not None:
            o = self.online
            section = online_section(o.summary, o.results, o.request, self.results, measuring_s=o.elapsed_s)
        return build_profile(
            self.recommendation,
            name=name,
            request=self.request,
            host=self.prepared.host,
            info=self.prepared.info,
            trials_run=len(self.results),
            measuring_s=self.elapsed_s,
            cluster=_cluster_section(self.prepared, self.recommendation),
            online=section,
            calibration=self.calibration,
            nature=self.nature(),
        )


def load_sweep_inputs(request: SweepRequest, model: Any) -> Any:
    """The sweep's input items: the request's file, else the model's generator (one line when neither)."""
    from tuner.data import load_inputs
    from tuner.models import input_generator

    if request.input_path is not None:
        inputs = load_inputs(request.input_path)
        if len(inputs) == 0:
            raise DataError(f"{request.input_path}: no items")
        return inputs
    if request.n_items < 1:
        raise BadInput(f"items must be >= 1 (got {request.n_items})")
    gen = input_generator(model)
    if gen is None:
        raise BadInput(
            f"{request.model}: the model has no input generator; give --input FILE (.npy or .jsonl)"
        )
    return gen(request.n_items, request.seed)


class SweepPipeline:
    """One sweep, stage by stage (see the module docstring). Construction has no side effects."""

    def __init__(self, request: SweepRequest, on_message: SweepCallback | None = None) -> None:
        self.request = request
        self.on_message = on_message
        self.prepared: Prepared | None = None
        self.results: list[TrialResult] = []
        self.resumed: list[TrialResult] = []
        self.interrupted = False
        self.elapsed_s = 0.0
        self._sweep: Sweep | None = None
        self.calibration: Calibration | None = None
        self.calibration_problem: str | None = None
        self._calibrated = False
        self.budget_cut = False  # the budget ended the search before the strategy did
        self._online_sweep: OnlineSweep | None = None
        self._connection: Any = None

    def __enter__(self) -> SweepPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the cluster connection this pipeline made (a local head with it)."""
        conn, self._connection = self._connection, None
        if conn is not None:
            conn.close()

    def _emit(self, message: Any) -> None:
        if self.on_message is not None:
            self.on_message(message)

    # -- prepare --------------------------------------------------------------------------------
    def prepare(self) -> Prepared:
        """Probe the host, connect to the cluster, load and check the model and inputs, make the space."""
        if self.prepared is not None:
            return self.prepared
        from tuner.hardware import probe
        from tuner.models import parse_spec, validate

        req = self.request
        host = probe()
        model: Any = parse_spec(req.model)
        if req.model_options:
            if not model.is_model_file:
                raise BadInput(
                    f"{req.model}: {', '.join('--' + k.replace('_', '-') for k in req.model_options)} "
                    "apply to model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl) only"
                )
            model = model.with_options(**req.model_options)
        cluster = self._connect()
        inputs = load_sweep_inputs(req, model)
        # Runs the model once on a small sample: a wrong spec, or an input that does not fit a model
        # file's signature, fails here, in one line, before any worker starts.
        info = validate(model, sample=inputs[:VALIDATION_SAMPLE], where=req.input_path or "generated inputs")
        space = self._space(host, info, len(inputs), cluster)
        kind = self._connection.kind if self._connection is not None else None
        self.prepared = Prepared(host, model, inputs, info, space, cluster, kind)
        return self.prepared

    def _connect(self) -> Any:
        if self.request.ray_address is None:
            return None
        from tuner.cluster import connect

        self._connection = connect(self.request.ray_address)
        return self._connection.info()

    def _space(self, host: Host, info: Any, n_items: int, cluster: Any) -> Space:
        """The default space for this host and model, with the request's overrides."""
        sr = self.request.space
        space = Space.default(host, info, n_items)
        if self.request.dims:
            space = with_dimensions(space, info, self.request.dims)
        given = sr.overrides()
        if sr.knobs:  # a baseline's knobs as measured (one value each)
            given["knobs"] = sr.knobs
        if given or sr.oversubscribe:
            space = replace(space, **given, oversubscribe=sr.oversubscribe)
        if cluster is not None and space.max_parallel is not None and not space.oversubscribe:
            space = replace(space, max_parallel=max(space.max_parallel, int(cluster.total_cpus)))
        if not space.configs():
            raise BadInput(
                f"no configuration fits: workers × threads exceeds the {host.usable_cores} usable cores "
                "(add --oversubscribe to measure it anyway)"
            )
        return space

    # -- the host's speed ---------------------------------------------------------------------------
    def calibrate(self) -> Calibration | None:
        """Measure this host on the reference kernels (once; ``request.calibration_s``, 0: never).

        Before any trial, so the calibration sees the host the trials will see, and never while a
        trial runs. A runner that cannot start is not fatal: the sweep goes on, the profile records
        no calibration, and :attr:`calibration_problem` says why (the gate's line says it too)."""
        if self._calibrated:
            return self.calibration
        from tuner.calibrate import CalibrationError, calibrate

        self._calibrated = True
        budget = self.request.calibration_budget()
        if not budget:
            return None
        p = self.prepare()
        self._emit(
            TrialPhase(-1, "calibrate", f"calibrating the host: reference kernels, at most {budget:g} s")
        )
        try:
            self.calibration = calibrate(p.host, budget, max_outside=self.request.settings.max_outside)
        except CalibrationError as e:
            self.calibration_problem = f"the host calibration failed: {e}"
            self._emit(EngineNote(-1, 0.0, self.calibration_problem, "warning"))
            return None
        self._emit(EngineNote(-1, 0.0, self.calibration.describe(), "info"))
        return self.calibration

    # -- the closed-loop sweep --------------------------------------------------------------------
    def set_faults(self, plan: FaultPlan | None) -> None:
        """Change the fault plan of a running sweep: it takes effect from the next trial."""
        self.request.faults = plan
        if self._sweep is not None:
            self._sweep.set_faults(plan)

    def sweep(self, cancel: threading.Event | None = None) -> list[TrialResult]:
        """The strategy's trials, then (``request.confirm``) the winner measured once more."""
        p = self.prepare()
        self.calibrate()
        sweep = Sweep(
            self.request,
            host=p.host,
            model=p.model,
            inputs=p.inputs,
            space=p.space,
            on_message=self.on_message,
        )
        self._sweep = sweep
        self.resumed = list(sweep.resumed)
        anchors = default_deployments(p.info, len(p.inputs)) if self.request.measure_default else []
        t0 = time.perf_counter()
        try:
            sweep.run(cancel, anchors)
            self.interrupted = sweep.interrupted
            if self.request.confirm and not self.interrupted and len(sweep.results) - len(sweep.resumed) > 1:
                self._confirm(sweep, t0, cancel)
        finally:
            self.results = list(sweep.results)
            self.elapsed_s = time.perf_counter() - t0
            self.budget_cut = sweep.budget_cut
            self._emit(SweepFinished(list(self.results), self.interrupted, self.elapsed_s))
        return self.results

    def _confirm(self, sweep: Sweep, t0: float, cancel: threading.Event | None) -> None:
        """Measure the best configuration once more and merge the two trials into its row.

        Picking the best of many noisy trials picks, among near-equals, the one that happened to
        measure high (the winner's curse); a profile recording that figure makes the CI gate and a
        re-measurement look like a regression. A second trial of the winner, merged, records what
        it does on a typical run. Skipped when the budget has no room left for it.
        """
        from tuner.bench.measure import TrialCancelled

        req = self.request
        best = recommend(sweep.results, req.objective, sweep.host).best
        if best is None or best.error:
            return
        if req.budget_s is not None and sweep.trial_seconds:
            if time.perf_counter() - t0 + statistics.median(sweep.trial_seconds) > req.budget_s:
                return
        index = len(sweep.results) - len(sweep.resumed)
        self._emit(TrialStarted(index, best.config, index + 1))
        self._emit(TrialPhase(index, "warmup", "confirming the winner: measuring it once more"))
        try:
            again = sweep.trial(best.config, index, cancel)
        except TrialCancelled:
            self.interrupted = sweep.interrupted = True
            return
        merged = merge_trials(best, again, req.objective)
        sweep.results[sweep.results.index(best)] = merged
        sweep.append_line(merged)
        self._emit(TrialFinished(index, merged))

    def recommend(self, prefer: TrialConfig | None = None) -> Recommendation:
        """The recommendation from the results so far (``prefer``: the online winner's configuration)."""
        p = self.prepare()
        rec = recommend(
            self.results, self.request.objective, p.host, prefer=prefer, threads_word=p.threads_word
        )
        if self.budget_cut:
            rec.words.append(f"  {self.budget_words()}")
        return rec

    def budget_words(self) -> str:
        """What the budget cut: the configurations measured of the space, the values never reached."""
        p = self.prepare()
        measured = len({r.config.key() for r in self.results if not r.role})
        total = len(p.space.configs())
        budget = fmt.seconds(self.request.budget_s or 0)
        if not measured:
            return (
                f"the budget ({budget}) went on the default deployment: none of the space's {total} "
                "configurations was measured — raise --budget"
            )
        left = p.space.untried(self.results)
        what = f"; never tried: {'; '.join(left)}" if left else ""
        return (
            f"the budget ({budget}) ended the search after {measured} of {total} configurations{what} — "
            "raise --budget or narrow the space to cover them"
        )

    # -- the online search ------------------------------------------------------------------------
    def online(
        self,
        cancel: threading.Event | None = None,
        configs: list[tuple[TrialConfig, float]] | None = None,
        best: TrialConfig | None = None,
        closed_loop: list[TrialResult] | None = None,
    ) -> OnlineOutcome:
        """The open-loop search (``request.online``) on ``configs`` (default: the sweep's best ones);
        ``closed_loop``: the sweep's trials (default: this pipeline's), whose throughput bounds it."""
        req = self.request.online
        if req is None:
            raise BadInput("no online search was asked for (--online)")
        p = self.prepare()
        if configs is None:
            configs = engine_configs(self.results, best, req.configs)
        osweep = OnlineSweep(
            req, p.model, p.inputs, configs, self.on_message, seed=self.request.seed,
            closed_loop=self.results if closed_loop is None else closed_loop,
        )  # fmt: skip
        self._online_sweep = osweep
        found = osweep.run(cancel)
        self.interrupted = self.interrupted or osweep.interrupted
        return OnlineOutcome(req, list(configs), found, summarize(found, req), osweep.elapsed_s)

    def planned_online(self, configs: list[tuple[TrialConfig, float]]) -> int:
        """How many candidates the online search would measure for ``configs``."""
        req = self.request.online
        assert req is not None
        p = self.prepare()
        return OnlineSweep(req, p.model, [], configs).planned()

    # -- all of it ----------------------------------------------------------------------------------
    def run(self, cancel: threading.Event | None = None) -> SweepOutcome:
        """Every stage in order: prepare, sweep, confirm, recommend, online (see the module docstring)."""
        prepared = self.prepare()
        results = self.sweep(cancel)
        rec = self.recommend()
        online: OnlineOutcome | None = None
        if self.request.online is not None and not self.interrupted and rec.best is not None:
            online = self._eligible(rec, self.online(cancel, best=rec.best.config))
            if online.summary.winner is not None and not self.interrupted:
                rec = self._with_online(rec, online)
        if rec.deployment is not None and not self.interrupted and self.request.measure_cold_start:
            self._cold_start(rec)
        return SweepOutcome(
            self.request, prepared, results, rec, self.interrupted, self.elapsed_s, online, list(self.resumed),
            self.calibration, self.calibration_problem,
        )  # fmt: skip

    # -- the regression gate -----------------------------------------------------------------------
    def gate(
        self,
        baseline: ScalingProfile,
        tolerance_pct: float,
        cancel: threading.Event | None = None,
        on_retry: Any = None,
    ) -> GateOutcome:
        """Measure the baseline's configuration again (the request from :func:`baseline_request`):
        ``GATE_REPEATS`` trials, a trial the host made contaminated measured again up to
        ``GATE_MAX_TRIALS`` (``on_retry()`` is called before each such re-run), and the verdict of
        :func:`tuner.bench.gate.decide`. KeyboardInterrupt when cancelled."""
        from tuner.bench.gate import BaselineFigures, HostCheck, decide, want_another
        from tuner.errors import Regression

        p = self.prepare()
        results: list[TrialResult] = []
        while want_another(results):
            if results and results[-1].contaminated and on_retry is not None:
                on_retry()
            got = self.sweep(cancel)
            results.extend(got)
            if self.interrupted:
                raise KeyboardInterrupt
            if not got:
                break
        good = [r for r in results if r.throughput > 0 and not r.error]
        if not good:
            raise Regression(
                f"the baseline configuration could not run: {results[0].error if results else '?'}"
            )
        host = HostCheck(self.calibration, self.calibration_problem)
        verdict = decide(
            results,
            BaselineFigures.of(baseline),
            tolerance_pct,
            usable_cores=p.host.usable_cores,
            fingerprint=p.host.fingerprint(),
            host=host,
        )
        self.results = results
        return GateOutcome(verdict, results, self.recommend())

    def gate_against(
        self, against: str, tolerance_pct: float, cancel: threading.Event | None = None
    ) -> GateOutcome:
        """The side-by-side gate (:mod:`tuner.bench.paired`): this request's configuration measured
        with the model ``against`` (the previous version, trial A) and with this request's model
        (trial B) on the same inputs, pairs in alternating order until :func:`want_another_pair`
        says enough, then :func:`decide_paired`. No host calibration: one host, one run.
        KeyboardInterrupt when cancelled."""
        from tuner.bench.paired import Pair, decide_paired, want_another_pair
        from tuner.errors import Regression

        self._calibrated = True  # both sides run on this host now: nothing to adjust for
        mine = self.prepare()
        other = SweepPipeline(replace(self.request, model=against, calibration_s=0), self.on_message)
        pairs: list[Pair] = []
        try:
            other.prepared = replace(other.prepare(), inputs=mine.inputs)  # the same items on both sides
            while want_another_pair(pairs, tolerance_pct):
                order = "AB" if len(pairs) % 2 == 0 else "BA"
                got: dict[str, TrialResult] = {}
                for side in order:
                    pipe = other if side == "A" else self
                    measured = pipe.sweep(cancel)
                    if pipe.interrupted:
                        raise KeyboardInterrupt
                    if measured:
                        got[side] = measured[0]
                if len(got) < 2:
                    break
                pairs.append(Pair(got["A"], got["B"], order))
        finally:
            other.close()
        if not any(p.measured for p in pairs):
            errors = [r.error for p in pairs for r in (p.a, p.b) if r.error]
            raise Regression(
                f"the baseline configuration could not run side by side: {errors[0] if errors else '?'}"
            )
        verdict = decide_paired(pairs, tolerance_pct, against=against, usable_cores=mine.host.usable_cores)
        self.results = [p.b for p in pairs if p.measured]
        return GateOutcome(verdict, [r for p in pairs for r in (p.a, p.b)], self.recommend())

    def _cold_start(self, rec: Recommendation) -> None:
        """The recommendation started once in a fresh interpreter: the cold start a service pays."""
        from tuner.bench.coldstart import measure_cold_start

        assert rec.deployment is not None and rec.best is not None
        self._emit(
            TrialPhase(-1, "coldstart", "timing a cold start of the recommendation in a fresh process")
        )
        cold = measure_cold_start(self.prepare().model, rec.deployment)
        if cold is None:
            rec.words.append(
                "  cold start: could not be measured in a fresh process; the trial's workers' load time stands"
            )
            return
        rec.cold_start_s = cold
        rec.words.append(
            f"  cold start {fmt.seconds(cold)}: Runtime(...).start() to ready in a fresh process (the profile's "
            f"figure; the sweep's warm workers loaded in {fmt.seconds(rec.best.cold_start_s)})"
        )

    def _eligible(self, rec: Recommendation, online: OnlineOutcome) -> OnlineOutcome:
        """The online outcome among the pools whose closed-loop throughput is within the noise of the
        recommendation's: an open-loop winner measured slower closed loop is not recommended — the
        words say so (the profile records every candidate either way)."""
        from tuner.bench.online.search import candidate_label, engine_key
        from tuner.bench.search import beats

        best = rec.best
        if best is None or online.summary.winner is None:
            return online
        ok = {
            engine_key(r.config)
            for r in self.results
            if not r.error and not beats(best, r, self.request.objective)
        }
        kept = [c for c in online.results if engine_key(c.candidate) in ok]
        win = online.summary.winner
        if engine_key(win.candidate) in ok:
            return online
        summary = summarize(kept, online.request)
        summary.words.append(
            f"  the fastest online candidate, {candidate_label(win.candidate)} ({fmt.rate(win.max_rate)} requests/s), "
            f"measured below the closed-loop best's noise ({best.config.label()}, {fmt.rate(best.throughput)} items/s): "
            "not recommended; its figures stay in the profile's online candidates"
        )
        return replace(online, summary=summary)

    def _with_online(self, rec: Recommendation, online: OnlineOutcome) -> Recommendation:
        """The configuration that serves the most requests within the objective is the one to run;
        its measured max_pending replaces the closed loop's."""
        prefer = online.winner_config
        if prefer is not None:
            rec = self.recommend(prefer=prefer)
        summary = online.summary
        if rec.deployment is None or summary.max_pending is None:
            return rec
        return rec.with_pending(summary.max_pending, f"online: {summary.pending_reasoning}")


@dataclass
class GateOutcome:
    """The regression gate's verdict, the trials it decided on, and their recommendation."""

    verdict: Any  # tuner.bench.gate.Verdict
    results: list[TrialResult]
    recommendation: Recommendation


def baseline_request(profile: ScalingProfile, request: SweepRequest, *, model_given: bool) -> SweepRequest:
    """The request that measures a baseline profile's configuration again: its model (unless one
    was given), its backend, workers, threads, partition size, placement and knobs, a grid of that
    one configuration, no budget, no results file, as many items as it was measured with."""
    from tuner.bench.request import SpaceRequest

    d = profile.deployment()
    options = dict(request.model_options)
    if not model_given and profile.model.format is not None:
        recorded = {"method": profile.model.method, "provider": profile.model.provider}
        options = {**{k: v for k, v in recorded.items() if v is not None}, **options}
    n_items = request.n_items
    if profile.model.input is not None and profile.model.input.items and request.input_path is None:
        n_items = profile.model.input.items
    return replace(
        request,
        model=request.model if model_given else profile.model.spec,
        model_options=options,
        n_items=n_items,
        space=SpaceRequest(
            backends=(d.backend,),
            workers=(d.workers,),
            threads=(d.threads_per_worker,),  # None: the framework's own pool, as the default deployment
            partition_sizes=(d.partition_size,),
            placements=(d.placement,),
            oversubscribe=True,
            knobs=tuple((k, (v,)) for k, v in d.knobs),
        ),
        strategy="grid",
        budget_s=None,
        results_path=None,
        resume=False,
        confirm=False,
        measure_default=False,
        measure_cold_start=False,
        online=None,
    )


def _cluster_section(p: Prepared, rec: Recommendation) -> Any:
    """The profile's ``cluster:`` section when the recommendation runs on a cluster, else None."""
    d = rec.deployment
    if p.cluster is None or d is None or not d.kind.needs_cluster:
        return None
    from tuner.profile import ActorResources, ClusterInfo

    kind = p.connection_kind if p.connection_kind in ("auto", "local", "client") else "auto"
    return ClusterInfo(
        address=kind,  # type: ignore[arg-type]
        ray_version=p.cluster.ray_version,
        nodes=len(p.cluster.nodes),
        total_cpus=float(p.cluster.total_cpus),
        node_shapes=p.cluster.shapes(),
        actor=ActorResources(num_cpus=float(d.threads_per_worker or 1)),
    )
