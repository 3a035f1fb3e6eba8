"""Small text helpers shared by the widgets: numbers people read at a glance."""

from __future__ import annotations

import re

from tuner.bench.types import TrialResult


def si(x: float | None, unit: str = "") -> str:
    """``51234 -> '51.2k'``; ``None -> '–'``."""
    if x is None:
        return "–"
    ax = abs(x)
    if ax >= 1e6:
        s = f"{x / 1e6:.2f}M"
    elif ax >= 1e4:
        s = f"{x / 1e3:.1f}k"
    elif ax >= 1e3:
        s = f"{x / 1e3:.2f}k"
    elif ax >= 100:
        s = f"{x:.0f}"
    else:
        s = f"{x:.3g}"
    return s + unit


def ms(x: float | None) -> str:
    """Milliseconds with sensible precision."""
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:.0f} ms"
    if x >= 10:
        return f"{x:.1f} ms"
    return f"{x:.2f} ms"


def duration(s: float) -> str:
    """``75 -> '1m15s'``."""
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def status_of(r: TrialResult) -> str:
    """One word for a trial's state: error / infeasible / unstable / stable."""
    if r.error:
        return "error"
    if not r.feasible:
        return "infeasible"
    return "stable" if r.stable else "unstable"


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
