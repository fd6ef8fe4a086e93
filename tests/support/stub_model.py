"""Stands in for the pods behind the fake Kubernetes API: answers `POST <any>/predict` with
one schema-valid prediction per instance and says which Service path it was called on. Only
used where no cluster can run the real serving image; the real service is tested in
tests/serving and end to end on the local runtime."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def stub_model_server(*, fail: bool = False) -> Iterator[str]:
    calls: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: object) -> None:
            return

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            calls.append(self.path)
            status = 500 if fail else 200
            payload = json.dumps(
                {"predictions": [{"label": 0} for _ in body.get("instances", [])]}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def kubernetes_runtime_config(
    api_url: str, stub_url: str, namespace: str, *, request_timeout: float = 2.0
) -> dict[str, Any]:
    """An environment's runtime_config for the Kubernetes runtime against the fake API at
    `api_url`, whose versions (and entry point) the control plane reaches at this stub."""
    return {
        "api_url": api_url,
        "namespace": namespace,
        "version_url_template": stub_url + "/{namespace}/{service}",
        "entrypoint_url": f"{stub_url}/{namespace}/entry",
        "max_attempts": 2,
        "request_timeout": request_timeout,
    }
