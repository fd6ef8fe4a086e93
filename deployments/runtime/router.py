"""The local traffic router: one asyncio reverse proxy per deployment that splits requests across
version processes by weight and mirrors a percentage to a shadow version.

It is on the hot path of every request, so it must never await a mirrored request on the caller's
path, never return a mirror's answer, never leave Nagle's algorithm on an accepted socket, and
never accept routing changes from anything but loopback. No Django imports.

Run: python -m deployments.runtime.router --host 127.0.0.1 --port PORT [--routes-file FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import prometheus_client
import uvicorn
import yarl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("modelplane.router")

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ADMIN_PREFIX = "/-/"
SERVED_BY = b"x-served-by-version"
REQUEST_ID = b"x-request-id"
LOOPBACK_CLIENTS = frozenset({"127.0.0.1", "::1"})
# RFC 9110 section 7.6.1: connection-specific fields a proxy must not forward, plus those listed
# in the Connection header itself. Host is rewritten to the upstream's.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)


class InvalidRoutes(ValueError):
    """A routing table that cannot be served as given."""


@dataclass(frozen=True)
class RouteTable:
    """What the router serves: version -> weight, an optional mirror, version -> base URL."""

    weights: dict[str, int] = field(default_factory=dict)
    mirror_version: str | None = None
    mirror_percent: int = 0
    backends: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> RouteTable:
        if not isinstance(data, dict):
            raise InvalidRoutes("the routing table must be a JSON object")
        weights = data.get("weights") or {}
        backends = data.get("backends") or {}
        mirror = data.get("mirror")
        if not isinstance(weights, dict) or not isinstance(backends, dict):
            raise InvalidRoutes("weights and backends must be objects")
        try:
            parsed = {str(v): int(w) for v, w in weights.items()}
        except (TypeError, ValueError) as exc:
            raise InvalidRoutes(f"weights must be integers: {exc}") from None
        if any(w < 0 for w in parsed.values()):
            raise InvalidRoutes("weights must be >= 0")
        for version, url in backends.items():
            if not isinstance(url, str) or not url.startswith("http://"):
                raise InvalidRoutes(f"backend of version {version} must be an http:// URL")
        mirror_version, mirror_percent = None, 0
        if mirror:
            try:
                mirror_version, mirror_percent = str(mirror["version"]), int(mirror["percent"])
            except (KeyError, TypeError, ValueError):
                raise InvalidRoutes("mirror must be {'version': v, 'percent': 0..100}") from None
            if not 0 <= mirror_percent <= 100:
                raise InvalidRoutes("mirror percent must be within 0..100")
        return cls(
            weights=parsed,
            mirror_version=mirror_version,
            mirror_percent=mirror_percent,
            backends={str(v): str(u).rstrip("/") for v, u in backends.items()},
        )

    def to_json(self) -> dict[str, Any]:
        mirror = None
        if self.mirror_version is not None:
            mirror = {"version": self.mirror_version, "percent": self.mirror_percent}
        return {"weights": self.weights, "mirror": mirror, "backends": self.backends}


class SmoothWeightedPicker:
    """Smooth weighted round robin (as in nginx): deterministic, interleaved, and exact over every
    window of sum(weights) picks, so a 5/95 split is 5/95 at any volume, not just on average."""

    def __init__(self, weights: dict[str, int]) -> None:
        self._items = [[version, w, 0] for version, w in sorted(weights.items()) if w > 0]
        self._total = sum(w for _, w, _ in self._items)

    def pick(self) -> str | None:
        if not self._items:
            return None
        best = self._items[0]
        for item in self._items:
            item[2] += item[1]
            if item[2] > best[2]:
                best = item
        best[2] -= self._total
        return best[0]


class PercentGate:
    """Says yes to exactly `percent` of calls, evenly spread (an error-diffusion counter)."""

    def __init__(self, percent: int) -> None:
        self._percent = percent
        self._acc = 0

    def __call__(self) -> bool:
        self._acc += self._percent
        if self._acc >= 100:
            self._acc -= 100
            return True
        return False


class RouterMetrics:
    def __init__(self, registry: prometheus_client.CollectorRegistry) -> None:
        self.registry = registry
        self.requests = prometheus_client.Counter(
            "modelplane_router_requests",
            "Requests answered by the router, by the version that served them and status code.",
            ["version", "code"],
            registry=registry,
        )
        self.latency = prometheus_client.Histogram(
            "modelplane_router_request_duration_seconds",
            "Time from reading the request to sending the upstream's answer.",
            ["version"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.mirrored = prometheus_client.Counter(
            "modelplane_router_mirrored",
            "Requests copied to the mirror version, by outcome (ok, error).",
            ["version", "outcome"],
            registry=registry,
        )
        self.mirror_dropped = prometheus_client.Counter(
            "modelplane_router_mirror_dropped",
            "Mirror copies dropped because the mirror concurrency bound was reached.",
            ["version"],
            registry=registry,
        )
        self._children: dict[tuple[str, int], Any] = {}

    def count(self, version: str, code: int) -> None:
        # Label lookups take a lock and hash; cache the child on the hot path.
        child = self._children.get((version, code))
        if child is None:
            child = self._children[(version, code)] = self.requests.labels(version, str(code))
        child.inc()


class Router:
    """The raw ASGI application."""

    def __init__(
        self,
        table: RouteTable | None = None,
        *,
        upstream_timeout_s: float = 30.0,
        mirror_concurrency: int = 32,
        pool_size: int = 256,
        registry: prometheus_client.CollectorRegistry | None = None,
    ) -> None:
        self.upstream_timeout_s = upstream_timeout_s
        self.mirror_concurrency = mirror_concurrency
        self.pool_size = pool_size
        self.metrics = RouterMetrics(registry or prometheus_client.CollectorRegistry())
        self._session: aiohttp.ClientSession | None = None
        self._mirrors_in_flight = 0
        self._mirror_tasks: set[asyncio.Task[None]] = set()
        self.set_table(table or RouteTable())

    def set_table(self, table: RouteTable) -> None:
        # Replaced as a whole between awaits, so a request sees either the old or the new table.
        self.table = table
        self._picker = SmoothWeightedPicker(table.weights)
        self._mirror_gate = PercentGate(table.mirror_percent)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            if scope["path"].startswith(ADMIN_PREFIX):
                await self._admin(scope, receive, send)
            else:
                await self._proxy(scope, receive, send)

    # --- lifecycle ---

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(
            limit=self.pool_size, ttl_dns_cache=None, keepalive_timeout=30.0
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            # Forward the caller's headers, not aiohttp's defaults.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=self.upstream_timeout_s),
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def stop(self) -> None:
        for task in list(self._mirror_tasks):
            task.cancel()
        await asyncio.gather(*self._mirror_tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # --- the hot path ---

    async def _proxy(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        body = await _read_body(receive)
        if body is None:
            return  # the caller went away
        headers, request_id = _forward_headers(scope)
        table = self.table
        path = scope["raw_path"] or scope["path"].encode()
        if scope["query_string"]:
            path += b"?" + scope["query_string"]
        target = path.decode("latin-1")

        if table.mirror_version is not None and self._mirror_gate():
            self._mirror(table, scope["method"], target, headers, body)

        version = self._picker.pick()
        if version is None:
            await _plain(send, 503, b"no traffic is routed to any version\n", request_id)
            self.metrics.count("none", 503)
            return
        backend = table.backends.get(version)
        if backend is None:
            await _plain(send, 503, f"version {version} has no backend\n".encode(), request_id)
            self.metrics.count(version, 503)
            return
        assert self._session is not None
        try:
            async with self._session.request(
                scope["method"],
                yarl.URL(backend + target, encoded=True),
                data=body,
                headers=headers,
                allow_redirects=False,
            ) as upstream:
                payload = await upstream.read()
                status = upstream.status
                out = _response_headers(upstream.raw_headers, version, request_id)
        except TimeoutError:
            await _plain(send, 504, b"upstream timed out\n", request_id, version)
            self.metrics.count(version, 504)
            return
        except aiohttp.ClientError as exc:
            log.warning("upstream %s (version %s) failed: %s", backend, version, exc)
            await _plain(send, 502, b"upstream connection failed\n", request_id, version)
            self.metrics.count(version, 502)
            return
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})
        self.metrics.count(version, status)
        self.metrics.latency.labels(version).observe(time.perf_counter() - started)

    def _mirror(
        self,
        table: RouteTable,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        version = table.mirror_version
        assert version is not None
        backend = table.backends.get(version)
        if backend is None or self._mirrors_in_flight >= self.mirror_concurrency:
            # A slow shadow must never slow the primary path: drop and count instead.
            self.metrics.mirror_dropped.labels(version).inc()
            return
        self._mirrors_in_flight += 1
        task = asyncio.get_running_loop().create_task(
            self._send_mirror(version, backend, method, target, headers, body)
        )
        self._mirror_tasks.add(task)
        task.add_done_callback(self._mirror_tasks.discard)

    async def _send_mirror(
        self,
        version: str,
        backend: str,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
    ) -> None:
        assert self._session is not None
        try:
            async with self._session.request(
                method,
                yarl.URL(backend + target, encoded=True),
                data=body,
                headers=[*headers, ("X-Mirrored-From", "router")],
                allow_redirects=False,
            ) as upstream:
                await upstream.read()
            self.metrics.mirrored.labels(version, "ok").inc()
        except (TimeoutError, aiohttp.ClientError):
            self.metrics.mirrored.labels(version, "error").inc()
        finally:
            self._mirrors_in_flight -= 1

    # --- admin ---

    async def _admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if client is None or client[0] not in LOOPBACK_CLIENTS:
            await _plain(send, 403, b"admin endpoints are loopback only\n")
            return
        path, method = scope["path"], scope["method"]
        if path == "/-/health" and method == "GET":
            await _json(send, 200, {"status": "ok"})
        elif path == "/-/metrics" and method == "GET":
            payload = prometheus_client.generate_latest(self.metrics.registry)
            ctype = prometheus_client.CONTENT_TYPE_LATEST.encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", ctype)],
                }
            )
            await send({"type": "http.response.body", "body": payload})
        elif path == "/-/routes" and method == "GET":
            await _json(send, 200, self.table.to_json())
        elif path == "/-/routes" and method == "PUT":
            body = await _read_body(receive)
            try:
                table = RouteTable.from_json(json.loads(body or b"null"))
            except (json.JSONDecodeError, InvalidRoutes) as exc:
                await _json(send, 400, {"detail": str(exc)})
                return
            self.set_table(table)
            await _json(send, 200, table.to_json())
        else:
            await _plain(send, 404, b"not found\n")


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return tokens


def _forward_headers(scope: Scope) -> tuple[list[tuple[str, str]], bytes]:
    raw: list[tuple[bytes, bytes]] = scope["headers"]
    drop = HOP_BY_HOP | _connection_tokens(raw) | {b"host"}
    out: list[tuple[str, str]] = []
    request_id = b""
    forwarded_for = b""
    for name, value in raw:
        if name in drop:
            continue
        if name == REQUEST_ID:
            request_id = value
        elif name == b"x-forwarded-for":
            forwarded_for = value
            continue
        out.append((name.decode("latin-1"), value.decode("latin-1")))
    if not request_id:
        request_id = uuid.uuid4().hex.encode()
        out.append(("x-request-id", request_id.decode()))
    client = scope.get("client")
    if client:
        chain = forwarded_for + b", " + client[0].encode() if forwarded_for else client[0].encode()
        out.append(("x-forwarded-for", chain.decode("latin-1")))
    return out, request_id


def _response_headers(
    raw: Iterable[tuple[bytes, bytes]], version: str, request_id: bytes
) -> list[tuple[bytes, bytes]]:
    raw = list(raw)
    drop = HOP_BY_HOP | _connection_tokens(raw) | {SERVED_BY, REQUEST_ID}
    out = [(n.lower(), v) for n, v in raw if n.lower() not in drop]
    out.append((SERVED_BY, version.encode()))
    out.append((REQUEST_ID, request_id))
    return out


async def _plain(
    send: Send, status: int, body: bytes, request_id: bytes = b"", version: str = ""
) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if request_id:
        headers.append((REQUEST_ID, request_id))
    if version:
        headers.append((b"x-routed-to-version", version.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, data: Any) -> None:
    body = json.dumps(data).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with TCP_NODELAY forced on every accepted socket: without it a
    keep-alive response can wait ~40 ms for the client's delayed ACK (uvicorn #3149)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def load_routes_file(path: Path | None) -> RouteTable:
    if path is None or not path.exists():
        return RouteTable()
    return RouteTable.from_json(json.loads(path.read_text()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--routes-file", type=Path)
    parser.add_argument("--upstream-timeout", type=float, default=30.0)
    parser.add_argument("--mirror-concurrency", type=int, default=32)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())
    app = Router(
        load_routes_file(args.routes_file),
        upstream_timeout_s=args.upstream_timeout,
        mirror_concurrency=args.mirror_concurrency,
    )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http=NoDelayHttpToolsProtocol,
        lifespan="on",
        access_log=False,
        log_level=args.log_level,
        server_header=False,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
