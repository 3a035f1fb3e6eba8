"""The fault plan: parsing, determinism, and the fault matrix (guarantee 1 under every fault)."""

from __future__ import annotations

import pytest

from tests.engine.helpers import expected_failures
from tuner.engine import Engine, EngineConfig, Failure, FaultPlan, TargetedFault
from tuner.engine import events as ev
from tuner.errors import FaultSpecError


def test_compact_form_round_trips() -> None:
    plan = FaultPlan.parse("crash=0.05,hang=0.01,slow=0.05x10,memory=0.02x256,exception=0.1,seed=7")
    assert (plan.crash, plan.hang, plan.slow, plan.slow_factor, plan.memory, plan.memory_mb, plan.seed) == (
        0.05,
        0.01,
        0.05,
        10.0,
        0.02,
        256,
        7,
    )
    assert FaultPlan.parse(str(plan)) == plan
    assert FaultPlan.parse("crash@17,exception@5#2").targeted == (
        TargetedFault(17, "crash"),
        TargetedFault(5, "exception", 2),
    )
    assert not FaultPlan.parse("none").active


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("crash=lots", "fault 'crash=lots': 'lots' is not a number"),
        ("crash=1.5", "fault rate crash=1.5: must be between 0 and 1"),
        ("boom=0.1", "unknown fault 'boom' in 'boom=0.1'"),
        ("crash", "'crash' is not KIND=RATE or KIND@ITEM"),
        ("slow=0.1x0.5", "slow factor x0.5: must be >= 1"),
        ("melt@3", "fault 'melt@3': unknown kind 'melt'"),
        ("crash@x", "fault 'crash@x': 'x' is not an integer"),
    ],
)
def test_a_malformed_plan_names_the_bad_part(text: str, message: str) -> None:
    with pytest.raises(FaultSpecError) as info:
        FaultPlan.parse(text)
    assert message in str(info.value)


def test_decisions_are_seeded_and_reproducible() -> None:
    plan = FaultPlan(crash=0.3, exception=0.2, seed=5)
    a = [plan.decide(i * 16, 16, 1) for i in range(200)]
    assert a == [plan.decide(i * 16, 16, 1) for i in range(200)]
    assert a != [FaultPlan(crash=0.3, exception=0.2, seed=6).decide(i * 16, 16, 1) for i in range(200)]
    share = sum(k is not None for k in a) / len(a)
    assert 0.35 < share < 0.6  # 1 - 0.7 * 0.8 = 0.44 of attempts hit by either


N_ITEMS = 2000
REFERENCE = [i * 2 for i in range(N_ITEMS)]
SIZE = 16
RETRIES = 3
#: what a user sees as the cause of each kind of fault
CAUSE = {"crash": "crash", "exception": "exception", "hang": "timeout", "slow": "timeout", "memory": "memory"}
#: a straggler runs FACTOR x the 2 ms service time of sleep_2ms: 4 s, far past the timeout
SLOW_FACTOR = 2000.0
TIMEOUT_S = 0.4


def _plan(kind: str, rate: float) -> FaultPlan:
    if kind == "memory":
        return FaultPlan(seed=11, memory=rate, memory_mb=256)
    if kind == "slow":
        return FaultPlan(seed=11, slow=rate, slow_factor=SLOW_FACTOR)
    return FaultPlan(seed=11, **{kind: rate})


def _config(kind: str, rate: float) -> EngineConfig:
    return EngineConfig(
        workers=2,
        partition_size=SIZE,
        retries=RETRIES,
        retry_on=("InjectedFault",),
        timeout_s=TIMEOUT_S if kind in ("hang", "slow") else None,
        memory_limit_mb=200 if kind == "memory" else None,
        faults=_plan(kind, rate),
        backoff_base_s=0.005, backoff_cap_s=0.05,
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("kind", ["crash", "exception", "hang", "slow", "memory"])
def test_fault_matrix_every_item_exactly_once_in_order(kind: str, rate: float) -> None:
    """Each injected fault takes its real path (a crash exits the worker, a hang and a straggler run
    past the timeout and are killed, a memory spike is killed by the RSS watch) and costs exactly
    the attempts the plan says; every item still comes back once, in order."""
    from tests.engine.helpers import spec

    # Timeouts cost TIMEOUT_S each: fewer items keep those cells short.
    n_items = 800 if kind in ("hang", "slow") else N_ITEMS
    cfg = _config(kind, rate)
    expected_attempts, expected_final = expected_failures(cfg.faults, n_items, SIZE, RETRIES)
    seen: list[ev.Event] = []
    with Engine(spec("sleep_2ms"), cfg, on_event=seen.append) as engine:
        out = list(engine.map(range(n_items)))
        replaced = engine.stats()["replaced"]
    assert len(out) == n_items
    failed = {i: o for i, o in enumerate(out) if isinstance(o, Failure)}
    assert [o for i, o in enumerate(out) if i not in failed] == [
        r for i, r in enumerate(REFERENCE[:n_items]) if i not in failed
    ]
    cause = CAUSE[kind]
    # The failures a user sees: exactly the items the plan makes fail for good, with their cause.
    assert {i: f.attempts for i, f in failed.items()} == expected_final
    assert all(f.cause == cause and f.injected for f in failed.values()), failed
    # Every injected fault cost one attempt, no more (nothing else timed out or crashed) and no less.
    fails = [e for e in seen if isinstance(e, ev.PartitionFailed)]
    assert sorted((e.items, e.attempt, e.retry) for e in fails) == expected_attempts
    assert all(e.cause == cause and e.injected for e in fails)
    if rate >= 0.1:
        assert len(expected_attempts) >= 5, "the plan should inject several faults"
    if kind != "exception":  # each of these faults ends its worker, which is replaced
        ended = [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == cause]
        assert len(ended) == len(fails) == replaced
        assert all(e.injected for e in ended)
        if cause == "timeout":  # killed by the supervisor, not finished late
            assert all(e.signal in ("SIGTERM", "SIGKILL") for e in ended)
    else:
        assert replaced == 0


@pytest.mark.timeout(60)
def test_an_always_crashing_item_fails_alone_after_its_retries() -> None:
    from tests.engine.helpers import spec

    plan = FaultPlan(targeted=(TargetedFault(item=777, kind="crash"),))
    cfg = EngineConfig(workers=2, partition_size=32, retries=2, faults=plan)
    with Engine(spec("double"), cfg) as engine:
        out = list(engine.map(range(N_ITEMS)))
    failures = {i: o for i, o in enumerate(out) if isinstance(o, Failure)}
    assert list(failures) == [777]
    f = failures[777]
    assert f.cause == "crash" and f.injected and f.exitcode == 1
    assert f.attempts == 3 * 6  # 3 attempts at each size 32, 16, 8, 4, 2, 1
    assert all(out[i] == REFERENCE[i] for i in range(N_ITEMS) if i != 777)
