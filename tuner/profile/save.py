"""Saving a profile: YAML in the schema's key order, a comment header, written atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import yaml

from tuner.errors import ProfileError
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
