"""The runtime applies the batching settings and max_pending of a profile's online: section."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from runtime.helpers import host_info

from online.helpers import online, profile, write
from tuner.engine import events as ev
from tuner.hardware import Host
from tuner.profile import PlatformOverrides, RecommendedOverride, load_profile
from tuner.runtime import Runtime, settings_from_profile


def _profile_here(tmp_path: Path, this_host: Host, **kw: object) -> Path:
    p = profile(online(backend="thread", workers=1, max_batch_size=4, max_batch_delay_ms=50.0, max_pending=77),
                backend="thread", workers=1, partition_size=8, max_batch_delay_ms=5.0)  # fmt: skip
    p = p.model_copy(update={"host": host_info(this_host), **kw})
    return write(tmp_path / "p.yaml", p)


@pytest.fixture(scope="module")
def this_host() -> Host:
    from tuner.hardware import probe

    return probe()


def test_settings_come_from_the_online_section(tmp_path: Path, this_host: Host) -> None:
    path = _profile_here(tmp_path, this_host)
    s = settings_from_profile(load_profile(path))
    assert (s.max_batch_size, s.max_batch_delay_s, s.max_pending) == (4, 0.05, 77)
    assert s.partition_size == 8  # map keeps the closed-loop partition size
    assert "batches ≤4 within 50 ms" in s.describe()


def test_an_explicit_platform_override_still_wins(tmp_path: Path, this_host: Host) -> None:
    over = PlatformOverrides(linux=RecommendedOverride(max_batch_delay_ms=1.0), darwin=RecommendedOverride(max_pending=9),
                             windows=RecommendedOverride(max_pending=9))  # fmt: skip
    path = _profile_here(tmp_path, this_host, platforms=over)
    s = settings_from_profile(load_profile(path), platform="linux")
    assert (s.max_batch_delay_s, s.max_pending, s.max_batch_size) == (0.001, 77, 4)
    s = settings_from_profile(load_profile(path), platform="darwin")
    assert (s.max_batch_delay_s, s.max_pending) == (0.05, 9)


@pytest.mark.timeout(30)
def test_submit_batches_at_the_online_size_and_map_at_the_partition_size(
    tmp_path: Path, this_host: Host
) -> None:
    path = _profile_here(tmp_path, this_host)
    sizes: list[int] = []
    lock = threading.Lock()

    def seen(e: ev.Event) -> None:
        if isinstance(e, ev.PartitionSubmitted):
            with lock:
                sizes.append(e.items)

    with Runtime.from_profile(path, on_event=seen) as rt:
        assert rt.stats().max_pending == 77
        # 12 items at once: the batcher closes partitions at 4 items, well before its 50 ms delay.
        futures = [rt.submit(i) for i in range(12)]
        assert [f.result(timeout=10) for f in futures] == [2 * i for i in range(12)]
        with lock:
            online_sizes = list(sizes)
            sizes.clear()
        assert sum(online_sizes) == 12 and max(online_sizes) == 4
        assert list(rt.map(range(16))) == [2 * i for i in range(16)]
        with lock:
            assert sizes == [8, 8]
