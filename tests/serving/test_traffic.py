"""The demo's traffic generator: steady /predict requests to a loopback URL, switched live by
its control file, and never aimed anywhere but this machine."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from serving import traffic


@pytest.fixture
def receiver():  # type: ignore[no-untyped-def]
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()


def test_it_sends_requests_at_the_rate_and_counts_the_answers(receiver):
    url, received = receiver
    codes = asyncio.run(traffic.run(url, rate=20, drift=False, control=None, duration=1.5, batch=2))
    assert codes[200] == len(received) >= 15
    assert all(len(body["instances"]) == 2 for body in received)


def test_the_control_file_switches_drift_while_it_runs(receiver, tmp_path):
    url, received = receiver
    control = tmp_path / "traffic.json"
    control.write_text(json.dumps({"drift": True, "rate": 30}))
    assert traffic.read_control(control, False, 5) == (True, 30.0)
    asyncio.run(traffic.run(url, rate=5, drift=False, control=control, duration=1.2, batch=1))
    assert len(received) >= 25, "the file's rate, not the argument's"


def test_it_refuses_a_target_that_is_not_this_machine():
    with pytest.raises(SystemExit, match="only loopback"):
        asyncio.run(traffic.run("http://10.0.0.5:8080", 1, False, None, 1, 1))
