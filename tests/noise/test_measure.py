"""A trial on a scripted host: busy windows are discarded, the trial measures on, or is marked.

The machine's counters are replaced by :class:`ScriptedHost`, whose outside load the test sets
while the trial runs (from the trial's own messages), so what is asserted does not depend on how
busy the real host is. The model is real (``builtin:sleep`` on the thread backend: no processes).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tuner.bench import trial_run as measure  # the measuring loop: where HostSampler is looked up
from tuner.bench.measure import MeasureSettings, run_trial
from tuner.bench.session import merge_trials
from tuner.bench.types import EngineNote, TrialConfig, TrialPhase, TrialResult, WindowMeasured
from tuner.hostload import Interval, ProcessTable, Snapshot, interval
from tuner.models import input_generator

pytestmark = pytest.mark.timeout(60)
CONFIG = TrialConfig("thread", 1, 1, 16)
# A loose tolerance: the windows agree whatever the real host does, so only the script decides.
SETTINGS = MeasureSettings(window_s=0.2, warmup_s=0.2, max_trial_s=4.0, tolerance=0.9)


class ScriptedHost:
    """Stands in for :class:`tuner.hostload.HostSampler`: outside load = ``level`` (share of the
    usable cores) from the moment it is set; tuner itself uses half a core."""

    level = 0.0
    made: list[ScriptedHost] = []  # noqa: RUF012 - the test reads the instances the trial made

    def __init__(self, usable_cores: int | None = None, own_pids: Any = (), root: int | None = None) -> None:
        self.usable_cores = usable_cores or 2
        self.spare_cores = 0
        self.t = time.perf_counter()
        self.busy = self.own = 0.0
        self.scans = 0
        self.added: list[int] = []
        ScriptedHost.made.append(self)

    @property
    def pids(self) -> set[int]:
        return set(self.added)

    def add(self, pid: int) -> None:
        self.added.append(pid)

    def scan(self) -> int:
        self.scans += 1
        return 0

    def snapshot(self) -> Snapshot:
        now = time.perf_counter()
        dt, self.t = now - self.t, now
        self.own += 0.5 * dt
        self.busy += (0.5 + ScriptedHost.level * self.usable_cores) * dt
        return Snapshot(now, self.busy, 0.0, self.own, 0)

    def interval(self, a: Snapshot, b: Snapshot) -> Interval:
        return interval(a, b, self.usable_cores)


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> type[ScriptedHost]:
    ScriptedHost.level = 0.0
    ScriptedHost.made = []
    monkeypatch.setattr(measure, "HostSampler", ScriptedHost)
    tables = iter(
        [
            ProcessTable(0.0, {4242: ("stress", 10.0, 0.0, 1.0, 1)}),
            ProcessTable(1.0, {4242: ("stress", 11.0, 0.0, 1.0, 1)}),
        ]
    )
    monkeypatch.setattr(measure.ProcessTable, "read", classmethod(lambda cls: next(tables)))
    return ScriptedHost


def trial(
    settings: MeasureSettings = SETTINGS, quiet_after: int | None = None
) -> tuple[TrialResult, list[Any]]:
    """Run one trial; the host turns quiet once ``quiet_after`` measuring windows were reported."""
    msgs: list[Any] = []

    def on_message(m: Any) -> None:
        msgs.append(m)
        if isinstance(m, WindowMeasured) and m.phase == "measuring" and quiet_after is not None:
            if (
                sum(1 for x in msgs if isinstance(x, WindowMeasured) and x.phase == "measuring")
                >= quiet_after
            ):
                ScriptedHost.level = 0.0

    inputs = input_generator("builtin:sleep")(256, 0)
    r = run_trial("builtin:sleep", inputs, CONFIG, settings, on_message=on_message, usable_cores=2)
    return r, msgs


def measuring(msgs: list[Any]) -> list[WindowMeasured]:
    return [m for m in msgs if isinstance(m, WindowMeasured) and m.phase == "measuring"]


def test_busy_windows_are_discarded_and_the_trial_measures_on(scripted: type[ScriptedHost]) -> None:
    scripted.level = 0.8  # someone else keeps 1.6 of the 2 cores busy ...
    r, msgs = trial(quiet_after=3)  # ... for the first three windows
    assert r.discarded_windows == [0, 1, 2]
    assert r.stable and not r.contaminated
    assert len(r.windows) == 6  # three busy, then three clean that agree
    # The figures are the clean windows' only.
    assert r.reported_windows() == r.windows[3:]
    assert r.throughput == pytest.approx(sorted(r.windows[3:])[1], abs=0.01)
    assert r.outside is not None
    assert r.outside.cpu == pytest.approx(0.0, abs=0.01)  # over the counted windows
    assert r.outside.cpu_max == pytest.approx(0.8, abs=0.05)
    assert r.outside.windows[:3] == [pytest.approx(0.8, abs=0.05)] * 3
    # Every discarded window is said, with why; the end says how many went.
    said = [m.discarded for m in measuring(msgs)]
    assert said[:3] == ["outside load 80% of 2 cores (limit 25%)"] * 3 and said[3:] == [None] * 3
    assert all(m.outside is not None for m in measuring(msgs))
    end = [m for m in msgs if isinstance(m, TrialPhase)][-1]
    assert end.phase == "stable" and end.detail.endswith("(3 busy windows discarded)")
    note = next(m for m in msgs if isinstance(m, EngineNote) and m.text.startswith("host busy"))
    assert note.text.startswith("host busy: 3 of 6 windows discarded (outside load up to 80% of 2 cores)")
    assert "busiest others: stress (pid 4242) 50%" in note.text
    assert r.outside.top[0].name == "stress"
    # One look for processes of tuner's own before calling the first window busy, not one per window.
    assert scripted.made[-1].scans == 2


def test_a_trial_that_never_gets_clean_windows_is_contaminated(scripted: type[ScriptedHost]) -> None:
    scripted.level = 0.6
    r, msgs = trial()
    assert r.contaminated and not r.stable
    assert r.discarded_windows == list(range(len(r.windows)))
    assert r.reported_windows() == r.windows  # figures over every window, and marked as such
    assert r.throughput > 0 and r.latency_ms["p99"] > 0
    assert r.outside is not None and r.outside.cpu == pytest.approx(0.6, abs=0.05)
    end = [m for m in msgs if isinstance(m, TrialPhase)][-1]
    assert end.phase == "contaminated"
    assert end.detail.startswith("contaminated: host busy, 0 clean windows of")
    # Not one clean window in the first half of its measuring time: it stopped there, not at the cap.
    assert r.measured_s <= SETTINGS.max_trial_s / 2 + 2 * SETTINGS.window_s
    assert len(r.windows) >= 5


def test_without_a_limit_the_load_is_recorded_but_nothing_discarded(scripted: type[ScriptedHost]) -> None:
    scripted.level = 0.6
    r, msgs = trial(
        MeasureSettings(window_s=0.2, warmup_s=0.2, max_trial_s=4.0, tolerance=0.9, max_outside=None)
    )
    assert r.stable and not r.contaminated and r.discarded_windows == []
    assert r.outside is not None and r.outside.cpu == pytest.approx(0.6, abs=0.05)
    assert r.outside.limit is None
    assert r.outside.top and r.outside.top[0].name == "stress"  # the busiest others, all the same
    assert all(m.discarded is None for m in measuring(msgs))


def test_a_quiet_trial_is_as_before(scripted: type[ScriptedHost]) -> None:
    r, msgs = trial()
    assert r.stable and r.discarded_windows == [] and not r.contaminated
    assert len(r.windows) == 3
    assert r.outside is not None and r.outside.cpu_max < 0.05 and r.outside.top == []
    assert not any(isinstance(m, EngineNote) and "host busy" in m.text for m in msgs)
    assert scripted.made[-1].scans == 1  # the scan at the start only


def test_result_round_trips_through_json_lines(scripted: type[ScriptedHost]) -> None:
    scripted.level = 0.8
    r, _ = trial(quiet_after=2)
    back = TrialResult.from_dict(r.to_dict())
    assert back == r
    assert back.outside is not None and back.outside.top[0].pid == 4242


def _result(windows: list[float], discarded: list[int], contaminated: bool, stable: bool) -> TrialResult:
    from tuner.bench.types import OutsideLoad

    loads = [0.8 if i in discarded else 0.02 for i in range(len(windows))]
    return TrialResult(
        config=CONFIG, throughput=1.0, throughput_ci=(1.0, 1.0), latency_ms={"p99": 1.0}, latency_ci_ms={},
        service_ms={}, cpu_share=0.5, peak_rss_mb={}, stable=stable, windows=windows, warmup_s=0.1,
        cold_start_s=0.1, measured_s=1.0, items=10, discarded_windows=discarded, contaminated=contaminated,
        outside=OutsideLoad(cpu=0.8 if contaminated else 0.02, cpu_max=max(loads), steal=0.0, swap_mb_s=0.0,
                            windows=loads, limit=0.25),
    )  # fmt: skip


def test_merging_a_contaminated_confirmation_keeps_the_clean_figures() -> None:
    clean = _result([100.0, 101.0, 99.0], [], False, True)
    busy = _result([60.0, 62.0, 58.0, 61.0], [0, 1, 2, 3], True, False)
    merged = merge_trials(clean, busy)
    assert merged.throughput == 100.0  # not dragged down to ~80 by the busy host
    assert merged.windows == [100.0, 101.0, 99.0, 60.0, 62.0, 58.0, 61.0]  # all on record
    assert merged.discarded_windows == [3, 4, 5, 6]
    assert not merged.contaminated and merged.stable
    assert merged.outside is not None and merged.outside.cpu == 0.02 and merged.outside.cpu_max == 0.8
    # Both busy: merged as before, and still marked.
    both = merge_trials(busy, _result([59.0, 61.0, 60.0], [0, 1, 2], True, False))
    assert both.contaminated and both.throughput == 60.0
