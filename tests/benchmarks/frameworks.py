"""tuner's recommendation for a real model file against the framework's default deployments.

For an ONNX model and a torch (``torch.export``) model, both generated here (an MLP 512-2048-2048-10,
float32: a partition of 64 items takes milliseconds), on the same inputs:

* **recommended** — ``tuner bench`` sweeps the model file (a short adaptive sweep), and the profile's
  configuration serves the inputs through ``Runtime.from_profile(...).map``;
* **1 process, default threads** — the framework as people load it (``InferenceSession(path)``,
  ``torch.export.load(path).module()``, no thread setting) in one process, the inputs in partitions
  of the recommended size;
* **N processes, default threads** — ``multiprocessing.Pool(usable cores)``, each process loading
  the model with default threads (what people do to use the cores; each framework pool also sizes
  itself to the cores, so N × N threads compete: oversubscribed).

Every deployment is started and warmed before any is timed; their passes over the inputs then
alternate, and each figure is the median of ``REPEATS`` passes, side by side in this one run. Printed: items/s of each
and the ratios recommended / better default and oversubscribed / 1 process (its loss).

    python tests/benchmarks/frameworks.py            # needs tuner[onnx,torch] and onnx
    python tests/benchmarks/frameworks.py --smoke    # does it still run? (its figures mean nothing)

``--frameworks onnx`` (or ``torch``) measures one of the two. ``--smoke``: the ONNX model only (tuner's
code path is the same for both; torch's start-up in every process would make it long), 512 items, a
``tuner bench`` of one configuration (process ×1 · 1 thread · partition 64, 0.1 s windows, no host
calibration; the default deployment and the cold start still measured), one pass of each deployment.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = (512, 2048, 2048, 10)
ITEMS = 4096
REPEATS = 7
#: between two timed passes, so the previous deployment's idle pool threads have stopped spinning
PAUSE_S = 0.2
BUDGET_S = "45"
#: --smoke: few items, and a sweep of one configuration in short windows
SMOKE_ITEMS = 512
SMOKE_SWEEP = ["--strategy", "grid", "--backends", "process", "--workers", "1", "--threads", "1",
               "--partition-sizes", "64", "--window", "0.1", "--calibration", "0"]  # fmt: skip


def make_onnx(path: Path) -> None:
    """An ONNX MLP with a symbolic batch dimension, from onnx.helper (no exporter needed)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    prev = "x"
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        w = (rng.standard_normal((a, b)) * (2 / a) ** 0.5).astype(np.float32)
        inits += [
            numpy_helper.from_array(w, f"w{i}"),
            numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"]),
        ]
        prev = f"a{i}"
        if i < len(SIZES) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", SIZES[0]])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", SIZES[-1]])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def make_torch(path: Path) -> None:
    import torch

    torch.manual_seed(0)
    layers: list[Any] = []
    for i, (a, b) in enumerate(itertools.pairwise(SIZES)):
        layers.append(torch.nn.Linear(a, b))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).eval()
    ep = torch.export.export(
        net, (torch.zeros(8, SIZES[0]),), dynamic_shapes=({0: torch.export.Dim("batch")},)
    )
    torch.export.save(ep, str(path))


# -- the default deployments: the model loaded as its framework's docs show, no thread settings ----
_fn: Any = None


def _load_default(path: str) -> None:
    global _fn
    if path.endswith(".onnx"):
        import onnxruntime as ort

        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        _fn = lambda x: session.run(None, {"x": x})[0]  # noqa: E731
    else:
        import torch

        module = torch.export.load(path).module()

        def run(x: Any) -> Any:
            with torch.inference_mode():
                return module(torch.from_numpy(x)).numpy()

        _fn = run


def _call(x: Any) -> int:
    return len(_fn(x))


def _timed(run_pass: Any) -> float:
    t0 = time.perf_counter()
    done = run_pass()
    return done / (time.perf_counter() - t0)


def measure_all(
    profile: str, path: str, x: Any, parts: list[Any], cores: int, repeats: int = REPEATS
) -> dict[str, float]:
    """Median items/s of each deployment. All three are started and warmed first, then their passes
    alternate (recommended, 1 process, N processes, recommended, ...): a change in the host's load
    during the run falls on every deployment alike instead of on whichever ran then."""
    from contextlib import ExitStack

    from tuner.runtime import Runtime

    ctx = mp.get_context("spawn")  # a fresh interpreter each: nothing inherited from this one
    with ExitStack() as stack:
        rt = stack.enter_context(Runtime.from_profile(profile))
        one = stack.enter_context(ctx.Pool(1, initializer=_load_default, initargs=(path,)))
        many = stack.enter_context(ctx.Pool(cores, initializer=_load_default, initargs=(path,)))
        list(rt.map(x[: rt.settings.partition_size * rt.settings.workers * 2]))  # loaded and warm
        one.map(_call, parts[:2], chunksize=1)
        many.map(_call, parts[: cores * 2], chunksize=1)
        passes = {
            "recommended": lambda: sum(1 for _ in rt.map(x)),
            "one": lambda: sum(one.imap_unordered(_call, parts, chunksize=1)),
            "many": lambda: sum(many.imap_unordered(_call, parts, chunksize=1)),
        }
        rates: dict[str, list[float]] = {k: [] for k in passes}
        for _ in range(repeats):
            for name, run_pass in passes.items():
                time.sleep(PAUSE_S)  # the previous deployment's pool threads stop spinning
                rates[name].append(_timed(run_pass))
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frameworks", default="onnx,torch", help="which models (default onnx,torch)")
    ap.add_argument("--smoke", action="store_true", help="onnx, 512 items, one configuration, one pass")
    args = ap.parse_args()
    from tuner.hardware import probe

    frameworks = ["onnx"] if args.smoke else [f.strip() for f in args.frameworks.split(",")]
    items, repeats = (SMOKE_ITEMS, 1) if args.smoke else (ITEMS, REPEATS)
    sweep = SMOKE_SWEEP if args.smoke else ["--budget", BUDGET_S, "--window", "0.5"]
    cores = probe().usable_cores
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"host: {cores} usable cores, load average {load:.1f} (other work on the host skews every figure alike)"
    )
    if args.smoke:
        print("smoke run: the figures below show that each deployment ran, not how they compare")
    x = np.random.default_rng(1).standard_normal((items, SIZES[0])).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        makers = {"onnx": (make_onnx, folder / "mlp.onnx"), "torch": (make_torch, folder / "mlp.pt2")}
        models = {name: makers[name][1] for name in frameworks}
        for name, path in models.items():
            makers[name][0](path)
        for name, path in models.items():
            prof = folder / f"{name}.yaml"
            r = subprocess.run(
                [sys.executable, "-m", "tuner", "bench", "--model", str(path), "--items", str(items),
                 *sweep, "--out", str(prof)],
                capture_output=True, text=True,
            )  # fmt: skip
            if r.returncode != 0:
                print(f"{name}: tuner bench failed: {r.stderr.strip().splitlines()[-1:]}")
                return 1
            from tuner.profile import load_profile

            p = load_profile(prof)
            rec = p.recommended
            size = rec.partition_size
            parts = [x[i : i + size] for i in range(0, items, size)]
            figures = measure_all(str(prof), str(path), x, parts, cores, repeats)
            tuned, one, many = figures["recommended"], figures["one"], figures["many"]
            best_default = max(one, many)
            ev = p.evidence.threads
            print(
                f"{name}: recommended {rec.backend} ×{rec.workers} · {rec.threads_per_worker} thread(s) · partition {size}"
                f"{' · ' + str(rec.knobs) if rec.knobs else ''} (threads that ran: {ev.ran if ev else '?'}, {ev.scope if ev else ''})"
            )
            print(f"  recommended               {tuned:10,.0f} items/s")
            print(f"  1 process, default threads {one:9,.0f} items/s")
            print(f"  {cores} processes, default threads {many:7,.0f} items/s (oversubscribed)")
            print(
                f"  ratio recommended / better default: {tuned / best_default:.2f}x "
                f"(target >= 1.0); oversubscribed / 1 process: {many / one:.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
