"""``tuner run``: good and bad data files, a bad profile, failures sidecar, fault rehearsal."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tuner.hardware import Host

from .helpers import host_info, model_spec, write_profile


def run(cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cmd, "run", *args], capture_output=True, text=True, timeout=90)


@pytest.fixture
def sleep_profile(tmp_path: Path, this_host: Host) -> Path:
    return write_profile(
        tmp_path / "sleep.yaml",
        host_info(this_host),
        spec="builtin:sleep",
        backend="process",
        workers=2,
        partition_size=16,
        timeout_s=5.0,
        retries=3,
        backoff={"base_s": 0.001, "cap_s": 0.01},
        autoscale={"min_workers": 1, "max_workers": 2},
    )


@pytest.mark.timeout(60)
def test_npy_in_npy_out(tuner_cmd: list[str], tmp_path: Path, sleep_profile: Path) -> None:
    rows = np.arange(500, dtype=np.int64)
    np.save(tmp_path / "in.npy", rows)
    out = tmp_path / "out.npy"
    r = run(tuner_cmd, str(sleep_profile), "--input", str(tmp_path / "in.npy"), "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(out), rows * 2)
    assert "500 items · 500 outputs · 0 failed" in r.stderr
    assert r.stdout == ""  # data goes to files, diagnostics to stderr
    assert not Path(f"{out}.failures.jsonl").exists()


@pytest.mark.timeout(60)
def test_faults_rehearsal_gives_the_fault_free_outputs(
    tuner_cmd: list[str], tmp_path: Path, sleep_profile: Path
) -> None:
    rows = np.arange(2000, dtype=np.int64)
    np.save(tmp_path / "in.npy", rows)
    clean, faulty = tmp_path / "clean.npy", tmp_path / "faulty.npy"
    args = [str(sleep_profile), "--input", str(tmp_path / "in.npy")]
    r = run(tuner_cmd, *args, "--output", str(clean))
    assert r.returncode == 0, r.stderr
    r = run(
        tuner_cmd, *args, "--output", str(faulty), "--faults", "crash=0.05,exception=0.1,slow=0.1x4,seed=11"
    )
    assert r.returncode == 0, r.stderr
    assert clean.read_bytes() == faulty.read_bytes()
    assert " 0 retried" not in r.stderr, f"the fault plan injected nothing: {r.stderr}"
    assert " 0 workers replaced" not in r.stderr, "crashes were injected, so workers were replaced"


@pytest.mark.timeout(60)
def test_jsonl_in_jsonl_out_with_failures_sidecar(
    tuner_cmd: list[str], tmp_path: Path, this_host: Host
) -> None:
    profile = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host),
        spec=model_spec("double_or_fail"),
        backend="thread",
        partition_size=4,
    )
    items = [1, 2, -3, 4, 5, 6, -7, 8, 9, 10]
    (tmp_path / "in.jsonl").write_text("".join(f"{json.dumps(x)}\n" for x in items))
    out = tmp_path / "out.jsonl"
    r = run(tuner_cmd, str(profile), "-i", str(tmp_path / "in.jsonl"), "-o", str(out))
    assert r.returncode == 1, r.stderr
    assert "2 of 10 items failed" in r.stderr
    got = [json.loads(line) for line in out.read_text().splitlines()]
    assert got == [None if x < 0 else x * 2 for x in items]
    sidecar = [json.loads(line) for line in Path(f"{out}.failures.jsonl").read_text().splitlines()]
    assert [s["index"] for s in sidecar] == [2, 6]
    assert all(
        s["cause"] == "exception" and "negative item" in s["message"] and s["attempts"] >= 1 for s in sidecar
    )

    # The same run with a tolerated share of failures exits 0, sidecar at a chosen path.
    side = tmp_path / "fails.jsonl"
    r = run(
        tuner_cmd,
        str(profile),
        "-i",
        str(tmp_path / "in.jsonl"),
        "-o",
        str(out),
        "--failures",
        str(side),
        "--max-failed-share",
        "0.25",
    )
    assert r.returncode == 0, r.stderr
    assert len(side.read_text().splitlines()) == 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.jsonl", '{"a": 1}\nnot json\n', "line 2: invalid JSON"),
        ("empty.jsonl", "\n\n", "empty"),
        ("text.npy", "just text", "not a .npy file"),
        ("data.csv", "1,2,3\n", "unsupported input format"),
        ("missing.npy", None, "file not found"),
    ],
)
@pytest.mark.timeout(60)
def test_bad_data_file_is_one_line_exit_2_no_output(
    tuner_cmd: list[str], tmp_path: Path, sleep_profile: Path, name: str, content: str | None, message: str
) -> None:
    data = tmp_path / name
    if content is not None:
        data.write_text(content)
    out = tmp_path / "out.npy"
    r = run(tuner_cmd, str(sleep_profile), "--input", str(data), "--output", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tuner: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists() and not list(tmp_path.glob("out.npy*"))


@pytest.mark.timeout(60)
def test_bad_profile_is_one_line_exit_2_no_output(tuner_cmd: list[str], tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", np.arange(10))
    profile = tmp_path / "bad.yaml"
    profile.write_text("schema_version: 1\nname: x\nrecommended: {workers: 0}\n")
    out = tmp_path / "out.npy"
    r = run(tuner_cmd, str(profile), "--input", str(tmp_path / "in.npy"), "--output", str(out))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tuner: {profile}"), r.stderr
    assert not out.exists()
