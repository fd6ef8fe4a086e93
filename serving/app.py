"""The inference service: a FastAPI app serving one packaged model version.

Endpoints: Open Inference Protocol v2 (health, metadata, infer), plain `POST /predict`,
`GET /metrics` and, only when allowed, the `/-/faults` switch. This module wires routes, state,
metrics and logs; what a body must look like and what a response says live in `serving.protocol`.
Inputs are validated against the manifest's schema before the model sees them. It must never log
or export a request payload or a prediction value, and never import Django or the control plane:
it is a separate deployable.

With a review policy (MODELPLANE_REVIEW_POLICY) every predicted batch also passes through
`serving.review`: held rows answer 202 "pending review", and selected rows are queued for the
control plane through the on-disk outbox. Without one, nothing on the request path changes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
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
from serving.outbox import OutboxUnavailable
from serving.packaging import LoadedModel, PackageError, Prediction, load_package
from serving.protocol import (
    HEADER_LENGTH,
    INFER_BODY_TYPES,
    JSON,
    JSON_BODY_TYPES,
    OCTET_STREAM,
    InferOptions,
    check_content_type,
    dumps,
    encode_infer_response,
    infer_response,
    metadata_response,
    parse_fault_settings,
    parse_infer_request,
    parse_predict_request,
    predict_response,
    problem,
    read_body,
    request_id_for,
    split_infer_body,
)
from serving.review import (
    Reviewer,
    ReviewUnavailable,
    build_reviewer,
    hold_infer_payload,
    hold_predict_payload,
)
from serving.validation import (
    FieldError,
    InstanceValidator,
    Rejection,
    SchemaUnsupported,
    field_label,
    parse_json,
)

# Small batches run inline on the event loop: handing them to a thread costs more than the
# prediction. Larger ones go to a worker thread so the request timeout can answer 504 on time.
INLINE_MAX_ROWS = 32

# (request, body) to validated columns plus what the renderer needs, or raise a Rejection.
ParseRequest = Callable[[Request, bytes, InstanceValidator], tuple[dict[str, list], Any]]
# (model, name, version, prediction, parsed options, request id) to a response body.
RenderResponse = Callable[[LoadedModel, str, str, Prediction, Any, str], dict[str, Any]]
# (response body, the held rows' reviews) to the pending-review body of that endpoint.
HoldResponse = Callable[[dict[str, Any], list[dict[str, Any]]], dict[str, Any]]
# (answered body, parsed options) to the response bytes and, for binary tensor data, the length
# of their JSON header.
EncodeResponse = Callable[[dict[str, Any], Any], tuple[bytes, int | None]]
# How long a caller should wait before retrying when held rows cannot be queued (503).
REVIEW_RETRY_AFTER_SECONDS = 30


class InjectedFault(Exception):
    """A 500 requested through the fault switch."""


@dataclass
class ServedModel:
    """What the app serves once loading and warm-up succeeded."""

    model: LoadedModel
    name: str
    validator: InstanceValidator
    metrics: ServingMetrics
    # Set when a review policy is configured; None keeps the request path exactly as without.
    reviewer: Reviewer | None = None


@dataclass
class ServiceState:
    served: ServedModel | None = None
    failure: str | None = None


def _json(payload: Any, status: int = 200, request_id: str | None = None) -> Response:
    headers = {"X-Request-ID": request_id} if request_id else None
    return Response(dumps(payload), status_code=status, media_type=JSON, headers=headers)


def _parse_predict(
    request: Request, body: bytes, validator: InstanceValidator
) -> tuple[dict[str, list], None]:
    return parse_predict_request(parse_json(body), validator)


def _parse_infer(
    request: Request, body: bytes, validator: InstanceValidator
) -> tuple[dict[str, list], InferOptions]:
    payload, binary = split_infer_body(body, request.headers.get(HEADER_LENGTH))
    return parse_infer_request(payload, validator, binary)


def _encode_json(payload: dict[str, Any], options: Any) -> tuple[bytes, None]:
    return dumps(payload), None


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


def _load_and_warm(loader: Callable[[], LoadedModel], settings: ServingSettings) -> ServedModel:
    """Load the model and predict the manifest's example requests once, so the first real request
    does not pay for lazy initialisation."""
    model = loader()
    validator = InstanceValidator(
        model.manifest["input_schema"],
        max_string_length=settings.max_string_length,
        max_batch=settings.max_batch,
        feature_order=model.feature_names,
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

    async def load_in_background() -> None:
        started = time.perf_counter()
        try:
            served = await anyio.to_thread.run_sync(_load_and_warm, loader, settings)
        except (PackageError, SchemaUnsupported, Rejection) as exc:
            state.failure = getattr(exc, "reason", type(exc).__name__)
            # PackageError/SchemaUnsupported messages describe the artifact, never a request.
            log.error("model_load_failed", reason=state.failure, error=str(exc))
            return
        except Exception as exc:
            state.failure = "load_error"
            log.error("model_load_failed", reason=state.failure, error_type=type(exc).__name__)
            return
        if settings.review is not None:
            try:
                served.reviewer = await anyio.to_thread.run_sync(
                    lambda: build_reviewer(
                        settings.review,  # type: ignore[arg-type]
                        model=served.model,
                        name=served.name,
                        track=settings.track,
                        metrics=served.metrics.review_metrics(),
                        log=log,
                    )
                )
            except OutboxUnavailable as exc:
                # Held predictions would have nowhere to go: never become ready without it.
                state.failure = "review_outbox_unavailable"
                log.error("model_load_failed", reason=state.failure, error=str(exc))
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

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # type: ignore[no-untyped-def]
        task = asyncio.create_task(load_in_background())
        yield
        if not task.done():
            task.cancel()
        served = state.served
        if served is not None and served.reviewer is not None:
            # Waits for the submission in flight (bounded by its timeout); the rest stays queued.
            await anyio.to_thread.run_sync(served.reviewer.close)

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
        return _json(
            {"name": "modelplane-serving", "version": "1", "extensions": ["binary_tensor_data"]}
        )

    def model_or_404(name: str, version: str | None = None) -> ServedModel | Response:
        """The served model when `name` (and `version`, when the path has one) is it."""
        served = state.served
        if served is None:
            return not_ready()
        if name != served.name:
            return _json({"error": f"unknown model {field_label(name)}"}, 404)
        if version is not None and version != settings.model_version:
            return _json(
                {"error": f"unknown version {field_label(version)} of model {served.name}"}, 404
            )
        return served

    @app.get("/v2/models/{name}")
    @app.get("/v2/models/{name}/versions/{version}")
    async def model_metadata(name: str, version: str | None = None) -> Response:
        served = model_or_404(name, version)
        if isinstance(served, Response):
            return served
        return _json(
            metadata_response(
                served.model, served.name, settings.model_version, settings.track, served.validator
            )
        )

    @app.get("/v2/models/{name}/ready")
    @app.get("/v2/models/{name}/versions/{version}/ready")
    async def model_ready(name: str, version: str | None = None) -> Response:
        served = model_or_404(name, version)
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
        parse: ParseRequest,
        render: RenderResponse,
        hold: HoldResponse,
        encode: EncodeResponse,
        body_types: frozenset[str],
    ) -> Response:
        started = time.perf_counter()
        request_id = request_id_for(request)
        served = state.served
        if served is None:
            response = not_ready()
            response.headers["X-Request-ID"] = request_id
            return response
        status = 200
        reason: str | None = None
        rows = 0
        held_rows = 0
        columns: dict[str, list] = {}
        prediction: Prediction | None = None
        options: Any = None
        try:
            async with asyncio.timeout(settings.request_timeout_seconds):
                check_content_type(request, body_types)
                body = await read_body(request, settings.max_body_bytes)
                columns, options = parse(request, body, served.validator)
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
                payload = render(
                    served.model,
                    served.name,
                    settings.model_version,
                    prediction,
                    options,
                    request_id,
                )
                reviewer = served.reviewer
                if reviewer is not None:
                    pending = reviewer.select(columns, prediction, request_id)
                    if pending is not None:
                        # The outbox write waits for the disk, never for the network; in a
                        # thread, so a slow disk does not stall other requests on this loop.
                        reviews = await anyio.to_thread.run_sync(reviewer.queue, pending)
                        if reviews is not None:
                            status, held_rows = 202, len(reviews)
                            payload = hold(payload, reviews)
        except Rejection as exc:
            status, reason = exc.status, exc.reason
            served.metrics.observe_rejection(reason)
            payload = problem(status, exc.errors)
        except ReviewUnavailable as exc:
            status, reason = 503, "review_unavailable"
            payload = problem(
                503,
                [
                    FieldError(
                        "",
                        reason,
                        f"held predictions cannot be queued for review ({exc.reason}); retry later",
                    )
                ],
            )
        except InjectedFault:
            status, reason = 500, "injected_fault"
            payload = problem(500, [FieldError("", reason, "fault injected by /-/faults")])
        except TimeoutError:
            status, reason = 504, "timeout"
            payload = problem(504, [FieldError("", reason, "request exceeded the serving timeout")])
        except Exception as exc:
            # Model errors can quote input values: log the type only, never the message.
            status, reason = 500, "internal_error"
            log.error("prediction_failed", request_id=request_id, error_type=type(exc).__name__)
            payload = problem(500, [FieldError("", reason, "prediction failed")])
        elapsed = time.perf_counter() - started
        served.metrics.observe_request(endpoint, status, elapsed)
        if prediction is not None and (status == 200 or status == 202):
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
            held_rows=held_rows,
            latency_ms=round(elapsed * 1000, 3),
            rejection_reason=reason,
        )
        if status == 200:
            # Only an answered request can take the binary form: a held row's null has no bytes.
            content, header_length = encode(payload, options)
        else:
            content, header_length = dumps(payload), None
        if header_length is None:
            response = Response(content, status, {"X-Request-ID": request_id}, JSON)
        else:
            response = Response(
                content,
                status,
                {"X-Request-ID": request_id, "Inference-Header-Content-Length": str(header_length)},
                OCTET_STREAM,
            )
        if reason == "review_unavailable":
            response.headers["Retry-After"] = str(REVIEW_RETRY_AFTER_SECONDS)
        return response

    async def predict(request: Request) -> Response:
        return await serve(
            request,
            "predict",
            _parse_predict,
            predict_response,
            hold_predict_payload,
            _encode_json,
            JSON_BODY_TYPES,
        )

    async def infer(request: Request) -> Response:
        served = model_or_404(request.path_params["name"], request.path_params.get("version"))
        if isinstance(served, Response):
            return served
        return await serve(
            request,
            "infer",
            _parse_infer,
            infer_response,
            hold_infer_payload,
            encode_infer_response,
            INFER_BODY_TYPES,
        )

    # The hot paths are plain Starlette routes matched first: FastAPI's dependency resolution
    # and a walk past the other routes cost about as much as validating a row.
    app.router.routes[0:0] = [
        Route("/predict", predict, methods=["POST"]),
        Route("/v2/models/{name}/infer", infer, methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", infer, methods=["POST"]),
    ]

    # ---- fault switch

    if settings.allow_faults:

        @app.get("/-/faults")
        async def get_faults() -> Response:
            return _json(fault_switch.get().as_dict())

        @app.post("/-/faults")
        async def set_faults(request: Request) -> Response:
            try:
                check_content_type(request)
                payload = parse_json(await read_body(request, 4096))
                settings_now = parse_fault_settings(payload, fault_switch.get())
            except Rejection as exc:
                return _json(problem(exc.status, exc.errors), exc.status)
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
