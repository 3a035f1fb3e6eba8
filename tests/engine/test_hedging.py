"""Hedged stragglers: the bookkeeping alone on a fake clock, then the engine with real workers.

What a user relies on: every item's outcome arrives exactly once and in order, hedged or not, under
crashes too; the loser's result never reaches the caller (its worker finishes it and it is dropped,
or with ``hedge_cancel="kill"`` its worker is ended and replaced); duplicate work stays within the
budget; and with one worker nothing is hedged.
"""

from __future__ import annotations

import random
import time
from concurrent.futures import Future

import pytest

from tests.engine.helpers import spec
from tuner.engine import Engine, EngineConfig, FaultPlan
from tuner.engine import events as ev
from tuner.engine.config import Backoff
from tuner.engine.hedging import HEDGE_BURST, HEDGE_RESERVE, LATE_FACTOR, Hedger
from tuner.engine.ledger import IGNORED, RETRY, Job, Ledger, Part
from tuner.errors import ConfigError

pytestmark = pytest.mark.timeout(60)  # the pure tests; engine tests set their own

# ------------------------------------------------------------------------------------------- pure


def _ledger() -> Ledger:
    return Ledger(retries=2, backoff=Backoff(0.1, 1.0), rng=random.Random(1))


def _part(ledger: Ledger, items: list[int], first: int = 0) -> Part:
    job = Job(ledger.next_id(), items, first, Future(), 0.0)
    ledger.add(job)
    part = ledger.take()
    assert part is not None
    ledger.sent(part)
    return part


def test_a_part_past_the_delay_is_hedged_and_the_first_copy_to_finish_wins() -> None:
    ledger, hedger = _ledger(), Hedger(after_s=0.1)
    slow = _part(ledger, [1, 2])
    quick = _part(ledger, [3])
    running = [("w1", slow, 0.0), ("w2", quick, 0.05)]
    assert hedger.pick(running, now=0.09) is None  # nobody past the delay yet
    assert hedger.next_due(running) == pytest.approx(0.1)  # the supervisor wakes for the oldest
    assert hedger.pick(running, now=0.12) == ("w1", slow)  # quick ran only 0.07 s
    hedger.sent_copy(slow, "w1", "w3")
    ledger.sent(slow)
    assert hedger.pick(running, now=0.2) == ("w2", quick)  # the hedged part is never hedged twice
    # the hedge copy on w3 finishes first: it wins, w1 is the loser
    assert ledger.finished(slow, ["a", "b"], 0.05, 0.2)
    assert hedger.ended(slow, "w3", decided=True) == ("w1", True)
    # the loser's result arrives later: ignored, and counted as discarded
    assert not ledger.finished(slow, ["late", "late"], 1.0, 1.0)
    assert hedger.ended(slow, "w1", decided=False) is None
    assert slow.job.future.result(timeout=0).outputs == ["a", "b"]
    assert (hedger.sent, hedger.won, hedger.discarded, hedger.completed) == (1, 1, 1, 1)
    assert not hedger.hedged(slow)


def test_when_the_original_wins_the_hedge_copy_is_the_loser() -> None:
    ledger, hedger = _ledger(), Hedger(after_s=0.1)
    part = _part(ledger, [1])
    hedger.sent_copy(part, "w1", "w2")
    ledger.sent(part)
    assert ledger.finished(part, ["x"], 0.1, 0.15)
    assert hedger.ended(part, "w1", decided=True) == ("w2", False)
    assert hedger.won == 0


def test_a_failing_copy_decides_nothing_and_a_part_that_failed_is_never_hedged() -> None:
    ledger, hedger = _ledger(), Hedger(after_s=0.1)
    part = _part(ledger, [1])
    hedger.sent_copy(part, "w1", "w2")
    ledger.sent(part)
    # the original's worker crashes: no attempt counted, the hedge copy still runs
    assert ledger.failed(part, "crash", "boom", 0.2) == (IGNORED, 0.0)
    assert hedger.ended(part, "w1", decided=False) is None
    assert (part.attempt, part.total, ledger.retried) == (0, 0, 0)
    # the hedge copy crashes too: that is one attempt, retried as usual
    decision, _ = ledger.failed(part, "crash", "boom", 0.3)
    assert decision == RETRY and part.total == 1
    assert hedger.ended(part, "w2", decided=False) is None
    assert not hedger.hedged(part)
    # its retry runs alone, however long: a part that failed before is suspect, not a straggler
    ledger.release_due(10.0)
    retry = ledger.take()
    assert retry is part
    ledger.sent(part)
    assert not hedger.eligible(part)
    assert hedger.pick([("w3", part, 10.0)], now=100.0) is None


def test_a_cancelled_job_is_not_hedged() -> None:
    ledger, hedger = _ledger(), Hedger(after_s=0.1)
    part = _part(ledger, [1])
    part.job.future.cancel()
    assert hedger.pick([("w1", part, 0.0)], now=1.0) is None


def test_the_longest_running_part_goes_first() -> None:
    ledger, hedger = _ledger(), Hedger(after_s=0.1)
    a, b, c = (_part(ledger, [i], first=i) for i in range(3))
    running = [("w1", a, 0.3), ("w2", b, 0.1), ("w3", c, 0.2)]
    assert hedger.pick(running, now=1.0) == ("w2", b)


def test_the_last_tokens_are_kept_for_parts_far_past_the_delay() -> None:
    ledger, hedger = _ledger(), Hedger(after_s=0.1, budget=0.05)
    parts = [_part(ledger, [i], first=i) for i in range(8)]
    # spend the bucket down to its reserve on parts just past the delay
    spent = 0
    while hedger.tokens >= 1.0 + HEDGE_RESERVE:
        choice = hedger.pick([("w", parts[spent], 0.0)], now=0.11)
        assert choice is not None
        hedger.sent_copy(parts[spent], "w", "idle")
        spent += 1
    assert spent == HEDGE_BURST - HEDGE_RESERVE
    fresh = parts[spent]
    # just past the delay: no token for it now
    assert hedger.pick([("w", fresh, 0.0)], now=0.11) is None
    assert hedger.next_due([("w", fresh, 0.0)]) == pytest.approx(LATE_FACTOR * 0.1)
    # past LATE_FACTOR x the delay it takes one of the last tokens
    assert hedger.pick([("w", fresh, 0.0)], now=LATE_FACTOR * 0.1 + 0.01) == ("w", fresh)


def test_duplicates_stay_within_budget_whatever_the_straggler_rate() -> None:
    """Every part straggles: hedges are capped at budget × completed + the burst."""
    ledger, hedger = _ledger(), Hedger(after_s=0.01, budget=0.05)
    now = 0.0
    for i in range(2000):
        part = _part(ledger, [i], first=i)
        now += 1.0
        choice = hedger.pick([("w1", part, now - 0.5)], now)
        hedged = choice is not None
        if hedged:
            hedger.sent_copy(part, "w1", "w2")
            ledger.sent(part)
        assert ledger.finished(part, [i], 0.5, now)
        hedger.ended(part, "w1", decided=True)
        if hedged:
            assert not ledger.finished(part, [i], 0.5, now)
            hedger.ended(part, "w2", decided=False)
        assert hedger.sent <= hedger.budget * hedger.completed + HEDGE_BURST
    assert hedger.completed == 2000
    assert 0.04 < hedger.duplicate_ratio <= 0.05 + HEDGE_BURST / 2000


def test_the_delay_counts_the_round_trip_the_supervisor_sees() -> None:
    hedger = Hedger(after_s=0.010)
    for _ in range(200):
        hedger.observe(seen_s=0.0125, service_s=0.010)  # 2.5 ms of transport and loop per partition
    assert hedger.delay_s == pytest.approx(0.0125, abs=1e-4)
    ledger = _ledger()
    part = _part(ledger, [1])
    assert hedger.pick([("w1", part, 0.0)], now=0.011) is None  # past the service p95, not the seen one
    assert hedger.pick([("w1", part, 0.0)], now=0.013) == ("w1", part)


def test_hedge_settings_are_checked() -> None:
    for kw, message in [
        ({"hedge_after_s": 0.0}, "hedge_after_s must be a finite number > 0 (or None) (got 0.0)"),
        ({"hedge_after_s": float("nan")}, "hedge_after_s must be a finite number > 0 (or None) (got nan)"),
        ({"hedge_budget": 0.0}, "hedge_budget must be a finite number > 0 and <= 1 (got 0.0)"),
        ({"hedge_budget": 2.0}, "hedge_budget must be a finite number > 0 and <= 1 (got 2.0)"),
        ({"hedge_cancel": "never"}, "hedge_cancel 'never': choose from finish, kill"),
    ]:
        with pytest.raises(ConfigError) as info:
            EngineConfig(**kw)
        assert message in str(info.value)


def test_a_hedge_copy_draws_its_faults_under_its_own_key() -> None:
    plan = FaultPlan(slow=0.3, seed=11)
    first = [plan.decide(i * 4, 4, 1) for i in range(300)]
    assert first == [plan.decide(i * 4, 4, 1, copy=0) for i in range(300)]  # unchanged by hedging
    hedge = [plan.decide(i * 4, 4, 1, copy=1) for i in range(300)]
    assert hedge == [plan.decide(i * 4, 4, 1, copy=1) for i in range(300)]  # reproducible
    assert hedge != first
    both = sum(a is not None and b is not None for a, b in zip(first, hedge, strict=True))
    assert both < 0.2 * 300  # independent draws: about 0.3 x 0.3 of the partitions
    targeted = FaultPlan.parse("crash@17")
    assert targeted.decide(16, 4, 1, copy=1) == "crash"  # a poison item is poison on every copy


# ------------------------------------------------------------------------------------------ engine

SERVICE_S = 0.02  # engmodels.nap: one partition sleeps this long
FACTOR = 25.0  # a straggler sleeps 0.5 s: its hedge (delay 30 ms + 20 ms) is first by far
PARTS, SIZE = 6, 4


def _plan_with_one_straggler() -> tuple[FaultPlan, int]:
    """A seeded plan under which exactly one of the partitions straggles on its first copy, and not
    on its hedge copy; worked out from the plan's own decisions."""
    for seed in range(1000):
        plan = FaultPlan(slow=0.2, slow_factor=FACTOR, seed=seed)
        slow = [i for i in range(PARTS) if plan.decide(i * SIZE, SIZE, 1) == "slow"]
        if len(slow) == 1 and plan.decide(slow[0] * SIZE, SIZE, 1, copy=1) is None:
            return plan, slow[0]
    raise AssertionError("no seed gives one straggler")


def _run(cfg: EngineConfig, seen: list[ev.Event]) -> tuple[list[list[int]], Engine]:
    engine = Engine(spec("nap"), cfg, on_event=seen.append)
    with engine:
        futures = engine.submit_many([list(range(i * SIZE, (i + 1) * SIZE)) for i in range(PARTS)])
        results = [f.result(timeout=30) for f in futures]
        # Wait for the loser's word (its result, or its worker's exit) and for every worker to be
        # up before closing, so the test sees what became of it; polled: the engine has no event
        # for "nothing more to come".
        deadline = time.monotonic() + 20
        while True:
            s = engine.stats()
            settled = s["hedge_losers_discarded"] + s["hedge_losers_killed"] >= s["hedges"]
            if settled and s["live_workers"] == cfg.workers:  # a killed loser's replacement is up
                break
            assert time.monotonic() < deadline, s
            time.sleep(0.01)
    return [list(r.outputs) for r in results], engine


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["process", "thread"])
def test_the_hedge_wins_and_the_losers_result_never_reaches_the_caller(backend: str) -> None:
    plan, straggler = _plan_with_one_straggler()
    seen: list[ev.Event] = []
    cfg = EngineConfig(
        backend=backend, workers=3, partition_size=SIZE, faults=plan, hedge_after_s=1.5 * SERVICE_S
    )
    outputs, engine = _run(cfg, seen)
    assert outputs == [list(range(i * SIZE, (i + 1) * SIZE)) for i in range(PARTS)]
    hedged = [e for e in seen if isinstance(e, ev.PartitionHedged)]
    settled = {e.partition: e for e in seen if isinstance(e, ev.HedgeSettled)}
    submitted = [e.partition for e in seen if isinstance(e, ev.PartitionSubmitted)]
    pid = submitted[straggler]
    assert pid in {e.partition for e in hedged}
    assert settled[pid].hedge_won and not settled[pid].killed
    assert settled[pid].loser == next(e.original for e in hedged if e.partition == pid)
    # one PartitionFinished per partition: the loser's late result is not an outcome
    finished = [e.partition for e in seen if isinstance(e, ev.PartitionFinished)]
    assert sorted(finished) == sorted(submitted)
    s = engine.stats()
    assert s["hedges_won"] >= 1 and s["hedge_losers_discarded"] == s["hedges"]
    assert s["partitions_completed"] == PARTS and s["items_done"] == PARTS * SIZE
    # The straggler's outcome came from its hedge copy, while its first copy still ran (hedge_won
    # above, the order the supervisor saw): the latency effect, asserted without a clock.


@pytest.mark.timeout(60)
def test_with_kill_the_losers_worker_is_ended_and_replaced() -> None:
    plan, straggler = _plan_with_one_straggler()
    seen: list[ev.Event] = []
    cfg = EngineConfig(
        workers=3, partition_size=SIZE, faults=plan, hedge_after_s=1.5 * SERVICE_S, hedge_cancel="kill"
    )
    outputs, engine = _run(cfg, seen)
    assert outputs == [list(range(i * SIZE, (i + 1) * SIZE)) for i in range(PARTS)]
    pid = [e.partition for e in seen if isinstance(e, ev.PartitionSubmitted)][straggler]
    settled = {e.partition: e for e in seen if isinstance(e, ev.HedgeSettled)}
    assert settled[pid].hedge_won and settled[pid].killed
    exits = [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "hedged"]
    assert settled[pid].loser in {e.worker for e in exits}
    replacements = [e for e in seen if isinstance(e, ev.WorkerStarted) and e.replacing is not None]
    assert {e.worker for e in exits} <= {e.replacing for e in replacements}
    s = engine.stats()
    assert s["hedge_losers_killed"] >= 1 and s["replaced"] == 0  # a hedge kill is no failure
    assert not [e for e in seen if isinstance(e, ev.PartitionFailed)]


@pytest.mark.timeout(60)
def test_kill_leaves_a_thread_to_finish_it_cannot_be_killed() -> None:
    plan, straggler = _plan_with_one_straggler()
    seen: list[ev.Event] = []
    cfg = EngineConfig(
        backend="thread",
        workers=3,
        partition_size=SIZE,
        faults=plan,
        hedge_after_s=1.5 * SERVICE_S,
        hedge_cancel="kill",
    )
    outputs, engine = _run(cfg, seen)
    assert outputs == [list(range(i * SIZE, (i + 1) * SIZE)) for i in range(PARTS)]
    pid = [e.partition for e in seen if isinstance(e, ev.PartitionSubmitted)][straggler]
    settled = {e.partition: e for e in seen if isinstance(e, ev.HedgeSettled)}
    assert settled[pid].hedge_won and not settled[pid].killed
    s = engine.stats()
    assert s["hedge_losers_killed"] == 0 and s["hedge_losers_discarded"] == s["hedges"]
    assert not [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "hedged"]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("budget", [0.05, 1.0])
def test_outputs_exactly_once_and_in_order_under_crashes_and_stragglers(budget: float) -> None:
    seen: list[ev.Event] = []
    plan = FaultPlan(crash=0.08, slow=0.15, slow_factor=8.0, seed=3)
    cfg = EngineConfig(
        workers=3,
        partition_size=4,
        retries=4,
        faults=plan,
        hedge_after_s=0.01,
        hedge_budget=budget,
        backoff_base_s=0.001, backoff_cap_s=0.01,
    )
    out: list[int] = []
    with Engine(spec("nap_short"), cfg, on_event=seen.append) as engine:
        # waves of two partitions on three workers: an idle worker is there for a straggler's hedge
        for wave in range(0, 240, 8):
            futures = engine.submit_many([list(range(wave, wave + 4)), list(range(wave + 4, wave + 8))])
            for f in futures:
                out.extend(f.result(timeout=30).outputs)
        s = engine.stats()
    assert out == list(range(240))
    assert s["hedges"] >= 1
    assert s["hedges"] <= budget * s["partitions_completed"] + HEDGE_BURST
    assert s["items_done"] == 240 and s["items_failed"] == 0
    # crashes were retried as usual, and no crash was charged twice for one hedged part
    crashes = [e for e in seen if isinstance(e, ev.PartitionFailed) and e.cause == "crash"]
    assert crashes and all(e.retry == "retry" for e in crashes)


@pytest.mark.timeout(60)
def test_with_one_worker_hedging_is_a_no_op() -> None:
    plan, _ = _plan_with_one_straggler()
    cfg = EngineConfig(workers=1, partition_size=SIZE, faults=plan, hedge_after_s=SERVICE_S)
    with Engine(spec("nap"), cfg) as engine:
        out = list(engine.map(range(PARTS * SIZE)))
        s = engine.stats()
    assert out == list(range(PARTS * SIZE))
    assert s["hedges"] == 0 and s["partitions_completed"] == PARTS
