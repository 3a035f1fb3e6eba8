"""The scaling profile: schema, strict loading with one-line errors, atomic saving, check and schema.

Each bad profile in ``tests/fixtures/profiles/`` marks the line its error must point at with
``# <-- error``; the table below says which key path and words the message must carry.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.errors import DataError, ProfileError
from tuner.profile import (
    HEADER,
    SCHEMA_VERSION,
    Recommended,
    RecommendedOverride,
    ScalingProfile,
    StrictLoader,
    dump_profile_text,
    load_profile,
    parse_profile_text,
    profile_json_schema,
    save_profile,
)
from tuner.profile.errors import format_loc, show

FIXTURES = Path(__file__).parent / "fixtures" / "profiles"
GOOD = FIXTURES / "good.yaml"
MARK = "# <-- error"

# file -> (key path the message names, or "" for whole-file errors; words the message must hold)
BAD: dict[str, tuple[str, str]] = {
    "unknown_key.yaml": ("recommended.colour", "unknown key"),
    "typo_key.yaml": ("recommended.wrkers", "unknown key (did you mean 'workers'?)"),
    "duplicate_key.yaml": ("", "duplicate key 'name' (first at line 3)"),
    "duplicate_nested_key.yaml": ("recommended", "duplicate key 'workers' (first at line 19)"),
    "wrong_type.yaml": ("recommended.workers", "expected an integer, got 'two'"),
    "bool_as_int.yaml": ("recommended.workers", "expected an integer, got true"),
    "number_as_string.yaml": ("tool_version", "expected a string, got 0.1 (put it in quotes)"),
    "workers_zero.yaml": ("recommended.workers", "must be >= 1 (got 0)"),
    "min_gt_max.yaml": ("autoscale", "max_workers (2) < min_workers (4)"),
    "workers_outside_autoscale.yaml": ("recommended.workers", "(8) outside autoscale bounds 1–2"),
    "timeout_zero.yaml": ("recommended.timeout_s", "must be > 0 (got 0)"),
    "negative_retries.yaml": ("recommended.retries", "must be >= 0 (got -1)"),
    "backoff_cap_below_base.yaml": ("recommended.backoff", "cap_s (0.01) < base_s (0.05)"),
    "bad_backend.yaml": ("recommended.backend", "must be 'process', 'thread', 'inline' or 'ray' (got 'gpu')"),
    "nan_throughput.yaml": ("evidence.throughput", "must be a finite number > 0 (got nan)"),
    "inf_timeout.yaml": ("recommended.timeout_s", "must be a finite number > 0 (got inf)"),
    "negative_inf_delay.yaml": ("autoscale.downscale_delay_s", "must be a finite number >= 0 (got -inf)"),
    "nan_in_interval.yaml": ("evidence.throughput_ci[1]", "must be a finite number >= 0 (got nan)"),
    "float_overflow.yaml": ("host.memory_total_gb", "must be a finite number > 0 (got 1e+400: too large)"),
    "not_yaml.yaml": ("", "not valid YAML: mapping values are not allowed here"),
    "empty.yaml": ("", "empty file"),
    "comments_only.yaml": ("", "empty file"),
    "top_level_list.yaml": ("", "top level must be a mapping (got a list)"),
    "missing_recommended.yaml": ("", "missing required key 'recommended'"),
    "schema_version_2.yaml": ("schema_version", "unsupported schema version 2"),
    "bad_platform_key.yaml": ("platforms.solaris", "unknown key (allowed: linux, darwin, windows)"),
    "bad_platform_merge.yaml": ("platforms.darwin", "cap_s (0.01) < base_s (0.05)"),
    "python_object.yaml": ("name", "YAML tag '!!python/object/apply:os.mkdir' is not allowed"),
    "alias_bomb.yaml": ("l4", "too many YAML nodes"),
    "deep_flow_nesting.yaml": ("evidence", "nested deeper than 32 levels"),
    "deep_block_nesting.yaml": ("evidence", "nested deeper than 32 levels"),
    "huge_integer.yaml": ("recommended.workers", "integer too long (5000 digits)"),
}


def _marked_line(path: Path) -> int | None:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if MARK in line:
            return n
    return None


def _check(
    tuner_cmd: list[str], *paths: str | Path, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*tuner_cmd, "check", *map(str, paths)],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=50,
        cwd=cwd,
    )


def test_corpus_is_complete() -> None:
    on_disk = {p.name for p in FIXTURES.glob("*.yaml")} - {"good.yaml"}
    assert on_disk == set(BAD), "every bad fixture needs an expectation, and every expectation a file"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_profile_is_one_clear_line(name: str, tuner_cmd: list[str], tmp_path: Path) -> None:
    path = FIXTURES / name
    key_path, words = BAD[name]
    # cwd = tmp_path: the !!python/object fixture would create 'pwned_by_yaml' there if it ran.
    proc = _check(tuner_cmd, path, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    msg = lines[0]
    assert msg.startswith(f"tuner: {path}"), msg
    line = _marked_line(path)
    if line is not None:
        assert msg.startswith(f"tuner: {path} line {line}:"), msg
    if key_path:
        assert f": {key_path}:" in msg or f": {key_path} (" in msg or f": {key_path}." in msg, msg
    assert words in msg, msg
    assert not (tmp_path / "pwned_by_yaml").exists()


@pytest.mark.timeout(60)
def test_oversized_file_is_one_clear_line(tuner_cmd: list[str], tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(GOOD.read_text(encoding="utf-8") + "# " + "x" * (1 << 20) + "\n", encoding="utf-8")
    proc = _check(tuner_cmd, big)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"tuner: {big}: too large for a profile (more than 1024 KiB)\n"


@pytest.mark.timeout(60)
def test_a_huge_document_is_refused_while_it_is_read() -> None:
    # 1 MiB of `[1,1,1,...]` is half a million YAML nodes: counting them after composing the
    # tree cost ~350 MB and seconds before saying "too many nodes"; refuse as they are read.
    text = "name: x\nl: [" + "1," * ((1 << 20) // 2 - 16) + "1]\n"
    tracemalloc.start()
    try:
        with pytest.raises(ProfileError) as info:
            parse_profile_text(text, "wide.yaml")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(info.value) == "wide.yaml line 2: l: too many YAML nodes (more than 20000)"
    assert peak < 64 * 2**20, f"peak {peak / 2**20:.0f} MiB"


def test_strict_loader_alone_bounds_depth() -> None:
    # For anyone who uses the loader directly: a YAMLError, not a RecursionError.
    with pytest.raises(yaml.YAMLError, match="nested deeper than 32 levels"):
        yaml.load("a: " + "[" * 5000 + "]" * 5000, Loader=StrictLoader)  # a SafeLoader subclass: safe


def _number_fields(schema: dict[str, Any]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
    """(key path, JSON Schema) of every float field of the profile; list items at index 0."""
    defs = schema["$defs"]

    def options(node: dict[str, Any]) -> list[dict[str, Any]]:
        node = defs[node["$ref"].split("/")[-1]] if "$ref" in node else node
        found = []
        for option in node.get("anyOf", [node]):
            found.append(defs[option["$ref"].split("/")[-1]] if "$ref" in option else option)
        return found

    def walk(node: dict[str, Any], loc: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], dict[str, Any]]]:
        for option in options(node):
            if option.get("type") == "number":
                yield loc, option
            for key, child in option.get("properties", {}).items():
                yield from walk(child, (*loc, key))
            for i, child in enumerate(option.get("prefixItems", [])):
                yield from walk(child, (*loc, i))
            if isinstance(option.get("items"), dict):
                yield from walk(option["items"], (*loc, 0))

    yield from walk(schema, ())


def _put(data: dict[str, Any], loc: tuple[Any, ...], value: float) -> None:
    node: Any = data
    for part, after in itertools.pairwise(loc):
        if isinstance(node, dict) and part not in node:
            node[part] = [1.0, 2.0] if isinstance(after, int) else {}  # an interval, or a mapping
        node = node[part]
    node[loc[-1]] = value


def _range_words(number: dict[str, Any]) -> str:
    words = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
    return " and".join(f" {op} {number[k]:g}" for k, op in words.items() if k in number)


NUMBER_FIELDS = list(_number_fields(profile_json_schema()))


def test_every_number_field_is_swept() -> None:
    # The sweep below covers every float of the schema; a few that must be among them:
    paths = {".".join(map(str, loc)) for loc, _ in NUMBER_FIELDS}
    assert {"recommended.timeout_s", "evidence.throughput_ci.1", "platforms.darwin.backoff.cap_s"} <= paths
    assert len(paths) > 40


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=["nan", "inf", "-inf"])
def test_no_number_field_takes_nan_or_infinity(value: float) -> None:
    good = yaml.safe_load(GOOD.read_text(encoding="utf-8"))
    token = {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}[show(value)]
    for loc, number in NUMBER_FIELDS:
        data = copy.deepcopy(good)
        _put(data, loc, value)
        text = yaml.safe_dump(data, sort_keys=False)
        with pytest.raises(ProfileError) as info:
            parse_profile_text(text, "p.yaml")
        message = str(info.value)
        expected = f": {format_loc(loc)}: must be a finite number{_range_words(number)} (got {show(value)})"
        assert message.startswith("p.yaml line ") and message.endswith(expected), (loc, message)
        line = int(message.split()[2].rstrip(":"))
        assert token in text.splitlines()[line - 1], (loc, message)


def test_strict_loader_alone_rejects_duplicates() -> None:
    # For anyone who uses the loader directly with yaml.load rather than through load_profile.
    with pytest.raises(yaml.YAMLError, match="duplicate key 'a' \\(first at line 1\\)"):
        yaml.load("a: 1\nb: 2\na: 3\n", Loader=StrictLoader)  # a SafeLoader subclass: safe


def test_python_tag_is_never_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProfileError, match="is not allowed"):
        load_profile(FIXTURES / "python_object.yaml")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.timeout(60)
def test_check_good_profile(tuner_cmd: list[str]) -> None:
    proc = _check(tuner_cmd, GOOD)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == (
        f"{GOOD}: ok — process ×2 · 1 thread · partition 64 · timeout 0.25 s · autoscale 1–2"
        " · hedge after 2.1 ms · overrides for darwin, windows · outside load 3% of 2 cores (1 of 14 windows discarded as busy)"
        " · online: batches ≤64 within 2 ms, max pending 2400 (48,000 requests/s at p99 ≤ 50 ms)\n"
    )


@pytest.mark.timeout(60)
def test_check_several_files_reports_each(tuner_cmd: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    proc = _check(tuner_cmd, GOOD, FIXTURES / "workers_zero.yaml", missing)
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"{GOOD}: ok — ")
    errors = proc.stderr.splitlines()
    assert len(errors) == 2, proc.stderr
    assert "workers_zero.yaml line" in errors[0]
    assert errors[1] == f"tuner: {missing}: file not found"


def test_load_errors_name_file_and_reason(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"nope\.yaml: file not found$"):
        load_profile(tmp_path / "nope.yaml")
    with pytest.raises(ProfileError, match="is a folder"):
        load_profile(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(binary)


def test_typo_does_not_also_report_the_missing_key(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_profile(FIXTURES / "typo_key.yaml")
    assert "more)" not in str(info.value)  # the missing 'workers' is the same mistake


def test_yaml_bool_key_is_caught(tmp_path: Path) -> None:
    text = GOOD.read_text(encoding="utf-8").replace("  faults_observed:", "  yes: 1\n  faults_observed:")
    bad = tmp_path / "yes.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(
        ProfileError, match=r"evidence: key 'yes' is read as true, not a name; put it in quotes"
    ):
        load_profile(bad)


def test_exponent_without_a_dot_is_a_number(tmp_path: Path) -> None:
    """YAML 1.2 reads 25e-2 as a float (PyYAML's YAML 1.1 rules read it as a string)."""
    text = GOOD.read_text(encoding="utf-8")
    assert "  timeout_s: 0.25\n" in text
    written = tmp_path / "exp.yaml"
    written.write_text(text.replace("  timeout_s: 0.25\n", "  timeout_s: 25e-2\n"), encoding="utf-8")
    assert load_profile(written).recommended.timeout_s == 0.25
    # a word that only looks like one stays a word, and the field says so
    written.write_text(text.replace("  timeout_s: 0.25\n", "  timeout_s: 25e\n"), encoding="utf-8")
    line = text.splitlines().index("  timeout_s: 0.25") + 1
    with pytest.raises(
        ProfileError, match=rf"line {line}: recommended.timeout_s: expected a number, got '25e'"
    ):
        load_profile(written)


def test_round_trip(tmp_path: Path) -> None:
    profile = load_profile(GOOD)
    target = tmp_path / "deep" / "er" / "mlp.yaml"  # save creates the folders
    assert save_profile(profile, target) == target
    again = load_profile(target)
    assert again == profile
    text = target.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    assert text == dump_profile_text(profile)
    # Key order is the schema's, so a person finds things where the docs say.
    top = [k for k in yaml.safe_load(text)]
    assert top == [k for k in ScalingProfile.model_fields if k in top]
    assert "null" not in text.split("platforms:")[0]  # no nulls outside explicit overrides
    # An explicit `timeout_s: null` override (= no timeout on Windows) survives the trip.
    assert again.effective_recommended("windows").timeout_s is None
    assert again.effective_recommended("linux").timeout_s == 0.25


def test_save_is_atomic_when_serialising_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile(GOOD)
    target = tmp_path / "mlp.yaml"
    target.write_text("old contents\n", encoding="utf-8")

    def boom(*args: object, **kwargs: object) -> str:
        raise yaml.representer.RepresenterError("cannot represent")

    monkeypatch.setattr(yaml, "safe_dump", boom)
    with pytest.raises(yaml.YAMLError):
        save_profile(profile, target)
    assert target.read_text(encoding="utf-8") == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mlp.yaml"]


def test_save_is_atomic_when_writing_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile(GOOD)
    target = tmp_path / "mlp.yaml"
    target.write_text("old contents\n", encoding="utf-8")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(DataError) as info:
        save_profile(profile, target)
    assert str(info.value) == f"{target}: cannot write (No space left on device)"
    assert target.read_text(encoding="utf-8") == "old contents\n"
    assert [p.name for p in tmp_path.iterdir()] == ["mlp.yaml"]


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
def test_save_respects_the_umask(tmp_path: Path) -> None:
    # A saved profile gets the mode a plain open() would give: readable by others under the
    # usual umask 022, private under 077 (a fixed 0644 would leak it).
    profile = load_profile(GOOD)
    old = os.umask(0o077)
    try:
        save_profile(profile, tmp_path / "private.yaml")
        os.umask(0o022)
        save_profile(profile, tmp_path / "shared.yaml")
    finally:
        os.umask(old)
    assert (tmp_path / "private.yaml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "shared.yaml").stat().st_mode & 0o777 == 0o644


def test_save_leaves_no_temp_files_and_is_readable(tmp_path: Path) -> None:
    save_profile(load_profile(GOOD), tmp_path / "a.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["a.yaml"]
    if os.name == "posix":
        assert (tmp_path / "a.yaml").stat().st_mode & 0o044  # not mkstemp's private 0600


@pytest.mark.timeout(60)
def test_schema_command_prints_json_schema(tuner_cmd: list[str]) -> None:
    proc = subprocess.run(
        [*tuner_cmd, "schema"], capture_output=True, text=True, encoding="utf-8", timeout=50
    )
    assert proc.returncode == 0, proc.stderr
    schema = json.loads(proc.stdout)
    assert schema == profile_json_schema()
    assert schema["$schema"].startswith("https://json-schema.org/")
    rec = schema["$defs"]["Recommended"]["properties"]
    assert set(rec) == set(Recommended.model_fields)
    assert rec["workers"]["minimum"] == 1
    assert rec["backend"]["enum"] == ["process", "thread", "inline", "ray"]
    # Every field documents itself.
    for name, definition in schema["$defs"].items():
        for field, prop in definition.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"


def test_effective_recommended_merges_platform_overrides() -> None:
    profile = load_profile(GOOD)
    darwin = profile.effective_recommended("darwin")
    assert darwin.backend == "thread"
    assert darwin.threads_per_worker == 2
    assert darwin.backoff.cap_s == 5.0
    assert darwin.backoff.base_s == 0.05  # a partial backoff keeps the base's other value
    assert darwin.workers == profile.recommended.workers
    assert profile.effective_recommended("linux") == profile.recommended
    assert profile.effective_recommended("linux2") == profile.recommended  # sys.platform-style names
    assert profile.effective_recommended("win32").timeout_s is None
    assert profile.effective_recommended("freebsd13") == profile.recommended  # no override for it
    expected = {"linux": "process", "darwin": "thread", "win32": "process"}.get(sys.platform, "process")
    assert profile.effective_recommended().backend == expected


def test_override_fields_match_recommended() -> None:
    # RecommendedOverride repeats Recommended's fields; this keeps them from drifting apart.
    assert list(RecommendedOverride.model_fields) == list(Recommended.model_fields)


def test_schema_version_constant() -> None:
    assert SCHEMA_VERSION == 1
    assert load_profile(GOOD).schema_version == SCHEMA_VERSION


def test_package_keeps_its_public_names() -> None:
    # Code outside imports these from tuner.profile; the modules behind them may move.
    import tuner.profile

    names = {
        "HEADER", "SCHEMA_VERSION", "Autoscale", "Backoff", "BackoffOverride", "Baseline", "Candidate",
        "Evidence", "Hedge", "HedgeOverride", "HostInfo", "InputInfo", "LatencyIntervals", "ModelRef", "Objective", "PeakRss",
        "Percentiles", "PlatformOverrides", "Recommended", "RecommendedOverride", "ScalingProfile",
        "Online", "OnlineCandidate", "OnlineStep", "ScalingCurve", "ScalingPoint", "ThreadEvidence",
        "StrictLoader", "dump_profile_text", "load_profile", "normalise_platform", "parse_profile_text",
        "profile_json_schema", "save_profile",
        # the third wave: the sections' models, and the pair between a profile and a Deployment
        "ActorResources", "ClusterInfo", "HostLoad", "OutsideProcessInfo",
        "autoscale_of", "deployment_of", "recommended_of",
        # issue 23: the host's measured speed and the model's nature
        "CalibrationRecord", "KernelRecord", "KernelScoreRecord", "NatureRecord",
        # issue 19: the max rate measured through a server
        "HttpOnline",
    }  # fmt: skip
    assert set(tuner.profile.__all__) == names
    assert all(hasattr(tuner.profile, name) for name in names)


@pytest.mark.timeout(60)
def test_import_stays_light() -> None:
    # The production runtime imports tuner.profile: no numpy, no rich, no Textual.
    code = "import sys, tuner.profile; print(sorted(m for m in ('numpy', 'rich', 'textual') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50, check=True)
    assert out.stdout.strip() == "[]"
