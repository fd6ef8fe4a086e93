"""Benchmark of the local traffic router: requests/s and p50/p99 latency through the router versus
straight to the upstream, at concurrency 1, 16 and 64, on loopback only.

It starts a trivial upstream (raw ASGI on uvicorn + uvloop + httptools) and the router as child
processes, drives them with keep-alive aiohttp clients, and stops both on exit. A p50 near 40 ms
at concurrency 1 means Nagle's algorithm is back on somewhere (uvicorn #3149).

Run: .venv/bin/python bench/router.py [--requests 3000] [--concurrency 1 16 64]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps({"inputs": [[5.1, 3.5, 1.4, 0.2]]}).encode()


async def upstream_app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"predictions":[0]}'})


def serve_upstream(port: int) -> None:
    import uvicorn

    uvicorn.run(
        upstream_app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


async def drive(url: str, total: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency)

    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t0 = time.perf_counter()
                async with session.post(url, data=BODY) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"{url} answered {resp.status}")
                latencies.append(time.perf_counter() - t0)

        # Warm the pool so connection setup is not measured.
        for _ in range(min(concurrency, 32)):
            async with session.post(url, data=BODY) as resp:
                await resp.read()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, latencies


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(sorted(values), n=100, method="inclusive")[int(q * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--serve-upstream", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream)
        return

    up_port, router_port = free_port(), free_port()
    children: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        routes = Path(tmp) / "routes.json"
        routes.write_text(
            json.dumps({"weights": {"1": 100}, "backends": {"1": f"http://127.0.0.1:{up_port}"}})
        )
        try:
            children.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve-upstream", str(up_port)],
                    start_new_session=True,
                )
            )
            children.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "deployments.runtime.router",
                        "--port",
                        str(router_port),
                        "--routes-file",
                        str(routes),
                    ],
                    cwd=ROOT,
                    start_new_session=True,
                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                )
            )
            wait_http(f"http://127.0.0.1:{router_port}/-/health")
            direct = f"http://127.0.0.1:{up_port}/predict"
            routed = f"http://127.0.0.1:{router_port}/predict"
            header = (
                f"{'conc':>4} {'path':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  router/direct"
            )
            print(header)
            for conc in args.concurrency:
                results = {}
                for name, url in (("direct", direct), ("router", routed)):
                    rps, lat = asyncio.run(drive(url, args.requests, conc))
                    results[name] = rps
                    p50, p99 = quantile(lat, 0.50) * 1000, quantile(lat, 0.99) * 1000
                    ratio = (
                        f"  {results['router'] / results['direct']:.2f}x"
                        if name == "router"
                        else ""
                    )
                    print(f"{conc:>4} {name:>7} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}{ratio}")
        finally:
            for child in children:
                os.killpg(child.pid, signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)
                    child.wait()


if __name__ == "__main__":
    main()
