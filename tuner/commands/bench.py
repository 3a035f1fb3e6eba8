"""`tuner bench`: sweep configurations headless, recommend one, write a profile; or gate a build in CI.

Exit codes: 0 ok; 1 a regression past ``--max-regression`` (or no configuration could run);
2 bad input or usage (one line, nothing written); 130 interrupted (completed trials kept in
``--results``, best so far printed, no worker left).

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

from tuner.errors import BadInput, ExitCode, Regression

if TYPE_CHECKING:
    from tuner.bench.recommend import Recommendation
    from tuner.bench.session import Sweep, SweepSpec
    from tuner.bench.types import SweepMessage, TrialResult

#: trials the regression gate measures (the median of these is compared: one trial never decides)
GATE_REPEATS = 3
#: p99 below this many ms is at the mercy of the scheduler: the gate allows this much absolute slack
GATE_P99_SLACK_MS = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `tuner bench` (values are checked in run(), so each error is one line)."""
    parser.epilog = (
        "exit codes: 0 ok; 1 regression beyond --max-regression (or nothing feasible); "
        "2 bad input or usage; 130 interrupted (completed trials kept in --results)"
    )
    a = parser.add_argument
    a("--model", default=None, help="model spec (default builtin:mlp; with --baseline, the profile's model)")
    a(
        "--input",
        metavar="FILE",
        help="input items: .npy rows or .jsonl lines (default: the model's generator)",
    )
    a(
        "--items",
        default="8192",
        metavar="N",
        help="items to generate when there is no --input (default 8192)",
    )
    a("--backends", metavar="LIST", help="backends to try, e.g. process,thread")
    a("--workers", metavar="LIST", help="worker counts to try, e.g. 1,2")
    a("--threads", metavar="LIST", help="BLAS threads per worker to try, e.g. 1,2")
    a("--partition-sizes", metavar="LIST", help="partition sizes to try, e.g. 16,64,256")
    a("--oversubscribe", action="store_true", help="allow workers × threads above the usable cores")
    a("--strategy", default="adaptive", help="adaptive (default) or grid")
    a("--budget", default="150", metavar="SECONDS", help="time budget of the sweep (default 150)")
    a("--max-trials", metavar="N", help="at most this many trials")
    a("--objective", default="throughput", help="throughput (default) or p99")
    a("--p99-ms", metavar="MS", help="constraint: p99 latency at most this")
    a("--memory-mb", metavar="MB", help="constraint: total peak RSS at most this")
    a("--min-throughput", metavar="N", help="constraint: at least this many items/s")
    a("--faults", metavar="SPEC", help="fault plan, e.g. crash=0.05,hang=0.01,slow=0.05x10")
    a("--window", default="1.0", metavar="SECONDS", help="measurement window (default 1 s)")
    a("--out", metavar="FILE.yaml", help="write the profile here (atomically)")
    a("--name", help="profile name (default: from --out, or the model)")
    a("--results", metavar="FILE.jsonl", help="one JSON line per trial, written as each trial ends")
    a("--resume", action="store_true", help="continue the sweep in --results, skipping measured configs")
    a("--csv", metavar="FILE", help="write the trials as CSV")
    a("--summary", metavar="FILE.md", help="append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY)")
    a("--json", action="store_true", help="JSON summary on stdout; everything else on stderr")
    a("--baseline", metavar="PROFILE", help="CI gate: re-measure this profile's recommended configuration")
    a("--max-regression", default="10", metavar="PCT", help="gate tolerance in percent (default 10)")


# ------------------------------------------------------------------------------- arguments


def _num(name: str, text: str | None, typ: type, *, low: float = 0, strict: bool = True) -> Any:
    if text is None:
        return None
    try:
        v = typ(text)
    except ValueError:
        kind = "an integer" if typ is int else "a number"
        raise BadInput(f"{name} {text!r}: not {kind}") from None
    if (v <= low) if strict else (v < low):
        raise BadInput(f"{name} {text!r}: must be {'>' if strict else '>='} {low:g}")
    return v


def _int_list(name: str, text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise BadInput(f"{name} {text!r}: give a comma-separated list, e.g. 1,2")
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise BadInput(f"{name} {text!r}: {p!r} is not an integer") from None
        if v < 1:
            raise BadInput(f"{name} {text!r}: values must be >= 1 (got {v})")
        out.append(v)
    return tuple(sorted(set(out)))


def _writable(name: str, path: str | None) -> None:
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise BadInput(f"{name} {path}: is a folder, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise BadInput(f"{name} {path}: folder {parent} is not writable")


def _spec_from_args(args: argparse.Namespace) -> tuple[SweepSpec, dict[str, Any]]:
    """Check every option; a SweepSpec and the space overrides. Raises BadInput, nothing written."""
    from tuner.bench.measure import MeasureSettings
    from tuner.bench.search import STRATEGIES
    from tuner.bench.session import SweepSpec
    from tuner.bench.types import Objective
    from tuner.engine import BACKENDS, FaultPlan

    if args.strategy not in STRATEGIES:
        raise BadInput(f"--strategy {args.strategy!r}: choose from {', '.join(STRATEGIES)}")
    if args.objective not in ("throughput", "p99"):
        raise BadInput(f"--objective {args.objective!r}: choose from throughput, p99")
    backends = None
    if args.backends is not None:
        backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        bad = [b for b in backends if b not in BACKENDS]
        if bad or not backends:
            raise BadInput(f"--backends {args.backends!r}: choose from {', '.join(BACKENDS)}")
    overrides = {
        "backends": backends,
        "workers": _int_list("--workers", args.workers),
        "threads": _int_list("--threads", args.threads),
        "partition_sizes": _int_list("--partition-sizes", args.partition_sizes),
    }
    items = _num("--items", args.items, int)
    budget = _num("--budget", args.budget, float)
    max_trials = _num("--max-trials", args.max_trials, int)
    window = _num("--window", args.window, float)
    objective = Objective(
        goal=args.objective,
        p99_budget_ms=_num("--p99-ms", args.p99_ms, float),
        memory_budget_mb=_num("--memory-mb", args.memory_mb, float),
        min_throughput=_num("--min-throughput", args.min_throughput, float),
    )
    faults = FaultPlan.parse(args.faults) if args.faults is not None else None
    if args.resume and not args.results:
        raise BadInput("--resume needs --results FILE.jsonl (the sweep to continue)")
    if args.resume and not Path(args.results).exists():
        raise BadInput(f"--resume: {args.results} does not exist (nothing to resume)")
    if args.out is not None and Path(args.out).suffix.lower() not in (".yaml", ".yml"):
        raise BadInput(f"--out {args.out}: a profile is a .yaml file")
    for name, path in (
        ("--out", args.out),
        ("--results", args.results),
        ("--csv", args.csv),
        ("--summary", args.summary),
    ):
        _writable(name, path)
    if args.name is not None and not re.fullmatch(r"[a-zA-Z0-9_.-]+", args.name):
        raise BadInput(f"--name {args.name!r}: use letters, digits, '_', '.' and '-'")
    # Short windows want a proportionally short warm-up and cap, so a quick sweep stays quick.
    settings = MeasureSettings(
        window_s=window,
        warmup_s=min(0.5, window),
        max_trial_s=max(12.0 * window, window * 5),
    )
    spec = SweepSpec(
        model=args.model or "builtin:mlp",
        input_path=args.input,
        n_items=items,
        strategy=args.strategy,
        budget_s=budget,
        max_trials=max_trials,
        objective=objective,
        faults=faults,
        settings=settings,
        results_path=args.results,
        resume=args.resume,
        confirm=True,  # the profile records a confirmed figure, so the CI gate does not cry wolf
    )
    return spec, overrides


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
    """A rich progress bar on stderr: trial n of ~N, the current configuration and phase, ETA."""

    def __init__(self, budget_s: float | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.budget_s = budget_s
        self.progress = Progress(
            TextColumn("[bold]trial"),
            MofNCompleteColumn(),
            BarColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA {task.fields[eta]}"),
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

    def __enter__(self) -> _Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def _eta(self) -> str:
        if not self.durations:
            return "?"
        per = sorted(self.durations)[len(self.durations) // 2]
        left = max(0, self.planned - self.done) * per
        if self.budget_s is not None:
            left = min(left, max(0.0, self.budget_s - (time.perf_counter() - self.t0)))
        return f"{left:.0f} s"

    def __call__(self, m: SweepMessage) -> None:
        from tuner.bench.types import EngineNote, TrialFinished, TrialPhase, TrialStarted

        if isinstance(m, TrialStarted):
            self.planned = m.planned
            self.t_trial = time.perf_counter()
            self.progress.update(self.task, total=m.planned, description=m.config.label(), eta=self._eta())
        elif isinstance(m, TrialPhase):
            label = self.progress.tasks[0].description.split(" — ")[0]
            self.progress.update(self.task, description=f"{label} — {m.detail}")
        elif isinstance(m, EngineNote):
            if m.level != "info" or "not shown" in m.text:
                self.progress.console.print(f"[dim]  {m.text}[/dim]", highlight=False)
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
            self.progress.update(self.task, completed=self.done, eta=self._eta())


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
) -> str | None:
    """Write --csv/--summary/--out, print the table, charts, words; return the profile path."""
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
    if args.csv:
        atomic_write_text(args.csv, csv_text(results))
    if args.summary:
        md = markdown_summary(results, rec, title=title, host=sweep.host.summary(), gate_line=gate_line)
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
        )
        save_profile(profile, args.out)
        written = args.out
        human.print(f"profile written to {args.out}", markup=False, highlight=False, soft_wrap=True)
    elif args.out and interrupted:
        human.print(f"interrupted: profile not written to {args.out} (resume with --resume)", markup=False)
    return written


def _gate(args: argparse.Namespace) -> int:
    """Re-measure the baseline profile's recommended config; exit 1 beyond --max-regression."""
    import statistics

    from tuner.bench.recommend import fmt_ms, fmt_rate, recommend
    from tuner.bench.report import json_summary
    from tuner.bench.search import Space
    from tuner.bench.session import Sweep
    from tuner.profile import load_profile

    tolerance = _num("--max-regression", args.max_regression, float, strict=False)
    profile = load_profile(args.baseline)
    spec, _ = _spec_from_args(args)
    spec.model = args.model or profile.model.spec
    rec_cfg = profile.recommended
    spec.space = Space(
        backends=(rec_cfg.backend,),
        workers=(rec_cfg.workers,),
        threads=(rec_cfg.threads_per_worker,),
        partition_sizes=(rec_cfg.partition_size,),
        oversubscribe=True,
    )
    spec.strategy = "grid"
    spec.budget_s = None
    spec.results_path = None
    spec.resume = False
    if profile.model.input is not None and profile.model.input.items and not args.input:
        spec.n_items = profile.model.input.items
    sweep = Sweep(spec)
    results: list[TrialResult] = []
    with _Progress(None) as progress:
        sweep.on_message = progress
        for _ in range(GATE_REPEATS):
            sweep.results = []
            got, interrupted = _run_sweep(sweep, progress)
            results.extend(got)
            if interrupted:
                raise KeyboardInterrupt
    good = [r for r in results if r.throughput > 0]
    if not good:
        raise Regression(f"the baseline configuration could not run: {results[0].error if results else '?'}")
    tput = statistics.median(r.throughput for r in good)
    p99s = [r.latency_ms["p99"] for r in good if "p99" in r.latency_ms]
    p99 = statistics.median(p99s) if p99s else None
    old_t = profile.evidence.throughput
    old_p99 = profile.evidence.latency_ms.p99 if profile.evidence.latency_ms else None
    dt = (tput - old_t) / old_t * 100
    text = f"throughput {fmt_rate(tput)} items/s vs {fmt_rate(old_t)} ({dt:+.1f}%)"
    failed = dt < -tolerance
    reasons = []
    if failed:
        reasons.append(f"throughput fell {-dt:.1f}%")
    if p99 is not None and old_p99:
        dp = (p99 - old_p99) / old_p99 * 100
        text += f", p99 {fmt_ms(p99)} vs {fmt_ms(old_p99)} ({dp:+.0f}%)"
        # A tail percentile is noisier than a median: the gate calls a p99 regression only when the
        # intervals separate — the new p99's 95% CI lower bound above the baseline's upper bound
        # plus the tolerance (seen here: an unchanged build's p99 +16% on a loaded 2-core CI box).
        lows = [r.latency_ci_ms["p99"][0] for r in good if "p99" in r.latency_ci_ms]
        new_low = statistics.median(lows) if lows else p99
        old_ci = profile.evidence.latency_ci_ms.p99 if profile.evidence.latency_ci_ms else None
        old_high = old_ci[1] if old_ci else old_p99
        if new_low > old_high * (1 + tolerance / 100) + GATE_P99_SLACK_MS:
            failed = True
            reasons.append(f"p99 rose {dp:.0f}%")
    text += f": {'beyond' if failed else 'within'} {tolerance:g}% — {'REGRESSION' if failed else 'ok'}"
    rec = recommend(results, spec.objective, sweep.host)
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
            results,
            rec,
            model=spec.model,
            baseline=args.baseline,
            gate={
                "ok": not failed,
                "line": text,
                "throughput": tput,
                "p99_ms": p99,
                "tolerance_pct": tolerance,
            },
        )
        print(json.dumps(summary, indent=2))
    # Plain print: one line a CI log (or a grep) can rely on, never wrapped by rich.
    print(text, file=sys.stderr if args.json else sys.stdout, flush=True)
    if failed:
        raise Regression(f"regression against {args.baseline}: {', '.join(reasons)} (limit {tolerance:g}%)")
    return int(ExitCode.OK)


def run(args: argparse.Namespace) -> int:
    """`tuner bench` (see the module docstring for exit codes and streams)."""
    if args.baseline is not None:
        return _gate(args)
    import json

    from rich.console import Console

    from tuner.bench.recommend import recommend
    from tuner.bench.report import json_summary
    from tuner.bench.session import Sweep

    spec, overrides = _spec_from_args(args)
    sweep = Sweep(spec)  # validates model and inputs: a bad one is one line, nothing started
    _apply_space(sweep, overrides, args.oversubscribe)
    human = _console(stderr=args.json)
    err = Console(stderr=True)
    err.print(f"host: {sweep.host.summary()}", markup=False, highlight=False)
    err.print(
        f"model: {spec.model} ({sweep.info.description}; bound: {sweep.info.bound}) · {len(sweep.inputs)} items",
        markup=False,
        highlight=False,
    )
    err.print(f"space: {sweep.space.describe()} · strategy {spec.strategy}", markup=False, highlight=False)
    if sweep.resumed:
        err.print(f"resuming: {len(sweep.resumed)} trials already in {spec.results_path}", markup=False)
    with _Progress(spec.budget_s) as progress:
        sweep.on_message = progress
        results, interrupted = _run_sweep(sweep, progress)
    rec = recommend(results, spec.objective, sweep.host)
    if interrupted:
        err.print("interrupted — best so far:", markup=False)
    written = _emit_outputs(args, sweep, results, rec, human, interrupted=interrupted)
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
        )
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        sys.stdout.flush()
    if interrupted:
        return int(ExitCode.INTERRUPTED)
    if rec.best is None:
        sys.stderr.write("tuner: no feasible configuration (see the table)\n")
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)
