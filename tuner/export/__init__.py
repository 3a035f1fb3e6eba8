"""Profiles turned into other systems' configs: ``tuner export PROFILE --to TARGET``.

Each target is one module with a ``render(profile, ...) -> str``; writing needs nothing but the
profile (no Ray to *write* a Serve config, no cluster to write manifests, no Docker to write a
Dockerfile). :data:`TARGETS` maps a target's name to a function of ``(profile, ExportOptions)`` and
:data:`DEFAULT_NAMES` to the file name ``--out DIR`` writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from tuner.export.dockerfile import render as render_dockerfile
from tuner.export.kserve import render as render_kserve
from tuner.export.kubernetes import ExportOptions
from tuner.export.kubernetes import render as render_kubernetes
from tuner.export.ray_serve import render as render_ray_serve

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile


def _ray_serve(profile: ScalingProfile, opts: ExportOptions) -> str:
    return render_ray_serve(profile, import_path=opts.import_path, source=opts.source)


#: target name -> renderer
TARGETS: dict[str, Callable[[ScalingProfile, ExportOptions], str]] = {
    "ray-serve": _ray_serve,
    "kubernetes": render_kubernetes,
    "kserve": render_kserve,
    "dockerfile": render_dockerfile,
}
#: target name -> the file written when --out names a folder
DEFAULT_NAMES = {
    "ray-serve": "serve.yaml",
    "kubernetes": "kubernetes.yaml",
    "kserve": "kserve.yaml",
    "dockerfile": "Dockerfile",
}

__all__ = [
    "DEFAULT_NAMES",
    "TARGETS",
    "ExportOptions",
    "render_dockerfile",
    "render_kserve",
    "render_kubernetes",
    "render_ray_serve",
]
