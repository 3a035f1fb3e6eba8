"""``tuner export PROFILE --to ray-serve [--out serve.yaml]``: a profile as another system's config.

The config goes to ``--out`` (written atomically) or to stdout. Writing it needs no Ray.
"""

from __future__ import annotations

import argparse
import sys

from tuner.options import choice, non_blank, typed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``PROFILE --to TARGET [--out FILE] [--import-path MODULE:ATTR]``."""
    parser.add_argument("profile", type=typed(non_blank, "PROFILE", what="a profile file"), metavar="PROFILE")
    parser.add_argument(
        "--to",
        required=True,
        type=typed(non_blank, "--to", what="ray-serve"),
        metavar="TARGET",
        help="the format to write: ray-serve (a Ray Serve config for `serve deploy`)",
    )
    parser.add_argument(
        "--out",
        type=typed(non_blank, "--out", what="a .yaml file"),
        metavar="FILE",
        help="write here (default: stdout)",
    )
    parser.add_argument(
        "--import-path",
        type=typed(non_blank, "--import-path", what="MODULE:ATTR"),
        default="app:app",
        metavar="MODULE:ATTR",
        help="your Serve application (default app:app)",
    )


def run(args: argparse.Namespace) -> int:
    """Load the profile (one line if bad), render the target, write it; exit 0."""
    from tuner.errors import BadInput
    from tuner.export import TARGETS
    from tuner.profile import load_profile

    target = choice("--to", args.to, tuple(TARGETS))
    if ":" not in args.import_path or args.import_path.startswith(":") or args.import_path.endswith(":"):
        raise BadInput(f"--import-path {args.import_path!r}: use MODULE:ATTR, e.g. app:app")
    profile = load_profile(args.profile)
    text = TARGETS[target](profile, import_path=args.import_path, source=args.profile)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    from tuner.data import atomic_write_text

    atomic_write_text(args.out, text, parents=True)
    print(f"{target} config written to {args.out}", file=sys.stderr)
    return 0
