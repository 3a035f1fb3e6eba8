"""PyTorch: ``model.pt`` (TorchScript, ``torch.jit.load``) and ``model.pt2`` (a ``torch.export``
program, ``torch.export.load``), run on the CPU under ``torch.inference_mode()``.

The threads knob is torch's intra-op pool: ``torch.set_num_threads(threads)`` and
``torch.set_num_interop_threads(1)`` before the model loads. Both are settings of the whole
process, not of a worker: with the process backend each worker is its own process and gets its
own; with the thread backend every worker thread shares the one setting, and the inter-op pool
can be sized only once per process, before any inter-op work (a second call raises) — so it is set
once and, if something started the pool first, the adapter says so instead of failing.

What ``thread ×W · T threads`` runs, measured with torch 2.13's CPU wheel (an OpenMP build): each
worker thread that runs an operator gets its own OpenMP team of T threads, so W × T threads compute
— the same count as ``process ×W · T threads``, in one process. The evidence for a thread trial is
this process's OS threads, all workers together (never divided per worker).

A TorchScript file records no input shapes: give ``--input`` or ``--input-shape 3x224x224
--input-dtype float32``. A ``torch.export`` program does: its placeholders' shapes and dtypes are
read (a dynamic batch dimension is the partition).
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

NAME = "torch"
FRAMEWORK = "torch"
EXTRA = "torch"
POOL_NOTE = "torch's intra-op pool (torch.set_num_threads): one setting per process, shared by thread workers"
THREADS = "intra-op"
#: the intra-op pool is one setting per process (the search and the evidence say so for threads)
PROCESS_WIDE = True


@dataclass(frozen=True)
class Knobs:
    """torch's thread knobs tuner sets (and records)."""

    threads: int | None = 1  # torch.set_num_threads; None: torch's default (physical cores)
    interop_threads: int = 1  # torch.set_num_interop_threads, once per process

    def __post_init__(self) -> None:
        if not isinstance(self.interop_threads, int) or self.interop_threads < 1:
            raise ValueError(f"interop_threads must be an integer >= 1 (got {self.interop_threads!r})")


DIMENSIONS: dict[str, tuple[Any, ...]] = {}


def version() -> str | None:
    """The installed torch's version (None: not installed)."""
    return framework_version("torch")


def pools(knobs: Knobs) -> dict[str, int | None]:
    """The pools the knobs size (None: the framework's default size)."""
    return {"torch intra-op": knobs.threads, "torch inter-op": knobs.interop_threads}


def set_threads(torch: Any, knobs: Knobs) -> list[str]:
    """Apply the knobs to this process; notes for what could not be applied."""
    notes = []
    if knobs.threads is not None:
        torch.set_num_threads(knobs.threads)
    if torch.get_num_interop_threads() != knobs.interop_threads:
        try:
            torch.set_num_interop_threads(knobs.interop_threads)
        except RuntimeError:
            notes.append(
                f"torch's inter-op pool had already started with {torch.get_num_interop_threads()} threads "
                "in this process (it can be sized only once, before any inter-op work)"
            )
    return notes


def _export_inputs(ep: Any) -> list[InputSpec]:
    """Input names, dtypes and shapes of a torch.export program (its user-input placeholders)."""
    user = list(getattr(ep.graph_signature, "user_inputs", []) or [])
    out = []
    for node in ep.graph.nodes:
        if node.op != "placeholder" or node.name not in user:
            continue
        val = node.meta.get("val")
        if val is None or not hasattr(val, "shape"):
            continue
        shape = tuple(int(d) if isinstance(d, int) or str(d).isdigit() else None for d in val.shape)
        out.append(InputSpec(node.name, str(val.dtype).replace("torch.", ""), shape))
    return out


def running(knobs: Knobs) -> int:
    """Threads a worker computes with at once: the intra-op team (the caller included)."""
    return knobs.threads or os.cpu_count() or 1


def load(path: str, knobs: Knobs, options: Options) -> Loaded:
    """TorchScript or torch.export program, with the thread knobs set first."""
    where = os.path.basename(path)
    torch = import_framework("torch", path, "torch", EXTRA)
    notes = set_threads(torch, knobs)
    if not os.path.isfile(path):
        raise ModelSpecError(f"{where}: file not found: {path}")
    exported = path.lower().endswith(".pt2")
    try:
        if exported:
            ep = torch.export.load(path)
            module = ep.module()
            inputs = _export_inputs(ep)
        else:
            module = torch.jit.load(path, map_location="cpu")
            module.eval()
            inputs = []
    except Exception as e:
        kind = "torch.export program" if exported else "TorchScript file"
        raise ModelSpecError(f"{where}: not a {kind} torch can load ({one_line(e)})") from None
    if options.input_shape is not None:
        dtype = options.input_dtype or (inputs[0].dtype if inputs else "float32")
        name = inputs[0].name if inputs else "input"
        inputs = [InputSpec(name, dtype, (None, *options.input_shape))]
    elif options.input_dtype is not None and len(inputs) == 1:
        inputs = [InputSpec(inputs[0].name, options.input_dtype, inputs[0].shape)]
    import numpy as np

    feed_names = inputs

    def run(partition: Any) -> Any:
        if feed_names:
            feed = to_batch(partition, feed_names)
        else:
            feed = {"input": partition if hasattr(partition, "dtype") else np.asarray(list(partition))}
        arrays = [v if v.flags.writeable and v.flags.c_contiguous else np.array(v) for v in feed.values()]
        n = len(arrays[0])
        with torch.inference_mode():
            out = module(*[torch.from_numpy(a) for a in arrays])
        if isinstance(out, dict):
            out = list(out.values())
        if isinstance(out, (tuple, list)):
            return per_item([o.numpy() for o in out], n)
        return out.numpy()

    return Loaded(
        run=run,
        inputs=inputs,
        outputs=[],
        framework=FRAMEWORK,
        version=str(torch.__version__),
        notes=notes,
        description=f"{'torch.export program' if exported else 'TorchScript module'}, CPU, inference_mode",
        handle=module,
    )
