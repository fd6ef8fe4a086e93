"""Latency and throughput of the inference service against a bare FastAPI floor, on loopback.

Starts `python -m serving` and a bare FastAPI + uvicorn[standard] app that runs the same packaged
pipeline without validation, metrics or logs (both with the same worker count), then drives OIP v2
infer requests (batch 1) over keep-alive connections at concurrency 1, 16 and 64 with a bounded
number of requests, and prints requests/s, p50 and p99 and our ratio to the bare floor. All
targets run at once and take turns in short rounds, so a busy machine's drifting background load
is shared fairly between them.

With --review it also runs the service with a human review policy (serving/review.py) twice:
`policy` (the policy is evaluated on every row but holds none of the benchmark's rows: requests
that are not held must not regress) and `held` (every row is held: 202 "pending review", an item
queued in the on-disk outbox and POSTed by the sender thread to a local sink process standing in
for the control plane: the sender's CPU counts against the held run, whose backlog is drained
before the next target's turn), and prints their ratios to `serving`.

    .venv/bin/python bench/serving_latency.py [--requests 3000] [--workers 2] [--format onnx]
        [--review]

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


# A held answer is 202 "pending review"; everything else this benchmark sends answers 200.
_OK_STATUS = (b"HTTP/1.1 200", b"HTTP/1.1 202")

# The control plane's review API as far as the sender can tell: 201 for every item.
_SINK_CODE = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
"""

# kind -> MODELPLANE_REVIEW_POLICY. A binary classifier's top probability is never below 0.5,
# so `policy` computes every row's confidence and sampling draw and still holds nothing.
REVIEW_POLICIES = {
    "policy": '{"mode": "held", "confidence_below": 0.5, "classes": ["no-such-class"]}',
    "held": '{"mode": "held", "all": true}',
}


async def _client(port: int, request: bytes, budget: list[int], latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while budget[0] > 0:
            budget[0] -= 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(_OK_STATUS):
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


async def _drive(port: int, concurrency: int, requests: int) -> tuple[list[float], float]:
    """Send `requests` over `concurrency` keep-alive connections: (latencies, elapsed seconds)."""
    request = _request_bytes(port)
    budget = [requests]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, budget, latencies) for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _summary(latencies: list[float], elapsed: float) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rps": len(ordered) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
    }


def _outbox_depth(port: int) -> float:
    import httpx

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("modelplane_review_outbox_depth{")
    )


def _wait_drained(port: int, timeout: float = 300.0) -> None:
    """Let a held run's sender finish its backlog before another target is measured, so its
    CPU is not charged to the next target."""
    deadline = time.monotonic() + timeout
    while _outbox_depth(port) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)


def _wait_ready(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 300.0, streak: int = 20
) -> None:
    """Readiness is per worker: wait until `streak` fresh connections in a row (spread over the
    workers by the kernel) answer ready, so no measured request meets a worker still loading."""
    import httpx

    deadline = time.monotonic() + timeout
    ready = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            ok = httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1).status_code
            ready = ready + 1 if ok == 200 else 0
        except httpx.TransportError:
            ready = 0
        if ready >= streak:
            return
        time.sleep(0.02 if ready else 0.2)
    raise RuntimeError("server did not become ready")


def _start(
    kind: str,
    artifact: Path,
    digest: str,
    workers: int,
    review_url: str = "",
    outbox_dir: Path | None = None,
) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    for name in [n for n in env if n.startswith("MODELPLANE_REVIEW_")]:
        del env[name]
    if kind != "bare":
        env.update(
            MODEL_ARTIFACT_URI=str(artifact),
            MODEL_ARTIFACT_DIGEST=digest,
            MODEL_NAME="breast-cancer",
            MODEL_VERSION="1",
        )
        if kind in REVIEW_POLICIES:
            env.update(
                MODELPLANE_REVIEW_POLICY=REVIEW_POLICIES[kind],
                MODELPLANE_REVIEW_URL=review_url,
                MODELPLANE_REVIEW_DEPLOYMENT="1",
                MODELPLANE_REVIEW_TOKEN="bench-token",
                MODELPLANE_REVIEW_OUTBOX_DIR=str(outbox_dir / kind if outbox_dir else ""),
                MODELPLANE_REVIEW_OUTBOX_MAX="10000000",
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
    parser.add_argument(
        "--review", action="store_true", help="also run with a review policy: not held and held"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="turns per level the targets take, interleaved"
    )
    args = parser.parse_args()

    from serving.demo_model import build_demo_versions

    kinds = ["bare", "serving", *(REVIEW_POLICIES if args.review else ())]
    rounds = max(1, args.rounds)
    per_round = max(1, args.requests // rounds)
    runs: dict[str, dict[int, tuple[list[float], float]]] = {
        kind: {c: ([], 0.0) for c in args.concurrency} for kind in kinds
    }
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        info = build_demo_versions(tmp, format=args.format)[0]
        procs: list[subprocess.Popen[bytes]] = []
        ports: dict[str, int] = {}
        review_url = ""
        try:
            if args.review:
                sink_port = _free_port()
                procs.append(subprocess.Popen([sys.executable, "-c", _SINK_CODE, str(sink_port)]))
                review_url = f"http://127.0.0.1:{sink_port}/api/v1/reviews/"
            for kind in kinds:
                proc, ports[kind] = _start(
                    kind, info.path, info.digest, args.workers, review_url, Path(tmp)
                )
                procs.append(proc)
                _wait_ready(ports[kind], proc)
                asyncio.run(_drive(ports[kind], 4, 200))  # warm both workers
            # Targets take turns in short rounds, so a shared machine's changing background load
            # falls on all of them alike instead of on whichever ran last.
            for c in args.concurrency:
                for _ in range(rounds):
                    for kind in kinds:
                        latencies, elapsed = asyncio.run(_drive(ports[kind], c, per_round))
                        kept, total = runs[kind][c]
                        runs[kind][c] = (kept + latencies, total + elapsed)
                        if kind in REVIEW_POLICIES:
                            _wait_drained(ports[kind])
                print(f"concurrency {c}: done", file=sys.stderr, flush=True)
        finally:
            for proc in procs:
                _stop(proc)
    results = {kind: {c: _summary(*runs[kind][c]) for c in args.concurrency} for kind in kinds}

    print(
        f"OIP v2 infer, batch 1, {args.format}, {args.workers} workers, "
        f"{per_round * rounds} requests per level and target in {rounds} interleaved rounds"
    )
    print(f"{'conc':>5} {'target':>8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")

    def ratio(label: str, ours: dict[str, float], base: dict[str, float]) -> None:
        print(
            f"{c:>5} {label:>8} {ours['rps'] / base['rps']:>9.2f} "
            f"{ours['p50_ms'] / base['p50_ms']:>8.2f} {ours['p99_ms'] / base['p99_ms']:>8.2f}"
        )

    for c in args.concurrency:
        for kind in kinds:
            r = results[kind][c]
            print(f"{c:>5} {kind:>8} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
        ratio("ratio", results["serving"][c], results["bare"][c])
        for kind in REVIEW_POLICIES if args.review else ():
            # Against the service without a policy: how much the review path costs.
            ratio(f"{kind}/srv", results[kind][c], results["serving"][c])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
