"""The control plane's SLO rules as Prometheus rules, for teams that run Prometheus and
Alertmanager: per deployment, recording rules of the error ratio over every burn window, the
multiwindow burn-rate alerts of monitoring.slo, and error-rate and latency alerts, all from the
deployment's current config, so both sides judge the same SLOs on the same windows. The alert
labels (`modelplane_team`, `modelplane_deployment`, ...) are what the Alertmanager ingest maps
back to a deployment (docs/alert-rules.md).

It must never name a metric of its own: the names are the serving contract's, as the
Prometheus source's query templates write them (monitoring.sources.prometheus)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml
from django.conf import settings

from core.errors import ValidationFailed
from deployments.models import Deployment, DeploymentConfig
from monitoring.slo import BURN_WINDOWS, DEFAULT_BURN_RATE_RULES, SLO_WINDOW
from monitoring.slo import Severity as BurnSeverity
from monitoring.sources.prometheus import (
    REQUEST_DURATION_BUCKETS,
    REQUESTS_METRIC,
    SERVER_ERROR_MATCHER,
    escape_label_value,
)

from .models import Severity

# The labels the Alertmanager ingest reads to find the team and the deployment of an alert.
TEAM_LABEL = "modelplane_team"
DEPLOYMENT_LABEL = "modelplane_deployment"
# Alert names, one per kind of rule (the burn-rate alert's windows are labels).
BURN_ALERT = "ModelErrorBudgetBurn"
ERROR_RATE_ALERT = "ModelErrorRateHigh"
LATENCY_ALERT = "ModelLatencyP95High"
# How long the error-rate and latency alerts hold before firing, over what window they measure:
# long enough that one slow scrape does not page, short enough to catch a bad canary step.
SLO_ALERT_WINDOW = "5m"
SLO_ALERT_FOR = "5m"
BURN_SEVERITY = {BurnSeverity.PAGE: Severity.CRITICAL, BurnSeverity.TICKET: Severity.WARNING}
# A deployment whose runtime exports other names (its config overrides these PromQL templates)
# has no contract series to write rules over.
CONTRACT_TEMPLATES = ("requests", "errors", "latency_quantile")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def error_ratio_record(window: str) -> str:
    """The recorded series of the 5xx share over `window`, per model and version."""
    return f"modelplane:request_error_ratio:rate{window}"


def _number(value: float) -> str:
    return format(value, ".10g")


def _percent(share: float) -> str:
    return f"{share * 100:.6g}%"


def runbook_url(deployment: Deployment) -> str:
    return f"{settings.PORTAL_URL}/deployments/{deployment.pk}/"


def skipped_reason(deployment: Deployment) -> str | None:
    """Why a deployment has no rules, or None when it has some."""
    config = deployment.config
    if config is None:
        return "no configuration, so no SLO"
    overridden = sorted(set(CONTRACT_TEMPLATES) & set(config.metrics_queries or {}))
    if overridden:
        return (
            f"its config overrides the PromQL templates {', '.join(overridden)}: "
            "its runtime does not export the serving contract's metrics"
        )
    return None


def rule_groups(deployments: Iterable[Deployment]) -> list[dict[str, Any]]:
    """One rule group per deployment with an SLO (see `skipped_reason` for the others)."""
    return [_group(d) for d in deployments if skipped_reason(d) is None]


def _identity(deployment: Deployment) -> dict[str, str]:
    return {
        TEAM_LABEL: deployment.model.team.slug,
        DEPLOYMENT_LABEL: str(deployment.pk),
        "model": deployment.model.name,
        "environment": deployment.environment.name,
    }


def _group(deployment: Deployment) -> dict[str, Any]:
    config = deployment.config
    environment = deployment.environment.name
    return {
        "name": f"modelplane.deployment.{deployment.pk}.{environment}.{deployment.name}",
        "rules": [
            *_error_ratio_records(deployment),
            *_burn_alerts(deployment, config),
            _error_rate_alert(deployment, config),
            _latency_alert(deployment, config),
        ],
    }


def _error_ratio_records(deployment: Deployment) -> list[dict[str, Any]]:
    """The 5xx share of each version over every burn window, labelled with the deployment."""
    identity = _identity(deployment)
    labels = {key: identity[key] for key in (TEAM_LABEL, DEPLOYMENT_LABEL, "environment")}
    selector = f'model="{escape_label_value(deployment.model.name)}"'
    records = []
    for window in BURN_WINDOWS:
        requests = f"sum by (model, version) (rate({REQUESTS_METRIC}{{{selector}}}[{window}]))"
        errors = (
            "sum by (model, version) "
            f"(rate({REQUESTS_METRIC}{{{selector},{SERVER_ERROR_MATCHER}}}[{window}]))"
        )
        # A version without a 5xx series has a ratio of 0, not none: the control plane reads
        # a missing 5xx series next to request series as zero errors too.
        records.append(
            {
                "record": error_ratio_record(window),
                "expr": f"({errors} or 0 * {requests}) / {requests}",
                "labels": dict(labels),
            }
        )
    return records


def _own(deployment: Deployment, window: str) -> str:
    return f'{error_ratio_record(window)}{{{DEPLOYMENT_LABEL}="{deployment.pk}"}}'


def _who(deployment: Deployment) -> str:
    """The alerting version as a person reads it, e.g. "fraud-scorer v2 in production"."""
    return f"{deployment.model.name} v{{{{ $labels.version }}}} in {deployment.environment.name}"


def _burn_alerts(deployment: Deployment, config: DeploymentConfig) -> list[dict[str, Any]]:
    """The multiwindow burn-rate rules of monitoring.slo: both windows over the threshold."""
    budget = 1 - config.slo_availability
    alerts = []
    for rule in DEFAULT_BURN_RATE_RULES:
        limit = _number(rule.threshold * budget)
        long_window, short_window = rule.long_window, rule.short_window
        description = (
            f"The 5xx share over {long_window} is {{{{ $value | humanizePercentage }}}}; over "
            f"{long_window} and {short_window} it exceeds {rule.threshold:g} times the "
            f"{_percent(budget)} error budget of the {_percent(config.slo_availability)} "
            f"availability SLO ({SLO_WINDOW}): the {rule.severity} rule of the SRE workbook's "
            "multiwindow, multi-burn-rate alerts."
        )
        alerts.append(
            {
                "alert": BURN_ALERT,
                "expr": (
                    f"{_own(deployment, long_window)} > {limit} "
                    f"and {_own(deployment, short_window)} > {limit}"
                ),
                "labels": {
                    **_identity(deployment),
                    "severity": str(BURN_SEVERITY[rule.severity]),
                    "long_window": long_window,
                    "short_window": short_window,
                },
                "annotations": {
                    "summary": (
                        f"{_who(deployment)} burns its error budget faster than "
                        f"{rule.threshold:g}x over {long_window} and {short_window}"
                    ),
                    "description": description,
                    "runbook_url": runbook_url(deployment),
                },
            }
        )
    return alerts


def _error_rate_alert(deployment: Deployment, config: DeploymentConfig) -> dict[str, Any]:
    limit = _percent(config.slo_error_rate)
    return {
        "alert": ERROR_RATE_ALERT,
        "expr": f"{_own(deployment, SLO_ALERT_WINDOW)} > {_number(config.slo_error_rate)}",
        "for": SLO_ALERT_FOR,
        "labels": {**_identity(deployment), "severity": str(Severity.WARNING)},
        "annotations": {
            "summary": f"{_who(deployment)} answers more than {limit} of requests with 5xx",
            "description": (
                f"The 5xx share over {SLO_ALERT_WINDOW} is {{{{ $value | humanizePercentage }}}}, "
                f"above the {limit} error-rate SLO, for {SLO_ALERT_FOR}."
            ),
            "runbook_url": runbook_url(deployment),
        },
    }


def _latency_alert(deployment: Deployment, config: DeploymentConfig) -> dict[str, Any]:
    selector = f'model="{escape_label_value(deployment.model.name)}"'
    p95 = (
        "histogram_quantile(0.95, sum by (model, version, le) "
        f"(rate({REQUEST_DURATION_BUCKETS}{{{selector}}}[{SLO_ALERT_WINDOW}])))"
    )
    slo = f"{config.slo_latency_p95_ms} ms"
    return {
        "alert": LATENCY_ALERT,
        "expr": f"{p95} > {_number(config.slo_latency_p95_ms / 1000)}",
        "for": SLO_ALERT_FOR,
        "labels": {**_identity(deployment), "severity": str(Severity.WARNING)},
        "annotations": {
            "summary": f"{_who(deployment)} answers slower than {slo} at p95",
            "description": (
                f"The p95 latency over {SLO_ALERT_WINDOW} is {{{{ $value | humanizeDuration }}}}, "
                f"above the {slo} SLO, for {SLO_ALERT_FOR}."
            ),
            "runbook_url": runbook_url(deployment),
        },
    }


def _dump(document: Any) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1000)


def rule_file_yaml(deployments: Iterable[Deployment]) -> str:
    """A Prometheus rule file (`rule_files:`), one group per deployment; a comment at the top
    names the deployments left out and why."""
    deployments = list(deployments)
    header = [
        "# Prometheus rules of the modelplane control plane's SLOs, generated from each "
        "deployment's current config.",
        "# Regenerate when an SLO changes: GET /api/v1/alerts/prometheus-rules",
    ]
    for deployment in deployments:
        reason = skipped_reason(deployment)
        if reason is not None:
            header.append(
                f"# no rules for {deployment.environment.name}/{deployment.name}: {reason}"
            )
    return "\n".join(header) + "\n" + _dump({"groups": rule_groups(deployments)})


def prometheus_rule_object(
    deployments: Iterable[Deployment], *, name: str, namespace: str
) -> dict[str, Any]:
    """The same groups as a prometheus-operator `PrometheusRule` (monitoring.coreos.com/v1)."""
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise ValidationFailed(
            "must be a lower-case DNS subdomain (a-z, 0-9, '-', '.'), at most 253 characters",
            field="name",
        )
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise ValidationFailed(
            "must be a lower-case DNS label (a-z, 0-9, '-'), at most 63 characters",
            field="namespace",
        )
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/managed-by": "modelplane"},
        },
        "spec": {"groups": rule_groups(deployments)},
    }


def prometheus_rule_yaml(deployments: Iterable[Deployment], *, name: str, namespace: str) -> str:
    return _dump(prometheus_rule_object(deployments, name=name, namespace=namespace))
