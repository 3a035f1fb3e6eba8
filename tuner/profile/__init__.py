"""The scaling profile: what tuner recommends for one model on one host, as YAML a person can edit.

==============  ===========================================================================
``schema``      the pydantic models (``ScalingProfile`` and its parts) and the JSON Schema
``loader``      strict, safe YAML loading: ``load_profile``, ``parse_profile_text``
``errors``      pydantic's errors translated to one line naming file, line and key
``save``        ``save_profile`` (atomic) and ``dump_profile_text``
==============  ===========================================================================

The production runtime imports this package: it imports only pydantic, yaml and the standard library
at module level (no numpy, no rich).
"""

from __future__ import annotations

from tuner.profile.loader import StrictLoader, load_profile, parse_profile_text
from tuner.profile.save import HEADER, dump_profile_text, save_profile
from tuner.profile.schema import (
    SCHEMA_VERSION,
    Autoscale,
    Backoff,
    BackoffOverride,
    Baseline,
    Candidate,
    Evidence,
    Hedge,
    HedgeOverride,
    HostInfo,
    InputInfo,
    LatencyIntervals,
    ModelRef,
    Objective,
    Online,
    OnlineCandidate,
    OnlineStep,
    PeakRss,
    Percentiles,
    PlatformOverrides,
    Recommended,
    RecommendedOverride,
    ScalingCurve,
    ScalingPoint,
    ScalingProfile,
    ThreadEvidence,
    normalise_platform,
    profile_json_schema,
)

__all__ = [
    "HEADER",
    "SCHEMA_VERSION",
    "Autoscale",
    "Backoff",
    "BackoffOverride",
    "Baseline",
    "Candidate",
    "Evidence",
    "Hedge",
    "HedgeOverride",
    "HostInfo",
    "InputInfo",
    "LatencyIntervals",
    "ModelRef",
    "Objective",
    "Online",
    "OnlineCandidate",
    "OnlineStep",
    "PeakRss",
    "Percentiles",
    "PlatformOverrides",
    "Recommended",
    "RecommendedOverride",
    "ScalingCurve",
    "ScalingPoint",
    "ScalingProfile",
    "StrictLoader",
    "ThreadEvidence",
    "dump_profile_text",
    "load_profile",
    "normalise_platform",
    "parse_profile_text",
    "profile_json_schema",
    "save_profile",
]
