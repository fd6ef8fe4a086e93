"""The review outbox and its sender: bounded and counted, on disk across reopen and restart,
retried with backoff against a real HTTP server on loopback, and never in the way of a request.

`ReviewReceiver` (a stand-in for the control plane's `POST /api/v1/reviews/`, stdlib only) is
also used by test_review_serving.py."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from serving.metrics import ReviewMetrics
from serving.outbox import Outbox, OutboxUnavailable, Sender, classify
from tests.serving.conftest import free_port

TOKEN = "mp_test_write_token"


class ReviewReceiver:
    """A loopback HTTP server that plays the review API: it answers the statuses queued in
    `script` first (then 201 for a new ref, 200 for one it already has: idempotent like the real
    API) and records every delivery it accepted."""

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.script: list[int | Callable[[], int]] = []
        self.requests = 0
        self.accepted: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.delay = 0.0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/reviews/"

    def start(self) -> ReviewReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if receiver.delay:
                    time.sleep(receiver.delay)
                with receiver._lock:
                    receiver.requests += 1
                    status = receiver.script.pop(0) if receiver.script else None
                    if callable(status):
                        status = status()
                    item = json.loads(body)
                    if status is None:
                        known = {i["ref"] for i in receiver.accepted}
                        status = 200 if item["ref"] in known else 201
                        if status == 201:
                            receiver.accepted.append(item)
                            receiver.headers.append(dict(self.headers))
                answer = {"ref": item.get("ref"), "status": "pending"}
                if 400 <= status < 500:
                    answer = {
                        "title": "Validation failed",
                        "errors": [
                            {"field": "deployment", "reason": "has no review policy"},
                            {"field": "input_summary.radius_mean", "reason": "SECRET-17.3"},
                        ],
                    }
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                if status in (429, 503):
                    self.send_header("retry-after", "0")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def refs(self) -> Counter[str]:
        with self._lock:
            return Counter(item["ref"] for item in self.accepted)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.accepted) >= count:
                    return list(self.accepted)
            time.sleep(0.02)
        raise AssertionError(f"received {len(self.accepted)} of {count} items in {timeout}s")


@pytest.fixture
def receiver() -> Iterator[ReviewReceiver]:
    server = ReviewReceiver().start()
    yield server
    server.stop()


def _metrics() -> tuple[ReviewMetrics, Callable[..., float]]:
    registry = CollectorRegistry()
    metrics = ReviewMetrics(model="m", version="1", registry=registry)

    def value(name: str, **labels: str) -> float:
        return registry.get_sample_value(name, {"model": "m", "version": "1", **labels}) or 0.0

    return metrics, value


def _item(ref: str, **extra: Any) -> tuple[str, bytes]:
    body = {"ref": ref, "input_summary": {"radius_mean": 17.3}, **extra}
    return ref, json.dumps(body).encode()


def _sender(outbox: Outbox, url: str, metrics: ReviewMetrics, log: Any = None) -> Sender:
    return Sender(
        outbox,
        url,
        token=TOKEN,
        timeout=2.0,
        backoff=0.02,
        backoff_max=0.1,
        observer=metrics,
        log=log,
    )


class RecordingLog:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Callable[..., None]:
        def emit(event: str, **fields: Any) -> None:
            self.events.append((level, event, fields))

        return emit

    def text(self) -> str:
        return json.dumps(self.events, default=str)


# ------------------------------------------------------------------ the file


def test_it_is_bounded_and_counts_what_it_drops(tmp_path: Path):
    metrics, value = _metrics()
    outbox = Outbox(tmp_path, max_items=3, observer=metrics)
    assert outbox.append([_item("rv_a"), _item("rv_b")]) is None
    # A batch that would pass the bound is refused whole: never half a request's rows.
    assert outbox.append([_item("rv_c"), _item("rv_d")]) == "full"
    assert outbox.append([_item("rv_c")]) is None
    assert outbox.append([_item("rv_e")]) == "full"
    assert outbox.depth == 3
    assert value("modelplane_review_outbox_queued_total") == 3
    assert value("modelplane_review_outbox_dropped_total", reason="full") == 3
    assert value("modelplane_review_outbox_depth") == 3
    assert [outbox.peek().ref] == ["rv_a"]  # type: ignore[union-attr]
    outbox.close()


def test_items_survive_a_reopen_in_order(tmp_path: Path):
    first = Outbox(tmp_path, max_items=100)
    first.append([_item(f"rv_{i:02d}") for i in range(5)])
    first.close()

    metrics, value = _metrics()
    again = Outbox(tmp_path, max_items=100, observer=metrics)
    assert again.slot == first.slot and again.depth == 5
    assert value("modelplane_review_outbox_depth") == 5
    seen = []
    while (item := again.peek()) is not None:
        seen.append(item.ref)
        assert json.loads(item.body)["ref"] == item.ref
        again.remove(item)
    assert seen == [f"rv_{i:02d}" for i in range(5)]
    assert again.depth == 0 and value("modelplane_review_outbox_depth") == 0
    again.close()


def test_processes_take_separate_slots_and_orphans_are_adopted(tmp_path: Path):
    one = Outbox(tmp_path, max_items=100)
    two = Outbox(tmp_path, max_items=100)
    assert {one.slot, two.slot} == {0, 1}
    one.append([_item("rv_one")])
    two.append([_item("rv_two1"), _item("rv_two2")])
    two.close()  # e.g. the worker count went from 2 to 1
    one.close()

    survivor = Outbox(tmp_path, max_items=100)
    assert survivor.slot == 0 and survivor.adopted == 2 and survivor.depth == 3
    refs = set()
    while (item := survivor.peek()) is not None:
        refs.add(item.ref)
        survivor.remove(item)
    assert refs == {"rv_one", "rv_two1", "rv_two2"}
    survivor.close()
    # The orphan's items moved: nobody adopts them twice.
    assert Outbox(tmp_path, max_items=100).depth == 0


def test_a_closed_or_broken_outbox_drops_with_reason_error(tmp_path: Path):
    metrics, value = _metrics()
    outbox = Outbox(tmp_path, max_items=10, observer=metrics)
    outbox.close()
    assert outbox.append([_item("rv_x")]) == "error"
    assert value("modelplane_review_outbox_dropped_total", reason="error") == 1


def test_an_unusable_directory_is_reported(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutboxUnavailable):
        Outbox(blocker / "outbox", max_items=10)


def test_the_file_is_private(tmp_path: Path):
    outbox = Outbox(tmp_path / "box", max_items=10)
    assert (tmp_path / "box").stat().st_mode & 0o077 == 0
    assert outbox.path.stat().st_mode & 0o077 == 0
    outbox.close()


# ------------------------------------------------------------------ sending


def test_it_retries_a_refusing_then_failing_server_and_loses_nothing(tmp_path: Path):
    metrics, value = _metrics()
    log = RecordingLog()
    port = free_port()
    down = ReviewReceiver(port)  # not started yet: connections are refused
    outbox = Outbox(tmp_path, max_items=100, observer=metrics)
    sender = _sender(outbox, down.url, metrics, log)
    refs = [f"rv_item{i}" for i in range(6)]
    for ref in refs:
        assert outbox.append([_item(ref)]) is None
    sender.start()
    try:
        deadline = time.monotonic() + 10
        while value("modelplane_review_outbox_retried_total") < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert value("modelplane_review_outbox_retried_total") >= 3
        assert value("modelplane_review_outbox_sent_total") == 0

        down.script = [503, 503, 429]
        down.start()
        received = down.wait_for(len(refs))
        deadline = time.monotonic() + 5
        while outbox.depth and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        sender.stop()
        down.stop()
    assert [item["ref"] for item in received] == refs  # oldest first
    assert set(down.refs().values()) == {1}  # each exactly once
    assert down.headers[0]["Authorization"] == f"Bearer {TOKEN}"
    assert down.headers[0]["Content-Type"] == "application/json"
    assert received[0]["input_summary"] == {"radius_mean": 17.3}
    queued = value("modelplane_review_outbox_queued_total")
    sent = value("modelplane_review_outbox_sent_total")
    assert queued == sent == len(refs)
    assert value("modelplane_review_outbox_retried_total") >= 6  # refused >= 3, then 3 answers
    assert value("modelplane_review_outbox_dropped_total", reason="rejected") == 0
    assert value("modelplane_review_outbox_depth") == 0 and outbox.depth == 0
    retries = [fields for _, event, fields in log.events if event == "review_submit_retry"]
    assert {f["status"] for f in retries} >= {None, 503, 429}
    assert "17.3" not in log.text()
    outbox.close()


def test_a_permanent_4xx_is_dropped_counted_and_logged_without_the_summary(
    tmp_path: Path, receiver: ReviewReceiver
):
    metrics, value = _metrics()
    log = RecordingLog()
    outbox = Outbox(tmp_path, max_items=100, observer=metrics)
    sender = _sender(outbox, receiver.url, metrics, log)
    receiver.script = [400, 409]
    outbox.append([_item("rv_bad1"), _item("rv_bad2"), _item("rv_good")])
    sender.start()
    try:
        receiver.wait_for(1)
    finally:
        sender.stop()
    assert list(receiver.refs()) == ["rv_good"]
    assert value("modelplane_review_outbox_dropped_total", reason="rejected") == 2
    assert value("modelplane_review_outbox_sent_total") == 1
    assert value("modelplane_review_outbox_retried_total") == 0
    assert (
        value("modelplane_review_outbox_queued_total")
        == value("modelplane_review_outbox_sent_total")
        + value("modelplane_review_outbox_dropped_total", reason="rejected")
        + outbox.depth
    )
    rejected = [fields for _, event, fields in log.events if event == "review_item_rejected"]
    assert [(f["ref"], f["status"]) for f in rejected] == [("rv_bad1", 400), ("rv_bad2", 409)]
    assert rejected[0]["reasons"] == [
        "deployment: has no review policy",
        "input_summary.radius_mean: (reason not logged)",
    ]
    assert "SECRET" not in log.text() and "17.3" not in log.text()
    outbox.close()


def test_401_and_403_keep_the_item_until_the_token_is_fixed(
    tmp_path: Path, receiver: ReviewReceiver
):
    metrics, value = _metrics()
    outbox = Outbox(tmp_path, max_items=100, observer=metrics)
    sender = _sender(outbox, receiver.url, metrics)
    receiver.script = [401, 403]
    outbox.append([_item("rv_kept")])
    sender.start()
    try:
        receiver.wait_for(1)
    finally:
        sender.stop()
    assert value("modelplane_review_outbox_retried_total") == 2
    assert value("modelplane_review_outbox_dropped_total", reason="rejected") == 0
    assert value("modelplane_review_outbox_sent_total") == 1
    outbox.close()


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "sent"),
        (201, "sent"),
        (400, "rejected"),
        (404, "rejected"),
        (409, "rejected"),
        (413, "rejected"),
        (401, "retry"),
        (403, "retry"),
        (408, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (302, "retry"),
    ],
)
def test_responses_are_sorted_into_sent_rejected_and_retry(status: int, outcome: str):
    response = httpx.Response(status, headers={"retry-after": "7"}, json={})
    attempt = classify(response)
    assert attempt.outcome == outcome
    if status in (429, 503):
        assert attempt.retry_after == 7.0


def test_backoff_grows_exponentially_with_jitter_and_a_cap(tmp_path: Path):
    outbox = Outbox(tmp_path, max_items=1)
    sender = Sender(outbox, "http://127.0.0.1:9/", backoff=0.5, backoff_max=8.0)
    for failures, nominal in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        delays = [sender.delay(failures) for _ in range(200)]
        assert nominal / 2 <= min(delays) and max(delays) <= nominal
        assert max(delays) - min(delays) > nominal / 10  # jittered, not in step
    # A Retry-After is honoured up to the cap.
    assert sender.delay(1, retry_after=5.0) == 5.0
    assert sender.delay(1, retry_after=3600.0) == 8.0
    sender.stop()
    outbox.close()


def test_appending_never_waits_for_a_slow_control_plane(tmp_path: Path, receiver: ReviewReceiver):
    metrics, _ = _metrics()
    outbox = Outbox(tmp_path, max_items=1000, observer=metrics)
    sender = _sender(outbox, receiver.url, metrics)
    receiver.delay = 1.0  # every POST takes a second
    outbox.append([_item("rv_first")])
    sender.start()
    try:
        time.sleep(0.2)  # the sender is now inside its POST
        timings = []
        for i in range(50):
            started = time.perf_counter()
            assert outbox.append([_item(f"rv_next{i}")]) is None
            sender.notify()
            timings.append(time.perf_counter() - started)
        # Waiting on the POST in flight would take most of a second; a disk write takes far less
        # even on a busy shared machine.
        assert max(timings) < 0.5, max(timings)
        assert sorted(timings)[len(timings) // 2] < 0.01
    finally:
        receiver.delay = 0.0
        sender.stop()
    outbox.close()
