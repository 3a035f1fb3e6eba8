"""`tuner bench`: sweep configurations headless, recommend one, write a profile; or gate a build in CI.

Exit codes: 0 ok; 1 a regression past ``--max-regression`` (or no configuration could run);
2 bad input or usage (one line, nothing written); 3 inconclusive — the gate's host was too busy to
measure cleanly, or its outside load could explain the change (:mod:`tuner.bench.gate`), so no
verdict; 130 interrupted (completed trials kept in ``--results``, best so far printed, no worker left).

Progress goes to stderr; the results table, charts and recommendation to stdout — or, with
``--json``, to stderr, and stdout gets only the JSON summary.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.commands.args import (
    MIN_WINDOW_S,
    choice,
    choice_list,
    fault_plan,
    finite,
    int_list,
    integer,
    non_blank,
    typed,
)
from tuner.errors import BadInput, ExitCode, Inconclusive, Regression

if TYPE_CHECKING:
    from tuner.bench.online.sweep import OnlineOutcome
    from tuner.bench.recommend import Recommendation
    from tuner.bench.session import Sweep, SweepSpec
    from tuner.bench.types import SweepMessage, TrialResult
    from tuner.tui.format import SweepOutlook


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tuner bench`; each value is checked as it is parsed (tuner.commands.args)."""
    parser.epilog = (
        "exit codes: 0 ok; 1 regression beyond --max-regression (or nothing feasible); "
        "2 bad input or usage; 3 inconclusive: the host was too busy to measure cleanly, or the "
        "outside load could explain the change (no verdict, the load named); "
        "130 interrupted (completed trials kept in --results)"
    )
    a = parser.add_argument
    a(
        "--model",
        type=typed(non_blank, "--model", what="a model spec", default="builtin:mlp"),
        help="model spec (default builtin:mlp; with --baseline, the profile's model)",
    )
    a(
        "--input",
        type=typed(non_blank, "--input", what="a .npy, .npz or .jsonl file"),
        metavar="FILE",
        help="input items: .npy rows, .npz (one array per input name) or .jsonl lines "
        "(default: the model's generator)",
    )
    a(
        "--items",
        type=typed(integer, "--items", ge=1),
        default=8192,
        metavar="N",
        help="items to generate when there is no --input (an integer >= 1; default 8192)",
    )
    a(
        "--backends",
        type=typed(non_blank, "--backends", what="backends, e.g. process,thread"),
        metavar="LIST",
        help="backends to try, e.g. process,thread",
    )
    a(
        "--workers",
        type=typed(int_list, "--workers"),
        metavar="LIST",
        help="worker counts to try, e.g. 1,2 or 1-4",
    )
    a(
        "--threads",
        type=typed(int_list, "--threads"),
        metavar="LIST",
        help="threads per worker to try (BLAS, or the model file's framework pool), e.g. 1,2",
    )
    a(
        "--partition-sizes",
        type=typed(int_list, "--partition-sizes"),
        metavar="LIST",
        help="partition sizes to try, e.g. 16,64,256",
    )
    a("--oversubscribe", action="store_true", help="allow workers × threads above the usable cores")
    a(
        "--strategy",
        type=typed(non_blank, "--strategy", what="adaptive or grid", default="adaptive"),
        default="adaptive",
        help="adaptive (default) or grid",
    )
    a(
        "--budget",
        type=typed(finite, "--budget", gt=0, what="seconds"),
        default=150.0,
        metavar="SECONDS",
        help="time budget of the sweep (seconds > 0; default 150)",
    )
    a("--max-trials", type=typed(integer, "--max-trials", ge=1), metavar="N", help="at most this many trials")
    a(
        "--objective",
        type=typed(non_blank, "--objective", what="throughput or p99", default="throughput"),
        default="throughput",
        help="throughput (default) or p99",
    )
    a(
        "--p99-ms",
        type=typed(finite, "--p99-ms", gt=0, what="milliseconds"),
        metavar="MS",
        help="constraint: p99 latency at most this (milliseconds > 0)",
    )
    a(
        "--memory-mb",
        type=typed(finite, "--memory-mb", gt=0, what="megabytes"),
        metavar="MB",
        help="constraint: total peak RSS at most this (megabytes > 0)",
    )
    a(
        "--min-throughput",
        type=typed(finite, "--min-throughput", gt=0, what="items/s"),
        metavar="N",
        help="constraint: at least this many items/s (> 0)",
    )
    a(
        "--faults",
        type=typed(fault_plan, "--faults"),
        metavar="SPEC",
        help="fault plan, e.g. crash=0.05,hang=0.01,slow=0.05x10",
    )
    a(
        "--window",
        type=typed(finite, "--window", ge=MIN_WINDOW_S, what="seconds"),
        default=1.0,
        metavar="SECONDS",
        help=f"measurement window (seconds >= {MIN_WINDOW_S:g}; default 1)",
    )
    a(
        "--out",
        type=typed(non_blank, "--out", what="a .yaml file"),
        metavar="FILE.yaml",
        help="write the profile here (atomically)",
    )
    a(
        "--name",
        type=typed(non_blank, "--name", what="a profile name"),
        help="profile name (default: from --out, or the model)",
    )
    a(
        "--results",
        type=typed(non_blank, "--results", what="a .jsonl file"),
        metavar="FILE.jsonl",
        help="one JSON line per trial, written as each trial ends",
    )
    a("--resume", action="store_true", help="continue the sweep in --results, skipping measured configs")
    a("--csv", type=typed(non_blank, "--csv", what="a file"), metavar="FILE", help="write the trials as CSV")
    a(
        "--summary",
        type=typed(non_blank, "--summary", what="a Markdown file"),
        metavar="FILE.md",
        help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)",
    )
    a("--json", action="store_true", help="JSON summary on stdout; everything else on stderr")
    a(
        "--baseline",
        type=typed(non_blank, "--baseline", what="a profile file"),
        metavar="PROFILE",
        help="CI gate: re-measure this profile's recommended configuration",
    )
    # -- Ray (the ray backend) --
    a(
        "--ray-address",
        type=typed(non_blank, "--ray-address", what="auto, local or ray://host:port"),
        metavar="ADDRESS",
        help="sweep the ray backend on this cluster: auto, local (a head on loopback for this run) "
        "or ray://host:port; alone, it implies --backends ray",
    )
    a(
        "--placements",
        type=typed(non_blank, "--placements", what="SPREAD, PACK or both"),
        metavar="LIST",
        help="ray backend: actor placements to try, SPREAD and/or PACK (default SPREAD)",
    )
    a(
        "--max-outside-load",
        type=typed(finite, "--max-outside-load", ge=0, what="a percentage of the usable cores"),
        default=25.0,
        metavar="PCT",
        help="a measurement window in which other processes (and CPU steal) use more than this share "
        "of the usable cores is discarded and measured again; a trial that cannot get clean windows "
        "is marked contaminated, and the gate calls it inconclusive, never a regression "
        "(percent >= 0; default 25)",
    )
    a(
        "--max-regression",
        type=typed(finite, "--max-regression", ge=0, what="a percentage"),
        default=10.0,
        metavar="PCT",
        help="gate tolerance in percent (>= 0; default 10)",
    )
    _add_online_arguments(parser)
    add_model_file_arguments(parser, sweep=True)


# ------------------------------------------------------------------------------- online (open loop)

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
)
#: The shortest online step: below it a step holds too few requests for a p99 at modest rates.
MIN_STEP_S = 0.2


def _add_online_arguments(parser: argparse.ArgumentParser) -> None:
    """``--online`` and its options: open-loop load, the highest rate within the p99 objective."""
    g = parser.add_argument_group(
        "open-loop load (--online)",
        "after the closed-loop sweep, send requests on a schedule (not when a worker frees up) through "
        "the runtime's dynamic batcher and find, per configuration and batching setting, the highest "
        "request rate whose p99 stays within --p99-ms; the profile gains an online: section",
    )
    a = g.add_argument
    a("--online", action="store_true", help="search the highest sustainable request rate (needs --p99-ms)")
    a(
        "--online-budget",
        type=typed(finite, "--online-budget", gt=0, what="seconds"),
        metavar="SECONDS",
        help="time budget of the online search, after the closed-loop one (seconds > 0; default 150)",
    )
    a(
        "--step",
        type=typed(finite, "--step", ge=MIN_STEP_S, what="seconds"),
        metavar="SECONDS",
        help=f"duration of each load step (seconds >= {MIN_STEP_S:g}; default 2)",
    )
    a(
        "--arrivals",
        type=typed(non_blank, "--arrivals", what="constant or poisson", default="poisson"),
        help="arrival process: poisson (default) or constant",
    )
    a(
        "--trace",
        type=typed(non_blank, "--trace", what="a trace file"),
        metavar="FILE",
        help="replay this trace (one timestamp per line, optionally a request size), scaled to each step's rate",
    )
    a(
        "--request-size",
        type=typed(_request_size, "--request-size"),
        metavar="N|A-B",
        help="items per request: N, or uniform A-B (default 1)",
    )
    a(
        "--batch-delays",
        type=typed(_delay_list, "--batch-delays"),
        metavar="MS,...",
        help="max batch delays to try, ms (default 0,1,2,5,10; the 5 ms default is always measured)",
    )
    a(
        "--batch-sizes",
        type=typed(int_list, "--batch-sizes"),
        metavar="LIST",
        help="max batch sizes to try (default: each configuration's closed-loop partition size)",
    )
    a(
        "--online-configs",
        type=typed(integer, "--online-configs", ge=1, le=16),
        metavar="N",
        help="closed-loop configurations to search online, best first (an integer from 1 to 16; default 2)",
    )


def _request_size(name: str, text: str) -> Any:
    # Imported when the option is given: building the parser must not import numpy (tuner hw).
    from tuner.bench.online.schedule import parse_request_size

    return parse_request_size(name, text)


def _delay_list(name: str, text: str) -> tuple[float, ...]:
    """``'0,1,2.5'``: distinct finite delays in ms, each >= 0 and <= 10000, sorted."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise BadInput(f"{name} {text!r}: blank (expected milliseconds >= 0, e.g. 0,1,2,5)")
    return tuple(sorted({finite(name, p, ge=0, le=10_000, what="milliseconds") for p in parts}))


def _online_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The online options, checked; None without --online. Raises BadInput (nothing started)."""
    given = [f"--{k.replace('_', '-')}" for k in ONLINE_ONLY if getattr(args, k, None) is not None]
    if not args.online:
        if given:
            raise BadInput(f"{given[0]} needs --online (it sets how the open-loop search runs)")
        return None
    if args.baseline is not None:
        raise BadInput(
            "--online cannot be combined with --baseline (the gate re-measures a closed-loop figure)"
        )
    if args.p99_ms is None:
        raise BadInput("--online needs --p99-ms MS: the latency objective the highest rate must keep")
    if args.trace is not None and args.arrivals is not None:
        raise BadInput("--trace and --arrivals are exclusive: a trace brings its own arrivals")
    from tuner.bench.online.schedule import ARRIVALS, RequestSize, load_trace

    arrivals: Any = choice("--arrivals", args.arrivals, ARRIVALS) if args.arrivals is not None else "poisson"
    if args.trace is not None:
        arrivals = load_trace(args.trace)
    return {
        "objective_ms": args.p99_ms,
        "arrivals": arrivals,
        "request_size": args.request_size or RequestSize(),
        "step_s": args.step if args.step is not None else 2.0,
        "budget_s": args.online_budget if args.online_budget is not None else 150.0,
        **({"delays_ms": args.batch_delays} if args.batch_delays is not None else {}),
        "batch_sizes": args.batch_sizes,
        "configs_k": args.online_configs if args.online_configs is not None else 2,
    }


class _OnlineProgress:
    """Lines on stderr as the online search runs: each candidate, each step and its verdict."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def __call__(self, m: Any) -> None:
        from tuner.bench.online.report import step_line
        from tuner.bench.online.sweep import CandidateFinished, CandidateStarted, StepFinished

        if isinstance(m, CandidateStarted):
            self.console.print(
                f"online {m.index + 1}/{m.planned}: {m.candidate.label()}", markup=False, highlight=False
            )
        elif isinstance(m, StepFinished):
            self.console.print(f"  step {m.step + 1}: {step_line(m.result)}", markup=False, highlight=False)
        elif isinstance(m, CandidateFinished):
            r = m.result
            from tuner.bench.recommend import fmt_rate

            what = r.error or f"max {fmt_rate(r.max_rate)} requests/s at the objective ({r.stop_reason})"
            self.console.print(f"  → {what}", markup=False, highlight=False)


def _run_online(
    sweep: Sweep, results: list[TrialResult], rec: Recommendation, opts: dict[str, Any], err: Any
) -> tuple[OnlineOutcome, bool]:
    """The online sweep on the closed-loop sweep's best configurations; (outcome, interrupted)."""
    from tuner.bench.online.sweep import OnlineOutcome, OnlineSpec, OnlineSweep, engine_configs, summarize

    assert rec.best is not None
    opts = dict(opts)
    k = opts.pop("configs_k")
    configs = engine_configs(results, rec.best.config, k)
    ospec = OnlineSpec(
        model=sweep.spec.model, configs=configs, input_path=sweep.spec.input_path, n_items=sweep.spec.n_items,
        seed=sweep.spec.seed, **opts,
    )  # fmt: skip
    osweep = OnlineSweep(ospec, _OnlineProgress(err), host=sweep.host, info=sweep.info, inputs=sweep.inputs)
    err.print(
        f"online: p99 <= {ospec.objective_ms:g} ms · {ospec.arrivals_text} arrivals · {ospec.request_size} item(s) "
        f"per request · steps of {ospec.step_s:g} s · {osweep.planned()} candidates · budget {ospec.budget_s:g} s",
        markup=False,
        highlight=False,
    )
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["results"] = osweep.run(cancel)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="tuner-online", daemon=True)
    interrupted = False
    t.start()
    try:
        while t.is_alive():
            t.join(0.2)
    except KeyboardInterrupt:
        interrupted = True
        cancel.set()
        err.print("[yellow]interrupted: stopping the online search…[/yellow]")
        t.join(15.0)
    if "error" in box:
        raise box["error"]
    found = list(osweep.results)
    outcome = OnlineOutcome(ospec, found, summarize(found, ospec), osweep.elapsed_s)
    return outcome, interrupted or osweep.interrupted


def _show_online(outcome: OnlineOutcome, results: list[TrialResult], human: Any) -> None:
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


#: numpy dtype names --input-dtype accepts
INPUT_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")


def _shape(name: str, text: str) -> tuple[int, ...]:
    """``3x224x224`` (or ``8``): one item's shape, each dimension an integer >= 1."""
    from tuner.errors import BadInput

    parts = [p.strip() for p in text.lower().split("x")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise BadInput(f"{name} {text!r}: not a shape (expected integers >= 1 joined by x, e.g. 3x224x224)") from None
    if not dims or any(d < 1 for d in dims):
        raise BadInput(f"{name} {text!r}: out of range (expected integers >= 1 joined by x, e.g. 3x224x224)")
    return dims


def add_model_file_arguments(parser: argparse.ArgumentParser, *, sweep: bool) -> None:
    """Options for model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl); ``sweep``: bench's too."""
    from tuner.models.formats.scikit import METHODS

    g = parser.add_argument_group("model files (.onnx, .pt, .pt2, .skops, .joblib, .pkl)")
    g.add_argument(
        "--allow-pickle",
        action="store_true",
        help="load a pickle (.joblib, .pkl) or a skops file with types skops does not trust: "
        "loading runs the file's code, so only for files you trust (recorded in the profile)",
    )
    if not sweep:
        return
    g.add_argument(
        "--method",
        type=typed(choice, "--method", choices=METHODS),
        metavar="NAME",
        help=f"scikit-learn: the estimator method to run ({' | '.join(METHODS)}; default predict)",
    )
    g.add_argument(
        "--input-shape",
        type=typed(_shape, "--input-shape"),
        metavar="SHAPE",
        help="one item's shape when the file records none (TorchScript), e.g. 3x224x224",
    )
    g.add_argument(
        "--input-dtype",
        type=typed(choice, "--input-dtype", choices=INPUT_DTYPES),
        metavar="DTYPE",
        help="the generated items' dtype with --input-shape (default float32)",
    )
    g.add_argument(
        "--provider",
        type=typed(non_blank, "--provider", what="an ONNX Runtime execution provider"),
        metavar="NAME",
        help="ONNX Runtime execution provider (default CPUExecutionProvider; see tuner hw)",
    )
    g.add_argument(
        "--dims",
        type=typed(non_blank, "--dims", what="adapter dimensions, e.g. execution_mode,spinning"),
        metavar="LIST",
        help="the model adapter's own dimensions to sweep too, e.g. execution_mode,spinning (ONNX Runtime)",
    )


# ------------------------------------------------------------------------------- arguments


def _writable(name: str, path: str | None, creates_folders: bool = False) -> None:
    """Refuse, before anything runs, a path the command could not write at the end of a sweep."""
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


def _spec_from_args(args: argparse.Namespace) -> tuple[SweepSpec, dict[str, Any]]:
    """Check every option; a SweepSpec and the space overrides. Raises BadInput, nothing written."""
    from tuner.bench.measure import MeasureSettings
    from tuner.bench.search import STRATEGIES
    from tuner.bench.session import SweepSpec
    from tuner.bench.types import Objective
    from tuner.engine import BACKENDS

    strategy = choice("--strategy", args.strategy, STRATEGIES)
    goal = choice("--objective", args.objective, ("throughput", "p99"))
    backends = choice_list("--backends", args.backends, BACKENDS) if args.backends is not None else None
    backends, placements = _ray_options(args, backends)
    overrides = {
        "backends": backends,
        "workers": args.workers,
        "threads": args.threads,
        "partition_sizes": args.partition_sizes,
        "placements": placements,
    }
    objective = Objective(
        goal=goal,
        p99_budget_ms=args.p99_ms,
        memory_budget_mb=args.memory_mb,
        min_throughput=args.min_throughput,
    )
    if args.resume and not args.results:
        raise BadInput("--resume needs --results FILE.jsonl (the sweep to continue)")
    if args.resume and not Path(args.results).exists():
        raise BadInput(f"--resume: {args.results} does not exist (nothing to resume)")
    if args.out is not None and Path(args.out).suffix.lower() not in (".yaml", ".yml"):
        raise BadInput(f"--out {args.out}: a profile is a .yaml file")
    _writable("--out", args.out, creates_folders=True)  # a profile's folders are made on save
    for name, path in (("--results", args.results), ("--csv", args.csv), ("--summary", args.summary)):
        _writable(name, path)
    if args.name is not None and not re.fullmatch(r"[a-zA-Z0-9_.-]+", args.name):
        raise BadInput(f"--name {args.name!r}: use letters, digits, '_', '.' and '-'")
    # Short windows want a proportionally short warm-up and cap, so a quick sweep stays quick.
    settings = MeasureSettings.for_window(args.window, max_outside=args.max_outside_load / 100.0)
    model_options = {
        k: v
        for k, v in (
            ("allow_pickle", True if getattr(args, "allow_pickle", False) else None),
            ("method", getattr(args, "method", None)),
            ("input_shape", getattr(args, "input_shape", None)),
            ("input_dtype", getattr(args, "input_dtype", None)),
            ("provider", getattr(args, "provider", None)),
        )
        if v is not None
    }
    if model_options.get("input_dtype") and not model_options.get("input_shape"):
        raise BadInput("--input-dtype goes with --input-shape (the shape of the items to generate)")
    dims = tuple(d.strip() for d in args.dims.split(",") if d.strip()) if getattr(args, "dims", None) else ()
    spec = SweepSpec(
        model=args.model if args.model is not None else "builtin:mlp",
        model_options=model_options,
        dims=dims,
        input_path=args.input,
        n_items=args.items,
        strategy=strategy,
        budget_s=args.budget,
        max_trials=args.max_trials,
        objective=objective,
        faults=args.faults,
        settings=settings,
        results_path=args.results,
        resume=args.resume,
        confirm=True,  # the profile records a confirmed figure, so the CI gate does not cry wolf
    )
    return spec, overrides


def _ray_options(
    args: argparse.Namespace, backends: tuple[str, ...] | None
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """--ray-address and --placements checked against --backends: (backends, placements)."""
    from tuner.engine.config import PLACEMENTS

    placements = None
    if args.placements is not None:
        placements = choice_list("--placements", args.placements.upper(), PLACEMENTS)
    if args.ray_address is not None:
        from tuner.cluster import address_kind

        address_kind(args.ray_address)
        if backends is None:
            backends = ("ray",)
        elif "ray" not in backends:
            raise BadInput("--ray-address is for the ray backend: add ray to --backends")
    elif backends is not None and "ray" in backends:
        raise BadInput("--backends ray needs --ray-address (auto, local or ray://host:port)")
    if placements is not None and (backends is None or "ray" not in backends):
        raise BadInput("--placements is for the ray backend (--backends ray --ray-address ...)")
    return backends, placements


#: the Ray connection of this `tuner bench` run (closed when run() returns, however it returns)
_ray: list[Any] = []


def _connect_ray(args: argparse.Namespace, sweep: Sweep) -> None:
    """Connect to the cluster when the sweep has the ray backend; its CPUs bound the space."""
    if args.ray_address is None:
        return
    from dataclasses import replace

    from tuner.cluster import connect

    conn = connect(args.ray_address)
    _ray.append(conn)
    info = conn.info()
    from rich.console import Console

    Console(stderr=True).print(f"cluster: {info.summary()}", markup=False, highlight=False)
    space = sweep.space
    if space.max_parallel is not None and not space.oversubscribe:
        sweep.space = replace(space, max_parallel=max(space.max_parallel, int(info.total_cpus)))


def _profile_address(profile: Any) -> str:
    """The address a ray profile's gate reconnects to: its kind (a client's from RAY_ADDRESS)."""
    kind = profile.cluster.address if profile.cluster is not None else "auto"
    if kind != "client":
        return str(kind)
    address = os.environ.get("RAY_ADDRESS")
    if not address:
        raise BadInput("the baseline was measured through Ray Client: give --ray-address ray://host:port")
    return address


def _cluster_section(rec: Recommendation) -> Any:
    """The profile's ``cluster`` section when the recommendation runs on Ray, else None."""
    if not _ray or rec.best is None or rec.best.config.backend != "ray":
        return None
    from tuner.profile.schema import ActorResources, ClusterInfo

    conn = _ray[-1]
    info = conn.info()
    c = rec.best.config
    return ClusterInfo(
        address=conn.kind if conn.kind in ("auto", "local", "client") else "auto",
        ray_version=info.ray_version,
        nodes=len(info.nodes),
        total_cpus=float(info.total_cpus),
        node_shapes=info.shapes(),
        actor=ActorResources(num_cpus=float(c.threads_per_worker)),
    )


def _apply_space(sweep: Sweep, overrides: dict[str, Any], oversubscribe: bool) -> None:
    from dataclasses import replace

    given = {k: v for k, v in overrides.items() if v is not None}
    if not given and not oversubscribe:
        return
    space = replace(sweep.space, **given, oversubscribe=oversubscribe)
    if not space.configs():
        raise BadInput(
            f"no configuration fits: workers × threads exceeds the {sweep.host.usable_cores} usable cores "
            "(add --oversubscribe to measure it anyway)"
        )
    sweep.space = space


# ------------------------------------------------------------------------------- progress


def _console(stderr: bool) -> Any:
    """A rich console; a file or CI log gets 120 columns (rich's 80 squeezes the results table)."""
    from rich.console import Console

    console = Console(stderr=stderr)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(stderr=stderr, width=120)
    return console


class _Progress:
    """A rich progress bar on stderr: trial n (of N when it can be known), configuration, phase, time left.

    The trial count and time left come from the TUI's own rule (:func:`tuner.tui.format.sweep_outlook`):
    a grid's count is known; an adaptive search shows a budget-based ceiling once two trials
    ended, never its own low guess (issue 13: "trial 1 of ~2" for a sweep that ran 12).
    """

    def __init__(self, strategy: str, budget_s: float | None, max_trials: int | None = None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.strategy = strategy
        self.budget_s = budget_s
        self.max_trials = max_trials
        self.progress = Progress(
            TextColumn("[bold]trial"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("left {task.fields[eta]}"),
            TextColumn("{task.description}"),
            console=self.console,
            transient=False,
        )
        self.task = self.progress.add_task("starting", total=None, eta="?")
        self.t0 = time.perf_counter()
        self.durations: list[float] = []
        self.t_trial = self.t0
        self.planned = 0
        self.done = 0
        self._said_outlook = False
        self._said_busy = False  # the current trial's first discarded window was said

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _outlook(self) -> SweepOutlook:
        from tuner.tui.format import sweep_outlook

        return sweep_outlook(
            strategy=self.strategy,
            planned=self.planned,
            done=self.done,
            trial_s=self.durations,
            budget_s=self.budget_s,
            elapsed_s=time.perf_counter() - self.t0,
            max_trials=self.max_trials,
        )

    @staticmethod
    def _eta(o: SweepOutlook) -> str:
        if o.left_s == float("inf"):
            return "?"
        return f"{'≤ ' if o.upper_bound else ''}{o.left_s:.0f} s"

    def __call__(self, m: SweepMessage) -> None:
        from tuner.bench.types import EngineNote, TrialFinished, TrialPhase, TrialStarted, WindowMeasured

        if isinstance(m, WindowMeasured):
            if m.discarded is not None and not self._said_busy:
                # Once per trial: the trial's end says how many windows went (an EngineNote).
                self._said_busy = True
                self.progress.console.print(
                    f"  host busy: window discarded — {m.discarded}; measuring on for clean windows",
                    style="yellow",
                    markup=False,
                    highlight=False,
                )
        elif isinstance(m, TrialStarted):
            self._said_busy = False
            self.planned = m.planned
            self.t_trial = time.perf_counter()
            o = self._outlook()
            if o.outlook and not self._said_outlook:
                self.progress.console.print(f"[dim]  {o.outlook}[/dim]", highlight=False)
                self._said_outlook = True
            self.progress.update(self.task, total=o.total, description=m.config.label(), eta=self._eta(o))
        elif isinstance(m, TrialPhase):
            label = self.progress.tasks[0].description.split(" — ")[0]
            self.progress.update(self.task, description=f"{label} — {m.detail}")
        elif isinstance(m, EngineNote):
            if m.level != "info" or "not shown" in m.text:
                # Not markup: a note can name processes, and a name may hold "[".
                self.progress.console.print(f"  {m.text}", style="dim", markup=False, highlight=False)
        elif isinstance(m, TrialFinished):
            r = m.result
            self.durations.append(time.perf_counter() - self.t_trial)
            self.done += 1
            from tuner.bench.recommend import fmt_ms, fmt_rate
            from tuner.bench.report import status_of

            self.progress.console.print(
                f"  {r.config.label()} · {fmt_rate(r.throughput)} items/s · p99 "
                f"{fmt_ms(r.latency_ms.get('p99'))} · {status_of(r)}",
                highlight=False,
            )
            o = self._outlook()
            self.progress.update(self.task, completed=self.done, total=o.total, eta=self._eta(o))


# ------------------------------------------------------------------------------- running


def _run_sweep(sweep: Sweep, progress: _Progress) -> tuple[list[TrialResult], bool]:
    """Run in a worker thread so Ctrl-C in the main thread can cancel it (within ~2 s)."""
    cancel = threading.Event()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["results"] = sweep.run(cancel)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=target, name="tuner-sweep", daemon=True)
    interrupted = False
    t.start()
    try:
        while t.is_alive():
            t.join(0.2)
    except KeyboardInterrupt:
        interrupted = True
        cancel.set()
        progress.console.print("[yellow]interrupted: stopping the current trial…[/yellow]")
        t.join(10.0)
    if "error" in box:
        raise box["error"]
    return list(sweep.results), interrupted or sweep.interrupted


def _emit_outputs(
    args: argparse.Namespace,
    sweep: Sweep,
    results: list[TrialResult],
    rec: Recommendation,
    human: Any,
    *,
    interrupted: bool,
    gate_line: str | None = None,
    title: str = "tuner bench",
    online: OnlineOutcome | None = None,
) -> str | None:
    """Write --csv/--summary/--out, print the table, charts, words; return the profile path.

    ``online``: the online sweep's outcome (``tuner bench --online``): shown after the closed-loop
    figures, added to the Markdown summary, and written into the profile as its ``online:`` section.
    """
    from tuner.bench.recommend import build_profile
    from tuner.bench.report import charts, csv_text, markdown_summary, results_table
    from tuner.data import atomic_write_text
    from tuner.profile import save_profile

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
    if online is not None:
        _show_online(online, results, human)
    if args.csv:
        atomic_write_text(args.csv, csv_text(results))
    if args.summary:
        md = markdown_summary(results, rec, title=title, host=sweep.host.summary(), gate_line=gate_line)
        if online is not None:
            md += "\n\n### Online (open-loop load)\n\n" + "\n".join(
                f"- {w.strip()}" for w in online.summary.words
            )
        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(md + "\n")
    written = None
    if args.out and rec.best is not None and not interrupted:
        name = args.name or re.sub(r"[^a-zA-Z0-9_.-]", "-", Path(args.out).stem) or "profile"
        profile = build_profile(
            rec,
            name=name,
            spec=sweep.spec,
            host=sweep.host,
            info=sweep.info,
            trials_run=len(results),
            measuring_s=sweep.elapsed_s,
            cluster=_cluster_section(rec),
        )
        if online is not None:
            from tuner.bench.online.report import online_section, with_online

            section = online_section(
                online.summary, online.results, online.spec, results, measuring_s=online.elapsed_s
            )
            if section is not None:
                profile = with_online(profile, section)
        save_profile(profile, args.out)
        written = args.out
        human.print(f"profile written to {args.out}", markup=False, highlight=False, soft_wrap=True)
    elif args.out and interrupted:
        human.print(f"interrupted: profile not written to {args.out} (resume with --resume)", markup=False)
    return written


def _gate(args: argparse.Namespace) -> int:
    """Re-measure the baseline profile's recommended config: exit 0 ok, 1 a regression beyond
    --max-regression, 3 inconclusive (host busy); the rules are :mod:`tuner.bench.gate`'s."""
    from tuner.bench.gate import BaselineFigures, decide, want_another
    from tuner.bench.recommend import recommend
    from tuner.bench.report import json_summary
    from tuner.bench.search import Space
    from tuner.bench.session import Sweep
    from tuner.profile import load_profile

    tolerance = args.max_regression
    profile = load_profile(args.baseline)
    spec, _ = _spec_from_args(args)
    spec.model = args.model if args.model is not None else profile.model.spec
    rec_cfg = profile.recommended
    spec.space = Space(
        backends=(rec_cfg.backend,),
        workers=(rec_cfg.workers,),
        threads=(rec_cfg.threads_per_worker,),
        partition_sizes=(rec_cfg.partition_size,),
        oversubscribe=True,
        placements=(rec_cfg.placement or "SPREAD",),
        # a model file's knobs as measured (one value each), and its options from the profile
        knobs=tuple((k, (v,)) for k, v in (rec_cfg.knobs or {}).items()),
    )
    if rec_cfg.backend == "ray" and args.ray_address is None:
        args.ray_address = _profile_address(profile)
    if args.model is None and profile.model.format is not None:
        recorded = {"method": profile.model.method, "provider": profile.model.provider}
        spec.model_options = {**{k: v for k, v in recorded.items() if v is not None}, **spec.model_options}
    spec.strategy = "grid"
    spec.budget_s = None
    spec.results_path = None
    spec.resume = False
    if profile.model.input is not None and profile.model.input.items and not args.input:
        spec.n_items = profile.model.input.items
    sweep = Sweep(spec)
    _connect_ray(args, sweep)
    results: list[TrialResult] = []
    with _Progress("grid", None) as progress:
        sweep.on_message = progress
        # GATE_REPEATS trials; one the host made contaminated is re-run, up to GATE_MAX_TRIALS.
        while want_another(results):
            if results and results[-1].contaminated:
                progress.console.print(
                    "[yellow]  the host was busy during that trial: measuring once more[/yellow]",
                    highlight=False,
                )
            sweep.results = []
            got, interrupted = _run_sweep(sweep, progress)
            results.extend(got)
            if interrupted:
                raise KeyboardInterrupt
            if not got:
                break
    good = [r for r in results if r.throughput > 0 and not r.error]
    if not good:
        raise Regression(f"the baseline configuration could not run: {results[0].error if results else '?'}")
    ev = profile.evidence
    base = BaselineFigures(
        throughput=ev.throughput,
        p99_ms=ev.latency_ms.p99 if ev.latency_ms else None,
        p99_ci_high_ms=ev.latency_ci_ms.p99[1] if ev.latency_ci_ms and ev.latency_ci_ms.p99 else None,
        fingerprint=profile.host.fingerprint,
        host_summary=profile.host.summary,
        outside=ev.host_load.outside if ev.host_load else None,
        contaminated=bool(ev.host_load and ev.host_load.contaminated),
    )
    verdict = decide(
        results, base, tolerance, usable_cores=sweep.host.usable_cores, fingerprint=sweep.host.fingerprint()
    )
    text = verdict.line
    rec = recommend(results, spec.objective, sweep.host, threads_word=sweep.model.threads_word)
    if args.summary:
        from tuner.bench.report import markdown_summary

        with open(args.summary, "a", encoding="utf-8") as f:
            f.write(
                markdown_summary(
                    results,
                    None,
                    title=f"tuner gate: {args.baseline}",
                    host=sweep.host.summary(),
                    gate_line=text,
                )
                + "\n"
            )
    if args.json:
        import json

        summary = json_summary(
            results, rec, model=spec.model, baseline=args.baseline, gate=verdict.to_json(tolerance)
        )
        print(json.dumps(summary, indent=2))
    # Plain print: one line a CI log (or a grep) can rely on, never wrapped by rich.
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
    if verdict.kind == "regression":
        raise Regression(f"regression against {args.baseline}: {verdict.message}")
    if verdict.kind == "inconclusive":
        raise Inconclusive(f"inconclusive against {args.baseline}: {verdict.message}")
    return int(ExitCode.OK)


def run(args: argparse.Namespace) -> int:
    """`tuner bench` (see the module docstring for exit codes and streams)."""
    try:
        return _run(args)
    finally:
        while _ray:  # a local head stops here, on every exit path (Ctrl-C and SIGTERM included)
            _ray.pop().close()


def _run(args: argparse.Namespace) -> int:
    online_opts = _online_options(args)  # checked first: a bad online option is refused before anything runs
    if args.baseline is not None:
        return _gate(args)
    import json

    from rich.console import Console

    from tuner.bench.recommend import recommend
    from tuner.bench.report import json_summary
    from tuner.bench.session import Sweep

    spec, overrides = _spec_from_args(args)
    if online_opts is not None:
        # The objective is the online one: a closed-loop p99 (several partitions queued per worker by
        # design) is not a service's latency, so it does not rule configurations out here.
        from dataclasses import replace

        spec.objective = replace(spec.objective, p99_budget_ms=None)
    sweep = Sweep(spec)  # validates model and inputs: a bad one is one line, nothing started
    _apply_space(sweep, overrides, args.oversubscribe)
    _connect_ray(args, sweep)
    human = _console(stderr=args.json)
    err = Console(stderr=True)
    err.print(f"host: {sweep.host.summary()}", markup=False, highlight=False)
    err.print(
        f"model: {spec.model} ({sweep.info.description}; bound: {sweep.info.bound}) · {len(sweep.inputs)} items",
        markup=False,
        highlight=False,
    )
    info = sweep.info
    if info.framework:
        err.print(
            f"model file: {info.format} · {info.framework} {info.framework_version} · inputs {info.inputs or '?'}"
            + (f" · outputs {', '.join(info.outputs)}" if info.outputs else "")
            + f" · threads knob: {info.pool_note}",
            markup=False,
            highlight=False,
        )
        for note in info.notes:
            err.print(f"  note: {note}", markup=False, highlight=False)
    err.print(f"space: {sweep.space.describe()} · strategy {spec.strategy}", markup=False, highlight=False)
    if sweep.resumed:
        err.print(f"resuming: {len(sweep.resumed)} trials already in {spec.results_path}", markup=False)
    with _Progress(spec.strategy, spec.budget_s, spec.max_trials) as progress:
        sweep.on_message = progress
        results, interrupted = _run_sweep(sweep, progress)
    rec = recommend(results, spec.objective, sweep.host, threads_word=sweep.model.threads_word)
    online: OnlineOutcome | None = None
    if online_opts is not None and not interrupted and rec.best is not None:
        online, interrupted = _run_online(sweep, results, rec, online_opts, err)
        if online.summary.winner is not None and not interrupted:
            # The configuration that serves the most requests within the objective is the one to run.
            rec = recommend(
                results,
                spec.objective,
                sweep.host,
                prefer=online.winner_config,
                threads_word=sweep.model.threads_word,
            )
            said = online.summary
            rec.autoscale_reasoning = rec.autoscale_reasoning.replace(
                rec.pending_reasoning, f"online: {said.pending_reasoning}"
            )
            rec.max_pending, rec.pending_reasoning = said.max_pending, said.pending_reasoning
    if interrupted:
        err.print("interrupted — best so far:", markup=False)
    written = _emit_outputs(args, sweep, results, rec, human, interrupted=interrupted, online=online)
    if args.json:
        summary = json_summary(
            results,
            rec,
            model=spec.model,
            host=sweep.host.summary(),
            space=sweep.space.describe(),
            strategy=spec.strategy,
            elapsed_s=round(sweep.elapsed_s, 2),
            interrupted=interrupted,
            profile=written,
            **({"online": _online_json(online)} if online is not None else {}),
        )
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        sys.stdout.flush()
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    if rec.best is None:
        sys.stderr.write("tuner: no feasible configuration (see the table)\n")
        return int(ExitCode.FAILED)
    if online is not None and online.summary.winner is None:
        sys.stderr.write(
            f"tuner: no configuration sustained any rate with p99 <= {args.p99_ms:g} ms (see above)\n"
        )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def _online_json(online: OnlineOutcome) -> dict[str, Any]:
    from tuner.bench.online.report import online_json

    return online_json(online.summary, online.results, online.spec)
