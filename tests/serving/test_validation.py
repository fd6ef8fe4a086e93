"""Input validation: every bad input is a 4xx naming the field and the reason, counted by reason."""

from __future__ import annotations

import json
import random
from typing import Any

import jsonschema
import pytest

from serving.validation import InstanceValidator, NonFinite, Rejection, parse_json
from tests.serving.conftest import valid_instance

JSON_HEADERS = {"content-type": "application/json"}


def _body(*instances: dict[str, Any]) -> bytes:
    return json.dumps({"instances": list(instances)}).encode()


def _raw_row(field: str, token: str) -> bytes:
    """A body whose `field` holds a raw JSON token (e.g. NaN), which json.dumps cannot write."""
    row = valid_instance(**{field: "__TOKEN__"})
    return json.dumps({"instances": [row]}).replace('"__TOKEN__"', token).encode()


def _without(field: str) -> dict[str, Any]:
    row = valid_instance()
    del row[field]
    return row


def _infer(inputs: list[dict[str, Any]]) -> bytes:
    return json.dumps({"inputs": inputs}).encode()


def _tensors(batch: int = 1, **overrides: dict[str, Any]) -> list[dict[str, Any]]:
    row = valid_instance()
    tensors = []
    for name, value in row.items():
        tensor = {
            "name": name,
            "datatype": "BYTES" if isinstance(value, str) else "FP64",
            "shape": [batch],
            "data": [value] * batch,
        }
        tensor.update(overrides.get(name, {}))
        tensors.append(tensor)
    return tensors


# (id, path, body, headers, status, field, reason)
PREDICT = "/predict"
INFER = "/v2/models/breast-cancer/infer"
BAD_INPUTS = [
    (
        "body-too-large",
        PREDICT,
        b"{" + b" " * 5000 + b"}",
        JSON_HEADERS,
        413,
        "body",
        "body_too_large",
    ),
    (
        "text-plain",
        PREDICT,
        _body(valid_instance()),
        {"content-type": "text/plain"},
        415,
        "content-type",
        "unsupported_media_type",
    ),
    (
        "form-encoded",
        PREDICT,
        b"a=1",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "content-type",
        "unsupported_media_type",
    ),
    ("malformed-json", PREDICT, b'{"instances": [', JSON_HEADERS, 400, "body", "malformed_json"),
    (
        "invalid-utf8",
        PREDICT,
        b'{"instances": "\xff"}',
        JSON_HEADERS,
        400,
        "body",
        "malformed_json",
    ),
    (
        "nan-token",
        PREDICT,
        _raw_row("radius_mean", "NaN"),
        JSON_HEADERS,
        422,
        "instances[0].radius_mean",
        "not_finite",
    ),
    (
        "infinity-token",
        PREDICT,
        _raw_row("texture_mean", "Infinity"),
        JSON_HEADERS,
        422,
        "instances[0].texture_mean",
        "not_finite",
    ),
    (
        "minus-infinity-token",
        PREDICT,
        _raw_row("area_worst", "-Infinity"),
        JSON_HEADERS,
        422,
        "instances[0].area_worst",
        "not_finite",
    ),
    (
        "overflowing-float",
        PREDICT,
        _raw_row("area_worst", "1e999"),
        JSON_HEADERS,
        422,
        "instances[0].area_worst",
        "not_finite",
    ),
    (
        "above-maximum",
        PREDICT,
        _body(valid_instance(radius_mean=1e6)),
        JSON_HEADERS,
        422,
        "instances[0].radius_mean",
        "out_of_range",
    ),
    (
        "below-minimum",
        PREDICT,
        _body(valid_instance(smoothness_mean=-0.5)),
        JSON_HEADERS,
        422,
        "instances[0].smoothness_mean",
        "out_of_range",
    ),
    (
        "string-for-number",
        PREDICT,
        _body(valid_instance(radius_mean="14")),
        JSON_HEADERS,
        422,
        "instances[0].radius_mean",
        "wrong_type",
    ),
    (
        "bool-for-number",
        PREDICT,
        _body(valid_instance(radius_mean=True)),
        JSON_HEADERS,
        422,
        "instances[0].radius_mean",
        "wrong_type",
    ),
    (
        "number-for-category",
        PREDICT,
        _body(valid_instance(size_band=2)),
        JSON_HEADERS,
        422,
        "instances[0].size_band",
        "wrong_type",
    ),
    (
        "unknown-category",
        PREDICT,
        _body(valid_instance(size_band="huge")),
        JSON_HEADERS,
        422,
        "instances[0].size_band",
        "unknown_category",
    ),
    (
        "string-too-long",
        PREDICT,
        _body(valid_instance(size_band="x" * 300)),
        JSON_HEADERS,
        422,
        "instances[0].size_band",
        "string_too_long",
    ),
    (
        "unknown-field",
        PREDICT,
        _body(valid_instance(shoe_size=42)),
        JSON_HEADERS,
        422,
        "instances[0].shoe_size",
        "unknown_field",
    ),
    (
        "missing-field",
        PREDICT,
        _body(_without("area_worst")),
        JSON_HEADERS,
        422,
        "instances[0].area_worst",
        "missing_field",
    ),
    (
        "fourth-row-bad",
        PREDICT,
        _body(*[valid_instance()] * 3, valid_instance(concavity_mean=9.0)),
        JSON_HEADERS,
        422,
        "instances[3].concavity_mean",
        "out_of_range",
    ),
    (
        "batch-too-large",
        PREDICT,
        _body(*[valid_instance()] * 9),
        JSON_HEADERS,
        413,
        "instances",
        "batch_too_large",
    ),
    ("empty-batch", PREDICT, _body(), JSON_HEADERS, 422, "instances", "empty_batch"),
    (
        "instances-not-a-list",
        PREDICT,
        b'{"instances": {"a": 1}}',
        JSON_HEADERS,
        422,
        "instances",
        "wrong_type",
    ),
    (
        "instance-not-an-object",
        PREDICT,
        b'{"instances": [[1, 2]]}',
        JSON_HEADERS,
        422,
        "instances[0]",
        "wrong_type",
    ),
    ("body-not-an-object", PREDICT, b"[1, 2]", JSON_HEADERS, 422, "body", "wrong_type"),
    ("no-instances", PREDICT, b"{}", JSON_HEADERS, 422, "instances", "missing_field"),
    (
        "unknown-top-level-key",
        PREDICT,
        b'{"instances": [], "extra": 1}',
        JSON_HEADERS,
        422,
        "extra",
        "unknown_field",
    ),
    (
        "oip-wrong-datatype",
        INFER,
        _infer(_tensors(radius_mean={"datatype": "BYTES"})),
        JSON_HEADERS,
        422,
        "inputs[radius_mean].datatype",
        "invalid_datatype",
    ),
    (
        "oip-shape-mismatch",
        INFER,
        _infer(_tensors(texture_mean={"shape": [2]})),
        JSON_HEADERS,
        422,
        "inputs[texture_mean].shape",
        "invalid_shape",
    ),
    (
        "oip-unknown-input",
        INFER,
        _infer([*_tensors(), {"name": "age", "datatype": "FP64", "shape": [1], "data": [1]}]),
        JSON_HEADERS,
        422,
        "inputs[age]",
        "unknown_field",
    ),
    (
        "oip-missing-input",
        INFER,
        _infer(_tensors()[1:]),
        JSON_HEADERS,
        422,
        "inputs[radius_mean]",
        "missing_field",
    ),
    (
        "oip-out-of-range-cell",
        INFER,
        _infer(_tensors(batch=3, area_worst={"data": [800.0, 900.0, 1e9]})),
        JSON_HEADERS,
        422,
        "inputs[area_worst].data[2]",
        "out_of_range",
    ),
    (
        "oip-batch-too-large",
        INFER,
        _infer(_tensors(batch=9)),
        JSON_HEADERS,
        413,
        "inputs[radius_mean].data",
        "batch_too_large",
    ),
    (
        "oip-nan-token",
        INFER,
        _infer(_tensors(smoothness_mean={"data": ["__NAN__"]})).replace(b'"__NAN__"', b"NaN"),
        JSON_HEADERS,
        422,
        "inputs[smoothness_mean].data[0]",
        "not_finite",
    ),
]


@pytest.fixture
def app(make_app):
    return make_app(max_body_bytes=4096, max_batch=8)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "field", "reason"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_it_rejects_bad_input_naming_field_and_reason(
    app, path, body, headers, status, field, reason
):
    before = app.metric("model_input_rejections_total", reason=reason)
    response = app.client.post(path, content=body, headers=headers)
    assert response.status_code == status
    problem = response.json()
    assert problem["errors"][0]["field"] == field
    assert problem["errors"][0]["reason"] == reason
    assert field in problem["detail"]
    assert app.metric("model_input_rejections_total", reason=reason) == before + 1
    endpoint = "predict" if path == PREDICT else "infer"
    assert app.metric("model_requests_total", endpoint=endpoint, code=str(status)) == 1
    assert app.metric("model_predictions_total") == 0


def test_it_reports_every_bad_field_of_a_request(app):
    body = _body(valid_instance(radius_mean=-1.0), valid_instance(size_band="tiny", area_worst="x"))
    errors = app.client.post(PREDICT, content=body, headers=JSON_HEADERS).json()["errors"]
    assert [(e["field"], e["reason"]) for e in errors] == [
        ("instances[0].radius_mean", "out_of_range"),
        ("instances[1].area_worst", "wrong_type"),
        ("instances[1].size_band", "unknown_category"),
    ]


def test_it_rejects_a_declared_content_length_over_the_limit_before_reading(app):
    response = app.client.post(
        PREDICT, content=b"{}", headers={**JSON_HEADERS, "content-length": "999999"}
    )
    assert response.status_code == 413


def test_error_messages_never_echo_the_submitted_value(app):
    body = _body(valid_instance(size_band="SECRET-VALUE", radius_mean=123456.789))
    text = app.client.post(PREDICT, content=body, headers=JSON_HEADERS).text
    assert "SECRET-VALUE" not in text and "123456.789" not in text


def test_parse_json_marks_nan_tokens_instead_of_producing_floats():
    parsed = parse_json(b'{"a": NaN, "b": -Infinity}')
    assert isinstance(parsed["a"], NonFinite) and parsed["b"].token == "-Infinity"
    with pytest.raises(Rejection) as excinfo:
        parse_json(b"1" * 5000)  # beyond Python's int digit limit
    assert excinfo.value.reason == "malformed_json"


def test_compiled_validator_agrees_with_jsonschema(skops_v1):
    schema = skops_v1.manifest["input_schema"]
    compiled = InstanceValidator(schema, max_string_length=256, max_batch=10)
    reference = jsonschema.Draft202012Validator(schema)
    rng = random.Random(7)
    variants: list[Any] = [-1.0, 0.0, 5.5, 1e5, "7", None, True, "small", "large", "huge", 3]
    checked = 0
    for _ in range(400):
        row: dict[str, Any] = valid_instance()
        for _ in range(rng.randint(0, 2)):
            row[rng.choice(list(row))] = rng.choice(variants)
        if rng.random() < 0.1:
            row.pop(rng.choice(list(row)))
        if rng.random() < 0.05:
            row["extra"] = 1
        expected = reference.is_valid(row)
        try:
            compiled.instances_to_columns([row])
            accepted = True
        except Rejection:
            accepted = False
        assert accepted == expected, row
        checked += 1
    assert checked == 400


def test_validated_columns_follow_the_manifest_feature_order(skops_v1):
    compiled = InstanceValidator(
        skops_v1.manifest["input_schema"], max_string_length=256, max_batch=10
    )
    columns = compiled.instances_to_columns([valid_instance(), valid_instance(radius_mean=9.0)])
    assert list(columns) == skops_v1.manifest["feature_names"]
    assert columns["radius_mean"] == [14.1, 9.0]
