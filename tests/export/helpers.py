"""Shared by the export tests: the shipped profiles, reading manifests back, and validators.

Deployment, Service, ConfigMap and HPA are validated with ``kubernetes-validate`` (the ``test-k8s``
extra) against the Kubernetes schema of :data:`tuner.export.kubernetes.K8S_VERSION`, strict (unknown
fields refused). KEDA's and KServe's CRD schemas ship with no package: their objects are checked
field by field against the Go types their projects publish, and the Kubernetes types they embed
(HPA behaviour, Container, Volume) against the same Kubernetes schema's definitions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.export.kubernetes import K8S_VERSION
from tuner.profile import ScalingProfile, load_profile

REPO = Path(__file__).resolve().parents[2]
# profiles/ as shipped, frozen (tests/fixtures/shipped/README.md): the tests pin their figures
PROFILES = {p.stem: p for p in sorted((REPO / "tests" / "fixtures" / "shipped").glob("*.yaml"))}


def load(name: str) -> ScalingProfile:
    return load_profile(PROFILES[name])


def documents(text: str) -> dict[str, dict[str, Any]]:
    """The YAML documents of a multi-document export, by kind."""
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = [d["kind"] for d in docs]
    assert len(set(kinds)) == len(kinds), kinds
    return {d["kind"]: d for d in docs}


def _kv() -> Any:
    return pytest.importorskip("kubernetes_validate", reason="validating needs the test-k8s extra")


def validate_k8s(doc: dict[str, Any]) -> None:
    """Validate ``doc`` against the Kubernetes schema of K8S_VERSION, unknown fields refused."""
    kv = _kv()
    try:
        kv.validate(doc, K8S_VERSION, strict=True)
    except kv.ValidationError as e:  # pragma: no cover - the message is the point when it fails
        where = ".".join(str(p) for p in e.path)
        raise AssertionError(f"{doc['kind']}: {where}: {e.message}") from None


def validate_definition(value: Any, definition: str) -> None:
    """Validate ``value`` against one definition of the Kubernetes schema (e.g.
    ``io.k8s.api.core.v1.Container``), strict, as kubernetes-validate reads it."""
    _kv()
    import jsonschema
    import referencing
    from kubernetes_validate.utils import latest_version, schema_contents
    from packaging.version import Version

    assert Version(latest_version()) >= Version(K8S_VERSION)
    folder = f"kubernetes-json-schema/v{K8S_VERSION}.0-local-strict"
    defs = schema_contents(f"{folder}/_definitions.json", K8S_VERSION)
    registry = referencing.Registry().with_resource(
        "https://kubernetes.io/api/_definitions.json", referencing.Resource.from_contents(defs)
    )
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://kubernetes.io/api/check.json",
        "$ref": f"/api/_definitions.json#/$defs/{definition}",
    }
    jsonschema.Draft202012Validator(schema, registry=registry).validate(value)


def check_fields(value: dict[str, Any], fields: dict[str, Any], where: str) -> None:
    """Every key of ``value`` is one of ``fields`` and has its type (a type, a tuple of types, or a
    tuple of allowed strings given as a frozenset)."""
    for key, v in value.items():
        assert key in fields, f"{where}.{key}: not a field of {where}"
        want = fields[key]
        if isinstance(want, frozenset):
            assert v in want, f"{where}.{key}: {v!r} not one of {sorted(want)}"
        else:
            assert isinstance(v, want) and not (isinstance(v, bool) and want in (int, (int,))), (
                f"{where}.{key}: {v!r} is not {want}"
            )
