"""The building blocks of every profile model: strict numbers, the base model, cross-field errors.

Strict numbers: YAML already gives real ints and floats, so a string "2" or a boolean where a
number belongs is a mistake to report, not something to coerce (pydantic's lax mode takes
`workers: true` as 1). Ints are accepted where floats are expected; NaN and infinity are refused
for every float by :class:`Model`'s config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict
from pydantic_core import PydanticCustomError

from tuner.deployment import EXCEPTION_NAME

__all__ = [
    "PATTERN_WORDS",
    "Count",
    "Generated",
    "Interval",
    "Model",
    "NonNeg",
    "NonNegInt",
    "OpenInterval",
    "Positive",
    "Str",
    "cross",
    "normalise_platform",
]

Str = Annotated[str, Strict()]
Count = Annotated[int, Strict(), Field(ge=1)]
NonNegInt = Annotated[int, Strict(), Field(ge=0)]
Positive = Annotated[float, Strict(), Field(gt=0)]
NonNeg = Annotated[float, Strict(), Field(ge=0)]
NAME_PATTERN = r"^[a-zA-Z0-9_.-]+$"

PATTERN_WORDS = {
    NAME_PATTERN: "may hold only letters, digits, '_', '.' and '-'",
    EXCEPTION_NAME: "must be an exception type name such as 'ValueError' or 'mypkg.Transient'",
}
"""What each pattern of the schema means, in the words an error message uses."""


def _ordered_pair(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise PydanticCustomError(
            "interval_order", "low ({low}) > high ({high})", {"low": pair[0], "high": pair[1]}
        )
    return pair


def _low_high(pair: tuple[float, float | None]) -> tuple[float, float | None]:
    if pair[1] is not None and pair[0] > pair[1]:
        raise PydanticCustomError(
            "interval_order", "low ({low}) > high ({high})", {"low": pair[0], "high": pair[1]}
        )
    return pair


Interval = Annotated[tuple[NonNeg, NonNeg], AfterValidator(_ordered_pair)]
OpenInterval = Annotated[tuple[NonNeg, NonNeg | None], AfterValidator(_low_high)]


def cross(detail: str, at: str = "") -> PydanticCustomError:
    """A cross-field error. ``at`` is a dotted key path (relative to the model that raises it)
    whose line the message should point at; the shown key path stays the model's own."""
    return PydanticCustomError("cross_field", "{detail}", {"detail": detail, "at": at})


def normalise_platform(value: str) -> str | None:
    """'linux', 'darwin' or 'windows' for a ``sys.platform``-like value; None for other systems."""
    v = value.lower()
    if v.startswith("linux"):
        return "linux"
    if v in ("darwin", "macos", "mac"):
        return "darwin"
    if v in ("win32", "cygwin", "windows", "win"):
        return "windows"
    return None


class Model(BaseModel):
    """Base of every profile model: unknown keys are errors, so typos never pass silently; no
    float field takes NaN or infinity (``.nan`` and ``.inf`` are valid YAML floats, infinity
    passes any lower bound, and a field without bounds would take either)."""

    model_config = ConfigDict(extra="forbid", validate_default=False, allow_inf_nan=False)


class Generated(Model):
    """The static view of a model whose fields are generated from :mod:`tuner.deployment`
    (:mod:`tuner.profile.settings`): to a type checker, its fields are there but untyped."""

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...
