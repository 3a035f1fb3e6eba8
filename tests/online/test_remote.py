"""tuner verify's arithmetic and verdict on recorded steps, and the HTTP client's request bodies (no server)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import numpy as np

from online.test_search import fake_step
from tuner.bench.online.http import encode_request, predict_url, server_address
from tuner.bench.online.remote import VerifyStep, _judge, predicted, verify_step_s
from tuner.profile import OnlineStep


def curve_step(rate: float, p50: float, p99: float) -> OnlineStep:
    return OnlineStep(
        rate=rate, offered=rate, achieved=rate, p50_ms=p50, p99_ms=p99, keeps_up=True, sustainable=True
    )


def test_the_prediction_is_read_off_the_profiles_curve_between_its_points() -> None:
    curve = [curve_step(100, 2, 10), curve_step(200, 4, 30)]
    assert predicted(curve, 150) == (3.0, 20.0)
    assert predicted(curve, 50) == (2, 10) and predicted(curve, 400) == (4, 30)  # the nearest end
    assert predicted([], 10) == (None, None)


def test_a_verify_step_holds_enough_requests_for_a_p99_with_a_ci() -> None:
    assert verify_step_s(1000, 2) == 5.0  # 2,000 requests take 2 s: the floor
    assert verify_step_s(100, 2) == 20.0
    assert verify_step_s(10, 2) == 30.0  # capped


def _step(
    share: float,
    rate: float,
    p99: float,
    ci: tuple[float, float],
    status: dict[str, int],
    outside: float = 0.0,
) -> VerifyStep:
    r = replace(
        fake_step(rate, rate), latency_ms={"p50": p99 / 2, "p99": p99}, latency_ci_ms={"p99": ci},
        sent=sum(status.values()), outside=outside,
    )  # fmt: skip
    return VerifyStep(share, rate, None, None, r, status)


def test_verdicts_hold_break_and_say_a_busy_host() -> None:
    ok = [_step(0.5, 50, 8, (7, 9), {"200": 1000}), _step(1.0, 100, 18, (16, 19), {"200": 2000})]
    assert _judge(ok, 100, 20, "in process", 0.25).kind == "holds"
    slow = [*ok[:1], _step(1.0, 100, 26, (22, 30), {"200": 2000})]
    v = _judge(slow, 100, 20, "in process", 0.25)
    assert v.kind == "does not hold" and "p99 26 ms (CI 22–30 ms) is above the objective 20 ms" in v.line
    # above the profile's max rate a p99 over the objective is expected, not a broken promise
    beyond = [*ok, _step(1.2, 120, 40, (35, 45), {"200": 2400})]
    assert _judge(beyond, 100, 20, "in process", 0.25).kind == "holds"
    errors = [_step(1.0, 100, 18, (16, 19), {"200": 1990, "500": 10})]
    v = _judge(errors, 100, 20, "in process", 0.25)
    assert v.kind == "does not hold" and "10 of 2000 requests failed (10 × 500)" in v.line
    busy = [_step(1.0, 100, 18, (16, 19), {"200": 2000}, outside=0.6)]
    v = _judge(busy, 100, 20, "in process", 0.25)
    assert v.kind == "inconclusive" and "host busy" in v.line
    # a miss on a busy host is what the load explains: inconclusive, saying what it saw
    v = _judge([_step(1.0, 100, 26, (22, 30), {"200": 2000}, outside=0.6)], 100, 20, "in process", 0.25)
    assert v.kind == "inconclusive" and "(what it saw: at 100/s p99 26 ms" in v.line
    assert v.to_json()["steps"][0]["status"] == {"200": 2000}


def test_requests_go_as_npy_rows_or_json() -> None:
    rows = [np.arange(4, dtype=np.float32) + i for i in range(3)]
    body, kind = encode_request(rows)
    assert kind == "application/x-npy"
    np.testing.assert_array_equal(np.load(io.BytesIO(body)), np.stack(rows))
    body, kind = encode_request([1, 2.5, np.float32(3)])
    assert kind == "application/json" and json.loads(body) == {"inputs": [1, 2.5, 3.0]}


def test_the_url_names_the_predict_endpoint_and_the_profile_never_a_credential() -> None:
    assert predict_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1/predict"
    assert predict_url("http://h:1/v1/predict/") == "http://h:1/v1/predict"
    assert server_address("http://user:secret@h.example:8443/x") == "h.example:8443"
