"""``tuner serve PROFILE``: a profile's model over HTTP (needs the serve extra: ``pip install 'tuner[serve]'``).

The workers come from the profile, as in ``tuner run`` (the same overrides); one process with one
event loop answers HTTP in front of the runtime (:mod:`tuner.serve`: the endpoints and the wire
format). One line on stderr when it listens, one when the model is ready, one when it stops.

Exit codes: 0 after SIGTERM and a complete drain (a server's normal stop); 1 when requests were
still unfinished when ``--drain-s`` ended (they got 503); 130 on a second SIGTERM or Ctrl-C (at
once); 2, one line and nothing started, for a bad profile or argument, a port that cannot be had,
or a missing serve extra; a model that fails to load: its error's line and code.

Light at import (the CLI's parser imports it): Starlette, uvicorn and the runtime are imported in
:func:`run`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from tuner.commands.args import (
    add_profile_runner_arguments,
    add_setting_options,
    setting_values,
)
from tuner.commands.run import OVERRIDES
from tuner.errors import BadInput
from tuner.options import finite, integer, non_blank, typed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments (imports nothing heavy); values are checked as they are parsed."""
    parser.add_argument(
        "--host",
        type=typed(non_blank, "--host", what="an address to listen on", default="127.0.0.1"),
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface, e.g. in a container)",
    )
    parser.add_argument(
        "--port",
        type=typed(integer, "--port", ge=0, le=65535, what="a port"),
        default=8000,
        help="port to listen on (default 8000; 0: any free port, named in the start line)",
    )
    parser.add_argument(
        "--drain-s",
        type=typed(finite, "--drain-s", ge=0, what="seconds"),
        metavar="SECONDS",
        help="on SIGTERM, how long requests in flight may take before they get 503 (default: max_pending "
        "items at the profile's throughput, plus one timeout x (retries + 1))",
    )
    parser.add_argument(
        "--max-body-mb",
        type=typed(finite, "--max-body-mb", gt=0, what="megabytes"),
        metavar="MB",
        help="largest request body, MB (default 16, or what a full batch of JSON items needs if more); "
        "larger bodies get 413",
    )
    parser.add_argument(
        "--access-log", action="store_true", help="one line per request on stderr (default off)"
    )
    add_profile_runner_arguments(parser, "serve")
    add_setting_options(parser.add_argument_group("overrides of the profile's settings"), OVERRIDES)


def run(args: argparse.Namespace) -> int:
    """Check everything, build the runtime, serve until stopped; see the module docstring for exit codes."""
    _need_the_extra()
    from tuner.profile import load_profile
    from tuner.serve.codec import ItemSpec
    from tuner.serve.server import ServeOptions, body_limit, default_drain_s, serve

    profile = load_profile(args.profile)
    spec = ItemSpec.of_profile(profile)  # a model this server cannot take is one line, before anything starts
    if args.ray_address is not None:
        from tuner.cluster import address_kind

        address_kind(args.ray_address)
    runtime, host_check = _runtime(args, setting_values(args, OVERRIDES))
    options = ServeOptions(
        host=args.host,
        port=args.port,
        drain_s=args.drain_s if args.drain_s is not None else default_drain_s(runtime, profile),
        max_body=body_limit(args.max_body_mb, spec, runtime.settings.batch_size),
        access_log=args.access_log,
        check_input=args.input_check,
    )
    return serve(runtime, profile, args.profile, options, host_check, _say)


def _need_the_extra() -> None:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        raise BadInput(
            f"tuner serve needs the serve extra ({e.name or 'starlette, uvicorn'} is missing): "
            "pip install 'tuner[serve]'"
        ) from None


class _Warnings(logging.Handler):
    """The runtime's warning lines while it is built (the host check's among them)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _runtime(args: argparse.Namespace, overrides: dict[str, Any]) -> tuple[Any, str]:
    """The runtime the profile asks for (nothing started), and the host check's result in words
    (its warning line goes into the start line; any other warning is said as it is)."""
    from tuner.runtime import Runtime

    log = logging.getLogger("tuner.runtime")
    caught = _Warnings()
    log.addHandler(caught)
    try:
        runtime = Runtime.from_profile(
            args.profile,
            model=args.model,
            strict=args.strict,
            ray_address=args.ray_address,
            allow_pickle=args.allow_pickle,
            check_input=args.input_check,
            served=True,
            **overrides,
        )
    finally:
        log.removeHandler(caught)
    host_check = "host as measured"
    for line in caught.lines:
        if "measured on another" in line:
            # the settings it adapted to are in the start line already: not twice
            host_check = "host: " + line.removeprefix(f"{args.profile}: ").split(" → ")[0]
        else:
            _say(f"tuner: {line}")
    return runtime, host_check


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
    except UnicodeEncodeError:
        sys.stderr.write(line.encode("ascii", "replace").decode("ascii") + "\n")
    sys.stderr.flush()
