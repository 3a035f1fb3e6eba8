"""The runtime's Prometheus figures: parsed with prometheus_client's own text parser and checked
against ``stats()``; the profile's promise beside them; one line without the extra."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tuner.errors import BadInput
from tuner.runtime import Runtime
from tuner.runtime.metrics import registry_for

from .helpers import host_info, model_spec, write_profile

prometheus_client = pytest.importorskip("prometheus_client")


def scrape(rt: Runtime) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) → value, from the text exposition as Prometheus reads it."""
    from prometheus_client.parser import text_string_to_metric_families

    text = prometheus_client.generate_latest(registry_for(rt)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.timeout(60)
def test_the_scraped_figures_are_the_runtimes_stats() -> None:
    items = [1, 2, -3, 4, 5, -6, 7, 8] * 25
    with Runtime(model_spec("double_or_fail"), backend="thread", workers=2, partition_size=8) as rt:
        list(rt.map(items, on_failure="yield"))
        got, s = scrape(rt), rt.stats()
    assert s.items_done == 200 and s.items_failed == 50
    assert got[("tuner_items_total", (("outcome", "ok"),))] == s.items_done - s.items_failed == 150
    assert got[("tuner_items_total", (("outcome", "failed"),))] == s.items_failed
    assert got[("tuner_item_failures_total", (("cause", "exception"),))] == s.failures["exception"]
    assert got[("tuner_items_total", (("outcome", "rejected"),))] == s.rejected == 0
    assert got[("tuner_items_in_flight", ())] == s.pending and got[("tuner_max_pending", ())] == s.max_pending
    assert got[("tuner_workers", ())] == s.live_workers and got[("tuner_workers_target", ())] == s.workers
    assert got[("tuner_retries_total", ())] == s.retries
    lat = got[("tuner_item_latency_seconds_count", ())]
    assert lat == s.items_done, "every item's latency is in the histogram"
    assert got[("tuner_item_latency_seconds_bucket", (("le", "+Inf"),))] == lat
    assert got[("tuner_partition_service_seconds_count", ())] > 0
    assert ("tuner_profile_drift", (("dimension", "service_time"),)) not in got  # no profile: no promise


@pytest.mark.timeout(60)
def test_the_profiles_promise_is_exposed_beside_reality(tmp_path: Path, this_host: Any) -> None:
    from tuner.profile import load_profile, save_profile
    from tuner.profile.evidence import Percentiles

    path = write_profile(tmp_path / "p.yaml", host_info(this_host), spec=model_spec("slow_double"))
    p = load_profile(path)
    ev = p.evidence.model_copy(update={"throughput_ci": (900.0, 1100.0), "cold_start_s": 0.4,
                                       "latency_ms": Percentiles(p50=6.0, p99=9.0)})  # fmt: skip
    save_profile(p.model_copy(update={"evidence": ev}), path)
    with Runtime.from_profile(path) as rt:
        list(rt.map([1] * 40))
        got = scrape(rt)
    assert got[("tuner_profile_throughput_items_per_second", (("bound", "point"),))] == 1000.0
    assert got[("tuner_profile_throughput_items_per_second", (("bound", "low"),))] == 900.0
    assert got[("tuner_profile_throughput_items_per_second", (("bound", "high"),))] == 1100.0
    assert got[("tuner_cold_start_seconds", ())] == 0.4
    assert {got[("tuner_profile_drift", (("dimension", d),))] for d in ("service_time", "p99", "host")} == {
        0.0
    }
    # The latency buckets have resolution where the profile's p50 and p99 are (6 and 9 ms).
    bounds = sorted(float(dict(k[1])["le"]) for k in got if k[0] == "tuner_item_latency_seconds_bucket")
    near = [b for b in bounds if 0.005 <= b <= 0.011]
    assert len(near) >= 4, bounds


def test_without_prometheus_client_it_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    rt = Runtime("builtin:sleep", backend="inline")
    with pytest.raises(BadInput) as info:
        registry_for(rt)
    assert str(info.value) == "metrics need prometheus_client: pip install 'tuner[metrics]'"
