"""How tuner writes a number for a person: one formatter per unit, used by every view.

The CLI, the TUI, the reports, the plan and the exports all print rates, latencies and durations;
each unit is written here once, so the same figure reads the same everywhere. Never scientific
notation: a person reads ``1,500 ms`` and ``24.4k of 82.8k/s``, not ``1.5e+03 ms``.

Bottom layer: the standard library only.
"""

from __future__ import annotations

import math

__all__ = ["count", "duration", "ms", "plural", "rate", "seconds", "sig"]


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits in plain notation: 0.000123 → '0.000123', 42.56 → '42.6'."""
    if x == 0 or not math.isfinite(x):
        return "0" if x == 0 else str(x)
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    text = f"{x:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def rate(x: float | None) -> str:
    """A rate (items/s, requests/s): 51234 → '51.2k', 2.44e6 → '2.44M', 42.56 → '42.6'; None → '–'."""
    if x is None or not math.isfinite(x):
        return "–"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.2f}M"
    if ax >= 1e4:
        return f"{x / 1e3:.1f}k"
    if ax >= 1e3:
        return f"{x / 1e3:.2f}k"
    if ax >= 100:
        return f"{x:.0f}"
    return sig(x)


def ms(x: float | None) -> str:
    """Milliseconds: '0.152 ms', '4.1 ms', '15.2 ms', '152 ms', '1,500 ms'; None or nan → '–'."""
    if x is None or not math.isfinite(x):
        return "–"
    if abs(x) >= 100:
        return f"{x:,.0f} ms"
    return f"{sig(x)} ms"


def seconds(x: float | None) -> str:
    """Seconds: '0.25 s', '3.8 s', '120 s'; None → '–'."""
    if x is None or not math.isfinite(x):
        return "–"
    return f"{x:,.0f} s" if abs(x) >= 100 else f"{sig(x)} s"


def duration(s: float) -> str:
    """A stretch of wall time: 75 → '1m15s', 12 → '12s'."""
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f}s"
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def count(n: int) -> str:
    """A count with thousands separators: 15360 → '15,360'."""
    return f"{n:,}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 worker``, ``2 workers`` (``many`` when the plural is not ``one + 's'``)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"
