"""A profile as a KServe InferenceService (``serving.kserve.io/v1beta1``) with a custom predictor
container running ``tuner serve``, every value commented with its measurement.

The container, its resources, thread variables and probes are the Kubernetes export's
(:mod:`tuner.export.kubernetes`: one pod is one unit of the measured host). What KServe adds, in
its default Serverless mode (Knative's autoscaler, KPA):

==============================  ==============================================================
``minReplicas/maxReplicas``     the capacity plan at ``--rate``, as for the HPA
``scaleMetric: rps``            tuner measured a *rate* within the objective, so Knative scales
``scaleTarget``                 on requests/s per pod: the pod's max rate at the objective ×
                                (1 − headroom), whole requests/s (KServe takes an integer)
``containerConcurrency``        Knative's hard limit of requests in one pod: Little's law at the
                                max rate, each request within the objective (rate × p99 objective,
                                rounded up), never above what the runtime itself admits
                                (``max_pending`` / items per request): a lower limit would queue
                                requests the pod could serve within the objective; a higher one
                                would pass the queue-proxy requests the runtime refuses or makes wait
==============================  ==============================================================

Field names and types follow KServe's ``ComponentExtensionSpec`` (``pkg/apis/serving/v1beta1/
component.go``: ``minReplicas`` int, ``maxReplicas`` int, ``scaleTarget`` int, ``scaleMetric`` one of
cpu, memory, concurrency, rps; ``containerConcurrency`` int64) and its custom predictor, a pod spec
whose serving container is named ``kserve-container``. Knative allows neither lifecycle hooks nor a
termination grace period in a revision: its queue-proxy drains a pod's requests itself, so there is
no preStop here; ``tuner serve --drain-s`` still bounds the drain.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput
from tuner.export.emit import document
from tuner.export.kubernetes import (
    Scaling,
    config_map,
    container,
    derive_scaling,
    header,
    labels,
)
from tuner.export.pod import PORT, PROFILE_DIR, STARTUP_ALLOWANCE_S, ExportOptions, Pod, derive_pod
from tuner.runtime import pending_bound

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile

__all__ = ["KSERVE_API", "derive", "render"]

#: the API version the InferenceService follows
KSERVE_API = "serving.kserve.io/v1beta1"
#: KServe's name for the serving container of a custom predictor
CONTAINER_NAME = "kserve-container"


def derive(
    profile: ScalingProfile, opts: ExportOptions, pod: Pod, sc: Scaling
) -> tuple[dict[str, Any], dict[str, str]]:
    """The predictor's scaling fields and, for each, where it came from."""
    online = profile.online
    assert online is not None  # derive_scaling refuses a profile without one
    keep = 1 - opts.headroom_pct / 100
    target = max(1, math.floor(sc.planned_rate))
    in_flight = math.ceil(sc.pod_rate * sc.objective_ms / 1000 - 1e-9)
    admitted = max(1, math.floor(pending_bound(pod.settings) / online.items_per_request))
    concurrency = max(1, min(in_flight, admitted))
    capped = (
        f", capped at what the runtime admits: max_pending {pending_bound(pod.settings)} / "
        f"{online.items_per_request:g} items per request"
        if admitted < in_flight
        else f" (the runtime admits up to {admitted})"
    )
    fields = {
        "minReplicas": sc.min_replicas,
        "maxReplicas": sc.max_replicas,
        "scaleMetric": "rps",
        "scaleTarget": target,
        "containerConcurrency": concurrency,
    }
    why = {
        "minReplicas": sc.why["min"],
        "maxReplicas": sc.why["max"],
        "scaleMetric": "requests/s per pod: what tuner measured within the objective (Knative's KPA)",
        "scaleTarget": f"the pod's {sc.pod_rate:,.1f} requests/s within p99 {sc.objective_ms:g} ms × {keep:.0%} "
        f"(headroom {opts.headroom_pct:g}%), rounded down",
        "containerConcurrency": f"Little's law: {sc.pod_rate:,.1f} requests/s × {sc.objective_ms:g} ms "
        f"(each request within the objective) = {in_flight} in flight{capped}",
    }
    return fields, why


def render(profile: ScalingProfile, opts: ExportOptions | None = None) -> str:
    """The ConfigMap holding the profile and the InferenceService (YAML text)."""
    opts = opts or ExportOptions()
    if opts.autoscaler != "hpa":
        raise BadInput(
            f"--autoscaler {opts.autoscaler}: a KServe InferenceService scales with Knative's autoscaler"
        )
    pod = derive_pod(profile, opts)
    sc = derive_scaling(profile, opts, pod)
    fields, fields_why = derive(profile, opts, pod, sc)
    why = {f"spec.predictor.{k}": v for k, v in fields_why.items()}
    prefix = "spec.predictor.containers.0"
    c = container(pod, why, prefix, name=CONTAINER_NAME)
    # Knative takes one port, named for its protocol, and probes on that port.
    c["ports"] = [{"name": "http1", "containerPort": PORT, "protocol": "TCP"}]
    c["readinessProbe"] = {"httpGet": {"path": "/readyz", "port": PORT}, "periodSeconds": 1}
    c["livenessProbe"] = {
        "httpGet": {"path": "/healthz", "port": PORT},
        "initialDelaySeconds": pod.startup_failures,
        "periodSeconds": 10,
        "failureThreshold": 3,
    }
    why[f"{prefix}.ports.0.containerPort"] = "tuner serve --port (Knative takes one port; http1: HTTP/1.1)"
    why[f"{prefix}.livenessProbe.periodSeconds"] = "a hung server is found within 30 s"
    why[f"{prefix}.readinessProbe.periodSeconds"] = pod.why["ready_period"]
    why[f"{prefix}.livenessProbe.initialDelaySeconds"] = (
        pod.why["startup"].replace(", checked every second", "")
        + f" (no startup probe: the liveness check waits {STARTUP_ALLOWANCE_S} s + the cold start)"
    )
    why[f"{prefix}.livenessProbe.failureThreshold"] = pod.why["liveness"]
    isvc = {
        "apiVersion": KSERVE_API,
        "kind": "InferenceService",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "labels": labels(pod)},
        "spec": {
            "predictor": {
                **fields,
                "containers": [c],
                "volumes": [{"name": "profile", "configMap": {"name": f"{pod.name}-profile"}}],
            }
        },
    }
    why[f"{prefix}.volumeMounts.0.mountPath"] = (
        f"the ConfigMap's profile at {PROFILE_DIR}: tuner serve's argument"
    )
    notes = [
        *pod.notes,
        f"rate: {sc.plan.rate:,.0f} requests/s (--rate): the peak maxReplicas serves",
        f"headroom: {opts.headroom_pct:g}% (--headroom); KServe in Serverless mode (Knative's KPA scales on rps)",
        *[f"plan: {w}" for w in sc.plan.warnings],
    ]
    notes = [n for n in notes if not n.startswith("preStop")]
    head = header(profile, opts, "KServe InferenceService", notes)
    cm, cm_why = config_map(profile, opts, pod)
    return "\n".join(head) + "\n" + document(cm, cm_why) + "---\n" + document(isvc, why)
