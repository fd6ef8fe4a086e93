"""The service in-process (TestClient): readiness, OIP v2 and /predict, metrics, faults, logs."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.demo_model import sample_requests
from serving.packaging import LoadedModel, PackageError, bucket_counts
from tests.serving.conftest import valid_instance, wait_until_ready

JSON_HEADERS = {"content-type": "application/json"}
FORMATS = ["sklearn-skops", "onnx"]


def _predict(client, rows: list[dict[str, Any]], **headers: str):
    return client.post(
        "/predict", content=json.dumps({"instances": rows}), headers={**JSON_HEADERS, **headers}
    )


def test_it_is_ready_only_after_the_model_loaded_and_warmed_up(make_app, loaded):
    gate = threading.Event()
    calls: list[str] = []

    def slow_loader() -> LoadedModel:
        gate.wait(10)
        calls.append("loaded")
        return loaded["sklearn-skops"]

    app = make_app(load_model=slow_loader, wait=False)
    assert app.client.get("/v2/health/live").status_code == 200
    ready = app.client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json()["reason"] == "loading"
    assert _predict(app.client, [valid_instance()]).status_code == 503
    gate.set()
    wait_until_ready(app.client)
    assert calls == ["loaded"]
    assert _predict(app.client, [valid_instance()]).status_code == 200


def test_it_is_not_live_when_the_model_fails_to_load(make_app):
    def broken() -> LoadedModel:
        raise PackageError("not_a_package", "artifact is not a zip package")

    app = make_app(load_model=broken, wait=False)
    for _ in range(200):
        if app.client.get("/v2/health/live").status_code == 503:
            break
        threading.Event().wait(0.01)
    assert app.client.get("/v2/health/live").json() == {"live": False, "reason": "not_a_package"}
    assert app.client.get("/v2/health/ready").status_code == 503


@pytest.mark.parametrize("fmt", FORMATS)
def test_predict_returns_labels_and_probabilities(make_app, fmt):
    app = make_app(fmt)
    rows = sample_requests(5, seed=3)
    response = _predict(app.client, rows)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "breast-cancer" and body["version"] == "v1"
    assert len(body["predictions"]) == 5
    assert set(body["predictions"]) <= {"benign", "malignant"}
    for label, proba in zip(body["predictions"], body["probabilities"], strict=True):
        assert set(proba) == {"benign", "malignant"}
        assert sum(proba.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(proba, key=proba.get) == label


@pytest.mark.parametrize("fmt", FORMATS)
def test_oip_infer_answers_one_output_tensor_per_result(make_app, fmt):
    app = make_app(fmt)
    rows = sample_requests(3, seed=4)
    inputs = [
        {
            "name": name,
            "datatype": "BYTES" if name == "size_band" else "FP64",
            "shape": [3, 1],
            "data": [row[name] for row in rows],
        }
        for name in rows[0]
    ]
    response = app.client.post(
        "/v2/models/breast-cancer/infer",
        content=json.dumps({"id": "req-1", "inputs": inputs}),
        headers=JSON_HEADERS,
    )
    assert response.status_code == 200
    body = response.json()
    assert body["model_name"] == "breast-cancer" and body["model_version"] == "v1"
    assert body["id"] == "req-1"
    label, proba = body["outputs"]
    assert label["name"] == "label" and label["datatype"] == "BYTES" and label["shape"] == [3]
    assert proba["shape"] == [3, 2] and len(proba["data"]) == 6
    expected = _predict(app.client, rows).json()["predictions"]
    assert label["data"] == expected


def test_oip_infer_honours_requested_outputs(make_app):
    app = make_app()
    rows = [valid_instance()]
    inputs = [
        {"name": k, "datatype": "BYTES" if k == "size_band" else "FP32", "shape": [1], "data": [v]}
        for k, v in rows[0].items()
    ]
    payload = {"inputs": inputs, "outputs": [{"name": "label"}]}
    body = app.client.post(
        "/v2/models/breast-cancer/infer", content=json.dumps(payload), headers=JSON_HEADERS
    ).json()
    assert [o["name"] for o in body["outputs"]] == ["label"]


def test_model_metadata_describes_inputs_and_outputs(make_app):
    app = make_app("onnx")
    meta = app.client.get("/v2/models/breast-cancer").json()
    assert meta["name"] == "breast-cancer" and meta["versions"] == ["v1"]
    assert meta["platform"] == "onnxruntime"
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["size_band"] == "BYTES"
    assert {i["name"]: i["datatype"] for i in meta["inputs"]}["radius_mean"] == "FP64"
    assert meta["outputs"][1] == {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]}
    assert app.client.get("/v2/models/breast-cancer/ready").status_code == 200


def test_it_answers_404_for_another_model_name(make_app):
    app = make_app()
    assert app.client.get("/v2/models/other").status_code == 404
    response = app.client.post(
        "/v2/models/other/infer", content=b'{"inputs": []}', headers=JSON_HEADERS
    )
    assert response.status_code == 404


def test_it_echoes_the_request_id_or_generates_one(make_app):
    app = make_app()
    response = _predict(app.client, [valid_instance()], **{"x-request-id": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    generated = _predict(app.client, [valid_instance()], **{"x-request-id": "bad id\twith junk"})
    assert len(generated.headers["x-request-id"]) == 32
    assert '"request_id": "abc-123"' in app.log.getvalue()


def test_metrics_after_known_traffic_match_the_baseline_buckets(make_app, skops_v1):
    app = make_app()
    rows = sample_requests(40, drift=True, seed=11)
    for start in range(0, 40, 8):
        assert _predict(app.client, rows[start : start + 8]).status_code == 200
    text = app.client.get("/metrics").text
    profile = skops_v1.manifest["baseline_profile"]["features"]

    families = {f.name: f for f in text_string_to_metric_families(text)}
    feature_samples = families["model_feature_value"].samples
    for feature in ("radius_mean", "area_worst"):
        edges = profile[feature]["bin_edges"]
        buckets = [
            s
            for s in feature_samples
            if s.name == "model_feature_value_bucket" and s.labels["feature"] == feature
        ]
        assert [float(s.labels["le"]) for s in buckets] == [*edges[1:-1], float("inf")]
        expected = np.cumsum(bucket_counts(np.array([r[feature] for r in rows]), edges))
        assert [s.value for s in buckets] == expected.tolist()
        total = sum(r[feature] for r in rows)
        sums = [s for s in feature_samples if s.name == "model_feature_value_sum"]
        assert any(s.labels["feature"] == feature and s.value == pytest.approx(total) for s in sums)
    # Drift moved radius_mean up: the top baseline bin got far more than its ~10% share.
    top = [
        s.value
        for s in feature_samples
        if s.name == "model_feature_value_bucket" and s.labels["feature"] == "radius_mean"
    ]
    assert top[-1] - top[-2] > 40 * 0.3

    assert app.metric("model_predictions_total", model="breast-cancer", version="v1") == 40
    assert app.metric("model_requests_total", endpoint="predict", code="200") == 5
    assert app.metric("model_request_duration_seconds_count", endpoint="predict") == 5
    assert app.metric("model_prediction_class_total") == 40
    bands = {band: sum(r["size_band"] == band for r in rows) for band in ("small", "large")}
    for band, count in bands.items():
        assert app.metric("model_feature_category_total", feature="size_band", category=band) == (
            count
        )
    assert app.metric("model_feature_category_total", category="__other__") == 0
    info = [s for s in families["model_info"].samples if s.value == 1.0]
    assert info[0].labels == {
        "model": "breast-cancer",
        "version": "v1",
        "digest": skops_v1.digest,
        "track": "canary",
        "format": "sklearn-skops",
    }


def test_fault_switch_is_404_unless_allowed(make_app):
    app = make_app()
    assert app.client.get("/-/faults").status_code == 404
    response = app.client.post("/-/faults", content=b'{"error_rate": 1}', headers=JSON_HEADERS)
    assert response.status_code == 404


def test_fault_switch_makes_predictions_fail_and_is_counted(make_app):
    app = make_app(allow_faults=True)
    assert app.client.get("/-/faults").json() == {"error_rate": 0.0, "latency_ms": 0}
    response = app.client.post("/-/faults", content=b'{"error_rate": 1.0}', headers=JSON_HEADERS)
    assert response.json() == {"error_rate": 1.0, "latency_ms": 0}
    for _ in range(3):
        assert _predict(app.client, [valid_instance()]).status_code == 500
    assert app.metric("model_requests_total", code="500") == 3
    assert app.metric("model_predictions_total") == 0
    app.client.post("/-/faults", content=b'{"error_rate": 0}', headers=JSON_HEADERS)
    assert _predict(app.client, [valid_instance()]).status_code == 200


def test_fault_switch_rejects_out_of_range_settings(make_app):
    app = make_app(allow_faults=True)
    response = app.client.post("/-/faults", content=b'{"error_rate": 2}', headers=JSON_HEADERS)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "error_rate"


def test_latency_beyond_the_request_timeout_answers_504(make_app):
    app = make_app(allow_faults=True, fault_latency_ms=300, request_timeout_seconds=0.05)
    assert app.client.get("/-/faults").json()["latency_ms"] == 300
    response = _predict(app.client, [valid_instance()])
    assert response.status_code == 504
    assert response.json()["errors"][0]["reason"] == "timeout"
    assert app.metric("model_requests_total", code="504") == 1


def test_it_never_logs_payloads_or_predictions(make_app, loaded):
    class ExplodingModel:
        """Fails the way libraries do: with the offending value in the exception message."""

        def __init__(self, inner: LoadedModel) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def predict_columns(self, columns):
            if 4321.98765 in columns["area_worst"]:
                raise ValueError(f"could not handle {columns['area_worst']}")
            return self.inner.predict_columns(columns)

    app = make_app(load_model=lambda: ExplodingModel(loaded["sklearn-skops"]))
    canary_row = valid_instance(size_band="LEAKCANARY-123", radius_mean=17.77777)
    assert _predict(app.client, [canary_row]).status_code == 422
    assert _predict(app.client, [valid_instance(LEAKCANARY_KEY=1)]).status_code == 422
    ok = _predict(app.client, [valid_instance(radius_mean=17.77777)])
    assert ok.status_code == 200
    failing = _predict(app.client, [valid_instance(area_worst=4321.98765)])
    assert failing.status_code == 500
    assert "4321.98765" not in failing.text

    log = app.log.getvalue()
    events = [json.loads(line) for line in log.splitlines()]
    assert [e["status"] for e in events if e["event"] == "request"] == [422, 422, 200, 500]
    assert any(e["event"] == "prediction_failed" for e in events)
    for marker in ("LEAKCANARY", "17.77777", "4321.98765", "benign", "malignant"):
        assert marker not in log
