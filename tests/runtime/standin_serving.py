"""A stand-in for the inference service (`python -m serving`), for runtime and router tests.

It honours the same contract (env MODEL_*, --host/--port, /v2/health/live, /v2/health/ready,
POST /predict, GET /metrics, non-zero exit on a digest mismatch) and answers with its version so
tests can observe routing. Test-only knobs: STANDIN_READY_AFTER_S delays readiness,
STANDIN_EXIT_CODE exits at start, `?sleep_ms=` delays an answer. It must never be deployed.

Run: python -m tests.runtime.standin_serving --host 127.0.0.1 --port PORT
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import uvicorn

DIGEST_MISMATCH_EXIT = 3


def artifact_path(uri: str) -> Path:
    return Path(urlparse(uri).path) if uri.startswith("file://") else Path(uri)


def verify_digest() -> None:
    uri, digest = os.environ.get("MODEL_ARTIFACT_URI", ""), os.environ.get("MODEL_ARTIFACT_DIGEST")
    if not uri or not digest:
        return
    actual = "sha256:" + hashlib.sha256(artifact_path(uri).read_bytes()).hexdigest()
    if actual != digest:
        print(f"digest mismatch: expected {digest}, got {actual}", file=sys.stderr)
        sys.exit(DIGEST_MISMATCH_EXIT)


class StandIn:
    def __init__(self) -> None:
        self.version = os.environ.get("MODEL_VERSION", "0")
        self.track = os.environ.get("MODEL_TRACK", "")
        self.ready_at = time.monotonic() + float(os.environ.get("STANDIN_READY_AFTER_S", "0"))
        self.hits = 0
        self.mirrored_hits = 0
        self.last_headers: dict[str, str] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path, method = scope["path"], scope["method"]
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        query = parse_qs(scope["query_string"].decode())
        if path == "/v2/health/live":
            await self._reply(send, 200, {"live": True})
        elif path == "/v2/health/ready":
            ready = time.monotonic() >= self.ready_at
            await self._reply(send, 200 if ready else 503, {"ready": ready})
        elif path == "/predict" and method == "POST":
            self.hits += 1
            if "x-mirrored-from" in headers:
                self.mirrored_hits += 1
            self.last_headers = headers
            if "sleep_ms" in query:
                await asyncio.sleep(float(query["sleep_ms"][0]) / 1000)
            answer = {"version": self.version, "track": self.track, "bytes": len(body)}
            extra = [(b"connection", b"keep-alive, x-private-hop"), (b"x-private-hop", b"1")]
            await self._reply(send, 200, answer, extra)
        elif path == "/-/hits":
            stats = {"hits": self.hits, "mirrored": self.mirrored_hits}
            await self._reply(send, 200, {**stats, "last_headers": self.last_headers})
        elif path == "/metrics":
            text = f'standin_predictions_total{{version="{self.version}"}} {self.hits}\n'
            await self._reply(send, 200, text.encode(), ctype=b"text/plain")
        else:
            await self._reply(send, 404, {"detail": "not found"})

    @staticmethod
    async def _reply(
        send: Any,
        status: int,
        data: Any,
        extra: list[tuple[bytes, bytes]] | None = None,
        ctype: bytes = b"application/json",
    ) -> None:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        headers = [(b"content-type", ctype), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if os.environ.get("STANDIN_EXIT_CODE"):
        print("stand-in told to exit at start", file=sys.stderr)
        sys.exit(int(os.environ["STANDIN_EXIT_CODE"]))
    verify_digest()
    uvicorn.run(
        StandIn(),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
