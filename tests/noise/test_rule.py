"""The contamination rule on recorded samples: no live host, so these hold on a quiet or a busy box.

``samples.json`` was recorded by ``record_samples.py`` on the 2-core reference host (busy with other
test suites at the time, as it says): an own burner all along (counted as tuner), one outside burner
per usable core from 2 s to 4 s, a shell running short busy children from 1.5 s. The synthetic
cases below say what a quiet host, a VM with steal, a container with a CPU quota and a swapping
host look like to the rule.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from tuner.hostload import (
    DEFAULT_MAX_OUTSIDE,
    Interval,
    OutsideProcess,
    ProcessTable,
    Rule,
    Snapshot,
    describe_top,
    interval,
    top_outside,
)

pytestmark = pytest.mark.timeout(10)
RECORDED = json.loads((Path(__file__).parent / "samples.json").read_text(encoding="utf-8"))


def recorded_windows() -> list[tuple[float, float, float]]:
    """(window end s, outside share, own share) of each recorded 0.5 s window."""
    snaps = [Snapshot(*row) for row in RECORDED["snapshots"]]
    cores, spare = RECORDED["usable_cores"], RECORDED["spare_cores"]
    out = []
    for a, b in itertools.pairwise(snaps):
        iv = interval(a, b, cores, spare)
        out.append((round(b.t, 1), iv.outside, iv.own))
    return out


def table(name: str) -> ProcessTable:
    t = RECORDED["tables"][name]
    return ProcessTable(t["t"], {int(pid): tuple(v) for pid, v in t["cpu"].items()})  # type: ignore[misc]


def interval_for(end: float) -> Interval:
    """The recorded interval that ends at ``end`` seconds."""
    snaps = [Snapshot(*row) for row in RECORDED["snapshots"]]
    for a, b in itertools.pairwise(snaps):
        if round(b.t, 1) == end:
            return interval(a, b, RECORDED["usable_cores"], RECORDED["spare_cores"])
    raise AssertionError(end)


def test_recorded_outside_burners_contaminate_every_window_they_run_in() -> None:
    rule = Rule()
    cores = RECORDED["usable_cores"]
    windows = recorded_windows()
    assert len(windows) == 12
    during = [w for w in windows if 2.5 <= w[0] <= 4.0]  # windows wholly inside 2-4 s
    assert len(during) == 4
    for end, outside, _own in during:
        assert outside > DEFAULT_MAX_OUTSIDE, (end, outside)
        reason = rule.verdict(interval_for(end), cores)
        assert reason is not None and reason.startswith(f"outside load {outside:.0%} of 2 cores")


def test_recorded_own_burner_is_never_counted_as_outside() -> None:
    # The own burner kept a core busy in every window: its CPU is tuner's, every window shows it,
    # and the burners' windows show outside load rising by far more than the own share fell.
    windows = recorded_windows()
    assert all(own > 0.05 for _end, _outside, own in windows)
    before = max(w[1] for w in windows if w[0] <= 1.5)
    during = min(w[1] for w in windows if 2.5 <= w[0] <= 4.0)
    assert during > before + 0.15


def test_recorded_tables_name_the_outside_burners() -> None:
    own = [RECORDED["root"], RECORDED["own_burner"]]
    everyone = top_outside(table("before"), table("after"), RECORDED["usable_cores"], own, n=50)
    assert everyone == sorted(everyone, key=lambda p: -p.share)
    assert len(top_outside(table("before"), table("after"), 2, own)) == 3  # three by default
    burners = [p for p in everyone if p.pid in RECORDED["outside_burners"]]
    assert len(burners) == len(RECORDED["outside_burners"])
    assert all(p.name == "tuner-burner" and p.share > 0.1 for p in burners)
    assert everyone.index(burners[-1]) < 5  # among the busiest, on a host busy with other suites
    assert RECORDED["own_burner"] not in {p.pid for p in everyone}  # tuner's own is never listed
    # The shell's short children were reaped by it: it is credited with their CPU in the interval.
    shell = next(p for p in everyone if p.pid == RECORDED["reaper"])
    assert shell.name == "sh" and 0.05 < shell.share <= 0.5  # one child at a time: at most a core


def snap(t: float, busy: float, own: float = 0.0, steal: float = 0.0, swap: int = 0) -> Snapshot:
    return Snapshot(t, busy, steal, own, swap)


def test_quiet_host_is_clean_and_busy_host_is_not() -> None:
    # 2 usable cores, 1 s: tuner used 1.9 core-s, the machine 1.94 → 0.04 core outside = 2%.
    iv = interval(snap(0, 100.0, 50.0), snap(1, 101.94, 51.9), usable_cores=2)
    assert iv.outside == pytest.approx(0.02)
    assert iv.own == pytest.approx(0.95)
    assert Rule().verdict(iv, 2) is None
    # Someone else took a whole core: half of the usable cores.
    iv = interval(snap(0, 100.0, 50.0), snap(1, 102.0, 51.0), usable_cores=2)
    assert iv.outside == pytest.approx(0.5)
    assert Rule().verdict(iv, 2) == "outside load 50% of 2 cores (limit 25%)"
    assert Rule(max_outside=0.6).verdict(iv, 2) is None
    assert Rule(max_outside=None).verdict(iv, 2) is None  # record only


def test_steal_is_outside_load_and_said() -> None:
    # A VM whose hypervisor gave 0.7 of a core to others: tuner lost it as surely as to a process.
    iv = interval(snap(0, 0.0, steal=0.0), snap(1, 1.0, own=1.0, steal=0.7), usable_cores=2)
    assert iv.outside == pytest.approx(0.35) and iv.steal == pytest.approx(0.35)
    assert Rule().verdict(iv, 2) == "outside load 35% of 2 cores, steal 35% (limit 25%)"


def test_cores_beyond_a_container_quota_are_spare() -> None:
    # 8 CPUs in the affinity, a quota of 2: others may use 6 cores without taking anything of ours.
    five = interval(snap(0, 0.0), snap(1, 7.0, own=2.0), usable_cores=2, spare_cores=6)
    assert five.outside == 0.0
    seven = interval(snap(0, 0.0), snap(1, 9.0, own=2.0), usable_cores=2, spare_cores=6)
    assert seven.outside == pytest.approx(0.5)


def test_swapping_host_is_contaminated() -> None:
    iv = interval(snap(0, 0.0, swap=0), snap(2, 0.0, swap=10_000_000), usable_cores=2)
    assert iv.swap_mb_s == pytest.approx(5.0)
    assert Rule().verdict(iv, 2) == "swapping 5.0 MB/s (limit 1 MB/s)"


def test_counters_that_go_backwards_count_as_zero() -> None:
    # Two files read a moment apart can disagree by a tick: own CPU above the machine's is not
    # negative outside load, and a zero-length interval is no load at all.
    iv = interval(snap(0, 10.0, own=5.0), snap(1, 10.5, own=5.7), usable_cores=2)
    assert iv.outside == 0.0
    assert interval(snap(1, 0.0), snap(1, 5.0), usable_cores=2).outside == 0.0


def test_top_outside_credits_reaped_children_only_for_the_interval() -> None:
    # make (pid 10) had a compiler child (11) with 0.8 s CPU when the first table was read; the
    # child ran 0.1 s more and was reaped, so make's "children" time rose by its whole 0.9 s.
    before = ProcessTable(
        0.0, {10: ("make", 1.0, 0.0, 5.0, 1), 11: ("cc1", 0.8, 0.0, 6.0, 10), 20: ("idle", 3.0, 0.0, 1.0, 1)}
    )
    after = ProcessTable(
        2.0,
        {10: ("make", 1.0, 0.9, 5.0, 1), 20: ("idle", 3.0, 0.0, 1.0, 1), 30: ("stress", 1.5, 0.0, 9.0, 1),
         40: ("me", 9.0, 0.0, 9.0, 1)},
    )  # fmt: skip
    top = top_outside(before, after, usable_cores=2, own=[40])
    assert top == [OutsideProcess("stress", 30, 0.375), OutsideProcess("make", 10, 0.025)]
    assert describe_top(top) == "stress (pid 30) 38%, make (pid 10) 2%"
    # A pid reused by a new process (another create time) counts whole, not as a difference.
    reused = ProcessTable(2.0, {20: ("new", 0.4, 0.0, 8.0, 1)})
    assert top_outside(before, reused, 2) == [OutsideProcess("new", 20, 0.1)]


def test_history_of_dead_grandchildren_is_not_the_interval() -> None:
    # bash (1000) runs `timeout` (1001) which runs pytest (1002, 50 s of CPU already). Both end
    # in the interval: bash reaps timeout, whose children time held pytest's whole life. Only the
    # 0.4 s pytest ran in the interval is bash's (it read 1260% before the chain was followed).
    before = ProcessTable(
        0.0,
        {1000: ("bash", 0.1, 0.0, 1.0, 1), 1001: ("timeout", 0.0, 0.0, 2.0, 1000),
         1002: ("python", 50.0, 0.0, 3.0, 1001)},
    )  # fmt: skip
    after = ProcessTable(2.0, {1000: ("bash", 0.1, 50.4, 1.0, 1)})
    assert top_outside(before, after, 2) == [OutsideProcess("bash", 1000, 0.1)]


def test_init_is_credited_with_its_own_cpu_only() -> None:
    # pid 1 inherits every orphan of the machine: whatever it reaps is history, not its load.
    before = ProcessTable(0.0, {1: ("init", 5.0, 100.0, 0.5, 0)})
    after = ProcessTable(1.0, {1: ("init", 5.02, 180.0, 0.5, 0)})
    assert top_outside(before, after, 2) == [OutsideProcess("init", 1, 0.01)]


def test_a_credit_beyond_the_machine_is_not_believed() -> None:
    # Children time that rose by more than every CPU could do in the interval is history we could
    # not trace (an orphan reparented before it died): the process keeps its own CPU only.
    before = ProcessTable(0.0, {7: ("supervisor", 1.0, 0.0, 0.5, 1)})
    after = ProcessTable(1.0, {7: ("supervisor", 1.1, 500.0, 0.5, 1)})
    assert top_outside(before, after, 2) == [OutsideProcess("supervisor", 7, 0.05)]
