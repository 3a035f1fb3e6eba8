"""Host calibration end to end: ``tuner bench`` records it, ``tuner check --calibrate`` compares with it,
and the gate adjusts for a faster baseline host — or says that an older baseline has nothing to adjust by.

One configuration, windows of 0.2 s and a 1-s calibration, in this process (``tuner.cli.main``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tuner.cli import main
from tuner.profile import load_profile

ONE = [
    "--model", "builtin:mlp", "--backends", "thread", "--workers", "1", "--threads", "1",
    "--partition-sizes", "64", "--strategy", "grid", "--window", "0.2", "--items", "2048", "--budget", "60",
]  # fmt: skip


def _faster(src: Path, dst: Path, factor: float) -> None:
    """``src`` as if measured on a host ``factor`` times faster: its calibration and throughput scaled."""
    d = yaml.safe_load(src.read_text())
    for kernel in d["host"]["calibration"]["kernels"].values():
        for mode in ("single", "all"):
            if kernel.get(mode):
                kernel[mode]["score"] *= factor
                kernel[mode]["ci"] = [x * factor for x in kernel[mode]["ci"]]
    ev = d["evidence"]
    ev["throughput"] *= factor
    if ev.get("throughput_ci"):
        ev["throughput_ci"] = [x * factor for x in ev["throughput_ci"]]
    dst.write_text(yaml.safe_dump(d, sort_keys=False))


@pytest.mark.timeout(240)
def test_the_profile_records_the_host_speed_and_the_gate_adjusts_for_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prof = tmp_path / "mlp.yaml"
    code = main(["bench", *ONE, "--calibration", "1", "--out", str(prof)])
    said = capsys.readouterr()
    assert code == 0, said.err
    assert "host speed: calibration" in said.out and "model nature" in said.out, said.out
    p = load_profile(prof)
    cal = p.host.calibration
    assert cal is not None and cal.budget_s == 1.0 and cal.elapsed_s <= 1.5
    assert cal.cores == p.host.usable_cores and set(cal.kernels) == {"python", "blas", "memory"}
    assert p.model.nature is not None and p.model.nature.kernel in (
        "python",
        "blas",
        "memory",
        "io",
        "unclear",
    )

    # tuner check --calibrate: this host against the profile's, one line under the profile's.
    code = main(["check", str(prof), "--calibrate"])
    said = capsys.readouterr()
    assert code == 0, said.err
    lines = said.out.splitlines()
    assert lines[0].startswith(f"{prof}: ") and lines[1].startswith("  host speed: "), said.out
    assert "this host: calibration" in said.err

    # A baseline measured on a host 30% faster (its calibration and throughput both 1.3×): the
    # unchanged build is never a regression — ok when the calibrations explain it, else inconclusive.
    fast = tmp_path / "fast.yaml"
    _faster(prof, fast, 1.3)
    gate_args = ["--window", "0.2", "--max-regression", "10"]
    code = main(["bench", "--baseline", str(fast), "--calibration", "1", "--json", *gate_args])
    said = capsys.readouterr()
    gate = json.loads(said.out)["gate"]
    assert code in (0, 3), said.err
    assert code == (0 if gate["verdict"] == "ok" else 3)
    hs = gate["host_speed"]
    assert hs["baseline_calibration"] is not None and hs["calibration"] is not None
    assert gate["throughput_change_pct"] < -10 or hs["verdict"] is None, gate
    assert gate["same_host"] is not True  # one fingerprint, two speeds: never "the same host"

    # An older baseline (no calibration): said, and judged as before.
    old = tmp_path / "old.yaml"
    d = yaml.safe_load(prof.read_text())
    del d["host"]["calibration"], d["model"]["nature"]
    old.write_text(yaml.safe_dump(d, sort_keys=False))
    main(["bench", "--baseline", str(old), "--calibration", "0", *gate_args])
    said = capsys.readouterr()
    assert "re-measure the baseline with this version for host-adjusted verdicts" in said.out, said.out


SLEEPER = """
import time

from tuner.models import batch


def gen(n, seed):
    return list(range(n))


@batch(inputs=gen, bound="io")
def model(rows):
    time.sleep({ms} / 1000.0)
    return [r * 2 for r in rows]
"""


@pytest.mark.timeout(180)
def test_side_by_side_catches_the_slower_build_in_one_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "old.py").write_text(SLEEPER.replace("{ms}", "2"))
    (tmp_path / "new.py").write_text(SLEEPER.replace("{ms}", "4"))
    fast = ["--backends", "thread", "--workers", "2", "--threads", "1", "--partition-sizes", "16",
            "--strategy", "grid", "--window", "0.2", "--items", "1024"]  # fmt: skip
    assert main(["bench", "--model", "old.py:model", *fast, "--out", "old.yaml"]) == 0
    capsys.readouterr()
    # The pairing is under test, not the noise guard: a loaded CI box keeps its windows.
    code = main(["bench", "--baseline", "old.yaml", "--model", "new.py:model", "--against", "old.py:model",
                 "--window", "0.2", "--max-outside-load", "100", "--json"])  # fmt: skip
    said = capsys.readouterr()
    gate = json.loads(said.out)["gate"]
    assert code == 1, said.err
    sbs = gate["side_by_side"]
    assert gate["verdict"] == "regression" and sbs["against"] == "old.py:model"
    assert len(sbs["pairs"]) >= 3 and [p["order"] for p in sbs["pairs"][:2]] == ["AB", "BA"]
    assert sbs["ci_pct"][1] < -10 and "side by side with old.py:model" in said.err
    assert "regression against old.yaml: throughput" in said.err


def test_against_without_a_baseline_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--against", "old.py:model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "tuner: --against needs --baseline PROFILE: the configuration both versions run"
