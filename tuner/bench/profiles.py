"""The one place a scaling profile is assembled: a recommendation, the host, the sweep, and what else
was measured (the cluster, the online search) become one :class:`~tuner.profile.ScalingProfile`.

The deployment goes in through :func:`tuner.profile.recommended_of` / :func:`~tuner.profile.autoscale_of`
(the pair that maps it to the profile and back), the evidence from the best trial; an online
section, when there is one, brings what follows from it — its objective becomes the profile's and
the autoscaler's p99 target, and its measured batch delay and ``max_pending`` become
``recommended``'s, so a reader of ``recommended`` sees no guessed figure.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from tuner.bench.recommend import Recommendation
from tuner.bench.request import SweepRequest
from tuner.bench.types import TrialResult
from tuner.errors import BadInput

if TYPE_CHECKING:
    from tuner.bench.hostspeed import Nature
    from tuner.calibrate import Calibration
    from tuner.hardware import Host
    from tuner.models import ModelInfo
    from tuner.profile import Evidence, Online, ScalingProfile

__all__ = ["build_profile", "host_info", "profile_for_plan"]


def _blas(host: Host) -> str | None:
    if not host.blas:
        return None
    b = host.blas[0]
    version = ".".join(str(b.get("version") or "?").split(".")[:3])
    return f"{b.get('internal_api')} {version}"


def host_info(host: Host, calibration: Calibration | None = None) -> Any:
    """The profile's ``host:`` section for ``host`` (a :class:`tuner.profile.HostInfo`), with its
    speed on the reference kernels when it was calibrated."""
    from tuner.profile import CalibrationRecord, HostInfo

    platform = host.platform if host.platform in ("linux", "darwin", "windows") else "linux"
    return HostInfo(
        fingerprint=host.fingerprint(),
        summary=host.summary(),
        usable_cores=host.usable_cores,
        logical_cores=host.logical_cores,
        physical_cores=host.physical_cores,
        memory_total_gb=round(host.memory_total_bytes / 1e9, 1),
        cpu_model=host.cpu_model or "unknown",
        platform=platform,  # type: ignore[arg-type]
        machine=host.machine,
        blas=_blas(host),
        calibration=CalibrationRecord.of(calibration) if calibration is not None else None,
    )


def _pct(d: dict[str, float], keys: tuple[str, ...]) -> dict[str, float]:
    return {k: float(d[k]) for k in keys if k in d and math.isfinite(d[k])}


def _host_load(best: TrialResult) -> Any:
    from tuner.profile import HostLoad, OutsideProcessInfo

    o = best.outside
    if o is None:
        return None
    return HostLoad(
        outside=float(o.cpu),
        outside_max=float(o.cpu_max),
        steal=float(o.steal),
        swap_mb_s=float(o.swap_mb_s),
        limit=o.limit,
        windows=len(best.windows),
        windows_discarded=len(best.discarded_windows),
        contaminated=best.contaminated,
        top=[OutsideProcessInfo(name=p.name, pid=p.pid, share=float(p.share)) for p in o.top],
    )


def _evidence(
    rec: Recommendation, trials_run: int | None, strategy: str | None, measuring_s: float | None
) -> Evidence:
    """The ``evidence:`` section: the best trial's figures, the alternatives, the host around it."""
    from tuner.profile import (
        Baseline,
        Candidate,
        Evidence,
        LatencyIntervals,
        PeakRss,
        Percentiles,
        ThreadEvidence,
    )

    best = rec.best
    assert best is not None

    def cand(r: TrialResult) -> Candidate:
        return Candidate.from_deployment(
            r.config, throughput=float(r.throughput), p99_ms=r.latency_ms.get("p99")
        )

    extra: dict[str, Any] = {}
    base = rec.baseline
    if base is not None:
        extra["baseline"] = Baseline.from_deployment(
            base.config,
            name=f"the framework's default deployment: {base.config.label()}",
            throughput=float(base.throughput),
            throughput_ci=(float(base.throughput_ci[0]), float(base.throughput_ci[1])),
            p99_ms=base.latency_ms.get("p99"),
        )
        if rec.speedup is not None:
            extra["speedup"] = round(rec.speedup, 4)
        if rec.speedup_ci is not None and all(math.isfinite(x) for x in rec.speedup_ci):
            extra["speedup_ci"] = (round(rec.speedup_ci[0], 4), round(rec.speedup_ci[1], 4))
    if best.outside is not None:
        extra["host_load"] = _host_load(best)
    if best.threads.get("ran") is not None:
        extra["threads"] = ThreadEvidence(**best.threads)
    return Evidence(
        throughput=float(best.throughput),
        throughput_ci=(float(best.throughput_ci[0]), float(best.throughput_ci[1])),
        latency_ms=Percentiles(**_pct(best.latency_ms, ("p50", "p90", "p95", "p99"))),
        latency_ci_ms=LatencyIntervals(
            **{
                k: (float(v[0]), float(v[1]))
                for k, v in best.latency_ci_ms.items()
                if k in ("p50", "p90", "p95", "p99")
            }
        ),
        service_time_ms=Percentiles(**_pct(best.service_ms, ("p50", "p95", "p99", "p999"))),
        service_time_spread=best.service_ms.get("log_spread"),
        service_time_partitions=int(best.service_ms["n"]) if "n" in best.service_ms else None,
        cold_start_s=float(rec.cold_start_s if rec.cold_start_s is not None else best.cold_start_s),
        cpu_share=float(best.cpu_share),
        peak_rss_mb=PeakRss(
            per_worker=best.peak_rss_mb.get("per_worker"), total=best.peak_rss_mb.get("total")
        ),
        trials_run=trials_run if trials_run is not None else (len(rec.results) or None),
        strategy=strategy,
        measuring_s=round(measuring_s, 1) if measuring_s is not None else None,
        faults=best.faults,
        faults_observed=dict(best.faults_seen) or None,
        runner_ups=[cand(r) for r in rec.runner_ups],
        pareto=[cand(r) for r in rec.pareto],
        **extra,
    )


def _model_ref(request: SweepRequest, info: ModelInfo | None, nature: Nature | None) -> Any:
    """The ``model:`` section: the spec, the input measured with, a model file's facts, its nature."""
    from tuner.profile import InputInfo, ModelRef, NatureRecord

    item = getattr(info, "item", None)
    fmt = getattr(info, "format", None)
    options = dict(request.model_options or {})
    model_file: dict[str, Any] = {}
    if fmt is not None:
        model_file = {
            "format": fmt,
            "framework": getattr(info, "framework", None),
            "framework_version": getattr(info, "framework_version", None),
            "allow_pickle": True if options.get("allow_pickle") else None,
            "method": options.get("method", "predict") if fmt == "sklearn" else None,
            "provider": options.get("provider"),
            "outputs": list(getattr(info, "outputs", None) or []) or None,
        }
    return ModelRef(
        spec=request.model,
        input=InputInfo(
            source=f"file {request.input_path}" if request.input_path else "builtin generator",
            kind=None,
            item=item if item and item != "unknown" else None,
            items=request.n_items if request.input_path is None else None,
        ),
        **model_file,
        nature=NatureRecord.model_validate(nature.to_dict()) if nature is not None else None,
    )


def build_profile(
    rec: Recommendation,
    *,
    name: str,
    request: SweepRequest,
    host: Host,
    info: ModelInfo | None,
    trials_run: int | None = None,
    measuring_s: float | None = None,
    cluster: Any = None,
    online: Online | None = None,
    calibration: Calibration | None = None,
    nature: Nature | None = None,
) -> ScalingProfile:
    """The profile of a recommendation (raises BadInput when there is none).

    ``cluster``: the ``cluster:`` section (:class:`tuner.profile.ClusterInfo`) of a sweep on a Ray
    cluster; ``online``: the ``online:`` section of ``tuner bench --online``; ``calibration``: the
    host's speed measured before the trials (``host.calibration``); ``nature``: the model's, read
    from the trials (``model.nature``).
    """
    from tuner import __version__
    from tuner.profile import Objective, ScalingProfile, autoscale_of, recommended_of

    if rec.best is None or rec.deployment is None:
        raise BadInput("no feasible configuration was measured: nothing to write to a profile")
    deployment, obj = rec.deployment, request.objective
    p99_budget = obj.p99_budget_ms
    if online is not None:
        p99_budget = online.objective_p99_ms
        assert deployment.autoscale is not None
        deployment = replace(
            deployment,
            max_batch_delay_s=online.max_batch_delay_ms / 1000.0,
            max_pending=online.max_pending,
            autoscale=replace(deployment.autoscale, target_p99_s=p99_budget / 1000.0),
        )
    info_knobs = dict(getattr(info, "knobs", None) or {})
    if info_knobs:  # a model file's knobs as it ran: the adapter's own values, the swept ones over them
        deployment = replace(deployment, knobs=tuple({**info_knobs, **dict(deployment.knobs)}.items()))
    assert deployment.autoscale is not None
    return ScalingProfile(
        schema_version=1,
        name=name,
        created=datetime.now(timezone.utc).replace(microsecond=0),
        tool_version=__version__,
        model=_model_ref(request, info, nature),
        host=host_info(host, calibration),
        objective=Objective(
            goal=obj.goal,  # type: ignore[arg-type]
            p99_budget_ms=p99_budget,
            memory_budget_mb=obj.memory_budget_mb,
            min_throughput=obj.min_throughput,
        ),
        recommended=recommended_of(deployment),
        cluster=cluster,
        autoscale=autoscale_of(deployment.autoscale, rec.autoscale_reasoning),
        evidence=_evidence(rec, trials_run, request.strategy, measuring_s),
        online=online,
    )


def profile_for_plan(section: Online, *, model: str, host: Any, best: TrialResult | None = None) -> Any:
    """The smallest valid profile around an ``online:`` section, measured on ``host`` — what
    :func:`tuner.plan.make_plan` reads (the TUI plans from a sweep that was not exported)."""
    from tuner import __version__
    from tuner.deployment import AutoscaleSettings
    from tuner.profile import Evidence, ModelRef, PeakRss, ScalingProfile, autoscale_of, recommended_of

    rss = best.peak_rss_mb if best is not None else {}
    d = section.to_deployment()
    d = replace(d, partition_size=d.batch_size, autoscale=AutoscaleSettings(1, d.workers))
    assert d.autoscale is not None
    return ScalingProfile(
        schema_version=1,
        name="plan",
        created=datetime.now(timezone.utc).replace(microsecond=0),
        tool_version=__version__,
        model=ModelRef(spec=model),
        host=host_info(host),
        recommended=recommended_of(d),
        autoscale=autoscale_of(d.autoscale),
        evidence=Evidence(
            throughput=float(best.throughput) if best is not None and best.throughput > 0 else 1.0,
            peak_rss_mb=PeakRss(per_worker=rss.get("per_worker"), total=rss.get("total")) if rss else None,
        ),
        online=section,
    )
