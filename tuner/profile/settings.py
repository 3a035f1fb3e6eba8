"""The profile's view of the deployment: models generated from :mod:`tuner.deployment`, and the one
pair of functions between a profile and a :class:`~tuner.deployment.Deployment`.

Every setting is declared once, in :mod:`tuner.deployment`; the ``recommended`` section, its
per-platform overrides, the ``autoscale`` section and the deployment fields of the evidence's and
the online section's candidates are pydantic models built here from those declarations — the same
names (public: ``max_batch_delay_ms``), bounds (in public units), defaults and descriptions, so a
new setting appears in the profile, its JSON Schema and its checks without a line here.

* :func:`deployment_of` — a profile (its ``recommended``, this platform's override, its ``online``
  batching and its ``autoscale`` section) as the Deployment the runtime applies;
* :func:`recommended_of` / :func:`autoscale_of` — a Deployment as the profile's sections.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import MISSING, fields
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

from pydantic import Field, Strict, create_model, model_validator

from tuner.deployment import GROUPS, AutoscaleSettings, Deployment, Setting, settings_of
from tuner.profile.base import Generated, Model, Str, cross, normalise_platform

__all__ = [
    "Autoscale",
    "Backoff",
    "BackoffOverride",
    "DeploymentModel",
    "Hedge",
    "HedgeOverride",
    "Recommended",
    "RecommendedOverride",
    "autoscale_of",
    "deployment_fields",
    "deployment_model",
    "deployment_of",
    "recommended_of",
]

# An adapter knob's value: a word, a switch or a count.
_Knob = Annotated[str, Strict()] | Annotated[bool, Strict()] | Annotated[int, Strict()]


def _settings(cls: type) -> dict[str, Setting]:
    return {s.name: s for s in settings_of(cls)}


def _annotation(s: Setting, optional: bool) -> Any:
    """The pydantic type of one setting, in public units, from its declaration."""
    t: Any
    if s.choices:
        t = Literal.__getitem__(s.choices)
    elif s.pattern is not None:
        t = list[Annotated[str, Strict(), Field(pattern=s.pattern)]]
    elif s.name == "knobs":
        t = dict[Str, _Knob]
    else:
        bounds: dict[str, Any] = {}
        if s.low is not None:
            bounds["gt" if s.low_open else "ge"] = s.to_public(s.low)
        if s.high is not None:
            bounds["le"] = s.to_public(s.high)
        t = Annotated[int if s.integer else float, Strict(), Field(**bounds)]
    if s.none_word is not None:
        t = t | Literal.__getitem__((s.none_word,))
    return t | None if optional else t


def _default(f: Any, s: Setting) -> Any:
    """The declared default in public form (a tuple as a list; a swept setting other than the four
    every profile states is absent by default)."""
    value = f.default
    if value is None or s.swept:
        return None  # a swept setting the profile may leave out (knobs, placement): absent = its default
    return list(value) if isinstance(value, tuple) else s.to_public(value)


def _low_from_check(names: dict[str, Setting]) -> Any:
    """A model validator: each setting with ``low_from`` at least the other's value (``cap_s >=
    base_s``), the error pointing at the key to fix."""
    pairs = [(s.key, names[s.low_from].key) for s in names.values() if s.low_from in names]

    def check(self: Any) -> Any:
        for key, low_key in pairs:
            v, low = getattr(self, key, None), getattr(self, low_key, None)
            if v is not None and low is not None and v < low:
                raise cross(f"{key} ({v:g}) < {low_key} ({low:g})", at=key)
        return self

    return model_validator(mode="after")(check)


def deployment_fields(
    names: Iterable[str], *, cls: type = Deployment, required: bool | None = None, override: bool = False
) -> dict[str, tuple[Any, Any]]:
    """Pydantic field definitions of the named settings (keyed by their profile keys).

    ``required``: True makes every one required, None follows the declaration (``profile=
    "required"``); ``override``: every one optional, None by default (a platform's partial override).
    """
    decl = _settings(cls)
    dc_fields = {f.name: f for f in fields(cls)}
    out: dict[str, tuple[Any, Any]] = {}
    for name in names:
        s = decl[name]
        no_default = dc_fields[name].default is MISSING and dc_fields[name].default_factory is MISSING
        must = (s.profile == "required" or no_default) if required is None else required
        if override:
            out[s.key] = (_annotation(s, True), Field(default=None, description=s.doc))
        elif must:
            out[s.key] = (_annotation(s, False), Field(description=s.doc))
        else:
            default = _default(dc_fields[name], s)
            opt = s.optional or default is None
            info = (
                Field(default_factory=lambda d=default: list(d), description=s.doc)
                if isinstance(default, list)
                else Field(default=default, description=s.doc)
            )
            out[s.key] = (_annotation(s, opt), info)
    return out


class DeploymentModel(Generated):
    """A profile model with deployment settings among its fields (generated by :func:`deployment_model`)."""

    #: the settings it holds (code names), and the dataclass that declares them
    deployment_settings: ClassVar[tuple[str, ...]] = ()
    declared_by: ClassVar[type] = Deployment

    @classmethod
    def from_deployment(cls, d: Any, **extra: Any) -> Any:
        """The model with ``d``'s values of its settings, and ``extra`` fields of its own."""
        decl = _settings(cls.declared_by)
        values = {decl[n].key: _public_value(decl[n], getattr(d, n)) for n in cls.deployment_settings}
        return cls(**{k: v for k, v in values.items() if v is not None}, **extra)

    def to_deployment(self, base: Deployment | None = None) -> Deployment:
        """Its settings over ``base`` (default: the defaults) as a Deployment."""
        decl = _settings(Deployment)
        values = {n: _code_value(decl[n], getattr(self, decl[n].key)) for n in self.deployment_settings}
        return Deployment.of(base, **values)


def deployment_model(
    name: str,
    doc: str,
    names: Iterable[str],
    *,
    cls: type = Deployment,
    required: bool | None = None,
    absent: bool = False,
    extra: dict[str, tuple[Any, Any]] | None = None,
) -> type[DeploymentModel]:
    """A profile model of some settings (and ``extra`` fields of its own), checks included.
    ``absent``: every setting may be left out (None), as in a platform override."""
    names = list(names)
    decl = {n: s for n, s in _settings(cls).items() if n in names}
    model: type[DeploymentModel] = create_model(  # type: ignore[call-overload]
        name,
        __base__=DeploymentModel,
        __doc__=doc,
        __validators__={"_low_from": _low_from_check(decl)} if any(s.low_from for s in decl.values()) else {},
        **deployment_fields(names, cls=cls, required=required, override=absent),
        **(extra or {}),
    )
    model.deployment_settings = tuple(names)
    model.declared_by = cls
    return model


def _recommended_models(override: bool) -> dict[str, type[Generated]]:
    """``Recommended`` (or ``RecommendedOverride``) and its group models, in declaration order."""
    suffix = "Override" if override else ""
    recorded = [s for s in settings_of(Deployment) if s.profile != "no"]
    groups: dict[str, type[Generated]] = {}
    top: dict[str, tuple[Any, Any]] = {}
    for s in recorded:
        if s.group is None:
            top.update(deployment_fields([s.name], override=override))
            continue
        if s.group in groups:
            continue
        g = GROUPS[s.group]
        members = [x.name for x in recorded if x.group == s.group]
        model_name = s.group.capitalize() + suffix
        groups[s.group] = create_model(  # type: ignore[call-overload]
            model_name,
            __base__=Model,
            __doc__=g.doc
            if not override
            else f"A partial {s.group} in a platform override; unset fields keep the base values.",
            __validators__={}
            if override
            else {"_low_from": _low_from_check({n: _settings(Deployment)[n] for n in members})},
            **deployment_fields(members, override=override),
        )
        if override or g.present_when is not None:
            top[s.group] = (groups[s.group] | None, Field(default=None, description=g.summary))
        else:
            top[s.group] = (groups[s.group], Field(default_factory=groups[s.group], description=g.summary))
    doc = (
        "Any subset of Recommended's fields, merged over it on one platform."
        if override
        else "The configuration the runtime applies."
    )
    rec = create_model("Recommended" + suffix, __base__=Model, __doc__=doc, **top)  # type: ignore[call-overload]
    return {"Recommended" + suffix: rec, **{m.__name__: m for m in groups.values()}}


_MODELS = {**_recommended_models(False), **_recommended_models(True)}

if TYPE_CHECKING:
    Recommended: TypeAlias = Generated
    RecommendedOverride: TypeAlias = Generated
    Backoff: TypeAlias = Generated
    BackoffOverride: TypeAlias = Generated
    Hedge: TypeAlias = Generated
    HedgeOverride: TypeAlias = Generated
    Autoscale: TypeAlias = DeploymentModel
else:
    Recommended = _MODELS["Recommended"]
    RecommendedOverride = _MODELS["RecommendedOverride"]
    Backoff = _MODELS["Backoff"]
    BackoffOverride = _MODELS["BackoffOverride"]
    Hedge = _MODELS["Hedge"]
    HedgeOverride = _MODELS["HedgeOverride"]
    Autoscale = deployment_model(
        "Autoscale",
        "Bounds and pace of the runtime's autoscaler.",
        [s.name for s in settings_of(AutoscaleSettings)],
        cls=AutoscaleSettings,
        extra={"reasoning": (Str, Field(default="", description="Why these bounds, in words."))},
    )


# ------------------------------------------------------------------------------- the pair of functions


def _code_value(s: Setting, value: Any) -> Any:
    """A profile's value of ``s`` in code form."""
    if value is None or (s.none_word is not None and value == s.none_word):
        return None
    if s.name == "knobs":
        return tuple(value.items())
    if isinstance(value, list):
        return tuple(value)
    return s.from_public(value)


def _public_value(s: Setting, value: Any) -> Any:
    """A code value of ``s`` as the profile writes it."""
    if value is None:
        return s.none_word
    if s.name == "knobs":
        return dict(value) or None
    if isinstance(value, tuple):
        return list(value)
    return s.to_public(value)


def _values_of(section: Any, cls: type) -> dict[str, Any]:
    """The settings a profile section holds, in code form (groups unnested)."""
    out: dict[str, Any] = {}
    for s in settings_of(cls):
        if s.profile == "no":
            continue
        holder = getattr(section, s.group, None) if s.group else section
        if s.group and holder is None:
            present_when = GROUPS[s.group].present_when
            if present_when == s.name:
                out[s.name] = None  # hedge: null -> no hedging
            continue
        if holder is None or s.key not in type(holder).model_fields:
            continue
        value = getattr(holder, s.key)
        if value is None and not s.optional:
            continue  # absent: the declared default
        out[s.name] = _code_value(s, value)
    return out


def autoscale_settings_of(section: Any) -> AutoscaleSettings:
    """The profile's ``autoscale:`` section as the runtime's AutoscaleSettings."""
    return AutoscaleSettings(**_values_of(section, AutoscaleSettings))


def deployment_of(profile: Any, platform: str | None = None) -> Deployment:
    """What a profile asks the runtime to apply on ``platform`` (default: this OS).

    ``recommended`` with that platform's override merged over it; a profile measured under traffic
    (an ``online:`` section) adds the measured batching and ``max_pending``, which win over
    ``recommended``'s unless the platform's override sets them explicitly (a deliberate per-OS
    choice); and the ``autoscale:`` section's bounds and pace.
    """
    rec = profile.effective_recommended(platform)
    values = _values_of(rec, Deployment)
    online = getattr(profile, "online", None)
    if online is not None:
        key = normalise_platform(sys.platform if platform is None else platform)
        override = getattr(profile.platforms, key, None) if profile.platforms is not None and key else None
        explicit = override.model_fields_set if override is not None else set()
        values["max_batch_size"] = online.max_batch_size
        if "max_batch_delay_ms" not in explicit:
            values["max_batch_delay_s"] = online.max_batch_delay_ms / 1000.0
        if "max_pending" not in explicit:
            values["max_pending"] = online.max_pending
    values["autoscale"] = autoscale_settings_of(profile.autoscale)
    return Deployment(**values)


def recommended_of(d: Deployment) -> Any:
    """A Deployment as the profile's ``recommended`` section (placement only where it means something)."""
    data: dict[str, Any] = {}
    for s in settings_of(Deployment):
        if s.profile == "no":
            continue
        value = getattr(d, s.name)
        if s.name == "placement" and not d.kind.has_placement:
            continue
        if s.group is not None:
            present_when = GROUPS[s.group].present_when
            if present_when is not None and getattr(d, present_when) is None:
                data[s.group] = None
                continue
            data.setdefault(s.group, {})[s.key] = _public_value(s, value)
            continue
        data[s.key] = _public_value(s, value)
    return Recommended.model_validate({k: v for k, v in data.items() if v is not None})


def autoscale_of(a: AutoscaleSettings, reasoning: str = "") -> Any:
    """AutoscaleSettings as the profile's ``autoscale:`` section."""
    data = {s.key: _public_value(s, getattr(a, s.name)) for s in settings_of(AutoscaleSettings)}
    return Autoscale.model_validate(
        {**{k: v for k, v in data.items() if v is not None}, "reasoning": reasoning}
    )
