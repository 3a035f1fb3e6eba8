"""The scaling profile: what tuner recommends for one model on one host, as YAML a person can edit.

==============  ===========================================================================
``schema``      the pydantic models of the profile (``ScalingProfile``) and the JSON Schema
``settings``    the models of the deployment settings, generated from :mod:`tuner.deployment`,
                and ``deployment_of`` / ``recommended_of`` between a profile and a Deployment
``evidence``    the ``evidence:`` section; ``online``: the ``online:`` section
``base``        strict number types and the base model
``loader``      strict, safe YAML loading: ``load_profile``, ``parse_profile_text``
``errors``      pydantic's errors translated to one line naming file, line and key
``save``        ``save_profile`` (atomic) and ``dump_profile_text``
==============  ===========================================================================

The production runtime imports this package: it imports only pydantic, yaml and the standard library
at module level (no numpy, no rich).
"""

from __future__ import annotations

from tuner.profile.base import normalise_platform
from tuner.profile.calibration import CalibrationRecord, KernelRecord, KernelScoreRecord, NatureRecord
from tuner.profile.evidence import (
    Baseline,
    Candidate,
    Evidence,
    HostLoad,
    LatencyIntervals,
    OutsideProcessInfo,
    PeakRss,
    Percentiles,
    ThreadEvidence,
)
from tuner.profile.loader import StrictLoader, load_profile, parse_profile_text
from tuner.profile.online import HttpOnline, Online, OnlineCandidate, OnlineStep, ScalingCurve, ScalingPoint
from tuner.profile.save import HEADER, dump_profile_text, save_profile
from tuner.profile.schema import (
    SCHEMA_VERSION,
    ActorResources,
    ClusterInfo,
    HostInfo,
    InputInfo,
    ModelRef,
    Objective,
    PlatformOverrides,
    ScalingProfile,
    profile_json_schema,
)
from tuner.profile.settings import (
    Autoscale,
    Backoff,
    BackoffOverride,
    Hedge,
    HedgeOverride,
    Recommended,
    RecommendedOverride,
    autoscale_of,
    deployment_of,
    recommended_of,
)

__all__ = [
    "HEADER",
    "SCHEMA_VERSION",
    "ActorResources",
    "Autoscale",
    "Backoff",
    "BackoffOverride",
    "Baseline",
    "CalibrationRecord",
    "Candidate",
    "ClusterInfo",
    "Evidence",
    "Hedge",
    "HedgeOverride",
    "HostInfo",
    "HostLoad",
    "HttpOnline",
    "InputInfo",
    "KernelRecord",
    "KernelScoreRecord",
    "LatencyIntervals",
    "ModelRef",
    "NatureRecord",
    "Objective",
    "Online",
    "OnlineCandidate",
    "OnlineStep",
    "OutsideProcessInfo",
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
    "autoscale_of",
    "deployment_of",
    "dump_profile_text",
    "load_profile",
    "normalise_platform",
    "parse_profile_text",
    "profile_json_schema",
    "recommended_of",
    "save_profile",
]
