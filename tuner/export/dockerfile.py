"""The image the manifests run: ``tuner export PROFILE --to dockerfile`` writes a Dockerfile.

The Python base the profile was measured with, tuner with its serving extras and the model's
framework at the measured version, the profile and the model file copied in, the thread variables,
and ``tuner serve`` as the command — the same command, port and paths as the Deployment's
(:mod:`tuner.export.kubernetes`: one set of constants, and a test that compares them). The build
context is the folder ``tuner export`` ran in: the profile and a relative model path are copied from
there. Nothing here builds the image (no Docker needed to write it).
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING

from tuner.export.pod import (
    PORT,
    PROFILE_PATH,
    THREAD_ENV,
    WORKDIR,
    ExportOptions,
    default_image,
    derive_pod,
)

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile

__all__ = ["render"]

#: tuner's extras a model file's format needs (pyproject's optional dependencies)
FORMAT_EXTRAS = {"onnx": "onnx", "torch": "torch", "sklearn": "sklearn"}
#: the extras every served image needs: the server and its metrics
SERVE_EXTRAS = ("serve", "metrics")


def _python(profile: ScalingProfile) -> tuple[str, str]:
    """The Python version for the base image, and where it came from."""
    m = re.search(r"Python (\d+\.\d+)", profile.host.summary)
    if m:
        return m.group(
            1
        ), f"the Python the profile was measured with ({profile.host.summary.split(' · ')[0]} host)"
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return here, "the profile does not say its Python: the one that ran tuner export"


def _model_copy(profile: ScalingProfile, source: str) -> list[str]:
    """COPY lines (and their comments) that put the model where its spec names it."""
    from tuner.models.spec import parse_spec

    spec = parse_spec(profile.model.spec)
    if spec.kind == "builtin":
        return ["# the model: builtin, part of tuner"]
    if spec.kind == "module":
        module = spec.target.split(".")[0]
        return [
            f"# the model: the Python module {spec.target} must be importable in the image; tuner cannot know",
            f"# where it lives — copy it in (COPY {module}/ {WORKDIR}/{module}/) or pip install its package here",
        ]
    path = profile.model.spec.rsplit(":", 1)[0] if spec.kind == "file" else profile.model.spec
    if os.path.isabs(path):
        return [
            f"# the model file, at the absolute path its spec names; put {os.path.basename(path)} in the build context",
            f"COPY {json.dumps([os.path.basename(path), path])}",
        ]
    dest = f"{WORKDIR}/{path}"
    return [
        f"# the model file, where its relative spec finds it from {WORKDIR}",
        f"COPY {json.dumps([path, dest])}",
    ]


def _requirements(profile: ScalingProfile) -> tuple[str, list[str], list[str]]:
    """tuner's pip spec, the framework pins, and the comment lines that explain them."""
    fmt = profile.model.format
    extras = [*SERVE_EXTRAS, *([FORMAT_EXTRAS[fmt]] if fmt in FORMAT_EXTRAS else [])]
    tuner_spec = f"tuner[{','.join(extras)}]=={profile.tool_version}"
    pins: list[str] = []
    notes = [
        f"# tuner {profile.tool_version} made the profile; with the extras for serving"
        + (f" and {fmt} models" if fmt in FORMAT_EXTRAS else "")
        + ". TUNER_SPEC may name a wheel or a VCS URL instead"
    ]
    if profile.model.framework and profile.model.framework_version:
        pins.append(f"{profile.model.framework}=={profile.model.framework_version}")
        notes.append(
            f"# {pins[-1]}: the framework version the profile measured (the runtime says when it differs)"
        )
    if fmt == "torch":
        notes.append(
            "# torch from the default index is the CUDA build: for CPU nodes install its CPU-only wheel"
        )
    return tuner_spec, pins, notes


def render(profile: ScalingProfile, opts: ExportOptions | None = None) -> str:
    """The Dockerfile (text) whose image the Kubernetes and KServe exports run."""
    opts = opts or ExportOptions()
    pod = derive_pod(profile, opts)
    version, version_why = _python(profile)
    tuner_spec, pins, req_notes = _requirements(profile)
    image = opts.image or default_image(profile)
    source = opts.source or "PROFILE.yaml"
    install = " ".join(['"${TUNER_SPEC}"', *(f'"{p}"' for p in pins)])
    lines = [
        f"# Dockerfile for tuner profile '{profile.name}' ({opts.source or 'the profile'}): tuner serve on it",
        f"# build, from the folder tuner export ran in (the build context): docker build -f THIS_FILE -t {image} .",
        "# then: tuner export PROFILE --to kubernetes"
        + (f" --image {image}" if opts.image else "")
        + " (same command, port and paths)",
        f"# {version_why}",
        f"FROM python:{version}-slim",
        *req_notes,
        f'ARG TUNER_SPEC="{tuner_spec}"',
        f"RUN pip install --no-cache-dir {install}",
        f"WORKDIR {WORKDIR}",
        f"# the profile; in Kubernetes the ConfigMap mounted at {os.path.dirname(PROFILE_PATH)} holds the same file",
        f"COPY {json.dumps([source, PROFILE_PATH])}",
        *_model_copy(profile, source),
        f"# threads_per_worker {pod.threads}: what ran when measured, for every pool started before the workers",
        "ENV " + " ".join(f"{v}={pod.threads}" for v in THREAD_ENV),
        f"EXPOSE {PORT}",
        f"# {pod.why['drain']}",
        'ENTRYPOINT ["tuner"]',
        f"CMD {json.dumps(pod.args)}",
    ]
    return "\n".join(lines) + "\n"
