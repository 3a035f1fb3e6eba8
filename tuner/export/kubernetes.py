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
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuner.errors import BadInput
from tuner.export.emit import document, num
from tuner.runtime import pending_bound

if TYPE_CHECKING:
    from tuner.plan import Plan
    from tuner.profile import OnlineStep, ScalingProfile
    from tuner.runtime import RuntimeSettings

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

#: the Kubernetes version whose schema the tests validate the manifests against
K8S_VERSION = "1.30"
#: the port ``tuner serve`` listens on in the container
PORT = 8000
#: where the profile is mounted (the ConfigMap) and copied (the Dockerfile): one path for both
PROFILE_DIR = "/etc/tuner"
PROFILE_FILE = "profile.yaml"
PROFILE_PATH = f"{PROFILE_DIR}/{PROFILE_FILE}"
#: the working directory: a model file named by a relative spec is copied here
WORKDIR = "/app"
#: the variables the engine's workers set to ``threads_per_worker`` (tuner.engine.worker); set for
#: the whole container too, so a pool started before the workers (numpy's BLAS in the server) is
#: sized by them and not by the node's CPUs, which OpenBLAS and OpenMP count ignoring the quota
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
#: memory on top of what was measured: a benchmark's peak over minutes is not a service's over days
#: (allocator fragmentation, request and response buffers, an unlucky batch); the limit is a hard
#: wall (OOM kill), so the margin errs large
MEMORY_MARGIN = 0.25
#: seconds allowed for the server's own start (interpreter, imports): the profile does not measure it
STARTUP_ALLOWANCE_S = 30
#: seconds for the process to exit after the drain (closing its workers)
EXIT_ALLOWANCE_S = 1
#: HPA stabilisation windows may not exceed an hour (the API server's bound)
MAX_STABILIZATION_S = 3600
DEFAULT_PRESTOP_S = 5.0
DEFAULT_HEADROOM_PCT = 30.0
AUTOSCALERS = ("hpa", "keda", "none")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_ITEM = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:\[([\d,\s]*)\])?\s*$")


@dataclass(frozen=True)
class ExportOptions:
    """What ``tuner export`` was told besides the profile (every field has the flag's name)."""

    source: str = ""  # the profile file, for the header and the Dockerfile's COPY
    profile_text: str | None = None  # its text, for the ConfigMap (None: the profile dumped again)
    import_path: str = "app:app"  # --import-path (ray-serve)
    image: str | None = None  # --image
    rate: float | None = None  # --rate
    namespace: str = "default"  # --namespace
    autoscaler: str = "hpa"  # --autoscaler
    headroom_pct: float = DEFAULT_HEADROOM_PCT  # --headroom
    node_cpus: int | None = None  # --node-cpus
    node_memory_gb: float | None = None  # --node-memory-gb
    cpu_target_pct: float | None = None  # --cpu-target
    prometheus_url: str | None = None  # --prometheus-url
    prestop_s: float = DEFAULT_PRESTOP_S  # --prestop-s
    server_memory_mb: float | None = None  # --server-memory-mb


@dataclass
class Pod:
    """One pod's settings, each with the measurement it came from (``why``, by short name)."""

    name: str
    namespace: str
    image: str
    settings: RuntimeSettings  # what the runtime in the pod runs (after its host check)
    changes: list[str]  # what that host check changes against the profile
    cores: float  # the CPU request, in cores
    cpu_request: str
    cpu_limit: str
    limit_cores: int
    memory: str  # request = limit
    memory_mb: float
    threads: int
    drain_s: float
    prestop_s: float
    grace_s: int
    startup_failures: int
    ready_delay_s: int
    step_cpu: float | None  # cores at the max rate within the objective, when the profile records it
    why: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # header lines: what was assumed or adapted

    @property
    def args(self) -> list[str]:
        """``tuner``'s arguments in the container (the Dockerfile's CMD is the same list)."""
        return serve_args(self.drain_s)

    @property
    def measured_as_is(self) -> bool:
        """The pod runs the measured workers and threads (its rate is the measured rate)."""
        return not any(c.startswith(("workers", "threads")) for c in self.changes)


@dataclass
class Scaling:
    """The autoscaler's numbers: replicas from the plan, the pod's rate at the objective."""

    min_replicas: int
    max_replicas: int
    pod_rate: float  # requests/s one pod sustains within the objective
    planned_rate: float  # pod_rate × (1 − headroom)
    objective_ms: float
    plan: Plan
    why: dict[str, str] = field(default_factory=dict)


def serve_args(drain_s: float) -> list[str]:
    """The arguments of ``tuner`` that serve the mounted profile on :data:`PORT`."""
    return ["serve", PROFILE_PATH, "--host", "0.0.0.0", "--port", str(PORT), "--drain-s", f"{drain_s:g}"]


def k8s_name(profile: ScalingProfile) -> str:
    """``tuner-<profile name>`` as a DNS-1035 label (lower case, '-' for '_' and '.', <= 63)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", profile.name.lower()).strip("-")
    return f"tuner-{slug}"[:63].rstrip("-")


def check_namespace(namespace: str) -> str:
    """A namespace as Kubernetes takes it (a DNS-1123 label), or BadInput."""
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise BadInput(
            f"--namespace {namespace!r}: not a Kubernetes namespace (lower-case letters, digits and '-', "
            "at most 63, starting and ending with a letter or digit)"
        )
    return namespace


def default_image(profile: ScalingProfile) -> str:
    """The image the Dockerfile export builds when ``--image`` is not given."""
    return f"{k8s_name(profile)}:{profile.tool_version}"


def _cores(x: float) -> str:
    """2.0134 → '2.0', 0.0634 → '0.063': cores as the comments say them."""
    return f"{x:.1f}" if x >= 1 else f"{x:.2g}"


def _where(profile: ScalingProfile, opts: ExportOptions) -> str:
    return opts.source or f"profile '{profile.name}'"


# ------------------------------------------------------------------------------------------ the pod


def _measured_cores(
    profile: ScalingProfile, step_cpu: float | None, opts: ExportOptions
) -> tuple[float, str]:
    """Cores the configuration used, and the sentence that says so."""
    ev, host, rec = profile.evidence, profile.host, profile.effective_recommended("linux")
    if ev.cpu_share is None:
        raise BadInput(
            f"{_where(profile, opts)}: no evidence.cpu_share — the CPU request needs the CPU the "
            "configuration used: measure it again with tuner bench"
        )
    share = min(ev.cpu_share, 1.0)  # a process cannot use more than its usable cores
    cores = share * host.usable_cores
    read = "" if ev.cpu_share <= 1.0 else ", read as 100%: a process cannot use more than its usable cores"
    scope = (
        ""
        if rec.backend in ("thread", "inline")
        else "; the workers' CPU: the serving process's own is not in it"
    )
    knob = f"{rec.workers} worker{'s' if rec.workers != 1 else ''} × {rec.threads_per_worker} thread{'s' if rec.threads_per_worker != 1 else ''}"
    words = (
        f"{knob}: measured {_cores(cores)} cores ({ev.cpu_share:.1%} of {host.usable_cores} usable{read}) at "
        f"{_rate(ev.throughput)} items/s ({_where(profile, opts)} evidence{scope})"
    )
    if step_cpu is not None and step_cpu > cores:
        return step_cpu, (
            f"{knob}: {_cores(step_cpu)} cores at the max rate within the objective (online step), more than the "
            f"{_cores(cores)} measured closed-loop"
        )
    return cores, words


def _step_at_max(profile: ScalingProfile) -> OnlineStep | None:
    """The online curve's sustainable step at the max rate within the objective (None: no such step)."""
    online = profile.online
    if online is None:
        return None
    ok = [s for s in online.curve if s.sustainable and s.rate <= online.max_rate_at_slo * (1 + 1e-9)]
    return max(ok, key=lambda s: s.rate) if ok else None


def _cpu_of(step: OnlineStep | None) -> float | None:
    # OnlineStep.cpu_cores is being added by the profile work; older profiles have none.
    value = getattr(step, "cpu_cores", None) if step is not None else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _pod_cpu(
    profile: ScalingProfile, opts: ExportOptions, settings: RuntimeSettings
) -> tuple[int, RuntimeSettings, list[str], str]:
    """The CPU limit (whole cores), the settings the runtime runs under that quota, what changed, why."""
    from tuner.runtime import adapt_to_host

    host = profile.host
    threads = settings.threads_per_worker or 1
    knob = settings.workers * threads
    cpu_bound = knob <= host.usable_cores
    need = knob if cpu_bound else threads
    ev_cores = min(profile.evidence.cpu_share or 0.0, 1.0) * host.usable_cores
    limit = max(1, math.ceil(ev_cores - 1e-9), need)
    why = (
        f"max(⌈measured {_cores(ev_cores)} cores⌉, {'workers × threads' if cpu_bound else 'threads per worker'} "
        f"{need}) = {limit}: never below the measured use (a CFS quota below it throttles every 100 ms "
        f"period), and the quota is what tuner hw sees in the pod: {limit} usable core{'s' if limit != 1 else ''}"
    )
    if opts.node_cpus is not None and opts.node_cpus < limit:
        why += f", capped at the nodes' {opts.node_cpus} CPUs (--node-cpus)"
        limit = opts.node_cpus
    adapted, changes = adapt_to_host(settings, host.usable_cores, limit)
    why += (
        f"; the runtime's host check (adapt_to_host) adapts to it: {', '.join(changes)}"
        if changes
        else "; the runtime keeps the measured configuration"
    )
    return limit, adapted, changes, why


def _item_bytes(profile: ScalingProfile) -> int | None:
    """Bytes of one input item from the profile's ``model.input.item`` ('float32[256]'), if it says."""
    inp = profile.model.input
    m = _ITEM.match(inp.item) if inp is not None and inp.item else None
    if m is None:
        return None
    import numpy as np

    try:
        size = np.dtype(m.group(1)).itemsize
    except TypeError:
        return None
    dims = [int(d) for d in (m.group(2) or "").replace(" ", "").split(",") if d]
    return size * math.prod(dims)


def _pod_memory(profile: ScalingProfile, opts: ExportOptions, settings: RuntimeSettings) -> tuple[float, str]:
    """Memory request = limit in MB (10⁶ bytes), and the sentence that says how."""
    rss, rec = profile.evidence.peak_rss_mb, profile.effective_recommended("linux")
    if rss is None or (rss.total is None and rss.per_worker is None):
        raise BadInput(
            f"{_where(profile, opts)}: no evidence.peak_rss_mb — the memory request needs the measured "
            "peak RSS: measure it again with tuner bench"
        )
    w = settings.workers
    if settings.backend in ("thread", "inline"):
        # One process holds the server and every worker: its RSS is the pod's; fewer workers than
        # measured keep the measured figure (an upper bound).
        base = float(rss.total or rss.per_worker or 0.0)
        parts = [f"peak RSS {base:.4g} MB (the one {settings.backend}-backend process: server and workers)"]
    else:
        if opts.server_memory_mb is None:
            raise BadInput(
                f"{_where(profile, opts)}: the {settings.backend} backend's peak RSS holds the workers only, "
                "not the serving process: give --server-memory-mb MB (the RSS of tuner serve without its workers)"
            )
        workers_mb = float(rss.total) if w == rec.workers and rss.total else float(rss.per_worker or 0.0) * w
        base = workers_mb + opts.server_memory_mb
        parts = [
            f"workers' peak RSS {workers_mb:.4g} MB ({w} × ≤ {rss.per_worker or 0:.4g} MB)",
            f"the server {opts.server_memory_mb:g} MB (--server-memory-mb)",
        ]
    item = _item_bytes(profile)
    pending = pending_bound(settings)
    if item:
        inflight = pending * item / 1e6
        base += inflight
        parts.append(f"{pending} items in flight (max_pending) × {item} B = {inflight:.3g} MB")
    else:
        parts.append("items in flight not counted (the profile does not say an item's size)")
    total = base * (1 + MEMORY_MARGIN)
    why = " + ".join(parts) + f", + {MEMORY_MARGIN:.0%} margin = {total:.4g} MB"
    if opts.node_memory_gb is not None and total > opts.node_memory_gb * 1000:
        raise BadInput(
            f"{_where(profile, opts)}: one pod needs {total:.0f} MB ({why}); nodes of "
            f"{opts.node_memory_gb:g} GB (--node-memory-gb) cannot hold it"
        )
    return total, why


def _drain(profile: ScalingProfile, settings: RuntimeSettings) -> tuple[float, str]:
    """Seconds ``tuner serve`` drains for on SIGTERM: the items in flight at the measured throughput,
    plus one timeout × (retries + 1) for the last partition's attempts."""
    ev, rec = profile.evidence, profile.effective_recommended("linux")
    throughput = ev.throughput * settings.workers / rec.workers
    pending = pending_bound(settings)
    inflight_s = pending / throughput
    if settings.timeout_s is not None:
        attempt_s, attempt = settings.timeout_s, f"timeout {settings.timeout_s:g} s"
    elif ev.service_time_ms is not None and (ev.service_time_ms.p999 or ev.service_time_ms.p99):
        attempt_s = (ev.service_time_ms.p999 or ev.service_time_ms.p99 or 0.0) / 1000
        attempt = f"no timeout: the p99.9 service time {attempt_s * 1000:.3g} ms"
    else:
        attempt_s, attempt = 0.0, "no timeout and no service time in the profile: 0"
    tries = settings.retries + 1
    drain = max(0.1, math.ceil((inflight_s + attempt_s * tries) * 10 - 1e-9) / 10)
    why = (
        f"{pending} items in flight (max_pending) / {_rate(throughput)} items/s = {inflight_s:.3g} s, "
        f"+ {attempt} × {tries} attempts (retries {settings.retries} + 1), rounded up"
    )
    return drain, why


def _quantity_cpu(cores: float) -> str:
    m = max(1, math.ceil(cores * 1000 - 1e-6))
    return str(m // 1000) if m % 1000 == 0 else f"{m}m"


def _quantity_mem(mb: float) -> str:
    return f"{math.ceil(mb * 1e6 / 2**20)}Mi"


def derive_pod(profile: ScalingProfile, opts: ExportOptions) -> Pod:
    """Everything one pod needs, derived from the profile (see the module docstring)."""
    from tuner.runtime import settings_from_profile

    if profile.effective_recommended("linux").backend == "ray":
        raise BadInput(
            f"{_where(profile, opts)}: a ray-backend profile runs on its Ray cluster — export it with --to ray-serve"
        )
    step_cpu = _cpu_of(_step_at_max(profile))
    measured = settings_from_profile(profile, "linux")
    limit, settings, changes, limit_why = _pod_cpu(profile, opts, measured)
    cores, cores_why = _measured_cores(profile, step_cpu, opts)
    knob_before = measured.workers * (measured.threads_per_worker or 1)
    knob_after = settings.workers * (settings.threads_per_worker or 1)
    if knob_after != knob_before:
        cores = cores * knob_after / knob_before
        cores_why += f"; × {knob_after}/{knob_before} for the adapted workers × threads"
    cores = min(cores, float(limit))
    memory_mb, memory_why = _pod_memory(profile, opts, settings)
    drain, drain_why = _drain(profile, settings)
    cold = profile.evidence.cold_start_s
    pod = Pod(
        name=k8s_name(profile),
        namespace=opts.namespace,
        image=opts.image or default_image(profile),
        settings=settings,
        changes=changes,
        cores=cores,
        cpu_request=_quantity_cpu(cores),
        cpu_limit=str(limit),
        limit_cores=limit,
        memory=_quantity_mem(memory_mb),
        memory_mb=memory_mb,
        threads=settings.threads_per_worker or 1,
        drain_s=drain,
        prestop_s=opts.prestop_s,
        grace_s=math.ceil(opts.prestop_s + drain + EXIT_ALLOWANCE_S - 1e-9),
        startup_failures=STARTUP_ALLOWANCE_S + math.ceil(cold or 0.0),
        ready_delay_s=math.floor(cold or 0.0),
        step_cpu=step_cpu,
    )
    pod.why = _pod_why(profile, opts, pod, cores_why, limit_why, memory_why, drain_why)
    pod.notes = _pod_notes(profile, opts, pod)
    return pod


def _pod_why(
    profile: ScalingProfile,
    opts: ExportOptions,
    pod: Pod,
    cores_why: str,
    limit_why: str,
    memory_why: str,
    drain_why: str,
) -> dict[str, str]:
    cold = profile.evidence.cold_start_s
    cold_words = (
        f"the measured cold start {cold:.3g} s" if cold is not None else "no cold start in the profile"
    )
    return {
        "cpu_request": cores_why,
        "cpu_limit": limit_why,
        "memory": memory_why + "; request = limit: memory is not compressible, a pod over its request is "
        "the first the node evicts",
        "threads": f"threads_per_worker {pod.threads}: what ran when measured (tuner hw in the pod sees the quota)",
        "drain": f"drain: {drain_why}",
        "grace": f"preStop {opts.prestop_s:g} s + drain {pod.drain_s:g} s + {EXIT_ALLOWANCE_S} s to exit, rounded up",
        "prestop": f"--prestop-s {opts.prestop_s:g}: until every proxy has dropped this pod (your cluster's, "
        "not measured); SIGTERM comes after it",
        "startup": f"{cold_words} (workers loading the model) + {STARTUP_ALLOWANCE_S} s for the server's own "
        "start (interpreter, imports: not in the profile), checked every second",
        "ready_delay": f"not ready before {cold_words}",
        "ready_period": "/readyz is 503 until the workers have loaded the model and while draining: a new pod "
        "takes traffic within a second of being able to",
        "liveness": "alive = the server answers; restarted after 3 misses 10 s apart (a hung server)",
        "image": "--image"
        if opts.image
        else "the image `tuner export --to dockerfile` builds (--image to change)",
    }


def _pod_notes(profile: ScalingProfile, opts: ExportOptions, pod: Pod) -> list[str]:
    host = profile.host
    notes = [
        f"image: {pod.image} ({'--image' if opts.image else 'build it: tuner export PROFILE --to dockerfile; --image to change'})",
        f"preStop: {opts.prestop_s:g} s (--prestop-s): how long your cluster takes to drop a terminating pod "
        "from every proxy — not measured",
    ]
    if opts.node_cpus is None and opts.node_memory_gb is None:
        notes.append(
            f"nodes: like the measured host ({host.usable_cores} usable cores, {host.memory_total_gb:g} GB); "
            "--node-cpus/--node-memory-gb for others"
        )
    else:
        n_cpus = opts.node_cpus or host.usable_cores
        cpus = f"{n_cpus} CPU{'s' if n_cpus != 1 else ''}" + ("" if opts.node_cpus else " (as measured)")
        mem = f"{opts.node_memory_gb or host.memory_total_gb:g} GB" + (
            "" if opts.node_memory_gb else " (as measured)"
        )
        per_node = min(
            math.floor(n_cpus / max(pod.cores, 1e-3)),
            math.floor((opts.node_memory_gb or host.memory_total_gb) * 1000 / pod.memory_mb),
        )
        notes.append(
            f"nodes: {cpus}, {mem} (--node-cpus/--node-memory-gb; the profile was measured on "
            f"{host.usable_cores} cores, {host.memory_total_gb:g} GB): up to {per_node} pod{'s' if per_node != 1 else ''} "
            "per node by their requests"
        )
    notes.append(
        f"in the pod tuner hw sees {pod.limit_cores} usable core{'s' if pod.limit_cores != 1 else ''} (the CPU quota); "
        + (
            f"the runtime adapts as its host check does: {', '.join(pod.changes)} → {pod.settings.describe()}"
            if pod.changes
            else f"the runtime runs the measured configuration: {pod.settings.describe()}"
        )
    )
    return notes


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
        "max": f"tuner plan at {_rate(opts.rate)} requests/s: ⌈{_rate(opts.rate)} / {_rate(s.planned_rate)}⌉ "
        f"pods of {w} worker(s) ({_rate(pod_rate)}/s each within p99 {plan.objective_ms:g} ms, {source}, "
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


def _rate(x: float) -> str:
    from tuner import fmt

    return fmt.rate(x)


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
    threshold = f"{sc.planned_rate:.6g}"
    why = {
        "spec.minReplicaCount": sc.why["min"],
        "spec.maxReplicaCount": sc.why["max"],
        "spec.triggers.0.metadata.serverAddress": "--prometheus-url",
        "spec.triggers.0.metadata.query": "requests/s offered to all pods (every outcome); labels namespace "
        "and pod as the Prometheus scrape attaches them (see the header)",
        "spec.triggers.0.metadata.threshold": f"requests/s per replica: {_rate(sc.pod_rate)}/s within p99 "
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
        f"within {online.max_batch_delay_ms:g} ms · {_rate(online.max_rate_at_slo)} requests/s with p99 ≤ "
        f"{online.objective_p99_ms:g} ms"
        if online is not None
        else f"{rec.backend} ×{rec.workers} · {rec.threads_per_worker} thread(s) · partition {rec.partition_size} · "
        f"{_rate(profile.evidence.throughput)} items/s (closed loop; no online: section)"
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
        f"rate: {_rate(sc.plan.rate)} requests/s (--rate): the peak maxReplicas serves",
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
