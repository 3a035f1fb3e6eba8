"""`tuner export` end to end, in a subprocess: --out DIR|FILE, and every bad input one line, exit 2,
nothing written."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from export.helpers import PROFILES


def _run(tuner_cmd: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*tuner_cmd, "export", *args], capture_output=True, text=True, timeout=60)


def test_out_names_a_file_or_a_folder_that_gets_the_targets_file(
    tuner_cmd: list[str], tmp_path: Path
) -> None:
    sleep = str(PROFILES["sleep"])
    r = _run(tuner_cmd, sleep, "--to", "kubernetes", "--rate", "20000", "--autoscaler", "keda",
             "--prometheus-url", "http://prometheus.monitoring:9090", "--out", f"{tmp_path}/deploy/")  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = tmp_path / "deploy" / "kubernetes.yaml"
    assert r.stdout == "" and f"written to {out}" in r.stderr
    kinds = [d["kind"] for d in yaml.safe_load_all(out.read_text()) if d]
    assert kinds == ["ConfigMap", "Deployment", "Service", "ScaledObject"]
    r = _run(tuner_cmd, sleep, "--to", "dockerfile", "--out", str(tmp_path / "deploy"))
    assert r.returncode == 0, r.stderr
    assert (
        (tmp_path / "deploy" / "Dockerfile").read_text().startswith("# Dockerfile for tuner profile 'sleep'")
    )
    r = _run(tuner_cmd, sleep, "--to", "kserve", "--rate", "20000", "--out", str(tmp_path / "isvc.yaml"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deploy", "isvc.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["mlp", "--to", "kubernetes", "--rate", "100"], "no online: section — the autoscaler's replicas"),
        (
            ["mlp", "--to", "kubernetes", "--autoscaler", "keda", "--prometheus-url", "http://p:9090"],
            "no online: section — the autoscaler's replicas",
        ),
        (["mlp", "--to", "kserve", "--rate", "100"], "no online: section — the autoscaler's replicas"),
        (["sleep", "--to", "kubernetes", "--rate", "100"], "give --cpu-target PCT"),
        (
            ["sleep", "--to", "kubernetes", "--namespace", "Prod"],
            "--namespace 'Prod': not a Kubernetes namespace",
        ),
        (["sleep", "--to", "kubernetes", "--rate", "nan"], "--rate 'nan': not a finite number"),
        (["sleep", "--to", "kubernetes", "--node-cpus", "0"], "--node-cpus '0': out of range"),
        (
            ["sleep", "--to", "kubernetes", "--autoscaler", "vpa"],
            "--autoscaler 'vpa': choose from hpa, keda, none",
        ),
        (
            ["sleep", "--to", "kubernetes", "--prometheus-url", "prom:9090"],
            "--prometheus-url 'prom:9090': not an http(s) URL",
        ),
        (
            ["sleep", "--to", "kubernetes", "--image", "a b"],
            "--image 'a b': an image reference has no spaces",
        ),
        (["sleep", "--to", "kubernetes", "--cpu-target", "150"], "--cpu-target '150': out of range"),
        (["pyloop", "--to", "kubernetes", "--autoscaler", "none"], "give --server-memory-mb MB"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    tuner_cmd: list[str], tmp_path: Path, args: list[str], message: str
) -> None:
    out = tmp_path / "out" / "k.yaml"
    r = _run(tuner_cmd, str(PROFILES[args[0]]), *args[1:], "--out", str(out))
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("tuner: ") and message in r.stderr, r.stderr
    assert r.stdout == "" and not (tmp_path / "out").exists()
