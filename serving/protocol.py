"""The wire format of the inference service: request bodies in, response bodies out.

Turns an Open Inference Protocol v2 infer body, a `/predict` body or a `/-/faults` body into
validated inputs, or raises a `Rejection` naming the field at fault; shapes predictions, model
metadata and problems into response bodies. It must never touch the app's state, metrics or logs,
never echo a submitted value in an error, and, being on every request's path, never copy a batch
or validate it twice.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, TypedDict

from serving.faults import MAX_LATENCY_MS, FaultSettings
from serving.validation import (
    MAX_REPORTED_ERRORS,
    FieldError,
    InstanceValidator,
    Rejection,
    field_label,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from serving.packaging import LoadedModel, Prediction

JSON = "application/json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NUMERIC_DATATYPES = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8"})
_PLATFORMS = {"sklearn-skops": "sklearn", "onnx": "onnxruntime"}
_PREDICT_KEYS = frozenset({"instances"})
_INFER_KEYS = frozenset({"id", "inputs", "outputs", "parameters"})
_FAULT_KEYS = frozenset({"error_rate", "latency_ms"})


class InferOptions(TypedDict):
    """What an infer request asks for besides its inputs. A plain dict at run time: no class to
    build per request."""

    id: str | None
    outputs: set[str] | None


# ---- the HTTP envelope


def request_id_for(request: Request) -> str:
    """The caller's X-Request-ID when it is safe to echo and log, else a fresh one."""
    supplied = request.headers.get("x-request-id")
    if supplied and _REQUEST_ID.match(supplied):
        return supplied
    return uuid.uuid4().hex


def check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise Rejection.single(
            415, "content-type", "unsupported_media_type", "send the body as application/json"
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as the declared or the streamed size passes `limit`."""
    declared = request.headers.get("content-length")
    too_large = Rejection.single(
        413, "body", "body_too_large", f"request body exceeds {limit} bytes"
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# ---- request bodies


def _reject_unknown_keys(payload: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = [k for k in payload if k not in allowed]
    if unknown:
        raise Rejection(
            422,
            [
                FieldError(field_label(k), "unknown_field", "field is not part of the request")
                for k in unknown[:5]
            ],
        )


def parse_predict_request(
    payload: Any, validator: InstanceValidator
) -> tuple[dict[str, list], None]:
    """`{"instances": [{feature: value}, ...]}` to one validated list of values per feature."""
    if type(payload) is not dict:
        raise Rejection.single(422, "body", "wrong_type", 'expected an object with "instances"')
    _reject_unknown_keys(payload, _PREDICT_KEYS)
    if "instances" not in payload:
        raise Rejection.single(422, "instances", "missing_field", "required field is missing")
    return validator.instances_to_columns(payload["instances"]), None


def parse_infer_request(
    payload: Any, validator: InstanceValidator
) -> tuple[dict[str, list], InferOptions]:
    """OIP v2 request: one input tensor per feature, shape [batch] or [batch, 1], flat `data`;
    numeric features as FP64/FP32/INT*, categorical ones as BYTES (JSON strings)."""
    if type(payload) is not dict:
        raise Rejection.single(422, "body", "wrong_type", 'expected an object with "inputs"')
    _reject_unknown_keys(payload, _INFER_KEYS)
    request_id = payload.get("id")
    if request_id is not None and (
        type(request_id) is not str or len(request_id) > validator.max_string_length
    ):
        raise Rejection.single(422, "id", "wrong_type", "expected a short string")
    inputs = payload.get("inputs")
    if type(inputs) is not list:
        raise Rejection.single(422, "inputs", "wrong_type", "expected a list of input tensors")
    outputs = payload.get("outputs")
    requested: set[str] | None = None
    if outputs is not None:
        if type(outputs) is not list or any(
            type(o) is not dict or type(o.get("name")) is not str for o in outputs
        ):
            raise Rejection.single(422, "outputs", "wrong_type", 'expected [{"name": ...}]')
        requested = {o["name"] for o in outputs}

    # The tensors' data lists become the model's columns as they are: no copy.
    columns: dict[str, list] = {}
    batch: int | None = None
    errors: list[FieldError] = []
    for i, tensor in enumerate(inputs):
        if type(tensor) is not dict:
            errors.append(FieldError(f"inputs[{i}]", "wrong_type", "expected an object"))
            continue
        name = tensor.get("name")
        if type(name) is not str:
            errors.append(FieldError(f"inputs[{i}].name", "wrong_type", "expected a string"))
            continue
        rule = validator.rules.get(name)
        if rule is None:
            errors.append(
                FieldError(
                    f"inputs[{field_label(name)}]",
                    "unknown_field",
                    "input is not in the input schema",
                )
            )
            continue
        where = f"inputs[{name}]"
        if name in columns:
            errors.append(FieldError(where, "invalid_shape", "input given more than once"))
            continue
        datatype = tensor.get("datatype")
        expected = "BYTES" if rule.kind == "categorical" else "FP64"
        # A list or object here is not hashable: compare only strings (else a TypeError, a 500).
        if type(datatype) is not str:
            ok = False
        elif rule.kind == "categorical":
            ok = datatype == "BYTES"
        else:
            ok = datatype in _NUMERIC_DATATYPES
        if not ok:
            errors.append(
                FieldError(f"{where}.datatype", "invalid_datatype", f"expected {expected}")
            )
            continue
        shape, data = tensor.get("shape"), tensor.get("data")
        if type(data) is not list:
            errors.append(FieldError(f"{where}.data", "wrong_type", "expected a flat list"))
            continue
        if (
            type(shape) is not list
            or not 1 <= len(shape) <= 2
            or any(type(d) is not int for d in shape)
            or (len(shape) == 2 and shape[1] != 1)
            or shape[0] != len(data)
        ):
            errors.append(
                FieldError(
                    f"{where}.shape", "invalid_shape", "expected [batch] or [batch, 1] like data"
                )
            )
            continue
        if batch is None:
            batch = len(data)
            validator.check_batch_size(batch, f"{where}.data")
        elif len(data) != batch:
            errors.append(
                FieldError(f"{where}.shape", "invalid_shape", "all inputs need the same batch size")
            )
            continue
        columns[name] = data
    if len(columns) != len(validator.names):
        for name in validator.names:
            where = f"inputs[{name}]"
            if name not in columns and not any(e.field.startswith(where) for e in errors):
                errors.append(FieldError(where, "missing_field", "required input missing"))
    if errors:
        raise Rejection(422, errors[:MAX_REPORTED_ERRORS])
    validator.check_columns(columns, lambda name, row: f"inputs[{name}].data[{row}]")
    return columns, {"id": request_id, "outputs": requested}


def parse_fault_settings(payload: Any, current: FaultSettings) -> FaultSettings:
    """A `/-/faults` body; a setting it leaves out keeps its `current` value."""
    if type(payload) is not dict:
        raise Rejection.single(422, "body", "wrong_type", "expected an object")
    _reject_unknown_keys(payload, _FAULT_KEYS)
    error_rate = payload.get("error_rate", current.error_rate)
    latency_ms = payload.get("latency_ms", current.latency_ms)
    # Exact types: a JSON true is a Python int subclass and must not pass as 1.
    if type(error_rate) not in (int, float) or not 0 <= error_rate <= 1:
        raise Rejection.single(422, "error_rate", "out_of_range", "must be a number from 0 to 1")
    if type(latency_ms) is not int or not 0 <= latency_ms <= MAX_LATENCY_MS:
        raise Rejection.single(
            422, "latency_ms", "out_of_range", f"must be an integer from 0 to {MAX_LATENCY_MS}"
        )
    return FaultSettings(float(error_rate), latency_ms)


# ---- response bodies


def problem(status: int, errors: list[FieldError]) -> dict[str, Any]:
    """RFC 9457 problem JSON, with `error` as the OIP v2 error field."""
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:3])
    return {
        "type": "about:blank",
        "title": "invalid request" if status < 500 else "server error",
        "status": status,
        "detail": detail,
        "error": detail,
        "errors": [e.as_dict() for e in errors],
    }


def _label_datatype(model: LoadedModel) -> str:
    if model.task == "regression":
        return "FP64"
    return "BYTES" if all(isinstance(c, str) for c in model.classes) else "INT64"


def predict_response(
    model: LoadedModel,
    name: str,
    version: str,
    prediction: Prediction,
    _options: None,
    _request_id: str,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"predictions": prediction.labels, "model": name, "version": version}
    if prediction.probabilities is not None:
        classes = [str(c) for c in model.classes]
        payload["probabilities"] = [
            dict(zip(classes, row, strict=True)) for row in prediction.probabilities.tolist()
        ]
    return payload


def infer_response(
    model: LoadedModel,
    name: str,
    version: str,
    prediction: Prediction,
    options: InferOptions,
    request_id: str,
) -> dict[str, Any]:
    batch = len(prediction.labels)
    outputs = [
        {
            "name": "label",
            "datatype": _label_datatype(model),
            "shape": [batch],
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
    requested = options.get("outputs")
    if requested is not None:
        outputs = [o for o in outputs if o["name"] in requested]
    return {
        "model_name": name,
        "model_version": version,
        "id": options.get("id") or request_id,
        "outputs": outputs,
    }


def metadata_response(
    model: LoadedModel, name: str, version: str, track: str, validator: InstanceValidator
) -> dict[str, Any]:
    """OIP v2 model metadata: one input tensor per feature, a label and, for classifiers, the
    class probabilities."""
    inputs = [
        {
            "name": rule.name,
            "datatype": "BYTES" if rule.kind == "categorical" else "FP64",
            "shape": [-1],
        }
        for rule in validator.rules.values()
    ]
    outputs = [{"name": "label", "datatype": _label_datatype(model), "shape": [-1]}]
    if model.task == "classification":
        outputs.append(
            {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]}
        )
    return {
        "name": name,
        "versions": [version],
        "platform": _PLATFORMS.get(model.format, model.format),
        "inputs": inputs,
        "outputs": outputs,
        "parameters": {
            "task": model.task,
            "classes": model.classes,
            "digest": model.digest,
            "track": track,
            "input_schema": model.manifest["input_schema"],
            "output_schema": model.manifest.get("output_schema"),
        },
    }
