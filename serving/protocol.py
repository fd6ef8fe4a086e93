"""The wire format of the inference service: request bodies in, response bodies out.

Turns an Open Inference Protocol v2 infer body, a `/predict` body or a `/-/faults` body into
validated inputs, or raises a `Rejection` naming the field at fault; shapes predictions, model
metadata and problems into response bodies. It must never touch the app's state, metrics or logs,
never echo a submitted value in an error, and, being on every request's path, never copy a batch
or validate it twice.

OIP v2 infer bodies come in the forms the clients people already have send: one tensor per
feature (our own clients), one `[batch, n_features]` tensor in the input schema's order (KServe's
sklearn server clients), each as JSON `data` or in the binary tensor data extension (NVIDIA's
tritonclient by default: a JSON header of `Inference-Header-Content-Length` bytes, then each
input's raw little-endian bytes in order, BYTES elements 4-byte length-prefixed). Outputs are
answered as JSON or binary, as asked (`binary_data` per output, `binary_data_output` per request).
"""

from __future__ import annotations

import json
import math
import re
import struct
import uuid
from typing import TYPE_CHECKING, Any, NamedTuple, TypedDict

import numpy as np

from serving.faults import MAX_LATENCY_MS, FaultSettings
from serving.validation import (
    MAX_REPORTED_ERRORS,
    FieldError,
    InstanceValidator,
    Rejection,
    field_label,
    parse_json,
)

if TYPE_CHECKING:
    from starlette.requests import Request

    from serving.packaging import LoadedModel, Prediction

JSON = "application/json"
OCTET_STREAM = "application/octet-stream"
# A body with no Content-Type is read as JSON (tritonclient sends none); a binary tensor body is
# announced by Inference-Header-Content-Length, whatever its Content-Type says.
JSON_BODY_TYPES = frozenset({"", JSON})
INFER_BODY_TYPES = frozenset({"", JSON, OCTET_STREAM})
HEADER_LENGTH = "inference-header-content-length"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
# OIP v2 numeric datatypes and their little-endian layout in the binary tensor data extension.
_NUMPY_DTYPES = {
    "FP64": np.dtype("<f8"),
    "FP32": np.dtype("<f4"),
    "FP16": np.dtype("<f2"),
    "INT64": np.dtype("<i8"),
    "INT32": np.dtype("<i4"),
    "INT16": np.dtype("<i2"),
    "INT8": np.dtype("i1"),
    "UINT64": np.dtype("<u8"),
    "UINT32": np.dtype("<u4"),
    "UINT16": np.dtype("<u2"),
    "UINT8": np.dtype("u1"),
}
_NUMERIC_DATATYPES = frozenset(_NUMPY_DTYPES)
_NUMERIC_LISTING = "FP64, FP32, FP16, INT8..INT64 or UINT8..UINT64"
_BYTES_PREFIX = struct.Struct("<I")
_PLATFORMS = {"sklearn-skops": "sklearn", "onnx": "onnxruntime"}
_PREDICT_KEYS = frozenset({"instances"})
# model_name/model_version appear in the extension's own examples: the URL decides, so ignored.
_INFER_KEYS = frozenset({"id", "inputs", "outputs", "parameters", "model_name", "model_version"})
_FAULT_KEYS = frozenset({"error_rate", "latency_ms"})


class InferOptions(TypedDict):
    """What an infer request asks for besides its inputs. A plain dict at run time: no class to
    build per request."""

    id: str | None
    outputs: set[str] | None
    # Outputs answered in the binary tensor data extension: True for every output, else a set.
    binary: bool | frozenset[str]


# ---- the HTTP envelope


def request_id_for(request: Request) -> str:
    """The caller's X-Request-ID when it is safe to echo and log, else a fresh one."""
    supplied = request.headers.get("x-request-id")
    if supplied and _REQUEST_ID.match(supplied):
        return supplied
    return uuid.uuid4().hex


def check_content_type(request: Request, allowed: frozenset[str] = JSON_BODY_TYPES) -> None:
    """Refuse a body declared as something this endpoint cannot read (a form, plain text); no
    Content-Type at all is read as JSON."""
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in allowed:
        accepted = " or ".join(sorted(t for t in allowed if t))
        raise Rejection.single(
            415, "content-type", "unsupported_media_type", f"send the body as {accepted}"
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


def split_infer_body(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    """The JSON header of an infer body and the binary tensor data after it (empty without
    Inference-Header-Content-Length: then the whole body is JSON)."""
    if header_length is None:
        return parse_json(body), memoryview(b"")
    value = header_length.strip()
    if not value.isdigit() or not 0 < int(value) <= len(body):
        raise Rejection.single(
            400,
            "Inference-Header-Content-Length",
            "invalid_binary_data",
            f"must be the length of the JSON header, from 1 to the body's {len(body)} bytes",
        )
    split = int(value)
    return parse_json(body[:split]), memoryview(body)[split:]


class _Tensor(NamedTuple):
    where: str
    name: str
    datatype: Any
    shape: list[int]
    values: list


class _TensorError(Exception):
    def __init__(self, field: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.error = FieldError(field, reason, message)


def _decode_bytes_elements(raw: memoryview, count: int, where: str) -> list[str]:
    """BYTES tensor data: each element a 4-byte little-endian length, then that many bytes."""
    values: list[str] = []
    offset, end = 0, len(raw)
    while offset < end:
        if offset + 4 > end:
            raise _TensorError(where, "invalid_binary_data", "truncated BYTES element length")
        (size,) = _BYTES_PREFIX.unpack_from(raw, offset)
        offset += 4
        if offset + size > end:
            raise _TensorError(
                where, "invalid_binary_data", f"BYTES element {len(values)} runs past its data"
            )
        try:
            values.append(str(raw[offset : offset + size], "utf-8"))
        except UnicodeDecodeError:
            raise _TensorError(
                where, "wrong_type", f"BYTES element {len(values)} is not UTF-8 text"
            ) from None
        offset += size
        if len(values) > count:
            break
    if len(values) != count:
        raise _TensorError(
            where, "invalid_binary_data", f"shape holds {count} elements, the data another count"
        )
    return values


def _element_count(shape: Any, where: str) -> int:
    if (
        type(shape) is not list
        or not 1 <= len(shape) <= 2
        or any(type(d) is not int or d < 0 for d in shape)
    ):
        raise _TensorError(
            f"{where}.shape", "invalid_shape", "expected [batch] or [batch, n] of non-negative ints"
        )
    return math.prod(shape)


def _tensor_values(tensor: dict[str, Any], where: str, raw: memoryview | None) -> list:
    """The flat row-major values of one input tensor, from JSON `data` or its binary data."""
    datatype = tensor.get("datatype")
    count = _element_count(tensor.get("shape"), where)
    if raw is not None:
        if datatype == "BYTES":
            return _decode_bytes_elements(raw, count, f"{where}.parameters.binary_data_size")
        dtype = _NUMPY_DTYPES.get(datatype) if type(datatype) is str else None
        if dtype is None:
            raise _TensorError(
                f"{where}.datatype", "invalid_datatype", f"expected BYTES or {_NUMERIC_LISTING}"
            )
        if len(raw) != count * dtype.itemsize:
            raise _TensorError(
                f"{where}.parameters.binary_data_size",
                "invalid_binary_data",
                f"shape holds {count} {datatype} elements ({count * dtype.itemsize} bytes), "
                f"binary_data_size is {len(raw)}",
            )
        return np.frombuffer(raw, dtype=dtype).tolist()
    data = tensor.get("data")
    if type(data) is not list:
        raise _TensorError(f"{where}.data", "wrong_type", "expected a list (or binary_data_size)")
    if data and type(data[0]) is list:
        # Nested row-major data ([[...], [...]]) is allowed by the protocol: flatten one level.
        if any(type(row) is not list for row in data):
            raise _TensorError(f"{where}.data", "wrong_type", "mixed nested and flat data")
        data = [value for row in data for value in row]
    if len(data) != count:
        raise _TensorError(
            f"{where}.shape", "invalid_shape", f"shape holds {count} values, data has {len(data)}"
        )
    return data


def _text_to_number(value: Any) -> Any:
    """A numeric feature sent inside a BYTES [batch, n] tensor arrives as text ("13.2"): the
    number it spells, or the value unchanged so validation names the cell."""
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _parse_outputs(outputs: Any, binary_default: bool) -> tuple[set[str] | None, Any]:
    if outputs is None:
        return None, binary_default
    if type(outputs) is not list or any(
        type(o) is not dict
        or type(o.get("name")) is not str
        or type(o.get("parameters", {})) is not dict
        or type(o.get("parameters", {}).get("binary_data", False)) is not bool
        for o in outputs
    ):
        raise Rejection.single(
            422,
            "outputs",
            "wrong_type",
            'expected [{"name": ..., "parameters": {"binary_data": bool}}]',
        )
    binary = frozenset(
        o["name"] for o in outputs if o.get("parameters", {}).get("binary_data", binary_default)
    )
    return {o["name"] for o in outputs}, binary


def parse_infer_request(
    payload: Any, validator: InstanceValidator, binary: memoryview | bytes = b""
) -> tuple[dict[str, list], InferOptions]:
    """OIP v2 request to one validated list of values per feature. Inputs: one tensor per
    feature (shape [batch] or [batch, 1]; numeric features FP64/FP32/INT*, categorical ones
    BYTES), or a single `[batch, n_features]` tensor, columns in the input schema's order (any
    numeric datatype when every feature is numeric, else BYTES with numbers as text). `binary`
    is the tensor data after an `Inference-Header-Content-Length` header."""
    if type(payload) is not dict:
        raise Rejection.single(422, "body", "wrong_type", 'expected an object with "inputs"')
    _reject_unknown_keys(payload, _INFER_KEYS)
    request_id = payload.get("id")
    if request_id is not None and (
        type(request_id) is not str or len(request_id) > validator.max_string_length
    ):
        raise Rejection.single(422, "id", "wrong_type", "expected a short string")
    parameters = payload.get("parameters")
    if parameters is None:
        parameters = {}
    elif type(parameters) is not dict:
        raise Rejection.single(422, "parameters", "wrong_type", "expected an object")
    binary_default = parameters.get("binary_data_output", False)
    if type(binary_default) is not bool:
        raise Rejection.single(
            422, "parameters.binary_data_output", "wrong_type", "expected true or false"
        )
    inputs = payload.get("inputs")
    if type(inputs) is not list:
        raise Rejection.single(422, "inputs", "wrong_type", "expected a list of input tensors")
    requested, binary_outputs = _parse_outputs(payload.get("outputs"), binary_default)
    options: InferOptions = {"id": request_id, "outputs": requested, "binary": binary_outputs}

    # Every tensor's values, flat; binary data is cut in input order before anything else is
    # judged, so one bad tensor does not shift the next one's bytes.
    tensors: list[_Tensor] = []
    errors: list[FieldError] = []
    offset, available = 0, len(binary)
    for i, tensor in enumerate(inputs):
        if type(tensor) is not dict:
            errors.append(FieldError(f"inputs[{i}]", "wrong_type", "expected an object"))
            continue
        name = tensor.get("name")
        where = f"inputs[{field_label(name)}]" if type(name) is str else f"inputs[{i}]"
        try:
            params = tensor.get("parameters")
            raw: memoryview | None = None
            if params is not None:
                if type(params) is not dict:
                    raise _TensorError(f"{where}.parameters", "wrong_type", "expected an object")
                size = params.get("binary_data_size")
                if size is not None:
                    if type(size) is not int or size < 0:
                        raise _TensorError(
                            f"{where}.parameters.binary_data_size",
                            "wrong_type",
                            "expected a non-negative integer",
                        )
                    if offset + size > available:
                        raise _TensorError(
                            f"{where}.parameters.binary_data_size",
                            "invalid_binary_data",
                            f"{size} bytes declared, {available - offset} left in the body",
                        )
                    raw = memoryview(binary)[offset : offset + size]
                    offset += size
            if type(name) is not str:
                raise _TensorError(f"inputs[{i}].name", "wrong_type", "expected a string")
            values = _tensor_values(tensor, where, raw)
            tensors.append(_Tensor(where, name, tensor.get("datatype"), tensor["shape"], values))
        except _TensorError as exc:
            errors.append(exc.error)
    if offset != available and not errors:
        raise Rejection.single(
            400,
            "body",
            "invalid_binary_data",
            f"{available - offset} bytes after the JSON header belong to no input's "
            "binary_data_size",
        )
    if errors:
        raise Rejection(422, errors[:MAX_REPORTED_ERRORS])
    if len(tensors) == 1 and tensors[0].name not in validator.rules:
        return _columns_from_matrix(tensors[0], validator), options
    return _columns_from_features(tensors, validator), options


def _columns_from_matrix(tensor: _Tensor, validator: InstanceValidator) -> dict[str, list]:
    """One [batch, n_features] tensor, columns in the input schema's order."""
    where, datatype, shape, values = tensor.where, tensor.datatype, tensor.shape, tensor.values
    names = validator.names
    width = len(names)
    numeric = all(rule.kind == "numeric" for rule in validator.rules.values())
    if datatype != "BYTES" and not (numeric and datatype in _NUMERIC_DATATYPES):
        expected = f"BYTES or {_NUMERIC_LISTING}" if numeric else "BYTES (features of mixed types)"
        raise Rejection.single(422, f"{where}.datatype", "invalid_datatype", f"expected {expected}")
    if len(shape) != 2 or shape[1] != width:
        raise Rejection.single(
            422,
            f"{where}.shape",
            "invalid_shape",
            f"expected [batch, {width}]: one column per input schema feature, in order "
            f"({', '.join(names[:10])}{', ...' if width > 10 else ''}), "
            "or one tensor per feature",
        )
    validator.check_batch_size(shape[0], f"{where}.shape")
    columns = {name: values[j::width] for j, name in enumerate(names)}
    if datatype == "BYTES":
        for name, rule in validator.rules.items():
            if rule.kind == "numeric":
                columns[name] = [_text_to_number(v) for v in columns[name]]
    validator.check_columns(columns, lambda name, row: f"{where}[{row}].{name}")
    return columns


def _columns_from_features(tensors: list[_Tensor], validator: InstanceValidator) -> dict[str, list]:
    """One tensor per feature, named like it: the tensors' lists become the columns, no copy."""
    columns: dict[str, list] = {}
    batch: int | None = None
    errors: list[FieldError] = []
    for where, name, datatype, shape, data in tensors:
        rule = validator.rules.get(name)
        if rule is None:
            errors.append(FieldError(where, "unknown_field", "input is not in the input schema"))
            continue
        if name in columns:
            errors.append(FieldError(where, "invalid_shape", "input given more than once"))
            continue
        # A list or object here is not hashable: compare only strings (else a TypeError, a 500).
        if type(datatype) is not str:
            ok = False
        elif rule.kind == "categorical":
            ok = datatype == "BYTES"
        else:
            ok = datatype in _NUMERIC_DATATYPES
        if not ok:
            expected = "BYTES" if rule.kind == "categorical" else _NUMERIC_LISTING
            errors.append(
                FieldError(f"{where}.datatype", "invalid_datatype", f"expected {expected}")
            )
            continue
        if len(shape) == 2 and shape[1] != 1:
            errors.append(
                FieldError(
                    f"{where}.shape",
                    "invalid_shape",
                    "expected [batch] or [batch, 1] for a feature's tensor",
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
    return columns


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


def dumps(payload: Any) -> bytes:
    """Compact JSON; NaN and Infinity are refused rather than written as invalid JSON."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _binary_tensor(datatype: str, data: list) -> bytes:
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = str(value).encode()
            parts.append(_BYTES_PREFIX.pack(len(raw)))
            parts.append(raw)
        return b"".join(parts)
    return np.asarray(data, dtype=_NUMPY_DTYPES[datatype]).tobytes()


def encode_infer_response(
    payload: dict[str, Any], options: InferOptions
) -> tuple[bytes, int | None]:
    """The body of an answered infer request and, when outputs were asked as binary tensor data,
    the length of its JSON header (the Inference-Header-Content-Length): binary outputs carry
    `binary_data_size` instead of `data`, their bytes follow the header in output order."""
    binary = options["binary"]
    if not binary:
        return dumps(payload), None
    outputs = []
    chunks: list[bytes] = []
    for output in payload["outputs"]:
        if binary is True or output["name"] in binary:
            raw = _binary_tensor(output["datatype"], output["data"])
            output = {k: v for k, v in output.items() if k != "data"}
            output["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(output)
    if not chunks:
        return dumps(payload), None
    header = dumps({**payload, "outputs": outputs})
    return header + b"".join(chunks), len(header)


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
