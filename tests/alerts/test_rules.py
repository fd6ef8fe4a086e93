"""The control plane's own alert rules (alerts.rules.evaluate_all): each rule fires on known
numbers, stays one alert per identity (rule, deployment, track) across evaluations, resolves when
its condition is judged clear, and never resolves on missing data. Metric rules read a real
Prometheus scraping real serving processes; release rules are driven through release states and
the engine's clock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import rules
from alerts.models import Alert, AlertEventKind, AlertSource, AlertStatus
from core import clock
from deployments import services
from deployments.models import Deployment, Environment, Release, ReleaseState
from identity.audit import Actor
from monitoring import slo as monitoring_slo
from serving.demo_model import sample_requests
from tests.factories import (
    SYSTEM,
    ModelVersionFactory,
    RegisteredModelFactory,
    alert_of,
    deployment_of,
    environment_of,
    put_in_state,
    release_failed,
    release_of,
    release_paused_inconclusive,
    release_rolled_back,
)
from tests.monitoring.conftest import MODEL, ServedVersion, warm_up
from tests.support.prometheus import PrometheusServer, free_port

LOOKBACK = rules.release_failed_lookback().total_seconds()
WAIT = rules.release_wait_limit().total_seconds()


def _rule_alerts(**filters) -> list[Alert]:
    return list(Alert.objects.filter(source=AlertSource.RULE, **filters).order_by("id"))


def _events(alert: Alert) -> list[str]:
    return [event.kind for event in alert.events.order_by("at", "id")]


# Metric rules: a real Prometheus scraping real serving processes --------------------------------


@dataclass
class Metrics:
    prometheus: PrometheusServer
    served: dict[int, ServedVersion]
    baseline: dict


@pytest.fixture(scope="module")
def metrics(serve_module, prometheus_module_factory) -> Metrics:
    """Versions 1-2 (burn rate), 3-4 (drift) and 5 (budget) of the demo model, each a process
    of its own so that one test's traffic is not another's; scraped every second."""
    served = serve_module(1, 2, 3, 4, 5)
    prometheus = prometheus_module_factory([s.target for s in served])
    prometheus.wait_for_scrapes(1)
    warm_up(served, prometheus)
    return Metrics(
        prometheus,
        {s.key.version: s for s in served},
        served[0].package.manifest["baseline_profile"],
    )


def _deployment(team, metrics: Metrics, stable: int, canary: int | None = None, **config):
    """The demo model in a production environment read from the test Prometheus: `stable`
    serving, and a canary of `canary` rolling out."""
    environment = environment_of(
        "production", metrics_kind="prometheus", metrics_url=metrics.prometheus.url
    )
    model = RegisteredModelFactory(name=MODEL, team=team, risk_tier="low")
    versions = {
        number: ModelVersionFactory(model=model, number=number, baseline_profile=metrics.baseline)
        for number in {stable, canary} - {None}
    }
    deployment = deployment_of(model, environment, stable=versions[stable], **config)
    if canary is not None:
        author = Actor.system("tests:ci")
        release = services.release_create(
            actor=author, deployment=deployment, version=versions[canary]
        )
        put_in_state(release, ReleaseState.PROGRESSING)
    return deployment


def _point_at_nothing(deployment: Deployment) -> str:
    """The environment's Prometheus becomes unreachable (a closed port); returns its URL."""
    url = deployment.environment.metrics_url
    Environment.objects.filter(pk=deployment.environment_id).update(
        metrics_url=f"http://127.0.0.1:{free_port()}"
    )
    return url


def test_a_burning_canary_is_one_alert_until_it_heals(metrics, team):
    stable, canary = metrics.served[1], metrics.served[2]
    deployment = _deployment(team, metrics, stable=1, canary=2)
    assert stable.send(150)[200] == 150
    assert canary.send(10)[200] == 10
    canary.set_faults(error_rate=1.0)
    assert canary.send(10)[500] == 10  # half the canary's requests fail: 100x a 0.5% budget
    canary.set_faults(error_rate=0.0)
    metrics.prometheus.wait_for_scrapes(2)

    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert alert.rule == "slo_burn" and alert.track == "canary"
    assert alert.fingerprint == f"slo_burn:1h/5m:{deployment.pk}:canary"
    assert alert.severity == "critical"  # a page rule
    assert alert.title.startswith(f"{MODEL} v2 (canary) burns its error budget ")
    assert "(1h) and " in alert.title and alert.title.endswith("(5m)")
    assert alert.release == deployment.releases.get()
    assert alert.labels == {
        "model": MODEL,
        "environment": "production",
        "deployment": deployment.name,
        "track": "canary",
        "rule": "slo_burn",
    }
    assert alert.evidence["burn_rates"]["5m"] > 14.4
    assert alert.evidence["objective"] == 0.995

    # Firing again is the same alert, seen again.
    first_seen = alert.last_seen_at
    assert rules.evaluate_all() == 1
    (again,) = _rule_alerts()
    assert again.pk == alert.pk and again.last_seen_at > first_seen
    assert _events(again).count(AlertEventKind.FIRED) == 1

    # No data is not recovery: with the source unreachable the alert stays open.
    url = _point_at_nothing(deployment)
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.FIRING
    Environment.objects.filter(pk=deployment.environment_id).update(metrics_url=url)

    # Healthy traffic brings both windows back under 14.4x (10 bad of 320: 6x): resolved.
    assert canary.send(300)[200] == 300
    metrics.prometheus.wait_for_scrapes(2)
    assert rules.evaluate_all() == 0
    (resolved,) = _rule_alerts()
    assert resolved.status == AlertStatus.RESOLVED
    assert _events(resolved)[-1] == AlertEventKind.RESOLVED
    assert "back under 14.4x" in resolved.events.get(kind=AlertEventKind.RESOLVED).text


def _send_rows(served: ServedVersion, rows: list[dict], per_request: int) -> None:
    codes = {
        served.predict(rows[i : i + per_request]).status_code
        for i in range(0, len(rows), per_request)
    }
    assert codes == {200}


def test_a_drifting_canary_is_one_alert_until_its_inputs_return(metrics, team):
    stable, canary = metrics.served[3], metrics.served[4]
    deployment = _deployment(team, metrics, stable=3, canary=4)
    _send_rows(stable, sample_requests(320, seed=11), 8)
    _send_rows(canary, sample_requests(320, drift=True, seed=12), 8)
    metrics.prometheus.wait_for_scrapes(2)

    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert (alert.rule, alert.track, alert.severity) == ("drift", "canary", "warning")
    assert alert.fingerprint == f"drift:{deployment.pk}:canary"
    assert f"{MODEL} v4 (canary) drifts from its baseline: " in alert.title
    assert alert.evidence["features"] and alert.evidence["thresholds"]["psi_alert"] == 0.25
    assert rules.evaluate_all() == 1
    assert [a.pk for a in _rule_alerts()] == [alert.pk]

    url = _point_at_nothing(deployment)
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.FIRING
    Environment.objects.filter(pk=deployment.environment_id).update(metrics_url=url)

    # The canary's inputs return to the baseline's distribution and outweigh the shifted ones.
    _send_rows(canary, sample_requests(2000, seed=13), 50)
    metrics.prometheus.wait_for_scrapes(2)
    assert rules.evaluate_all() == 0
    (resolved,) = _rule_alerts()
    assert resolved.status == AlertStatus.RESOLVED


def test_a_month_projected_over_budget_is_one_alert_until_the_budget_allows_it(metrics, team):
    deployment = _deployment(team, metrics, stable=5, monthly_budget=Decimal("0.01"))
    metrics.served[5].send(20)
    metrics.prometheus.wait_for_scrapes(1)

    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert (alert.rule, alert.track, alert.severity) == ("cost_budget", "", "warning")
    assert alert.fingerprint == f"cost_budget:{deployment.pk}:"
    assert alert.evidence["projected"] > alert.evidence["monthly_budget"] == 0.01
    assert "over its 0.01 budget" in alert.title
    assert rules.evaluate_all() == 1
    assert [a.pk for a in _rule_alerts()] == [alert.pk]

    # Without prices there is no cost to judge: the alert stays.
    Environment.objects.filter(pk=deployment.environment_id).update(
        vcpu_hour_price=0, gib_hour_price=0
    )
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.FIRING
    Environment.objects.filter(pk=deployment.environment_id).update(
        vcpu_hour_price=0.04, gib_hour_price=0.005
    )

    services.deployment_configure(
        actor=SYSTEM, deployment=deployment, monthly_budget=Decimal("1000000")
    )
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.RESOLVED


def test_a_track_that_is_gone_resolves_its_alerts_and_one_without_numbers_keeps_them(team):
    environment = environment_of("quiet")  # no metrics source: no numbers for any rule
    model = RegisteredModelFactory(name="fraud-scorer", team=team)
    deployment = deployment_of(model, environment, stable=ModelVersionFactory(model=model))
    rule = monitoring_slo.DEFAULT_BURN_RATE_RULES[0]
    gone, unjudged = (
        alert_of(
            team,
            deployment=deployment,
            rule="slo_burn",
            track=track,
            fingerprint=rules.burn_fingerprint(rule, deployment.pk, track),
        )
        for track in ("canary", "stable")
    )
    assert rules.evaluate_all() == 0
    gone.refresh_from_db()
    unjudged.refresh_from_db()
    assert gone.status == AlertStatus.RESOLVED
    resolution = gone.events.get(kind=AlertEventKind.RESOLVED)
    assert resolution.text == "nothing serves the canary track any more"
    assert unjudged.status == AlertStatus.FIRING


# Release rules: release states and the engine's clock -------------------------------------------


def _release_deployment(team, *, production: bool = False, name: str = "fraud-scorer"):
    environment = Environment.objects.filter(name="prod" if production else "live").first()
    environment = environment or environment_of(
        "prod" if production else "live", is_production=production
    )
    model = RegisteredModelFactory(name=name, team=team, risk_tier="medium")
    v1, v2, v3 = (ModelVersionFactory(model=model, number=n) for n in (1, 2, 3))
    deployment = deployment_of(model, environment, stable=v1)
    return deployment, v2, v3


def test_a_failed_release_alerts_until_the_lookback_passes(team, people):
    deployment, v2, _ = _release_deployment(team)
    release = release_failed(
        release_of(deployment, v2, people["owner"]), "smoke test failed: 500 from /predict"
    )
    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert (alert.rule, alert.severity, alert.release) == ("release_failed", "critical", release)
    assert alert.fingerprint == f"release_failed:{deployment.pk}:"
    assert alert.title == f"Release #{release.pk} of fraud-scorer v2 in live failed"
    assert "smoke test failed: 500 from /predict" in alert.summary
    assert rules.evaluate_all() == 1
    assert [a.pk for a in _rule_alerts()] == [alert.pk]

    clock.advance(LOOKBACK - 60)
    assert rules.evaluate_all() == 1
    clock.advance(120)
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.RESOLVED


def test_an_automatic_rollback_alerts_until_a_newer_release_starts(team, people):
    deployment, v2, v3 = _release_deployment(team)
    release = release_of(deployment, v2, people["owner"])
    release_rolled_back(release, "analysis failed: error rate 12% > 1%", automatic=True)
    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert alert.title.endswith("was rolled back automatically")
    assert "analysis failed: error rate 12% > 1%" in alert.summary
    assert alert.evidence["rollback"] == release.rollbacks.get().pk

    release_of(deployment, v3, people["owner"])
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.RESOLVED


def test_a_rollback_by_hand_is_not_an_alert(team, people):
    deployment, v2, _ = _release_deployment(team)
    release_rolled_back(release_of(deployment, v2, people["owner"]), "wrong model", automatic=False)
    assert rules.evaluate_all() == 0
    assert _rule_alerts() == []


def test_an_inconclusive_pause_alerts_until_a_person_resumes(team, people):
    deployment, v2, _ = _release_deployment(team)
    release = release_paused_inconclusive(
        release_of(deployment, v2, people["owner"]), "fewer than 10 requests in the window"
    )
    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert (alert.rule, alert.severity, alert.release) == (
        "release_inconclusive",
        "warning",
        release,
    )
    assert alert.title == (
        f"Release #{release.pk} of fraud-scorer v2 in live is paused: its analysis was inconclusive"
    )
    assert "fewer than 10 requests in the window" in alert.summary
    assert rules.evaluate_all() == 1
    assert [a.pk for a in _rule_alerts()] == [alert.pk]

    services.release_resume(actor=Actor.from_principal(people["owner"]), release=release)
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.RESOLVED


def test_a_pause_by_hand_is_not_inconclusive(team, people):
    deployment, v2, _ = _release_deployment(team)
    release = put_in_state(release_of(deployment, v2, people["owner"]), ReleaseState.PROGRESSING)
    services.release_pause(actor=Actor.from_principal(people["owner"]), release=release)
    assert rules.evaluate_all() == 0
    assert _rule_alerts() == []


def test_a_release_waiting_for_a_person_alerts_past_the_limit(team, people):
    deployment, v2, _ = _release_deployment(team, production=True)
    release = release_of(deployment, v2, people["owner"])
    assert release.state == ReleaseState.AWAITING_APPROVAL
    clock.advance(WAIT - 60)
    assert rules.evaluate_all() == 0
    clock.advance(120)
    assert rules.evaluate_all() == 1
    (alert,) = _rule_alerts()
    assert (alert.rule, alert.severity, alert.release) == ("release_waiting", "warning", release)
    assert alert.title == (
        f"Release #{release.pk} of fraud-scorer v2 in prod has waited 4.0 h for a person "
        "(awaiting approval)"
    )
    assert alert.evidence["limit_seconds"] == WAIT
    clock.advance(600)
    assert rules.evaluate_all() == 1
    assert [a.pk for a in _rule_alerts()] == [alert.pk]

    put_in_state(release, ReleaseState.APPROVED)  # a person approved: the engine takes over
    assert rules.evaluate_all() == 0
    assert _rule_alerts()[0].status == AlertStatus.RESOLVED


def test_a_wait_counts_from_the_pause_not_from_the_release(team, people):
    deployment, v2, _ = _release_deployment(team)
    release = put_in_state(release_of(deployment, v2, people["owner"]), ReleaseState.PROGRESSING)
    # It has been rolling out for a long time (rows are stamped with the wall clock): no wait.
    Release.objects.filter(pk=release.pk).update(
        created_at=timezone.now() - timedelta(seconds=2 * WAIT)
    )
    services.release_pause(actor=Actor.from_principal(people["owner"]), release=release)
    assert rules.evaluate_all() == 0
    clock.advance(WAIT + 60)
    assert rules.evaluate_all() == 1
    assert _rule_alerts()[0].rule == "release_waiting"


def test_one_failing_deployment_does_not_stop_the_others(team, people, monkeypatch, caplog):
    bad, bad_v2, _ = _release_deployment(team, name="bad-model")
    good, good_v2, _ = _release_deployment(team, name="good-model")
    release_failed(release_of(bad, bad_v2, people["owner"]), "boom")
    release_failed(release_of(good, good_v2, people["owner"]), "boom")
    judge = rules.judge

    def judge_or_break(deployment, health, **kwargs):
        if deployment.pk == bad.pk:
            raise RuntimeError("a bug in one rule")
        return judge(deployment, health, **kwargs)

    monkeypatch.setattr(rules, "judge", judge_or_break)
    with caplog.at_level(logging.ERROR, logger="alerts.rules"):
        assert rules.evaluate_all() == 1
    assert [a.deployment_id for a in _rule_alerts()] == [good.pk]
    assert f"alert rules failed for deployment {bad.pk}" in caplog.text


def test_evaluation_queries_do_not_grow_with_deployments(team, people):
    def evaluate_with(count: int) -> int:
        for index in range(count - Deployment.objects.count()):
            deployment, v2, _ = _release_deployment(team, name=f"model-{count}-{index}")
            release = release_of(deployment, v2, people["owner"])
            put_in_state(release, ReleaseState.PROGRESSING)
            services.release_pause(actor=SYSTEM, release=release)  # waits, not yet too long
        with CaptureQueriesContext(connection) as queries:
            assert rules.evaluate_all() == 0
        return len(queries)

    assert evaluate_with(1) == evaluate_with(8)
