"""Checks of what people and CI ask of environments and deployments: strategy parameters,
analysis windows, config revisions, names. Pure functions that raise ValidationFailed naming the
field at fault; they never read or write the database and never record audit events."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.errors import ValidationFailed

from .analysis import ANALYSIS_SAMPLES, SAMPLE_SCRAPES, minimum_analysis_window_seconds
from .kpi import KPI_KEY, parse_kpi
from .models import (
    DEFAULT_STRATEGY_PARAMS,
    DeploymentConfig,
    Environment,
    MetricsKind,
    RuntimeKind,
    Strategy,
)
from .review_policy import validate_review_policy
from .runtime.k8s_objects import canonical_quantity, quantity_value

ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$")
# Public env vars that look like credentials must be secret references instead.
SECRET_LOOKING_RE = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL)", re.IGNORECASE
)
SECRET_CONFIG_KEYS = {"token", "password", "client_key", "client_certificate", "bearer_token"}

# Resource quantities of a config revision: (request, limit) per resource.
QUANTITY_PAIRS = (("cpu_request", "cpu_limit"), ("memory_request", "memory_limit"))
QUANTITY_FIELDS = tuple(name for pair in QUANTITY_PAIRS for name in pair)
QUANTITY_MAX_LENGTH = DeploymentConfig._meta.get_field("cpu_request").max_length

# The fields of a deployment config revision (DeploymentConfig), the only ones it accepts.
CONFIG_FIELDS = (
    "replicas",
    "cpu_request",
    "cpu_limit",
    "memory_request",
    "memory_limit",
    "gpu",
    "min_replicas",
    "max_replicas",
    "env",
    "secret_refs",
    "slo_latency_p95_ms",
    "slo_error_rate",
    "slo_availability",
    "drift_warn",
    "drift_alert",
    "monthly_budget",
    "metrics_queries",
    "review_policy",
)

STRATEGY_PARAMS = {
    "steps",
    "analysis_interval_seconds",
    "min_requests",
    "keep_warm_seconds",
    "mirror_percent",
    "progress_deadline_seconds",
    "max_cost_increase",
    "analysis_warmup_seconds",
}


# Environments ---------------------------------------------------------------------------------


def check_environment(
    *,
    runtime_kind: str,
    runtime_config: Mapping[str, Any],
    metrics_kind: str,
    metrics_url: str,
    metrics_scrape_interval_seconds: float,
    prices: Mapping[str, Decimal | float],
) -> None:
    """Checks of a new environment's own fields (`prices`: field name -> price per hour)."""
    if runtime_kind not in RuntimeKind.values:
        raise ValidationFailed(f"must be one of {RuntimeKind.values}", field="runtime_kind")
    if metrics_kind not in MetricsKind.values:
        raise ValidationFailed(f"must be one of {MetricsKind.values}", field="metrics_kind")
    if metrics_kind == MetricsKind.PROMETHEUS and not metrics_url:
        raise ValidationFailed("is required for a Prometheus metrics source", field="metrics_url")
    if not 0.5 <= float(metrics_scrape_interval_seconds) <= 600:
        raise ValidationFailed(
            "must be from 0.5 to 600 seconds", field="metrics_scrape_interval_seconds"
        )
    leaked = SECRET_CONFIG_KEYS & {k.lower() for k in runtime_config}
    if leaked:
        raise ValidationFailed(
            "holds credentials; reference a kubeconfig path or in-cluster auth instead",
            field=f"runtime_config.{sorted(leaked)[0]}",
        )
    for field_name, price in prices.items():
        if Decimal(str(price)) < 0:
            raise ValidationFailed("must not be negative", field=field_name)


# Deployments ----------------------------------------------------------------------------------


def check_deployment_name(name: str) -> None:
    if not DNS_LABEL_RE.match(name):
        raise ValidationFailed(
            "must be a DNS label (lowercase, digits, '-', at most 50)", field="name"
        )


def validate_strategy(strategy: str, params: dict[str, Any]) -> dict[str, Any]:
    if strategy not in Strategy.values:
        raise ValidationFailed(f"must be one of {Strategy.values}", field="strategy")
    if not isinstance(params, dict):
        raise ValidationFailed("must be an object", field="strategy_params")
    unknown = set(params) - STRATEGY_PARAMS
    if unknown:
        raise ValidationFailed(
            "is not a strategy parameter", field=f"strategy_params.{sorted(unknown)[0]}"
        )
    if "steps" in params:
        steps = params["steps"]
        if (
            not isinstance(steps, list)
            or not steps
            or not all(
                isinstance(s, int) and not isinstance(s, bool) and 0 < s <= 100 for s in steps
            )
            or steps != sorted(set(steps))
            or steps[-1] != 100
        ):
            raise ValidationFailed(
                "must be increasing percentages ending at 100, e.g. [5, 25, 50, 100]",
                field="strategy_params.steps",
            )
    for key, low, high in (
        ("analysis_interval_seconds", 0, 86400),
        ("min_requests", 0, 10**9),
        ("keep_warm_seconds", 0, 7 * 86400),
        ("mirror_percent", 1, 100),
        ("progress_deadline_seconds", 10, 86400),
        ("max_cost_increase", 0, 100),  # relative: 0.2 = canary may cost 20% more
        ("analysis_warmup_seconds", 0, 3600),
    ):
        if key in params:
            value = params[key]
            if (
                not isinstance(value, int | float)
                or isinstance(value, bool)
                or not (low <= value <= high)
            ):
                raise ValidationFailed(
                    f"must be a number from {low} to {high}", field=f"strategy_params.{key}"
                )
    return params


def check_analysis_window(environment: Environment, strategy: str, params: dict[str, Any]) -> None:
    """An analysis window too short for the environment's scrape interval can never reach a
    verdict (every step would pause as inconclusive): refuse it when it is configured."""
    if environment.metrics_kind == MetricsKind.NONE:
        return
    effective = {**DEFAULT_STRATEGY_PARAMS[strategy], **params}
    interval = float(effective.get("analysis_interval_seconds", 0) or 0)
    if strategy not in (Strategy.CANARY, Strategy.SHADOW) or interval == 0:
        return
    scrape = environment.metrics_scrape_interval_seconds
    needed = minimum_analysis_window_seconds(scrape)
    if interval < needed:
        raise ValidationFailed(
            f"must be at least {needed:g} s in {environment.name}: the comparison takes "
            f"{ANALYSIS_SAMPLES} samples per side, each {SAMPLE_SCRAPES} scrape intervals of "
            f"{scrape:g} s",
            field="strategy_params.analysis_interval_seconds",
        )


def check_quantity(field: str, value: Any) -> str:
    """A resource quantity as given, in the canonical form the Kubernetes API server stores
    ("0.5" -> "500m", "1024Mi" -> "1Gi"), so the config shows what the cluster will show and a
    re-apply finds nothing to change. What the API server would refuse is refused here."""
    try:
        canonical = canonical_quantity(value)
    except ValueError:
        raise ValidationFailed(
            'must be a Kubernetes quantity such as "500m" or "1Gi"', field=field
        ) from None
    if quantity_value(canonical) < 0:
        raise ValidationFailed("must not be negative", field=field)
    if len(canonical) > QUANTITY_MAX_LENGTH:
        raise ValidationFailed("is too large", field=field)
    return canonical


def check_resources(config: Mapping[str, Any], *, revision: bool = False) -> dict[str, Any]:
    """Resource quantities in canonical form, and no request above its limit, which the API
    server would reject (422) when the version is applied. `revision`: `config` is a whole
    revision (the fields sent over the previous revision's), where a field left out takes its
    default; otherwise a pair is only checked when both are given."""
    checked = dict(config)
    for field in QUANTITY_FIELDS:
        if field in checked:
            checked[field] = check_quantity(field, checked[field])
    for request, limit in QUANTITY_PAIRS:
        given = (request in checked) + (limit in checked)
        if given == 0 or (given == 1 and not revision):
            continue
        asked, bound = (checked.get(f, _default_of(f)) for f in (request, limit))
        if quantity_value(asked) > quantity_value(bound):
            raise ValidationFailed(f"must not exceed {limit} ({bound})", field=request)
    return checked


def _default_of(field: str) -> str:
    return str(DeploymentConfig._meta.get_field(field).default)


def validate_config(values: dict[str, Any]) -> dict[str, Any]:
    """Checks of a deployment config revision; every error names its field. Returns the values
    with resource quantities in canonical form."""
    unknown = set(values) - set(CONFIG_FIELDS)
    if unknown:
        raise ValidationFailed("is not a configuration field", field=sorted(unknown)[0])
    values = check_resources(values)
    for key in ("memory_request", "memory_limit"):
        if key in values and quantity_value(values[key]) % 1:
            # The API server only warns, but "500m" of memory is half a byte: "500Mi" was meant.
            raise ValidationFailed('must be a whole number of bytes, such as "512Mi"', field=key)
    if "replicas" in values and not 1 <= int(values["replicas"]) <= 100:
        raise ValidationFailed("must be from 1 to 100", field="replicas")
    lo, hi = values.get("min_replicas"), values.get("max_replicas")
    if (lo is None) != (hi is None) or (lo is not None and not 1 <= lo <= hi):
        raise ValidationFailed(
            "min_replicas and max_replicas go together, 1 <= min <= max",
            field="max_replicas" if lo is not None else "min_replicas",
        )
    env = values.get("env", {})
    if not isinstance(env, dict):
        raise ValidationFailed("must be an object of NAME: value", field="env")
    for name, value in env.items():
        if not ENV_NAME_RE.match(str(name)):
            raise ValidationFailed("is not a valid environment variable name", field=f"env.{name}")
        if not isinstance(value, str | int | float | bool):
            raise ValidationFailed("must be a plain value", field=f"env.{name}")
        if SECRET_LOOKING_RE.search(str(name)):
            raise ValidationFailed(
                "looks like a credential: use a secret reference (secret_refs), never a value",
                field=f"env.{name}",
            )
    refs = values.get("secret_refs", [])
    if not isinstance(refs, list):
        raise ValidationFailed("must be a list", field="secret_refs")
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or set(ref) != {"env_name", "secret_name", "secret_key"}:
            raise ValidationFailed(
                "must be {env_name, secret_name, secret_key} and nothing else (never a value)",
                field=f"secret_refs[{i}]",
            )
        if not ENV_NAME_RE.match(str(ref["env_name"])):
            raise ValidationFailed(
                "is not a valid environment variable name", field=f"secret_refs[{i}].env_name"
            )
        if not DNS_LABEL_RE.match(str(ref["secret_name"])):
            raise ValidationFailed(
                "must be a Kubernetes Secret name", field=f"secret_refs[{i}].secret_name"
            )
    for key, low, high in (
        ("slo_error_rate", 0, 1),
        ("slo_availability", 0.5, 1),
        ("drift_warn", 0, 10),
        ("drift_alert", 0, 10),
    ):
        if key in values and not low <= float(values[key]) <= high:
            raise ValidationFailed(f"must be from {low} to {high}", field=key)
    if float(values.get("drift_warn", 0.1)) > float(values.get("drift_alert", 0.25)):
        raise ValidationFailed("must not exceed drift_alert", field="drift_warn")
    queries = values.get("metrics_queries", {})
    if not isinstance(queries, dict):
        raise ValidationFailed(
            "must be an object of template name: PromQL", field="metrics_queries"
        )
    for name, value in queries.items():
        if name == KPI_KEY:
            parse_kpi(value)  # the business KPI: {name, unit, good_direction, query}
        elif not isinstance(value, str):
            raise ValidationFailed("must be a PromQL template", field=f"metrics_queries.{name}")
    if "review_policy" in values:
        values["review_policy"] = validate_review_policy(values["review_policy"])
    return values
