"""Creating and revoking API tokens from the team page; the secret is shown exactly once."""

from __future__ import annotations

import json
import re

from django.core import serializers

from identity.models import ApiToken, AuditEvent
from tests.factories import make_token
from tests.support.pages import html_of

CREATE_URL = "/teams/fraud/tokens/"
GOOD = {"name": "github-actions", "scopes": ["read", "write"], "expires_in_days": "30"}


def secret_in(response) -> str:  # type: ignore[no-untyped-def]
    match = re.search(r'id="token-secret"[^>]* value="([^"]+)"', response.content.decode())
    assert match, "the secret is on the creation page"
    return match.group(1)


def test_an_owner_creates_a_token_and_sees_its_secret_once(browser_for, team, people):
    client = browser_for("owner")
    response = client.post(CREATE_URL, GOOD)
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    secret = secret_in(response)
    token = ApiToken.objects.get(team=team, name="github-actions")
    assert secret.startswith(token.prefix)
    assert token.scopes == ["read", "write"]
    assert secret not in html_of(client, "/teams/fraud/")


def test_the_secret_is_neither_in_the_database_nor_in_the_audit_log(browser_for, team, people):
    secret = secret_in(browser_for("owner").post(CREATE_URL, GOOD))
    rows = serializers.serialize("json", [*ApiToken.objects.all(), *AuditEvent.objects.all()])
    assert secret not in rows
    assert secret[len("mp_") :] not in rows  # not even without its prefix
    event = AuditEvent.objects.get(action="token.create")
    assert secret not in json.dumps([event.before, event.after])


def test_a_viewer_sees_no_form_and_is_forbidden_to_create(browser_for, team, people):
    response = browser_for("viewer").post(CREATE_URL, GOOD)
    assert response.status_code == 403
    assert b"token-secret" not in response.content
    assert not ApiToken.objects.exists()


def test_bad_input_shows_form_errors_and_writes_nothing(browser_for, team, people):
    client = browser_for("owner")
    no_scope = client.post(CREATE_URL, {**GOOD, "scopes": []})
    assert no_scope.status_code == 400
    assert b"This field is required" in no_scope.content
    too_long = client.post(CREATE_URL, {**GOOD, "expires_in_days": "400"})
    assert too_long.status_code == 400
    assert not ApiToken.objects.exists()


def test_a_duplicate_name_is_a_conflict_on_the_name_field(browser_for, team, people):
    make_token(team, ["read"], name="github-actions")
    response = browser_for("owner").post(CREATE_URL, GOOD)
    assert response.status_code == 409
    assert b"already has a token named" in response.content
    assert ApiToken.objects.filter(team=team).count() == 1


def test_an_owner_revokes_a_token(browser_for, team, people):
    token, _ = make_token(team, ["read"])
    response = browser_for("owner").post(f"/teams/fraud/tokens/{token.pk}/revoke/")
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


def test_a_viewer_is_forbidden_to_revoke(browser_for, team, people):
    token, _ = make_token(team, ["read"])
    assert browser_for("viewer").post(f"/teams/fraud/tokens/{token.pk}/revoke/").status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is None


def test_an_outsider_cannot_revoke_another_teams_token(browser_for, team, people):
    token, _ = make_token(team, ["read"])
    client = browser_for("outsider")
    assert client.post(f"/teams/fraud/tokens/{token.pk}/revoke/").status_code == 404
    assert client.post(f"/teams/search/tokens/{token.pk}/revoke/").status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None


def test_token_forms_reject_get(browser_for, team, people):
    token, _ = make_token(team, ["read"])
    client = browser_for("owner")
    assert client.get(CREATE_URL).status_code == 405
    assert client.get(f"/teams/fraud/tokens/{token.pk}/revoke/").status_code == 405
