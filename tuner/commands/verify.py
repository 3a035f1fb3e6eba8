"""A running server against its profile: ``tuner verify PROFILE --url URL`` and the HTTP part of
``tuner bench --online --url URL --profile P`` (:mod:`tuner.bench.online.remote` does the work).

Both send the requests from ``--input`` (``.npy``, ``.npz``, ``.jsonl``), else from the profile's
model's own generator (a built-in or Python spec), and need the profile's ``online:`` section:
verify for the rates it offers, the search for where it starts.

``tuner verify`` exit codes: 0 holds; 1 does not hold; 2 bad input (a profile without an online:
section, a bad argument, a server that is not ready); 3 inconclusive: host busy; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from tuner import fmt
from tuner.errors import BadInput, ExitCode, Inconclusive, Regression
from tuner.options import finite, non_blank, typed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``PROFILE --url URL [--rates 0.5,0.8,1.0] [--input FILE] [--json]``."""
    parser.epilog = (
        "exit codes: 0 holds; 1 does not hold (p99 above the objective at a rate the profile says it "
        "sustains, beyond the CIs, or errors above 0.1%); 2 bad input; 3 inconclusive: host busy"
    )
    parser.add_argument("profile", type=typed(non_blank, "PROFILE", what="a profile file"), metavar="PROFILE",
                        help="the profile the server runs (measured with tuner bench --online)")  # fmt: skip
    parser.add_argument("--url", required=True, type=typed(non_blank, "--url", what="a URL"), metavar="URL",
                        help="the server, e.g. http://127.0.0.1:8000")  # fmt: skip
    parser.add_argument("--rates", type=typed(_shares, "--rates"), default=(0.5, 0.8, 1.0), metavar="LIST",
                        help="shares of the profile's max rate to offer (default 0.5,0.8,1.0)")  # fmt: skip
    parser.add_argument("--input", type=typed(non_blank, "--input", what="a data file"), metavar="FILE",
                        help="request items (.npy, .npz, .jsonl; default: the model's generator)")  # fmt: skip
    parser.add_argument("--max-outside-load", type=typed(finite, "--max-outside-load", ge=0, what="a percentage"),
                        default=25.0, metavar="PCT",
                        help="a step whose outside load passes this share of the usable cores makes a "
                        "passing verdict inconclusive (default 25)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="JSON on stdout; the lines on stderr")


def _shares(name: str, text: str) -> tuple[float, ...]:
    out = []
    for part in text.split(","):
        v = finite(name, part.strip(), gt=0, le=2, what="shares of the max rate")
        out.append(v)
    if not out:
        raise BadInput(f"{name} {text!r}: give shares such as 0.5,0.8,1.0")
    return tuple(out)


def request_items(profile: Any, input_path: str | None, n: int = 8192) -> Any:
    """The requests' items: ``input_path``, else the profile's model's generator."""
    if input_path is not None:
        from tuner.data import load_inputs

        items = load_inputs(input_path)
        if len(items) == 0:
            raise BadInput(f"{input_path}: no items")
        return items
    from tuner.models import input_generator, parse_spec

    spec = profile.model.spec
    gen = input_generator(parse_spec(spec))
    if gen is None:
        raise BadInput(f"{spec}: the model has no input generator; give --input FILE (.npy, .npz or .jsonl)")
    return gen(n, 0)


def _load(path: str) -> Any:
    from tuner.bench.online.remote import need_online
    from tuner.profile import load_profile

    profile = load_profile(path)
    need_online(profile, path)
    return profile


def run(args: argparse.Namespace) -> int:
    """``tuner verify`` (see the module docstring)."""
    from tuner.bench.online.remote import drift_words, verify, verify_table
    from tuner.serve.scrape import server_drift

    profile = _load(args.profile)
    items = request_items(profile, args.input)
    out = sys.stderr if args.json else sys.stdout
    print(f"verifying {args.url} against {args.profile}: {len(args.rates)} steps", file=sys.stderr)
    outcome = verify(profile, args.url, items, shares=args.rates, max_outside=args.max_outside_load / 100.0)
    outcome.server_drift = server_drift(args.url)
    for line in verify_table(outcome):
        print(line, file=out)
    print(f"  {drift_words(outcome.server_drift)}", file=out)
    print(outcome.line, file=out, flush=True)
    if args.json:
        print(json.dumps(outcome.to_json(), indent=2))
    if outcome.kind == "does not hold":
        raise Regression(f"{args.profile} does not hold at {args.url}")
    if outcome.kind == "inconclusive":
        raise Inconclusive(f"{args.profile} at {args.url}: inconclusive, the host was busy")
    return int(ExitCode.OK)


def run_bench_over_http(args: argparse.Namespace, request: Any) -> int:
    """``tuner bench --online --url URL --profile P``: the max rate within the objective through the
    server, recorded in P's ``online.http`` (or in ``--out``)."""
    from tuner.bench.online.remote import START_SHARE, search_over_http
    from tuner.bench.online.report import step_line
    from tuner.profile import save_profile

    if args.profile is None:
        raise BadInput(
            "--url needs --profile PROFILE: the profile the server runs (its online section is extended)"
        )
    profile = _load(args.profile)
    online = profile.online
    objective = args.p99_ms if args.p99_ms is not None else online.objective_p99_ms
    req = request if request.objective_ms == objective else _with_objective(request, objective)
    items = request_items(profile, args.input)
    ev = profile.evidence
    ceiling = ev.throughput_ci[1] if ev.throughput_ci else ev.throughput
    start = max(req.search.min_rate, START_SHARE * online.max_rate_at_slo)
    print(f"over HTTP: {args.url}, p99 ≤ {objective:g} ms, from {start:.0f} requests/s", file=sys.stderr)

    def said(m: Any) -> None:
        result = getattr(m, "result", None)
        if result is not None:
            print(f"  step {getattr(m, 'step', 0) + 1}: {step_line(result)}", file=sys.stderr, flush=True)

    got = search_over_http(args.url, items, req, start_rate=start, ceiling=ceiling, on_message=said)
    if got.interrupted:
        raise KeyboardInterrupt
    section = _http_section(got, req)
    best = got.found.best
    print(
        f"through {got.server}: {section.max_rate_at_slo:,.0f} requests/s at p99 ≤ {objective:g} ms "
        f"(in process {online.max_rate_at_slo:,.0f}/s: {_ratio(section.max_rate_at_slo, online.max_rate_at_slo)}); "
        f"the load generator used {fmt.sig(got.client_cores, 2)} cores ({got.client})"
        + ("" if best is not None else " — no rate was sustainable"),
        flush=True,
    )
    target = args.out or args.profile
    save_profile(profile.model_copy(update={"online": online.model_copy(update={"http": section})}), target)
    print(f"profile written to {target} (online.http)", file=sys.stderr)
    return int(ExitCode.OK if best is not None else ExitCode.FAILED)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}×" if b > 0 else "?"


def _with_objective(request: Any, objective: float) -> Any:
    from dataclasses import replace

    return replace(request, objective_ms=objective)


def _http_section(got: Any, req: Any) -> Any:
    from tuner.bench.online.report import curve_points
    from tuner.bench.online.search import latest
    from tuner.profile import HttpOnline, OnlineStep

    found = got.found
    lo, hi = found.max_rate_ci
    best = found.best
    return HttpOnline(
        server=got.server,
        measured=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        client=got.client,
        objective_p99_ms=req.objective_ms,
        arrivals=req.arrivals_text,
        request_size=str(req.request_size),
        items_per_request=float(req.request_size.mean),
        step_s=req.step_s,
        max_rate_at_slo=float(found.max_rate),
        max_rate_ci=(float(lo), float(hi) if hi is not None else None),
        p99_at_max_ms=best.latency_ms.get("p99") if best is not None else None,
        curve=[OnlineStep(**p) for p in curve_points(sorted(latest(found.steps), key=lambda s: s.rate))],
        client_cores=got.client_cores,
        status=dict(got.status),
    )
