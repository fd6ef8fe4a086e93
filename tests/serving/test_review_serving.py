"""Human review through the service: a held low-confidence prediction answers 202 "pending
review" with a reference while a confident one answers 200 as before, on both prediction routes;
items reach a receiver standing in for the control plane, in-process and from real
`python -m serving` processes, including while the control plane is down for a while and across
a restart of the serving process, each delivered exactly once."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from serving.config import ReviewPolicy, ReviewSettings
from serving.demo_model import FEATURES, MODEL_NAME, load_demo_data, sample_requests, train
from serving.packaging import LoadedModel, PackageInfo, load_package, package_sklearn
from tests.serving.conftest import (
    REPO_ROOT,
    ServiceProcess,
    free_port,
    metric_value,
    service_env,
    start_service,
    wait_every_worker_ready,
)
from tests.serving.test_outbox import TOKEN, ReviewReceiver

JSON_HEADERS = {"content-type": "application/json"}
SUMMARY = ["radius_mean", "size_band"]
THRESHOLD = 0.9
INFER = f"/v2/models/{MODEL_NAME}/infer"


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def reviewable(tmp_path_factory: pytest.TempPathFactory) -> PackageInfo:
    return package_sklearn(
        train(1),
        load_demo_data().X,
        name=MODEL_NAME,
        features=FEATURES,
        out_path=tmp_path_factory.mktemp("reviewable") / "breast-cancer-v1.zip",
        review_summary=SUMMARY,
        review_explanation=True,
    )


@pytest.fixture(scope="module")
def reviewable_model(reviewable: PackageInfo) -> LoadedModel:
    return load_package(reviewable.path, reviewable.digest)


@pytest.fixture(scope="module")
def rows(reviewable_model: LoadedModel) -> dict[str, list[dict[str, Any]]]:
    """Request rows the demo model is unsure about (held) and sure about (answered)."""
    candidates = sample_requests(600, seed=17)
    columns = {s.name: [r[s.name] for r in candidates] for s in FEATURES}
    confidence = reviewable_model.predict_columns(columns).probabilities.max(axis=1)
    low = [r for r, c in zip(candidates, confidence, strict=True) if c < 0.75]
    sure = [r for r, c in zip(candidates, confidence, strict=True) if c > 0.999]
    assert len(low) >= 20 and len(sure) >= 20
    return {"low": low, "sure": sure}


@pytest.fixture
def receiver() -> Iterator[ReviewReceiver]:
    server = ReviewReceiver().start()
    yield server
    server.stop()


def _review(url: str, outbox: Path, **policy: Any) -> ReviewSettings:
    return ReviewSettings(
        policy=ReviewPolicy(**{"mode": "held", "confidence_below": THRESHOLD, **policy}),
        url=url,
        deployment=12,
        version=1,
        token=TOKEN,
        outbox_dir=outbox,
        backoff_seconds=0.02,
        backoff_max_seconds=0.2,
        timeout_seconds=2.0,
    )


def _inputs(batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "datatype": "BYTES" if spec.type == "categorical" else "FP64",
            "shape": [len(batch)],
            "data": [row[spec.name] for row in batch],
        }
        for spec in FEATURES
    ]


def _infer(client: Any, batch: list[dict[str, Any]], request_id: str | None = None) -> Any:
    headers = {**JSON_HEADERS, **({"x-request-id": request_id} if request_id else {})}
    body = json.dumps({"inputs": _inputs(batch)})
    return client.post(INFER, content=body, headers=headers)


# ------------------------------------------------------------------ in process


def test_low_confidence_is_held_and_a_confident_answer_is_unchanged(
    make_app, reviewable_model, rows, receiver, tmp_path
):
    app = make_app(
        load_model=lambda: reviewable_model,
        review=_review(receiver.url, tmp_path),
    )
    plain = make_app(load_model=lambda: reviewable_model)

    held = _infer(app.client, rows["low"][:1], "req-low-1")
    assert held.status_code == 202
    body = held.json()
    assert body["status"] == "pending_review"
    [review] = body["reviews"]
    assert review["row"] == 0 and review["reason"] == "low_confidence"
    assert review["ref"].startswith("rv_")
    assert review["url"] == f"{receiver.url}{review['ref']}/"
    label, proba = body["outputs"]
    assert label["data"] == [None] and proba["data"] == [None, None]
    assert label["shape"] == [1] and proba["shape"] == [1, 2]
    assert body["model_name"] == MODEL_NAME and body["id"] == "req-low-1"

    sure = _infer(app.client, rows["sure"][:1])
    assert sure.status_code == 200
    assert sure.json() == {**_infer(plain.client, rows["sure"][:1]).json(), "id": sure.json()["id"]}
    assert "status" not in sure.json() and "reviews" not in sure.json()

    [item] = receiver.wait_for(1)
    assert item["ref"] == review["ref"] and item["request_id"] == "req-low-1"
    assert item["reason"] == "low_confidence" and item["mode"] == "held"
    assert item["deployment"] == 12 and item["model"] == MODEL_NAME and item["version"] == 1
    assert item["track"] == "canary"
    assert item["confidence"] < THRESHOLD
    assert item["input_summary"] == {k: rows["low"][0][k] for k in SUMMARY}
    assert set(item["explanation"]["contributions"]) == set(SUMMARY)
    assert receiver.headers[0]["Authorization"] == f"Bearer {TOKEN}"

    assert app.metric("model_requests_total", endpoint="infer", code="202") == 1
    assert app.metric("model_requests_total", endpoint="infer", code="200") == 1
    assert app.metric("model_predictions_total") == 2
    assert (
        app.metric("modelplane_review_predictions_total", mode="held", reason="low_confidence") == 1
    )
    deadline = time.monotonic() + 5
    while app.metric("modelplane_review_outbox_sent_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.metric("modelplane_review_outbox_queued_total") == 1
    assert app.metric("modelplane_review_outbox_sent_total") == 1
    assert app.metric("modelplane_review_outbox_depth") == 0


def test_predict_holds_only_the_held_rows_of_a_batch(
    make_app, reviewable_model, rows, receiver, tmp_path
):
    app = make_app(
        load_model=lambda: reviewable_model,
        review=_review(receiver.url, tmp_path),
    )
    batch = [rows["sure"][0], rows["low"][1], rows["sure"][1]]
    response = app.client.post(
        "/predict",
        content=json.dumps({"instances": batch}),
        headers={**JSON_HEADERS, "x-request-id": "batch-7"},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["predictions"][1] is None and body["probabilities"][1] is None
    assert None not in (body["predictions"][0], body["predictions"][2])
    assert [(r["row"], r["reason"]) for r in body["reviews"]] == [(1, "low_confidence")]
    [item] = receiver.wait_for(1)
    assert item["request_id"] == "batch-7/1" and item["ref"] == body["reviews"][0]["ref"]
    assert json.loads(app.log.getvalue().splitlines()[-1])["held_rows"] == 1


def test_an_audited_prediction_answers_normally_and_is_submitted(
    make_app, reviewable_model, rows, receiver, tmp_path
):
    app = make_app(
        load_model=lambda: reviewable_model,
        review=_review(receiver.url, tmp_path, mode="audited"),
    )
    response = _infer(app.client, rows["low"][:2], "audit-1")
    assert response.status_code == 200
    assert None not in response.json()["outputs"][0]["data"]
    assert "status" not in response.json()
    items = receiver.wait_for(2)
    assert sorted(i["request_id"] for i in items) == ["audit-1/0", "audit-1/1"]
    assert {i["mode"] for i in items} == {"audited"}
    assert app.metric("modelplane_review_predictions_total", mode="audited") == 2


def test_a_full_outbox_never_releases_a_held_prediction(make_app, reviewable_model, rows, tmp_path):
    closed = f"http://127.0.0.1:{free_port()}/api/v1/reviews/"  # the control plane is down
    review = _review(closed, tmp_path / "held")
    app = make_app(
        load_model=lambda: reviewable_model,
        review=dataclasses.replace(review, outbox_max=1),
    )
    assert _infer(app.client, rows["low"][:1]).status_code == 202
    refused = _infer(app.client, rows["low"][1:2])
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "30"
    assert refused.json()["errors"][0]["reason"] == "review_unavailable"
    assert "outputs" not in refused.json()
    # Rows that are not held are not affected by a full outbox.
    assert _infer(app.client, rows["sure"][:1]).status_code == 200
    assert app.metric("modelplane_review_outbox_dropped_total", reason="full") == 1
    assert app.metric("modelplane_review_outbox_depth") == 1
    assert app.metric("model_requests_total", code="503") == 1

    audited = make_app(
        load_model=lambda: reviewable_model,
        review=dataclasses.replace(
            _review(closed, tmp_path / "audited", mode="audited"), outbox_max=1
        ),
    )
    assert _infer(audited.client, rows["low"][:1]).status_code == 200
    assert _infer(audited.client, rows["low"][1:2]).status_code == 200
    assert audited.metric("modelplane_review_outbox_dropped_total", reason="full") == 1


def test_an_unusable_outbox_keeps_the_service_from_becoming_ready(
    make_app, reviewable_model, tmp_path
):
    blocker = tmp_path / "file"
    blocker.write_text("")
    app = make_app(
        load_model=lambda: reviewable_model,
        review=_review("http://127.0.0.1:9/", blocker / "outbox"),
        wait=False,
    )
    deadline = time.monotonic() + 30
    while app.client.get("/v2/health/live").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert app.client.get("/v2/health/live").json() == {
        "live": False,
        "reason": "review_outbox_unavailable",
    }
    assert app.client.get("/v2/health/ready").status_code == 503


def test_review_never_logs_summaries_or_predictions(
    make_app, reviewable_model, rows, receiver, tmp_path
):
    app = make_app(
        load_model=lambda: reviewable_model,
        review=_review(receiver.url, tmp_path),
    )
    marked = {**rows["low"][0], "radius_mean": 13.45678}
    response = _infer(app.client, [marked])
    assert response.status_code == 202
    receiver.wait_for(1)
    log = app.log.getvalue()
    assert '"event": "review_ready"' in log
    for marker in ("13.45678", "benign", "malignant", TOKEN):
        assert marker not in log


# ------------------------------------------------------------------ real processes


def _process_env(info: PackageInfo, url: str, outbox: Path, **extra: str) -> dict[str, str]:
    return service_env(
        info,
        MODEL_VERSION="1",
        PYTHONUNBUFFERED="1",
        MODELPLANE_REVIEW_POLICY=json.dumps(
            {"mode": "held", "confidence_below": THRESHOLD, "all": False, "sample_percent": 0}
        ),
        MODELPLANE_REVIEW_URL=url,
        MODELPLANE_REVIEW_DEPLOYMENT="12",
        MODELPLANE_REVIEW_TOKEN=TOKEN,
        MODELPLANE_REVIEW_OUTBOX_DIR=str(outbox),
        MODELPLANE_REVIEW_BACKOFF_SECONDS="0.05",
        MODELPLANE_REVIEW_BACKOFF_MAX_SECONDS="0.5",
        **extra,
    )


def _fresh_infer(svc: ServiceProcess, batch: list[dict[str, Any]], request_id: str) -> Any:
    # A new connection per request lets the kernel spread requests over the workers.
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as client:
        return _infer(client, batch, request_id)


def _metric(svc: ServiceProcess, name: str, **labels: str) -> float:
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as client:
        return metric_value(client.get("/metrics").text, name, **labels)


def _wait_metric(
    svc: ServiceProcess, name: str, done: Callable[[float], bool], timeout: float = 30.0
) -> float:
    deadline = time.monotonic() + timeout
    while True:
        value = _metric(svc, name)
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.fixture
def processes() -> Iterator[list[ServiceProcess]]:
    started: list[ServiceProcess] = []
    yield started
    for svc in started:
        svc.stop()


def test_a_real_process_holds_low_confidence_and_submits_it(
    reviewable, rows, receiver, processes, tmp_path
):
    svc = start_service(tmp_path / "svc", _process_env(reviewable, receiver.url, tmp_path / "ob"))
    processes.append(svc)
    svc.wait_ready()
    client = svc.client()
    held = _infer(client, rows["low"][:1], "proc-low")
    assert held.status_code == 202 and held.json()["status"] == "pending_review"
    ref = held.json()["reviews"][0]["ref"]
    sure = _infer(client, rows["sure"][:1], "proc-sure")
    assert sure.status_code == 200 and None not in sure.json()["outputs"][0]["data"]
    [item] = receiver.wait_for(1)
    assert item["ref"] == ref and item["request_id"] == "proc-low"
    assert item["input_summary"] == {k: rows["low"][0][k] for k in SUMMARY}
    assert _wait_metric(svc, "modelplane_review_outbox_sent_total", lambda v: v >= 1) == 1
    output = svc.output()
    assert '"event": "review_ready"' in output
    assert TOKEN not in output and str(rows["low"][0]["radius_mean"]) not in output


def test_control_plane_down_for_a_while_loses_nothing(reviewable, rows, processes, tmp_path):
    port = free_port()
    control_plane = ReviewReceiver(port)  # not listening yet: the control plane is down
    env = _process_env(reviewable, control_plane.url, tmp_path / "outbox")
    svc = start_service(tmp_path / "svc", env, ["--workers", "2"])
    processes.append(svc)
    wait_every_worker_ready(svc)
    try:
        refs = []
        for i in range(16):
            response = _fresh_infer(svc, rows["low"][i : i + 1], f"down-{i}")
            assert response.status_code == 202, response.text
            refs.append(response.json()["reviews"][0]["ref"])
        # Answered without waiting on the network, while the sender retries in the background.
        retried = _wait_metric(svc, "modelplane_review_outbox_retried_total", lambda v: v >= 2)
        assert retried >= 2
        assert _metric(svc, "modelplane_review_outbox_sent_total") == 0
        assert _metric(svc, "modelplane_review_outbox_depth") == 16

        control_plane.start()  # the control plane is back
        received = control_plane.wait_for(16, timeout=60)
        assert sorted(i["ref"] for i in received) == sorted(refs)
        assert set(control_plane.refs().values()) == {1}  # exactly once by ref
        assert _wait_metric(svc, "modelplane_review_outbox_sent_total", lambda v: v >= 16) == 16
        assert _metric(svc, "modelplane_review_outbox_queued_total") == 16
        assert _metric(svc, "modelplane_review_outbox_retried_total") >= retried
        assert _metric(svc, "modelplane_review_outbox_dropped_total") == 0
        assert _metric(svc, "modelplane_review_outbox_depth") == 0
        assert _metric(svc, "modelplane_review_predictions_total", reason="low_confidence") == 16
        assert {i["request_id"] for i in received} == {f"down-{i}" for i in range(16)}
    finally:
        control_plane.stop()


def test_held_items_survive_a_restart_of_the_serving_process(reviewable, rows, processes, tmp_path):
    port = free_port()
    control_plane = ReviewReceiver(port)
    env = _process_env(reviewable, control_plane.url, tmp_path / "outbox")
    first = start_service(tmp_path / "first", env)
    processes.append(first)
    first.wait_ready()
    refs = [
        _fresh_infer(first, rows["low"][i : i + 1], f"restart-{i}").json()["reviews"][0]["ref"]
        for i in range(3)
    ]
    first.stop()  # SIGTERM with the control plane still down: the items stay on disk
    assert first.proc.returncode == 0

    control_plane.start()
    try:
        second = start_service(tmp_path / "second", env)
        processes.append(second)
        second.wait_ready()
        received = control_plane.wait_for(3, timeout=60)
        assert sorted(i["ref"] for i in received) == sorted(refs)
        assert set(control_plane.refs().values()) == {1}
        assert _wait_metric(second, "modelplane_review_outbox_sent_total", lambda v: v >= 3) == 3
        assert _metric(second, "modelplane_review_outbox_queued_total") == 0
        assert '"outbox_depth": 3' in second.output()
    finally:
        control_plane.stop()


def test_a_policy_with_nowhere_to_submit_refuses_to_start(reviewable, tmp_path):
    env = _process_env(reviewable, "", tmp_path / "outbox")
    result = subprocess.run(
        [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--port", str(free_port())],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "MODELPLANE_REVIEW_URL is required with MODELPLANE_REVIEW_POLICY" in result.stderr
    assert TOKEN not in result.stderr + result.stdout
