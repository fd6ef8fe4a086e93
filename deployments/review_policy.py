"""The human review policy of a deployment: which predictions a person looks at and whether they
are held until then. It is one field of the deployment's config revision (`review_policy`), so it
is versioned and audited with the rest of the config. An empty policy reviews nothing.

The selecting part (`mode`, `all`, `confidence_below`, `sample_percent`, `classes`) is what the
serving process applies itself; it reaches it as JSON in MODELPLANE_REVIEW_POLICY (see
`serving_selection`). The rest (SLA, claim lease, callback, the canary gate) is the control
plane's. Pure functions: no database, no audit."""

from __future__ import annotations

import json
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import time
from typing import Any
from urllib.parse import urlsplit

from core.errors import ValidationFailed

FIELD = "review_policy"
MODES = ("held", "audited")
SELECTORS = ("all", "confidence_below", "sample_percent", "classes")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HHMM_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
MAX_CLASSES = 100
MAX_SLA_MINUTES = 30 * 24 * 60
MAX_CLAIM_MINUTES = 24 * 60

DEFAULTS: dict[str, Any] = {
    "mode": "held",
    "all": False,
    "confidence_below": None,
    "sample_percent": 0,
    "classes": [],
    "sla_minutes": 240,
    "business_hours": None,
    "claim_minutes": 30,
    "callback_url": "",
    "callback_secret_env": "",
    "min_decided_for_gate": 20,
    "max_override_rate_increase": 0.05,
}


@dataclass(frozen=True)
class BusinessHours:
    timezone: str
    days: tuple[int, ...]  # 0 = Monday
    start: time
    end: time


@dataclass(frozen=True)
class ReviewPolicy:
    mode: str = "held"
    all: bool = False
    confidence_below: float | None = None
    sample_percent: float = 0
    classes: tuple[str, ...] = ()
    sla_minutes: int = 240
    business_hours: BusinessHours | None = None
    claim_minutes: int = 30
    callback_url: str = ""
    callback_secret_env: str = ""
    min_decided_for_gate: int = 20
    max_override_rate_increase: float = 0.05
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def enabled(self) -> bool:
        return bool(
            self.all or self.confidence_below is not None or self.sample_percent or self.classes
        )

    @property
    def held(self) -> bool:
        return self.mode == "held"


def _fail(message: str, key: str) -> ValidationFailed:
    return ValidationFailed(message, field=f"{FIELD}.{key}")


def _number(raw: dict[str, Any], key: str, lo: float, hi: float, *, integer: bool = False) -> Any:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail("must be a number", key)
    if integer and value != int(value):
        raise _fail("must be a whole number", key)
    if not lo <= value <= hi:
        raise _fail(f"must be from {lo} to {hi}", key)
    return int(value) if integer else float(value)


def _business_hours(value: Any) -> dict[str, Any] | None:
    key = "business_hours"
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail("must be {timezone, days, start, end} or null", key)
    unknown = set(value) - {"timezone", "days", "start", "end"}
    if unknown:
        raise _fail("is not a business-hours field", f"{key}.{sorted(unknown)[0]}")
    tz = value.get("timezone", "UTC")
    try:
        zoneinfo.ZoneInfo(str(tz))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail("is not a known time zone", f"{key}.timezone") from None
    days = value.get("days", [0, 1, 2, 3, 4])
    if (
        not isinstance(days, list)
        or not days
        or any(isinstance(d, bool) or not isinstance(d, int) or not 0 <= d <= 6 for d in days)
    ):
        raise _fail("must be a non-empty list of weekdays, 0 (Monday) to 6", f"{key}.days")
    out: dict[str, Any] = {"timezone": str(tz), "days": sorted(set(days))}
    for name, default in (("start", "09:00"), ("end", "17:00")):
        text = value.get(name, default)
        if not isinstance(text, str) or not HHMM_RE.match(text):
            raise _fail('must be a time of day, "HH:MM"', f"{key}.{name}")
        out[name] = text
    if out["start"] >= out["end"]:
        raise _fail("must be after start", f"{key}.end")
    return out


def validate_review_policy(raw: Any) -> dict[str, Any]:
    """Checks a review policy as given (API, pages); returns it whole, with defaults filled in,
    or {} when it reviews nothing. Every error names its field, as `review_policy.<key>`."""
    if raw is None or raw == {}:
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailed("must be an object (or {} to review nothing)", field=FIELD)
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise _fail("is not a review policy field", sorted(unknown)[0])
    values = {**DEFAULTS, **raw}
    if values["mode"] not in MODES:
        raise _fail('must be "held" or "audited"', "mode")
    if not isinstance(values["all"], bool):
        raise _fail("must be true or false", "all")
    if values["confidence_below"] is not None:
        values["confidence_below"] = _number(values, "confidence_below", 0, 1)
    values["sample_percent"] = _number(values, "sample_percent", 0, 100)
    classes = values["classes"]
    if not isinstance(classes, list) or len(classes) > MAX_CLASSES:
        raise _fail(f"must be a list of at most {MAX_CLASSES} class names", "classes")
    for i, name in enumerate(classes):
        if not isinstance(name, str | int) or isinstance(name, bool) or len(str(name)) > 200:
            raise _fail("must be a class name (text, at most 200 characters)", f"classes[{i}]")
    values["classes"] = [str(c) for c in classes]
    if not (
        values["all"]
        or values["confidence_below"] is not None
        or values["sample_percent"]
        or values["classes"]
    ):
        raise ValidationFailed(
            "selects nothing: set all, confidence_below, sample_percent or classes "
            "(or send {} to review nothing)",
            field=FIELD,
        )
    values["sla_minutes"] = _number(values, "sla_minutes", 1, MAX_SLA_MINUTES, integer=True)
    values["claim_minutes"] = _number(values, "claim_minutes", 1, MAX_CLAIM_MINUTES, integer=True)
    values["business_hours"] = _business_hours(values["business_hours"])
    url = values["callback_url"]
    if not isinstance(url, str) or len(url) > 2000:
        raise _fail("must be an http(s) URL of at most 2000 characters", "callback_url")
    if url:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise _fail("must be an http(s) URL", "callback_url")
        if parts.username or parts.password:
            raise _fail(
                "must not carry credentials: the HMAC secret signs each call instead",
                "callback_url",
            )
    secret_env = values["callback_secret_env"]
    if not isinstance(secret_env, str) or (secret_env and not ENV_NAME_RE.match(secret_env)):
        raise _fail(
            "must be the name of the environment variable holding the HMAC secret "
            "(never the secret)",
            "callback_secret_env",
        )
    if url and not secret_env:
        raise _fail(
            "is required with a callback_url: outcomes are always signed", "callback_secret_env"
        )
    values["min_decided_for_gate"] = _number(
        values, "min_decided_for_gate", 1, 100_000, integer=True
    )
    values["max_override_rate_increase"] = _number(values, "max_override_rate_increase", 0, 1)
    return values


def policy_of(raw: Any) -> ReviewPolicy:
    """The stored policy (already validated) as a typed object; {} gives a disabled policy."""
    if not raw:
        return ReviewPolicy()
    values = {**DEFAULTS, **raw}
    hours = values["business_hours"]
    return ReviewPolicy(
        mode=values["mode"],
        all=bool(values["all"]),
        confidence_below=values["confidence_below"],
        sample_percent=float(values["sample_percent"]),
        classes=tuple(values["classes"]),
        sla_minutes=int(values["sla_minutes"]),
        business_hours=None
        if hours is None
        else BusinessHours(
            timezone=hours["timezone"],
            days=tuple(hours["days"]),
            start=time.fromisoformat(hours["start"]),
            end=time.fromisoformat(hours["end"]),
        ),
        claim_minutes=int(values["claim_minutes"]),
        callback_url=values["callback_url"],
        callback_secret_env=values["callback_secret_env"],
        min_decided_for_gate=int(values["min_decided_for_gate"]),
        max_override_rate_increase=float(values["max_override_rate_increase"]),
        raw=dict(raw),
    )


def serving_selection(raw: Any) -> str:
    """The part of the policy the serving process applies, as the JSON of
    MODELPLANE_REVIEW_POLICY; "" when the policy reviews nothing."""
    policy = policy_of(raw)
    if not policy.enabled:
        return ""
    return json.dumps(
        {
            "mode": policy.mode,
            "all": policy.all,
            "confidence_below": policy.confidence_below,
            "sample_percent": policy.sample_percent,
            "classes": list(policy.classes),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
