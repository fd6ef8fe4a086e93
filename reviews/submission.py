"""Taking in a prediction for a person to review (POST /api/v1/reviews/, sent by a serving
process's outbox or by any service): the whole submission is checked before anything is written,
and it is idempotent on the caller's reference, because an outbox retries until it hears back.

The input summary is stored on the item and nowhere else: never logged, never in the history,
never in the audit log (retention empties it later; the decision stays)."""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from core import clock
from core.errors import Conflict, ValidationFailed
from deployments.models import Deployment
from deployments.review_policy import policy_of
from identity import audit
from identity.audit import Actor
from identity.permissions import Action, require
from registry.models import ModelVersion

from . import history, sla
from .models import ReviewEventKind, ReviewItem, ReviewMode, ReviewReason

# The caller's handle. The serving process makes it before the control plane has seen the item,
# so a retried submission names the same item (ReviewItem.ref holds 64 characters).
REF_RE = re.compile(r"^rv_[A-Za-z0-9_-]{16,60}$")
TRACK_RE = re.compile(r"^[A-Za-z0-9._-]*$")
MAX_MODEL_NAME = 200
MAX_TRACK = 20
MAX_REQUEST_ID = 128
MAX_SUMMARY_KEYS = 50
MAX_SUMMARY_KEY = 100
MAX_SUMMARY_STRING = 1000
# Sizes of the stored JSON (compact UTF-8): the whole body is at most
# REVIEWS_MAX_SUBMISSION_BYTES (64 KiB), and a prediction or an explanation must leave room
# for the rest.
MAX_PREDICTION_BYTES = 16 * 1024
MAX_EXPLANATION_BYTES = 32 * 1024

REQUIRED = ("model", "version", "request_id", "mode", "reason", "prediction")
OPTIONAL = ("ref", "track", "confidence", "input_summary", "explanation")
FIELDS = REQUIRED + OPTIONAL
# What the history and the audit log keep of a submission: names and references, never the
# prediction, the explanation or the input summary.
AUDITED = (
    "ref",
    "deployment",
    "model_version",
    "config_revision",
    "track",
    "request_id",
    "mode",
    "reason",
    "level",
    "sla_deadline",
)


def new_ref() -> str:
    """A reference for a submission that brought none: 16 random bytes, URL-safe."""
    return "rv_" + secrets.token_urlsafe(16)


# Checking --------------------------------------------------------------------------------------


def _text(value: Any, field: str, max_length: int, *, allow_blank: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"must be a string, not {type(value).__name__}", field=field)
    if not value and not allow_blank:
        raise ValidationFailed("cannot be empty", field=field)
    if len(value) > max_length:
        raise ValidationFailed(f"at most {max_length} characters", field=field)
    if not value.isprintable():
        raise ValidationFailed("must not contain control characters", field=field)
    return value


def _json_size(value: Any, field: str) -> int:
    """Bytes of the compact JSON form; NaN and infinities are refused (PostgreSQL's jsonb has
    no such numbers, and a receiver's JSON parser may not either)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise ValidationFailed(
            "must be plain JSON (no NaN or infinite numbers)", field=field
        ) from None
    return len(text.encode())


def _object(value: Any, field: str, max_bytes: int, *, allow_empty: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationFailed(f"must be a JSON object, not {type(value).__name__}", field=field)
    if not value and not allow_empty:
        raise ValidationFailed("cannot be empty", field=field)
    size = _json_size(value, field)
    if size > max_bytes:
        raise ValidationFailed(f"is {size} bytes of JSON; at most {max_bytes}", field=field)
    return value


def check_ref(value: Any) -> str:
    if not isinstance(value, str) or not REF_RE.match(value):
        raise ValidationFailed(
            'must be "rv_" and 16 to 60 letters, digits, "_" or "-"', field="ref"
        )
    return value


def check_input_summary(value: Any) -> dict[str, Any] | None:
    """The fields the model's package declares, flat: at most 50 names, each value a string (at
    most 1000 characters), a number, true/false or null. Errors name the summary's field, never
    its value."""
    field = "input_summary"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValidationFailed(f"must be a JSON object, not {type(value).__name__}", field=field)
    if len(value) > MAX_SUMMARY_KEYS:
        raise ValidationFailed(f"at most {MAX_SUMMARY_KEYS} fields", field=field)
    for name, item in value.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_SUMMARY_KEY:
            raise ValidationFailed(
                f"field names are 1 to {MAX_SUMMARY_KEY} characters", field=field
            )
        at = f"{field}.{name}"
        if isinstance(item, str):
            if len(item) > MAX_SUMMARY_STRING:
                raise ValidationFailed(f"at most {MAX_SUMMARY_STRING} characters", field=at)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValidationFailed("must be a finite number", field=at)
        elif item is not None and not isinstance(item, int):  # bool is an int
            raise ValidationFailed(
                "must be a string, a number, true/false or null (a flat summary)", field=at
            )
    return value


def check_confidence(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationFailed(
            f"must be a number or null, not {type(value).__name__}", field="confidence"
        )
    if not (math.isfinite(value) and 0 <= value <= 1):
        raise ValidationFailed("must be from 0 to 1", field="confidence")
    return float(value)


def check_version(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed(
            f"must be a version number, not {type(value).__name__}", field="version"
        )
    if value < 1:
        raise ValidationFailed("must be 1 or more", field="version")
    return value


def _choice(value: Any, field: str, choices: type[ReviewMode] | type[ReviewReason]) -> str:
    if value not in choices.values:
        names = ", ".join(f'"{v}"' for v in choices.values)
        raise ValidationFailed(f"must be one of {names}", field=field)
    return str(value)


def clean(values: Mapping[str, Any]) -> dict[str, Any]:
    """The submission checked field by field, in the contract's order, with defaults filled in
    (`ref` is made when absent); the first error names its field. Pure: no database. The API's
    serializer calls it too, so that the rules are written here only."""
    unknown = sorted(set(values) - set(FIELDS))
    if unknown:
        raise ValidationFailed("is not a submission field", field=unknown[0])
    for name in REQUIRED:
        if name not in values:
            raise ValidationFailed("is required", field=name)
    ref = values.get("ref")
    return {
        "ref": new_ref() if ref is None else check_ref(ref),
        "model": _text(values["model"], "model", MAX_MODEL_NAME),
        "version": check_version(values["version"]),
        "track": _track(values.get("track", "")),
        "request_id": _text(values["request_id"], "request_id", MAX_REQUEST_ID),
        "mode": _choice(values["mode"], "mode", ReviewMode),
        "reason": _choice(values["reason"], "reason", ReviewReason),
        "prediction": _object(
            values["prediction"], "prediction", MAX_PREDICTION_BYTES, allow_empty=False
        ),
        "confidence": check_confidence(values.get("confidence")),
        "input_summary": check_input_summary(values.get("input_summary")),
        "explanation": None
        if values.get("explanation") is None
        else _object(values["explanation"], "explanation", MAX_EXPLANATION_BYTES, allow_empty=True),
    }


def _track(value: Any) -> str:
    track = _text(value, "track", MAX_TRACK, allow_blank=True)
    if not TRACK_RE.match(track):
        raise ValidationFailed('letters, digits, ".", "_" or "-" only', field="track")
    return track


# Submitting ------------------------------------------------------------------------------------


@transaction.atomic
def submit(
    *, actor: Actor, deployment: Deployment, values: Mapping[str, Any]
) -> tuple[ReviewItem, bool]:
    """Take in one item for review; returns (item, created). The same `ref` again returns the
    item already taken in (an outbox retry), even if the policy has changed since; another ref
    for the same (deployment, request_id) is a conflict. The deployment must run under a review
    policy (its current config), and `model`/`version` must be the deployment's model and one of
    its versions. Checked whole before anything is written."""
    require(actor.principal, Action.REVIEW_SUBMIT, deployment)
    data = clean(values)
    existing = ReviewItem.objects.filter(ref=data["ref"]).first()
    if existing is not None:
        return _same_submission(existing, deployment, data), False
    model = deployment.model
    if data["model"] != model.name:
        raise ValidationFailed(
            f"is not the model of deployment {deployment.pk} ({model.name})", field="model"
        )
    version = ModelVersion.objects.filter(model=model, number=data["version"]).first()
    if version is None:
        raise ValidationFailed(f"{model.name} has no version {data['version']}", field="version")
    config = deployment.config
    policy = policy_of(config.review_policy if config is not None else {})
    if config is None or not policy.enabled:
        raise ValidationFailed("has no review policy", field="deployment")
    _refuse_taken_request(deployment, data["request_id"])

    now = clock.now()
    item = ReviewItem(
        ref=data["ref"],
        team_id=model.team_id,
        deployment=deployment,
        model_version=version,
        config_revision=config.revision,
        track=data["track"],
        request_id=data["request_id"],
        mode=data["mode"],
        reason=data["reason"],
        prediction=data["prediction"],
        confidence=data["confidence"],
        input_summary=data["input_summary"],
        explanation=data["explanation"],
        sla_deadline=sla.deadline(now, policy),
        created_at=now,
    )
    try:
        with transaction.atomic():  # a savepoint: a lost race leaves the request usable
            item.save(force_insert=True)
    except IntegrityError:
        # A concurrent twin committed first: the same ref is that item, anything else is the
        # same request under another ref.
        existing = ReviewItem.objects.filter(ref=data["ref"]).first()
        if existing is not None:
            return _same_submission(existing, deployment, data), False
        _refuse_taken_request(deployment, data["request_id"])
        raise
    history.event(
        item,
        ReviewEventKind.SUBMITTED,
        actor,
        {"reason": item.reason, "mode": item.mode, "track": item.track},
    )
    audit.record(
        actor=actor,
        action="review.submit",
        target=item,
        after=audit.snapshot(item, AUDITED),
        team_id=item.team_id,
    )
    return item, True


def _same_submission(
    existing: ReviewItem, deployment: Deployment, data: Mapping[str, Any]
) -> ReviewItem:
    """The item a retried submission names, or a conflict when the ref belongs to another
    request (a ref reused by mistake must never return someone else's item)."""
    if existing.deployment_id != deployment.pk or existing.request_id != data["request_id"]:
        raise Conflict("is already the reference of another submission", field="ref")
    return existing


def _refuse_taken_request(deployment: Deployment, request_id: str) -> None:
    if ReviewItem.objects.filter(deployment=deployment, request_id=request_id).exists():
        raise Conflict(
            f"request {request_id!r} of this deployment was already submitted under another "
            "reference",
            field="request_id",
        )
