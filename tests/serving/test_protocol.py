"""The wire format on its own, without an app: bodies in, validated columns or a Rejection naming
the field out. End-to-end status codes, metrics and headers are pinned in test_app/test_validation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from starlette.requests import Request

from serving.faults import FaultSettings
from serving.packaging import LoadedModel, Prediction
from serving.protocol import (
    check_content_type,
    infer_response,
    metadata_response,
    parse_fault_settings,
    parse_infer_request,
    parse_predict_request,
    problem,
    read_body,
)
from serving.validation import FieldError, InstanceValidator, Rejection

SCHEMA = {
    "type": "object",
    "properties": {
        "radius": {"type": "number", "minimum": 0},
        "band": {"type": "string", "enum": ["small", "large"]},
    },
    "required": ["radius", "band"],
    "additionalProperties": False,
}
VALIDATOR = InstanceValidator(SCHEMA, max_string_length=16, max_batch=4)


def _tensors(batch: int = 1, **overrides: dict[str, Any]) -> list[dict[str, Any]]:
    tensors = [
        {"name": "radius", "datatype": "FP64", "shape": [batch], "data": [1.5] * batch},
        {"name": "band", "datatype": "BYTES", "shape": [batch], "data": ["small"] * batch},
    ]
    for tensor in tensors:
        tensor.update(overrides.get(tensor["name"], {}))
    return tensors


def _model(task: str = "classification", classes: list[Any] | None = None) -> LoadedModel:
    manifest = {
        "name": "tumours",
        "format": "onnx",
        "task": task,
        "classes": ["benign", "malignant"] if classes is None else classes,
        "input_schema": SCHEMA,
    }
    return LoadedModel(manifest=manifest, digest="sha256:" + "0" * 64, path=Path(), _runner=None)


def _request(headers: dict[str, str], *chunks: bytes) -> Request:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ] or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    scope = {
        "type": "http",
        "method": "POST",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    return Request(scope, receive)


def _rejection(parse: Any, *args: Any) -> Rejection:
    with pytest.raises(Rejection) as excinfo:
        parse(*args)
    return excinfo.value


# ---- request bodies


def test_a_predict_body_becomes_one_column_per_feature():
    body = {"instances": [{"radius": 2.0, "band": "large"}, {"band": "small", "radius": 0}]}
    columns, options = parse_predict_request(body, VALIDATOR)
    assert columns == {"radius": [2.0, 0], "band": ["large", "small"]}
    assert options is None


def test_an_oip_v2_body_hands_the_tensors_data_to_the_model_without_copying():
    body = {"id": "req-1", "inputs": _tensors(batch=2), "outputs": [{"name": "label"}]}
    columns, options = parse_infer_request(body, VALIDATOR)
    assert columns == {"radius": [1.5, 1.5], "band": ["small", "small"]}
    assert columns["radius"] is body["inputs"][0]["data"]
    assert options == {"id": "req-1", "outputs": {"label"}, "binary": frozenset()}


def test_an_oip_v2_body_accepts_column_shapes_and_any_numeric_datatype():
    body = {
        "inputs": _tensors(batch=2, radius={"datatype": "INT32", "shape": [2, 1], "data": [2, 3]})
    }
    columns, options = parse_infer_request(body, VALIDATOR)
    assert list(columns) == ["radius", "band"]
    assert options == {"id": None, "outputs": None, "binary": False}


# (id, payload, status, field, reason): the rejections the parser raises itself and that
# test_validation does not already send over HTTP; a cell's value is InstanceValidator's to judge.
INFER_REJECTIONS = [
    ("body-not-an-object", [], 422, "body", "wrong_type"),
    ("unknown-key", {"inputs": _tensors(), "priority": 1}, 422, "priority", "unknown_field"),
    ("id-not-a-string", {"id": 7, "inputs": _tensors()}, 422, "id", "wrong_type"),
    ("id-too-long", {"id": "x" * 17, "inputs": _tensors()}, 422, "id", "wrong_type"),
    ("inputs-not-a-list", {"inputs": {}}, 422, "inputs", "wrong_type"),
    (
        "outputs-not-named",
        {"inputs": _tensors(), "outputs": ["label"]},
        422,
        "outputs",
        "wrong_type",
    ),
    ("tensor-not-an-object", {"inputs": [[], *_tensors()]}, 422, "inputs[0]", "wrong_type"),
    (
        "tensor-name-not-a-string",
        {"inputs": _tensors(radius={"name": 3})},
        422,
        "inputs[0].name",
        "wrong_type",
    ),
    (
        "input-given-twice",
        {"inputs": [*_tensors(), _tensors()[0]]},
        422,
        "inputs[radius]",
        "invalid_shape",
    ),
    (
        # Was a TypeError (a list is not hashable) answered 500.
        "datatype-not-a-string",
        {"inputs": _tensors(radius={"datatype": []})},
        422,
        "inputs[radius].datatype",
        "invalid_datatype",
    ),
    (
        "category-as-number",
        {"inputs": _tensors(band={"datatype": "FP64"})},
        422,
        "inputs[band].datatype",
        "invalid_datatype",
    ),
    (
        "data-not-a-list",
        {"inputs": _tensors(radius={"data": 1.5})},
        422,
        "inputs[radius].data",
        "wrong_type",
    ),
    (
        "shape-not-a-column",
        {"inputs": _tensors(radius={"shape": [1, 2]})},
        422,
        "inputs[radius].shape",
        "invalid_shape",
    ),
    (
        "batch-sizes-differ",
        {"inputs": [_tensors()[0], _tensors(batch=2)[1]]},
        422,
        "inputs[band].shape",
        "invalid_shape",
    ),
    (
        "empty-batch",
        {"inputs": _tensors(batch=0)},
        422,
        "inputs[radius].data",
        "empty_batch",
    ),
]


@pytest.mark.parametrize(
    ("payload", "status", "field", "reason"),
    [case[1:] for case in INFER_REJECTIONS],
    ids=[case[0] for case in INFER_REJECTIONS],
)
def test_an_oip_v2_body_is_rejected_naming_the_field(payload, status, field, reason):
    rejection = _rejection(parse_infer_request, payload, VALIDATOR)
    assert (rejection.status, rejection.errors[0].field, rejection.reason) == (
        status,
        field,
        reason,
    )


def test_an_oip_v2_body_reports_every_bad_tensor_and_no_input_twice():
    payload = {"inputs": [_tensors(radius={"datatype": "BYTES"})[0]]}
    errors = _rejection(parse_infer_request, payload, VALIDATOR).errors
    assert [(e.field, e.reason) for e in errors] == [
        ("inputs[radius].datatype", "invalid_datatype"),
        ("inputs[band]", "missing_field"),
    ]


def test_an_unknown_top_level_key_is_named_printably_and_at_most_five_are_listed():
    payload = {"instances": [], **{f"k{i}": 1 for i in range(7)}, "tab\tkey": 1}
    errors = _rejection(parse_predict_request, payload, VALIDATOR).errors
    assert [e.field for e in errors] == ["k0", "k1", "k2", "k3", "k4"]
    single = _rejection(parse_predict_request, {"instances": [], "tab\tkey": 1}, VALIDATOR)
    assert single.errors[0].field == "tab\\tkey"


def test_fault_settings_keep_the_current_value_of_what_the_body_leaves_out():
    current = FaultSettings(error_rate=0.25, latency_ms=40)
    assert parse_fault_settings({"latency_ms": 0}, current) == FaultSettings(0.25, 0)
    assert parse_fault_settings({"error_rate": 1}, current) == FaultSettings(1.0, 40)


FAULT_REJECTIONS = [
    ("body-not-an-object", [0.5], "body", "wrong_type"),
    ("unknown-key", {"jitter_ms": 5}, "jitter_ms", "unknown_field"),
    ("error-rate-as-boolean", {"error_rate": True}, "error_rate", "out_of_range"),
    ("error-rate-as-string", {"error_rate": "0.5"}, "error_rate", "out_of_range"),
    ("latency-as-float", {"latency_ms": 1.5}, "latency_ms", "out_of_range"),
    ("latency-over-a-minute", {"latency_ms": 60_001}, "latency_ms", "out_of_range"),
]


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [case[1:] for case in FAULT_REJECTIONS],
    ids=[case[0] for case in FAULT_REJECTIONS],
)
def test_fault_settings_are_rejected_naming_the_field(payload, field, reason):
    rejection = _rejection(parse_fault_settings, payload, FaultSettings())
    assert (rejection.status, rejection.errors[0].field, rejection.reason) == (422, field, reason)


# ---- the HTTP envelope


def test_the_json_media_type_may_carry_parameters_in_any_case():
    check_content_type(_request({"content-type": "Application/JSON; charset=utf-8"}))
    rejection = _rejection(check_content_type, _request({"content-type": "text/plain"}))
    assert (rejection.status, rejection.errors[0].field) == (415, "content-type")


def test_a_body_without_a_content_type_is_read_as_json():
    # tritonclient sends its JSON requests without one.
    check_content_type(_request({}))


def test_a_streamed_body_is_refused_once_it_passes_the_limit_without_a_content_length():
    assert asyncio.run(read_body(_request({}, b"12345", b"678"), 8)) == b"12345678"
    with pytest.raises(Rejection) as excinfo:
        asyncio.run(read_body(_request({}, b"12345", b"6789"), 8))
    assert (excinfo.value.status, excinfo.value.errors[0].field) == (413, "body")


# ---- response bodies


def test_a_problem_details_the_first_three_errors_and_lists_them_all():
    errors = [
        FieldError(f"inputs[f{i}]", "missing_field", "required input missing") for i in range(4)
    ]
    body = problem(422, errors)
    assert body["detail"] == body["error"]
    assert body["detail"].count("required input missing") == 3
    assert len(body["errors"]) == 4 and body["title"] == "invalid request"
    assert problem(504, errors[:1])["title"] == "server error"


def test_an_infer_response_answers_with_the_request_id_when_the_body_had_none():
    prediction = Prediction(labels=["benign"], probabilities=np.array([[0.75, 0.25]]))
    body = infer_response(
        _model(), "tumours", "v3", prediction, {"id": None, "outputs": None}, "abc"
    )
    assert body["id"] == "abc" and body["model_version"] == "v3"
    assert [(o["name"], o["shape"]) for o in body["outputs"]] == [
        ("label", [1]),
        ("probabilities", [1, 2]),
    ]


@pytest.mark.parametrize(
    ("task", "classes", "label_datatype", "outputs"),
    [
        ("classification", ["benign", "malignant"], "BYTES", 2),
        ("classification", [0, 1], "INT64", 2),
        ("regression", [], "FP64", 1),
    ],
)
def test_model_metadata_types_the_label_by_task_and_classes(task, classes, label_datatype, outputs):
    meta = metadata_response(_model(task, classes), "tumours", "v3", "stable", VALIDATOR)
    assert meta["outputs"][0] == {"name": "label", "datatype": label_datatype, "shape": [-1]}
    assert len(meta["outputs"]) == outputs
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("radius", "FP64"),
        ("band", "BYTES"),
    ]
