"""Items of a model with several named inputs, and outputs of a model with several outputs.

:class:`Columns` — inputs: one array per input name, rows aligned. :class:`Rows` — outputs: one
array per output, kept whole through the engine and the transport (an array pickles in one piece;
a list of per-item tuples pickles item by item, which cost a fast two-output model a quarter of its
throughput), read as one tuple per item only when an item is read.

A ``.npz`` input file (one array per input name, the same number of rows in each) is read into
:class:`Columns`; the engine partitions it like an array (``cols[i:j]`` is a Columns of those rows,
``len(cols)`` the number of items) and an adapter feeds each array to the input of that name. One
item (``cols[i]``) is a dict ``{name: row}``: what ``Runtime.submit`` takes for such a model.

Light on purpose: numpy is never imported here (the arrays are only sliced).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from tuner.errors import DataError

__all__ = ["Columns", "Rows"]


class Columns:
    """Named arrays of equal length, sliced together; rows are items."""

    __slots__ = ("arrays",)

    def __init__(self, arrays: Mapping[str, Any], where: str = "inputs") -> None:
        if not arrays:
            raise DataError(f"{where}: no arrays (expected one array per input name)")
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            shown = ", ".join(f"{k} {v}" for k, v in lengths.items())
            raise DataError(
                f"{where}: arrays hold different numbers of rows ({shown}); one row per item in each"
            )
        self.arrays: dict[str, Any] = dict(arrays)

    @property
    def names(self) -> list[str]:
        """The input names, in file order."""
        return list(self.arrays)

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return Columns({k: a[key] for k, a in self.arrays.items()})
        return {k: a[key] for k, a in self.arrays.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        inner = ", ".join(
            f"{k}: {getattr(a, 'dtype', '?')}{list(getattr(a, 'shape', ()))}" for k, a in self.arrays.items()
        )
        return f"Columns({inner})"

    def __getstate__(self) -> dict[str, Any]:
        return self.arrays

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.arrays = state


class Rows:
    """Several outputs of a partition: one array (or list) per output, rows aligned; item ``i`` is
    the tuple of each output's row ``i``. Sliced and pickled as whole arrays."""

    __slots__ = ("outputs",)

    def __init__(self, outputs: list[Any] | tuple[Any, ...]) -> None:
        self.outputs: tuple[Any, ...] = tuple(outputs)

    def __len__(self) -> int:
        return len(self.outputs[0]) if self.outputs else 0

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return Rows([o[key] for o in self.outputs])
        return tuple(o[key] for o in self.outputs)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(zip(*self.outputs, strict=True))

    def __repr__(self) -> str:
        return f"Rows({len(self.outputs)} outputs × {len(self)} items)"

    def __getstate__(self) -> tuple[Any, ...]:
        return self.outputs

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.outputs = state
