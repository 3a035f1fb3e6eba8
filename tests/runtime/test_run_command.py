"""``tuner run``: good and bad data files, a bad profile, failures sidecar, fault rehearsal, bad arguments,
and the input checked against the item the profile was measured with (issue 13)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

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
    assert [s["message"] for s in sidecar] == ["ValueError: negative item -3", "ValueError: negative item -7"]
    # A deterministic error is not retried but split out: each poison item ran in its partition of
    # 4, in the half of 2 that held it, then alone — and only it failed.
    assert [(s["cause"], s["attempts"]) for s in sidecar] == [("exception", 3), ("exception", 3)]

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


@pytest.mark.timeout(60)
def test_two_outputs_to_npz_whole_and_with_placeholders(
    tuner_cmd: list[str], tmp_path: Path, this_host: Host
) -> None:
    profile = write_profile(
        tmp_path / "p.yaml",
        host_info(this_host),
        spec=model_spec("pairs_or_fail"),
        backend="thread",
        partition_size=4,
    )
    x = np.arange(10, dtype=np.float64)
    np.save(tmp_path / "in.npy", x)
    out = tmp_path / "out.npz"
    r = run(tuner_cmd, str(profile), "-i", str(tmp_path / "in.npy"), "-o", str(out))
    assert r.returncode == 0, r.stderr
    got = np.load(out)
    assert got.files == ["output_0", "output_1"]
    np.testing.assert_array_equal(got["output_0"], x * 2)
    np.testing.assert_array_equal(got["output_1"], x + 1)
    # a poison item: its partition comes back item by item, the others whole; all are joined in
    # input order, the failed row a zero placeholder marked in the mask
    x[6] = -1
    np.save(tmp_path / "in.npy", x)
    r = run(
        tuner_cmd, str(profile), "-i", str(tmp_path / "in.npy"), "-o", str(out), "--max-failed-share", "0.5"
    )
    assert r.returncode == 0, r.stderr
    assert "10 items · 9 outputs · 1 failed" in r.stderr
    got = np.load(out)
    assert got.files == ["output_0", "output_1", "failed"]
    assert got["failed"].tolist() == [i == 6 for i in range(10)]
    np.testing.assert_array_equal(got["output_0"], np.where(x < 0, 0, x * 2))
    np.testing.assert_array_equal(got["output_1"], np.where(x < 0, 0, x + 1))
    assert got["output_0"].dtype == np.float64


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


RUN_BAD_ARGS = [
    # issue 13: every numeric option finite and in its stated range
    (["--max-failed-share", "nan"], "--max-failed-share 'nan': not a finite number (expected a share from 0 to 1)"),
    (["--max-failed-share", "2"], "--max-failed-share '2': out of range (expected a share from 0 to 1)"),
    (["--timeout-s", "inf"], "--timeout-s 'inf': not a finite number (expected seconds > 0)"),
    (["--timeout-s", "0"], "--timeout-s '0': out of range (expected seconds > 0)"),
    (["--memory-limit-mb", "nan"], "--memory-limit-mb 'nan': not a finite number (expected megabytes > 0)"),
    (["--workers", "0"], "--workers '0': out of range (expected an integer >= 1)"),
    (["--threads-per-worker", "two"], "--threads-per-worker 'two': not an integer (expected an integer >= 1)"),
    (["--partition-size", "1.5"], "--partition-size '1.5': not an integer (expected an integer >= 1)"),
    (["--retries", "-1"], "--retries '-1': out of range (expected an integer >= 0)"),
    (["--backend", "gpu"], "--backend 'gpu': choose from process, thread, inline"),
    (["--faults", "slow=0.5xnan"], "--faults: fault plan 'slow=0.5xnan': slow factor xnan: must be >= 1 and finite"),
    # issue 13: blank values are errors, never a silent default
    (["--model", ""], "--model '': blank (expected a model spec, or omit --model)"),
    (["--faults", " "], "--faults ' ': blank"),
    (["--failures", ""], "--failures '': blank (expected a .jsonl file, or omit --failures)"),
    (["--backend", ""], "--backend '': blank"),
    (["--output", ""], "--output '': blank (expected a .npy, .npz or .jsonl file)"),
    (["--input", ""], "--input '': blank (expected a .npy, .npz or .jsonl file)"),
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("args", "message"), RUN_BAD_ARGS, ids=[" ".join(a) for a, _ in RUN_BAD_ARGS])
def test_bad_arguments_are_one_line_exit_2_nothing_written(
    tuner_cmd: list[str], tmp_path: Path, sleep_profile: Path, args: list[str], message: str
) -> None:
    np.save(tmp_path / "in.npy", np.arange(100, dtype=np.int64))
    out = tmp_path / "out" / "out.npy"
    out.parent.mkdir()
    # the bad value comes first: a later good --input/--output must not paper over it
    r = run(tuner_cmd, str(sleep_profile), *args, "--input", str(tmp_path / "in.npy"), "--output", str(out))
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"tuner: {message}"), line
    assert r.stdout == ""
    assert list(out.parent.iterdir()) == []


# --------------------------------------------------------------------------- issue 13: input check

# A model that leaves a mark when a worker loads it (so a test can see that none started) and,
# like a real one, rejects rows of another width: without the check, every partition fails.
MARKING_MODEL = """
from pathlib import Path

import numpy as np

from tuner.models import factory


@factory
def load():
    Path({mark!r}).touch()

    def predict(rows):
        x = np.asarray(rows)
        if x.shape[1:] != (256,):
            raise ValueError(f"expected rows of 256, got {{x.shape[1:]}}")
        return x.astype(np.float32).sum(axis=1)

    return predict
"""


@pytest.fixture
def measured_profile(tmp_path: Path, this_host: Host) -> tuple[Path, Path]:
    """A profile whose model was measured on float32[256] rows, and the file its workers touch."""
    from tuner.profile import InputInfo, ModelRef, load_profile, save_profile

    mark = tmp_path / "marks" / "loaded"
    mark.parent.mkdir()
    model = tmp_path / "models" / "marking.py"
    model.parent.mkdir()
    model.write_text(MARKING_MODEL.format(mark=str(mark)))
    spec = f"{model}:load"
    path = write_profile(
        tmp_path / "profiles" / "p.yaml",
        host_info(this_host),
        spec=spec,
        backend="thread",
        workers=2,
        partition_size=16,
    )
    profile = load_profile(path)
    item = InputInfo(source="builtin generator", item="float32[256]", items=64)
    save_profile(profile.model_copy(update={"model": ModelRef(spec=spec, input=item)}), path)
    return path, mark


def _rows(tmp_path: Path, name: str, value: Any) -> Path:
    path = tmp_path / "data" / name
    path.parent.mkdir(exist_ok=True)
    if name.endswith(".npy"):
        np.save(path, value)
    else:
        path.write_text("".join(json.dumps(v) + "\n" for v in value))
    return path


MISMATCHES = [
    # the case: rows 3 wide for a model measured on float32[256]
    ("rows.npy", np.zeros((64, 3)), "items are float64[3], the profile was measured with float32[256] (each item is [3], not [256])"),
    ("ids.npy", np.zeros((64, 256), dtype=np.int64), "items are int64[256], the profile was measured with float32[256] (integer values, not float)"),
    ("wide.npy", np.zeros((64, 256)), "items are float64[256], the profile was measured with float32[256] (twice the bytes per value"),
    ("flat.npy", np.zeros(64, dtype=np.float32), "items are float32, the profile was measured with float32[256] (each item is one value, not [256])"),
    ("rows.jsonl", [[0.5, 1.5, 2.5]] * 8, "items are float[3], the profile was measured with float32[256] (each item is [3], not [256])"),
]  # fmt: skip


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("name", "value", "message"), MISMATCHES, ids=[m[0] for m in MISMATCHES])
def test_input_unlike_the_measured_item_is_refused_before_any_worker_starts(
    tuner_cmd: list[str],
    tmp_path: Path,
    measured_profile: tuple[Path, Path],
    name: str,
    value: Any,
    message: str,
) -> None:
    profile, mark = measured_profile
    data = _rows(tmp_path, name, value)
    out = tmp_path / "out" / "out.npy"
    out.parent.mkdir()
    r = run(tuner_cmd, str(profile), "--input", str(data), "--output", str(out))
    assert r.returncode == 2, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"tuner: {data}: {message}"), line
    assert line.endswith("; pass --no-input-check to run anyway"), line
    assert list(out.parent.iterdir()) == []  # no output, no failures sidecar
    assert not mark.exists(), "a worker loaded the model"


@pytest.mark.timeout(60)
def test_no_input_check_runs_a_deliberate_change(
    tuner_cmd: list[str], tmp_path: Path, measured_profile: tuple[Path, Path]
) -> None:
    profile, mark = measured_profile
    rows = np.arange(64 * 256, dtype=np.float64).reshape(64, 256) / 1000  # float64, not the float32 measured
    data = _rows(tmp_path, "wide.npy", rows)
    out = tmp_path / "out.npy"
    r = run(tuner_cmd, str(profile), "--input", str(data), "--output", str(out), "--no-input-check")
    assert r.returncode == 0, r.stderr
    assert np.allclose(np.load(out), rows.astype(np.float32).sum(axis=1))
    assert "64 items · 64 outputs · 0 failed" in r.stderr
    assert mark.exists()


@pytest.mark.timeout(60)
def test_runtime_map_refuses_an_array_unlike_the_measured_item(measured_profile: tuple[Path, Path]) -> None:
    from tuner.errors import ConfigError
    from tuner.runtime import Runtime

    profile, _ = measured_profile
    with Runtime.from_profile(profile) as rt:
        with pytest.raises(ConfigError) as e:
            list(rt.map(np.zeros((64, 3)), on_failure="yield"))
        assert str(e.value) == (
            "Runtime.map: items are float64[3], the profile was measured with float32[256] "
            "(each item is [3], not [256]); pass check_input=False to Runtime.from_profile "
            "(or set rt.check_input = False) to run anyway"
        )
        assert rt.stats().items_done == 0  # refused as a whole, not failed item by item
        good = np.ones((40, 256), dtype=np.float32)
        assert list(rt.map(good)) == [256.0] * 40
        rt.check_input = False  # a deliberate change: the model sees the data (and fails it here)
        outcomes = list(rt.map(np.zeros((20, 3)), on_failure="yield"))
        assert len(outcomes) == 20 and all(getattr(o, "cause", None) == "exception" for o in outcomes)
    # the same choice made where the runtime is made
    with Runtime.from_profile(profile, check_input=False) as rt:
        outcomes = list(rt.map(np.zeros((8, 3)), on_failure="yield"))
        assert len(outcomes) == 8 and all(getattr(o, "cause", None) == "exception" for o in outcomes)


@pytest.mark.timeout(90)
def test_a_profile_run_from_another_folder_keeps_dtypes_and_says_start_up_apart(
    tuner_cmd: list[str], tmp_path: Path, this_host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 18: the model path is relative to the profile file (`tuner run other/dir/p.yaml` from
    elsewhere finds it); failed items keep an integer output integer, marked in a mask; the line
    reports the start-up apart from the steady rate."""
    import shutil

    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    shutil.copy(Path(model_spec("double_or_fail").rpartition(":")[0]), project / "models" / "m.py")
    monkeypatch.chdir(project)  # the sweep ran here and named models/m.py
    write_profile(
        project / "other" / "dir" / "p.yaml", host_info(this_host), spec="models/m.py:double_or_fail",
        backend="process", workers=1, partition_size=4,
    )  # fmt: skip
    rows = np.array([1, 2, -3, 4, 5, 6, 7, 8], dtype=np.int64)
    np.save(tmp_path / "in.npy", rows)
    r = subprocess.run(
        [*tuner_cmd, "run", "project/other/dir/p.yaml", "-i", "in.npy", "-o", "out.npy", "--max-failed-share", "0.5"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.dtype == np.int64 and out.tolist() == [2, 4, 0, 8, 10, 12, 14, 16]  # not float64 with NaN
    assert np.load(tmp_path / "out.failed.npy").tolist() == [i == 2 for i in range(8)]
    assert re.search(r"\(start-up [\d.,]+ s, then [\d.,kM]+ items/s over [\d.,]+ s; ", r.stderr), r.stderr
