"""Every endpoint of a real ``tuner serve``, over HTTP: the wire format, 400s and 413s, 500s with every
outcome, and the stop line's counts."""

from __future__ import annotations

import hashlib
import io
import json
import signal
from pathlib import Path

import numpy as np
import pytest

from tuner.errors import DataError
from tuner.models.builtin import mlp
from tuner.models.signature import check_input
from tuner.profile import load_profile

from .helpers import Server


def _expected_message(profile: Path, arr: np.ndarray) -> str:
    """The line `tuner run` gives for these items, its command-line hint aside, where the server
    says "request"."""
    with pytest.raises(DataError) as info:
        check_input(load_profile(profile), arr, "request")
    return str(info.value)


@pytest.mark.timeout(90)
def test_every_endpoint_answers_in_the_wire_format(mlp_profile: Path) -> None:
    rows = np.random.default_rng(1).standard_normal((5, 256), dtype=np.float32)
    expected = mlp()(rows)
    with Server(mlp_profile) as server:
        server.wait_ready()
        health = server.get("/healthz")
        assert (
            health.status == 200 and health.json()["status"] == "alive" and health.json()["state"] == "ready"
        )
        ready = server.get("/readyz")
        assert (ready.status, ready.json()) == (200, {"ready": True, "state": "ready"})

        doc = server.get("/v1/profile").json()
        assert doc["profile"]["sha256"] == hashlib.sha256(mlp_profile.read_bytes()).hexdigest()
        assert doc["recommended"]["partition_size"] == 64 and doc["recommended"]["workers"] == 2
        assert doc["model"] == {"spec": "builtin:mlp", "item": "float32[256]", "outputs": None}
        assert doc["host_check"] == "host as measured"
        assert "PATH" not in json.dumps(doc) and "environ" not in json.dumps(doc)

        many = server.post_json({"inputs": rows.tolist()})
        assert many.status == 200 and many.headers["content-type"] == "application/json", many
        assert np.allclose(many.json()["outputs"], expected, rtol=1e-5, atol=1e-6)

        one = server.post_json({"input": rows[2].tolist()})
        assert one.status == 200 and set(one.json()) == {"output"}, one
        assert np.allclose(one.json()["output"], expected[2], rtol=1e-5, atol=1e-6)

        ints = server.post_json({"input": [1] * 256})  # integers cast to float32: exact
        assert ints.status == 200 and np.allclose(
            ints.json()["output"], mlp()(np.ones((1, 256), np.float32))[0]
        )

        npy = server.post_npy(rows)
        assert npy.status == 200 and npy.headers["content-type"] == "application/x-npy", npy
        got = npy.array()
        assert (
            got.dtype == np.float32
            and got.shape == (5, 10)
            and np.allclose(got, expected, rtol=1e-5, atol=1e-6)
        )

        assert server.get("/nowhere").status == 404
        wrong_method = server.get("/v1/predict")
        assert wrong_method.status == 405 and "POST" in wrong_method.headers["allow"]
        assert server.stop() == 0
    stop = server.wait_line(r"^tuner: stopped", 1)
    assert "4 requests served · 0 failed · 0 rejected · 0 bad" in stop, stop
    server.assert_nothing_left()


@pytest.mark.timeout(90)
def test_bad_requests_are_400_or_413_with_one_line_and_failed_items_a_500(int_profile: Path) -> None:
    with Server(int_profile, "--max-body-mb", "0.01") as server:
        server.wait_ready()

        def refused(body: bytes, content_type: str | None = "application/json", status: int = 400) -> str:
            r = server.post(body, content_type)
            assert r.status == status and r.headers["content-type"] == "application/json", r
            message = r.json()["error"]
            assert "\n" not in message and "Traceback" not in message
            return str(message)

        assert refused(b'{"inputs": [1, 2') == "malformed JSON at line 1 column 17: Expecting ',' delimiter"
        assert refused(b"").startswith("empty body: send ")
        assert refused(b'{"inputs": [1, "\xff"]}').startswith("the body is not UTF-8 text")
        assert refused(b'{"inputs": [1]}', "text/plain").startswith("Content-Type text/plain: send ")
        assert refused(b'{"inputs": [1]}', None).startswith("no Content-Type: send ")
        assert refused(b'{"items": [1]}').startswith('expected {"inputs": [item, ...]} or {"input": item}')
        assert refused(b'{"inputs": []}') == '"inputs" is empty: send at least one item'
        # the item's shape and kind of value: tuner run's line for the same items
        assert refused(b'{"inputs": [[1, 2], [3, 4]]}') == _expected_message(
            int_profile, np.array([[1, 2], [3, 4]])
        )
        assert refused(b'{"inputs": [1, 1.5]}') == _expected_message(int_profile, np.array([1, 1.5]))
        assert "(bool values, not integer)" in refused(b'{"inputs": [1, true]}')
        assert refused(b'{"inputs": [1, 2e30]}').startswith("request: a value is out of range for int64")
        assert refused(b'{"inputs": [1, 1180591620717411303424]}').startswith(
            "request: items hold values that"
        )
        buf = io.BytesIO()
        np.save(buf, np.arange(3, dtype=np.float32))
        assert refused(buf.getvalue(), "application/x-npy") == _expected_message(
            int_profile, np.arange(3, dtype=np.float32)
        )
        assert refused(b"not an array", "application/x-npy").startswith("not a .npy array: ")
        # too large: the body, and more items than max_pending (64) can ever hold
        assert "more than the 0.01 MB this server takes" in refused(b"[" + b"1, " * 5000 + b"1]", status=413)
        assert "65 items in one request is more than max_pending 64" in refused(
            json.dumps({"inputs": [1] * 65}).encode(), status=413
        )

        exact = server.post_json({"inputs": [1, 2.0, 3]})  # 2.0 is an integer: cast
        assert (exact.status, exact.json()) == (200, {"outputs": [2, 4, 6]})
        failed = server.post_json({"inputs": [1, -2, 3]})
        assert failed.status == 500, failed
        body = failed.json()
        assert body["outputs"] == [2, None, 6] and len(body["failures"]) == 1, body
        record = body["failures"][0]
        attempts = record.pop("attempts")  # the engine's count (the partition split to find the item)
        assert isinstance(attempts, int) and attempts >= 1
        assert record == {"index": 1, "cause": "exception", "message": "ValueError: negative item -2",
                          "exc_type": "ValueError"}  # fmt: skip
        single = server.post_json({"input": -5})
        assert (
            single.status == 500
            and single.json()["output"] is None
            and single.json()["failures"][0]["index"] == 0
        )
        assert b"Traceback" not in failed.body + single.body
        assert server.stop(signal.SIGTERM) == 0
    stop = server.wait_line(r"^tuner: stopped", 1)
    assert "1 request served · 2 failed · 0 rejected · 16 bad" in stop, stop
    server.assert_nothing_left()


@pytest.mark.timeout(90)
def test_metrics_are_scraped_in_prometheus_text_and_count_what_was_sent(mlp_profile: Path) -> None:
    """GET /metrics parsed with prometheus_client's own parser: requests by outcome, items, the promise."""
    parser = pytest.importorskip("prometheus_client.parser")
    rows = np.random.default_rng(2).standard_normal((3, 256), dtype=np.float32)
    with Server(mlp_profile) as server:
        server.wait_ready()
        for _ in range(4):
            assert server.post_json({"inputs": rows.tolist()}).status == 200
        assert server.post_json({"inputs": [[1.0, 2.0]]}).status == 400
        reply = server.get("/metrics")
        assert reply.status == 200 and reply.headers["content-type"].startswith("text/plain"), reply
        got = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in parser.text_string_to_metric_families(reply.body.decode())
            for s in family.samples
        }
        assert server.stop() == 0
    assert got[("tuner_requests_total", (("outcome", "ok"),))] == 4
    assert got[("tuner_requests_total", (("outcome", "bad"),))] == 1
    assert got[("tuner_requests_total", (("outcome", "rejected"),))] == 0
    assert got[("tuner_items_total", (("outcome", "ok"),))] == 12  # 4 requests of 3 rows; warm-up not counted
    assert got[("tuner_item_latency_seconds_count", ())] == 12
    assert got[("tuner_ready", ())] == 1 and got[("tuner_requests_in_flight", ())] == 0
    assert got[("tuner_workers", ())] == 2 == got[("tuner_workers_target", ())]
    assert ("tuner_profile_throughput_items_per_second", (("bound", "point"),)) in got
    server.assert_nothing_left()
