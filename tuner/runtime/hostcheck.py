"""Is this the machine (or the cluster) the profile was measured on? If not: warn and adapt, or refuse.

A profile records the host it was measured on (cores, memory, CPU, BLAS — what its fingerprint
covers) and, for the ray backend, the cluster (nodes, CPUs, node shapes). Where this one differs,
one warning line says what differs and how the settings were adapted — workers and threads scaled
to the cores there are (:func:`adapt_to_host`); ``strict`` raises :class:`ProfileError` instead.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tuner.errors import ProfileError
from tuner.runtime.callbacks import log

if TYPE_CHECKING:
    from tuner.deployment import Deployment
    from tuner.hardware import Host
    from tuner.profile import HostInfo, ScalingProfile

__all__ = ["adapt_to_host", "check_cluster", "check_host"]


def adapt_to_host(settings: Deployment, measured_cores: int, usable: int) -> tuple[Deployment, list[str]]:
    """Scale a profile's workers and threads from the cores it was measured on to ``usable`` cores.

    The rule keeps what the measurement showed: a profile that fit its host (workers × threads <=
    its cores, a CPU-bound model) keeps fitting — threads capped at the usable cores, workers at
    usable // threads, the autoscaler's ceiling likewise, and on a larger host the autoscaler may
    grow to fill it (the measured worker count is kept as the starting point, since more workers
    were never measured). A profile that deliberately ran more threads than cores (an I/O-bound
    model) is not CPU-bound, so its worker count is kept. Returns the settings and what changed.
    """
    s = settings
    changes: list[str] = []
    threads = s.threads_per_worker
    if threads is not None and threads > usable:
        changes.append(f"threads {threads}→{usable}")
        threads = usable
    per = threads or 1
    cpu_bound = s.workers * (s.threads_per_worker or 1) <= measured_cores
    workers = s.workers
    auto = s.autoscale
    if cpu_bound:
        ceiling = max(1, usable // per)
        if workers > ceiling:
            changes.append(f"workers {workers}→{ceiling}")
            workers = ceiling
        if auto is not None:
            new_max = (
                min(auto.max_workers, ceiling) if usable < measured_cores else max(auto.max_workers, ceiling)
            )
            new_max = max(new_max, workers)
            new_min = min(auto.min_workers, new_max)
            if (new_min, new_max) != (auto.min_workers, auto.max_workers):
                changes.append(f"autoscale {auto.min_workers}–{auto.max_workers}→{new_min}–{new_max}")
                auto = replace(auto, min_workers=new_min, max_workers=new_max)
    return replace(s, threads_per_worker=threads, workers=workers, autoscale=auto), changes


def check_host(name: str, profile: ScalingProfile, settings: Deployment, strict: bool) -> Deployment:
    """The host check: ``settings`` as they are on the host the profile was measured on, else adapted
    to this one with one warning line (``strict``: ProfileError)."""
    from tuner.hardware import probe

    here = probe()
    if profile.host.fingerprint == here.fingerprint():
        return settings
    diffs = _host_of(profile.host, here).differences(here) or [
        f"host fingerprint {profile.host.fingerprint} vs {here.fingerprint()}"
    ]
    what = "; ".join(diffs)
    if strict:
        raise ProfileError(f"{name}: measured on another host ({what}); strict=True refuses to adapt")
    adapted, changes = adapt_to_host(settings, profile.host.usable_cores, here.usable_cores)
    how = ", ".join(changes) if changes else "settings kept as measured"
    # logging, not warnings.warn: a service routes its logs, and warnings.warn shows a message
    # only once per call site, so a second runtime in the same process would adapt silently.
    log.warning("%s: measured on another host (%s); adapted: %s → %s", name, what, how, adapted.describe())
    return adapted


def check_cluster(
    name: str, profile: ScalingProfile, settings: Deployment, strict: bool, here: Any
) -> Deployment:
    """The host check for a profile that runs on a cluster: nodes, total CPUs and node shapes against
    the profile's (``here``: its :class:`tuner.cluster.ClusterShape`).

    Differences: one warning and the settings adapted to the cluster's CPUs (the host rule, with the
    cluster's CPUs as the cores; threads per actor also capped at the largest node's CPUs, since
    an actor cannot span nodes); ``strict`` refuses instead.
    """
    measured = profile.cluster
    assert measured is not None  # the schema refuses a ray profile without it
    diffs = []
    if len(here.nodes) != measured.nodes:
        diffs.append(f"{measured.nodes} nodes measured, {len(here.nodes)} now")
    if here.total_cpus != measured.total_cpus:
        diffs.append(f"{measured.total_cpus:g} CPUs measured, {here.total_cpus:g} now")
    if measured.node_shapes and here.shapes() != sorted(measured.node_shapes):
        diffs.append(
            f"node shapes {_shapes(sorted(measured.node_shapes))} measured, {_shapes(here.shapes())} now"
        )
    if not diffs:
        return settings
    what = "; ".join(diffs)
    if strict:
        raise ProfileError(f"{name}: measured on another cluster ({what}); strict=True refuses to adapt")
    changes = []
    # An actor cannot span nodes: threads first, to the largest node; then the host rule.
    largest = max((int(n.cpus) for n in here.nodes), default=1)
    if settings.threads_per_worker is not None and settings.threads_per_worker > largest:
        changes.append(f"threads {settings.threads_per_worker}→{largest} (largest node)")
        settings = replace(settings, threads_per_worker=largest)
    adapted, more = adapt_to_host(settings, int(measured.total_cpus), max(1, int(here.total_cpus)))
    changes += more
    how = ", ".join(changes) if changes else "settings kept as measured"
    log.warning("%s: measured on another cluster (%s); adapted: %s → %s", name, what, how, adapted.describe())
    return adapted


def _host_of(measured: HostInfo, here: Host) -> Host:
    """The profile's host record as a :class:`~tuner.hardware.Host`, so ``Host.differences`` (the one
    comparison, covering exactly what the fingerprint covers) can compare it with this host.

    What the record does not hold is taken from ``here`` (then it cannot differ): physical cores when
    the OS could not tell, and BLAS when unrecorded or when its short form ('openblas 0.3.31', as the
    profile writes it) matches this host's library.
    """
    from tuner.hardware import Host

    blas: list[dict[str, Any]] = list(here.blas)
    if measured.blas is not None:
        api, _, version = measured.blas.partition(" ")
        mine = [
            (str(b.get("internal_api")), ".".join(str(b.get("version") or "?").split(".")[:3]))
            for b in here.blas
        ]
        if mine[:1] != [(api, version)]:
            blas = [{"internal_api": api, "version": version}]
    return Host(
        logical_cores=measured.logical_cores,
        physical_cores=measured.physical_cores
        if measured.physical_cores is not None
        else here.physical_cores,
        affinity_cores=measured.usable_cores,
        cgroup_quota=None,
        usable_cores=measured.usable_cores,
        cpu_model=measured.cpu_model,
        cpu_freq_mhz=None,
        memory_total_bytes=int(measured.memory_total_gb * 1e9),
        memory_available_bytes=0,
        platform=measured.platform,
        machine=measured.machine,
        python="",
        numpy="",
        blas=blas,
    )


def _shapes(shapes: list[str]) -> str:
    """'2 CPUs ×6, 4 CPUs': equal shapes counted."""
    from collections import Counter

    return ", ".join(f"{s} ×{n}" if n > 1 else s for s, n in Counter(shapes).items())
