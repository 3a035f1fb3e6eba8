"""The profile's schema: pydantic models, one per mapping of the YAML, with a description on every field.

A profile is the YAML that records what tuner recommends for one model on one host, the host it was
measured on and the evidence. Every model forbids unknown keys, takes numbers strictly (no "2" for 2,
no ``true`` for 1) and refuses NaN and infinity; cross-field rules (``cap_s >= base_s``, workers inside
the autoscale bounds on every platform) are model validators whose errors point at the key to fix.
The JSON Schema ``tuner schema`` prints is generated from these models.
"""

from __future__ import annotations

import sys
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, Strict, ValidationError, model_validator

from tuner.backends import backend
from tuner.deployment import Deployment
from tuner.profile.base import (
    NAME_PATTERN,
    PATTERN_WORDS,
    Count,
    Model,
    NonNegInt,
    Positive,
    Str,
    cross,
    normalise_platform,
)
from tuner.profile.calibration import CalibrationRecord, NatureRecord
from tuner.profile.errors import explain, format_loc
from tuner.profile.evidence import Evidence
from tuner.profile.online import Online
from tuner.profile.settings import Autoscale, Recommended, RecommendedOverride, deployment_of

SCHEMA_VERSION = 1
"""The profile format this tuner reads and writes; bumped on any incompatible change."""

Platform = Literal["linux", "darwin", "windows"]
PLATFORMS: tuple[str, ...] = typing.get_args(Platform)


class InputInfo(Model):
    """What the model was fed while measuring."""

    source: Str = Field(description="Where the input came from, e.g. 'builtin generator' or 'file data.npy'.")
    kind: Literal["ndarray", "list"] | None = Field(
        default=None, description="How items were passed: rows of an ndarray, or a Python list."
    )
    item: Str | None = Field(default=None, description="One item's type and shape, e.g. 'float32[256]'.")
    items: NonNegInt | None = Field(default=None, description="How many items the measured input held.")


class ModelRef(Model):
    """The model the profile is for. A reference only: loading a profile never imports or runs it."""

    spec: Str = Field(
        min_length=1,
        description="Model spec as given to tuner: 'builtin:mlp', 'pkg.mod:fn', 'file.py:fn', 'model.onnx'.",
    )
    input: InputInfo | None = Field(default=None, description="The input used while measuring.")
    # Model files (second wave); absent for Python specs and in older profiles.
    format: Literal["onnx", "torch", "sklearn"] | None = Field(
        default=None, description="The model file's format, when the spec is a model file."
    )
    framework: Str | None = Field(
        default=None, description="The framework that ran it, e.g. 'onnxruntime', 'torch', 'scikit-learn'."
    )
    framework_version: Str | None = Field(
        default=None,
        description="The framework's version when measured; the runtime says when it runs another.",
    )
    allow_pickle: Annotated[bool, Strict()] | None = Field(
        default=None,
        description="The model file is a pickle (or holds types skops does not trust) and was loaded with "
        "consent. The runtime asks for that consent again (allow_pickle=True, tuner run --allow-pickle): "
        "a profile never turns into code execution by itself.",
    )
    method: Literal["predict", "predict_proba", "transform", "decision_function"] | None = Field(
        default=None, description="scikit-learn: the estimator method that was measured."
    )
    provider: Str | None = Field(
        default=None, description="ONNX Runtime execution provider, when not the CPU one."
    )
    outputs: list[Str] | None = Field(
        default=None, description="Output names, in order (several: each item's output is a tuple)."
    )
    nature: NatureRecord | None = Field(
        default=None,
        description="What sets the model's speed, read from the sweep's trials (the gate adjusts for the "
        "host's speed on that kernel). Absent in older profiles.",
    )


class HostInfo(Model):
    """The machine the profile was measured on (from ``tuner.hardware``)."""

    fingerprint: Str = Field(
        min_length=1,
        description="Stable hash of the hardware facts; a different host gives a different value.",
    )
    summary: Str = Field(description="One human line describing the host.")
    usable_cores: Count = Field(
        description="Cores this process may really use (affinity, container CPU quota)."
    )
    logical_cores: Count = Field(description="Logical CPUs the OS reports.")
    physical_cores: Count | None = Field(
        default=None, description="Physical cores, when the OS can tell (it cannot always)."
    )
    memory_total_gb: Positive = Field(description="Memory available to this process, in GB.")
    cpu_model: Str = Field(description="CPU model name as the OS reports it.")
    platform: Platform = Field(description="Operating system family.")
    machine: Str = Field(description="CPU architecture, e.g. 'x86_64' or 'arm64'.")
    blas: Str | None = Field(
        default=None, description="BLAS library and version numpy uses, e.g. 'openblas 0.3.31'."
    )
    calibration: CalibrationRecord | None = Field(
        default=None,
        description="The host's speed on reference kernels, measured before the trials: a fingerprint says "
        "which kind of machine, this says how fast this one was. Absent in older profiles.",
    )


class Objective(Model):
    """What the recommendation optimises, and the constraints it had to meet."""

    goal: Literal["throughput", "p99"] = Field(
        default="throughput", description="'throughput': most items/s; 'p99': lowest 99th-percentile latency."
    )
    p99_budget_ms: Positive | None = Field(
        default=None, description="Reject configurations whose p99 exceeds this."
    )
    memory_budget_mb: Positive | None = Field(
        default=None, description="Reject configurations whose total peak RSS exceeds this."
    )
    min_throughput: Positive | None = Field(
        default=None, description="Reject configurations slower than this many items/s."
    )


class PlatformOverrides(Model):
    """Per-OS partial overrides of ``recommended`` (e.g. threads on macOS, where fork is unsafe)."""

    linux: RecommendedOverride | None = Field(default=None, description="Applied on Linux.")
    darwin: RecommendedOverride | None = Field(default=None, description="Applied on macOS.")
    windows: RecommendedOverride | None = Field(default=None, description="Applied on Windows.")


class ActorResources(Model):
    """What each Ray actor reserves (ray backend)."""

    num_cpus: Positive = Field(description="CPUs each actor reserves (= threads_per_worker).")
    memory_mb: Positive | None = Field(
        default=None,
        description="Memory each actor reserves (Ray's `memory` resource), MB; = memory_limit_mb.",
    )


class ClusterInfo(Model):
    """The Ray cluster a ray-backend profile was measured on: how to reach it (its kind, never a
    host or a secret) and its shape, which the runtime's cluster check compares."""

    address: Literal["auto", "local", "client"] = Field(
        description="How to reach the cluster: 'auto' (the one this machine belongs to), 'local' "
        "(a head started on loopback for the run), 'client' (ray://host:port, given again with "
        "--ray-address or RAY_ADDRESS when the profile is run)."
    )
    ray_version: Str = Field(description="Ray's version while measuring.")
    nodes: Count = Field(description="Live nodes while measuring.")
    total_cpus: Positive = Field(description="CPUs of all nodes together (Ray's logical CPUs).")
    node_shapes: list[Str] = Field(
        default_factory=list, description="Each node's CPUs, e.g. '4 CPUs', sorted."
    )
    actor: ActorResources = Field(description="What each actor reserves.")


class ScalingProfile(Model):
    """tuner scaling profile: how to run one model on one host, and the evidence for it."""

    schema_version: Literal[1] = Field(description="Profile format version; this tuner reads 1.")
    name: Str = Field(pattern=NAME_PATTERN, description="Profile name (letters, digits, '_', '.', '-').")
    created: datetime = Field(description="When the profile was made (ISO 8601, UTC).")
    tool_version: Str = Field(description="Version of tuner that made it.")
    model: ModelRef = Field(description="The model the profile is for.")
    host: HostInfo = Field(description="The machine it was measured on.")
    objective: Objective = Field(
        default_factory=Objective, description="What was optimised, under which limits."
    )
    recommended: Recommended = Field(description="The configuration the runtime applies.")
    autoscale: Autoscale = Field(description="Autoscaler bounds and pace.")
    platforms: PlatformOverrides | None = Field(
        default=None, description="Per-OS partial overrides merged over `recommended`."
    )
    evidence: Evidence = Field(description="What was measured.")
    cluster: ClusterInfo | None = Field(
        default=None, description="The Ray cluster it was measured on (backend 'ray' only)."
    )
    online: Online | None = Field(
        default=None,
        description="Serving under traffic (tuner bench --online): max rate within a p99 objective.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ScalingProfile:
        if backend(self.recommended.backend).needs_cluster and self.cluster is None:
            raise cross(
                f"recommended.backend is {self.recommended.backend!r} but the profile has no `cluster` section",
                at="recommended.backend",
            )
        # Every platform's merged configuration must itself be valid, and start inside the
        # autoscaler's bounds: otherwise the runtime would find out only on that OS, in production.
        for platform in (None, *PLATFORMS):
            if platform is not None and self._override(platform) is None:
                continue
            where = "recommended" if platform is None else f"platforms.{platform}"
            try:
                rec = self.effective_recommended(platform) if platform else self.recommended
            except ValidationError as e:
                first = e.errors(include_url=False)[0]
                inner = [str(x) for x in first["loc"]]
                if (first.get("ctx") or {}).get("at"):
                    inner.append(first["ctx"]["at"])
                # Point at the override's key that broke the merge (the line falls back to the
                # nearest written parent when the key came from the base `recommended`).
                at = ".".join([where, *inner])
                key = format_loc(tuple(first["loc"]))
                why = explain(first, Recommended, PATTERN_WORDS)
                detail = f"{key}: {why}" if key else why
                raise cross(f"{where}: merged over recommended, {detail}", at=at) from None
            lo, hi = self.autoscale.min_workers, self.autoscale.max_workers
            if not lo <= rec.workers <= hi:
                raise cross(
                    f"{where}.workers ({rec.workers}) outside autoscale bounds {lo}–{hi}",
                    at=f"{where}.workers",
                )
        return self

    def deployment(self, platform: str | None = None) -> Deployment:
        """What this profile asks the runtime to apply on ``platform`` (default: this OS): see
        :func:`tuner.profile.settings.deployment_of`."""
        return deployment_of(self, platform)

    def _override(self, platform: str) -> RecommendedOverride | None:
        return getattr(self.platforms, platform, None) if self.platforms is not None else None

    def effective_recommended(self, platform: str | None = None) -> Recommended:
        """``recommended`` with the override for ``platform`` merged over it.

        ``platform`` is 'linux', 'darwin' or 'windows', or a ``sys.platform`` value; the default is
        this process's platform. An OS without an override gets ``recommended`` unchanged.
        """
        key = normalise_platform(sys.platform if platform is None else platform)
        override = self._override(key) if key else None
        if override is None:
            return self.recommended
        merged = _deep_merge(self.recommended.model_dump(), override.model_dump(exclude_unset=True))
        return Recommended.model_validate(merged)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema of a profile (draft 2020-12), for editors and other tools."""
    schema = ScalingProfile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tuner scaling profile",
        **{k: v for k, v in schema.items() if k != "title"},
    }
