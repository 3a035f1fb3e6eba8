"""Model specs: what a spec string means, how a worker loads it, and how its callable is read.

A *spec* names a callable:

==========================  ==================================================================
``builtin:NAME``            a reference workload from :mod:`tuner.models.builtin` (mlp, pyloop, sleep)
``package.module:attr``     imported like uvicorn's ``app``: the working directory is put on ``sys.path``
``path/to/file.py:attr``    relative or absolute; split on the LAST colon, so ``C:\\m\\serve.py:fn`` parses
``model.onnx``, ``.pt``...  a model file, loaded by its format adapter (:mod:`tuner.models.formats`)
a Python callable           accepted wherever a spec string is
==========================  ==================================================================

How the callable is read — decorate it to say so; an undecorated one is read from its signature::

    @batch                       # fn(partition) -> one output per item      (default: one argument)
    def predict(rows): ...

    @per_item                    # fn(item) -> output; tuner loops over the partition
    def score(item): ...

    @factory                     # called ONCE per worker with no arguments (default: zero arguments);
    def load():                  # returns a batch function or an object with __call__
        weights = ...
        return lambda rows: rows @ weights

    @factory(per_item=True)      # the factory returns a per-item function
    def load_scorer(): ...

    @batch(inputs=make_rows, bound="blas")   # attach an input generator gen(n, seed) and a hint
    def predict(rows): ...

A *partition* is a list or a numpy array (a slice of rows); the outputs are a list or a numpy array
with exactly one entry per item (:func:`check_outputs`).

Flow: the parent calls :func:`validate` once (resolve, load, run on a small sample); each worker calls
:func:`load_model` once and then calls the returned ``fn(partition)`` for every partition.

==================  ==========================================================================
``spec``            spec strings parsed, nothing imported: ``ModelSpec``, ``parse_spec``
``decorators``      ``@batch``, ``@per_item``, ``@factory`` and the mark they leave
``loader``          ``resolve`` (import), ``load_model`` (what a worker runs), ``input_generator``
``validation``      ``validate`` (a trial run in the parent), ``check_outputs``
``builtin``         the reference workloads (imported only when a ``builtin:`` spec is resolved)
``formats``         one adapter per model-file format (onnx, torch, scikit-learn): knobs, load, run
``signature``       item and named-input signatures, the input checks
``columns``         the items of a model with several named inputs (a ``.npz``)
==================  ==========================================================================

The engine's forkserver preloads this package and every worker imports it, as does the production
runtime: it imports nothing heavy (the standard library only; numpy only inside ``builtin`` and the
adapters' functions; a framework only when its adapter loads a model).
"""

from __future__ import annotations

from tuner.models.decorators import BOUNDS, BatchFn, InputGen, batch, factory, per_item
from tuner.models.loader import input_generator, load_model, resolve
from tuner.models.spec import ModelSpec, parse_spec, spec_text
from tuner.models.validation import ModelInfo, check_outputs, validate

__all__ = [
    "BOUNDS",
    "BatchFn",
    "InputGen",
    "ModelInfo",
    "ModelSpec",
    "batch",
    "check_outputs",
    "factory",
    "input_generator",
    "load_model",
    "parse_spec",
    "per_item",
    "resolve",
    "spec_text",
    "validate",
]
