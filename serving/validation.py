"""Request parsing and input validation compiled once from the manifest's input JSON Schema.

Every rejection carries the field path and a reason code and becomes a 4xx. Error messages name
limits from the schema but must never echo the submitted value: they may end up in logs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_REPORTED_ERRORS = 20
MAX_FIELD_LABEL = 64

# Reason codes are a closed set: they are label values of model_input_rejections_total.
REASONS: tuple[str, ...] = (
    "body_too_large",
    "unsupported_media_type",
    "malformed_json",
    "wrong_type",
    "empty_batch",
    "batch_too_large",
    "missing_field",
    "unknown_field",
    "not_finite",
    "out_of_range",
    "string_too_long",
    "unknown_category",
    "invalid_shape",
    "invalid_datatype",
    "invalid_binary_data",
)


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "reason": self.reason, "message": self.message}


class Rejection(Exception):
    """A client error: HTTP `status`, the first error's reason counts in the metrics."""

    def __init__(self, status: int, errors: list[FieldError]) -> None:
        super().__init__(errors[0].message)
        self.status = status
        self.errors = errors

    @property
    def reason(self) -> str:
        return self.errors[0].reason

    @classmethod
    def single(cls, status: int, field: str, reason: str, message: str) -> Rejection:
        return cls(status, [FieldError(field, reason, message)])


class SchemaUnsupported(ValueError):
    """The manifest's input schema uses a construct the compiled validator does not implement."""


class NonFinite:
    """Stands in for the JSON tokens NaN/Infinity/-Infinity so the validator can name the field."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token


_DECODER = json.JSONDecoder(parse_constant=NonFinite)


def parse_json(body: bytes) -> Any:
    """Decode a JSON body; NaN/Infinity tokens become `NonFinite` markers instead of floats."""
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejection.single(
            400, "body", "malformed_json", "request body is not valid UTF-8 JSON"
        ) from None


def field_label(name: object) -> str:
    """A client-supplied key, shortened and made printable for an error message."""
    text = name if isinstance(name, str) else type(name).__name__
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= MAX_FIELD_LABEL else text[: MAX_FIELD_LABEL - 3] + "..."


# A check returns None when the value is valid, else (reason, message).
Check = Callable[[Any], "tuple[str, str] | None"]

_PROPERTY_KEYS = frozenset(
    {
        "type",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "enum",
        "maxLength",
        "minLength",
        "description",
        "title",
    }
)
_SCHEMA_KEYS = frozenset(
    {"$schema", "$id", "type", "properties", "required", "additionalProperties"}
    | {"title", "description"}
)


def _number_check(prop: Mapping[str, Any], integer: bool) -> Check:
    lo = prop.get("minimum")
    hi = prop.get("maximum")
    xlo = prop.get("exclusiveMinimum")
    xhi = prop.get("exclusiveMaximum")
    expected = "an integer" if integer else "a number"

    def check(value: Any) -> tuple[str, str] | None:
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return "not_finite", "must be a finite number"
            if integer and not value.is_integer():
                return "wrong_type", f"expected {expected}"
        elif kind is int:
            try:
                float(value)
            except OverflowError:
                return "out_of_range", "number is too large"
        elif kind is NonFinite:
            return "not_finite", "NaN and Infinity are not accepted"
        else:
            return "wrong_type", f"expected {expected}"
        if lo is not None and value < lo:
            return "out_of_range", f"must be >= {lo}"
        if hi is not None and value > hi:
            return "out_of_range", f"must be <= {hi}"
        if xlo is not None and value <= xlo:
            return "out_of_range", f"must be > {xlo}"
        if xhi is not None and value >= xhi:
            return "out_of_range", f"must be < {xhi}"
        return None

    return check


def _string_check(prop: Mapping[str, Any], max_string_length: int) -> Check:
    max_len = min(int(prop.get("maxLength", max_string_length)), max_string_length)
    min_len = int(prop.get("minLength", 0))
    enum = prop.get("enum")
    allowed = frozenset(enum) if enum is not None else None
    listing = ", ".join(str(v) for v in enum[:20]) if enum is not None else ""

    def check(value: Any) -> tuple[str, str] | None:
        if type(value) is not str:
            return "wrong_type", "expected a string"
        if len(value) > max_len:
            return "string_too_long", f"must be at most {max_len} characters"
        if len(value) < min_len:
            return "out_of_range", f"must be at least {min_len} characters"
        if allowed is not None and value not in allowed:
            return "unknown_category", f"must be one of: {listing}"
        return None

    return check


@dataclass(frozen=True)
class FeatureRule:
    name: str
    kind: str  # "numeric" | "categorical"
    check: Check
    categories: tuple[str, ...] | None


class InstanceValidator:
    """Validates batches against one instance schema, compiled to plain Python checks."""

    def __init__(
        self,
        input_schema: Mapping[str, Any],
        *,
        max_string_length: int,
        max_batch: int,
        feature_order: Sequence[str] | None = None,
    ) -> None:
        """`feature_order` (the model's column order, the manifest's feature_names) orders
        `names`: the columns of a [batch, n_features] tensor. A JSON object's key order (the
        schema's properties) is not to be trusted for that."""
        unknown = set(input_schema) - _SCHEMA_KEYS
        if unknown:
            raise SchemaUnsupported(f"unsupported schema keywords: {sorted(unknown)}")
        if input_schema.get("type") != "object":
            raise SchemaUnsupported("the input schema must describe an object")
        if input_schema.get("additionalProperties", True) is not False:
            raise SchemaUnsupported("the input schema must set additionalProperties: false")
        self.max_batch = max_batch
        self.max_string_length = max_string_length
        self.required = frozenset(input_schema.get("required", ()))
        self.rules: dict[str, FeatureRule] = {}
        for name, prop in input_schema.get("properties", {}).items():
            extra = set(prop) - _PROPERTY_KEYS
            if extra:
                raise SchemaUnsupported(f"unsupported keywords for {name}: {sorted(extra)}")
            kind = prop.get("type")
            if kind in ("number", "integer"):
                rule = FeatureRule(name, "numeric", _number_check(prop, kind == "integer"), None)
            elif kind == "string":
                enum = prop.get("enum")
                cats = tuple(enum) if enum is not None else None
                rule = FeatureRule(
                    name, "categorical", _string_check(prop, max_string_length), cats
                )
            else:
                raise SchemaUnsupported(f"unsupported type for {name}: {kind!r}")
            self.rules[name] = rule
        if self.required != set(self.rules):
            # The model needs every feature of every row: optional features would leave holes.
            raise SchemaUnsupported("every property must be required, and only properties")
        if feature_order is not None:
            if sorted(feature_order) != sorted(self.rules):
                raise SchemaUnsupported("the feature order must name every property once")
            self.rules = {name: self.rules[name] for name in feature_order}
        self.names = list(self.rules)

    def check_batch_size(self, size: int, field: str) -> None:
        if size == 0:
            raise Rejection.single(422, field, "empty_batch", "at least one instance is required")
        if size > self.max_batch:
            raise Rejection.single(
                413, field, "batch_too_large", f"at most {self.max_batch} instances per request"
            )

    def instances_to_columns(self, instances: Any, path: str = "instances") -> dict[str, list]:
        """Validate `[{feature: value}, ...]` and return one list of values per feature."""
        if not isinstance(instances, list):
            raise Rejection.single(422, path, "wrong_type", "expected a list of objects")
        self.check_batch_size(len(instances), path)
        columns: dict[str, list] = {name: [] for name in self.names}
        errors: list[FieldError] = []
        rules = self.rules
        for i, instance in enumerate(instances):
            if type(instance) is not dict:
                errors.append(FieldError(f"{path}[{i}]", "wrong_type", "expected an object"))
            else:
                for key, value in instance.items():
                    rule = rules.get(key)
                    if rule is None:
                        errors.append(
                            FieldError(
                                f"{path}[{i}].{field_label(key)}",
                                "unknown_field",
                                "field is not in the input schema",
                            )
                        )
                        continue
                    problem = rule.check(value)
                    if problem is not None:
                        errors.append(FieldError(f"{path}[{i}].{key}", *problem))
                    else:
                        columns[key].append(value)
                if len(instance) != len(rules) or errors:
                    for name in self.required:
                        if name not in instance:
                            errors.append(
                                FieldError(
                                    f"{path}[{i}].{name}",
                                    "missing_field",
                                    "required field is missing",
                                )
                            )
            if len(errors) >= MAX_REPORTED_ERRORS:
                break
        if errors:
            raise Rejection(422, errors[:MAX_REPORTED_ERRORS])
        return columns

    def check_columns(self, columns: Mapping[str, list], field: Callable[[str, int], str]) -> None:
        """Validate column-oriented input (OIP v2 tensors); `field(name, row)` names a cell."""
        errors: list[FieldError] = []
        for name, values in columns.items():
            check = self.rules[name].check
            for i, value in enumerate(values):
                problem = check(value)
                if problem is not None:
                    errors.append(FieldError(field(name, i), *problem))
                    if len(errors) >= MAX_REPORTED_ERRORS:
                        raise Rejection(422, errors)
        if errors:
            raise Rejection(422, errors)
