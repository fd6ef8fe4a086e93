"""The Prometheus rules the control plane exports (alerts.prometheus_rules and GET
/api/v1/alerts/prometheus-rules): promtool accepts the file, promtool's own rule tests show the
exported burn-rate alerts fire exactly where the control plane's burn-rate rules fire (for a
failing version, not a healthy one, and stop when it heals), the PrometheusRule object has the
operator's shape, and the endpoint shows each caller only the deployments it may see."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings

from alerts import prometheus_rules
from core.errors import ValidationFailed
from deployments import selectors
from deployments.models import DeploymentConfig
from monitoring.slo import BURN_WINDOWS, DEFAULT_BURN_RATE_RULES, burn_rate_alerts
from tests.factories import (
    ModelVersionFactory,
    RegisteredModelFactory,
    deployment_of,
    environment_of,
)

URL = "/api/v1/alerts/prometheus-rules"
# PROMTOOL_BINARY pins the binary; without it, Debian's path first, then the PATH.
PROMTOOL_BINARY = os.environ.get("PROMTOOL_BINARY", "")


def require_promtool() -> str:
    """promtool's path; skips without it, or fails under CI=true (as the Prometheus tests do)."""
    candidates = [PROMTOOL_BINARY] if PROMTOOL_BINARY else ["/usr/bin/promtool", "promtool"]
    for candidate in candidates:
        path = shutil.which(candidate)
        if path:
            return path
    message = f"promtool not found (tried {', '.join(candidates)}; apt-get install prometheus)"
    if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true: {message}", pytrace=False)
    pytest.skip(message)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [require_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def fleet(team, other_team):
    """Deployments of two teams: fraud-scorer (99.5%), churn (99.9%, 200 ms p95), one that
    overrides the request template (no contract metrics, so no rules), and search's ranker."""
    production = environment_of("production", metrics_kind="prometheus", metrics_url="http://p:9")
    staging = environment_of("staging")
    made = {}
    for name, owner, environment, config in (
        ("fraud-scorer", team, production, {}),
        ("churn", team, staging, {"slo_availability": 0.999, "slo_latency_p95_ms": 200}),
        (
            "kserve-model",
            team,
            production,
            {"metrics_queries": {"requests": "sum(increase(kserve_requests[{window}]))"}},
        ),
        ("ranker", other_team, production, {}),
    ):
        model = RegisteredModelFactory(name=name, team=owner)
        made[name] = deployment_of(
            model, environment, stable=ModelVersionFactory(model=model, number=1), **config
        )
    return made


def _visible(*names: str, fleet) -> list:
    return list(selectors.deployment_list(None).filter(pk__in=[fleet[n].pk for n in names]))


def test_promtool_accepts_the_rule_file(fleet, tmp_path):
    text = prometheus_rules.rule_file_yaml(selectors.deployment_list(None))
    (tmp_path / "rules.yml").write_text(text)
    checked = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # 3 deployments with rules: a recording rule per burn window, a burn alert per rule, and
    # the error-rate and latency alerts.
    per_deployment = len(BURN_WINDOWS) + len(DEFAULT_BURN_RATE_RULES) + 2
    assert f"SUCCESS: {3 * per_deployment} rules found" in checked.stdout
    assert "# no rules for production/kserve-model: its config overrides the PromQL templates" in (
        text
    )


def test_each_deployment_is_a_group_with_its_slo_and_identity(fleet, team):
    groups = prometheus_rules.rule_groups(_visible("fraud-scorer", "churn", fleet=fleet))
    churn = next(g for g in groups if "churn" in g["name"])
    deployment = fleet["churn"]
    records = [r for r in churn["rules"] if "record" in r]
    assert [r["record"] for r in records] == [
        f"modelplane:request_error_ratio:rate{w}" for w in BURN_WINDOWS
    ]
    assert 'model_requests_total{model="churn",code=~"5.."}[1h]' in records[2]["expr"]
    burns = [r for r in churn["rules"] if r.get("alert") == "ModelErrorBudgetBurn"]
    # 14.4x, 6x and 1x a 0.1% budget, each over its long and its short window.
    assert [r["expr"] for r in burns] == [
        f'modelplane:request_error_ratio:rate{long}{{modelplane_deployment="{deployment.pk}"}}'
        f" > {limit} and "
        f'modelplane:request_error_ratio:rate{short}{{modelplane_deployment="{deployment.pk}"}}'
        f" > {limit}"
        for long, short, limit in (
            ("1h", "5m", "0.0144"),
            ("6h", "30m", "0.006"),
            ("3d", "6h", "0.001"),
        )
    ]
    assert [r["labels"]["severity"] for r in burns] == ["critical", "critical", "warning"]
    for rule in churn["rules"]:
        labels = rule["labels"]
        assert labels["modelplane_team"] == team.slug
        assert labels["modelplane_deployment"] == str(deployment.pk)
        assert labels["environment"] == "staging"
        if "alert" in rule:
            assert labels["model"] == "churn"
            assert rule["annotations"]["runbook_url"] == (
                f"{settings.PORTAL_URL}/deployments/{deployment.pk}/"
            )
            assert {"summary", "description"} <= set(rule["annotations"])
    latency = next(r for r in churn["rules"] if r.get("alert") == "ModelLatencyP95High")
    assert latency["expr"].endswith(" > 0.2")


def test_a_changed_slo_changes_the_rules(fleet):
    deployment = fleet["fraud-scorer"]
    (before,) = prometheus_rules.rule_groups(_visible("fraud-scorer", fleet=fleet))
    DeploymentConfig.objects.filter(pk=deployment.config_id).update(slo_error_rate=0.05)
    (after,) = prometheus_rules.rule_groups(_visible("fraud-scorer", fleet=fleet))
    error_rate = [
        r["expr"]
        for r in (*before["rules"], *after["rules"])
        if r.get("alert") == ("ModelErrorRateHigh")
    ]
    assert [e.rsplit(" > ", 1)[1] for e in error_rate] == ["0.01", "0.05"]


# Both sides agree: promtool's rule tests against the control plane's own burn-rate rules ------

MINUTES = 90
FAIL_UNTIL = 30  # minutes the failing version answers half its requests with 500


def _expected_burn_alerts(deployment, ratios: dict[str, float], value: float) -> list[dict]:
    """The alerts Prometheus must raise for version 2: exactly the rules the control plane's
    `burn_rate_alerts` fires on the same error ratios, labelled and annotated as exported."""
    (group,) = prometheus_rules.rule_groups([deployment])
    exported = {
        (r["labels"]["long_window"], r["labels"]["short_window"]): r
        for r in group["rules"]
        if r.get("alert") == "ModelErrorBudgetBurn"
    }
    fired = burn_rate_alerts(ratios, deployment.config.slo_availability)
    assert fired, "the scenario must make the control plane fire"
    return [_expected(exported[(alert.long_window, alert.short_window)], value) for alert in fired]


def series(v: int, c: int) -> str:
    return (
        f'model_requests_total{{model="fraud-scorer",version="{v}",endpoint="predict",code="{c}"}}'
    )


def buckets(v: int, le: str) -> str:
    return (
        "model_request_duration_seconds_bucket"
        f'{{model="fraud-scorer",version="{v}",endpoint="predict",le="{le}"}}'
    )


def _expected(rule: dict, value: float | str) -> dict:
    """An exported alert as promtool reports it for version 2 with this `$value`."""
    shown = f"{value:.4g}%" if isinstance(value, float) else value
    annotations = {
        name: text.replace("{{ $labels.version }}", "2")
        .replace("{{ $value | humanizePercentage }}", shown)
        .replace("{{ $value | humanizeDuration }}", shown)
        for name, text in rule["annotations"].items()
    }
    return {"exp_labels": {**rule["labels"], "version": "2"}, "exp_annotations": annotations}


def test_promtool_fires_the_burn_alert_for_the_failing_version_only(fleet, tmp_path):
    deployment = _visible("fraud-scorer", fleet=fleet)[0]
    (tmp_path / "rules.yml").write_text(prometheus_rules.rule_file_yaml([deployment]))
    (group,) = prometheus_rules.rule_groups([deployment])
    by_name = {r["alert"]: r for r in group["rules"] if "alert" in r}
    healed = f"{300 * FAIL_UNTIL}+0x{MINUTES - FAIL_UNTIL}"
    unit_tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # v1 is healthy and fast: 600 requests a minute, all 200 within 500 ms.
                    {"series": series(v=1, c=200), "values": f"0+600x{MINUTES}"},
                    {"series": buckets(v=1, le="0.5"), "values": f"0+600x{MINUTES}"},
                    {"series": buckets(v=1, le="1"), "values": f"0+600x{MINUTES}"},
                    {"series": buckets(v=1, le="+Inf"), "values": f"0+600x{MINUTES}"},
                    # v2 answers half its requests with 500 for 30 minutes, then heals; slow.
                    {"series": series(v=2, c=200), "values": f"0+300x{MINUTES}"},
                    {
                        "series": series(v=2, c=500),
                        "values": f"0+300x{FAIL_UNTIL} {healed}",
                    },
                    {"series": buckets(v=2, le="0.5"), "values": f"0+0x{MINUTES}"},
                    {"series": buckets(v=2, le="1"), "values": f"0+600x{MINUTES}"},
                    {"series": buckets(v=2, le="+Inf"), "values": f"0+600x{MINUTES}"},
                ],
                "alert_rule_test": [
                    # While failing: every window's ratio is 50%.
                    {
                        "eval_time": "20m",
                        "alertname": "ModelErrorBudgetBurn",
                        "exp_alerts": _expected_burn_alerts(
                            deployment, dict.fromkeys(BURN_WINDOWS, 0.5), 50.0
                        ),
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "ModelErrorRateHigh",
                        "exp_alerts": [_expected(by_name["ModelErrorRateHigh"], 50.0)],
                    },
                    {
                        "eval_time": "20m",
                        "alertname": "ModelLatencyP95High",
                        # p95 lies 95% into the (0.5 s, 1 s] bucket.
                        "exp_alerts": [_expected(by_name["ModelLatencyP95High"], "975ms")],
                    },
                    # 15 minutes after healing: the last 5m are clean, so the fast page rule
                    # stops; the slower rules still see the failure (9,000 bad of 22,500 = 40%
                    # over 45 minutes, a third over the last 30).
                    {
                        "eval_time": "45m",
                        "alertname": "ModelErrorBudgetBurn",
                        "exp_alerts": _expected_burn_alerts(
                            deployment,
                            {"5m": 0.0, "30m": 1 / 3, "1h": 0.4, "6h": 0.4, "3d": 0.4},
                            40.0,
                        ),
                    },
                    {"eval_time": "45m", "alertname": "ModelErrorRateHigh", "exp_alerts": []},
                ],
            }
        ],
    }
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(unit_tests, sort_keys=False))
    tested = _promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout + tested.stderr


# The PrometheusRule object ---------------------------------------------------------------------


def test_the_prometheus_rule_object_carries_the_same_groups(fleet, tmp_path):
    deployments = _visible("fraud-scorer", "churn", fleet=fleet)
    found = prometheus_rules.prometheus_rule_object(
        deployments, name="modelplane-slo", namespace="monitoring"
    )
    assert found["apiVersion"] == "monitoring.coreos.com/v1"
    assert found["kind"] == "PrometheusRule"
    assert found["metadata"] == {
        "name": "modelplane-slo",
        "namespace": "monitoring",
        "labels": {"app.kubernetes.io/managed-by": "modelplane"},
    }
    assert found["spec"] == {"groups": prometheus_rules.rule_groups(deployments)}
    (tmp_path / "spec.yml").write_text(yaml.safe_dump(found["spec"]))
    checked = _promtool("check", "rules", "spec.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize(
    ("name", "namespace", "field"),
    [
        ("Bad_Name", "monitoring", "name"),
        ("ok", "-bad-", "namespace"),
        ("ok", "a" * 64, "namespace"),
    ],
)
def test_the_object_refuses_names_kubernetes_would(fleet, name, namespace, field):
    with pytest.raises(ValidationFailed) as refused:
        prometheus_rules.prometheus_rule_object([], name=name, namespace=namespace)
    assert refused.value.field == field


# The endpoint ----------------------------------------------------------------------------------


def _groups_of(response) -> set[str]:
    document = yaml.safe_load(response.content)
    groups = document["spec"]["groups"] if "spec" in document else document["groups"]
    return {g["name"].split(".")[-1] for g in groups}


@pytest.mark.parametrize("who", ["owner", "viewer", "token:read"])
def test_members_and_read_tokens_get_their_teams_rule_file(client_for, fleet, who):
    response = client_for(who).get(URL)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/yaml; charset=utf-8"
    assert _groups_of(response) == {"fraud-scorer", "churn"}
    assert b"kserve-model" in response.content  # named in the header as left out


def test_an_outsider_sees_only_its_own_teams_deployments(client_for, fleet):
    response = client_for("outsider").get(URL)
    assert response.status_code == 200
    assert _groups_of(response) == {"ranker"}


def test_anonymous_is_refused(client_for, fleet):
    response = client_for("anonymous").get(URL)
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/problem+json"


def test_it_answers_a_prometheus_rule_object(client_for, fleet):
    response = client_for("token:read").get(
        URL, {"format": "prometheusrule", "name": "slo", "namespace": "models"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    document = yaml.safe_load(response.content)
    assert (document["kind"], document["metadata"]["name"]) == ("PrometheusRule", "slo")
    assert document["metadata"]["namespace"] == "models"
    assert _groups_of(response) == {"fraud-scorer", "churn"}


def test_it_filters_by_environment(client_for, fleet):
    response = client_for("owner").get(URL, {"environment": "staging"})
    assert _groups_of(response) == {"churn"}
    unknown = client_for("owner").get(URL, {"environment": "prod"})
    assert unknown.status_code == 404
    assert [e["field"] for e in unknown.json()["errors"]] == ["environment"]


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"format": "json"}, 400, "format"),
        ({"colour": "blue"}, 400, "colour"),
        ({"format": "prometheusrule", "namespace": "Not Valid"}, 422, "namespace"),
    ],
)
def test_bad_parameters_are_refused_naming_them(client_for, fleet, query, status, field):
    response = client_for("owner").get(URL, query)
    assert response.status_code == status
    assert response["Content-Type"] == "application/problem+json"
    assert [e["field"] for e in response.json()["errors"]] == [field]
