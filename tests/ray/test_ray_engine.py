"""The ray backend on a real 3-node cluster on loopback (tests/ray/conftest.py): the engine's
guarantees hold with actors as workers — outputs equal a local run, a killed actor or a lost node
costs one attempt and no item, resize under load, placement, and nothing left at the end."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.engine.helpers import spec
from tuner.engine import Engine, EngineConfig, Failure, FaultPlan, TargetedFault
from tuner.engine import events as ev

pytestmark = [pytest.mark.ray]
ray = pytest.importorskip("ray", reason="the ray extra is not installed")
REPO = Path(__file__).resolve().parents[2]


def wait_idle(timeout: float = 30.0) -> None:
    """Until every CPU of the cluster is free again: actors of the previous test are killed
    asynchronously, and placement decisions depend on what is free."""
    deadline = time.monotonic() + timeout
    while ray.available_resources().get("CPU", 0) < ray.cluster_resources().get("CPU", 0):
        assert time.monotonic() < deadline, (ray.available_resources(), ray.cluster_resources())
        time.sleep(0.05)


def run(model: Any, items: Any, size: int, events: list[Any] | None = None, **cfg: Any) -> list[Any]:
    with Engine(model, EngineConfig(**cfg), on_event=None if events is None else events.append) as eng:
        return list(eng.map(items, size))


@pytest.mark.timeout(120)
def test_outputs_equal_a_local_run(ray_cluster: Any) -> None:
    x = np.random.default_rng(0).standard_normal((600, 256)).astype(np.float32)
    local = run("builtin:mlp", x, 150, backend="thread", workers=1)
    wait_idle()
    events: list[Any] = []
    # 150 rows × 1 KiB: over Ray's 100 KiB inline limit, so partitions travel through the object store
    remote = run("builtin:mlp", x, 150, events, backend="ray", workers=3, threads_per_worker=1)
    assert len(remote) == len(local) == 600
    np.testing.assert_allclose(np.asarray(remote), np.asarray(local), rtol=1e-5, atol=1e-5)
    started = [e for e in events if isinstance(e, ev.WorkerStarted)]
    assert len(started) == 3
    assert len({e.node for e in started}) >= 2  # SPREAD (Ray's best effort) across the 3 nodes
    assert all(e.pid > 0 for e in started)


def started(events: list[Any]) -> list[ev.WorkerStarted]:
    return [e for e in events if isinstance(e, ev.WorkerStarted)]


def failed(events: list[Any], cause: str) -> list[ev.PartitionFailed]:
    return [e for e in events if isinstance(e, ev.PartitionFailed) and e.cause == cause]


@pytest.mark.timeout(90)
def test_placement_pack_fills_a_node_before_the_next(ray_cluster: Any) -> None:
    wait_idle()
    events: list[Any] = []
    out = run(spec("identity"), list(range(60)), 5, events, backend="ray", workers=3, placement="PACK")
    assert out == list(range(60))
    nodes = [e.node for e in started(events)]
    # head (1 CPU) holds one actor, the next node (2 CPUs) the other two
    assert len(set(nodes)) == 2 and sorted(nodes.count(n) for n in set(nodes)) == [1, 2]


@pytest.mark.timeout(90)
def test_an_actor_killed_from_outside_costs_one_attempt_and_no_item(ray_cluster: Any) -> None:
    events: list[Any] = []
    victim: list[int] = []

    def listen(e: Any) -> None:
        events.append(e)
        if isinstance(e, ev.PartitionFinished) and not victim:
            pid = next(s.pid for s in started(events) if s.worker != e.worker)
            victim.append(pid)
            os.kill(pid, signal.SIGKILL)  # a real death, from outside Ray

    items = list(range(300))
    with Engine(spec("slow"), EngineConfig(backend="ray", workers=3), on_event=listen) as eng:
        out = list(eng.map(items, 10))
    assert out == items  # every item once, in order
    crashes = failed(events, "crash")
    assert len(crashes) == 1 and crashes[0].retry == "retry" and not crashes[0].injected
    assert "actor died" in crashes[0].message
    exited = [e for e in events if isinstance(e, ev.WorkerExited) and e.cause == "crash"]
    assert [e.pid for e in exited] == victim
    replacement = [s for s in started(events) if s.replacing is not None]
    assert len(replacement) == 1 and replacement[0].replacing == exited[0].worker


@pytest.mark.timeout(90)
def test_injected_crash_timeout_and_memory_are_retried_elsewhere(ray_cluster: Any) -> None:
    plan = FaultPlan(
        targeted=(
            TargetedFault(13, "crash", attempt=1),
            TargetedFault(57, "hang", attempt=1),
            TargetedFault(101, "memory", attempt=1),
        ),
        memory_mb=600,
    )
    events: list[Any] = []
    items = list(range(160))
    out = run(
        spec("identity"),
        items,
        8,
        events,
        backend="ray",
        workers=2,
        faults=plan,
        timeout_s=2.0,
        memory_limit_mb=450,
    )
    assert out == items
    for cause in ("crash", "timeout", "memory"):
        f = failed(events, cause)
        assert len(f) == 1 and f[0].injected and f[0].retry == "retry", (cause, f)
    causes = sorted(e.cause for e in events if isinstance(e, ev.WorkerExited) and e.cause != "closed")
    assert causes == ["crash", "memory", "timeout"]


@pytest.mark.timeout(60)
def test_a_poison_item_fails_alone(ray_cluster: Any) -> None:
    out = run(spec("raise_on_13"), list(range(40)), 8, backend="ray", workers=2, retries=0)
    assert isinstance(out[13], Failure) and out[13].cause == "exception"
    assert "item 13 is poison" in out[13].message and "ValueError" in (out[13].exc_type or "")
    assert [x for i, x in enumerate(out) if i != 13] == [i for i in range(40) if i != 13]


@pytest.mark.timeout(60)
def test_a_model_that_does_not_load_is_one_line(ray_cluster: Any) -> None:
    from tuner.errors import ModelSpecError

    with pytest.raises(ModelSpecError) as e:
        Engine(spec("broken_factory"), EngineConfig(backend="ray", workers=1)).start()
    assert "\n" not in str(e.value)


@pytest.mark.timeout(30)
def test_more_cpus_than_the_cluster_has_is_refused(ray_cluster: Any) -> None:
    from tuner.errors import ConfigError

    with pytest.raises(ConfigError, match=r"12 actors × 1 CPUs need 12 CPUs; the Ray cluster has 5"):
        Engine("builtin:sleep", EngineConfig(backend="ray", workers=12)).start()
    with pytest.raises(ConfigError, match=r"no node of the Ray cluster has them \(largest: 2 CPUs\)"):
        Engine("builtin:sleep", EngineConfig(backend="ray", workers=1, threads_per_worker=3)).start()


@pytest.mark.timeout(90)
def test_resize_under_load_loses_and_duplicates_nothing(ray_cluster: Any) -> None:
    events: list[Any] = []
    items = list(range(400))
    with Engine(spec("slow"), EngineConfig(backend="ray", workers=1), on_event=events.append) as eng:
        it = eng.map(items, 5)
        out = [next(it) for _ in range(50)]
        eng.resize(3)
        out += [next(it) for _ in range(150)]
        n_live = eng.stats()["live_workers"]
        eng.resize(1)
        out += list(it)
    assert out == items
    assert n_live == 3
    assert len(started(events)) == 3
    retired = [e for e in events if isinstance(e, ev.WorkerExited) and e.cause == "retired"]
    assert len(retired) == 2


def ray_profile(tmp_path: Path, cluster: dict[str, Any], **rec: Any) -> Path:
    """profiles/sleep.yaml turned into a ray profile with this cluster section."""
    data = yaml.safe_load((REPO / "profiles" / "sleep.yaml").read_text())
    data["recommended"].update(
        {"backend": "ray", "workers": 2, "threads_per_worker": 1, "partition_size": 8, **rec}
    )
    data["autoscale"].update(
        {"min_workers": 1, "max_workers": 3, "upscale_delay_s": 0.05, "interval_s": 0.05}
    )
    data.pop("platforms", None)
    data["cluster"] = cluster
    path = tmp_path / "ray.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def this_cluster() -> dict[str, Any]:
    from tuner.cluster import describe

    info = describe(ray, "auto")
    return {
        "address": "auto",
        "ray_version": info.ray_version,
        "nodes": len(info.nodes),
        "total_cpus": info.total_cpus,
        "node_shapes": info.shapes(),
        "actor": {"num_cpus": 1.0},
    }


@pytest.mark.timeout(90)
def test_runtime_from_a_ray_profile_runs_on_the_cluster_and_autoscales_actors(
    ray_cluster: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tuner.runtime import Runtime

    path = ray_profile(tmp_path, this_cluster(), placement="PACK")
    events: list[Any] = []
    with caplog.at_level("WARNING", logger="tuner"):
        rt = Runtime.from_profile(path, on_event=events.append)
    assert not [r for r in caplog.records if "another cluster" in r.message]  # same cluster: no warning
    items = list(range(3000))
    with rt:
        out = list(rt.map(items))
        decisions = rt.scaling_decisions
    assert out == [2 * x for x in items]  # builtin:sleep doubles its items
    assert any(d.new > d.old for d in decisions), decisions  # the autoscaler added actors
    assert len({e.node for e in started(events)}) >= 1 and all(e.node for e in started(events))
    assert ray.is_initialized()  # the runtime used this process's connection and left it open


@pytest.mark.timeout(60)
def test_cluster_check_warns_and_adapts_or_refuses_when_strict(
    ray_cluster: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tuner.errors import ProfileError
    from tuner.runtime import Runtime

    measured = {**this_cluster(), "nodes": 6, "total_cpus": 12.0, "node_shapes": ["2 CPUs"] * 6}
    path = ray_profile(tmp_path, measured, workers=3, threads_per_worker=4)
    with pytest.raises(
        ProfileError, match=r"measured on another cluster \(6 nodes measured, 3 now; 12 CPUs measured, 5 now"
    ):
        Runtime.from_profile(path, strict=True)
    with caplog.at_level("WARNING", logger="tuner"):
        rt = Runtime.from_profile(path)
    (line,) = [r.message for r in caplog.records if "another cluster" in r.message]
    assert "node shapes 2 CPUs ×6 measured, 1 CPU, 2 CPUs ×2 now" in line
    assert "threads 4→2 (largest node), workers 3→2" in line
    assert (rt.settings.threads_per_worker, rt.settings.workers) == (2, 2)
    with rt:
        assert list(rt.map(list(range(50)))) == [2 * x for x in range(50)]


@pytest.mark.timeout(60)
def test_a_straggler_is_hedged_on_another_actor_and_its_loser_killed(ray_cluster: Any) -> None:
    from tests.engine.test_hedging import PARTS, SERVICE_S, SIZE, _plan_with_one_straggler, _run

    plan, straggler = _plan_with_one_straggler()
    seen: list[Any] = []
    cfg = EngineConfig(
        backend="ray",
        workers=3,
        partition_size=SIZE,
        faults=plan,
        hedge_after_s=1.5 * SERVICE_S,
        hedge_cancel="kill",
    )
    outputs, engine = _run(cfg, seen)
    assert outputs == [list(range(i * SIZE, (i + 1) * SIZE)) for i in range(PARTS)]
    pid = [e.partition for e in seen if isinstance(e, ev.PartitionSubmitted)][straggler]
    settled = {e.partition: e for e in seen if isinstance(e, ev.HedgeSettled)}
    assert settled[pid].hedge_won and settled[pid].killed
    assert engine.stats()["hedge_losers_killed"] >= 1
    exits = [e for e in seen if isinstance(e, ev.WorkerExited) and e.cause == "hedged"]
    assert settled[pid].loser in {e.worker for e in exits}
    assert not [e for e in seen if isinstance(e, ev.PartitionFailed)]


@pytest.mark.timeout(120)
def test_a_node_lost_mid_run_loses_no_item(ray_cluster: Any) -> None:
    """Runs last in this module: it removes a node for good."""
    wait_idle()
    events: list[Any] = []
    removed = threading.Event()

    def listen(e: Any) -> None:
        events.append(e)
        if isinstance(e, ev.PartitionFinished) and not removed.is_set():
            removed.set()

    items = list(range(300))
    with Engine(spec("slow"), EngineConfig(backend="ray", workers=3), on_event=listen) as eng:
        # SPREAD is Ray's best effort: remove a worker node that holds at least one of the actors
        node = next(n for n in ray_cluster.extra_nodes if any(s.node == n.node_id for s in started(events)))
        on_node = sorted(s.worker for s in started(events) if s.node == node.node_id)
        elsewhere = {s.worker for s in started(events) if s.node != node.node_id}
        it = eng.map(items, 5)
        out = [next(it)]
        assert removed.wait(30)
        ray_cluster.remove_node(node, allow_graceful=False)
        out += list(it)
        # the lost actors' replacements come up on the nodes left (3 CPUs for 3 actors)
        deadline = time.monotonic() + 30
        while eng.stats()["live_workers"] < 3:
            assert time.monotonic() < deadline, eng.stats()
            time.sleep(0.05)
    assert out == items
    lost = {e.worker for e in events if isinstance(e, ev.WorkerExited) and e.cause == "crash"}
    # every actor on the node is lost, none elsewhere (a replacement Ray placed on the dying node
    # before it was declared dead is lost too, and replaced again)
    assert set(on_node) <= lost and not lost & elsewhere
    assert 1 <= len(failed(events, "crash")) <= len(lost)  # one attempt per partition running there


@pytest.mark.timeout(180)
def test_the_exported_serve_config_deploys_tuners_own_application(ray_cluster: Any, tmp_path: Path) -> None:
    """`tuner export --to ray-serve` names tuner.export.ray_app:app: that application, built from the
    exported args and deployed with the exported deployment options, answers with the model's outputs."""
    serve = pytest.importorskip("ray.serve", reason="ray[serve] is not installed")
    from tuner.export.ray_app import ProfiledModel, app
    from tuner.export.ray_serve import render
    from tuner.models import input_generator, load_model
    from tuner.profile import load_profile

    path = REPO / "profiles" / "mlp.yaml"
    config = yaml.safe_load(render(load_profile(path), source=str(path)))
    (application,) = config["applications"]
    assert application["import_path"] == "tuner.export.ray_app:app"
    dep = application["deployments"][0]
    options = {k: dep[k] for k in ("user_config", "ray_actor_options", "max_ongoing_requests") if k in dep}
    options["num_replicas"] = 1  # the test cluster is small; the replica count is Serve's, not the app's
    wait_idle()
    serve.start(proxy_location="Disabled")
    try:
        assert isinstance(app(application["args"]), serve.Application)  # the builder the config names
        args = application["args"]
        bound = ProfiledModel.options(**options).bind(args["profile"], bool(args.get("allow_pickle", False)))
        handle = serve.run(bound, name="tuner-mlp", route_prefix=None)
        items = input_generator("builtin:mlp")(6, 1)
        got = [handle.predict.remote(x).result(timeout_s=60) for x in items]
        want = load_model("builtin:mlp")(items)
        assert np.allclose(np.stack(got), np.asarray(want), atol=1e-5)
    finally:
        serve.shutdown()
    wait_idle()
