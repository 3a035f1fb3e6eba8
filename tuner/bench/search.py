"""The sweep space and the search strategies that walk it.

Every strategy has the shape of :class:`tuner.bench.types.Strategy` (Triton Model Analyzer's config
generator): ``next()`` gives the next configuration or None, ``report(result)`` feeds the
measurement back. The session that runs them never knows which one it drives.

* ``grid`` — every feasible configuration of the space, in order.
* ``adaptive`` (default) — a coordinate hill-climb from a hardware-derived guess (process backend,
  one worker per usable core, 1 thread each, partitions at the knee: where the engine's
  per-partition overhead falls under 5% of the model's time, from the model's per-item time). One dimension at a time, it steps
  partition size (×2, ÷2), workers (next up/down), threads, a workers↔threads trade at constant
  cores (the move a BLAS model needs), and the backend, and keeps going in a direction while that
  improves the objective by more than the noise, taking one step more through a level stretch
  (a neighbour within the noise of the best) before giving up on a direction. It stops when a full pass over the dimensions
  finds no neighbour better than the best by more than the noise, or at its trial budget.
  Pruning: a direction that got worse is not followed further; a backend that failed (its
  trial could not run) or lost to the best by more than half at equal settings is not tried again.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Generator, Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from tuner.backends import BACKENDS, PLACEMENTS, backend
from tuner.bench.types import Objective, Strategy, TrialConfig, TrialResult
from tuner.errors import ConfigError

if TYPE_CHECKING:
    from tuner.hardware import Host
    from tuner.models import ModelInfo

__all__ = [
    "STRATEGIES",
    "AdaptiveStrategy",
    "GridStrategy",
    "Space",
    "make_strategy",
    "score",
    "with_dimensions",
]

STRATEGIES = ("adaptive", "grid")
#: Smallest and largest default partition size (powers of two between them).
MIN_PARTITION = 16
MAX_PARTITION = 1024
#: A neighbour must beat the best by more than this share (or the best's CI, if wider) to move.
MIN_NOISE = 0.03
#: Steps a climb takes through a plateau (a neighbour level with the best within the noise).
PLATEAU_STEPS = 1
#: The hardware guess's partition size.
START_PARTITION = 64
#: latency-bound (io) models may run this many workers per usable core.
IO_WORKERS_PER_CORE = 4


def local_pools() -> tuple[str, ...]:
    """The backends a default sweep tries: those that run a pool on this machine (process, thread)."""
    return tuple(n for n in BACKENDS if backend(n).pooled and not backend(n).needs_cluster)


#: what a partition costs the engine besides the model call (dispatch, transport, the result's
#: return), seconds. tests/benchmarks/engine_overhead.py measured ~20 µs a tiny task and ~0.7 ms
#: a 1 MiB one on the 2-core dev host; 0.1 ms stands for a partition of a few hundred KB
PARTITION_OVERHEAD_S = 1e-4
#: the share of a partition's time the overhead may take at the knee
KNEE_OVERHEAD_SHARE = 0.05
#: ... and a partition at the knee lasts at most this long (a window must hold several)
KNEE_MAX_PARTITION_S = 0.25


def knee_partition(per_item_s: float | None) -> int | None:
    """The partition size where the engine's per-partition overhead falls under
    KNEE_OVERHEAD_SHARE of the model's time (items cost ``per_item_s`` each, timed when the model
    was validated) without a partition lasting more than KNEE_MAX_PARTITION_S: past it, bigger
    partitions buy little throughput and cost latency. The adaptive search starts there, so the
    sizes that matter are measured first. None when the model was not timed."""
    if not per_item_s or per_item_s <= 0 or not math.isfinite(per_item_s):
        return None
    want = PARTITION_OVERHEAD_S * (1 - KNEE_OVERHEAD_SHARE) / (KNEE_OVERHEAD_SHARE * per_item_s)
    most = KNEE_MAX_PARTITION_S / per_item_s
    return max(1, int(min(want, most)))


def _powers_of_two(lo: int, hi: int) -> list[int]:
    out = []
    v = 1
    while v <= hi:
        if v >= lo:
            out.append(v)
        v *= 2
    return out


def _counts_up_to(n: int) -> tuple[int, ...]:
    """1, 2, 4, ... up to n, and n itself (6 usable cores → 1, 2, 4, 6)."""
    return tuple(sorted({*_powers_of_two(1, n), n}))


@dataclass(frozen=True)
class Space:
    """The configurations a sweep may measure: the product of the dimensions, minus the infeasible."""

    backends: tuple[str, ...]
    workers: tuple[int, ...]
    threads: tuple[int | None, ...]  # None: the framework's own pool (the default deployment)
    partition_sizes: tuple[int, ...]
    oversubscribe: bool = False
    #: workers × threads may not exceed this (usable cores; more for io-bound models) unless
    #: ``oversubscribe``; None = no limit.
    max_parallel: int | None = None
    #: a format adapter's own dimensions, e.g. (("execution_mode", ("sequential", "parallel")),):
    #: each is one more dimension of the product, its first value the adapter's default
    knobs: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    #: ray backend: where actors go (SPREAD, PACK); the other backends take the deployment's default
    #: (no meaning for them)
    placements: tuple[str, ...] = (TrialConfig.placement,)
    #: where the adaptive search starts its partition size (:func:`knee_partition`); None: START_PARTITION
    start_partition: int | None = None

    def __post_init__(self) -> None:
        for name in ("backends", "workers", "threads", "partition_sizes"):
            if not getattr(self, name):
                raise ConfigError(f"sweep space: no {name.replace('_', ' ')} to try")
        for name in ("workers", "threads", "partition_sizes"):
            bad = [v for v in getattr(self, name) if v is not None and v < 1]  # None: the framework's threads
            if bad:
                raise ConfigError(f"sweep space: {name.replace('_', ' ')} must be >= 1 (got {bad[0]})")
        for b in self.backends:
            backend(b)  # an unknown one is one line naming the choices

    @classmethod
    def default(cls, host: Host, info: ModelInfo, n_items: int) -> Space:
        """The space a person would sweep on this host for this model.

        Workers 1..usable cores (up to 4× for an io-bound model, whose workers mostly wait); BLAS
        threads per worker only for models that use BLAS (or whose kind is unknown), such that
        workers × threads <= usable cores; partition sizes powers of two from 16 up to 1024, and
        at most the data split across twice the largest worker count (so every worker gets work).
        """
        cores = max(1, host.usable_cores)
        bound = getattr(info, "bound", "unknown")
        if bound == "io":
            workers = _counts_up_to(cores * IO_WORKERS_PER_CORE)
            threads: tuple[int, ...] = (1,)
            limit = cores * IO_WORKERS_PER_CORE
        elif bound == "gil":
            workers = _counts_up_to(cores)
            threads = (1,)  # BLAS threads do nothing for pure-Python work
            limit = cores
        else:
            workers = _counts_up_to(cores)
            threads = _counts_up_to(cores)
            limit = cores
        hi = min(MAX_PARTITION, max(1, n_items // (2 * max(workers))))
        sizes = _powers_of_two(MIN_PARTITION, hi) or [max(1, 2 ** int(math.log2(max(1, hi))))]
        return cls(
            backends=local_pools(),
            workers=workers,
            threads=threads,
            partition_sizes=tuple(sizes),
            max_parallel=limit,
            start_partition=knee_partition(getattr(info, "per_item_s", None)),
        )

    def feasible(self, c: TrialConfig) -> bool:
        """Whether ``c`` may be measured: in the space, not oversubscribed, one worker for a backend
        without a pool, placement only where it means something."""
        kind = c.kind
        if not kind.pooled and c.workers != 1:
            return False
        if (c.placement not in self.placements) if kind.has_placement else (c.placement != PLACEMENTS[0]):
            return False
        if self.oversubscribe or self.max_parallel is None:
            return True
        return c.workers * (c.threads_per_worker or self.max_parallel) <= self.max_parallel

    def knob_settings(self) -> list[tuple[tuple[str, Any], ...]]:
        """Every combination of the adapter dimensions' values (one empty one without any)."""
        return [tuple(combo) for combo in itertools.product(*[[(n, v) for v in vs] for n, vs in self.knobs])]

    def configs(self) -> list[TrialConfig]:
        """Every feasible configuration (workers × threads <= usable cores unless oversubscribe)."""
        out = []
        settings = self.knob_settings()
        for b in self.backends:
            for w in self.workers:
                for t in self.threads:
                    for p in self.partition_sizes:
                        for k in settings:
                            for place in self.placements if backend(b).has_placement else PLACEMENTS[:1]:
                                c = TrialConfig(b, w, t, p, k, place)
                                if self.feasible(c):
                                    out.append(c)
        return out

    def describe(self) -> str:
        """``process, thread × workers 1,2 × threads 1,2 × partitions 16..1024 (17 configs)``."""
        sizes = self.partition_sizes
        ps = f"{sizes[0]}..{sizes[-1]}" if len(sizes) > 3 else ",".join(map(str, sizes))
        knobs = "".join(f" × {n} {','.join(_shown(v) for v in vs)}" for n, vs in self.knobs)
        return (
            f"{', '.join(self.backends)} × workers {','.join(map(str, self.workers))} × threads "
            f"{','.join('default' if t is None else str(t) for t in self.threads)} × partitions {ps}{knobs} ({len(self.configs())} configs)"
        )

    def untried(self, results: Iterable[TrialResult]) -> list[str]:
        """The values of each dimension that no trial of ``results`` measured (in the space's
        terms: ``backend thread``, ``threads 2``, ``partitions 512, 1024``) — what a search the
        budget ended never reached."""
        configs = [r.config for r in results if not r.role]
        dims: list[tuple[str, tuple[Any, ...], Any]] = [
            ("backend", self.backends, lambda c: c.backend),
            ("workers", self.workers, lambda c: c.workers),
            ("threads", self.threads, lambda c: c.threads_per_worker),
            ("partitions", self.partition_sizes, lambda c: c.partition_size),
            *((name, values, lambda c, n=name: dict(c.knobs).get(n)) for name, values in self.knobs),
        ]
        out = []
        for name, values, of in dims:
            seen = {of(c) for c in configs}
            left = [v for v in values if v not in seen]
            if left and len(values) > 1:
                out.append(f"{name} {', '.join('default' if v is None else _shown(v) for v in left)}")
        return out


def _shown(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def with_dimensions(space: Space, info: Any, names: Iterable[str]) -> Space:
    """``space`` with a model file adapter's dimensions (``--dims execution_mode,spinning``); a name
    the model's adapter does not declare is one line naming those it does."""
    offered: dict[str, tuple[Any, ...]] = dict(getattr(info, "dimensions", None) or {})
    wanted = [n.strip() for n in names if n.strip()]
    unknown = [n for n in wanted if n not in offered]
    if unknown:
        have = ", ".join(offered) if offered else "none (only model files' adapters declare dimensions)"
        raise ConfigError(
            f"--dims {','.join(wanted)}: {unknown[0]!r} is not a dimension of this model; it has {have}"
        )
    return replace(space, knobs=tuple((n, tuple(offered[n])) for n in dict.fromkeys(wanted)))


def score(result: TrialResult, objective: Objective) -> float:
    """Higher is better: throughput, or minus p99 for the p99 goal; -inf for a trial without figures."""
    if result.error or result.throughput <= 0:
        return -math.inf
    if objective.goal == "p99":
        p99 = result.latency_ms.get("p99")
        return -p99 if p99 is not None and math.isfinite(p99) else -math.inf
    return result.throughput


def _noise(result: TrialResult) -> float:
    """Relative noise of a result: its throughput CI half-width, at least MIN_NOISE."""
    lo, hi = result.throughput_ci
    if result.throughput > 0 and math.isfinite(lo) and math.isfinite(hi):
        return max(MIN_NOISE, (hi - lo) / 2 / result.throughput)
    return MIN_NOISE


def beats(a: TrialResult, b: TrialResult, objective: Objective) -> bool:
    """``a`` is better than ``b`` by more than the noise (feasible always beats infeasible)."""
    if a.feasible != b.feasible:
        return a.feasible
    sa, sb = score(a, objective), score(b, objective)
    if sa == -math.inf:
        return False
    if sb == -math.inf:
        return True
    margin = max(_noise(a), _noise(b)) * abs(sb)
    return sa > sb + margin


class GridStrategy:
    """Every feasible configuration once, in the space's order."""

    name = "grid"

    def __init__(self, space: Space, max_trials: int | None = None, skip: Iterable[str] = ()) -> None:
        skipped = set(skip)
        self._todo = [c for c in space.configs() if c.key() not in skipped]
        if max_trials is not None:
            self._todo = self._todo[:max_trials]
        self._i = 0

    @property
    def planned(self) -> int:
        return len(self._todo)

    def next(self) -> TrialConfig | None:
        if self._i >= len(self._todo):
            return None
        c = self._todo[self._i]
        self._i += 1
        return c

    def report(self, result: TrialResult) -> None:
        pass


Climb = Generator[TrialConfig, TrialResult, None]


@dataclass
class AdaptiveStrategy:
    """Coordinate hill-climb from a hardware guess (see the module docstring)."""

    space: Space
    objective: Objective
    start: TrialConfig
    max_trials: int | None = None
    known: dict[str, TrialResult] = field(default_factory=dict)  # results already measured (resume)
    name: str = "adaptive"

    def __post_init__(self) -> None:
        self.results: dict[str, TrialResult] = dict(self.known)
        self.best: TrialResult | None = None
        for r in self.results.values():
            if self.best is None or beats(r, self.best, self.objective):
                self.best = r
        self.dead_backends: set[str] = set()
        self._asked = 0
        self._gen: Climb = self._climb()
        self._pending: TrialConfig | None = None
        self._done = False

    @property
    def planned(self) -> int:
        """An estimate: trials so far plus the neighbours still open around the best."""
        if self._done:
            return self._asked
        open_ = 0
        if self.best is not None:
            open_ = sum(
                1
                for c in self._neighbours(self.best.config)
                if c.key() not in self.results and self.space.feasible(c)
            )
        est = max(self._asked + 1, self._asked + open_)
        return min(est, self.max_trials) if self.max_trials is not None else est

    def next(self) -> TrialConfig | None:
        if self._done or (self.max_trials is not None and self._asked >= self.max_trials):
            self._done = True
            return None
        try:
            c = next(self._gen) if self._pending is None else self._pending
        except StopIteration:
            self._done = True
            return None
        self._pending = c
        self._asked += 1
        return c

    def report(self, result: TrialResult) -> None:
        self._pending = None
        self.results[result.config.key()] = result
        if result.error:
            self.dead_backends.add(result.config.backend)
        if self.best is None or beats(result, self.best, self.objective):
            self.best = result
        # Hand the result to the climb, which decides the next configuration.
        try:
            self._pending = self._gen.send(result)
        except StopIteration:
            self._done = True

    # -- the climb -------------------------------------------------------------------------------
    def _dims(self) -> list[tuple[str, list[Any]]]:
        return [
            ("partition_size", sorted(self.space.partition_sizes)),
            ("workers", sorted(self.space.workers)),
            ("threads_per_worker", sorted(self.space.threads)),
            ("trade", []),
            # an adapter's dimensions, each stepped through its values like any other
            *[(f"knob:{name}", list(values)) for name, values in self.space.knobs],
            ("backend", list(self.space.backends)),
            *([("placement", list(self.space.placements))] if len(self.space.placements) > 1 else []),
        ]

    def _step(self, c: TrialConfig, dim: str, values: list[Any], direction: int) -> TrialConfig | None:
        if dim == "trade":
            # Keep the cores in use, move them between workers and threads.
            ws, ts = sorted(self.space.workers), sorted(t for t in self.space.threads if t is not None)
            if c.threads_per_worker is None:  # the framework's own pool: no count to trade
                return None
            if direction > 0:  # fewer workers, more threads
                w = next((x for x in reversed(ws) if x < c.workers), None)
                t = next((x for x in ts if x > c.threads_per_worker), None)
            else:
                w = next((x for x in ws if x > c.workers), None)
                t = next((x for x in reversed(ts) if x < c.threads_per_worker), None)
            if w is None or t is None:
                return None
            return replace(c, workers=w, threads_per_worker=t)
        if dim.startswith("knob:"):
            name = dim[len("knob:") :]
            settings = dict(c.knobs)
            if settings.get(name) not in values:
                return None
            i = values.index(settings[name]) + direction
            if not 0 <= i < len(values):
                return None
            settings[name] = values[i]
            return replace(c, knobs=tuple((n, settings[n]) for n, _ in self.space.knobs))
        current = getattr(c, dim)
        if current not in values:
            return None
        i = values.index(current) + direction
        if not 0 <= i < len(values):
            return None
        return replace(c, **{dim: values[i]})

    def _neighbours(self, c: TrialConfig) -> list[TrialConfig]:
        out: list[TrialConfig] = []
        for dim, values in self._dims():
            if dim == "backend":
                out.extend(replace(c, backend=b) for b in values if b != c.backend)
                continue
            for d in (1, -1):
                n = self._step(c, dim, values, d)
                if n is not None:
                    out.append(n)
        return out

    def _ok(self, c: TrialConfig) -> bool:
        return c.key() not in self.results and self.space.feasible(c) and c.backend not in self.dead_backends

    def _climb(self) -> Climb:
        start = self.start
        if self.best is None or start.key() not in self.results:
            if self._ok(start):
                yield start
        if self.best is None:
            return
        improved = True
        while improved:
            improved = False
            for dim, values in self._dims():
                if dim == "backend":
                    base = self.best
                    for b in values:
                        other = replace(base.config, backend=b)
                        if not self._ok(other):
                            continue
                        r = yield other
                        if r.error or _far_behind(r, base, self.objective):
                            # Far behind at equal settings: this backend cannot win here.
                            self.dead_backends.add(b)
                        if self.best is not base:
                            improved = True
                    continue
                for direction in (1, -1):
                    moved = False
                    probe = self.best.config
                    flat = 0
                    while True:
                        cand = self._step(probe, dim, values, direction)
                        if (
                            cand is None
                            or not self.space.feasible(cand)
                            or cand.backend in self.dead_backends
                        ):
                            break
                        before = self.best
                        known = self.results.get(cand.key())
                        r = known if known is not None else (yield cand)
                        if self.best is not before:
                            moved = improved = True
                            probe, flat = self.best.config, 0
                            continue
                        if known is None and flat < PLATEAU_STEPS and not beats(before, r, self.objective):
                            # Level within the noise: one more step, in case the gain is just
                            # beyond it (per-partition overhead fades slowly with partition size).
                            probe, flat = cand, flat + 1
                            continue
                        break  # worse, or flat for too long: stop this way
                    if moved:
                        break  # went up: no need to look down from a point we came from


def _far_behind(a: TrialResult, b: TrialResult, objective: Objective) -> bool:
    """``a`` is less than half as good as ``b`` (half the throughput, or twice the p99)."""
    sa, sb = score(a, objective), score(b, objective)
    if sa == -math.inf:
        return True
    if sb == -math.inf:
        return False
    return sa < 0.5 * sb if objective.goal != "p99" else sa < 2.0 * sb


def hardware_guess(space: Space, host: Host | None) -> TrialConfig:
    """process × usable cores × 1 thread × the knee's partition size (:func:`knee_partition`; 64
    when the model was not timed), snapped into the space."""
    cores = host.usable_cores if host is not None else max(space.workers)
    default = TrialConfig().backend
    chosen = default if default in space.backends else space.backends[0]
    ws = sorted(space.workers)
    workers = max((w for w in ws if w <= cores), default=ws[0])
    threads = min((t for t in space.threads if t is not None), default=None)  # None: only the framework's
    sizes = sorted(space.partition_sizes)
    start = space.start_partition or START_PARTITION
    size = min(sizes, key=lambda p: (abs(math.log2(p) - math.log2(start)), p))
    c = TrialConfig(chosen, workers, threads, size, tuple((n, vs[0]) for n, vs in space.knobs))
    if not space.feasible(c):
        feasible = space.configs()
        if feasible:
            c = feasible[0]
    return c


def make_strategy(
    name: str,
    space: Space,
    host: Host | None,
    objective: Objective,
    *,
    max_trials: int | None = None,
    known: dict[str, TrialResult] | None = None,
) -> Strategy:
    """``grid`` or ``adaptive``; ``known`` results (a resumed sweep) are not measured again."""
    if not space.configs():
        raise ConfigError("sweep space has no feasible configuration (workers × threads > usable cores?)")
    if name == "grid":
        return GridStrategy(space, max_trials, skip=(known or {}).keys())
    if name == "adaptive":
        return AdaptiveStrategy(space, objective, hardware_guess(space, host), max_trials, dict(known or {}))
    raise ConfigError(f"strategy '{name}': choose from {', '.join(STRATEGIES)}")
