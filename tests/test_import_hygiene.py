"""Which tuner package may import which, enforced in fresh interpreters like harlequin's test_import_hygiene.

``tuner.runtime`` (imported by production services), ``tuner.engine`` and ``tuner.hardware`` must not
pull in Textual, plotext, rich, the benchmark or the TUI — not on import, and not while a runtime
built from a profile serves. ``tuner.engine`` imports nothing of tuner's but its own modules,
``tuner.models`` and ``tuner.errors``.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FORBIDDEN = ("textual", "plotext", "rich", "tuner.bench", "tuner.tui")


def _modules_after(code: str) -> list[str]:
    """``sys.modules`` keys after running ``code`` in a fresh interpreter."""
    probe = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _forbidden(mods: list[str]) -> list[str]:
    return [m for m in mods if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]


@pytest.mark.timeout(60)
def test_runtime_engine_hardware_import_nothing_heavy() -> None:
    mods = _modules_after("import tuner.runtime, tuner.engine, tuner.hardware")
    assert not _forbidden(mods), _forbidden(mods)


@pytest.mark.timeout(60)
def test_a_serving_runtime_imports_nothing_heavy(tmp_path: object) -> None:
    # Build and use a runtime (inline backend: no processes) so lazy imports are exercised too.
    mods = _modules_after(
        """
        from tuner.runtime import Runtime
        with Runtime("builtin:sleep", backend="inline", partition_size=4, max_batch_delay_ms=1) as rt:
            assert list(rt.map(range(10))) == [2 * i for i in range(10)]
            assert rt.submit(3).result(timeout=10) == 6
            rt.stats()
        """
    )
    assert not _forbidden(mods), _forbidden(mods)


@pytest.mark.timeout(60)
def test_engine_imports_only_models_and_errors_of_tuner() -> None:
    mods = _modules_after("import tuner.engine")
    allowed = ("tuner", "tuner.errors", "tuner.engine", "tuner.models")
    strays = [
        m for m in mods if m.startswith("tuner") and not any(m == a or m.startswith(a + ".") for a in allowed)
    ]
    assert not strays, f"tuner.engine pulled in {strays}"
    assert not _forbidden(mods)


@pytest.mark.timeout(60)
def test_stats_and_autoscale_are_light_rooms() -> None:
    """The statistics module, the autoscaler policy and the deployment value it reads: standard
    library and tuner.errors only (the deployment's backends registry is bottom layer too)."""
    mods = _modules_after("import tuner.stats, tuner.autoscale")
    tuner_mods = sorted(m for m in mods if m.startswith("tuner"))
    expected = [
        "tuner",
        "tuner.autoscale",
        "tuner.backends",
        "tuner.deployment",
        "tuner.errors",
        "tuner.fmt",
        "tuner.stats",
    ]
    assert tuner_mods == expected, tuner_mods
    assert "numpy" not in mods and not _forbidden(mods)
    assert "numpy" not in _modules_after("import tuner.runtime"), "numpy stays lazy for the runtime"


@pytest.mark.timeout(60)
def test_item_signature_and_argument_parsing_are_light() -> None:
    # Runtime.map imports the signature check in production processes; every `tuner` command
    # (`tuner hw` included) imports the argument parsers while building its parser.
    mods = _modules_after("import tuner.models.signature, tuner.options, tuner.cli; tuner.cli.build_parser()")
    assert "numpy" not in mods
    assert not _forbidden(mods), _forbidden(mods)


@pytest.mark.timeout(60)
def test_plan_and_the_online_messages_are_light() -> None:
    # `tuner plan` reads a profile and fits a curve: no benchmark, no UI, numpy only when it fits;
    # the TUI's relay imports the online messages to coalesce them: no numpy, no load generator.
    mods = _modules_after("import tuner.plan, tuner.commands.plan, tuner.bench.online.messages")
    allowed = ("tuner.bench", "tuner.bench.online", "tuner.bench.online.messages")
    assert not [m for m in _forbidden(mods) if m not in allowed], _forbidden(mods)
    assert "numpy" not in mods


@pytest.mark.timeout(60)
def test_the_load_generator_stays_out_of_the_ui() -> None:
    mods = _modules_after("import tuner.bench.online.sweep, tuner.bench.online.report")
    ui = [
        m
        for m in mods
        if m.split(".")[0] in ("textual", "plotext", "textual_plotext") or m.startswith("tuner.tui")
    ]
    assert not ui, ui


@pytest.mark.timeout(60)
def test_host_load_sampling_is_a_light_room() -> None:
    """``tuner.hostload`` (the TUI's host bar and the benchmark both sample with it): psutil and the
    standard library; nothing of the benchmark, the TUI or numpy, even while sampling."""
    mods = _modules_after(
        "import tuner.hostload as h; s = h.HostSampler(); s.scan(); a = s.snapshot(); s.interval(a, s.snapshot())"
    )
    tuner_mods = sorted(m for m in mods if m.startswith("tuner"))
    assert tuner_mods == ["tuner", "tuner.errors", "tuner.hardware", "tuner.hostload"], tuner_mods
    assert "numpy" not in mods and not _forbidden(mods)


@pytest.mark.timeout(60)
def test_model_file_adapters_import_no_framework() -> None:
    """The core stays light: no ML framework is imported until a model needs it — not by the
    runtime, not by the adapters themselves, not by naming a model file or probing the host."""
    mods = _modules_after(
        """
        import tuner.runtime, tuner.hardware
        import tuner.models.formats.onnxrt, tuner.models.formats.pytorch, tuner.models.formats.scikit
        from tuner.models import parse_spec
        parse_spec("model.onnx"); parse_spec("model.pt2"); parse_spec("model.skops")
        tuner.hardware.frameworks()
        """
    )
    frameworks = [
        m for m in mods if m.split(".")[0] in ("onnxruntime", "torch", "sklearn", "skops", "joblib", "onnx")
    ]
    assert not frameworks, frameworks
    assert not _forbidden(mods), _forbidden(mods)


@pytest.mark.timeout(60)
def test_ray_is_imported_only_by_the_ray_backend() -> None:
    # Ray is an optional extra and takes a second to import: importing tuner (the runtime, the
    # engine, the CLI's parsers, the cluster module, the exporter) never imports it; the ray
    # backend's handle module imports it only when an engine starts on Ray.
    mods = _modules_after(
        "import tuner.runtime, tuner.engine, tuner.cluster, tuner.export, tuner.engine.ray_backend, tuner.cli\n"
        "tuner.cli.build_parser()"
    )
    assert not [m for m in mods if m == "ray" or m.startswith("ray.")]
    assert "tuner.engine.ray_actor" not in mods


def test_the_engines_modules_import_one_another_without_a_circle() -> None:
    """Every import among ``tuner.engine``'s modules points one way — counting imports inside
    functions and under ``TYPE_CHECKING``: a circle there would mean a type lives in the wrong module.
    (``from tuner.engine import events`` counts as importing ``tuner.engine.events``.)"""
    engine = Path(__file__).resolve().parents[1] / "tuner" / "engine"
    names = {"tuner.engine" if p.stem == "__init__" else f"tuner.engine.{p.stem}": p for p in engine.glob("*.py")}
    imports: dict[str, set[str]] = {}
    for name, path in names.items():
        found = imports[name] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name in names)
            elif isinstance(node, ast.ImportFrom) and node.module in names:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    found.add(sub if sub in names else node.module)

    def circle_from(start: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(imports[start]):
            if nxt in path:
                return [*path[path.index(nxt) :], nxt]
            found = circle_from(nxt, [*path, nxt])
            if found:
                return found
        return None

    assert len(names) > 10 and imports["tuner.engine.pool"]  # the walk saw the engine
    for name in sorted(names):
        circle = circle_from(name, [name])
        assert circle is None, " -> ".join(circle or [])


def _package_imports(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` → the modules of ``package`` it imports anywhere: at the top, inside
    functions, or under ``TYPE_CHECKING`` (a circle through any of them is still a circle)."""
    import ast
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations
    folder = Path(next(iter(spec.submodule_search_locations)))
    edges: dict[str, set[str]] = {}
    for path in sorted(folder.glob("*.py")):
        name = package if path.stem == "__init__" else f"{package}.{path.stem}"
        here = package if path.stem == "__init__" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([here, *([base] if base else [])]) if node.level == 1 else base
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                if t != package and not t.startswith(package + "."):
                    continue
                # `from tuner.runtime.gate import Gate` and `from tuner.runtime import gate` name a module;
                # `from tuner.runtime import Runtime` names the package (its __init__)
                stem = t[len(package) + 1 :].split(".")[0]
                mod = f"{package}.{stem}" if stem and (folder / f"{stem}.py").exists() else package
                if mod != name:
                    found.add(mod)
        edges[name] = found
    return edges


@pytest.mark.timeout(60)
def test_the_runtime_package_has_no_import_circle() -> None:
    """The runtime's rooms import one way: no circle among its modules, counting imports inside
    functions and under TYPE_CHECKING (each room can be read, and tested, without the ones above it)."""
    edges = _package_imports("tuner.runtime")
    assert "tuner.runtime.core" in edges and len(edges) > 5
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges.get(m, ())):
            assert state.get(n) != 1, "import circle: " + " → ".join([*path, n])
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])
