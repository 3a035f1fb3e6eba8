"""Saving a profile: YAML in the schema's key order, a comment header, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tuner.data import atomic_write_text
from tuner.profile.schema import PLATFORMS, ScalingProfile

__all__ = ["HEADER", "dump_profile_text", "save_profile"]

HEADER = "# tuner scaling profile — edit by hand if you like; validate with: tuner check PATH\n"
"""The first line of every saved profile."""


def dump_profile_text(profile: ScalingProfile) -> str:
    """The YAML ``save_profile`` writes: schema key order, no nulls, a comment header."""
    data = profile.model_dump(mode="json", exclude_none=True)
    if profile.platforms is not None:
        # Overrides keep exactly the keys that were set, including an explicit `timeout_s: null`
        # (= no timeout on that OS), which exclude_none would silently drop.
        data["platforms"] = {
            p: o.model_dump(mode="json", exclude_unset=True)
            for p in PLATFORMS
            if (o := getattr(profile.platforms, p)) is not None
        }
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096)
    return HEADER + body


def save_profile(profile: ScalingProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as YAML to ``path`` atomically (creating its folder); returns the path.

    A file that cannot be written is a one-line :class:`~tuner.errors.DataError`; the file already
    there, if any, is left as it was.
    """
    from tuner.models.spec import rebase_spec

    # A relative model path is written relative to the profile file (the loader reads it so).
    spec = profile.model.spec
    rebased = rebase_spec(spec, os.getcwd(), Path(path).parent)
    if rebased != spec:
        profile = profile.model_copy(update={"model": profile.model.model_copy(update={"spec": rebased})})
    text = dump_profile_text(profile)  # serialise first: a failure here must not touch the file
    atomic_write_text(path, text, parents=True)
    return Path(path)
