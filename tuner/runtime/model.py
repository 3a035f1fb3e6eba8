"""The model a runtime runs: a profile's model file with its knobs, consent to load a pickle, the
framework's version.

Safety: nothing here imports the model. A profile's model spec is a reference; the runtime's
engine imports it only when it starts (with the process backend, in the worker processes only).
A pickle loads only with the caller's ``allow_pickle=True``: a profile records the consent given
when it was measured, but never gives it (a profile must not turn into code execution by itself).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tuner.errors import ModelSpecError, ProfileError
from tuner.runtime.callbacks import log

if TYPE_CHECKING:
    from tuner.profile import ScalingProfile

__all__ = ["check_framework", "model_of", "with_consent"]


def model_of(name: str, profile: ScalingProfile, allow_pickle: bool) -> Any:
    """The profile's model as the runtime runs it: a model file's spec with the profile's knobs and
    options (the same adapter, the same knobs), or the spec string of Python code."""
    from tuner.models.spec import parse_spec

    m = profile.model
    ms = parse_spec(m.spec)
    if not ms.is_model_file:
        return m.spec
    if m.allow_pickle and not allow_pickle:
        raise ProfileError(
            f"{name}: its model {m.spec} was loaded with allow_pickle (loading it runs the file's code): "
            "pass allow_pickle=True (tuner run --allow-pickle) if you trust that file"
        )
    from tuner.models.formats.scikit import PICKLES, consent_message

    if not allow_pickle and os.path.splitext(ms.target)[1].lower() in PICKLES:
        raise ModelSpecError(consent_message(os.path.basename(ms.target)))
    rec = profile.effective_recommended()
    ms = ms.with_options(allow_pickle=True if allow_pickle else None, method=m.method, provider=m.provider)
    return ms.with_knobs(rec.knobs or {})


def with_consent(model: Any, allow_pickle: bool) -> Any:
    """``model``, a model file's spec with consent to load a pickle when ``allow_pickle``; anything
    else (Python code, a callable, no consent) as it is."""
    if not allow_pickle:
        return model
    from tuner.models.spec import ModelSpec, parse_spec

    spec = parse_spec(model) if isinstance(model, str) else model
    if isinstance(spec, ModelSpec) and spec.is_model_file:
        return spec.with_options(allow_pickle=True)
    return model


def check_framework(name: str, profile: ScalingProfile, strict: bool) -> None:
    """One warning line (``strict``: ProfileError) when the model's framework has another version here."""
    m = profile.model
    if not m.framework or not m.framework_version:
        return
    from tuner.models.formats import adapter_for

    adapter = adapter_for(m.spec)
    here = adapter.version() if adapter is not None else None
    if here is None or here == m.framework_version:
        return  # absent: loading the model says how to install it, in one line
    what = f"measured with {m.framework} {m.framework_version}, this host has {here}"
    if strict:
        raise ProfileError(f"{name}: {what}; strict=True refuses")
    log.warning("%s: %s; its figures may not hold", name, what)
