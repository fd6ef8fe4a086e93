"""Checks of what CI registers: JSON Schemas, the baseline feature profile, image references and
artifact digests. Pure functions that raise ValidationFailed/DigestMismatch naming the field."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import jsonschema
from django.conf import settings

from core.errors import DigestMismatch, ValidationFailed

DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._\-/:]*@sha256:[0-9a-f]{64}$")
MAX_ARTIFACT_BYTES = 2 * 1024**3


def check_json_schema(field: str, schema: object, *, require_object: bool = False) -> None:
    if not isinstance(schema, dict):
        raise ValidationFailed("must be a JSON Schema object", field=field)
    problem = _schema_problem(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    if problem:
        raise ValidationFailed(f"is not a valid JSON Schema: {problem}", field=field)
    if require_object and schema.get("type") != "object":
        raise ValidationFailed('must describe one instance: {"type": "object", ...}', field=field)


@functools.lru_cache(maxsize=512)
def _schema_problem(canonical: str) -> str:
    """Why a schema (as canonical JSON) is not a valid JSON Schema, or "". Checking a schema
    against its metaschema walks the 2020-12 vocabularies (about 1.5 ms, the largest single cost
    of registering a version), and a model's versions mostly repeat one schema: the answer, a
    pure function of the text, is kept for the last 512 schemas seen."""
    schema = json.loads(canonical)
    try:
        validator = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator
        )
        validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path)
        return exc.message + (f" (at {where})" if where else "")
    return ""


def check_examples(field: str, examples: object, input_schema: dict) -> None:
    """Example requests are `{"instances": [...]}` documents valid against the input schema."""
    if not isinstance(examples, list):
        raise ValidationFailed("must be a list of request documents", field=field)
    validator = jsonschema.Draft202012Validator(input_schema)
    for i, example in enumerate(examples):
        instances = example.get("instances") if isinstance(example, dict) else None
        if not isinstance(instances, list) or not instances:
            raise ValidationFailed(
                'must be {"instances": [...]} with at least one', field=f"{field}[{i}]"
            )
        for j, instance in enumerate(instances):
            error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
            if error is not None:
                raise ValidationFailed(
                    f"does not match input_schema: {error.message}",
                    field=f"{field}[{i}].instances[{j}]",
                )


def _check_numeric_profile(field: str, spec: dict) -> None:
    edges, counts = spec.get("bin_edges"), spec.get("counts")
    if not isinstance(edges, list) or not isinstance(counts, list):
        raise ValidationFailed("numeric profiles need bin_edges and counts lists", field=field)
    if len(edges) < 2 or len(edges) != len(counts) + 1:
        raise ValidationFailed("bin_edges must have one more entry than counts", field=field)
    if not all(isinstance(e, int | float) and math.isfinite(e) for e in edges):
        raise ValidationFailed("bin_edges must be finite numbers", field=f"{field}.bin_edges")
    if any(b <= a for a, b in itertools.pairwise(edges)):
        raise ValidationFailed("bin_edges must increase strictly", field=f"{field}.bin_edges")
    if not all(isinstance(c, int | float) and c >= 0 for c in counts):
        raise ValidationFailed("counts must be non-negative numbers", field=f"{field}.counts")


def _check_categorical_profile(field: str, spec: dict) -> None:
    freqs = spec.get("frequencies")
    if not isinstance(freqs, dict) or not freqs:
        raise ValidationFailed("categorical profiles need a frequencies object", field=field)
    if not all(isinstance(c, int | float) and c >= 0 for c in freqs.values()):
        raise ValidationFailed(
            "frequencies must be non-negative numbers", field=f"{field}.frequencies"
        )


def _check_distribution(field: str, spec: object) -> None:
    if not isinstance(spec, dict):
        raise ValidationFailed("must be an object", field=field)
    kind = spec.get("type")
    if kind == "numeric":
        _check_numeric_profile(field, spec)
    elif kind == "categorical":
        _check_categorical_profile(field, spec)
    else:
        raise ValidationFailed('type must be "numeric" or "categorical"', field=f"{field}.type")


def check_baseline_profile(field: str, profile: object) -> None:
    """The drift baseline: per-feature histograms (bin edges + counts) or category frequencies."""
    if profile in (None, {}):
        return
    if not isinstance(profile, dict):
        raise ValidationFailed("must be an object", field=field)
    features = profile.get("features")
    if not isinstance(features, dict) or not features:
        raise ValidationFailed("must have a non-empty features object", field=f"{field}.features")
    for name, spec in features.items():
        _check_distribution(f"{field}.features.{name}", spec)
    if "prediction" in profile:
        _check_distribution(f"{field}.prediction", profile["prediction"])


def check_image(field: str, image: str) -> None:
    if image and not IMAGE_RE.match(image):
        raise ValidationFailed(
            "must be pinned by digest, e.g. registry.example.com/team/model@sha256:<64 hex>",
            field=field,
        )


def check_digest(field: str, digest: str) -> None:
    if not DIGEST_RE.match(digest):
        raise ValidationFailed('must be "sha256:" followed by 64 lowercase hex digits', field=field)


def artifact_digest(uri: str) -> str | None:
    """sha256 of the artifact when the control plane can read its URI (file://, http(s)://);
    None for schemes it cannot read (s3://, gs://...). Unreadable readable-scheme URIs fail."""
    parsed = urlparse(uri)
    hasher = hashlib.sha256()
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path)).resolve()
        roots = [Path(r).resolve() for r in settings.ARTIFACT_FILE_ROOTS]
        if not any(path.is_relative_to(root) for root in roots):
            # Never hash arbitrary files of the control plane host: only the artifact stores.
            raise ValidationFailed(
                "file:// artifacts must live under ARTIFACT_FILE_ROOTS", field="artifact_uri"
            )
        if not path.is_file():
            raise ValidationFailed(f"no file at {path}", field="artifact_uri")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                hasher.update(chunk)
        return "sha256:" + hasher.hexdigest()
    if parsed.scheme in {"http", "https"}:
        total = 0
        try:
            with httpx.stream(
                "GET", uri, timeout=settings.ARTIFACT_FETCH_TIMEOUT_SECONDS, follow_redirects=True
            ) as response:
                if response.status_code != 200:
                    raise ValidationFailed(
                        f"could not be read: HTTP {response.status_code}", field="artifact_uri"
                    )
                for chunk in response.iter_bytes(1 << 20):
                    total += len(chunk)
                    if total > MAX_ARTIFACT_BYTES:
                        raise ValidationFailed(
                            "artifact is larger than 2 GiB", field="artifact_uri"
                        )
                    hasher.update(chunk)
        except httpx.HTTPError as exc:
            raise ValidationFailed(f"could not be read: {exc}", field="artifact_uri") from None
        return "sha256:" + hasher.hexdigest()
    if not parsed.scheme:
        raise ValidationFailed(
            "must be a URI with a scheme (file://, https://, s3://...)", field="artifact_uri"
        )
    return None


def verify_artifact(uri: str, declared: str) -> bool:
    """True when the digest was checked and matches; False when the scheme can't be read here."""
    actual = artifact_digest(uri)
    if actual is None:
        if settings.ARTIFACT_VERIFY_REQUIRED:
            raise ValidationFailed(
                "this control plane only accepts artifacts it can verify (file://, https://)",
                field="artifact_uri",
            )
        return False
    if actual != declared:
        raise DigestMismatch(
            f"artifact digest is {actual}, not the declared {declared}", field="artifact_digest"
        )
    return True
