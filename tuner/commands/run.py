"""``tuner run PROFILE --input FILE --output FILE``: apply a profile's runtime to a data file.

Inputs: ``.npy`` (rows are items), ``.npz`` (one array per input name, for a model with several
inputs) or ``.jsonl`` (one JSON value per line). Outputs: ``.npy``, ``.npz`` (one array per output
name: a model with several outputs gives a tuple per item) or ``.jsonl``, written atomically, one
per input item in input order. A pickled model (.joblib, .pkl) loads only with ``--allow-pickle``. Items that failed for good go to a
sidecar (default ``<output>.failures.jsonl``: index, cause, message, attempts) and are placeholders in
the output: ``null`` in .jsonl; in arrays, zeros of the output's own dtype, with a boolean mask of the
failed items beside them (a ``failed`` array in the .npz, ``<output>.failed.npy`` beside a .npy) — an
integer output stays integer. Exit 1 if more than ``--max-failed-share`` of the
items failed; exit 2, with one line and no output file, for a bad profile, data file or argument.

The input is checked against the item the profile was measured with (``model.input.item``, e.g.
``float32[256]``: dtype and shape) before any worker starts; a mismatch is one line and exit 2.
``--no-input-check`` runs anyway, for a deliberate change.

``--faults SPEC`` rehearses failure handling: the fault plan is injected into the workers, injected
exceptions are retried like transient errors, and the outputs must still equal a fault-free run.

A progress bar goes to stderr; the data goes to files only. Everything heavy (the runtime, rich,
numpy) is imported inside :func:`run`, so ``tuner --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from tuner import fmt
from tuner.commands.args import (
    add_profile_runner_arguments,
    add_setting_options,
    setting_values,
)
from tuner.errors import DataError, ExitCode
from tuner.options import fault_plan, finite, non_blank, typed

#: the profile's settings `tuner run` can override on its command line (flags, ranges and help
#: come from the settings' declarations, tuner.deployment)
OVERRIDES = (
    "workers",
    "threads_per_worker",
    "partition_size",
    "backend",
    "timeout_s",
    "retries",
    "memory_limit_mb",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the command's arguments (imports nothing heavy); values are checked as they are parsed."""
    parser.add_argument(
        "--input",
        "-i",
        type=typed(non_blank, "--input", what="a .npy, .npz or .jsonl file", required=True),
        required=True,
        metavar="FILE",
        help="input items: .npy rows, .npz (one array per input name) or .jsonl lines",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=typed(non_blank, "--output", what="a .npy, .npz or .jsonl file", required=True),
        required=True,
        metavar="FILE",
        help="outputs: .npy, .npz (one array per output name) or .jsonl (atomic)",
    )
    parser.add_argument(
        "--failures",
        type=typed(non_blank, "--failures", what="a .jsonl file"),
        metavar="FILE",
        help="sidecar for failed items (default: <output>.failures.jsonl)",
    )
    parser.add_argument(
        "--max-failed-share",
        type=typed(finite, "--max-failed-share", ge=0, le=1, what="a share"),
        default=0.0,
        metavar="SHARE",
        help="share of items (0 to 1) that may fail before the exit code is 1 (default 0)",
    )
    parser.add_argument(
        "--faults",
        type=typed(fault_plan, "--faults"),
        metavar="SPEC",
        help="inject faults to rehearse, e.g. crash=0.05,slow=0.1x5",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_profile_runner_arguments(parser, "run")
    add_setting_options(parser.add_argument_group("overrides of the profile's settings"), OVERRIDES)


def _failures_path(args: argparse.Namespace) -> Path:
    if args.failures:
        return Path(args.failures)
    return Path(f"{args.output}.failures.jsonl")


def _check_output_path(path: Path, formats: tuple[str, ...] = (".npy", ".npz", ".jsonl")) -> None:
    """Fail before any work if the output cannot be written (wrong suffix, missing folder)."""
    if path.suffix.lower() not in formats:
        shown = f"'{path.suffix}'" if path.suffix else "(no extension)"
        raise DataError(
            f"{path}: unsupported output format {shown} (use {', '.join(formats[:-1])} or {formats[-1]})"
        )
    if not path.parent.is_dir():
        raise DataError(f"{path}: folder not found: {path.parent.absolute()}")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a file")


def run(args: argparse.Namespace) -> int:
    """Load, check, run, write; see the module docstring for exit codes."""
    from tuner.data import load_inputs
    from tuner.runtime import Runtime

    output = Path(args.output)
    _check_output_path(output)
    sidecar = _failures_path(args)
    _check_output_path(sidecar, (".npy", ".jsonl"))
    plan = args.faults
    overrides: dict[str, Any] = setting_values(args, OVERRIDES)
    # Everything that can be wrong with the user's files is found before a worker starts.
    from tuner.profile import load_profile

    profile = load_profile(args.profile)
    outputs_named = list(profile.model.outputs or [])
    if len(outputs_named) > 1 and output.suffix.lower() == ".npy":
        raise DataError(
            f"{output}: the model has {len(outputs_named)} outputs ({', '.join(outputs_named)}): "
            "write .npz (one array per output) or .jsonl"
        )
    items = load_inputs(args.input)
    if args.input_check:
        from tuner.models.signature import check_input

        check_input(profile, items, args.input, hint="pass --no-input-check to run anyway")
    if plan is not None and plan.active and "retry_on" not in overrides:
        # An injected exception stands for a transient error: retry it as the profile would retry
        # one, so the rehearsal walks the retry path instead of failing items by design.
        overrides["retry_on"] = (*profile.effective_recommended().retry_on, "InjectedFault")
    if args.ray_address is not None:
        from tuner.cluster import address_kind

        address_kind(args.ray_address)  # a bad address is one line before anything starts
    runtime = Runtime.from_profile(
        args.profile,
        model=args.model,
        strict=args.strict,
        faults=plan,
        ray_address=args.ray_address,
        allow_pickle=args.allow_pickle,
        check_input=args.input_check,
        **overrides,
    )

    outputs, failures, timing = _apply(runtime, items, args.no_progress)
    _write(output, sidecar, outputs, failures, outputs_named)
    n = len(items)
    stats, start_s, run_s = timing
    rate = n / run_s if run_s > 0 else float("inf")
    line = (
        f"tuner: {n} items · {n - len(failures)} outputs · {len(failures)} failed · "
        f"{stats.retries} retried · {stats.replaced} workers replaced → {output} "
        f"(start-up {fmt.seconds(start_s)}, then {fmt.rate(rate)} items/s over {fmt.seconds(run_s)}; "
        f"{runtime.settings.describe()})"
    )
    if failures:
        line += f"; failures in {sidecar}"
    _say(line)
    share = len(failures) / n if n else 0.0
    if failures and share > args.max_failed_share:
        _say(
            f"tuner: {len(failures)} of {n} items failed ({share:.1%} > tolerated {args.max_failed_share:.1%})"
        )
        return int(ExitCode.FAILED)
    return int(ExitCode.OK)


def _apply(
    runtime: Any, items: Any, no_progress: bool
) -> tuple[Any, list[dict[str, Any]], tuple[Any, float, float]]:
    """Run every item: (outputs, failure records, (stats, start-up s, run s)). The outputs are the
    partitions' arrays joined (``map_batches``: nothing per item, so a fast model runs at its
    profile's rate) — an array, or :class:`~tuner.models.columns.Rows` for several outputs — or,
    when a partition failed or the outputs are not arrays, one output per item (None for a failed
    one). The start-up (workers starting, the model loading) is timed apart from the steady run."""
    from tuner.engine import Failure

    n = len(items)
    batches: list[Any] = []
    failures: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with runtime, _progress(n, disabled=no_progress) as advance:
        t_ready = time.perf_counter()
        done = 0
        for batch in runtime.map_batches(items, on_failure="yield"):
            if isinstance(batch, list):  # a partition with a failed item: one outcome per item
                for i, out in enumerate(batch):
                    if isinstance(out, Failure):
                        failures.append(
                            {
                                "index": done + i,
                                "cause": out.cause,
                                "message": out.message,
                                "attempts": out.attempts,
                            }
                        )
                        batch[i] = None
            batches.append(batch)
            done += len(batch[0] if isinstance(batch, tuple) else batch)
            advance(done)
        t_end = time.perf_counter()
        stats = runtime.stats()
    return _joined(batches), failures, (stats, t_ready - t0, t_end - t_ready)


def _joined(batches: list[Any]) -> Any:
    """The partitions' outputs as one: arrays concatenated (a tuple of arrays per partition →
    :class:`~tuner.models.columns.Rows`), else a list with one output per item."""
    import numpy as np

    from tuner.models.columns import Rows

    if batches and all(isinstance(b, np.ndarray) for b in batches):
        return np.concatenate(batches)
    if batches and all(isinstance(b, tuple) and all(isinstance(a, np.ndarray) for a in b) for b in batches):
        return Rows(tuple(np.concatenate(column) for column in zip(*batches, strict=True)))
    outputs: list[Any] = []
    for b in batches:
        outputs.extend(Rows(b) if isinstance(b, tuple) else b)  # Rows reads a tuple per item
    return outputs


def _write(
    output: Path, sidecar: Path, outputs: Any, failures: list[dict[str, Any]], names: list[str]
) -> None:
    """The outputs (a placeholder of the same dtype for each failed item, and a mask of them), and
    the failures sidecar (an empty one replaces one from an earlier run)."""
    from tuner.data import save_jsonl_records, save_outputs

    mask = None
    if failures:
        failed = {f["index"] for f in failures}
        mask = [i in failed for i in range(len(outputs))]
        outputs = _with_placeholders(outputs, output, len(names))
    save_outputs(output, outputs, names=names or None, failed=mask)
    if failures or sidecar.exists():
        save_jsonl_records(sidecar, failures)


def _with_placeholders(outputs: list[Any], output: Path, width: int) -> Any:
    """Outputs with a placeholder for each failed item: null in .jsonl; in an array, zeros of the
    output's own dtype and shape (the mask says which rows are placeholders: a NaN would change an
    integer output's dtype). When every item failed there is no output to take a dtype from: NaN."""
    if output.suffix.lower() == ".jsonl":
        return outputs
    import numpy as np

    ok = [o for o in outputs if o is not None]
    if (ok and isinstance(ok[0], tuple)) or (not ok and width > 1):  # several outputs per item
        k = len(ok[0]) if ok else width
        columns = [
            _with_placeholders([None if o is None else o[i] for o in outputs], output, 1) for i in range(k)
        ]
        return list(zip(*columns, strict=True))
    if not ok:
        return np.full(len(outputs), np.nan)
    template = np.asarray(ok[0])
    return np.stack(
        [np.zeros_like(template) if o is None else np.asarray(o, dtype=template.dtype) for o in outputs]
    )


class _progress:
    """A rich progress bar on stderr (imported only here); a no-op when disabled or not a terminal."""

    def __init__(self, total: int, disabled: bool) -> None:
        self.total = total
        self.disabled = disabled or not sys.stderr.isatty() or os.environ.get("TERM") == "dumb"
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> Any:
        if self.disabled:
            return lambda done: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("running"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("run", total=self.total)
        return lambda done: self._progress.update(self._task, completed=done)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
    except UnicodeEncodeError:
        sys.stderr.write(line.encode("ascii", "replace").decode("ascii") + "\n")
