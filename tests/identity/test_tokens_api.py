"""Team API tokens: created by owners, shown once, stored hashed, scoped, expiring, revocable."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from identity.models import ApiToken, AuditEvent
from tests.factories import make_token

TOKENS = "/api/v1/teams/fraud/tokens/"


def body(**overrides):  # type: ignore[no-untyped-def]
    return {
        "name": "ci",
        "scopes": ["read", "write"],
        "expires_at": (timezone.now() + timedelta(days=30)).isoformat(),
        **overrides,
    }


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("owner", 201),
        ("maintainer", 403),
        ("viewer", 403),
        ("token:write", 403),
        ("outsider", 404),
        ("admin", 201),
    ],
)
def test_only_owners_create_tokens(client_for, people, who, status):
    response = client_for(who).post(TOKENS, body(), format="json")
    assert response.status_code == status, response.content
    assert ApiToken.objects.filter(name="ci").exists() is (status == 201)


def test_the_secret_is_shown_once_and_stored_only_as_a_hash(client_for, people):
    owner = client_for("owner")
    created = owner.post(TOKENS, body(), format="json").json()
    secret = created["secret"]
    assert secret.startswith("mp_") and created["prefix"] == secret[:11]
    token = ApiToken.objects.get(name="ci")
    assert secret not in token.secret_hash and len(token.secret_hash) == 64
    listed = owner.get(TOKENS).json()
    assert listed[0]["prefix"] == created["prefix"] and "secret" not in listed[0]
    for event in AuditEvent.objects.all():
        assert secret not in str(event.before) + str(event.after) + event.target_label


def test_a_token_authenticates_and_records_its_last_use(client_for, people, team):
    token, secret = make_token(team, ["read"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/v1/models/").status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.parametrize(
    ("header", "reason"),
    [("Bearer mp_wrong", "Invalid token"), ("Bearer a b", "Bearer <token>")],
)
def test_it_refuses_bad_tokens_with_401(db, header, reason):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/models/")
    assert response.status_code == 401
    assert reason in response.json()["detail"]
    assert response["WWW-Authenticate"] == "Bearer"


def test_an_expired_token_is_refused(team):
    token, secret = make_token(team, ["read"])
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.get("/api/v1/models/")
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_revoked_token_is_refused(client_for, people, team):
    token, secret = make_token(team, ["read"])
    revoke = client_for("owner").post(f"{TOKENS}{token.pk}/revoke/")
    assert revoke.status_code == 200 and revoke.json()["revoked_at"]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    response = client.get("/api/v1/models/")
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    assert AuditEvent.objects.filter(action="token.revoke").count() == 1


def test_only_owners_revoke(client_for, people, team):
    token, _ = make_token(team, ["read"])
    assert client_for("maintainer").post(f"{TOKENS}{token.pk}/revoke/").status_code == 403
    assert client_for("owner").post(f"{TOKENS}9999/revoke/").status_code == 404


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"scopes": ["admin"]}, "scopes[0]"),
        ({"scopes": []}, "scopes"),
        ({"expires_at": "yesterday"}, "expires_at"),
        ({"name": ""}, "name"),
    ],
)
def test_it_rejects_bad_token_requests(client_for, people, change, field):
    response = client_for("owner").post(TOKENS, body(**change), format="json")
    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    ("expires_in", "reason"), [(timedelta(days=-1), "future"), (timedelta(days=400), "366 days")]
)
def test_it_bounds_the_expiry(client_for, people, expires_in, reason):
    response = client_for("owner").post(
        TOKENS, body(expires_at=(timezone.now() + expires_in).isoformat()), format="json"
    )
    assert response.status_code == 422
    assert reason in response.json()["detail"]


def test_a_token_name_is_unique_per_team(client_for, people):
    owner = client_for("owner")
    assert owner.post(TOKENS, body(), format="json").status_code == 201
    assert owner.post(TOKENS, body(), format="json").status_code == 409


def test_a_token_acts_with_its_teams_rights_only(client_for, foreign_model):
    client = client_for("token:read+write")
    assert client.get(f"/api/v1/models/{foreign_model.name}/").status_code == 404
    assert client.get("/api/v1/teams/search/").status_code == 404
    assert (
        client.patch(
            "/api/v1/models/fraud-detector/", {"risk_tier": "low"}, format="json"
        ).status_code
        == 404
    )
