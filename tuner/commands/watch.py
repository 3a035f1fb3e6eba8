"""``tuner watch URL``: the TUI's Live view on a running ``tuner serve`` (:mod:`tuner.tui.watch`).

It reads ``GET /metrics`` once a second and ``GET /v1/profile`` when it connects; it sends the
server nothing else, and ``q`` closes the view only — the server goes on serving.

Before the view opens, one scrape: a server that cannot be reached, or that answers but is not a
tuner server, is one line on stderr and exit 2, as ``tuner verify`` does for a server that is not
ready — a typo in the port should not open an empty screen. ``--wait`` opens the view anyway and
retries every second (watching a server that is still starting). Once the view is open, a server
that goes away is said in the view, which keeps retrying. Without the ``metrics`` extra
(``prometheus_client``, to parse the page): one line, exit 2.

Light at import (the CLI's parser imports it): Textual is imported in :func:`run`.
"""

from __future__ import annotations

import argparse

from tuner.errors import BadInput, ExitCode
from tuner.options import non_blank, typed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``URL [--wait]``; the URL is checked as it is parsed."""
    parser.epilog = (
        "exit codes: 0 after q (the server goes on); 2 the metrics extra missing, a bad URL, or a server "
        "that cannot be reached or is not a tuner server when the view would open (without --wait)"
    )
    parser.add_argument("url", type=typed(_url, "URL", what="a server address"), metavar="URL",
                        help="the running tuner serve, e.g. http://127.0.0.1:8000 (or :8000 on this host)")  # fmt: skip
    parser.add_argument("--wait", action="store_true",
                        help="open the view even if the server does not answer yet, and retry every second")  # fmt: skip


def _url(name: str, text: str, what: str) -> str:
    from tuner.serve.scrape import parse_url

    return parse_url(non_blank(name, text, what=what)).url


def run(args: argparse.Namespace) -> int:
    """Check the extra and the server, then open the view; returns its exit code."""
    from tuner.serve.scrape import Scraper, WatchError, need_parser, parse_url

    need_parser()
    scraper = Scraper(parse_url(args.url))
    if not args.wait:
        try:
            scraper()
        except WatchError as e:
            raise BadInput(
                f"{e} (tuner watch --wait opens the view anyway and retries every second)"
            ) from None
    from tuner.tui.watch import WatchApp

    app = WatchApp(scraper.target.url, scraper)
    code = app.run()
    return int(code or ExitCode.OK)
