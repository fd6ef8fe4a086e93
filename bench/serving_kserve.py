"""The inference service against KServe 0.21's scikit-learn server, with a bare FastAPI floor.

Serves one all-numeric pipeline (scikit-learn's wine data: scaling + logistic regression, 13
features, 3 classes; `serving.demo_model.build_wine_package`) three ways, 2 worker processes
each, on loopback:

- `kserve`: KServe 0.21's ModelServer with the sklearn server's model class (kserve's
  `python/sklearnserver/sklearnserver/model.py`: `get_predict_input` -> `predict` ->
  `get_predict_response`, re-declared here because the sklearn server is not on PyPI) over a
  joblib dump of the same fitted pipeline, in its own virtual environment;
- `serving`: `python -m serving --workers 2` with validation, metrics and a review policy that
  is evaluated on every row and holds none (so the review outbox is open on every request);
- `bare`: FastAPI + uvicorn running the same package with no validation, metrics or logs (the
  floor for the c=1 p50 target).

All three get the very same request bytes: OIP v2 infer, batch 1, one `[1, 13]` FP64 tensor
(the form KServe's sklearn server takes), JSON with `content-type: application/json`, over
keep-alive connections at concurrency 1, 16 and 64 (a closed-loop asyncio client, shared with
`bench/serving_latency.py`). Targets take turns in short interleaved rounds.

Setup of the peer (once; only PyPI is needed):

    python3.11 -m venv /work/bench-venvs/kserve
    /work/bench-venvs/kserve/bin/pip install "kserve==0.21.*" scikit-learn

Run (hold the machine-wide benchmark lock):

    flock /work/brief/bench.lock .venv/bin/python bench/serving_kserve.py [--requests 3000]
        [--kserve-python /work/bench-venvs/kserve/bin/python]

It only talks to 127.0.0.1 and stops every process it starts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for path in (str(REPO_ROOT), str(BENCH_DIR)):
    if path not in sys.path:
        sys.path.insert(0, path)

from serving_latency import (  # noqa: E402
    _SINK_CODE,
    _client,
    _free_port,
    _stop,
    _summary,
    _wait_ready,
)

KSERVE_PYTHON = "/work/bench-venvs/kserve/bin/python"
MODEL = "wine"
# Evaluated on every row (confidence and class), never holds: a 3-class top probability is never
# below 1/3, and no class has this name.
REVIEW_POLICY = '{"mode": "held", "confidence_below": 0.3, "classes": ["no-such-class"]}'

_KSERVE_CODE = """
import sys

import joblib
import kserve
from kserve import Model, ModelServer
from kserve.utils.utils import get_predict_input, get_predict_response


class SKLearnModel(Model):
    # kserve python/sklearnserver/sklearnserver/model.py, without its storage download.
    def __init__(self, name, path):
        super().__init__(name)
        self._model = joblib.load(path)
        self.ready = True

    def load(self):
        return self.ready

    def predict(self, payload, headers=None):
        instances = get_predict_input(payload)
        result = self._model.predict(instances)
        return get_predict_response(payload, result, self.name)


if __name__ == "__main__":
    port, path, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    ModelServer(http_port=port, workers=workers, enable_grpc=False).start(
        [SKLearnModel("wine", path)]
    )
"""


def create_bare_app() -> Any:
    """uvicorn factory: the same package behind OIP v2 infer, nothing else."""
    from serving.packaging import load_package

    model = load_package(os.environ["BENCH_ARTIFACT"], os.environ["BENCH_DIGEST"])
    names = model.feature_names
    app = FastAPI()

    @app.get("/v2/health/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> dict[str, Any]:
        tensor = (await request.json())["inputs"][0]
        width = tensor["shape"][1]
        data = tensor["data"]
        columns = {n: data[j::width] for j, n in enumerate(names)}
        prediction = model.predict_columns(columns)
        outputs = [
            {
                "name": "label",
                "datatype": "INT64",
                "shape": [len(prediction.labels)],
                "data": prediction.labels,
            },
            {
                "name": "probabilities",
                "datatype": "FP64",
                "shape": list(prediction.probabilities.shape),
                "data": prediction.probabilities.reshape(-1).tolist(),
            },
        ]
        return {"model_name": name, "outputs": outputs}

    return app


def request_bytes(row: list[float]) -> bytes:
    body = json.dumps(
        {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}
    ).encode()
    head = (
        f"POST /v2/models/{MODEL}/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _drive(
    port: int, request: bytes, concurrency: int, requests: int
) -> tuple[list[float], float]:
    budget = [requests]
    latencies: list[float] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(port, request, budget, latencies) for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def _start(
    kind: str, tmp: Path, info: Any, joblib_path: Path, workers: int, sink_url: str, kpy: str
) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if kind == "kserve":
        env.pop("PYTHONPATH")
        # A file, not `-c`: KServe's spawned workers unpickle the model class from __main__.
        script = tmp / "kserve_sklearn.py"
        script.write_text(_KSERVE_CODE)
        cmd = [kpy, str(script), str(port), str(joblib_path), str(workers)]
    elif kind == "serving":
        env.update(
            MODEL_ARTIFACT_URI=str(info.path),
            MODEL_ARTIFACT_DIGEST=info.digest,
            MODEL_NAME=MODEL,
            MODEL_VERSION="1",
            MODELPLANE_REVIEW_POLICY=REVIEW_POLICY,
            MODELPLANE_REVIEW_URL=sink_url,
            MODELPLANE_REVIEW_DEPLOYMENT="1",
            MODELPLANE_REVIEW_TOKEN="bench-token",
            MODELPLANE_REVIEW_OUTBOX_DIR=str(tmp / "outbox"),
        )
        cmd = [sys.executable, "-m", "serving", "--port", str(port), "--workers", str(workers)]
    else:
        env.update(BENCH_ARTIFACT=str(info.path), BENCH_DIGEST=info.digest)
        code = (
            "import uvicorn; uvicorn.run('serving_kserve:create_bare_app', factory=True, "
            f"host='127.0.0.1', port={port}, workers={workers}, access_log=False, "
            f"log_level='warning', app_dir={str(BENCH_DIR)!r})"
        )
        cmd = [sys.executable, "-c", code]
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return proc, port


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000, help="requests per level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kserve-python", default=KSERVE_PYTHON)
    parser.add_argument("--targets", nargs="+", default=["kserve", "serving", "bare"])
    args = parser.parse_args()

    import joblib

    from serving.demo_model import build_wine_package

    kinds = args.targets
    rounds = max(1, args.rounds)
    per_round = max(1, args.requests // rounds)
    runs: dict[str, dict[int, tuple[list[float], float]]] = {
        kind: {c: ([], 0.0) for c in args.concurrency} for kind in kinds
    }
    with tempfile.TemporaryDirectory(prefix="bench-kserve-") as tmp_name:
        tmp = Path(tmp_name)
        info, pipeline, X = build_wine_package(tmp)
        joblib_path = tmp / "model" / "model.joblib"
        joblib_path.parent.mkdir()
        joblib.dump(pipeline, joblib_path)
        request = request_bytes([float(v) for v in X[0]])
        procs: list[subprocess.Popen[bytes]] = []
        ports: dict[str, int] = {}
        try:
            sink_port = _free_port()
            procs.append(subprocess.Popen([sys.executable, "-c", _SINK_CODE, str(sink_port)]))
            sink_url = f"http://127.0.0.1:{sink_port}/api/v1/reviews/"
            for kind in kinds:
                proc, ports[kind] = _start(
                    kind, tmp, info, joblib_path, args.workers, sink_url, args.kserve_python
                )
                procs.append(proc)
                try:
                    _wait_ready(ports[kind], proc)
                except RuntimeError as exc:
                    raise RuntimeError(f"{kind}: {exc}") from None
                asyncio.run(_drive(ports[kind], request, 4, 200))  # warm both workers
            for c in args.concurrency:
                for _ in range(rounds):
                    for kind in kinds:
                        latencies, elapsed = asyncio.run(_drive(ports[kind], request, c, per_round))
                        kept, total = runs[kind][c]
                        runs[kind][c] = (kept + latencies, total + elapsed)
                print(f"concurrency {c}: done", file=sys.stderr, flush=True)
        finally:
            for proc in procs:
                _stop(proc)
    results = {kind: {c: _summary(*runs[kind][c]) for c in args.concurrency} for kind in kinds}

    print(
        f"OIP v2 infer, batch 1, one [1, 13] FP64 tensor (wine), {args.workers} workers each, "
        f"{per_round * rounds} requests per level and target in {rounds} interleaved rounds"
    )
    print(f"{'conc':>5} {'target':>12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for c in args.concurrency:
        for kind in kinds:
            r = results[kind][c]
            print(f"{c:>5} {kind:>12} {r['rps']:>9.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}")
        ours = results.get("serving", {}).get(c)
        for peer in ("kserve", "bare"):
            base = results.get(peer, {}).get(c)
            if ours and base:
                print(
                    f"{c:>5} {'srv/' + peer:>12} {ours['rps'] / base['rps']:>9.2f} "
                    f"{ours['p50_ms'] / base['p50_ms']:>8.2f} "
                    f"{ours['p99_ms'] / base['p99_ms']:>8.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
