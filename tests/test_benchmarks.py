"""Every benchmark script in tests/benchmarks runs in its ``--smoke`` mode (issue 17).

The scripts import tuner's internals, and nothing else runs them: a refactor that moves a name
would break them silently. Each test runs ``python tests/benchmarks/X.py --smoke`` in a subprocess
(the checkout under test first on ``PYTHONPATH``), with a timeout, and checks its exit status and
the result lines it prints at its end. A smoke run's figures are not claims: only that it ran.

A script that needs an optional package skips, saying which; so does a script another branch
brings that is not in this checkout yet, or one without a ``--smoke`` mode yet. vs_default.py's
smoke run has its own test (tests/test_benchmark_vs_default.py). A new script in tests/benchmarks
must be listed here (``test_every_script_has_a_smoke_entry``).
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "tests" / "benchmarks"


@dataclass(frozen=True)
class Smoke:
    script: str
    #: lines the script prints at its end (regular expressions, each must match a whole line)
    expect: tuple[str, ...]
    timeout_s: int  # of the whole test; the subprocess gets 15 s less
    needs: tuple[str, ...] = ()  # importable modules
    extra: str = ""  # the pip extra that brings them (none: no extra declares them)
    browser: bool = False  # headless Chromium through Playwright
    ray: bool = False
    owned: bool = True  # False: another branch owns the script (it may not be here yet)


SMOKES = (
    Smoke("calibration", (r"budget used: min \d+%.*", r"processes left behind: 0"), 90),
    Smoke(
        "engine_overhead",
        (
            r"target tiny <= 1\.00x Pool: [\d.]+x (ok|MISSED)",
            r"target 1MB  <= 0\.50x Pool: [\d.]+x (ok|MISSED)",
        ),
        90,
    ),
    Smoke(
        "frameworks",
        (r"onnx: recommended .*", r"  ratio recommended / better default: [\d.]+x .*"),
        150,
        needs=("onnx", "onnxruntime"),
        extra="onnx,test-models",
    ),
    Smoke(
        "hedging",
        (
            r" 5%-kill \| .*x",
            r"target \(p99 >= 2x lower, duplicate work <= 5%\) with 5%-kill: (met|NOT met) .*",
        ),
        90,
    ),
    Smoke(
        "noise_guard",
        (
            r"unchanged build: 2 runs — .*",
            r"20% slower build: [01] of 1 caught.*",
            r"unchanged build against a baseline 30% faster: 1 runs — .*",
            r"20% slower build side by side \(faster-host baseline\): [01] of 1 caught.*",
        ),
        300,
    ),
    Smoke(
        "online",
        (
            r"   2 workers, poisson, batch <= 64, 5 ms .*",
            r"   head to head, 1 alternating repeats of [\d.]+ s steps \(medians\):",
            r"   \s+p99 at [\d.]+ ms / p99 at 5 ms: .*",
        ),
        120,
    ),
    Smoke(
        "ray_overhead",
        (
            r"dispatch, one-item partitions, .* ray/process [\d.]+x",
            r"  gap (within 10% from partition size \d+ on|not within 10% at the largest size measured)",
        ),
        180,
        needs=("ray",),
        extra="ray",
        ray=True,
    ),
    Smoke("report_size", (r"report\s+\d+ KiB .*", r"comparison\s+\d+ KiB .*"), 90, browser=True),
    Smoke("reproducibility", (r"sleep\.yaml\s+.*(within ±5%|OUTSIDE ±5%)",), 90),
    Smoke("runtime_import", (r"import tuner\.runtime: [\d.]+ ms vs target 150 ms — .*",), 60),
    Smoke(
        "runtime_vs_bench",
        (r"mlp\s+bench\s+[\d,]+/s\s+runtime end to end .*", r"        metrics on .*"),
        90,
    ),
    Smoke(
        "serve",
        (r"sleep ×64\s+in process .* HTTP/in-process [\d.]+×.*", r"processes left behind: 0"),
        90,
        needs=("aiohttp", "starlette", "uvicorn"),
        extra="serve",
    ),
    Smoke(
        "drift",
        (
            r"model\s+steady 10 s: false alarms \d+ .*",
            r"summary: false alarms \d+ in \d+ s of steady load; .*",
            r"processes left behind: 0",
        ),
        120,
        needs=("aiohttp", "starlette", "uvicorn", "prometheus_client"),
        extra="serve,metrics",
    ),
    Smoke("search_efficiency", (r"sleep\s+\d+\s+\d+\s+.*(meets target|MISSES target).*",), 90),
    Smoke(
        "soak",
        (
            r"items: \d+ sent, .* 0 errors, 0 wrong/lost/duplicated, 0 unaccounted",
            r"smoke run: growth not judged; items accounted for",
        ),
        90,
    ),
    # Scripts other branches own: run when they are here with a --smoke mode.
    Smoke(
        "ui_overhead",
        (r"best throughput\s+headless .*", r"key presses during the sweep, key to painted .*"),
        180,
        owned=False,
    ),
    Smoke("loop_lag", (r"\s+amap\s+[\d,]+ items/s.*",), 120, owned=False),
    Smoke(
        "http_clients",
        (r"  aiohttp\s+\d+ requests/s\s+\d+ µs client CPU/request\s+[\d.]+× aiohttp",),
        90,
        needs=("aiohttp", "starlette", "uvicorn"),
        owned=False,
    ),
    Smoke("engine_ab", (r"big_cpu\s+[\d.]+\s+[\d.]+\s+[\d.]+ .*",), 180, owned=False),
)
#: scripts whose smoke run has a test of its own
ELSEWHERE = {"vs_default": "tests/test_benchmark_vs_default.py"}


def _skip_reason(s: Smoke, path: Path) -> str | None:
    if not path.exists():
        return f"{path.relative_to(REPO)} is not in this checkout (another branch brings it)"
    if "--smoke" not in path.read_text(encoding="utf-8"):
        return f"{path.relative_to(REPO)} has no --smoke mode yet"
    missing = [m for m in s.needs if importlib.util.find_spec(m) is None]
    if missing:
        how = f"pip install -e '.[{s.extra}]'" if s.extra else "not installed"
        return f"{s.script}.py needs {', '.join(missing)} ({how})"
    if s.browser:
        if str(REPO / "tests") not in sys.path:
            sys.path.insert(0, str(REPO / "tests"))
        from report.browser import skip_reason

        why = skip_reason()
        if why is not None:
            return f"{s.script}.py opens its report in a browser: {why}"
    return None


def _params() -> list[object]:
    out = []
    for s in SMOKES:
        marks = [pytest.mark.timeout(s.timeout_s), pytest.mark.slow]
        if s.ray:
            marks.append(pytest.mark.ray)
        out.append(pytest.param(s, marks=marks, id=s.script))
    return out


def _kill_session(proc: subprocess.Popen[str]) -> None:
    """Kill the script and every process of its session."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _shm_left(pid: int) -> list[str]:
    d = Path("/dev/shm")
    if not d.is_dir():
        return []
    return sorted(p.name for p in d.iterdir() if p.name.startswith(f"tuner_{pid}_"))


@pytest.mark.parametrize("smoke", _params())
def test_smoke(smoke: Smoke) -> None:
    path = BENCH / f"{smoke.script}.py"
    why = _skip_reason(smoke, path)
    if why is not None:
        pytest.skip(why)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("COLUMNS", None)
    # Its own session, so that a run past its timeout is killed with every process it started.
    proc = subprocess.Popen(
        [sys.executable, str(path), "--smoke"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=smoke.timeout_s - 15)
    except subprocess.TimeoutExpired:
        _kill_session(proc)
        out, err = proc.communicate()
        pytest.fail(
            f"{smoke.script}.py --smoke ran past {smoke.timeout_s - 15} s\n"
            f"--- stdout\n{out[-4000:]}\n--- stderr\n{err[-4000:]}"
        )
    except BaseException:  # pytest-timeout's own, or ^C: the script's session is not the terminal's
        _kill_session(proc)
        proc.communicate()
        raise
    said = f"--- stdout\n{out[-6000:]}\n--- stderr\n{err[-4000:]}"
    assert proc.returncode == 0, f"{smoke.script}.py --smoke exited {proc.returncode}\n{said}"
    for line in smoke.expect:
        assert re.search(f"^{line}$", out, re.MULTILINE), f"no line matching {line!r}\n{said}"
    assert not _shm_left(proc.pid), f"shared-memory segments left: {_shm_left(proc.pid)}"


def test_every_script_has_a_smoke_entry() -> None:
    """A new benchmark script gets a smoke run here too (files starting with '_' are helpers)."""
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.name.startswith("_")}
    listed = {s.script for s in SMOKES} | set(ELSEWHERE)
    assert scripts <= listed, f"benchmark scripts without a smoke entry: {sorted(scripts - listed)}"
    mine = [s.script for s in SMOKES if s.owned and not (BENCH / f"{s.script}.py").exists()]
    assert not mine, f"listed but missing: {mine}"
    for script, test in ELSEWHERE.items():
        assert (REPO / test).is_file(), f"{script}.py's smoke test {test} is gone: list it here again"
