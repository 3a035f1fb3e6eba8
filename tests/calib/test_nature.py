"""The model's nature from a sweep's own trials, and the mode of its deployment."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tuner.bench.hostspeed import Nature, mode_for, model_nature
from tuner.errors import ProfileError

from .helpers import recorded, trial

pytestmark = pytest.mark.timeout(10)


def test_a_gil_bound_model_is_python() -> None:
    # builtin:pyloop on 2 cores: two processes nearly double it, two threads share one core.
    trials = [
        trial(1000, workers=1, cpu_share=0.5),
        trial(1900, workers=2, cpu_share=0.97),
        trial(990, backend="thread", workers=1, cpu_share=0.52),
        trial(1005, backend="thread", workers=2, cpu_share=0.53),
    ]
    n = model_nature(trials, usable_cores=2)
    assert n.kernel == "python"
    assert "thread ×2 kept 1.1 cores busy" in n.evidence
    assert "thread workers 1→2: ×1.02" in n.evidence and "process workers 1→2: ×1.90" in n.evidence


def test_a_model_whose_threads_help_is_blas() -> None:
    # builtin:mlp: a second BLAS thread per worker helps, and the thread backend scales.
    trials = [
        trial(1000, workers=1, threads=1, cpu_share=0.5),
        trial(1700, workers=1, threads=2, cpu_share=0.95),
        trial(1000, backend="thread", workers=1, cpu_share=0.5),
        trial(1800, backend="thread", workers=2, cpu_share=0.96),
    ]
    n = model_nature(trials, usable_cores=2)
    assert n.kernel == "blas"
    assert "threads per worker 1→2: ×1.70" in n.evidence
    assert "a process worker with 2 threads kept 1.9 cores busy" in n.evidence


def test_a_model_that_mostly_waits_is_io() -> None:
    trials = [trial(500, workers=1, cpu_share=0.03), trial(990, workers=2, cpu_share=0.06)]
    n = model_nature(trials, usable_cores=2)
    assert n.kernel == "io"
    assert n.evidence == ("workers used at most 6% of the cores they could: the model mostly waits",)


def test_memory_only_when_this_hosts_cores_are_known_to_be_real() -> None:
    # Two threads busy in native code, no gain, and processes do not scale either.
    trials = [
        trial(1000, workers=1, cpu_share=0.5),
        trial(1040, workers=2, cpu_share=0.97),
        trial(1000, backend="thread", workers=1, cpu_share=0.5),
        trial(1030, backend="thread", workers=2, cpu_share=0.96),
    ]
    cal = recorded()
    one = cal.score("blas", "single")
    assert one is not None
    real = replace(
        cal, scores={**cal.scores, "blas": {"single": one, "all": replace(one, score=one.score * 1.9)}}
    )
    with_cal = model_nature(trials, usable_cores=2, calibration=real)
    assert with_cal.kernel == "memory"
    assert with_cal.evidence[-1] == "this host's blas kernel scales ×1.90 on 2 cores"
    # The recorded host's first calibration read its blas kernel ×1.35 on 2 cores: not proof enough.
    assert model_nature(trials, usable_cores=2, calibration=cal).kernel == "unclear"
    # Without the calibration two SMT siblings on one core would look the same: unclear.
    without = model_nature(trials, usable_cores=2)
    assert without.kernel == "unclear"
    assert without.evidence[-1] == "threads busy without gain: memory-bound, or SMT siblings sharing a core"


def test_unclear_without_telling_trials_or_with_evidence_both_ways() -> None:
    only_processes = [trial(1000, workers=1, cpu_share=0.5), trial(1900, workers=2, cpu_share=0.97)]
    n = model_nature(only_processes, usable_cores=2)
    assert n.kernel == "unclear" and n.evidence == ("process workers 1→2: ×1.90",)
    both = [
        trial(1000, workers=1, threads=1, cpu_share=0.5),
        trial(1700, workers=1, threads=2, cpu_share=0.95),  # threads help: native ...
        trial(1000, backend="thread", workers=1, cpu_share=0.5),
        trial(1010, backend="thread", workers=2, cpu_share=0.5),  # ... yet a GIL: contradictory
    ]
    assert model_nature(both, usable_cores=2).kernel == "unclear"
    assert model_nature([], usable_cores=2).evidence == ("no clean trial measured a throughput",)


def test_contaminated_and_oversubscribed_trials_do_not_count() -> None:
    trials = [
        trial(1000, workers=1, cpu_share=0.5),
        trial(1900, workers=2, cpu_share=0.97),
        trial(990, backend="thread", workers=1, cpu_share=0.52),
        trial(400, backend="thread", workers=2, cpu_share=0.5, contaminated=True),  # read low
        trial(1700, workers=2, threads=2, cpu_share=0.99),  # 4 threads on 2 cores: no room
    ]
    n = model_nature(trials, usable_cores=2)
    assert n.kernel == "unclear"
    assert not any("thread" in e for e in n.evidence)


def test_the_mode_follows_the_cores_the_deployment_keeps_busy() -> None:
    assert mode_for([trial(1000, workers=2, cpu_share=0.95)], usable_cores=2) == "all"
    assert mode_for([trial(1000, workers=1, cpu_share=0.52)], usable_cores=2) == "single"
    assert mode_for([trial(1000, workers=2, cpu_share=0.0)], usable_cores=2) == "all"  # no CPU figure
    assert mode_for([trial(1000, workers=1, cpu_share=1.0)], usable_cores=1) == "single"
    assert mode_for([trial(1000, workers=2, cpu_share=0.3)], usable_cores=8) == "single"  # 2.4 of 8


def test_nature_round_trip_and_bad_input() -> None:
    n = Nature("python", ("thread ×2 kept 1.0 cores busy",))
    assert Nature.from_dict(n.to_dict()) == n
    assert n.describe() == "python (thread ×2 kept 1.0 cores busy)"
    with pytest.raises(
        ProfileError,
        match=r"^model.nature.kernel: must be one of python, blas, memory, io, unclear \(got 'gpu'\)$",
    ):
        Nature.from_dict({"kernel": "gpu"})
    with pytest.raises(ProfileError, match=r"^model.nature.evidence: must be a list of strings"):
        Nature.from_dict({"kernel": "blas", "evidence": "fast"})
