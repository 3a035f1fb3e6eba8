"""argparse's side of the commands' options: each flag declared once, its value parsed as it is read.

The value parsers (finite numbers, integer lists, fault plans...) are :mod:`tuner.options`, shared
with the TUI's form; this module only wires them to argparse. :func:`option` takes a flag's name
once — for ``add_argument`` and for the one-line error that names it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.errors import BadInput
from tuner.options import INPUT_DTYPES, choice, finite, integer, non_blank, shape, typed

__all__ = ["add_model_file_arguments", "add_setting_options", "option", "setting_values", "writable"]


def option(
    group: Any,
    flag: str,
    parse: Callable[..., Any] | None = None,
    *,
    help: str,
    metavar: str | None = None,
    default: Any = None,
    default_word: str | None = None,
    **bounds: Any,
) -> None:
    """Declare ``flag`` on ``group`` (a parser or an argument group): a switch without ``parse``,
    else an option whose value ``parse`` checks with ``bounds`` (``what``, ``gt``, ``ge`` ...).
    ``default_word``: what omitting the option gives, for the message about a blank value."""
    if parse is None:
        group.add_argument(flag, action="store_true", help=help)
        return
    if default_word is not None:
        bounds["default"] = default_word
    group.add_argument(flag, type=typed(parse, flag, **bounds), default=default, metavar=metavar, help=help)


def writable(name: str, path: str | None, creates_folders: bool = False) -> None:
    """Refuse, before anything runs, a path the command could not write at its end."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"{name} {path}: is a folder, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.exists():
        if creates_folders:
            return
        raise BadInput(f"{name} {path}: folder {parent} does not exist")
    if not parent.is_dir():
        raise BadInput(f"{name} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK):
        raise BadInput(f"{name} {path}: folder {parent} is not writable")


def add_profile_runner_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """The profile and the options of a command that runs its model (``tuner run``, ``tuner serve``): another
    model, the host check, the input check, a ray profile's cluster, and the model file's own."""
    parser.add_argument(
        "profile",
        type=typed(non_blank, "PROFILE", what="a profile file"),
        metavar="PROFILE",
        help="scaling profile YAML (made by tuner bench)",
    )
    parser.add_argument(
        "--model",
        type=typed(non_blank, "--model", what="a model spec"),
        metavar="SPEC",
        help=f"model spec to {verb} instead of the profile's",
    )
    parser.add_argument("--strict", action="store_true", help="refuse a profile measured on another host")
    parser.add_argument(
        "--no-input-check",
        dest="input_check",
        action="store_false",
        help="take items that differ from those the profile was measured with "
        "(dtype or shape; see model.input.item in the profile)",
    )
    parser.add_argument(
        "--ray-address",
        type=typed(non_blank, "--ray-address", what="auto, local or ray://host:port"),
        metavar="ADDRESS",
        help="a ray profile's cluster: auto, local or ray://host:port (default: the kind the profile records)",
    )
    add_model_file_arguments(parser, sweep=False)


def add_model_file_arguments(parser: argparse.ArgumentParser, *, sweep: bool) -> None:
    """Options for model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl); ``sweep``: bench's too."""
    from tuner.models.formats.scikit import METHODS

    g = parser.add_argument_group("model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl)")
    option(
        g,
        "--allow-pickle",
        help="load a pickle (.joblib, .pkl) or a skops file with types skops does not trust: "
        "loading runs the file's code, so only for files you trust (recorded in the profile)",
    )
    if not sweep:
        return
    option(
        g, "--method", choice, choices=METHODS, metavar="NAME",
        help=f"scikit-learn: the estimator method to run ({' | '.join(METHODS)}; default predict)",
    )  # fmt: skip
    option(
        g, "--input-shape", shape, metavar="SHAPE",
        help="one item's shape when the file records none (TorchScript), e.g. 3x224x224",
    )  # fmt: skip
    option(
        g, "--input-dtype", choice, choices=INPUT_DTYPES, metavar="DTYPE",
        help="the generated items' dtype with --input-shape (default float32)",
    )  # fmt: skip
    option(
        g, "--provider", non_blank, what="an ONNX Runtime execution provider", metavar="NAME",
        help="ONNX Runtime execution provider (default CPUExecutionProvider; see tuner hw)",
    )  # fmt: skip
    option(
        g, "--dims", non_blank, what="adapter dimensions, e.g. execution_mode,spinning", metavar="LIST",
        help="the model adapter's own dimensions to sweep too, e.g. execution_mode,spinning (ONNX Runtime)",
    )  # fmt: skip


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """What the model-file options say, as a request's ``model_options`` (only those given)."""
    given = {
        "allow_pickle": True if getattr(args, "allow_pickle", False) else None,
        "method": getattr(args, "method", None),
        "input_shape": getattr(args, "input_shape", None),
        "input_dtype": getattr(args, "input_dtype", None),
        "provider": getattr(args, "provider", None),
    }
    options = {k: v for k, v in given.items() if v is not None}
    if options.get("input_dtype") and not options.get("input_shape"):
        raise BadInput("--input-dtype goes with --input-shape (the shape of the items to generate)")
    return options


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_setting_options(group: Any, names: tuple[str, ...]) -> None:
    """One option per deployment setting named (``--workers``, ``--timeout-s`` ...), its parser,
    range and help taken from the setting's declaration (:mod:`tuner.deployment`)."""
    from tuner.deployment import Deployment, settings_of

    decl = {s.name: s for s in settings_of(Deployment)}
    for name in names:
        s = decl[name]
        flag = _flag(s.public)
        bounds: dict[str, Any] = {}
        if s.low is not None:
            bounds["gt" if s.low_open else "ge"] = s.to_public(s.low)
        if s.choices:
            parse: Callable[..., Any] = choice
            bounds = {"choices": s.choices}
            metavar = "NAME"
        elif s.integer:
            parse, metavar = integer, "N"
            bounds.pop("gt", None)
            if s.low is not None and s.low_open:
                bounds["ge"] = int(s.low) + 1
        else:
            parse, metavar = finite, {"s": "SECONDS", "MB": "MB"}.get(s.unit, "N")
            bounds["what"] = {"s": "seconds", "MB": "megabytes"}.get(s.unit, "a number")
        words = f" ({s.words()})" if not s.choices else f" ({' | '.join(s.choices)})"
        group.add_argument(
            flag,
            dest=name,
            type=typed(parse, flag, **bounds),
            default=None,
            metavar=metavar,
            help=s.doc + words,
        )


def setting_values(args: argparse.Namespace, names: tuple[str, ...]) -> dict[str, Any]:
    """The settings given on the command line (code names and units), for ``Deployment.of``."""
    from tuner.deployment import Deployment, settings_of

    decl = {s.name: s for s in settings_of(Deployment)}
    return {n: decl[n].from_public(getattr(args, n)) for n in names if getattr(args, n, None) is not None}
