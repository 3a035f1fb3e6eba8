"""`tuner export PROFILE --to kubernetes`: manifests the Kubernetes schema accepts, each value traced
to the measurement it came from, and nothing invented where the profile is silent."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from export.helpers import PROFILES, check_fields, documents, load, validate_definition, validate_k8s
from tuner.errors import BadInput
from tuner.export.kubernetes import render
from tuner.export.pod import EXIT_ALLOWANCE_S, MEMORY_MARGIN, PROFILE_DIR, PROFILE_FILE, ExportOptions
from tuner.profile import ScalingProfile, parse_profile_text

#: what each shipped profile needs to export (mlp has no online: section; pyloop is process-backend)
CASES: dict[str, dict[str, Any]] = {
    "mlp": {"autoscaler": "none"},
    "pyloop": {"autoscaler": "none", "rate": None, "server_memory_mb": 80.0},
    "sleep": {"rate": 50_000.0, "cpu_target_pct": 60.0},
}


def _export(name: str, **over: Any) -> str:
    kw = {**CASES[name], **over}
    text = PROFILES[name].read_text()
    return render(load(name), ExportOptions(source=f"profiles/{name}.yaml", profile_text=text, **kw))


def _container(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def _with_step_cpu(p: ScalingProfile, cores: float) -> ScalingProfile:
    """The profile as the online work will write it: each step with the CPU it used (cpu_cores)."""
    assert p.online is not None
    curve = [s.model_copy(update={"cpu_cores": cores}) for s in p.online.curve]
    return p.model_copy(update={"online": p.online.model_copy(update={"curve": curve})})


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_shipped_profile_exports_manifests_the_kubernetes_schema_accepts(name: str) -> None:
    docs = documents(_export(name))
    expected = {"ConfigMap", "Deployment", "Service"} | (
        {"HorizontalPodAutoscaler"} if name == "sleep" else set()
    )
    assert set(docs) == expected
    for doc in docs.values():
        validate_k8s(doc)


def test_the_validators_refuse_what_the_apis_would() -> None:
    docs = documents(_export("sleep"))
    dep = docs["Deployment"]
    c = dep["spec"]["template"]["spec"]["containers"][0]
    c["readinessProbe"]["periodSecond"] = 1  # a typo: strict validation knows every field
    with pytest.raises(AssertionError, match="periodSecond"):
        validate_k8s(dep)
    hpa = docs["HorizontalPodAutoscaler"]
    hpa["spec"]["minReplicas"] = "3"
    with pytest.raises(AssertionError, match="minReplicas"):
        validate_k8s(hpa)
    with pytest.raises(Exception, match="stabilizationWindowSecond"):
        validate_definition(
            {"scaleUp": {"stabilizationWindowSecond": 1}},
            "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior",
        )
    with pytest.raises(AssertionError, match="not a field"):
        check_fields({"minReplicas": 1}, {"minReplicaCount": int}, "spec")
    with pytest.raises(AssertionError, match="is not"):
        check_fields({"minReplicaCount": True}, {"minReplicaCount": int}, "spec")


def test_keda_scaled_object_exports_with_the_fields_and_types_keda_declares() -> None:
    docs = documents(_export("sleep", autoscaler="keda", prometheus_url="http://prom.monitoring:9090"))
    assert set(docs) == {"ConfigMap", "Deployment", "Service", "ScaledObject"}
    for kind in ("ConfigMap", "Deployment", "Service"):
        validate_k8s(docs[kind])
    so = docs["ScaledObject"]
    # keda.sh/v1alpha1, fields and Go types of apis/keda/v1alpha1/scaledobject_types.go and
    # scaletriggers_types.go; the prometheus trigger's metadata keys of pkg/scalers/prometheus_scaler.go
    assert so["apiVersion"] == "keda.sh/v1alpha1" and so["kind"] == "ScaledObject"
    check_fields(so, {"apiVersion": str, "kind": str, "metadata": dict, "spec": dict}, "ScaledObject")
    validate_definition(so["metadata"], "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
    spec = so["spec"]
    check_fields(
        spec,
        {
            "scaleTargetRef": dict, "pollingInterval": int, "initialCooldownPeriod": int, "cooldownPeriod": int,
            "idleReplicaCount": int, "minReplicaCount": int, "maxReplicaCount": int, "advanced": dict,
            "triggers": list, "fallback": dict,
        },
        "spec",
    )  # fmt: skip
    assert {"scaleTargetRef", "triggers"} <= set(spec)
    check_fields(
        spec["scaleTargetRef"],
        {"name": str, "apiVersion": str, "kind": str, "envSourceContainerName": str},
        "scaleTargetRef",
    )
    assert spec["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    check_fields(spec["advanced"], {"horizontalPodAutoscalerConfig": dict, "restoreToOriginalReplicaCount": bool,
                                    "scalingModifiers": dict}, "advanced")  # fmt: skip
    hpa_config = spec["advanced"]["horizontalPodAutoscalerConfig"]
    check_fields(hpa_config, {"behavior": dict, "name": str}, "horizontalPodAutoscalerConfig")
    validate_definition(hpa_config["behavior"], "io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior")
    (trigger,) = spec["triggers"]
    check_fields(
        trigger,
        {"type": str, "name": str, "useCachedMetrics": bool, "metadata": dict, "authenticationRef": dict,
         "metricType": frozenset({"AverageValue", "Value", "Utilization"})},
        "triggers[0]",
    )  # fmt: skip
    assert trigger["type"] == "prometheus" and {"type", "metadata"} <= set(trigger)
    meta = trigger["metadata"]
    prometheus_keys = {
        "serverAddress", "query", "queryParameters", "threshold", "activationThreshold", "namespace",
        "customHeaders", "ignoreNullValues", "unsafeSsl", "awsRegion", "timeout", "identityOwner", "authModes",
    }  # fmt: skip
    assert set(meta) <= prometheus_keys and {"serverAddress", "query", "threshold"} <= set(meta)
    assert all(isinstance(v, str) for v in meta.values())  # map[string]string
    # the threshold: the pod's max rate at the objective × (1 − 30% headroom), per replica
    p = load("sleep")
    assert p.online is not None
    assert float(meta["threshold"]) == pytest.approx(p.online.max_rate_at_slo * 0.7, rel=1e-5)
    assert meta["query"] == (
        'sum(rate(tuner_requests_total{namespace="default",pod=~"tuner-sleep-[a-z0-9]+-[a-z0-9]+"}[1m]))'
    )


def test_the_cpu_request_is_the_measured_cores_and_says_so() -> None:
    text = _export("mlp")
    c = _container(documents(text))
    # 1.0067 × 2 usable cores = 2.01: a share above 1 is sampling error, read as all 2 cores.
    assert c["resources"]["requests"]["cpu"] == "2" and c["resources"]["limits"]["cpu"] == "2"
    assert (
        "cpu: '2'  # 2 workers × 1 thread: measured 2.0 cores (100.7% of 2 usable, read as 100%: a process "
        "cannot use more than its usable cores) at 85.2k items/s (profiles/mlp.yaml evidence)"
    ) in text
    sleep = _container(documents(_export("sleep")))
    # 0.0317 × 2 = 0.0634 cores → 64m; the limit a whole core, the one thread each worker runs.
    assert sleep["resources"]["requests"]["cpu"] == "64m" and sleep["resources"]["limits"]["cpu"] == "1"


def test_memory_is_the_measured_peak_plus_items_in_flight_plus_the_margin() -> None:
    c = _container(documents(_export("mlp")))
    mem = c["resources"]["requests"]["memory"]
    assert c["resources"]["limits"]["memory"] == mem
    # thread backend: the one process's 151.5 MB, + 85233 items × float32[256] (1024 B), + 25%
    want = (151.5 + 85233 * 1024 / 1e6) * (1 + MEMORY_MARGIN)
    assert mem == f"{math.ceil(want * 1e6 / 2**20)}Mi"
    py = _container(documents(_export("pyloop")))
    # process backend: the workers' peak + the server (--server-memory-mb) + items in flight (int64)
    p = load("pyloop")
    assert p.evidence.peak_rss_mb is not None and p.recommended.max_pending is not None
    want = ((p.evidence.peak_rss_mb.total or 0) + 80 + p.recommended.max_pending * 8 / 1e6) * (
        1 + MEMORY_MARGIN
    )
    assert py["resources"]["requests"]["memory"] == f"{math.ceil(want * 1e6 / 2**20)}Mi"


def test_threads_drain_grace_and_probes_come_from_the_profile() -> None:
    p = load("mlp")
    docs = documents(_export("mlp", prestop_s=4.0))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert {e["name"]: e["value"] for e in c["env"]}["OMP_NUM_THREADS"] == str(
        p.recommended.threads_per_worker
    )
    # drain = 85233 items in flight / 85.2k items/s + timeout 0.17 s × (2 retries + 1) = 1.51 → 1.6 s
    rec = p.recommended
    assert rec.max_pending is not None and rec.timeout_s is not None
    drain = math.ceil((rec.max_pending / p.evidence.throughput + rec.timeout_s * (rec.retries + 1)) * 10) / 10
    assert c["args"][-2:] == ["--drain-s", f"{drain:g}"]
    assert pod["terminationGracePeriodSeconds"] == math.ceil(4.0 + drain + EXIT_ALLOWANCE_S)
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "4"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz" == c["startupProbe"]["httpGet"]["path"]


def test_the_config_map_holds_the_profile_byte_for_byte_where_the_container_reads_it() -> None:
    text = PROFILES["sleep"].read_text()
    docs = documents(_export("sleep"))
    held = docs["ConfigMap"]["data"][PROFILE_FILE]
    assert held == text and parse_profile_text(held) == load("sleep")
    c = _container(docs)
    (mount,) = c["volumeMounts"]
    assert mount["mountPath"] == PROFILE_DIR and c["args"][:2] == ["serve", f"{PROFILE_DIR}/{PROFILE_FILE}"]
    vol = docs["Deployment"]["spec"]["template"]["spec"]["volumes"][0]
    assert vol["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]


def test_the_hpa_reads_replicas_from_the_plan_and_delays_from_the_autoscale_section() -> None:
    from tuner.plan import make_plan

    p = load("sleep")
    hpa = documents(_export("sleep"))["HorizontalPodAutoscaler"]["spec"]
    plan = make_plan(p, 50_000, headroom_pct=30)
    assert hpa["maxReplicas"] == plan.hosts == 6  # ⌈50k / (12.8k × 70%)⌉
    assert hpa["minReplicas"] == math.ceil(6 * p.autoscale.min_workers / p.autoscale.max_workers) == 3
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 60  # --cpu-target
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert hpa["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0


def test_the_hpa_cpu_target_is_the_cpu_at_the_max_rate_times_the_headroom_over_the_request() -> None:
    p = _with_step_cpu(load("sleep"), 0.05)  # below the 0.0634 measured closed-loop: the request stays
    text = render(p, ExportOptions(rate=50_000, headroom_pct=20))
    hpa = documents(text)["HorizontalPodAutoscaler"]
    validate_k8s(hpa)
    want = round(0.05 * 0.8 / 0.0634 * 100)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == want
    # more CPU at the max rate than closed-loop: the request is that, and the target 1 − headroom
    p = _with_step_cpu(load("sleep"), 0.5)
    docs = documents(render(p, ExportOptions(rate=50_000)))
    assert (
        docs["Deployment"]["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"]
        == "500m"
    )
    assert (
        docs["HorizontalPodAutoscaler"]["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"]
        == 70
    )


@pytest.mark.parametrize(
    ("name", "over", "message"),
    [
        (
            "mlp",
            {"autoscaler": "hpa", "rate": 1000.0},
            "no online: section — the autoscaler's replicas and target",
        ),
        ("sleep", {"cpu_target_pct": None}, "give --cpu-target PCT"),
        ("sleep", {"rate": None}, "give --rate R"),
        ("sleep", {"autoscaler": "keda"}, "needs --prometheus-url URL"),
        ("pyloop", {"server_memory_mb": None}, "give --server-memory-mb MB"),
        ("sleep", {"node_memory_gb": 0.05}, "nodes of 0.05 GB (--node-memory-gb) cannot hold it"),
    ],
)
def test_a_value_the_profile_cannot_give_is_a_named_flag_never_a_made_up_number(
    name: str, over: dict[str, Any], message: str
) -> None:
    with pytest.raises(BadInput, match=re.escape(message)):
        _export(name, **over)


def test_smaller_nodes_adapt_as_the_runtimes_host_check_does_and_the_header_says_so() -> None:
    text = _export("mlp", node_cpus=1, node_memory_gb=4.0)
    c = _container(documents(text))
    # 2 workers × 1 thread on 1-CPU nodes: the runtime's adapt_to_host keeps 1 worker, half the CPU
    assert c["resources"]["limits"]["cpu"] == "1" and c["resources"]["requests"]["cpu"] == "1"
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert any("nodes: 1 CPU, 4 GB (--node-cpus/--node-memory-gb" in ln for ln in head)
    assert any("the runtime adapts as its host check does: workers 2→1" in ln for ln in head)
    same = _export("mlp", node_cpus=16)  # bigger nodes: the pod stays the measured unit
    assert _container(documents(same))["resources"]["limits"]["cpu"] == "2"
    for doc in [*documents(text).values(), *documents(same).values()]:
        validate_k8s(doc)


def test_no_autoscaler_with_a_rate_fixes_the_replicas_the_plan_gives() -> None:
    from tuner.plan import make_plan

    text = _export("sleep", autoscaler="none")
    docs = documents(text)
    assert set(docs) == {"ConfigMap", "Deployment", "Service"}
    for doc in docs.values():
        validate_k8s(doc)
    assert (
        docs["Deployment"]["spec"]["replicas"] == make_plan(load("sleep"), 50_000, headroom_pct=30).hosts == 6
    )
    assert "replicas: 6  # tuner plan at 50.0k requests/s" in text


def test_every_number_and_quantity_says_where_it_came_from() -> None:
    text = _export("sleep")
    manifests = [d for d in text.split("\n---\n") if "kind: ConfigMap" not in d]  # not the profile inside
    bare = []
    for line in "\n".join(manifests).splitlines():
        if line.lstrip().startswith("#") or ":" not in line:
            continue
        value = line.strip().removeprefix("- ").partition(":")[2]
        value = value.split("  # ")[0].strip().strip("'")
        if re.fullmatch(r"\d+(\.\d+)?(m|Mi)?", value) and "  # " not in line:
            bare.append(line)
    assert bare == [], bare
    assert any(ln.strip().startswith("- '0.9'  # drain: ") for ln in text.splitlines())  # --drain-s's value
    head = [ln for ln in text.splitlines() if ln.startswith("#")]
    for said in ("image: tuner-sleep:0.1.0", "rate: 50.0k requests/s (--rate)", "headroom: 30% (--headroom)",
                 "preStop: 5 s (--prestop-s)"):  # fmt: skip
        assert sum(said in ln for ln in head) == 1, said  # each assumption said once, at the top
