"""The inference service: a FastAPI app serving one packaged model version.

Endpoints: Open Inference Protocol v2 (health, metadata, infer), plain `POST /predict`,
`GET /metrics` and, only when allowed, the `/-/faults` switch. Inputs are validated against the
manifest's schema before the model sees them. It must never log or export a request payload or a
prediction value, and never import Django or the control plane: it is a separate deployable.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.routing import Route

from serving.config import ServingSettings, resolve_artifact
from serving.faults import FaultSettings, FaultSwitch
from serving.metrics import ServingMetrics
from serving.packaging import LoadedModel, PackageError, Prediction, load_package
from serving.validation import (
    FieldError,
    InstanceValidator,
    Rejection,
    SchemaUnsupported,
    field_label,
    parse_json,
)

JSON = "application/json"
# Small batches run inline on the event loop: handing them to a thread costs more than the
# prediction. Larger ones go to a worker thread so the request timeout can answer 504 on time.
INLINE_MAX_ROWS = 32
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_NUMERIC_DATATYPES = frozenset({"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8"})
_PLATFORMS = {"sklearn-skops": "sklearn", "onnx": "onnxruntime"}


class InjectedFault(Exception):
    """A 500 requested through the fault switch."""


@dataclass
class ServedModel:
    """What the app serves once loading and warm-up succeeded."""

    model: LoadedModel
    name: str
    validator: InstanceValidator
    metrics: ServingMetrics


@dataclass
class ServiceState:
    served: ServedModel | None = None
    failure: str | None = None


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _json(payload: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(_dumps(payload), status_code=status, media_type=JSON, headers=headers)


def _problem(status: int, errors: list[FieldError]) -> dict[str, Any]:
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


def _request_id(request: Request) -> str:
    supplied = request.headers.get("x-request-id")
    if supplied and _REQUEST_ID.match(supplied):
        return supplied
    return uuid.uuid4().hex


def _check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != JSON:
        raise Rejection.single(
            415, "content-type", "unsupported_media_type", "send the body as application/json"
        )


async def _read_body(request: Request, limit: int) -> bytes:
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


def _predict_payload_columns(
    payload: Any, validator: InstanceValidator
) -> tuple[dict[str, list], None]:
    if type(payload) is not dict:
        raise Rejection.single(422, "body", "wrong_type", 'expected an object with "instances"')
    _reject_unknown_keys(payload, frozenset({"instances"}))
    if "instances" not in payload:
        raise Rejection.single(422, "instances", "missing_field", "required field is missing")
    return validator.instances_to_columns(payload["instances"]), None


def _infer_payload_columns(
    payload: Any, validator: InstanceValidator
) -> tuple[dict[str, list], dict[str, Any]]:
    """OIP v2 request: one input tensor per feature, shape [batch] or [batch, 1], flat `data`;
    numeric features as FP64/FP32/INT*, categorical ones as BYTES (JSON strings)."""
    if type(payload) is not dict:
        raise Rejection.single(422, "body", "wrong_type", 'expected an object with "inputs"')
    _reject_unknown_keys(payload, frozenset({"id", "inputs", "outputs", "parameters"}))
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
        ok = datatype == "BYTES" if rule.kind == "categorical" else datatype in _NUMERIC_DATATYPES
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
        raise Rejection(422, errors[:20])
    validator.check_columns(columns, lambda name, row: f"inputs[{name}].data[{row}]")
    return columns, {"id": request_id, "outputs": requested}


def _prediction_rows(model: LoadedModel, prediction: Prediction) -> list[dict[str, float]] | None:
    if prediction.probabilities is None:
        return None
    classes = [str(c) for c in model.classes]
    return [dict(zip(classes, row, strict=True)) for row in prediction.probabilities.tolist()]


def _label_datatype(model: LoadedModel) -> str:
    if model.task == "regression":
        return "FP64"
    return "BYTES" if all(isinstance(c, str) for c in model.classes) else "INT64"


def _synthetic_instance(validator: InstanceValidator, model: LoadedModel) -> dict[str, Any]:
    """A plausible row from the baseline profile, for warm-up when a manifest has no examples."""
    profile = model.manifest.get("baseline_profile", {}).get("features", {})
    row: dict[str, Any] = {}
    for name, rule in validator.rules.items():
        feature = profile.get(name, {})
        if rule.kind == "numeric":
            edges = feature.get("bin_edges") or [0.0]
            row[name] = float(edges[len(edges) // 2])
        else:
            cats = rule.categories or tuple(feature.get("frequencies", {})) or ("",)
            row[name] = cats[0]
    return row


def create_app(
    settings: ServingSettings,
    *,
    load_model: Callable[[], LoadedModel] | None = None,
    logger: Any = None,
    faults: FaultSwitch | None = None,
) -> FastAPI:
    """Build the service. The model loads in the background after startup; readiness turns 200
    once loading and a warm-up prediction succeeded."""
    log = logger if logger is not None else structlog.get_logger("serving")
    state = ServiceState()
    fault_switch = faults or FaultSwitch.in_memory(
        FaultSettings(settings.fault_error_rate, settings.fault_latency_ms)
    )

    def default_loader() -> LoadedModel:
        path, _ = resolve_artifact(settings)
        return load_package(path, settings.artifact_digest)

    loader = load_model or default_loader

    def load_and_warm() -> ServedModel:
        model = loader()
        validator = InstanceValidator(
            model.manifest["input_schema"],
            max_string_length=settings.max_string_length,
            max_batch=settings.max_batch,
        )
        examples = [
            ex["instances"]
            for ex in model.manifest.get("example_requests") or []
            if isinstance(ex, dict) and isinstance(ex.get("instances"), list)
        ] or [[_synthetic_instance(validator, model)]]
        for instances in examples:
            columns = validator.instances_to_columns(instances[: settings.max_batch])
            model.predict_columns(columns)
        metrics = ServingMetrics(
            model=settings.model_name or model.name,
            version=settings.model_version,
            digest=model.digest,
            track=settings.track,
            format=model.format,
            manifest=model.manifest,
        )
        return ServedModel(
            model=model,
            name=settings.model_name or model.name,
            validator=validator,
            metrics=metrics,
        )

    async def load_in_background() -> None:
        started = time.perf_counter()
        try:
            served = await anyio.to_thread.run_sync(load_and_warm)
        except (PackageError, SchemaUnsupported, Rejection) as exc:
            state.failure = getattr(exc, "reason", type(exc).__name__)
            # PackageError/SchemaUnsupported messages describe the artifact, never a request.
            log.error("model_load_failed", reason=state.failure, error=str(exc))
            return
        except Exception as exc:
            state.failure = "load_error"
            log.error("model_load_failed", reason=state.failure, error_type=type(exc).__name__)
            return
        state.served = served
        log.info(
            "model_ready",
            model=served.name,
            version=settings.model_version,
            track=settings.track,
            digest=served.model.digest,
            format=served.model.format,
            load_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(load_in_background())
        yield
        if not task.done():
            task.cancel()

    app = FastAPI(
        title="modelplane inference service",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.service = state
    app.state.faults = fault_switch

    def not_ready() -> Response:
        reason = state.failure or "loading"
        return _json({"ready": False, "reason": reason, "error": f"model not ready: {reason}"}, 503)

    # ---- health and metadata

    @app.get("/v2/health/live")
    async def live() -> Response:
        if state.failure is not None:
            return _json({"live": False, "reason": state.failure}, 503)
        return _json({"live": True})

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        if state.served is None:
            return not_ready()
        return _json({"ready": True})

    @app.get("/v2")
    async def server_metadata() -> Response:
        return _json({"name": "modelplane-serving", "version": "1", "extensions": []})

    def model_or_404(name: str) -> ServedModel | Response:
        served = state.served
        if served is None:
            return not_ready()
        if name != served.name:
            return _json({"error": f"unknown model {field_label(name)}"}, 404)
        return served

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str) -> Response:
        served = model_or_404(name)
        if isinstance(served, Response):
            return served
        model = served.model
        inputs = [
            {
                "name": rule.name,
                "datatype": "BYTES" if rule.kind == "categorical" else "FP64",
                "shape": [-1],
            }
            for rule in served.validator.rules.values()
        ]
        outputs = [{"name": "label", "datatype": _label_datatype(model), "shape": [-1]}]
        if model.task == "classification":
            outputs.append(
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(model.classes)]}
            )
        return _json(
            {
                "name": served.name,
                "versions": [settings.model_version],
                "platform": _PLATFORMS.get(model.format, model.format),
                "inputs": inputs,
                "outputs": outputs,
                "parameters": {
                    "task": model.task,
                    "classes": model.classes,
                    "digest": model.digest,
                    "track": settings.track,
                    "input_schema": model.manifest["input_schema"],
                    "output_schema": model.manifest.get("output_schema"),
                },
            }
        )

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str) -> Response:
        served = model_or_404(name)
        if isinstance(served, Response):
            return served
        return _json({"name": served.name, "ready": True})

    @app.get("/metrics")
    async def metrics() -> Response:
        served = state.served
        if served is None:
            return not_ready()
        body, content_type = served.metrics.render()
        return Response(body, media_type=content_type)

    # ---- prediction

    async def serve(
        request: Request,
        endpoint: str,
        parse: Callable[[Any, InstanceValidator], tuple[dict[str, list], Any]],
        render: Callable[[ServedModel, Prediction, Any, str], dict[str, Any]],
    ) -> Response:
        started = time.perf_counter()
        request_id = _request_id(request)
        served = state.served
        if served is None:
            response = not_ready()
            response.headers["X-Request-ID"] = request_id
            return response
        status = 200
        reason: str | None = None
        rows = 0
        columns: dict[str, list] = {}
        prediction: Prediction | None = None
        try:
            async with asyncio.timeout(settings.request_timeout_seconds):
                _check_content_type(request)
                body = await _read_body(request, settings.max_body_bytes)
                columns, extra = parse(parse_json(body), served.validator)
                rows = len(next(iter(columns.values()), ()))
                fault = fault_switch.get()
                if fault.latency_ms:
                    await asyncio.sleep(fault.latency_ms / 1000)
                if fault_switch.should_fail(fault.error_rate):
                    raise InjectedFault
                if rows <= INLINE_MAX_ROWS:
                    prediction = served.model.predict_columns(columns)
                else:
                    prediction = await anyio.to_thread.run_sync(
                        served.model.predict_columns, columns, abandon_on_cancel=True
                    )
                payload = render(served, prediction, extra, request_id)
        except Rejection as exc:
            status, reason = exc.status, exc.reason
            served.metrics.observe_rejection(reason)
            payload = _problem(status, exc.errors)
        except InjectedFault:
            status, reason = 500, "injected_fault"
            payload = _problem(500, [FieldError("", reason, "fault injected by /-/faults")])
        except TimeoutError:
            status, reason = 504, "timeout"
            payload = _problem(
                504, [FieldError("", reason, "request exceeded the serving timeout")]
            )
        except Exception as exc:
            # Model errors can quote input values: log the type only, never the message.
            status, reason = 500, "internal_error"
            log.error("prediction_failed", request_id=request_id, error_type=type(exc).__name__)
            payload = _problem(500, [FieldError("", reason, "prediction failed")])
        elapsed = time.perf_counter() - started
        served.metrics.observe_request(endpoint, status, elapsed)
        if prediction is not None and status == 200:
            served.metrics.observe_batch(columns, prediction.labels)
        log.info(
            "request",
            request_id=request_id,
            model=served.name,
            version=settings.model_version,
            track=settings.track,
            endpoint=endpoint,
            status=status,
            rows=rows,
            latency_ms=round(elapsed * 1000, 3),
            rejection_reason=reason,
        )
        return _json(payload, status, request_id)

    def render_predict(
        served: ServedModel, prediction: Prediction, _extra: Any, _request_id: str
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "predictions": prediction.labels,
            "model": served.name,
            "version": settings.model_version,
        }
        probabilities = _prediction_rows(served.model, prediction)
        if probabilities is not None:
            payload["probabilities"] = probabilities
        return payload

    def render_infer(
        served: ServedModel, prediction: Prediction, extra: dict[str, Any], request_id: str
    ) -> dict[str, Any]:
        model = served.model
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
        requested = extra.get("outputs")
        if requested is not None:
            outputs = [o for o in outputs if o["name"] in requested]
        return {
            "model_name": served.name,
            "model_version": settings.model_version,
            "id": extra.get("id") or request_id,
            "outputs": outputs,
        }

    async def predict(request: Request) -> Response:
        return await serve(request, "predict", _predict_payload_columns, render_predict)

    async def infer(request: Request) -> Response:
        served = model_or_404(request.path_params["name"])
        if isinstance(served, Response):
            return served
        return await serve(request, "infer", _infer_payload_columns, render_infer)

    # The hot paths are plain Starlette routes matched first: FastAPI's dependency resolution
    # and a walk past the other routes cost about as much as validating a row.
    app.router.routes[0:0] = [
        Route("/predict", predict, methods=["POST"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
    ]

    # ---- fault switch

    if settings.allow_faults:

        @app.get("/-/faults")
        async def get_faults() -> Response:
            return _json(fault_switch.get().as_dict())

        @app.post("/-/faults")
        async def set_faults(request: Request) -> Response:
            try:
                _check_content_type(request)
                payload = parse_json(await _read_body(request, 4096))
                if type(payload) is not dict:
                    raise Rejection.single(422, "body", "wrong_type", "expected an object")
                _reject_unknown_keys(payload, frozenset({"error_rate", "latency_ms"}))
                current = fault_switch.get()
                error_rate = payload.get("error_rate", current.error_rate)
                latency_ms = payload.get("latency_ms", current.latency_ms)
                if type(error_rate) not in (int, float) or not 0 <= error_rate <= 1:
                    raise Rejection.single(
                        422, "error_rate", "out_of_range", "must be a number from 0 to 1"
                    )
                if type(latency_ms) is not int or not 0 <= latency_ms <= 60_000:
                    raise Rejection.single(
                        422, "latency_ms", "out_of_range", "must be an integer from 0 to 60000"
                    )
            except Rejection as exc:
                return _json(_problem(exc.status, exc.errors), exc.status)
            settings_now = FaultSettings(float(error_rate), latency_ms)
            fault_switch.set(settings_now)
            log.warning("faults_set", **settings_now.as_dict())
            return _json(settings_now.as_dict())

    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory (`serving.app:create_app_from_env`): one call per worker process."""
    from threadpoolctl import threadpool_limits

    from serving.logs import configure_logging

    configure_logging()
    # Workers scale by process; BLAS/OpenMP threads per worker would oversubscribe the cores.
    threadpool_limits(limits=1)
    settings = ServingSettings.from_env()
    faults = FaultSwitch.shared(settings.fault_state_file) if settings.fault_state_file else None
    return create_app(settings, faults=faults)
