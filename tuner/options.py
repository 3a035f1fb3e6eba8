"""Values a person types — command-line options and the TUI's form fields — parsed once for both.

Each parser takes the option's name and its text and returns the value, or raises
:class:`~tuner.errors.BadInput` with one line that names the option, repeats the text and says what
is accepted, range included::

    --budget 'nan': not a finite number (expected seconds > 0)
    --workers '0': out of range (expected a list of integers >= 1, e.g. 1,2,4)
    --model '': blank (expected a model spec; omit --model for the default, builtin:mlp)

:func:`typed` adapts a parser to argparse's ``type=``, so a bad value stops the command while its
arguments are parsed — before anything is loaded, started or written — and reaches the user
through the CLI's one error funnel (``tuner: <message>``, exit 2). Only an absent option takes its
default: an option given explicitly blank is an error, never a silent fallback.

Why hand-written: argparse's ``type=float`` accepts ``nan`` and ``inf`` (every comparison with NaN
is False, so a range check after it passes NaN) and its messages say neither the range nor the
unit; click's ``FloatRange`` has the same NaN hole. pydantic would validate finiteness and ranges,
but importing it costs every ``tuner`` start (``tuner hw`` included) and its messages are several
lines per error. These few functions are the whole of it; the range is stated once, where the
option is declared, and the same words appear in ``--help`` and in the error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from tuner.errors import BadInput

if TYPE_CHECKING:
    from tuner.engine.faults import FaultPlan

__all__ = [
    "INPUT_DTYPES",
    "MAX_RANGE_VALUES",
    "MIN_STEP_S",
    "MIN_WINDOW_S",
    "choice",
    "choice_list",
    "delay_list",
    "expected_range",
    "fault_plan",
    "finite",
    "int_list",
    "integer",
    "non_blank",
    "request_size",
    "shape",
    "typed",
]

T = TypeVar("T")

#: The shortest measurement window accepted (``--window``, the TUI's field): below ~10 ms a window
#: is mostly scheduler noise and per-window overhead, not the model.
MIN_WINDOW_S = 0.01
#: The most values one ``A-B`` range in a list may expand to: a sweep dimension with more values
#: than this would not finish in any budget, and a typo like 1-100000000 must not eat the memory.
MAX_RANGE_VALUES = 256

#: The shortest online step: below it a step holds too few requests for a p99 at modest rates.
MIN_STEP_S = 0.2
#: numpy dtype names --input-dtype accepts
INPUT_DTYPES = ("float32", "float64", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")

_RANGE = re.compile(r"^\s*(-?\d+)\s*-\s*(-?\d+)\s*$")


def expected_range(
    what: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
) -> str:
    """``'seconds > 0'``, ``'a share from 0 to 1'``, ``'an integer >= 1'``: the words of a range."""
    low = f"> {gt:g}" if gt is not None else f">= {ge:g}" if ge is not None else None
    if ge is not None and le is not None:
        return f"{what} from {ge:g} to {le:g}"
    if low is not None and le is not None:
        return f"{what} {low} and <= {le:g}"
    if low is not None:
        return f"{what} {low}"
    if le is not None:
        return f"{what} <= {le:g}"
    return what


def _in_range(v: float, gt: float | None, ge: float | None, le: float | None) -> bool:
    return (gt is None or v > gt) and (ge is None or v >= ge) and (le is None or v <= le)


def finite(
    name: str,
    text: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    what: str = "a number",
) -> float:
    """A finite number within the bounds (``gt``: greater than; ``ge``: at least; ``le``: at most)."""
    expected = expected_range(what, gt=gt, ge=ge, le=le)
    if not text.strip():
        raise BadInput(f"{name} {text!r}: blank (expected {expected})")
    try:
        v = float(text)
    except ValueError:
        raise BadInput(f"{name} {text!r}: not a number (expected {expected})") from None
    if not math.isfinite(v):
        raise BadInput(f"{name} {text!r}: not a finite number (expected {expected})")
    if not _in_range(v, gt, ge, le):
        raise BadInput(f"{name} {text!r}: out of range (expected {expected})")
    return v


def integer(
    name: str,
    text: str,
    *,
    ge: int | None = None,
    le: int | None = None,
    what: str = "an integer",
) -> int:
    """An integer within ``[ge, le]`` (each bound optional)."""
    expected = expected_range(what, ge=ge, le=le)
    if not text.strip():
        raise BadInput(f"{name} {text!r}: blank (expected {expected})")
    try:
        v = int(text)
    except ValueError:
        raise BadInput(f"{name} {text!r}: not an integer (expected {expected})") from None
    if not _in_range(v, None, ge, le):
        raise BadInput(f"{name} {text!r}: out of range (expected {expected})")
    return v


def int_list(
    name: str,
    text: str,
    *,
    ge: int = 1,
    le: int | None = None,
) -> tuple[int, ...]:
    """``'1,2,4'``, ``'1-4'`` or a mix (spaces allowed): the distinct values, sorted."""
    expected = f"a list of {expected_range('integers', ge=ge, le=le)}, e.g. 1,2,4 or 1-4"
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise BadInput(f"{name} {text!r}: blank (expected {expected})")
    out: set[int] = set()
    for part in parts:
        m = _RANGE.match(part)
        try:
            lo, hi = (int(m.group(1)), int(m.group(2))) if m else (int(part), int(part))
        except ValueError:
            raise BadInput(f"{name} {text!r}: {part!r} is not an integer (expected {expected})") from None
        if lo > hi:
            raise BadInput(f"{name} {text!r}: {part!r} is an empty range (expected {expected})")
        # Both ends checked before expanding, so '1-999999999' is refused, not materialised.
        if not (_in_range(lo, None, ge, le) and _in_range(hi, None, ge, le)):
            raise BadInput(f"{name} {text!r}: {part!r} is out of range (expected {expected})")
        if hi - lo >= MAX_RANGE_VALUES:
            raise BadInput(
                f"{name} {text!r}: {part!r} spans {hi - lo + 1} values (a range may span at most {MAX_RANGE_VALUES})"
            )
        out.update(range(lo, hi + 1))
    return tuple(sorted(out))


def non_blank(
    name: str, text: str, *, what: str = "a value", default: str | None = None, required: bool = False
) -> str:
    """The text as given, unless it is empty or only whitespace (then: BadInput saying what to give).

    ``default`` (said in the message) is what omitting the option gives; ``required`` options and
    positional arguments (a name without '-') cannot be omitted, so the message does not suggest it.
    """
    if not text.strip():
        if default is not None:
            hint = f"expected {what}; omit {name} for the default, {default}"
        elif name.startswith("-") and not required:
            hint = f"expected {what}, or omit {name}"
        else:
            hint = f"expected {what}"
        raise BadInput(f"{name} {text!r}: blank ({hint})")
    return text


def choice(name: str, text: str, choices: Iterable[str]) -> str:
    """One of ``choices`` (surrounding spaces ignored)."""
    options = tuple(choices)
    value = text.strip()
    if not value:
        raise BadInput(f"{name} {text!r}: blank (choose from {', '.join(options)})")
    if value not in options:
        raise BadInput(f"{name} {text!r}: choose from {', '.join(options)}")
    return value


def choice_list(name: str, text: str, choices: Iterable[str]) -> tuple[str, ...]:
    """A comma-separated list of distinct ``choices``, in the order given."""
    options = tuple(choices)
    values = [v.strip() for v in text.split(",") if v.strip()]
    if not values:
        raise BadInput(f"{name} {text!r}: blank (choose one or more of {', '.join(options)})")
    bad = [v for v in values if v not in options]
    if bad:
        raise BadInput(f"{name} {text!r}: unknown {bad[0]!r} (choose from {', '.join(options)})")
    return tuple(dict.fromkeys(values))


def fault_plan(name: str, text: str) -> FaultPlan:
    """A fault plan (``crash=0.05,slow=0.1x5,...``); FaultPlan.parse refuses what is out of range or
    not finite ('x inf' would sleep forever in a worker), and its one line is prefixed by the option."""
    from tuner.engine.faults import FaultPlan
    from tuner.errors import FaultSpecError

    spec = non_blank(name, text, what="a fault plan, e.g. crash=0.05")
    try:
        return FaultPlan.parse(spec)
    except FaultSpecError as e:
        raise FaultSpecError(f"{name}: {e}") from None


def typed(parse: Callable[..., T], name: str, **bounds: Any) -> Callable[[str], T]:
    """``parse`` bound to an option's name and bounds, for argparse's ``type=``.

    The BadInput it raises is not one of the errors argparse turns into a usage message, so it
    leaves ``parse_args`` as it is and the CLI prints its one line.
    """

    def convert(text: str) -> T:
        return parse(name, text, **bounds)

    convert.__name__ = f"{getattr(parse, '__name__', 'value')} {name}"
    return convert


def shape(name: str, text: str) -> tuple[int, ...]:
    """``3x224x224`` (or ``8``): one item's shape, each dimension an integer >= 1."""
    parts = [p.strip() for p in text.lower().split("x")]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise BadInput(
            f"{name} {text!r}: not a shape (expected integers >= 1 joined by x, e.g. 3x224x224)"
        ) from None
    if not dims or any(d < 1 for d in dims):
        raise BadInput(f"{name} {text!r}: out of range (expected integers >= 1 joined by x, e.g. 3x224x224)")
    return dims


def delay_list(name: str, text: str) -> tuple[float, ...]:
    """``'0,1,2.5'``: distinct finite delays in ms, each >= 0 and <= 10000, sorted."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise BadInput(f"{name} {text!r}: blank (expected milliseconds >= 0, e.g. 0,1,2,5)")
    return tuple(sorted({finite(name, p, ge=0, le=10_000, what="milliseconds") for p in parts}))


def request_size(name: str, text: str) -> Any:
    """``N`` or ``A-B``: items per request (:class:`tuner.bench.online.schedule.RequestSize`)."""
    # Imported when the option is given: building the parser must not import numpy (tuner hw).
    from tuner.bench.online.schedule import parse_request_size

    return parse_request_size(name, text)
