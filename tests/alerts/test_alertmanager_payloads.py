"""Alertmanager's webhook (payload version 4) at /api/v1/alerts/alertmanager: each alert read by
its own status, one alert per fingerprint whatever the redeliveries, resolves one by one within
a group, a late firing never reopens, a new occurrence reopens within the window and opens a new
alert after it; labels place an alert on a deployment of the token's team, or on its triage
list; a team's write token only; a malformed body is refused whole, naming the field."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from alerts import lifecycle
from alerts.models import Alert, AlertEvent, AlertEventKind, AlertSource, AlertStatus
from core import clock
from identity.audit import Actor
from tests.factories import RegisteredModelFactory, deployment_of, environment_of, make_token
from tests.support.stopped_clock import stopped_clock

URL = "/api/v1/alerts/alertmanager"
T0 = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)
ZERO = "0001-01-01T00:00:00Z"


@pytest.fixture(autouse=True)
def stopped(monkeypatch) -> Iterator[None]:  # type: ignore[no-untyped-def]
    with stopped_clock(monkeypatch, T0):
        yield


@pytest.fixture
def fleet(team, other_team) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """fraud-scorer deployed in production (this team), search-ranker in production (another
    team's)."""
    production = environment_of("production")
    ours = RegisteredModelFactory(team=team, name="fraud-scorer")
    theirs = RegisteredModelFactory(team=other_team, name="search-ranker")
    return {
        "ours": deployment_of(ours, production, name="scorer"),
        "theirs": deployment_of(theirs, production),
    }


@pytest.fixture
def alertmanager(client_for) -> APIClient:  # type: ignore[no-untyped-def]
    """Alertmanager with the team's write token."""
    return client_for("token:write")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def am_alert(
    fingerprint: str = "a1b2c3d4e5f60001",
    *,
    status: str = "firing",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    starts_at: datetime = T0 - timedelta(minutes=5),
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ModelErrorBudgetBurn", "severity": "page", **(labels or {})},
        "annotations": {"summary": "burning the error budget 14x too fast"}
        if annotations is None
        else annotations,
        "startsAt": iso(starts_at),
        "endsAt": iso(ends_at) if ends_at else ZERO,
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": fingerprint,
    }


def notification(*alerts: dict[str, Any], truncated: int = 0) -> dict[str, Any]:
    firing = any(a["status"] == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": '{}:{alertname="ModelErrorBudgetBurn"}',
        "truncatedAlerts": truncated,
        "status": "firing" if firing else "resolved",
        "receiver": "modelplane",
        "groupLabels": {"alertname": "ModelErrorBudgetBurn"},
        "commonLabels": {"alertname": "ModelErrorBudgetBurn"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": list(alerts),
    }


def on(deployment: Any) -> dict[str, str]:
    return {"modelplane_deployment": str(deployment.pk), "environment": "production"}


def post(client: APIClient, body: Any) -> Any:
    return client.post(URL, body, format="json")


def counts(**taken: int) -> dict[str, int]:
    out = dict.fromkeys(
        ("fired", "refreshed", "reopened", "resolved", "ignored", "triage", "truncated"), 0
    )
    return out | taken


def kinds(alert: Alert) -> list[str]:
    return list(alert.events.order_by("at", "id").values_list("kind", flat=True))


# Firing, redelivered, resolved --------------------------------------------------------------


def test_it_opens_an_alert_on_the_deployment_its_labels_name(alertmanager, fleet):
    response = post(alertmanager, notification(am_alert(labels=on(fleet["ours"]))))

    assert response.status_code == 200, response.content
    assert response.json() == counts(fired=1)
    alert = Alert.objects.get()
    assert (alert.source, alert.fingerprint) == (AlertSource.ALERTMANAGER, "a1b2c3d4e5f60001")
    assert alert.deployment == fleet["ours"]
    assert alert.model == fleet["ours"].model
    assert alert.needs_triage is False
    assert alert.status == AlertStatus.FIRING
    assert alert.severity == "critical"  # severity=page
    assert alert.rule == "ModelErrorBudgetBurn"
    assert alert.title == "burning the error budget 14x too fast"
    assert alert.starts_at == T0 - timedelta(minutes=5)
    assert alert.labels["modelplane_deployment"] == str(fleet["ours"].pk)
    assert alert.annotations == {"summary": "burning the error budget 14x too fast"}
    assert alert.generator_url == "http://prometheus.example:9090/graph?g0.expr=up"
    fired = alert.events.get(kind=AlertEventKind.FIRED)
    assert fired.actor_label.startswith("token:fraud/")


def test_a_redelivery_refreshes_the_one_alert_and_adds_nothing(alertmanager, fleet):
    body = notification(am_alert(labels=on(fleet["ours"])))
    post(alertmanager, body)
    events_before = AlertEvent.objects.count()
    clock.advance(4 * 3600)  # repeat_interval

    response = post(alertmanager, body)

    assert response.json() == counts(refreshed=1)
    alert = Alert.objects.get()
    assert alert.last_seen_at == T0 + timedelta(hours=4)
    assert AlertEvent.objects.count() == events_before
    assert kinds(alert).count(AlertEventKind.FIRED) == 1


def test_a_resolved_alert_resolves_its_alert_once(alertmanager, fleet):
    post(alertmanager, notification(am_alert(labels=on(fleet["ours"]))))
    clock.advance(600)
    resolved = notification(
        am_alert(labels=on(fleet["ours"]), status="resolved", ends_at=T0 + timedelta(minutes=7))
    )

    assert post(alertmanager, resolved).json() == counts(resolved=1)
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.RESOLVED
    assert alert.resolved_at == T0 + timedelta(minutes=7)  # Alertmanager's endsAt
    events = AlertEvent.objects.count()

    assert post(alertmanager, resolved).json() == counts(ignored=1)
    assert AlertEvent.objects.count() == events
    assert kinds(alert).count(AlertEventKind.RESOLVED) == 1


def test_a_resolve_of_an_alert_never_seen_firing_writes_nothing(alertmanager, fleet):
    resolved = am_alert(status="resolved", ends_at=T0 - timedelta(minutes=1))

    assert post(alertmanager, notification(resolved)).json() == counts(ignored=1)
    assert Alert.objects.count() == 0


def test_each_alert_of_a_group_is_read_by_its_own_status(alertmanager, fleet):
    labels = on(fleet["ours"])
    post(alertmanager, notification(am_alert("f0000001", labels=labels), am_alert("f0000002")))
    clock.advance(60)
    # The group stays firing while one of its alerts resolves.
    body = notification(
        am_alert("f0000001", labels=labels, status="resolved", ends_at=T0 + timedelta(seconds=30)),
        am_alert("f0000002"),
    )
    assert body["status"] == "firing"

    assert post(alertmanager, body).json() == counts(resolved=1, refreshed=1, triage=1)
    statuses = dict(Alert.objects.values_list("fingerprint", "status"))
    assert statuses == {"f0000001": AlertStatus.RESOLVED, "f0000002": AlertStatus.FIRING}


def test_a_truncated_post_takes_what_it_has_and_says_how_many_are_left(alertmanager, fleet, caplog):
    secret_ish = {"modelplane_deployment": str(fleet["ours"].pk), "customer": "acme-corp"}
    body = notification(am_alert("f0000001", labels=secret_ish), truncated=3)

    with caplog.at_level(logging.WARNING, logger="alerts.alertmanager"):
        response = post(alertmanager, body)

    assert response.json() == counts(fired=1, truncated=3)
    assert Alert.objects.count() == 1
    assert "left out 3 alerts" in caplog.text
    assert "acme-corp" not in caplog.text  # the count only, never labels


# Occurrences: late redeliveries, reopening -----------------------------------------------------


@pytest.fixture
def resolved_occurrence(alertmanager, fleet, settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """An alert that fired at T0-5m and resolved in Alertmanager at T0+1m (received at T0+2m);
    the reopen window is 30 minutes. Returns the two notifications."""
    settings.ALERTS_REOPEN_WINDOW_SECONDS = 1800
    labels = on(fleet["ours"])
    firing = notification(am_alert(labels=labels))
    resolved = notification(
        am_alert(labels=labels, status="resolved", ends_at=T0 + timedelta(minutes=1))
    )
    post(alertmanager, firing)
    clock.advance(120)
    assert post(alertmanager, resolved).json() == counts(resolved=1)
    return {"firing": firing, "resolved": resolved, "labels": labels}


def test_a_late_firing_after_its_resolve_does_not_reopen_it(alertmanager, resolved_occurrence):
    clock.advance(60)

    response = post(alertmanager, resolved_occurrence["firing"])  # same startsAt: stale

    assert response.json() == counts(ignored=1)
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.RESOLVED
    assert AlertEventKind.REOPENED not in kinds(alert)


def test_an_alert_resolved_by_hand_stays_resolved_until_a_new_occurrence(
    alertmanager, fleet, people
):
    firing = notification(am_alert(labels=on(fleet["ours"])))
    post(alertmanager, firing)
    clock.advance(60)
    lifecycle.resolve(actor=Actor.from_principal(people["owner"]), alert=Alert.objects.get())
    clock.advance(1800)  # a repeat: Alertmanager still fires it

    assert post(alertmanager, firing).json() == counts(ignored=1)
    assert Alert.objects.get().status == AlertStatus.RESOLVED

    again = notification(am_alert(labels=on(fleet["ours"]), starts_at=clock.now()))
    assert post(alertmanager, again).json() == counts(reopened=1)


def test_a_new_occurrence_within_the_window_reopens_the_alert(alertmanager, resolved_occurrence):
    clock.advance(600)
    again = notification(am_alert(labels=resolved_occurrence["labels"], starts_at=clock.now()))

    assert post(alertmanager, again).json() == counts(reopened=1)
    alert = Alert.objects.get()
    assert alert.status == AlertStatus.FIRING
    assert alert.reopened_count == 1
    assert kinds(alert).count(AlertEventKind.REOPENED) == 1
    # A redelivery of the new occurrence only refreshes it.
    assert post(alertmanager, again).json() == counts(refreshed=1)


def test_a_late_resolve_of_the_older_occurrence_leaves_the_newer_one_firing(
    alertmanager, resolved_occurrence
):
    clock.advance(600)
    again = notification(am_alert(labels=resolved_occurrence["labels"], starts_at=clock.now()))
    post(alertmanager, again)

    assert post(alertmanager, resolved_occurrence["resolved"]).json() == counts(ignored=1)
    assert Alert.objects.get().status == AlertStatus.FIRING


def test_a_new_occurrence_after_the_window_opens_a_new_alert(alertmanager, resolved_occurrence):
    clock.advance(3600)
    again = notification(am_alert(labels=resolved_occurrence["labels"], starts_at=clock.now()))

    assert post(alertmanager, again).json() == counts(fired=1)
    old, new = Alert.objects.order_by("id")
    assert (old.status, new.status) == (AlertStatus.RESOLVED, AlertStatus.FIRING)
    assert old.fingerprint == new.fingerprint
    assert new.reopened_count == 0


# Labels: where an alert lands ----------------------------------------------------------------


@pytest.mark.parametrize(
    "labels_of",
    [
        pytest.param(lambda d: {"modelplane_deployment": str(d.pk)}, id="modelplane_deployment"),
        pytest.param(lambda d: {"model": "fraud-scorer", "environment": "production"}, id="model"),
        pytest.param(lambda d: {"deployment": "scorer", "environment": "production"}, id="name"),
        pytest.param(
            lambda d: {
                "modelplane_deployment": "999999",
                "model": "fraud-scorer",
                "environment": "production",
            },
            id="stale-id-then-model",
        ),
    ],
)
def test_labels_place_the_alert_on_the_teams_deployment(
    alertmanager, fleet, labels_of: Callable[[Any], dict[str, str]]
):
    response = post(alertmanager, notification(am_alert(labels=labels_of(fleet["ours"]))))

    assert response.json() == counts(fired=1)
    alert = Alert.objects.get()
    assert (alert.deployment, alert.needs_triage) == (fleet["ours"], False)


@pytest.mark.parametrize(
    "labels_of",
    [
        pytest.param(lambda f: on(f["theirs"]), id="other-teams-deployment-id"),
        pytest.param(
            lambda f: {"model": "search-ranker", "environment": "production"},
            id="other-teams-model",
        ),
        pytest.param(
            lambda f: {"deployment": "search-ranker", "environment": "production"},
            id="other-teams-deployment-name",
        ),
        pytest.param(lambda f: {"service": "checkout", "job": "api"}, id="unknown"),
        pytest.param(lambda f: {"modelplane_deployment": "12x"}, id="not-an-id"),
    ],
)
def test_labels_that_name_nothing_of_the_team_land_on_its_triage_list(
    alertmanager, fleet, team, other_team, labels_of: Callable[[dict], dict[str, str]]
):
    response = post(alertmanager, notification(am_alert(labels=labels_of(fleet))))

    assert response.json() == counts(fired=1, triage=1)
    alert = Alert.objects.get()
    assert alert.team == team
    assert alert.needs_triage is True
    assert (alert.deployment, alert.model) == (None, None)
    assert not Alert.objects.filter(team=other_team).exists()
    assert not fleet["theirs"].alerts.exists()


def test_a_known_model_in_an_unknown_environment_keeps_the_model_on_triage(alertmanager, fleet):
    labels = {"model": "fraud-scorer", "environment": "moon"}

    assert post(alertmanager, notification(am_alert(labels=labels))).json() == counts(
        fired=1, triage=1
    )
    alert = Alert.objects.get()
    assert (alert.model, alert.deployment, alert.needs_triage) == (
        fleet["ours"].model,
        None,
        True,
    )


def test_another_teams_token_never_reaches_this_teams_deployment(fleet, other_team):
    _, secret = make_token(other_team, ["write"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = post(client, notification(am_alert(labels=on(fleet["ours"]))))

    assert response.json() == counts(fired=1, triage=1)
    alert = Alert.objects.get()
    assert (alert.team, alert.deployment, alert.needs_triage) == (other_team, None, True)


@pytest.mark.parametrize(
    ("label", "severity"),
    [
        ("critical", "critical"),
        ("page", "critical"),
        ("warning", "warning"),
        ("ticket", "warning"),
        ("info", "info"),
        ("Critical ", "critical"),
        ("sev1", "warning"),
        (None, "warning"),
    ],
)
def test_the_severity_label_sets_the_severity(alertmanager, fleet, label, severity):
    item = am_alert(labels=on(fleet["ours"]))
    item["labels"].pop("severity")
    if label is not None:
        item["labels"]["severity"] = label

    post(alertmanager, notification(item))

    assert Alert.objects.get().severity == severity


def test_the_title_falls_back_to_the_alertname(alertmanager, fleet):
    post(alertmanager, notification(am_alert(labels=on(fleet["ours"]), annotations={})))

    assert Alert.objects.get().title == "ModelErrorBudgetBurn"


# Who may post ---------------------------------------------------------------------------------


def test_it_refuses_a_post_without_credentials(client_for, fleet):
    response = post(client_for("anonymous"), notification(am_alert()))

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert response["WWW-Authenticate"] == "Bearer"
    assert Alert.objects.count() == 0


def test_it_refuses_a_bad_token(fleet):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer mp_not-a-real-token")

    response = post(client, notification(am_alert()))

    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid token."
    assert Alert.objects.count() == 0


def test_it_refuses_a_read_only_token(client_for, fleet):
    response = post(client_for("token:read"), notification(am_alert()))

    assert response.status_code == 403
    assert Alert.objects.count() == 0


def test_it_refuses_a_session_even_an_owners(client_for, fleet):
    response = post(client_for("owner"), notification(am_alert()))

    assert response.status_code == 403
    assert "team token" in response.json()["detail"]
    assert Alert.objects.count() == 0


def test_it_refuses_a_read_token_before_reading_the_body(client_for, fleet):
    assert post(client_for("token:read"), {"version": "3"}).status_code == 403


def test_it_rejects_get(alertmanager):
    assert alertmanager.get(URL).status_code == 405


# Malformed bodies: refused whole, naming the field, nothing written ---------------------------


def _with(change: Callable[[dict], Any]) -> Callable[[], dict]:
    def build() -> dict:
        body = notification(am_alert("f0000001"), am_alert("f0000002"))
        change(body)
        return body

    return build


def _set(path: str, value: Any) -> Callable[[dict], None]:
    """Set (or with value=..., delete) a field by a path like 'alerts.1.fingerprint'."""

    def change(body: dict) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return change


MALFORMED = [
    ("version", ...),
    ("version", "3"),
    ("version", 4),
    ("groupKey", ...),
    ("groupKey", None),
    ("truncatedAlerts", ...),
    ("truncatedAlerts", "0"),
    ("truncatedAlerts", -1),
    ("status", "pending"),
    ("receiver", 7),
    ("groupLabels", ["alertname"]),
    ("commonLabels.severity", 1),
    ("commonAnnotations", ...),
    ("externalURL", ...),
    ("alerts", ...),
    ("alerts", []),
    ("alerts", {"fingerprint": "f1"}),
    ("alerts.1.fingerprint", ...),
    ("alerts.1.fingerprint", ""),
    ("alerts.1.fingerprint", 123),
    ("alerts.1.fingerprint", "f" * 129),
    ("alerts.1.status", "pending"),
    ("alerts.1.status", ...),
    ("alerts.1.labels", "alertname=x"),
    ("alerts.1.labels.severity", 2),
    ("alerts.1.labels.team", "x" * 1025),
    ("alerts.1.annotations.description", "x" * 8193),
    ("alerts.1.annotations", None),
    ("alerts.1.startsAt", "yesterday"),
    ("alerts.1.startsAt", "2025-02-30T10:00:00Z"),
    ("alerts.1.startsAt", "2025-06-02T10:00:00"),  # no UTC offset
    ("alerts.1.startsAt", 1748858400),
    ("alerts.1.startsAt", ZERO),
    ("alerts.1.startsAt", ...),
    ("alerts.1.endsAt", None),
    ("alerts.1.endsAt", ...),
    ("alerts.1.generatorURL", ...),
    ("alerts.1.generatorURL", False),
]


def _field_of(path: str) -> str:
    """'alerts.1.labels.team' -> 'alerts[1].labels.team' (the problem document's naming)."""
    out = ""
    for part in path.split("."):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


@pytest.mark.parametrize(
    ("path", "value"), MALFORMED, ids=[f"{p}={v!r}"[:60] for p, v in MALFORMED]
)
def test_a_malformed_body_is_refused_naming_the_field(alertmanager, fleet, path, value):
    body = _with(_set(path, value))()

    response = post(alertmanager, body)

    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/problem+json"
    fields = [error["field"] for error in response.json()["errors"]]
    assert fields == [_field_of(path)], response.json()
    assert Alert.objects.count() == 0
    assert AlertEvent.objects.count() == 0


def test_too_many_labels_are_refused(alertmanager, fleet):
    body = notification(am_alert(labels={f"l{i}": "v" for i in range(65)}))

    response = post(alertmanager, body)

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["alerts[0].labels"]


def test_too_many_alerts_are_refused(alertmanager, fleet):
    body = notification(*(am_alert(f"f{i:07d}") for i in range(501)))

    response = post(alertmanager, body)

    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == ["alerts"]
    assert Alert.objects.count() == 0


def test_one_bad_alert_keeps_the_good_ones_out_too(alertmanager, fleet):
    body = notification(am_alert("f0000001", labels=on(fleet["ours"])), am_alert("f0000002"))
    body["alerts"][1]["startsAt"] = "soon"

    assert post(alertmanager, body).status_code == 400
    assert Alert.objects.count() == 0


def test_a_body_that_is_not_json_is_refused(alertmanager, fleet):
    response = alertmanager.post(URL, "{not json", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed request body")
    assert Alert.objects.count() == 0


def test_a_body_that_is_not_an_object_is_refused(alertmanager, fleet):
    response = post(alertmanager, [notification(am_alert())])

    assert response.status_code == 400
    assert Alert.objects.count() == 0


def test_a_body_that_is_not_json_typed_is_refused(alertmanager, fleet):
    response = alertmanager.post(URL, "version=4", content_type="text/plain")

    assert response.status_code == 415
    assert Alert.objects.count() == 0


def test_fields_alertmanager_may_add_later_are_ignored(alertmanager, fleet):
    """Version 4 grew fields without a new version (truncatedAlerts); refusing a new field
    would lose alerts, since Alertmanager never retries a 4xx."""
    item = am_alert(labels=on(fleet["ours"]))
    item["silenceURL"] = "http://alertmanager.example:9093/#/silences/new"
    body = notification(item) | {"orgId": 1}

    assert post(alertmanager, body).json() == counts(fired=1)


def test_nanosecond_times_and_offsets_are_read(alertmanager, fleet):
    item = am_alert(labels=on(fleet["ours"]))
    item["startsAt"] = "2025-06-02T11:55:00.123456789+02:00"

    post(alertmanager, notification(item))

    assert Alert.objects.get().starts_at == datetime(2025, 6, 2, 9, 55, 0, 123456, tzinfo=UTC)


def test_the_endpoint_is_documented_in_the_openapi_schema(client_for):
    schema = client_for("owner").get("/api/schema/", {"format": "json"}).json()

    operation = schema["paths"]["/api/v1/alerts/alertmanager"]["post"]
    assert operation["security"] == [{"bearerAuth": []}]
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    payload = schema["components"]["schemas"][request.rsplit("/", 1)[1]]
    assert set(payload["required"]) >= {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "alerts",
    }
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    result = schema["components"]["schemas"][response.rsplit("/", 1)[1]]
    assert set(result["properties"]) == set(counts())
    assert {"400", "401", "403"} <= set(operation["responses"])
