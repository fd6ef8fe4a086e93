"""The local traffic router: split, mirror, headers, errors and admin, on real loopback sockets
(router and stand-in upstreams are separate processes), plus the pure pieces in-process."""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import statistics
import time
import urllib.request
from typing import Any

import aiohttp
import pytest

from deployments.runtime.local import free_port
from deployments.runtime.router import (
    InvalidRoutes,
    PercentGate,
    Router,
    RouteTable,
    SmoothWeightedPicker,
)
from tests.runtime.conftest import http_get, http_json, wait_for


def test_smooth_weighted_picker_is_exact_over_every_window() -> None:
    picker = SmoothWeightedPicker({"1": 5, "2": 95})
    for _ in range(3):
        window = collections.Counter(picker.pick() for _ in range(100))
        assert window == {"1": 5, "2": 95}


def test_smooth_weighted_picker_interleaves_rather_than_bursts() -> None:
    picker = SmoothWeightedPicker({"1": 50, "2": 50})
    assert [picker.pick() for _ in range(6)] == ["1", "2", "1", "2", "1", "2"]


def test_picker_skips_zero_weights_and_returns_none_when_empty() -> None:
    assert {SmoothWeightedPicker({"1": 0, "2": 100}).pick() for _ in range(10)} == {"2"}
    assert SmoothWeightedPicker({}).pick() is None


def test_percent_gate_says_yes_to_exactly_that_share() -> None:
    gate = PercentGate(30)
    assert sum(gate() for _ in range(1000)) == 300
    assert not any(PercentGate(0)() for _ in range(100))


@pytest.mark.parametrize(
    "table",
    [
        [],
        {"weights": {"1": -5}},
        {"weights": {"1": "x"}},
        {"weights": {"1": 100}, "backends": {"1": "ftp://x"}},
        {"weights": {"1": 100}, "mirror": {"version": "2", "percent": 101}},
        {"weights": {"1": 100}, "mirror": {"percent": 10}},
    ],
)
def test_route_table_rejects_invalid_tables(table: Any) -> None:
    with pytest.raises(InvalidRoutes):
        RouteTable.from_json(table)


def test_admin_endpoints_refuse_non_loopback_clients() -> None:
    async def call() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        scope = {
            "type": "http",
            "path": "/-/routes",
            "method": "PUT",
            "client": ("10.1.2.3", 5555),
            "headers": [],
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"{}"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await Router()(scope, receive, send)
        return sent

    sent = asyncio.run(call())
    assert sent[0]["status"] == 403


def test_routes_can_be_read_and_replaced_over_loopback(router_process, standin) -> None:
    url = router_process()
    assert http_json(url + "/-/routes") == {"weights": {}, "mirror": None, "backends": {}}
    assert http_get(url + "/predict")[0] == 503  # nothing routed yet

    backend = standin("7")
    table = {"weights": {"7": 100}, "mirror": None, "backends": {"7": backend}}
    assert http_json(url + "/-/routes", "PUT", table) == table
    assert http_json(url + "/-/routes") == table
    req = urllib.request.Request(url + "/predict", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=2) as resp:
        assert resp.headers["X-Served-By-Version"] == "7"
        assert json.loads(resp.read())["version"] == "7"


def test_it_rejects_a_bad_table_and_keeps_the_old_one(router_process) -> None:
    table = {"weights": {"1": 100}, "mirror": None, "backends": {"1": "http://127.0.0.1:9"}}
    url = router_process(table)
    req = urllib.request.Request(url + "/-/routes", data=b'{"weights": {"1": -1}}', method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=2)
    assert err.value.code == 400
    assert http_json(url + "/-/routes") == table


def test_it_strips_hop_by_hop_headers_and_propagates_the_request_id(
    router_process, standin
) -> None:
    backend = standin("1")
    url = router_process({"weights": {"1": 100}, "backends": {"1": backend}})
    # http.client, not urllib: urllib replaces the Connection header with its own.
    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=2)
    headers = {
        "X-Request-ID": "req-123",
        "Connection": "keep-alive, X-Secret-Hop",
        "X-Secret-Hop": "must-not-pass",
        "Proxy-Authorization": "Basic c2VjcmV0",
        "X-Model-Tenant": "acme",
    }
    conn.request("POST", "/predict?x=1", body=b'{"a": 1}', headers=headers)
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.getheader("X-Request-ID") == "req-123"
    # The upstream sent "Connection: keep-alive, x-private-hop" and "X-Private-Hop": a proxy
    # must not pass either on.
    assert resp.getheader("X-Private-Hop") is None
    assert resp.getheader("X-Served-By-Version") == "1"
    seen = http_json(backend + "/-/hits")["last_headers"]
    assert seen["x-request-id"] == "req-123"
    assert seen["x-model-tenant"] == "acme"
    assert seen["x-forwarded-for"] == "127.0.0.1"
    assert "x-secret-hop" not in seen
    assert "proxy-authorization" not in seen
    assert seen["host"] == backend.removeprefix("http://")


def test_it_generates_a_request_id_when_the_caller_sent_none(router_process, standin) -> None:
    backend = standin("1")
    url = router_process({"weights": {"1": 100}, "backends": {"1": backend}})
    req = urllib.request.Request(url + "/predict", data=b"{}", method="POST")
    with urllib.request.urlopen(req, timeout=2) as resp:
        generated = resp.headers["X-Request-ID"]
    assert len(generated) == 32
    assert http_json(backend + "/-/hits")["last_headers"]["x-request-id"] == generated


def test_it_answers_502_when_the_upstream_refuses_connections(router_process) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    url = router_process({"weights": {"1": 100}, "backends": {"1": dead}})
    status, headers, _ = http_get(url + "/predict")
    assert status == 502
    assert headers["x-routed-to-version"] == "1"


def test_it_answers_504_when_the_upstream_is_too_slow(router_process, standin) -> None:
    backend = standin("1")
    url = router_process(
        {"weights": {"1": 100}, "backends": {"1": backend}}, "--upstream-timeout", "0.3"
    )
    started = time.monotonic()
    req = urllib.request.Request(url + "/predict?sleep_ms=2000", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    assert err.value.code == 504
    assert time.monotonic() - started < 1.5


def test_mirrored_copies_never_answer_the_caller_and_drops_are_counted(
    router_process, standin
) -> None:
    primary, shadow = standin("1"), standin("2")
    table = {
        "weights": {"1": 100},
        "mirror": {"version": "2", "percent": 100},
        "backends": {"1": primary, "2": shadow},
    }
    url = router_process(table, "--mirror-concurrency", "1")

    async def drive() -> list[tuple[str, str]]:
        async with aiohttp.ClientSession() as session:

            async def one() -> tuple[str, str]:
                # The slow query string is mirrored too: the shadow is slow, the primary is not
                # allowed to wait for it.
                async with session.post(url + "/predict?sleep_ms=300", data=b"{}") as resp:
                    return resp.headers["X-Served-By-Version"], (await resp.json())["version"]

            return await asyncio.gather(*(one() for _ in range(8)))

    answers = asyncio.run(drive())
    assert set(answers) == {("1", "1")}
    wait_for(lambda: http_json(shadow + "/-/hits")["mirrored"] >= 1, what="shadow hit")
    metrics = http_get(url + "/-/metrics")[2].decode()
    dropped = _metric(metrics, 'modelplane_router_mirror_dropped_total{version="2"}')
    assert dropped >= 1  # concurrency bound 1, eight concurrent requests
    assert http_json(shadow + "/-/hits")["mirrored"] + dropped == 8
    assert _metric(metrics, 'modelplane_router_requests_total{code="200",version="1"}') == 8


def test_keep_alive_requests_do_not_stall_on_delayed_acks(router_process, standin) -> None:
    """Nagle + delayed ACK shows up as ~40 ms per keep-alive request after the first."""
    backend = standin("1")
    url = router_process({"weights": {"1": 100}, "backends": {"1": backend}})

    async def drive() -> list[float]:
        latencies = []
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:
            for _ in range(60):
                started = time.perf_counter()
                async with session.post(url + "/predict", data=b'{"x": 1}') as resp:
                    await resp.read()
                latencies.append(time.perf_counter() - started)
        return latencies

    latencies = asyncio.run(drive())[10:]
    assert statistics.median(latencies) < 0.02


def _metric(text: str, sample: str) -> float:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0
