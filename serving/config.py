"""Configuration of the inference service, read from the environment (12-factor), and resolution
of the model artifact URI to a local file.

It must never log or echo secret-bearing values: an artifact URL may carry credentials in its
query string, so only its scheme and host appear in messages.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if env is None else env
        uri = env.get("MODEL_ARTIFACT_URI", "").strip()
        digest = env.get("MODEL_ARTIFACT_DIGEST", "").strip()
        if not uri:
            raise ConfigError("MODEL_ARTIFACT_URI is required (file:// URI, path or http(s) URL)")
        if not digest:
            raise ConfigError("MODEL_ARTIFACT_DIGEST is required (sha256:<hex>)")
        return cls(
            artifact_uri=uri,
            artifact_digest=digest,
            model_name=env.get("MODEL_NAME") or None,
            model_version=env.get("MODEL_VERSION") or "unversioned",
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
