"""`tuner bench`: sweep configurations headless, recommend one, write a profile; or gate a build in CI.

This module parses the options into a :class:`~tuner.bench.request.SweepRequest`, runs the sweep
pipeline (:mod:`tuner.bench.pipeline`, the same service the TUI calls) and prints what it found.

Exit codes: 0 ok; 1 a regression past ``--max-regression`` (or no configuration could run);
2 bad input or usage (one line, nothing written); 3 inconclusive — the gate's host was too busy to
measure cleanly, or its outside load could explain the change (:mod:`tuner.bench.gate`), so no
verdict; 130 interrupted (completed trials kept in ``--results``, best so far printed, no worker left).

Progress goes to stderr; the results table, charts and recommendation to stdout — or, with
``--json``, to stderr, and stdout gets only the JSON summary.

``--report FILE.html`` writes the sweep's page (:mod:`tuner.report`) at its end — interrupted too,
then saying so — and, with ``--baseline``, the gate's comparison, before the exit code is decided.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.commands.args import add_model_file_arguments, model_options, option, writable
from tuner.errors import BadInput, ExitCode, Inconclusive, Regression
from tuner.options import (
    MIN_STEP_S,
    MIN_WINDOW_S,
    choice,
    choice_list,
    delay_list,
    fault_plan,
    finite,
    int_list,
    integer,
    non_blank,
    request_size,
)

if TYPE_CHECKING:
    from tuner.bench.online.sweep import OnlineOutcome
    from tuner.bench.pipeline import SweepOutcome
    from tuner.bench.request import OnlineRequest, SweepRequest

#: Options that mean something only with --online (given without it: one line, exit 2).
ONLINE_ONLY = (
    "online_budget",
    "step",
    "arrivals",
    "trace",
    "request_size",
    "batch_delays",
    "batch_sizes",
    "online_configs",
    "url",
    "profile",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tuner bench`; each value is checked as it is parsed (tuner.options)."""
    parser.epilog = (
        "exit codes: 0 ok; 1 regression beyond --max-regression (or nothing feasible); "
        "2 bad input or usage; 3 inconclusive: the host was too busy to measure cleanly, or the "
        "outside load could explain the change (no verdict, the load named); "
        "130 interrupted (completed trials kept in --results)"
    )
    p = parser
    option(p, "--model", non_blank, what="a model spec", default_word="builtin:mlp",
           help="model spec (default builtin:mlp; with --baseline, the profile's model)")  # fmt: skip
    option(p, "--input", non_blank, what="a .npy, .npz or .jsonl file", metavar="FILE",
           help="input items: .npy rows, .npz (one array per input name) or .jsonl lines "
           "(default: the model's generator)")  # fmt: skip
    option(p, "--items", integer, ge=1, default=8192, metavar="N",
           help="items to generate when there is no --input (an integer >= 1; default 8192)")  # fmt: skip
    option(p, "--backends", non_blank, what="backends, e.g. process,thread", metavar="LIST",
           help="backends to try, e.g. process,thread")  # fmt: skip
    option(p, "--workers", int_list, metavar="LIST", help="worker counts to try, e.g. 1,2 or 1-4")
    option(p, "--threads", int_list, metavar="LIST",
           help="threads per worker to try (BLAS, or the model file's framework pool), e.g. 1,2")  # fmt: skip
    option(p, "--partition-sizes", int_list, metavar="LIST", help="partition sizes to try, e.g. 16,64,256")
    option(p, "--oversubscribe", help="allow workers × threads above the usable cores")
    option(p, "--strategy", non_blank, what="adaptive or grid", default_word="adaptive", default="adaptive",
           help="adaptive (default) or grid")  # fmt: skip
    option(p, "--budget", finite, gt=0, what="seconds", default=150.0, metavar="SECONDS",
           help="time budget of the sweep (seconds > 0; default 150)")  # fmt: skip
    option(p, "--max-trials", integer, ge=1, metavar="N",
           help="at most this many trials of the search (the default deployment's two are measured besides)")  # fmt: skip
    option(p, "--objective", non_blank, what="throughput or p99", default_word="throughput", default="throughput",
           help="throughput (default) or p99")  # fmt: skip
    option(p, "--p99-ms", finite, gt=0, what="milliseconds", metavar="MS",
           help="constraint: p99 latency at most this (milliseconds > 0)")  # fmt: skip
    option(p, "--memory-mb", finite, gt=0, what="megabytes", metavar="MB",
           help="constraint: total peak RSS at most this (megabytes > 0)")  # fmt: skip
    option(p, "--min-throughput", finite, gt=0, what="items/s", metavar="N",
           help="constraint: at least this many items/s (> 0)")  # fmt: skip
    option(
        p, "--faults", fault_plan, metavar="SPEC", help="fault plan, e.g. crash=0.05,hang=0.01,slow=0.05x10"
    )
    option(p, "--window", finite, ge=MIN_WINDOW_S, what="seconds", default=1.0, metavar="SECONDS",
           help=f"measurement window (seconds >= {MIN_WINDOW_S:g}; default 1)")  # fmt: skip
    option(
        p,
        "--out",
        non_blank,
        what="a .yaml file",
        metavar="FILE.yaml",
        help="write the profile here (atomically)",
    )
    option(
        p, "--name", non_blank, what="a profile name", help="profile name (default: from --out, or the model)"
    )
    option(p, "--results", non_blank, what="a .jsonl file", metavar="FILE.jsonl",
           help="one JSON line per trial, written as each trial ends")  # fmt: skip
    option(p, "--resume", help="continue the sweep in --results, skipping measured configs")
    option(p, "--csv", non_blank, what="a file", metavar="FILE", help="write the trials as CSV")
    option(p, "--summary", non_blank, what="a Markdown file", metavar="FILE.md",
           help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")  # fmt: skip
    option(p, "--report", non_blank, what="an .html file", metavar="FILE.html",
           help="write the sweep's HTML report here at its end (as tuner report PROFILE --results R "
           "would; atomically, its folder must exist); with --baseline, the gate's comparison: the "
           "baseline beside the new measurement")  # fmt: skip
    option(p, "--json", help="JSON summary on stdout; everything else on stderr")
    option(p, "--baseline", non_blank, what="a profile file", metavar="PROFILE",
           help="CI gate: re-measure this profile's recommended configuration")  # fmt: skip
    option(p, "--against", non_blank, what="a model spec or file", metavar="SPEC",
           help="with --baseline: measure the baseline's configuration side by side with this model (the "
           "previous version) and the current one (--model, else the profile's), interleaved in one run, "
           "and decide on the paired difference — no stored figure, no other host")  # fmt: skip
    option(p, "--ray-address", non_blank, what="auto, local or ray://host:port", metavar="ADDRESS",
           help="sweep the ray backend on this cluster: auto, local (a head on loopback for this run) "
           "or ray://host:port; alone, it implies --backends ray")  # fmt: skip
    option(p, "--placements", non_blank, what="SPREAD, PACK or both", metavar="LIST",
           help="ray backend: actor placements to try, SPREAD and/or PACK (default SPREAD)")  # fmt: skip
    option(p, "--max-outside-load", finite, ge=0, what="a percentage of the usable cores", default=25.0,
           metavar="PCT",
           help="a measurement window in which other processes (and CPU steal) use more than this share "
           "of the usable cores is discarded and measured again; a trial that cannot get clean windows "
           "is marked contaminated, and the gate calls it inconclusive, never a regression "
           "(percent >= 0; default 25)")  # fmt: skip
    option(p, "--calibration", finite, ge=0, what="seconds", metavar="SECONDS",
           help="measure this host's speed on reference kernels before the trials, within this budget "
           "(the profile's host.calibration: the gate adjusts for a slower or faster host); 0: none "
           "(default: $TUNER_CALIBRATION_S, else 5)")  # fmt: skip
    option(p, "--max-regression", finite, ge=0, what="a percentage", default=10.0, metavar="PCT",
           help="gate tolerance in percent (>= 0; default 10)")  # fmt: skip
    option(p, "--require-clean",
           help="exit 3, writing no profile, when the recommendation could only be measured on a busy "
           "host (contaminated: its figures read low)")  # fmt: skip
    _add_online_arguments(parser)
    add_model_file_arguments(parser, sweep=True)


def _add_online_arguments(parser: argparse.ArgumentParser) -> None:
    """``--online`` and its options: open-loop load, the highest rate within the p99 objective."""
    g = parser.add_argument_group(
        "open-loop load (--online)",
        "after the closed-loop sweep, send requests on a schedule (not when a worker frees up) through "
        "the runtime's dynamic batcher and find, per configuration and batching setting, the highest "
        "request rate whose p99 stays within --p99-ms; the profile gains an online: section",
    )
    option(g, "--online", help="search the highest sustainable request rate (needs --p99-ms)")
    option(g, "--online-budget", finite, gt=0, what="seconds", metavar="SECONDS",
           help="time budget of the online search, after the closed-loop one (seconds > 0; default 150)")  # fmt: skip
    option(g, "--step", finite, ge=MIN_STEP_S, what="seconds", metavar="SECONDS",
           help=f"duration of each load step (seconds >= {MIN_STEP_S:g}; default 2)")  # fmt: skip
    option(g, "--arrivals", non_blank, what="constant or poisson", default_word="poisson",
           help="arrival process: poisson (default) or constant")  # fmt: skip
    option(g, "--trace", non_blank, what="a trace file", metavar="FILE",
           help="replay this trace (one timestamp per line, optionally a request size), scaled to each step's rate")  # fmt: skip
    option(
        g,
        "--request-size",
        request_size,
        metavar="N|A-B",
        help="items per request: N, or uniform A-B (default 1)",
    )
    option(g, "--batch-delays", delay_list, metavar="MS,...",
           help="max batch delays to try, ms (default 0,1,2,5,10; the 5 ms default is always measured)")  # fmt: skip
    option(g, "--batch-sizes", int_list, metavar="LIST",
           help="max batch sizes to try (default: each configuration's closed-loop partition size)")  # fmt: skip
    option(g, "--url", non_blank, what="a URL", metavar="URL",
           help="search the rate through this running server (tuner serve) instead, its configuration as "
           "it is; needs --profile, and records the figure in its online.http")  # fmt: skip
    option(g, "--profile", non_blank, what="a profile file", metavar="PROFILE",
           help="with --url: the profile the server runs (--p99-ms defaults to its objective; written "
           "back, or to --out)")  # fmt: skip
    option(g, "--online-configs", integer, ge=1, le=16, metavar="N",
           help="closed-loop configurations to search online, best first (an integer from 1 to 16; default 2)")  # fmt: skip


# ------------------------------------------------------------------------------- the request


def online_request(args: argparse.Namespace, objective_ms: float | None = None) -> OnlineRequest | None:
    """The online options, checked; None without --online. Raises BadInput (nothing started).
    ``objective_ms``: the objective when --p99-ms is not given (over HTTP: the profile's)."""
    given = [f"--{k.replace('_', '-')}" for k in ONLINE_ONLY if getattr(args, k, None) is not None]
    if not args.online:
        if given:
            raise BadInput(f"{given[0]} needs --online (it sets how the open-loop search runs)")
        return None
    if args.baseline is not None:
        raise BadInput(
            "--online cannot be combined with --baseline (the gate re-measures a closed-loop figure)"
        )
    p99_ms = args.p99_ms if args.p99_ms is not None else objective_ms
    if p99_ms is None:
        raise BadInput("--online needs --p99-ms MS: the latency objective the highest rate must keep")
    if args.trace is not None and args.arrivals is not None:
        raise BadInput("--trace and --arrivals are exclusive: a trace brings its own arrivals")
    from tuner.bench.online.schedule import ARRIVALS, RequestSize, load_trace
    from tuner.bench.request import OnlineRequest

    arrivals: Any = choice("--arrivals", args.arrivals, ARRIVALS) if args.arrivals is not None else "poisson"
    if args.trace is not None:
        arrivals = load_trace(args.trace)
    given_opts = {
        "step_s": args.step,
        "budget_s": args.online_budget,
        "delays_ms": args.batch_delays,
        "batch_sizes": args.batch_sizes,
        "configs": args.online_configs,
    }
    return OnlineRequest(
        objective_ms=p99_ms,
        arrivals=arrivals,
        request_size=args.request_size or RequestSize(),
        **{k: v for k, v in given_opts.items() if v is not None},
    )


def request_of(args: argparse.Namespace) -> SweepRequest:
    """Check every option; the sweep's request. Raises BadInput, nothing written."""
    from tuner.bench.measure import MeasureSettings
    from tuner.bench.request import SpaceRequest, SweepRequest, calibration_budget
    from tuner.bench.search import STRATEGIES
    from tuner.bench.types import Objective

    strategy = choice("--strategy", args.strategy, STRATEGIES)
    goal = choice("--objective", args.objective, ("throughput", "p99"))
    _check_paths(args)
    online = online_request(args)
    objective = Objective(
        goal=goal,
        # With --online the objective is the online one: a closed-loop p99 (several partitions queued
        # per worker by design) is not a service's latency, so it does not rule configurations out.
        p99_budget_ms=args.p99_ms if online is None else None,
        memory_budget_mb=args.memory_mb,
        min_throughput=args.min_throughput,
    )
    backends, placements = _ray_options(args)
    dims = tuple(d.strip() for d in args.dims.split(",") if d.strip()) if getattr(args, "dims", None) else ()
    return SweepRequest(
        model=args.model if args.model is not None else "builtin:mlp",
        model_options=model_options(args),
        dims=dims,
        input_path=args.input,
        n_items=args.items,
        space=SpaceRequest(
            backends=backends,
            workers=args.workers,
            threads=args.threads,
            partition_sizes=args.partition_sizes,
            placements=placements,
            oversubscribe=args.oversubscribe,
        ),
        strategy=strategy,
        budget_s=args.budget,
        max_trials=args.max_trials,
        objective=objective,
        faults=args.faults,
        # Short windows want a proportionally short warm-up and cap, so a quick sweep stays quick.
        settings=MeasureSettings.for_window(args.window, max_outside=args.max_outside_load / 100.0),
        results_path=args.results,
        resume=args.resume,
        confirm=True,  # the profile records a confirmed figure, so the CI gate does not cry wolf
        ray_address=args.ray_address,
        online=online,
        calibration_s=calibration_budget(args.calibration) if args.calibration is not None else None,
    )


def _check_paths(args: argparse.Namespace) -> None:
    if args.resume and not args.results:
        raise BadInput("--resume needs --results FILE.jsonl (the sweep to continue)")
    if args.resume and not Path(args.results).exists():
        raise BadInput(f"--resume: {args.results} does not exist (nothing to resume)")
    if args.out is not None and Path(args.out).suffix.lower() not in (".yaml", ".yml"):
        raise BadInput(f"--out {args.out}: a profile is a .yaml file")
    writable("--out", args.out, creates_folders=True)  # a profile's folders are made on save
    for name, path in (("--results", args.results), ("--csv", args.csv), ("--summary", args.summary)):
        writable(name, path)
    if args.name is not None and not re.fullmatch(r"[a-zA-Z0-9_.-]+", args.name):
        raise BadInput(f"--name {args.name!r}: use letters, digits, '_', '.' and '-'")


def _ray_options(args: argparse.Namespace) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """--backends, --ray-address and --placements checked together: (backends, placements)."""
    from tuner.backends import BACKENDS, PLACEMENTS, names

    backends = choice_list("--backends", args.backends, BACKENDS) if args.backends is not None else None
    on_cluster = names(where="needs_cluster")
    placements = None
    if args.placements is not None:
        placements = choice_list("--placements", args.placements.upper(), PLACEMENTS)
    if args.ray_address is not None:
        from tuner.cluster import address_kind

        address_kind(args.ray_address)
        if backends is None:
            backends = on_cluster
        elif not set(backends) & set(on_cluster):
            raise BadInput(f"--ray-address is for the {', '.join(on_cluster)} backend: add it to --backends")
    elif backends is not None and set(backends) & set(on_cluster):
        raise BadInput(
            f"--backends {','.join(on_cluster)} needs --ray-address (auto, local or ray://host:port)"
        )
    if placements is not None and not (backends and set(backends) & set(names(where="has_placement"))):
        raise BadInput("--placements is for the ray backend (--backends ray --ray-address ...)")
    return backends, placements


# ------------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """`tuner bench` (see the module docstring for exit codes and streams)."""
    _check_report(args)
    if args.url is not None or args.profile is not None:
        return _over_http(args)
    if args.against is not None and args.baseline is None:
        raise BadInput("--against needs --baseline PROFILE: the configuration both versions run")
    if args.baseline is not None:
        online_request(args)  # a bad online option is refused first, as without --baseline
        return _gate(args)
    try:
        return _sweep(args)
    except KeyboardInterrupt:
        if args.report:  # stopped before the sweep returned anything to show
            sys.stderr.write(
                f"tuner: interrupted before any trial finished: no report written to {args.report}\n"
            )
        raise


def _check_report(args: argparse.Namespace) -> None:
    """--report: an .html file in a folder that exists and is writable, refused before anything runs."""
    if args.report is None:
        return
    if args.url is not None or args.profile is not None:
        raise BadInput(
            "--report is not available with --url (tuner report PROFILE makes the page of the profile)"
        )
    if Path(args.report).suffix.lower() not in (".html", ".htm"):
        raise BadInput(f"--report {args.report}: a report is an .html file")
    writable("--report", args.report)


def _sweep(args: argparse.Namespace) -> int:
    """The sweep, its output and its files."""
    from tuner.bench.pipeline import SweepPipeline
    from tuner.bench.types import TrialFinished
    from tuner.commands.progress import Progress, cancellable, console

    request = request_of(args)
    err = console(stderr=True)
    with SweepPipeline(request) as pipeline:
        prepared = pipeline.prepare()  # a bad model, input or space is one line, nothing started
        _say_prepared(err, pipeline)
        finished: list[Any] = []  # every trial as it ends, heard from the pipeline's messages

        with Progress(request.strategy, request.budget_s, request.max_trials) as progress:

            def hear(message: Any) -> None:
                if isinstance(message, TrialFinished):  # kept before its line is printed
                    finished.append(message.result)
                progress(message)

            pipeline.on_message = hear
            outcome, stopped = cancellable(pipeline.run, err, "the sweep")
        if outcome is None:  # interrupted before the pipeline returned
            from tuner.bench.pipeline import SweepOutcome

            if not pipeline.results:  # its sweep had not handed its trials over yet: those heard
                pipeline.results = [*pipeline.resumed, *finished]
            outcome = SweepOutcome(
                request, prepared, pipeline.results, pipeline.recommend(), True, pipeline.elapsed_s,
                resumed=list(pipeline.resumed), calibration=pipeline.calibration,
                calibration_problem=pipeline.calibration_problem,
            )  # fmt: skip
        interrupted = stopped or outcome.interrupted
        return _report(args, outcome, interrupted, err)


def _over_http(args: argparse.Namespace) -> int:
    """``--online --url URL --profile P``: the rate through a running server (tuner.commands.verify)."""
    from tuner.commands.verify import run_bench_over_http
    from tuner.profile import load_profile

    if args.url is None or args.profile is None:
        raise BadInput("--url and --profile go together: the server, and the profile it runs")
    if not args.online:
        raise BadInput("--url needs --online: it measures the rate a server sustains within the objective")
    if args.baseline is not None:
        raise BadInput("--url cannot be combined with --baseline")
    profile = load_profile(args.profile)
    objective = profile.online.objective_p99_ms if profile.online is not None else None
    request = online_request(args, objective_ms=objective)
    assert request is not None
    return run_bench_over_http(args, request)


def _say_prepared(err: Any, pipeline: Any) -> None:
    """The host, the model and the space, before the first trial (stderr)."""
    p, req = pipeline.prepared, pipeline.request
    say = lambda text: err.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"host: {p.host.summary()}")
    if p.cluster is not None:
        say(f"cluster: {p.cluster.summary()}")
    info = p.info
    say(f"model: {req.model} ({info.description}; bound: {info.bound}) · {len(p.inputs)} items")
    if info.framework:
        say(
            f"model file: {info.format} · {info.framework} {info.framework_version} · inputs {info.inputs or '?'}"
            + (f" · outputs {', '.join(info.outputs)}" if info.outputs else "")
            + f" · threads knob: {info.pool_note}"
        )
        for note in info.notes:
            say(f"  note: {note}")
    say(f"space: {p.space.describe()} · strategy {req.strategy}")
    if pipeline.request.resume and req.results_path:
        from tuner.bench.session import load_results

        known = load_results(req.results_path, req.model)
        if known:
            say(f"resuming: {len({r.config.key() for r in known})} trials already in {req.results_path}")


def _report(args: argparse.Namespace, outcome: SweepOutcome, interrupted: bool, err: Any) -> int:
    """Print the results, write the files asked for, and say how it ended (the exit code)."""
    from tuner.commands.progress import console

    rec = outcome.recommendation
    if interrupted:
        err.print("interrupted — best so far:", markup=False)
    human = console(stderr=args.json)
    _show(human, outcome)
    busy = rec.best is not None and rec.best.contaminated
    refuse = busy and args.require_clean
    written = _write_outputs(args, outcome, human, interrupted=interrupted, refuse=refuse)
    _write_report(args, outcome, human, interrupted=interrupted, written=written, refused=refuse)
    if args.json:
        _print_json(args, outcome, interrupted, written)
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    if busy:
        sys.stderr.write(
            "tuner: the recommendation was measured on a busy host (contaminated: too few clean windows); "
            "its figures read low — re-measure on a quiet host"
            + (" (--require-clean: no profile written)\n" if refuse else "\n")
        )
        if refuse:
            return int(ExitCode.INCONCLUSIVE)
    if rec.best is None:
        sys.stderr.write("tuner: no feasible configuration (see the table)\n")
        return int(ExitCode.FAILED)
    if outcome.online is not None and outcome.online.summary.winner is None:
        sys.stderr.write(
            f"tuner: no configuration sustained any rate with p99 <= {args.p99_ms:g} ms (see above)\n"
        )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def _show(human: Any, outcome: SweepOutcome) -> None:
    """The results table, the charts, the recommendation in words, the online search."""
    from tuner.bench.report import charts, results_table

    results, rec = outcome.results, outcome.recommendation
    if results:
        human.print(results_table(results, rec.best))
        text = charts(results, width=min(100, max(40, human.width)))
        if text:
            from rich.text import Text

            # plotext writes ANSI colour codes; rich keeps them on a terminal and drops them elsewhere.
            human.print(Text.from_ansi(text), soft_wrap=True)
    for line in rec.words:
        human.print(line, markup=False, highlight=False, soft_wrap=True)
    if rec.best is not None:
        human.print(
            f"  autoscale reasoning: {rec.autoscale_reasoning}", markup=False, highlight=False, soft_wrap=True
        )
    for line in _host_speed_lines(outcome):
        human.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if outcome.online is not None:
        _show_online(outcome.online, results, human)


def _host_speed_lines(outcome: SweepOutcome) -> list[str]:
    """The host's calibration and the model's nature: what a later gate adjusts for."""
    lines = []
    if outcome.calibration is not None:
        lines.append(f"host speed: {outcome.calibration.describe()}")
    elif outcome.calibration_problem:
        lines.append(f"host speed: {outcome.calibration_problem}")
    if outcome.results:
        lines.append(f"model nature (the kernel a gate compares hosts on): {outcome.nature().describe()}")
    return lines


def _show_online(outcome: OnlineOutcome, results: list[Any], human: Any) -> None:
    """The winner's curve, the words and the scalability fit, on the human stream."""
    from tuner.bench.online.report import curve_table, scaling_points
    from tuner.plan import NotEnoughPoints, fit_usl

    summary = outcome.summary
    if summary.winner is not None:
        human.print(curve_table(summary.winner))
    for line in summary.words:
        human.print(line, markup=False, highlight=False, soft_wrap=True)
    win = summary.winner
    if win is not None:
        pts = scaling_points(results, win.candidate.backend, win.candidate.threads_per_worker)
        obs = [(n, x) for n, _t, w in pts for x in w]
        try:
            line = fit_usl(obs).describe()
        except NotEnoughPoints as e:
            line = f"{e}: no scalability fit (tuner plan will not assume more workers per host than measured)"
        human.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)


def _write_outputs(
    args: argparse.Namespace, outcome: SweepOutcome, human: Any, *, interrupted: bool, refuse: bool = False
) -> str | None:
    """Write --csv, --summary and --out (not when ``interrupted``, or ``refuse``d by --require-clean);
    return the profile's path if one was written."""
    from tuner.bench.report import csv_text, markdown_summary
    from tuner.data import atomic_write_text
    from tuner.profile import save_profile

    results, rec = outcome.results, outcome.recommendation
    if args.csv:
        atomic_write_text(args.csv, csv_text(results))
    if args.summary:
        md = markdown_summary(results, rec, title="tuner bench", host=outcome.prepared.host.summary())
        if outcome.online is not None:
            md += "\n\n### Online (open-loop load)\n\n" + "\n".join(
                f"- {w.strip()}" for w in outcome.online.summary.words
            )
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    if not args.out or refuse or rec.best is None:
        return None
    if interrupted:
        human.print(f"interrupted: profile not written to {args.out} (resume with --resume)", markup=False)
        return None
    save_profile(outcome.profile(_profile_name(args, outcome)), args.out)
    human.print(f"profile written to {args.out}", markup=False, highlight=False, soft_wrap=True)
    return str(args.out)


def _profile_name(args: argparse.Namespace, outcome: SweepOutcome) -> str:
    """--name, else --out's stem, else the model's spec, as a profile name."""
    stem = Path(args.out).stem if args.out else outcome.request.model
    return args.name or re.sub(r"[^a-zA-Z0-9_.-]", "-", stem).strip("-") or "profile"


def command_line() -> str | None:
    """The exact ``tuner bench`` command of this process, for the page's "how to reproduce"; None
    when tuner was not started from a command line (called in-process: the page reconstructs one
    from the profile and says so)."""
    argv = sys.argv[1:]
    if argv[:1] != ["bench"] or not any(a == "--report" or a.startswith("--report=") for a in argv):
        return None
    return shlex.join(["tuner", *argv])


def _write_report(
    args: argparse.Namespace, outcome: SweepOutcome, human: Any, *, interrupted: bool, written: str | None,
    refused: bool,
) -> None:  # fmt: skip
    """--report: the page of this sweep, written atomically — the profile it wrote (or would have:
    interrupted, or refused by --require-clean, the page says so at its top) and every trial; a
    sweep with nothing to recommend gets its trials alone; one with no trial, a line saying so."""
    if not args.report:
        return
    from tuner.data import atomic_write_text
    from tuner.errors import TunerError
    from tuner.report import render_report, render_trials

    results, rec = outcome.results, outcome.recommendation
    measured = len({r.config.key() for r in results})
    warnings = []
    if interrupted:
        warnings.append(
            f"The sweep was interrupted after {measured} configuration{'s' if measured != 1 else ''}: "
            "what follows is its best so far, not a finished recommendation, and no profile was written "
            "(tuner bench --resume --results R.jsonl continues it)."
        )
    elif refused:
        warnings.append(
            "The recommendation was measured on a busy host (too few clean windows): --require-clean wrote "
            "no profile. Its figures read low; re-measure on a quiet host."
        )
    profile = None
    if rec.best is not None:
        try:
            profile = outcome.profile(_profile_name(args, outcome))
        except TunerError as e:  # a partial sweep the profile cannot describe: its trials stand alone
            warnings.append(f"No profile could be made of this sweep ({e}): the trials alone are shown.")
    if profile is not None:
        sources = [written, *([args.results] if args.results else [])] if written else []
        again = ["tuner", "report", str(written), *(["--results", args.results] if args.results else [])]
        page_command = shlex.join([*again, "--out", args.report]) if written else None
        text = render_report(
            profile, results, command=command_line(), sources=sources, page_command=page_command,
            warnings=warnings,
        )  # fmt: skip
    elif results:
        if not interrupted and rec.best is None:
            warnings.append(
                "No configuration was feasible: nothing is recommended (see every trial's status)."
            )
        text = render_trials(
            results, model=outcome.request.model, host=outcome.prepared.host, calibration=outcome.calibration,
            command=command_line(), warnings=warnings, recommend=rec.best is not None,
        )  # fmt: skip
    else:
        sys.stderr.write(f"tuner: no trial finished: no report written to {args.report}\n")
        return
    atomic_write_text(args.report, text)
    human.print(f"report written to {args.report}", markup=False, highlight=False, soft_wrap=True)


def _print_json(
    args: argparse.Namespace, outcome: SweepOutcome, interrupted: bool, written: str | None
) -> None:
    from tuner.bench.online.report import online_json
    from tuner.bench.report import json_summary

    o = outcome.online
    summary = json_summary(
        outcome.results,
        outcome.recommendation,
        model=outcome.request.model,
        host=outcome.prepared.host.summary(),
        space=outcome.prepared.space.describe(),
        strategy=outcome.request.strategy,
        elapsed_s=round(outcome.elapsed_s, 2),
        interrupted=interrupted,
        profile=written,
        calibration=outcome.calibration.to_dict() if outcome.calibration is not None else None,
        nature=outcome.nature().to_dict() if outcome.results else None,
        **({"online": online_json(o.summary, o.results, o.request)} if o is not None else {}),
    )
    sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------- the gate


def _gate(args: argparse.Namespace) -> int:
    """Re-measure the baseline profile's recommended configuration: exit 0 ok, 1 a regression beyond
    --max-regression, 3 inconclusive (host busy); the rules are :mod:`tuner.bench.gate`'s."""
    from tuner.bench.pipeline import SweepPipeline, baseline_request
    from tuner.bench.report import json_summary, markdown_summary
    from tuner.commands.progress import Progress, cancellable, console
    from tuner.profile import load_profile

    profile = load_profile(args.baseline)
    request = baseline_request(profile, request_of(args), model_given=args.model is not None)
    d = profile.deployment()
    if d.kind.needs_cluster and request.ray_address is None:
        request.ray_address = _profile_address(profile)
    err = console(stderr=True)
    with SweepPipeline(request) as pipeline, Progress("grid", None) as progress:
        pipeline.on_message = progress

        def retry() -> None:
            progress.say("  the host was busy during that trial: measuring once more", "yellow")

        def measure(cancel: Any) -> Any:
            if args.against is not None:
                return pipeline.gate_against(args.against, args.max_regression, cancel)
            return pipeline.gate(profile, args.max_regression, cancel, on_retry=retry)

        gated, stopped = cancellable(measure, err, "the gate")
        if stopped or gated is None:
            if args.report:
                sys.stderr.write(
                    f"tuner: the gate was interrupted before its verdict: no comparison written to {args.report}\n"
                )
            raise KeyboardInterrupt
        host = pipeline.prepare().host
        calibration = pipeline.calibration
    verdict = gated.verdict
    if args.report:
        _write_gate_report(args, profile, gated, host, calibration, request.model)
    if args.summary:
        with open(args.summary, "a", encoding="utf-8") as f:
            title = f"tuner gate: {args.baseline}"
            f.write(
                markdown_summary(
                    gated.results, None, title=title, host=host.summary(), gate_line=verdict.line
                )
                + "\n"
            )
    if args.json:
        gate = verdict.to_json(args.max_regression)
        summary = json_summary(
            gated.results, gated.recommendation, model=request.model, baseline=args.baseline, gate=gate
        )
        print(json.dumps(summary, indent=2))
    # Plain print: one line a CI log (or a grep) can rely on, never wrapped by rich.
    print(verdict.line, file=sys.stderr if args.json else sys.stdout, flush=True)
    if verdict.kind == "regression":
        raise Regression(f"regression against {args.baseline}: {verdict.message}")
    if verdict.kind == "inconclusive":
        raise Inconclusive(f"inconclusive against {args.baseline}: {verdict.message}")
    return int(ExitCode.OK)


def _write_gate_report(
    args: argparse.Namespace, profile: Any, gated: Any, host: Any, calibration: Any, model: str
) -> None:
    """--report with --baseline: the comparison page — the baseline profile (A) beside the trials
    the gate just measured (B), with the verdict; with --against, the previous version's trials (A)
    beside the current one's (B), both measured now. Written before the exit code is decided, so a
    regression's page is there for the CI artifact."""
    from tuner.data import atomic_write_text
    from tuner.report import render_comparison

    verdict = gated.verdict.line
    if args.against is not None:
        # GateOutcome.results of the side-by-side gate: each pair's A then its B (pipeline.gate_against).
        a_side, b_side = gated.results[0::2], gated.results[1::2]
        text = render_comparison(
            None, None, a_side, b_side, host_b=host, calibration_b=calibration, verdict=verdict,
            command=command_line(), names=(f"previous version: {args.against}", f"current version: {model}"),
        )  # fmt: skip
    else:
        text = render_comparison(
            profile, None, results_b=gated.results, host_b=host, calibration_b=calibration, verdict=verdict,
            command=command_line(),
        )  # fmt: skip
    atomic_write_text(args.report, text)
    print(f"comparison written to {args.report}", file=sys.stderr, flush=True)


def _profile_address(profile: Any) -> str:
    """The address a cluster profile's gate reconnects to: its kind (a client's from RAY_ADDRESS)."""
    kind = profile.cluster.address if profile.cluster is not None else "auto"
    if kind != "client":
        return str(kind)
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        raise BadInput("the baseline was measured through Ray Client: give --ray-address ray://host:port")
    return address
