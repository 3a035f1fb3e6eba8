"""The pod every manifest shares: what one container of ``tuner serve`` needs, derived from a profile.

Each value with its formula and its reason (the comment the manifests carry): CPU request and limit,
memory, the thread variables, the probes, the drain and the grace period, the runtime's settings
after the host check for the target nodes. :mod:`tuner.export.kubernetes` writes the manifests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tuner import fmt
from tuner.backends import backend
from tuner.errors import BadInput
from tuner.runtime import pending_bound

if TYPE_CHECKING:
    from tuner.plan import Plan
    from tuner.profile import OnlineStep, ScalingProfile
    from tuner.runtime import RuntimeSettings


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
    import_path: str = "tuner.export.ray_app:app"  # --import-path (ray-serve)
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
    return f"{x:.1f}" if x >= 1 else fmt.sig(x, 2)


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
        "" if backend(rec.backend).in_caller else "; the workers' CPU: the serving process's own is not in it"
    )
    knob = f"{rec.workers} worker{'s' if rec.workers != 1 else ''} × {rec.threads_per_worker} thread{'s' if rec.threads_per_worker != 1 else ''}"
    words = (
        f"{knob}: measured {_cores(cores)} cores ({ev.cpu_share:.1%} of {host.usable_cores} usable{read}) at "
        f"{fmt.rate(ev.throughput)} items/s ({_where(profile, opts)} evidence{scope})"
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
    # The serving side's cores at that rate; profiles measured before it was recorded have none.
    value = step.cpu_cores if step is not None else None
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
    if settings.kind.in_caller:
        # One process holds the server and every worker: its RSS is the pod's; fewer workers than
        # measured keep the measured figure (an upper bound).
        base = float(rss.total or rss.per_worker or 0.0)
        parts = [
            f"peak RSS {fmt.sig(base, 4)} MB (the one {settings.backend}-backend process: server and workers)"
        ]
    else:
        if opts.server_memory_mb is None:
            raise BadInput(
                f"{_where(profile, opts)}: the {settings.backend} backend's peak RSS holds the workers only, "
                "not the serving process: give --server-memory-mb MB (the RSS of tuner serve without its workers)"
            )
        workers_mb = float(rss.total) if w == rec.workers and rss.total else float(rss.per_worker or 0.0) * w
        base = workers_mb + opts.server_memory_mb
        parts = [
            f"workers' peak RSS {fmt.sig(workers_mb, 4)} MB ({w} × ≤ {fmt.sig(rss.per_worker or 0, 4)} MB)",
            f"the server {opts.server_memory_mb:g} MB (--server-memory-mb)",
        ]
    item = _item_bytes(profile)
    pending = pending_bound(settings)
    if item:
        inflight = pending * item / 1e6
        base += inflight
        parts.append(f"{pending} items in flight (max_pending) × {item} B = {fmt.sig(inflight)} MB")
    else:
        parts.append("items in flight not counted (the profile does not say an item's size)")
    total = base * (1 + MEMORY_MARGIN)
    why = " + ".join(parts) + f", + {MEMORY_MARGIN:.0%} margin = {fmt.sig(total, 4)} MB"
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
        attempt = f"no timeout: the p99.9 service time {fmt.ms(attempt_s * 1000)}"
    else:
        attempt_s, attempt = 0.0, "no timeout and no service time in the profile: 0"
    tries = settings.retries + 1
    drain = max(0.1, math.ceil((inflight_s + attempt_s * tries) * 10 - 1e-9) / 10)
    why = (
        f"{pending} items in flight (max_pending) / {fmt.rate(throughput)} items/s = {fmt.seconds(inflight_s)}, "
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

    if backend(profile.effective_recommended("linux").backend).needs_cluster:
        raise BadInput(
            f"{_where(profile, opts)}: a profile measured on a Ray cluster runs there — export it with --to ray-serve"
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
        f"the measured cold start {fmt.seconds(cold)}" if cold is not None else "no cold start in the profile"
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
