"""A database migrated by the main before the identity app existed migrates forward with nothing
lost: teams, members, tokens, idempotency records and audit events keep their rows, ids and
foreign keys; their content types follow them; the audit log stays append-only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, connection, transaction

from deployments.models import Deployment
from identity.models import ApiToken, AuditEvent, IdempotencyRecord, Membership, Team
from registry.models import ModelVersion, RegisteredModel
from tests.support.migrations import migrate_to, migrate_to_latest

# Where the registry stood before teams, tokens and the audit log moved to identity.
BEFORE_THE_MOVE = [("registry", "0002_audit_append_only"), ("identity", None)]
MOVED = ("team", "membership", "apitoken", "idempotencyrecord", "auditevent")
DIGEST = "sha256:" + "ab" * 32


def _seed_old_schema(apps) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Rows as the old registry app wrote them, through its historical models."""
    user_model = apps.get_model("auth", "User")
    content_type = apps.get_model("contenttypes", "ContentType")
    team_model = apps.get_model("registry", "Team")
    for name in MOVED:
        content_type.objects.get_or_create(app_label="registry", model=name)
    user = user_model.objects.create(username="ada")
    team = team_model.objects.create(slug="fraud", name="Fraud")
    apps.get_model("registry", "Membership").objects.create(
        team=team, user=user, role="owner", is_approver=True
    )
    token = apps.get_model("registry", "ApiToken").objects.create(
        team=team,
        name="ci",
        prefix="mp_abcdefgh",
        secret_hash="f" * 64,
        scopes=["read", "write"],
        expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
    )
    model = apps.get_model("registry", "RegisteredModel").objects.create(
        name="fraud-detector", team=team
    )
    version = apps.get_model("registry", "ModelVersion").objects.create(
        model=model,
        number=1,
        artifact_uri="file:///m.skops",
        artifact_digest=DIGEST,
        created_by_token=token,
    )
    apps.get_model("registry", "IdempotencyRecord").objects.create(
        principal=f"token:{token.pk}",
        key="k1",
        method="POST",
        path="/api/v1/models/",
        body_sha256="0" * 64,
        status_code=201,
        response_body={"name": "fraud-detector"},
    )
    event = apps.get_model("registry", "AuditEvent").objects.create(
        actor_type="user",
        actor_id=str(user.pk),
        actor_label="ada",
        action="model.create",
        target_type="registry.registeredmodel",
        target_id=str(model.pk),
        target_label="fraud-detector",
        team=team,
        after={"name": "fraud-detector"},
    )
    environment = apps.get_model("deployments", "Environment").objects.create(name="production")
    deployment = apps.get_model("deployments", "Deployment").objects.create(
        model=model, environment=environment, name="fraud", stable_version=version
    )
    return {
        "team": team.pk,
        "token": token.pk,
        "model": model.pk,
        "version": version.pk,
        "event": event.pk,
        "deployment": deployment.pk,
        "user": user.pk,
    }


@pytest.mark.django_db(transaction=True)
def test_a_database_of_the_old_layout_migrates_forward_with_nothing_lost():
    ids = _seed_old_schema(migrate_to(BEFORE_THE_MOVE))

    migrate_to_latest()

    team = Team.objects.get(pk=ids["team"])
    assert team.slug == "fraud"
    membership = Membership.objects.get(team=team)
    assert (membership.user_id, membership.role, membership.is_approver) == (
        ids["user"],
        "owner",
        True,
    )
    token = ApiToken.objects.get(pk=ids["token"])
    assert (token.team_id, token.scopes) == (team.pk, ["read", "write"])
    model = RegisteredModel.objects.get(pk=ids["model"])
    assert model.team == team
    version = ModelVersion.objects.get(pk=ids["version"])
    assert version.created_by_token == token
    assert IdempotencyRecord.objects.get(key="k1").response_body == {"name": "fraud-detector"}
    event = AuditEvent.objects.get(pk=ids["event"])
    assert (event.team_id, event.action, event.after) == (
        team.pk,
        "model.create",
        {"name": "fraud-detector"},
    )
    assert Deployment.objects.get(pk=ids["deployment"]).model == model
    # The new layout reads them through its own doors.
    assert list(RegisteredModel.objects.visible_to(None)) == [model]
    assert list(AuditEvent.objects.filter(team=team)) == [event]


@pytest.mark.django_db(transaction=True)
def test_content_types_follow_the_moved_models():
    _seed_old_schema(migrate_to(BEFORE_THE_MOVE))

    apps = migrate_to_latest()

    content_type = apps.get_model("contenttypes", "ContentType")
    moved = set(
        content_type.objects.filter(model__in=MOVED).values_list("app_label", "model").distinct()
    )
    assert moved == {("identity", name) for name in MOVED}


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
def test_the_audit_log_stays_append_only_after_the_move():
    ids = _seed_old_schema(migrate_to(BEFORE_THE_MOVE))

    migrate_to_latest()

    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=ids["event"]).update(reason="rewritten")
