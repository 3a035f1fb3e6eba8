"""Starting workers: they never need the caller's ``__main__`` (guarantee 7), and a worker that
cannot start says honestly why.

Each way of starting Python is a real interpreter here: a script without the main guard, code piped
to ``python -``, ``python -c``; under both start methods. What cannot work (a model that lives only
in ``__main__``) gets one line saying what to do instead. A worker that dies before it runs tuner's
code is not said to have died loading the model; one that dies loading it, or outgrows the memory
limit while loading, is.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from tests.engine.helpers import spec
from tuner.engine import Engine, EngineConfig
from tuner.errors import ConfigError, EngineFailed, ModelSpecError

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _code(model: str, method: str, guard: bool = False, define: str = "") -> str:
    body = textwrap.dedent(
        f"""
        with Engine({model}, EngineConfig(workers=1, partition_size=4, start_method={method!r})) as engine:
            print("OUT", list(engine.map(range(10))), flush=True)
        """
    )
    if guard:
        body = 'if __name__ == "__main__":\n' + textwrap.indent(body, "    ")
    head = "from tuner.engine import Engine, EngineConfig\n" + textwrap.dedent(define)
    return head + "print('TOP LEVEL RAN', flush=True)\n" + body


def _run(route: str, code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if route == "script":
        script = cwd / "serve_model.py"
        script.write_text(code)
        args, stdin = [sys.executable, str(script)], None
    elif route == "stdin":
        args, stdin = [sys.executable, "-"], code
    else:
        args, stdin = [sys.executable, "-c", code], None
    return subprocess.run(args, input=stdin, capture_output=True, text=True, cwd=cwd, env=env, timeout=100)


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
@pytest.mark.parametrize("route", ["script", "stdin", "-c"])
def test_a_model_named_by_spec_runs_from_any_main_without_a_guard(
    tmp_path: Path, route: str, method: str
) -> None:
    r = _run(route, _code(repr(spec("double")), method), tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["TOP LEVEL RAN", "OUT " + str([2 * i for i in range(10)])]
    assert "Traceback" not in r.stderr


def test_a_function_in_a_guarded_script_is_sent_by_its_file(tmp_path: Path) -> None:
    define = """
        def triple(items):
            return [3 * x for x in items]
        """
    r = _run("script", _code("triple", "forkserver", guard=True, define=define), tmp_path)
    assert r.returncode == 0, r.stderr
    # The worker imports the script as a module: its top level runs there too (printing to the
    # worker's stdout, which is ours), but not what the guard protects.
    assert "OUT " + str([3 * i for i in range(10)]) in r.stdout.splitlines()


def test_a_function_in_an_unguarded_script_says_to_add_the_guard(tmp_path: Path) -> None:
    define = """
        def triple(items):
            return [3 * x for x in items]
        """
    r = _run("script", _code("triple", "forkserver", define=define), tmp_path)
    assert r.returncode == 1
    script = tmp_path / "serve_model.py"
    last = r.stderr.strip().splitlines()[-1]
    assert last == (
        f"tuner.errors.ModelSpecError: {script}:triple: importing {script} raised ModelSpecError: "
        "a tuner engine was started while a worker imported the model's file: "
        'put the code that starts it under `if __name__ == "__main__":`'
    ), r.stderr
    assert "times in a row" not in r.stderr


@pytest.mark.parametrize("route", ["stdin", "-c"])
def test_a_lambda_in_main_says_what_to_do(tmp_path: Path, route: str) -> None:
    r = _run(route, _code("lambda xs: xs", "forkserver"), tmp_path)
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last == (
        "tuner.errors.ModelSpecError: model __main__:<lambda> is defined in __main__ (python -c, stdin or a "
        "notebook), which worker processes cannot import: put it in a .py file and pass 'file.py:name' "
        "(or 'module:name'), or use backend='thread'"
    ), r.stderr


def test_an_unpicklable_model_says_what_to_do() -> None:
    with pytest.raises(ModelSpecError) as info:
        Engine(lambda xs: xs, EngineConfig(workers=1)).start()
    msg = str(info.value)
    name = f"{__name__}:test_an_unpicklable_model_says_what_to_do.<locals>.<lambda>"
    assert msg.startswith(f"model {name} cannot be sent to worker processes ("), msg
    assert msg.endswith("or use backend='thread'") and "\n" not in msg


def test_a_worker_that_dies_before_loading_the_model_is_not_blamed_on_the_model(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # A module that exists only in this process: the model pickles by reference, and every worker
    # fails to unpickle it while starting, before it runs any of tuner's code.
    phantom = types.ModuleType("tuner_phantom_module")
    exec("def fn(items):\n    return list(items)\n", phantom.__dict__)
    monkeypatch.setitem(sys.modules, "tuner_phantom_module", phantom)
    # spawn: its workers write to our stderr as it is now (a forkserver's keep the one it started with)
    with pytest.raises(EngineFailed) as info:
        Engine(phantom.fn, EngineConfig(workers=1, start_method="spawn")).start()
    assert str(info.value) == (
        "worker processes exit before they can load the model (exit code 1), 3 times in a row; "
        "their error is on stderr"
    )
    assert "No module named 'tuner_phantom_module'" in capfd.readouterr().err


def test_a_model_that_kills_its_worker_while_loading_is_blamed_on_loading(tmp_path: Path) -> None:
    model = tmp_path / "dies_on_import.py"
    model.write_text("import os\nos._exit(7)\ndef fn(items):\n    return items\n")
    with pytest.raises(ModelSpecError) as info:
        Engine(f"{model}:fn", EngineConfig(workers=1)).start()
    assert str(info.value) == "worker died while loading the model (exit code 7), 3 times in a row"


def test_a_model_too_big_for_the_memory_limit_at_load_says_so(tmp_path: Path) -> None:
    model = tmp_path / "big_on_import.py"
    model.write_text(
        "import time\nimport numpy as np\n"
        "weights = np.ones(400 * 1024 * 1024 // 8)\ntime.sleep(30)\n"
        "def fn(items):\n    return items\n"
    )
    with pytest.raises(ConfigError) as info:
        Engine(f"{model}:fn", EngineConfig(workers=1, memory_limit_mb=300)).start()
    assert str(info.value) == (
        "worker exceeded its memory limit of 300 MB while loading the model, 3 times in a row"
    )
