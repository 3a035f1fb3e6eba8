"""One deployment value: every setting that says how a model runs, declared once.

A :class:`Deployment` is how a model is deployed — backend, workers, threads per worker, partition
size, timeout, retries, backoff, memory limit, batching, backpressure, hedging, autoscaling. Each
setting is declared here exactly once, as a dataclass field whose metadata (:func:`setting`) gives
its meaning, unit, range and default; everything else is derived from that declaration::

    Deployment ──► EngineConfig (tuner.engine: the deployment plus the engine's own knobs)
               ──► the runtime's settings (tuner.runtime: the Deployment itself)
               ──► a trial's configuration (tuner.bench: a Deployment; its swept settings are its key)
               ──► the profile's ``recommended`` / ``platforms`` / ``autoscale`` models (tuner.profile
                   generates them from these declarations) and back, with one pair of functions
               ──► command-line options and the TUI's form (their ranges and words)

Range checks live here alone (:func:`check_value`), with one wording for every door: the runtime's
keywords, the engine's config, a profile (pydantic enforces the same bounds) and the CLI.

Units: seconds everywhere in code. Where a person reads milliseconds (the profile, the CLI, the
runtime's public keywords such as ``max_batch_delay_ms``) the setting says so (``shown_ms``) and its
*public* name ends in ``_ms`` — :meth:`Deployment.of` takes public names, :meth:`Deployment.options`
gives them back.

Bottom layer: imports nothing of tuner's but :mod:`tuner.errors` and :mod:`tuner.backends`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, InitVar, dataclass, field, fields, replace
from typing import Any

from tuner import fmt
from tuner.backends import BACKENDS, PLACEMENTS, backend
from tuner.errors import ConfigError

__all__ = [
    "GROUPS",
    "AutoscaleSettings",
    "Deployment",
    "Group",
    "Setting",
    "check_number",
    "check_value",
    "public_name",
    "setting",
    "settings_of",
]

OVERLOAD_POLICIES = ("block", "timeout", "reject")
HEDGE_CANCEL = ("finish", "kill")
#: an exception type name in ``retry_on``
EXCEPTION_NAME = r"^[A-Za-z_][A-Za-z0-9_.]*$"


@dataclass(frozen=True)
class Setting:
    """How one setting is declared: what it means, its unit and range, where it is recorded."""

    doc: str
    name: str = ""  # the field's name (filled in by settings_of)
    unit: str = ""  # "s", "MB", "items" ...: what a number means
    low: float | None = None
    low_open: bool = False  # low is excluded (> rather than >=)
    high: float | None = None
    low_from: str | None = None  # the low bound is another setting's value (cap_s >= base_s)
    integer: bool = False
    optional: bool = False  # None is allowed; ``none_means`` says what it means
    none_means: str = ""
    #: the word a profile and the CLI write for None (``threads_per_worker: default``); absent: null
    none_word: str | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None  # each string (or each item of a tuple of strings) must match
    swept: bool = False  # a dimension of the sweep: part of a trial's key and label
    #: in the profile's ``recommended``: "required", "optional", or "no" (runtime or engine only)
    profile: str = "optional"
    shown_ms: bool = False  # a person reads it in milliseconds: public name ``<stem>_ms``
    group: str | None = None  # the profile nests it under this key (``backoff.base_s``)
    prefix: str = ""  # put before the name in messages ("autoscale ")

    @property
    def public(self) -> str:
        """The name a person writes: ``max_batch_delay_ms`` for ``max_batch_delay_s``."""
        return public_name(self.name, self.shown_ms)

    @property
    def key(self) -> str:
        """Its key in the profile: the public name, inside its group without the group's prefix."""
        if self.group and self.public.startswith(self.group + "_"):
            return self.public[len(self.group) + 1 :]
        return self.public

    def to_public(self, value: Any) -> Any:
        """A code value as a person reads it (seconds → ms where shown so)."""
        if self.shown_ms and isinstance(value, (int, float)) and not isinstance(value, bool):
            return round(value * 1000.0, 9)
        return value

    def from_public(self, value: Any) -> Any:
        """A value a person wrote (ms where shown so) in code units."""
        if self.shown_ms and isinstance(value, (int, float)) and not isinstance(value, bool):
            return value / 1000.0
        return value

    def words(self) -> str:
        """``an integer >= 1``, ``a finite number > 0 and <= 1``, ``one of block, timeout, reject``."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        kind = "an integer" if self.integer else "a finite number"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.to_public(self.low):g}")
        if self.high is not None:
            bounds.append(f"<= {self.to_public(self.high):g}")
        return f"{kind} {' and '.join(bounds)}".strip()


def setting(default: Any = MISSING, doc: str = "", **declared: Any) -> Any:
    """A dataclass field declared as a setting (see :class:`Setting` for the keywords)."""
    meta = {"setting": Setting(doc=doc, **declared)}
    if isinstance(default, (list, dict, set)):
        raise TypeError("a setting's default must be immutable (use a tuple)")
    return field(default=default, metadata=meta)


def public_name(name: str, shown_ms: bool) -> str:
    """``max_batch_delay_s`` → ``max_batch_delay_ms`` when shown in milliseconds."""
    return re.sub(r"_s$", "_ms", name) if shown_ms else name


_SETTINGS_CACHE: dict[type, tuple[Setting, ...]] = {}


def settings_of(cls: type) -> tuple[Setting, ...]:
    """The declared settings of a dataclass, in field order, each with its name filled in."""
    found = _SETTINGS_CACHE.get(cls)
    if found is None:
        found = tuple(
            replace(f.metadata["setting"], name=f.name) for f in fields(cls) if "setting" in f.metadata
        )
        _SETTINGS_CACHE[cls] = found
    return found


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    integer: bool = False,
    optional: bool = False,
) -> None:
    """Refuse ``value`` unless it is a finite number (an int if ``integer``) in its range.

    Raises :class:`ConfigError` with one line naming the setting and its range, e.g.
    ``max_batch_delay_ms must be a finite number >= 0 (got nan)``. nan and inf never pass: a
    comparison with nan is always False, so a bare ``x < 0`` check would let it through.
    """
    if value is None and optional:
        return
    kind = "an integer" if integer else "a finite number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"<= {high:g}")
    want = f"{name} must be {kind}{' ' + ' and '.join(bounds) if bounds else ''}"
    if optional:
        want += " (or None)"
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and integer and not isinstance(value, int):
        ok = False
    if ok:
        x = float(value)  # type: ignore[arg-type]
        ok = math.isfinite(x)
        if ok and low is not None:
            ok = x > low if low_open else x >= low
        if ok and high is not None:
            ok = x <= high
    if not ok:
        raise ConfigError(f"{want} (got {value!r})")


def check_value(s: Setting, value: Any, *, public: bool = False, low: float | None = None) -> None:
    """Check one value against its declaration (``public``: written by a person, in public units).

    ``low``: the value of the setting ``s.low_from`` names, when it has one.
    """
    name = s.prefix + (s.public if public else s.name)
    if s.choices:
        if value not in s.choices:
            raise ConfigError(f"{name} {value!r}: choose from {', '.join(s.choices)}")
        return
    if s.pattern is not None:
        values = value if isinstance(value, tuple) else (value,)
        for v in values:
            if not isinstance(v, str) or not re.match(s.pattern, v):
                raise ConfigError(f"{name}: {v!r} is not an exception type name such as 'ValueError'")
        return
    if s.integer or s.low is not None or s.high is not None or s.low_from is not None:
        shown = s.to_public if public else (lambda v: v)
        bound = low if s.low_from is not None else s.low
        check_number(
            name,
            value,
            low=None if bound is None else shown(bound),
            high=None if s.high is None else shown(s.high),
            low_open=s.low_open,
            integer=s.integer,
            optional=s.optional,
        )


def _check_all(obj: Any) -> None:
    for s in settings_of(type(obj)):
        value = getattr(obj, s.name)
        low = getattr(obj, s.low_from) if s.low_from is not None else None
        check_value(s, value, low=low)


@dataclass(frozen=True)
class Group:
    """Settings the profile nests under one key (``backoff:``, ``hedge:``)."""

    doc: str  # the group's own description
    summary: str  # what the key means where it appears
    #: the group is absent (null) when this setting is None — ``hedge: null`` means no hedging
    present_when: str | None = None


GROUPS: dict[str, Group] = {
    "backoff": Group(
        "Retry delay: full jitter, uniform in [0, min(cap_s, base_s * 2**attempt)].",
        "Delay between retries (full jitter).",
    ),
    "hedge": Group(
        "Hedged stragglers: a partition still running after ``after_ms`` is sent again to an idle "
        "worker; the first result wins, the other copy's is dropped (Dean & Barroso, The Tail at "
        "Scale).",
        "Hedged stragglers: re-send a partition still running past the delay to an idle worker, first "
        "result wins; absent or null = no hedging.",
        present_when="hedge_after_s",
    ),
}


# ----------------------------------------------------------------------------------------- autoscale


@dataclass(frozen=True)
class AutoscaleSettings:
    """Bounds and pace of the runtime's autoscaler (the profile's ``autoscale:`` section)."""

    min_workers: int = setting(doc="Never fewer workers than this.", low=1, integer=True, prefix="autoscale ")
    max_workers: int = setting(
        doc="Never more workers than this (>= min_workers).",
        low_from="min_workers",
        integer=True,
        prefix="autoscale ",
    )
    target_backlog_per_worker: float = setting(
        4.0,
        "Queued partitions per worker above which the autoscaler adds a worker.",
        low=0,
        low_open=True,
        prefix="autoscale ",
    )
    target_p99_s: float | None = setting(
        None,
        "Also scale up when the recent p99 latency exceeds this.",
        unit="s",
        shown_ms=True,
        low=0,
        low_open=True,
        optional=True,
        prefix="autoscale ",
    )
    upscale_delay_s: float = setting(
        0.0,
        "How long the need must persist before adding workers, seconds.",
        unit="s",
        low=0,
        prefix="autoscale ",
    )
    downscale_delay_s: float = setting(
        300.0,
        "How long the need must persist before removing workers, seconds "
        "(300 = the Kubernetes HPA default stabilisation window).",
        unit="s",
        low=0,
        prefix="autoscale ",
    )
    interval_s: float = setting(
        1.0, "How often the autoscaler looks, seconds.", unit="s", low=0, low_open=True, prefix="autoscale "
    )
    #: the same target in milliseconds, as a person writes it (kept for callers that always did)
    target_p99_ms: InitVar[float | None] = None

    def __post_init__(self, target_p99_ms: float | None) -> None:
        if target_p99_ms is not None:
            s = next(s for s in settings_of(AutoscaleSettings) if s.name == "target_p99_s")
            check_value(s, target_p99_ms, public=True)
            object.__setattr__(self, "target_p99_s", s.from_public(target_p99_ms))
        _check_all(self)


# ----------------------------------------------------------------------------------------- deployment


@dataclass(frozen=True)
class Deployment:
    """How a model runs: the one value the benchmark measures, the profile records and the runtime applies.

    Build it with keywords in code units, or with :meth:`of` from public names (``max_batch_delay_ms``).
    Every value is checked at construction: finite, in range, one of its choices.
    """

    backend: str = setting(
        "process",
        "How workers run: 'process' (one process each), 'thread' (threads in the caller's process), "
        "'inline' (in the caller, no pool), 'ray' (one Ray actor each, on the cluster in `cluster`).",
        choices=BACKENDS,
        swept=True,
        profile="required",
    )
    workers: int = setting(
        1,
        "Number of workers, each with the model loaded once.",
        low=1,
        integer=True,
        swept=True,
        profile="required",
    )
    threads_per_worker: int | None = setting(
        1,
        "BLAS / intra-op threads each worker may use; 'default': the framework's own thread pool, as "
        "it sizes it.",
        low=1,
        integer=True,
        optional=True,
        none_means="the framework's own default",
        none_word="default",
        swept=True,
        profile="required",
    )
    partition_size: int = setting(
        64, "Items sent to a worker at once (the unit of dispatch).", unit="items", low=1, integer=True,
        swept=True, profile="required",
    )  # fmt: skip
    knobs: tuple[tuple[str, Any], ...] = setting(
        (),
        "A model file adapter's own knobs besides threads, e.g. {execution_mode: sequential, spinning: "
        "false} for ONNX Runtime; absent = the adapter's defaults.",
        swept=True,
    )
    placement: str = setting(
        "SPREAD",
        "ray backend: 'SPREAD' (actors across nodes) or 'PACK' (fill a node's CPUs first); absent = SPREAD.",
        choices=PLACEMENTS,
        swept=True,
    )
    timeout_s: float | None = setting(
        None,
        "Seconds one partition may run before its worker is replaced and the partition retried; "
        "absent or null = no timeout.",
        unit="s",
        low=0,
        low_open=True,
        optional=True,
        none_means="no timeout",
    )
    retries: int = setting(
        2, "Extra attempts for a failed partition before its items fail for good.", low=0, integer=True
    )
    retry_on: tuple[str, ...] = setting(
        (),
        "Exception type names (e.g. 'ConnectionError') whose failures are retried; worker crashes, "
        "timeouts and memory-limit kills are always retried.",
        pattern=EXCEPTION_NAME,
    )
    backoff_base_s: float = setting(
        0.05, "Delay scale of the first retry, seconds (0: retry at once).", unit="s", low=0, group="backoff"
    )
    backoff_cap_s: float = setting(
        2.0, "Longest delay between retries, seconds (>= base_s).", unit="s", low_from="backoff_base_s",
        group="backoff",
    )  # fmt: skip
    memory_limit_mb: float | None = setting(
        None,
        "RSS above which a worker is replaced; absent or null = no limit.",
        unit="MB",
        low=0,
        low_open=True,
        optional=True,
        none_means="no limit",
    )
    max_batch_delay_s: float = setting(
        0.005,
        "How long the runtime waits to fill a partition when items arrive one by one.",
        unit="s",
        low=0,
        shown_ms=True,
    )
    max_batch_size: int | None = setting(
        None,
        "Most items the dynamic batcher of submit() puts in one partition; None: partition_size (a "
        "profile's online: section sets it).",
        unit="items",
        low=1,
        integer=True,
        optional=True,
        profile="no",
    )
    max_pending: int | None = setting(
        None,
        "Items in flight (submitted, not yet resolved) the runtime accepts before its overload policy "
        "applies; derived from measured throughput × the latency objective. Absent or null = the "
        "runtime's default bound.",
        unit="items",
        low=1,
        integer=True,
        optional=True,
    )
    overload: str = setting(
        "block",
        "What submit() does at max_pending: 'block' until there is room, 'timeout' (block, then raise "
        "Overloaded), or 'reject' at once with Overloaded (a service's 503).",
        choices=OVERLOAD_POLICIES,
    )
    overload_timeout_s: float = setting(
        1.0,
        "How long 'timeout' waits for room before Overloaded.",
        unit="s",
        low=0,
        low_open=True,
        profile="no",
    )
    hedge_after_s: float | None = setting(
        None,
        "Send a second copy of a partition still running after this long to an idle worker; tuner bench "
        "sets it to the p95 service time it measured.",
        unit="s",
        low=0,
        low_open=True,
        optional=True,
        none_means="no hedging",
        shown_ms=True,
        group="hedge",
    )
    hedge_budget: float = setting(
        0.05,
        "Most duplicate work, as a share of partitions completed (a token bucket: each unhedged "
        "partition earns this much of a hedge).",
        low=0,
        low_open=True,
        high=1,
        group="hedge",
    )
    hedge_cancel: str = setting(
        "finish",
        "The losing copy of a hedged partition: 'finish' (it runs out, its result is dropped) or 'kill' "
        "(a losing first copy's worker is ended and replaced).",
        choices=HEDGE_CANCEL,
        profile="no",
    )
    #: the autoscaler's bounds and pace (the profile's own ``autoscale:`` section); None: a fixed pool
    autoscale: AutoscaleSettings | None = field(default=None)

    def __post_init__(self) -> None:
        _check_all(self)
        a = self.autoscale
        if a is not None and not isinstance(a, AutoscaleSettings):
            raise ConfigError(f"autoscale must be an AutoscaleSettings or None (got {type(a).__name__})")
        if a is not None and not a.min_workers <= self.workers <= a.max_workers:
            raise ConfigError(
                f"workers ({self.workers}) outside autoscale bounds {a.min_workers}–{a.max_workers}"
            )

    # -- public names -------------------------------------------------------------------------------
    @classmethod
    def of(cls, base: Deployment | None = None, **options: Any) -> Deployment:
        """A deployment from public names and units (``max_batch_delay_ms=2``; code names work too),
        over ``base`` (default: the defaults). Each value is checked under the name it was given."""
        by_name: dict[str, Setting] = {}
        for decl in settings_of(cls):
            by_name[decl.name] = decl
            by_name[decl.public] = decl
        changes: dict[str, Any] = {}
        for given, value in options.items():
            if given == "autoscale":
                changes["autoscale"] = value
                continue
            s = by_name.get(given)
            if s is None:
                known = sorted({*(x.public for x in settings_of(cls)), "autoscale"})
                raise ConfigError(f"unknown runtime setting(s): {given} (choose from {', '.join(known)})")
            if s.name in changes:
                raise ConfigError(f"{given}: given twice (as {s.name} and {s.public})")
            public = given == s.public and s.public != s.name
            if isinstance(value, list):
                value = tuple(value)
            if public:
                check_value(s, value, public=True)
                value = s.from_public(value)
            changes[s.name] = value
        return replace(base, **changes) if base is not None else cls(**changes)

    def options(self, *, changed_only: bool = False) -> dict[str, Any]:
        """The settings under their public names, in public units (``changed_only``: those that
        differ from the defaults)."""
        out: dict[str, Any] = {}
        for f, s in zip(_setting_fields(type(self)), settings_of(type(self)), strict=True):
            value = getattr(self, s.name)
            if changed_only and value == f.default:
                continue
            out[s.public] = s.to_public(value)
        return out

    def public(self, names: tuple[str, ...]) -> dict[str, Any]:
        """The named settings (code names) under their public names, in public units."""
        by_name = {s.name: s for s in settings_of(type(self))}
        return {by_name[n].public: by_name[n].to_public(getattr(self, n)) for n in names}

    # -- as a trial's configuration --------------------------------------------------------------
    @property
    def kind(self) -> Any:
        """The backend's descriptor (:mod:`tuner.backends`): what it can and cannot do."""
        return backend(self.backend)

    def threads_or(self, cores: int) -> int:
        """Threads per worker, the framework's own default counted as the ``cores`` it sizes itself to."""
        return self.threads_per_worker if self.threads_per_worker is not None else cores

    def threads_text(self) -> str:
        """``1 thread``, ``2 threads``, ``default threads``."""
        t = self.threads_per_worker
        return "default threads" if t is None else f"{t} thread{'s' if t != 1 else ''}"

    def label(self) -> str:
        """``process ×2 · 1 thread · partition 64`` (`` · execution_mode parallel`` for adapter knobs,
        `` · SPREAD`` where placement means something)."""
        text = f"{self.backend} ×{self.workers} · {self.threads_text()} · partition {self.partition_size}"
        for name, value in self.knobs:
            shown = ("on" if value else "off") if isinstance(value, bool) else str(value)
            text += f" · {name} {shown}"
        return f"{text} · {self.placement}" if self.kind.has_placement else text

    def key(self) -> str:
        """The swept settings as a stable key (a resumed sweep skips what it has measured)."""
        t = "default" if self.threads_per_worker is None else self.threads_per_worker
        base = f"{self.backend}/w{self.workers}/t{t}/p{self.partition_size}"
        if self.knobs:
            base += "/" + ",".join(f"{k}={v}" for k, v in self.knobs)
        return f"{base}/{self.placement}" if self.kind.has_placement else base

    def swept(self) -> dict[str, Any]:
        """The swept settings as JSON-able data (knobs and placement only where they mean something)."""
        out: dict[str, Any] = {
            "backend": self.backend,
            "workers": self.workers,
            "threads_per_worker": self.threads_per_worker,
            "partition_size": self.partition_size,
        }
        if self.knobs:
            out["knobs"] = [list(kv) for kv in self.knobs]
        if self.kind.has_placement:
            out["placement"] = self.placement
        return out

    @classmethod
    def from_swept(cls, data: Mapping[str, Any]) -> Deployment:
        """The inverse of :meth:`swept` (a trial's ``config`` in a results line)."""
        d = dict(data)
        d["knobs"] = tuple((str(k), v) for k, v in d.get("knobs") or ())
        return cls(**d)

    def describe(self) -> str:
        """One line: ``process ×2 · 1 thread · partition 64 · timeout 0.25 s · autoscale 1–2``."""
        parts = [
            f"{self.backend} ×{self.workers}",
            self.threads_text(),
            f"partition {self.partition_size}",
            f"timeout {self.timeout_s:g} s" if self.timeout_s is not None else "no timeout",
        ]
        if self.autoscale is not None:
            parts.append(f"autoscale {self.autoscale.min_workers}–{self.autoscale.max_workers}")
        if self.max_pending is not None:
            parts.append(f"max pending {self.max_pending} ({self.overload})")
        if self.max_batch_size is not None:
            parts.append(f"batches ≤{self.max_batch_size} within {self.max_batch_delay_s * 1000:g} ms")
        if self.hedge_after_s is not None:
            parts.append(f"hedge after {fmt.sig(self.hedge_after_s * 1000)} ms (≤{self.hedge_budget:.0%} after a first burst)")
        return " · ".join(parts)

    # -- what the runtime derives ----------------------------------------------------------------
    @property
    def ceiling(self) -> int:
        """The most workers this deployment may run (the autoscaler's max, else ``workers``)."""
        return self.autoscale.max_workers if self.autoscale is not None else self.workers

    @property
    def batch_size(self) -> int:
        """The most items the dynamic batcher puts in one partition (``max_batch_size`` or ``partition_size``)."""
        return self.max_batch_size if self.max_batch_size is not None else self.partition_size


def _setting_fields(cls: type) -> Iterator[Any]:
    return (f for f in fields(cls) if "setting" in f.metadata)
