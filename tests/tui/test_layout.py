"""The TUI's rooms stay small and its doors go one way (issue 17), read from the source with ``ast``.

No function over 80 lines but ``compose`` (a declarative layout), no class over 450, no file over
700; no import circle between ``tuner.tui`` modules, counting imports inside functions and under
``TYPE_CHECKING``; nothing of ``tuner.commands`` (the command that launches the app imports the
app, never the other way).
"""

from __future__ import annotations

import ast
from pathlib import Path

TUI = Path(__file__).resolve().parents[2] / "tuner" / "tui"
MAX_FUNCTION, MAX_CLASS, MAX_FILE = 80, 450, 700


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(TUI.rglob("*.py")):
        parts = path.relative_to(TUI.parents[1]).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), str(path))
    return out


def _file_lines() -> dict[str, int]:
    return {str(p.relative_to(TUI.parents[1])): len(p.read_text().splitlines()) for p in TUI.rglob("*.py")}


def _lines(node: ast.AST) -> int:
    return int(node.end_lineno or 0) - int(getattr(node, "lineno", 0)) + 1


def _imports(tree: ast.Module) -> set[str]:
    """Every module named by an import anywhere in ``tree`` (``from a import b`` names a and a.b)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def test_no_function_class_or_file_too_long() -> None:
    too_long = [f"{path}: {n} lines" for path, n in _file_lines().items() if n > MAX_FILE]
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and _lines(node) > MAX_CLASS:
                too_long.append(f"{name}.{node.name}: {_lines(node)} lines")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != "compose":
                if _lines(node) > MAX_FUNCTION:
                    too_long.append(f"{name}.{node.name}(): {_lines(node)} lines")
    assert not too_long, too_long


def test_no_import_circle_in_the_tui_and_no_door_to_the_commands() -> None:
    modules = _modules()
    edges = {name: {m for m in _imports(tree) if m in modules and m != name} for name, tree in modules.items()}
    commands = sorted(f"{n} imports {m}" for n, t in modules.items() for m in _imports(t) if m.startswith("tuner.commands"))
    assert not commands, commands

    circles: list[list[str]] = []

    def visit(path: list[str]) -> None:
        for nxt in sorted(edges[path[-1]]):
            if nxt in path:
                circles.append([*path[path.index(nxt) :], nxt])
            elif len(path) < len(modules):
                visit([*path, nxt])

    for name in modules:
        visit([name])
    assert not circles, circles[:5]
