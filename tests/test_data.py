"""Data files: reading inputs, writing outputs, atomic writes, and every error text."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tuner.data
from tuner.data import (
    atomic_write_bytes,
    atomic_write_text,
    load_inputs,
    save_jsonl_records,
    save_outputs,
)
from tuner.errors import BadInput, DataError


def listing(folder: Path) -> list[str]:
    """Every entry of a folder, hidden temp files included."""
    return sorted(os.listdir(folder))


# --------------------------------------------------------------------------- load_inputs


def test_load_npy_rows_are_items(tmp_path: Path) -> None:
    rows = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "x.npy", rows)
    got = load_inputs(tmp_path / "x.npy")
    assert isinstance(got, np.ndarray)
    np.testing.assert_array_equal(got, rows)


def test_load_jsonl_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text('{"a": 1}\n\n  \n[1, 2]\r\n"text"\n3.5\nnull\n', encoding="utf-8")
    assert load_inputs(str(path)) == [{"a": 1}, [1, 2], "text", 3.5, None]


def test_load_jsonl_accepts_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert load_inputs(path) == [{"a": 1}]


def test_invalid_json_names_file_line_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    lines = ['{"a": 1}'] * 5 + ["", '{"a": 1 "b": 2}', '{"a": 3}']
    Path("data.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        load_inputs("data.jsonl")
    assert str(e.value) == "data.jsonl line 7: invalid JSON (Expecting ',' delimiter: column 9)"
    Path("data.jsonl").write_text("1\n  [1 2]\n")
    with pytest.raises(DataError) as e:
        load_inputs("data.jsonl")
    assert str(e.value) == "data.jsonl line 2: invalid JSON (Expecting ',' delimiter: column 6)"
    assert isinstance(e.value, BadInput)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("x.npy", b"hello,world\n1,2\n", "x.npy: not a .npy file (no NUMPY header)"),
        ("x.npy", b"", "x.npy: not a .npy file (no NUMPY header)"),
        ("x.csv", b"1,2\n", "x.csv: unsupported input format '.csv' (use .npy, .npz or .jsonl)"),
        ("x", b"1\n", "x: unsupported input format (no extension) (use .npy, .npz or .jsonl)"),
        ("data.jsonl", b"\n\n", "data.jsonl: empty (0 items)"),
        ("data.jsonl", b'1\n"\xff"\n', "data.jsonl line 2: not UTF-8 text (invalid start byte)"),
    ],
)
def test_bad_input_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, content: bytes, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(name).write_bytes(content)
    with pytest.raises(DataError) as e:
        load_inputs(name)
    assert str(e.value) == message


def test_bad_npy_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cases: list[tuple[Any, str]] = [
        (np.zeros((0, 3)), "x.npy: empty (0 rows)"),
        (np.float64(1.5), "x.npy: holds a single value (0-d array); expected rows of items"),
        (
            np.array([{"a": 1}], dtype=object),
            "x.npy: holds Python objects (object dtype); save a numeric array",
        ),
    ]
    for arr, message in cases:
        np.save("x.npy", arr, allow_pickle=True)
        with pytest.raises(DataError) as e:
            load_inputs("x.npy")
        assert str(e.value) == message
    np.savez("y.npy", a=np.zeros(3))  # np.savez appends .npz to the name
    os.replace("y.npy.npz", "y.npy")
    with pytest.raises(DataError) as e:
        load_inputs("y.npy")
    assert str(e.value) == "y.npy: not a .npy file (it is a .npz archive; save one array with np.save)"


def test_truncated_npy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", np.zeros((100, 10)))
    data = Path("x.npy").read_bytes()
    Path("x.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError) as e:
        load_inputs("x.npy")
    assert str(e.value).startswith("x.npy: not a .npy file (")


def test_missing_file_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        load_inputs("nope.npy")
    assert str(e.value) == "nope.npy: file not found"
    os.mkdir("d.jsonl")
    with pytest.raises(DataError) as e:
        load_inputs("d.jsonl")
    assert str(e.value) == "d.jsonl: is a folder, not a file"


# --------------------------------------------------------------------------- save_outputs


def test_save_npy_from_list_of_arrays_and_from_array(tmp_path: Path) -> None:
    rows = [np.full(10, i, dtype=np.float32) for i in range(3)]
    save_outputs(tmp_path / "out.npy", rows)
    np.testing.assert_array_equal(load_inputs(tmp_path / "out.npy"), np.stack(rows))
    save_outputs(tmp_path / "out.npy", np.ones((4, 10)))  # replaces the previous file
    assert load_inputs(tmp_path / "out.npy").shape == (4, 10)  # type: ignore[union-attr]
    save_outputs(tmp_path / "ints.npy", [1, 2, 3])
    np.testing.assert_array_equal(np.load(tmp_path / "ints.npy"), [1, 2, 3])
    assert listing(tmp_path) == ["ints.npy", "out.npy"]


def test_save_jsonl_converts_numpy(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    save_outputs(path, [np.int64(3), np.float32(0.5), np.arange(3), {"k": np.bool_(True)}, "s"])
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        3,
        0.5,
        [0, 1, 2],
        {"k": True},
        "s",
    ]
    save_outputs(path, np.arange(6).reshape(3, 2))
    assert path.read_text() == "[0, 1]\n[2, 3]\n[4, 5]\n"


@pytest.mark.parametrize(
    ("name", "outputs", "message"),
    [
        (
            "out.npy",
            [np.zeros(2), np.zeros(3)],
            "out.npy: outputs cannot be stacked into one array "
            "(all input arrays must have the same shape); use .jsonl",
        ),
        ("out.npy", [{"a": 1}, {"b": 2}], "out.npy: outputs are Python objects, not numbers; use .jsonl"),
        (
            "out.jsonl",
            [1, 2, object(), 4],
            "out.jsonl: output 2 cannot be written as JSON (object is not JSON serializable)",
        ),
        ("out.txt", [1], "out.txt: unsupported output format '.txt' (use .npy, .npz or .jsonl)"),
    ],
)
def test_failed_save_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, outputs: Any, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        save_outputs(name, outputs)
    assert str(e.value) == message
    assert listing(tmp_path) == []


def test_failed_save_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    save_outputs(path, [1, 2])
    with pytest.raises(DataError):
        save_outputs(path, [3, object()])
    assert path.read_text() == "1\n2\n"
    assert listing(tmp_path) == ["out.jsonl"]


def test_save_into_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as e:
        save_outputs("sub/out.npy", [1])
    assert str(e.value) == f"sub/out.npy: folder not found: {tmp_path / 'sub'}"


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    path = tmp_path / "profile.yaml"
    atomic_write_text(path, "a: 1\n")
    assert path.read_text() == "a: 1\n"
    atomic_write_bytes(path, b"b: 2\n")
    assert path.read_bytes() == b"b: 2\n"
    assert listing(tmp_path) == ["profile.yaml"]


def test_atomic_write_gives_a_normal_file_mode(tmp_path: Path) -> None:
    # mkstemp makes 0600 files; a profile must be readable like any file the user writes.
    umask = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "new.txt", "x")
        assert (tmp_path / "new.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "old.txt").write_text("old")
        os.chmod(tmp_path / "old.txt", 0o640)
        atomic_write_text(tmp_path / "old.txt", "new")
        assert (tmp_path / "old.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(umask)


def test_atomic_write_creates_folders_only_when_asked(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "profile.yaml"
    with pytest.raises(DataError, match="folder not found"):
        atomic_write_text(target, "x\n")
    assert listing(tmp_path) == []
    atomic_write_text(target, "x\n", parents=True)
    assert target.read_text() == "x\n"
    assert listing(target.parent) == ["profile.yaml"]


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
def test_atomic_write_never_changes_the_process_umask(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reading the umask means setting it, process-wide: another thread creating a file meanwhile
    # would get the temporary value. The writer must let the kernel apply it instead.
    calls: list[int] = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))
    atomic_write_text(tmp_path / "new.txt", "x")
    assert calls == []


def test_failed_replace_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "profile.yaml"
    path.write_text("old\n")

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tuner.data.os, "replace", refuse)
    with pytest.raises(DataError) as e:
        atomic_write_text(path, "new\n")
    assert str(e.value) == f"{path}: cannot write (Permission denied)"
    assert path.read_text() == "old\n"
    assert listing(tmp_path) == ["profile.yaml"]


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    def records() -> Any:
        yield {"index": 0, "error": "timeout"}
        raise KeyboardInterrupt  # Ctrl-C half-way through writing

    with pytest.raises(KeyboardInterrupt):
        save_jsonl_records(tmp_path / "failures.jsonl", records())
    assert listing(tmp_path) == []


def test_save_jsonl_records(tmp_path: Path) -> None:
    path = tmp_path / "out.failures.jsonl"
    save_jsonl_records(
        path, [{"index": np.int64(4), "error": "ValueError: x"}, {"index": 9, "error": "timeout"}]
    )
    assert [json.loads(line) for line in path.read_text().splitlines()] == [
        {"index": 4, "error": "ValueError: x"},
        {"index": 9, "error": "timeout"},
    ]


def test_roundtrip_outputs_to_inputs(tmp_path: Path) -> None:
    for name in ("o.npy", "o.jsonl"):
        save_outputs(tmp_path / name, np.arange(6).reshape(3, 2))
        np.testing.assert_array_equal(np.asarray(load_inputs(tmp_path / name)), np.arange(6).reshape(3, 2))
