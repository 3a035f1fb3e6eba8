"""Arrival schedules: the intended send times every latency is measured from."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tuner.bench.online.schedule import RequestSize, load_trace, make_schedule, parse_request_size
from tuner.errors import BadInput, DataError


def test_constant_schedule_is_evenly_spaced_at_the_rate() -> None:
    s = make_schedule("constant", 2000, 2.0)
    assert len(s) == 4000 and s.rate == 2000
    gaps = np.diff(s.offsets)
    assert np.allclose(gaps, 1 / 2000)
    assert s.offsets[0] == 0 and s.offsets[-1] < 2.0


def test_poisson_schedule_has_the_rate_and_exponential_gaps_and_is_seeded() -> None:
    s = make_schedule("poisson", 1000, 20.0, seed=3)
    assert abs(s.rate - 1000) / 1000 < 0.03  # 20 000 arrivals: sd of the count is 0.7%
    gaps = np.diff(s.offsets)
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05  # exponential gaps: coefficient of variation 1
    assert np.array_equal(s.offsets, make_schedule("poisson", 1000, 20.0, seed=3).offsets)
    assert not np.array_equal(s.offsets, make_schedule("poisson", 1000, 20.0, seed=4).offsets)
    assert (s.offsets < 20.0).all()


def test_request_sizes_are_drawn_in_range() -> None:
    s = make_schedule("constant", 500, 4.0, size=RequestSize(1, 8), seed=1)
    assert s.sizes.min() == 1 and s.sizes.max() == 8
    assert abs(s.sizes.mean() - 4.5) < 0.2
    assert s.items == int(s.sizes.sum())


def test_a_trace_is_replayed_scaled_to_the_rate_and_looped(tmp_path: Path) -> None:
    # A bursty trace: 4 requests in 10 ms, then 90 ms of nothing; sizes given.
    lines = ["# t size"]
    for k in range(3):
        base = 100.0 + k * 0.1
        lines += [f"{base + d:.3f} {n}" for d, n in ((0, 1), (0.003, 2), (0.006, 3), (0.009, 4))]
    path = tmp_path / "trace.txt"
    path.write_text("\n".join(lines) + "\n")
    trace = load_trace(path)
    assert trace.offsets[0] == 0 and trace.sizes is not None
    s = make_schedule(trace, rate=trace.rate * 2, duration_s=1.0)
    # Twice the recorded rate: every gap halved, the pattern kept and repeated over the second.
    assert np.isclose(s.offsets[1] - s.offsets[0], 0.0015)
    assert abs(s.rate - trace.rate * 2) / (trace.rate * 2) < 0.1
    assert list(s.sizes[:4]) == [1, 2, 3, 4] and set(s.sizes) == {1, 2, 3, 4}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.0\n0.5\n", "line 2: timestamp 0.5 is earlier"),
        ("1.0\nabc\n", "line 2: timestamp 'abc' is not a number"),
        ("1.0 2\n2.0\n", "line 2: a size on some lines only"),
        ("1.0 0\n2.0 1\n", "line 1: size 0 is not >= 1"),
        ("1.0\n", "at least 2 timestamps"),
        ("1.0\nnan\n", "line 2: timestamp 'nan' is not a finite number"),
    ],
)
def test_a_bad_trace_is_one_line_naming_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as e:
        load_trace(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_request_size_argument() -> None:
    assert parse_request_size("--request-size", "3") == RequestSize(3, 3)
    assert parse_request_size("--request-size", "1-8") == RequestSize(1, 8)
    for bad in ("0", "8-1", "x", "", "1-x"):
        with pytest.raises(BadInput, match="--request-size"):
            parse_request_size("--request-size", bad)
