"""Decorators that say how tuner reads a model's callable: ``@batch``, ``@per_item``, ``@factory``.

Each stores a :class:`Mark` on the function itself (``__tuner_model__``) and returns the function
unchanged, so it still pickles by reference and calling it does what its author wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from tuner.models.words import article

__all__ = ["BOUNDS", "BatchFn", "InputGen", "Mark", "batch", "factory", "mark_of", "per_item"]

BatchFn = Callable[[Any], Any]
"""``fn(partition) -> outputs``: what :func:`~tuner.models.load_model` returns."""
InputGen = Callable[[int, int], Any]
"""``gen(n_items, seed) -> np.ndarray of n rows (or a list)``, deterministic for a seed."""

BOUNDS = ("blas", "gil", "io", "unknown")
"""What bounds a model, as a hint for the search: BLAS threads, the GIL, waiting (I/O)."""

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Mark:
    """What a decorator says about a callable; stored as ``__tuner_model__`` on it."""

    kind: str  # "batch" | "per_item" | "factory"
    inputs: InputGen | None = None
    per_item: bool = False  # factories only: the returned function is per-item
    bound: str = "unknown"


def _marker(mark: Mark) -> Callable[[_F], _F]:
    if mark.bound not in BOUNDS:
        raise ValueError(f"bound must be one of {', '.join(BOUNDS)}, not {mark.bound!r}")
    if mark.inputs is not None and not callable(mark.inputs):
        raise TypeError(f"inputs must be a callable gen(n, seed), not {article(mark.inputs)}")

    def apply(fn: _F) -> _F:
        if not callable(fn):
            raise TypeError(f"@{mark.kind} needs a callable, not {article(fn)}")
        # The function itself is returned (not a wrapper) so it still pickles by reference
        # and calling it directly does what its author wrote.
        fn.__tuner_model__ = mark  # type: ignore[attr-defined]
        return fn

    return apply


@overload
def batch(fn: _F, /) -> _F: ...
@overload
def batch(*, inputs: InputGen | None = None, bound: str = "unknown") -> Callable[[_F], _F]: ...
def batch(
    fn: Callable[..., Any] | None = None, /, *, inputs: InputGen | None = None, bound: str = "unknown"
) -> Any:
    """Mark ``fn(partition) -> outputs`` (one output per item). The default for one-argument callables."""
    deco = _marker(Mark("batch", inputs=inputs, bound=bound))
    return deco if fn is None else deco(fn)


@overload
def per_item(fn: _F, /) -> _F: ...
@overload
def per_item(*, inputs: InputGen | None = None, bound: str = "unknown") -> Callable[[_F], _F]: ...
def per_item(
    fn: Callable[..., Any] | None = None, /, *, inputs: InputGen | None = None, bound: str = "unknown"
) -> Any:
    """Mark ``fn(item) -> output``; tuner loops over each partition."""
    deco = _marker(Mark("per_item", inputs=inputs, bound=bound))
    return deco if fn is None else deco(fn)


@overload
def factory(fn: _F, /) -> _F: ...
@overload
def factory(
    *, per_item: bool = False, inputs: InputGen | None = None, bound: str = "unknown"
) -> Callable[[_F], _F]: ...
def factory(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    per_item: bool = False,
    inputs: InputGen | None = None,
    bound: str = "unknown",
) -> Any:
    """Mark a zero-argument loader called once per worker; it returns the batch (or per-item) function."""
    deco = _marker(Mark("factory", inputs=inputs, per_item=per_item, bound=bound))
    return deco if fn is None else deco(fn)


def mark_of(obj: Any) -> Mark | None:
    """The decorator's :class:`Mark` on ``obj``, or None if it is undecorated."""
    mark = getattr(obj, "__tuner_model__", None)
    return mark if isinstance(mark, Mark) else None
