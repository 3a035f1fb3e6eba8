"""`tuner export PROFILE --to dockerfile`: the image the manifests run, with the same command, port
and paths. No Docker here to build it: the test reads the Dockerfile against the Deployment."""

from __future__ import annotations

import json
import shlex

from export.helpers import PROFILES, documents, load
from tuner.export.dockerfile import render
from tuner.export.kubernetes import ExportOptions
from tuner.export.kubernetes import render as render_k8s
from tuner.profile import ModelRef


def _instructions(text: str) -> dict[str, list[str]]:
    """Dockerfile instruction -> the arguments of each (JSON form parsed, shell form split)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        out.setdefault(op, []).append(rest)
    return out


def _args(rest: str) -> list[str]:
    return json.loads(rest) if rest.startswith("[") else shlex.split(rest)


def test_the_dockerfile_runs_what_the_deployment_runs_on_its_port_and_paths() -> None:
    opts = ExportOptions(source="profiles/mlp.yaml", profile_text=PROFILES["mlp"].read_text(), image="reg/m:1",
                         autoscaler="none")  # fmt: skip
    p = load("mlp")
    docker = _instructions(render(p, opts))
    c = documents(render_k8s(p, opts))["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert _args(docker["ENTRYPOINT"][0]) + _args(docker["CMD"][0]) == c["command"] + c["args"]
    assert docker["EXPOSE"] == [str(c["ports"][0]["containerPort"])]
    assert docker["WORKDIR"] == [c["workingDir"]]
    profile_copy = _args(docker["COPY"][0])
    assert profile_copy == ["profiles/mlp.yaml", c["args"][1]]
    assert c["args"][1] == f"{c['volumeMounts'][0]['mountPath']}/profile.yaml"
    env = dict(kv.split("=") for kv in _args(docker["ENV"][0]))
    assert env == {e["name"]: e["value"] for e in c["env"]}
    assert docker["FROM"] == ["python:3.11-slim"]  # the profile's host ran Python 3.11
    assert 'ARG TUNER_SPEC="tuner[serve,metrics]==0.1.0"' in render(p, opts)


def test_a_model_file_is_copied_where_its_spec_finds_it_and_its_framework_pinned() -> None:
    p = load("sleep")
    model = ModelRef(
        spec="models/clf.onnx", format="onnx", framework="onnxruntime", framework_version="1.17.1"
    )
    p = p.model_copy(update={"model": model})
    text = render(p, ExportOptions(source="profiles/clf.yaml"))
    docker = _instructions(text)
    assert ["models/clf.onnx", "/app/models/clf.onnx"] in [_args(c) for c in docker["COPY"]]
    assert 'ARG TUNER_SPEC="tuner[serve,metrics,onnx]==0.1.0"' in text
    assert docker["RUN"] == ['pip install --no-cache-dir "${TUNER_SPEC}" "onnxruntime==1.17.1"']
    module = p.model_copy(update={"model": ModelRef(spec="mypkg.models:load")})
    assert "the Python module mypkg.models must be importable" in render(module, ExportOptions())
