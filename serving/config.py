"""Configuration of the inference service, read from the environment (12-factor), and resolution
of the model artifact URI to a local file.

It must never log or echo secret-bearing values: an artifact URL may carry credentials in its
query string, so only its scheme and host appear in messages, and the review token
(MODELPLANE_REVIEW_TOKEN) is kept out of every repr.

The human review settings (MODELPLANE_REVIEW_*) are parsed here as plain data; applying the policy
and submitting items is `serving.review`'s job.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

MiB = 1024 * 1024


class ConfigError(Exception):
    """The environment does not describe a servable model; the message says which variable."""


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 0) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer") from None
    if value < minimum:
        raise ConfigError(f"{key} must be >= {minimum}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{key} must be between {lo} and {hi}")
    return value


def _bool(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").strip().lower() in {"1", "true", "yes", "on"}


# ---------------------------------------------------------------- human review

REVIEW_MODES = ("held", "audited")
_POLICY_KEYS = frozenset({"mode", "all", "confidence_below", "sample_percent", "classes"})
_VERSION_NUMBER = re.compile(r"^[vV]?(\d{1,18})$")
DEFAULT_OUTBOX_MAX = 10_000


@dataclass(frozen=True)
class ReviewPolicy:
    """The selecting part of a deployment's review policy (what MODELPLANE_REVIEW_POLICY holds).

    A row is selected when `all` is set (high_risk), its confidence is below `confidence_below`
    (low_confidence), its output class is in `classes` (class_listed), or it falls in the random
    `sample_percent` (sampled). `held` rows answer "pending review"; `audited` rows answer
    normally and are reviewed after."""

    mode: str = "held"
    all: bool = False
    confidence_below: float | None = None
    sample_percent: float = 0.0
    classes: frozenset[str] = frozenset()

    @property
    def held(self) -> bool:
        return self.mode == "held"

    @property
    def enabled(self) -> bool:
        return bool(
            self.all or self.confidence_below is not None or self.sample_percent or self.classes
        )

    @classmethod
    def from_json(cls, text: str, key: str = "MODELPLANE_REVIEW_POLICY") -> ReviewPolicy:
        """Parse the control plane's JSON. Unknown keys are refused rather than ignored: a
        selector this process does not understand would silently let predictions through."""
        try:
            raw = json.loads(text)
        except ValueError:
            raise ConfigError(f"{key} must be a JSON object") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{key} must be a JSON object")
        unknown = sorted(set(raw) - _POLICY_KEYS)
        if unknown:
            raise ConfigError(f"{key}.{unknown[0]} is not a review policy selector")
        mode = raw.get("mode", "held")
        if mode not in REVIEW_MODES:
            raise ConfigError(f'{key}.mode must be "held" or "audited"')
        every = raw.get("all", False)
        if not isinstance(every, bool):
            raise ConfigError(f"{key}.all must be true or false")
        threshold = raw.get("confidence_below")
        if threshold is not None:
            threshold = _policy_number(threshold, f"{key}.confidence_below", 0.0, 1.0)
        sample = _policy_number(raw.get("sample_percent", 0), f"{key}.sample_percent", 0.0, 100.0)
        classes = raw.get("classes") or []
        if not isinstance(classes, list) or any(
            isinstance(c, bool) or not isinstance(c, str | int) for c in classes
        ):
            raise ConfigError(f"{key}.classes must be a list of class names")
        return cls(
            mode=mode,
            all=every,
            confidence_below=threshold,
            sample_percent=sample,
            classes=frozenset(str(c) for c in classes),
        )


def _policy_number(value: Any, key: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{key} must be a number")
    if not lo <= value <= hi:
        raise ConfigError(f"{key} must be between {lo:g} and {hi:g}")
    return float(value)


def version_number(version: str) -> int | None:
    """The registry's version number in MODEL_VERSION ("7" or "v7"); None when it is not one."""
    match = _VERSION_NUMBER.match(version.strip())
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class ReviewSettings:
    """Where and how this process submits the predictions its review policy selects.

    `token` is a secret (a team token with write scope): it is excluded from repr and is only
    ever sent in the Authorization header. `outbox_dir` None means a folder under the temp dir
    named after the served model (see serving.review.default_outbox_dir)."""

    policy: ReviewPolicy
    url: str
    deployment: int
    version: int
    token: str = field(default="", repr=False)
    outbox_dir: Path | None = None
    outbox_max: int = DEFAULT_OUTBOX_MAX
    timeout_seconds: float = 10.0
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 60.0

    @property
    def review_url(self) -> str:
        """The collection URL with exactly one trailing slash: items live at `<url><ref>/`."""
        return self.url.rstrip("/") + "/"

    @classmethod
    def from_env(cls, env: Mapping[str, str], model_version: str) -> ReviewSettings | None:
        """None when no policy is set (or it selects nothing): the service then behaves exactly
        as without review. A policy without somewhere to submit to refuses to start: a held
        prediction that can never reach a reviewer must not be accepted."""
        raw = env.get("MODELPLANE_REVIEW_POLICY", "").strip()
        if not raw:
            return None
        policy = ReviewPolicy.from_json(raw)
        if not policy.enabled:
            return None
        url = env.get("MODELPLANE_REVIEW_URL", "").strip()
        parts = urlsplit(url)
        if not url:
            raise ConfigError("MODELPLANE_REVIEW_URL is required with MODELPLANE_REVIEW_POLICY")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError("MODELPLANE_REVIEW_URL must be an http(s) URL")
        if parts.username or parts.password:
            raise ConfigError(
                "MODELPLANE_REVIEW_URL must not carry credentials: use MODELPLANE_REVIEW_TOKEN"
            )
        deployment = env.get("MODELPLANE_REVIEW_DEPLOYMENT", "").strip()
        if not deployment.isdigit() or int(deployment) < 1:
            raise ConfigError(
                "MODELPLANE_REVIEW_DEPLOYMENT must be the deployment's id with "
                "MODELPLANE_REVIEW_POLICY"
            )
        number = version_number(model_version)
        if number is None:
            raise ConfigError(
                "MODEL_VERSION must be the model version's number (e.g. 3 or v3) with "
                "MODELPLANE_REVIEW_POLICY"
            )
        outbox_dir = env.get("MODELPLANE_REVIEW_OUTBOX_DIR", "").strip()
        backoff = _float(env, "MODELPLANE_REVIEW_BACKOFF_SECONDS", 0.5, 0.001, 3600.0)
        return cls(
            policy=policy,
            url=url,
            deployment=int(deployment),
            version=number,
            token=env.get("MODELPLANE_REVIEW_TOKEN", "").strip(),
            outbox_dir=Path(outbox_dir) if outbox_dir else None,
            outbox_max=_int(env, "MODELPLANE_REVIEW_OUTBOX_MAX", DEFAULT_OUTBOX_MAX, minimum=1),
            timeout_seconds=_float(env, "MODELPLANE_REVIEW_TIMEOUT_SECONDS", 10.0, 0.01, 600.0),
            backoff_seconds=backoff,
            backoff_max_seconds=_float(
                env, "MODELPLANE_REVIEW_BACKOFF_MAX_SECONDS", max(60.0, backoff), backoff, 86400.0
            ),
        )


@dataclass(frozen=True)
class ServingSettings:
    artifact_uri: str
    artifact_digest: str
    model_name: str | None = None
    model_version: str = "unversioned"
    # The runtime says the track at start where it knows it (local runtime); on Kubernetes the
    # track lives in the Deployment's metadata so promotion never restarts pods: "unknown".
    track: str = "unknown"
    max_body_bytes: int = 1 * MiB
    max_batch: int = 256
    max_string_length: int = 256
    request_timeout_seconds: float = 10.0
    allow_faults: bool = False
    fault_error_rate: float = 0.0
    fault_latency_ms: int = 0
    max_download_bytes: int = 512 * MiB
    # Set by `python -m serving` for its workers: a file all workers map to share the fault switch.
    fault_state_file: str | None = None
    # Human review (MODELPLANE_REVIEW_*); None: no policy, and no cost on the request path.
    review: ReviewSettings | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if env is None else env
        uri = env.get("MODEL_ARTIFACT_URI", "").strip()
        digest = env.get("MODEL_ARTIFACT_DIGEST", "").strip()
        if not uri:
            raise ConfigError("MODEL_ARTIFACT_URI is required (file:// URI, path or http(s) URL)")
        if not digest:
            raise ConfigError("MODEL_ARTIFACT_DIGEST is required (sha256:<hex>)")
        model_version = env.get("MODEL_VERSION") or "unversioned"
        return cls(
            artifact_uri=uri,
            artifact_digest=digest,
            model_name=env.get("MODEL_NAME") or None,
            model_version=model_version,
            track=env.get("MODEL_TRACK") or "unknown",
            max_body_bytes=_int(env, "SERVING_MAX_BODY_BYTES", 1 * MiB, minimum=64),
            max_batch=_int(env, "SERVING_MAX_BATCH", 256, minimum=1),
            max_string_length=_int(env, "SERVING_MAX_STRING_LENGTH", 256, minimum=1),
            request_timeout_seconds=_float(
                env, "SERVING_REQUEST_TIMEOUT_SECONDS", 10.0, 0.001, 3600.0
            ),
            allow_faults=_bool(env, "SERVING_ALLOW_FAULTS"),
            fault_error_rate=_float(env, "SERVING_FAULT_ERROR_RATE", 0.0, 0.0, 1.0),
            fault_latency_ms=_int(env, "SERVING_FAULT_LATENCY_MS", 0),
            max_download_bytes=_int(env, "SERVING_MAX_DOWNLOAD_BYTES", 512 * MiB, minimum=1),
            fault_state_file=env.get("SERVING_FAULT_STATE_FILE") or None,
            review=ReviewSettings.from_env(env, model_version),
        )


def describe_uri(uri: str) -> str:
    """The URI without credentials, path details or query, for messages."""
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.hostname or ''}/..."
    return uri


def local_artifact_path(uri: str) -> Path | None:
    """The local path of a file:// URI or plain path; None for remote URIs."""
    parts = urlsplit(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ConfigError("file:// URIs must not name a remote host")
        return Path(unquote(parts.path))
    if parts.scheme == "":
        return Path(uri)
    if parts.scheme in ("http", "https"):
        return None
    raise ConfigError(f"unsupported artifact URI scheme {parts.scheme!r}")


def download_artifact(uri: str, max_bytes: int, timeout_seconds: float = 60.0) -> Path:
    """Stream an http(s) artifact to a temporary file, refusing more than `max_bytes`."""
    import httpx

    fd, name = tempfile.mkstemp(prefix="model-artifact-", suffix=".zip")
    path = Path(name)
    received = 0
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", uri, timeout=timeout_seconds, follow_redirects=True) as response,
        ):
            if response.status_code != 200:
                raise ConfigError(
                    f"downloading {describe_uri(uri)} answered HTTP {response.status_code}"
                )
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise ConfigError(f"artifact is larger than {max_bytes} bytes")
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > max_bytes:
                    raise ConfigError(f"artifact is larger than {max_bytes} bytes")
                out.write(chunk)
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise ConfigError(f"cannot download {describe_uri(uri)}: {type(exc).__name__}") from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def resolve_artifact(settings: ServingSettings) -> tuple[Path, bool]:
    """Local path of the artifact and whether it is a temporary download the caller removes."""
    local = local_artifact_path(settings.artifact_uri)
    if local is not None:
        return local, False
    return download_artifact(settings.artifact_uri, settings.max_download_bytes), True
