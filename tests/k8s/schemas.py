"""Validation of Kubernetes objects the way a kube-apiserver 1.36 would reject them: core kinds
against kubernetes-validate's strict 1.36 schemas, HTTPRoutes against the vendored Gateway API
CRD schema (tests/data/gateway-api), plus the name and label rules the API server enforces in
code; and the defaults that CRD's schema declares.

Test support only; it never talks to a cluster."""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# The Kubernetes release the fake API server follows: the one its stored objects were checked
# against (tests/k8s/data/real-apiserver-1.36). Raise it together with those objects.
KUBERNETES_VERSION = "1.36"
HTTPROUTE_SCHEMA_PATH = (
    Path(__file__).resolve().parent.parent / "data" / "gateway-api" / "httproute-v1-schema.yaml"
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")


class Invalid(Exception):
    """An object the API server would answer with 422 Invalid; `causes` name the fields."""

    def __init__(self, kind: str, name: str, causes: list[tuple[str, str]]) -> None:
        self.kind, self.name, self.causes = kind, name, causes
        detail = "; ".join(f"{field}: {message}" for field, message in causes)
        super().__init__(f'{kind} "{name}" is invalid: {detail}')


def _strict(schema: Any) -> Any:
    """fieldValidation=Strict: unknown fields are errors, not silently pruned."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def httproute_schema() -> dict[str, Any]:
    return yaml.safe_load(HTTPROUTE_SCHEMA_PATH.read_text())["openAPIV3Schema"]


@functools.cache
def httproute_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(_strict(copy.deepcopy(httproute_schema())))


def _default(value: Any, schema: dict[str, Any]) -> None:
    """Structural-schema defaulting as the API server does it for custom resources: a missing
    property with a `default` gets it, top-down, then its own properties are defaulted."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, sub in properties.items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
        for key, item in value.items():
            if key in properties:
                _default(item, properties[key])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            _default(item, schema["items"])


def apply_httproute_defaults(route: dict[str, Any]) -> None:
    """Fill in the defaults of the HTTPRoute CRD (weight 1, group "", kind Service, ...)."""
    _default(route, httproute_schema())


def _path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "<root>"


def _check_metadata(kind: str, meta: dict[str, Any], causes: list[tuple[str, str]]) -> None:
    name = meta.get("name", "")
    # Service names are DNS-1123 labels from 1.36 on (RelaxedServiceNameValidation, on by
    # default): "9lives" is fine; before, they had to start with a letter (DNS-1035).
    name_rule = _DNS1123_LABEL if kind == "Service" else _DNS1123_SUBDOMAIN
    limit = 63 if kind == "Service" else 253
    if not name or len(name) > limit or not name_rule.match(name):
        causes.append(("metadata.name", f"Invalid value: {name!r}: not a valid {kind} name"))
    namespace = meta.get("namespace")
    if namespace is not None and not _DNS1123_LABEL.match(namespace):
        causes.append(("metadata.namespace", f"Invalid value: {namespace!r}"))
    for key, value in (meta.get("labels") or {}).items():
        prefix, _, label = key.rpartition("/")
        if (prefix and not _DNS1123_SUBDOMAIN.match(prefix)) or not (
            len(label) <= 63 and _LABEL_NAME.match(label)
        ):
            causes.append((f"metadata.labels[{key}]", "Invalid label key"))
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append((f"metadata.labels[{key}]", f"Invalid label value: {value!r}"))


def _httproute_cel(route: dict[str, Any], causes: list[tuple[str, str]]) -> None:
    """The CRD's CEL rules our routes could break (jsonschema cannot evaluate CEL)."""
    field_of = {
        "RequestHeaderModifier": "requestHeaderModifier",
        "ResponseHeaderModifier": "responseHeaderModifier",
        "RequestMirror": "requestMirror",
        "RequestRedirect": "requestRedirect",
        "URLRewrite": "urlRewrite",
        "ExtensionRef": "extensionRef",
    }

    def service_port(ref: dict[str, Any], where: str) -> None:
        is_service = ref.get("group", "") == "" and ref.get("kind", "Service") == "Service"
        if is_service and "port" not in ref:
            causes.append((where, "Must have port for Service reference"))

    for i, rule in enumerate((route.get("spec") or {}).get("rules") or []):
        for j, backend in enumerate(rule.get("backendRefs") or []):
            service_port(backend, f"spec.rules[{i}].backendRefs[{j}]")
        for j, flt in enumerate(rule.get("filters") or []):
            where = f"spec.rules[{i}].filters[{j}]"
            for ftype, field in field_of.items():
                if field in flt and flt.get("type") != ftype:
                    causes.append(
                        (where, f"filter.{field} must be nil if the filter.type is not {ftype}")
                    )
                if field not in flt and flt.get("type") == ftype:
                    causes.append(
                        (where, f"filter.{field} must be specified for {ftype} filter.type")
                    )
            mirror = flt.get("requestMirror")
            if mirror:
                if "percent" in mirror and "fraction" in mirror:
                    causes.append((where, "Only one of percent or fraction may be specified"))
                service_port(mirror.get("backendRef") or {}, f"{where}.requestMirror.backendRef")
            redirect_with_backends = flt.get("type") == "RequestRedirect" and rule.get(
                "backendRefs"
            )
            if redirect_with_backends:
                causes.append(
                    (where, "RequestRedirect filter must not be used together with backendRefs")
                )


def validate_object(obj: dict[str, Any]) -> None:
    """Raise Invalid when the API server would reject `obj`."""
    kind = obj.get("kind", "")
    name = (obj.get("metadata") or {}).get("name", "")
    causes: list[tuple[str, str]] = []
    _check_metadata(kind, obj.get("metadata") or {}, causes)
    if obj.get("apiVersion") == "gateway.networking.k8s.io/v1" and kind == "HTTPRoute":
        for error in sorted(httproute_validator().iter_errors(obj), key=lambda e: e.path):
            causes.append((_path(error), error.message))
        _httproute_cel(obj, causes)
    else:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            causes.append((_path(error), error.message))
    if causes:
        raise Invalid(kind, name, causes)
