"""The clients people already have, against real `python -m serving` processes: NVIDIA's
tritonclient (JSON without a Content-Type, binary tensor data in and out), one tensor per feature
or one [batch, n_features] tensor like KServe's sklearn server takes, with validation, metrics and
the review outbox working on every form; and, in raw HTTP, the binary bodies that must be refused
naming the input and the reason."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from serving.demo_model import (
    FEATURES,
    MODEL_NAME,
    WINE_MODEL_NAME,
    build_wine_package,
    load_demo_data,
    sample_requests,
    train,
)
from serving.packaging import PackageInfo, load_package, package_sklearn
from tests.serving.conftest import (
    ServiceProcess,
    metric_value,
    service_env,
    start_service,
    wait_every_worker_ready,
)
from tests.serving.test_outbox import TOKEN, ReviewReceiver

NAMES = [f.name for f in FEATURES]
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
        out_path=tmp_path_factory.mktemp("triton-pkg") / "breast-cancer-v1.zip",
        review_summary=SUMMARY,
    )


@pytest.fixture(scope="module")
def rows(reviewable: PackageInfo) -> dict[str, list[dict[str, Any]]]:
    """Rows the model is sure about (answered 200) and unsure about (held for review)."""
    model = load_package(reviewable.path, reviewable.digest)
    candidates = sample_requests(400, seed=23)
    columns = {n: [r[n] for r in candidates] for n in NAMES}
    confidence = model.predict_columns(columns).probabilities.max(axis=1)
    sure = [r for r, c in zip(candidates, confidence, strict=True) if c > 0.999]
    low = [r for r, c in zip(candidates, confidence, strict=True) if c < 0.75]
    assert len(sure) >= 4 and len(low) >= 2
    return {"sure": sure, "low": low}


@pytest.fixture(scope="module")
def receiver() -> Iterator[ReviewReceiver]:
    server = ReviewReceiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def svc(tmp_path_factory, reviewable, receiver) -> Iterator[ServiceProcess]:
    """Two workers with a review policy holding low-confidence rows: validation, metrics and
    the outbox are all on the request path."""
    tmp = tmp_path_factory.mktemp("triton-svc")
    env = service_env(
        reviewable,
        MODEL_VERSION="1",
        PYTHONUNBUFFERED="1",
        MODELPLANE_REVIEW_POLICY=json.dumps({"mode": "held", "confidence_below": THRESHOLD}),
        MODELPLANE_REVIEW_URL=receiver.url,
        MODELPLANE_REVIEW_DEPLOYMENT="7",
        MODELPLANE_REVIEW_TOKEN=TOKEN,
        MODELPLANE_REVIEW_OUTBOX_DIR=str(tmp / "outbox"),
        MODELPLANE_REVIEW_BACKOFF_SECONDS="0.05",
    )
    service = start_service(tmp / "svc", env, ["--workers", "2"])
    try:
        wait_every_worker_ready(service)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def client(svc: ServiceProcess) -> Iterator[triton.InferenceServerClient]:
    triton_client = triton.InferenceServerClient(url=f"127.0.0.1:{svc.port}")
    yield triton_client
    triton_client.close()


def _expected(svc: ServiceProcess, batch: list[dict[str, Any]]) -> dict[str, Any]:
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as http:
        answer = http.post("/predict", json={"instances": batch}).json()
    classes = list(answer["probabilities"][0])
    return {
        "labels": answer["predictions"],
        "probabilities": np.asarray([[p[c] for c in classes] for p in answer["probabilities"]]),
    }


def _per_feature(batch: list[dict[str, Any]], binary: bool) -> list[triton.InferInput]:
    inputs = []
    for name in NAMES:
        if name == "size_band":
            tensor = triton.InferInput(name, [len(batch)], "BYTES")
            values: np.ndarray = np.asarray([r[name] for r in batch], dtype=object)
        else:
            tensor = triton.InferInput(name, [len(batch), 1], "FP64")
            values = np.asarray([[r[name]] for r in batch], dtype=np.float64)
        inputs.append(tensor.set_data_from_numpy(values, binary_data=binary))
    return inputs


def _matrix(batch: list[dict[str, Any]], binary: bool) -> list[triton.InferInput]:
    """One [batch, n_features] BYTES tensor, as for a pipeline of mixed feature types."""
    values = np.asarray([[r[n] for n in NAMES] for r in batch], dtype=object)
    tensor = triton.InferInput("input-0", list(values.shape), "BYTES")
    return [tensor.set_data_from_numpy(values, binary_data=binary)]


LAYOUTS = {"per-feature": _per_feature, "matrix": _matrix}


def _metric(svc: ServiceProcess, name: str, **labels: str) -> float:
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as http:
        return metric_value(http.get("/metrics").text, name, **labels)


# ------------------------------------------------------------------ tritonclient


def test_tritonclient_sees_a_live_ready_server_and_the_model(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(MODEL_NAME)
    assert client.is_model_ready(MODEL_NAME, model_version="1")
    assert not client.is_model_ready(MODEL_NAME, model_version="2")
    assert not client.is_model_ready("another-model")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    metadata = client.get_model_metadata(MODEL_NAME)
    # Inputs in the model's column order: the order of a [batch, n_features] tensor.
    assert [i["name"] for i in metadata["inputs"]] == NAMES
    assert client.get_model_metadata(MODEL_NAME, model_version="1")["versions"] == ["1"]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [None, True, False], ids=["default", "bin-out", "json-out"])
def test_tritonclient_infers_in_every_form(svc, client, rows, layout, binary_in, binary_out):
    batch = rows["sure"][:3]
    outputs = None
    if binary_out is not None:
        outputs = [
            triton.InferRequestedOutput("label", binary_data=binary_out),
            triton.InferRequestedOutput("probabilities", binary_data=binary_out),
        ]
    before = _metric(svc, "model_predictions_total")
    result = client.infer(
        MODEL_NAME, LAYOUTS[layout](batch, binary_in), outputs=outputs, request_id="t-1"
    )
    expected = _expected(svc, batch)
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")]
    assert labels == expected["labels"]
    np.testing.assert_allclose(result.as_numpy("probabilities"), expected["probabilities"])
    response = result.get_response()
    assert response["id"] == "t-1"
    # The default (no outputs named) is every output binary, as tritonclient asks.
    binary_expected = binary_out is not False
    for output in response["outputs"]:
        assert ("binary_data_size" in output.get("parameters", {})) is binary_expected
        assert ("data" in output) is not binary_expected
    # 3 rows here, 3 for the /predict reference: both were counted.
    assert _metric(svc, "model_predictions_total") - before == 6


def test_tritonclient_gets_one_output_binary_and_one_as_json(client, rows):
    outputs = [
        triton.InferRequestedOutput("label", binary_data=True),
        triton.InferRequestedOutput("probabilities", binary_data=False),
    ]
    result = client.infer(MODEL_NAME, _matrix(rows["sure"][:2], True), outputs=outputs)
    label, probabilities = result.get_response()["outputs"]
    assert label["parameters"]["binary_data_size"] > 0 and "data" not in label
    assert len(probabilities["data"]) == 4
    assert len(result.as_numpy("label")) == 2


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
def test_tritonclient_bad_values_are_refused_naming_the_input(svc, client, layout, binary_in):
    batch = [dict(sample_requests(1, seed=3)[0], radius_mean=1e6)]
    before = _metric(svc, "model_input_rejections_total", reason="out_of_range")
    with pytest.raises(InferenceServerException) as excinfo:
        client.infer(MODEL_NAME, LAYOUTS[layout](batch, binary_in))
    assert excinfo.value.status() == "422"
    field = "inputs[input-0][0].radius_mean" if layout == "matrix" else "inputs[radius_mean]"
    assert field in excinfo.value.message()
    assert "1000000" not in excinfo.value.message()
    after = _metric(svc, "model_input_rejections_total", reason="out_of_range")
    assert after - before == 1


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_held_row_in_binary_form_is_queued_for_review_and_answered_as_json(
    svc, receiver, rows, layout
):
    # tritonclient treats every status but 200 as an error, so the 202 is read in raw HTTP.
    low = rows["low"][:1]
    inputs = LAYOUTS[layout](low, True)
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs)
    sent = len(receiver.accepted)
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as http:
        answer = http.post(
            INFER,
            content=body,
            headers={
                "Inference-Header-Content-Length": str(header_length),
                "X-Request-ID": f"held-{layout}",
            },
        )
    assert answer.status_code == 202
    assert answer.headers["content-type"] == "application/json"
    payload = answer.json()
    assert payload["status"] == "pending_review"
    assert all(v is None for o in payload["outputs"] for v in o["data"])
    [item] = receiver.wait_for(sent + 1)[sent:]
    assert item["ref"] == payload["reviews"][0]["ref"]
    assert item["request_id"] == f"held-{layout}"
    assert item["input_summary"] == {k: low[0][k] for k in SUMMARY}


def test_tritonclient_reaches_a_numeric_model_with_one_fp64_or_fp32_matrix(tmp_path):
    """The request KServe's sklearn server takes: one [batch, n_features] numeric tensor."""
    info, pipeline, X = build_wine_package(tmp_path)
    env = service_env(info, MODEL_NAME=WINE_MODEL_NAME, MODEL_VERSION="1")
    service = start_service(tmp_path / "svc", env)
    try:
        service.wait_ready()
        wine = triton.InferenceServerClient(url=f"127.0.0.1:{service.port}")
        expected = pipeline.predict(X[:5]).tolist()
        for dtype, datatype in ((np.float64, "FP64"), (np.float32, "FP32")):
            for binary in (False, True):
                tensor = triton.InferInput("predict", [5, X.shape[1]], datatype)
                tensor.set_data_from_numpy(X[:5].astype(dtype), binary_data=binary)
                result = wine.infer(WINE_MODEL_NAME, [tensor])
                assert result.as_numpy("label").tolist() == expected
        wine.close()
        with httpx.Client(base_url=service.base_url, timeout=10.0) as http:
            wrong = http.post(
                f"/v2/models/{WINE_MODEL_NAME}/infer",
                json={
                    "inputs": [
                        {"name": "x", "datatype": "FP64", "shape": [1, 12], "data": [1.0] * 12}
                    ]
                },
            )
        assert wrong.status_code == 422
        error = wrong.json()["errors"][0]
        assert (error["field"], error["reason"]) == ("inputs[x].shape", "invalid_shape")
        assert "[batch, 13]" in error["message"]
    finally:
        service.stop()


# ------------------------------------------------------------------ raw HTTP: refused bodies


def _binary_body(header: dict[str, Any], *chunks: bytes, header_length: int | None = None) -> Any:
    head = json.dumps(header).encode()
    length = len(head) if header_length is None else header_length
    return head + b"".join(chunks), {"Inference-Header-Content-Length": str(length)}


def _row() -> dict[str, Any]:
    return sample_requests(1, seed=9)[0]


def _numeric_matrix(values: list[float], shape: list[int], size: int | None = None) -> Any:
    raw = struct.pack(f"<{len(values)}d", *values)
    tensor = {
        "name": "input-0",
        "datatype": "FP64",
        "shape": shape,
        "parameters": {"binary_data_size": len(raw) if size is None else size},
    }
    return {"inputs": [tensor]}, raw


def _bytes_elements(*values: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(v)) + v for v in values)


def _mixed_matrix_body(raw: bytes, size: int | None = None, shape: list[int] | None = None) -> Any:
    tensor = {
        "name": "input-0",
        "datatype": "BYTES",
        "shape": shape or [1, len(NAMES)],
        "parameters": {"binary_data_size": len(raw) if size is None else size},
    }
    return _binary_body({"inputs": [tensor]}, raw)


def _row_bytes(**overrides: bytes) -> list[bytes]:
    row = _row()
    return [overrides.get(n, str(row[n]).encode()) for n in NAMES]


def _bytes_after_the_tensors() -> Any:
    raw = _bytes_elements(*_row_bytes())
    body, headers = _mixed_matrix_body(raw)
    return body + b"extra", headers


def _refusal(svc: ServiceProcess, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as http:
        answer = http.post(INFER, content=body, headers=headers)
    return answer.status_code, answer.json()["errors"][0]


def test_a_binary_mixed_matrix_without_content_type_is_answered(svc, rows):
    batch = rows["sure"][:1]
    raw = _bytes_elements(*(str(batch[0][n]).encode() for n in NAMES))
    body, headers = _mixed_matrix_body(raw)
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as http:
        answer = http.post(INFER, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == _expected(svc, batch)["labels"]


REFUSED = [
    (
        "size-beyond-body",
        lambda: _mixed_matrix_body(_bytes_elements(*_row_bytes()), size=10_000),
        422,
        "inputs[input-0].parameters.binary_data_size",
        "invalid_binary_data",
    ),
    (
        "bytes-after-the-tensors",
        lambda: _bytes_after_the_tensors(),
        400,
        "body",
        "invalid_binary_data",
    ),
    (
        "header-length-beyond-body",
        lambda: _binary_body({"inputs": []}, header_length=100_000),
        400,
        "Inference-Header-Content-Length",
        "invalid_binary_data",
    ),
    (
        "header-length-not-a-number",
        lambda: (b"{}", {"Inference-Header-Content-Length": "ten"}),
        400,
        "Inference-Header-Content-Length",
        "invalid_binary_data",
    ),
    (
        "size-does-not-match-shape",
        lambda: _binary_body(*_numeric_matrix([1.0] * 7, [1, 8])),
        422,
        "inputs[input-0].parameters.binary_data_size",
        "invalid_binary_data",
    ),
    (
        "unknown-datatype",
        lambda: _binary_body(
            {
                "inputs": [
                    {
                        "name": "radius_mean",
                        "datatype": "FP128",
                        "shape": [1],
                        "parameters": {"binary_data_size": 16},
                    }
                ]
            },
            b"\0" * 16,
        ),
        422,
        "inputs[radius_mean].datatype",
        "invalid_datatype",
    ),
    (
        "numeric-matrix-for-mixed-features",
        lambda: _binary_body(*_numeric_matrix([1.0] * 8, [1, 8])),
        422,
        "inputs[input-0].datatype",
        "invalid_datatype",
    ),
    (
        "matrix-of-the-wrong-width",
        lambda: _mixed_matrix_body(_bytes_elements(*_row_bytes()[:7]), shape=[1, 7]),
        422,
        "inputs[input-0].shape",
        "invalid_shape",
    ),
    (
        "truncated-bytes-element",
        lambda: _mixed_matrix_body(_bytes_elements(*_row_bytes())[:-3]),
        422,
        "inputs[input-0].parameters.binary_data_size",
        "invalid_binary_data",
    ),
    (
        "bytes-element-not-utf8",
        lambda: _mixed_matrix_body(_bytes_elements(*_row_bytes(size_band=b"\xff\xfe"))),
        422,
        "inputs[input-0].parameters.binary_data_size",
        "wrong_type",
    ),
    (
        "text-not-a-number-in-a-numeric-column",
        lambda: _mixed_matrix_body(_bytes_elements(*_row_bytes(radius_mean=b"wide"))),
        422,
        "inputs[input-0][0].radius_mean",
        "wrong_type",
    ),
    (
        "negative-binary-size",
        lambda: _binary_body(*_numeric_matrix([1.0] * 8, [1, 8], size=-8)),
        422,
        "inputs[input-0].parameters.binary_data_size",
        "wrong_type",
    ),
]


@pytest.mark.parametrize(
    ("make", "status", "field", "reason"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
def test_a_bad_binary_body_is_refused_naming_the_input_and_the_reason(
    svc, make, status, field, reason
):
    body, headers = make()
    before = _metric(svc, "model_input_rejections_total", reason=reason)
    got_status, error = _refusal(svc, body, headers)
    assert (got_status, error["field"], error["reason"]) == (status, field, reason)
    assert _metric(svc, "model_input_rejections_total", reason=reason) - before == 1


def test_a_body_declared_as_another_media_type_is_still_refused(svc):
    status, error = _refusal(svc, b"{}", {"content-type": "text/plain"})
    assert (status, error["field"], error["reason"]) == (
        415,
        "content-type",
        "unsupported_media_type",
    )


def test_an_unknown_version_in_the_path_is_a_404(svc):
    with httpx.Client(base_url=svc.base_url, timeout=10.0) as http:
        answer = http.post(f"/v2/models/{MODEL_NAME}/versions/9/infer", json={"inputs": []})
    assert answer.status_code == 404 and "unknown version" in answer.json()["error"]
