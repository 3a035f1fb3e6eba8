"""Hedged stragglers: the bookkeeping, pure (no processes, no clock of its own).

A partition still running past the hedge delay (a profile's p95 service time) is sent again, as a
second copy, to an idle worker; the first copy to produce an outcome wins and the other is the
loser (Dean & Barroso, *The Tail at Scale*, CACM 2013: deferring the hedge to the p95 keeps the
extra load near 5% while cutting the tail). Outcomes stay exactly once: the ledger takes the first
word about a part and ignores the rest.

**The budget** is a token bucket: each partition that completes without a hedge earns ``budget``
tokens, a hedge costs one, and the bucket holds at most :data:`HEDGE_BURST` (it starts full). So
hedges sent <= ``budget`` × partitions completed + :data:`HEDGE_BURST`, whatever happens — a host
where everything is slow cannot double its own load.

**Which part gets a token.** Past the p95, by definition about 5% of *normal* partitions are still
running, and they end a moment later; a straggler runs on. With a 5% budget, hedging every part the
moment it crosses the delay spends the tokens on those normal ones as often as on stragglers
(measured under the benchmark's load, ``tests/benchmarks/hedging.py``: ~40% of the hedges went to
normal partitions). So the part that has run longest goes first, and the last
:data:`HEDGE_RESERVE` tokens are kept for parts past :data:`LATE_FACTOR` × the delay — almost surely
stragglers (~10% of the hedges went to normal partitions then). With tokens to spare, any part past
the delay is hedged.

**The delay is compared like with like.** A profile's p95 is a service time, measured inside the
worker; the supervisor sees a partition take its service time plus a round trip (sending, the
result's way back, its own loop). It adds its measured round trip (an EWMA of seen − service time)
to the delay, or it would hedge many normal partitions that had in fact already finished.

**What may be hedged** (:meth:`Hedger.eligible`): a part running as its only copy that has never
failed an attempt. A part that crashed, timed out or raised before is suspect — a second copy could
crash a second worker, and a retried part runs alone ("exact") so that the next death is charged to
it; duplicating it would muddle the retry accounting. Stragglers are what hedging is for, failures
what retries are for. If one copy of a hedged part fails while the other runs, the failure decides
nothing and costs no attempt: the running copy decides (both failing count one attempt).

**Where a hedge goes** (the supervisor, ``supervisor.py``): only to an idle worker — a copy queued behind
other work would start no earlier than the original. With one worker there is never an idle worker
while a part runs: hedging is a no-op. While a worker runs a part past the delay it is given no new
partition; and when every worker is busy but there is no backlog, what waits stays in the engine's
queue for the first worker free (late binding) instead of being queued behind one worker's running
partition, which may turn out a straggler. With a backlog (a closed loop, ``map``) workers still
prefetch as without hedging: late binding costs a round trip per partition, measured 6% of
``map``'s throughput with 10 ms partitions when applied always, and ~0 this way.

**The loser** (``EngineConfig.hedge_cancel``): by default (``"finish"``) its worker runs it to its
end and its result is dropped (its shared memory released like any partition's). ``"kill"`` ends a
losing first copy's process worker at once and replaces it, putting back what it held (a losing
hedge copy, started a moment ago, still finishes; a thread cannot be killed and finishes too).
Finishing is the default because it measured no worse even where killing is cheapest
(``tests/benchmarks/hedging.py``, variant ``5%-kill``: a model that loads in ~20 ms, the p99 no
lower, the host busier with respawns; see the README): a kill costs a respawn and a model load —
for real models seconds, far more than a straggler's remaining time — during which the pool is a
worker short exactly when the hedge wanted spare capacity.

**Fault injection stays reproducible:** a hedge copy carries ``copy=1`` to its worker, which draws
its faults under a key of its own (:meth:`tuner.engine.faults.FaultPlan.decide`), so the first
copy's decisions are those it would have had without hedging, and the hedge's are seeded too.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from tuner.deployment import Deployment
from tuner.engine.ledger import Part

#: most tokens the bucket holds (and holds at the start)
HEDGE_BURST = 4.0
#: tokens kept back for parts that have run past LATE_FACTOR × the delay (see the module docstring)
HEDGE_RESERVE = 2.0
#: a part past this many times the delay is almost surely a straggler: it may take the last token
LATE_FACTOR = 2.0
#: the default share of partitions that may be duplicated: the deployment's own default
HEDGE_BUDGET: float = Deployment.hedge_budget
#: weight of the newest observation in the supervisor's round-trip estimate (an EWMA)
OVERHEAD_ALPHA = 0.1


class Settled(NamedTuple):
    """A hedged part got its outcome: the worker still running the other copy (None if none is),
    and whether the hedge copy was first."""

    loser: Any
    hedge_won: bool


class Hedger:
    """Which parts have a hedge copy, who won, and the token bucket. Owned by the supervisor thread.

    Workers are opaque here (the supervisor's handles); times are passed in. ``started`` times are
    the supervisor's (when it sent the part, or saw the one before it end).
    """

    def __init__(self, after_s: float, budget: float = HEDGE_BUDGET, burst: float = HEDGE_BURST) -> None:
        self.after_s = after_s
        self.budget = budget
        self.burst = burst
        self.reserve = min(HEDGE_RESERVE, max(0.0, burst - 1.0))
        self.tokens = burst
        #: what the supervisor's clock adds to a partition's service time (the round trip)
        self.overhead_s = 0.0
        #: part -> (worker running the original copy, worker running the hedge copy)
        self._copies: dict[Part, tuple[Any, Any]] = {}
        # counters
        self.sent = 0  # hedge copies sent
        self.won = 0  # ... whose result came first
        self.completed = 0  # partitions that got their outputs (hedged or not)
        self.discarded = 0  # loser copies that ran to their end, their result dropped
        self.killed = 0  # loser copies whose worker was killed (hedge_cancel="kill")

    @property
    def delay_s(self) -> float:
        """The delay on the supervisor's clock: ``after_s`` (a service time, measured inside the
        worker) plus the round trip the supervisor sees on top of it."""
        return self.after_s + self.overhead_s

    def observe(self, seen_s: float, service_s: float) -> None:
        """A partition ran ``service_s`` in its worker and the supervisor saw it take ``seen_s``."""
        extra = max(0.0, seen_s - service_s)
        self.overhead_s += OVERHEAD_ALPHA * (extra - self.overhead_s)

    # -- what to hedge -----------------------------------------------------------------------------
    def eligible(self, part: Part) -> bool:
        """A first copy, running alone, of a part that never failed, whose job still wants it."""
        return (
            part.runs == 1
            and part.total == 0
            and not part.done
            and part not in self._copies
            and not part.job.done
            and not part.job.future.cancelled()
        )

    def _threshold(self) -> float | None:
        """How long a part must have run to be hedged with the tokens there are (None: no token)."""
        if self.tokens >= 1.0 + self.reserve:
            return self.delay_s
        if self.tokens >= 1.0:
            return LATE_FACTOR * self.delay_s
        return None

    def pick(self, running: Iterable[tuple[Any, Part, float]], now: float) -> tuple[Any, Part] | None:
        """The (worker, part) to hedge now, if any: the eligible part that has run longest, past the
        delay (past LATE_FACTOR × the delay when only the reserve is left). ``running``: (worker,
        the part it runs, when that part started)."""
        threshold = self._threshold()
        if threshold is None:
            return None
        best: tuple[Any, Part] | None = None
        oldest = now - threshold
        for worker, part, started in running:
            if started <= oldest and self.eligible(part):
                best, oldest = (worker, part), started
        return best

    def next_due(self, running: Iterable[tuple[Any, Part, float]]) -> float | None:
        """When the next eligible part crosses the threshold (for the supervisor's wait), or None:
        none runs, or no token is left (then only a completion, which wakes the supervisor anyway,
        can change that)."""
        threshold = self._threshold()
        if threshold is None:
            return None
        first = None
        for _, part, started in running:
            if (first is None or started < first) and self.eligible(part):
                first = started
        return None if first is None else first + threshold

    # -- what happened -----------------------------------------------------------------------------
    def sent_copy(self, part: Part, original: Any, hedge: Any) -> None:
        """A hedge copy of ``part`` went to ``hedge`` while ``original`` runs it: one token spent."""
        self.tokens -= 1.0
        self.sent += 1
        self._copies[part] = (original, hedge)

    def hedged(self, part: Part) -> bool:
        """True while ``part`` has a hedge copy out (until both copies have ended)."""
        return part in self._copies

    def ended(self, part: Part, worker: Any, decided: bool, killed: bool = False) -> Settled | None:
        """A copy of ``part`` on ``worker`` ended: an output, a failure, or its worker died, gave it
        back or was killed as a loser (``killed``). ``decided``: this copy's output became the part's
        outcome. Returns a :class:`Settled` when that settles a hedged part, else None."""
        entry = self._copies.get(part)
        if decided:
            self.completed += 1
            if entry is None:  # an unhedged partition completed: it earns its share of a hedge
                self.tokens = min(self.burst, self.tokens + self.budget)
                return None
        if entry is None:
            return None
        original, hedge = entry
        settled = None
        if decided:
            hedge_won = worker is hedge
            self.won += hedge_won
            loser = (original if hedge_won else hedge) if part.runs > 0 else None
            settled = Settled(loser, hedge_won)
        elif part.done and part.runs == 0:  # the loser's word, after the winner's
            if killed:
                self.killed += 1
            else:
                self.discarded += 1
        if part.runs == 0:
            del self._copies[part]
        return settled

    # -- figures -----------------------------------------------------------------------------------
    @property
    def duplicate_ratio(self) -> float:
        """Hedges sent / partitions completed (0.0 before any completed)."""
        return self.sent / self.completed if self.completed else 0.0

    def stats(self) -> dict[str, Any]:
        """Counters for Engine.stats()."""
        return {
            "hedges": self.sent,
            "hedges_won": self.won,
            "hedge_losers_discarded": self.discarded,
            "hedge_losers_killed": self.killed,
            "partitions_completed": self.completed,
            "duplicate_ratio": self.duplicate_ratio,
        }
