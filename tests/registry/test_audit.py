"""The audit log: one event per change, filterable, visible per team, append-only, secret-free."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from identity import audit
from identity.audit import Actor
from identity.models import AuditEvent

URL = "/api/v1/audit-events/"


def test_events_carry_actor_request_id_and_address(client_for, model, version_body):
    client_for("maintainer").post(
        f"/api/v1/models/{model.name}/versions/",
        version_body,
        format="json",
        HTTP_X_REQUEST_ID="req-123",
        REMOTE_ADDR="10.1.2.3",
    )
    event = AuditEvent.objects.get(action="version.register")
    assert (event.actor_type, event.actor_label) == ("user", "maintainer")
    assert event.request_id == "req-123"
    assert event.remote_addr == "10.1.2.3"
    assert event.team_id == model.team_id


def test_it_filters_by_actor_action_target_and_time(client_for, model):
    owner = client_for("owner")
    owner.patch(f"/api/v1/models/{model.name}/", {"description": "x"}, format="json")
    owner.patch(f"/api/v1/models/{model.name}/", {"risk_tier": "low"}, format="json")
    client = client_for("viewer")
    assert client.get(URL, {"actor": "owner"}).json()["count"] == 2
    assert client.get(URL, {"action": "model.update", "target": model.name}).json()["count"] == 2
    assert client.get(URL, {"actor": "viewer"}).json()["count"] == 0
    later = (timezone.now() + timedelta(minutes=1)).isoformat()
    assert client.get(URL, {"occurred_after": later}).json()["count"] == 0
    assert client.get(URL, {"occurred_after": "not a time"}).status_code == 400


def test_outsiders_do_not_see_a_teams_events(client_for, model):
    client_for("owner").patch(f"/api/v1/models/{model.name}/", {"description": "x"}, format="json")
    assert client_for("outsider").get(URL).json()["count"] == 0
    assert client_for("admin").get(URL).json()["count"] >= 1


def test_it_is_read_only_over_the_api(client_for, model):
    assert client_for("admin").post(URL, {}, format="json").status_code == 405


def test_a_token_is_named_as_the_actor(client_for, model):
    client_for("token:write").patch(
        f"/api/v1/models/{model.name}/", {"description": "x"}, format="json"
    )
    event = AuditEvent.objects.get(action="model.update")
    assert event.actor_type == "token" and event.actor_label.startswith("token:fraud/")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_database_refuses_update_and_delete(client_for, model):
    client_for("owner").patch(f"/api/v1/models/{model.name}/", {"description": "x"}, format="json")
    event = AuditEvent.objects.get(action="model.update")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get(pk=event.pk).action == "model.update"


def test_the_audit_log_never_receives_secret_fields(team):
    with pytest.raises(ValueError, match="secret"):
        audit.record(actor=Actor.system("t"), action="x", target=team, after={"password": "p"})
