"""/api/v1/teams/: teams and their members."""

from __future__ import annotations

import pytest

from identity.models import AuditEvent, Membership, Team


def test_it_lists_the_callers_teams(client_for, people):
    assert [t["slug"] for t in client_for("viewer").get("/api/v1/teams/").json()["results"]] == [
        "fraud"
    ]
    assert {t["slug"] for t in client_for("admin").get("/api/v1/teams/").json()["results"]} == {
        "fraud",
        "search",
    }


@pytest.mark.parametrize(("who", "status"), [("admin", 201), ("owner", 403), ("token:write", 403)])
def test_only_platform_admins_create_teams(client_for, people, who, status):
    response = client_for(who).post(
        "/api/v1/teams/", {"slug": "vision", "name": "Vision"}, format="json"
    )
    assert response.status_code == status
    assert Team.objects.filter(slug="vision").exists() is (status == 201)
    if status == 201:
        assert Membership.objects.get(team__slug="vision").role == "owner"


def test_it_lists_members(client_for, people):
    members = client_for("viewer").get("/api/v1/teams/fraud/members/").json()
    assert {(m["username"], m["role"]) for m in members} == {
        ("owner", "owner"),
        ("maintainer", "maintainer"),
        ("viewer", "viewer"),
    }


@pytest.mark.parametrize(
    ("who", "status"), [("owner", 200), ("maintainer", 403), ("viewer", 403), ("outsider", 404)]
)
def test_only_owners_manage_members(client_for, people, who, status):
    response = client_for(who).put(
        "/api/v1/teams/fraud/members/",
        {"username": "viewer", "role": "maintainer", "is_approver": True},
        format="json",
    )
    assert response.status_code == status
    membership = Membership.objects.get(team__slug="fraud", user__username="viewer")
    assert (membership.role == "maintainer" and membership.is_approver) is (status == 200)


def test_it_adds_and_removes_a_member_with_audit(client_for, people):
    owner = client_for("owner")
    added = owner.put(
        "/api/v1/teams/fraud/members/", {"username": "outsider", "role": "viewer"}, format="json"
    )
    assert added.status_code == 200
    assert owner.delete("/api/v1/teams/fraud/members/outsider/").status_code == 204
    assert list(
        AuditEvent.objects.filter(action__startswith="membership.")
        .values_list("action", flat=True)
        .order_by("id")
    ) == ["membership.set", "membership.remove"]


def test_a_team_keeps_at_least_one_owner(client_for, people):
    response = client_for("owner").delete("/api/v1/teams/fraud/members/owner/")
    assert response.status_code == 409
    assert Membership.objects.filter(team__slug="fraud", role="owner").exists()


def test_it_rejects_an_unknown_user_and_role(client_for, people):
    owner = client_for("owner")
    response = owner.put(
        "/api/v1/teams/fraud/members/", {"username": "ghost", "role": "viewer"}, format="json"
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "username"
    response = owner.put(
        "/api/v1/teams/fraud/members/", {"username": "viewer", "role": "king"}, format="json"
    )
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "role"


@pytest.mark.parametrize("who", ["viewer", "maintainer", "outsider"])
def test_a_non_manager_learns_nothing_about_usernames_when_setting_a_member(client_for, who):
    client = client_for(who)
    answers = [
        client.put(
            "/api/v1/teams/fraud/members/", {"username": name, "role": "viewer"}, format="json"
        )
        for name in ("outsider", "ghost")  # an existing user, and none
    ]
    expected = 404 if who == "outsider" else 403  # an outsider does not see the team at all
    assert [r.status_code for r in answers] == [expected, expected]
    assert answers[0].json()["detail"] == answers[1].json()["detail"]
    assert not Membership.objects.filter(user__username="outsider", team__slug="fraud").exists()


@pytest.mark.parametrize("who", ["viewer", "maintainer", "outsider"])
def test_a_non_manager_learns_nothing_about_usernames_when_removing_a_member(client_for, who):
    client = client_for(who)
    answers = [
        client.delete(f"/api/v1/teams/fraud/members/{name}/")
        for name in ("viewer", "ghost")  # a member, and no user at all
    ]
    expected = 404 if who == "outsider" else 403
    assert [r.status_code for r in answers] == [expected, expected]
    assert answers[0].json()["detail"] == answers[1].json()["detail"]
    assert Membership.objects.filter(user__username="viewer", team__slug="fraud").exists()


def test_removing_a_user_that_does_not_exist_is_a_404_naming_the_username(client_for, people):
    response = client_for("owner").delete("/api/v1/teams/fraud/members/ghost/")
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "username"
