"""The fault plan: parsing, determinism, and the fault matrix (guarantee 1 under every fault)."""

from __future__ import annotations

import time

import pytest

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


def _config(kind: str, rate: float) -> EngineConfig:
    plan = FaultPlan(seed=11, **{kind: rate})
    return EngineConfig(
        workers=2,
        partition_size=16,
        retries=3,
        retry_on=("InjectedFault",),
        timeout_s=0.25 if kind in ("hang", "slow") else None,
        memory_limit_mb=200 if kind == "memory" else None,
        faults=plan if kind != "memory" else FaultPlan(seed=11, memory=rate, memory_mb=256),
        backoff=__import__("tuner.engine", fromlist=["Backoff"]).Backoff(base_s=0.005, cap_s=0.05),
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("rate", [0.01, 0.1, 0.3])
@pytest.mark.parametrize("kind", ["crash", "exception", "hang", "slow", "memory"])
def test_fault_matrix_every_item_exactly_once_in_order(kind: str, rate: float) -> None:
    from tests.engine.helpers import spec

    seen: list[ev.Event] = []
    t0 = time.monotonic()
    with Engine(spec("double"), _config(kind, rate), on_event=seen.append) as engine:
        out = list(engine.map(range(N_ITEMS)))
    elapsed = time.monotonic() - t0
    assert len(out) == N_ITEMS
    failed = [(i, o) for i, o in enumerate(out) if isinstance(o, Failure)]
    for i, o in enumerate(out):
        if not isinstance(o, Failure):
            assert o == REFERENCE[i]
    expected_cause = {
        "crash": "crash",
        "exception": "exception",
        "hang": "timeout",
        "slow": "timeout",
        "memory": "memory",
    }[kind]
    for _, f in failed:
        assert f.cause == expected_cause and f.injected, f
    # A fault at these rates with 3 retries and isolation almost never survives to the item level.
    assert len(failed) <= N_ITEMS * 0.01
    injected = [e for e in seen if isinstance(e, ev.PartitionFailed)]
    if kind != "slow" and rate >= 0.1:  # at 1%, 125 partitions may draw no fault at all
        assert injected, "the plan should have injected something"
        assert all(e.cause == expected_cause for e in injected)
    assert elapsed < 90


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
