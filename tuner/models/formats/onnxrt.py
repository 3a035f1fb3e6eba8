"""ONNX Runtime: ``model.onnx`` on the CPU execution provider (another only when asked for).

The threads knob reaches ONNX Runtime's own pool: neither threadpoolctl nor ``OMP_NUM_THREADS``
does (the pip build's intra-op pool is its own, sized to the physical cores when left at 0). Each
session gets ``intra_op_num_threads = threads``, ``inter_op_num_threads = 1`` and sequential
execution; ``execution_mode = parallel`` also sizes the inter-op pool to ``threads``.

Spinning (``session.intra_op.allow_spinning``): ONNX Runtime's default keeps idle pool threads
spinning between operators, which wakes them faster but burns their cores while they wait — a
cost when several sessions share a host. tuner keeps ONNX Runtime's default (on) and the search
can measure it off (``--dims spinning``). Measured here on a busy 2-core host (an MLP
512-2048-2048-10, partitions of 256, 2 intra-op threads): on/off 1.01x — no gain to show for the
cores it burns at that size; smaller operators, whose wake-up is a larger share, may differ.

Threads as measured here (onnxruntime 1.32, Linux, a process worker): importing onnxruntime
starts 1 thread of its own; a session with ``intra_op_num_threads = N`` adds N - 1 pool threads
(the calling thread is the pool's N-th); a parallel session's inter-op pool of M adds M - 1 more.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from tuner.errors import ModelSpecError
from tuner.models.formats.base import (
    InputSpec,
    Loaded,
    Options,
    framework_version,
    import_framework,
    one_line,
    per_item,
    to_batch,
)

NAME = "onnx"
FRAMEWORK = "onnxruntime"
EXTRA = "onnx"
POOL_NOTE = "ONNX Runtime's intra-op pool (intra_op_num_threads), set per session"
THREADS = "intra-op"


@dataclass(frozen=True)
class Knobs:
    """ONNX Runtime session knobs tuner sets (and records)."""

    threads: int | None = 1  # intra_op_num_threads; None: ONNX Runtime's default (physical cores)
    execution_mode: str = "sequential"  # sequential | parallel (operators of independent branches at once)
    spinning: bool = True  # session.intra_op.allow_spinning (ONNX Runtime's default)

    def __post_init__(self) -> None:
        if self.execution_mode not in ("sequential", "parallel"):
            raise ValueError(f"execution_mode must be sequential or parallel (got {self.execution_mode!r})")
        if not isinstance(self.spinning, bool):
            raise ValueError(f"spinning must be true or false (got {self.spinning!r})")


DIMENSIONS: dict[str, tuple[Any, ...]] = {
    "execution_mode": ("sequential", "parallel"),
    "spinning": (True, False),  # the default first
}

_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


def version() -> str | None:
    """The installed onnxruntime's version (None: not installed)."""
    return framework_version("onnxruntime")


def providers() -> list[str]:
    """Execution providers this onnxruntime offers (imports it; [] when absent)."""
    try:
        import onnxruntime
    except ImportError:
        return []
    return list(onnxruntime.get_available_providers())


def pools(knobs: Knobs) -> dict[str, int | None]:
    """The pools the knobs size (None: the framework's default size)."""
    out: dict[str, int | None] = {"onnxruntime intra-op": knobs.threads}
    if knobs.execution_mode == "parallel":
        out["onnxruntime inter-op"] = knobs.threads
    return out


def _dtype(kind: str, where: str, name: str) -> str:
    dtype = _DTYPES.get(kind)
    if dtype is None:
        raise ModelSpecError(
            f"{where}: input '{name}' is {kind}, which tuner cannot feed (numeric tensors only)"
        )
    return dtype


def running(knobs: Knobs) -> int:
    """Threads one session computes with at once: the intra-op pool (the caller included), and in
    parallel mode the inter-op pool's threads beside it."""
    t = knobs.threads or os.cpu_count() or 1
    return t + (t - 1 if knobs.execution_mode == "parallel" else 0)


def load(path: str, knobs: Knobs, options: Options) -> Loaded:
    """An InferenceSession with the knobs; its inputs from the file."""
    where = os.path.basename(path)
    ort = import_framework("onnxruntime", path, "onnxruntime", EXTRA)
    so = ort.SessionOptions()
    so.intra_op_num_threads = knobs.threads or 0
    so.inter_op_num_threads = (knobs.threads or 0) if knobs.execution_mode == "parallel" else 1
    so.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL
        if knobs.execution_mode == "parallel"
        else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if knobs.spinning else "0")
    so.log_severity_level = 3  # errors only: warnings about unused initialisers are not the user's concern
    provider = options.provider or "CPUExecutionProvider"
    available = ort.get_available_providers()
    if provider not in available:
        raise ModelSpecError(
            f"{where}: execution provider {provider} is not available here (have {', '.join(available)})"
        )
    if not os.path.isfile(path):
        raise ModelSpecError(f"{where}: file not found: {path}")
    try:
        session = ort.InferenceSession(path, sess_options=so, providers=[provider])
    except Exception as e:
        raise ModelSpecError(f"{where}: not a model ONNX Runtime can load ({one_line(e)})") from None
    inputs = []
    for i in session.get_inputs():
        shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (i.shape or []))
        inputs.append(InputSpec(i.name, _dtype(i.type, where, i.name), shape or (None,)))
    outs = session.get_outputs()
    names = [o.name for o in outs]
    notes = []
    zipmaps = {o.name for o in outs if str(o.type).startswith("seq(map")}
    if zipmaps:
        notes.append(
            f"output {', '.join(sorted(zipmaps))} is a ZipMap (one dict per item): returned as an array, "
            "one column per class in class order (convert with options={'zipmap': False} to skip this)"
        )
    fixed_one = all(s.shape and s.shape[0] == 1 for s in inputs)
    run_session = session.run

    def run(partition: Any) -> Any:
        feed = to_batch(partition, inputs)
        n = len(next(iter(feed.values())))
        if fixed_one and n != 1:  # a model exported with batch 1: one item at a time
            rows = [run_session(None, {k: v[i : i + 1] for k, v in feed.items()}) for i in range(n)]
            results = [_concat([r[j] for r in rows]) for j in range(len(names))]
        else:
            results = run_session(None, feed)
        if zipmaps:
            results = [_unzip(r) if isinstance(r, list) else r for r in results]
        return per_item(results, n)

    return Loaded(
        run=run,
        inputs=inputs,
        outputs=names,
        framework=FRAMEWORK,
        version=str(ort.__version__),
        notes=notes,
        description=f"ONNX model, {len(inputs)} input(s), {len(names)} output(s), {provider}",
        handle=session,
    )


def _concat(parts: list[Any]) -> Any:
    import numpy as np

    if parts and isinstance(parts[0], list):
        return [x for p in parts for x in p]
    return np.concatenate(parts)


def _unzip(rows: list[dict[Any, float]]) -> Any:
    """A ZipMap's list of {class: probability} as an array, one column per class in class order."""
    import numpy as np

    if not rows:
        return np.empty((0, 0), dtype=np.float32)
    keys = sorted(rows[0])
    return np.array([[r[k] for k in keys] for r in rows], dtype=np.float32)
