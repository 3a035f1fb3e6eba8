"""The calibration as the profile stores it (host.calibration): round trip, one clear line for bad input."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from typing import Any

import pytest

from tuner.calibrate import KERNELS, MODES, Calibration, KernelScore, compare
from tuner.errors import ExitCode, ProfileError, exit_code_for

from .helpers import RECORDED, recorded

pytestmark = pytest.mark.timeout(10)
BUSY = KernelScore(4.0, (3.0, 4.5), reps=3, discarded=5, stable=False, busy=True, outside=0.1)


def raw() -> dict[str, Any]:
    return json.loads(RECORDED.read_text())


def test_the_stored_form_reads_back_to_the_same_record() -> None:
    d = raw()
    cal = Calibration.from_dict(d)
    assert cal.to_dict() == d
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    # Stable key names, documented in tuner.calibrate: the profile schema will list them.
    assert list(d) == [
        "version", "cores", "budget_s", "elapsed_s", "start_s", "setup_s",
        "outside_load", "outside_load_max", "kernels",
    ]  # fmt: skip
    for k in KERNELS:
        assert list(d["kernels"][k]) == ["unit", *MODES]
        assert list(d["kernels"][k]["single"]) == [
            "score",
            "ci",
            "reps",
            "discarded",
            "stable",
            "busy",
            "outside",
        ]


def test_describe_is_one_line_naming_every_kernel() -> None:
    line = recorded().describe()
    assert "\n" not in line
    assert line == (
        "calibration 4.9 s of 5 s: python 4.28 Mloop/s (×1.85 on 2 cores) · blas 136 GFLOP/s (×1.35 on "
        "2 cores) · memory 23.6 GB/s (×1.24 on 2 cores); outside load 1%"
    )
    busy = replace(recorded(), outside_load=0.3, scores={"python": {"single": BUSY, "all": None}})
    assert (
        busy.describe()
        == "calibration 4.9 s of 5 s: python 4 Mloop/s BUSY; 5 of 8 reps busy (discarded); outside load 30%"
    )


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(d)
    *keys, last = path.split(".")
    node = d
    for k in keys:
        node = node[k]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("version", KeyError, "host.calibration.version: must be an integer >= 1 (got None)"),
        ("cores", 0, "host.calibration.cores: must be an integer >= 1 (got 0)"),
        ("budget_s", "5s", "host.calibration.budget_s: must be a number >= 0 (got '5s')"),
        ("kernels", [], "host.calibration.kernels: must be a mapping (got [])"),
        ("kernels.gpu", {"unit": "x"}, "host.calibration.kernels.gpu: unknown kernel (known: python, blas, memory)"),
        ("kernels.python.single.score", "fast", "host.calibration.kernels.python.single.score: must be a number >= 0 (got 'fast')"),
        ("kernels.python.single.score", 0, "host.calibration.kernels.python.single.score: must be > 0 (got 0.0)"),
        ("kernels.blas.all.ci", [5, 1], "host.calibration.kernels.blas.all.ci: must be [low, high] with 0 < low <= high (got [5, 1])"),
        ("kernels.blas.all.ci", 3, "host.calibration.kernels.blas.all.ci: must be [low, high] with 0 < low <= high (got 3)"),
        ("kernels.memory.single.reps", -1, "host.calibration.kernels.memory.single.reps: must be an integer >= 0 (got -1)"),
        ("kernels.memory.single.busy", "no", "host.calibration.kernels.memory.single.busy: must be true or false (got 'no')"),
        ("kernels.memory.all", 7, "host.calibration.kernels.memory.all: must be a mapping or null (got 7)"),
    ],
)  # fmt: skip
def test_bad_input_gets_one_line_naming_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(ProfileError) as e:
        Calibration.from_dict(_set(raw(), path, value))
    assert str(e.value) == message
    assert exit_code_for(e.value) == ExitCode.BAD_INPUT


def test_not_a_mapping_and_the_where_prefix() -> None:
    with pytest.raises(
        ProfileError, match=r"^profiles/mlp.yaml: host.calibration: must be a mapping \(got 'fast'\)$"
    ):
        Calibration.from_dict("fast", where="profiles/mlp.yaml: host.calibration")


def test_a_later_version_is_read_but_never_compared() -> None:
    # A profile written by a later tuner (new kernel, changed work) reads without error ...
    d = _set(_set(raw(), "version", 2), "kernels.gpu", {"unit": "TFLOP/s", "single": None, "all": None})
    later = Calibration.from_dict(d)
    assert later.version == 2
    # ... and its scores are not compared with this version's: the work differs.
    speed = compare(later, recorded())
    assert speed.ratios == ()
    assert speed.problems == ("calibration version 2 vs 1: the kernels differ",)
