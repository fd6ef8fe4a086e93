"""Latency and throughput of the inference service against a bare FastAPI floor, on loopback.

Starts `python -m serving` and a bare FastAPI + uvicorn[standard] app that runs the same packaged
pipeline without validation, metrics or logs (both with the same worker count), then drives OIP v2
infer requests (batch 1) over keep-alive connections at concurrency 1, 16 and 64 with a bounded
number of requests, and prints requests/s, p50 and p99 and our ratio to the bare floor.

    .venv/bin/python bench/serving_latency.py [--requests 3000] [--workers 2] [--format onnx]

It only talks to 127.0.0.1 and stops every process it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = Path(__file__).resolve().parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


# --------------------------------------------------------------------------- the bare floor


def create_bare_app() -> Any:
    """uvicorn factory: the same model behind OIP v2 infer, nothing else."""
    from serving.packaging import load_package

    model = load_package(os.environ["BENCH_ARTIFACT"], os.environ["BENCH_DIGEST"])
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        payload = await request.json()
        columns = {t["name"]: t["data"] for t in payload["inputs"]}
        prediction = model.predict_columns(columns)
        outputs = [
            {
                "name": "label",
                "datatype": "BYTES",
                "shape": [len(prediction.labels)],
                "data": prediction.labels,
            }
        ]
        if prediction.probabilities is not None:
            outputs.append(
                {
                    "name": "probabilities",
                    "datatype": "FP64",
                    "shape": list(prediction.probabilities.shape),
                    "data": prediction.probabilities.reshape(-1).tolist(),
                }
            )
        return {"model_name": name, "outputs": outputs}

    return app


# --------------------------------------------------------------------------- load generation


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request_bytes(port: int) -> bytes:
    from serving.demo_model import sample_requests

    row = sample_requests(1, seed=0)[0]
    inputs = [
        {
            "name": k,
            "datatype": "BYTES" if isinstance(v, str) else "FP64",
            "shape": [1],
            "data": [v],
        }
        for k, v in row.items()
    ]
    body = json.dumps({"inputs": inputs}).encode()
    head = (
        f"POST /v2/models/breast-cancer/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(port: int, request: bytes, budget: list[int], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
        await writer.wait_closed()


async def _drive(port: int, concurrency: int, requests: int) -> dict[str, float]:
    request = _request_bytes(port)
    budget = [requests]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, budget, latencies) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not become ready")


def _start(kind: str, artifact: Path, digest: str, workers: int) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if kind == "serving":
        env.update(
            MODEL_ARTIFACT_URI=str(artifact),
            MODEL_ARTIFACT_DIGEST=digest,
            MODEL_NAME="breast-cancer",
            MODEL_VERSION="bench",
        )
        cmd = [
            sys.executable,
            "-m",
            "serving",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ]
    else:
        env.update(BENCH_ARTIFACT=str(artifact), BENCH_DIGEST=digest)
        code = (
            "import uvicorn; uvicorn.run('serving_latency:create_bare_app', factory=True, "
            f"host='127.0.0.1', port={port}, workers={workers}, access_log=False, "
            f"log_level='warning', app_dir={str(BENCH_DIR)!r})"
        )
        cmd = [sys.executable, "-c", code]
    proc = subprocess.Popen(
        cmd, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, port


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", choices=("sklearn-skops", "onnx"), default="sklearn-skops")
    args = parser.parse_args()

    from serving.demo_model import build_demo_versions

    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        info = build_demo_versions(tmp, format=args.format)[0]
        results: dict[str, dict[int, dict[str, float]]] = {}
        for kind in ("bare", "serving"):
            proc, port = _start(kind, info.path, info.digest, args.workers)
            try:
                _wait_ready(port, proc)
                asyncio.run(_drive(port, 4, 200))  # warm both workers
                results[kind] = {
                    c: asyncio.run(_drive(port, c, args.requests)) for c in args.concurrency
                }
            finally:
                _stop(proc)

    print(
        f"OIP v2 infer, batch 1, {args.format}, {args.workers} workers, "
        f"{args.requests} requests per level"
    )
    print(f"{'conc':>5} {'target':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for c in args.concurrency:
        for kind in ("bare", "serving"):
            r = results[kind][c]
            print(f"{c:>5} {kind:>8} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
        ours, bare = results["serving"][c], results["bare"][c]
        print(
            f"{c:>5} {'ratio':>8} {ours['rps'] / bare['rps']:>9.2f} "
            f"{ours['p50_ms'] / bare['p50_ms']:>8.2f} {ours['p99_ms'] / bare['p99_ms']:>8.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
