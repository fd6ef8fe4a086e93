"""/api/v1/notification-channels/: a team's outgoing webhooks. Members read them, maintainers and
owners change them (never a CI token), a URL is never accepted, stored or echoed (only the name of
the environment variable that holds it), and other teams' channels answer 404."""

from __future__ import annotations

import pytest

from alerts.models import NotificationChannel
from identity.models import AuditEvent
from tests.factories import channel_of

URL = "/api/v1/notification-channels/"
SECRET_URL = "https://hooks.slack.example/services/T000/B000/not-a-real-secret"


def test_members_list_their_teams_channels_and_see_whether_the_variable_is_set(
    client_for, team, other_team, monkeypatch
):
    channel_of(team, name="ops-slack", url_env="FRAUD_SLACK_URL")
    channel_of(other_team, name="search-slack", url_env="SEARCH_SLACK_URL")
    monkeypatch.setenv("FRAUD_SLACK_URL", SECRET_URL)
    response = client_for("viewer").get(URL)
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["name"], r["url_env"], r["url_configured"]) for r in rows] == [
        ("ops-slack", "FRAUD_SLACK_URL", True)
    ]
    assert SECRET_URL not in response.content.decode()


@pytest.mark.parametrize("who", ["maintainer", "owner"])
def test_maintainers_and_owners_create_a_channel_audited(client_for, team, who):
    body = {"team": team.slug, "name": "ops-slack", "url_env": "FRAUD_SLACK_URL"}
    response = client_for(who).post(URL, body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["url_configured"] is False
    channel = NotificationChannel.objects.get(team=team)
    assert channel.url_env == "FRAUD_SLACK_URL" and channel.is_active
    assert AuditEvent.objects.filter(action="notification_channel.create").count() == 1


@pytest.mark.parametrize(
    ("who", "status"),
    [("viewer", 403), ("token:write", 403), ("outsider", 404), ("anonymous", 401)],
)
def test_others_cannot_create_a_channel(client_for, team, who, status):
    body = {"team": team.slug, "name": "ops-slack", "url_env": "FRAUD_SLACK_URL"}
    response = client_for(who).post(URL, body, format="json")
    assert response.status_code == status
    assert not NotificationChannel.objects.exists()


def test_a_pasted_url_is_refused_naming_the_field_without_echoing_it(client_for, team):
    body = {"team": team.slug, "name": "ops-slack", "url_env": SECRET_URL}
    response = client_for("owner").post(URL, body, format="json")
    assert response.status_code in (400, 422)
    assert response.json()["errors"][0]["field"] == "url_env"
    assert SECRET_URL not in response.content.decode()
    assert not NotificationChannel.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="notification_channel").exists()


def test_a_channel_is_changed_and_deleted_by_its_team_only(client_for, team, other_team):
    mine = channel_of(team, name="ops-slack", url_env="FRAUD_SLACK_URL")
    theirs = channel_of(other_team, name="search-slack", url_env="SEARCH_SLACK_URL")
    owner = client_for("owner")
    response = owner.patch(f"{URL}{mine.pk}/", {"is_active": False}, format="json")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert owner.patch(f"{URL}{theirs.pk}/", {"is_active": False}, format="json").status_code == 404
    assert owner.delete(f"{URL}{theirs.pk}/").status_code == 404
    assert owner.delete(f"{URL}{mine.pk}/").status_code == 204
    assert list(NotificationChannel.objects.values_list("name", flat=True)) == ["search-slack"]
