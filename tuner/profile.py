"""The scaling profile: schema, strict YAML loading, atomic saving, JSON Schema.

A profile is the YAML that records what tuner recommends for one model on one host, the host it
was measured on and the evidence. The production runtime imports this module, so it imports only
pydantic, yaml and the standard library at module level (no numpy, no rich).

Loading is strict and safe:

* ``yaml.SafeLoader`` only (a subclass); any tag it does not know, ``!!python/object`` included,
  is rejected before anything is constructed — loading a profile never imports or runs code.
* Duplicate keys are an error (PyYAML silently keeps the last one).
* The node tree is composed first and walked, so every error names the file, the line and the key
  path: ``profiles/x.yaml line 14: recommended.workers: must be >= 1 (got 0)``.
* pydantic's ``ValidationError`` is translated to that one line; no pydantic formatting and no
  traceback reaches the user (everything raised is :class:`tuner.errors.ProfileError`).
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import tempfile
import types
import typing
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from tuner.errors import ProfileError

__all__ = [
    "SCHEMA_VERSION",
    "Autoscale",
    "Backoff",
    "BackoffOverride",
    "Baseline",
    "Candidate",
    "Evidence",
    "HostInfo",
    "InputInfo",
    "LatencyIntervals",
    "ModelRef",
    "Objective",
    "PeakRss",
    "Percentiles",
    "PlatformOverrides",
    "Recommended",
    "RecommendedOverride",
    "ScalingProfile",
    "StrictLoader",
    "dump_profile_text",
    "load_profile",
    "normalise_platform",
    "parse_profile_text",
    "profile_json_schema",
    "save_profile",
]

SCHEMA_VERSION = 1
"""The profile format this tuner reads and writes; bumped on any incompatible change."""

HEADER = "# tuner scaling profile — edit by hand if you like; validate with: tuner check PATH\n"

# A profile is a few kilobytes; these limits keep a hostile or mistaken file (a log, a YAML
# "billion laughs" of nested aliases) from costing memory or time before we can say what is wrong.
_MAX_BYTES = 1 << 20
_MAX_NODES = 20_000
_MAX_DEPTH = 32

Backend = Literal["process", "thread", "inline"]
Platform = Literal["linux", "darwin", "windows"]

# Strict numbers: YAML already gives real ints and floats, so a string "2" or a boolean where a
# number belongs is a mistake to report, not something to coerce (pydantic's lax mode takes
# `workers: true` as 1). Ints are accepted where floats are expected; NaN and infinity are not.
_Int = Annotated[int, Strict()]
_Float = Annotated[float, Strict(), AllowInfNan(False)]
_Str = Annotated[str, Strict()]

_Count = Annotated[int, Strict(), Field(ge=1)]
_NonNegInt = Annotated[int, Strict(), Field(ge=0)]
_Positive = Annotated[float, Strict(), AllowInfNan(False), Field(gt=0)]
_NonNeg = Annotated[float, Strict(), AllowInfNan(False), Field(ge=0)]
_NAME_PATTERN = r"^[a-zA-Z0-9_.-]+$"
_EXCEPTION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*$"
_ExceptionName = Annotated[str, Strict(), Field(pattern=_EXCEPTION_PATTERN)]


def _ordered_pair(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise PydanticCustomError(
            "interval_order", "low ({low}) > high ({high})", {"low": pair[0], "high": pair[1]}
        )
    return pair


_Interval = Annotated[tuple[_NonNeg, _NonNeg], AfterValidator(_ordered_pair)]


def _cross(detail: str, at: str = "") -> PydanticCustomError:
    """A cross-field error. ``at`` is a dotted key path (relative to the model that raises it)
    whose line the message should point at; the shown key path stays the model's own."""
    return PydanticCustomError("cross_field", "{detail}", {"detail": detail, "at": at})


class _Model(BaseModel):
    """Base of every profile model: unknown keys are errors, so typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_default=False)


# ---------------------------------------------------------------------------------------------
# Schema
# ---------------------------------------------------------------------------------------------


class InputInfo(_Model):
    """What the model was fed while measuring."""

    source: _Str = Field(
        description="Where the input came from, e.g. 'builtin generator' or 'file data.npy'."
    )
    kind: Literal["ndarray", "list"] | None = Field(
        default=None, description="How items were passed: rows of an ndarray, or a Python list."
    )
    item: _Str | None = Field(default=None, description="One item's type and shape, e.g. 'float32[256]'.")
    items: _NonNegInt | None = Field(default=None, description="How many items the measured input held.")


class ModelRef(_Model):
    """The model the profile is for. A reference only: loading a profile never imports or runs it."""

    spec: _Str = Field(
        min_length=1,
        description="Model spec as given to tuner: 'builtin:mlp', 'pkg.mod:fn', 'file.py:fn', 'model.onnx'.",
    )
    input: InputInfo | None = Field(default=None, description="The input used while measuring.")


class HostInfo(_Model):
    """The machine the profile was measured on (from ``tuner.hardware``)."""

    fingerprint: _Str = Field(
        min_length=1,
        description="Stable hash of the hardware facts; a different host gives a different value.",
    )
    summary: _Str = Field(description="One human line describing the host.")
    usable_cores: _Count = Field(
        description="Cores this process may really use (affinity, container CPU quota)."
    )
    logical_cores: _Count = Field(description="Logical CPUs the OS reports.")
    physical_cores: _Count | None = Field(
        default=None, description="Physical cores, when the OS can tell (it cannot always)."
    )
    memory_total_gb: _Positive = Field(description="Memory available to this process, in GB.")
    cpu_model: _Str = Field(description="CPU model name as the OS reports it.")
    platform: Platform = Field(description="Operating system family.")
    machine: _Str = Field(description="CPU architecture, e.g. 'x86_64' or 'arm64'.")
    blas: _Str | None = Field(
        default=None, description="BLAS library and version numpy uses, e.g. 'openblas 0.3.31'."
    )


class Objective(_Model):
    """What the recommendation optimises, and the constraints it had to meet."""

    goal: Literal["throughput", "p99"] = Field(
        default="throughput", description="'throughput': most items/s; 'p99': lowest 99th-percentile latency."
    )
    p99_budget_ms: _Positive | None = Field(
        default=None, description="Reject configurations whose p99 exceeds this."
    )
    memory_budget_mb: _Positive | None = Field(
        default=None, description="Reject configurations whose total peak RSS exceeds this."
    )
    min_throughput: _Positive | None = Field(
        default=None, description="Reject configurations slower than this many items/s."
    )


class Backoff(_Model):
    """Retry delay: full jitter, uniform in [0, min(cap_s, base_s * 2**attempt)]."""

    base_s: _Positive = Field(default=0.05, description="Delay scale of the first retry, seconds.")
    cap_s: _Positive = Field(default=2.0, description="Longest delay between retries, seconds (>= base_s).")

    @model_validator(mode="after")
    def _cap_at_least_base(self) -> Backoff:
        if self.cap_s < self.base_s:
            raise _cross(f"cap_s ({self.cap_s:g}) < base_s ({self.base_s:g})", at="cap_s")
        return self


class BackoffOverride(_Model):
    """A partial :class:`Backoff` in a platform override; unset fields keep the base values."""

    base_s: _Positive | None = Field(default=None, description="Delay scale of the first retry, seconds.")
    cap_s: _Positive | None = Field(default=None, description="Longest delay between retries, seconds.")


# One description per knob, shared by Recommended and RecommendedOverride so they cannot drift.
_REC_DOC = {
    "backend": "How workers run: 'process' (one process each), 'thread' (threads in this process), "
    "'inline' (in the caller, no pool).",
    "workers": "Number of workers, each with the model loaded once.",
    "threads_per_worker": "BLAS / intra-op threads each worker may use.",
    "partition_size": "Items sent to a worker at once (the unit of dispatch).",
    "timeout_s": "Seconds one partition may run before its worker is replaced and the partition retried; "
    "absent or null = no timeout.",
    "retries": "Extra attempts for a failed partition before its items fail for good.",
    "retry_on": "Exception type names (e.g. 'ConnectionError') whose failures are retried; worker "
    "crashes, timeouts and memory-limit kills are always retried.",
    "backoff": "Delay between retries (full jitter).",
    "memory_limit_mb": "RSS above which a worker is replaced; absent or null = no limit.",
    "max_batch_delay_ms": "How long the runtime waits to fill a partition when items arrive one by one.",
}


class Recommended(_Model):
    """The configuration the runtime applies."""

    backend: Backend = Field(description=_REC_DOC["backend"])
    workers: _Count = Field(description=_REC_DOC["workers"])
    threads_per_worker: _Count = Field(description=_REC_DOC["threads_per_worker"])
    partition_size: _Count = Field(description=_REC_DOC["partition_size"])
    timeout_s: _Positive | None = Field(default=None, description=_REC_DOC["timeout_s"])
    retries: _NonNegInt = Field(default=3, description=_REC_DOC["retries"])
    retry_on: list[_ExceptionName] = Field(default_factory=list, description=_REC_DOC["retry_on"])
    backoff: Backoff = Field(default_factory=Backoff, description=_REC_DOC["backoff"])
    memory_limit_mb: _Positive | None = Field(default=None, description=_REC_DOC["memory_limit_mb"])
    max_batch_delay_ms: _NonNeg = Field(default=5.0, description=_REC_DOC["max_batch_delay_ms"])
    # Backpressure (second wave). Absent in older profiles: the runtime then derives a bound itself.
    max_pending: _Count | None = Field(
        default=None,
        description="Items in flight (submitted, not yet resolved) the runtime accepts before its "
        "overload policy applies; derived from measured throughput × the latency objective. "
        "Absent or null = the runtime's default bound.",
    )
    overload: Literal["block", "timeout", "reject"] = Field(
        default="block",
        description="What submit() does at max_pending: 'block' until there is room, 'timeout' "
        "(block, then raise Overloaded), or 'reject' at once with Overloaded (a service's 503).",
    )


class RecommendedOverride(_Model):
    """Any subset of :class:`Recommended`'s fields, merged over it on one platform."""

    backend: Backend | None = Field(default=None, description=_REC_DOC["backend"])
    workers: _Count | None = Field(default=None, description=_REC_DOC["workers"])
    threads_per_worker: _Count | None = Field(default=None, description=_REC_DOC["threads_per_worker"])
    partition_size: _Count | None = Field(default=None, description=_REC_DOC["partition_size"])
    timeout_s: _Positive | None = Field(default=None, description=_REC_DOC["timeout_s"])
    retries: _NonNegInt | None = Field(default=None, description=_REC_DOC["retries"])
    retry_on: list[_ExceptionName] | None = Field(default=None, description=_REC_DOC["retry_on"])
    backoff: BackoffOverride | None = Field(default=None, description=_REC_DOC["backoff"])
    memory_limit_mb: _Positive | None = Field(default=None, description=_REC_DOC["memory_limit_mb"])
    max_batch_delay_ms: _NonNeg | None = Field(default=None, description=_REC_DOC["max_batch_delay_ms"])
    max_pending: _Count | None = Field(default=None, description="Overrides recommended.max_pending.")
    overload: Literal["block", "timeout", "reject"] | None = Field(
        default=None, description="Overrides recommended.overload."
    )


class PlatformOverrides(_Model):
    """Per-OS partial overrides of ``recommended`` (e.g. threads on macOS, where fork is unsafe)."""

    linux: RecommendedOverride | None = Field(default=None, description="Applied on Linux.")
    darwin: RecommendedOverride | None = Field(default=None, description="Applied on macOS.")
    windows: RecommendedOverride | None = Field(default=None, description="Applied on Windows.")


class Autoscale(_Model):
    """Bounds and pace of the runtime's autoscaler."""

    min_workers: _Count = Field(description="Never fewer workers than this.")
    max_workers: _Count = Field(description="Never more workers than this (>= min_workers).")
    target_backlog_per_worker: _Positive = Field(
        default=4.0, description="Queued partitions per worker above which the autoscaler adds a worker."
    )
    target_p99_ms: _Positive | None = Field(
        default=None, description="Also scale up when the recent p99 latency exceeds this."
    )
    upscale_delay_s: _NonNeg = Field(
        default=0.0, description="How long the need must persist before adding workers, seconds."
    )
    downscale_delay_s: _NonNeg = Field(
        default=300.0,
        description="How long the need must persist before removing workers, seconds "
        "(300 = the Kubernetes HPA default stabilisation window).",
    )
    interval_s: _Positive = Field(default=1.0, description="How often the autoscaler looks, seconds.")
    reasoning: _Str = Field(default="", description="Why these bounds, in words.")

    @model_validator(mode="after")
    def _bounds_ordered(self) -> Autoscale:
        if self.min_workers > self.max_workers:
            raise _cross(
                f"min_workers ({self.min_workers}) > max_workers ({self.max_workers})", at="min_workers"
            )
        return self


class Percentiles(_Model):
    """Latency percentiles in milliseconds."""

    p50: _NonNeg | None = Field(default=None, description="Median, ms.")
    p90: _NonNeg | None = Field(default=None, description="90th percentile, ms.")
    p95: _NonNeg | None = Field(default=None, description="95th percentile, ms.")
    p99: _NonNeg | None = Field(default=None, description="99th percentile, ms.")
    p999: _NonNeg | None = Field(default=None, description="99.9th percentile, ms.")


class LatencyIntervals(_Model):
    """Confidence intervals [low, high] of latency percentiles, in milliseconds."""

    p50: _Interval | None = Field(default=None, description="Interval of the median, ms.")
    p90: _Interval | None = Field(default=None, description="Interval of the 90th percentile, ms.")
    p95: _Interval | None = Field(default=None, description="Interval of the 95th percentile, ms.")
    p99: _Interval | None = Field(default=None, description="Interval of the 99th percentile, ms.")
    p999: _Interval | None = Field(default=None, description="Interval of the 99.9th percentile, ms.")


class PeakRss(_Model):
    """Peak resident memory while measuring, in MB."""

    per_worker: _NonNeg | None = Field(default=None, description="Largest worker's peak RSS, MB.")
    total: _NonNeg | None = Field(default=None, description="Peak RSS of all workers together, MB.")


class Baseline(_Model):
    """The naive configuration the recommendation is compared with."""

    name: _Str = Field(description="What the baseline is, e.g. 'naive Pool(os.cpu_count()) default threads'.")
    throughput: _Positive = Field(description="Its throughput, items/s.")
    p99_ms: _NonNeg | None = Field(default=None, description="Its p99 latency, ms.")


class Candidate(_Model):
    """One measured configuration (a runner-up or a point on the Pareto front)."""

    backend: Backend = Field(description=_REC_DOC["backend"])
    workers: _Count = Field(description=_REC_DOC["workers"])
    threads_per_worker: _Count = Field(description=_REC_DOC["threads_per_worker"])
    partition_size: _Count = Field(description=_REC_DOC["partition_size"])
    throughput: _Positive = Field(description="Measured throughput, items/s.")
    p99_ms: _NonNeg | None = Field(default=None, description="Measured p99 latency, ms.")


class Evidence(_Model):
    """What was measured for the recommended configuration."""

    throughput: _Positive = Field(description="Items per second.")
    throughput_ci: _Interval | None = Field(
        default=None, description="Confidence interval of throughput [low, high]."
    )
    latency_ms: Percentiles | None = Field(default=None, description="Per-item latency percentiles, ms.")
    latency_ci_ms: LatencyIntervals | None = Field(
        default=None, description="Confidence intervals of the latency percentiles, ms."
    )
    service_time_ms: Percentiles | None = Field(
        default=None, description="Partition service time (on a worker, excluding queueing), ms."
    )
    cold_start_s: _NonNeg | None = Field(
        default=None, description="Time to first result from a cold pool, seconds."
    )
    cpu_share: _NonNeg | None = Field(
        default=None, description="Share of the usable cores kept busy (1.0 = all)."
    )
    peak_rss_mb: PeakRss | None = Field(default=None, description="Peak resident memory, MB.")
    trials_run: _NonNegInt | None = Field(default=None, description="Configurations measured.")
    strategy: _Str | None = Field(default=None, description="Search strategy, e.g. 'grid' or 'adaptive'.")
    measuring_s: _NonNeg | None = Field(default=None, description="Wall time spent measuring, seconds.")
    faults: _Str | None = Field(default=None, description="Fault plan injected while measuring, if any.")
    faults_observed: dict[str, _NonNegInt] | None = Field(
        default=None, description="Failures seen by kind, e.g. {crash: 3, timeout: 1}."
    )
    baseline: Baseline | None = Field(default=None, description="The naive configuration, for comparison.")
    runner_ups: list[Candidate] = Field(default_factory=list, description="Next-best configurations.")
    pareto: list[Candidate] = Field(default_factory=list, description="Throughput/p99 Pareto front.")


class ScalingProfile(_Model):
    """tuner scaling profile: how to run one model on one host, and the evidence for it."""

    schema_version: Literal[1] = Field(description="Profile format version; this tuner reads 1.")
    name: _Str = Field(pattern=_NAME_PATTERN, description="Profile name (letters, digits, '_', '.', '-').")
    created: datetime = Field(description="When the profile was made (ISO 8601, UTC).")
    tool_version: _Str = Field(description="Version of tuner that made it.")
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

    @model_validator(mode="after")
    def _consistent(self) -> ScalingProfile:
        # Every platform's merged configuration must itself be valid, and start inside the
        # autoscaler's bounds: otherwise the runtime would find out only on that OS, in production.
        for platform in (None, *_PLATFORMS):
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
                key = _format_loc(tuple(first["loc"]))
                detail = f"{key}: {_explain(first)}" if key else _explain(first)
                raise _cross(f"{where}: merged over recommended, {detail}", at=at) from None
            lo, hi = self.autoscale.min_workers, self.autoscale.max_workers
            if not lo <= rec.workers <= hi:
                raise _cross(
                    f"{where}.workers ({rec.workers}) outside autoscale bounds {lo}–{hi}",
                    at=f"{where}.workers",
                )
        return self

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


_PLATFORMS: tuple[str, ...] = typing.get_args(Platform)


def normalise_platform(value: str) -> str | None:
    """'linux', 'darwin' or 'windows' for a ``sys.platform``-like value; None for other systems."""
    v = value.lower()
    if v.startswith("linux"):
        return "linux"
    if v in ("darwin", "macos", "mac"):
        return "darwin"
    if v in ("win32", "cygwin", "windows", "win"):
        return "windows"
    return None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------

Loc = tuple[Any, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys instead of silently keeping the last one.

    ``load_profile`` also finds duplicates while walking the node tree (to name the key path); this
    override keeps the loader safe on its own for anyone who uses it with ``yaml.load``.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            with contextlib.suppress(TypeError):  # unhashable keys: the base class reports them
                if key in seen:
                    raise _DuplicateKey(
                        f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                        seen[key].start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


class _Where:
    """Where the keys of one document are: key path -> line (1-based)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.lines: dict[Loc, int] = {}

    def line(self, loc: Loc) -> int | None:
        loc = tuple(x for x in loc if x != "[key]")
        while loc not in self.lines and loc:
            loc = loc[:-1]
        return self.lines.get(loc)

    def error(self, loc: Loc, message: str, line: int | None = None) -> ProfileError:
        line = self.line(loc) if line is None else line
        where = f"{self.name} line {line}" if line is not None else self.name
        path = _format_loc(loc)
        return ProfileError(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def _format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _walk(loader: StrictLoader, node: yaml.Node, loc: Loc, where: _Where, budget: list[int]) -> None:
    """Record the line of every key path; reject unknown tags, duplicate keys and alias bombs."""
    budget[0] -= 1
    if budget[0] < 0:
        # Name the top-level key only: deep inside an alias expansion the path means little.
        raise where.error(loc[:1], f"too many YAML nodes (more than {_MAX_NODES}, aliases expanded)")
    if len(loc) > _MAX_DEPTH:
        raise where.error(loc[:1], f"nested deeper than {_MAX_DEPTH} levels (a recursive alias?)")
    if node.tag not in loader.yaml_constructors:
        # SafeLoader knows only plain-data tags; '!!python/object...' and custom tags end here,
        # before anything is constructed.
        raise where.error(
            loc,
            f"YAML tag '{_short_tag(node.tag)}' is not allowed (a profile holds plain data only)",
            line=node.start_mark.line + 1,
        )
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:  # '<<: *anchor' — its keys keep the alias's lines
                _walk(loader, value_node, loc, where, budget)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise where.error(loc, "keys must be plain names, not lists or mappings", line=line)
            if key_node.tag not in loader.yaml_constructors:
                raise where.error(loc, f"YAML tag '{_short_tag(key_node.tag)}' is not allowed", line=line)
            key = loader.construct_object(key_node)
            if not isinstance(key, str):
                # Every key in a profile is a name; YAML 1.1 reads `yes:`, `on:`, `1:` as non-text.
                raise where.error(
                    loc,
                    f"key '{key_node.value}' is read as {_show(key)}, not a name; put it in quotes",
                    line=line,
                )
            if key in first_seen:
                raise where.error(loc, f"duplicate key '{key}' (first at line {first_seen[key]})", line=line)
            first_seen[key] = line
            child: Loc = (*loc, key)
            where.lines[child] = line
            _walk(loader, value_node, child, where, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*loc, i)
            where.lines[child] = item.start_mark.line + 1
            _walk(loader, item, child, where, budget)


def _read_text(path: Path, name: str) -> str:
    try:
        if path.is_dir():
            raise ProfileError(f"{name}: is a folder, not a profile file")
        with path.open("rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ProfileError(f"{name}: file not found") from None
    except OSError as e:
        raise ProfileError(f"{name}: cannot read: {e.strerror or e}") from None
    if len(data) > _MAX_BYTES:
        raise ProfileError(f"{name}: too large for a profile (more than {_MAX_BYTES // 1024} KiB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProfileError(f"{name}: not UTF-8 text (byte {e.start})") from None


def _yaml_error(name: str, e: yaml.YAMLError) -> ProfileError:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        problem = " ".join(str(e.problem or "").split())
        return ProfileError(
            f"{name} line {mark.line + 1}: not valid YAML: {problem} (column {mark.column + 1})"
        )
    return ProfileError(f"{name}: not valid YAML: {' '.join(str(e).split())}")


def parse_profile_text(text: str, name: str = "<profile>") -> ScalingProfile:
    """Validate profile YAML held in a string; ``name`` is how errors refer to it."""
    if not text.strip():
        raise ProfileError(f"{name}: empty file")
    where = _Where(name)
    loader = StrictLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.YAMLError as e:
            raise _yaml_error(name, e) from None
        if root is None:
            raise ProfileError(f"{name}: empty file (comments only)")
        if not isinstance(root, yaml.MappingNode) or root.tag != "tag:yaml.org,2002:map":
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            raise ProfileError(
                f"{name} line {root.start_mark.line + 1}: top level must be a mapping (got {kind})"
            )
        where.lines[()] = root.start_mark.line + 1
        _walk(loader, root, (), where, [_MAX_NODES])
        try:
            data = loader.construct_document(root)
        except yaml.YAMLError as e:
            raise _yaml_error(name, e) from None
    finally:
        loader.dispose()
    if "schema_version" in data:
        v = data["schema_version"]
        if type(v) is not int or v != SCHEMA_VERSION:
            raise where.error(
                ("schema_version",),
                f"unsupported schema version {_show(v)} (this tuner reads version {SCHEMA_VERSION})",
            )
    try:
        return ScalingProfile.model_validate(data)
    except ValidationError as e:
        raise _translate(e, where) from None


def load_profile(path: str | os.PathLike[str]) -> ScalingProfile:
    """Read and validate a profile; any problem is one :class:`ProfileError` line naming file, line and key."""
    name = os.fspath(path)
    return parse_profile_text(_read_text(Path(path), name), name)


# --- pydantic errors -> one line ---------------------------------------------------------------

_KIND = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "model_type": "expected a mapping",
    "model_attributes_type": "expected a mapping",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
    "tuple_type": "expected a list [low, high]",
    "datetime_type": "expected a date-time like 2026-11-27T05:30:00Z",
    "datetime_parsing": "expected a date-time like 2026-11-27T05:30:00Z",
    "datetime_from_date_parsing": "expected a date-time like 2026-11-27T05:30:00Z",
    "finite_number": "must be a finite number",
}
_PATTERN_WORDS = {
    _NAME_PATTERN: "may hold only letters, digits, '_', '.' and '-'",
    _EXCEPTION_PATTERN: "must be an exception type name such as 'ValueError' or 'mypkg.Transient'",
}
_BOUND = {
    "greater_than": ">",
    "greater_than_equal": ">=",
    "less_than": "<",
    "less_than_equal": "<=",
}


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, shortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, str):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "...'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, datetime):
        return value.isoformat()
    return type(value).__name__


def _explain(err: ErrorDetails) -> str:
    """One error's message, without its key path."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    loc = err["loc"]
    if kind == "missing":
        if loc and isinstance(loc[-1], int):
            return "expected a list [low, high]"
        return f"missing required key '{loc[-1]}'" if loc else "missing required key"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in _KIND:
        text = f"{_KIND[kind]}, got {_show(value)}"
        if kind == "string_type" and isinstance(value, (int, float)):
            text += " (put it in quotes)"
        return text
    if kind in _BOUND:
        bound = next(iter(ctx.values()), "?")
        return f"must be {_BOUND[kind]} {_show(bound)} (got {_show(value)})"
    if kind == "literal_error":
        return f"must be {ctx.get('expected', '?')} (got {_show(value)})"
    if kind == "string_pattern_mismatch":
        rule = _PATTERN_WORDS.get(str(ctx.get("pattern")), f"must match {ctx.get('pattern', '?')}")
        return f"{rule} (got {_show(value)})"
    if kind == "string_too_short":
        return "must not be empty"
    if kind in ("too_long", "too_short"):
        return f"expected a list [low, high], got {len(value) if isinstance(value, (list, tuple)) else '?'} items"
    if kind in ("cross_field", "interval_order"):
        return err["msg"]
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    return f"{msg[:1].lower()}{msg[1:]} (got {_show(value)})"


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The model class whose fields are valid at ``loc`` (to suggest a key for a typo)."""
    model: type[BaseModel] | None = ScalingProfile
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        model = _inner_model(field.annotation) if field is not None else None
    return model


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _translate(error: ValidationError, where: _Where) -> ProfileError:
    errors = error.errors(include_url=False)
    # A typo'd key shows up twice in pydantic's list: the unknown key and the missing real one.
    # Report the typo with a suggestion and drop the missing-key error it explains.
    explained: set[Loc] = set()
    hints: dict[int, str] = {}
    for i, err in enumerate(errors):
        if err["type"] != "extra_forbidden" or not err["loc"]:
            continue
        parent, key = err["loc"][:-1], err["loc"][-1]
        model = _model_at(parent)
        allowed = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
        if close:
            hints[i] = f"unknown key (did you mean '{close[0]}'?)"
            explained.add((*parent, close[0]))
        elif allowed:
            hints[i] = f"unknown key (allowed: {', '.join(allowed)})"
    kept = [
        (i, err)
        for i, err in enumerate(errors)
        if not (err["type"] == "missing" and tuple(err["loc"]) in explained)
    ]

    def place(item: tuple[int, ErrorDetails]) -> tuple[Loc, int | None]:
        _, err = item
        loc = tuple(err["loc"])
        if err["type"] == "missing":
            # A missing key has no line of its own: point at its parent mapping.
            return loc[:-1], where.line(loc[:-1])
        at = (err.get("ctx") or {}).get("at")
        if at:
            target = (*loc, *at.split("."))
            return loc, where.line(target)
        return loc, where.line(loc)

    # Report the problem nearest the top of the file: that is where a person starts reading.
    # On a tie, a wrong or unknown key says more than a missing one.
    kept.sort(key=lambda item: (place(item)[1] or 0, item[1]["type"] == "missing", item[0]))
    i, err = kept[0]
    loc, line = place((i, err))
    message = hints.get(i) or _explain(err)
    # (for a missing key, loc is now the parent mapping's path; the message names the key)
    if len(kept) > 1:
        message += f" (+{len(kept) - 1} more)"
    return where.error(loc, message, line=line)


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def dump_profile_text(profile: ScalingProfile) -> str:
    """The YAML ``save_profile`` writes: schema key order, no nulls, a comment header."""
    data = profile.model_dump(mode="json", exclude_none=True)
    if profile.platforms is not None:
        # Overrides keep exactly the keys that were set, including an explicit `timeout_s: null`
        # (= no timeout on that OS), which exclude_none would silently drop.
        data["platforms"] = {
            p: o.model_dump(mode="json", exclude_unset=True)
            for p in _PLATFORMS
            if (o := getattr(profile.platforms, p)) is not None
        }
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    return HEADER + body


def _atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so a reader sees the old file or the new one, never half of it.

    Private on purpose: it can be swapped for ``tuner.data.atomic_write_text`` once that lands.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644  # mkstemp makes 0600; a profile is meant to be read by others
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if os.name == "posix":  # make the rename itself durable; best effort
        with contextlib.suppress(OSError):
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def save_profile(profile: ScalingProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as YAML to ``path`` atomically (creating its folder); returns the path."""
    text = dump_profile_text(profile)  # serialise first: a failure here must not touch the file
    target = Path(path)
    try:
        _atomic_write_text(target, text)
    except OSError as e:
        raise ProfileError(f"{os.fspath(path)}: cannot write: {e.strerror or e}") from None
    return target


def profile_json_schema() -> dict[str, Any]:
    """The JSON Schema of a profile (draft 2020-12), for editors and other tools."""
    schema = ScalingProfile.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "tuner scaling profile",
        **{k: v for k, v in schema.items() if k != "title"},
    }
