"""A profile as the Kubernetes manifests people apply, every value commented with its measurement.

``tuner export PROFILE --to kubernetes [--rate R] [--image IMAGE] [--autoscaler hpa|keda|none]``
writes one multi-document YAML: a **ConfigMap** holding the profile itself, a **Deployment** whose
container runs ``tuner serve`` on it, a **Service**, and a **HorizontalPodAutoscaler**
(``autoscaling/v2``) or a **KEDA ScaledObject** (``keda.sh/v1alpha1``).

**A pod is one unit of the measured host.** It runs the profile's configuration (workers × threads)
as measured; the cluster adds pods, not workers. What each value is, and where it comes from:

==============================  ==============================================================
CPU request                     the cores the configuration used: ``evidence.cpu_share`` × the
                                usable cores (a share above 1 is sampling error, read as 1), or
                                the CPU at the max rate within the objective if that was more
CPU limit                       the whole cores the runtime needs to run the configuration
                                unchanged (workers × threads when CPU-bound), never below the
                                measured use: a CFS quota below it throttles every period. The
                                quota is what ``tuner hw`` sees in the pod (usable cores =
                                ⌈quota⌉), so the runtime's host check runs
                                :func:`tuner.runtime.adapt_to_host` with it; this export calls
                                the same function and says what it changes
memory request = limit          the measured peak RSS (the thread backend's one process; the
                                process backend's workers plus ``--server-memory-mb``) plus the
                                items in flight (``max_pending`` × the item's bytes), + 25%
thread variables                ``threads_per_worker``: the variables the engine's workers set
                                themselves, here before any library starts a pool
probes                          startup on ``/healthz`` (the measured cold start + 30 s for the
                                server's own start), readiness on ``/readyz``, liveness on
                                ``/healthz``
preStop, grace period           ``--prestop-s`` (your cluster's endpoint propagation: not
                                measured), then ``tuner serve --drain-s``: the items in flight at
                                the measured throughput + one timeout × (retries + 1); the grace
                                period is their sum + 1 s to exit
replicas                        :func:`tuner.plan.make_plan` at ``--rate``: pods = hosts at the
                                pod's workers; min = that × the profile's autoscale floor
                                (min_workers / max_workers)
HPA CPU target                  the CPU at the max rate within the objective × (1 − headroom) /
                                the request (``OnlineStep.cpu_cores``), or ``--cpu-target``
KEDA threshold                  the pod's max rate within the objective × (1 − headroom),
                                requests/s per replica on ``tuner_requests_total``
==============================  ==============================================================

A value the profile cannot give is never invented: it comes from a flag named in the message, or
the export stops with one line (exit 2). Writing needs nothing but the profile; the tests validate
the output with ``kubernetes-validate`` against the Kubernetes schema of :data:`K8S_VERSION`.
"""

from __future__ import annotations

import hashlib
import math
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.errors import BadInput
from tuner.export.emit import document, num

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile

from tuner.export.pod import (
    AUTOSCALERS,
    K8S_VERSION,
    MAX_STABILIZATION_S,
    PORT,
    PROFILE_DIR,
    PROFILE_FILE,
    PROFILE_PATH,
    THREAD_ENV,
    WORKDIR,
    ExportOptions,
    Pod,
    Scaling,
    _cores,
    _where,
    check_namespace,
    derive_pod,
)

__all__ = [
    "K8S_VERSION",
    "PORT",
    "PROFILE_PATH",
    "THREAD_ENV",
    "WORKDIR",
    "ExportOptions",
    "Pod",
    "Scaling",
    "derive_pod",
    "derive_scaling",
    "render",
]

# ------------------------------------------------------------------------------------- the scaling


def derive_scaling(profile: ScalingProfile, opts: ExportOptions, pod: Pod) -> Scaling:
    """Replicas from the capacity plan at ``--rate``, and the pod's rate within the objective."""
    from tuner.plan import make_plan

    where = _where(profile, opts)
    if profile.online is None:
        raise BadInput(
            f"{where}: no online: section — the autoscaler's replicas and target need the max rate within a "
            "latency objective: run tuner bench --online --p99-ms MS (or export one pod: --autoscaler none, no --rate)"
        )
    if opts.rate is None:
        raise BadInput(
            f"{where}: give --rate R (the peak requests/s to serve): the autoscaler's replicas come from "
            f"the capacity plan at that rate (tuner plan); or --autoscaler none for one pod"
        )
    plan = make_plan(profile, opts.rate, headroom_pct=opts.headroom_pct)
    online = profile.online
    assert online is not None  # make_plan refuses a profile without one
    w = pod.settings.workers
    option = next((o for o in plan.options if o["workers"] == w), None)
    if option is None or (pod.threads != online.threads_per_worker):
        raise BadInput(
            f"{where}: no measured or fitted rate for a pod of {w} worker(s) × {pod.threads} thread(s) "
            f"(the nodes' {pod.limit_cores} cores): measure on nodes like the target (tuner bench --online there)"
        )
    max_r = plan.hosts_with(w) or 1
    auto = profile.autoscale
    min_r = max(1, math.ceil(max_r * auto.min_workers / auto.max_workers - 1e-9))
    keep = 1 - opts.headroom_pct / 100
    source = "measured" if option["source"] == "measured" else "the USL fit's scaling of the measured rate"
    pod_rate = float(option["rate"])
    s = Scaling(
        min_replicas=min_r,
        max_replicas=max_r,
        pod_rate=pod_rate,
        planned_rate=pod_rate * keep,
        objective_ms=plan.objective_ms,
        plan=plan,
    )
    s.why = {
        "max": f"tuner plan at {fmt.rate(opts.rate)} requests/s: ⌈{fmt.rate(opts.rate)} / {fmt.rate(s.planned_rate)}⌉ "
        f"pods of {w} worker(s) ({fmt.rate(pod_rate)}/s each within p99 {plan.objective_ms:g} ms, {source}, "
        f"at {keep:.0%})",
        "min": f"{max_r} × the profile's autoscale floor {auto.min_workers}/{auto.max_workers} "
        "(the share of the peak it keeps warm, to absorb without a cold start), rounded up",
        "up": f"autoscale.upscale_delay_s {num(auto.upscale_delay_s)}",
        "down": f"autoscale.downscale_delay_s {num(auto.downscale_delay_s)}",
    }
    return s


def _behavior(profile: ScalingProfile, why: dict[str, str], prefix: str) -> dict[str, Any]:
    """HPA ``behavior``: the stabilisation windows from the profile's autoscaler delays."""
    auto = profile.autoscale
    up = min(MAX_STABILIZATION_S, math.ceil(auto.upscale_delay_s - 1e-9))
    down = min(MAX_STABILIZATION_S, math.ceil(auto.downscale_delay_s - 1e-9))
    capped = f" (capped at the API's {MAX_STABILIZATION_S} s)"
    why[f"{prefix}.scaleUp.stabilizationWindowSeconds"] = (
        f"autoscale.upscale_delay_s {num(auto.upscale_delay_s)}"
        + (capped if up < auto.upscale_delay_s else "")
    )
    why[f"{prefix}.scaleDown.stabilizationWindowSeconds"] = (
        f"autoscale.downscale_delay_s {num(auto.downscale_delay_s)}"
        + (capped if down < auto.downscale_delay_s else "")
    )
    return {"scaleUp": {"stabilizationWindowSeconds": up}, "scaleDown": {"stabilizationWindowSeconds": down}}


def cpu_target(profile: ScalingProfile, opts: ExportOptions, pod: Pod) -> tuple[int, str]:
    """The HPA's CPU utilisation target (% of the request) and where it came from."""
    if opts.cpu_target_pct is not None:
        return round(opts.cpu_target_pct), f"--cpu-target {opts.cpu_target_pct:g}"
    where = _where(profile, opts)
    if pod.step_cpu is None:
        raise BadInput(
            f"{where}: the profile's online steps record no CPU (cpu_cores) at the max rate within the objective: "
            "give --cpu-target PCT (% of the CPU request), measure again with tuner bench --online, or use --autoscaler keda"
        )
    if not pod.measured_as_is:
        raise BadInput(
            f"{where}: the pod runs {pod.settings.workers} worker(s), not the measured ones: its CPU at the max rate "
            "is not measured — give --cpu-target PCT"
        )
    keep = 1 - opts.headroom_pct / 100
    pct = max(1, round(pod.step_cpu * keep / pod.cores * 100))
    return pct, (
        f"{_cores(pod.step_cpu)} cores at the max rate within the objective × {keep:.0%} (headroom "
        f"{opts.headroom_pct:g}%) / request {_cores(pod.cores)} cores"
    )


# ------------------------------------------------------------------------------------- the manifests


def profile_text(profile: ScalingProfile, opts: ExportOptions) -> str:
    """The profile's YAML for the ConfigMap: the file as read, else the profile dumped."""
    if opts.profile_text is not None:
        return opts.profile_text
    from tuner.profile import dump_profile_text

    return dump_profile_text(profile)


def config_map(
    profile: ScalingProfile, opts: ExportOptions, pod: Pod
) -> tuple[dict[str, Any], dict[str, str]]:
    """The ConfigMap that holds the profile (mounted at :data:`PROFILE_DIR`)."""
    doc = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{pod.name}-profile", "namespace": pod.namespace, "labels": labels(pod)},
        "data": {PROFILE_FILE: profile_text(profile, opts)},
    }
    return doc, {
        f"data.{PROFILE_FILE}": f"the profile itself ({_where(profile, opts)}), as tuner serve reads it"
    }


def labels(pod: Pod) -> dict[str, str]:
    """The recommended labels every object of the export carries (the selector uses the name)."""
    return {"app.kubernetes.io/name": pod.name, "app.kubernetes.io/part-of": "tuner"}


def container(pod: Pod, why: dict[str, str], prefix: str, *, name: str = "tuner") -> dict[str, Any]:
    """The container that runs ``tuner serve``, its values' sources added to ``why`` under ``prefix``."""
    c: dict[str, Any] = {
        "name": name,
        "image": pod.image,
        "command": ["tuner"],
        "args": pod.args,
        "workingDir": WORKDIR,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": v, "value": str(pod.threads)} for v in THREAD_ENV],
        "resources": {
            "requests": {"cpu": pod.cpu_request, "memory": pod.memory},
            "limits": {"cpu": pod.cpu_limit, "memory": pod.memory},
        },
        "volumeMounts": [{"name": "profile", "mountPath": PROFILE_DIR, "readOnly": True}],
    }
    why[f"{prefix}.image"] = pod.why["image"]
    why[f"{prefix}.args.{len(pod.args) - 1}"] = pod.why["drain"]
    why[f"{prefix}.workingDir"] = "where the Dockerfile puts a model file named by a relative spec"
    why[f"{prefix}.ports.0.containerPort"] = "tuner serve --port (the Dockerfile's EXPOSE)"
    why[f"{prefix}.env.0.value"] = pod.why["threads"]
    for i, var in enumerate(THREAD_ENV[1:], start=1):
        why[f"{prefix}.env.{i}.value"] = f"the same, for the pool {var} sizes"
    why[f"{prefix}.resources.requests.cpu"] = pod.why["cpu_request"]
    why[f"{prefix}.resources.limits.cpu"] = pod.why["cpu_limit"]
    why[f"{prefix}.resources.requests.memory"] = pod.why["memory"]
    why[f"{prefix}.resources.limits.memory"] = "= the request"
    return c


def _probes(pod: Pod, why: dict[str, str], prefix: str) -> dict[str, Any]:
    get = {"path": "/healthz", "port": "http"}
    probes = {
        "startupProbe": {"httpGet": get, "periodSeconds": 1, "failureThreshold": pod.startup_failures},
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "initialDelaySeconds": pod.ready_delay_s,
            "periodSeconds": 1,
        },
        "livenessProbe": {"httpGet": dict(get), "periodSeconds": 10, "failureThreshold": 3},
    }
    why[f"{prefix}.startupProbe.periodSeconds"] = (
        "every second: the startup window is failureThreshold seconds"
    )
    why[f"{prefix}.startupProbe.failureThreshold"] = pod.why["startup"]
    why[f"{prefix}.livenessProbe.periodSeconds"] = "a hung server is found within 30 s"
    why[f"{prefix}.readinessProbe.initialDelaySeconds"] = pod.why["ready_delay"]
    why[f"{prefix}.readinessProbe.periodSeconds"] = pod.why["ready_period"]
    why[f"{prefix}.livenessProbe.failureThreshold"] = pod.why["liveness"]
    return probes


def deployment(
    pod: Pod, replicas: tuple[int, str] | None, text: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The Deployment; ``replicas`` (count, why) when no autoscaler sets them; ``text`` is the profile's."""
    why: dict[str, str] = {}
    prefix = "spec.template.spec.containers.0"
    c = container(pod, why, prefix)
    c.update(_probes(pod, why, prefix))
    c["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", f"{pod.prestop_s:g}"]}}}
    why[f"{prefix}.lifecycle.preStop.exec.command.1"] = pod.why["prestop"]
    spec: dict[str, Any] = {}
    if replicas is not None:
        spec["replicas"] = replicas[0]
        why["spec.replicas"] = replicas[1]
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    spec |= {
        "selector": {"matchLabels": {"app.kubernetes.io/name": pod.name}},
        "template": {
            "metadata": {
                "labels": labels(pod),
                "annotations": {
                    "prometheus.io/scrape": "true",
                    "prometheus.io/port": str(PORT),
                    "prometheus.io/path": "/metrics",
                    "tuner/profile-sha256": digest,
                },
            },
            "spec": {
                "terminationGracePeriodSeconds": pod.grace_s,
                "containers": [c],
                "volumes": [{"name": "profile", "configMap": {"name": f"{pod.name}-profile"}}],
            },
        },
    }
    why["spec.template.metadata.annotations.tuner/profile-sha256"] = (
        "the profile's hash: a changed profile rolls the pods (a ConfigMap change alone does not)"
    )
    why["spec.template.metadata.annotations.prometheus.io/scrape"] = (
        "for a Prometheus that discovers pods by annotation: GET /metrics (the tuner[metrics] extra)"
    )
    why["spec.template.metadata.annotations.prometheus.io/port"] = "tuner serve --port"
    why["spec.template.spec.terminationGracePeriodSeconds"] = pod.why["grace"]
    doc = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels(pod)},
        "spec": spec,
    }
    return doc, why


def service(pod: Pod) -> tuple[dict[str, Any], dict[str, str]]:
    """A ClusterIP Service on port 80 to the container's ``http`` port."""
    doc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels(pod)},
        "spec": {
            "selector": {"app.kubernetes.io/name": pod.name},
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return doc, {
        "spec.ports.0.port": "HTTP's port inside the cluster",
        "spec.ports.0.targetPort": f"tuner serve --port {PORT}: POST /v1/predict, GET /metrics",
    }


def hpa(
    profile: ScalingProfile, opts: ExportOptions, pod: Pod, sc: Scaling
) -> tuple[dict[str, Any], dict[str, str]]:
    """The HorizontalPodAutoscaler (``autoscaling/v2``) on CPU utilisation."""
    target, target_why = cpu_target(profile, opts, pod)
    why = {
        "spec.minReplicas": sc.why["min"],
        "spec.maxReplicas": sc.why["max"],
        "spec.metrics.0.resource.target.averageUtilization": f"% of the CPU request: {target_why}",
    }
    doc = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels(pod)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": pod.name},
            "minReplicas": sc.min_replicas,
            "maxReplicas": sc.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": target},
                    },
                }
            ],
            "behavior": _behavior(profile, why, "spec.behavior"),
        },
    }
    return doc, why


def request_rate_query(pod: Pod) -> str:
    """PromQL: the requests/s all of this Deployment's pods receive (every outcome: offered load)."""
    return (
        f'sum(rate(tuner_requests_total{{namespace="{pod.namespace}",'
        f'pod=~"{pod.name}-[a-z0-9]+-[a-z0-9]+"}}[1m]))'
    )


def scaled_object(
    profile: ScalingProfile, opts: ExportOptions, pod: Pod, sc: Scaling
) -> tuple[dict[str, Any], dict[str, str]]:
    """The KEDA ScaledObject (``keda.sh/v1alpha1``) on tuner's own request rate, from Prometheus."""
    if opts.prometheus_url is None:
        raise BadInput(
            f"{_where(profile, opts)}: --autoscaler keda needs --prometheus-url URL (the Prometheus KEDA "
            "queries for tuner_requests_total; tuner cannot know your cluster's)"
        )
    keep = 1 - opts.headroom_pct / 100
    threshold = fmt.sig(sc.planned_rate, 6)
    why = {
        "spec.minReplicaCount": sc.why["min"],
        "spec.maxReplicaCount": sc.why["max"],
        "spec.triggers.0.metadata.serverAddress": "--prometheus-url",
        "spec.triggers.0.metadata.query": "requests/s offered to all pods (every outcome); labels namespace "
        "and pod as the Prometheus scrape attaches them (see the header)",
        "spec.triggers.0.metadata.threshold": f"requests/s per replica: {fmt.rate(sc.pod_rate)}/s within p99 "
        f"{sc.objective_ms:g} ms (the pod's max rate at the objective) × {keep:.0%} (headroom {opts.headroom_pct:g}%)",
        "spec.triggers.0.metricType": "per replica: KEDA's HPA divides the query's total by the replicas",
    }
    behavior = _behavior(profile, why, "spec.advanced.horizontalPodAutoscalerConfig.behavior")
    doc = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels(pod)},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": pod.name},
            "minReplicaCount": sc.min_replicas,
            "maxReplicaCount": sc.max_replicas,
            "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
            "triggers": [
                {
                    "type": "prometheus",
                    "metricType": "AverageValue",
                    "metadata": {
                        "serverAddress": opts.prometheus_url,
                        "query": request_rate_query(pod),
                        "threshold": threshold,
                    },
                }
            ],
        },
    }
    return doc, why


def header(profile: ScalingProfile, opts: ExportOptions, what: str, notes: list[str]) -> list[str]:
    """The comment lines above the documents: what, measured where, and every assumption, once."""
    rec = profile.effective_recommended("linux")
    online = profile.online
    best = (
        f"{online.backend} ×{online.workers} · {online.threads_per_worker} thread(s) · batches ≤{online.max_batch_size} "
        f"within {online.max_batch_delay_ms:g} ms · {fmt.rate(online.max_rate_at_slo)} requests/s with p99 ≤ "
        f"{online.objective_p99_ms:g} ms"
        if online is not None
        else f"{rec.backend} ×{rec.workers} · {rec.threads_per_worker} thread(s) · partition {rec.partition_size} · "
        f"{fmt.rate(profile.evidence.throughput)} items/s (closed loop; no online: section)"
    )
    src = f" ({opts.source})" if opts.source else ""
    lines = [
        f"# {what} for {profile.model.spec}, from tuner profile '{profile.name}'{src}",
        f"# measured {profile.created.strftime('%Y-%m-%d %H:%M UTC')} on {profile.host.summary}",
        f"# best: {best}",
        "# apply: kubectl apply -f THIS_FILE   (check first: kubectl apply --dry-run=server -f THIS_FILE)",
        "# Assumptions (every value below says where it came from):",
    ]
    return lines + [f"#   - {n}" for n in notes]


def _scaling_notes(opts: ExportOptions, sc: Scaling | None, profile: ScalingProfile) -> list[str]:
    if sc is None:
        return ["no autoscaler (--autoscaler none)"]
    online = profile.online
    assert online is not None
    notes = [
        f"rate: {fmt.rate(sc.plan.rate)} requests/s (--rate): the peak maxReplicas serves",
        f"headroom: {opts.headroom_pct:g}% (--headroom): each pod planned at {100 - opts.headroom_pct:g}% of its max "
        f"rate within p99 {sc.objective_ms:g} ms",
        f"requests like the measured ones: {online.request_size} item(s) each, {online.arrivals} arrivals",
        "the runtime's own autoscaler still sizes the workers inside each pod (autoscale "
        f"{profile.autoscale.min_workers}–{profile.autoscale.max_workers}); the cluster's sizes the pods; "
        "spec.replicas is left to it",
        *[f"plan: {w}" for w in sc.plan.warnings],
    ]
    if opts.autoscaler == "keda":
        notes.append(
            "Prometheus scrapes the pods (annotations prometheus.io/scrape, /metrics: tuner[metrics]) and labels "
            "their series with namespace and pod (the Prometheus Helm chart's kubernetes-pods job; with the "
            "Prometheus Operator, a PodMonitor selecting app.kubernetes.io/name)"
        )
    return notes


def render(profile: ScalingProfile, opts: ExportOptions | None = None) -> str:
    """ConfigMap, Deployment, Service and the autoscaler (YAML text, one document each)."""
    opts = opts or ExportOptions()
    check_namespace(opts.namespace)
    if opts.autoscaler not in AUTOSCALERS:
        raise BadInput(f"--autoscaler {opts.autoscaler!r}: choose from {', '.join(AUTOSCALERS)}")
    pod = derive_pod(profile, opts)
    text = profile_text(profile, opts)
    sc: Scaling | None = None
    replicas: tuple[int, str] | None = None
    if opts.autoscaler != "none":
        sc = derive_scaling(profile, opts, pod)
    elif opts.rate is not None:
        fixed = derive_scaling(profile, opts, pod)
        replicas = (fixed.max_replicas, fixed.why["max"])
    else:
        replicas = (1, "one pod: the measured host (--rate R for a capacity plan)")
    docs = [config_map(profile, opts, pod), deployment(pod, replicas, text), service(pod)]
    if sc is not None:
        docs.append(
            hpa(profile, opts, pod, sc) if opts.autoscaler == "hpa" else scaled_object(profile, opts, pod, sc)
        )
    notes = [*pod.notes, *_scaling_notes(opts, sc, profile)]
    head = header(profile, opts, "Kubernetes manifests", notes)
    body = "---\n".join(document(d, why) for d, why in docs)
    return "\n".join(head) + "\n" + body
