"""The profile's ``online:`` section: serving under traffic (``tuner bench --online``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, TypeAlias

from pydantic import Field, Strict

from tuner.profile.base import (
    Count,
    Interval,
    Model,
    NonNeg,
    NonNegInt,
    OpenInterval,
    Positive,
    Str,
)
from tuner.profile.settings import DeploymentModel, deployment_model

__all__ = ["HttpOnline", "Online", "OnlineCandidate", "OnlineStep", "ScalingCurve", "ScalingPoint"]


class OnlineStep(Model):
    """One step of open-loop load: a point of the latency-vs-rate curve."""

    rate: Positive = Field(description="Intended requests/s of the step's schedule.")
    offered: NonNeg = Field(description="Requests/s the load generator really sent before the step's end.")
    achieved: NonNeg = Field(
        description="Requests/s that completed successfully by the step's end plus the drain allowance "
        "(the objective)."
    )
    p50_ms: NonNeg | None = Field(
        default=None, description="Median request latency, ms, from the intended send time."
    )
    p99_ms: NonNeg | None = Field(default=None, description="99th-percentile request latency, ms.")
    p999_ms: NonNeg | None = Field(default=None, description="99.9th-percentile request latency, ms.")
    p99_ci_ms: Interval | None = Field(default=None, description="95% confidence interval of the p99, ms.")
    keeps_up: Annotated[bool, Strict()] = Field(
        description="Every criterion but latency held: achieved >= 99% of offered, queue not growing, "
        "no refusals or failures, the generator on schedule."
    )
    sustainable: Annotated[bool, Strict()] = Field(description="keeps_up and p99 within the objective.")
    cpu_cores: NonNeg | None = Field(
        default=None,
        description="Cores the serving side used over the step: the runtime's process and its workers "
        "(in process, the load generator's sender thread with them), or the server's processes over HTTP. "
        "What a CPU-target autoscaler sees at this rate.",
    )
    outside_load: NonNeg | None = Field(
        default=None, description="Other processes' load over the step, share of the usable cores."
    )


if TYPE_CHECKING:
    OnlineCandidate: TypeAlias = DeploymentModel
    _ScalingCurveBase: TypeAlias = DeploymentModel
    _OnlineBase: TypeAlias = DeploymentModel
else:
    OnlineCandidate = deployment_model(
        "OnlineCandidate",
        "One configuration × batching setting the online sweep searched, and its max rate.",
        ("backend", "workers", "threads_per_worker", "max_batch_size", "max_batch_delay_s"),
        required=True,
        extra={
            "max_rate_at_slo": (NonNeg, Field(description="Highest sustainable requests/s found (0: none).")),
            "p99_ms": (NonNeg | None, Field(default=None, description="p99 at that rate, ms.")),
            "steps": (NonNegInt, Field(default=0, description="Steps the search measured.")),
        },
    )
    _ScalingCurveBase = deployment_model(
        "_ScalingCurveBase", "", ("backend", "threads_per_worker"), required=True
    )
    _OnlineBase = deployment_model(
        "_OnlineBase",
        "",
        ("backend", "workers", "threads_per_worker", "max_batch_size", "max_batch_delay_s", "max_pending"),
        required=True,
    )


class ScalingPoint(Model):
    """Closed-loop throughput at one worker count (for the scalability fit)."""

    workers: Count = Field(description="Workers.")
    throughput: Positive = Field(description="Items/s (median of the trial's windows).")
    windows: list[Positive] = Field(default_factory=list, description="Items/s of each measurement window.")


class ScalingCurve(_ScalingCurveBase):
    """Closed-loop throughput against workers at one backend and thread count."""

    points: list[ScalingPoint] = Field(default_factory=list, description="One per worker count measured.")


class HttpOnline(Model):
    """The max rate within the objective measured *through* a running server (``tuner bench --online
    --url``): HTTP parsing, the server's event loop and the transport included."""

    server: Str = Field(description="The server measured, host:port (never credentials).")
    measured: Str = Field(description="When, as an ISO 8601 UTC time.")
    client: Str = Field(description="The load generator's HTTP client and version, e.g. 'aiohttp 3.14.5'.")
    objective_p99_ms: Positive = Field(description="The p99 objective the rates were searched at, ms.")
    arrivals: Str = Field(description="Arrival process of the steps.")
    request_size: Str = Field(description="Items per request: '1', or a uniform range such as '1-8'.")
    items_per_request: Positive = Field(default=1.0, description="Mean items per request.")
    step_s: Positive = Field(description="Duration of each measured step, seconds.")
    max_rate_at_slo: NonNeg = Field(
        description="Highest sustainable requests/s with p99 within the objective."
    )
    max_rate_ci: OpenInterval = Field(
        description="[low, high]: the rates the verdict is sure of either side."
    )
    p99_at_max_ms: NonNeg | None = Field(default=None, description="p99 at max_rate_at_slo, ms.")
    curve: list[OnlineStep] = Field(default_factory=list, description="Latency against rate, by rate.")
    client_cores: NonNeg | None = Field(
        default=None, description="Cores the load generator itself used while searching (it shares the host)."
    )
    status: dict[Str, NonNegInt] = Field(
        default_factory=dict,
        description="Responses by HTTP status code over the search ('timeout', 'connection').",
    )


class Online(_OnlineBase):
    """Serving under traffic: the highest request rate within a latency objective, measured open-loop.

    The runtime applies ``max_batch_size``, ``max_batch_delay_ms`` and ``max_pending`` from here
    (over ``recommended``; a ``platforms:`` entry that sets them explicitly still wins).
    """

    objective_p99_ms: Positive = Field(
        description="The p99 latency objective the rates were searched at, ms."
    )
    arrivals: Str = Field(description="Arrival process: 'poisson', 'constant' or 'trace FILE ...'.")
    request_size: Str = Field(description="Items per request: '1', or a uniform range such as '1-8'.")
    items_per_request: Positive = Field(default=1.0, description="Mean items per request.")
    step_s: Positive = Field(description="Duration of each measured step, seconds.")
    max_rate_at_slo: NonNeg = Field(
        description="Highest sustainable requests/s with p99 within the objective."
    )
    max_rate_ci: OpenInterval = Field(
        description="[low, high]: the rates the verdict is sure of either side of max_rate_at_slo "
        "(high null when no rate above failed)."
    )
    p99_at_max_ms: NonNeg | None = Field(default=None, description="p99 at max_rate_at_slo, ms.")
    curve: list[OnlineStep] = Field(default_factory=list, description="Latency against rate, by rate.")
    candidates: list[OnlineCandidate] = Field(default_factory=list, description="Every candidate searched.")
    scaling: ScalingCurve | None = Field(
        default=None, description="Closed-loop throughput by workers (the capacity plan fits the USL to it)."
    )
    budget_s: Positive | None = Field(default=None, description="Time budget of the online sweep, seconds.")
    measuring_s: NonNeg | None = Field(default=None, description="Time it took, seconds.")
    reasoning: Str = Field(default="", description="Why these settings, in words.")
    http: HttpOnline | None = Field(
        default=None,
        description="The same objective measured through a running server (tuner bench --online --url): "
        "what tuner verify offers when present.",
    )
