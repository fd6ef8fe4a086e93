"""Incidents (alerts.incidents): an incident opened from the alert of a failed canary shows, on its
own, that alert, the release and its automatic rollback; the timeline gathers what lies in its
window and nothing else, in a constant number of queries; alerts of a configured severity open
an incident as they fire; status and owner changes follow one table."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from alerts import incidents, lifecycle, rules
from alerts.incidents import TimelineEntry
from alerts.models import Alert, AlertSource, Incident, IncidentStatus, Severity
from core import clock
from core.errors import Conflict, Forbidden, ValidationFailed
from deployments import services as deployment_services
from deployments.models import Release, ReleaseStep, Rollback
from identity.audit import Actor
from tests.deployments.conftest import (  # noqa: F401  (pytest fixtures)
    drive,
    fake_k8s,
    promoted_v1,
    world,
)
from tests.factories import (
    SYSTEM,
    ModelVersionFactory,
    RegisteredModelFactory,
    alert_of,
    deployment_of,
    environments,
    incident_of,
    release_of,
)

# The done-when case ----------------------------------------------------------------------------


def test_an_incident_from_a_failed_canary_shows_the_alert_the_release_and_its_rollback(
    promoted_v1,  # noqa: F811
    people,
):
    engine_world = promoted_v1
    engine_world.verdict("fail")
    release = drive(engine_world.release(2))
    assert release.state == "rolled_back", release.status_reason

    rules.evaluate_all()  # the control plane's own rule sees the release that failed
    alert = Alert.objects.get(rule="release_failed", deployment=engine_world.deployment)
    assert alert.release_id == release.pk

    incident = incidents.open_incident(
        actor=Actor.from_principal(people["maintainer"]), alert=alert
    )
    entries = incidents.timeline(incident)

    assert [e.at for e in entries] == sorted(e.at for e in entries), "oldest first"
    fired = [e for e in entries if e.kind == "alert.fired"]
    assert [e.link for e in fired] == [f"/alerts/{alert.pk}/"]
    analysis = [e for e in entries if e.kind == "release.analysis"]
    assert len(analysis) == 1 and "fail" in analysis[0].text
    assert analysis[0].link == f"/releases/{release.pk}/"
    assert any(
        e.kind == "release.created" and e.link == f"/releases/{release.pk}/" for e in entries
    )
    rollback = Rollback.objects.get(release=release)
    automatic = [e for e in entries if e.kind == "rollback.automatic"]
    assert len(automatic) == 1
    assert "automatic rollback" in automatic[0].text and "to v1 from v2" in automatic[0].text
    assert automatic[0].link == f"/deployments/{engine_world.deployment.pk}/"
    assert any(e.kind == "rollback.done" for e in entries), rollback.state
    assert entries.index(analysis[0]) < entries.index(automatic[0]) < entries.index(fired[0])
    # Who decided what: the engine analysed and rolled back; the person opened the incident.
    assert analysis[0].actor_label == automatic[0].actor_label == "system:release-engine"
    opened = next(e for e in entries if e.kind == "incident.opened")
    assert opened.actor_label == "maintainer" and opened.link is None


# The timeline's window ------------------------------------------------------------------------


@pytest.fixture
def deployment(team):  # type: ignore[no-untyped-def]
    _, production = environments()
    model = RegisteredModelFactory(team=team, name="fraud-detector")
    versions = {n: ModelVersionFactory(model=model, number=n) for n in (1, 2, 3)}
    deployment = deployment_of(model, production, stable=versions[2], previous=versions[1])
    deployment.versions = versions  # type: ignore[attr-defined]
    return deployment


def kinds(entries: list[TimelineEntry]) -> list[str]:
    return [e.kind for e in entries]


def test_it_gathers_the_deployments_alerts_in_its_window_and_nothing_else(team, deployment, people):
    now = clock.now()
    alert = alert_of(team, deployment=deployment, rule="slo_burn", starts_at=now)
    nearby = alert_of(
        team, deployment=deployment, rule="drift", starts_at=now - timedelta(minutes=30)
    )
    too_old = alert_of(
        team, deployment=deployment, rule="budget", starts_at=now - timedelta(hours=3)
    )
    elsewhere = alert_of(team, rule="triage", starts_at=now)
    incident = incident_of(team, alert=alert)

    links = {e.link for e in incidents.timeline(incident) if e.kind.startswith("alert.")}
    assert links == {f"/alerts/{alert.pk}/", f"/alerts/{nearby.pk}/"}
    assert f"/alerts/{too_old.pk}/" not in links and f"/alerts/{elsewhere.pk}/" not in links


def test_the_lookback_is_a_setting(team, deployment, settings):
    now = clock.now()
    alert = alert_of(team, deployment=deployment, starts_at=now)
    nearby = alert_of(
        team, deployment=deployment, rule="drift", starts_at=now - timedelta(minutes=30)
    )
    incident = incident_of(team, alert=alert)
    settings.INCIDENT_LOOKBACK_SECONDS = 600
    links = {e.link for e in incidents.timeline(incident)}
    assert f"/alerts/{nearby.pk}/" not in links


def test_it_reaches_back_from_its_first_alert_not_only_from_its_opening(team, deployment):
    now = clock.now()
    early = alert_of(team, deployment=deployment, starts_at=now - timedelta(hours=2))
    before = alert_of(
        team, deployment=deployment, rule="drift", starts_at=now - timedelta(hours=2.5)
    )
    incident = incident_of(team, alert=early)
    links = {e.link for e in incidents.timeline(incident)}
    assert {f"/alerts/{early.pk}/", f"/alerts/{before.pk}/"} <= links


def test_releases_show_their_decisions_not_every_step(team, deployment, people):
    release = release_of(deployment, deployment.versions[3], people["maintainer"])
    for kind, outcome in (("traffic", "ok"), ("smoke", "ok"), ("analysis", "inconclusive")):
        ReleaseStep.objects.create(
            release=release, kind=kind, outcome=outcome, actor_label="system:release-engine"
        )
    ReleaseStep.objects.create(
        release=release,
        kind="pause",
        from_state="progressing",
        to_state="paused",
        outcome="inconclusive",
        actor_label="system:release-engine",
        reason="analysis inconclusive: no traffic",
    )
    incident = incident_of(team, deployment=deployment)
    entries = incidents.timeline(incident)
    release_kinds = [k for k in kinds(entries) if k.startswith("release.")]
    assert release_kinds == ["release.created", "release.analysis", "release.pause"]
    pause = entries[kinds(entries).index("release.pause")]
    assert "-> paused" in pause.text and "no traffic" in pause.text


def test_a_rollback_by_a_person_names_them(team, deployment, people):
    deployment_services.deployment_rollback(
        actor=Actor.from_principal(people["maintainer"]), deployment=deployment, reason="p95 up"
    )
    incident = incident_of(team, deployment=deployment)
    manual = [e for e in incidents.timeline(incident) if e.kind == "rollback.manual"]
    assert len(manual) == 1
    assert manual[0].actor_label == "maintainer"
    assert "rollback by maintainer" in manual[0].text and "to v1" in manual[0].text


def test_a_release_and_alert_of_another_deployment_stay_out(team, deployment, people):
    production = deployment.environment
    other = deployment_of(RegisteredModelFactory(team=team, name="ranker"), production)
    other_version = ModelVersionFactory(model=other.model, number=1)
    release_of(other, other_version, people["maintainer"])
    alert_of(team, deployment=other, starts_at=clock.now())
    incident = incident_of(team, deployment=deployment)
    assert [e.kind for e in incidents.timeline(incident)] == ["incident.opened"]


def test_a_closed_incidents_window_ends_when_it_closed(team, deployment):
    alert = alert_of(team, deployment=deployment, starts_at=clock.now())
    incident = incident_of(team, alert=alert)
    incidents.set_status(actor=SYSTEM, incident=incident, status="closed", summary="fixed")
    clock.advance(600)
    try:
        later = alert_of(team, deployment=deployment, rule="drift", starts_at=clock.now())
        links = {e.link for e in incidents.timeline(Incident.objects.get(pk=incident.pk))}
    finally:
        clock.reset()
    assert f"/alerts/{later.pk}/" not in links and f"/alerts/{alert.pk}/" in links


def test_the_timeline_takes_the_same_queries_however_much_it_holds(team, deployment, people):
    alert = alert_of(team, deployment=deployment, starts_at=clock.now())
    incident = incident_of(team, alert=alert)

    def add_one_of_each(i: int) -> None:
        alert_of(team, deployment=deployment, rule=f"r{i}", starts_at=clock.now())
        incidents.add_note(actor=SYSTEM, incident=incident, text=f"note {i}")
        release = release_of(deployment, deployment.versions[3], people["maintainer"])
        ReleaseStep.objects.create(
            release=release, kind="analysis", outcome="fail", actor_label="engine"
        )
        Release.objects.filter(pk=release.pk).update(state="failed", finished_at=clock.now())
        Rollback.objects.create(
            deployment=deployment,
            to_version=deployment.versions[1],
            from_version=deployment.versions[2],
            actor_label="maintainer",
        )

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            incidents.timeline(incident)
        return len(queries)

    add_one_of_each(0)
    small = count()
    for i in range(1, 10):
        add_one_of_each(i)
    large = count()
    assert small == large == 6
    assert len(incidents.timeline(incident)) > 50


# Opening --------------------------------------------------------------------------------------


def signal(team, deployment, severity: str) -> lifecycle.Signal:  # type: ignore[no-untyped-def]
    return lifecycle.Signal(
        team=team,
        source=AlertSource.RULE,
        fingerprint=f"test:{severity}",
        rule="test",
        title=f"a {severity} condition",
        severity=severity,
        deployment=deployment,
    )


def test_alerts_open_no_incident_by_default(team, deployment):
    lifecycle.fire(signal(team, deployment, Severity.CRITICAL), actor=SYSTEM)
    assert not Incident.objects.exists()


def test_alerts_of_the_configured_severity_or_worse_open_an_incident(
    team, deployment, settings, people
):
    settings.ALERTS_AUTO_INCIDENT_SEVERITY = "warning"
    info = lifecycle.fire(signal(team, deployment, Severity.INFO), actor=SYSTEM).alert
    warning = lifecycle.fire(signal(team, deployment, Severity.WARNING), actor=SYSTEM).alert
    critical = lifecycle.fire(signal(team, deployment, Severity.CRITICAL), actor=SYSTEM).alert
    assert Alert.objects.get(pk=info.pk).incident_id is None
    opened = Incident.objects.order_by("id")
    assert [i.title for i in opened] == [warning.title, critical.title]
    assert all(i.opened_by_label == "system:incidents" for i in opened)
    assert Alert.objects.get(pk=critical.pk).incident == opened[1]
    # Firing again refreshes the alert: no second incident.
    lifecycle.fire(signal(team, deployment, Severity.CRITICAL), actor=SYSTEM)
    assert Incident.objects.count() == 2


def test_a_misconfigured_severity_opens_nothing_and_alerting_goes_on(team, deployment, settings):
    settings.ALERTS_AUTO_INCIDENT_SEVERITY = "sev1"
    outcome = lifecycle.fire(signal(team, deployment, Severity.CRITICAL), actor=SYSTEM)
    assert outcome.change == "fired" and not Incident.objects.exists()


def test_an_alert_in_a_closed_incident_may_open_a_new_one(team, deployment):
    alert = alert_of(team, deployment=deployment)
    first = incident_of(team, alert=alert)
    incidents.set_status(actor=SYSTEM, incident=first, status="closed", summary="done")
    second = incident_of(team, alert=Alert.objects.get(pk=alert.pk))
    assert Alert.objects.get(pk=alert.pk).incident == second


def test_a_viewer_cannot_open_one(team, deployment, people):
    alert = alert_of(team, deployment=deployment)
    with pytest.raises(Forbidden):
        incidents.open_incident(actor=Actor.from_principal(people["viewer"]), alert=alert)
    assert not Incident.objects.exists()


# Status and owner -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "error"),
    [
        (["mitigated", "closed", "open"], Conflict),
        (["closed", "mitigated"], Conflict),
        (["closed", "closed"], Conflict),
        (["resolved"], ValidationFailed),
    ],
)
def test_closed_is_final(team, path, error):
    incident = incident_of(team)
    *allowed, refused = path
    for status in allowed:
        incidents.set_status(actor=SYSTEM, incident=incident, status=status, summary="s")
    with pytest.raises(error) as raised:
        incidents.set_status(actor=SYSTEM, incident=incident, status=refused, summary="s")
    assert raised.value.field == "status"


def test_mitigated_may_fall_back_to_open(team):
    incident = incident_of(team)
    incidents.set_status(actor=SYSTEM, incident=incident, status="mitigated")
    reopened = incidents.set_status(actor=SYSTEM, incident=incident, status="open")
    assert reopened.status == IncidentStatus.OPEN
    assert [e.kind for e in incidents.timeline(reopened)].count("incident.status") == 2


def test_notes_are_taken_after_closing(team):
    incident = incident_of(team)
    incidents.set_status(actor=SYSTEM, incident=incident, status="closed", summary="fixed")
    incidents.add_note(actor=SYSTEM, incident=incident, text="postmortem on Friday")
    assert kinds(incidents.timeline(incident))[-1] == "incident.note"


def test_a_closed_incident_keeps_its_owner(team, people):
    incident = incident_of(team)
    incidents.set_status(actor=SYSTEM, incident=incident, status="closed", summary="fixed")
    with pytest.raises(Conflict):
        incidents.set_owner(actor=SYSTEM, incident=incident, username="viewer", reason="x")
