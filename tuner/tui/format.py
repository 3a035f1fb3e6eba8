"""Small text helpers shared by the widgets: numbers people read at a glance."""

from __future__ import annotations

import re

from tuner import fmt
from tuner.bench.outlook import SweepOutlook, sweep_outlook
from tuner.bench.types import TrialResult

__all__ = ["SweepOutlook", "duration", "ms", "profile_name", "si", "status_of", "sweep_outlook"]


def si(x: float | None, unit: str = "") -> str:
    """``51234 -> '51.2k'``; ``None -> '–'`` (:func:`tuner.fmt.rate`, with a unit)."""
    return "–" if x is None else fmt.rate(x) + unit


ms = fmt.ms
duration = fmt.duration


def status_of(r: TrialResult) -> str:
    """One word for a trial's state (:attr:`TrialResult.status`)."""
    return r.status


def profile_name(spec: str) -> str:
    """A profile name from a model spec: ``builtin:mlp -> mlp``, ``pkg/m.py:load -> m-load``."""
    text = spec.strip()
    if text.startswith("builtin:"):
        base = text.split(":", 1)[1]
    else:
        left, _, fn = text.rpartition(":") if ":" in text else ("", "", text)
        stem = re.split(r"[/\\]", left)[-1].rsplit(".", 1)[0] if left.endswith(".py") else left
        stem = stem.rsplit(".", 1)[-1] if stem and not left.endswith(".py") else stem
        base = f"{stem}-{fn}" if stem and fn else (fn or stem)
        if text.endswith(".onnx"):
            base = re.split(r"[/\\]", text)[-1][: -len(".onnx")]
    name = re.sub(r"[^a-zA-Z0-9_.-]+", "-", base).strip("-.")
    return name or "profile"
