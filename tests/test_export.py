"""`tuner export PROFILE --to ray-serve`: a Ray Serve config that Ray Serve's own schema accepts,
with each value traced to the measurement it came from. Writing needs no Ray; validating does."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tuner.export.ray_serve import render
from tuner.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted((REPO / "profiles").glob("*.yaml"))


def _serve_schema():  # type: ignore[no-untyped-def]
    schema = pytest.importorskip("ray.serve.schema", reason="validating needs the ray extra (ray[serve])")
    return schema.ServeDeploySchema


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_every_shipped_profile_exports_a_config_serve_accepts(path: Path) -> None:
    profile = load_profile(path)
    text = render(profile, import_path="mypkg.serve:app")
    config = _serve_schema().model_validate(yaml.safe_load(text))
    (app,) = config.applications
    assert app.import_path == "mypkg.serve:app" and app.args["model"] == profile.model.spec
    assert app.args["profile"].endswith(".yaml")  # tuner's own application loads the profile
    dep = app.deployments[0].model_dump(warnings=False)  # as Serve's schema read it
    assert len(app.deployments) == 1
    rec, auto = profile.recommended, profile.autoscale
    assert dep["ray_actor_options"]["num_cpus"] == rec.threads_per_worker
    assert dep["user_config"]["max_batch_size"] == rec.partition_size
    assert dep["user_config"]["batch_wait_timeout_s"] == pytest.approx(rec.max_batch_delay_ms / 1000)
    # two batches per replica, capped by what one replica serves within the p99 budget (Little's
    # law) where the profile has one (sleep.yaml's online objective), never below one batch
    budget = profile.objective.p99_budget_ms
    want = 2 * rec.partition_size
    if budget is not None:
        served = math.floor(profile.evidence.throughput / rec.workers * budget / 1000)
        want = min(want, max(rec.partition_size, served))
        if want < 2 * rec.partition_size:
            assert "within the p99 budget (Little's law)" in text
    assert dep["max_ongoing_requests"] == want
    if auto.min_workers == auto.max_workers:
        assert dep["num_replicas"] == rec.workers
    else:
        ac = dep["autoscaling_config"]
        assert (ac["min_replicas"], ac["max_replicas"]) == (auto.min_workers, auto.max_workers)
        assert ac["initial_replicas"] == rec.workers
        assert ac["target_ongoing_requests"] == rec.partition_size
        assert ac["upscale_delay_s"] == auto.upscale_delay_s
        assert ac["downscale_delay_s"] == auto.downscale_delay_s


def test_every_value_says_where_it_came_from() -> None:
    text = render(load_profile(REPO / "profiles" / "mlp.yaml"))
    values = [ln for ln in text.splitlines() if ":" in ln and not ln.lstrip().startswith("#")]
    for line in values:
        key, _, rest = line.strip().removeprefix("- ").partition(":")
        if rest.strip() and key not in ("name", "route_prefix"):
            assert "  # " in line, f"no source comment: {line}"
    assert "# recommended.partition_size, for @serve.batch" in text


def test_a_p99_budget_caps_max_ongoing_requests_by_littles_law() -> None:
    profile = load_profile(REPO / "profiles" / "mlp.yaml")
    rec = profile.recommended
    per_worker = profile.evidence.throughput / rec.workers
    budget = 1.5 * rec.partition_size / per_worker * 1000  # ms: room for 1.5 partitions per replica
    profile = profile.model_copy(
        update={"objective": profile.objective.model_copy(update={"p99_budget_ms": budget})}
    )
    text = render(profile)
    config = _serve_schema().model_validate(yaml.safe_load(text))
    dep = config.applications[0].deployments[0]
    assert dep.max_ongoing_requests == int(per_worker * budget / 1000)
    assert rec.partition_size <= dep.max_ongoing_requests < 2 * rec.partition_size
    assert "within the p99 budget (Little's law)" in text


def test_export_command_writes_the_file_atomically(tuner_cmd: list[str], tmp_path: Path) -> None:
    out = tmp_path / "deploy" / "serve.yaml"
    r = subprocess.run(
        [*tuner_cmd, "export", str(REPO / "profiles" / "sleep.yaml"), "--to", "ray-serve", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "written to" in r.stderr
    args = yaml.safe_load(out.read_text())["applications"][0]["args"]
    assert args["model"] == "builtin:sleep" and Path(args["profile"]).is_absolute()
    assert [p.name for p in out.parent.iterdir()] == ["serve.yaml"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to", "nomad"], "tuner: --to 'nomad': choose from ray-serve, kubernetes, kserve, dockerfile"),
        (
            ["--to", "ray-serve", "--import-path", "nocolon"],
            "tuner: --import-path 'nocolon': use MODULE:ATTR, e.g. app:app",
        ),
    ],
)
def test_bad_export_arguments_are_one_line(tuner_cmd: list[str], args: list[str], message: str) -> None:
    r = subprocess.run(
        [*tuner_cmd, "export", str(REPO / "profiles" / "mlp.yaml"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip() == message


def test_export_does_not_import_ray() -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from tuner.export.ray_serve import render\nfrom tuner.profile import load_profile\n"
        f"print(len(render(load_profile({str(REPO / 'profiles' / 'mlp.yaml')!r}))))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
