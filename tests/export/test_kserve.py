"""`tuner export PROFILE --to kserve`: an InferenceService (serving.kserve.io/v1beta1) whose fields
and types are KServe's, with the container the Kubernetes export runs."""

from __future__ import annotations

import math
from typing import Any

import pytest

from export.helpers import PROFILES, check_fields, documents, load, validate_definition, validate_k8s
from tuner.errors import BadInput
from tuner.export.kserve import CONTAINER_NAME, KSERVE_API, render
from tuner.export.kubernetes import ExportOptions

#: KServe's ComponentExtensionSpec (pkg/apis/serving/v1beta1/component.go): field -> Go type
EXTENSION = {
    "minReplicas": int, "maxReplicas": int, "scaleTarget": int,
    "scaleMetric": frozenset({"cpu", "memory", "concurrency", "rps"}),
    "containerConcurrency": int, "timeout": int, "canaryTrafficPercent": int, "logger": dict, "batcher": dict,
    "labels": dict, "annotations": dict, "deploymentStrategy": dict,
}  # fmt: skip
#: the pod spec a custom predictor embeds (corev1.PodSpec, inline): the fields this export writes
POD = {"containers": list, "volumes": list}


def _isvc(**over: Any) -> tuple[str, dict[str, dict[str, Any]]]:
    opts = ExportOptions(
        source="profiles/sleep.yaml", profile_text=PROFILES["sleep"].read_text(), rate=50_000, **over
    )
    text = render(load("sleep"), opts)
    return text, documents(text)


def test_the_inference_service_has_kserves_fields_and_types() -> None:
    _, docs = _isvc()
    assert set(docs) == {"ConfigMap", "InferenceService"}
    validate_k8s(docs["ConfigMap"])
    isvc = docs["InferenceService"]
    assert isvc["apiVersion"] == KSERVE_API == "serving.kserve.io/v1beta1"
    check_fields(isvc, {"apiVersion": str, "kind": str, "metadata": dict, "spec": dict}, "InferenceService")
    validate_definition(isvc["metadata"], "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    check_fields(isvc["spec"], {"predictor": dict, "transformer": dict, "explainer": dict}, "spec")
    predictor = isvc["spec"]["predictor"]
    check_fields(predictor, {**EXTENSION, **POD}, "predictor")
    assert (
        0 <= predictor["minReplicas"] <= predictor["maxReplicas"] and predictor["containerConcurrency"] >= 0
    )
    (c,) = predictor["containers"]
    assert c["name"] == CONTAINER_NAME == "kserve-container"
    validate_definition(c, "io.k8s.api.core.v1.Container")
    for v in predictor["volumes"]:
        validate_definition(v, "io.k8s.api.core.v1.Volume")
    assert predictor["volumes"][0]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    assert len(c["ports"]) == 1 and "lifecycle" not in c  # Knative: one port, no lifecycle hooks


def test_the_scale_target_and_the_concurrency_come_from_the_max_rate_at_the_objective() -> None:
    p = load("sleep")
    assert p.online is not None
    text, docs = _isvc(headroom_pct=20)
    predictor = docs["InferenceService"]["spec"]["predictor"]
    rate, objective = p.online.max_rate_at_slo, p.online.objective_p99_ms
    assert predictor["scaleMetric"] == "rps"
    assert predictor["scaleTarget"] == math.floor(rate * 0.8)
    # Little's law: 12775.5 requests/s × 20 ms = 255.5 → 256 in flight, below max_pending 4096
    assert predictor["containerConcurrency"] == math.ceil(rate * objective / 1000) == 256
    assert "containerConcurrency: 256  # Little's law: 12,775.5 requests/s × 20 ms" in text


def test_kserve_needs_a_rate_and_knatives_autoscaler() -> None:
    with pytest.raises(BadInput, match="give --rate R"):
        render(load("sleep"), ExportOptions())
    with pytest.raises(BadInput, match="scales with Knative's autoscaler"):
        render(load("sleep"), ExportOptions(rate=1000, autoscaler="keda"))


def test_the_concurrency_never_exceeds_what_the_runtime_admits() -> None:
    p = load("sleep")
    assert p.online is not None
    p = p.model_copy(update={"online": p.online.model_copy(update={"max_pending": 100})})
    text = render(p, ExportOptions(rate=50_000))
    predictor = documents(text)["InferenceService"]["spec"]["predictor"]
    assert predictor["containerConcurrency"] == 100  # not Little's 256: the runtime admits 100 items
    assert "capped at what the runtime admits: max_pending 100 / 1 items per request" in text
