"""Built-in reference workloads: one per kind of bottleneck, deterministic and seeded.

=========  ======  =======================================================================
``mlp``    blas    numpy float32 MLP 256-1024-1024-10 (ReLU); threads per worker matter
``pyloop`` gil     pure-Python integer arithmetic, ~30 µs per item; only processes scale it
``sleep``  io      2 ms per partition + 0.05 ms per item, like a remote call; threads scale it
=========  ======  =======================================================================

Each is a factory (run once per worker) with an input generator ``gen(n, seed)``. numpy is
imported inside the functions, so importing this module stays cheap.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tuner.models.decorators import BatchFn, InputGen, factory

__all__ = ["BUILTINS", "PYLOOP_ROUNDS", "BuiltinModel"]

MLP_SIZES = (256, 1024, 1024, 10)
# ~30 µs per item: 360 rounds measured 28-32 µs on the dev box (CPython 3.11, x86-64).
PYLOOP_ROUNDS = 360
SLEEP_PER_PARTITION_S = 0.002
SLEEP_PER_ITEM_S = 0.00005


@dataclass(frozen=True)
class BuiltinModel:
    """A reference workload: ``builtin:NAME``."""

    name: str
    factory: Callable[..., Any]  # decorated with @factory: call once per worker
    generator: InputGen
    description: str
    bound: str


# --------------------------------------------------------------------------- mlp


def mlp_inputs(n: int, seed: int) -> Any:
    """``n`` float32 rows of 256, standard normal, deterministic for ``seed``."""
    import numpy as np

    return np.random.default_rng(seed).standard_normal((n, MLP_SIZES[0]), dtype=np.float32)


@factory(inputs=mlp_inputs, bound="blas")
def mlp() -> BatchFn:
    """numpy float32 MLP 256-1024-1024-10 with ReLU; weights from default_rng(0), made once per worker."""
    import numpy as np

    rng = np.random.default_rng(0)
    layers = []
    for n_in, n_out in itertools.pairwise(MLP_SIZES):
        # He-scaled so activations neither vanish nor overflow through three layers.
        w = rng.standard_normal((n_in, n_out), dtype=np.float32) * np.float32((2.0 / n_in) ** 0.5)
        b = rng.standard_normal(n_out, dtype=np.float32) * np.float32(0.01)
        layers.append((w, b))
    last = len(layers) - 1

    def forward(partition: Any) -> Any:
        x = np.asarray(partition, dtype=np.float32)
        if x.size == 0:
            return np.empty((len(x), MLP_SIZES[-1]), dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != MLP_SIZES[0]:
            raise ValueError(f"mlp expects rows of {MLP_SIZES[0]} floats, got an array of shape {x.shape}")
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if i != last:
                np.maximum(x, 0, out=x)
        return x

    return forward


# --------------------------------------------------------------------------- pyloop


def int_inputs(n: int, seed: int) -> Any:
    """``n`` int64 items in [0, 2**31), deterministic for ``seed``."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, 2**31, size=n, dtype=np.int64)


def _pyloop_item(item: Any) -> int:
    # A linear congruential walk: pure-Python int arithmetic, holds the GIL the whole time.
    h = int(item) & 0xFFFFFFFF
    for _ in range(PYLOOP_ROUNDS):
        h = (h * 1103515245 + 12345) & 0xFFFFFFFF
    return h


@factory(per_item=True, inputs=int_inputs, bound="gil")
def pyloop() -> Callable[[Any], int]:
    """Pure-Python integer arithmetic, ~30 µs per item, int -> int; holds the GIL."""
    return _pyloop_item


# --------------------------------------------------------------------------- sleep


@factory(inputs=int_inputs, bound="io")
def sleep() -> BatchFn:
    """Latency-bound like a remote call: 2 ms per partition + 0.05 ms per item; returns item * 2."""

    def call(partition: Any) -> Any:
        n = len(partition)
        time.sleep(SLEEP_PER_PARTITION_S + SLEEP_PER_ITEM_S * n)  # releases the GIL
        if hasattr(partition, "dtype"):  # a numpy slice: stay an array
            return partition * 2
        return [item * 2 for item in partition]

    return call


BUILTINS: dict[str, BuiltinModel] = {
    m.name: m
    for m in (
        BuiltinModel("mlp", mlp, mlp_inputs, "numpy float32 MLP 256-1024-1024-10 (ReLU)", "blas"),
        BuiltinModel("pyloop", pyloop, int_inputs, "pure-Python integer loop, ~30 µs per item", "gil"),
        BuiltinModel("sleep", sleep, int_inputs, "sleeps 2 ms per partition + 0.05 ms per item", "io"),
    )
}
