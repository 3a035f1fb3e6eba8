"""Arrival schedules of an open-loop load: when each request is *meant* to be sent, and its size.

A schedule is fixed before a step starts and never looks at completions (open loop): the intended
send times are the reference every latency is measured from (no coordinated omission, see
:mod:`tuner.bench.online.step`).

* ``constant`` — one request every ``1/rate`` s, the first at 0 (wrk2's constant throughput).
* ``poisson`` — independent exponential gaps of mean ``1/rate`` (many independent clients; the
  arrivals a service behind a load balancer sees), seeded so a step is reproducible.
* a **trace** — one timestamp per line (seconds; any origin: the first becomes 0), optionally a
  request size after it. A trace is replayed *scaled* to the step's rate (its gaps multiplied so its
  mean rate is the step's), keeping its burstiness, and looped when shorter than the step.

Request sizes: ``RequestSize(lo, hi)`` draws each request's item count uniformly from ``lo..hi``
(seeded); a trace's own sizes win when it has them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tuner import fmt
from tuner.errors import BadInput, DataError

__all__ = [
    "ARRIVALS",
    "RequestSize",
    "Schedule",
    "Trace",
    "load_trace",
    "make_schedule",
    "parse_request_size",
]

ARRIVALS = ("constant", "poisson")
#: The most requests a trace file may hold (a typo'd multi-GB file must not eat the memory).
MAX_TRACE_LINES = 5_000_000


@dataclass(frozen=True)
class RequestSize:
    """Items per request: uniform over ``lo..hi`` (both >= 1)."""

    lo: int = 1
    hi: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.lo <= self.hi:
            raise BadInput(f"request size {self.lo}-{self.hi}: need 1 <= low <= high")

    @property
    def mean(self) -> float:
        return (self.lo + self.hi) / 2.0

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if self.lo == self.hi:
            return np.full(n, self.lo, dtype=np.int64)
        return rng.integers(self.lo, self.hi + 1, size=n, dtype=np.int64)

    def __str__(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"


def parse_request_size(name: str, text: str) -> RequestSize:
    """``'1'`` or ``'1-8'`` (an argparse ``type=`` through :func:`tuner.options.typed`)."""
    expected = "an integer >= 1 or a range such as 1-8"
    t = text.strip()
    if not t:
        raise BadInput(f"{name} {text!r}: blank (expected {expected})")
    lo_s, sep, hi_s = t.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise BadInput(f"{name} {text!r}: not {expected}") from None
    if lo < 1 or hi < lo:
        raise BadInput(f"{name} {text!r}: out of range (expected {expected})")
    if hi > 100_000:
        raise BadInput(f"{name} {text!r}: at most 100000 items per request")
    return RequestSize(lo, hi)


@dataclass(frozen=True)
class Trace:
    """Arrival offsets (s, from 0, non-decreasing) and optional sizes read from a trace file."""

    path: str
    offsets: np.ndarray
    sizes: np.ndarray | None

    @property
    def rate(self) -> float:
        """Mean requests/s of the trace (requests per gap-span; the last gap is the mean gap)."""
        n = len(self.offsets)
        span = float(self.offsets[-1])
        return (n - 1) / span if span > 0 else math.inf

    def __str__(self) -> str:
        return f"trace {self.path} ({len(self.offsets)} requests, {fmt.rate(self.rate)}/s as recorded)"


def load_trace(path: str | Path) -> Trace:
    """Read a trace: ``TIMESTAMP [SIZE]`` per line; ``#`` comments and blank lines skipped.

    A bad line is one :class:`DataError` naming the file and line: a value that is not a finite
    number, a timestamp earlier than the one before, a size that is not an integer >= 1, or sizes
    on some lines only.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such trace file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the trace ({getattr(e, 'strerror', None) or e})") from None
    times: list[float] = []
    sizes: list[int] = []
    with_size: bool | None = None
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if len(times) >= MAX_TRACE_LINES:
            raise DataError(f"{path}: more than {MAX_TRACE_LINES} requests; cut the trace")
        parts = line.replace(",", " ").split()
        if len(parts) > 2:
            raise DataError(f"{path} line {n}: expected 'TIMESTAMP [SIZE]', got {raw.strip()!r}")
        try:
            t = float(parts[0])
        except ValueError:
            raise DataError(f"{path} line {n}: timestamp {parts[0]!r} is not a number") from None
        if not math.isfinite(t):
            raise DataError(f"{path} line {n}: timestamp {parts[0]!r} is not a finite number")
        if times and t < times[-1]:
            raise DataError(
                f"{path} line {n}: timestamp {t:g} is earlier than the line before ({times[-1]:g})"
            )
        has = len(parts) == 2
        if with_size is None:
            with_size = has
        elif has != with_size:
            raise DataError(f"{path} line {n}: a size on some lines only (give it on every line or none)")
        if has:
            try:
                k = int(parts[1])
            except ValueError:
                raise DataError(f"{path} line {n}: size {parts[1]!r} is not an integer") from None
            if k < 1:
                raise DataError(f"{path} line {n}: size {k} is not >= 1")
            sizes.append(k)
        times.append(t)
    if len(times) < 2:
        raise DataError(f"{path}: a trace needs at least 2 timestamps (got {len(times)})")
    offsets = np.asarray(times, dtype=float)
    offsets -= offsets[0]
    if offsets[-1] <= 0:
        raise DataError(f"{path}: every timestamp is the same; a trace needs time between requests")
    return Trace(str(path), offsets, np.asarray(sizes, dtype=np.int64) if with_size else None)


@dataclass(frozen=True)
class Schedule:
    """Intended send offsets (s from the step's start, non-decreasing, all < ``duration_s``) and sizes."""

    offsets: np.ndarray
    sizes: np.ndarray
    duration_s: float
    kind: str

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def rate(self) -> float:
        """Requests per second this schedule intends (its count over its duration)."""
        return len(self.offsets) / self.duration_s

    @property
    def items(self) -> int:
        return int(self.sizes.sum())


def make_schedule(
    arrivals: str | Trace,
    rate: float,
    duration_s: float,
    *,
    size: RequestSize = RequestSize(),
    seed: int = 0,
) -> Schedule:
    """The schedule of one step: ``rate`` requests/s for ``duration_s`` seconds (see the module docstring)."""
    if not (rate > 0 and math.isfinite(rate)):
        raise BadInput(f"rate must be a finite number > 0 (got {rate})")
    if not (duration_s > 0 and math.isfinite(duration_s)):
        raise BadInput(f"step duration must be a finite number > 0 (got {duration_s})")
    rng = np.random.default_rng(seed)
    sizes: np.ndarray | None = None
    if isinstance(arrivals, Trace):
        offsets, sizes = _scaled_trace(arrivals, rate, duration_s)
        kind = "trace"
    elif arrivals == "constant":
        n = max(1, math.floor(rate * duration_s + 1e-9))
        offsets = np.arange(n, dtype=float) / rate
        kind = "constant"
    elif arrivals == "poisson":
        # Enough gaps to pass the end with overwhelming probability, then cut there.
        expect = rate * duration_s
        n = int(expect + 8 * math.sqrt(expect) + 16)
        offsets = np.cumsum(rng.exponential(1.0 / rate, size=n))
        while offsets[-1] < duration_s:  # astronomically rare; keep the schedule honest anyway
            more = offsets[-1] + np.cumsum(rng.exponential(1.0 / rate, size=n))
            offsets = np.concatenate([offsets, more])
        offsets = offsets[offsets < duration_s]
        if len(offsets) == 0:
            offsets = np.zeros(1)
        kind = "poisson"
    else:
        raise BadInput(f"arrivals {arrivals!r}: choose from {', '.join(ARRIVALS)} or a trace file")
    if sizes is None:
        sizes = size.draw(len(offsets), rng)
    return Schedule(offsets=offsets, sizes=sizes, duration_s=float(duration_s), kind=kind)


def _scaled_trace(trace: Trace, rate: float, duration_s: float) -> tuple[np.ndarray, np.ndarray | None]:
    """The trace's gaps scaled so its mean rate is ``rate``, looped to cover ``duration_s``."""
    scale = trace.rate / rate
    one = trace.offsets * scale
    period = one[-1] + (one[-1] / (len(one) - 1))  # one mean gap between the loops
    loops = max(1, math.ceil(duration_s / period))
    offsets = np.concatenate([one + k * period for k in range(loops)])
    keep = offsets < duration_s
    sizes: Any = None
    if trace.sizes is not None:
        sizes = np.tile(trace.sizes, loops)[keep]
    return offsets[keep], sizes
