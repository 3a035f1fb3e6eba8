"""Profiles turned into other systems' configs: ``tuner export PROFILE --to ray-serve``.

Each target is one module with a ``render(profile, ...) -> str``; writing needs nothing but the
profile (no Ray installed to *write* a Serve config: only deploying it needs Ray).
"""

from __future__ import annotations

from tuner.export.ray_serve import render as render_ray_serve

#: target name -> renderer
TARGETS = {"ray-serve": render_ray_serve}

__all__ = ["TARGETS", "render_ray_serve"]
