"""A profile as a Ray Serve config file (``serve deploy serve.yaml``), every value commented with
the measurement it came from.

Ray Serve's docs ask users to *load test* to choose replicas, ``max_ongoing_requests`` and the
autoscaling target; a tuner profile is that load test. One Serve replica is one tuner worker (the
model loaded once, ``threads_per_worker`` CPUs); one request is one item; Serve's ``@serve.batch``
is tuner's partition. The mapping:

==============================  ==========================================================
``num_replicas``                ``recommended.workers`` when the autoscaler's bounds are equal
``autoscaling_config``          min/max replicas = ``autoscale.min_workers/max_workers``;
                                initial = ``recommended.workers``; upscale/downscale delays =
                                the profile's; ``target_ongoing_requests`` = one full partition
                                per replica (busy, latency near one service time)
``max_ongoing_requests``        two batches per replica (one running, one filling: 2 ×
                                partition size), and no more than a replica serves within the
                                p99 budget (Little's law: per-worker throughput × budget), at
                                least one partition
``ray_actor_options``           ``num_cpus`` = threads per worker; ``memory`` = the memory limit
``user_config``                 ``max_batch_size`` = partition size, ``batch_wait_timeout_s`` =
                                ``max_batch_delay_ms``, for ``@serve.batch`` (read them in
                                ``reconfigure``); ``threads_per_worker``
==============================  ==========================================================

Field names follow Ray Serve's own schema (``ray.serve.schema.ServeDeploySchema``,
``DeploymentSchema``, ``ray.serve.config.AutoscalingConfig``); the tests validate the output with
it. Written by :mod:`tuner.export.emit` (a dict and a comment per value) because PyYAML cannot write
comments, and the comments are the point.
"""

from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Any

from tuner import fmt
from tuner.export.emit import emit_list_item, num

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile

#: where the application lives unless told otherwise (``--import-path``): tuner's own, which runs the
#: profile in each replica (tuner.export.ray_app)
DEFAULT_IMPORT_PATH = "tuner.export.ray_app:app"


def derive(profile: ScalingProfile) -> tuple[dict[str, Any], dict[str, str]]:
    """The deployment's settings and, for each (dotted key), the measurement it came from."""
    dep: dict[str, Any] = {"name": "TunerModel"}
    why: dict[str, str] = {"name": "one deployment: the model, one replica per tuner worker"}
    target = _ongoing(profile, dep, why)
    _replicas(profile, target, dep, why)
    _actor_and_batching(profile, dep, why)
    return dep, why


def _ongoing(profile: ScalingProfile, dep: dict[str, Any], why: dict[str, str]) -> tuple[int, str]:
    """Set ``max_ongoing_requests``; return the autoscaler's ``target_ongoing_requests`` and its why."""
    rec = profile.effective_recommended("linux")
    ev = profile.evidence
    per_worker = ev.throughput / rec.workers  # items/s one worker sustained
    p99_budget = profile.objective.p99_budget_ms
    batch = rec.partition_size
    svc = ev.service_time_ms.p50 if ev.service_time_ms is not None else None
    # One full batch in flight per replica keeps it busy with latency near one service time; the
    # closed-loop benchmark's own in-flight count is deliberately saturated, so it is no target.
    target_why = (
        f"one full partition ({batch}) in flight per replica: busy, with latency near the service time"
        + (f" (p50 {fmt.ms(svc)} per partition)" if svc is not None else "")
    )
    max_ongoing = 2 * batch
    ongoing_why = f"2 × partition size {batch}: one batch running, one filling"
    if p99_budget is not None:
        # Little's law: requests one replica completes within the p99 budget.
        cap = max(batch, math.floor(per_worker * p99_budget / 1000.0))
        if cap < max_ongoing:
            max_ongoing = cap
            ongoing_why = (
                f"what one replica serves within the p99 budget (Little's law): {per_worker:,.0f} items/s × "
                f"{p99_budget:g} ms, at least one partition ({batch})"
            )
    dep["max_ongoing_requests"] = max_ongoing
    why["max_ongoing_requests"] = ongoing_why
    return min(batch, max_ongoing), target_why


def _replicas(
    profile: ScalingProfile, target: tuple[int, str], dep: dict[str, Any], why: dict[str, str]
) -> None:
    """A fixed ``num_replicas`` when the autoscaler's bounds are equal, else ``autoscaling_config``."""
    rec = profile.effective_recommended("linux")
    auto = profile.autoscale
    if auto.min_workers == auto.max_workers:
        dep["num_replicas"] = rec.workers
        why["num_replicas"] = f"recommended.workers (autoscale bounds are equal: {auto.min_workers})"
        return
    dep["autoscaling_config"] = {
        "min_replicas": auto.min_workers,
        "initial_replicas": rec.workers,
        "max_replicas": auto.max_workers,
        "target_ongoing_requests": target[0],
        "upscale_delay_s": num(auto.upscale_delay_s),
        "downscale_delay_s": num(auto.downscale_delay_s),
    }
    why["autoscaling_config.min_replicas"] = "autoscale.min_workers: " + _first(auto.reasoning, "min")
    why["autoscaling_config.initial_replicas"] = (
        f"recommended.workers: the best measured configuration ({profile.evidence.throughput:,.0f} items/s)"
    )
    why["autoscaling_config.max_replicas"] = "autoscale.max_workers: " + _first(auto.reasoning, "max")
    why["autoscaling_config.target_ongoing_requests"] = target[1]
    why["autoscaling_config.upscale_delay_s"] = "autoscale.upscale_delay_s"
    why["autoscaling_config.downscale_delay_s"] = "autoscale.downscale_delay_s"


def _actor_and_batching(profile: ScalingProfile, dep: dict[str, Any], why: dict[str, str]) -> None:
    """``ray_actor_options`` (CPUs, memory) and ``user_config`` (``@serve.batch``'s size and wait, threads)."""
    rec = profile.effective_recommended("linux")
    ev = profile.evidence
    svc = ev.service_time_ms.p50 if ev.service_time_ms is not None else None
    threads = profile.deployment("linux").threads_or(profile.host.usable_cores)
    opts: dict[str, Any] = {"num_cpus": num(threads)}
    why["ray_actor_options.num_cpus"] = (
        "recommended.threads_per_worker (BLAS / intra-op threads each worker ran)"
        if rec.threads_per_worker != "default"
        else f"the framework's own thread pool: it sizes itself to the {threads} cores of the host measured"
    )
    if rec.memory_limit_mb is not None:
        opts["memory"] = int(rec.memory_limit_mb * 1024 * 1024)
        why["ray_actor_options.memory"] = (
            f"recommended.memory_limit_mb ({rec.memory_limit_mb:g} MB), in bytes"
        )
    dep["ray_actor_options"] = opts

    dep["user_config"] = {
        "max_batch_size": rec.partition_size,
        "batch_wait_timeout_s": num(rec.max_batch_delay_ms / 1000.0),
        "threads_per_worker": threads,
    }
    why["user_config.max_batch_size"] = "recommended.partition_size, for @serve.batch" + (
        f" (service time p50 {fmt.ms(svc)} per partition)" if svc is not None else ""
    )
    why["user_config.batch_wait_timeout_s"] = (
        f"recommended.max_batch_delay_ms ({rec.max_batch_delay_ms:g} ms), for @serve.batch"
    )
    why["user_config.threads_per_worker"] = "limit the framework's threads to this in the replica"


def _first(reasoning: str, word: str) -> str:
    """The sentence of the autoscaler's reasoning about ``word`` (min/max), else its first one."""
    sentences = [s.strip() for s in re.split(r"(?<=\.)\s+|;\s+", reasoning or "") if s.strip()]
    for s in sentences:
        if s.lower().startswith(word):
            return s.rstrip(".")
    return sentences[0].rstrip(".") if sentences else "the profile's autoscale bounds"


def render(profile: ScalingProfile, *, import_path: str = DEFAULT_IMPORT_PATH, source: str = "") -> str:
    """The Serve config (YAML text) for ``profile``; ``source`` names the profile file in the header."""
    dep, why = derive(profile)
    name = profile.name
    app: dict[str, Any] = {
        "name": name,
        "route_prefix": f"/{name}",
        "import_path": import_path,
        "args": {
            "profile": os.path.abspath(source) if source else f"{name}.yaml",
            "model": profile.model.spec,
        },
        "deployments": [dep],
    }
    ours = import_path == DEFAULT_IMPORT_PATH
    why_app = {
        "import_path": "tuner's Serve application: each replica loads the profile's model once and batches with "
        "user_config"
        if ours
        else "your Serve application; it loads the model below and batches with user_config",
        "args.profile": "the profile, at this path on every node that runs a replica (copy or mount it there)",
        "args.model": "the model spec the profile measured",
    }
    if profile.model.allow_pickle:
        app["args"]["allow_pickle"] = False
        why_app["args.allow_pickle"] = (
            "the model file is a pickle: set true only if you trust it (loading runs its code)"
        )
    rec = profile.recommended
    cluster = profile.cluster
    measured_on = (
        f"a Ray cluster ({cluster.nodes} nodes, {cluster.total_cpus:g} CPUs)"
        if cluster is not None
        else profile.host.summary
    )
    head = [
        f"# Ray Serve config for {profile.model.spec}, from tuner profile '{name}'"
        + (f" ({source})" if source else ""),
        f"# measured {profile.created.strftime('%Y-%m-%d %H:%M UTC')} on {measured_on}",
        f"# best: {rec.backend} ×{rec.workers} · {profile.deployment('linux').threads_text()} · partition "
        f"{rec.partition_size} · {profile.evidence.throughput:,.0f} items/s",
        "# deploy: serve deploy THIS_FILE   (validate: ray.serve.schema.ServeDeploySchema)",
    ]
    lines = [*head, "applications:"]
    lines += emit_list_item(app, {**why_app, **{f"deployments.0.{k}": v for k, v in why.items()}}, 1)
    return "\n".join(lines) + "\n"
