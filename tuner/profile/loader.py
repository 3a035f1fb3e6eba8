"""Strict, safe loading of a profile: YAML text -> :class:`~tuner.profile.schema.ScalingProfile`.

* ``yaml.SafeLoader`` only (a subclass); any tag it does not know, ``!!python/object`` included,
  is rejected before anything is constructed — loading a profile never imports or runs code.
* Duplicate keys are an error (PyYAML silently keeps the last one).
* Numbers are read as YAML 1.2 reads them: ``1e-3`` and ``5E2`` are floats (PyYAML's YAML 1.1
  rules want a dot, ``1.0e-3``, and read ``1e-3`` as a string, which a number field then refuses).
* Size, node count and nesting depth are bounded — the nodes and the depth while the document is
  read, and again with aliases expanded — so a hostile or mistaken file (a log, a YAML "billion
  laughs" of nested aliases, ``[[[[...`` thousands deep) costs neither memory nor time, nor ends in
  a RecursionError, before we can say what is wrong.
* The node tree is composed first and walked, so every error names the file, the line and the key
  path: ``profiles/x.yaml line 14: recommended.workers: must be >= 1 (got 0)``.
* pydantic's ``ValidationError`` is translated to that one line (:mod:`tuner.profile.errors`); no
  pydantic formatting and no traceback reaches the user (everything raised is
  :class:`tuner.errors.ProfileError`).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tuner.errors import ProfileError
from tuner.profile.base import PATTERN_WORDS
from tuner.profile.errors import Loc, Where, show, translate
from tuner.profile.schema import SCHEMA_VERSION, ScalingProfile

__all__ = ["StrictLoader", "load_profile", "parse_profile_text"]

# A profile is a few kilobytes and its deepest key path has 4 parts: ample room, and still far
# from Python's recursion limit (composing takes two frames per level).
_MAX_BYTES = 1 << 20
_MAX_NODES = 20_000
_MAX_DEPTH = 32
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names the same key twice."""


class _OverLimit(yaml.composer.ComposerError):
    """A document too deep or too large to be a profile, found while it is composed."""

    def __init__(self, problem: str, mark: yaml.Mark, loc: Loc) -> None:
        super().__init__(None, None, problem, mark)
        self.loc = loc


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, and documents too deep or too large to be a profile.

    ``load_profile`` also finds duplicates while walking the node tree (to name the key path); this
    loader stays safe on its own for anyone who uses it with ``yaml.load``.
    """

    max_depth = _MAX_DEPTH
    max_nodes = _MAX_NODES

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._loc: list[Any] = []  # key path of the node being composed
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        # PyYAML composes recursively, two Python frames a level: unbounded, a document nested a
        # few hundred levels deep ends in RecursionError. Counting nodes here stops a huge
        # document while it is read, before its tree sits in memory.
        self._nodes += 1
        if self._nodes > self.max_nodes:
            problem = f"too many YAML nodes (more than {self.max_nodes})"
            raise _OverLimit(problem, self.peek_event().start_mark, tuple(self._loc))
        if parent is None:
            return super().compose_node(parent, index)
        if isinstance(index, yaml.ScalarNode):
            self._loc.append(index.value)  # a mapping's value, under its key as written
        else:
            self._loc.append("[key]" if index is None else index)  # a mapping's key, or a list's item
        try:
            if len(self._loc) > self.max_depth:
                problem = f"nested deeper than {self.max_depth} levels"
                raise _OverLimit(problem, self.peek_event().start_mark, tuple(self._loc))
            return super().compose_node(parent, index)
        finally:
            self._loc.pop()

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            with contextlib.suppress(TypeError):  # unhashable keys: the base class reports them
                if key in seen:
                    raise _DuplicateKey(
                        f"duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                        seen[key].start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


# YAML 1.2 (core schema) floats without a dot: 1e-3, -5E2, 2.e3. Added after SafeLoader's own
# resolvers, so everything YAML 1.1 already reads keeps its meaning; only these stop being strings.
StrictLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _short_tag(tag: str) -> str:
    return tag.replace("tag:yaml.org,2002:", "!!")


def _walk(loader: StrictLoader, node: yaml.Node, loc: Loc, where: Where, budget: list[int]) -> None:
    """Record the line of every key path; reject unknown tags, duplicate keys and alias bombs."""
    budget[0] -= 1
    if budget[0] < 0:
        # Name the top-level key only: deep inside an alias expansion the path means little.
        raise where.error(loc[:1], f"too many YAML nodes (more than {_MAX_NODES}, aliases expanded)")
    if len(loc) > _MAX_DEPTH:
        raise where.error(loc[:1], f"nested deeper than {_MAX_DEPTH} levels (a recursive alias?)")
    if node.tag not in loader.yaml_constructors:
        # SafeLoader knows only plain-data tags; '!!python/object...' and custom tags end here,
        # before anything is constructed.
        raise where.error(
            loc,
            f"YAML tag '{_short_tag(node.tag)}' is not allowed (a profile holds plain data only)",
            line=node.start_mark.line + 1,
        )
    if isinstance(node, yaml.MappingNode):
        first_seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:  # '<<: *anchor' — its keys keep the alias's lines
                _walk(loader, value_node, loc, where, budget)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise where.error(loc, "keys must be plain names, not lists or mappings", line=line)
            if key_node.tag not in loader.yaml_constructors:
                raise where.error(loc, f"YAML tag '{_short_tag(key_node.tag)}' is not allowed", line=line)
            key = _scalar(loader, key_node, loc, where)
            if not isinstance(key, str):
                # Every key in a profile is a name; YAML 1.1 reads `yes:`, `on:`, `1:` as non-text.
                raise where.error(
                    loc,
                    f"key '{key_node.value}' is read as {show(key)}, not a name; put it in quotes",
                    line=line,
                )
            if key in first_seen:
                raise where.error(loc, f"duplicate key '{key}' (first at line {first_seen[key]})", line=line)
            first_seen[key] = line
            child: Loc = (*loc, key)
            where.lines[child] = line
            _walk(loader, value_node, child, where, budget)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            child = (*loc, i)
            where.lines[child] = item.start_mark.line + 1
            _walk(loader, item, child, where, budget)
    elif node.tag == _INT_TAG:
        _scalar(loader, node, loc, where)


def _scalar(loader: StrictLoader, node: yaml.Node, loc: Loc, where: Where) -> Any:
    """Construct one scalar; an integer too long for Python to convert is an error at its key."""
    try:
        return loader.construct_object(node)
    except ValueError:
        # int() refuses decimal strings past sys.get_int_max_str_digits() (4300 by default).
        digits = sum(c.isdigit() for c in str(node.value))
        raise where.error(loc, f"integer too long ({digits} digits)", line=node.start_mark.line + 1) from None


def _read_text(path: Path, name: str) -> str:
    try:
        if path.is_dir():
            raise ProfileError(f"{name}: is a folder, not a profile file")
        with path.open("rb") as f:
            data = f.read(_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ProfileError(f"{name}: file not found") from None
    except OSError as e:
        raise ProfileError(f"{name}: cannot read: {e.strerror or e}") from None
    if len(data) > _MAX_BYTES:
        raise ProfileError(f"{name}: too large for a profile (more than {_MAX_BYTES // 1024} KiB)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProfileError(f"{name}: not UTF-8 text (byte {e.start})") from None


def _yaml_error(name: str, e: yaml.YAMLError) -> ProfileError:
    if isinstance(e, yaml.MarkedYAMLError) and e.problem_mark is not None:
        mark = e.problem_mark
        problem = " ".join(str(e.problem or "").split())
        return ProfileError(
            f"{name} line {mark.line + 1}: not valid YAML: {problem} (column {mark.column + 1})"
        )
    return ProfileError(f"{name}: not valid YAML: {' '.join(str(e).split())}")


def parse_profile_text(text: str, name: str = "<profile>") -> ScalingProfile:
    """Validate profile YAML held in a string; ``name`` is how errors refer to it."""
    if len(text) > _MAX_BYTES:
        raise ProfileError(f"{name}: too large for a profile (more than {_MAX_BYTES // 1024} KiB)")
    if not text.strip():
        raise ProfileError(f"{name}: empty file")
    where = Where(name)
    loader = StrictLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except _OverLimit as e:
            # Name the top-level key only: deep inside the nesting the path means little.
            line = e.problem_mark.line + 1 if e.problem_mark is not None else None
            raise where.error(e.loc[:1], str(e.problem), line=line) from None
        except yaml.YAMLError as e:
            raise _yaml_error(name, e) from None
        if root is None:
            raise ProfileError(f"{name}: empty file (comments only)")
        if not isinstance(root, yaml.MappingNode) or root.tag != "tag:yaml.org,2002:map":
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            raise ProfileError(
                f"{name} line {root.start_mark.line + 1}: top level must be a mapping (got {kind})"
            )
        where.lines[()] = root.start_mark.line + 1
        _walk(loader, root, (), where, [_MAX_NODES])
        try:
            data = loader.construct_document(root)
        except yaml.YAMLError as e:
            raise _yaml_error(name, e) from None
    finally:
        loader.dispose()
    if "schema_version" in data:
        v = data["schema_version"]
        if type(v) is not int or v != SCHEMA_VERSION:
            raise where.error(
                ("schema_version",),
                f"unsupported schema version {show(v)} (this tuner reads version {SCHEMA_VERSION})",
            )
    try:
        return ScalingProfile.model_validate(data)
    except ValidationError as e:
        raise translate(e, where, ScalingProfile, PATTERN_WORDS) from None


def load_profile(path: str | os.PathLike[str]) -> ScalingProfile:
    """Read and validate a profile; any problem is one :class:`ProfileError` line naming file, line and key.

    A relative model path in it is relative to the profile file, and comes back relative to the
    working directory (a profile written before that rule, whose path was relative to the folder
    the sweep ran in, still loads when the file is there).
    """
    name = os.fspath(path)
    profile = parse_profile_text(_read_text(Path(path), name), name)
    return _from_here(profile, Path(path).parent)


def _from_here(profile: ScalingProfile, folder: Path) -> ScalingProfile:
    from tuner.models.spec import rebase_spec, spec_path

    spec = profile.model.spec
    rebased = rebase_spec(spec, folder, os.getcwd())
    if rebased == spec:
        return profile
    old, new = spec_path(spec), spec_path(rebased)
    if old is not None and new is not None and os.path.exists(old) and not os.path.exists(new):
        return profile  # an older profile: its path was meant from the working directory
    return profile.model_copy(update={"model": profile.model.model_copy(update={"spec": rebased})})
