"""The runtime's settings: the one deployment value, what a profile asks for, and the options over it.

The runtime's settings *are* a :class:`~tuner.deployment.Deployment`; this module adds what only
the runtime derives from one (the default backpressure bound), the translation from a profile
(with the caller's overrides and the ``hedge`` option) and the checks of ``map``'s own options.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

from tuner.deployment import OVERLOAD_POLICIES, Deployment
from tuner.errors import ConfigError

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile

__all__ = [
    "DEFAULT_PENDING_PARTITIONS_PER_WORKER",
    "OnFailure",
    "Overload",
    "RuntimeSettings",
    "apply_hedge",
    "check_map_options",
    "pending_bound",
    "settings_from_profile",
    "with_overrides",
]

#: Default bound on items in flight, in partitions per worker of the pool's ceiling: room for one
#: map's full look-ahead window and as much again of submitted items.
DEFAULT_PENDING_PARTITIONS_PER_WORKER = 36

OnFailure = Literal["raise", "yield"]
Overload = Literal["block", "timeout", "reject"]

#: The runtime's settings are the one deployment value (:class:`tuner.deployment.Deployment`); the
#: name stays for callers that built them by it.
RuntimeSettings = Deployment


def pending_bound(settings: Deployment) -> int:
    """``max_pending``, or the default bound when it is None (room for one map's look-ahead window
    and as much again of submitted items, per worker of the pool's ceiling)."""
    if settings.max_pending is not None:
        return settings.max_pending
    return DEFAULT_PENDING_PARTITIONS_PER_WORKER * settings.ceiling * settings.partition_size


def settings_from_profile(profile: ScalingProfile, platform: str | None = None) -> Deployment:
    """The deployment a profile asks for on ``platform`` (default: this OS), its override merged in."""
    return profile.deployment(platform)


def with_overrides(settings: Deployment, overrides: dict[str, Any]) -> Deployment:
    """``settings`` with the caller's ``overrides`` (public names) over them.

    An explicit worker count widens the autoscaler's bounds rather than being refused by them.
    """
    if not overrides:
        return settings
    auto = overrides.get("autoscale", settings.autoscale)
    if auto is not None and "workers" in overrides:
        w = overrides["workers"]
        auto = replace(auto, min_workers=min(auto.min_workers, w), max_workers=max(auto.max_workers, w))
    return Deployment.of(settings, **{**overrides, "autoscale": auto})


def apply_hedge(
    settings: RuntimeSettings, hedge: bool | float | None, profile: ScalingProfile | None = None
) -> RuntimeSettings:
    """``settings`` with the runtime's ``hedge`` option applied.

    None: as the settings (the profile) say. False: no hedging. A number: the delay in seconds.
    True: the profile's delay — its ``recommended.hedge``, else the p95 service time its evidence
    records; ConfigError when there is none.
    """
    if hedge is None:
        return settings
    if hedge is False:
        return replace(settings, hedge_after_s=None)
    if hedge is True:
        after = settings.hedge_after_s
        if after is None and profile is not None and profile.evidence.service_time_ms is not None:
            p95 = profile.evidence.service_time_ms.p95
            after = p95 / 1000.0 if p95 else None
        if after is None:
            where = (
                "this profile records no p95 service time" if profile is not None else "there is no profile"
            )
            raise ConfigError(
                f"hedge=True takes its delay from a profile's p95 service time, and {where}: "
                "give the delay in seconds instead (e.g. hedge=0.02)"
            )
        return replace(settings, hedge_after_s=after)
    if (
        isinstance(hedge, bool)
        or not isinstance(hedge, (int, float))
        or not math.isfinite(hedge)
        or hedge <= 0
    ):
        raise ConfigError(f"hedge must be True, False, None or a delay in seconds > 0 (got {hedge!r})")
    return replace(settings, hedge_after_s=float(hedge))


def check_map_options(on_failure: str, overload: str) -> None:
    """ConfigError for an ``on_failure`` or ``overload`` that ``map`` does not know."""
    if on_failure not in ("raise", "yield"):
        raise ConfigError(f"on_failure must be 'raise' or 'yield' (got {on_failure!r})")
    if overload not in OVERLOAD_POLICIES:
        raise ConfigError(f"overload {overload!r}: choose from {', '.join(OVERLOAD_POLICIES)}")
