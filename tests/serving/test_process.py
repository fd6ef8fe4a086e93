"""The real service as a process: `python -m serving` (and the Dockerfile's entrypoint) on
loopback, with 2 workers for keep-alive latency, shared metrics and the shared fault switch."""

from __future__ import annotations

import http.server
import json
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from serving.config import ConfigError, download_artifact
from serving.demo_model import sample_requests
from tests.serving.conftest import (
    REPO_ROOT,
    ServiceProcess,
    metric_value,
    service_env,
    start_service,
    valid_instance,
    wait_every_worker_ready,
)

JSON_HEADERS = {"content-type": "application/json"}


def _run_to_exit(env: dict[str, str], port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_it_refuses_to_start_when_the_digest_differs(skops_v1, onnx_v1):
    from tests.serving.conftest import free_port

    port = free_port()
    env = service_env(skops_v1, MODEL_ARTIFACT_DIGEST=onnx_v1.digest)
    result = _run_to_exit(env, port)
    assert result.returncode != 0
    assert "refusing to start" in result.stderr
    assert skops_v1.digest in result.stderr and onnx_v1.digest in result.stderr
    assert "Uvicorn running" not in result.stdout + result.stderr
    assert _port_is_closed(port)


def test_it_refuses_to_start_with_an_unreadable_artifact(skops_v1, tmp_path):
    from tests.serving.conftest import free_port

    env = service_env(skops_v1, MODEL_ARTIFACT_URI=(tmp_path / "missing.zip").as_uri())
    result = _run_to_exit(env, free_port())
    assert result.returncode != 0
    assert "cannot read artifact" in result.stderr


def test_it_refuses_to_start_without_a_digest(skops_v1):
    from tests.serving.conftest import free_port

    env = service_env(skops_v1)
    del env["MODEL_ARTIFACT_DIGEST"]
    result = _run_to_exit(env, free_port())
    assert result.returncode == 2
    assert "MODEL_ARTIFACT_DIGEST is required" in result.stderr


# ------------------------------------------------------------------ two workers


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory, packages) -> Iterator[ServiceProcess]:
    info = packages["sklearn-skops"][0]
    env = service_env(info, SERVING_ALLOW_FAULTS="1", PYTHONUNBUFFERED="1")
    # asyncio's own loop is the configuration that stalls without TCP_NODELAY (uvicorn #3149).
    svc = start_service(
        tmp_path_factory.mktemp("two-workers"), env, ["--workers", "2", "--loop", "asyncio"]
    )
    try:
        # Readiness is per worker: wait until both are (a test counts on every request served).
        wait_every_worker_ready(svc)
        yield svc
    finally:
        svc.stop()


def _keep_alive_latencies_ms(port: int, count: int) -> list[float]:
    body = json.dumps({"instances": [valid_instance()]}).encode()
    request = (
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(body), body)
    )
    latencies = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        reader = sock.makefile("rb")
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(request)
            status = reader.readline()
            assert status.startswith(b"HTTP/1.1 200"), status
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            reader.read(length)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def test_keep_alive_requests_do_not_wait_for_delayed_acks(two_workers):
    # Without TCP_NODELAY every response after the first waits ~40 ms (measured: 44 ms median).
    latencies = _keep_alive_latencies_ms(two_workers.port, 20)
    assert statistics.median(latencies[1:]) < 20.0, latencies


def test_it_serves_predict_and_infer(two_workers):
    client = two_workers.client()
    rows = sample_requests(4, seed=5)
    predicted = client.post("/predict", json={"instances": rows})
    assert predicted.status_code == 200
    assert len(predicted.json()["predictions"]) == 4
    inputs = [
        {
            "name": name,
            "datatype": "BYTES" if name == "size_band" else "FP64",
            "shape": [4],
            "data": [r[name] for r in rows],
        }
        for name in rows[0]
    ]
    inferred = client.post("/v2/models/breast-cancer/infer", json={"inputs": inputs})
    assert inferred.status_code == 200
    assert inferred.json()["outputs"][0]["data"] == predicted.json()["predictions"]
    assert client.get("/v2/models/breast-cancer").json()["platform"] == "sklearn"


def _fresh_connection_get(svc: ServiceProcess, path: str) -> httpx.Response:
    # A new connection per call lets the kernel spread requests over both workers.
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as client:
        return client.get(path)


def _fresh_connection_predict(svc: ServiceProcess, rows: list[dict]) -> httpx.Response:
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as client:
        return client.post("/predict", json={"instances": rows})


def test_metrics_add_up_across_workers(two_workers):
    def total() -> float:
        text = _fresh_connection_get(two_workers, "/metrics").text
        return metric_value(text, "model_predictions_total", model="breast-cancer")

    before = total()
    for i in range(20):
        assert _fresh_connection_predict(two_workers, sample_requests(2, seed=i)).status_code == 200
    # Every scrape, whichever worker answers it, sees the rows of both workers.
    assert {total() for _ in range(6)} == {before + 40}


def test_fault_switch_reaches_every_worker(two_workers):
    with httpx.Client(base_url=two_workers.base_url) as client:
        assert client.post("/-/faults", json={"error_rate": 1.0}).status_code == 200
    try:
        codes = {
            _fresh_connection_predict(two_workers, [valid_instance()]).status_code
            for _ in range(10)
        }
        assert codes == {500}
        assert {
            _fresh_connection_get(two_workers, "/-/faults").json()["error_rate"] for _ in range(6)
        } == {1.0}
    finally:
        with httpx.Client(base_url=two_workers.base_url) as client:
            client.post("/-/faults", json={"error_rate": 0.0})
    assert _fresh_connection_predict(two_workers, [valid_instance()]).status_code == 200


def test_process_output_never_contains_payload_values(two_workers):
    client = two_workers.client()
    marked = valid_instance(size_band="LEAKCANARY-123", radius_mean=18.87654)
    assert client.post("/predict", json={"instances": [marked]}).status_code == 422
    accepted = valid_instance(radius_mean=18.87654, area_worst=1234.56789)
    assert client.post("/predict", json={"instances": [accepted]}).status_code == 200
    bad_json = b'{"instances": [{"LEAKCANARY-456": NaN'
    assert client.post("/predict", content=bad_json, headers=JSON_HEADERS).status_code == 400
    deadline = time.monotonic() + 5
    while '"status": 400' not in two_workers.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    output = two_workers.output()
    assert '"event": "request"' in output and '"status": 400' in output
    for marker in ("LEAKCANARY", "18.87654", "1234.56789"):
        assert marker not in output


# ------------------------------------------------------------------ Dockerfile entrypoint


def _dockerfile_command() -> tuple[list[str], list[str]]:
    entrypoint: list[str] = []
    cmd: list[str] = []
    for line in (REPO_ROOT / "Dockerfile.serving").read_text().splitlines():
        if line.startswith("ENTRYPOINT "):
            entrypoint = json.loads(line.removeprefix("ENTRYPOINT "))
        elif line.startswith("CMD "):
            cmd = json.loads(line.removeprefix("CMD "))
    return entrypoint, cmd


def test_dockerfile_runs_as_non_root_with_a_liveness_healthcheck():
    text = (REPO_ROOT / "Dockerfile.serving").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text and "/v2/health/live" in text
    assert "serving/requirements.txt" in text
    assert _dockerfile_command()[0] == ["python", "-m", "serving"]


@pytest.fixture
def artifact_server(packages) -> Iterator[str]:
    directory = packages["onnx"][0].path.parent
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_dockerfile_entrypoint_serves_an_onnx_package_downloaded_over_http(
    packages, artifact_server, tmp_path: Path
):
    info = packages["onnx"][0]
    entrypoint, cmd = _dockerfile_command()
    env = service_env(info, MODEL_ARTIFACT_URI=f"{artifact_server}/{info.path.name}")

    svc: ServiceProcess | None = None

    def command(port: int) -> list[str]:
        args = [sys.executable, *entrypoint[1:], *cmd]
        args[args.index("--host") + 1] = "127.0.0.1"
        args[args.index("--port") + 1] = str(port)
        return args

    svc = start_service(tmp_path / "docker", env, command=command)
    try:
        svc.wait_ready()
        assert shlex.join(svc.proc.args[1:4]) == "-m serving --host"
        client = svc.client()
        assert client.get("/v2/health/live").status_code == 200
        meta = client.get("/v2/models/breast-cancer").json()
        assert meta["platform"] == "onnxruntime"
        assert meta["parameters"]["digest"] == info.digest
        response = client.post("/predict", json={"instances": sample_requests(3, seed=1)})
        assert response.status_code == 200 and len(response.json()["predictions"]) == 3
        svc.proc.send_signal(signal.SIGTERM)
        assert svc.proc.wait(timeout=30) == 0
    finally:
        svc.stop()


def test_download_refuses_artifacts_over_the_size_cap(packages, artifact_server):
    info = packages["onnx"][0]
    with pytest.raises(ConfigError, match="larger than 100 bytes"):
        download_artifact(f"{artifact_server}/{info.path.name}", max_bytes=100)
