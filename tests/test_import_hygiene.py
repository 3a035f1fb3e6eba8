"""Which tuner package may import which, enforced in fresh interpreters like harlequin's test_import_hygiene.

``tuner.runtime`` (imported by production services), ``tuner.engine`` and ``tuner.hardware`` must not
pull in Textual, plotext, rich, the benchmark or the TUI — not on import, and not while a runtime
built from a profile serves. ``tuner.engine`` imports nothing of tuner's but its own modules,
``tuner.models`` and ``tuner.errors``.

Below those, read from the source (every import, wherever it is): tuner's rooms in one-way layers
(:data:`LAYERS`, the same table as tuner/ARCHITECTURE.md) and no import circle among its modules.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
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


# -- the layering: which room of tuner may import which ------------------------------------------------

#: tuner's rooms (its top-level packages and modules) from the bottom up. A room imports only rooms of
#: the layers below its own — never one beside it, never one above — so no circle can pass between
#: rooms. A new room goes in the lowest layer its imports allow; tuner/ARCHITECTURE.md reads the same.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tuner", "tuner.errors", "tuner.fmt", "tuner.stats"),  # the floor: standard library only
    ("tuner.backends", "tuner.models"),  # the backend registry; model specs, loader, adapters
    ("tuner.deployment", "tuner.hardware", "tuner.data"),  # the one deployment value; host; files
    ("tuner.engine", "tuner.autoscale", "tuner.hostload"),  # the only code that runs a model
    ("tuner.cluster", "tuner.calibrate"),  # reaching Ray; the host's speed
    ("tuner.profile",),  # the profile schema, loaded and saved
    ("tuner.runtime", "tuner.plan"),  # production: light, no benchmark, no UI
    ("tuner.bench", "tuner.serve", "tuner.export"),  # the sweep pipeline; HTTP face; other configs
    ("tuner.report", "tuner.options"),  # the HTML report; option parsing both faces share
    ("tuner.tui",),  # the Textual app: the only importer of Textual and plotext
    ("tuner.commands",),  # one module per subcommand
    ("tuner.cli",),  # the entry point (finds a command by name)
    ("tuner.__main__",),
)
LAYER_OF = {room: i for i, layer in enumerate(LAYERS) for room in layer}
#: the one door from the commands into the TUI: the command that launches the app
COMMANDS_INTO_TUI = ("tuner.commands.tui", "tuner.commands.watch")  # the two app launchers
TUNER = Path(__file__).resolve().parents[1] / "tuner"


def _modules() -> dict[str, Path]:
    """Every module of tuner by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in sorted(TUNER.rglob("*.py")):
        parts = path.relative_to(TUNER.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[tuple[str, int]]:
    """The tuner modules ``name`` imports anywhere — at the top, inside functions, under
    ``TYPE_CHECKING`` — with the line. ``from tuner.engine import events`` names the module
    ``tuner.engine.events``; ``from tuner.engine import Engine`` names the package."""
    package = name if path.stem == "__init__" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . / from .. (tuner uses none today)
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t not in known and "." in t:
                t = t.rpartition(".")[0]
            if t in known and t != name:
                yield t, node.lineno


def _room(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_circle_among_tuners_modules() -> None:
    """Every import among tuner's modules points one way — project-wide, counting imports inside
    functions and under ``TYPE_CHECKING``: a circle hidden there still means a type lives in the wrong
    module (each module can then be read, and tested, without the ones above it)."""
    known = _modules()
    edges = {m: {t for t, _ in _imports(m, p, known)} for m, p in known.items()}
    assert len(edges) > 100 and "tuner.engine.pool" in edges["tuner.engine"]  # the walk saw tuner
    assert "tuner.runtime.core" in edges["tuner.runtime"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                pytest.fail("import circle: " + " → ".join([*path[path.index(n) :], n]))
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m, [m])


def test_each_room_imports_only_the_layers_below_it() -> None:
    """The one-way order of tuner's rooms (:data:`LAYERS`), counting every import wherever it is: the
    engine imports none of the runtime, the benchmark, the TUI or the commands; the runtime none of
    the benchmark, the server, the TUI or the commands; nothing below the commands imports them or the
    CLI; and the commands reach the TUI only through the command that launches it."""
    known = _modules()
    rooms = {_room(m) for m in known}
    assert rooms == set(LAYER_OF), (
        f"rooms not in LAYERS: {sorted(rooms - set(LAYER_OF))}; "
        f"in LAYERS but gone: {sorted(set(LAYER_OF) - rooms)}"
    )
    upward = []
    for m, path in sorted(known.items()):
        for t, line in _imports(m, path, known):
            a, b = _room(m), _room(t)
            if a != b and LAYER_OF[b] >= LAYER_OF[a]:
                upward.append(f"{m}:{line} imports {t} ({a} is layer {LAYER_OF[a]}, {b} layer {LAYER_OF[b]})")
            if b == "tuner.tui" and a == "tuner.commands" and m not in COMMANDS_INTO_TUI:
                upward.append(f"{m}:{line} imports {t} (only {', '.join(COMMANDS_INTO_TUI)} may)")
    assert not upward, "imports against the layering:\n" + "\n".join(upward)


def test_the_architecture_page_shows_the_same_layers() -> None:
    """tuner/ARCHITECTURE.md's table of rooms is :data:`LAYERS`, row for row (a room moved in one
    and not the other is a page that lies)."""
    rows = re.findall(
        r"^\| (\d+) \| ([^|]+) \|", (TUNER / "ARCHITECTURE.md").read_text(encoding="utf-8"), re.M
    )
    shown = {
        int(n): {"tuner" if r == "tuner" else f"tuner.{r}" for r in re.findall(r"`([\w.]+)`", rooms)}
        for n, rooms in rows
    }
    assert shown == {i: set(layer) for i, layer in enumerate(LAYERS)}
