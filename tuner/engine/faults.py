"""Seeded, reproducible fault injection, applied inside the worker around the model call.

A fault injected here takes exactly the path a real one takes: an injected crash is a real
``os._exit`` of the worker process, an injected hang really blocks until the supervisor's
timeout kills the worker, an injected memory spike really allocates and touches memory until the
RSS watcher kills the worker. Only the ``thread`` and ``inline`` backends, which cannot lose a
process without losing the caller, turn a crash into :class:`SimulatedCrash`.

Rates are per partition *attempt*: each time a partition runs, each fault kind is drawn once from
a generator seeded by ``(seed, first item, item count, attempt, kind)``, so the same plan on the
same inputs injects the same faults whatever the scheduling, and a retry draws afresh (so does a
hedge copy, under a key of its own).

Compact form (CLI ``--faults``)::

    crash=0.05,hang=0.01,slow=0.05x10,exception=0.1,memory=0.01x512,seed=7
    crash@17          item 17 crashes its worker on every attempt
    exception@5#2     item 5 raises on attempt 2 only

``slow=RATExFACTOR`` makes the partition a straggler taking FACTOR times as long;
``memory=RATExMB`` allocates MB extra (default 512) and holds it up to 2 s.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tuner.errors import FaultSpecError

KINDS = ("crash", "exception", "hang", "slow", "memory")

#: Exit code of an injected crash (like a real ``sys.exit(1)`` from a native error).
CRASH_EXIT_CODE = 1
#: How long an injected memory spike holds its allocation, waiting for the RSS watcher.
MEMORY_HOLD_S = 2.0
#: An injected hang sleeps this long; a timeout must end it first.
HANG_S = 3600.0


class InjectedFault(RuntimeError):
    """The exception an injected ``exception`` fault raises in the model call."""


class SimulatedCrash(BaseException):
    """A crash injected in a thread or inline worker, where a real ``os._exit`` would kill the caller."""


@dataclass(frozen=True)
class TargetedFault:
    """A fault on one item: on every attempt, or only on attempt ``attempt`` (1-based)."""

    item: int
    kind: str
    attempt: int | None = None

    def __str__(self) -> str:
        return f"{self.kind}@{self.item}" + (f"#{self.attempt}" if self.attempt is not None else "")


@dataclass(frozen=True)
class FaultPlan:
    """What to inject and how often. An empty plan injects nothing and costs one attribute check."""

    crash: float = 0.0
    exception: float = 0.0
    hang: float = 0.0
    slow: float = 0.0
    slow_factor: float = 10.0
    memory: float = 0.0
    memory_mb: int = 512
    seed: int = 0
    targeted: tuple[TargetedFault, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for kind in KINDS:
            rate = getattr(self, kind)
            if not 0.0 <= rate <= 1.0:  # also refuses nan
                raise FaultSpecError(f"fault rate {kind}={rate}: must be between 0 and 1")
        if not 1.0 <= self.slow_factor < float("inf"):  # nan and inf refused too
            raise FaultSpecError(f"slow factor x{self.slow_factor}: must be >= 1 and finite")
        if self.memory_mb <= 0:
            raise FaultSpecError(f"memory spike x{self.memory_mb}: must be > 0 MB")
        for t in self.targeted:
            if t.kind not in KINDS:
                raise FaultSpecError(f"targeted fault '{t}': unknown kind (choose from {', '.join(KINDS)})")

    @property
    def active(self) -> bool:
        return bool(self.targeted) or any(getattr(self, k) > 0 for k in KINDS)

    def needs_timeout(self) -> bool:
        """A hang can be injected: only a partition timeout ends it."""
        return self.hang > 0 or any(t.kind == "hang" for t in self.targeted)

    def with_rates(self, **rates: float) -> FaultPlan:
        """A copy with some rates changed (the TUI changes rates between trials)."""
        return replace(self, **rates)  # type: ignore[arg-type]

    # -- the decision, made in the worker --------------------------------------------------------
    def decide(self, first_item: int, n_items: int, attempt: int, copy: int = 0) -> str | None:
        """The fault to inject into this partition attempt, or None. Deterministic.

        ``copy`` 1 is a hedge copy running beside the first (tuner.engine.hedging): it draws under a
        key of its own, as a second machine would be slow or not independently of the first; the
        first copy's draws are the same with or without hedging. A targeted fault is a property of
        its item: every copy gets it.
        """
        for t in self.targeted:
            if first_item <= t.item < first_item + n_items and (t.attempt is None or t.attempt == attempt):
                return t.kind
        suffix = f":copy{copy}" if copy else ""
        for kind in KINDS:
            rate = getattr(self, kind)
            if rate > 0.0:
                draw = random.Random(f"{self.seed}:{first_item}:{n_items}:{attempt}:{kind}{suffix}").random()
                if draw < rate:
                    return kind
        return None

    # -- text form ---------------------------------------------------------------------------------
    def __str__(self) -> str:
        parts: list[str] = []
        for kind in KINDS:
            rate = getattr(self, kind)
            if rate > 0:
                if kind == "slow":
                    parts.append(f"slow={rate:g}x{self.slow_factor:g}")
                elif kind == "memory":
                    parts.append(f"memory={rate:g}x{self.memory_mb}")
                else:
                    parts.append(f"{kind}={rate:g}")
        parts.extend(str(t) for t in self.targeted)
        if parts and self.seed:
            parts.append(f"seed={self.seed}")
        return ",".join(parts) if parts else "none"

    @classmethod
    def parse(cls, text: str) -> FaultPlan:
        """Parse the compact form; a malformed part raises FaultSpecError naming it."""
        text = text.strip()
        if text in ("", "none", "off"):
            return cls()
        kw: dict[str, Any] = {}
        targeted: list[TargetedFault] = []
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                continue
            if "@" in part:
                targeted.append(_parse_targeted(part))
                continue
            if "=" not in part:
                raise FaultSpecError(f"fault plan '{text}': '{part}' is not KIND=RATE or KIND@ITEM")
            key, _, value = part.partition("=")
            key = key.strip()
            value = value.strip()
            if key == "seed":
                kw["seed"] = _num(part, value, int)
            elif key in ("slow", "memory"):
                rate_s, sep, extra = value.partition("x")
                kw[key] = _num(part, rate_s, float)
                if sep:
                    if key == "slow":
                        kw["slow_factor"] = _num(part, extra, float)
                    else:
                        kw["memory_mb"] = _num(part, extra, int)
            elif key in KINDS:
                kw[key] = _num(part, value, float)
            else:
                raise FaultSpecError(
                    f"fault plan '{text}': unknown fault '{key}' in '{part}' (choose from {', '.join(KINDS)}, seed)"
                )
        try:
            return cls(targeted=tuple(targeted), **kw)
        except FaultSpecError as e:
            raise FaultSpecError(f"fault plan '{text}': {e}") from None


def _num(part: str, value: str, typ: type) -> Any:
    try:
        return typ(value)
    except ValueError:
        kind = "an integer" if typ is int else "a number"
        raise FaultSpecError(f"fault '{part}': '{value}' is not {kind}") from None


def _parse_targeted(part: str) -> TargetedFault:
    kind, _, rest = part.partition("@")
    item_s, sep, attempt_s = rest.partition("#")
    kind = kind.strip()
    if kind not in KINDS:
        raise FaultSpecError(f"fault '{part}': unknown kind '{kind}' (choose from {', '.join(KINDS)})")
    item = _num(part, item_s, int)
    attempt = _num(part, attempt_s, int) if sep else None
    if item < 0 or (attempt is not None and attempt < 1):
        raise FaultSpecError(f"fault '{part}': item must be >= 0 and attempt >= 1")
    return TargetedFault(item=item, kind=kind, attempt=attempt)


def run_with_fault(
    kind: str | None,
    plan: FaultPlan,
    call: Callable[[Any], Sequence[Any]],
    partition: Any,
    *,
    in_process: bool,
    announce: Callable[[str], None] | None = None,
) -> Sequence[Any]:
    """Run ``call(partition)`` with the fault ``kind`` injected around it (the worker's only entry).

    ``announce(kind)`` tells the supervisor first, for faults that end — or, for a straggler past
    the timeout, may end — in the worker being killed or dying, so its event log can say the death
    was injected.
    """
    if kind is None:
        return call(partition)
    if announce is not None and kind in ("crash", "hang", "slow", "memory"):
        announce(kind)
    if kind == "crash":
        if in_process:
            os._exit(CRASH_EXIT_CODE)
        raise SimulatedCrash("injected crash")
    if kind == "exception":
        raise InjectedFault("injected exception")
    if kind == "hang":
        time.sleep(HANG_S)
        return call(partition)
    if kind == "slow":
        t0 = time.perf_counter()
        out = call(partition)
        time.sleep((plan.slow_factor - 1.0) * (time.perf_counter() - t0))
        return out
    if kind == "memory":
        import numpy as np

        spike = np.ones(plan.memory_mb * 1024 * 1024 // 8, dtype=np.float64)  # touched: counts in RSS
        time.sleep(MEMORY_HOLD_S)
        del spike
        return call(partition)
    raise AssertionError(kind)
